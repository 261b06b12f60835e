//! Distribution feeds turned into advisories: Alpine secdb JSON and the Debian security tracker
//! JSON. Each entry becomes an affected package in `Alpine:vX.Y` or `Debian:N` with an
//! introduced-0 / fixed range; the advisory id names the feed and release, its alias the CVE.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::osv::{Advisory, Affected, StoredEvent};

/// What a JSON file holds.
pub enum Format {
    Osv,
    AlpineSecdb,
    DebianTracker,
}

/// Tells the formats apart by their top-level shape.
pub fn detect(v: &Value) -> Option<Format> {
    let o = v.as_object()?;
    if o.contains_key("distroversion") && o.contains_key("packages") {
        return Some(Format::AlpineSecdb);
    }
    if o.get("id").is_some_and(Value::is_string) {
        return Some(Format::Osv);
    }
    let looks_like_tracker = o.values().take(5).all(|pkg| {
        pkg.as_object().is_some_and(|cves| {
            cves.keys()
                .take(3)
                .all(|k| k.starts_with("CVE-") || k.starts_with("TEMP-"))
        })
    });
    (looks_like_tracker && !o.is_empty()).then_some(Format::DebianTracker)
}

#[derive(Deserialize)]
struct Secdb {
    distroversion: String,
    #[serde(default)]
    packages: Vec<SecdbPackage>,
}

#[derive(Deserialize)]
struct SecdbPackage {
    pkg: SecdbPkg,
}

#[derive(Deserialize)]
struct SecdbPkg {
    name: String,
    #[serde(default)]
    secfixes: BTreeMap<String, Vec<String>>,
}

fn fixed_range(fixed: Option<&str>) -> Vec<StoredEvent> {
    let mut r = vec![StoredEvent::Introduced("0".into())];
    if let Some(f) = fixed {
        r.push(StoredEvent::Fixed(f.to_string()));
    }
    r
}

fn advisory(
    id: String,
    cve: &str,
    summary: String,
    severity: String,
    source: &str,
    affected: Vec<Affected>,
) -> Advisory {
    Advisory {
        id,
        aliases: vec![cve.to_string()],
        summary,
        modified: String::new(),
        severity,
        references: vec![],
        affected,
        source: source.into(),
    }
}

/// Alpine secdb (`{"distroversion": "v3.19", "packages": [{"pkg": {"name", "secfixes"}}]}`).
/// A fix version of `0` means the package was never affected.
pub fn alpine_secdb(v: Value) -> Result<Vec<Advisory>, String> {
    let db: Secdb = serde_json::from_value(v).map_err(|e| e.to_string())?;
    let ecosystem = format!("Alpine:{}", db.distroversion);
    let mut by_cve: BTreeMap<String, Vec<Affected>> = BTreeMap::new();
    for p in db.packages {
        for (fixed, ids) in p.pkg.secfixes {
            if fixed == "0" {
                continue;
            }
            for id in ids.iter().flat_map(|s| s.split_whitespace()) {
                by_cve.entry(id.to_string()).or_default().push(Affected {
                    ecosystem: ecosystem.clone(),
                    package: p.pkg.name.clone(),
                    ranges: vec![fixed_range(Some(&fixed))],
                    versions: vec![],
                });
            }
        }
    }
    Ok(by_cve
        .into_iter()
        .map(|(cve, affected)| {
            advisory(
                format!("alpine:{}:{cve}", db.distroversion),
                &cve,
                String::new(),
                String::new(),
                "alpine-secdb",
                affected,
            )
        })
        .collect())
}

/// Debian release code names and their OSV ecosystem numbers.
fn debian_release(codename: &str) -> Option<&'static str> {
    Some(match codename {
        "jessie" => "8",
        "stretch" => "9",
        "buster" => "10",
        "bullseye" => "11",
        "bookworm" => "12",
        "trixie" => "13",
        "forky" => "14",
        _ => return None,
    })
}

/// The Debian security tracker (`{source package: {CVE: {description, releases: {codename:
/// {status, fixed_version, urgency}}}}}`). Resolved issues are fixed in `fixed_version` (`0`:
/// never affected); open ones affect every version. Packages are source packages.
pub fn debian_tracker(v: Value) -> Result<Vec<Advisory>, String> {
    let o = v.as_object().ok_or("the tracker is not a JSON object")?;
    let mut by_cve: BTreeMap<String, (String, String, Vec<Affected>)> = BTreeMap::new();
    for (package, cves) in o {
        let Some(cves) = cves.as_object() else {
            continue;
        };
        for (cve, info) in cves {
            let description = info
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some(releases) = info.get("releases").and_then(Value::as_object) else {
                continue;
            };
            for (codename, rel) in releases {
                let Some(number) = debian_release(codename) else {
                    continue;
                };
                let status = rel
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let fixed = rel.get("fixed_version").and_then(Value::as_str);
                let range = match (status, fixed) {
                    ("resolved", Some("0")) | ("resolved", None) => continue,
                    ("resolved", Some(f)) => fixed_range(Some(f)),
                    ("open" | "undetermined", _) => fixed_range(None),
                    _ => continue,
                };
                let urgency = rel
                    .get("urgency")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .trim_end_matches('*')
                    .to_string();
                let e = by_cve
                    .entry(cve.clone())
                    .or_insert_with(|| (description.to_string(), urgency.clone(), vec![]));
                e.2.push(Affected {
                    ecosystem: format!("Debian:{number}"),
                    package: package.clone(),
                    ranges: vec![range],
                    versions: vec![],
                });
            }
        }
    }
    Ok(by_cve
        .into_iter()
        .map(|(cve, (summary, urgency, affected))| {
            advisory(
                format!("debian:{cve}"),
                &cve,
                summary,
                urgency,
                "debian-tracker",
                affected,
            )
        })
        .collect())
}
