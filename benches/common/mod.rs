//! What the benchmarks that run the real appliance share.

#[allow(dead_code)]
pub mod fleet;

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The release binary under measurement.
#[allow(dead_code)]
pub const BIN: &str = env!("CARGO_BIN_EXE_bulwark");

/// A free loopback port.
#[allow(dead_code)]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `bulwark serve` on `dir` at `port`, quiet.
#[allow(dead_code)]
pub fn start(dir: &Path, port: u16) -> Child {
    Command::new(BIN)
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("BULWARK_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A super-admin with a key holding the admin and scanner scopes, and the cluster `prod`: the
/// key and the cluster's id. (Not every benchmark seeds this way.)
#[allow(dead_code)]
pub fn seed_account(store: &bulwark::store::Store, enforcement: bool) -> (String, u64) {
    use bulwark::auth::{self, Actor};
    use bulwark::http::{Role, Scope};
    let admin = auth::create_user(
        store,
        &Actor::cli(),
        "bench@example.com",
        "bench-password-1",
        Role::SuperAdmin,
    )
    .unwrap();
    let key = auth::create_api_key(
        store,
        &Actor::cli(),
        admin.id,
        "bench",
        &[Scope::Admin, Scope::Scanner],
    )
    .unwrap()
    .key;
    let new = bulwark::clusters::NewCluster {
        name: "prod".into(),
        enforcement,
        ..Default::default()
    };
    let c = bulwark::clusters::create(store, "bench", "", new).unwrap();
    (key, c.id)
}

/// An HTTPS client for the appliance's self-signed certificate, waiting at most `secs` per
/// request.
#[allow(dead_code)]
pub fn client(secs: u64) -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(std::time::Duration::from_secs(secs))
        .build()
        .unwrap()
}

/// Runs `wrk` with `args` against `url`; its output (or why it did not run).
#[allow(dead_code)]
pub fn wrk(args: &[&str], url: &str) -> String {
    let out = Command::new("wrk").args(args).arg(url).output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => format!("wrk not run ({e}); apt-get install wrk"),
    }
}

/// Prints `wrk`'s latency percentiles, rate and errors under `label`.
#[allow(dead_code)]
pub fn print_wrk(label: &str, text: &str) {
    println!("{label}:");
    for p in ["50%", "90%", "99%", "Requests/sec", "Non-2xx"] {
        if let Some(l) = text.lines().find(|l| l.trim_start().starts_with(p)) {
            println!("  {}", l.trim());
        }
    }
}

/// A wrk script that POSTs `bodies` (JSON) in turn.
#[allow(dead_code)]
pub fn write_post_script(path: &Path, bodies: &[String]) {
    let src = format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nlocal bodies = {{{}}}\nlocal i = 0\nrequest = function()\n  i = i % #bodies + 1\n  return wrk.format(nil, nil, nil, bodies[i])\nend\n",
        bodies
            .iter()
            .map(|b| format!("[==[{b}]==]"))
            .collect::<Vec<_>>()
            .join(",\n")
    );
    std::fs::write(path, src).unwrap();
}
