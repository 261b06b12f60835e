//! The in-cluster chart (packaging/helm/bulwark), rendered and linted by the real `helm`: every
//! choice renders, every document is checked against the Kubernetes API's own types (generated
//! from its OpenAPI schema: a document that does not deserialize, or loses a field on the way
//! through, is wrong), the security choices hold, and bad values are refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn helm() -> String {
    std::env::var("BULWARK_TEST_HELM").unwrap_or_else(|_| {
        panic!("BULWARK_TEST_HELM is unset: run tests/services/start.sh DIR helm and source DIR/endpoints.env (tests/run-all.sh does)")
    })
}

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/helm/bulwark")
}

/// The sensor subchart into charts/ (from the file:// dependency; offline).
fn dependencies() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let o = Command::new(helm())
            .args(["dependency", "update"])
            .arg(chart())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    });
}

const REQUIRED: [&str; 3] = [
    "appliance.url=https://bulwark.internal:8443",
    "appliance.cluster=prod",
    "apiKey.existingSecret=bulwark-audit-key",
];

/// `helm template` with the required values and `set`: the documents as JSON, or helm's error.
fn render(set: &[&str]) -> Result<Vec<Value>, String> {
    dependencies();
    let mut cmd = Command::new(helm());
    cmd.args(["template", "edge", "--namespace", "bulwark"])
        .arg(chart());
    for s in REQUIRED.iter().chain(set) {
        cmd.args(["--set", s]);
    }
    let o = cmd.output().unwrap();
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    let text = String::from_utf8(o.stdout).unwrap();
    Ok(serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|d: &Value| !d.is_null())
        .collect())
}

fn all<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    all(docs, kind)
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// `v` without its nulls (the API server reads a null field as an absent one).
fn pruned(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), pruned(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(pruned).collect()),
        other => other.clone(),
    }
}

/// `doc` through the API type of its kind and back: equal, or the field that did not survive.
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) {
    let doc = &pruned(doc);
    let t: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| {
        panic!(
            "{} is not a valid {}: {e}",
            doc["metadata"]["name"], doc["kind"]
        )
    });
    let back = serde_json::to_value(&t).unwrap();
    assert_eq!(
        &back, doc,
        "a field the API does not know, or of the wrong type"
    );
}

fn validate(docs: &[Value]) {
    use k8s_openapi::api::{
        admissionregistration::v1 as adm, batch::v1 as batch, core::v1 as core,
    };
    use k8s_openapi::api::{apps::v1 as apps, networking::v1 as net, rbac::v1 as rbac};
    for d in docs {
        match d["kind"].as_str().unwrap() {
            "ValidatingWebhookConfiguration" => typed::<adm::ValidatingWebhookConfiguration>(d),
            "ServiceAccount" => typed::<core::ServiceAccount>(d),
            "Secret" => typed::<core::Secret>(d),
            "ConfigMap" => typed::<core::ConfigMap>(d),
            "ClusterRole" => typed::<rbac::ClusterRole>(d),
            "ClusterRoleBinding" => typed::<rbac::ClusterRoleBinding>(d),
            "CronJob" => typed::<batch::CronJob>(d),
            "DaemonSet" => typed::<apps::DaemonSet>(d),
            "NetworkPolicy" => typed::<net::NetworkPolicy>(d),
            other => panic!("an unexpected kind: {other}"),
        }
    }
}

#[test]
fn every_choice_renders_valid_objects() {
    let lint = Command::new(helm())
        .args(["lint", "--strict"])
        .arg(chart())
        .args(REQUIRED.iter().flat_map(|s| ["--set", s]))
        .output()
        .unwrap();
    dependencies();
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stdout)
    );
    let choices: &[&[&str]] = &[
        &[],
        &[
            "webhook.failurePolicy=Fail",
            "webhook.token=s3cret-path",
            "appliance.caPem=-----BEGIN CERTIFICATE-----",
        ],
        &["apiKey.existingSecret=", "apiKey.value=bwk_example"],
        &["useExternalSecrets=true"],
        &[
            "httpsProxy=http://proxy.corp:3128",
            "httpsProxyNoProxy=.svc\\,.cluster.local",
        ],
        &[
            "networkPolicy.enabled=true",
            "networkPolicy.proxyIp=10.0.0.9",
        ],
        &[
            "networkPolicy.enabled=true",
            "networkPolicy.applianceCidr=10.1.0.0/24",
            "networkPolicy.additionalEgress[0].host=10.2.0.0/16",
            "networkPolicy.additionalEgress[0].port=9000",
        ],
        &[
            "imageRegistry=registry.corp:5000/mirror",
            "imagePullSecrets[0]=corp-pull",
        ],
        &[
            "installSensor=true",
            "sensor.server=https://bulwark.internal:8443",
            "sensor.token.existingSecret=sensor-key",
        ],
        &[
            "webhook.enabled=false",
            "kubeBench.enabled=false",
            "kubeHunter.enabled=false",
            "falcosidekick.enabled=false",
            "rbac.create=false",
        ],
    ];
    for set in choices {
        let docs = render(set).unwrap_or_else(|e| panic!("{set:?}: {e}"));
        validate(&docs);
    }
}

#[test]
fn the_objects_carry_the_security_choices() {
    let docs = render(&[
        "webhook.token=s3cret-path",
        "appliance.caPem=PEM",
        "httpsProxy=http://proxy.corp:3128",
        "imageRegistry=registry.corp:5000/mirror",
        "imagePullSecrets[0]=corp-pull",
    ])
    .unwrap();
    let hook = &one(&docs, "ValidatingWebhookConfiguration")["webhooks"][0];
    assert_eq!(
        hook["clientConfig"]["url"],
        "https://bulwark.internal:8443/api/v1/admission/prod/s3cret-path"
    );
    assert_eq!(hook["clientConfig"]["caBundle"], "UEVN", "the CA, base64");
    assert_eq!(hook["failurePolicy"], "Ignore");
    assert_eq!(hook["sideEffects"], "None");
    let excluded = &hook["namespaceSelector"]["matchExpressions"][0];
    assert_eq!(excluded["operator"], "NotIn");
    assert!(excluded["values"]
        .as_array()
        .unwrap()
        .contains(&"kube-system".into()));

    let role = one(&docs, "ClusterRole");
    for rule in role["rules"].as_array().unwrap() {
        let verbs: Vec<&str> = rule["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(verbs, ["get", "list", "watch"], "read-only: {rule}");
        assert!(
            !rule["resources"]
                .as_array()
                .unwrap()
                .contains(&"secrets".into()),
            "never secrets"
        );
    }

    let jobs = all(&docs, "CronJob");
    assert_eq!(jobs.len(), 2);
    for job in jobs {
        let pod = &job["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert!(
            c["image"]
                .as_str()
                .unwrap()
                .starts_with("registry.corp:5000/mirror/aquasec/"),
            "{c}"
        );
        assert_eq!(pod["imagePullSecrets"][0]["name"], "corp-pull");
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
        let env: Vec<&str> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert!(
            env.contains(&"HTTPS_PROXY") && env.contains(&"NO_PROXY"),
            "{env:?}"
        );
        let key = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "BULWARK_KEY")
            .unwrap();
        assert_eq!(
            key["valueFrom"]["secretKeyRef"]["name"], "bulwark-audit-key",
            "the key from a Secret"
        );
        if job["metadata"]["name"] == "edge-kube-hunter" {
            assert_eq!(pod["securityContext"]["runAsUser"], 1000);
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        } else {
            assert_eq!(
                pod["hostPID"], true,
                "kube-bench reads the node's processes"
            );
            for m in c["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["name"] != "tmp")
            {
                assert_eq!(m["readOnly"], true, "{m}");
            }
        }
    }
    let sidekick = one(&docs, "ConfigMap");
    assert!(sidekick["data"]["falcosidekick-values.yaml"]
        .as_str()
        .unwrap()
        .contains("https://bulwark.internal:8443/api/falco/prod/create/"));
    assert!(
        all(&docs, "Secret").is_empty(),
        "existingSecret: the chart makes none"
    );
    let printed = serde_json::to_string(
        &render(&["apiKey.existingSecret=", "apiKey.value=bwk_example"]).unwrap(),
    )
    .unwrap();
    assert!(
        printed.contains("bwk_example"),
        "apiKey.value: the chart makes the Secret"
    );
}

#[test]
fn bad_values_are_refused_with_a_reason() {
    for (set, says) in [
        (&["appliance.url="][..], "appliance.url is required"),
        (&["appliance.cluster="][..], "appliance.cluster is required"),
        (
            &["apiKey.existingSecret="][..],
            "apiKey.existingSecret or apiKey.value",
        ),
        (
            &["useExternalSecrets=true", "apiKey.value=x"][..],
            "useExternalSecrets",
        ),
        (&["webhook.failurePolicy=Maybe"][..], "failurePolicy"),
        (&["appliance.url=http://plain:8443"][..], "appliance.url"),
        (&["networkPolicy.proxyIp=proxy.corp"][..], "proxyIp"),
        (&["webhoook.enabled=false"][..], "webhoook"),
    ] {
        let err = render(set).expect_err(&format!("{set:?} rendered"));
        assert!(err.contains(says), "{set:?}: {err}");
    }
}
