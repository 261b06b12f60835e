//! Vulnerability-database benchmarks: import speed. Prints figures.
//!
//!     cargo bench --bench vulndb
//!
//! Writes 100,000 synthetic OSV records (Debian, Alpine, PyPI, npm; ranges and version lists) as
//! an osv.dev-style zip, imports them into a fresh standalone database, then the same zip as a
//! signed bundle into another fresh one (the bundle's checks beside the plain import), then
//! re-imports them (all unchanged), and times 10,000 lookups.

use std::io::Write;
use std::time::Instant;

use bulwark::vulndb::bundle;
use bulwark::vulndb::db::VulnDb;

const RECORDS: usize = 100_000;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let zpath = dir.path().join("all.zip");
    let t = Instant::now();
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&zpath).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let ecosystems = ["Debian:12", "Alpine:v3.19", "PyPI", "npm"];
        for i in 0..RECORDS {
            let eco = ecosystems[i % 4];
            let record = serde_json::json!({
                "id": format!("BENCH-{i:06}"),
                "modified": "2026-01-01T00:00:00Z",
                "aliases": [format!("CVE-2026-{i:05}")],
                "summary": "a synthetic advisory for the import benchmark",
                "affected": [{
                    "package": {"ecosystem": eco, "name": format!("pkg{}", i % 5000)},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": format!("1.{}.{}", i % 30, i % 7)}]}],
                    "versions": if i % 10 == 0 { vec!["0.9.0".to_string(), "0.9.1".to_string()] } else { vec![] }
                }],
                "references": [{"type": "ADVISORY", "url": format!("https://example.invalid/{i}")}]
            });
            z.start_file(format!("BENCH-{i:06}.json"), opts).unwrap();
            z.write_all(record.to_string().as_bytes()).unwrap();
        }
        z.finish().unwrap();
    }
    let size = std::fs::metadata(&zpath).unwrap().len();
    println!(
        "wrote {RECORDS} OSV records as a {:.1} MiB zip in {:.1} s",
        size as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );

    let db = VulnDb::open(&dir.path().join("v.redb")).unwrap();
    let t = Instant::now();
    let r = db.import(std::slice::from_ref(&zpath)).unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "first import: {} imported in {secs:.1} s = {:.0} records/s",
        r.imported,
        r.imported as f64 / secs
    );

    // The same records as a signed bundle, into a fresh database.
    let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    use base64::Engine as _;
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
    );
    let key = bundle::SigningKey::from_pem(&pem).unwrap();
    let bundle_path = dir.path().join("feeds.bundle");
    let t = Instant::now();
    bundle::create(
        &bundle_path,
        bundle::VULNDB,
        "bench",
        std::slice::from_ref(&zpath),
        &key,
    )
    .unwrap();
    println!(
        "bundle made and signed in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let scratch = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let applied = bundle::import(
        &[bundle_path],
        &[key.public_key()],
        &dir.path().join("b.redb"),
        dir.path(),
        scratch.path(),
    )
    .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let imported = applied.report.unwrap().imported;
    println!(
        "signed bundle import (checked, unpacked, imported): {imported} imported in {secs:.1} s = {:.0} records/s",
        imported as f64 / secs
    );

    let t = Instant::now();
    let r = db.import(&[zpath]).unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "re-import: {} unchanged in {secs:.1} s = {:.0} records/s",
        r.unchanged,
        r.unchanged as f64 / secs
    );
    let db_size = std::fs::metadata(dir.path().join("v.redb")).unwrap().len();
    println!("database file: {:.1} MiB", db_size as f64 / 1048576.0);
    let t = Instant::now();
    let mut hits = 0;
    for i in 0..10_000 {
        hits += db
            .affecting("Debian:12", &format!("pkg{}", (i * 4) % 5000), "1.0.0")
            .unwrap()
            .len();
    }
    println!(
        "10,000 lookups (ecosystem, package, version): {:.1} µs each ({hits} hits)",
        t.elapsed().as_secs_f64() * 1e6 / 10_000.0
    );
}
