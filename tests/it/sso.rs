//! Sign-on through a real OpenLDAP (tests/services: slapd with a posixGroup/memberUid directory
//! and a groupOfNames/member-DN directory): providers managed over the API with sealed secrets,
//! each role mapping, the default role (and `none`), wrong and empty passwords, filter-injection
//! usernames, a directory that is down, accounts created and re-synced, sessions ended when a
//! provider is disabled.

use bulwark::http::Role;
use serde_json::{json, Value};

use crate::support::{call, Caller, InProcess};

fn ldap_url() -> String {
    std::env::var("BULWARK_TEST_LDAP").unwrap_or_else(|_| {
        panic!("BULWARK_TEST_LDAP is unset: run tests/services/start.sh DIR ldap and source DIR/endpoints.env (tests/run-all.sh does)")
    })
}

/// A provider for one of the two test directories.
fn provider(name: &str, suffix: &str, posix: bool) -> Value {
    let (class, member, member_user) = if posix {
        ("posixGroup", "memberUid", "uid")
    } else {
        ("groupOfNames", "member", "dn")
    };
    json!({
        "type": "ldap", "name": name, "url": ldap_url(),
        "bind_dn": format!("cn=admin,{suffix}"), "bind_password": "admin-pass-1",
        "user_search_base": format!("ou=people,{suffix}"), "username_attribute": "uid",
        "group_search_base": format!("ou=groups,{suffix}"), "group_object_class": class,
        "group_member_attribute": member, "group_member_user_attribute": member_user,
        "group_auth_level_attribute": "cn",
        "group_value_read_only": "bulwark-viewers", "group_value_admin": "bulwark-admins",
        "group_value_super_admin": "bulwark-super", "default_role": "none"
    })
}

fn login(provider: &str, username: &str, password: &str) -> actix_web::test::TestRequest {
    Caller::default().post(
        "/api/v1/auth/login",
        json!({"provider": provider, "username": username, "password": password}),
    )
}

#[actix_web::test]
async fn directories_sign_users_in_with_their_group_roles() {
    let t = InProcess::new();
    t.user("root@example.com", Role::SuperAdmin);
    t.user("admin@example.com", Role::Admin);
    let (root, root_csrf) = t.session("root@example.com");
    let (admin, _) = t.session("admin@example.com");
    let app = t.service().await;
    let r = Caller::session(&root);

    // Only super-admins manage sign-on methods; the bind password is write-only and sealed.
    let (s, _, _) = call(&app, Caller::session(&admin).get("/api/v1/sso/providers")).await;
    assert_eq!(s, 403);
    let (s, p, _) = call(
        &app,
        r.post(
            "/api/v1/sso/providers",
            provider("posix", "dc=posix,dc=test", true),
        ),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["has_bind_password"], true);
    assert!(
        p.get("bind_password").is_none() && !p.to_string().contains("admin-pass-1"),
        "{p}"
    );
    let posix = p["id"].as_u64().unwrap();
    let (s, n, _) = call(
        &app,
        r.post(
            "/api/v1/sso/providers",
            provider("names", "dc=names,dc=test", false),
        ),
    )
    .await;
    assert_eq!(s, 201, "{n}");
    let db = std::fs::read(t._dir.path().join("data/bulwark.redb")).unwrap();
    assert!(
        !db.windows(12).any(|w| w == b"admin-pass-1"),
        "sealed in the store"
    );
    let (s, v, _) = call(
        &app,
        r.post(&format!("/api/v1/sso/providers/{posix}/test"), json!({})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["message"].as_str().unwrap().contains("4 users"), "{v}");
    // Bad settings are refused by name.
    let mut bad = provider("bad", "dc=posix,dc=test", true);
    bad["username_attribute"] = json!("uid)(x=*");
    let (s, v, _) = call(&app, r.post("/api/v1/sso/providers", bad)).await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("username_attribute"), "{v}");

    // A local account is never taken over by a directory user with the same email.
    t.user("bob@names.test", Role::ReadOnly);
    let (s, v, _) = call(&app, login("names", "bob", "bob-pass-1")).await;
    assert_eq!(s, 401, "{v}");

    // Each mapping, in both directories: the highest group wins; accounts are created.
    for dir in ["posix", "names"] {
        for (user, role) in [
            ("alice", "super-admin"),
            ("bob", "admin"),
            ("carol", "read-only"),
        ] {
            if (dir, user) == ("names", "bob") {
                continue;
            }
            let (s, v, _) = call(&app, login(dir, user, &format!("{user}-pass-1"))).await;
            assert_eq!(s, 200, "{dir} {user}: {v}");
            assert_eq!(v["role"], role, "{dir} {user}: {v}");
            assert_eq!(v["email"], format!("{user}@{dir}.test"));
        }
    }
    let (_, users, _) = call(&app, r.get("/api/v1/users")).await;
    let alice = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "alice@posix.test")
        .unwrap()
        .clone();
    assert_eq!(alice["source"], "posix", "{users}");

    // Dave's only group maps to nothing: refused while the default is none, then read-only.
    let (s, v, _) = call(&app, login("posix", "dave", "dave-pass-1")).await;
    assert_eq!(s, 401, "{v}");
    let (s, _, _) = call(
        &app,
        r.patch(
            &format!("/api/v1/sso/providers/{posix}"),
            json!({"default_role": "read-only"}),
        ),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v, _) = call(&app, login("posix", "dave", "dave-pass-1")).await;
    assert_eq!((s, v["role"].as_str()), (200, Some("read-only")), "{v}");

    // Roles follow the directory at every sign-in.
    let (s, _, _) = call(
        &app,
        r.patch(
            &format!("/api/v1/sso/providers/{posix}"),
            json!({"group_value_admin": "bulwark-viewers"}),
        ),
    )
    .await;
    assert_eq!(s, 200);
    let (_, v, _) = call(&app, login("posix", "carol", "carol-pass-1")).await;
    assert_eq!(v["role"], "admin", "re-synced: {v}");

    // Wrong, empty and hostile credentials never sign in (and never bind anonymously).
    for (user, pw) in [
        ("alice", "wrong-pass"),
        ("alice", ""),
        ("", "x"),
        ("*", "alice-pass-1"),
        (")(uid=*", "alice-pass-1"),
        ("alice)(|(uid=*", "alice-pass-1"),
        ("\\", "alice-pass-1"),
        ("al*", "alice-pass-1"),
    ] {
        let (s, v, _) = call(&app, login("posix", user, pw)).await;
        assert_eq!(s, 401, "{user:?}/{pw:?}: {v}");
    }
    let (_, log, _) = call(
        &app,
        r.get("/api/v1/audit-log?action=login.failure&limit=100"),
    )
    .await;
    let text = log.to_string();
    assert!(
        text.contains("posix: wrong password") && text.contains("posix: no such user"),
        "{text}"
    );
    assert!(text.contains("empty username or password"), "{text}");
    assert!(
        text.contains("bob@names.test is an account of this appliance (local)"),
        "{text}"
    );
    assert!(!text.contains("alice-pass-1"), "never the password");
    // An account of the directory has no local password.
    let (s, _, _) = call(
        &app,
        Caller::default().post(
            "/api/v1/auth/login",
            json!({"email": "alice@posix.test", "password": ""}),
        ),
    )
    .await;
    assert_eq!(s, 401);

    // A directory that does not answer: a clear 503, and local sign-in still works.
    let mut down = provider("down", "dc=posix,dc=test", true);
    down["url"] = json!("ldap://127.0.0.1:1");
    down["connect_timeout_seconds"] = json!(2);
    let (s, _, _) = call(&app, r.post("/api/v1/sso/providers", down)).await;
    assert_eq!(s, 201);
    let started = std::time::Instant::now();
    let (s, v, _) = call(&app, login("down", "alice", "alice-pass-1")).await;
    assert_eq!(s, 503, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{v}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let (s, _, _) = call(
        &app,
        Caller::default().post(
            "/api/v1/auth/login",
            json!({"email": "root@example.com", "password": "password-1234"}),
        ),
    )
    .await;
    assert!(
        s == 200 || s == 401,
        "local sign-in is not blocked by the directory ({s})"
    );

    // Disabling a provider ends its users' sessions.
    let (s, v, h) = call(&app, login("posix", "bob", "bob-pass-1")).await;
    assert_eq!(s, 200, "{v}");
    let cookie = h
        .get_all("set-cookie")
        .map(|c| c.to_str().unwrap().to_string())
        .find(|c| c.starts_with("bulwark_session="))
        .unwrap();
    let token = cookie
        .trim_start_matches("bulwark_session=")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (s, _, _) = call(&app, Caller::session(&token).get("/api/v1/me")).await;
    assert_eq!(s, 200);
    let (s, _, _) = call(
        &app,
        r.patch(
            &format!("/api/v1/sso/providers/{posix}"),
            json!({"enabled": false}),
        ),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = call(&app, Caller::session(&token).get("/api/v1/me")).await;
    assert_eq!(s, 401, "the session ended with the provider");
    let (s, _, _) = call(&app, login("posix", "bob", "bob-pass-1")).await;
    assert_eq!(s, 404, "a disabled provider signs nobody in");

    // The console: the Sign-on methods page (super-admins), and the sign-in page's directory.
    let (s, html, _) = call(&app, r.get("/sso")).await;
    assert_eq!(s, 200);
    let html = html.as_str().unwrap();
    assert!(
        html.contains(">posix</a>") && html.contains("Add an LDAP directory"),
        "{html}"
    );
    assert!(!html.contains("admin-pass-1"));
    let (s, _, _) = call(&app, Caller::session(&admin).get("/sso")).await;
    assert_eq!(s, 403);
    let (s, _, _) = call(
        &app,
        r.post(&format!("/api/v1/sso/providers/{posix}/test"), json!({})),
    )
    .await;
    assert_eq!(s, 200);
    let form = |body: String| Caller::session(&root).form("/sso", body);
    let (s, html, _) = call(
        &app,
        form(format!("csrf={root_csrf}&name=typed&url=ldap%3A%2F%2F127.0.0.1%3A3389&bind_dn=cn%3Dx&user_search_base=ou%3Dp&username_attribute=uid%29&group_search_base=ou%3Dg&group_object_class=posixGroup&group_member_attribute=memberUid&group_member_user_attribute=uid&group_auth_level_attribute=cn&connect_timeout_seconds=5&timeout_seconds=10&default_role=none&enabled=1")),
    )
    .await;
    assert_eq!(s, 400);
    let html = html.as_str().unwrap();
    assert!(
        html.contains("value=\"typed\"")
            && html.contains("name=\"username_attribute\" value=\"uid)\" aria-invalid=\"true\""),
        "{html}"
    );
    let (s, _, _) = call(
        &app,
        r.patch(
            &format!("/api/v1/sso/providers/{posix}"),
            json!({"enabled": true}),
        ),
    )
    .await;
    assert_eq!(s, 200);
    let (s, html, _) = call(&app, Caller::default().get("/login")).await;
    assert_eq!(s, 200);
    let html = html.as_str().unwrap();
    assert!(
        html.contains("<option value=\"posix\">directory posix (username)</option>"),
        "{html}"
    );
    let (s, _, h) = call(
        &app,
        actix_web::test::TestRequest::post()
            .uri("/login")
            .cookie(actix_web::cookie::Cookie::new("bulwark_csrf", "pre"))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload("csrf=pre&provider=posix&email=carol&password=carol-pass-1&next=%2F"),
    )
    .await;
    assert_eq!(s, 303, "the sign-in form signs a directory user in");
    assert!(h
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("bulwark_session="));
}

/// `ldaps://` and StartTLS against the same slapd, whose certificate comes from a CA made for
/// the run: trusted through the provider's `ca_pem`, refused (clearly) without it.
#[actix_web::test]
async fn directories_over_tls() {
    let (ldaps, ca) = match (
        std::env::var("BULWARK_TEST_LDAPS"),
        std::env::var("BULWARK_TEST_LDAP_CA"),
    ) {
        (Ok(u), Ok(c)) => (u, std::fs::read_to_string(c).unwrap()),
        _ => panic!("BULWARK_TEST_LDAPS is unset: run tests/services/start.sh DIR ldap and source DIR/endpoints.env (tests/run-all.sh does)"),
    };
    let t = InProcess::new();
    t.user("root@example.com", Role::SuperAdmin);
    let (root, _) = t.session("root@example.com");
    let app = t.service().await;
    let r = Caller::session(&root);
    let mut tls = provider("tls", "dc=posix,dc=test", true);
    tls["url"] = json!(ldaps);
    tls["ca_pem"] = json!(ca);
    let mut untrusted = provider("untrusted", "dc=posix,dc=test", true);
    untrusted["url"] = json!(ldaps);
    let mut starttls = provider("starttls", "dc=posix,dc=test", true);
    starttls["starttls"] = json!(true);
    starttls["ca_pem"] = json!(ca);
    for p in [tls, untrusted, starttls] {
        let (s, v, _) = call(&app, r.post("/api/v1/sso/providers", p)).await;
        assert_eq!(s, 201, "{v}");
    }
    // (Two users: an account belongs to the provider that first proved it.)
    for (name, user, role) in [("tls", "bob", "admin"), ("starttls", "carol", "read-only")] {
        let (s, v, _) = call(&app, login(name, user, &format!("{user}-pass-1"))).await;
        assert_eq!((s, v["role"].as_str()), (200, Some(role)), "{name}: {v}");
    }
    let (s, v, _) = call(&app, login("untrusted", "bob", "bob-pass-1")).await;
    assert_eq!(s, 503, "a certificate the appliance cannot trust: {v}");
    let mut both = provider("both", "dc=posix,dc=test", true);
    both["url"] = json!(ldaps);
    both["starttls"] = json!(true);
    let (s, v, _) = call(&app, r.post("/api/v1/sso/providers", both)).await;
    assert_eq!(s, 400, "StartTLS over ldaps:// makes no sense: {v}");

    // The same CA in the appliance's `[outbound] ca_bundle` instead of the provider's ca_pem.
    let ca_file = std::env::var("BULWARK_TEST_LDAP_CA").unwrap();
    let t = InProcess::with(|c| c.outbound.ca_bundle = ca_file);
    t.user("root@example.com", Role::SuperAdmin);
    let (root, _) = t.session("root@example.com");
    let app = t.service().await;
    let mut bundled = provider("bundled", "dc=posix,dc=test", true);
    bundled["url"] = json!(ldaps);
    let (s, v, _) = call(
        &app,
        Caller::session(&root).post("/api/v1/sso/providers", bundled),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v, _) = call(&app, login("bundled", "bob", "bob-pass-1")).await;
    assert_eq!((s, v["role"].as_str()), (200, Some("admin")), "{v}");
}

/// Providers declared in the configuration file exist at start and follow the file on the next
/// start; a table that is not a provider is refused by number.
#[actix_web::test]
async fn providers_come_from_the_configuration_file() {
    let url = ldap_url();
    let file = format!(
        r#"
[[sso.providers]]
type = "ldap"
name = "corp"
url = "{url}"
bind_dn = "cn=admin,dc=posix,dc=test"
bind_password = "admin-pass-1"
user_search_base = "ou=people,dc=posix,dc=test"
group_search_base = "ou=groups,dc=posix,dc=test"
group_auth_level_attribute = "cn"
group_value_admin = "bulwark-admins"
default_role = "read-only"
"#
    );
    let config: toml::Table = toml::from_str(&file).unwrap();
    let providers: Vec<toml::Table> = config["sso"]["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_table().unwrap().clone())
        .collect();
    let declared = providers.clone();
    let t = InProcess::with(move |c| c.sso.providers = declared);
    let app = t.service().await;
    let (s, v, _) = call(&app, login("corp", "dave", "dave-pass-1")).await;
    assert_eq!((s, v["role"].as_str()), (200, Some("read-only")), "{v}");
    // The next start with a changed file: the provider follows it.
    let mut changed = providers.clone();
    changed[0].insert("default_role".into(), toml::Value::String("none".into()));
    let sealer = bulwark::secrets::Sealer::open(&t._dir.path().join("data")).unwrap();
    bulwark::sso::apply_config(t.store(), &sealer, &changed).unwrap();
    let (s, _, _) = call(&app, login("corp", "dave", "dave-pass-1")).await;
    assert_eq!(s, 401, "dave's only group maps to nothing now");
    let mut broken = providers;
    broken[0].insert("colour".into(), toml::Value::String("blue".into()));
    let e = bulwark::sso::apply_config(t.store(), &sealer, &broken).unwrap_err();
    assert!(
        e.to_string().contains("#1") && e.to_string().contains("colour"),
        "{e}"
    );
}

/// Groups read from the user's `memberOf` (slapd's memberof overlay keeps it): each named group
/// is read by its DN, and its auth-level value maps to the role.
#[actix_web::test]
async fn groups_from_member_of() {
    let t = InProcess::new();
    t.user("root@example.com", Role::SuperAdmin);
    let (root, _) = t.session("root@example.com");
    let app = t.service().await;
    let mut p = provider("memberof", "dc=names,dc=test", false);
    p["member_of_attribute"] = json!("memberOf");
    p["group_value_admin"] = json!("bulwark-memberof");
    let (s, v, _) = call(
        &app,
        Caller::session(&root).post("/api/v1/sso/providers", p),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v, _) = call(&app, login("memberof", "dave", "dave-pass-1")).await;
    assert_eq!((s, v["role"].as_str()), (200, Some("admin")), "{v}");
    // Carol's entry names no group (her groups were loaded before the overlay saw them).
    let (s, _, _) = call(&app, login("memberof", "carol", "carol-pass-1")).await;
    assert_eq!(s, 401, "no memberOf, default none");
    // Nested groups need groups that list DNs.
    let mut nested = provider("nested", "dc=posix,dc=test", true);
    nested["nested_groups"] = json!(true);
    let (s, v, _) = call(
        &app,
        Caller::session(&root).post("/api/v1/sso/providers", nested),
    )
    .await;
    assert_eq!(s, 400, "{v}");
}

/// OpenID Connect against the real `oidc-provider` (tests/services: its HTML login form filled
/// in over HTTP): the code flow with state, nonce and PKCE; group claim → role; a disallowed
/// domain; a replayed callback and an unknown state; a provider that is down.
#[actix_web::test]
async fn openid_connect_sign_in() {
    let issuer = std::env::var("BULWARK_TEST_OIDC_ISSUER").unwrap_or_else(|_| {
        panic!("BULWARK_TEST_OIDC_ISSUER is unset: run tests/services/start.sh DIR oidc and source DIR/endpoints.env (tests/run-all.sh does)")
    });
    let t = InProcess::with(|c| c.http.public_url = "https://127.0.0.1:8443".into());
    t.user("root@example.com", Role::SuperAdmin);
    let (root, root_csrf) = t.session("root@example.com");
    let app = t.service().await;
    let r = Caller::session(&root);
    let (s, p, _) = call(
        &app,
        r.post(
            "/api/v1/sso/providers",
            json!({"type": "oidc", "name": "corp", "issuer": issuer, "client_id": "bulwark",
                   "client_secret": "bulwark-client-secret", "scopes": ["openid", "email", "groups"],
                   "allowed_domains": ["corp.test"], "group_claim": "groups",
                   "group_roles": {"bulwark-admins": "admin", "bulwark-super": "super-admin"},
                   "default_role": "none"}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["has_client_secret"], true);
    assert!(!p.to_string().contains("bulwark-client-secret"));
    let id = p["id"].as_u64().unwrap();
    let (_, v, _) = call(
        &app,
        r.post(&format!("/api/v1/sso/providers/{id}/test"), json!({})),
    )
    .await;
    assert_eq!(v["ok"], true, "{v}");

    // A browser: the provider's login form, then back to the callback (not followed here).
    let sign_in_at = |provider: &'static str, user: &'static str| {
        let (app, issuer) = (&app, issuer.clone());
        // Each sign-in in a fresh browser (the provider remembers who signed in).
        let idp = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        async move {
            let (s, _, h) = call(
                app,
                Caller::default().get(&format!("/auth/sso/{provider}/login?next=/images")),
            )
            .await;
            assert_eq!(s, 303);
            let mut url = h.get("location").unwrap().to_str().unwrap().to_string();
            assert!(
                url.contains("code_challenge=") && url.contains("nonce=") && url.contains("state="),
                "{url}"
            );
            for _ in 0..10 {
                if url.starts_with("https://127.0.0.1:8443/") {
                    return url.trim_start_matches("https://127.0.0.1:8443").to_string();
                }
                let res = if url.contains("/interaction/") && !url.ends_with("/login") {
                    let page = idp.get(&url).send().await.unwrap();
                    if page.status() == 303 {
                        page
                    } else {
                        let html = page.text().await.unwrap();
                        assert!(html.contains("id=\"login\""), "{html}");
                        idp.post(format!("{url}/login"))
                            .form(&[("username", user), ("password", &format!("{user}-pass-1"))])
                            .send()
                            .await
                            .unwrap()
                    }
                } else {
                    idp.get(&url).send().await.unwrap()
                };
                assert_eq!(res.status(), 303, "{url}");
                let next = res.headers()["location"].to_str().unwrap().to_string();
                url = if next.starts_with('/') {
                    format!("{issuer}{next}")
                } else {
                    next
                };
            }
            panic!("never came back to the callback");
        }
    };
    let sign_in = |user: &'static str| sign_in_at("corp", user);
    let callback = sign_in("bob").await;
    assert!(
        callback.starts_with("/auth/sso/corp/callback?code="),
        "{callback}"
    );
    let (s, body, h) = call(&app, Caller::default().get(&callback)).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.as_str().unwrap().contains("url=/images"), "{body}");
    let cookie = h.get("set-cookie").unwrap().to_str().unwrap().to_string();
    let token = cookie
        .trim_start_matches("bulwark_session=")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (s, me, _) = call(&app, Caller::session(&token).get("/api/v1/me")).await;
    assert_eq!(
        (s, me["role"].as_str(), me["email"].as_str()),
        (200, Some("admin"), Some("bob@corp.test")),
        "{me}"
    );
    // The same callback again: the state was used.
    let (s, _, _) = call(&app, Caller::default().get(&callback)).await;
    assert_eq!(s, 400, "a replayed callback is refused");
    let (s, _, _) = call(
        &app,
        Caller::default().get("/auth/sso/corp/callback?code=x&state=made-up"),
    )
    .await;
    assert_eq!(s, 400, "an unknown state is refused");
    // Alice's group maps to super-admin; Erin's domain is not allowed.
    let (s, _, _) = call(&app, Caller::default().get(&sign_in("alice").await)).await;
    assert_eq!(s, 200);
    let (s, body, _) = call(&app, Caller::default().get(&sign_in("erin").await)).await;
    assert_eq!(s, 401, "{body}");
    let (_, log, _) = call(&app, r.get("/api/v1/audit-log?action=login&limit=50")).await;
    assert!(
        log.to_string()
            .contains("the domain elsewhere.test is not allowed"),
        "{log}"
    );

    // A public client: no secret, PKCE alone.
    let (s, v, _) = call(
        &app,
        r.post(
            "/api/v1/sso/providers",
            json!({"type": "oidc", "name": "corp-public", "issuer": issuer, "client_id": "bulwark-public",
                   "scopes": ["openid", "email"], "default_role": "read-only"}),
        ),
    )
    .await;
    assert_eq!(
        (s, v["has_client_secret"].as_bool()),
        (201, Some(false)),
        "{v}"
    );
    let callback = sign_in_at("corp-public", "erin").await;
    let (s, body, h) = call(&app, Caller::default().get(&callback)).await;
    let (_, log, _) = call(&app, r.get("/api/v1/audit-log?action=login&limit=3")).await;
    assert_eq!(s, 200, "{callback} {body} {log}");
    let cookie = h.get("set-cookie").unwrap().to_str().unwrap().to_string();
    let token = cookie
        .trim_start_matches("bulwark_session=")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (_, me, _) = call(&app, Caller::session(&token).get("/api/v1/me")).await;
    assert_eq!(me["role"], "read-only", "the default role: {me}");

    // The Sign-on methods page adds OpenID Connect providers too (a bad role line is named).
    let oidc_form = |roles: &str| {
        format!(
            "csrf={root_csrf}&kind=oidc&name=formed&issuer={}&client_id=bulwark&client_secret=s3&scopes=openid+email&allowed_domains=corp.test&group_claim=groups&group_roles={}&default_role=none&enabled=1",
            url::form_urlencoded::byte_serialize(issuer.as_bytes()).collect::<String>(),
            url::form_urlencoded::byte_serialize(roles.as_bytes()).collect::<String>()
        )
    };
    let (s, html, _) = call(&app, r.form("/sso", oidc_form("bulwark-admins admin"))).await;
    assert_eq!(s, 400);
    let html = html.as_str().unwrap();
    assert!(
        html.contains("group_roles: line 1")
            && html.contains(
                "id=\"oidc-group_roles\" name=\"group_roles\" rows=\"3\" aria-invalid=\"true\""
            ),
        "{html}"
    );
    let (s, _, _) = call(
        &app,
        r.form(
            "/sso",
            oidc_form("bulwark-admins = admin\nbulwark-super = super-admin"),
        ),
    )
    .await;
    assert_eq!(s, 303);
    let (_, list, _) = call(&app, r.get("/api/v1/sso/providers")).await;
    let formed = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "formed")
        .unwrap()
        .clone();
    assert_eq!(
        formed["group_roles"],
        json!({"bulwark-admins": "admin", "bulwark-super": "super-admin"}),
        "{formed}"
    );
    assert_eq!(formed["has_client_secret"], true);

    // The sign-in page has a button for it.
    let (_, html, _) = call(&app, Caller::default().get("/login?next=/images")).await;
    assert!(
        html.as_str()
            .unwrap()
            .contains("href=\"/auth/sso/corp/login?next=/images\""),
        "{html}"
    );

    // A provider that is down: a clear page, and local sign-in is untouched.
    let (s, _, _) = call(
        &app,
        r.post("/api/v1/sso/providers", json!({"type": "oidc", "name": "gone", "issuer": "http://127.0.0.1:1", "client_id": "x"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, body, _) = call(&app, Caller::default().get("/auth/sso/gone/login")).await;
    assert_eq!(s, 503, "{body}");
    assert!(
        body.as_str()
            .unwrap()
            .contains("Local accounts can still sign in"),
        "{body}"
    );
}

/// A hostile identity provider (in the test: the real one never misbehaves on demand): its
/// discovery and keys are sound, but the token endpoint answers whatever ID token the test
/// scripts, signed with ES256.
mod hostile_provider {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use base64::Engine;
    use serde_json::{json, Value};

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    pub fn key() -> EcdsaKeyPair {
        EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap()
    }

    /// A compact JWS of `claims` signed by `key`.
    pub fn sign(key: &EcdsaKeyPair, claims: &Value) -> String {
        let head = b64(json!({"alg": "ES256", "kid": "k1", "typ": "JWT"})
            .to_string()
            .as_bytes());
        let body = b64(claims.to_string().as_bytes());
        let input = format!("{head}.{body}");
        let sig = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    }

    /// Serves discovery (or, with `garbage`, something that is not a discovery document),
    /// `published`'s key and a userinfo endpoint; the token endpoint answers `*token`.
    pub fn start(published: &EcdsaKeyPair, token: Arc<Mutex<String>>, garbage: bool) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let point = published.public_key().as_ref().to_vec();
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                                    "alg": "ES256", "use": "sig", "kid": "k1"}]});
        let discovery = json!({"issuer": issuer, "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"), "jwks_uri": format!("{issuer}/jwks"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"]});
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let answer = if line.contains("/.well-known/openid-configuration") && garbage {
                    "{\"issuer\": 17, \"not\": [\"a discovery document\"".to_string()
                } else if line.contains("/.well-known/openid-configuration") {
                    discovery.to_string()
                } else if line.contains("/jwks") {
                    jwks.to_string()
                } else if line.contains("/userinfo") {
                    // Groups kept out of the ID token, for subject u1 only.
                    json!({"sub": "u1", "groups": ["sec-admins"]}).to_string()
                } else {
                    json!({"access_token": "a", "token_type": "Bearer", "expires_in": 60,
                           "id_token": token.lock().unwrap().clone()})
                    .to_string()
                };
                let mut c = conn;
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        issuer
    }
}

/// ID tokens that must not sign anyone in: another audience, another issuer, expired beyond
/// the leeway, signed by a key the provider does not publish, tampered, with another nonce.
#[actix_web::test]
async fn bad_id_tokens_sign_nobody_in() {
    let published = hostile_provider::key();
    let token = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let issuer = hostile_provider::start(&published, token.clone(), false);
    let t = InProcess::with(|c| c.http.public_url = "https://127.0.0.1:8443".into());
    t.user("root@example.com", Role::SuperAdmin);
    let (root, _) = t.session("root@example.com");
    let app = t.service().await;
    let (s, v, _) = call(
        &app,
        Caller::session(&root).post(
            "/api/v1/sso/providers",
            json!({"type": "oidc", "name": "evil", "issuer": issuer, "client_id": "bulwark",
                   "client_secret": "s", "default_role": "read-only"}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let now = chrono::Utc::now().timestamp();
    let other_key = hostile_provider::key();
    let good = |nonce: &str| {
        json!({"iss": issuer, "aud": "bulwark", "sub": "u1", "email": "mallory@corp.test",
               "iat": now, "exp": now + 300, "nonce": nonce})
    };
    type Case<'a> = (&'static str, Box<dyn Fn(&str) -> String + 'a>, u16);
    let cases: Vec<Case> = vec![
        (
            "sound",
            Box::new(|n| hostile_provider::sign(&published, &good(n))),
            200,
        ),
        (
            "oversized claims",
            Box::new(|n| {
                let mut c = good(n);
                c["email"] = json!("big@corp.test");
                c["groups"] = json!((0..20_000)
                    .map(|i| format!("group-{i}"))
                    .collect::<Vec<_>>());
                hostile_provider::sign(&published, &c)
            }),
            200,
        ),
        (
            "another audience",
            Box::new(|n| {
                let mut c = good(n);
                c["aud"] = json!("someone-else");
                hostile_provider::sign(&published, &c)
            }),
            401,
        ),
        (
            "another issuer",
            Box::new(|n| {
                let mut c = good(n);
                c["iss"] = json!("http://127.0.0.1:9");
                hostile_provider::sign(&published, &c)
            }),
            401,
        ),
        (
            "expired beyond the leeway",
            Box::new(|n| {
                let mut c = good(n);
                c["iat"] = json!(now - 3600);
                c["exp"] = json!(now - 600);
                hostile_provider::sign(&published, &c)
            }),
            401,
        ),
        (
            "an unknown key",
            Box::new(|n| hostile_provider::sign(&other_key, &good(n))),
            401,
        ),
        (
            "tampered",
            Box::new(|n| {
                let jws = hostile_provider::sign(&published, &good(n));
                let mut c = good(n);
                c["email"] = json!("root@example.com");
                let forged = base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    c.to_string(),
                );
                let parts: Vec<&str> = jws.split('.').collect();
                format!("{}.{forged}.{}", parts[0], parts[2])
            }),
            401,
        ),
        (
            "another nonce",
            Box::new(|_| hostile_provider::sign(&published, &good("not-the-one"))),
            401,
        ),
    ];
    for (what, make, want) in cases {
        let (s, _, h) = call(&app, Caller::default().get("/auth/sso/evil/login")).await;
        assert_eq!(s, 303, "{what}");
        let url = url::Url::parse(h.get("location").unwrap().to_str().unwrap()).unwrap();
        let param = |k: &str| {
            url.query_pairs()
                .find(|(n, _)| n == k)
                .unwrap()
                .1
                .into_owned()
        };
        *token.lock().unwrap() = make(&param("nonce"));
        let (s, body, _) = call(
            &app,
            Caller::default().get(&format!(
                "/auth/sso/evil/callback?code=c&state={}",
                param("state")
            )),
        )
        .await;
        // Refusals are 401, or 429 once the address has failed too often.
        let refused = |s: u16| s == 401 || s == 429;
        assert!(
            s == want || (want == 401 && refused(s)),
            "{what}: {s} {body}"
        );
    }
    let (_, log, _) = call(
        &app,
        Caller::session(&root).get("/api/v1/audit-log?action=login.failure&limit=50"),
    )
    .await;
    assert!(
        log.to_string().contains("the ID token does not hold"),
        "{log}"
    );
    // The forged email never became an account.
    let (_, users, _) = call(&app, Caller::session(&root).get("/api/v1/users")).await;
    assert_eq!(
        users["items"].as_array().unwrap().len(),
        3,
        "root, mallory and big only: {users}"
    );

    // A provider whose discovery document is malformed: a clear 503, no sign-in started.
    let garbage = hostile_provider::start(&published, token.clone(), true);
    let (s, v, _) = call(
        &app,
        Caller::session(&root).post(
            "/api/v1/sso/providers",
            json!({"type": "oidc", "name": "garbled", "issuer": garbage, "client_id": "bulwark"}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, body, _) = call(&app, Caller::default().get("/auth/sso/garbled/login")).await;
    assert_eq!(s, 503, "{body}");
    assert!(body.as_str().unwrap().contains("discovery"), "{body}");
}

/// A group claim absent from the ID token is read from the userinfo endpoint, and only when
/// the userinfo answer is about the same subject.
#[actix_web::test]
async fn groups_from_the_userinfo_endpoint() {
    let published = hostile_provider::key();
    let token = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let issuer = hostile_provider::start(&published, token.clone(), false);
    let t = InProcess::with(|c| c.http.public_url = "https://127.0.0.1:8443".into());
    t.user("root@example.com", Role::SuperAdmin);
    let (root, _) = t.session("root@example.com");
    let app = t.service().await;
    let (s, v, _) = call(
        &app,
        Caller::session(&root).post(
            "/api/v1/sso/providers",
            json!({"type": "oidc", "name": "groups", "issuer": issuer, "client_id": "bulwark",
                   "client_secret": "s", "default_role": "read-only", "group_claim": "groups",
                   "group_roles": {"sec-admins": "admin"}}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let now = chrono::Utc::now().timestamp();
    for (sub, email, role) in [
        ("u1", "ursula@corp.test", "admin"),
        ("u2", "victor@corp.test", "read-only"),
    ] {
        let (s, _, h) = call(&app, Caller::default().get("/auth/sso/groups/login")).await;
        assert_eq!(s, 303);
        let url = url::Url::parse(h.get("location").unwrap().to_str().unwrap()).unwrap();
        let param = |k: &str| {
            url.query_pairs()
                .find(|(n, _)| n == k)
                .unwrap()
                .1
                .into_owned()
        };
        *token.lock().unwrap() = hostile_provider::sign(
            &published,
            &json!({"iss": issuer, "aud": "bulwark", "sub": sub, "email": email,
                    "iat": now, "exp": now + 300, "nonce": param("nonce")}),
        );
        let (s, body, _) = call(
            &app,
            Caller::default().get(&format!(
                "/auth/sso/groups/callback?code=c&state={}",
                param("state")
            )),
        )
        .await;
        assert_eq!(s, 200, "{sub}: {body}");
        let (_, users, _) = call(&app, Caller::session(&root).get("/api/v1/users")).await;
        let user = users["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .unwrap_or_else(|| panic!("{email} in {users}"))
            .clone();
        assert_eq!(user["role"], role, "{sub}: {user}");
    }
}
