//! Every route × every role and every API-key scope. The routes come from the live route table
//! (`app::routes`), so routes that later issues add are checked without touching this file; the
//! expectations are an independent table per permission, so a gate that lets too much (or too
//! little) through fails here.

use actix_web::http::Method;
use actix_web::test;
use bulwark::http::{Kind, Perm, Role, RouteInfo, Scope};

use crate::support::InProcess;

#[derive(Clone)]
enum Who {
    Anonymous,
    Session {
        label: &'static str,
        token: String,
        csrf: String,
    },
    Key {
        label: &'static str,
        key: String,
    },
}

impl Who {
    fn label(&self) -> &'static str {
        match self {
            Who::Anonymous => "anonymous",
            Who::Session { label, .. } | Who::Key { label, .. } => label,
        }
    }
}

/// Who may pass the gate of a route requiring `perm`. Written out by hand on purpose.
fn allowed(perm: Perm) -> &'static [&'static str] {
    const SESSIONS: [&str; 3] = ["session:super-admin", "session:admin", "session:read-only"];
    match perm {
        Perm::Public => &[
            "anonymous",
            "session:super-admin",
            "session:admin",
            "session:read-only",
            "key:read",
            "key:admin",
            "key:scanner",
            "key:kube-bench",
            "key:kube-hunter",
            "key:falco",
            "key:sensor",
            "key:metrics",
            "key:read-only-owner:read",
        ],
        Perm::Authenticated => &[
            "session:super-admin",
            "session:admin",
            "session:read-only",
            "key:read",
            "key:admin",
            "key:scanner",
            "key:kube-bench",
            "key:kube-hunter",
            "key:falco",
            "key:sensor",
            "key:metrics",
            "key:read-only-owner:read",
        ],
        Perm::Read => &[
            "session:super-admin",
            "session:admin",
            "session:read-only",
            "key:read",
            "key:admin",
            "key:read-only-owner:read",
        ],
        Perm::Write | Perm::ManageUsers => &["session:super-admin", "session:admin", "key:admin"],
        Perm::OwnKeys | Perm::Request => &[SESSIONS[0], SESSIONS[1], SESSIONS[2], "key:admin"],
        Perm::SuperAdmin => &["session:super-admin", "key:admin"],
        Perm::Metrics => &[
            "session:super-admin",
            "session:admin",
            "session:read-only",
            "key:admin",
            "key:metrics",
        ],
        Perm::UploadScan => &["session:super-admin", "session:admin", "key:scanner"],
        Perm::UploadKubeBench => &["session:super-admin", "session:admin", "key:kube-bench"],
        Perm::UploadKubeHunter => &["session:super-admin", "session:admin", "key:kube-hunter"],
        Perm::UploadFalco => &["session:super-admin", "session:admin", "key:falco"],
        Perm::UploadSensor => &["session:super-admin", "session:admin", "key:sensor"],
    }
}

/// Fills path parameters with values that exist for nobody, so an allowed caller reaches the
/// handler and gets a domain answer (404/400), never a side effect on real data.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map(|e| start + e).unwrap();
        let name = &rest[start + 1..end];
        out.push_str(match name {
            n if n.starts_with("file") => "app.css",
            "name" => "retention",
            _ => "999999",
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn request(route: &RouteInfo, who: &Who) -> test::TestRequest {
    let path = concrete(route.path);
    let mut req = test::TestRequest::default()
        .method(route.method.clone())
        .uri(&path)
        .peer_addr("127.0.0.1:50000".parse().unwrap());
    let unsafe_method = matches!(route.method, Method::POST | Method::PUT | Method::PATCH);
    let mut form_csrf = String::new();
    match who {
        Who::Anonymous => {}
        Who::Session { token, csrf, .. } => {
            req = req.cookie(actix_web::cookie::Cookie::new(
                "bulwark_session",
                token.clone(),
            ));
            form_csrf = csrf.clone();
        }
        Who::Key { key, .. } => req = req.insert_header(("x-api-key", key.clone())),
    }
    if route.kind == Kind::Form && route.perm == Perm::Public {
        form_csrf = "pre-login-token".into();
        req = req.cookie(actix_web::cookie::Cookie::new(
            "bulwark_csrf",
            "pre-login-token",
        ));
    }
    if route.csrf_in_query {
        req = req.uri(&format!("{path}?csrf={form_csrf}"));
    }
    match route.kind {
        Kind::Api if unsafe_method => req
            .insert_header(("content-type", "application/json"))
            .set_payload("{}"),
        Kind::Form if route.csrf_in_query => req
            .insert_header(("content-type", "multipart/form-data; boundary=b"))
            .set_payload("--b--\r\n"),
        Kind::Form => req
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(format!("csrf={form_csrf}")),
        _ => req,
    }
}

#[actix_web::test]
async fn every_route_against_every_role_and_scope() {
    let t = InProcess::new();
    let sa = t.user("sa@example.com", Role::SuperAdmin);
    t.user("admin@example.com", Role::Admin);
    let ro = t.user("ro@example.com", Role::ReadOnly);
    let mut principals = vec![Who::Anonymous];
    for (label, email) in [
        ("session:super-admin", "sa@example.com"),
        ("session:admin", "admin@example.com"),
        ("session:read-only", "ro@example.com"),
    ] {
        let (token, csrf) = t.session(email);
        principals.push(Who::Session { label, token, csrf });
    }
    // Keys owned by the super-admin, so only the scope limits them.
    for scope in Scope::ALL {
        let label: &'static str = Box::leak(format!("key:{}", scope.as_str()).into_boxed_str());
        principals.push(Who::Key {
            label,
            key: t.key(sa, &[scope]),
        });
    }
    principals.push(Who::Key {
        label: "key:read-only-owner:read",
        key: t.key(ro, &[Scope::Read]),
    });

    let app = t.service().await;
    let mut routes: Vec<RouteInfo> = t.app.routes.infos().to_vec();
    // Signing out ends the session the other checks use: do those last.
    routes.sort_by_key(|r| r.path.contains("logout"));
    assert!(
        routes.len() >= 40,
        "the route table looks incomplete: {} routes",
        routes.len()
    );
    let mut checked = 0;
    let mut failures = Vec::new();
    for route in &routes {
        for who in &principals {
            let res = test::call_service(&app, request(route, who).to_request()).await;
            let status = res.status().as_u16();
            let location = res
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let may = allowed(route.perm).contains(&who.label());
            let ok = match (who, may) {
                (_, true) => status != 401 && status != 403 && status != 415 && status < 500,
                (Who::Anonymous, false) => match route.kind {
                    Kind::Api => status == 401,
                    Kind::Page | Kind::Form => status == 303 && location.starts_with("/login"),
                },
                // Report uploads answer a key without the tool's scope as a wrong key (401),
                // as m9sweeper does.
                (_, false)
                    if matches!(
                        route.perm,
                        Perm::UploadKubeBench | Perm::UploadKubeHunter | Perm::UploadFalco
                    ) =>
                {
                    status == 401
                }
                (_, false) => status == 403,
            };
            if !ok {
                failures.push(format!(
                    "{} {} ({:?}, {:?}) as {}: got {status} {location}",
                    route.method,
                    route.path,
                    route.kind,
                    route.perm,
                    who.label()
                ));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[actix_web::test]
async fn forms_without_csrf_and_json_calls_without_json_type_are_refused() {
    let t = InProcess::new();
    t.user("sa@example.com", Role::SuperAdmin);
    let (token, csrf) = t.session("sa@example.com");
    let app = t.service().await;
    let cookie = actix_web::cookie::Cookie::new("bulwark_session", token);
    // A form post without the token: 403 and nothing created.
    let req = test::TestRequest::post()
        .uri("/clusters")
        .cookie(cookie.clone())
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload("name=evil")
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), 403);
    // With a wrong token: 403.
    let req = test::TestRequest::post()
        .uri("/clusters")
        .cookie(cookie.clone())
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload("name=evil&csrf=forged")
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), 403);
    assert!(bulwark::clusters::list(t.store()).unwrap().is_empty());
    // With the right token: created.
    let req = test::TestRequest::post()
        .uri("/clusters")
        .cookie(cookie.clone())
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(format!("name=good&csrf={csrf}"))
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), 303);
    assert_eq!(bulwark::clusters::list(t.store()).unwrap().len(), 1);
    // A cookie-authenticated API write that a cross-site form could send (text/plain): refused.
    let req = test::TestRequest::post()
        .uri("/api/v1/clusters")
        .cookie(cookie.clone())
        .insert_header(("content-type", "text/plain"))
        .set_payload(r#"{"name":"csrf-via-text-plain"}"#)
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), 415);
    assert_eq!(bulwark::clusters::list(t.store()).unwrap().len(), 1);
    // Login form without the pre-login cookie: 403.
    let req = test::TestRequest::post()
        .uri("/login")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload("email=sa%40example.com&password=password-1234&csrf=x")
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), 403);
}

/// Hostile input to every route of the table, as a super-admin (so the handlers, not just the
/// gate, see it): nothing may answer 5xx, and every JSON error has the standard shape.
#[actix_web::test]
async fn hostile_input_never_causes_a_server_error() {
    let t = InProcess::with(|c| c.http.max_body_bytes = 64 * 1024);
    t.user("sa@example.com", Role::SuperAdmin);
    let (token, csrf) = t.session("sa@example.com");
    let app = t.service().await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", b"\xff\xfe\x00garbage".to_vec()),
        ("application/json", deep.into_bytes()),
        ("application/json", b"{\"name\": 1e999999, \"scopes\": {}}".to_vec()),
        ("application/json", b"null".to_vec()),
        ("application/json", b"[]".to_vec()),
        ("application/json", format!("{{\"name\":\"{}\"}}", "x".repeat(100_000)).into_bytes()),
        ("application/json", br#"{"email":"a@b","password":"\u0000\u0000","role":"super-admin","name":"\u202e<svg onload=alert(1)>"}"#.to_vec()),
        ("application/x-www-form-urlencoded", format!("csrf={csrf}&name=%FF%FE&tags=%00&email=%&role=").into_bytes()),
        ("text/plain", b"hello".to_vec()),
    ];
    let mut routes: Vec<RouteInfo> = t.app.routes.infos().to_vec();
    routes.sort_by_key(|r| r.path.contains("logout"));
    let mut failures = Vec::new();
    for route in &routes {
        let paths = [
            concrete(route.path),
            concrete(route.path).replace("999999", "%FF%00"),
            concrete(route.path).replace("999999", &"9".repeat(400)),
        ];
        for path in paths {
            for query in [
                "",
                "?limit=-1&since=%FF&before=abc&q=%00",
                "?key=&q=%5B%5B%5B&kind=%00",
            ] {
                for (ctype, body) in &bodies {
                    let req = test::TestRequest::default()
                        .method(route.method.clone())
                        .uri(&format!("{path}{query}"))
                        .cookie(actix_web::cookie::Cookie::new(
                            "bulwark_session",
                            token.clone(),
                        ))
                        .insert_header(("content-type", *ctype))
                        .set_payload(body.clone())
                        .to_request();
                    let res = test::call_service(&app, req).await;
                    let status = res.status().as_u16();
                    let is_json = res
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|c| c.starts_with("application/json"));
                    let bytes = test::read_body(res).await;
                    if status >= 500 {
                        failures.push(format!(
                            "{} {path}{query} [{ctype}] → {status}",
                            route.method
                        ));
                    } else if status >= 400 && is_json {
                        let v: serde_json::Value =
                            serde_json::from_slice(&bytes).unwrap_or_default();
                        if v["error"]["code"].as_str().is_none()
                            || v["error"]["message"].as_str().is_none()
                        {
                            failures.push(format!(
                                "{} {path}{query}: error body without code/message: {v}",
                                route.method
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
