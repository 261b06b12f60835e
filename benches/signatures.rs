//! Admission with signature rules, once every digest's verdict is cached, beside the same
//! reviews to a cluster without rules (the reference, same server, same run).
//!
//! Pushes 64 images to Debian's docker-registry and signs each (simple signing, a key made
//! here), seeds two clusters that differ only in a rule "`**` must be signed by the key",
//! admits each review once to fill the cache, then `wrk -t1 -c32 -d10s` posts 64 Deployments
//! of 3 images each (by digest) to each cluster.
//!
//! Run: `cargo bench --bench signatures` (needs docker-registry and wrk: tests/services/start.sh
//! registry installs the first, `apt-get install wrk` the second).

mod common;

use std::path::Path;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const IMAGES: usize = 64;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

async fn put_blob(http: &reqwest::Client, reg: &str, repo: &str, bytes: &[u8]) -> Value {
    let digest = sha256(bytes);
    let res = http
        .post(format!("http://{reg}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let loc = res.headers()["location"].to_str().unwrap().to_string();
    let url = if loc.starts_with("http") {
        loc
    } else {
        format!("http://{reg}{loc}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let res = http
        .put(format!("{url}{sep}digest={digest}"))
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    json!({"digest": digest, "size": bytes.len()})
}

async fn put_manifest(
    http: &reqwest::Client,
    reg: &str,
    repo: &str,
    tag: &str,
    m: &Value,
) -> String {
    let bytes = serde_json::to_vec(m).unwrap();
    let res = http
        .put(format!("http://{reg}/v2/{repo}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    sha256(&bytes)
}

/// Pushes image `i` and its simple signature; returns its digest reference.
async fn signed_image(http: &reqwest::Client, reg: &str, key: &EcdsaKeyPair, i: usize) -> String {
    let repo = format!("bench/app{}", i % 8);
    let config = put_blob(http, reg, &repo, b"{\"os\":\"linux\"}").await;
    let layer = put_blob(http, reg, &repo, format!("layer {i}").as_bytes()).await;
    let m = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer["digest"], "size": layer["size"]}]});
    let digest = put_manifest(http, reg, &repo, &format!("v{i}"), &m).await;
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{reg}/{repo}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    );
    let sig = B64.encode(
        key.sign(&SystemRandom::new(), payload.as_bytes())
            .unwrap()
            .as_ref(),
    );
    let p = put_blob(http, reg, &repo, payload.as_bytes()).await;
    let sig_manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"]},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": p["digest"], "size": p["size"],
            "annotations": {"dev.cosignproject.cosign/signature": sig}}]});
    put_manifest(
        http,
        reg,
        &repo,
        &format!("{}.sig", digest.replace(':', "-")),
        &sig_manifest,
    )
    .await;
    format!("{reg}/{repo}@{digest}")
}

fn review(i: usize, images: &[String]) -> String {
    let pick = |k: usize| images[(i * 7 + k * 13) % images.len()].clone();
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": format!("bench-{i}"), "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "namespace": format!("ns{}", i % 10), "operation": "CREATE", "name": format!("web-{i}"),
        "object": {"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": pick(0)}, {"name": "b", "image": pick(1)}, {"name": "c", "image": pick(2)}]}}}}}})
    .to_string()
}

fn seed(dir: &Path, registry: &str, pem: &str) {
    use bulwark::clusters::{NewCluster, UnscannedAction};
    let store = bulwark::app::open_store(dir).unwrap();
    let sealer = bulwark::secrets::Sealer::open(dir).unwrap();
    let cluster = |name: &str| {
        let new = NewCluster {
            name: name.into(),
            enforcement: true,
            unscanned_action: UnscannedAction::AllowAndQueue,
            ..Default::default()
        };
        bulwark::clusters::create(&store, "bench", "", new)
            .unwrap()
            .id
    };
    cluster("plain");
    let signed = cluster("signed");
    bulwark::registries::create(
        &store,
        &sealer,
        "bench",
        "",
        bulwark::registries::NewRegistry {
            host: registry.into(),
            insecure_registry: true,
            ..Default::default()
        },
    )
    .unwrap();
    let rule = bulwark::trust::NewRule {
        pattern: "**".into(),
        keys: vec![pem.into()],
        description: "bench".into(),
    };
    bulwark::trust::create(&store, "bench", "", signed, rule).unwrap();
}

#[tokio::main]
async fn main() {
    if !Path::new("/usr/bin/docker-registry").exists() {
        println!(
            "signatures bench skipped: no docker-registry (run tests/services/start.sh registry)"
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let reg_port = common::free_port();
    let reg = format!("127.0.0.1:{reg_port}");
    let cfg = work.path().join("registry.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {reg}\n",
            work.path().join("registry").display()
        ),
    )
    .unwrap();
    let mut registry = std::process::Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(&reg).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
        .unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let mut spki = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    spki.extend_from_slice(key.public_key().as_ref());
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        B64.encode(&spki)
    );
    let http = reqwest::Client::new();
    let mut images = Vec::new();
    for i in 0..IMAGES {
        images.push(signed_image(&http, &reg, &key, i).await);
    }
    println!("pushed and signed {IMAGES} images");

    let data = work.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    seed(&data, &reg, &pem);
    let port = common::free_port();
    let mut child = common::start(&data, port);
    let base = format!("https://127.0.0.1:{port}");
    let client = common::client(30);
    for _ in 0..300 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bodies: Vec<String> = (0..64).map(|i| review(i, &images)).collect();
    let t = std::time::Instant::now();
    let mut allowed = 0;
    for b in &bodies {
        let v: Value = client
            .post(format!("{base}/api/v1/admission/signed"))
            .header("content-type", "application/json")
            .body(b.clone())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        allowed += usize::from(v["response"]["allowed"] == true);
    }
    println!(
        "first pass (cache filled from the registry): {allowed}/64 allowed in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let lua = work.path().join("reviews.lua");
    common::write_post_script(&lua, &bodies);
    for (cluster, label) in [
        ("plain", "reference: the cluster without signature rules"),
        (
            "signed",
            "the cluster whose every image must be signed (cached)",
        ),
        ("plain", "reference again"),
        ("signed", "signed again"),
    ] {
        let out = common::wrk(
            &[
                "-t1",
                "-c32",
                "-d10s",
                "--latency",
                "-s",
                lua.to_str().unwrap(),
            ],
            &format!("{base}/api/v1/admission/{cluster}"),
        );
        common::print_wrk(
            &format!("wrk -t1 -c32 -d10s POST /api/v1/admission/{cluster}: {label}"),
            &out,
        );
    }
    for c in [&mut child, &mut registry] {
        let _ = c.kill();
        let _ = c.wait();
    }
}
