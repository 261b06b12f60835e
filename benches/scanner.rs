//! Scanner benchmarks. Prints figures.
//!
//!     cargo bench --bench scanner
//!
//! Builds a synthetic Debian 12 image as a `docker save` archive with the real `tar`: one gzip
//! layer holding 1,500 installed packages and 20,000 filler files (80 MiB uncompressed), then a
//! database of 20,000 OSV advisories for those package names. Times reading the archive
//! (tar + gzip + whiteout bookkeeping), cataloguing and matching, and the same on the unpacked
//! directory.

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use bulwark::scanner::{archive, layers::Limits, scan_layers, scan_rootfs};
use bulwark::vulndb::db::VulnDb;

const PACKAGES: usize = 1_500;
const FILLER: usize = 20_000;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    )
    .unwrap();
    let mut status = String::new();
    for i in 0..PACKAGES {
        status.push_str(&format!(
            "Package: pkg{i}\nStatus: install ok installed\nVersion: 1.0.{}-1\nArchitecture: amd64\nDescription: synthetic\n\n",
            i % 9
        ));
    }
    std::fs::write(root.join("var/lib/dpkg/status"), status).unwrap();
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for i in 0..FILLER {
        let d = root.join(format!("usr/share/filler/{}", i % 200));
        std::fs::create_dir_all(&d).unwrap();
        // Pseudo-random bytes so gzip has real work to do.
        let body: Vec<u8> = (0..4096)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % 64) as u8 + b' '
            })
            .collect();
        std::fs::write(d.join(format!("f{i}")), body).unwrap();
    }
    let save = dir.path().join("save");
    std::fs::create_dir_all(&save).unwrap();
    let t = Instant::now();
    let ok = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-czf")
        .arg(save.join("layer.tar.gz"))
        .arg(".")
        .status()
        .unwrap()
        .success();
    assert!(ok, "tar failed");
    std::fs::write(
        save.join("manifest.json"),
        r#"[{"Config":"c.json","Layers":["layer.tar.gz"]}]"#,
    )
    .unwrap();
    let image = dir.path().join("image.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&save)
        .arg("-cf")
        .arg(&image)
        .arg(".")
        .status()
        .unwrap()
        .success());
    let size = std::fs::metadata(&image).unwrap().len();
    println!(
        "built a {:.1} MiB docker-archive ({} entries) in {:.1} s",
        size as f64 / 1048576.0,
        FILLER + 210,
        t.elapsed().as_secs_f64()
    );

    let osv = dir.path().join("osv");
    std::fs::create_dir_all(&osv).unwrap();
    for i in 0..20_000 {
        let record = serde_json::json!({
            "id": format!("BENCH-{i:06}"), "modified": "2026-01-01T00:00:00Z",
            "aliases": [format!("CVE-2026-{i:05}")], "summary": "synthetic",
            "affected": [{"package": {"ecosystem": "Debian:12", "name": format!("pkg{}", i % 5000)},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": format!("1.0.{}-1", i % 17)}]}]}]
        });
        let mut f = std::fs::File::create(osv.join(format!("{i}.json"))).unwrap();
        f.write_all(record.to_string().as_bytes()).unwrap();
    }
    let db = VulnDb::open(&dir.path().join("v.redb")).unwrap();
    db.import(&[osv]).unwrap();

    let limits = Limits::default();
    let runs = 3;
    let mut best = f64::MAX;
    let mut found = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let flat = archive::docker_archive(&image, &limits).unwrap();
        let report = scan_layers(&flat, "bench", &db).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        found = report.vulns.len();
    }
    println!(
        "docker-archive scan (read + catalogue + match), best of {runs}: {best:.2} s = {:.0} MiB/s uncompressed, {found} findings in {PACKAGES} packages",
        (FILLER * 4096) as f64 / 1048576.0 / best
    );
    let t = Instant::now();
    let report = scan_rootfs(&root, "bench", &db).unwrap();
    println!(
        "dir: scan (catalogue + match {PACKAGES} packages): {:.0} ms, {} findings",
        t.elapsed().as_secs_f64() * 1000.0,
        report.vulns.len()
    );
}
