//! KubeSec throughput. Prints figures; asserts nothing.
//!
//!     cargo bench --bench kubesec
//!
//! Builds one multi-document manifest of 10,000 objects cycling through kubesec's upstream
//! fixtures (Pods, Deployments, StatefulSets, DaemonSets, the sock-shop Deployment, other
//! kinds), then on one thread times: reading the YAML into values (the reference: what any
//! tool pays before a rule runs), and the whole scan (read, score, report). Target: ≥ 5,000
//! objects/s.

use std::time::Instant;

const OBJECTS: usize = 10_000;

fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kubesec");
    let mut docs = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
            let text = std::fs::read_to_string(&p).unwrap();
            for d in text.split("\n---\n") {
                if d.trim().contains("kind:") {
                    docs.push(d.trim().to_string());
                }
            }
        }
    }
    let manifest: String = (0..OBJECTS)
        .map(|i| docs[i % docs.len()].as_str())
        .collect::<Vec<_>>()
        .join("\n---\n");
    println!(
        "{OBJECTS} objects from {} distinct documents, {:.1} MiB",
        docs.len(),
        manifest.len() as f64 / 1048576.0
    );
    for round in 1..=3 {
        let t = Instant::now();
        let mut n = 0;
        for doc in serde_yaml::Deserializer::from_str(&manifest) {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
            if !v.is_null() {
                let _j = serde_json::to_value(&v).unwrap();
                n += 1;
            }
        }
        let read = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let reports = bulwark::kubesec::scan("bench.yaml", manifest.as_bytes()).unwrap();
        let scan = t.elapsed().as_secs_f64();
        assert_eq!(reports.len(), n);
        println!(
            "round {round}: YAML read only {:.0} objects/s; full scan {:.0} objects/s (target ≥ 5,000)",
            n as f64 / read,
            n as f64 / scan
        );
    }
}
