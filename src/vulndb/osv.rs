//! OSV records (https://ossf.github.io/osv-schema/), read into [`Advisory`]. Fields Bulwark does
//! not use are ignored; a record without an id, or with malformed fields it does use, is an error
//! the importer counts and skips.

use serde::{Deserialize, Serialize};

use super::range::Event;

/// A vulnerability as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advisory {
    pub id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub modified: String,
    /// CVSS score or severity label as published, if any.
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub references: Vec<String>,
    pub affected: Vec<Affected>,
    /// Where it came from (`osv`, `alpine-secdb`, `debian-tracker`).
    pub source: String,
}

/// One affected package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Affected {
    /// OSV ecosystem, e.g. `Debian:12`, `Alpine:v3.19`, `PyPI`.
    pub ecosystem: String,
    pub package: String,
    /// Version ranges (events) this package is affected in; GIT ranges are left out.
    #[serde(default)]
    pub ranges: Vec<Vec<StoredEvent>>,
    /// Explicitly listed affected versions.
    #[serde(default)]
    pub versions: Vec<String>,
}

/// An OSV event as stored (`{"introduced": "0"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredEvent {
    Introduced(String),
    Fixed(String),
    LastAffected(String),
    Limit(String),
}

impl From<&StoredEvent> for Event {
    fn from(e: &StoredEvent) -> Event {
        match e {
            StoredEvent::Introduced(v) => Event::Introduced(v.clone()),
            StoredEvent::Fixed(v) => Event::Fixed(v.clone()),
            StoredEvent::LastAffected(v) => Event::LastAffected(v.clone()),
            StoredEvent::Limit(v) => Event::Limit(v.clone()),
        }
    }
}

#[derive(Deserialize)]
struct Record {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    modified: String,
    #[serde(default)]
    severity: Vec<Severity>,
    #[serde(default)]
    references: Vec<Reference>,
    #[serde(default)]
    affected: Vec<RecordAffected>,
    #[serde(default)]
    database_specific: Option<DatabaseSpecific>,
}

/// GitHub and others label the severity here (`"CRITICAL"`), beside the CVSS vector.
#[derive(Deserialize)]
struct DatabaseSpecific {
    #[serde(default)]
    severity: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Severity {
    #[serde(default)]
    score: String,
}

#[derive(Deserialize)]
struct Reference {
    #[serde(default)]
    url: String,
}

#[derive(Deserialize)]
struct RecordAffected {
    #[serde(default)]
    package: Option<Package>,
    #[serde(default)]
    ranges: Vec<Range>,
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(Deserialize)]
struct Package {
    ecosystem: String,
    name: String,
}

#[derive(Deserialize)]
struct Range {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<StoredEvent>,
}

/// Reads one OSV record.
pub fn parse(bytes: &[u8]) -> Result<Advisory, String> {
    let r: Record = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if r.id.trim().is_empty() {
        return Err("the record has no id".into());
    }
    let affected = r
        .affected
        .into_iter()
        .filter_map(|a| {
            let p = a.package?;
            let ranges = a
                .ranges
                .into_iter()
                // GIT ranges name commits; package versions cannot be matched against them.
                .filter(|r| r.kind != "GIT")
                .map(|r| r.events)
                .filter(|e| !e.is_empty())
                .collect();
            Some(Affected {
                ecosystem: p.ecosystem,
                package: p.name,
                ranges,
                versions: a.versions,
            })
        })
        .collect();
    Ok(Advisory {
        id: r.id,
        aliases: r.aliases,
        summary: r.summary,
        modified: r.modified,
        // A label a scanner can use directly wins over a CVSS vector string.
        severity: r
            .database_specific
            .and_then(|d| d.severity)
            .and_then(|s| s.as_str().map(str::to_string))
            .filter(|s| !s.is_empty())
            .or_else(|| {
                r.severity
                    .into_iter()
                    .map(|s| s.score)
                    .find(|s| !s.is_empty())
            })
            .unwrap_or_default(),
        references: r
            .references
            .into_iter()
            .map(|x| x.url)
            .filter(|u| !u.is_empty())
            .take(20)
            .collect(),
        affected,
        source: "osv".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shared_fixtures() {
        let alpine = parse(include_bytes!(
            "../../tests/fixtures/vulndb/osv-CVE-2018-5407-alpine.json"
        ))
        .unwrap();
        assert_eq!(alpine.id, "CVE-2018-5407");
        assert!(alpine
            .affected
            .iter()
            .any(|a| a.ecosystem == "Alpine:v3.3" && a.package == "openssl"));
        assert_eq!(
            alpine.affected[0].ranges[0],
            vec![
                StoredEvent::Introduced("0".into()),
                StoredEvent::Fixed("1.0.2q-r0".into())
            ]
        );
        let pypi = parse(include_bytes!(
            "../../tests/fixtures/vulndb/osv-GHSA-9v2f-6vcg-3hgv-pypi.json"
        ))
        .unwrap();
        assert!(pypi.affected[0].ranges.is_empty() && pypi.affected[0].versions.len() == 2);
        let git = parse(include_bytes!(
            "../../tests/fixtures/vulndb/osv-CVE-2023-41045-git.json"
        ))
        .unwrap();
        assert!(
            git.affected.is_empty(),
            "GIT-only records affect no package version"
        );
        assert!(parse(br#"{"summary": "no id"}"#).is_err());
        assert!(parse(br#"{"id": "X", "affected": [{"ranges": "nope"}]}"#).is_err());
    }
}
