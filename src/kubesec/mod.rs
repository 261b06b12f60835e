//! KubeSec, natively: kubesec's rules, weights, scoring and JSON report, for manifests given
//! on the command line (`bulwark kubesec`), to the API (`POST /api/v1/kubesec`), and for the
//! workloads of the inventory.
//!
//! Scoring as kubesec scores: rules whose kinds exclude the object's kind are skipped; a rule
//! that matches anywhere adds its points once, into `critical` (negative points) or `passed`; a
//! positive rule that does not match goes to `advise`. No applicable rule: "This resource kind is
//! not supported by kubesec". kubesec first validates objects against downloaded JSON schemas;
//! an appliance without internet checks only that a document is a Kubernetes object (a
//! mapping with `apiVersion` and `kind`) and reports others as not valid.

pub mod api;
pub mod rules;

use serde::Serialize;
use serde_json::Value;

use rules::{pod_spec, Rule, RULES};

/// Largest manifest read (files and API bodies).
pub const MAX_BYTES: usize = 8 << 20;
/// Documents read from one manifest.
const MAX_DOCUMENTS: usize = 10_000;

/// A rule in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleRef {
    pub id: &'static str,
    pub selector: &'static str,
    pub reason: &'static str,
    pub points: i64,
}

impl From<&Rule> for RuleRef {
    fn from(r: &Rule) -> Self {
        RuleRef {
            id: r.id,
            selector: r.selector,
            reason: r.reason,
            points: r.points,
        }
    }
}

/// The rules that matched and the ones worth adding.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Scoring {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub critical: Vec<RuleRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub passed: Vec<RuleRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub advise: Vec<RuleRef>,
}

/// One object's report, as kubesec writes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `<kind>/<name>.<namespace>` (`undefined` and `default` when missing).
    pub object: String,
    pub valid: bool,
    #[serde(rename = "fileName")]
    pub file_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    pub score: i64,
    pub scoring: Scoring,
}

impl Report {
    /// kubesec's verdict: a score above zero and, as Bulwark also asks, no critical rule.
    pub fn passes(&self) -> bool {
        self.valid && self.score > 0 && self.scoring.critical.is_empty()
    }
}

/// kubesec's order: positive points high to low, then negative low to high, then by selector.
fn order(a: &RuleRef, b: &RuleRef) -> std::cmp::Ordering {
    if a.points != b.points {
        if a.points > 0 || b.points > 0 {
            return b.points.cmp(&a.points);
        }
        return a.points.cmp(&b.points);
    }
    a.selector.cmp(b.selector)
}

fn object_name(o: &Value) -> String {
    match o["kind"].as_str() {
        Some(kind) => named(kind, o),
        None => "Unknown".into(),
    }
}

/// `<kind>/<name>.<namespace>`.
fn named(kind: &str, o: &Value) -> String {
    let part = |v: &Value, default: &str| match v {
        Value::Null => default.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    format!(
        "{kind}/{}.{}",
        part(&o["metadata"]["name"], "undefined"),
        part(&o["metadata"]["namespace"], "default")
    )
}

/// Scores one object.
pub fn score(object: &Value, file_name: &str) -> Report {
    match (
        object.as_object(),
        object["apiVersion"].as_str(),
        object["kind"].as_str(),
    ) {
        (Some(_), Some(_), Some(kind)) => score_as(object, kind, file_name),
        _ => Report {
            object: object_name(object),
            valid: false,
            file_name: file_name.to_string(),
            message: "not a Kubernetes object: a mapping with apiVersion and kind is expected"
                .into(),
            score: 0,
            scoring: Scoring::default(),
        },
    }
}

/// Scores `object` as an object of `kind` (items of an API server's list carry no kind of
/// their own).
pub fn score_as(object: &Value, kind: &str, file_name: &str) -> Report {
    let mut report = Report {
        object: named(kind, object),
        valid: true,
        file_name: file_name.to_string(),
        message: String::new(),
        score: 0,
        scoring: Scoring::default(),
    };
    let spec = pod_spec(kind, object);
    let mut applied = 0;
    for rule in RULES.iter().filter(|r| r.kinds.contains(&kind)) {
        applied += 1;
        let matched = (rule.matches)(object, spec) > 0;
        match (matched, rule.points < 0) {
            (true, true) => {
                report.score += rule.points;
                report.scoring.critical.push(rule.into());
            }
            (true, false) => {
                report.score += rule.points;
                report.scoring.passed.push(rule.into());
            }
            (false, false) => report.scoring.advise.push(rule.into()),
            (false, true) => {}
        }
    }
    for list in [
        &mut report.scoring.critical,
        &mut report.scoring.passed,
        &mut report.scoring.advise,
    ] {
        list.sort_by(order);
    }
    report.message = if applied == 0 {
        "This resource kind is not supported by kubesec".into()
    } else if report.score >= 0 {
        format!("Passed with a score of {} points", report.score)
    } else {
        format!("Failed with a score of {} points", report.score)
    };
    report
}

/// What the inventory keeps of a report: the score and the rule ids (the rest is the rule
/// table's).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub score: i64,
    pub critical: Vec<String>,
    pub passed: Vec<String>,
    pub advise: Vec<String>,
}

impl Summary {
    /// The summary of `r`.
    pub fn of(r: &Report) -> Summary {
        let ids = |l: &[RuleRef]| l.iter().map(|x| x.id.to_string()).collect();
        Summary {
            score: r.score,
            critical: ids(&r.scoring.critical),
            passed: ids(&r.scoring.passed),
            advise: ids(&r.scoring.advise),
        }
    }

    /// The full report again, for `object` (`Kind/name.namespace`).
    pub fn report(&self, object: &str) -> Report {
        let refs = |ids: &[String]| {
            ids.iter()
                .filter_map(|id| RULES.iter().find(|r| r.id == id))
                .map(RuleRef::from)
                .collect()
        };
        Report {
            object: object.to_string(),
            valid: true,
            file_name: "inventory".into(),
            message: if self.score >= 0 {
                format!("Passed with a score of {} points", self.score)
            } else {
                format!("Failed with a score of {} points", self.score)
            },
            score: self.score,
            scoring: Scoring {
                critical: refs(&self.critical),
                passed: refs(&self.passed),
                advise: refs(&self.advise),
            },
        }
    }

    /// Passes as [`Report::passes`] judges.
    pub fn passes(&self) -> bool {
        self.score > 0 && self.critical.is_empty()
    }
}

/// Why a manifest could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum KubesecError {
    #[error("{0}")]
    Invalid(String),
}

/// Scores every document of a manifest (see [`crate::manifests::documents`]).
pub fn scan(file_name: &str, bytes: &[u8]) -> Result<Vec<Report>, KubesecError> {
    if bytes.len() > MAX_BYTES {
        return Err(KubesecError::Invalid(format!(
            "{file_name}: larger than {} MiB",
            MAX_BYTES >> 20
        )));
    }
    let docs = crate::manifests::documents(file_name, bytes, MAX_DOCUMENTS)
        .map_err(KubesecError::Invalid)?;
    if docs.is_empty() {
        return Err(KubesecError::Invalid(format!(
            "{file_name}: no document to scan"
        )));
    }
    Ok(docs.iter().map(|d| score(d, file_name)).collect())
}

/// The reports as a table: one line per object, then the critical rules and the advice.
pub fn table(reports: &[Report]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let width = reports
        .iter()
        .map(|r| r.object.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        out,
        "{:<width$}  {:>5}  {:<6}  MESSAGE",
        "OBJECT", "SCORE", "RESULT"
    );
    for r in reports {
        let result = if !r.valid {
            "INVALID"
        } else if r.passes() {
            "PASS"
        } else {
            "FAIL"
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:>5}  {:<6}  {}",
            r.object, r.score, result, r.message
        );
    }
    for r in reports {
        if r.scoring.critical.is_empty() && r.scoring.advise.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{}", r.object);
        for (what, list) in [
            ("critical", &r.scoring.critical),
            ("advise", &r.scoring.advise),
        ] {
            for rule in list {
                let _ = writeln!(
                    out,
                    "  {what:<8} {:>+4}  {:<36} {}",
                    rule.points, rule.id, rule.reason
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
