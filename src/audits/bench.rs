//! kube-bench (the CIS Kubernetes Benchmark): runs uploaded as `kube-bench --json` output, kept
//! per cluster and node, with waivers (a check accepted until a date, with a reason) and the
//! difference between a run and the node's previous one.
//!
//! Both output forms are read: `{"Controls":[...],"Totals":{...}}` and the older bare array of
//! controls (the totals are then counted from the checks). Unknown fields are ignored; an unknown
//! status is kept as reported and counted in none of the totals.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::AuditError;
use crate::audit::{self, Event};
use crate::store::{Scan, Store, Table, WriteTx};

/// Runs kept per cluster (the oldest go first).
const KEEP_RUNS: usize = 1_000;
/// Checks one run may hold (a full CIS run has a few hundred).
const MAX_CHECKS: usize = 20_000;

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub id: String,
    pub text: String,
    /// `PASS`, `FAIL`, `WARN`, `INFO`, or whatever else the report said.
    pub status: String,
    pub scored: bool,
    #[serde(default)]
    pub remediation: String,
    #[serde(default)]
    pub audit: String,
    #[serde(default)]
    pub actual_value: String,
    #[serde(default)]
    pub expected_result: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// A section (`1.1 Master Node Configuration Files`) and its checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    pub id: String,
    pub text: String,
    pub checks: Vec<Check>,
}

/// A control group (`1 Master Node Security Configuration`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Control {
    pub id: String,
    pub text: String,
    pub node_type: String,
    pub version: String,
    #[serde(default)]
    pub detected_version: String,
    pub sections: Vec<Section>,
}

/// Counts by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub pass: u64,
    pub fail: u64,
    pub warn: u64,
    pub info: u64,
}

/// One uploaded run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: u64,
    pub cluster: u64,
    pub uploaded_at: DateTime<Utc>,
    /// The node it ran on (`?node=` of the upload), else its node types (`master`, `node`).
    pub node: String,
    pub totals: Totals,
    pub controls: Vec<Control>,
}

impl Run {
    /// Every check with its control and section.
    pub fn checks(&self) -> impl Iterator<Item = (&Control, &Section, &Check)> {
        self.controls.iter().flat_map(|c| {
            c.sections
                .iter()
                .flat_map(move |s| s.checks.iter().map(move |k| (c, s, k)))
        })
    }

    /// The run's benchmark version (`cis-1.10`), from its first control.
    pub fn version(&self) -> &str {
        self.controls.first().map_or("", |c| c.version.as_str())
    }
}

/// What lists, trends and metrics need of a run, stored apart from the (large) run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub id: u64,
    pub uploaded_at: DateTime<Utc>,
    pub node: String,
    pub version: String,
    pub totals: Totals,
    /// The ids of its failing checks (for waivers).
    pub failing: Vec<String>,
}

impl From<&Run> for Summary {
    fn from(r: &Run) -> Self {
        Summary {
            id: r.id,
            uploaded_at: r.uploaded_at,
            node: r.node.clone(),
            version: r.version().to_string(),
            totals: r.totals,
            failing: r
                .checks()
                .filter(|(_, _, k)| k.status == "FAIL")
                .map(|(_, _, k)| k.id.clone())
                .collect(),
        }
    }
}

/// A run's line in a list.
#[derive(Debug, Clone, Serialize)]
pub struct RunLine {
    pub id: u64,
    pub uploaded_at: DateTime<Utc>,
    pub node: String,
    pub version: String,
    pub totals: Totals,
    /// Failing checks a waiver covers (still in `totals.fail`).
    pub waived: u64,
}

/// A check accepted as failing until `until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiver {
    pub check: String,
    pub reason: String,
    /// The last day the waiver holds.
    pub until: NaiveDate,
    pub by: String,
    pub at: DateTime<Utc>,
}

impl Waiver {
    /// Whether it holds on `day`.
    pub fn holds(&self, day: NaiveDate) -> bool {
        day <= self.until
    }
}

/// A new waiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWaiver {
    pub check: String,
    pub reason: String,
    pub until: NaiveDate,
}

/// A check whose status differs from the previous run's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub check: String,
    pub text: String,
    /// `None`: the check is new in this run.
    pub before: Option<String>,
    /// `None`: the check is gone from this run.
    pub after: Option<String>,
}

const RUNS: Table<(u64, u64), Run> = Table::new("kube_bench_runs");
const SUMMARIES: Table<(u64, u64), Summary> = Table::new("kube_bench_summaries");
/// Cluster → its run ids, oldest first.
const INDEX: Table<u64, Vec<u64>> = Table::new("kube_bench_index");
/// `{cluster}/{check}` → its waiver.
const WAIVERS: Table<String, Waiver> = Table::new("kube_bench_waivers");

// kube-bench's JSON, as much as the pages show. Every field is optional: older and newer
// versions add and drop keys.
#[derive(Deserialize)]
#[serde(untagged)]
enum Report {
    Wrapped {
        #[serde(rename = "Controls")]
        controls: Vec<RawControl>,
        #[serde(rename = "Totals", default)]
        totals: Option<RawTotals>,
    },
    Bare(Vec<RawControl>),
}

#[derive(Deserialize)]
struct RawControl {
    #[serde(default)]
    id: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    detected_version: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    node_type: String,
    #[serde(default)]
    tests: Vec<RawSection>,
}

#[derive(Deserialize)]
struct RawSection {
    #[serde(default)]
    section: String,
    #[serde(default)]
    desc: String,
    #[serde(default)]
    results: Vec<RawCheck>,
}

#[derive(Deserialize)]
struct RawCheck {
    #[serde(default)]
    test_number: String,
    #[serde(default)]
    test_desc: String,
    #[serde(default)]
    audit: String,
    #[serde(default)]
    remediation: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    actual_value: String,
    #[serde(default)]
    scored: bool,
    #[serde(default)]
    expected_result: String,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct RawTotals {
    #[serde(default)]
    total_pass: u64,
    #[serde(default)]
    total_fail: u64,
    #[serde(default)]
    total_warn: u64,
    #[serde(default)]
    total_info: u64,
}

/// Text kept of a field: checks carry shell commands and paragraphs, not novels.
fn cut(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    s.chars().take(max).collect()
}

/// Reads a `kube-bench --json` report.
pub fn parse(body: &[u8]) -> Result<(Vec<Control>, Totals), AuditError> {
    let report: Report = serde_json::from_slice(body).map_err(|e| {
        AuditError::Invalid(format!(
            "expected kube-bench --json output ({{\"Controls\":[...]}} or an array of controls): {e}"
        ))
    })?;
    let (raw, totals) = match report {
        Report::Wrapped { controls, totals } => (controls, totals),
        Report::Bare(controls) => (controls, None),
    };
    let mut counted = Totals::default();
    let mut n = 0;
    let mut controls = Vec::with_capacity(raw.len());
    for c in raw {
        let mut sections = Vec::with_capacity(c.tests.len());
        for s in c.tests {
            n += s.results.len();
            if n > MAX_CHECKS {
                return Err(AuditError::Invalid(format!(
                    "more than {MAX_CHECKS} checks in one run"
                )));
            }
            let checks = s
                .results
                .into_iter()
                .map(|r| {
                    let status = cut(r.status.trim().to_ascii_uppercase(), 16);
                    match status.as_str() {
                        "PASS" => counted.pass += 1,
                        "FAIL" => counted.fail += 1,
                        "WARN" => counted.warn += 1,
                        "INFO" => counted.info += 1,
                        _ => {}
                    }
                    Check {
                        id: cut(r.test_number, 32),
                        text: cut(r.test_desc, 1_000),
                        status,
                        scored: r.scored,
                        remediation: cut(r.remediation, 8_000),
                        audit: cut(r.audit, 4_000),
                        actual_value: cut(r.actual_value, 4_000),
                        expected_result: cut(r.expected_result, 1_000),
                        reason: cut(r.reason, 2_000),
                    }
                })
                .collect();
            sections.push(Section {
                id: cut(s.section, 32),
                text: cut(s.desc, 500),
                checks,
            });
        }
        controls.push(Control {
            id: cut(c.id, 32),
            text: cut(c.text, 500),
            node_type: cut(c.node_type, 32),
            version: cut(c.version, 32),
            detected_version: cut(c.detected_version, 32),
            sections,
        });
    }
    if controls.is_empty() {
        return Err(AuditError::Invalid("the report has no controls".into()));
    }
    let totals = totals.map_or(counted, |t| Totals {
        pass: t.total_pass,
        fail: t.total_fail,
        warn: t.total_warn,
        info: t.total_info,
    });
    Ok((controls, totals))
}

/// Stores an uploaded report as cluster `cluster`'s newest run for `node` (`None`: named by its
/// node types), keeping the newest [`KEEP_RUNS`].
pub fn store(
    store: &Store,
    actor: &str,
    ip: &str,
    cluster: u64,
    node: Option<&str>,
    body: &[u8],
) -> Result<Run, AuditError> {
    let (controls, totals) = parse(body)?;
    let node = match node.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => super::valid_node(n)?,
        None => {
            let mut types: Vec<&str> = controls.iter().map(|c| c.node_type.as_str()).collect();
            types.dedup();
            types.join(",")
        }
    };
    store.write(|w| {
        let id = w.next_id("kube_bench_runs")?;
        let run = Run {
            id,
            cluster,
            uploaded_at: Utc::now(),
            node,
            totals,
            controls,
        };
        w.put(&RUNS, &(cluster, id), &run)?;
        w.put(&SUMMARIES, &(cluster, id), &Summary::from(&run))?;
        for old in super::keep_newest(w, &INDEX, cluster, id, KEEP_RUNS)? {
            w.delete(&RUNS, &(cluster, old))?;
            w.delete(&SUMMARIES, &(cluster, old))?;
        }
        audit::record(
            w,
            Event::new(actor, "kube-bench.upload", format!("cluster:{cluster}"))
                .from_ip(ip)
                .detail(format!(
                    "run={id} node={} pass={} fail={} warn={} info={}",
                    run.node, totals.pass, totals.fail, totals.warn, totals.info
                )),
        )?;
        Ok(run)
    })
}

/// Cluster `cluster`'s runs in brief, newest first (at most `limit`).
pub fn summaries(
    store: &Store,
    cluster: u64,
    limit: usize,
) -> Result<Vec<Summary>, crate::store::StoreError> {
    super::newest(store, &SUMMARIES, cluster, limit)
}

/// Lines for `runs`, with the failing checks waived today.
pub fn lines(runs: &[Summary], waivers: &BTreeMap<String, Waiver>) -> Vec<RunLine> {
    let today = Utc::now().date_naive();
    runs.iter()
        .map(|r| RunLine {
            id: r.id,
            uploaded_at: r.uploaded_at,
            node: r.node.clone(),
            version: r.version.clone(),
            totals: r.totals,
            waived: r
                .failing
                .iter()
                .filter(|id| waivers.get(*id).is_some_and(|w| w.holds(today)))
                .count() as u64,
        })
        .collect()
}

/// Run `id` of cluster `cluster`.
pub fn run(store: &Store, cluster: u64, id: u64) -> Result<Run, AuditError> {
    store
        .read(|r| r.get(&RUNS, &(cluster, id)))?
        .ok_or_else(|| {
            AuditError::NotFound(format!("cluster {cluster} has no kube-bench run {id}"))
        })
}

/// The run before `run` on the same node, if any.
pub fn previous(store: &Store, run: &Run) -> Result<Option<Run>, AuditError> {
    let from = crate::store::StoreKey::encode(&(run.cluster, 0));
    let to = crate::store::StoreKey::encode(&(run.cluster, run.id));
    let mut found = None;
    store.read(|r| {
        r.scan(
            &RUNS,
            Scan {
                from: Some(&from),
                to: Some(&to),
                reverse: true,
            },
            |_, prev: Run| {
                if prev.node == run.node {
                    found = Some(prev);
                    return Ok(false);
                }
                Ok(true)
            },
        )
    })?;
    Ok(found)
}

/// What changed from `before` to `after`, by check id.
pub fn diff(before: &Run, after: &Run) -> Vec<Change> {
    let old: BTreeMap<&str, &Check> = before
        .checks()
        .map(|(_, _, k)| (k.id.as_str(), k))
        .collect();
    let new: BTreeMap<&str, &Check> = after.checks().map(|(_, _, k)| (k.id.as_str(), k)).collect();
    let mut out = Vec::new();
    for (id, k) in &new {
        match old.get(id) {
            Some(o) if o.status == k.status => {}
            o => out.push(Change {
                check: id.to_string(),
                text: k.text.clone(),
                before: o.map(|o| o.status.clone()),
                after: Some(k.status.clone()),
            }),
        }
    }
    for (id, o) in &old {
        if !new.contains_key(id) {
            out.push(Change {
                check: id.to_string(),
                text: o.text.clone(),
                before: Some(o.status.clone()),
                after: None,
            });
        }
    }
    out.sort_by_key(|c| version_order(&c.check));
    out
}

/// `1.2.10` after `1.2.9`.
fn version_order(id: &str) -> Vec<u64> {
    id.split('.')
        .map(|p| p.parse().unwrap_or(u64::MAX))
        .collect()
}

fn waiver_key(cluster: u64, check: &str) -> String {
    format!("{cluster:020}/{check}")
}

/// Cluster `cluster`'s waivers by check id (expired ones included: the page shows them).
pub fn waivers(store: &Store, cluster: u64) -> Result<BTreeMap<String, Waiver>, AuditError> {
    let from = format!("{cluster:020}/");
    let to = format!("{cluster:020}0");
    let mut out = BTreeMap::new();
    store.read(|r| {
        r.scan(
            &WAIVERS,
            Scan {
                from: Some(from.as_bytes()),
                to: Some(to.as_bytes()),
                reverse: false,
            },
            |_, w: Waiver| {
                out.insert(w.check.clone(), w);
                Ok(true)
            },
        )
    })?;
    Ok(out)
}

/// Waives check `w.check` on cluster `cluster` until `w.until` (replacing an earlier waiver).
pub fn waive(
    store: &Store,
    actor: &str,
    ip: &str,
    cluster: u64,
    w: NewWaiver,
) -> Result<Waiver, AuditError> {
    let check = w.check.trim().to_string();
    if check.is_empty()
        || check.len() > 32
        || !check
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(AuditError::Invalid(
            "check: a kube-bench check id such as 1.2.10".into(),
        ));
    }
    let reason = w.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 1_000 {
        return Err(AuditError::Invalid(
            "reason: why the check is accepted, 1 to 1000 characters".into(),
        ));
    }
    if w.until < Utc::now().date_naive() {
        return Err(AuditError::Invalid("until: today or a later day".into()));
    }
    let waiver = Waiver {
        check: check.clone(),
        reason,
        until: w.until,
        by: actor.to_string(),
        at: Utc::now(),
    };
    store.write(|tx| {
        tx.put(&WAIVERS, &waiver_key(cluster, &check), &waiver)?;
        audit::record(
            tx,
            Event::new(actor, "kube-bench.waive", format!("cluster:{cluster}"))
                .from_ip(ip)
                .detail(format!("check={check} until={}", waiver.until)),
        )?;
        Ok(waiver)
    })
}

/// Removes the waiver of `check` on cluster `cluster`.
pub fn unwaive(
    store: &Store,
    actor: &str,
    ip: &str,
    cluster: u64,
    check: &str,
) -> Result<(), AuditError> {
    store.write(|tx| {
        if !tx.delete(&WAIVERS, &waiver_key(cluster, check))? {
            return Err(AuditError::NotFound(format!(
                "no waiver for check '{}'",
                check.chars().take(32).collect::<String>()
            )));
        }
        audit::record(
            tx,
            Event::new(actor, "kube-bench.unwaive", format!("cluster:{cluster}"))
                .from_ip(ip)
                .detail(format!("check={check}")),
        )?;
        Ok(())
    })
}

/// Drops a deleted cluster's runs and waivers.
pub fn forget(w: &WriteTx, cluster: u64) -> Result<(), crate::store::StoreError> {
    for id in super::drop_index(w, &INDEX, cluster)? {
        w.delete(&RUNS, &(cluster, id))?;
        w.delete(&SUMMARIES, &(cluster, id))?;
    }
    let prefix = format!("{cluster:020}/");
    w.retain(&WAIVERS, |k: &String, _| !k.starts_with(&prefix))?;
    Ok(())
}

/// The newest run of each node of cluster `cluster`, in brief (for the roll-up and metrics).
pub fn latest_by_node(store: &Store, cluster: u64) -> Result<Vec<Summary>, AuditError> {
    let mut seen = std::collections::BTreeMap::new();
    for r in summaries(store, cluster, KEEP_RUNS)? {
        seen.entry(r.node.clone()).or_insert(r);
    }
    Ok(seen.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_report_forms_are_read() {
        let (controls, totals) = parse(include_bytes!(
            "../../tests/fixtures/kube-bench/result.json"
        ))
        .unwrap();
        assert_eq!(controls.len(), 3);
        assert_eq!(controls[0].node_type, "master");
        assert_eq!(controls[0].sections[0].checks[0].id, "1.1.1");
        // The report's own totals win over a count of its (abridged) checks.
        assert_eq!(
            totals,
            Totals {
                pass: 49,
                fail: 12,
                warn: 14,
                info: 0
            }
        );
        let (controls, totals) = parse(include_bytes!(
            "../../tests/fixtures/kube-bench/passedControlsCollection.json"
        ))
        .unwrap();
        assert_eq!(controls.len(), 2);
        assert_eq!(
            (totals.pass, totals.warn),
            (1, 1),
            "counted from the checks"
        );
    }

    #[test]
    fn unknown_statuses_and_fields_are_kept_and_bad_reports_refused() {
        let body = br#"[{"id":"9","node_type":"node","future":1,"tests":[{"section":"9.1","results":[
            {"test_number":"9.1.1","status":"skipped","x":[1]},{"test_number":"9.1.2","status":"fail"}]}]}]"#;
        let (c, t) = parse(body).unwrap();
        assert_eq!(c[0].sections[0].checks[0].status, "SKIPPED");
        assert_eq!((t.fail, t.pass, t.warn, t.info), (1, 0, 0, 0));
        for bad in [
            &b"{"[..],
            b"[]",
            b"{\"Controls\":7}",
            b"\"text\"",
            b"{\"Totals\":{}}",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    fn run_with(id: u64, checks: &[(&str, &str)]) -> Run {
        Run {
            id,
            cluster: 1,
            uploaded_at: Utc::now(),
            node: "n".into(),
            totals: Totals::default(),
            controls: vec![Control {
                id: "1".into(),
                text: String::new(),
                node_type: "node".into(),
                version: "cis-1.10".into(),
                detected_version: String::new(),
                sections: vec![Section {
                    id: "1.1".into(),
                    text: String::new(),
                    checks: checks
                        .iter()
                        .map(|(id, st)| Check {
                            id: id.to_string(),
                            text: format!("check {id}"),
                            status: st.to_string(),
                            scored: true,
                            remediation: String::new(),
                            audit: String::new(),
                            actual_value: String::new(),
                            expected_result: String::new(),
                            reason: String::new(),
                        })
                        .collect(),
                }],
            }],
        }
    }

    #[test]
    fn the_diff_names_changed_new_and_gone_checks_in_order() {
        let a = run_with(
            1,
            &[("1.1.2", "FAIL"), ("1.1.10", "PASS"), ("1.1.3", "PASS")],
        );
        let b = run_with(
            2,
            &[("1.1.2", "PASS"), ("1.1.10", "FAIL"), ("1.1.4", "WARN")],
        );
        let d: Vec<(String, Option<String>, Option<String>)> = diff(&a, &b)
            .into_iter()
            .map(|c| (c.check, c.before, c.after))
            .collect();
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            d,
            [
                ("1.1.2".into(), s("FAIL"), s("PASS")),
                ("1.1.3".into(), s("PASS"), None),
                ("1.1.4".into(), None, s("WARN")),
                ("1.1.10".into(), s("PASS"), s("FAIL")),
            ]
        );
    }
}
