//! Signed images against a real registry (Debian's docker-registry): the test pushes images
//! and cosign's two kinds of signature itself (a `sha256-<hex>.sig` simple-signing manifest,
//! and a Sigstore bundle referrer found through the `sha256-<hex>` tag a registry without the
//! referrers API gets), signing with keys it makes. `bulwark verify` and admission must accept
//! only a valid signature by a trusted key over the image's own digest.

use std::process::Command;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::Engine as _;
use bulwark::http::Role;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::scanner::{start_registry_with, KillOnDrop};
use crate::support::{Caller, InProcess};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// A P-256 signing key and its `cosign.pub`.
pub(crate) struct Key {
    pair: EcdsaKeyPair,
    pub(crate) pem: String,
}

impl Key {
    pub(crate) fn new() -> Key {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        // SubjectPublicKeyInfo: id-ecPublicKey, prime256v1, then the point.
        let mut spki = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        spki.extend_from_slice(pair.public_key().as_ref());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            B64.encode(&spki)
        );
        Key { pair, pem }
    }

    pub(crate) fn sign(&self, message: &[u8]) -> String {
        B64.encode(
            self.pair
                .sign(&SystemRandom::new(), message)
                .unwrap()
                .as_ref(),
        )
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Pushes to a registry over its HTTP API, as `docker push` and `cosign sign` do.
pub(crate) struct Registry {
    /// `http://host:port` or `https://host:port`.
    base: String,
    http: reqwest::Client,
}

impl Registry {
    pub(crate) fn new(addr: &str) -> Registry {
        Registry::with(&format!("http://{addr}"), reqwest::Client::new())
    }

    pub(crate) fn with(base: &str, http: reqwest::Client) -> Registry {
        Registry {
            base: base.to_string(),
            http,
        }
    }

    async fn blob(&self, repo: &str, bytes: &[u8]) -> Value {
        let digest = sha256(bytes);
        let res = self
            .http
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "upload start");
        let location = res.headers()["location"].to_str().unwrap().to_string();
        let url = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.base)
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let res = self
            .http
            .put(format!("{url}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "blob {digest}");
        json!({"digest": digest, "size": bytes.len()})
    }

    /// Puts a manifest at `reference`; returns its descriptor.
    async fn manifest(&self, repo: &str, reference: &str, body: &Value) -> Value {
        let bytes = serde_json::to_vec(body).unwrap();
        let media = body["mediaType"].as_str().unwrap();
        let res = self
            .http
            .put(format!("{}/v2/{repo}/manifests/{reference}", self.base))
            .header("content-type", media)
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        let status = res.status();
        assert_eq!(
            status,
            201,
            "manifest {reference}: {}",
            res.text().await.unwrap_or_default()
        );
        json!({"mediaType": media, "digest": sha256(&bytes), "size": bytes.len()})
    }

    /// A small image of its own (distinct content, so a distinct digest), tagged `tag`.
    pub(crate) async fn image(&self, repo: &str, tag: &str) -> String {
        let config = self
            .blob(
                repo,
                br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
            )
            .await;
        let layer = self
            .blob(
                repo,
                format!("layer of {repo}:{tag} {}", rand_u64()).as_bytes(),
            )
            .await;
        let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"]},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer["digest"], "size": layer["size"]}]});
        self.manifest(repo, tag, &m).await["digest"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A simple-signing `.sig` manifest for `digest` with the given (payload, signature) layers.
    pub(crate) async fn sig(&self, repo: &str, digest: &str, layers: &[(Vec<u8>, String)]) {
        let config = self.blob(repo, b"{}").await;
        let mut descs = Vec::new();
        for (payload, signature) in layers {
            let b = self.blob(repo, payload).await;
            descs.push(
                json!({"mediaType": SIMPLE_SIGNING, "digest": b["digest"], "size": b["size"],
                "annotations": {"dev.cosignproject.cosign/signature": signature}}),
            );
        }
        let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"]},
            "layers": descs});
        let tag = format!("{}.sig", digest.replace(':', "-"));
        self.manifest(repo, &tag, &m).await;
    }

    /// A Sigstore bundle referrer whose subject is `subject`, listed under `digest`'s
    /// referrers tag (the distribution spec's fallback for registries without the API).
    async fn bundle(&self, repo: &str, digest: &str, subject: &str, bundle: &[u8]) {
        let empty = self.blob(repo, b"{}").await;
        let b = self.blob(repo, bundle).await;
        let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty["digest"], "size": 2},
            "layers": [{"mediaType": BUNDLE, "digest": b["digest"], "size": b["size"]}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}});
        let tag = format!("bundle-{}", rand_u64());
        let desc = self.manifest(repo, &tag, &m).await;
        let mut entry = desc.clone();
        entry["artifactType"] = json!(BUNDLE);
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]});
        self.manifest(repo, &digest.replace(':', "-"), &index).await;
    }
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    u64::from_le_bytes(b)
}

pub(crate) fn payload(repo: &str, digest: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{repo}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}

fn dsse_bundle(key: &Key, subject_digest: &str) -> Vec<u8> {
    let statement = json!({"_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "image", "digest": {"sha256": subject_digest.trim_start_matches("sha256:")}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": {}});
    let body = serde_json::to_vec(&statement).unwrap();
    let ptype = "application/vnd.in-toto+json";
    let mut pae = format!("DSSEv1 {} {ptype} {} ", ptype.len(), body.len()).into_bytes();
    pae.extend_from_slice(&body);
    serde_json::to_vec(&json!({"mediaType": BUNDLE,
        "verificationMaterial": {"publicKey": {"hint": "test"}},
        "dsseEnvelope": {"payload": B64.encode(&body), "payloadType": ptype,
            "signatures": [{"sig": key.sign(&pae)}]}}))
    .unwrap()
}

/// Every kind of image the tests need, pushed once: `(name, reference)`.
struct Fixture {
    registry: Option<KillOnDrop>,
    addr: String,
    trusted: Key,
    images: Vec<(&'static str, String)>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn reference(&self, name: &str) -> &str {
        &self.images.iter().find(|(n, _)| *n == name).unwrap().1
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (guard, addr) = start_registry_with(&dir.path().join("registry"), "");
    let reg = Registry::new(&addr);
    let trusted = Key::new();
    let stranger = Key::new();
    let repo = "team/app";
    let mut images = Vec::new();
    let mut add = |name: &'static str, tag: &str| {
        images.push((name, format!("{addr}/{repo}:{tag}")));
    };

    let signed = reg.image(repo, "signed").await;
    let p = payload(repo, &signed);
    reg.sig(repo, &signed, &[(p.clone(), trusted.sign(&p))])
        .await;
    add("signed", "signed");

    reg.image(repo, "unsigned").await;
    add("unsigned", "unsigned");

    // A signature that is not one over its payload.
    let garbled = reg.image(repo, "garbled").await;
    let p = payload(repo, &garbled);
    reg.sig(repo, &garbled, &[(p, trusted.sign(b"something else"))])
        .await;
    add("garbled", "garbled");

    let other_key = reg.image(repo, "other-key").await;
    let p = payload(repo, &other_key);
    reg.sig(repo, &other_key, &[(p.clone(), stranger.sign(&p))])
        .await;
    add("other-key", "other-key");

    // The payload changed after it was signed.
    let tampered = reg.image(repo, "tampered").await;
    let p = payload(repo, &tampered);
    let sig = trusted.sign(&p);
    let mut changed = p.clone();
    changed.extend_from_slice(b" ");
    reg.sig(repo, &tampered, &[(changed, sig)]).await;
    add("tampered", "tampered");

    // A valid signature by the trusted key, but over the signed image, copied under this one.
    let elsewhere = reg.image(repo, "elsewhere").await;
    let p = payload(repo, &signed);
    reg.sig(repo, &elsewhere, &[(p.clone(), trusted.sign(&p))])
        .await;
    add("elsewhere", "elsewhere");

    // A huge signature layer first (never read whole), then a valid one.
    let huge = reg.image(repo, "huge").await;
    let big = vec![b'x'; 2 * 1024 * 1024];
    let p = payload(repo, &huge);
    reg.sig(
        repo,
        &huge,
        &[(big, "AAAA".into()), (p.clone(), trusted.sign(&p))],
    )
    .await;
    add("huge", "huge");
    let only_huge = reg.image(repo, "only-huge").await;
    reg.sig(
        repo,
        &only_huge,
        &[(vec![b'y'; 2 * 1024 * 1024], "AAAA".into())],
    )
    .await;
    add("only-huge", "only-huge");

    // Sigstore bundles (cosign 3's default), as referrers.
    let bundled = reg.image(repo, "bundled").await;
    reg.bundle(repo, &bundled, &bundled, &dsse_bundle(&trusted, &bundled))
        .await;
    add("bundled", "bundled");
    let bundle_other_subject = reg.image(repo, "bundle-elsewhere").await;
    reg.bundle(
        repo,
        &bundle_other_subject,
        &signed,
        &dsse_bundle(&trusted, &bundle_other_subject),
    )
    .await;
    add("bundle-elsewhere", "bundle-elsewhere");
    let bundle_stranger = reg.image(repo, "bundle-stranger").await;
    reg.bundle(
        repo,
        &bundle_stranger,
        &bundle_stranger,
        &dsse_bundle(&stranger, &bundle_stranger),
    )
    .await;
    add("bundle-stranger", "bundle-stranger");

    images.push(("signed-by-digest", format!("{addr}/{repo}@{signed}")));
    Fixture {
        registry: Some(guard),
        addr,
        trusted,
        images,
        _dir: dir,
    }
}

fn verify(key_pem: &str, image: &str) -> (i32, String, String) {
    verify_with(key_pem, image, &["--plain-http"], &[])
}

/// `bulwark verify` with extra flags and environment (proxy variables are cleared first).
pub(crate) fn verify_with(
    key_pem: &str,
    image: &str,
    flags: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("cosign.pub");
    std::fs::write(&key, key_pem).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulwark"));
    cmd.args(["verify", image, "--timeout", "5"])
        .args(flags)
        .arg("--key")
        .arg(&key)
        .env("DOCKER_CONFIG", dir.path());
    for v in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
        "BULWARK_OUTBOUND_CA_BUNDLE",
    ] {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn verify_accepts_only_a_valid_signature_by_the_key() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let f = rt.block_on(fixture());
    let key = &f.trusted.pem;
    for (name, expect_ok, why) in [
        ("signed", true, ""),
        ("signed-by-digest", true, ""),
        ("huge", true, ""),
        ("bundled", true, ""),
        ("unsigned", false, "no cosign signature found"),
        ("garbled", false, "does not verify"),
        ("other-key", false, "does not verify"),
        ("tampered", false, "does not verify"),
        ("elsewhere", false, "the signature is for"),
        ("only-huge", false, "was not read"),
        ("bundle-elsewhere", false, "subject is"),
        ("bundle-stranger", false, "does not verify"),
    ] {
        let (code, out, err) = verify(key, f.reference(name));
        if expect_ok {
            assert_eq!(code, 0, "{name}: {out}{err}");
            assert!(out.starts_with("Verified: "), "{name}: {out}");
        } else {
            assert_eq!(code, 1, "{name}: {out}{err}");
            assert!(err.contains(why), "{name}: {err}");
        }
    }
    // Another key than the one that signed.
    let (code, _, err) = verify(&Key::new().pem, f.reference("signed"));
    assert_eq!(code, 1, "{err}");
    // A tag the registry lacks is not signed.
    let (code, _, err) = verify(key, &format!("{}/team/app:absent", f.addr));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no tag 'absent'"), "{err}");
    // Malformed keys and an unreachable registry cannot be checked: 2.
    for bad in [
        "not a key",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    ] {
        let (code, _, err) = verify(bad, f.reference("signed"));
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("public key"), "{err}");
    }
    let port = crate::support::free_port();
    let (code, _, err) = verify(key, &format!("127.0.0.1:{port}/team/app:signed"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Could not check"), "{err}");
}

macro_rules! call {
    ($app:expr, $req:expr) => {{
        let res = actix_web::test::call_service($app, $req.to_request()).await;
        let status = res.status().as_u16();
        let body = actix_web::test::read_body(res).await;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, v)
    }};
}

fn pod(uid: &str, image: &str) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"}, "namespace": "shop",
        "operation": "CREATE", "name": "web-1",
        "object": {"metadata": {"name": "web-1"}, "spec": {"containers": [{"name": "app", "image": image}]}}}})
}

/// A listener that accepts connections and never answers: a registry (or proxy) that hangs.
pub(crate) fn hanging_registry() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    addr
}

#[actix_web::test]
async fn admission_enforces_signature_rules_per_cluster() {
    let mut f = fixture().await;
    let t = InProcess::new();
    t.user("admin@example.com", Role::Admin);
    let (s, csrf) = t.session("admin@example.com");
    let app = t.service().await;
    let admin = Caller::session(&s);
    let hang = hanging_registry();
    for host in [f.addr.clone(), hang.clone()] {
        let (st, v) = call!(
            &app,
            admin.post(
                "/api/v1/registries",
                json!({"host": host, "insecure_registry": true})
            )
        );
        assert_eq!(st, 201, "{v}");
    }
    let cluster = |name: &str, mode: &str| json!({"name": name, "enforcement": true, "failure_mode": mode, "unscanned_action": "allow-and-queue"});
    let (_, open) = call!(
        &app,
        admin.post("/api/v1/clusters", cluster("open", "fail-open"))
    );
    let (_, closed) = call!(
        &app,
        admin.post("/api/v1/clusters", cluster("closed", "fail-closed"))
    );
    call!(
        &app,
        admin.post("/api/v1/clusters", cluster("free", "fail-open"))
    );
    let rules = |c: &Value| format!("/api/v1/clusters/{}/signature-rules", c["id"]);
    // Bad rules are refused with reasons.
    for (body, why) in [
        (
            json!({"pattern": "a b", "keys": [f.trusted.pem]}),
            "pattern",
        ),
        (
            json!({"pattern": "**", "keys": ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"]}),
            "P-256",
        ),
        (json!({"pattern": "**", "keys": []}), "at least one"),
        (
            json!({"pattern": "**", "keys": [f.trusted.pem], "extra": 1}),
            "",
        ),
    ] {
        let (st, v) = call!(&app, admin.post(&rules(&open), body));
        assert_eq!(st, 400, "{v}");
        assert!(v.to_string().contains(why), "{v}");
    }
    for c in [&open, &closed] {
        for pattern in [format!("{}/team/**", f.addr), format!("{hang}/**")] {
            let (st, v) = call!(
                &app,
                admin.post(
                    &rules(c),
                    json!({"pattern": pattern, "keys": [f.trusted.pem], "description": "release key"})
                )
            );
            assert_eq!(st, 201, "{v}");
            assert_eq!(v["keys"][0]["fingerprint"].as_str().unwrap().len(), 64);
        }
    }
    let (_, listed) = call!(&app, admin.get(&rules(&open)));
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);

    let decide = |cluster: &str, uid: &str, image: &str| {
        Caller::default().post_bytes(
            &format!("/api/v1/admission/{cluster}"),
            pod(uid, image).to_string().into_bytes(),
        )
    };
    let mut n = 0;
    let mut admit = |cluster: &'static str, image: String| {
        n += 1;
        (decide(cluster, &format!("u{n}"), &image), image)
    };
    for (name, allowed) in [
        ("signed", true),
        ("signed-by-digest", true),
        ("bundled", true),
        ("unsigned", false),
        ("other-key", false),
        ("tampered", false),
        ("elsewhere", false),
        ("bundle-elsewhere", false),
    ] {
        let (req, image) = admit("open", f.reference(name).to_string());
        let (st, v) = call!(&app, req);
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["response"]["allowed"], allowed, "{name}: {v}");
        if !allowed {
            let msg = v["response"]["status"]["message"].as_str().unwrap();
            assert!(msg.contains("no valid cosign signature"), "{msg}");
            assert!(msg.contains(&image), "{msg}");
        }
    }
    // A cluster without rules admits unsigned images; images outside the patterns pass too.
    let (req, _) = admit("free", f.reference("unsigned").to_string());
    assert_eq!(call!(&app, req).1["response"]["allowed"], true);
    let (req, _) = admit("open", format!("{}/other/app:1", f.addr));
    assert_eq!(call!(&app, req).1["response"]["allowed"], true);

    // The registry goes away: cached digests are still decided, new ones follow the failure
    // mode (fail-open admits with a warning, fail-closed denies).
    drop(f.registry.take());
    let (req, _) = admit("closed", f.reference("signed").to_string());
    assert_eq!(
        call!(&app, req).1["response"]["allowed"],
        true,
        "verdicts are cached per digest and keys, whichever cluster asked"
    );
    let (req, _) = admit("open", f.reference("unsigned").to_string());
    assert_eq!(call!(&app, req).1["response"]["allowed"], false, "cached");
    let (req, _) = admit("closed", f.reference("garbled").to_string());
    let (_, v) = call!(&app, req);
    assert_eq!(v["response"]["allowed"], false, "{v}");
    assert!(v.to_string().contains("denied by fail-closed"), "{v}");
    let (req, _) = admit("open", f.reference("huge").to_string());
    let (_, v) = call!(&app, req);
    assert_eq!(v["response"]["allowed"], true, "{v}");
    assert!(v.to_string().contains("allowed by fail-open"), "{v}");

    // A registry that hangs: the deadline, then the failure mode.
    let started = std::time::Instant::now();
    let (req, _) = admit("closed", format!("{hang}/team/app:1"));
    let (_, v) = call!(&app, req);
    assert_eq!(v["response"]["allowed"], false, "{v}");
    let text = v.to_string();
    assert!(
        text.contains("denied by fail-closed")
            && (text.contains("timed out") || text.contains("did not answer")),
        "{v}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(9));
    let (req, _) = admit("open", format!("{hang}/team/app:1"));
    assert_eq!(call!(&app, req).1["response"]["allowed"], true);

    // The verdicts reached are listed; rules are removed with their cluster's consent only.
    let (_, recent) = call!(&app, admin.get("/api/v1/signatures/recent"));
    assert!(recent["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["signed"] == false && r["image"].as_str().unwrap().ends_with(":tampered")));
    let first = listed["items"][0]["id"].as_u64().unwrap();
    let (st, _) = call!(&app, admin.delete(&format!("{}/{first}", rules(&closed))));
    assert_eq!(st, 404, "a rule of another cluster");
    let (st, _) = call!(&app, admin.delete(&format!("{}/{first}", rules(&open))));
    assert_eq!(st, 204);

    // The cluster's page: rules with fingerprints, the form (refusals keep what was typed).
    let page = format!("/clusters/{}/signatures", open["id"]);
    let res = actix_web::test::call_service(&app, admin.get(&page).to_request()).await;
    assert_eq!(res.status(), 200);
    let html = String::from_utf8(actix_web::test::read_body(res).await.to_vec()).unwrap();
    assert!(html.contains(&format!("{hang}/**")), "{html}");
    assert!(html.contains("id=\"signature-rule-form\""), "{html}");
    assert!(
        html.contains(":tampered"),
        "recent checks are listed: {html}"
    );
    let post = |body: String| {
        let req = admin.form(&page, format!("csrf={csrf}&{body}"));
        let app = &app;
        async move {
            let res = actix_web::test::call_service(app, req.to_request()).await;
            let status = res.status().as_u16();
            let body = actix_web::test::read_body(res).await;
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let (st, html) = post("pattern=registry.corp%2Fteam%2F**&keys=not+a+key".into()).await;
    assert_eq!(st, 400);
    assert!(
        html.contains("registry.corp/team/**") && html.contains("PEM"),
        "{html}"
    );
    let pem: String = url::form_urlencoded::byte_serialize(f.trusted.pem.as_bytes()).collect();
    let (st, _) = post(format!(
        "pattern=registry.corp%2Fteam%2F**&keys={pem}&description=ci"
    ))
    .await;
    assert_eq!(st, 303);
    let (_, listed) = call!(&app, admin.get(&rules(&open)));
    assert!(
        listed.to_string().contains("registry.corp/team/**"),
        "{listed}"
    );
}
