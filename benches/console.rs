//! Console benchmarks at fleet scale. Prints figures; asserts nothing.
//!
//!     cargo bench --bench console
//!
//! Seeds 50 clusters, 10,000 images with 100 findings each (1M findings) spread over them,
//! 1,000 exceptions and 5,000 audit entries through the library, then measures on the release
//! binary over TLS on loopback (one client, requests one after another):
//! 1. the `posture` job (judging every image in every cluster);
//! 2. the dashboard (`GET /`, from the snapshot);
//! 3. list pages and their API twins, 100 rows a page.
//!
//! Targets: dashboard p99 < 100 ms; any list page p99 < 50 ms.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, start};

const CLUSTERS: usize = 50;
const IMAGES: usize = 10_000;
const PER_IMAGE: usize = 100;
const ROUNDS: usize = 200;

fn seed(dir: &std::path::Path) -> (String, u64) {
    let store = bulwark::app::open_store(dir).unwrap();
    let (key, first) = common::seed_account(&store, false);
    let mut clusters = vec![first];
    for n in 1..CLUSTERS {
        let new = bulwark::clusters::NewCluster {
            name: format!("cluster-{n:02}"),
            ..Default::default()
        };
        clusters.push(
            bulwark::clusters::create(&store, "bench", "", new)
                .unwrap()
                .id,
        );
    }
    let t = Instant::now();
    common::fleet::seed_images(&store, IMAGES, PER_IMAGE, &clusters);
    common::fleet::seed_exceptions(&store, 1_000);
    println!(
        "seeded {CLUSTERS} clusters, {IMAGES} images × {PER_IMAGE} findings and 1,000 exceptions in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    (key, first)
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn timed(client: &reqwest::Client, key: &str, url: &str, rounds: usize) -> (f64, f64, usize) {
    let mut times = Vec::with_capacity(rounds);
    let mut bytes = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let r = client
            .get(url)
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        bytes = r.bytes().await.unwrap().len();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    (
        percentile(times.clone(), 0.5),
        percentile(times, 0.99),
        bytes,
    )
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let (key, first) = seed(&data);
    let port = free_port();
    let mut child = start(&data, port);
    let base = format!("https://127.0.0.1:{port}");
    let client = common::client(300);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            if v["tasks"]["admission-index"]["state"] == "done" && v["search"] == "ok" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 1. The posture job, run now and waited for.
    let t = Instant::now();
    let r = client
        .post(format!("{base}/api/v1/jobs/posture/run"))
        .header("x-api-key", &key)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let message = loop {
        let v: serde_json::Value = client
            .get(format!("{base}/api/v1/jobs/posture"))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["running"] == false && v["last_run"]["message"].is_string() {
            break v["last_run"]["message"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "posture job: {:.2} s ({message})",
        t.elapsed().as_secs_f64()
    );

    // 2 and 3: pages and lists, one request after another.
    let image_id = {
        let v: serde_json::Value = client
            .get(format!("{base}/api/v1/images?limit=1&sort=critical"))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["items"][0]["id"].as_u64().unwrap()
    };
    println!(
        "{:<58} {:>9} {:>9} {:>9}",
        "request", "p50 ms", "p99 ms", "KiB"
    );
    for path in [
        "/".to_string(),
        "/images?limit=100".into(),
        "/images?limit=100&sort=critical".into(),
        format!("/images?limit=100&cluster={first}"),
        "/images?limit=100&compliance=non-compliant".into(),
        "/api/v1/images?limit=100".into(),
        "/api/v1/images?limit=100&sort=critical".into(),
        format!("/api/v1/images/{image_id}/findings?limit=100"),
        "/exceptions?limit=100".into(),
        "/api/v1/exceptions?limit=100".into(),
        "/admission?limit=100".into(),
        "/api/v1/admission/decisions?limit=100".into(),
        "/audit-log?limit=100".into(),
        "/api/v1/audit-log?limit=100".into(),
        "/api/v1/search?q=app1&limit=100".into(),
    ] {
        let (p50, p99, bytes) = timed(&client, &key, &format!("{base}{path}"), ROUNDS).await;
        println!("{path:<58} {p50:>9.1} {p99:>9.1} {:>9}", bytes / 1024);
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
}
