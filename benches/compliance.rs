//! Image-compliance benchmarks. Prints figures; asserts nothing.
//!
//!     cargo bench --bench compliance            (needs `wrk`: apt-get install wrk)
//!
//! Loads 10,000 images with 100 findings each (1M findings) and 1,000 exceptions, then measures
//! on the release binary over TLS on loopback:
//! 1. admission reviews/s and latency with wrk (one thread, 32 connections, a mix of 64 different
//!    pods), beside `GET /healthz` on the same server, and the server-side decision time from the
//!    appliance's own histogram;
//! 2. ingest of a 5,000-finding Trivy report over HTTPS (median of 5);
//! 3. search latency over the API (p50/p99 of 300 queries).

mod common;

use common::fleet::{finding, Rng};
use common::{free_port, start};

use std::path::Path;
use std::time::{Duration, Instant};

const IMAGES: usize = 10_000;
const PER_IMAGE: usize = 100;

fn seed(dir: &Path) -> String {
    let store = bulwark::app::open_store(dir).unwrap();
    let (key, cluster) = common::seed_account(&store, true);
    let t = Instant::now();
    common::fleet::seed_images(&store, IMAGES, PER_IMAGE, &[cluster]);
    println!(
        "seeded {IMAGES} images × {PER_IMAGE} findings in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    common::fleet::seed_exceptions(&store, 1_000);
    println!(
        "seeded 1,000 exceptions in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    key
}

fn review(i: usize) -> String {
    // Three containers from seeded images (tag and digest references), namespaces varied.
    let a = i * 37 % IMAGES;
    let b = (i * 101 + 5) % IMAGES;
    let c = (i * 7 + 11) % IMAGES;
    serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": format!("bench-{i}"), "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "namespace": format!("ns{}", i % 10), "operation": "CREATE", "name": format!("web-{i}"),
        "object": {"spec": {"template": {"spec": {
            "initContainers": [{"name": "init", "image": format!("registry.local/team{}/app{a}:1.{}", a % 50, a % 7)}],
            "containers": [
                {"name": "app", "image": format!("registry.local/team{}/app{b}:1.{}", b % 50, b % 7)},
                {"name": "side", "image": format!("registry.local/team{}/app{c}@sha256:{:064x}", c % 50, c as u128 * 7919 + 1)}
            ]}}}}}})
    .to_string()
}

/// p-quantile from a Prometheus histogram's cumulative buckets.
fn histogram_quantile(metrics: &str, name: &str, q: f64) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    let total = buckets.last()?.1;
    buckets
        .iter()
        .find(|(_, c)| *c >= total * q)
        .map(|(le, _)| *le)
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let key = seed(&data);
    let port = free_port();
    let mut child = start(&data, port);
    let base = format!("https://127.0.0.1:{port}");
    let client = common::client(120);
    // Ready, and the admission index built (first start reads the 1M findings' facts).
    let t = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            if v["tasks"]["admission-index"]["state"] == "done" {
                break;
            }
        }
        assert!(t.elapsed() < Duration::from_secs(600), "not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "start to ready with the admission index built: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let rss = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("server memory with the admission index loaded (search index rebuilding in the background): {}", rss(child.id()));

    // 1. Admission.
    let lua = work.path().join("reviews.lua");
    let bodies: Vec<String> = (0..64).map(review).collect();
    common::write_post_script(&lua, &bodies);
    let first: serde_json::Value = client
        .post(format!("{base}/api/v1/admission/prod"))
        .body(bodies[0].clone())
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    println!(
        "sample decision: allowed={} ({} chars of reasons)",
        first["response"]["allowed"],
        first["response"]["status"]["message"]
            .as_str()
            .unwrap_or("")
            .len()
    );
    let mut denied = 0;
    for b in &bodies {
        let v: serde_json::Value = client
            .post(format!("{base}/api/v1/admission/prod"))
            .body(b.clone())
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        denied += usize::from(v["response"]["allowed"] == false);
    }
    println!(
        "the 64 reviews in the mix: {denied} denied, {} allowed",
        64 - denied
    );
    let out = common::wrk(
        &[
            "-t1",
            "-c32",
            "-d15s",
            "--latency",
            "-s",
            lua.to_str().unwrap(),
        ],
        &format!("{base}/api/v1/admission/prod"),
    );
    common::print_wrk(
        "wrk -t1 -c32 -d15s POST /api/v1/admission/prod (64 different Deployments, 3 images each)",
        &out,
    );
    let out = common::wrk(
        &["-t1", "-c32", "-d10s", "--latency"],
        &format!("{base}/healthz"),
    );
    common::print_wrk(
        "wrk -t1 -c32 -d10s GET /healthz (same server, for comparison)",
        &out,
    );
    // wrk's load closes pooled keep-alive connections: start afresh.
    let client = common::client(120);
    let metrics = client
        .get(format!("{base}/metrics"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for q in [0.5, 0.99, 0.999] {
        if let Some(v) = histogram_quantile(&metrics, "bulwark_admission_decision_seconds", q) {
            println!(
                "  server-side decision time p{}: ≤ {:.3} ms (histogram bucket bound)",
                q * 100.0,
                v * 1e3
            );
        }
    }

    // 2. Ingest of a 5,000-finding report.
    let mut rng = Rng(42);
    let vulns: Vec<serde_json::Value> = (0..5_000)
        .map(|_| {
            let f = finding(&mut rng);
            serde_json::json!({"VulnerabilityID": f.id, "PkgName": f.package, "InstalledVersion": f.installed, "FixedVersion": f.fixed,
                "Severity": f.severity_source, "Title": f.title, "Description": f.description, "PrimaryURL": f.links[0]})
        })
        .collect();
    let report = serde_json::json!({"SchemaVersion": 2, "ArtifactName": "registry.local/big/app:1", "Metadata": {"ImageID": format!("sha256:{}", "e".repeat(64))},
        "Results": [{"Target": "os", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": vulns}]})
    .to_string();
    let mut times = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        let r = client
            .post(format!(
                "{base}/api/v1/scans?cluster=prod&image=registry.local/big/app{i}:1"
            ))
            .header("x-api-key", &key)
            .body(report.clone())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        let _ = r.bytes().await;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!("ingest of a 5,000-finding Trivy report ({} KiB) over HTTPS: median {:.0} ms, best {:.0} ms (5 uploads; includes the verdict, search indexing and fsync)", report.len() / 1024, percentile(times.clone(), 0.5), percentile(times, 0.0));

    // 3. Search (the index was rebuilt in the background at start: wait for it).
    let t = Instant::now();
    loop {
        let v: serde_json::Value = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_default();
        if v["search"] == "ok" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "search index of ~1M findings ready {:.1} s later",
        t.elapsed().as_secs_f64()
    );
    let mut times = Vec::new();
    for i in 0..300u64 {
        let q = match i % 3 {
            0 => format!("CVE-20{}-{:03}", 15 + i % 10, i * 37 % 200),
            1 => format!("lib{}", i * 13 % 2000),
            _ => format!("app{}", i * 31 % IMAGES as u64),
        };
        let t = Instant::now();
        let r = client
            .get(format!("{base}/api/v1/search?q={q}&limit=20"))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let _ = r.bytes().await;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!("search over the API (300 queries: CVE prefixes, package and image names): p50 {:.1} ms, p99 {:.1} ms", percentile(times.clone(), 0.5), percentile(times, 0.99));
    println!("server memory at the end: {}", rss(child.id()));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
}
