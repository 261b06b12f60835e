//! Email against a real SMTP server (aiosmtpd from tests/services): temporary exceptions and
//! exceptions ending tomorrow are mailed to admins through the outbox; failures are retried and
//! visible.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bulwark::auth::{self, Actor};
use bulwark::compliance::service::{self as svc, ExceptionInput};
use bulwark::config::SmtpConfig;
use bulwark::http::Role;

use crate::support::{free_port, InProcess};

const DEBIAN: &[u8] = include_bytes!("../fixtures/trivy/debian-buster.trivy.json");

/// The harness's SMTP sink, or one started here from the harness's cached venv.
pub(crate) struct Sink {
    addr: String,
    maildir: PathBuf,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Sink {
    pub(crate) fn get() -> Sink {
        if let (Ok(addr), Ok(maildir)) = (
            std::env::var("BULWARK_TEST_SMTP"),
            std::env::var("BULWARK_TEST_MAILDIR"),
        ) {
            return Sink {
                addr,
                maildir: maildir.into(),
                child: None,
                _dir: None,
            };
        }
        let python = std::env::var("HOME")
            .map(|h| PathBuf::from(h).join(".cache/bulwark-test-venv/bin/python"))
            .unwrap();
        assert!(python.is_file(), "no SMTP sink: run tests/services/start.sh (it installs aiosmtpd) or set BULWARK_TEST_SMTP");
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("maildir");
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let port = free_port();
        let child = Command::new(python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Sink {
            addr: format!("127.0.0.1:{port}"),
            maildir,
            child: Some(child),
            _dir: Some(dir),
        }
    }

    pub(crate) fn smtp(&self) -> SmtpConfig {
        let (host, port) = self.addr.split_once(':').unwrap();
        SmtpConfig {
            host: host.into(),
            port: port.parse().unwrap(),
            security: "none".into(),
            ..SmtpConfig::default()
        }
    }

    /// Waits for a delivered message containing every needle.
    pub(crate) fn wait_for(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            for e in std::fs::read_dir(self.maildir.join("new"))
                .into_iter()
                .flatten()
                .flatten()
            {
                // Undo quoted-printable soft line breaks before matching.
                let text = std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .replace("=\r\n", "")
                    .replace("=\n", "");
                if needles.iter().all(|n| text.contains(n)) {
                    return text;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no mail with {needles:?} in {}",
                self.maildir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[actix_web::test]
async fn admins_are_mailed_about_temporary_and_expiring_exceptions() {
    let sink = Sink::get();
    let t = InProcess::with(|c| {
        c.smtp = SmtpConfig {
            host: String::new(),
            ..c.smtp.clone()
        }
    });
    let store = t.store().clone();
    let admin_email = format!("ops-{}@example.com", free_port());
    auth::create_user(
        &store,
        &Actor::cli(),
        &admin_email,
        "password-1234",
        Role::Admin,
    )
    .unwrap();
    auth::create_user(
        &store,
        &Actor::cli(),
        "viewer@example.com",
        "password-1234",
        Role::ReadOnly,
    )
    .unwrap();
    let c = bulwark::clusters::NewCluster {
        name: "prod".into(),
        ..Default::default()
    };
    bulwark::clusters::create(&store, "t", "", c).unwrap();
    let actor = svc::Actor {
        name: "t".into(),
        role: Some(Role::Admin),
        user_id: None,
        ip: String::new(),
    };
    let mut p = svc::list_policies(&store).unwrap().remove(0);
    p.grace_period_days = 2;
    let input: svc::PolicyInput = serde_json::from_value(serde_json::json!({
        "name": p.name, "scanners": p.scanners, "grace_period_days": 2
    }))
    .unwrap();
    svc::update_policy(&store, &actor, p.id, input).unwrap();

    // A new violation under a grace period: a temporary exception and, in the same commit, a mail.
    let r = svc::ingest_trivy(&store, "t", "prod", "registry.local/team/api:1.0", DEBIAN).unwrap();
    assert_eq!(r.temporary_exceptions.len(), 1);
    let outbox = bulwark::notify::outbox(&store, 10).unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].to, vec![admin_email.clone()], "admins only");
    // Without SMTP configured it waits; with the sink it is delivered.
    let none = bulwark::notify::deliver(&store, &SmtpConfig::default(), &Default::default())
        .await
        .unwrap();
    assert_eq!(none.sent, 0);
    let sent = bulwark::notify::deliver(&store, &sink.smtp(), &Default::default())
        .await
        .unwrap();
    assert_eq!(
        sent.sent,
        1,
        "{sent:?}: {:?}",
        bulwark::notify::outbox(&store, 10).unwrap()
    );
    let cve = svc::get_exception(&store, r.temporary_exceptions[0])
        .unwrap()
        .issue_id;
    let mail = sink.wait_for(&[
        "Temporary exceptions created for registry.local/team/api",
        &cve,
        &admin_email,
    ]);
    assert!(mail.contains("cluster prod"), "{mail}");
    assert!(bulwark::notify::outbox(&store, 10).unwrap()[0]
        .sent_at
        .is_some());
    assert_eq!(
        bulwark::notify::deliver(&store, &sink.smtp(), &Default::default())
            .await
            .unwrap()
            .sent,
        0,
        "sent once"
    );

    // The day before an exception ends.
    let tomorrow = chrono::Utc::now().date_naive() + chrono::Duration::days(1);
    let e = svc::create_exception(
        &store,
        &actor,
        ExceptionInput {
            title: "short-lived".into(),
            end_date: Some(tomorrow),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(svc::notify_expiring(&store).unwrap(), 1);
    assert_eq!(svc::notify_expiring(&store).unwrap(), 0, "announced once");
    assert!(svc::get_exception(&store, e.id).unwrap().expiry_notified);
    bulwark::notify::deliver(&store, &sink.smtp(), &Default::default())
        .await
        .unwrap();
    sink.wait_for(&[
        "Exception ends tomorrow: short-lived",
        &tomorrow.to_string(),
    ]);

    // An unreachable server: the mail stays, with the error and a later retry time.
    svc::create_exception(
        &store,
        &actor,
        ExceptionInput {
            title: "another".into(),
            end_date: Some(tomorrow),
            ..Default::default()
        },
    )
    .unwrap();
    svc::notify_expiring(&store).unwrap();
    let dead = SmtpConfig {
        port: free_port(),
        ..sink.smtp()
    };
    let res = bulwark::notify::deliver(&store, &dead, &Default::default())
        .await
        .unwrap();
    assert_eq!((res.sent, res.failed), (0, 1));
    let pending = bulwark::notify::outbox(&store, 1).unwrap().remove(0);
    assert!(pending.sent_at.is_none() && pending.attempts == 1 && !pending.last_error.is_empty());
    assert!(pending.next_attempt.is_some());
    // Not retried before its time.
    assert_eq!(
        bulwark::notify::deliver(&store, &sink.smtp(), &Default::default())
            .await
            .unwrap()
            .sent,
        0
    );
}

#[actix_web::test]
async fn falco_alerts_and_digests_reach_a_real_mailbox() {
    use bulwark::runtime::{alerts, event, ingest};
    let sink = Sink::get();
    let t = InProcess::new();
    let store = t.store().clone();
    let admin_email = format!("falco-{}@example.com", free_port());
    auth::create_user(
        &store,
        &Actor::cli(),
        &admin_email,
        "password-1234",
        Role::Admin,
    )
    .unwrap();
    let c = bulwark::clusters::NewCluster {
        name: "runtime-prod".into(),
        ..Default::default()
    };
    let cluster = bulwark::clusters::create(&store, "t", "", c).unwrap();
    let on = alerts::Settings {
        enabled: true,
        priorities: vec!["critical".into()],
        admins: true,
        addresses: vec!["soc@example.org".into()],
        mode: alerts::Mode::Signature,
        days: 1,
    };
    alerts::put(&store, "t", on.clone()).unwrap();
    let critical = |uuid: &str| {
        let body = serde_json::json!({"uuid": uuid, "rule": "Write below etc", "priority": "Critical",
            "output": "File below /etc opened for writing (user=root file=/etc/shadow)",
            "time": "2026-12-07T10:00:00Z",
            "output_fields": {"k8s.ns.name": "payments", "container.image.repository": "registry.local/pay"}});
        event::parse(cluster.id, body.to_string().as_bytes(), chrono::Utc::now()).unwrap()
    };
    ingest::commit(
        &store,
        vec![critical("m1"), critical("m2")],
        "https://bulwark.example:8443",
    )
    .unwrap();
    let sent = bulwark::notify::deliver(&store, &sink.smtp(), &Default::default())
        .await
        .unwrap();
    assert_eq!(sent.sent, 1, "one mail for the signature: {sent:?}");
    let mail = sink.wait_for(&[
        "Falco critical: Write below etc in runtime-prod",
        &admin_email,
        "soc@example.org",
    ]);
    assert!(
        mail.contains("https://bulwark.example:8443/falco/events/1"),
        "{mail}"
    );

    alerts::put(
        &store,
        "t",
        alerts::Settings {
            mode: alerts::Mode::Digest,
            ..on
        },
    )
    .unwrap();
    ingest::commit(&store, vec![critical("m3"), critical("m4")], "").unwrap();
    assert_eq!(
        alerts::digest(&store, "").unwrap(),
        "digest of 2 events (1 signatures)"
    );
    let sent = bulwark::notify::deliver(&store, &sink.smtp(), &Default::default())
        .await
        .unwrap();
    assert_eq!(sent.sent, 1, "{sent:?}");
    sink.wait_for(&[
        "Falco digest: 2 event(s) of 1 kind(s)",
        "2 x Write below etc",
    ]);
    assert_eq!(
        alerts::list(&store, 10).unwrap().len(),
        2,
        "every alert recorded"
    );
}
