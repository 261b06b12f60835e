//! What a hostile tester found, replayed: each test sends the attack (bounded in size and time,
//! loopback only) and checks that the appliance now answers it the way it should.

use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use bulwark::http::{Role, Scope};
use serde_json::{json, Value};

use crate::support::{call, Caller, Fetch, InProcess};

const ALPINE: &[u8] = include_bytes!("../fixtures/trivy/alpine-310.trivy.json");

fn cookie(token: &str) -> actix_web::cookie::Cookie<'static> {
    actix_web::cookie::Cookie::new("bulwark_session", token.to_string())
}

/// A Deployment review whose containers run `images`.
fn deployment(uid: &str, images: impl Iterator<Item = String>) -> Value {
    let containers: Vec<Value> = images
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "namespace": "flood", "operation": "CREATE", "name": "many",
        "object": {"metadata": {"name": "many"}, "spec": {"template": {"spec": {"containers": containers}}}}}})
}

fn review(cluster: &str, body: &Value) -> TestRequest {
    TestRequest::post()
        .uri(&format!("/api/v1/admission/{cluster}"))
        .insert_header(("content-type", "application/json"))
        .set_payload(body.to_string())
}

#[actix_web::test]
async fn one_review_cannot_flood_admission_or_the_scan_queue() {
    let t = InProcess::new();
    t.user("admin@example.com", Role::Admin);
    let (s, _) = t.session("admin@example.com");
    let app = t.service().await;
    for (name, unscanned) in [("deny-c", "deny"), ("queue-c", "allow-and-queue")] {
        let (st, v, _) = call(
            &app,
            Caller::session(&s).post(
                "/api/v1/clusters",
                json!({"name": name, "enforcement": true, "unscanned_action": unscanned}),
            ),
        )
        .await;
        assert_eq!(st, 201, "{v}");
    }
    let get = |path: &str| Caller::session(&s).get(path);

    // 5,000 containers of never-scanned images, to a cluster that denies unscanned images.
    let flood = deployment(
        "u-flood",
        (0..5000).map(|i| format!("registry.local/flood/img-{i}:1")),
    );
    let (st, v, _) = call(&app, review("deny-c", &flood)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["response"]["allowed"], false);
    let message = v["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.chars().count() <= bulwark::admission::MAX_MESSAGE,
        "{} characters",
        message.len()
    );
    assert!(message.contains("5000 containers"), "{message}");
    assert!(message.contains("more"), "the rest is counted: {message}");
    let (_, d, _) = call(&app, get("/api/v1/admission/decisions")).await;
    let recorded = &d["items"][0];
    assert!(
        recorded["images"].as_array().unwrap().len() <= 8,
        "{recorded}"
    );
    assert_eq!(recorded["images_total"], 5000);
    let (_, q, _) = call(&app, get("/api/v1/images/queue")).await;
    assert_eq!(
        q["references"].as_array().unwrap().len(),
        0,
        "only allow-and-queue clusters queue what admission sees"
    );

    // To a cluster that queues: the queue holds at most its bound and counts what it refused.
    let max = q["max_references"].as_u64().unwrap() as usize;
    let per_review = 250;
    let reviews = max / per_review + 1;
    for r in 0..reviews {
        let images = (0..per_review).map(move |i| format!("registry.local/q/img-{r}-{i}:1"));
        let (st, v, _) = call(&app, review("queue-c", &deployment("u-q", images))).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["response"]["allowed"], true, "allowed and queued");
        assert!(v["response"]["warnings"].as_array().unwrap().len() <= 20);
        if r % 5 == 4 {
            // Reading decisions writes what is pending.
            call(&app, get("/api/v1/admission/decisions")).await;
        }
    }
    call(&app, get("/api/v1/admission/decisions")).await;
    let (_, q, _) = call(&app, get("/api/v1/images/queue")).await;
    assert_eq!(q["references"].as_array().unwrap().len(), max);
    assert_eq!(
        q["dropped"].as_u64().unwrap(),
        (reviews * per_review - max) as u64,
        "every refused reference is counted"
    );
    let (st, page, _) = call(&app, get("/admission")).await;
    assert_eq!(st, 200);
    let page = page.as_str().unwrap();
    assert!(
        page.len() < 1 << 20,
        "the page lists the oldest entries only"
    );
    assert!(page.contains(&format!("{max} references wait")), "{page}");
    assert!(page.contains("were refused because the queue was full"));

    // A body past what Kubernetes can send is refused before it is parsed.
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(5 << 20));
    let (st, v, _) = call(
        &app,
        TestRequest::post()
            .uri("/api/v1/admission/deny-c")
            .insert_header(("content-type", "application/json"))
            .set_payload(huge),
    )
    .await;
    assert_eq!(st, 413, "{v}");
}

#[actix_web::test]
async fn expensive_image_patterns_are_refused_when_saved() {
    let t = InProcess::new();
    t.user("admin@example.com", Role::Admin);
    let (s, _) = t.session("admin@example.com");
    let app = t.service().await;
    for pattern in [
        "**/**/**/**/**/**/**/**/zzz".to_string(),
        vec!["**"; 99].join("/"),
        vec!["a"; 40].join("/"),
    ] {
        let (st, v, _) = call(
            &app,
            Caller::session(&s).post(
                "/api/v1/exceptions",
                json!({"title": "hostile", "type": "policy", "image_match": pattern}),
            ),
        )
        .await;
        assert_eq!(st, 400, "{pattern}: {v}");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("image_match"));
    }
}

#[actix_web::test]
async fn sign_in_redirects_stay_on_this_site() {
    let t = InProcess::new();
    t.user("admin@example.com", Role::Admin);
    let (s, _) = t.session("admin@example.com");
    let app = t.service().await;
    for (next, expected) in [
        ("/%09/127.0.0.1:18744/x", "/"),
        ("/%0a/evil.example", "/"),
        ("//evil.example", "/"),
        ("/%5Cevil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example", "/"),
        (
            "/images%3Fcompliance%3Dnon-compliant",
            "/images?compliance=non-compliant",
        ),
    ] {
        let (st, _, h) = call(
            &app,
            Caller::session(&s).get(&format!("/login?next={next}")),
        )
        .await;
        assert_eq!(st, 303, "{next}");
        assert_eq!(h.get("location").unwrap(), expected, "{next}");
    }
}

#[actix_web::test]
async fn invented_methods_and_paths_share_one_metrics_series() {
    let t = InProcess::with(|c| c.http.metrics_public = true);
    let app = t.service().await;
    for i in 0..50 {
        let method = actix_web::http::Method::from_bytes(format!("INVENT{i}").as_bytes()).unwrap();
        call(
            &app,
            TestRequest::default()
                .method(method.clone())
                .uri("/api/v1/clusters"),
        )
        .await;
        call(
            &app,
            TestRequest::default()
                .method(method)
                .uri(&format!("/made-up/{i}")),
        )
        .await;
    }
    let (_, text, _) = call(&app, TestRequest::get().uri("/metrics")).await;
    let text = text.as_str().unwrap();
    assert!(!text.contains("INVENT"), "{text}");
    let series = text
        .lines()
        .filter(|l| l.starts_with("bulwark_http_requests_total{"))
        .count();
    assert!(series <= 6, "{series} series:\n{text}");
    assert!(text.contains("method=\"other\""));
}

#[actix_web::test]
async fn a_password_reset_ends_the_users_sessions() {
    let t = InProcess::new();
    t.user("root@example.com", Role::SuperAdmin);
    t.user("admin@example.com", Role::Admin);
    let bob = t.user("bob@example.com", Role::ReadOnly);
    let (admin, _) = t.session("admin@example.com");
    let (bobs, _) = t.session("bob@example.com");
    let app = t.service().await;
    let me = |token: &str| TestRequest::get().uri("/api/v1/me").cookie(cookie(token));
    assert_eq!(call(&app, me(&bobs)).await.0, 200);
    let (st, v, _) = call(
        &app,
        Caller::session(&admin).patch(
            &format!("/api/v1/users/{bob}"),
            json!({"password": "a-new-password-9"}),
        ),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        call(&app, me(&bobs)).await.0,
        401,
        "the old session is over"
    );
    assert_eq!(call(&app, me(&admin)).await.0, 200, "the admin's is not");
}

#[actix_web::test]
async fn junk_never_replaces_a_scan_and_only_web_links_are_links() {
    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    let (s, _) = t.session("admin@example.com");
    let scanner = t.key(admin, &[Scope::Scanner]);
    let app = t.service().await;
    call(
        &app,
        Caller::session(&s).post("/api/v1/clusters", json!({"name": "prod"})),
    )
    .await;
    // A report whose first finding's link is a script.
    let mut report: Value = serde_json::from_slice(ALPINE).unwrap();
    report["Results"][0]["Vulnerabilities"][0]["PrimaryURL"] =
        json!("javascript:alert(document.domain)");
    report["Results"][0]["Vulnerabilities"][0]["References"] = json!([
        "JavaScript:alert(1)",
        "data:text/html,<b>x</b>",
        "https://example.org/ok"
    ]);
    let (st, v, _) = call(
        &app,
        TestRequest::post()
            .uri("/api/v1/scans?cluster=prod&image=alpine:3.10")
            .insert_header(("x-api-key", scanner.clone()))
            .set_payload(report.to_string()),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let compliant = v["compliant"].clone();
    let (image, cluster) = (v["image"]["id"].as_u64().unwrap(), 1);
    let (_, img, _) = call(
        &app,
        Caller::session(&s).get(&format!("/api/v1/images/{image}")),
    )
    .await;
    let findings = img["scan"]["findings"].as_array().unwrap().clone();
    assert_eq!(findings.len(), 4);
    let links: Vec<&str> = findings
        .iter()
        .flat_map(|f| f["links"].as_array().unwrap())
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(links.iter().all(|l| l.starts_with("http")), "{links:?}");
    let (_, page, _) = call(&app, Caller::session(&s).get(&format!("/images/{image}"))).await;
    let page = page.as_str().unwrap().to_ascii_lowercase();
    assert!(!page.contains("href=\"javascript:") && !page.contains("href=\"data:"));

    // Bodies that are not trawler's results are refused; the image keeps its four findings.
    let path = format!("/api/clusters/{cluster}/images/{image}/trawler/scan/results/per-policy");
    let hash = img["image"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    for junk in [
        json!({"name": 123}),
        json!({}),
        json!({"summary": "", "encounterError": false, "imageHash": hash, "issues": [],
               "criticalIssues": 2, "majorIssues": 2}),
    ] {
        let (st, v, _) = call(
            &app,
            TestRequest::post()
                .uri(&path)
                .insert_header(("x-api-key", scanner.clone()))
                .set_json(&junk),
        )
        .await;
        assert_eq!(st, 400, "{junk}: {v}");
    }
    let (st, v, _) = call(
        &app,
        TestRequest::post()
            .uri(&format!(
                "/api/clusters/{cluster}/images/{image}/trawler/scan/results"
            ))
            .insert_header(("x-api-key", scanner.clone()))
            .set_json(json!({"data": []})),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    let (_, img, _) = call(
        &app,
        Caller::session(&s).get(&format!("/api/v1/images/{image}")),
    )
    .await;
    assert_eq!(img["scan"]["findings"].as_array().unwrap().len(), 4);
    assert_eq!(img["verdict"]["compliant"], compliant, "the verdict stands");
}

#[actix_web::test]
async fn smaller_holes_are_closed() {
    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    let (s, _) = t.session("admin@example.com");
    let admin_key = t.key(admin, &[Scope::Admin]);
    let app = t.service().await;

    // A key creates only keys with scopes it holds.
    let mint = |scopes: Value| {
        Caller::key(&admin_key).post(
            "/api/v1/api-keys",
            json!({"name": "minted", "scopes": scopes}),
        )
    };
    let (st, v, _) = call(&app, mint(json!(["scanner"]))).await;
    assert_eq!(st, 403, "{v}");
    let (st, v, _) = call(&app, mint(json!(["admin"]))).await;
    assert_eq!(st, 201, "{v}");
    let (st, _, _) = call(
        &app,
        Caller::session(&s).post(
            "/api/v1/api-keys",
            json!({"name": "from a session", "scopes": ["scanner"]}),
        ),
    )
    .await;
    assert_eq!(st, 201, "a session may create any scope its role allows");

    // The commonest and single-character passwords are refused.
    for pw in ["aaaaaaaaaa", "1234567890", "Password123"] {
        let (st, v, _) = call(
            &app,
            Caller::session(&s).post(
                "/api/v1/users",
                json!({"email": "weak@example.com", "password": pw, "role": "read-only"}),
            ),
        )
        .await;
        assert_eq!(st, 400, "{pw}: {v}");
    }

    // Pages take no text from the URL, and nothing signed-in is cacheable.
    let (st, page, h) = call(
        &app,
        Caller::session(&s).get("/clusters?flash=Call%20555-0100%20for%20support"),
    )
    .await;
    assert_eq!(st, 200);
    assert!(!page.as_str().unwrap().contains("555-0100"));
    assert_eq!(h.get("cache-control").unwrap(), "no-store");
    let (_, _, h) = call(&app, Caller::session(&s).get("/api/v1/me")).await;
    assert_eq!(h.get("cache-control").unwrap(), "no-store");

    // Exception fields and lists are bounded; policies name clusters that exist.
    let namespaces: Vec<String> = (0..101).map(|i| format!("ns-{i}")).collect();
    for body in [
        json!({"title": "t", "type": "policy", "namespaces": namespaces}),
        json!({"title": "t", "type": "policy", "scanner": "x".repeat(65)}),
        json!({"title": "t", "type": "policy", "policies": (0..101).collect::<Vec<u32>>()}),
    ] {
        let (st, v, _) = call(
            &app,
            Caller::session(&s).post("/api/v1/exceptions", body.clone()),
        )
        .await;
        assert_eq!(st, 400, "{v}");
    }
    let (st, v, _) = call(
        &app,
        Caller::session(&s).post(
            "/api/v1/policies",
            json!({"name": "ghost clusters", "clusters": [424242]}),
        ),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("424242"));
}

// ---- against the real binary ----

/// A TLS client that does not keep connections, so parallel requests use parallel connections.
fn fresh_client() -> reqwest::Client {
    crate::support::init();
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_share_the_limit_and_cannot_grow_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::Server::start(&dir.path().join("data")).await;
    let base = server.base.clone();
    // The audit log is read afterwards with a key: this address will be throttled by then.
    let key = server
        .admin_client()
        .await
        .post(format!("{base}/api/v1/api-keys"))
        .json(&json!({"name": "auditor", "scopes": ["admin"]}))
        .json_body::<Value>()
        .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let c = fresh_client();
    // 30 wrong passwords at once for one account from one address.
    let tries: Vec<_> = (0..30).map(|i| {
        let (c, base) = (c.clone(), base.clone());
        tokio::spawn(async move {
            c.post(format!("{base}/api/v1/auth/login"))
                .json(&json!({"email": crate::support::ADMIN_EMAIL, "password": format!("wrong-guess-{i}")}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    })
    .collect();
    let mut codes = Vec::new();
    for t in tries {
        codes.push(t.await.unwrap());
    }
    let checked = codes.iter().filter(|c| **c == 401).count();
    let refused = codes.iter().filter(|c| **c == 429).count();
    assert_eq!((checked, refused), (5, 25), "{codes:?}");

    // Huge e-mail addresses from another account's point of view: cut before they are logged.
    let huge = "x".repeat(900 * 1024);
    for _ in 0..5 {
        let r = c
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": format!("{huge}@example.com"), "password": "whatever-it-is"}))
            .send()
            .await
            .unwrap();
        assert!(matches!(r.status().as_u16(), 401 | 429), "{}", r.status());
    }
    let log: Value = c
        .get(format!("{base}/api/v1/audit-log?action=login"))
        .header("x-api-key", &key)
        .json_body()
        .await;
    let text = log.to_string();
    assert!(
        text.len() < 64 * 1024,
        "the log stays small: {} bytes",
        text.len()
    );
    let entries = log["items"].as_array().unwrap();
    assert!(entries
        .iter()
        .all(|e| e["actor"].as_str().unwrap().chars().count() <= 301));
    let throttled = entries
        .iter()
        .filter(|e| e["action"] == "login.throttled")
        .count();
    assert!(
        (1..=3).contains(&throttled),
        "refusals are aggregated: {throttled} entries\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trickled_bodies_are_cut_off_and_capped_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::Server::start_with(
        &dir.path().join("data"),
        &[
            ("BULWARK_ADMIN_EMAIL", crate::support::ADMIN_EMAIL),
            ("BULWARK_ADMIN_PASSWORD", crate::support::ADMIN_PASSWORD),
            ("BULWARK_HTTP_BODY_TIMEOUT_SECONDS", "2"),
            ("BULWARK_HTTP_MAX_BODIES_PER_ADDRESS", "8"),
        ],
    )
    .await;
    let c = fresh_client();
    let start = Instant::now();
    // 12 connections sending one body byte a second to the webhook.
    let slow: Vec<_> = (0..12)
        .map(|_| {
            let (c, base) = (c.clone(), server.base.clone());
            tokio::spawn(async move {
                let trickle = futures_util::stream::unfold(0u32, |n| async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    (n < 600).then(|| (Ok::<_, std::io::Error>(vec![b' ']), n + 1))
                });
                let r = c
                    .post(format!("{base}/api/v1/admission/anything"))
                    .header("content-type", "application/json")
                    .body(reqwest::Body::wrap_stream(trickle))
                    .send()
                    .await;
                (r.map(|r| r.status().as_u16()).unwrap_or(0), Instant::now())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for s in slow {
        answers.push(s.await.unwrap());
    }
    let busy = answers.iter().filter(|(c, _)| *c == 503).count();
    let cut = answers.iter().filter(|(c, _)| *c == 408 || *c == 0).count();
    assert_eq!(
        busy, 4,
        "beyond 8 bodies at once from one address: 503 at once: {answers:?}"
    );
    assert_eq!(cut, 8, "the slow ones are cut off: {answers:?}");
    let last = answers.iter().map(|(_, t)| *t).max().unwrap();
    assert!(
        last - start < Duration::from_secs(20),
        "cut off after the body timeout, not after the 600 s the bodies would take"
    );
    // The appliance answers normally afterwards.
    let r = c
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // An upload whose Content-Length is over the limit is refused from its headers, before the
    // body is read (curl declares 200 GB and sends a few bytes).
    let out = std::process::Command::new("curl")
        .args([
            "-sk",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(["-H", "x-api-key: not-needed-to-be-refused-for-size"])
        .args([
            "-H",
            "content-type: application/json",
            "-H",
            "content-length: 200000000000",
        ])
        .args(["--data-binary", "{}"])
        .arg(format!("{}/api/v1/admission/anything", server.base))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "413");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stuck_job_neither_holds_run_now_nor_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = crate::support::Server::start(&data).await;
    let feed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/vulndb/alpine-secdb-v3.10-community.json"
    );
    let o = crate::scanner::bulwark(&["--data-dir", data.to_str().unwrap(), "db", "import", feed]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A "registry" that accepts connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming().flatten() {
            held.push(conn);
            let _ = tx.send(());
        }
    });
    let admin = server.admin_client().await;
    let base = server.base.clone();
    let r = admin
        .post(format!("{base}/api/v1/clusters"))
        .json(&json!({"name": "prod", "unscanned_action": "allow-and-queue"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let image = format!("127.0.0.1:{port}/stuck/app:1");
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u-s", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "namespace": "shop",
        "operation": "CREATE", "name": "web", "object": {"metadata": {"name": "web"},
        "spec": {"containers": [{"name": "c", "image": image}]}}}});
    let r = admin
        .post(format!("{base}/api/v1/admission/prod"))
        .json(&review)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Queued once the recorder has written it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !admin
        .get(format!("{base}/api/v1/images/queue"))
        .text_body()
        .await
        .contains("stuck/app")
    {
        assert!(Instant::now() < deadline, "the reference was not queued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // "Run now" answers at once while the job hangs on the registry.
    let r = admin
        .post(format!("{base}/api/v1/jobs/native-scans/run"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let hung = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap();
    assert!(hung.is_ok(), "the job reached the registry");
    let job: Value = admin
        .get(format!("{base}/api/v1/jobs/native-scans"))
        .json_body()
        .await;
    assert_eq!(job["running"], true, "{job}");
    let r = admin
        .post(format!("{base}/api/v1/jobs/native-scans/run"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "one run at a time");

    // SIGTERM stops the appliance within its deadline, job or not.
    let asked = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(12);
    assert!(status.success(), "{}", server.log_text());
    assert!(
        asked.elapsed() < Duration::from_secs(11),
        "{:?}",
        asked.elapsed()
    );
    drop(server);

    // The interrupted reference is still queued, not marked as a failed scan.
    let server = crate::support::Server::start(&data).await;
    let q: Value = server
        .admin_client()
        .await
        .get(format!("{}/api/v1/images/queue", server.base))
        .json_body()
        .await;
    let refs = q["references"].as_array().unwrap();
    assert_eq!(refs.len(), 1, "{q}");
    assert_eq!(refs[0]["attempts"], 0, "{q}");
}

#[actix_web::test]
async fn the_cluster_page_requires_and_drops_a_webhook_token() {
    let t = InProcess::new();
    t.user("admin@example.com", Role::Admin);
    let (s, csrf) = t.session("admin@example.com");
    let app = t.service().await;
    let (_, c, _) = call(
        &app,
        Caller::session(&s).post("/api/v1/clusters", json!({"name": "prod"})),
    )
    .await;
    let id = c["id"].as_u64().unwrap();
    let form = |path: String| Caller::session(&s).form(&path, format!("csrf={csrf}"));
    let pod = deployment("u-p", ["nginx:1".to_string()].into_iter());
    assert_eq!(call(&app, review("prod", &pod)).await.0, 200);
    let (st, page, h) = call(&app, form(format!("/clusters/{id}/webhook-token"))).await;
    assert_eq!(st, 200);
    assert_eq!(h.get("cache-control").unwrap(), "no-store");
    let page = page.as_str().unwrap().to_string();
    let start = page.find("id=\"new-token\">").unwrap() + "id=\"new-token\">".len();
    let token = &page[start..start + page[start..].find('<').unwrap()];
    assert!(token.len() >= 40, "{token}");
    assert_eq!(call(&app, review("prod", &pod)).await.0, 403);
    assert_eq!(
        call(&app, review(&format!("prod/{token}"), &pod)).await.0,
        200
    );
    let (_, page, _) = call(&app, Caller::session(&s).get(&format!("/clusters/{id}"))).await;
    let page = page.as_str().unwrap();
    assert!(page.contains("must carry"), "{page}");
    assert!(!page.contains(token), "the token is shown once");
    let (st, _, _) = call(&app, form(format!("/clusters/{id}/webhook-token/delete"))).await;
    assert_eq!(st, 303);
    assert_eq!(call(&app, review("prod", &pod)).await.0, 200);
}
