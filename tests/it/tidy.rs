//! House rules, checked on the source tree: shared infrastructure imports no domain, and comments
//! say what code does and why, never the history of how it got there.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Infrastructure: what every domain may use, and which may use no domain.
const INFRASTRUCTURE: &[&str] = &[
    "store", "search", "http", "jobs", "notify", "config", "secrets", "memory", "outbound",
];

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The crate's top-level modules that are not infrastructure, from `src/lib.rs`.
fn domains() -> Vec<String> {
    let lib = std::fs::read_to_string(Path::new(ROOT).join("src/lib.rs")).unwrap();
    let all: Vec<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    assert!(all.len() > 10, "modules read from src/lib.rs: {all:?}");
    all.into_iter()
        .filter(|m| !INFRASTRUCTURE.contains(&m.as_str()))
        .collect()
}

/// The infrastructure's source files.
fn infrastructure_files() -> Vec<PathBuf> {
    let src = Path::new(ROOT).join("src");
    let mut files = Vec::new();
    for m in INFRASTRUCTURE {
        let dir = src.join(m);
        if dir.is_dir() {
            files.extend(rust_files(&dir));
        } else {
            let f = src.join(format!("{m}.rs"));
            assert!(f.is_file(), "no module {m}");
            files.push(f);
        }
    }
    files
}

/// `(file, line number, line)` of every line in `files` for which `bad` holds.
fn offenders(files: &[PathBuf], bad: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            if bad(line) {
                let rel = f.strip_prefix(ROOT).unwrap_or(f);
                out.push(format!("{}:{}: {}", rel.display(), i + 1, line.trim()));
            }
        }
    }
    out
}

#[test]
fn infrastructure_imports_no_domain() {
    let domains = domains();
    let found = offenders(&infrastructure_files(), |line| {
        domains.iter().any(|d| {
            line.contains(&format!("crate::{d}::"))
                || line.contains(&format!("crate::{d};"))
                || line.contains(&format!("crate::{{{d}"))
                || line.contains(&format!("crate::{d} "))
        })
    });
    assert!(
        found.is_empty(),
        "infrastructure ({}) must not name a domain; move the code into the domain:\n{}",
        INFRASTRUCTURE.join(", "),
        found.join("\n")
    );
}

/// Whether a comment line tells the history of the code rather than what it does.
fn narrates_history(line: &str) -> bool {
    let Some(at) = line.find("//") else {
        return false;
    };
    let comment = line[at..].to_ascii_lowercase();
    let issue_number = comment.match_indices("issue ").any(|(i, m)| {
        comment[i + m.len()..]
            .trim_start_matches('#')
            .starts_with(|c: char| c.is_ascii_digit())
    });
    issue_number || comment.contains("in progress") || comment.contains("comes next")
}

#[test]
fn comments_say_what_not_when() {
    let root = Path::new(ROOT);
    let mut files = rust_files(&root.join("src"));
    files.extend(rust_files(&root.join("benches")));
    files.extend(rust_files(&root.join("tests/it")));
    // This file names the phrases it looks for.
    files.retain(|f| !f.ends_with("tests/it/tidy.rs"));
    let found = offenders(&files, narrates_history);
    assert!(
        found.is_empty(),
        "comments narrate history (say what the code does and why instead):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_rules_catch_what_they_are_for() {
    assert!(narrates_history("//! The scanner (issue 4, in progress)."));
    assert!(narrates_history("    // see issue #12"));
    assert!(narrates_history("/// Live capture comes next."));
    assert!(!narrates_history("/// Issues tried so far."));
    assert!(!narrates_history("let issue = 4; // the issue id"));
    assert!(domains().contains(&"compliance".to_string()));
    assert!(!domains().contains(&"http".to_string()));
}
