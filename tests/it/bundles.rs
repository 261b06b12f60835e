//! Signed offline bundles end to end: keys made with openssl, `bulwark db bundle` from files and
//! from feeds served over HTTP (a mirror), `bulwark db import --key`, the API and the console's
//! upload, and the hostile bundles (a changed file, a changed manifest, another key, an entry
//! that climbs out of the archive, a manifest naming a path outside `files/`, a broken zip)
//! that must change nothing.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use bulwark::http::{Role, Scope};
use serde_json::Value;

use crate::support::{call, Caller, InProcess};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vulndb");

fn bulwark(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(args)
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A P-256 key pair made by openssl: (private PEM path, public PEM path).
fn openssl_keys(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&private)
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl genpkey");
    let ok = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl pkey");
    (private, public)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The bundle's entries, as (name, bytes).
fn entries(bundle: &Path) -> Vec<(String, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(std::fs::File::open(bundle).unwrap()).unwrap();
    (0..z.len())
        .map(|i| {
            let mut e = z.by_index(i).unwrap();
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            (e.name().to_string(), b)
        })
        .collect()
}

/// Writes `entries` as a zip archive.
fn rezip(path: &Path, entries: &[(String, Vec<u8>)]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in entries {
        z.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
}

/// Signs `manifest` with `key` as `openssl dgst -sha256 -sign` does; base64.
fn openssl_sign(dir: &Path, key: &Path, manifest: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let m = dir.join("manifest-to-sign.json");
    std::fs::write(&m, manifest).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign", s(key)])
        .arg(&m)
        .output()
        .unwrap();
    assert!(out.status.success());
    base64::engine::general_purpose::STANDARD
        .encode(out.stdout)
        .into_bytes()
}

fn advisories(db: &Path) -> u64 {
    if !db.exists() {
        return 0;
    }
    let (ok, out, err) = bulwark(&["db", "status", "--db", s(db)]);
    assert!(ok, "{err}");
    out.split(": ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn bundles_are_made_checked_and_imported_or_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (private, public) = openssl_keys(d, "publisher");
    let (other_private, _) = openssl_keys(d, "stranger");
    let bundle = d.join("feeds.bundle");
    let (ok, out, err) = bulwark(&[
        "db",
        "bundle",
        "--key",
        s(&private),
        "-o",
        s(&bundle),
        "--description",
        "fixtures",
        FIXTURES,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("a signed 'vulndb' bundle of"), "{out}");
    // The signature is a standard one: openssl checks it with the public key.
    let all = entries(&bundle);
    let manifest = &all
        .iter()
        .find(|(n, _)| n == "bulwark-bundle.json")
        .unwrap()
        .1;
    let sig = &all
        .iter()
        .find(|(n, _)| n == "bulwark-bundle.sig")
        .unwrap()
        .1;
    use base64::Engine as _;
    std::fs::write(d.join("m.json"), manifest).unwrap();
    std::fs::write(
        d.join("m.sig"),
        base64::engine::general_purpose::STANDARD
            .decode(String::from_utf8_lossy(sig).trim())
            .unwrap(),
    )
    .unwrap();
    let verified = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify", s(&public), "-signature"])
        .arg(d.join("m.sig"))
        .arg(d.join("m.json"))
        .status()
        .unwrap();
    assert!(verified.success());

    // Hostile bundles, each refused before the database is touched.
    let db = d.join("vulndb.redb");
    let files: Vec<&(String, Vec<u8>)> = all
        .iter()
        .filter(|(n, _)| n.starts_with("files/"))
        .collect();
    let mut m: Value = serde_json::from_slice(manifest).unwrap();
    let changed_file = {
        let mut e = all.clone();
        let i = e.iter().position(|(n, _)| n == &files[0].0).unwrap();
        e[i].1.extend_from_slice(b" ");
        e
    };
    let changed_manifest = {
        let mut e = all.clone();
        let i = e
            .iter()
            .position(|(n, _)| n == "bulwark-bundle.json")
            .unwrap();
        e[i].1 = String::from_utf8(e[i].1.clone())
            .unwrap()
            .replace("fixtures", "fixturez")
            .into_bytes();
        e
    };
    let other_key = {
        let mut e = all.clone();
        let i = e
            .iter()
            .position(|(n, _)| n == "bulwark-bundle.sig")
            .unwrap();
        e[i].1 = openssl_sign(d, &other_private, manifest);
        e
    };
    let climbing_entry = {
        let mut e = all.clone();
        e.push(("../../escaped.json".into(), b"{}".to_vec()));
        e
    };
    // A publisher's own key over a manifest naming a path outside files/.
    let climbing_manifest = {
        m["files"][0]["path"] = Value::String("files/../../etc/cron.d/x".into());
        let bytes = serde_json::to_vec(&m).unwrap();
        let mut e: Vec<(String, Vec<u8>)> = all
            .iter()
            .filter(|(n, _)| !n.starts_with("bulwark-bundle"))
            .cloned()
            .collect();
        e[0].0 = "files/../../etc/cron.d/x".into();
        e.push((
            "bulwark-bundle.sig".into(),
            openssl_sign(d, &private, &bytes),
        ));
        e.push(("bulwark-bundle.json".into(), bytes));
        e
    };
    for (name, contents, why) in [
        (
            "changed-file",
            changed_file,
            "does not match the signed manifest",
        ),
        (
            "changed-manifest",
            changed_manifest,
            "signature does not verify",
        ),
        ("other-key", other_key, "signature does not verify"),
        ("climbing-entry", climbing_entry, "does not list"),
        (
            "climbing-manifest",
            climbing_manifest,
            "not a plain name under files/",
        ),
    ] {
        let p = d.join(format!("{name}.bundle"));
        rezip(&p, &contents);
        let (ok, _, err) = bulwark(&["db", "import", "--db", s(&db), "--key", s(&public), s(&p)]);
        assert!(!ok, "{name}");
        assert!(
            err.contains(why) && err.contains("nothing was imported"),
            "{name}: {err}"
        );
        assert!(!db.exists(), "{name}: the database was not even created");
    }
    let truncated = d.join("truncated.bundle");
    let bytes = std::fs::read(&bundle).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let (ok, _, err) = bulwark(&[
        "db",
        "import",
        "--db",
        s(&db),
        "--key",
        s(&public),
        s(&truncated),
    ]);
    assert!(!ok && err.contains("not a bundle"), "{err}");
    // A bundle without --key is not imported unchecked.
    let (ok, _, err) = bulwark(&["db", "import", "--db", s(&db), s(&bundle)]);
    assert!(!ok && err.contains("--key"), "{err}");
    // A malformed key file.
    std::fs::write(
        d.join("bad.pub"),
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let (ok, _, err) = bulwark(&[
        "db",
        "import",
        "--db",
        s(&db),
        "--key",
        s(&d.join("bad.pub")),
        s(&bundle),
    ]);
    assert!(!ok && err.contains("P-256"), "{err}");
    assert!(!db.exists());

    // The genuine bundle imports what importing the files does.
    let (ok, out, err) = bulwark(&[
        "db",
        "import",
        "--db",
        s(&db),
        "--key",
        s(&public),
        s(&bundle),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("signed by key"), "{err}");
    assert!(out.contains(" imported"), "{out}");
    let direct = d.join("direct.redb");
    let (ok, _, err) = bulwark(&["db", "import", "--db", s(&direct), FIXTURES]);
    assert!(ok, "{err}");
    assert_eq!(advisories(&db), advisories(&direct));
    assert!(advisories(&db) > 10);
    // A tampered bundle over an existing database changes nothing.
    let before = std::fs::read(&db).unwrap();
    let p = d.join("changed-file.bundle");
    let (ok, _, _) = bulwark(&["db", "import", "--db", s(&db), "--key", s(&public), s(&p)]);
    assert!(!ok);
    assert_eq!(std::fs::read(&db).unwrap(), before, "not a byte changed");
}

/// `--osv`, `--alpine` and `--debian` download from a mirror (python's http.server here).
#[test]
fn bundles_gather_feeds_from_a_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (private, public) = openssl_keys(d, "publisher");
    let mirror = d.join("mirror");
    std::fs::create_dir_all(mirror.join("PyPI")).unwrap();
    std::fs::create_dir_all(mirror.join("v3.10")).unwrap();
    {
        let mut z =
            zip::ZipWriter::new(std::fs::File::create(mirror.join("PyPI/all.zip")).unwrap());
        for f in [
            "osv-PYSEC-2023-74-pypi.json",
            "osv-GHSA-9v2f-6vcg-3hgv-pypi.json",
        ] {
            z.start_file(f, zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(&std::fs::read(Path::new(FIXTURES).join(f)).unwrap())
                .unwrap();
        }
        z.finish().unwrap();
    }
    std::fs::copy(
        Path::new(FIXTURES).join("alpine-secdb-v3.10-community.json"),
        mirror.join("v3.10/community.json"),
    )
    .unwrap();
    std::fs::copy(
        Path::new(FIXTURES).join("debian-security-tracker-subset.json"),
        mirror.join("tracker.json"),
    )
    .unwrap();
    let port = crate::support::free_port();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&mirror)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let base = format!("http://127.0.0.1:{port}");
    let bundle = d.join("mirror.bundle");
    let (ok, out, err) = bulwark(&[
        "db",
        "bundle",
        "--key",
        s(&private),
        "-o",
        s(&bundle),
        "--osv",
        "PyPI",
        "--osv-base",
        &base,
        "--alpine",
        "v3.10/community",
        "--alpine-base",
        &base,
        "--debian",
        "--debian-url",
        &format!("{base}/tracker.json"),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("bundle of 3 files"), "{out}");
    // What the mirror lacks is an error, not an empty bundle.
    let (ok, _, err) = bulwark(&[
        "db",
        "bundle",
        "--key",
        s(&private),
        "-o",
        s(&d.join("x.bundle")),
        "--osv",
        "npm",
        "--osv-base",
        &base,
    ]);
    assert!(!ok && err.contains("404"), "{err}");
    let (ok, _, err) = bulwark(&[
        "db",
        "bundle",
        "--key",
        s(&private),
        "-o",
        s(&d.join("y.bundle")),
        "--alpine",
        "../x",
    ]);
    assert!(!ok && err.contains("BRANCH/REPO"), "{err}");
    let _ = server.kill();
    let _ = server.wait();
    let db = d.join("vulndb.redb");
    let (ok, out, err) = bulwark(&[
        "db",
        "import",
        "--db",
        s(&db),
        "--key",
        s(&public),
        s(&bundle),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("read 4 files"), "{out}");
    let (_, status, _) = bulwark(&["db", "status", "--db", s(&db)]);
    for feed in ["osv", "alpine-secdb", "debian-tracker"] {
        assert!(status.contains(feed), "{status}");
    }
}

#[actix_web::test]
async fn the_appliance_imports_bundles_signed_by_its_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let (private, public) = openssl_keys(&d, "publisher");
    let (stranger, _) = openssl_keys(&d, "stranger");
    let make = |key: &Path, out: &str| {
        let p = d.join(out);
        let (ok, _, err) = bulwark(&["db", "bundle", "--key", s(key), "-o", s(&p), FIXTURES]);
        assert!(ok, "{err}");
        std::fs::read(p).unwrap()
    };
    let good = make(&private, "good.bundle");
    let foreign = make(&stranger, "foreign.bundle");
    let feed = std::fs::read(Path::new(FIXTURES).join("osv-GO-2020-0001-go.json")).unwrap();

    // Without a configured key, bundles are refused and plain feeds accepted.
    let plain = InProcess::new();
    let admin = plain.user("admin@example.com", Role::Admin);
    let key = plain.key(admin, &[Scope::Admin]);
    let app = plain.service().await;
    let (st, v, _) = call(
        &app,
        Caller::key(&key).post_bytes("/api/v1/vulndb/import", good.clone()),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(v.to_string().contains("key_file"), "{v}");

    let t = InProcess::with(|c| c.bundles.key_file = public.display().to_string());
    let admin = t.user("admin@example.com", Role::Admin);
    let key = t.key(admin, &[Scope::Admin]);
    let (session, csrf) = t.session("admin@example.com");
    let app = t.service().await;
    let k = Caller::key(&key);
    for (body, why) in [
        (foreign.clone(), "signature does not verify"),
        (feed.clone(), "signed bundles only"),
    ] {
        let (st, v, _) = call(&app, k.post_bytes("/api/v1/vulndb/import", body)).await;
        assert_eq!(st, 400, "{v}");
        assert!(v.to_string().contains(why), "{v}");
    }
    let (_, v, _) = call(&app, k.get("/api/v1/vulndb")).await;
    assert_eq!(v["advisories"], 0, "nothing was imported: {v}");
    let (st, v, _) = call(&app, k.post_bytes("/api/v1/vulndb/import", good.clone())).await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v["summary"]
            .as_str()
            .unwrap()
            .starts_with("a bundle signed by key "),
        "{v}"
    );
    assert_eq!(
        v["report"]["bundle"]["files"].as_u64(),
        Some(std::fs::read_dir(FIXTURES).unwrap().count() as u64)
    );
    let (_, v, _) = call(&app, k.get("/api/v1/vulndb")).await;
    let imported = v["advisories"].as_u64().unwrap();
    assert!(imported > 10, "{v}");

    // The console's form takes the same bundle.
    let (_, html, _) = call(&app, Caller::session(&session).get("/vulndb")).await;
    assert!(
        html.as_str().unwrap().contains("signed bundles only"),
        "{html}"
    );
    let upload = |bundle: &[u8]| {
        let (ctype, body) = crate::vulndb::multipart("feed", "feeds.bundle", bundle);
        Caller::session(&session)
            .post_bytes(&format!("/vulndb/import?csrf={csrf}"), body)
            .insert_header(("content-type", ctype))
    };
    let (st, html, _) = call(&app, upload(&foreign)).await;
    assert_eq!(st, 400);
    assert!(
        html.as_str().unwrap().contains("nothing was imported"),
        "{html}"
    );
    let (st, _, h) = call(&app, upload(&good)).await;
    assert_eq!(st, 303);
    assert_eq!(h.get("location").unwrap(), "/vulndb");
    let (_, html, _) = call(&app, Caller::session(&session).get("/vulndb")).await;
    assert!(
        html.as_str().unwrap().contains("a bundle signed by key"),
        "{html}"
    );
}

/// A `detect-rules` bundle: its custom types land in the data directory's imported rules and
/// `bulwark detect` uses them; invalid rules change nothing.
#[test]
fn detection_rule_bundles_add_custom_types() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (private, public) = openssl_keys(d, "publisher");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let rules = d.join("acme.toml");
    std::fs::write(
        &rules,
        "[[custom]]\nid = \"acme.employee_id\"\nsensitivity = \"High\"\nvalue = '\\bEMP-\\d{6}\\b'\n",
    )
    .unwrap();
    let bad = d.join("bad.toml");
    std::fs::write(
        &bad,
        "[[custom]]\nid = \"acme.broken\"\nvalue = '(unclosed'\n",
    )
    .unwrap();
    let make = |input: &Path, out: &str| {
        let p = d.join(out);
        let (ok, _, err) = bulwark(&[
            "db",
            "bundle",
            "--kind",
            "detect-rules",
            "--key",
            s(&private),
            "-o",
            s(&p),
            s(input),
        ]);
        assert!(ok, "{err}");
        p
    };
    let good = make(&rules, "rules.bundle");
    let broken = make(&bad, "broken.bundle");
    let db = data.join("vulndb.redb");
    let (ok, _, err) = bulwark(&[
        "db",
        "import",
        "--db",
        s(&db),
        "--key",
        s(&public),
        s(&broken),
    ]);
    assert!(!ok && err.contains("not valid"), "{err}");
    assert!(!data.join("detect-rules.toml").exists());
    let (ok, out, err) = bulwark(&[
        "db",
        "import",
        "--db",
        s(&db),
        "--key",
        s(&public),
        s(&good),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("1 detection rules imported"), "{out}");
    assert!(
        !db.exists(),
        "a rules bundle leaves the vulnerability database alone"
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["--data-dir", s(&data), "detect", "--input", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"note":"badge EMP-123456 issued"}"#)
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("acme.employee_id"), "{out}");
}
