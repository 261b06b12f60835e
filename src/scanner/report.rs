//! Scan results and their Trivy-compatible JSON (SchemaVersion 2: `Results[].Vulnerabilities[]`
//! with `VulnerabilityID`, `PkgName`, `InstalledVersion`, `FixedVersion`, `Severity`, and
//! `Results[].Packages[]`), so tools that read Trivy JSON, Bulwark's own ingest included, read it.

use serde::Serialize;
use serde_json::{json, Value};

use super::catalog::lang::{LangPackage, Source};
use super::catalog::os_release::Os;
use super::catalog::Package;

/// One vulnerable package.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Vuln {
    /// The CVE when the advisory has one, else the advisory id.
    pub id: String,
    pub advisory: String,
    pub package: String,
    pub installed: String,
    pub fixed: Option<String>,
    /// `CRITICAL`, `HIGH`, `MEDIUM`, `LOW` or `UNKNOWN`.
    pub severity: Severity,
    /// Where the severity came from (feed, advisory and how it was read).
    pub severity_source: String,
    pub title: String,
    /// The kind of file a language package came from, or `None` for OS packages.
    #[serde(skip)]
    pub source: Option<Source>,
    /// Where a language package was declared.
    pub path: Option<String>,
}

/// A scan.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub artifact: String,
    pub os: Option<Os>,
    pub packages: Vec<Package>,
    pub lang_packages: Vec<LangPackage>,
    pub vulns: Vec<Vuln>,
    /// Records catalogers could not read.
    pub skipped: Vec<String>,
    /// Config digest, for images read from an archive, layout or registry.
    pub image_id: Option<String>,
    /// `repository@sha256:…`, for images pulled from a registry.
    pub repo_digests: Vec<String>,
}

/// Trivy's severities in rising order (so `--fail-on` compares them directly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "UPPERCASE")]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// As Trivy spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "UNKNOWN",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// A severity, in ANSI color for a terminal.
fn paint(s: Severity, color: bool) -> String {
    if !color {
        return s.as_str().to_string();
    }
    let code = match s {
        Severity::Critical => "1;31",
        Severity::High => "31",
        Severity::Medium => "33",
        Severity::Low => "34",
        Severity::Unknown => "2",
    };
    format!("\x1b[{code}m{}\x1b[0m", s.as_str())
}

/// Trivy's scale has no "negligible": it is its LOW.
impl From<crate::images::Severity> for Severity {
    fn from(s: crate::images::Severity) -> Severity {
        use crate::images::Severity as Rated;
        match s {
            Rated::Critical => Severity::Critical,
            Rated::High => Severity::High,
            Rated::Medium => Severity::Medium,
            Rated::Low | Rated::Negligible => Severity::Low,
            Rated::Unknown => Severity::Unknown,
        }
    }
}

impl Report {
    /// Keeps the findings of the given severities (all when empty), and only fixable ones with
    /// `ignore_unfixed` (Trivy's `--severity` and `--ignore-unfixed`).
    pub fn retain(&mut self, severities: &[Severity], ignore_unfixed: bool) {
        self.vulns.retain(|v| {
            (severities.is_empty() || severities.contains(&v.severity))
                && (!ignore_unfixed || v.fixed.is_some())
        });
    }

    /// Trivy-compatible JSON; `Packages` only with `list_all_packages` (as Trivy's flag).
    pub fn trivy_json(&self, list_all_packages: bool) -> Value {
        let family = self
            .os
            .as_ref()
            .map(|o| o.family().to_string())
            .unwrap_or_default();
        let name = self
            .os
            .as_ref()
            .map(|o| o.version_id.clone())
            .unwrap_or_default();
        // A result is the OS, or one (source, target) pair: installed packages of an ecosystem
        // share a target (`Python`), lock files and binaries get one each (their path).
        let target_of = |source: Source, path: &str| -> String {
            source
                .aggregate_target()
                .map(String::from)
                .unwrap_or_else(|| path.to_string())
        };
        // Package URLs as Trivy writes them (`PkgIdentifier.PURL`), so tools can key on them.
        let os_purl = |name_pkg: &str, version: &str, arch: &str| {
            super::cyclonedx::os_purl(&family, &name, name_pkg, version, arch)
        };
        let arch_of = |name: &str, version: &str| {
            self.packages
                .iter()
                .find(|p| p.name == name && p.version == version)
                .map(|p| p.arch.clone())
                .unwrap_or_default()
        };
        let vulns_of = |group: Option<(Source, &str)>| -> Vec<Value> {
            self.vulns
                .iter()
                .filter(|v| match (group, v.source) {
                    (None, None) => true,
                    (Some((s, t)), Some(vs)) => {
                        s == vs && target_of(vs, v.path.as_deref().unwrap_or("")) == t
                    }
                    _ => false,
                })
                .map(|v| {
                    let mut j = json!({
                        "VulnerabilityID": v.id, "PkgName": v.package, "InstalledVersion": v.installed,
                        "FixedVersion": v.fixed.clone().unwrap_or_default(), "Status": if v.fixed.is_some() { "fixed" } else { "affected" },
                        "Severity": v.severity, "SeveritySource": v.severity_source, "Title": v.title, "DataSource": {"ID": v.advisory}
                    });
                    if let Some(p) = &v.path {
                        j["PkgPath"] = json!(p);
                    }
                    j["PkgIdentifier"] = json!({"PURL": match v.source {
                        Some(s) => super::cyclonedx::lang_purl(s, &v.package, &v.installed),
                        None => os_purl(&v.package, &v.installed, &arch_of(&v.package, &v.installed)),
                    }});
                    j
                })
                .collect()
        };
        let vulns = vulns_of(None);
        let mut result = json!({
            "Target": format!("{} ({} {})", self.artifact, family, name),
            "Class": "os-pkgs",
            "Type": family,
            "Vulnerabilities": vulns,
        });
        if list_all_packages {
            result["Packages"] = Value::Array(
                self.packages
                    .iter()
                    .map(|p| {
                        json!({"Name": p.name, "Identifier": {"PURL": os_purl(&p.name, &p.version, &p.arch)}, "Version": p.version, "Arch": p.arch, "SrcName": p.source.clone().unwrap_or_else(|| p.name.clone()), "Licenses": p.licenses})
                    })
                    .collect(),
            );
        }
        let mut results = vec![result];
        let mut groups: std::collections::BTreeMap<(Source, String), Vec<&LangPackage>> =
            Default::default();
        for p in &self.lang_packages {
            groups
                .entry((p.source, target_of(p.source, &p.path)))
                .or_default()
                .push(p);
        }
        for ((source, target), pkgs) in groups {
            let mut r = json!({
                "Target": target,
                "Class": "lang-pkgs",
                "Type": source.trivy_type(),
                "Vulnerabilities": vulns_of(Some((source, &target))),
            });
            if list_all_packages {
                r["Packages"] = pkgs
                    .iter()
                    .map(|p| json!({"Name": p.name, "Identifier": {"PURL": super::cyclonedx::lang_purl(p.source, &p.name, &p.version)}, "Version": p.version, "FilePath": p.path}))
                    .collect();
            }
            results.push(r);
        }
        json!({
            "SchemaVersion": 2,
            "ArtifactName": self.artifact,
            "ArtifactType": "filesystem",
            // Trivy writes {"Trivy": {"Version"}} here; the appliance's ingest records findings
            // from a report marked like this as the `bulwark` scanner's.
            "Bulwark": {"Version": env!("CARGO_PKG_VERSION")},
            "Metadata": {"OS": {"Family": family, "Name": name}, "ImageID": self.image_id, "RepoDigests": self.repo_digests},
            "Results": results,
        })
    }

    /// A plain table for people; severities in color when `color` (a terminal).
    pub fn table(&self, color: bool) -> String {
        let mut out = format!(
            "{} ({}): {} packages, {} vulnerabilities\n",
            self.artifact,
            self.os
                .as_ref()
                .map(|o| o.pretty_name.as_str())
                .unwrap_or("unknown OS"),
            self.packages.len() + self.lang_packages.len(),
            self.vulns.len()
        );
        if !self.vulns.is_empty() {
            out.push_str(&format!(
                "{:<20} {:<24} {:<20} {:<20} {}\n",
                "VULNERABILITY", "PACKAGE", "INSTALLED", "FIXED", "SEVERITY"
            ));
            for v in &self.vulns {
                out.push_str(&format!(
                    "{:<20} {:<24} {:<20} {:<20} {}\n",
                    v.id,
                    v.package,
                    v.installed,
                    v.fixed.as_deref().unwrap_or("-"),
                    paint(v.severity, color)
                ));
            }
        }
        out
    }
}
