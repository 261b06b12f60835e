//! The dashboard's posture against a seeded store: per-cluster compliant / non-compliant /
//! unscanned counts, critical and high findings split by fix, the worst images, the exception
//! requests waiting, and trend charts drawn from the daily snapshots.

use bulwark::http::{Role, Scope};
use serde_json::{json, Value};

use crate::support::{call, Caller, InProcess};

const DEBIAN: &[u8] = include_bytes!("../fixtures/trivy/debian-buster.trivy.json");
const ALPINE: &[u8] = include_bytes!("../fixtures/trivy/alpine-310.trivy.json");

fn running(image: &str, ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p-{ip}"), "namespace": "shop", "uid": ip},
        "spec": {"containers": [{"name": "main", "image": image}]},
        "status": {"phase": "Running", "podIP": ip, "containerStatuses": []}})
}

#[actix_web::test]
async fn the_dashboard_shows_posture_per_cluster_and_its_trends() {
    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    t.user("viewer@example.com", Role::ReadOnly);
    let key = t.key(admin, &[Scope::Admin, Scope::Scanner]);
    let (admin_s, _) = t.session("admin@example.com");
    let (viewer_s, _) = t.session("viewer@example.com");
    let app = t.service().await;
    let k = Caller::key(&key);
    let mut ids = Vec::new();
    for name in ["prod", "staging"] {
        let (s, c, _) = call(&app, k.post("/api/v1/clusters", json!({"name": name}))).await;
        assert_eq!(s, 201, "{c}");
        ids.push(c["id"].as_u64().unwrap());
    }
    // prod: one non-compliant image (fixable criticals and highs), one compliant (mediums).
    // staging: the compliant one, and one it runs that was never scanned.
    for (cluster, image, report) in [
        ("prod", "registry.local/team/api:1.0", DEBIAN),
        ("prod", "alpine:3.10", ALPINE),
        ("staging", "alpine:3.10", ALPINE),
    ] {
        let (s, v, _) = call(
            &app,
            k.post_bytes(
                &format!("/api/v1/scans?cluster={cluster}&image={image}"),
                report.to_vec(),
            ),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
    let pods = json!({"apiVersion": "v1", "kind": "List", "items": [
        running("registry.local/team/never-scanned:2", "10.244.0.9"),
    ]});
    let (s, v, _) = call(
        &app,
        k.put(&format!("/api/v1/clusters/{}/pods", ids[1]), pods),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // A read-only user asks for an exception: it waits for an admin.
    let (s, e, _) = call(
        &app,
        Caller::session(&viewer_s).post(
            "/api/v1/exceptions",
            json!({"title": "accepted", "issue_id": "CVE-2019-18224", "image_match": "registry.local/team/api"}),
        ),
    )
    .await;
    assert_eq!((s, e["status"].as_str()), (201, Some("in-review")), "{e}");

    // Three days ago the appliance took a snapshot of a worse day.
    let mut before = bulwark::posture::compute(
        t.store(),
        &t.app
            .state
            .domains
            .get::<bulwark::admission::Admission>()
            .unwrap(),
        &t._dir.path().join("data/vulndb.redb"),
    )
    .unwrap();
    before.at -= chrono::Duration::days(3);
    before.clusters[0].compliant = 0;
    before.clusters[0].non_compliant = 2;
    bulwark::posture::save(t.store(), &before).unwrap();

    let (s, v, _) = call(
        &app,
        Caller::session(&viewer_s).post_bytes("/posture/refresh", vec![]),
    )
    .await;
    assert_eq!(s, 403, "readers cannot take snapshots: {v}");
    let (s, v, _) = call(&app, k.get("/api/v1/posture?days=30")).await;
    assert_eq!(s, 200, "{v}");
    let latest = &v["latest"];
    let prod = &latest["clusters"][0];
    let staging = &latest["clusters"][1];
    assert_eq!(
        (
            prod["name"].as_str(),
            prod["compliant"].as_u64(),
            prod["non_compliant"].as_u64(),
            prod["unscanned"].as_u64()
        ),
        (Some("prod"), Some(1), Some(1), Some(0)),
        "{latest}"
    );
    assert_eq!(
        (
            staging["compliant"].as_u64(),
            staging["non_compliant"].as_u64(),
            staging["unscanned"].as_u64()
        ),
        (Some(1), Some(0), Some(1)),
        "{latest}"
    );
    assert!(prod["critical_fixable"].as_u64().unwrap() > 0, "{prod}");
    assert_eq!(
        latest["worst"][0]["name"], "registry.local/team/api",
        "{latest}"
    );
    assert_eq!(latest["worst"][0]["clusters"], json!(["prod"]));
    assert_eq!(v["exception_requests_waiting"], 1);
    assert_eq!(
        v["history"].as_array().unwrap().len(),
        2,
        "a day's snapshot and today's"
    );
    assert_eq!(v["totals"]["compliant"], 2);

    // The page: the same figures, the per-cluster table and two charts with today's points.
    let (s, html, _) = call(&app, Caller::session(&admin_s).get("/")).await;
    assert_eq!(s, 200);
    let html = html.as_str().unwrap();
    assert!(
        html.contains("67%") && html.contains("of scanned images compliant (2 of 3)"),
        "{html}"
    );
    assert!(html.contains("<a href=\"/clusters/1\">prod</a>"), "{html}");
    assert!(
        html.contains("exception requests waiting for your review"),
        "{html}"
    );
    assert!(
        html.contains("<span class=\"badge\" title=\"1 exception requests waiting for review\">1"),
        "admins see a badge on Exceptions: {html}"
    );
    let (_, viewer_html, _) = call(&app, Caller::session(&viewer_s).get("/")).await;
    assert!(
        !viewer_html.as_str().unwrap().contains("class=\"badge\""),
        "readers, who cannot approve, see none"
    );
    assert!(
        html.contains("href=\"/images/1\">registry.local/team/api</a>"),
        "{html}"
    );
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 2, "{html}");
    assert!(
        html.contains("prod: 50% on"),
        "today's point for prod: {html}"
    );
    assert!(html.contains("prod: 0% on"), "and three days ago: {html}");
    assert!(html.contains("vulnerability database updated"), "{html}");
}
