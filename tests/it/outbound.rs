//! Outbound connections through a real proxy (tinyproxy) and to a registry whose certificate
//! an in-house CA signed: `bulwark verify` with the usual proxy variables and the extra-CA
//! variable, the appliance with `[outbound]` in its configuration, and proxies that refuse or
//! hang.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulwark::http::Role;
use serde_json::{json, Value};

use crate::scanner::{start_registry_with, KillOnDrop};
use crate::signatures::{hanging_registry, payload, verify_with, Key, Registry};
use crate::support::{free_port, Caller, InProcess};

/// tinyproxy on a free loopback port, letting in only `allow`; its address and log file.
fn tinyproxy(dir: &Path, allow: &str) -> (KillOnDrop, String, std::path::PathBuf) {
    assert!(
        Path::new("/usr/bin/tinyproxy").exists(),
        "no tinyproxy: run tests/services/start.sh registry (it installs it)"
    );
    std::fs::create_dir_all(dir).unwrap();
    let port = free_port();
    let log = dir.join("tinyproxy.log");
    let cfg = dir.join("tinyproxy.conf");
    std::fs::write(
        &cfg,
        format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Info\nMaxClients 20\nAllow {allow}\n",
            log.display()
        ),
    )
    .unwrap();
    let child = Command::new("tinyproxy")
        .args(["-d", "-c"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (KillOnDrop(child), addr, log)
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// An in-house CA and a certificate it signed for 127.0.0.1: (CA PEM, cert PEM, key PEM).
fn in_house_ca() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Bulwark test in-house CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    (ca.pem(), leaf.pem(), leaf_key.serialize_pem())
}

/// A plain-HTTP registry with one signed image: the guard, its address, the image, the key.
async fn signed_registry(dir: &Path) -> (KillOnDrop, String, String, Key) {
    let (guard, addr) = start_registry_with(&dir.join("registry"), "");
    let reg = Registry::new(&addr);
    let key = Key::new();
    let digest = reg.image("team/app", "v1").await;
    let p = payload("team/app", &digest);
    reg.sig("team/app", &digest, &[(p.clone(), key.sign(&p))])
        .await;
    (guard, addr.clone(), format!("{addr}/team/app:v1"), key)
}

#[test]
fn verify_goes_through_the_proxy_it_is_given_and_survives_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_registry, registry, image, key) = rt.block_on(signed_registry(dir.path()));
    let (_proxy, proxy, log) = tinyproxy(&dir.path().join("proxy"), "127.0.0.1");
    let via = format!("http://{proxy}");

    let (code, out, err) =
        verify_with(&key.pem, &image, &["--plain-http"], &[("HTTP_PROXY", &via)]);
    assert_eq!(code, 0, "{out}{err}");
    let seen = log_of(&log);
    assert!(
        seen.contains(&format!("http://{registry}/v2/team/app/manifests/")),
        "the requests went through the proxy: {seen}"
    );
    // NO_PROXY sends the registry direct, even with a proxy that is not there.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (code, out, err) = verify_with(
        &key.pem,
        &image,
        &["--plain-http"],
        &[("http_proxy", &dead), ("no_proxy", "localhost,127.0.0.1")],
    );
    assert_eq!(code, 0, "{out}{err}");
    // A proxy that is not there, one that refuses us, one that hangs: exit 2, and soon.
    let (_refusing, refusing, _) = tinyproxy(&dir.path().join("refusing"), "10.9.9.9");
    let hanging = format!("http://{}", hanging_registry());
    for (proxy, why) in [
        (dead.as_str(), "Could not check"),
        (&format!("http://{refusing}"), "403"),
        (hanging.as_str(), "Could not check"),
    ] {
        let started = Instant::now();
        let (code, out, err) = verify_with(
            &key.pem,
            &image,
            &["--plain-http"],
            &[("HTTP_PROXY", proxy)],
        );
        assert_eq!(code, 2, "{proxy}: {out}{err}");
        assert!(err.contains(why), "{proxy}: {err}");
        assert!(started.elapsed() < Duration::from_secs(20), "{proxy}");
    }
}

#[test]
fn an_in_house_ca_is_trusted_only_when_given_and_tls_tunnels_through_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, cert_key) = in_house_ca();
    for (name, pem) in [("ca.pem", &ca), ("cert.pem", &cert), ("key.pem", &cert_key)] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let tls = format!(
        "  tls:\n    certificate: {}\n    key: {}\n",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display()
    );
    let (_registry, addr) = start_registry_with(&dir.path().join("registry"), &tls);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = Key::new();
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
            .build()
            .unwrap();
        let reg = Registry::with(&format!("https://{addr}"), http);
        let digest = reg.image("team/app", "v1").await;
        let p = payload("team/app", &digest);
        reg.sig("team/app", &digest, &[(p.clone(), key.sign(&p))])
            .await;
    });
    let image = format!("{addr}/team/app:v1");
    let ca_file = dir.path().join("ca.pem");
    let ca_file = ca_file.to_str().unwrap();

    let (code, _, err) = verify_with(&key.pem, &image, &[], &[]);
    assert_eq!(code, 2, "an unknown issuer is refused: {err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let (code, out, err) = verify_with(
        &key.pem,
        &image,
        &[],
        &[("BULWARK_OUTBOUND_CA_BUNDLE", ca_file)],
    );
    assert_eq!(code, 0, "{out}{err}");
    // Through the proxy: a CONNECT tunnel, TLS end to end with the registry.
    let (_proxy, proxy, log) = tinyproxy(&dir.path().join("proxy"), "127.0.0.1");
    let (code, out, err) = verify_with(
        &key.pem,
        &image,
        &[],
        &[
            ("BULWARK_OUTBOUND_CA_BUNDLE", ca_file),
            ("HTTPS_PROXY", &format!("http://{proxy}")),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        log_of(&log).contains(&format!("CONNECT {addr}")),
        "{}",
        log_of(&log)
    );
    // A bundle that is not one is refused before anything is fetched.
    std::fs::write(dir.path().join("junk.pem"), "not a certificate").unwrap();
    let (code, _, err) = verify_with(
        &key.pem,
        &image,
        &[],
        &[(
            "BULWARK_OUTBOUND_CA_BUNDLE",
            dir.path().join("junk.pem").to_str().unwrap(),
        )],
    );
    assert_ne!(code, 0);
    assert!(err.contains("outbound.ca_bundle"), "{err}");
}

#[actix_web::test]
async fn the_appliance_checks_signatures_through_its_configured_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let (_registry, registry, image, key) = signed_registry(dir.path()).await;
    let (_proxy, proxy, log) = tinyproxy(&dir.path().join("proxy"), "127.0.0.1");
    let t = InProcess::with(|c| c.outbound.http_proxy = format!("http://{proxy}"));
    t.user("admin@example.com", Role::Admin);
    let (s, _) = t.session("admin@example.com");
    let app = t.service().await;
    let admin = Caller::session(&s);
    let call = |req: actix_web::test::TestRequest| {
        let app = &app;
        async move {
            let (status, v, _) = crate::support::call(app, req).await;
            (status, v)
        }
    };
    let (st, _) = call(admin.post(
        "/api/v1/registries",
        json!({"host": registry, "insecure_registry": true}),
    ))
    .await;
    assert_eq!(st, 201);
    let (_, c) = call(admin.post(
        "/api/v1/clusters",
        json!({"name": "prod", "enforcement": true, "failure_mode": "fail-closed", "unscanned_action": "allow-and-queue"}),
    ))
    .await;
    let (st, _) = call(admin.post(
        &format!("/api/v1/clusters/{}/signature-rules", c["id"]),
        json!({"pattern": "**", "keys": [key.pem]}),
    ))
    .await;
    assert_eq!(st, 201);
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "namespace": "shop",
        "operation": "CREATE", "name": "web-1",
        "object": {"metadata": {"name": "web-1"}, "spec": {"containers": [{"name": "app", "image": image}]}}}});
    let (_, v) = call(
        Caller::default().post_bytes("/api/v1/admission/prod", review.to_string().into_bytes()),
    )
    .await;
    assert_eq!(v["response"]["allowed"], true, "{v}");
    assert!(
        log_of(&log).contains(&format!("http://{registry}/v2/team/app/")),
        "{}",
        log_of(&log)
    );
}

/// The crawler reaches S3 (s3s-fs) through the proxy of the usual variable, and OpenID Connect
/// discovery (the real provider) goes through the appliance's configured proxy.
#[tokio::test]
async fn s3_crawls_go_through_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let (_proxy, proxy, log) = tinyproxy(&dir.path().join("proxy"), "127.0.0.1");
    let s3 = crate::dar::S3::get();
    let bucket = format!("proxied-{}", std::process::id());
    s3.create(&bucket).await;
    s3.put(
        &bucket,
        "people/1.json",
        br#"{"email":"ada.lovelace@analytical-engines.co.uk"}"#.to_vec(),
    )
    .await;
    let sources = json!([s3.source("via-proxy", &[&bucket], &s3.secret)]);
    let via = format!("http://{proxy}");
    let (code, v) = crate::dar::crawl(
        "SVRN_CRAWLER_CRAWL_S3",
        sources.clone(),
        &[("HTTP_PROXY", &via)],
    );
    assert_eq!(code, 0, "{v:#}");
    assert!(v.to_string().contains("pii.email"), "{v:#}");
    assert!(
        log_of(&log).contains(&format!("/{bucket}")),
        "{}",
        log_of(&log)
    );
    // A proxy that refuses (403, as a store denying access would): the bucket is skipped with
    // the answer, nothing is classified.
    let (_refusing, refusing, _) = tinyproxy(&dir.path().join("refusing"), "10.9.9.9");
    let (_, v) = crate::dar::crawl(
        "SVRN_CRAWLER_CRAWL_S3",
        sources,
        &[("BULWARK_OUTBOUND_HTTP_PROXY", &format!("http://{refusing}"))],
    );
    assert_eq!(v["assets"][0]["status"], "SKIPPED", "{v:#}");
    assert!(
        v["assets"][0]["reason"].as_str().unwrap().contains("403"),
        "{v:#}"
    );
    assert!(!v.to_string().contains("pii.email"), "{v:#}");
}

#[actix_web::test]
async fn openid_connect_discovery_goes_through_the_proxy() {
    let issuer = std::env::var("BULWARK_TEST_OIDC_ISSUER").unwrap_or_else(|_| {
        panic!("BULWARK_TEST_OIDC_ISSUER is unset: run tests/services/start.sh DIR oidc and source DIR/endpoints.env (tests/run-all.sh does)")
    });
    let dir = tempfile::tempdir().unwrap();
    let (_proxy, proxy, log) = tinyproxy(&dir.path().join("proxy"), "127.0.0.1");
    let (_refusing, refusing, _) = tinyproxy(&dir.path().join("refusing"), "10.9.9.9");
    for (via, works) in [(proxy, true), (refusing, false)] {
        let t = InProcess::with(|c| c.outbound.http_proxy = format!("http://{via}"));
        t.user("root@example.com", Role::SuperAdmin);
        let (root, _) = t.session("root@example.com");
        let app = t.service().await;
        let r = Caller::session(&root);
        let res = actix_web::test::call_service(
            &app,
            r.post(
                "/api/v1/sso/providers",
                json!({"type": "oidc", "name": "corp", "issuer": issuer, "client_id": "bulwark",
                       "client_secret": "bulwark-client-secret", "default_role": "none"}),
            )
            .to_request(),
        )
        .await;
        assert_eq!(res.status(), 201);
        let p: Value = actix_web::test::read_body_json(res).await;
        let res = actix_web::test::call_service(
            &app,
            r.post(
                &format!("/api/v1/sso/providers/{}/test", p["id"]),
                json!({}),
            )
            .to_request(),
        )
        .await;
        let v: Value = actix_web::test::read_body_json(res).await;
        assert_eq!(v["ok"], works, "{v}");
    }
    assert!(
        log_of(&log).contains("/.well-known/openid-configuration"),
        "{}",
        log_of(&log)
    );
}

/// Mail to the relay (aiosmtpd) through a CONNECT tunnel the HTTPS proxy opens; a proxy that
/// refuses leaves the mail in the outbox with the reason, to be retried.
#[tokio::test]
async fn mail_goes_through_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let (_proxy, proxy, log) = tinyproxy(&dir.path().join("proxy"), "127.0.0.1");
    let (_refusing, refusing, _) = tinyproxy(&dir.path().join("refusing"), "10.9.9.9");
    let sink = crate::notify::Sink::get();
    let subject = format!("proxied mail {}", std::process::id());
    let outbox = || {
        let dir = tempfile::tempdir().unwrap();
        let store = bulwark::app::open_store(dir.path()).unwrap();
        store
            .write(|w| {
                bulwark::notify::enqueue(
                    w,
                    vec!["ops@corp.test".into()],
                    &subject,
                    "through the proxy",
                )
            })
            .unwrap();
        (dir, store)
    };
    let via = |p: &str| {
        bulwark::outbound::Outbound::new(&bulwark::outbound::Settings {
            https_proxy: format!("http://{p}"),
            ..Default::default()
        })
        .unwrap()
    };
    let (_a, store) = outbox();
    let refused = bulwark::notify::deliver(&store, &sink.smtp(), &via(&refusing))
        .await
        .unwrap();
    assert_eq!((refused.sent, refused.failed), (0, 1));
    let waiting = bulwark::notify::outbox(&store, 10).unwrap();
    assert!(waiting[0].last_error.contains("403"), "{:?}", waiting[0]);
    assert!(waiting[0].sent_at.is_none());
    let (_b, store) = outbox();
    let sent = bulwark::notify::deliver(&store, &sink.smtp(), &via(&proxy))
        .await
        .unwrap();
    assert_eq!(sent.sent, 1, "{sent:?}");
    sink.wait_for(&[&subject, "through the proxy"]);
    let smtp = sink.smtp();
    assert!(
        log_of(&log).contains(&format!("CONNECT {}:{}", smtp.host, smtp.port)),
        "{}",
        log_of(&log)
    );
}

/// A cluster behind a proxy: the kubeconfig's `proxy-url` (as kubectl reads it) tunnels the
/// sync to the API server through tinyproxy.
#[actix_web::test]
async fn a_cluster_is_synced_through_its_kubeconfig_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let (_proxy, proxy, log) = tinyproxy(&dir.path().join("proxy"), "127.0.0.1");
    let (server, ca, _api, handle) = crate::kube_sync::api_server();
    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    let key = t.key(admin, &[bulwark::http::Scope::Admin]);
    let app = t.service().await;
    let k = Caller::bearer(&key);
    let call = |req: actix_web::test::TestRequest| {
        let app = &app;
        async move {
            let (status, v, _) = crate::support::call(app, req).await;
            (status, v)
        }
    };
    let (_, c) = call(k.post("/api/v1/clusters", json!({"name": "behind-proxy"}))).await;
    let kube_uri = format!("/api/v1/clusters/{}/kubernetes", c["id"]);
    let config = crate::kube_sync::kubeconfig(&server, &ca, "reader-token-1").replace(
        &format!("    server: {server}\n"),
        &format!("    server: {server}\n    proxy-url: http://{proxy}\n"),
    );
    assert!(config.contains("proxy-url"));
    let (st, v) = call(k.put(&kube_uri, json!({"kubeconfig": config}))).await;
    assert_eq!(st, 200, "{v}");
    let (st, r) = call(k.post(&format!("{kube_uri}/sync"), json!({}))).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["recorded"].as_u64(), Some(6), "{r}");
    let authority = server.trim_start_matches("https://").trim_end_matches('/');
    assert!(
        log_of(&log).contains(&format!("CONNECT {authority}")),
        "{}",
        log_of(&log)
    );
    handle.stop(false).await;
}

/// A relay offering STARTTLS with a certificate an in-house CA signed (aiosmtpd): refused
/// without the CA bundle, delivered with it, directly and through the proxy's tunnel.
#[tokio::test]
async fn mail_over_starttls_trusts_the_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca, cert, key) = in_house_ca();
    for (name, pem) in [("ca.pem", &ca), ("cert.pem", &cert), ("key.pem", &key)] {
        std::fs::write(d.join(name), pem).unwrap();
    }
    let maildir = d.join("maildir");
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let python = std::env::var("HOME")
        .map(|h| PathBuf::from(h).join(".cache/bulwark-test-venv/bin/python"))
        .unwrap();
    assert!(
        python.is_file(),
        "no aiosmtpd: run tests/services/start.sh smtp"
    );
    let port = free_port();
    let relay = Command::new(python)
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .arg("--tlscert")
        .arg(d.join("cert.pem"))
        .arg("--tlskey")
        .arg(d.join("key.pem"))
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _relay = KillOnDrop(relay);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_proxy, proxy, log) = tinyproxy(&d.join("proxy"), "127.0.0.1");
    let smtp = bulwark::config::SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security: "starttls".into(),
        ..Default::default()
    };
    let ca_file = d.join("ca.pem").display().to_string();
    for (label, https_proxy, ca_bundle, delivered) in [
        ("without the CA", String::new(), String::new(), false),
        ("with the CA", String::new(), ca_file.clone(), true),
        (
            "through the proxy",
            format!("http://{proxy}"),
            ca_file,
            true,
        ),
    ] {
        let store_dir = tempfile::tempdir().unwrap();
        let store = bulwark::app::open_store(store_dir.path()).unwrap();
        let subject = format!("starttls {label}");
        store
            .write(|w| bulwark::notify::enqueue(w, vec!["ops@corp.test".into()], &subject, "tls"))
            .unwrap();
        let outbound = bulwark::outbound::Outbound::new(&bulwark::outbound::Settings {
            https_proxy,
            ca_bundle,
            ..Default::default()
        })
        .unwrap();
        let r = bulwark::notify::deliver(&store, &smtp, &outbound)
            .await
            .unwrap();
        assert_eq!(
            r.sent == 1,
            delivered,
            "{label}: {r:?} {:?}",
            bulwark::notify::outbox(&store, 1)
        );
        if delivered {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let found = std::fs::read_dir(maildir.join("new"))
                    .unwrap()
                    .flatten()
                    .any(|e| {
                        std::fs::read_to_string(e.path())
                            .unwrap_or_default()
                            .contains(&subject)
                    });
                if found {
                    break;
                }
                assert!(Instant::now() < deadline, "{label}: not delivered");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    assert!(
        log_of(&log).contains(&format!("CONNECT 127.0.0.1:{port}")),
        "{}",
        log_of(&log)
    );
}
