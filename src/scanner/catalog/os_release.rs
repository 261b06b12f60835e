//! `/etc/os-release` (os-release(5)): which distribution, and its OSV ecosystem.

use std::collections::HashMap;

use serde::Serialize;

/// The operating system of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Os {
    /// `ID`, e.g. `debian`, `alpine`.
    pub id: String,
    /// `VERSION_ID`, e.g. `12`, `3.19.1`.
    pub version_id: String,
    pub pretty_name: String,
}

/// Parses os-release: `KEY=value` lines, values optionally quoted, `#` comments.
pub fn parse(text: &str) -> Option<Os> {
    let mut kv = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
            .unwrap_or(v);
        kv.insert(
            k.trim().to_string(),
            v.replace("\\\"", "\"").replace("\\\\", "\\"),
        );
    }
    let id = kv.get("ID")?.to_ascii_lowercase();
    Some(Os {
        id,
        version_id: kv.get("VERSION_ID").cloned().unwrap_or_default(),
        pretty_name: kv.get("PRETTY_NAME").cloned().unwrap_or_default(),
    })
}

impl Os {
    /// The family name Trivy reports (`Metadata.OS.Family`, a result's `Type`, the purl
    /// namespace), which is not always the os-release `ID`.
    pub fn family(&self) -> &str {
        match self.id.as_str() {
            "rhel" => "redhat",
            "mariner" => "cbl-mariner",
            "almalinux" => "alma",
            "amzn" => "amazon",
            "ol" => "oracle",
            "opensuse-leap" => "opensuse.leap",
            other => other,
        }
    }

    /// The OSV ecosystems its packages' advisories are filed under. One for most distributions;
    /// Red Hat files by product stream, and an image does not say which streams its packages
    /// came from, so RHEL looks in BaseOS and AppStream of its major release.
    pub fn ecosystems(&self) -> Vec<String> {
        if self.id == "rhel" {
            let major = self.version_id.split('.').next().unwrap_or_default();
            return ["baseos", "appstream"]
                .iter()
                .map(|s| format!("Red Hat:enterprise_linux:{major}::{s}"))
                .collect();
        }
        self.ecosystem().into_iter().collect()
    }

    /// The OSV ecosystem name of its packages: `Debian:12`, `Alpine:v3.19`, `Ubuntu:22.04`, ...
    pub fn ecosystem(&self) -> Option<String> {
        let major = self.version_id.split('.').next().unwrap_or_default();
        Some(match self.id.as_str() {
            "debian" => format!("Debian:{major}"),
            "ubuntu" => format!("Ubuntu:{}", self.version_id),
            "alpine" => {
                let mut parts = self.version_id.split('.');
                format!("Alpine:v{}.{}", parts.next()?, parts.next()?)
            }
            "wolfi" => "Wolfi".into(),
            "chainguard" => "Chainguard".into(),
            "rhel" => format!("Red Hat:enterprise_linux:{major}::baseos"),
            "rocky" => format!("Rocky Linux:{major}"),
            "almalinux" => format!("AlmaLinux:{major}"),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_and_ecosystems() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";
        let os = parse(debian).unwrap();
        assert_eq!(
            (os.id.as_str(), os.ecosystem().as_deref()),
            ("debian", Some("Debian:12"))
        );
        let alpine = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n";
        assert_eq!(
            parse(alpine).unwrap().ecosystem().as_deref(),
            Some("Alpine:v3.19")
        );
        let ubuntu = "# comment\nID='ubuntu'\nVERSION_ID='22.04'\n";
        assert_eq!(
            parse(ubuntu).unwrap().ecosystem().as_deref(),
            Some("Ubuntu:22.04")
        );
        assert!(parse("NAME=nothing useful\n").is_none());
        assert_eq!(parse("ID=plan9\n").unwrap().ecosystem(), None);
        let rhel = parse("ID=\"rhel\"\nVERSION_ID=\"9.4\"\n").unwrap();
        assert_eq!(
            rhel.ecosystems(),
            vec![
                "Red Hat:enterprise_linux:9::baseos".to_string(),
                "Red Hat:enterprise_linux:9::appstream".into()
            ]
        );
        assert_eq!(rhel.family(), "redhat");
    }
}
