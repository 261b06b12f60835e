//! The appliance scans on its own: admission meets an image it never scanned, queues it, and the
//! `native-scans` job pulls it from a private registry (credentials stored sealed under
//! Registries), scans it in-process and files the result, all in the real binary.

use serde_json::{json, Value};

use crate::scanner::{build_oci_layout, bulwark, sh, start_registry_with};
use crate::support::{Fetch, Server};

#[actix_web::test]
async fn queued_images_are_pulled_with_sealed_credentials_and_scanned() {
    let dir = tempfile::tempdir().unwrap();
    // A private registry (htpasswd) holding the botan 2.8.0-r0 image.
    let htpasswd = dir.path().join("htpasswd");
    sh(&format!(
        "htpasswd -Bbc {} puller Pull-s3cret-9",
        htpasswd.display()
    ));
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: bulwark-test\n    path: {}\n",
        htpasswd.display()
    );
    let (_registry, registry) = start_registry_with(&dir.path().join("reg"), &auth);
    let (layout, _, _) = build_oci_layout(dir.path());
    sh(&format!(
        "skopeo copy --dest-tls-verify=false --dest-creds puller:Pull-s3cret-9 oci:{}:v1 docker://{registry}/private/botan:v1",
        layout.display()
    ));
    let image = format!("{registry}/private/botan:v1");

    let data = dir.path().join("data");
    let server = Server::start(&data).await;
    // The appliance's vulnerability database, imported by the CLI beside the running server.
    let feed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/vulndb/alpine-secdb-v3.10-community.json"
    );
    let o = bulwark(&["--data-dir", data.to_str().unwrap(), "db", "import", feed]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let admin = server.admin_client().await;
    let base = &server.base;
    let r = admin
        .post(format!("{base}/api/v1/clusters"))
        .json(&json!({"name": "prod", "unscanned_action": "allow-and-queue"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Nothing queued yet: the job has nothing to do.
    let run = |admin: reqwest::Client| async move {
        let asked = chrono::Utc::now();
        let r = admin
            .post(format!("{base}/api/v1/jobs/native-scans/run"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 202, "run now answers at once: {v}");
        // The run is recorded when it ends.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let job: Value = admin
                .get(format!("{base}/api/v1/jobs/native-scans"))
                .json_body()
                .await;
            let started = job["last_run"]["started_at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            if job["running"] == false && started.is_some_and(|t| t >= asked) {
                return job["last_run"].clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the job did not end: {job}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    let v = run(admin.clone()).await;
    assert_eq!(v["message"], "nothing waits for a scan", "{v}");

    // Admission sees the image first: allowed (allow-and-queue) and queued.
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "namespace": "shop", "operation": "CREATE",
        "name": "web", "object": {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": image}]}}}});
    let r = crate::support::client()
        .post(format!("{base}/api/v1/admission/prod"))
        .json(&review)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["response"]["allowed"], true, "{v}");
    // Admission writes its queue in batches; wait for it to show.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let q = admin
            .get(format!("{base}/api/v1/images/queue"))
            .text_body()
            .await;
        if q.contains("private/botan") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never queued: {q}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // The registry, first with a wrong password: the pull is refused, the reference stays
    // queued, and the job says why.
    let r = admin
        .post(format!("{base}/api/v1/registries"))
        .json(&json!({"host": registry, "username": "puller", "password": "wrong", "insecure_registry": true}))
        .send()
        .await
        .unwrap();
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["has_password"], true, "{created}");
    assert!(created.get("password").is_none() && created.get("sealed_password").is_none());
    let v = run(admin.clone()).await;
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("0 images scanned, 1 failed"), "{v}");
    assert!(msg.contains("refused the credentials"), "{v}");

    // The right password, stored sealed.
    let id = created["id"].as_u64().unwrap();
    let r = admin
        .patch(format!("{base}/api/v1/registries/{id}"))
        .json(&json!({"password": "Pull-s3cret-9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list = admin
        .get(format!("{base}/api/v1/registries"))
        .text_body()
        .await;
    assert!(
        !list.contains("Pull-s3cret-9") && !list.contains("v1:"),
        "{list}"
    );

    let v = run(admin.clone()).await;
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("1 images scanned, 0 failed"),
        "{v}"
    );
    let images: Value = admin.get(format!("{base}/api/v1/images")).json_body().await;
    let items = images["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{images}");
    let id = items[0]["id"].as_u64().unwrap();
    let img: Value = admin
        .get(format!("{base}/api/v1/images/{id}?cluster=prod"))
        .json_body()
        .await;
    let findings = img["scan"]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{img}");
    assert_eq!(findings[0]["id"], "CVE-2018-20187");
    assert_eq!(findings[0]["scanner"], "bulwark");
    assert!(img["image"]["digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    // The queue is empty again, and the next run has nothing to do.
    let v = run(admin.clone()).await;
    assert_eq!(v["message"], "nothing waits for a scan", "{v}");

    // The password is nowhere in the database file or the log.
    let db = std::fs::read(data.join("bulwark.redb")).unwrap();
    assert!(
        !db.windows(13).any(|w| w == b"Pull-s3cret-9"),
        "the stored password is sealed"
    );
    assert!(!server.log_text().contains("Pull-s3cret-9"));
}

/// The Registries page: readers see hosts and whether a password is set, writers add and remove
/// through forms; the password never comes back into a page, even after a rejected form.
#[actix_web::test]
async fn registries_page_never_shows_secrets() {
    use actix_web::test::{self, TestRequest};
    use bulwark::http::Role;

    let t = crate::support::InProcess::new();
    t.user("admin@example.com", Role::Admin);
    t.user("viewer@example.com", Role::ReadOnly);
    let (admin, csrf) = t.session("admin@example.com");
    let (viewer, _) = t.session("viewer@example.com");
    let app = t.service().await;
    let cookie = |v: &str| actix_web::cookie::Cookie::new("bulwark_session", v.to_string());
    let get = |token: &str| TestRequest::get().uri("/registries").cookie(cookie(token));
    let post = |path: &str, body: String| {
        TestRequest::post()
            .uri(path)
            .cookie(cookie(&admin))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(body)
    };
    let res = test::call_service(
        &app,
        post("/registries", format!("csrf={csrf}&host=registry.local%3A5000&username=ci&password=Page-s3cret&insecure_registry=1")).to_request(),
    )
    .await;
    assert_eq!(res.status(), 303);
    // A duplicate is refused with the form refilled, but not with the password.
    let res = test::call_service(
        &app,
        post(
            "/registries",
            format!("csrf={csrf}&host=registry.local%3A5000&username=ci&password=Other-s3cret"),
        )
        .to_request(),
    )
    .await;
    assert_eq!(res.status(), 400);
    let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    assert!(body.contains("already configured") && !body.contains("Other-s3cret"));
    let res = test::call_service(&app, get(&viewer).to_request()).await;
    assert_eq!(res.status(), 200);
    let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    assert!(body.contains("registry.local:5000") && body.contains("plain HTTP"));
    assert!(!body.contains("Page-s3cret") && !body.contains("v1:"));
    assert!(!body.contains("registry-form"), "readers get no form");
    let res = test::call_service(&app, get(&admin).to_request()).await;
    let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    assert!(body.contains("registry-form") && !body.contains("Page-s3cret"));
    let id = bulwark::registries::list(t.store()).unwrap()[0].id;
    let res = test::call_service(
        &app,
        post(
            &format!("/registries/{id}/delete"),
            format!("csrf={csrf}&confirm=1"),
        )
        .to_request(),
    )
    .await;
    assert_eq!(res.status(), 303);
    assert!(bulwark::registries::list(t.store()).unwrap().is_empty());
}
