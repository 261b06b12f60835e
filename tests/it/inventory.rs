//! The pod inventory and workload attribution in the data map: a `kubectl get pods -A -o json`
//! upload names the workloads behind pod IPs, the pods of one Deployment make one flow, unknown
//! addresses stay addresses, and bad uploads are refused without touching what was stored.

use actix_web::test::TestRequest;
use bulwark::http::{Role, Scope};
use serde_json::{json, Value};

use crate::support::{call, Caller, InProcess};

/// A pod as `kubectl get pods -o json` prints it (trimmed to the fields that matter plus a few
/// that do not, to show they are skipped).
fn pod(ns: &str, name: &str, owner: Option<(&str, &str)>, hash: Option<&str>, ip: &str) -> Value {
    let mut labels = json!({"app": name});
    if let Some(h) = hash {
        labels["pod-template-hash"] = json!(h);
    }
    let owners: Vec<Value> = owner
        .map(|(kind, n)| {
            json!({"apiVersion": "apps/v1", "kind": kind, "name": n, "uid": "0b6e", "controller": true, "blockOwnerDeletion": true})
        })
        .into_iter()
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": "5f1c", "labels": labels,
                     "ownerReferences": owners, "creationTimestamp": "2026-11-20T10:00:00Z"},
        "spec": {"containers": [{"name": "main", "image": "registry.local/app:1",
                                 "ports": [{"containerPort": 8080, "protocol": "TCP"}]}],
                 "nodeName": "node-1", "serviceAccountName": "default"},
        "status": {"phase": "Running", "hostIP": "192.168.1.10", "podIP": ip,
                   "podIPs": [{"ip": ip}], "containerStatuses": []}
    })
}

/// `PUT` of a pod list with a key.
fn put_pods(uri: &str, key: &str, list: &Value) -> TestRequest {
    Caller::bearer(key).put(uri, list.clone())
}

fn event(source: &str, destination: &str, exchanges: u64) -> Value {
    json!({"source": source, "destination": destination, "method": "POST",
           "endpoint": "/v1/charges", "direction": "request", "host": "payments",
           "data_types": ["pci.pan"], "counts": {"pci.pan": exchanges}, "sensitivity": "High",
           "samples": {"pci.pan": "1111111111111111"}, "exchanges": exchanges,
           "first_seen": 1_790_000_000.0, "last_seen": 1_790_000_060.0})
}

#[actix_web::test]
async fn pod_inventory_names_workloads_in_the_data_map() {
    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    let writer = t.key(admin, &[Scope::Admin]);
    let reader = t.key(admin, &[Scope::Read]);
    let sensor = t.key(admin, &[Scope::Sensor]);
    let app = t.service().await;
    let auth = |k: &str| ("authorization", format!("Bearer {k}"));
    let (s, c, _) = call(
        &app,
        Caller::bearer(&writer).post("/api/v1/clusters", json!({"name": "prod"})),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_u64().unwrap();
    let pods_uri = format!("/api/v1/clusters/{id}/pods");

    let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": [
        pod("shop", "checkout-6f7d8b9c4-abcde", Some(("ReplicaSet", "checkout-6f7d8b9c4")), Some("6f7d8b9c4"), "10.244.1.5"),
        pod("shop", "checkout-6f7d8b9c4-fghij", Some(("ReplicaSet", "checkout-6f7d8b9c4")), Some("6f7d8b9c4"), "10.244.1.6"),
        pod("payments", "gateway-0", Some(("StatefulSet", "gateway")), None, "10.244.2.7"),
    ]});
    // Bad uploads are refused and change nothing.
    for (body, want) in [
        ("{not json".to_string(), 400),
        (json!({"kind": "Deployment", "items": []}).to_string(), 400),
        (json!({"items": "many"}).to_string(), 400),
    ] {
        let (s, v, _) = call(
            &app,
            TestRequest::put()
                .uri(&pods_uri)
                .insert_header(auth(&writer))
                .insert_header(("content-type", "application/json"))
                .set_payload(body),
        )
        .await;
        assert_eq!(s, want, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("items")
                || v["error"]["message"].as_str().unwrap().contains("List"),
            "{v}"
        );
    }
    let (s, _, _) = call(&app, put_pods("/api/v1/clusters/999/pods", &writer, &list)).await;
    assert_eq!(s, 404);
    let (s, _, _) = call(&app, put_pods(&pods_uri, &reader, &list)).await;
    assert_eq!(s, 403, "a read key cannot replace the inventory");

    let (s, r, _) = call(&app, put_pods(&pods_uri, &writer, &list)).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["recorded"].as_u64(), r["workloads"].as_u64()),
        (Some(3), Some(2))
    );
    let (_, pods, _) = call(&app, Caller::bearer(&reader).get(&pods_uri)).await;
    let labels: Vec<String> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {}/{}/{}",
                p["ip"].as_str().unwrap(),
                p["namespace"].as_str().unwrap(),
                p["kind"].as_str().unwrap(),
                p["workload"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        labels,
        [
            "10.244.2.7 payments/StatefulSet/gateway",
            "10.244.1.5 shop/Deployment/checkout",
            "10.244.1.6 shop/Deployment/checkout"
        ]
    );

    // Both checkout pods call the gateway: one flow between the workloads; a call to an address
    // outside the inventory keeps the address.
    let events = json!([
        event("10.244.1.5", "10.244.2.7", 3),
        event("10.244.1.6", "10.244.2.7", 4),
        event("10.244.1.6", "203.0.113.9", 1),
    ]);
    let (s, v, _) = call(
        &app,
        Caller::bearer(&sensor).post("/api/v1/sensor/events", events.clone()),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, flows, _) = call(&app, Caller::bearer(&reader).get("/api/v1/datamap")).await;
    let mut got: Vec<(String, String, u64)> = flows["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["source"].as_str().unwrap().to_string(),
                f["destination"].as_str().unwrap().to_string(),
                f["exchanges"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "shop/Deployment/checkout".to_string(),
                "203.0.113.9".to_string(),
                1
            ),
            (
                "shop/Deployment/checkout".into(),
                "payments/StatefulSet/gateway".into(),
                7
            ),
        ]
    );

    // A new upload replaces the old one: the gateway pod is gone, so its address is just an
    // address again; deleting the cluster forgets the rest.
    let list = json!({"kind": "PodList", "items": [
        pod("shop", "checkout-6f7d8b9c4-abcde", Some(("ReplicaSet", "checkout-6f7d8b9c4")), Some("6f7d8b9c4"), "10.244.1.5"),
    ]});
    let (s, _, _) = call(&app, put_pods(&pods_uri, &writer, &list)).await;
    assert_eq!(s, 200);
    let (s, _, _) = call(
        &app,
        Caller::bearer(&writer).delete(&format!("/api/v1/clusters/{id}")),
    )
    .await;
    assert!(s == 200 || s == 204, "{s}");
    let (_, pods, _) = call(&app, Caller::bearer(&reader).get(&pods_uri)).await;
    assert_eq!(pods["error"]["code"], "not_found", "{pods}");
    let (s, _, _) = call(
        &app,
        Caller::bearer(&sensor).post(
            "/api/v1/sensor/events",
            json!([event("10.244.1.5", "10.244.2.7", 1)]),
        ),
    )
    .await;
    assert_eq!(s, 200);
    let (_, flows, _) = call(&app, Caller::bearer(&reader).get("/api/v1/datamap")).await;
    assert!(
        flows.to_string().contains("\"source\":\"10.244.1.5\""),
        "{flows}"
    );
}
