//! Image compliance through the API: Trivy ingest and its verdict, exceptions that mean what
//! they say (requested by read-only users, approved by admins), temporary exceptions, and the bad
//! reports ingest must survive.

use actix_web::test::{self, TestRequest};
use bulwark::http::{Role, Scope};
use serde_json::{json, Value};

use crate::support::{Caller, InProcess};

const DEBIAN: &[u8] = include_bytes!("../fixtures/trivy/debian-buster.trivy.json");
const ALPINE: &[u8] = include_bytes!("../fixtures/trivy/alpine-310.trivy.json");

fn cookie(token: &str) -> actix_web::cookie::Cookie<'static> {
    actix_web::cookie::Cookie::new("bulwark_session", token.to_string())
}

macro_rules! page {
    ($app:expr, $req:expr) => {{
        let res = test::call_service($app, $req.to_request()).await;
        let status = res.status().as_u16();
        (
            status,
            String::from_utf8(test::read_body(res).await.to_vec()).unwrap(),
        )
    }};
}

macro_rules! call {
    ($app:expr, $req:expr) => {{
        let res = test::call_service(
            $app,
            $req.peer_addr("10.0.0.9:1234".parse().unwrap())
                .to_request(),
        )
        .await;
        let status = res.status().as_u16();
        let body = test::read_body(res).await;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, v)
    }};
}

fn upload(key: &str, cluster: &str, image: &str, body: &'static [u8]) -> TestRequest {
    Caller::key(key).post_bytes(
        &format!("/api/v1/scans?cluster={cluster}&image={image}"),
        body.to_vec(),
    )
}

#[actix_web::test]
async fn ingest_verdicts_and_exceptions() {
    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    t.user("viewer@example.com", Role::ReadOnly);
    let (admin_s, _) = t.session("admin@example.com");
    let (viewer_s, _) = t.session("viewer@example.com");
    let scanner = t.key(admin, &[Scope::Scanner]);
    let app = t.service().await;
    let (s, _) = call!(
        &app,
        Caller::session(&admin_s).post("/api/v1/clusters", json!({"name": "prod"}))
    );
    assert_eq!(s, 201);

    // A fixable critical breaks the default policy.
    let (s, v) = call!(
        &app,
        upload(&scanner, "prod", "registry.local/team/api:1.0", DEBIAN)
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["compliant"], false);
    assert_eq!(v["findings"], 2);
    let reasons = v["reasons"].to_string();
    assert!(
        reasons.contains("1 fixable critical finding from trivy, more than the 0 policy"),
        "{reasons}"
    );
    assert_eq!(v["violations"].as_array().unwrap().len(), 1);
    let image_id = v["image"]["id"].as_u64().unwrap();
    assert!(
        v["image"]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "identified by the report's ImageID"
    );
    let critical = v["violations"][0]["id"].as_str().unwrap().to_string();

    // Search: prefix matching on the CVE id, package names, images.
    let search = |q: &str| {
        TestRequest::get()
            .uri(&format!("/api/v1/search?q={q}"))
            .cookie(cookie(&admin_s))
    };
    let prefix = &critical[..critical.len() - 2];
    let (s, hits) = call!(&app, search(prefix));
    assert_eq!(s, 200);
    let findings: Vec<&Value> = hits["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["kind"] == "finding")
        .collect();
    assert!(findings.len() >= 2, "both CVEs share the prefix: {hits}");
    assert!(
        findings.iter().any(|h| h["id"] == critical.as_str()),
        "hits name the CVE id: {hits}"
    );
    let package = v["violations"][0]["package"].as_str().unwrap().to_string();
    let (_, hits) = call!(&app, search(&package[..package.len().min(4)]));
    assert!(
        hits["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "package" && h["id"].as_str().unwrap().starts_with(&package)),
        "{hits}"
    );
    let (_, hits) = call!(&app, search("registry.local/team"));
    assert!(
        hits["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "image"),
        "{hits}"
    );

    // Mediums only: compliant.
    let (s, v) = call!(&app, upload(&scanner, "prod", "alpine:3.10", ALPINE));
    assert_eq!((s, v["compliant"].clone()), (200, json!(true)), "{v}");

    // A read-only user asks for an exception: it waits for review whatever status was sent.
    let ask = json!({"title": "accepted risk", "type": "policy", "status": "active", "issue_id": critical, "image_match": "registry.local/team/api"});
    let (s, e) = call!(
        &app,
        TestRequest::post()
            .uri("/api/v1/exceptions")
            .cookie(cookie(&viewer_s))
            .set_json(ask.clone())
    );
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["status"], "in-review");
    let eid = e["id"].as_u64().unwrap();
    let verdict = |app_image: u64| {
        TestRequest::get()
            .uri(&format!("/api/v1/images/{app_image}?cluster=prod"))
            .cookie(cookie(&admin_s))
    };
    let (_, v) = call!(&app, verdict(image_id));
    assert_eq!(
        v["verdict"]["compliant"], false,
        "an exception in review excuses nothing"
    );
    // Read-only users cannot approve; admins can.
    let (s, _) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/exceptions/{eid}/approve"))
            .cookie(cookie(&viewer_s))
            .insert_header(("content-type", "application/json"))
    );
    assert_eq!(s, 403);
    let (s, e) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/exceptions/{eid}/approve"))
            .cookie(cookie(&admin_s))
            .insert_header(("content-type", "application/json"))
    );
    assert_eq!((s, e["status"].clone()), (200, json!("active")));
    let (_, v) = call!(&app, verdict(image_id));
    assert_eq!(v["verdict"]["compliant"], true, "approved: {v}");
    assert_eq!(
        v["verdict"]["findings"][0][0]["excepted_by"]
            .as_u64()
            .or(v["verdict"]["findings"][1][0]["excepted_by"].as_u64()),
        Some(eid)
    );
    let (_, hits) = call!(
        &app,
        Caller::session(&admin_s).get("/api/v1/search?q=accepted%20ri&kind=exception")
    );
    assert_eq!(
        hits["items"][0]["id"],
        eid.to_string(),
        "exceptions are searchable: {hits}"
    );
    // Admins edit; the edit keeps the comments and who asked; read-only users may not.
    let edit = json!({"title": "accepted risk (until Q3)", "type": "policy", "status": "active", "issue_id": critical,
        "image_match": "registry.local/team/api", "end_date": "2099-01-01"});
    let (s, _) = call!(
        &app,
        TestRequest::put()
            .uri(&format!("/api/v1/exceptions/{eid}"))
            .cookie(cookie(&viewer_s))
            .set_json(edit.clone())
    );
    assert_eq!(s, 403);
    let (s, e) = call!(
        &app,
        TestRequest::put()
            .uri(&format!("/api/v1/exceptions/{eid}"))
            .cookie(cookie(&admin_s))
            .set_json(edit)
    );
    assert_eq!(s, 200, "{e}");
    assert_eq!(
        (
            e["title"].as_str(),
            e["end_date"].as_str(),
            e["created_by"].as_str()
        ),
        (
            Some("accepted risk (until Q3)"),
            Some("2099-01-01"),
            Some("viewer@example.com")
        )
    );
    // Comments from both.
    let (s, e) = call!(
        &app,
        Caller::session(&viewer_s).post(
            &format!("/api/v1/exceptions/{eid}/comments"),
            json!({"text": "fix is scheduled for Q3"})
        )
    );
    assert_eq!(s, 201);
    assert_eq!(e["comments"][0]["author"], "viewer@example.com");
    // The interface example: fields left out mean all, no end date.
    let (s, e) = call!(&app, Caller::session(&admin_s).post("/api/v1/exceptions", json!({"title": "all of it", "type": "policy", "status": "active", "issue_id": "", "image_match": "registry.local/team/api"})));
    assert_eq!(s, 201, "{e}");
    assert!(
        e["clusters"].is_null()
            && e["policies"].is_null()
            && e["namespaces"].is_null()
            && e["end_date"].is_null()
    );
    // Reject → inactive → no longer applies (the other one still does).
    let (s, _) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/v1/exceptions/{eid}/reject"))
            .cookie(cookie(&admin_s))
            .insert_header(("content-type", "application/json"))
    );
    assert_eq!(s, 200);
    // Bad exceptions.
    for bad in [
        json!({"title": ""}),
        json!({"title": "x", "type": "override"}),
        json!({"title": "x", "image_match": "nginx:1.25"}),
        json!({"title": "x", "namespaces": ["Not_A_Namespace"]}),
        json!({"title": "x", "clusters": ["nope"]}),
        json!({"title": "x", "start_date": "2026-02-01", "end_date": "2026-01-01"}),
        json!({"title": "x", "colour": "red"}),
    ] {
        let (s, v) = call!(
            &app,
            TestRequest::post()
                .uri("/api/v1/exceptions")
                .cookie(cookie(&admin_s))
                .set_json(bad.clone())
        );
        assert_eq!(s, 400, "{bad} → {v}");
    }
    // The audit log saw it all.
    let log = bulwark::audit::list(
        t.store(),
        &bulwark::audit::Filter {
            action: "exception".into(),
            ..Default::default()
        },
    )
    .unwrap()
    .unwrap();
    for action in [
        "exception.request",
        "exception.status",
        "exception.comment",
        "exception.create",
    ] {
        assert!(
            log.iter().any(|e| e.action == action),
            "{action} not audited"
        );
    }
}

#[actix_web::test]
async fn temporary_exceptions_follow_the_grace_period_once() {
    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    let (admin_s, _) = t.session("admin@example.com");
    let scanner = t.key(admin, &[Scope::Scanner]);
    let app = t.service().await;
    call!(
        &app,
        Caller::session(&admin_s).post("/api/v1/clusters", json!({"name": "prod"}))
    );
    let (_, policies) = call!(&app, Caller::session(&admin_s).get("/api/v1/policies"));
    let mut policy = policies["items"][0].clone();
    let id = policy["id"].as_u64().unwrap();
    for k in ["id", "created_at", "updated_at"] {
        policy.as_object_mut().unwrap().remove(k);
    }
    policy["grace_period_days"] = json!(3);
    let (s, v) = call!(
        &app,
        TestRequest::put()
            .uri(&format!("/api/v1/policies/{id}"))
            .cookie(cookie(&admin_s))
            .set_json(policy)
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = call!(
        &app,
        upload(&scanner, "prod", "registry.local/team/api:1.0", DEBIAN)
    );
    assert_eq!(s, 200);
    assert_eq!(
        v["compliant"], true,
        "the grace period excuses the new CVE: {v}"
    );
    let temp = v["temporary_exceptions"].as_array().unwrap().clone();
    assert_eq!(temp.len(), 1);
    let (_, e) = call!(
        &app,
        Caller::session(&admin_s).get(&format!("/api/v1/exceptions/{}", temp[0]))
    );
    assert_eq!(e["temporary"], true);
    let end =
        chrono::NaiveDate::parse_from_str(e["end_date"].as_str().unwrap(), "%Y-%m-%d").unwrap();
    assert_eq!(
        end,
        chrono::Utc::now().date_naive() + chrono::Duration::days(3)
    );
    assert_eq!(e["image_match"], "registry.local/team/api");
    // Same image, cluster, policy and CVE again: no second exception.
    let (_, v) = call!(
        &app,
        upload(&scanner, "prod", "registry.local/team/api:1.0", DEBIAN)
    );
    assert_eq!(v["temporary_exceptions"].as_array().unwrap().len(), 0);
    assert_eq!(v["compliant"], true);
}

#[actix_web::test]
async fn ingest_survives_bad_reports() {
    let t = InProcess::with(|c| c.http.max_scan_bytes = 64 * 1024);
    let admin = t.user("admin@example.com", Role::Admin);
    let (admin_s, _) = t.session("admin@example.com");
    let scanner = t.key(admin, &[Scope::Scanner]);
    let reader = t.key(admin, &[Scope::Read]);
    let app = t.service().await;
    call!(
        &app,
        Caller::session(&admin_s).post("/api/v1/clusters", json!({"name": "prod"}))
    );
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "prod",
            "app:1",
            b"{not json".to_vec(),
            400,
            "not a Trivy JSON report",
        ),
        (
            "prod",
            "app:1",
            br#"{"SchemaVersion":1}"#.to_vec(),
            400,
            "SchemaVersion 1",
        ),
        (
            "prod",
            "app:1",
            br#"{"SchemaVersion":2,"Results":[]}"#.to_vec(),
            400,
            "no digest",
        ),
        (
            "prod",
            "app:1",
            vec![b' '; 70 * 1024],
            413,
            "max_scan_bytes",
        ),
        (
            "nowhere",
            "app:1",
            DEBIAN.to_vec(),
            404,
            "cluster 'nowhere' not found",
        ),
        (
            "prod",
            "Bad%20Image",
            DEBIAN.to_vec(),
            400,
            "not an image reference",
        ),
        ("prod", "", DEBIAN.to_vec(), 400, "?image=REF is required"),
    ];
    for (cluster, image, body, status, needle) in cases {
        let req = TestRequest::post()
            .uri(&format!("/api/v1/scans?cluster={cluster}&image={image}"))
            .insert_header(("x-api-key", scanner.clone()))
            .set_payload(body);
        let (s, v) = call!(&app, req);
        assert_eq!(s, status, "{cluster} {image}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(needle),
            "{needle}: {v}"
        );
    }
    // Unknown severities are kept, not fatal; a digest in the reference is enough.
    let odd = br#"{"SchemaVersion":2,"Results":[{"Target":"t","Vulnerabilities":[{"VulnerabilityID":"X-1","PkgName":"p","InstalledVersion":"1","Severity":"APOCALYPTIC"}]}]}"#;
    let image = format!("registry.local/odd@sha256:{}", "c".repeat(64));
    let req = TestRequest::post()
        .uri(&format!("/api/v1/scans?cluster=prod&image={image}"))
        .insert_header(("x-api-key", scanner.clone()))
        .set_payload(odd.to_vec());
    let (s, v) = call!(&app, req);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["compliant"], true);
    // A read-only key may not upload.
    let (s, _) = call!(&app, upload(&reader, "prod", "app:1", DEBIAN));
    assert_eq!(s, 403);
}

#[actix_web::test]
async fn m9sweeper_trawler_keeps_working() {
    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    let (admin_s, _) = t.session("admin@example.com");
    let key = t.key(admin, &[Scope::Scanner]);
    let app = t.service().await;
    call!(
        &app,
        Caller::session(&admin_s).post("/api/v1/clusters", json!({"name": "default-cluster"}))
    );
    let get = |path: &str| {
        TestRequest::get()
            .uri(path)
            .insert_header(("x-api-key", key.clone()))
    };
    let post = |path: &str, body: Value| {
        TestRequest::post()
            .uri(path)
            .insert_header(("x-api-key", key.clone()))
            .set_json(body)
    };

    // Standalone mode: find the cluster, its policies, the image.
    let (s, v) = call!(&app, get("/api/clusters/by-name/default-cluster"));
    assert_eq!((s, v["success"].clone()), (200, json!(true)), "{v}");
    let cid = v["data"]["id"].as_u64().unwrap();
    assert!(
        v["data"].get("kubeConfig").is_none(),
        "no cluster credentials for the scanner role"
    );
    let (_, v) = call!(
        &app,
        get("/api/docker-registries?url=registry.local&sort-by=id&sort-direction=asc")
    );
    assert_eq!(v["data"]["totalCount"], 1);
    assert_eq!(v["data"]["list"][0]["hostname"], "registry.local");
    assert_eq!(
        v["data"]["list"][0]["password"], "",
        "never a registry password"
    );
    let (_, v) = call!(&app, get(&format!("/api/policies/by-cluster/{cid}")));
    let policy = &v["data"][0];
    assert_eq!(policy["enabled"], true);
    assert_eq!(policy["scanners"][0]["type"], "TRIVY");
    assert_eq!(
        policy["scanners"][0]["vulnerabilitySettings"]["fixableCritical"],
        0
    );
    let policy_id = policy["id"].as_u64().unwrap();
    let (_, v) = call!(
        &app,
        get(&format!(
            "/api/clusters/{cid}/image-by-docker-url?dockerImageUrl=registry.local/app:2"
        ))
    );
    assert_eq!(
        (v["success"].clone(), v["data"].clone()),
        (json!(true), Value::Null),
        "unknown yet"
    );
    let (s, v) = call!(
        &app,
        post(
            &format!("/api/clusters/{cid}/images?skipImageScan=true"),
            json!({"url": "registry.local", "name": "app", "tag": "2", "runningInCluster": true})
        )
    );
    assert_eq!(s, 200, "{v}");
    let image_id = v["data"]["id"].as_u64().unwrap();
    assert_eq!(v["data"]["dockerImageId"], "");

    // Results, one entry per policy, the raw Trivy vulnerability as a JSON string.
    let hash = "d".repeat(64);
    let issue = json!({"scannerId": 1, "scannerName": "Trivy", "name": "libfoo: overflow", "type": "CVE-2024-0001",
        "vulnerabilityDescUrl": "https://avd.aquasec.com/nvd/cve-2024-0001", "severity": "CRITICAL", "description": "bad",
        "isCompliant": true, "isFixable": true, "wasFixed": false,
        "data": "{\"VulnerabilityID\":\"CVE-2024-0001\",\"PkgName\":\"libfoo\",\"InstalledVersion\":\"1.0\",\"FixedVersion\":\"1.1\"}",
        "complianceReason": null});
    let result = json!({"data": [{"summary": "", "criticalIssues": 1, "majorIssues": 0, "mediumIssues": 0, "lowIssues": 0, "negligibleIssues": 0,
        "encounterError": false, "startedAt": 1700000000000u64, "finishedAt": 1700000060000u64, "policyId": policy_id,
        "policyStatus": true, "imageHash": hash, "issues": [issue]}]});
    let (s, v) = call!(
        &app,
        post(
            &format!("/api/clusters/{cid}/images/{image_id}/trawler/scan/results"),
            result
        )
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["data"]["complaint"], false,
        "the server decides, whatever trawler claimed"
    );
    let (_, v) = call!(
        &app,
        get(&format!(
            "/api/clusters/{cid}/image-by-docker-url?dockerImageUrl=registry.local/app:2"
        ))
    );
    assert_eq!(v["data"]["dockerImageId"], hash.as_str());
    let real_id = v["data"]["id"].as_u64().unwrap();
    let (_, img) = call!(
        &app,
        Caller::session(&admin_s).get(&format!("/api/v1/images/{real_id}"))
    );
    let f = &img["scan"]["findings"][0];
    assert_eq!(
        (f["id"].as_str(), f["package"].as_str(), f["fixed"].as_str()),
        (Some("CVE-2024-0001"), Some("libfoo"), Some("1.1"))
    );

    // A failed scan makes the image non-compliant until a scan succeeds.
    let failed = json!({"summary": "registry timeout", "criticalIssues": 0, "majorIssues": 0, "mediumIssues": 0, "lowIssues": 0, "negligibleIssues": 0,
        "encounterError": true, "startedAt": 0, "finishedAt": 0, "policyId": policy_id, "policyStatus": false, "imageHash": hash, "issues": []});
    let (_, v) = call!(
        &app,
        post(
            &format!("/api/clusters/{cid}/images/{real_id}/trawler/scan/results/per-policy"),
            failed
        )
    );
    assert_eq!(v["data"]["complaint"], false);
    let (_, img) = call!(
        &app,
        Caller::session(&admin_s).get(&format!("/api/v1/images/{real_id}"))
    );
    assert_eq!(img["image"]["scan_state"]["state"], "failed");
    assert!(img["verdict"]["reasons"][0]
        .as_str()
        .unwrap()
        .contains("registry timeout"));
    // Without the scanner scope: refused.
    let (s, _) = call!(
        &app,
        Caller::session(&admin_s).get("/api/clusters/by-name/default-cluster")
    );
    assert_eq!(s, 200, "an admin session may use them too");
    let reader = t.key(admin, &[Scope::Read]);
    let (s, _) = call!(
        &app,
        TestRequest::get()
            .uri("/api/clusters/by-name/default-cluster")
            .insert_header(("x-api-key", reader))
    );
    assert_eq!(s, 403);
}

#[actix_web::test]
async fn compliance_pages_work_without_javascript() {
    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    t.user("viewer@example.com", Role::ReadOnly);
    let (admin_s, admin_csrf) = t.session("admin@example.com");
    let (viewer_s, viewer_csrf) = t.session("viewer@example.com");
    let scanner = t.key(admin, &[Scope::Scanner]);
    let app = t.service().await;
    call!(
        &app,
        Caller::session(&admin_s).post("/api/v1/clusters", json!({"name": "prod"}))
    );
    let (_, v) = call!(
        &app,
        upload(&scanner, "prod", "registry.local/team/api:1.0", DEBIAN)
    );
    let image_id = v["image"]["id"].as_u64().unwrap();
    let cve = v["violations"][0]["id"].as_str().unwrap().to_string();
    let html = |token: &str, path: &str| TestRequest::get().uri(path).cookie(cookie(token));
    // Lists and detail.
    let (s, body) = page!(&app, html(&viewer_s, "/images?compliance=non-compliant"));
    assert_eq!(s, 200);
    assert!(
        body.contains("registry.local/team/api") && body.contains("non-compliant"),
        "{body}"
    );
    let (_, body) = page!(&app, html(&viewer_s, "/images?compliance=compliant"));
    assert!(!body.contains("registry.local/team/api"), "filtered out");
    let (s, body) = page!(&app, html(&viewer_s, &format!("/images/{image_id}")));
    assert_eq!(s, 200);
    assert!(
        body.contains(&cve) && body.contains("more than the 0 policy"),
        "findings show their reason"
    );
    assert!(
        body.contains("class=\"muted severity-source\">from "),
        "and where each severity came from"
    );
    for p in ["/policies", "/policies/1", "/exceptions", "/admission"] {
        let (s, body) = page!(&app, html(&viewer_s, p));
        assert_eq!(s, 200, "{p}: {body}");
    }
    // A read-only user requests an exception through the form.
    let form = |token: &str, path: &str, body: String| {
        TestRequest::post()
            .uri(path)
            .cookie(cookie(token))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(body)
    };
    let res = test::call_service(&app, form(&viewer_s, "/exceptions", format!("csrf={viewer_csrf}&title=please&issue_id={cve}&image_match=registry.local%2Fteam%2Fapi")).to_request()).await;
    assert_eq!(res.status(), 303);
    let location = res
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let eid: u64 = location
        .trim_start_matches("/exceptions/")
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (_, body) = page!(&app, html(&viewer_s, &location));
    assert!(
        body.contains("in-review"),
        "the flash says it waits for review: {body}"
    );
    // Read-only users cannot approve; the admin can.
    let approve = |token: &str, csrf: &str| {
        form(
            token,
            &format!("/exceptions/{eid}/status"),
            format!("csrf={csrf}&status=active"),
        )
    };
    assert_eq!(
        test::call_service(&app, approve(&viewer_s, &viewer_csrf).to_request())
            .await
            .status(),
        403
    );
    assert_eq!(
        test::call_service(&app, approve(&admin_s, &admin_csrf).to_request())
            .await
            .status(),
        303
    );
    let (_, body) = page!(&app, html(&viewer_s, &format!("/images/{image_id}")));
    assert!(
        body.contains("excepted by &#34;please&#34;")
            || body.contains("excepted by &quot;please&quot;"),
        "{body}"
    );
    // Comments through the form.
    let res = test::call_service(
        &app,
        form(
            &viewer_s,
            &format!("/exceptions/{eid}/comments"),
            format!("csrf={viewer_csrf}&text=thanks"),
        )
        .to_request(),
    )
    .await;
    assert_eq!(res.status(), 303);
    // A policy edited through the form: a bad number is explained, a good one saved.
    let rule = "rule.0.scanner=trivy&rule.0.stored=1&rule.0.enabled=1&rule.0.required=1";
    let bad = format!("csrf={admin_csrf}&name=strict&active=1&required=1&all_clusters=1&{rule}&rule.0.fixable.critical=lots&grace_period_days=0&rescan_period_days=7");
    let (s, body) = page!(&app, form(&admin_s, "/policies/1", bad));
    assert_eq!(s, 400);
    assert!(
        body.contains("trivy: fixable critical: &#39;lots&#39; is not a whole number"),
        "{body}"
    );
    assert!(
        body.contains("value=\"lots\""),
        "what was typed is shown back"
    );
    // Only the Trivy rule is posted: the stored rule for Bulwark's scanner is kept.
    let good = format!("csrf={admin_csrf}&name=strict&active=1&required=1&all_clusters=1&{rule}&rule.0.fixable.critical=0&rule.0.fixable.high=0&rule.0.unfixable.low=0&grace_period_days=0&rescan_period_days=7");
    assert_eq!(
        test::call_service(&app, form(&admin_s, "/policies/1", good).to_request())
            .await
            .status(),
        303
    );
    let (_, p) = call!(&app, Caller::session(&admin_s).get("/api/v1/policies/1"));
    assert_eq!(p["name"], "strict");
    assert_eq!(p["scanners"][0]["unfixable"]["low"], 0);
    assert!(
        p["scanners"][0]["unfixable"]["critical"].is_null(),
        "empty means no limit"
    );
    assert_eq!(p["scanners"][1]["scanner"], "bulwark", "{p}");
    assert_eq!(p["scanners"][1]["fixable"]["critical"], 0, "{p}");
}
