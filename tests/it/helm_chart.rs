//! The sensor's Helm chart (packaging/helm/bulwark-sensor), rendered and linted by the real
//! `helm`: its security choices, its checks on values, its agreement with `bulwark
//! sensor-manifest`, and the container it renders, run as a node would run it, capturing real
//! traffic on a veth and shipping to a real appliance.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use serde_yaml::Value as Yaml;

use crate::sensor::{post_customers, sensor_key, wait_said, Kill, Netns};
use crate::support::Fetch;

fn helm() -> String {
    std::env::var("BULWARK_TEST_HELM").unwrap_or_else(|_| {
        panic!("BULWARK_TEST_HELM is unset: run tests/services/start.sh DIR helm and source DIR/endpoints.env (tests/run-all.sh does)")
    })
}

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/helm/bulwark-sensor")
}

/// `helm template` with `--set`/`--set-file` arguments: the documents, or helm's error text.
fn render(args: &[&str]) -> Result<Vec<Yaml>, String> {
    let o = Command::new(helm())
        .args(["template", "edge", "--namespace", "bulwark"])
        .arg(chart())
        .args(args)
        .output()
        .unwrap();
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    let text = String::from_utf8(o.stdout).unwrap();
    Ok(serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|d: &Yaml| !d.is_null())
        .collect())
}

fn find<'a>(docs: &'a [Yaml], kind: &str) -> Option<&'a Yaml> {
    docs.iter().find(|d| d["kind"].as_str() == Some(kind))
}

fn strings(v: &Yaml) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

const SERVER_URL: &str = "server=https://bulwark.internal:8443";

#[test]
fn the_chart_lints_and_carries_the_security_choices() {
    let o = Command::new(helm())
        .args(["lint", "--strict"])
        .arg(chart())
        .args(["--set", SERVER_URL])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // Defaults: capabilities only, host network with its DNS policy, read-only root, the
    // existing Secret and ConfigMap, no NetworkPolicy.
    let docs = render(&["--set", SERVER_URL]).unwrap();
    assert!(find(&docs, "ServiceAccount").is_some());
    assert!(find(&docs, "NetworkPolicy").is_none());
    assert!(find(&docs, "Secret").is_none() && find(&docs, "ConfigMap").is_none());
    let pod = &find(&docs, "DaemonSet").unwrap()["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"].as_bool(), Some(true));
    assert_eq!(pod["dnsPolicy"].as_str(), Some("ClusterFirstWithHostNet"));
    assert_eq!(pod["hostPID"].as_bool(), Some(false));
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"].as_bool(), Some(false));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(
        strings(&sc["capabilities"]["add"]),
        ["NET_RAW", "NET_ADMIN", "BPF", "IPC_LOCK"]
    );
    assert_eq!(
        sc["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    assert_eq!(
        c["env"][0]["valueFrom"]["secretKeyRef"]["name"].as_str(),
        Some("bulwark-sensor-token")
    );
    assert_eq!(
        pod["volumes"][1]["configMap"]["name"].as_str(),
        Some("bulwark-ca")
    );
    assert!(c["ports"].is_null(), "no metrics port unless asked");
    let args = strings(&c["args"]);
    let at = args.iter().position(|a| a == "--rescan-every").unwrap();
    assert_eq!(
        args[at + 1],
        "5",
        "pods started later are captured within seconds"
    );

    // Privileged, the PID namespace, a writable root, a proxy, the cluster's DNS without host
    // networking, metrics, and a NetworkPolicy narrowed to the appliance's address.
    let docs = render(&[
        "--set",
        SERVER_URL,
        "--set",
        "security.mode=privileged",
        "--set",
        "hostPID=true",
        "--set",
        "hostNetwork=false",
        "--set",
        "security.readOnlyRootFilesystem=false",
        "--set",
        "proxy.httpsProxy=http://proxy:3128",
        "--set",
        "proxy.noProxy=10.0.0.0/8",
        "--set",
        "metrics.enabled=true",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "networkPolicy.applianceCIDR=10.20.0.15/32",
    ])
    .unwrap();
    let ds = find(&docs, "DaemonSet").unwrap();
    let pod = &ds["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["privileged"].as_bool(), Some(true));
    assert!(c["securityContext"]["capabilities"].is_null());
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(false)
    );
    assert!(
        pod["securityContext"].is_null(),
        "no root override when privileged"
    );
    assert_eq!(pod["hostPID"].as_bool(), Some(true));
    assert_eq!(pod["hostNetwork"].as_bool(), Some(false));
    assert_eq!(pod["dnsPolicy"].as_str(), Some("ClusterFirst"));
    let env = serde_yaml::to_string(&c["env"]).unwrap();
    assert!(env.contains("HTTPS_PROXY") && env.contains("http://proxy:3128"));
    assert!(env.contains("NO_PROXY") && env.contains("10.0.0.0/8"));
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(9847));
    let annotations = &ds["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(annotations["prometheus.io/port"].as_str(), Some("9847"));
    let args = strings(&c["args"]);
    let at = args.iter().position(|a| a == "--metrics-listen").unwrap();
    assert_eq!(args[at + 1], "0.0.0.0:9847");
    let np = find(&docs, "NetworkPolicy").unwrap();
    assert_eq!(
        np["spec"]["ingress"][0]["ports"][0]["port"].as_u64(),
        Some(9847)
    );
    let egress = &np["spec"]["egress"];
    assert_eq!(egress[0]["ports"][0]["port"].as_u64(), Some(8443));
    assert_eq!(
        egress[0]["to"][0]["ipBlock"]["cidr"].as_str(),
        Some("10.20.0.15/32")
    );
    assert_eq!(egress[1]["ports"][0]["port"].as_u64(), Some(53));
    // Without metrics, nothing may connect in; a URL without a port means 443.
    let docs = render(&[
        "--set",
        "server=https://bulwark.internal",
        "--set",
        "networkPolicy.enabled=true",
    ])
    .unwrap();
    let np = find(&docs, "NetworkPolicy").unwrap();
    assert_eq!(
        np["spec"]["ingress"].as_sequence().map(|s| s.len()),
        Some(0)
    );
    assert_eq!(
        np["spec"]["egress"][0]["ports"][0]["port"].as_u64(),
        Some(443)
    );
}

/// Values the chart cannot honour fail `helm install` with a message naming the value, instead
/// of rendering a pod that silently does less.
#[test]
fn the_chart_refuses_bad_values() {
    let refused = |args: &[&str], says: &str| {
        let err = render(args).expect_err(&format!("{args:?} rendered"));
        assert!(err.contains(says), "{args:?}: {err}");
    };
    refused(&[], "server: the appliance's URL");
    refused(
        &["--set", "server=bulwark.internal:8443"],
        "server: Does not match pattern",
    );
    // Each with a valid server: (the values set, what the error must name).
    let cases: &[(&[&str], &str)] = &[
        (&["security.mode=root"], "security.mode must be one of"),
        (&["sensor.workers=0"], "sensor.workers"),
        (&["sensor.maxBodyBytes=100"], "sensor.maxBodyBytes"),
        (
            &["sensor.rescanEverySeconds=0"],
            "sensor.rescanEverySeconds",
        ),
        (&["sensor.interfaces={eth0;rm}"], "sensor.interfaces"),
        (&["sensor.skipPaths={healthz}"], "sensor.skipPaths"),
        (&["secuirty.mode=privileged"], "secuirty"),
        (
            &["sensor.keepProbes=true", "sensor.skipPaths={/healthz}"],
            "exclude each other",
        ),
        (&["token.existingSecret="], "the sensors need an API key"),
        (
            &["networkPolicy.applianceCIDR=everywhere"],
            "networkPolicy.applianceCIDR",
        ),
    ];
    for (values, says) in cases {
        let mut args = vec!["--set", SERVER_URL];
        for v in *values {
            args.extend(["--set", v]);
        }
        refused(&args, says);
    }
}

/// The chart and `bulwark sensor-manifest` are two ways to the same DaemonSet: with the same
/// choices they give the same pod security, namespaces sharing, command line and resources.
#[test]
fn the_chart_and_sensor_manifest_agree() {
    let pod_of =
        |docs: &[Yaml]| find(docs, "DaemonSet").unwrap()["spec"]["template"]["spec"].clone();
    for (chart_args, manifest_args) in [
        (vec![], vec![]),
        (
            vec![
                "--set",
                "security.mode=privileged",
                "--set",
                "hostPID=true",
                "--set",
                "metrics.enabled=true",
            ],
            vec![
                "--security",
                "privileged",
                "--host-pid",
                "--metrics-port",
                "9847",
            ],
        ),
    ] {
        let mut a = vec!["--set", SERVER_URL, "--set", "image.tag=latest"];
        a.extend(chart_args);
        let from_chart = pod_of(&render(&a).unwrap());
        let o = Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args([
                "sensor-manifest",
                "--server",
                "https://bulwark.internal:8443",
            ])
            .args(&manifest_args)
            .output()
            .unwrap();
        assert!(o.status.success());
        let docs: Vec<Yaml> =
            serde_yaml::Deserializer::from_str(std::str::from_utf8(&o.stdout).unwrap())
                .map(|d| serde::Deserialize::deserialize(d).unwrap())
                .collect();
        let from_cli = pod_of(&docs);
        for key in ["hostNetwork", "hostPID", "dnsPolicy", "securityContext"] {
            assert_eq!(from_chart[key], from_cli[key], "{key} ({manifest_args:?})");
        }
        let (c, m) = (&from_chart["containers"][0], &from_cli["containers"][0]);
        for key in ["image", "securityContext", "resources", "ports"] {
            assert_eq!(c[key], m[key], "container {key} ({manifest_args:?})");
        }
        // The command lines carry the same flags with the same values; the chart also spells
        // out the sensor's defaults.
        let (ca, ma) = (strings(&c["args"]), strings(&m["args"]));
        for pair in ma[1..].chunks(2) {
            let at = ca
                .iter()
                .position(|x| *x == pair[0])
                .unwrap_or_else(|| panic!("{} missing from {ca:?}", pair[0]));
            assert_eq!(ca[at + 1], pair[1], "{ca:?} vs {ma:?}");
        }
    }
}

/// The DaemonSet's container, run as the kubelet would run it on a node (the rendered args,
/// the token from the rendered Secret, the CA from the rendered ConfigMap at its mount path),
/// captures real traffic on a veth and ships it to a real appliance.
#[actix_web::test]
async fn the_charts_container_captures_and_ships() {
    let ns = Netns::new();
    let _server = ns.serve();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let appliance = crate::support::Server::start(&data).await;
    let admin = appliance.admin_client().await;
    let key = sensor_key(&admin, &appliance.base, "helm-node").await;
    let metrics_port = crate::support::free_port().to_string();
    let docs = render(&[
        "--set",
        &format!("server={}", appliance.base),
        "--set",
        &format!("token.value={key}"),
        "--set-file",
        &format!("ca.pem={}", data.join("tls/ca.pem").display()),
        "--set",
        &format!("sensor.interfaces={{{}}}", ns.host_if),
        "--set",
        "sensor.shipEverySeconds=1",
        "--set",
        "metrics.enabled=true",
        "--set",
        &format!("metrics.port={metrics_port}"),
    ])
    .unwrap();
    let pod = &find(&docs, "DaemonSet").unwrap()["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    // The Secret the chart made holds the key (base64, as the API server stores it) and the
    // container reads it from there.
    let secret = find(&docs, "Secret").unwrap();
    let env_ref = &c["env"][0]["valueFrom"]["secretKeyRef"];
    assert_eq!(secret["metadata"]["name"], env_ref["name"]);
    let token = base64::engine::general_purpose::STANDARD
        .decode(
            secret["data"][env_ref["key"].as_str().unwrap()]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    // The ConfigMap's CA, where the volume mounts it.
    let cm = find(&docs, "ConfigMap").unwrap();
    let volume = &pod["volumes"][1];
    assert_eq!(volume["configMap"]["name"], cm["metadata"]["name"]);
    let item = &volume["configMap"]["items"][0];
    let ca_dir = dir.path().join("etc-bulwark");
    std::fs::create_dir_all(&ca_dir).unwrap();
    std::fs::write(
        ca_dir.join(item["path"].as_str().unwrap()),
        cm["data"][item["key"].as_str().unwrap()].as_str().unwrap(),
    )
    .unwrap();
    let mount = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .unwrap()["mountPath"]
        .as_str()
        .unwrap()
        .to_string();
    let args: Vec<String> = strings(&c["args"])
        .into_iter()
        .map(|a| a.replace(&mount, ca_dir.to_str().unwrap()))
        .collect();
    let mut sensor = Kill(
        Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args(&args)
            .env("BULWARK_SENSOR_TOKEN", String::from_utf8(token).unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut sensor_err = BufReader::new(sensor.0.stderr.take().unwrap());
    wait_said(&mut sensor_err, "capturing on")
        .unwrap_or_else(|said| panic!("the sensor ended: {said} (args {args:?})"));
    let client = reqwest::Client::new();
    let base = ns.ready(&client).await;
    post_customers(&client, &base, 5).await;
    // The flows reach the appliance, shipped with the key from the Secret.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let flows: Value = admin
            .get(format!("{}/api/v1/datamap?type=id.us_ssn", appliance.base))
            .json_body()
            .await;
        if flows["items"][0]["exchanges"] == 5 {
            assert_eq!(flows["items"][0]["endpoint"], "/api/customers/{id}");
            let by = flows["items"][0]["sensors"].to_string();
            assert!(by.contains("(key "), "shipped with the sensor key: {by}");
            break;
        }
        assert!(Instant::now() < deadline, "not shipped: {flows}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The port the chart annotated for scrapers serves the capture counters.
    let text = client
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .text_body()
        .await;
    assert!(text.contains("bulwark_sensor_kernel_drops_total"), "{text}");
    unsafe { libc::kill(sensor.0.id() as i32, libc::SIGTERM) };
    assert!(sensor.0.wait().unwrap().success());
}
