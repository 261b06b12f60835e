//! Directory sign-in benchmarks. Prints figures; asserts nothing.
//!
//!     tests/services/start.sh /tmp/ldap ldap && set -a && . /tmp/ldap/endpoints.env && set +a
//!     cargo bench --bench sso
//!
//! 1. LDAP sign-in p50/p99 against the local slapd (service bind, user search, user bind, group
//!    search, account sync, session), 200 in a row over HTTPS;
//! 2. a directory that accepts connections and never answers: 8 sign-ins wait on it while
//!    `/healthz` is measured, showing the timeouts hold and the appliance keeps answering.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, start};

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn provider(name: &str, url: &str) -> bulwark::sso::ProviderInput {
    serde_json::from_value(serde_json::json!({
        "type": "ldap", "name": name, "url": url,
        "bind_dn": "cn=admin,dc=posix,dc=test", "bind_password": "admin-pass-1",
        "user_search_base": "ou=people,dc=posix,dc=test", "username_attribute": "uid",
        "group_search_base": "ou=groups,dc=posix,dc=test", "group_object_class": "posixGroup",
        "group_member_attribute": "memberUid", "group_member_user_attribute": "uid",
        "group_auth_level_attribute": "cn", "group_value_admin": "bulwark-admins",
        "default_role": "none", "connect_timeout_seconds": 2, "timeout_seconds": 3
    }))
    .unwrap()
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let Ok(ldap) = std::env::var("BULWARK_TEST_LDAP") else {
        eprintln!("BULWARK_TEST_LDAP is unset: start slapd with tests/services/start.sh DIR ldap and source DIR/endpoints.env");
        std::process::exit(2);
    };
    // A directory that accepts and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("ldap://{}", silent.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming().flatten() {
            held.push(c);
        }
    });
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    {
        let store = bulwark::app::open_store(&data).unwrap();
        common::seed_account(&store, false);
        let sealer = bulwark::secrets::Sealer::open(&data).unwrap();
        let cli = bulwark::http::Actor::cli();
        bulwark::sso::create(&store, &sealer, &cli, provider("posix", &ldap)).unwrap();
        bulwark::sso::create(&store, &sealer, &cli, provider("silent", &silent_url)).unwrap();
    }
    let port = free_port();
    let mut child = start(&data, port);
    let base = format!("https://127.0.0.1:{port}");
    let client = common::client(60);
    while client.get(format!("{base}/readyz")).send().await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sign_in = |provider: &'static str| {
        let client = client.clone();
        let url = format!("{base}/api/v1/auth/login");
        async move {
            let t = Instant::now();
            let r = client
                .post(url)
                .json(&serde_json::json!({"provider": provider, "username": "bob", "password": "bob-pass-1"}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), t.elapsed().as_secs_f64() * 1e3)
        }
    };
    let mut times = Vec::new();
    for _ in 0..200 {
        let (status, ms) = sign_in("posix").await;
        assert_eq!(status, 200);
        times.push(ms);
    }
    println!(
        "LDAP sign-in against slapd (200 in a row): p50 {:.1} ms, p99 {:.1} ms",
        percentile(times.clone(), 0.5),
        percentile(times, 0.99)
    );

    let hung: Vec<_> = (0..8).map(|_| tokio::spawn(sign_in("silent"))).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut health = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        let r = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert!(r.status().is_success());
        health.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut outcomes = Vec::new();
    for h in hung {
        outcomes.push(h.await.unwrap());
    }
    println!(
        "while 8 sign-ins wait on a silent directory: /healthz p50 {:.1} ms, p99 {:.1} ms; the sign-ins answered {:?} after {:.1}–{:.1} s",
        percentile(health.clone(), 0.5),
        percentile(health, 0.99),
        outcomes.iter().map(|o| o.0).collect::<std::collections::BTreeSet<_>>(),
        outcomes.iter().map(|o| o.1).fold(f64::MAX, f64::min) / 1e3,
        outcomes.iter().map(|o| o.1).fold(0.0, f64::max) / 1e3,
    );
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
}
