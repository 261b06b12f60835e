//! The JSON API and pages in process: authentication, keys, clusters, users, audit log, jobs,
//! metrics, search, and the bad input each must survive.

use actix_web::test::{self, TestRequest};
use bulwark::http::{Role, Scope};
use serde_json::{json, Value};

use crate::support::{call, finished_run, Caller, InProcess, IP};

fn cookie(token: &str) -> actix_web::cookie::Cookie<'static> {
    actix_web::cookie::Cookie::new("bulwark_session", token.to_string())
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[actix_web::test]
async fn login_me_logout_and_cookie_flags() {
    let t = InProcess::new();
    t.user("alice@example.com", Role::Admin);
    let app = t.service().await;
    let (s, v, h) = call(
        &app,
        TestRequest::post()
            .uri("/api/v1/auth/login")
            .set_json(json!({"email": "Alice@Example.com", "password": "password-1234"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["role"], "admin");
    let set_cookie = h.get("set-cookie").unwrap().to_str().unwrap().to_string();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(
            set_cookie.contains(flag),
            "cookie lacks {flag}: {set_cookie}"
        );
    }
    let token = set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    let (s, me, _) = call(&app, Caller::session(&token).get("/api/v1/me")).await;
    assert_eq!(s, 200);
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["role"], "admin");
    let (s, _, _) = call(
        &app,
        TestRequest::post()
            .uri("/api/v1/auth/logout")
            .cookie(cookie(&token)),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v, _) = call(&app, Caller::session(&token).get("/api/v1/me")).await;
    assert_eq!(s, 401, "a signed-out session is dead: {v}");
    // Forged and garbage cookies.
    for bad in ["forged", "", &"x".repeat(5000)] {
        let (s, v, _) = call(&app, Caller::session(bad).get("/api/v1/me")).await;
        assert_eq!(s, 401);
        assert_eq!(error_code(&v), "unauthorized");
    }
}

#[actix_web::test]
async fn failed_logins_are_throttled_per_account_and_per_address() {
    let t = InProcess::with(|c| c.auth.login_max_failures = 3);
    t.user("bob@example.com", Role::ReadOnly);
    let app = t.service().await;
    let login = |email: &str, pw: &str| {
        TestRequest::post()
            .uri("/api/v1/auth/login")
            .set_json(json!({"email": email, "password": pw}))
    };
    for _ in 0..3 {
        let (s, v, _) = call(&app, login("bob@example.com", "wrong-password")).await;
        assert_eq!(s, 401);
        assert_eq!(v["error"]["message"], "email or password is wrong");
    }
    let (s, v, h) = call(&app, login("bob@example.com", "password-1234")).await;
    assert_eq!(s, 429, "even the right password waits: {v}");
    assert!(h.get("retry-after").is_some());
    // The same address guessing many accounts is throttled too (4× the account limit).
    for i in 0..9 {
        call(
            &app,
            login(&format!("nobody{i}@example.com"), "guess-guess"),
        )
        .await;
    }
    let (s, _, _) = call(&app, login("someone-else@example.com", "guess-guess")).await;
    assert_eq!(s, 429);
    let entries = bulwark::audit::list(
        t.store(),
        &bulwark::audit::Filter {
            action: "login".into(),
            ..Default::default()
        },
    )
    .unwrap()
    .unwrap();
    assert!(entries
        .iter()
        .any(|e| e.action == "login.throttled" && e.source_ip == "10.1.2.3"));
    assert!(
        entries
            .iter()
            .filter(|e| e.action == "login.failure")
            .count()
            >= 12
    );
}

#[actix_web::test]
async fn api_keys_are_shown_once_hashed_accepted_three_ways_and_revocable() {
    let t = InProcess::new();
    t.user("carol@example.com", Role::Admin);
    let (token, _) = t.session("carol@example.com");
    let app = t.service().await;
    let (s, created, _) = call(
        &app,
        Caller::session(&token).post(
            "/api/v1/api-keys",
            json!({"name": "ci", "scopes": ["read", "scanner"]}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_u64().unwrap();
    assert!(key.len() > 40);
    // Lists never show it; the store never holds it.
    let (_, list, _) = call(&app, Caller::session(&token).get("/api/v1/api-keys")).await;
    assert!(!list.to_string().contains(&key));
    assert_eq!(list["items"][0]["scopes"], json!(["read", "scanner"]));
    let raw = std::fs::read(t.store().path()).unwrap();
    assert!(
        !raw.windows(key.len()).any(|w| w == key.as_bytes()),
        "the raw key must not be in the database file"
    );
    // Three ways to present it.
    for req in [
        TestRequest::get()
            .uri("/api/v1/clusters")
            .insert_header(("authorization", format!("Bearer {key}"))),
        TestRequest::get()
            .uri("/api/v1/clusters")
            .insert_header(("x-api-key", key.clone())),
        TestRequest::get().uri(&format!("/api/v1/clusters?key={key}")),
    ] {
        let (s, v, _) = call(&app, req).await;
        assert_eq!(s, 200, "{v}");
    }
    // Scope limits: read+scanner cannot write.
    let (s, _, _) = call(
        &app,
        TestRequest::post()
            .uri("/api/v1/clusters")
            .insert_header(("x-api-key", key.clone()))
            .set_json(json!({"name": "x"})),
    )
    .await;
    assert_eq!(s, 403);
    // Unknown scopes and bad bodies.
    let (s, v, _) = call(
        &app,
        Caller::session(&token).post("/api/v1/api-keys", json!({"name": "x", "scopes": ["root"]})),
    )
    .await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unknown scope 'root'"));
    // Revoke: the key stops working at once.
    let (s, _, _) = call(
        &app,
        Caller::session(&token).delete(&format!("/api/v1/api-keys/{id}")),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v, _) = call(
        &app,
        TestRequest::get()
            .uri("/api/v1/clusters")
            .insert_header(("x-api-key", key.clone())),
    )
    .await;
    assert_eq!(s, 401);
    assert!(v["error"]["message"].as_str().unwrap().contains("revoked"));
    // A wrong key is 401 even with a valid session beside it (no silent fallback).
    let (s, _, _) = call(
        &app,
        Caller::session(&token)
            .get("/api/v1/clusters")
            .insert_header(("x-api-key", "bwk_wrong")),
    )
    .await;
    assert_eq!(s, 401);
}

#[actix_web::test]
async fn clusters_crud_and_bad_input() {
    let t = InProcess::with(|c| c.http.max_body_bytes = 4096);
    t.user("dan@example.com", Role::Admin);
    let (token, _) = t.session("dan@example.com");
    let app = t.service().await;
    let post = |body: Value| Caller::session(&token).post("/api/v1/clusters", body);
    let list_req = || Caller::session(&token).get("/api/v1/clusters");
    let (s, empty, _) = call(&app, list_req()).await;
    assert_eq!((s, empty.clone()), (200, json!({"items": []})));
    let (s, c, _) = call(&app, post(json!({"name": "prod-eu", "description": "<script>alert(1)</script>", "tags": ["env=prod"], "enforcement": true, "failure_mode": "fail-closed"}))).await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_u64().unwrap();
    assert_eq!(c["name"], "prod-eu");
    let (s, v, _) = call(&app, post(json!({"name": "PROD-EU"}))).await;
    assert_eq!((s, error_code(&v)), (409, "conflict"));
    let (s, v, _) = call(&app, post(json!({"name": "x", "colour": "red"}))).await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{v}"
    );
    let (s, v, _) = call(&app, post(json!({"name": "'; DROP TABLE clusters; --"}))).await;
    assert_eq!(s, 400, "{v}");
    let (s, v, _) = call(&app, post(json!({"name": "y", "failure_mode": "maybe"}))).await;
    assert_eq!(s, 400, "{v}");
    // Malformed, oversized, wrong type.
    let (s, v, _) = call(
        &app,
        TestRequest::post()
            .uri("/api/v1/clusters")
            .cookie(cookie(&token))
            .insert_header(("content-type", "application/json"))
            .set_payload("{\"name\": "),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON body"),
        "{v}"
    );
    let big = json!({"name": "big", "description": "a".repeat(10_000)});
    let (s, v, _) = call(&app, post(big)).await;
    assert_eq!((s, error_code(&v)), (413, "payload_too_large"));
    let (s, _, _) = call(&app, Caller::session(&token).get("/api/v1/clusters/abc")).await;
    assert_eq!(s, 400);
    let (s, v, _) = call(&app, Caller::session(&token).get("/api/v1/clusters/4242")).await;
    assert_eq!((s, error_code(&v)), (404, "not_found"));
    // Read, patch, list, delete.
    let (s, v, _) = call(
        &app,
        Caller::session(&token).patch(
            &format!("/api/v1/clusters/{id}"),
            json!({"enforcement": false, "tags": ["a", "b"]}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["enforcement"], false);
    assert_eq!(
        v["failure_mode"], "fail-closed",
        "untouched fields keep their value"
    );
    let (_, list, _) = call(&app, Caller::session(&token).get("/api/v1/clusters")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        list["items"][0]["tags"],
        json!(["a", "b"]),
        "the list shows the patch at once"
    );
    assert_eq!(list["items"][0]["enforcement"], false);
    // Small bodies are not worth compressing.
    let res = test::call_service(
        &app,
        list_req()
            .insert_header(("accept-encoding", "gzip"))
            .to_request(),
    )
    .await;
    assert!(res.headers().get("content-encoding").is_none());
    // Hostile text is escaped in every page that shows it.
    for page in ["/clusters", &format!("/clusters/{id}")] {
        let (s, html, _) = call(&app, Caller::session(&token).get(page)).await;
        assert_eq!(s, 200);
        let html = html.as_str().unwrap().to_string();
        assert!(
            !html.contains("<script>alert(1)</script>"),
            "unescaped on {page}"
        );
    }
    let (s, html, _) = call(
        &app,
        Caller::session(&token).get(&format!("/clusters/{id}")),
    )
    .await;
    assert_eq!(s, 200);
    let html = html.as_str().unwrap();
    assert!(
        html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
        "escaped text is shown"
    );
    // Search finds it by prefix.
    let (s, hits, _) = call(&app, Caller::session(&token).get("/api/v1/search?q=prod-e")).await;
    assert_eq!(s, 200);
    assert_eq!(hits["items"][0]["url"], format!("/clusters/{id}"));
    let (s, _, _) = call(
        &app,
        Caller::session(&token).delete(&format!("/api/v1/clusters/{id}")),
    )
    .await;
    assert_eq!(s, 204);
    let (_, after, _) = call(&app, list_req()).await;
    assert_eq!(
        after,
        json!({"items": []}),
        "the list forgets deleted clusters at once"
    );
    let (_, hits, _) = call(&app, Caller::session(&token).get("/api/v1/search?q=prod")).await;
    assert_eq!(
        hits["items"].as_array().unwrap().len(),
        0,
        "deleted clusters leave the index"
    );
    // Unknown routes answer JSON 404.
    let (s, v, h) = call(&app, TestRequest::get().uri("/api/v1/nothing-here")).await;
    assert_eq!((s, error_code(&v)), (404, "not_found"));
    assert!(h
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("application/json"));
}

#[actix_web::test]
async fn users_api_respects_roles() {
    let t = InProcess::new();
    t.user("root@example.com", Role::SuperAdmin);
    t.user("adm@example.com", Role::Admin);
    let (admin, _) = t.session("adm@example.com");
    let app = t.service().await;
    let (s, u, _) = call(
        &app,
        Caller::session(&admin).post(
            "/api/v1/users",
            json!({"email": "eve@example.com", "password": "password-1234", "role": "read-only"}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{u}");
    assert!(
        u.get("password_hash").is_none(),
        "hashes never leave the server"
    );
    let (s, _, _) = call(&app, Caller::session(&admin).post("/api/v1/users", json!({"email": "boss@example.com", "password": "password-5678", "role": "super-admin"}))).await;
    assert_eq!(s, 403, "admins cannot create super-admins");
    let (s, v, _) = call(
        &app,
        Caller::session(&admin).post(
            "/api/v1/users",
            json!({"email": "weak@example.com", "password": "short", "role": "read-only"}),
        ),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (s, v, _) = call(
        &app,
        Caller::session(&admin).post(
            "/api/v1/users",
            json!({"email": "x@example.com", "password": "password-5678", "role": "god"}),
        ),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (eve, _) = t.session("eve@example.com");
    let (s, _, _) = call(&app, Caller::session(&eve).get("/api/v1/users")).await;
    assert_eq!(s, 403);
    // Disabling ends the user's sessions.
    let eve_id = u["id"].as_u64().unwrap();
    let (s, _, _) = call(
        &app,
        Caller::session(&admin).patch(
            &format!("/api/v1/users/{eve_id}"),
            json!({"disabled": true}),
        ),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = call(&app, Caller::session(&eve).get("/api/v1/me")).await;
    assert_eq!(s, 401);
}

#[actix_web::test]
async fn audit_log_records_filters_and_exports_csv() {
    let t = InProcess::new();
    t.user("root@example.com", Role::SuperAdmin);
    let (root, _) = t.session("root@example.com");
    let app = t.service().await;
    call(
        &app,
        Caller::session(&root).post("/api/v1/clusters", json!({"name": "audited"})),
    )
    .await;
    call(
        &app,
        TestRequest::post()
            .uri("/api/v1/auth/login")
            .set_json(json!({"email": "root@example.com", "password": "nope-nope-nope"})),
    )
    .await;
    let (s, v, _) = call(
        &app,
        Caller::session(&root).get("/api/v1/audit-log?action=cluster"),
    )
    .await;
    assert_eq!(s, 200);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["action"], "cluster.create");
    assert_eq!(items[0]["actor"], "root@example.com");
    assert_eq!(items[0]["source_ip"], "10.1.2.3");
    let (_, v, _) = call(
        &app,
        Caller::session(&root).get("/api/v1/audit-log?outcome=failed"),
    )
    .await;
    assert_eq!(v["items"][0]["action"], "login.failure");
    let (s, v, _) = call(
        &app,
        Caller::session(&root).get("/api/v1/audit-log?since=last-tuesday"),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (s, csv, h) = call(
        &app,
        Caller::session(&root).get("/api/v1/audit-log?format=csv"),
    )
    .await;
    assert_eq!(s, 200);
    assert!(h
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = csv.as_str().unwrap().to_string();
    assert!(csv.starts_with("id,at,actor,action,target,ok,source_ip,detail\r\n"));
    assert!(
        csv.contains("cluster.create")
            && csv.contains("login.success")
            && csv.contains("login.failure")
    );
    let (s, html, _) = call(&app, Caller::session(&root).get("/audit-log")).await;
    assert_eq!(s, 200);
    assert!(html.as_str().unwrap().contains("cluster.create"));
}

#[actix_web::test]
async fn jobs_metrics_health_and_pages() {
    let t = InProcess::new();
    let sa = t.user("root@example.com", Role::SuperAdmin);
    let (root, _) = t.session("root@example.com");
    let app = t.service().await;
    let (s, v, _) = call(&app, Caller::session(&root).get("/api/v1/jobs")).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "exceptions",
            "rescans",
            "native-scans",
            "kube-sync",
            "retention",
            "pod-compliance",
            "gatekeeper-audit",
            "falco-retention",
            "falco-digest",
            "crawl",
            "posture"
        ]
    );
    let job = &v["items"][4];
    assert!(job["next_run"].is_string());
    assert!(job["last_run"].is_null());
    let (s, v, _) = call(
        &app,
        TestRequest::post()
            .uri("/api/v1/jobs/retention/run")
            .cookie(cookie(&root))
            .insert_header(("content-type", "application/json")),
    )
    .await;
    assert_eq!(s, 202, "run now answers at once: {v}");
    assert_eq!(v["status"], "started");
    let run = finished_run(
        &app,
        || Caller::session(&root).get("/api/v1/jobs/retention"),
        None,
    )
    .await;
    assert_eq!(run["ok"], true);
    let (_, v, _) = call(&app, Caller::session(&root).get("/api/v1/jobs")).await;
    assert_eq!(v["items"][4]["last_run"]["message"], run["message"]);
    let (s, v, _) = call(
        &app,
        TestRequest::post()
            .uri("/api/v1/jobs/nope/run")
            .cookie(cookie(&root))
            .insert_header(("content-type", "application/json")),
    )
    .await;
    assert_eq!((s, error_code(&v)), (404, "not_found"));
    // Health is open, metrics need the scope.
    let (s, _, _) = call(&app, TestRequest::get().uri("/healthz")).await;
    assert_eq!(s, 200);
    let (s, _, _) = call(&app, TestRequest::get().uri("/metrics")).await;
    assert_eq!(s, 401);
    let key = t.key(sa, &[Scope::Metrics]);
    let (s, text, _) = call(
        &app,
        TestRequest::get()
            .uri("/metrics")
            .insert_header(("authorization", format!("Bearer {key}"))),
    )
    .await;
    assert_eq!(s, 200);
    let text = text.as_str().unwrap().to_string();
    assert!(text.contains("bulwark_build_info"), "{text}");
    assert!(
        text.contains("route=\"/api/v1/jobs\""),
        "requests are counted by route pattern: {text}"
    );
    assert!(
        text.contains("bulwark_http_request_duration_seconds_bucket"),
        "{text}"
    );
    // Every page renders for a super-admin.
    for page in [
        "/",
        "/clusters",
        "/clusters/new",
        "/users",
        "/api-keys",
        "/audit-log",
        "/jobs",
        "/search?q=x",
    ] {
        let (s, html, _) = call(&app, Caller::session(&root).get(page)).await;
        assert_eq!(s, 200, "{page}: {html}");
        assert!(
            html.as_str().unwrap().contains("<nav"),
            "{page} has the layout"
        );
    }
}

#[actix_web::test]
async fn metrics_can_be_public_by_config() {
    let t = InProcess::with(|c| c.http.metrics_public = true);
    let app = t.service().await;
    let (s, _, _) = call(&app, TestRequest::get().uri("/metrics")).await;
    assert_eq!(s, 200);
}

#[actix_web::test]
async fn pages_redirect_to_login_and_login_form_works() {
    let t = InProcess::new();
    t.user("fay@example.com", Role::ReadOnly);
    let app = t.service().await;
    let (s, _, h) = call(&app, TestRequest::get().uri("/clusters?tag=x")).await;
    assert_eq!(s, 303);
    assert_eq!(
        h.get("location").unwrap(),
        "/login?next=%2Fclusters%3Ftag%3Dx"
    );
    let (s, html, h) = call(&app, TestRequest::get().uri("/login?next=//evil.example")).await;
    assert_eq!(s, 200);
    let set = h.get("set-cookie").unwrap().to_str().unwrap().to_string();
    let csrf = set
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    assert!(html
        .as_str()
        .unwrap()
        .contains(&format!("value=\"{csrf}\"")));
    assert!(
        !html.as_str().unwrap().contains("evil.example"),
        "open redirects are dropped"
    );
    let form = |pw: &str| {
        TestRequest::post()
            .uri("/login")
            .cookie(actix_web::cookie::Cookie::new("bulwark_csrf", csrf.clone()))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(format!(
                "email=fay%40example.com&password={pw}&next=%2Fclusters&csrf={csrf}"
            ))
    };
    let (s, html, _) = call(&app, form("wrong-password")).await;
    assert_eq!(s, 401);
    assert!(html
        .as_str()
        .unwrap()
        .contains("email or password is wrong"));
    let (s, _, h) = call(&app, form("password-1234")).await;
    assert_eq!(s, 303);
    assert_eq!(h.get("location").unwrap(), "/clusters");
    assert!(h
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("bulwark_session="));
}

#[actix_web::test]
async fn users_change_their_own_password() {
    let t = InProcess::new();
    t.user("gil@example.com", Role::ReadOnly);
    let (token, _) = t.session("gil@example.com");
    let app = t.service().await;
    let change = |current: &str, new: &str| {
        Caller::session(&token).post(
            "/api/v1/me/password",
            json!({"current_password": current, "new_password": new}),
        )
    };
    let (s, v, _) = call(&app, change("not-my-password", "brand-new-password")).await;
    assert_eq!(s, 400, "{v}");
    let (s, v, _) = call(&app, change("password-1234", "short")).await;
    assert_eq!(s, 400, "{v}");
    let (s, _, _) = call(&app, change("password-1234", "brand-new-password")).await;
    assert_eq!(s, 200);
    let login = |pw: &str| {
        TestRequest::post()
            .uri("/api/v1/auth/login")
            .set_json(json!({"email": "gil@example.com", "password": pw}))
    };
    assert_eq!(call(&app, login("password-1234")).await.0, 401);
    assert_eq!(call(&app, login("brand-new-password")).await.0, 200);
    let log = bulwark::audit::list(
        t.store(),
        &bulwark::audit::Filter {
            action: "user.password".into(),
            ..Default::default()
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        log.len(),
        2,
        "the failed and the successful change are audited"
    );
    assert!(
        !log.iter().any(|e| e.detail.contains("brand-new-password")),
        "passwords never reach the log"
    );
}

#[actix_web::test]
async fn large_lists_are_served_gzip_to_clients_that_accept_it() {
    let t = InProcess::new();
    t.user("ivy@example.com", Role::ReadOnly);
    let (token, _) = t.session("ivy@example.com");
    for i in 0..50 {
        let new = bulwark::clusters::NewCluster {
            name: format!("c{i}"),
            description: "a cluster with a description long enough to matter".into(),
            tags: vec!["env=prod".into()],
            enforcement: false,
            failure_mode: bulwark::clusters::FailureMode::FailOpen,
            ..Default::default()
        };
        bulwark::clusters::create(t.store(), "test", "", new).unwrap();
    }
    let app = t.service().await;
    let get = |enc: Option<&str>| {
        let r = TestRequest::get()
            .uri("/api/v1/clusters")
            .cookie(cookie(&token));
        match enc {
            Some(e) => r.insert_header(("accept-encoding", e.to_string())),
            None => r,
        }
    };
    let (s, plain, h) = call(&app, get(None)).await;
    assert_eq!(s, 200);
    assert!(h.get("content-encoding").is_none());
    assert_eq!(plain["items"].as_array().unwrap().len(), 50);
    let res = test::call_service(
        &app,
        get(Some("gzip, br"))
            .peer_addr(IP.parse().unwrap())
            .to_request(),
    )
    .await;
    assert_eq!(res.headers().get("content-encoding").unwrap(), "gzip");
    assert_eq!(res.headers().get("vary").unwrap(), "Accept-Encoding");
    let gz = test::read_body(res).await;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut bytes).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        plain,
        "the same list, compressed"
    );
    assert!(gz.len() * 4 < bytes.len());
    let (_, _, h) = call(&app, get(Some("gzip;q=0"))).await;
    assert!(h.get("content-encoding").is_none(), "q=0 refuses gzip");
}
