//! kube-hunter (a penetration test run from inside or outside the cluster): runs uploaded as
//! `kube-hunter --report json` output and kept per cluster.
//!
//! kube-hunter's HTTP dispatcher sends the report as a JSON string holding the JSON (so the
//! body is `"{\"nodes\": ...}"`); a plain object is read too, and so is a report wrapped more
//! than once or preceded by log lines on the same stdout.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AuditError;
use crate::audit::{self, Event};
use crate::store::{Store, Table, WriteTx};

/// Runs kept per cluster (the oldest go first).
const KEEP_RUNS: usize = 1_000;
/// Items of each list one report may hold.
const MAX_ITEMS: usize = 20_000;
/// String wrappings unwrapped at most.
const MAX_WRAPPING: usize = 4;

/// A node kube-hunter found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub location: String,
}

/// A service kube-hunter found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub location: String,
}

/// A vulnerability kube-hunter found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vulnerability {
    #[serde(default)]
    pub location: String,
    /// `KHV002`…, or `None`.
    #[serde(default)]
    pub vid: String,
    #[serde(default)]
    pub category: String,
    /// `high`, `medium`, `low`; anything else is kept as reported.
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub vulnerability: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub evidence: String,
    #[serde(default)]
    pub avd_reference: String,
    #[serde(default)]
    pub hunter: String,
}

impl Vulnerability {
    /// Where to read about it: the report's reference when it is a web address, else the
    /// Aqua vulnerability database's page for a KHV id.
    pub fn link(&self) -> Option<String> {
        if crate::images::is_web_link(&self.avd_reference) {
            return Some(self.avd_reference.clone());
        }
        let vid = self.vid.to_ascii_lowercase();
        (vid.starts_with("khv") && vid[3..].chars().all(|c| c.is_ascii_digit()) && vid.len() > 3)
            .then(|| format!("https://avd.aquasec.com/kube-hunter/{vid}/"))
    }
}

/// Vulnerabilities by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub high: u64,
    pub medium: u64,
    pub low: u64,
    pub unknown: u64,
}

/// One uploaded run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: u64,
    pub cluster: u64,
    pub uploaded_at: DateTime<Utc>,
    pub counts: Counts,
    pub nodes: Vec<Node>,
    pub services: Vec<Service>,
    pub vulnerabilities: Vec<Vulnerability>,
}

/// A run's line in a list (stored apart from the run).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunLine {
    pub id: u64,
    pub uploaded_at: DateTime<Utc>,
    pub nodes: usize,
    pub services: usize,
    pub counts: Counts,
}

impl From<&Run> for RunLine {
    fn from(r: &Run) -> Self {
        RunLine {
            id: r.id,
            uploaded_at: r.uploaded_at,
            nodes: r.nodes.len(),
            services: r.services.len(),
            counts: r.counts,
        }
    }
}

const RUNS: Table<(u64, u64), Run> = Table::new("kube_hunter_runs");
const LINES: Table<(u64, u64), RunLine> = Table::new("kube_hunter_lines");
/// Cluster → its run ids, oldest first.
const INDEX: Table<u64, Vec<u64>> = Table::new("kube_hunter_index");

/// What a report holds.
#[derive(Debug, PartialEq, Deserialize)]
pub struct Findings {
    #[serde(default)]
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub vulnerabilities: Vec<Vulnerability>,
}

/// The report in `body`: a JSON object, or a JSON string holding one (up to
/// [`MAX_WRAPPING`] times), possibly after log lines.
fn unwrap_report(body: &[u8]) -> Result<serde_json::Value, AuditError> {
    let bad = |why: String| {
        AuditError::Invalid(format!(
            "expected kube-hunter --report json output (a JSON object, or a JSON string holding one): {why}"
        ))
    };
    let text = std::str::from_utf8(body).map_err(|e| bad(e.to_string()))?;
    let start = text
        .find(['{', '"'])
        .ok_or_else(|| bad("no JSON in the body".into()))?;
    let mut v: serde_json::Value =
        serde_json::from_str(text[start..].trim()).map_err(|e| bad(e.to_string()))?;
    for _ in 0..MAX_WRAPPING {
        match v {
            serde_json::Value::String(s) => {
                v = serde_json::from_str(s.trim()).map_err(|e| bad(e.to_string()))?
            }
            _ => break,
        }
    }
    if !v.is_object() {
        return Err(bad("not an object".into()));
    }
    Ok(v)
}

fn cut(s: &mut String, max: usize) {
    if s.len() > max {
        *s = s.chars().take(max).collect();
    }
}

/// Reads a kube-hunter report.
pub fn parse(body: &[u8]) -> Result<Findings, AuditError> {
    let v = unwrap_report(body)?;
    let mut r: Findings = serde_json::from_value(v)
        .map_err(|e| AuditError::Invalid(format!("not a kube-hunter report: {e}")))?;
    if r.nodes.len() + r.services.len() + r.vulnerabilities.len() > MAX_ITEMS {
        return Err(AuditError::Invalid(format!(
            "more than {MAX_ITEMS} nodes, services and vulnerabilities in one report"
        )));
    }
    for n in &mut r.nodes {
        cut(&mut n.kind, 64);
        cut(&mut n.location, 256);
    }
    for s in &mut r.services {
        cut(&mut s.service, 256);
        cut(&mut s.location, 256);
    }
    for x in &mut r.vulnerabilities {
        for (f, max) in [
            (&mut x.location, 256),
            (&mut x.vid, 32),
            (&mut x.category, 256),
            (&mut x.severity, 16),
            (&mut x.vulnerability, 256),
            (&mut x.description, 4_000),
            (&mut x.evidence, 4_000),
            (&mut x.avd_reference, 512),
            (&mut x.hunter, 256),
        ] {
            cut(f, max);
        }
        x.severity = x.severity.trim().to_ascii_lowercase();
    }
    Ok(r)
}

fn count(vulns: &[Vulnerability]) -> Counts {
    let mut c = Counts::default();
    for v in vulns {
        match v.severity.as_str() {
            "high" => c.high += 1,
            "medium" => c.medium += 1,
            "low" => c.low += 1,
            _ => c.unknown += 1,
        }
    }
    c
}

/// Stores an uploaded report as cluster `cluster`'s newest run, keeping the newest
/// [`KEEP_RUNS`].
pub fn store(
    store: &Store,
    actor: &str,
    ip: &str,
    cluster: u64,
    body: &[u8],
) -> Result<Run, AuditError> {
    let Findings {
        nodes,
        services,
        vulnerabilities,
    } = parse(body)?;
    let counts = count(&vulnerabilities);
    store.write(|w| {
        let id = w.next_id("kube_hunter_runs")?;
        let run = Run {
            id,
            cluster,
            uploaded_at: Utc::now(),
            counts,
            nodes,
            services,
            vulnerabilities,
        };
        w.put(&RUNS, &(cluster, id), &run)?;
        w.put(&LINES, &(cluster, id), &RunLine::from(&run))?;
        for old in super::keep_newest(w, &INDEX, cluster, id, KEEP_RUNS)? {
            w.delete(&RUNS, &(cluster, old))?;
            w.delete(&LINES, &(cluster, old))?;
        }
        audit::record(
            w,
            Event::new(actor, "kube-hunter.upload", format!("cluster:{cluster}"))
                .from_ip(ip)
                .detail(format!(
                    "run={id} high={} medium={} low={} unknown={}",
                    counts.high, counts.medium, counts.low, counts.unknown
                )),
        )?;
        Ok(run)
    })
}

/// Cluster `cluster`'s runs in brief, newest first (at most `limit`).
pub fn lines(
    store: &Store,
    cluster: u64,
    limit: usize,
) -> Result<Vec<RunLine>, crate::store::StoreError> {
    super::newest(store, &LINES, cluster, limit)
}

/// Run `id` of cluster `cluster`.
pub fn run(store: &Store, cluster: u64, id: u64) -> Result<Run, AuditError> {
    store
        .read(|r| r.get(&RUNS, &(cluster, id)))?
        .ok_or_else(|| {
            AuditError::NotFound(format!("cluster {cluster} has no kube-hunter run {id}"))
        })
}

/// Drops a deleted cluster's runs.
pub fn forget(w: &WriteTx, cluster: u64) -> Result<(), crate::store::StoreError> {
    for id in super::drop_index(w, &INDEX, cluster)? {
        w.delete(&RUNS, &(cluster, id))?;
        w.delete(&LINES, &(cluster, id))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &[u8] = include_bytes!("../../tests/fixtures/kube-hunter/report.json");

    #[test]
    fn plain_wrapped_and_logged_reports_read_alike() {
        let plain = parse(REPORT).unwrap();
        assert_eq!(plain.vulnerabilities[0].vid, "KHV036");
        assert_eq!(plain.services.len(), 2);
        let once = serde_json::to_string(std::str::from_utf8(REPORT).unwrap()).unwrap();
        let twice = serde_json::to_string(&once).unwrap();
        let logged = format!(
            "2026-12-06 10:00:01 INFO kube_hunter.modules.report.dispatchers Dispatching report\n{}",
            std::str::from_utf8(REPORT).unwrap()
        );
        for body in [&once, &twice, &logged] {
            assert_eq!(parse(body.as_bytes()).unwrap(), plain, "{body}");
        }
        assert_eq!(
            plain.vulnerabilities[0].link().as_deref(),
            Some("https://avd.aquasec.com/kube-hunter/khv036/")
        );
    }

    #[test]
    fn bad_reports_are_refused() {
        let deep = (0..6).fold("{}".to_string(), |s, _| serde_json::to_string(&s).unwrap());
        for bad in [
            "".to_string(),
            "{".into(),
            "[1,2]".into(),
            "\"not json\"".into(),
            deep,
            "{\"vulnerabilities\": 7}".into(),
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let v = Vulnerability {
            location: String::new(),
            vid: "None".into(),
            category: String::new(),
            severity: "weird".into(),
            vulnerability: String::new(),
            description: String::new(),
            evidence: String::new(),
            avd_reference: "javascript:alert(1)".into(),
            hunter: String::new(),
        };
        assert_eq!(v.link(), None);
        assert_eq!(count(&[v]).unknown, 1);
    }
}
