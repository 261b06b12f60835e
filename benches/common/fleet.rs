//! A fleet of scanned images for the benchmarks that need one: deterministic, seeded through
//! the library in batches.

use bulwark::images::{self, trivy::ReportMeta, Finding, ImageRef, Severity};
use bulwark::store::Store;

/// A small deterministic generator (no dependency needed).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A finding with a realistic mix: 3% critical, 12% high, two thirds with a fix.
pub fn finding(rng: &mut Rng) -> Finding {
    let cve = rng.below(20_000);
    let sev = match rng.below(100) {
        0..=2 => Severity::Critical,
        3..=14 => Severity::High,
        15..=49 => Severity::Medium,
        50..=89 => Severity::Low,
        _ => Severity::Unknown,
    };
    let pkg = format!("lib{}", rng.below(2_000));
    Finding {
        id: format!("CVE-20{:02}-{:05}", 15 + cve % 10, cve),
        package: pkg.clone(),
        installed: format!("1.{}.{}", rng.below(20), rng.below(20)),
        fixed: if rng.below(3) == 0 {
            String::new()
        } else {
            "9.9.9".into()
        },
        severity: sev,
        severity_source: sev.as_str().to_uppercase(),
        cvss: Some(5.0),
        title: format!("{pkg}: a problem"),
        description: "A vulnerability used for benchmarking.".into(),
        links: vec![format!("https://avd.aquasec.com/nvd/cve-{cve}")],
        fixable: rng.below(3) != 0,
        scanner: "trivy".into(),
        target: "os".into(),
        status: "fixed".into(),
    }
}

/// `count` images (`registry.local/teamN/appI:1.x`) with `per_image` findings each, image `i`
/// seen in `clusters[i % clusters.len()]`.
pub fn seed_images(store: &Store, count: usize, per_image: usize, clusters: &[u64]) {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for batch in 0..count.div_ceil(500) {
        store
            .write(|w| {
                for i in batch * 500..((batch + 1) * 500).min(count) {
                    let r = ImageRef::parse(&format!(
                        "registry.local/team{}/app{i}:1.{}",
                        i % 50,
                        i % 7
                    ))
                    .unwrap();
                    let digest = format!("sha256:{:064x}", i as u128 * 7919 + 1);
                    let cluster = clusters[i % clusters.len()];
                    let mut image = images::upsert(w, &r, &digest, Some(cluster))?;
                    let findings: Vec<Finding> =
                        (0..per_image).map(|_| finding(&mut rng)).collect();
                    images::store_scan(
                        w,
                        &mut image,
                        &ReportMeta {
                            os: "debian 12".into(),
                            ..Default::default()
                        },
                        findings,
                    )?;
                }
                Ok::<_, bulwark::store::StoreError>(())
            })
            .unwrap();
    }
}

/// `count` exceptions over the fleet's images: a quarter blanket (one image each), the rest
/// for one CVE on one image or a team's images, some limited to a namespace.
pub fn seed_exceptions(store: &Store, count: usize) {
    use bulwark::compliance::service::{self as svc, ExceptionInput};
    let actor = svc::Actor {
        name: "bench".into(),
        role: Some(bulwark::http::Role::Admin),
        user_id: None,
        ip: String::new(),
    };
    for i in 0..count {
        let e = ExceptionInput {
            title: format!("exception {i}"),
            issue_id: if i % 4 == 0 {
                String::new()
            } else {
                format!("CVE-20{:02}-{:05}", 15 + (i * 13) % 10, (i * 13) % 20_000)
            },
            // Blanket exceptions (no issue id) only ever name one image, so most pods are judged.
            image_match: match (i % 4, i % 3) {
                (0, _) | (_, 1) => format!("registry.local/team{}/app{}", i % 50, i * 10),
                (_, 0) => format!("registry.local/team{}/*", i % 50),
                _ => String::new(),
            },
            namespaces: (i % 5 == 0).then(|| vec![format!("ns{}", i % 10)]),
            ..Default::default()
        };
        svc::create_exception(store, &actor, e).unwrap();
    }
}
