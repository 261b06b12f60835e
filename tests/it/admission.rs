//! The admission webhook end to end: reviews of Pods and workloads decided from the in-memory
//! snapshot, per-cluster enforcement and unscanned-image handling, changes taking effect at once,
//! aggregated decision records, and the bad reviews it must survive.

use actix_web::test::{self, TestRequest};
use bulwark::http::{Role, Scope};
use serde_json::{json, Value};

use crate::support::{Caller, Fetch, InProcess};

const DEBIAN: &[u8] = include_bytes!("../fixtures/trivy/debian-buster.trivy.json");
const ALPINE: &[u8] = include_bytes!("../fixtures/trivy/alpine-310.trivy.json");
const SYNTHETIC: &str =
    include_str!("../fixtures/admission/SYNTHETIC-admissionreview-v1-request.json");
const KUBEWARDEN: &str =
    include_str!("../fixtures/admission/kubewarden-pod_creation.admissionrequest.json");

macro_rules! call {
    ($app:expr, $req:expr) => {{
        let res = test::call_service($app, $req.to_request()).await;
        let status = res.status().as_u16();
        let body = test::read_body(res).await;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, v)
    }};
}

fn pod(uid: &str, ns: &str, containers: &[&str], init: &[&str]) -> Value {
    let c: Vec<Value> = containers
        .iter()
        .enumerate()
        .map(|(i, im)| json!({"name": format!("c{i}"), "image": im}))
        .collect();
    let ic: Vec<Value> = init
        .iter()
        .enumerate()
        .map(|(i, im)| json!({"name": format!("i{i}"), "image": im}))
        .collect();
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"}, "namespace": ns, "operation": "CREATE",
        "name": "web-1", "object": {"metadata": {"name": "web-1"}, "spec": {"containers": c, "initContainers": ic}}}})
}

fn review(path: &str, body: &Value) -> TestRequest {
    Caller::default().post_bytes(path, body.to_string().into_bytes())
}

#[actix_web::test]
async fn decisions_from_memory_follow_every_change() {
    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    let (s, _) = t.session("admin@example.com");
    let scanner = t.key(admin, &[Scope::Scanner]);
    let app = t.service().await;
    let (st, c) = call!(
        &app,
        Caller::session(&s).post(
            "/api/v1/clusters",
            json!({"name": "prod", "enforcement": true})
        )
    );
    assert_eq!(st, 201, "{c}");
    let cluster_id = c["id"].as_u64().unwrap();
    let up = |image: &str, body: &'static [u8]| {
        TestRequest::post()
            .uri(&format!("/api/v1/scans?cluster=prod&image={image}"))
            .insert_header(("x-api-key", scanner.clone()))
            .set_payload(body)
    };
    let (_, bad) = call!(&app, up("registry.local/team/api:1.0", DEBIAN));
    let bad_digest = bad["image"]["digest"].as_str().unwrap().to_string();
    call!(&app, up("alpine:3.10", ALPINE));

    // Compliant image: allowed, uid echoed.
    let (st, v) = call!(
        &app,
        review(
            "/api/v1/admission/prod",
            &pod("u-1", "prod", &["alpine:3.10"], &[])
        )
    );
    assert_eq!(st, 200);
    assert_eq!(v["response"]["uid"], "u-1");
    assert_eq!(v["response"]["allowed"], true, "{v}");
    // Non-compliant image: denied and named, by tag and by digest, in containers or initContainers.
    let (_, v) = call!(
        &app,
        review(
            "/api/v1/admission/prod",
            &pod(
                "u-2",
                "prod",
                &["alpine:3.10", "registry.local/team/api:1.0"],
                &[]
            )
        )
    );
    assert_eq!(v["response"]["allowed"], false);
    let msg = v["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("registry.local/team/api:1.0") && msg.contains("fixable critical"),
        "{msg}"
    );
    assert!(
        !msg.contains("alpine"),
        "only offending images are named: {msg}"
    );
    let by_digest = format!("registry.local/team/api@{bad_digest}");
    let (_, v) = call!(
        &app,
        review(
            "/api/v1/admission/prod",
            &pod("u-3", "prod", &["alpine:3.10"], &[&by_digest])
        )
    );
    assert_eq!(
        v["response"]["allowed"], false,
        "initContainers are checked, digests matched: {v}"
    );
    // The m9sweeper path and the cluster id work too.
    let (_, v) = call!(
        &app,
        review(
            &format!("/api/clusters/{cluster_id}/validation"),
            &pod("u-4", "prod", &["registry.local/team/api:1.0"], &[])
        )
    );
    assert_eq!(v["response"]["allowed"], false);
    // An image never scanned: denied (the cluster's default), named as unscanned.
    let (_, v) = call!(
        &app,
        review(
            "/api/v1/admission/prod",
            &pod("u-5", "prod", &["registry.local/new/thing:2"], &[])
        )
    );
    assert_eq!(v["response"]["allowed"], false);
    assert!(
        v["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("has not been scanned"),
        "{v}"
    );

    // An approved exception takes effect on the next review.
    let (st, e) = call!(&app, Caller::session(&s).post("/api/v1/exceptions", json!({"title": "ok in dev", "namespaces": ["dev"], "image_match": "registry.local/team/api"})));
    assert_eq!(st, 201, "{e}");
    let (_, v) = call!(
        &app,
        review(
            "/api/v1/admission/prod",
            &pod("u-6", "dev", &["registry.local/team/api:1.0"], &[])
        )
    );
    assert_eq!(v["response"]["allowed"], true, "excepted in dev: {v}");
    let (_, v) = call!(
        &app,
        review(
            "/api/v1/admission/prod",
            &pod("u-7", "prod", &["registry.local/team/api:1.0"], &[])
        )
    );
    assert_eq!(v["response"]["allowed"], false, "not in prod");

    // Unscanned images allowed and queued, when the cluster says so.
    let (st, _) = call!(
        &app,
        Caller::session(&s).patch(
            &format!("/api/v1/clusters/{cluster_id}"),
            json!({"unscanned_action": "allow-and-queue"})
        )
    );
    assert_eq!(st, 200);
    let (_, v) = call!(
        &app,
        review(
            "/api/v1/admission/prod",
            &pod("u-8", "prod", &["registry.local/new/thing:2"], &[])
        )
    );
    assert_eq!(v["response"]["allowed"], true, "{v}");
    assert!(v["response"]["warnings"][0]
        .as_str()
        .unwrap()
        .contains("queued for a scan"));
    // Enforcement off: allowed, with the reason as a warning.
    call!(
        &app,
        Caller::session(&s).patch(
            &format!("/api/v1/clusters/{cluster_id}"),
            json!({"enforcement": false})
        )
    );
    let (_, v) = call!(
        &app,
        review(
            "/api/v1/admission/prod",
            &pod("u-9", "prod", &["registry.local/team/api:1.0"], &[])
        )
    );
    assert_eq!(v["response"]["allowed"], true);
    assert!(
        v["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("Bulwark would deny"),
        "{v}"
    );

    // Decisions are recorded, aggregated, and the unscanned image is in the queue.
    for i in 0..5 {
        call!(
            &app,
            review(
                "/api/v1/admission/prod",
                &pod(&format!("agg-{i}"), "agg", &["alpine:3.10"], &[])
            )
        );
    }
    let (st, d) = call!(&app, Caller::session(&s).get("/api/v1/admission/decisions"));
    assert_eq!(st, 200);
    let items = d["items"].as_array().unwrap();
    let agg = items.iter().find(|x| x["namespace"] == "agg").unwrap();
    assert_eq!(agg["count"], 5, "identical decisions aggregate: {agg}");
    assert!(items.iter().any(|x| x["allowed"] == false
        && x["message"]
            .as_str()
            .unwrap()
            .contains("registry.local/team/api")));
    let queue = bulwark::images::queue(t.store()).unwrap();
    assert!(
        queue
            .iter()
            .any(|q| q.reference == "registry.local/new/thing:2"),
        "{queue:?}"
    );
    let metrics = t.app.state.metrics.render();
    assert!(
        metrics.contains("bulwark_admission_reviews_total{cluster=\"prod\",decision=\"denied\"}"),
        "{metrics}"
    );
}

#[actix_web::test]
async fn workloads_fixtures_and_bad_reviews() {
    let t = InProcess::new();
    t.user("admin@example.com", Role::Admin);
    let (s, _) = t.session("admin@example.com");
    let app = t.service().await;
    call!(
        &app,
        Caller::session(&s).post(
            "/api/v1/clusters",
            json!({"name": "prod", "enforcement": true})
        )
    );
    // The synthetic Deployment (image by digest, never scanned): denied, uid echoed.
    let v1: Value = serde_json::from_str(SYNTHETIC).unwrap();
    let (st, v) = call!(&app, review("/api/v1/admission/prod", &v1));
    assert_eq!(st, 200);
    assert_eq!(v["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(v["response"]["allowed"], false);
    assert!(v["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("Deployment default/web"));
    // The same as v1beta1: the answer keeps the request's apiVersion.
    let mut beta = v1.clone();
    beta["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let (_, v) = call!(&app, review("/api/v1/admission/prod", &beta));
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1beta1");
    // kubewarden's bare request wrapped in a review: nginx, never scanned.
    let request: Value = serde_json::from_str(KUBEWARDEN).unwrap();
    let (_, v) = call!(
        &app,
        review(
            "/api/v1/admission/prod",
            &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
        )
    );
    assert_eq!(
        (
            v["response"]["uid"].as_str(),
            v["response"]["allowed"].as_bool()
        ),
        (Some("1299d386-525b-4032-98ae-1949f69f9cfc"), Some(false))
    );
    // Every workload kind with a pod template is checked.
    for (kind, object) in [
        (
            "StatefulSet",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "nope/x:1"}]}}}}),
        ),
        (
            "DaemonSet",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "nope/x:1"}]}}}}),
        ),
        (
            "ReplicaSet",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "nope/x:1"}]}}}}),
        ),
        (
            "Job",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "nope/x:1"}]}}}}),
        ),
        (
            "CronJob",
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "nope/x:1"}]}}}}}}),
        ),
    ] {
        let body = json!({"apiVersion": "admission.k8s.io/v1", "request": {"uid": kind, "kind": {"kind": kind}, "namespace": "x", "operation": "CREATE", "object": object}});
        let (_, v) = call!(&app, review("/api/v1/admission/prod", &body));
        assert_eq!(v["response"]["allowed"], false, "{kind}: {v}");
    }
    // Things there is nothing to check in: allowed.
    for body in [
        json!({"request": {"uid": "cm", "kind": {"kind": "ConfigMap"}, "operation": "CREATE", "object": {"data": {}}}}),
        json!({"request": {"uid": "del", "kind": {"kind": "Pod"}, "operation": "DELETE", "object": null}}),
        json!({"request": {"uid": "noobj", "kind": {"kind": "Pod"}, "operation": "CREATE"}}),
    ] {
        let (st, v) = call!(&app, review("/api/v1/admission/prod", &body));
        assert_eq!(
            (st, v["response"]["allowed"].clone()),
            (200, json!(true)),
            "{body}"
        );
    }
    // Reviews that cannot be answered, and unknown clusters.
    for (path, body, status) in [
        ("/api/v1/admission/prod", "not json".to_string(), 400),
        (
            "/api/v1/admission/prod",
            json!({"request": {"kind": {"kind": "Pod"}}}).to_string(),
            400,
        ),
        (
            "/api/v1/admission/prod",
            json!({"apiVersion": "v1", "request": {"uid": "x"}}).to_string(),
            400,
        ),
        (
            "/api/v1/admission/nowhere",
            pod("u", "x", &["alpine"], &[]).to_string(),
            404,
        ),
    ] {
        let (st, v) = call!(
            &app,
            TestRequest::post()
                .uri(path)
                .insert_header(("content-type", "application/json"))
                .set_payload(body)
        );
        assert_eq!(st, status, "{v}");
        assert!(v["error"]["message"].is_string());
    }
    // References of every legal shape parse; illegal ones are named.
    let (_, v) = call!(&app, review("/api/v1/admission/prod", &pod("shapes", "x", &["localhost:5000/a/b:1", "quay.io/x/y@sha256:0000000000000000000000000000000000000000000000000000000000000000", "Not A Ref"], &[])));
    let msg = v["response"]["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("'Not A Ref' is not an image reference"),
        "{msg}"
    );
}

#[actix_web::test]
async fn webhook_config_for_a_running_appliance() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = crate::support::Server::start(&data).await;
    let c = server.admin_client().await;
    let r = c
        .post(format!("{}/api/v1/clusters", server.base))
        .json(&json!({"name": "prod", "failure_mode": "fail-closed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .env_remove("BULWARK_CONFIG")
            .output()
            .unwrap()
    };
    // While the appliance runs (read-only access to its database).
    let out = run(&[
        "webhook-config",
        "--cluster",
        "prod",
        "--url",
        "https://bulwark.example:8443",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(yaml["kind"], "ValidatingWebhookConfiguration");
    let hook = &yaml["webhooks"][0];
    assert_eq!(
        hook["clientConfig"]["url"],
        "https://bulwark.example:8443/api/v1/admission/prod"
    );
    let ca = base64::engine::general_purpose::STANDARD
        .decode(hook["clientConfig"]["caBundle"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        ca,
        std::fs::read(data.join("tls/ca.pem")).unwrap(),
        "caBundle is the appliance's CA"
    );
    let resources: Vec<String> = hook["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["resources"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
        })
        .collect();
    for want in [
        "pods",
        "deployments",
        "statefulsets",
        "daemonsets",
        "replicasets",
        "jobs",
        "cronjobs",
    ] {
        assert!(
            resources.iter().any(|r| r == want),
            "{want} missing: {resources:?}"
        );
    }
    assert!(
        !resources.iter().any(|r| r.contains('/')),
        "no subresource rules such as pods/*"
    );
    assert_eq!(hook["failurePolicy"], "Fail", "the cluster is fail-closed");
    assert_eq!(hook["timeoutSeconds"], 5);
    assert_eq!(hook["sideEffects"], "None");
    assert_eq!(
        hook["namespaceSelector"]["matchExpressions"][0]["values"][0],
        "kube-system"
    );
    // Unknown clusters and bad URLs are refused.
    let out = run(&[
        "webhook-config",
        "--cluster",
        "nowhere",
        "--url",
        "https://x",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cluster 'nowhere' not found"));
    let out = run(&[
        "webhook-config",
        "--cluster",
        "prod",
        "--url",
        "http://plain",
    ]);
    assert!(!out.status.success());

    // With a webhook token, only callers that know it get an answer, and the generated
    // configuration carries it.
    let id = c
        .get(format!("{}/api/v1/clusters", server.base))
        .json_body::<Value>()
        .await["items"][0]["id"]
        .as_u64()
        .unwrap();
    let r = c
        .post(format!(
            "{}/api/v1/clusters/{id}/webhook-token",
            server.base
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let out = run(&[
        "webhook-config",
        "--cluster",
        "prod",
        "--url",
        "https://bulwark.example:8443",
    ]);
    assert!(out.status.success());
    let yaml: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(
        yaml["webhooks"][0]["clientConfig"]["url"],
        format!("https://bulwark.example:8443/api/v1/admission/prod/{token}").as_str()
    );
    let anyone = crate::support::client();
    let send = |path: String| {
        let anyone = anyone.clone();
        async move {
            let r = anyone
                .post(path)
                .json(&pod("u-t", "shop", &["nginx:1"], &[]))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    let base = &server.base;
    assert_eq!(send(format!("{base}/api/v1/admission/prod")).await, 403);
    assert_eq!(
        send(format!("{base}/api/v1/admission/prod/wrong")).await,
        403
    );
    assert_eq!(
        send(format!("{base}/api/v1/admission/prod/{token}")).await,
        200
    );
    assert_eq!(
        send(format!("{base}/api/clusters/prod/validation/{token}")).await,
        200,
        "the m9sweeper path takes the token too"
    );
    assert_eq!(
        send(format!("{base}/api/clusters/prod/validation")).await,
        403
    );
    let r = c
        .delete(format!(
            "{}/api/v1/clusters/{id}/webhook-token",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(send(format!("{base}/api/v1/admission/prod")).await, 200);
    assert_eq!(
        send(format!("{base}/api/v1/admission/prod/{token}")).await,
        403,
        "a token the cluster no longer has is refused"
    );
}
