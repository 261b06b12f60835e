//! The workload inventory: a sync lists namespaces, Deployments, ReplicaSets, StatefulSets,
//! DaemonSets, Jobs and CronJobs beside the pods (from the in-test API server of
//! `kube_sync.rs`), resolves each pod's workload through its owners, and judges every pod as
//! admission would: a pod is compliant when every image is compliant in its namespace. An
//! exception changes the verdicts at once; the pages go cluster → namespaces → pods → images;
//! the `pod-compliance` job keeps the daily history; a collection the reader role does not grant
//! is named, not fatal.

use bulwark::http::{Role, Scope};
use serde_json::{json, Value};

use crate::kube_sync::{api_server, kubeconfig, DB_DIGEST};
use crate::support::{call, finished_run, Caller, InProcess};

fn object(ns: Option<&str>, name: &str, owner: Option<(&str, &str)>, extra: Value) -> Value {
    let mut o = json!({"metadata": {"name": name, "creationTimestamp": "2026-11-30T08:00:00Z"}});
    if let Some(ns) = ns {
        o["metadata"]["namespace"] = json!(ns);
    }
    if let Some((kind, n)) = owner {
        o["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": kind, "name": n, "uid": "u", "controller": true}]);
    }
    if let (Some(o), Some(extra)) = (o.as_object_mut(), extra.as_object()) {
        o.extend(extra.clone());
    }
    o
}

fn cluster_objects() -> Vec<(&'static str, Option<Vec<Value>>)> {
    let template = |image: &str| json!({"template": {"spec": {"containers": [{"name": "c", "image": image}]}}});
    vec![
        (
            "/api/v1/namespaces",
            Some(
                ["default", "shop", "kube-system", "batch", "empty"]
                    .iter()
                    .map(|n| object(None, n, None, json!({})))
                    .collect(),
            ),
        ),
        (
            "/apis/apps/v1/deployments",
            Some(vec![object(
                Some("shop"),
                "checkout",
                None,
                json!({"spec": {"replicas": 3, "template": template("gcr.io/kuar-demo/kuard-amd64:1")["template"]},
                       "status": {"readyReplicas": 3}}),
            )]),
        ),
        (
            "/apis/apps/v1/replicasets",
            Some(vec![object(
                Some("shop"),
                "checkout-7d4b9c",
                Some(("Deployment", "checkout")),
                json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 3}}),
            )]),
        ),
        (
            "/apis/apps/v1/statefulsets",
            Some(vec![object(
                Some("shop"),
                "db",
                None,
                json!({"spec": {"replicas": 2}, "status": {"readyReplicas": 2}}),
            )]),
        ),
        (
            "/apis/apps/v1/daemonsets",
            Some(vec![object(
                Some("kube-system"),
                "kube-proxy",
                None,
                json!({"status": {"desiredNumberScheduled": 1, "numberReady": 1}}),
            )]),
        ),
        (
            "/apis/batch/v1/jobs",
            Some(vec![object(
                Some("batch"),
                "report-28190",
                Some(("CronJob", "report")),
                json!({"spec": {"completions": 1}, "status": {"succeeded": 1}}),
            )]),
        ),
        (
            "/apis/batch/v1/cronjobs",
            Some(vec![object(
                Some("batch"),
                "report",
                None,
                json!({"spec": {"schedule": "10 * * * *"}}),
            )]),
        ),
    ]
}

fn figures(v: &Value) -> (u64, u64, u64) {
    (
        v["compliant"].as_u64().unwrap(),
        v["non_compliant"].as_u64().unwrap(),
        v["finished"].as_u64().unwrap(),
    )
}

#[actix_web::test]
async fn the_inventory_judges_every_pod_in_its_namespace() {
    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    let writer = t.key(admin, &[Scope::Admin]);
    let reader = t.key(admin, &[Scope::Read]);
    let scraper = t.key(admin, &[Scope::Metrics]);
    let (session, _) = t.session("admin@example.com");
    let app = t.service().await;
    let (server, ca, api, _handle) = api_server();
    {
        let mut st = api.lock().unwrap();
        for (path, items) in cluster_objects() {
            st.objects.insert(path.to_string(), items);
        }
    }
    let (s, c, _) = call(
        &app,
        Caller::bearer(&writer).post("/api/v1/clusters", json!({"name": "minikube"})),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_u64().unwrap();
    let base = format!("/api/v1/clusters/{id}");

    // Before any sync: an empty inventory, not an error.
    let (s, v, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/inventory")),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["summary"].is_null() && v["namespaces"] == json!([]),
        "{v}"
    );

    let (s, v, _) = call(
        &app,
        Caller::bearer(&writer).put(
            &format!("{base}/kubernetes"),
            json!({"kubeconfig": kubeconfig(&server, &ca, "reader-token-1")}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, r, _) = call(
        &app,
        Caller::bearer(&writer).post(&format!("{base}/kubernetes/sync"), json!({})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["namespaces"].as_u64(), r["inventory_pods"].as_u64()),
        (Some(5), Some(8)),
        "{r}"
    );
    assert!(r.get("missing").is_none(), "{r}");

    // Namespaces and workloads are searchable.
    let (_, hits, _) = call(
        &app,
        Caller::bearer(&reader).get("/api/v1/search?q=checkout&kind=workload"),
    )
    .await;
    assert!(
        hits.to_string()
            .contains("shop/Deployment/checkout in minikube"),
        "{hits}"
    );

    // Every running pod runs an unscanned image: non-compliant under the default policy.
    let (_, v, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/inventory")),
    )
    .await;
    assert_eq!(v["summary"]["source"], "api", "{v}");
    assert_eq!(v["summary"]["workloads"], 7, "{v}");
    assert_eq!(figures(&v["totals"]), (0, 7, 1), "{v}");
    let line = |v: &Value, ns: &str| {
        v["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == ns)
            .unwrap_or_else(|| panic!("{ns} in {v}"))
            .clone()
    };
    assert_eq!(figures(&line(&v, "shop")), (0, 5, 0));
    assert_eq!(figures(&line(&v, "batch")), (0, 0, 1));
    assert_eq!(line(&v, "empty")["pods"], 0);
    let (_, text, _) = call(&app, Caller::bearer(&scraper).get("/metrics")).await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("bulwark_pods{cluster=\"minikube\",compliance=\"non-compliant\"} 7"),
        "{text}"
    );

    // Pods belong to their controllers' controllers.
    let (s, ns, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/namespaces/shop")),
    )
    .await;
    assert_eq!(s, 200, "{ns}");
    let pod = |ns: &Value, name: &str| {
        ns["pods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {ns}"))
            .clone()
    };
    let checkout = pod(&ns, "checkout-7d4b9c-aaaaa");
    assert_eq!(
        (
            checkout["workload_kind"].as_str(),
            checkout["workload"].as_str()
        ),
        (Some("Deployment"), Some("checkout"))
    );
    assert_eq!(checkout["compliant"], false);
    assert!(
        checkout["reasons"][0]
            .as_str()
            .unwrap()
            .contains("not been scanned"),
        "{checkout}"
    );
    let deployment = ns["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["kind"] == "Deployment")
        .unwrap()
        .clone();
    assert_eq!(
        (
            deployment["pods"].as_u64(),
            deployment["desired"].as_u64(),
            deployment["ready"].as_u64()
        ),
        (Some(3), Some(3), Some(3)),
        "{deployment}"
    );
    let (_, batch, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/namespaces/batch")),
    )
    .await;
    let report = pod(&batch, "report-28190-abcde");
    assert_eq!(
        format!("{}/{}", report["workload_kind"], report["workload"]),
        "\"CronJob\"/\"report\""
    );
    assert!(report["compliant"].is_null(), "finished: {report}");

    // One pod: its images, judged by the digest the kubelet pulled.
    let (s, p, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/namespaces/shop/pods/db-0")),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        p["images"][0]["judged_as"],
        format!("registry.local/shop/db@{DB_DIGEST}")
    );
    assert_eq!(p["images"][0]["unscanned"], true, "{p}");

    // An exception for the database image in `shop` makes its pods compliant at once.
    let (s, e, _) = call(
        &app,
        Caller::session(&session).post(
            "/api/v1/exceptions",
            json!({"title": "db is vetted", "type": "policy", "status": "active", "issue_id": "",
                   "namespaces": ["shop"], "image_match": "registry.local/shop/db"}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{e}");
    let (_, v, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/inventory")),
    )
    .await;
    assert_eq!(figures(&line(&v, "shop")), (2, 3, 0), "{v}");
    let (_, p, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/namespaces/shop/pods/db-1")),
    )
    .await;
    assert_eq!(p["compliant"], true, "{p}");

    // Workloads by kind; unknown namespaces and pods are 404s.
    let (_, w, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/workloads?kind=cronjob")),
    )
    .await;
    assert_eq!(w["items"].as_array().unwrap().len(), 1, "{w}");
    assert_eq!(w["items"][0]["schedule"], "10 * * * *");
    let (s, text, h) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/workloads?kind=cronjob&format=csv")),
    )
    .await;
    assert_eq!(s, 200);
    assert!(h
        .get("content-disposition")
        .unwrap()
        .to_str()
        .unwrap()
        .ends_with("workloads-minikube.csv\""));
    let text = text.as_str().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "namespace,kind,name,desired,ready,pods,images,kubesec_score,kubesec_critical"
    );
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[1].starts_with("batch,CronJob,"), "{text}");

    // KubeSec of each workload's pod template, and of pods without a controller.
    let (_, w, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/workloads?namespace=kube-system")),
    )
    .await;
    assert!(w["items"][0]["kubesec"]["score"].is_i64(), "{w}");
    let (s, k, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!(
            "{base}/namespaces/shop/kubesec/Deployment/checkout"
        )),
    )
    .await;
    assert_eq!(s, 200, "{k}");
    assert_eq!(k[0]["object"], "Deployment/checkout.shop");
    assert!(
        k[0]["message"].as_str().unwrap().contains("score of"),
        "{k}"
    );
    let (s, k, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/namespaces/default/kubesec/Pod/debug")),
    )
    .await;
    assert_eq!(s, 200, "{k}");
    assert!(
        k[0]["scoring"]["advise"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{k}"
    );
    let (s, _, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/namespaces/shop/kubesec/Deployment/nope")),
    )
    .await;
    assert_eq!(s, 404);
    for uri in [
        format!("{base}/namespaces/nope"),
        format!("{base}/namespaces/shop/pods/nope"),
        "/api/v1/clusters/999/inventory".to_string(),
    ] {
        let (s, _, _) = call(&app, Caller::bearer(&reader).get(&uri)).await;
        assert_eq!(s, 404, "{uri}");
    }

    // The pages: cluster → namespaces → pods → images.
    let page = |uri: String| {
        let app = &app;
        let session = session.clone();
        async move {
            let (s, body, _) = call(app, Caller::session(&session).get(&uri)).await;
            assert_eq!(s, 200, "{uri}: {body}");
            body.as_str().unwrap().to_string()
        }
    };
    let html = page(format!("/clusters/{id}/namespaces")).await;
    assert!(
        html.contains("<svg") && html.contains("id=\"namespaces\""),
        "{html}"
    );
    assert!(
        html.contains(&format!("/clusters/{id}/namespaces/shop")),
        "{html}"
    );
    let html = page(format!("/clusters/{id}/namespaces/shop")).await;
    assert!(html.contains("checkout-7d4b9c-aaaaa") && html.contains("non-compliant"));
    assert!(html.contains("Deployment/checkout"), "{html}");
    assert!(html.contains("/kubesec/Deployment/checkout"), "{html}");
    let html = page(format!(
        "/clusters/{id}/namespaces/shop/kubesec/Deployment/checkout"
    ))
    .await;
    assert!(html.contains("id=\"kubesec-score\""), "{html}");
    let html = page(format!("/clusters/{id}/namespaces/shop/pods/db-0")).await;
    assert!(html.contains("id=\"verdict\">Compliant"), "{html}");
    assert!(html.contains(DB_DIGEST), "{html}");

    // The daily history, recorded by the job (and by the first look of the day).
    let (s, _, _) = call(
        &app,
        Caller::bearer(&writer).post("/api/v1/jobs/pod-compliance/run", json!({})),
    )
    .await;
    assert_eq!(s, 202);
    let run = finished_run(
        &app,
        || Caller::bearer(&reader).get("/api/v1/jobs/pod-compliance"),
        None,
    )
    .await;
    assert_eq!(run["ok"], true, "{run}");
    let (_, h, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/pod-compliance?days=30")),
    )
    .await;
    let items = h["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "one record per day: {h}");
    assert_eq!(figures(&items[0]["namespaces"]["shop"]), (2, 3, 0), "{h}");
    let (s, _, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/pod-compliance?days=0")),
    )
    .await;
    assert_eq!(s, 400);

    // A collection the reader role does not grant is named; the rest is recorded.
    api.lock()
        .unwrap()
        .objects
        .insert("/apis/batch/v1/cronjobs".into(), None);
    let (s, r, _) = call(
        &app,
        Caller::bearer(&writer).post(&format!("{base}/kubernetes/sync"), json!({})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert!(
        r["missing"][0].as_str().unwrap().starts_with("cronjobs:")
            && r["missing"][0].as_str().unwrap().contains("403"),
        "{r}"
    );
    let (_, v, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/inventory")),
    )
    .await;
    assert_eq!(v["summary"]["missing"].as_array().unwrap().len(), 1, "{v}");
    let html = page(format!("/clusters/{id}/namespaces")).await;
    assert!(html.contains("Not listed"), "{html}");

    // Deleting the cluster deletes its inventory.
    let (s, _, _) = call(&app, Caller::bearer(&writer).delete(&base)).await;
    assert!(s == 200 || s == 204, "{s}");
    let (s, _, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/inventory")),
    )
    .await;
    assert_eq!(s, 404);
}
