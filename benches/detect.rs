//! Detection benchmark. Prints figures; asserts nothing.
//!
//!     cargo bench --bench detect          (needs `rg`: apt-get install ripgrep)
//!     DETECT_PROFILE=1 cargo bench --bench detect   (the engine alone, for `perf record`)
//!     DETECT_PROFILE=1 DETECT_MIB=4 valgrind --tool=callgrind …/detect-<hash>
//!         (a smaller corpus: instruction counts, which a shared machine's noise leaves alone)
//!
//! Generates the labelled corpus of `bulwark::detect::corpus` (JSON bodies shaped like API
//! traffic, with sensitive values and checksum-failing decoys), measures precision and recall,
//! then the engine's single-core throughput over ~100 MB of bodies, beside ripgrep running the
//! same candidate patterns (a regex alternation, no validation) over the same bytes as one
//! NDJSON file, single-threaded: ten rounds each, in turns, with the best and the median.

use std::io::Write;
use std::time::Instant;

use bulwark::detect::corpus::{score, Generator};
use bulwark::detect::Engine;

const TARGET_BYTES: usize = 100 * 1024 * 1024;

/// Timed rounds of the engine and of rg, taken in turns.
const ROUNDS: usize = 10;

/// The candidate patterns: what each type's candidate regex would find before validation.
const RG_PATTERNS: &[&str] = &[
    r"\b\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{1,7}\b",
    r"\b\d{3}-\d{2}-\d{4}\b",
    r"\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b",
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b",
    r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{8,}",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    r"(?:postgres|mysql|mongodb|redis)://[^:/\s]+:[^@\s]+@",
];

fn main() {
    let engine = Engine::default();
    let target_bytes = std::env::var("DETECT_MIB")
        .ok()
        .and_then(|m| m.parse::<usize>().ok())
        .map_or(TARGET_BYTES, |m| m * 1024 * 1024);
    let mut g = Generator::new(2026);
    let t = Instant::now();
    let mut docs = Vec::new();
    let mut total = 0;
    while total < target_bytes {
        let d = g.doc();
        total += d.body.len() + 1;
        docs.push(d);
    }
    println!(
        "corpus: {} JSON bodies, {:.1} MiB (generated in {:.1} s)",
        docs.len(),
        total as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );

    // `DETECT_PROFILE=1 perf record …`: only the engine, ten rounds, for a clean profile; the
    // best round and the median are printed (a shared machine's noise only ever adds time).
    if std::env::var_os("DETECT_PROFILE").is_some() {
        let rounds = if target_bytes < TARGET_BYTES { 1 } else { 10 };
        let mut times = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            for d in &docs {
                std::hint::black_box(engine.scan_json(&d.body));
            }
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let rate = |secs: f64| total as f64 / 1e6 / secs;
        println!(
            "engine: {:.0} MB/s best, {:.0} MB/s median of {rounds}",
            rate(times[0]),
            rate(times[times.len() / 2])
        );
        return;
    }
    let s = score(&engine, &docs[..20_000.min(docs.len())]);
    println!(
        "quality on 20,000 bodies: precision {:.4}, recall {:.4} ({} true, {} false positives, {} missed)",
        s.precision(),
        s.recall(),
        s.true_positives,
        s.false_positives,
        s.false_negatives
    );

    // The floor: reading every byte once (the corpus is far larger than the caches).
    let t = Instant::now();
    let mut seen = 0usize;
    for d in &docs {
        seen += memchr::memchr_iter(0xff, &d.body).count() + d.body.len();
    }
    let floor = t.elapsed().as_secs_f64();
    println!(
        "reading the corpus once (memchr for a byte that never occurs): {:.0} MB/s ({seen} bytes)",
        total as f64 / 1e6 / floor
    );
    // Where the time goes: the JSON walk alone, and the strong-type pass alone.
    let t = Instant::now();
    let mut values = 0usize;
    // Keys become their length: the walk itself, without the engine's key table.
    let mut scratch = bulwark::detect::json::Scratch::default();
    for d in &docs {
        let _ = bulwark::detect::json::walk_with(
            &d.body,
            &mut scratch,
            |k: &[u8]| k.len(),
            |_: &[bulwark::detect::json::Seg<usize>], _: &[u8], _| values += 1,
        );
    }
    let walk = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut hits = Vec::new();
    for d in &docs {
        hits.clear();
        bulwark::detect::scan::strong(&d.body, &mut hits);
    }
    let strong = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for d in &docs {
        hits.clear();
        bulwark::detect::scan::digit_runs(&d.body, &mut hits);
    }
    let numbers = t.elapsed().as_secs_f64();
    println!(
        "breakdown: numbers alone {:.0} MB/s",
        total as f64 / 1e6 / numbers
    );
    println!(
        "breakdown: JSON walk {:.0} MB/s ({values} values), strong-type pass {:.0} MB/s",
        total as f64 / 1e6 / walk,
        total as f64 / 1e6 / strong
    );

    // The engine and rg in turns, ten rounds each: a shared machine's noise only ever adds
    // time, so each side's best round is its speed, and the medians show the spread.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("corpus.ndjson");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).expect("corpus file"));
        for d in &docs {
            f.write_all(&d.body).expect("write");
            f.write_all(b"\n").expect("write");
        }
    }
    let mut args: Vec<String> = vec![
        "-j1".into(),
        "--count-matches".into(),
        "--no-filename".into(),
    ];
    for p in RG_PATTERNS {
        args.push("-e".into());
        args.push((*p).into());
    }
    args.push(file.display().to_string());
    let rate = |secs: f64| total as f64 / 1e6 / secs;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut rg_missing = None;
    for round in 1..=ROUNDS {
        let t = Instant::now();
        let mut findings = 0;
        for d in &docs {
            findings += engine.scan_json(&d.body).len();
        }
        let secs = t.elapsed().as_secs_f64();
        ours.push(secs);
        print!(
            "round {round}: bulwark detect {:.0} MB/s ({findings} findings)",
            rate(secs)
        );
        if rg_missing.is_none() {
            let t = Instant::now();
            match std::process::Command::new("rg").args(&args).output() {
                Ok(o) => {
                    let secs = t.elapsed().as_secs_f64();
                    theirs.push(secs);
                    print!(
                        ", rg {:.0} MB/s ({} matches)",
                        rate(secs),
                        String::from_utf8_lossy(&o.stdout).trim()
                    );
                }
                Err(e) => rg_missing = Some(e),
            }
        }
        println!();
    }
    let best_and_median = |times: &mut Vec<f64>| {
        times.sort_by(f64::total_cmp);
        (rate(times[0]), rate(times[times.len() / 2]))
    };
    let (best, median) = best_and_median(&mut ours);
    println!("bulwark detect: {best:.0} MB/s per core best, {median:.0} MB/s median of {ROUNDS}");
    match rg_missing {
        Some(e) => println!("rg not run ({e}): apt-get install ripgrep"),
        None => {
            let (rg_best, rg_median) = best_and_median(&mut theirs);
            println!(
                "rg (same candidate patterns, no validation, one thread): {rg_best:.0} MB/s best, \
                 {rg_median:.0} MB/s median of {ROUNDS}; bulwark/rg {:.2}x at best, {:.2}x at median",
                best / rg_best,
                median / rg_median
            );
        }
    }
}
