//! The real binary: durability under SIGKILL, graceful SIGTERM, first start, the administrative
//! commands, backup and restore, configuration checks and refusing foreign data dirs.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{client, cookie_client, Fetch, Server, ADMIN_EMAIL, ADMIN_PASSWORD};

fn bulwark(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(args)
        .env_remove("BULWARK_CONFIG")
        .output()
        .unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[actix_web::test]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data).await;
    let c = server.admin_client().await;
    // Concurrent writers; every 2xx is an acknowledged write.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let c = c.clone();
        let base = server.base.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..25 {
                let name = format!("c-{w}-{i}");
                let r = c
                    .post(format!("{base}/api/v1/clusters"))
                    .json(&json!({"name": name}))
                    .send()
                    .await
                    .unwrap();
                if r.status().is_success() {
                    acked.push(name);
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    // SIGKILL right after the last 2xx: no chance to flush anything.
    server.signal(libc::SIGKILL);
    let st = server.wait_exit(10);
    assert!(!st.success());
    assert_eq!(
        acked.len(),
        200,
        "every write should have been acknowledged"
    );
    drop(server);
    let server = Server::start(&data).await;
    let c = server.admin_client().await;
    let list: Value = c
        .get(format!("{}/api/v1/clusters", server.base))
        .json_body()
        .await;
    let names: std::collections::HashSet<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !names.contains(*n)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged writes lost after SIGKILL: {lost:?}"
    );
    // The index was not closed cleanly, so it is rebuilt: search still finds them.
    let hits: Value = c
        .get(format!("{}/api/v1/search?q=c-7-24", server.base))
        .json_body()
        .await;
    assert_eq!(hits["items"][0]["title"], "c-7-24");
}

#[actix_web::test]
async fn first_start_prints_a_password_once_and_sigterm_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start_with(&data, &[]).await;
    let log = server.log_text();
    let pw = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no generated password on stderr:\n{log}"))
        .to_string();
    assert!(log.contains("admin@bulwark.local"));
    assert!(
        !log.contains('\u{1b}'),
        "no terminal colour codes in a log file"
    );
    let c = cookie_client();
    let r = c
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&json!({"email": "admin@bulwark.local", "password": pw}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // TLS certificate generated into the data dir.
    assert!(data.join("tls/cert.pem").is_file() && data.join("tls/key.pem").is_file());
    let cert = std::fs::read(data.join("tls/cert.pem")).unwrap();
    server.signal(libc::SIGTERM);
    let st = server.wait_exit(15);
    assert!(
        st.success(),
        "SIGTERM must exit 0; log:\n{}",
        server.log_text()
    );
    assert!(server.log_text().contains("stopped"));
    drop(server);
    let server = Server::start_with(&data, &[]).await;
    assert!(
        !server.log_text().contains("password: "),
        "the password is printed only on first start"
    );
    assert_eq!(
        std::fs::read(data.join("tls/cert.pem")).unwrap(),
        cert,
        "the certificate is kept"
    );
    let ready: Value = client()
        .get(format!("{}/readyz", server.base))
        .json_body()
        .await;
    assert_eq!(
        ready["search"], "ok",
        "a cleanly stopped index is reused, not rebuilt: {ready}"
    );
}

#[actix_web::test]
async fn admin_commands_backup_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    // On a stopped (here: new) data dir.
    let o = bulwark(&[
        "--data-dir",
        d,
        "user",
        "add",
        "ops@example.com",
        "--role",
        "admin",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let generated = text(&o)
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap()
        .to_string();
    let o = bulwark(&[
        "--data-dir",
        d,
        "user",
        "add",
        "root@example.com",
        "--role",
        "super-admin",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = bulwark(&[
        "--data-dir",
        d,
        "user",
        "set-role",
        "ops@example.com",
        "read-only",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = bulwark(&["--data-dir", d, "user", "list", "--json"]);
    let users: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ops = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "ops@example.com")
        .unwrap();
    assert_eq!(ops["role"], "read-only");
    let o = bulwark(&[
        "--data-dir",
        d,
        "user",
        "set-role",
        "ops@example.com",
        "emperor",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("unknown role 'emperor'"));
    let o = bulwark(&[
        "--data-dir",
        d,
        "apikey",
        "create",
        "--user",
        "ops@example.com",
        "--name",
        "ci",
        "--scope",
        "read",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let key = String::from_utf8_lossy(&o.stdout).trim().to_string();

    let server = Server::start(&data).await;
    let c = client();
    let r = c
        .get(format!("{}/api/v1/clusters", server.base))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a key made by the CLI works");
    let login = cookie_client();
    let r = login
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&json!({"email": "ops@example.com", "password": generated}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The admin commands refuse a running appliance's data dir (and say why).
    let o = bulwark(&["--data-dir", d, "user", "list"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("in use by a running Bulwark"),
        "{}",
        text(&o)
    );
    // The bootstrap env does not create a second admin: users already existed.
    let admin = cookie_client();
    let r = admin
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Online backup while the appliance runs.
    let o2 = bulwark(&[
        "--data-dir",
        d,
        "backup",
        dir.path().join("b.redb").to_str().unwrap(),
    ]);
    assert!(o2.status.success(), "{}", text(&o2));
    assert!(text(&o2).contains("entries"));
    // The appliance key (it seals stored credentials) is saved beside the backup, owner-only.
    let key = dir.path().join("b.redb.secret.key");
    assert!(text(&o2).contains("appliance key"), "{}", text(&o2));
    assert_eq!(
        std::fs::read(&key).unwrap(),
        std::fs::read(std::path::Path::new(d).join("secret.key")).unwrap()
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Restore refuses while running.
    let o = bulwark(&[
        "--data-dir",
        d,
        "restore",
        dir.path().join("b.redb").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("in use"), "{}", text(&o));
    drop(server);
    // Change something, then restore and see the backup's state.
    let o = bulwark(&["--data-dir", d, "user", "disable", "ops@example.com"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = bulwark(&[
        "--data-dir",
        d,
        "restore",
        dir.path().join("b.redb").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = bulwark(&["--data-dir", d, "user", "list", "--json"]);
    let users: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ops = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "ops@example.com")
        .unwrap();
    assert_eq!(
        ops["disabled"], false,
        "restore brought back the backup's state"
    );
    assert!(std::fs::read_dir(&data).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("pre-restore")));
    let o = bulwark(&["--data-dir", d, "search", "reindex"]);
    assert!(o.status.success(), "{}", text(&o));
    // Garbage is not restored.
    let junk = dir.path().join("junk.redb");
    std::fs::write(&junk, b"definitely not a database").unwrap();
    let o = bulwark(&["--data-dir", d, "restore", junk.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("not a Bulwark database"), "{}", text(&o));
}

#[actix_web::test]
async fn http_backup_streams_a_consistent_copy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let c = server.admin_client().await;
    c.post(format!("{}/api/v1/clusters", server.base))
        .json(&json!({"name": "in-backup"}))
        .send()
        .await
        .unwrap();
    let r = c
        .post(format!("{}/api/v1/backup", server.base))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    let restored = dir.path().join("restored");
    let file = dir.path().join("dl.redb");
    std::fs::write(&file, &bytes).unwrap();
    let o = bulwark(&[
        "--data-dir",
        restored.to_str().unwrap(),
        "restore",
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let store = bulwark::app::open_store(&restored).unwrap();
    assert!(bulwark::clusters::by_name(&store, "in-backup")
        .unwrap()
        .is_some());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".backup-"))
        .collect();
    assert!(leftovers.is_empty(), "the temporary copy is gone");
}

#[test]
fn config_check_names_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/bulwark.toml"),
        &good,
    )
    .unwrap();
    let o = bulwark(&["config", "check", good.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "the shipped example config must be valid: {}",
        text(&o)
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "listen = \"everywhere\"\n[http]\nmax_body_bytes = 10\n[jobs]\nretention = \"daily\"\n",
    )
    .unwrap();
    let o = bulwark(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    for needle in ["listen:", "http.max_body_bytes:", "jobs.retention:"] {
        assert!(t.contains(needle), "missing {needle} in:\n{t}");
    }
    std::fs::write(&bad, "[http]\nmax_bdy_bytes = 10\n").unwrap();
    let o = bulwark(&["config", "check", bad.to_str().unwrap()]);
    assert!(
        text(&o).contains("unknown field `max_bdy_bytes`"),
        "{}",
        text(&o)
    );
    std::fs::write(&bad, "listen = [\n").unwrap();
    let o = bulwark(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("line 1"), "{}", text(&o));
    // Environment overrides are checked too.
    let o = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["config", "check"])
        .env("BULWARK_HTTP_WORKERS", "lots")
        .env_remove("BULWARK_CONFIG")
        .output()
        .unwrap();
    assert!(
        text(&o).contains("BULWARK_HTTP_WORKERS: expected a whole number"),
        "{}",
        text(&o)
    );
}

#[test]
fn serve_refuses_a_foreign_data_dir_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("bulwark.redb"), b"\x7fELF this is not redb").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args([
            "--data-dir",
            foreign.to_str().unwrap(),
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", crate::support::free_port()),
        ])
        .env_remove("BULWARK_CONFIG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve should refuse and exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("not a Bulwark database"), "{err}");
    assert_eq!(
        std::fs::read(foreign.join("bulwark.redb")).unwrap(),
        b"\x7fELF this is not redb"
    );
    // A data dir that is a file.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let o = bulwark(&["--data-dir", file.to_str().unwrap(), "user", "list"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("is a file"), "{}", text(&o));
}

#[actix_web::test]
async fn operator_certificate_from_a_config_file_and_json_logs() {
    let dir = tempfile::tempdir().unwrap();
    // The operator's own CA and server certificate for "localhost".
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Operator Test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let cert_file = dir.path().join("server.pem");
    let key_file = dir.path().join("server.key");
    std::fs::write(&cert_file, leaf.pem()).unwrap();
    std::fs::write(&key_file, leaf_key.serialize_pem()).unwrap();
    let port = crate::support::free_port();
    let data = dir.path().join("data");
    let config = dir.path().join("bulwark.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\n[tls]\ncert_file = {:?}\nkey_file = {:?}\n[log]\nformat = \"json\"\n",
            data.display().to_string(),
            cert_file.display().to_string(),
            key_file.display().to_string()
        ),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("BULWARK_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("BULWARK_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // A client that trusts only the operator's CA, verifying the name.
    crate::support::init();
    let strict = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let ready = loop {
        match strict
            .get(format!("https://localhost:{port}/readyz"))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => break r,
            other => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "not ready: {other:?}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(
        ready.status(),
        200,
        "the operator's certificate is served and verifies"
    );
    assert!(
        !data.join("tls").exists(),
        "no self-signed certificate is generated when the operator gives one"
    );
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in &lines {
        let v: Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
    }
    assert!(lines.iter().any(|l| l.contains("listening (https)")));
    assert!(
        !text.contains(ADMIN_PASSWORD),
        "the bootstrap password never reaches the log"
    );
}

#[test]
fn db_import_and_status_on_a_standalone_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ci-vulndb.redb");
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vulndb");
    let bad = dir.path().join("broken.json");
    std::fs::write(&bad, b"{ not json").unwrap();
    let o = bulwark(&[
        "db",
        "import",
        "--db",
        db.to_str().unwrap(),
        fixtures,
        bad.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("read 10 files, 21 advisories: 21 imported, 0 unchanged; 1 skipped"),
        "OSV, secdb and tracker files: {t}"
    );
    assert!(t.contains("skipped: ") && t.contains("broken.json"), "{t}");
    let o = bulwark(&["db", "status", "--db", db.to_str().unwrap()]);
    assert!(o.status.success());
    let st = text(&o);
    assert!(
        st.contains("21 advisories")
            && st.contains("osv")
            && st.contains("alpine-secdb")
            && st.contains("debian-tracker"),
        "{st}"
    );
    // Incremental: the same records again change nothing.
    let o = bulwark(&["db", "import", "--db", db.to_str().unwrap(), fixtures]);
    assert!(
        text(&o).contains("21 advisories: 14 imported, 7 unchanged"),
        "OSV records are unchanged; feeds carry no date and are rewritten: {}",
        text(&o)
    );
    // A path that does not exist fails, clearly.
    let o = bulwark(&[
        "db",
        "import",
        "--db",
        db.to_str().unwrap(),
        "/nonexistent/osv",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("/nonexistent/osv"), "{}", text(&o));
    let o = bulwark(&[
        "db",
        "status",
        "--db",
        dir.path().join("none.redb").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
}
