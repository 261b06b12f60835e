//! Trivy JSON reports (`SchemaVersion: 2`), read into Bulwark findings. Every vulnerability is
//! kept; unknown severities become [`Severity::Unknown`] instead of failing the report.

use std::collections::HashMap;

use serde::Deserialize;

use super::{Finding, Severity};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Report {
    schema_version: Option<i64>,
    #[serde(default)]
    artifact_name: String,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    results: Option<Vec<ResultEntry>>,
    /// Present in reports `bulwark scan` writes.
    #[serde(rename = "Bulwark", default)]
    bulwark: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Metadata {
    #[serde(rename = "OS", default)]
    os: Option<Os>,
    #[serde(rename = "ImageID", default)]
    image_id: Option<String>,
    #[serde(default)]
    repo_digests: Option<Vec<String>>,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Os {
    #[serde(default)]
    family: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultEntry {
    #[serde(default)]
    target: String,
    #[serde(default)]
    vulnerabilities: Option<Vec<Vuln>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Vuln {
    #[serde(rename = "VulnerabilityID")]
    vulnerability_id: String,
    #[serde(default)]
    pkg_name: String,
    #[serde(default)]
    pkg_path: String,
    #[serde(default)]
    installed_version: String,
    #[serde(default)]
    fixed_version: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    severity: String,
    /// Which database the severity is from (Trivy: `nvd`, `debian`, `ghsa`; Bulwark: the
    /// feed, the advisory and how it was read).
    #[serde(default)]
    severity_source: String,
    #[serde(rename = "PrimaryURL", default)]
    primary_url: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    references: Option<Vec<String>>,
    #[serde(rename = "CVSS", default)]
    cvss: Option<HashMap<String, Cvss>>,
}

#[derive(Deserialize, Default)]
struct Cvss {
    #[serde(rename = "V3Score", default)]
    v3: Option<f32>,
    #[serde(rename = "V40Score", default)]
    v40: Option<f32>,
    #[serde(rename = "V2Score", default)]
    v2: Option<f32>,
}

/// What a report says about the scanned image besides its findings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportMeta {
    /// `ArtifactName`.
    pub artifact: String,
    /// `"debian 12.5"` etc.
    pub os: String,
    /// `Metadata.RepoDigests` (`repo@sha256:…`).
    pub repo_digests: Vec<String>,
    /// `Metadata.RepoTags`.
    pub repo_tags: Vec<String>,
    /// `Metadata.ImageID` (the config digest).
    pub image_id: Option<String>,
}

/// A report that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrivyError {
    #[error("not a Trivy JSON report: {0}")]
    Json(#[from] serde_json::Error),
    #[error("Trivy report SchemaVersion {0} is not supported (only 2)")]
    Schema(i64),
    #[error("not a Trivy JSON report: SchemaVersion is missing")]
    NoSchema,
}

/// Reads a report: its metadata and every vulnerability as a finding of scanner `trivy`, or
/// `bulwark` for reports `bulwark scan` wrote.
pub fn parse(bytes: &[u8]) -> Result<(ReportMeta, Vec<Finding>), TrivyError> {
    let r: Report = serde_json::from_slice(bytes)?;
    match r.schema_version {
        Some(2) => {}
        Some(v) => return Err(TrivyError::Schema(v)),
        None => return Err(TrivyError::NoSchema),
    }
    let os = r
        .metadata
        .os
        .map(|o| format!("{} {}", o.family, o.name).trim().to_string())
        .unwrap_or_default();
    let meta = ReportMeta {
        artifact: r.artifact_name,
        os,
        repo_digests: r.metadata.repo_digests.unwrap_or_default(),
        repo_tags: r.metadata.repo_tags.unwrap_or_default(),
        image_id: r.metadata.image_id,
    };
    let scanner = if r.bulwark.is_some() {
        "bulwark"
    } else {
        "trivy"
    };
    let mut findings = Vec::new();
    for result in r.results.unwrap_or_default() {
        for v in result.vulnerabilities.unwrap_or_default() {
            let cvss = v.cvss.as_ref().and_then(|m| {
                // Prefer NVD, then any source; prefer v3.x, then v4, then v2.
                let pick = |c: &Cvss| c.v3.or(c.v40).or(c.v2);
                m.get("nvd")
                    .and_then(pick)
                    .or_else(|| m.values().filter_map(pick).reduce(f32::max))
            });
            let (severity, severity_source) = severity_of(&v, cvss);
            // Only web links are kept: a report could carry `javascript:` URLs for the pages.
            let mut links = Vec::new();
            if super::is_web_link(&v.primary_url) {
                links.push(v.primary_url.clone());
            }
            for l in v.references.unwrap_or_default() {
                if super::is_web_link(&l) && !links.contains(&l) && links.len() < 20 {
                    links.push(l);
                }
            }
            let fixed = v.fixed_version.trim().to_string();
            findings.push(Finding {
                id: v.vulnerability_id.trim().to_string(),
                package: v.pkg_name,
                installed: v.installed_version,
                fixable: !fixed.is_empty(),
                fixed,
                severity,
                severity_source,
                cvss,
                title: v.title,
                description: v.description,
                links,
                scanner: scanner.into(),
                target: if v.pkg_path.is_empty() {
                    result.target.clone()
                } else {
                    v.pkg_path
                },
                status: v.status,
            });
        }
    }
    Ok((meta, findings))
}

/// The finding's severity and where it came from. A report that says UNKNOWN but carries a
/// CVSS score is rated by the score's band rather than left unknown.
fn severity_of(v: &Vuln, cvss: Option<f32>) -> (Severity, String) {
    let said = Severity::parse(&v.severity);
    let from = |what: String| {
        if v.severity_source.trim().is_empty() {
            what
        } else {
            format!("{}: {what}", v.severity_source.trim())
        }
    };
    match (said, cvss) {
        (Severity::Unknown, Some(score)) if score > 0.0 => {
            let band = match score {
                s if s >= 9.0 => Severity::Critical,
                s if s >= 7.0 => Severity::High,
                s if s >= 4.0 => Severity::Medium,
                _ => Severity::Low,
            };
            (
                band,
                format!("CVSS score {score:.1} (reported {})", v.severity),
            )
        }
        (Severity::Unknown, _) if v.severity.trim().is_empty() => {
            (said, from("no severity reported".into()))
        }
        _ if v.severity_source.contains(':') => (said, v.severity_source.clone()),
        _ => (said, from(format!("reported {}", v.severity.trim()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_real_report() {
        let bytes = include_bytes!("../../tests/fixtures/trivy/alpine-310.trivy.json");
        let (meta, findings) = parse(bytes).unwrap();
        assert!(meta.os.starts_with("alpine"), "{meta:?}");
        assert!(!findings.is_empty());
        assert!(findings
            .iter()
            .all(|f| f.scanner == "trivy" && !f.id.is_empty()));
        assert!(findings.iter().any(|f| f.fixable && !f.fixed.is_empty()));
    }

    #[test]
    fn unknown_severities_and_bad_reports() {
        let r = br#"{"SchemaVersion":2,"Results":[{"Target":"x","Vulnerabilities":[
            {"VulnerabilityID":"CVE-1","PkgName":"p","InstalledVersion":"1","Severity":"SEVERE"},
            {"VulnerabilityID":"CVE-2","PkgName":"p","InstalledVersion":"1","FixedVersion":"2","Severity":"high"}]},
            {"Target":"y","Vulnerabilities":null}]}"#;
        let (_, f) = parse(r).unwrap();
        assert_eq!(f[0].severity, Severity::Unknown);
        assert_eq!(f[0].severity_source, "reported SEVERE");
        assert!(!f[0].fixable);
        assert_eq!(f[1].severity, Severity::High);
        assert!(f[1].fixable);
        // UNKNOWN beside a CVSS score is rated by the score; a source is named.
        let r = br#"{"SchemaVersion":2,"Results":[{"Target":"x","Vulnerabilities":[
            {"VulnerabilityID":"CVE-3","PkgName":"p","InstalledVersion":"1","Severity":"UNKNOWN","CVSS":{"nvd":{"V3Score":9.8}}},
            {"VulnerabilityID":"CVE-4","PkgName":"p","InstalledVersion":"1","Severity":"MEDIUM","SeveritySource":"debian"},
            {"VulnerabilityID":"CVE-5","PkgName":"p","InstalledVersion":"1"}]}]}"#;
        let (_, f) = parse(r).unwrap();
        assert_eq!(f[0].severity, Severity::Critical);
        assert_eq!(f[0].severity_source, "CVSS score 9.8 (reported UNKNOWN)");
        assert_eq!(f[1].severity_source, "debian: reported MEDIUM");
        assert_eq!(f[2].severity, Severity::Unknown);
        assert_eq!(f[2].severity_source, "no severity reported");
        assert!(matches!(
            parse(br#"{"SchemaVersion":1}"#),
            Err(TrivyError::Schema(1))
        ));
        assert!(matches!(
            parse(br#"{"Results":[]}"#),
            Err(TrivyError::NoSchema)
        ));
        assert!(matches!(parse(b"{not json"), Err(TrivyError::Json(_))));
        assert!(matches!(
            parse(br#"{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"PkgName":1}]}]}"#),
            Err(TrivyError::Json(_))
        ));
    }
}
