//! A scan as SARIF 2.1.0, the format code-scanning dashboards (GitHub, GitLab, Azure DevOps)
//! import: one rule per vulnerability id, one result per affected package. Levels follow the
//! severity (critical and high → `error`, medium → `warning`, the rest → `note`), and each rule
//! carries a `security-severity` score so dashboards rank findings as they rank Trivy's.

use serde_json::{json, Value};

use super::report::{Report, Severity};

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Unknown => "note",
    }
}

/// GitHub's bands: critical ≥ 9.0, high ≥ 7.0, medium ≥ 4.0, low above 0.
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "2.0",
        Severity::Unknown => "0.0",
    }
}

impl Report {
    /// The SARIF 2.1.0 log.
    pub fn sarif(&self) -> Value {
        let mut rule_index: std::collections::BTreeMap<&str, usize> = Default::default();
        let mut rules = Vec::new();
        for v in &self.vulns {
            if rule_index.contains_key(v.id.as_str()) {
                continue;
            }
            rule_index.insert(&v.id, rules.len());
            let text = if v.title.is_empty() {
                format!("{} in {}", v.id, v.package)
            } else {
                v.title.clone()
            };
            rules.push(json!({
                "id": v.id,
                "name": "OsPackageVulnerability",
                "shortDescription": {"text": text},
                "fullDescription": {"text": text},
                "defaultConfiguration": {"level": level(v.severity)},
                "help": {"text": format!("Vulnerability {}\nSeverity: {}\nAdvisory: {}", v.id, v.severity.as_str(), v.advisory)},
                "properties": {
                    "precision": "very-high",
                    "security-severity": security_severity(v.severity),
                    "tags": ["vulnerability", "security", v.severity.as_str()],
                },
            }));
        }
        let results: Vec<Value> = self
            .vulns
            .iter()
            .map(|v| {
                let fixed = v
                    .fixed
                    .as_deref()
                    .map(|f| format!("Fixed version: {f}"))
                    .unwrap_or_else(|| "No fixed version yet".into());
                let uri = v.path.clone().unwrap_or_else(|| self.artifact.clone());
                json!({
                    "ruleId": v.id,
                    "ruleIndex": rule_index[v.id.as_str()],
                    "level": level(v.severity),
                    "message": {"text": format!(
                        "Package: {}\nInstalled version: {}\nVulnerability: {}\nSeverity: {}\n{fixed}",
                        v.package, v.installed, v.id, v.severity.as_str()
                    )},
                    "locations": [{
                        "physicalLocation": {
                            "artifactLocation": {"uri": uri, "uriBaseId": "ROOTPATH"},
                            "region": {"startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1},
                        },
                        "message": {"text": format!("{}: {}@{}", uri, v.package, v.installed)},
                    }],
                })
            })
            .collect();
        json!({
            "version": "2.1.0",
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "runs": [{
                "tool": {"driver": {
                    "name": "Bulwark",
                    "fullName": "Bulwark vulnerability scanner",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }},
                "results": results,
                "columnKind": "utf16CodeUnits",
                "originalUriBaseIds": {"ROOTPATH": {"uri": "file:///"}},
            }],
        })
    }
}
