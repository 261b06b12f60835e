//! `bulwark scan` end to end through the real binary: import a feed, scan an unpacked root
//! filesystem, read Trivy-shaped JSON, and hand that JSON to the appliance's ingest.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::write_tree;

pub(crate) fn bulwark(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(args)
        .env_remove("BULWARK_CONFIG")
        .output()
        .unwrap()
}

/// The os-release of Alpine 3.10.
pub(crate) const ALPINE_3_10: &str =
    "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.10.9\nPRETTY_NAME=\"Alpine Linux v3.10\"\n";

/// An Alpine 3.10 root with botan 2.8.0-r0 (vulnerable: CVE-2018-20187 fixed in 2.9.0-r0) and
/// cfengine 3.12.2-r0 (already fixed). `etc/os-release` is an absolute symlink, as in real
/// images, which must resolve inside the root, never to the host's file.
fn alpine_root(root: &Path) {
    write_tree(
        root,
        &[
            ("usr/lib/os-release", ALPINE_3_10),
            (
                "lib/apk/db/installed",
                "P:botan\nV:2.8.0-r0\nA:x86_64\nL:BSD-2-Clause\no:botan\n\n\
                 P:cfengine\nV:3.12.2-r0\nA:x86_64\nL:GPL-3.0\no:cfengine\n\n",
            ),
        ],
    );
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::os::unix::fs::symlink("/usr/lib/os-release", root.join("etc/os-release")).unwrap();
}

/// Imports fixture feeds (file names under `tests/fixtures/vulndb`) into `db`.
pub(crate) fn import_fixtures(db: &Path, names: &[&str]) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vulndb/");
    let mut args = vec!["db".to_string(), "import".into(), "--db".into()];
    args.push(db.display().to_string());
    args.extend(names.iter().map(|n| format!("{dir}{n}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = bulwark(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

pub(crate) fn import(db: &Path) {
    import_fixtures(db, &["alpine-secdb-v3.10-community.json"]);
}

/// `bulwark scan --format json [extra...] TARGET`: the report and stderr, or stderr on failure.
pub(crate) fn try_scan(db: &Path, extra: &[&str], target: &str) -> Result<(Value, String), String> {
    let mut args = vec!["scan", "--db", db.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    args.push(target);
    let o = bulwark(&args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    if !o.status.success() {
        return Err(stderr);
    }
    Ok((serde_json::from_slice(&o.stdout).unwrap(), stderr))
}

/// `bulwark scan --format json --list-all-pkgs dir:ROOT`: the report and what went to stderr.
fn scan_report(db: &Path, root: &Path) -> (Value, String) {
    try_scan(db, &["--list-all-pkgs"], &format!("dir:{}", root.display()))
        .unwrap_or_else(|stderr| panic!("{stderr}"))
}

/// The `fields` of each finding in one result, joined with ` | `.
fn findings(result: &Value, fields: &[&str]) -> Vec<String> {
    result["Vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            fields
                .iter()
                .map(|f| v[*f].as_str().unwrap())
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect()
}

#[test]
fn scan_dir_reports_fixable_vulns_as_trivy_json() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    alpine_root(&root);
    let db = dir.path().join("vulndb.redb");
    import(&db);

    let target = format!("dir:{}", root.display());
    let (report, _) = scan_report(&db, &root);
    assert_eq!(report["SchemaVersion"], 2);
    assert_eq!(report["Metadata"]["OS"]["Family"], "alpine");
    assert_eq!(report["Metadata"]["OS"]["Name"], "3.10.9");
    let result = &report["Results"][0];
    // Only the advisory fixed after 2.8.0-r0 applies; older fixes and cfengine do not.
    assert_eq!(
        findings(result, &["VulnerabilityID", "PkgName", "FixedVersion"]),
        vec!["CVE-2018-20187 | botan | 2.9.0-r0"]
    );
    let pkgs: Vec<&str> = result["Packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Name"].as_str().unwrap())
        .collect();
    assert_eq!(pkgs, vec!["botan", "cfengine"]);
    // Package URLs as Trivy writes them, on findings and packages.
    assert_eq!(
        result["Vulnerabilities"][0]["PkgIdentifier"]["PURL"],
        "pkg:apk/alpine/botan@2.8.0-r0?arch=x86_64&distro=3.10.9"
    );
    assert_eq!(
        result["Packages"][1]["Identifier"]["PURL"],
        "pkg:apk/alpine/cfengine@3.12.2-r0?arch=x86_64&distro=3.10.9"
    );

    // The table format names the same finding, and --exit-code turns findings into a failure.
    let o = bulwark(&[
        "scan",
        "--db",
        db.to_str().unwrap(),
        "--exit-code",
        "3",
        &target,
    ]);
    assert_eq!(o.status.code(), Some(3));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("CVE-2018-20187") && table.contains("Alpine Linux v3.10"));
    // secdb publishes no severity, so the finding is UNKNOWN and --fail-on HIGH lets it pass.
    let o = bulwark(&[
        "scan",
        "--db",
        db.to_str().unwrap(),
        "--exit-code",
        "3",
        "--fail-on",
        "HIGH",
        &target,
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(result["Vulnerabilities"][0]["Severity"], "UNKNOWN");
    assert!(
        result["Vulnerabilities"][0]["SeveritySource"]
            .as_str()
            .unwrap()
            .ends_with("no imported feed rates it"),
        "{result}"
    );

    // Another feed rates the same CVE with only a CVSS vector: the finding takes that rating,
    // says where it came from, and now fails the HIGH gate.
    let osv = dir.path().join("GHSA-botan.json");
    std::fs::write(
        &osv,
        r#"{"id": "GHSA-xxxx-botan", "aliases": ["CVE-2018-20187"], "modified": "2024-01-01T00:00:00Z",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
            "affected": [{"package": {"ecosystem": "PyPI", "name": "botan-bindings"}, "versions": ["0.1"]}]}"#,
    )
    .unwrap();
    let o = bulwark(&[
        "db",
        "import",
        "--db",
        db.to_str().unwrap(),
        osv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (report, _) = scan_report(&db, &root);
    let v = &report["Results"][0]["Vulnerabilities"][0];
    assert_eq!(v["Severity"], "HIGH", "{v}");
    assert_eq!(
        v["SeveritySource"], "osv GHSA-xxxx-botan: CVSS:3.1 base 7.5",
        "{v}"
    );
}

#[test]
fn scan_refuses_what_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vulndb.redb");
    // No database yet: a clear message, not a panic.
    let o = bulwark(&["scan", "--db", db.to_str().unwrap(), "dir:/nonexistent"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("bulwark db import"));

    import(&db);
    let o = bulwark(&["scan", "--db", db.to_str().unwrap(), "Not A/Reference"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not an image reference"));
    let err = try_scan(&db, &["--fail-on", "SEVERE"], "dir:/tmp").unwrap_err();
    assert!(
        err.contains("possible values: UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL"),
        "{err}"
    );

    // A root with a corrupt package database still scans what it can and says what it skipped.
    let root = dir.path().join("root");
    alpine_root(&root);
    std::fs::write(
        root.join("lib/apk/db/installed"),
        "P:botan\n\nV:orphan\n\n\u{0}\u{1}garbage",
    )
    .unwrap();
    let (report, stderr) =
        try_scan(&db, &[], &format!("dir:{}", root.display())).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        report["Results"][0]["Vulnerabilities"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert!(stderr.contains("skipped"));
}

/// What `bulwark scan` prints is what the appliance ingests: the same report posted to
/// `/api/v1/scans` is stored with its finding, so a CI job can scan offline and upload.
#[actix_web::test]
async fn scan_json_round_trips_into_ingest() {
    use crate::support::{call, Caller};
    use bulwark::http::{Role, Scope};

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    alpine_root(&root);
    let db = dir.path().join("vulndb.redb");
    import(&db);
    let o = bulwark(&[
        "scan",
        "--db",
        db.to_str().unwrap(),
        "--format",
        "json",
        &format!("dir:{}", root.display()),
    ]);
    assert!(o.status.success());

    let t = crate::support::InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    let key = t.key(admin, &[Scope::Scanner]);
    let (session, _) = t.session("admin@example.com");
    let app = t.service().await;
    let (status, _, _) = call(
        &app,
        Caller::session(&session).post("/api/v1/clusters", serde_json::json!({"name": "ci"})),
    )
    .await;
    assert_eq!(status, 201);
    // The report's own bytes, as a CI job would upload the file.
    let (status, v, _) = call(
        &app,
        Caller::key(&key).post_bytes(
            &format!(
                "/api/v1/scans?cluster=ci&image=registry.local/team/botan:1.0@sha256:{}",
                "a".repeat(64)
            ),
            o.stdout,
        ),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["findings"], 1, "{v}");
}

/// A Debian 10 root: the tracker names source packages, so `libjs-prototype` (source
/// `prototypejs`) matches through its `Source:`; an issue fixed in `0` never applies, and the
/// tracker's urgency becomes the severity.
#[test]
fn scan_debian_root_matches_source_packages() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    write_tree(
        &root,
        &[
            (
                "etc/os-release",
                "PRETTY_NAME=\"Debian GNU/Linux 10 (buster)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"10\"\nID=debian\n",
            ),
            (
                "var/lib/dpkg/status",
                "Package: libjs-prototype\nStatus: install ok installed\nSource: prototypejs\n\
                 Version: 1.6.0-1\nArchitecture: all\n\n\
                 Package: txt2man\nStatus: install ok installed\nVersion: 1.5.5-4\nArchitecture: all\n\n\
                 Package: removed-tool\nStatus: deinstall ok config-files\nVersion: 0.1-1\nArchitecture: all\n\n",
            ),
        ],
    );
    let db = dir.path().join("vulndb.redb");
    import_fixtures(&db, &["debian-security-tracker-subset.json"]);
    let (report, _) = scan_report(&db, &root);
    assert_eq!(
        findings(
            &report["Results"][0],
            &["VulnerabilityID", "PkgName", "FixedVersion", "Severity"]
        ),
        vec![
            "CVE-2008-7220 | libjs-prototype | 1.6.0.2-1 | HIGH",
            "CVE-2013-1444 | txt2man | 1.5.5-4.1 | LOW",
        ]
    );
    // Packages that are removed but keep config files are not installed software.
    let pkgs = report["Results"][0]["Packages"].to_string();
    assert!(!pkgs.contains("removed-tool"), "{pkgs}");
}

pub(crate) fn sh(cmd: &str) {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Two layers made with the real `tar`: the lower one installs botan 2.6.0-r0 (two advisories
/// apply), the upper one upgrades it to 2.8.0-r0 (one applies) and whites out a file.
fn layer_tars(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let lower = dir.join("lower");
    alpine_root(&lower);
    std::fs::write(
        lower.join("lib/apk/db/installed"),
        "P:botan\nV:2.6.0-r0\nA:x86_64\no:botan\n\n",
    )
    .unwrap();
    std::fs::write(lower.join("etc/motd"), "hello").unwrap();
    let upper = dir.join("upper");
    std::fs::create_dir_all(upper.join("lib/apk/db")).unwrap();
    std::fs::create_dir_all(upper.join("etc")).unwrap();
    std::fs::write(
        upper.join("lib/apk/db/installed"),
        "P:botan\nV:2.8.0-r0\nA:x86_64\no:botan\n\n",
    )
    .unwrap();
    std::fs::write(upper.join("etc/.wh.motd"), "").unwrap();
    let l1 = dir.join("layer1.tar");
    let l2 = dir.join("layer2.tar.gz");
    sh(&format!(
        "tar -C {} -cf {} .",
        lower.display(),
        l1.display()
    ));
    sh(&format!(
        "tar -C {} -czf {} .",
        upper.display(),
        l2.display()
    ));
    (l1, l2)
}

fn scan_ids(db: &Path, target: &str) -> Result<Vec<String>, String> {
    let (report, _) = try_scan(db, &[], target)?;
    Ok(findings(&report["Results"][0], &["VulnerabilityID"]))
}

#[test]
fn scan_docker_archive_applies_layers_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vulndb.redb");
    import(&db);
    let (l1, l2) = layer_tars(dir.path());
    let out = dir.path().join("save");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(&l1, out.join("aaa.tar")).unwrap();
    std::fs::copy(&l2, out.join("bbb.tar.gz")).unwrap();
    std::fs::write(
        out.join("manifest.json"),
        r#"[{"Config":"cfg.json","RepoTags":["botan:1"],"Layers":["aaa.tar","bbb.tar.gz"]}]"#,
    )
    .unwrap();
    let archive = dir.path().join("image.tar");
    sh(&format!(
        "tar -C {} -cf {} .",
        out.display(),
        archive.display()
    ));
    let ids = scan_ids(&db, &format!("docker-archive:{}", archive.display())).unwrap();
    assert_eq!(ids, vec!["CVE-2018-20187"]);
    // `docker save` names the config `<sha256 hex>.json`: that is the image id.
    let hex = "ab".repeat(32);
    std::fs::write(
        out.join("manifest.json"),
        format!(r#"[{{"Config":"{hex}.json","Layers":["aaa.tar","bbb.tar.gz"]}}]"#),
    )
    .unwrap();
    sh(&format!(
        "tar -C {} -cf {} .",
        out.display(),
        archive.display()
    ));
    let (report, _) = try_scan(&db, &[], &format!("docker-archive:{}", archive.display())).unwrap();
    assert_eq!(report["Metadata"]["ImageID"], format!("sha256:{hex}"));

    // Only the lower layer: the two advisories fixed after 2.6.0-r0 (in 2.9.0-r0 and 2.7.0-r0);
    // CVE-2018-9860 was fixed in 2.6.0-r0 itself.
    std::fs::write(
        out.join("manifest.json"),
        r#"[{"Config":"cfg.json","Layers":["aaa.tar"]}]"#,
    )
    .unwrap();
    sh(&format!(
        "tar -C {} -cf {} .",
        out.display(),
        archive.display()
    ));
    let ids = scan_ids(&db, &format!("docker-archive:{}", archive.display())).unwrap();
    assert_eq!(ids, vec!["CVE-2018-12435", "CVE-2018-20187"]);

    // A manifest naming a missing layer, and a file that is not an archive.
    std::fs::write(out.join("manifest.json"), r#"[{"Layers":["nope.tar"]}]"#).unwrap();
    sh(&format!(
        "tar -C {} -cf {} .",
        out.display(),
        archive.display()
    ));
    let err = scan_ids(&db, &format!("docker-archive:{}", archive.display())).unwrap_err();
    assert!(err.contains("missing from the archive"), "{err}");
    let err = scan_ids(&db, &format!("docker-archive:{}", db.display())).unwrap_err();
    assert!(err.contains("tar") || err.contains("manifest"), "{err}");
}

/// A complete OCI image layout of the two layers (with the config a registry push needs),
/// tagged `v1`: (layout dir, manifest digest, first layer digest).
pub(crate) fn build_oci_layout(dir: &Path) -> (std::path::PathBuf, String, String) {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let (l1, l2) = layer_tars(dir);
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let hex = hex::encode(Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let b1 = std::fs::read(&l1).unwrap();
    let b2 = std::fs::read(&l2).unwrap();
    let mut plain2 = Vec::new();
    flate2::read::GzDecoder::new(&b2[..])
        .read_to_end(&mut plain2)
        .unwrap();
    let diff = |b: &[u8]| format!("sha256:{}", hex::encode(Sha256::digest(b)));
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff(&b1), diff(&plain2)]},
        "config": {}
    });
    let (dc, sc) = put(config.to_string().as_bytes());
    let (d1, s1) = put(&b1);
    let (d2, s2) = put(&b2);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": dc, "size": sc},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d1, "size": s1},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d2, "size": s2}
        ]
    });
    let (md, sm) = put(manifest.to_string().as_bytes());
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": sm,
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    (layout, md, d1)
}

#[test]
fn scan_oci_layout_verifies_digests() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vulndb.redb");
    import(&db);
    let (layout, md, d1) = build_oci_layout(dir.path());
    let blobs = layout.join("blobs/sha256");
    let write_index = |digest: &str| {
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
            "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
        std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    };
    write_index(&md);
    let target = format!("oci:{}", layout.display());
    // The report carries the config digest as Trivy's `Metadata.ImageID`.
    let o = bulwark(&[
        "scan",
        "--db",
        db.to_str().unwrap(),
        "--format",
        "json",
        &target,
    ]);
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(blobs.join(md.trim_start_matches("sha256:"))).unwrap(),
    )
    .unwrap();
    assert_eq!(report["Metadata"]["ImageID"], manifest["config"]["digest"]);
    assert_eq!(scan_ids(&db, &target).unwrap(), vec!["CVE-2018-20187"]);
    assert_eq!(
        scan_ids(&db, &format!("{target}:v1")).unwrap(),
        vec!["CVE-2018-20187"]
    );
    let err = scan_ids(&db, &format!("{target}:v2")).unwrap_err();
    assert!(err.contains("no manifest tagged 'v2'"), "{err}");

    // A digest that tries to name another path is refused before it is opened.
    write_index("sha256:../../../../etc/passwd");
    let err = scan_ids(&db, &target).unwrap_err();
    assert!(err.contains("malformed digest"), "{err}");

    // A tampered layer no longer matches its digest.
    write_index(&md);
    let p1 = blobs.join(d1.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&p1).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1; // inside the end-of-archive padding: the tar still reads
    std::fs::write(&p1, bytes).unwrap();
    let err = scan_ids(&db, &target).unwrap_err();
    assert!(err.contains("does not match its digest"), "{err}");
}

/// Python and Node.js packages anywhere in the image are catalogued and matched against PyPI and
/// npm advisories, and reported as separate `lang-pkgs` results as Trivy does.
#[test]
fn scan_finds_language_packages() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    alpine_root(&root);
    let site = root.join("usr/lib/python3.11/site-packages");
    for (d, meta) in [
        (
            "requests-2.25.1.dist-info",
            "Metadata-Version: 2.1\nName: requests\nVersion: 2.25.1\n",
        ),
        // The advisory spells it `Gradio`.
        (
            "gradio-4.36.1.dist-info",
            "Metadata-Version: 2.1\nName: gradio\nVersion: 4.36.1\n",
        ),
        ("broken.dist-info", "Summary: no name here\n"),
    ] {
        std::fs::create_dir_all(site.join(d)).unwrap();
        std::fs::write(site.join(d).join("METADATA"), meta).unwrap();
    }
    let nm = root.join("srv/app/node_modules/@scope/util");
    std::fs::create_dir_all(&nm).unwrap();
    std::fs::write(
        nm.join("package.json"),
        r#"{"name":"@scope/util","version":"1.2.3"}"#,
    )
    .unwrap();
    let db = dir.path().join("vulndb.redb");
    import_fixtures(
        &db,
        &[
            "osv-PYSEC-2023-74-pypi.json",
            "osv-GHSA-9v2f-6vcg-3hgv-pypi.json",
        ],
    );
    let (report, stderr) = scan_report(&db, &root);
    let results = report["Results"].as_array().unwrap();
    let types: Vec<&str> = results
        .iter()
        .map(|r| r["Type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["alpine", "node-pkg", "python-pkg"]);
    assert_eq!(results[1]["Packages"][0]["Name"], "@scope/util");
    assert_eq!(results[1]["Vulnerabilities"].as_array().unwrap().len(), 0);
    assert_eq!(
        findings(&results[2], &["VulnerabilityID", "PkgName", "FixedVersion"]),
        vec![
            "CVE-2024-39236 | gradio | ",
            "CVE-2023-32681 | requests | 2.31.0",
        ]
    );
    assert_eq!(
        results[2]["Vulnerabilities"][1]["PkgPath"],
        "usr/lib/python3.11/site-packages/requests-2.25.1.dist-info/METADATA"
    );
    assert!(stderr.contains("broken.dist-info/METADATA"), "{stderr}");
}

/// A real registry (Debian's docker-registry, started by tests/services or here): the image is
/// pushed with skopeo and pulled by `bulwark scan REGISTRY/REPO:TAG` and by digest.
#[test]
fn scan_pulls_from_a_registry() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, registry) = match std::env::var("BULWARK_TEST_REGISTRY") {
        Ok(addr) => (None, addr),
        Err(_) => {
            let (child, addr) = start_registry(&dir.path().join("anonymous"), None);
            (Some(child), addr)
        }
    };
    let db = dir.path().join("vulndb.redb");
    import(&db);
    let (layout, _, _) = build_oci_layout(dir.path());
    let repo = format!("scan-test/botan-{}", std::process::id());
    sh(&format!(
        "skopeo copy --dest-tls-verify=false oci:{}:v1 docker://{registry}/{repo}:v1",
        layout.display()
    ));
    let by_tag = format!("{registry}/{repo}:v1");
    let (report, _) = try_scan(&db, &["--plain-http"], &by_tag).unwrap();
    assert_eq!(
        findings(&report["Results"][0], &["VulnerabilityID", "FixedVersion"]),
        vec!["CVE-2018-20187 | 2.9.0-r0"]
    );
    // By digest, as the registry reports it.
    let inspect = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{by_tag}"),
        ])
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let manifest_digest = serde_json::from_slice::<Value>(&inspect.stdout).unwrap()["Digest"]
        .as_str()
        .unwrap()
        .to_string();
    let by_digest = format!("{registry}/{repo}@{manifest_digest}");
    // The report names what was pulled, so the appliance's ingest can key it without a digest
    // in the upload URL.
    assert_eq!(report["Metadata"]["RepoDigests"][0], by_digest.as_str());
    assert!(report["Metadata"]["ImageID"]
        .as_str()
        .is_some_and(|d| d.starts_with("sha256:")));
    let (report, _) = try_scan(&db, &["--plain-http"], &by_digest).unwrap();
    assert!(report.to_string().contains("CVE-2018-20187"));
    // A tag the registry does not have, and a registry that is not there.
    let err = try_scan(&db, &["--plain-http"], &format!("{registry}/{repo}:nope")).unwrap_err();
    assert!(err.contains("404"), "{err}");
    let port = crate::support::free_port();
    assert!(try_scan(&db, &["--plain-http"], &format!("127.0.0.1:{port}/x:1")).is_err());
}

/// Starts Debian's docker-registry on a free loopback port with storage under `dir`, optionally
/// behind htpasswd (basic) auth; stopped when the guard drops.
fn start_registry(dir: &Path, htpasswd: Option<&Path>) -> (KillOnDrop, String) {
    let auth = htpasswd
        .map(|h| {
            format!(
                "auth:\n  htpasswd:\n    realm: bulwark-test\n    path: {}\n",
                h.display()
            )
        })
        .unwrap_or_default();
    start_registry_with(dir, &auth)
}

/// Like [`start_registry`], with `auth_yaml` (an `auth:` section, or empty) in its config.
pub(crate) fn start_registry_with(dir: &Path, auth_yaml: &str) -> (KillOnDrop, String) {
    assert!(
        Path::new("/usr/bin/docker-registry").exists(),
        "no registry: run tests/services/start.sh (it installs docker-registry, skopeo and htpasswd) or set BULWARK_TEST_REGISTRY"
    );
    std::fs::create_dir_all(dir).unwrap();
    let port = crate::support::free_port();
    let mut cfg = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
        dir.join("data").display()
    );
    cfg.push_str(auth_yaml);
    let path = dir.join("config.yml");
    std::fs::write(&path, cfg).unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    (KillOnDrop(child), addr)
}

/// A registry behind basic auth: refused without credentials (with a message that says what to
/// pass), refused with a wrong password, scanned with the right one from the environment.
#[test]
fn scan_uses_registry_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    sh(&format!(
        "htpasswd -Bbc {} ci s3cret-pass",
        htpasswd.display()
    ));
    let (_guard, registry) = start_registry(&dir.path().join("reg"), Some(&htpasswd));
    let db = dir.path().join("vulndb.redb");
    import(&db);
    let (layout, _, _) = build_oci_layout(dir.path());
    sh(&format!(
        "skopeo copy --dest-tls-verify=false --dest-creds ci:s3cret-pass oci:{}:v1 docker://{registry}/private/botan:v1",
        layout.display()
    ));
    let image = format!("{registry}/private/botan:v1");
    let scan = |user: Option<&str>, password: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulwark"));
        cmd.args(["scan", "--db", db.to_str().unwrap(), "--plain-http"])
            .env_remove("BULWARK_CONFIG")
            .env_remove("BULWARK_REGISTRY_PASSWORD");
        if let Some(u) = user {
            cmd.args(["--username", u]);
        }
        if let Some(p) = password {
            cmd.env("BULWARK_REGISTRY_PASSWORD", p);
        }
        cmd.arg(&image).output().unwrap()
    };
    let o = scan(None, None);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("wants credentials"), "{err}");
    let o = scan(Some("ci"), Some("wrong"));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refused the credentials"), "{err}");
    let o = scan(Some("ci"), Some("s3cret-pass"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("CVE-2018-20187"), "{out}");
    assert!(
        !out.contains("s3cret-pass") && !String::from_utf8_lossy(&o.stderr).contains("s3cret-pass")
    );
}

pub(crate) struct KillOnDrop(pub(crate) std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Spring Boot style jar nesting log4j-core 2.14.1 (Log4Shell) and a Go binary built with gin
/// v1.5.0 (GO-2020-0001), found in an unpacked root and, through umoci, in an OCI layout.
#[test]
fn scan_finds_jars_and_go_binaries() {
    use std::io::Write;
    let zip = |entries: &[(&str, &[u8])]| -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, body) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(body).unwrap();
        }
        w.finish().unwrap().into_inner()
    };
    let log4j = zip(&[(
        "META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties",
        b"version=2.14.1\ngroupId=org.apache.logging.log4j\nartifactId=log4j-core\n",
    )]);
    let app = zip(&[
        (
            "META-INF/maven/com.example/shop/pom.properties",
            b"groupId=com.example\nartifactId=shop\nversion=1.0.0\n",
        ),
        ("BOOT-INF/lib/log4j-core-2.14.1.jar", &log4j),
    ]);
    // The Go linker's layout: ELF, then the build-info header at a 16-byte-aligned offset with
    // the Go version and the module text (framed by 16 sentinel bytes each side).
    let modinfo = "path\texample.com/api\nmod\texample.com/api\t(devel)\t\ndep\tgithub.com/gin-gonic/gin\tv1.5.0\th1:x=\n";
    let framed = [&[0x30u8; 16][..], modinfo.as_bytes(), &[0xf9u8; 16][..]].concat();
    let mut elf = b"\x7fELF".to_vec();
    elf.resize(4096, 0);
    elf.extend_from_slice(b"\xff Go buildinf:\x08\x02");
    elf.resize(4096 + 32, 0);
    for s in [&b"go1.21.4"[..], &framed[..]] {
        elf.push(s.len() as u8);
        elf.extend_from_slice(s);
    }
    elf.resize(8192, 0);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    alpine_root(&root);
    std::fs::create_dir_all(root.join("opt/shop")).unwrap();
    std::fs::write(root.join("opt/shop/shop.jar"), &app).unwrap();
    std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
    let bin = root.join("usr/local/bin/api");
    std::fs::write(&bin, &elf).unwrap();
    // Not executable: the same bytes in a data file are not a program.
    std::fs::write(root.join("opt/shop/api.copy"), &elf).unwrap();
    sh(&format!("chmod 755 {}", bin.display()));
    let db = dir.path().join("vulndb.redb");
    import_fixtures(
        &db,
        &[
            "osv-GO-2020-0001-go.json",
            "osv-GHSA-jfh8-c2jp-5v3q-maven.json",
        ],
    );
    let layout = dir.path().join("layout");
    sh(&format!(
        "umoci init --layout {l} && umoci new --image {l}:t && umoci insert --image {l}:t {} /",
        root.display(),
        l = layout.display()
    ));
    for target in [
        format!("dir:{}", root.display()),
        format!("oci:{}:t", layout.display()),
    ] {
        let (report, _) = try_scan(&db, &["--list-all-pkgs"], &target).unwrap();
        let results = report["Results"].as_array().unwrap();
        let by_type = |t: &str| {
            results
                .iter()
                .find(|r| r["Type"] == t)
                .unwrap_or_else(|| panic!("no {t} result in {report}"))
        };
        let jar = by_type("jar");
        assert_eq!(jar["Target"], "Java");
        assert_eq!(jar["Packages"].as_array().unwrap().len(), 2, "{jar}");
        assert_eq!(
            findings(
                jar,
                &["VulnerabilityID", "PkgName", "FixedVersion", "Severity"]
            ),
            vec!["CVE-2021-44228 | org.apache.logging.log4j:log4j-core | 2.15.0 | CRITICAL"]
        );
        let go = by_type("gobinary");
        assert_eq!(go["Target"], "usr/local/bin/api");
        assert_eq!(
            findings(
                go,
                &[
                    "VulnerabilityID",
                    "PkgName",
                    "InstalledVersion",
                    "FixedVersion"
                ]
            ),
            vec!["CVE-2020-36567 | github.com/gin-gonic/gin | v1.5.0 | 1.6.0"]
        );
        let go_pkgs = go["Packages"].to_string();
        assert!(
            go_pkgs.contains("\"stdlib\"") && go_pkgs.contains("v1.21.4"),
            "{go_pkgs}"
        );
        assert_eq!(
            results.iter().filter(|r| r["Type"] == "gobinary").count(),
            1,
            "the non-executable copy is not a binary"
        );
    }
}

/// rpm packages (a real SQLite rpmdb) are matched with rpm version rules: an advisory for Rocky
/// Linux 9 fixed in epoch-1 `3.0.7-1.el9` affects `openssl 1.1.1k-7.cm2`, one fixed in an older
/// release does not, and the epoch-prefixed source version is reported as installed.
#[test]
fn scan_matches_rpm_packages() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    write_tree(
        &root,
        &[(
            "etc/os-release",
            "NAME=\"Rocky Linux\"\nID=\"rocky\"\nVERSION_ID=\"9.3\"\n",
        )],
    );
    std::fs::create_dir_all(root.join("usr/lib/sysimage/rpm")).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/images/rpm/cbl-mariner-2.0-rpmdb.sqlite"
        ),
        root.join("usr/lib/sysimage/rpm/rpmdb.sqlite"),
    )
    .unwrap();
    // An NDB database beside it (SLES) is named as unread.
    std::fs::create_dir_all(root.join("var/lib/rpm")).unwrap();
    std::fs::write(root.join("var/lib/rpm/Packages.db"), [0u8; 4096]).unwrap();
    let osv = |id: &str, pkg: &str, fixed: &str| {
        serde_json::json!({"id": id, "modified": "2024-01-01T00:00:00Z", "aliases": [format!("CVE-{id}")],
            "database_specific": {"severity": "HIGH"},
            "affected": [{"package": {"ecosystem": "Rocky Linux:9", "name": pkg},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]})
    };
    let feed = dir.path().join("rocky");
    std::fs::create_dir_all(&feed).unwrap();
    for (id, pkg, fixed) in [
        ("2099-0001", "openssl", "1:3.0.7-1.el9"),
        ("2099-0002", "bash", "5.1.0-1.el9"),
    ] {
        std::fs::write(
            feed.join(format!("{id}.json")),
            osv(id, pkg, fixed).to_string(),
        )
        .unwrap();
    }
    let db = dir.path().join("vulndb.redb");
    let o = bulwark(&[
        "db",
        "import",
        "--db",
        db.to_str().unwrap(),
        feed.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (report, stderr) = try_scan(&db, &[], &format!("dir:{}", root.display())).unwrap();
    assert_eq!(report["Results"][0]["Type"], "rocky");
    assert_eq!(
        findings(
            &report["Results"][0],
            &[
                "VulnerabilityID",
                "PkgName",
                "InstalledVersion",
                "FixedVersion",
                "Severity"
            ]
        ),
        vec!["CVE-2099-0001 | openssl | 1.1.1k-7.cm2 | 1:3.0.7-1.el9 | HIGH"]
    );
    assert!(stderr.contains("var/lib/rpm/Packages.db: NDB"), "{stderr}");
}
