//! Memory under bursts. Prints figures; asserts nothing.
//!
//!     cargo bench --bench memory
//!
//! On the release binary over TLS on loopback:
//! 1. resident size idle, at the peak of ten parallel uploads of a 5.6 MB Trivy report, and each
//!    second for 65 s after them (the appliance trims the allocator every 30 s, so the figures
//!    before and after the first trim are the side-by-side comparison);
//! 2. the same around `POST /api/v1/backup` of a database of about 200 MB, streamed to nowhere.

mod common;

use common::{free_port, start};

use std::io::Read;
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark::clusters;
use bulwark::images::{self, trivy::ReportMeta, Finding, ImageRef, Severity};

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Anonymous and file-backed resident MiB (file-backed pages are mapped index files, which the
/// kernel reclaims under pressure).
fn rss_split(pid: u32) -> (f64, f64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("Anonymous:"), field("Rss:") - field("Anonymous:"))
}

/// Samples the peak resident size of `pid` until `stop` is set.
fn watch_peak(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<f64> {
    let peak = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let now = (rss_mib(pid) * 1024.0) as u64;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
        }
        peak.load(Ordering::SeqCst) as f64 / 1024.0
    })
}

/// A Trivy report of about 5.6 MB: 5,000 findings with Trivy-sized descriptions.
fn report() -> Vec<u8> {
    let vulns: Vec<serde_json::Value> = (0..5_000)
        .map(|i| {
            let severity = ["CRITICAL", "HIGH", "MEDIUM", "LOW"][i % 4];
            serde_json::json!({
                "VulnerabilityID": format!("CVE-2024-{i:05}"),
                "PkgName": format!("lib{}", i % 400),
                "InstalledVersion": "1.2.3-4",
                "FixedVersion": if i % 3 == 0 { "" } else { "1.2.3-5" },
                "Severity": severity,
                "Title": format!("lib{}: a memory safety problem in a parser", i % 400),
                "Description": "A crafted input makes the parser read past the end of its buffer, which may disclose memory or crash the process. ".repeat(8),
                "PrimaryURL": format!("https://avd.aquasec.com/nvd/cve-2024-{i:05}"),
                "References": [format!("https://security-tracker.debian.org/tracker/CVE-2024-{i:05}")],
            })
        })
        .collect();
    let r = serde_json::json!({"SchemaVersion": 2, "ArtifactName": "bench", "ArtifactType": "container_image",
        "Metadata": {"OS": {"Family": "debian", "Name": "12"}},
        "Results": [{"Target": "bench (debian 12)", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": vulns}]});
    serde_json::to_vec(&r).unwrap()
}

/// `images` scanned images of 100 findings each, for a database worth backing up.
fn seed_images(dir: &Path, images: usize) {
    let store = bulwark::app::open_store(dir).unwrap();
    let cluster = clusters::by_name(&store, "prod").unwrap().unwrap().id;
    for batch in 0..images.div_ceil(200) {
        store
            .write(|w| {
                for i in batch * 200..((batch + 1) * 200).min(images) {
                    let r = ImageRef::parse(&format!("registry.local/seed/app{i}:1")).unwrap();
                    let digest = format!("sha256:{:064x}", i as u128 * 7919 + 1);
                    let mut image = images::upsert(w, &r, &digest, Some(cluster))?;
                    let findings: Vec<Finding> = (0..100)
                        .map(|j| Finding {
                            id: format!("CVE-2023-{:05}", (i * 31 + j) % 20_000),
                            package: format!("lib{j}"),
                            installed: "1.0".into(),
                            fixed: "1.1".into(),
                            severity: Severity::Medium,
                            severity_source: "MEDIUM".into(),
                            cvss: Some(5.0),
                            title: "a problem".into(),
                            description: "A vulnerability used for benchmarking. ".repeat(8),
                            links: vec![],
                            fixable: true,
                            scanner: "trivy".into(),
                            target: "os".into(),
                            status: "fixed".into(),
                        })
                        .collect();
                    images::store_scan(w, &mut image, &ReportMeta::default(), findings)?;
                }
                Ok::<_, bulwark::store::StoreError>(())
            })
            .unwrap();
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap()
}

fn wait_ready(base: &str) {
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if c.get(format!("{base}/readyz"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the appliance did not become ready");
}

fn stop(mut child: Child) {
    // SAFETY: kill on a child we started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = common::seed_account(&bulwark::app::open_store(&data).unwrap(), false).0;
    let port = free_port();
    let base = format!("https://127.0.0.1:{port}");
    let child = start(&data, port);
    wait_ready(&base);
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(5));
    let idle = rss_mib(pid);
    let (anon, file) = rss_split(pid);
    println!("idle (new appliance): {idle:.0} MiB (anonymous {anon:.0}, mapped files {file:.0})");

    // 1. Ten parallel uploads.
    let body = Arc::new(report());
    println!("report: {:.1} MB", body.len() as f64 / 1_000_000.0);
    let watching = Arc::new(AtomicBool::new(false));
    let peak = watch_peak(pid, watching.clone());
    let t = Instant::now();
    let uploads: Vec<_> = (0..10)
        .map(|i| {
            let (body, key, base) = (body.clone(), key.clone(), base.clone());
            std::thread::spawn(move || {
                let r = client()
                    .post(format!(
                        "{base}/api/v1/scans?cluster=prod&image=registry.local/burst/app{i}@sha256:{:064x}",
                        i + 1
                    ))
                    .header("x-api-key", key)
                    .body(body.to_vec())
                    .send()
                    .unwrap();
                let status = r.status();
                assert!(status.is_success(), "{status}: {}", r.text().unwrap_or_default());
            })
        })
        .collect();
    for u in uploads {
        u.join().unwrap();
    }
    let took = t.elapsed();
    watching.store(true, Ordering::SeqCst);
    let peak = peak.join().unwrap();
    println!(
        "ten parallel uploads: {:.1} s; peak {peak:.0} MiB",
        took.as_secs_f64()
    );
    let mut after = Vec::new();
    for s in 1..=65 {
        std::thread::sleep(Duration::from_secs(1));
        after.push(rss_mib(pid));
        if [1, 10, 20, 25, 35, 45, 60, 65].contains(&s) {
            println!("  {s:>2} s after: {:.0} MiB", after[s - 1]);
        }
    }
    let first = after[0];
    let settled = after[after.len() - 1];
    let (anon, file) = rss_split(pid);
    println!("  of which anonymous {anon:.0} MiB, mapped files {file:.0} MiB");
    println!(
        "RSS 1 s after the burst (untrimmed): {first:.0} MiB = {:.1}× idle; a minute later (trimmed): {settled:.0} MiB = {:.1}× idle",
        first / idle,
        settled / idle
    );
    stop(child);

    // 2. A backup of a larger database, streamed to nowhere.
    let t = Instant::now();
    seed_images(&data, 4_000);
    let db_mib = std::fs::metadata(data.join("bulwark.redb")).unwrap().len() as f64 / 1048576.0;
    println!(
        "seeded 4,000 images × 100 findings ({db_mib:.0} MiB database) in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    let child = start(&data, port);
    wait_ready(&base);
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(20));
    let before = rss_mib(pid);
    let watching = Arc::new(AtomicBool::new(false));
    let peak = watch_peak(pid, watching.clone());
    let t = Instant::now();
    let mut r = client()
        .post(format!("{base}/api/v1/backup"))
        .header("x-api-key", &key)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    watching.store(true, Ordering::SeqCst);
    let peak = peak.join().unwrap();
    println!(
        "backup of {:.0} MiB in {:.1} s: {before:.0} MiB before, peak {peak:.0} MiB",
        total as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(35));
    println!("35 s after the backup: {:.0} MiB", rss_mib(pid));
    stop(child);
}
