//! `bulwark scan` as CI pipelines use it: severity and fix filters, SARIF and CycloneDX output,
//! report files, and `--upload` to a running appliance.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::scanner::{bulwark, import_fixtures, sh, ALPINE_3_10};
use crate::support::{write_tree, Fetch, Server};

/// An Alpine 3.10 root with botan 2.8.0-r0 (CVE-2018-20187, fixed, severity UNKNOWN in secdb),
/// gradio 4.36.1 (CVE-2024-39236, CRITICAL in the GitHub advisory, no fix) and a jar with log4j-core 2.14.1 (CVE-2021-44228,
/// CRITICAL, fixed in 2.15.0).
fn mixed_root(root: &Path) {
    write_tree(
        root,
        &[
            ("etc/os-release", ALPINE_3_10),
            (
                "lib/apk/db/installed",
                "P:botan\nV:2.8.0-r0\nA:x86_64\no:botan\n\n",
            ),
            (
                "usr/lib/python3.11/site-packages/gradio-4.36.1.dist-info/METADATA",
                "Metadata-Version: 2.1\nName: gradio\nVersion: 4.36.1\n",
            ),
        ],
    );
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(
        "META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    std::io::Write::write_all(
        &mut w,
        b"groupId=org.apache.logging.log4j\nartifactId=log4j-core\nversion=2.14.1\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("opt")).unwrap();
    std::fs::write(
        root.join("opt/log4j-core-2.14.1.jar"),
        w.finish().unwrap().into_inner(),
    )
    .unwrap();
}

fn mixed_db(db: &Path) {
    import_fixtures(
        db,
        &[
            "alpine-secdb-v3.10-community.json",
            "osv-GHSA-9v2f-6vcg-3hgv-pypi.json",
            "osv-GHSA-jfh8-c2jp-5v3q-maven.json",
        ],
    );
}

fn ids(report: &Value) -> Vec<String> {
    let mut out: Vec<String> = report["Results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Vulnerabilities"].as_array().unwrap().iter())
        .map(|v| v["VulnerabilityID"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

fn scan_json(db: &Path, extra: &[&str], target: &str) -> Value {
    let mut args = vec!["scan", "--db", db.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    args.push(target);
    let o = bulwark(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn severity_and_fix_filters() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    mixed_root(&root);
    let db = dir.path().join("vulndb.redb");
    mixed_db(&db);
    let target = format!("dir:{}", root.display());
    assert_eq!(
        ids(&scan_json(&db, &[], &target)),
        vec!["CVE-2018-20187", "CVE-2021-44228", "CVE-2024-39236"]
    );
    assert_eq!(
        ids(&scan_json(&db, &["--severity", "CRITICAL,HIGH"], &target)),
        vec!["CVE-2021-44228", "CVE-2024-39236"]
    );
    assert_eq!(
        ids(&scan_json(&db, &["--severity", "unknown"], &target)),
        vec!["CVE-2018-20187"],
        "severities are case-insensitive"
    );
    assert_eq!(
        ids(&scan_json(&db, &["--ignore-unfixed"], &target)),
        vec!["CVE-2018-20187", "CVE-2021-44228"]
    );
    // Filters decide the exit code too: what is not reported does not fail the build.
    let gate = |extra: &[&str]| {
        let mut args = vec!["scan", "--db", db.to_str().unwrap(), "--exit-code", "5"];
        args.extend_from_slice(extra);
        args.push(&target);
        bulwark(&args).status.code()
    };
    assert_eq!(gate(&["--fail-on", "CRITICAL"]), Some(5));
    assert_eq!(
        gate(&["--fail-on", "CRITICAL", "--severity", "LOW"]),
        Some(0)
    );
    let o = bulwark(&[
        "scan",
        "--db",
        db.to_str().unwrap(),
        "--severity",
        "SEVERE",
        &target,
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("SEVERE"));
}

#[test]
fn sarif_and_cyclonedx_reports() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    mixed_root(&root);
    let db = dir.path().join("vulndb.redb");
    mixed_db(&db);
    let target = format!("dir:{}", root.display());
    let sarif_file = dir.path().join("report.sarif");
    let o = bulwark(&[
        "scan",
        "--db",
        db.to_str().unwrap(),
        "--format",
        "sarif",
        "--output",
        sarif_file.to_str().unwrap(),
        &target,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout.is_empty(), "the report went to the file");
    let sarif: Value = serde_json::from_slice(&std::fs::read(&sarif_file).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "Bulwark");
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let log4shell = results
        .iter()
        .find(|r| r["ruleId"] == "CVE-2021-44228")
        .unwrap();
    assert_eq!(log4shell["level"], "error");
    let rule = &run["tool"]["driver"]["rules"][log4shell["ruleIndex"].as_u64().unwrap() as usize];
    assert_eq!(rule["id"], "CVE-2021-44228");
    assert_eq!(rule["properties"]["security-severity"], "9.5");
    assert_eq!(
        log4shell["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "opt/log4j-core-2.14.1.jar"
    );
    let unknown = results
        .iter()
        .find(|r| r["ruleId"] == "CVE-2018-20187")
        .unwrap();
    assert_eq!(unknown["level"], "note");

    let o = bulwark(&[
        "scan",
        "--db",
        db.to_str().unwrap(),
        "-f",
        "cyclonedx",
        &target,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bom: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (bom["bomFormat"].as_str(), bom["specVersion"].as_str()),
        (Some("CycloneDX"), Some("1.5"))
    );
    assert!(bom["serialNumber"]
        .as_str()
        .unwrap()
        .starts_with("urn:uuid:"));
    let components = bom["components"].as_array().unwrap();
    let purl_ref = |purl: &str| {
        components
            .iter()
            .find(|c| c["purl"] == purl)
            .unwrap_or_else(|| panic!("no {purl} in {components:?}"))["bom-ref"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let log4j = purl_ref("pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1");
    purl_ref("pkg:apk/alpine/botan@2.8.0-r0?arch=x86_64&distro=3.10.9");
    purl_ref("pkg:pypi/gradio@4.36.1");
    assert!(components
        .iter()
        .any(|c| c["type"] == "operating-system" && c["name"] == "alpine"));
    let vulns = bom["vulnerabilities"].as_array().unwrap();
    assert_eq!(vulns.len(), 3);
    let v = vulns.iter().find(|v| v["id"] == "CVE-2021-44228").unwrap();
    assert_eq!(v["affects"][0]["ref"], log4j.as_str());
    assert_eq!(v["ratings"][0]["severity"], "critical");
    // Every vulnerability points at a component of the document.
    for v in vulns {
        let r = v["affects"][0]["ref"].as_str().unwrap();
        assert!(components.iter().any(|c| c["bom-ref"] == r), "{v}");
    }
}

/// CI scans an image and hands the result to the appliance: the real server, a scanner-scoped
/// API key, the appliance's own certificate as the trust root.
#[actix_web::test]
async fn scan_uploads_to_the_appliance() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data).await;
    let admin = server.admin_client().await;
    let r = admin
        .post(format!("{}/api/v1/clusters", server.base))
        .json(&serde_json::json!({"name": "ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = admin
        .post(format!("{}/api/v1/api-keys", server.base))
        .json(&serde_json::json!({"name": "pipeline", "scopes": ["scanner"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let key = r.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();

    // An OCI layout (its config digest identifies the image) with log4j inside.
    let root = dir.path().join("root");
    mixed_root(&root);
    let layout = dir.path().join("layout");
    sh(&format!(
        "umoci init --layout {l} && umoci new --image {l}:v1 && umoci insert --image {l}:v1 {} /",
        root.display(),
        l = layout.display()
    ));
    let db = dir.path().join("vulndb.redb");
    mixed_db(&db);
    let ca = data.join("tls/ca.pem");
    let target = format!("oci:{}:v1", layout.display());
    let upload = |key: &str, image: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulwark"));
        cmd.env_remove("BULWARK_CONFIG")
            .env_remove("BULWARK_API_KEY")
            .args(["scan", "--db", db.to_str().unwrap(), "--quiet", "--upload"])
            .args(["--server", &server.base, "--cluster", "ci", "--server-ca"])
            .arg(&ca)
            .env("BULWARK_API_KEY", key);
        if let Some(i) = image {
            cmd.args(["--image", i]);
        }
        cmd.arg(&target).output().unwrap()
    };
    let o = upload(&key, Some("registry.local/team/shop:1.0"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("uploaded registry.local/team/shop:1.0 to ci: NOT compliant"),
        "a fixable critical breaks the default policy: {stderr}"
    );
    assert!(!stderr.contains(&key), "the key is never printed");
    let images: Value = admin
        .get(format!("{}/api/v1/images", server.base))
        .json_body()
        .await;
    let id = images["items"][0]["id"].as_u64().unwrap();
    let img: Value = admin
        .get(format!("{}/api/v1/images/{id}?cluster=ci", server.base))
        .json_body()
        .await;
    let findings = img["scan"]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 3, "{img}");
    assert!(findings.iter().all(|f| f["scanner"] == "bulwark"), "{img}");

    // A wrong key is refused with the server's reason; a layout needs --image.
    let o = upload("bwk_not-a-real-key", Some("registry.local/team/shop:1.0"));
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("upload refused (401"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = upload(&key, None);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs --image"));
    // Without a trust root the appliance's self-signed certificate is refused.
    let o = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .env_remove("BULWARK_CONFIG")
        .args(["scan", "--db", db.to_str().unwrap(), "--quiet", "--upload"])
        .args([
            "--server",
            &server.base,
            "--cluster",
            "ci",
            "--api-key",
            &key,
        ])
        .args(["--image", "registry.local/team/shop:1.0", &target])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("pass --server-ca") && stderr.contains("tls/ca.pem"),
        "says what to pass: {stderr}"
    );

    // Mistakes in what to upload are reported before any scan: no database is even needed.
    let o = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .env_remove("BULWARK_CONFIG")
        .env_remove("BULWARK_API_KEY")
        .args(["scan", "--db", "/nonexistent/vulndb.redb", "--upload"])
        .args([
            "--server",
            &server.base,
            "--cluster",
            "ci",
            "--api-key",
            &key,
        ])
        .args(["--image", "registry.local/team/shop:1.0"])
        .arg(format!("dir:{}", root.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("a dir: target has no image digest")
            && !stderr.contains("vulnerability database"),
        "{stderr}"
    );
}
