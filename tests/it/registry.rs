//! Registry pulls beyond the basics: Debian's docker-registry behind bearer-token auth (with a
//! token server here that signs ES256 JWTs the registry verifies against our certificate),
//! credentials from a Docker `config.json`, platform choice in a multi-platform index, and zstd
//! layers written by skopeo.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use serde_json::{json, Value};

use crate::scanner::{build_oci_layout, import, sh, start_registry_with, try_scan};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// An ECDSA signature from DER (`SEQUENCE { r, s }`) to JWS's fixed 64-byte `r || s`.
fn der_to_jws(der: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 2; // SEQUENCE tag and (short) length
    for _ in 0..2 {
        assert_eq!(der[i], 0x02, "INTEGER");
        let len = der[i + 1] as usize;
        let int = &der[i + 2..i + 2 + len];
        let int = &int[int.len().saturating_sub(32)..];
        out.extend(std::iter::repeat_n(0u8, 32 - int.len()));
        out.extend_from_slice(int);
        i += 2 + len;
    }
    out
}

/// A token server as Docker's token auth specifies it: `GET /token?service=…&scope=…` with
/// basic credentials answers `{"token": JWT}`, a JWT whose `x5c` header carries the certificate
/// the registry trusts. Only `user:password` gets a token. Runs until the test ends.
fn token_server(user: &'static str, password: &'static str, dir: &Path) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["bulwark-test-token".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("token-cert.pem"), cert.pem()).unwrap();
    let x5c = base64::engine::general_purpose::STANDARD.encode(cert.der());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut authorization = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("authorization") {
                        authorization = Some(v.trim().to_string());
                    }
                }
            }
            let target = request_line.split(' ').nth(1).unwrap_or("/");
            let url = reqwest::Url::parse(&format!("http://x{target}")).unwrap();
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            );
            if authorization.as_deref() != Some(expected.as_str()) {
                let _ = stream.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                continue;
            }
            let access: Vec<Value> = url
                .query_pairs()
                .filter(|(k, _)| k == "scope")
                .filter_map(|(_, v)| {
                    let parts: Vec<&str> = v.split(':').collect();
                    (parts.len() == 3).then(|| {
                        json!({"type": parts[0], "name": parts[1], "actions": parts[2].split(',').collect::<Vec<_>>()})
                    })
                })
                .collect();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let header = json!({"alg": "ES256", "typ": "JWT", "x5c": [x5c]});
            let claims = json!({
                "iss": "bulwark-test-issuer", "sub": user, "aud": "bulwark-test",
                "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", rand::random::<u32>()),
                "access": access,
            });
            let signing_input = format!(
                "{}.{}",
                B64URL.encode(header.to_string()),
                B64URL.encode(claims.to_string())
            );
            let der = rcgen::SigningKey::sign(&key, signing_input.as_bytes()).unwrap();
            let jwt = format!("{signing_input}.{}", B64URL.encode(der_to_jws(&der)));
            let body = json!({"token": jwt, "access_token": jwt, "expires_in": 300}).to_string();
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    addr
}

fn scan_cmd(db: &Path, image: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulwark"));
    cmd.args(["scan", "--db", db.to_str().unwrap(), "--insecure-registry"])
        .env_remove("BULWARK_CONFIG")
        .env_remove("BULWARK_REGISTRY_PASSWORD")
        .env("DOCKER_CONFIG", db.with_extension("no-docker-config"))
        .arg(image);
    cmd
}

/// Bearer tokens: the registry answers 401 with a `Bearer realm=…` challenge, the scanner gets
/// a token from the realm with the credentials (flags, or a Docker config.json) and pulls.
#[test]
fn scan_pulls_with_bearer_tokens_and_docker_config() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_server("ci", "t0ken-pass", dir.path());
    let auth = format!(
        "auth:\n  token:\n    realm: http://{token}/token\n    service: bulwark-test\n    issuer: bulwark-test-issuer\n    rootcertbundle: {}\n",
        dir.path().join("token-cert.pem").display()
    );
    let (_guard, registry) = start_registry_with(&dir.path().join("reg"), &auth);
    let db = dir.path().join("vulndb.redb");
    import(&db);
    let (layout, _, _) = build_oci_layout(dir.path());
    sh(&format!(
        "skopeo copy --dest-tls-verify=false --dest-creds ci:t0ken-pass oci:{}:v1 docker://{registry}/private/botan:v1",
        layout.display()
    ));
    let image = format!("{registry}/private/botan:v1");

    let o = scan_cmd(&db, &image).output().unwrap();
    assert!(!o.status.success(), "anonymous pulls are refused");
    let o = scan_cmd(&db, &image)
        .args(["--username", "ci"])
        .env("BULWARK_REGISTRY_PASSWORD", "wrong")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("refused a token"), "{err}");
    let o = scan_cmd(&db, &image)
        .args(["--username", "ci"])
        .env("BULWARK_REGISTRY_PASSWORD", "t0ken-pass")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("CVE-2018-20187"), "{out}");

    // The same credentials from a Docker config.json, as `docker login` leaves them.
    let docker = dir.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:t0ken-pass");
    std::fs::write(
        docker.join("config.json"),
        json!({"auths": {registry.clone(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let o = scan_cmd(&db, &image)
        .env("DOCKER_CONFIG", &docker)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("CVE-2018-20187"));
}

/// A multi-platform index (amd64 and arm64 images with different packages) pushed with
/// `skopeo copy --all`, and the same image re-pushed with zstd layers.
#[test]
fn scan_picks_the_platform_and_reads_zstd_layers() {
    let dir = tempfile::tempdir().unwrap();
    let (_guard, registry) = start_registry_with(&dir.path().join("reg"), "");
    let db = dir.path().join("vulndb.redb");
    import(&db);
    // Two images made with umoci: botan 2.8.0-r0 (one advisory) for amd64, 2.6.0-r0 (two) for
    // arm64, then an index over both.
    let layout = dir.path().join("multi");
    sh(&format!("umoci init --layout {}", layout.display()));
    for (tag, version, arch) in [("amd", "2.8.0-r0", "amd64"), ("arm", "2.6.0-r0", "arm64")] {
        let root = dir.path().join(tag);
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("lib/apk/db")).unwrap();
        std::fs::write(
            root.join("etc/os-release"),
            "ID=alpine\nVERSION_ID=3.10.9\nPRETTY_NAME=\"Alpine Linux v3.10\"\n",
        )
        .unwrap();
        std::fs::write(
            root.join("lib/apk/db/installed"),
            format!("P:botan\nV:{version}\nA:x86_64\no:botan\n\n"),
        )
        .unwrap();
        sh(&format!(
            "umoci new --image {l}:{tag} && umoci insert --image {l}:{tag} {} / && umoci config --image {l}:{tag} --architecture {arch}",
            root.display(),
            l = layout.display()
        ));
    }
    // umoci names manifests in index.json; turn them into one platform index.
    let index_path = layout.join("index.json");
    let index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let mut manifests: Vec<Value> = index["manifests"].as_array().unwrap().clone();
    for m in &mut manifests {
        let tag = m["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .unwrap()
            .to_string();
        let arch = if tag == "amd" { "amd64" } else { "arm64" };
        m["platform"] = json!({"os": "linux", "architecture": arch});
        m.as_object_mut().unwrap().remove("annotations");
    }
    let inner = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    let bytes = inner.to_string().into_bytes();
    let hex = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(&bytes))
    };
    std::fs::write(layout.join("blobs/sha256").join(&hex), &bytes).unwrap();
    let top = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": format!("sha256:{hex}"),
        "size": bytes.len(), "annotations": {"org.opencontainers.image.ref.name": "multi"}}]});
    std::fs::write(&index_path, top.to_string()).unwrap();
    sh(&format!(
        "skopeo copy --all --dest-tls-verify=false oci:{}:multi docker://{registry}/team/botan:multi",
        layout.display()
    ));
    let image = format!("{registry}/team/botan:multi");
    let count = |extra: &[&str]| -> usize {
        let mut args = vec!["--insecure-registry"];
        args.extend_from_slice(extra);
        let (report, _) = try_scan(&db, &args, &image).unwrap_or_else(|e| panic!("{e}"));
        report["Results"][0]["Vulnerabilities"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count(&[]), 1, "linux/amd64 by default");
    assert_eq!(count(&["--platform", "linux/arm64"]), 2);
    let err = try_scan(
        &db,
        &["--insecure-registry", "--platform", "linux/s390x"],
        &image,
    )
    .unwrap_err();
    assert!(
        err.contains("no linux/s390x manifest") && err.contains("linux/arm64"),
        "{err}"
    );

    // zstd layers, as `skopeo copy --dest-compress-format zstd` writes them (through a layout:
    // a registry that already holds the gzip blob would be handed that one again).
    let zdir = dir.path().join("zstd-layout");
    sh(&format!(
        "skopeo copy --src-tls-verify=false --dest-compress-format zstd docker://{registry}/team/botan:multi oci:{z}:z && skopeo copy --dest-tls-verify=false oci:{z}:z docker://{registry}/team/botan:zstd",
        z = zdir.display()
    ));
    let inspect = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{registry}/team/botan:zstd"))
        .output()
        .unwrap();
    let raw = String::from_utf8_lossy(&inspect.stdout);
    assert!(raw.contains("zstd"), "skopeo wrote zstd layers: {raw}");
    let (report, _) = try_scan(
        &db,
        &["--insecure-registry"],
        &format!("{registry}/team/botan:zstd"),
    )
    .unwrap();
    assert!(report.to_string().contains("CVE-2018-20187"));
}

/// On a terminal (a pty from `script`), pulls draw progress bars on stderr and the table colors
/// severities; piped, neither appears.
#[test]
fn progress_and_colors_only_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (_guard, registry) = start_registry_with(&dir.path().join("reg"), "");
    let db = dir.path().join("vulndb.redb");
    import(&db);
    let (layout, _, _) = build_oci_layout(dir.path());
    sh(&format!(
        "skopeo copy --dest-tls-verify=false oci:{}:v1 docker://{registry}/team/botan:v1",
        layout.display()
    ));
    let cmd = format!(
        "{} scan --db {} --insecure-registry {registry}/team/botan:v1",
        env!("CARGO_BIN_EXE_bulwark"),
        db.display()
    );
    let tty = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("BULWARK_CONFIG")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{out}");
    assert!(
        out.contains("layer 1/2 [") && out.contains("layer 2/2 ["),
        "{out}"
    );
    assert!(
        out.contains("\u{1b}[2m") || out.contains("\u{1b}[31m"),
        "colored: {out}"
    );
    let piped = Command::new("sh")
        .args(["-c", &cmd])
        .env_remove("BULWARK_CONFIG")
        .output()
        .unwrap();
    assert!(piped.status.success());
    let all = [piped.stdout, piped.stderr].concat();
    assert!(!all.contains(&0x1b), "{}", String::from_utf8_lossy(&all));
    assert!(String::from_utf8_lossy(&all).contains("CVE-2018-20187"));
}
