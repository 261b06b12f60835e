//! Foundation benchmarks. Prints figures; asserts nothing.
//!
//!     cargo bench --bench foundation            (needs `wrk`: apt-get install wrk)
//!
//! 1. start to `/readyz` 200 with 10,000 stored rows, warm binary (median and best of 7 starts)
//! 2. idle RSS a few seconds after start
//! 3. `GET /api/v1/clusters` with 1,000 clusters at 32 concurrent TLS connections (wrk, one
//!    thread, 15 s): p50/p90/p99 latency, requests/s, and the server's CPU seconds. wrk runs on
//!    the same 2 cores as the server; one wrk thread saturates one core, so the figures are
//!    bounded by the load generator as much as by the server
//! 4. release binary size (as built, and stripped)

mod common;

use common::{free_port, start, BIN};

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use bulwark::auth::{self, Actor};
use bulwark::clusters::{self, FailureMode, NewCluster};
use bulwark::http::{Role, Scope};

fn seed(dir: &Path, clusters: usize) -> (usize, String) {
    let store = bulwark::app::open_store(dir).unwrap();
    let admin = auth::create_user(
        &store,
        &Actor::cli(),
        "bench@example.com",
        "bench-password-1",
        Role::SuperAdmin,
    )
    .unwrap();
    let key = auth::create_api_key(&store, &Actor::cli(), admin.id, "bench", &[Scope::Read])
        .unwrap()
        .key;
    for i in 0..clusters {
        let new = NewCluster {
            name: format!("cluster-{i:05}"),
            description: format!("benchmark cluster number {i} in region eu-{}", i % 7),
            tags: vec![
                format!("env={}", ["prod", "staging", "dev"][i % 3]),
                format!("team=t{}", i % 11),
            ],
            enforcement: i % 2 == 0,
            failure_mode: FailureMode::FailOpen,
            ..NewCluster::default()
        };
        clusters::create(&store, "bench", "", new).unwrap();
    }
    // Each cluster is three rows: the cluster, its name index, its audit entry.
    (clusters * 3 + 3, key)
}

fn stop(mut child: Child) {
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
}

async fn until_ready(client: &reqwest::Client, port: u16) -> Duration {
    let t0 = Instant::now();
    loop {
        if let Ok(r) = client
            .get(format!("https://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            if r.status().is_success() {
                return t0.elapsed();
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "server did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One wrk run against the cluster list; prints latency, throughput and the server's CPU.
fn wrk_run(pid: u32, port: u16, key: &str, label: &str, extra_header: Option<&str>) {
    let cpu_before = cpu_seconds(pid);
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t1",
        "-c32",
        "-d15s",
        "--latency",
        "-H",
        &format!("x-api-key: {key}"),
    ]);
    if let Some(h) = extra_header {
        cmd.args(["-H", h]);
    }
    let out = match cmd
        .arg(format!("https://127.0.0.1:{port}/api/v1/clusters"))
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            println!("wrk not run ({e}); install it with apt-get install wrk");
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    println!("wrk -t1 -c32 -d15s GET /api/v1/clusters, 1,000 clusters, TLS, API key, {label}:");
    for p in [
        "50%",
        "90%",
        "99%",
        "Requests/sec",
        "Transfer/sec",
        "Non-2xx",
    ] {
        if let Some(l) = text.lines().find(|l| l.trim_start().starts_with(p)) {
            println!("  {}", l.trim());
        }
    }
    let cpu = cpu_seconds(pid) - cpu_before;
    println!("  server CPU during the run: {cpu:.1} s of 15 s (wrk takes the other core)");
}

/// User + system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of /proc/PID/stat, i.e. 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let work = tempfile::tempdir().unwrap();

    // 1 + 2: startup with 10k rows, idle RSS.
    let big = work.path().join("rows10k");
    let t = Instant::now();
    let (rows, _) = seed(&big, 3_333);
    println!("seeded {rows} rows in {:.1} s", t.elapsed().as_secs_f64());
    let mut times = Vec::new();
    let mut rss = (0, 0);
    for i in 0..7 {
        let port = free_port();
        let t0 = Instant::now();
        let child = start(&big, port);
        let _ = until_ready(&client, port).await;
        times.push(t0.elapsed());
        if i == 6 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            rss = rss_kib(child.id());
        }
        stop(child);
    }
    times.sort();
    println!(
        "start to /readyz 200 with {rows} rows: median {:.0} ms, best {:.0} ms (7 starts, warm binary, process spawn included)",
        times[3].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3
    );
    println!(
        "idle RSS 3 s after ready: {:.1} MiB (peak {:.1} MiB)",
        rss.0 as f64 / 1024.0,
        rss.1 as f64 / 1024.0
    );

    // 3: list 1,000 clusters under load.
    let thousand = work.path().join("clusters1k");
    let (_, key) = seed(&thousand, 1_000);
    let port = free_port();
    let child = start(&thousand, port);
    until_ready(&client, port).await;
    let body = client
        .get(format!("https://127.0.0.1:{port}/api/v1/clusters"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    println!(
        "GET /api/v1/clusters response: {} KiB for 1,000 clusters",
        body.len() / 1024
    );
    for (label, extra) in [("identity", None), ("gzip", Some("Accept-Encoding: gzip"))] {
        wrk_run(child.id(), port, &key, label, extra);
    }
    let (rss_now, hwm) = rss_kib(child.id());
    println!(
        "RSS after the load: {:.1} MiB (peak {:.1} MiB)",
        rss_now as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    stop(child);

    // 4: binary size.
    let size = std::fs::metadata(BIN).map(|m| m.len()).unwrap_or(0);
    let stripped = work.path().join("bulwark.stripped");
    let stripped_size = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(BIN)
        .status()
        .ok()
        .filter(|s| s.success())
        .and_then(|_| std::fs::metadata(&stripped).ok())
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "release binary: {:.1} MiB as built, {:.1} MiB stripped",
        size as f64 / 1048576.0,
        stripped_size as f64 / 1048576.0
    );
}
