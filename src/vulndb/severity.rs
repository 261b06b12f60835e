//! What a feed's severity field means, and where a severity came from.
//!
//! Feeds publish severity three ways: a label (`CRITICAL`, Debian's urgency `high`), a CVSS
//! vector (`CVSS:3.1/AV:N/...`, often the only thing an OSV record has) or a bare score. A
//! vector is scored with the CVSS base-score formulas of its version (2.0, 3.0, 3.1, 4.0) and
//! rated by the specification's bands. Some feeds publish nothing (Alpine's secdb); their
//! advisories take a rating another feed gives the same CVE (see `db::VulnDb::rating_of`).

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::images::Severity;

/// How a published severity was read, best first: a feed's own label beats a computed score,
/// a CVSS v3/v4 score beats a v2 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    Label,
    Cvss,
    CvssV2,
    Score,
}

/// A severity a feed gives an advisory, and how it was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    pub severity: Severity,
    pub basis: Basis,
    /// What was read, for people: `label HIGH`, `CVSS:3.1 base 9.8`.
    pub how: String,
}

/// Reads what a feed published; `None` when it says nothing usable (empty, `unknown`, a label
/// nobody defines, a vector that does not parse).
pub fn rate(published: &str) -> Option<Rating> {
    let p = published.trim();
    if p.is_empty() {
        return None;
    }
    if let Ok(score) = p.parse::<f64>() {
        return by_score(score).map(|severity| Rating {
            severity,
            basis: Basis::Score,
            how: format!("score {score:.1}"),
        });
    }
    if p.contains(':') && p.contains('/') {
        let cvss = cvss::Cvss::from_str(p).ok()?;
        let score = cvss.score();
        let (version, basis) = match cvss {
            cvss::Cvss::CvssV20(_) => ("CVSS:2.0", Basis::CvssV2),
            cvss::Cvss::CvssV30(_) => ("CVSS:3.0", Basis::Cvss),
            cvss::Cvss::CvssV31(_) => ("CVSS:3.1", Basis::Cvss),
            cvss::Cvss::CvssV40(_) => ("CVSS:4.0", Basis::Cvss),
            _ => ("CVSS", Basis::Cvss),
        };
        return by_score(score).map(|severity| Rating {
            severity,
            basis,
            how: format!("{version} base {score:.1}"),
        });
    }
    let severity = match p.to_ascii_lowercase().as_str() {
        "critical" => Severity::Critical,
        "high" | "important" => Severity::High,
        "medium" | "moderate" => Severity::Medium,
        // Debian's urgencies: `unimportant` issues are real but minor.
        "low" | "unimportant" => Severity::Low,
        "negligible" => Severity::Negligible,
        _ => return None,
    };
    Some(Rating {
        severity,
        basis: Basis::Label,
        how: format!("label {p}"),
    })
}

/// The qualitative band of a base score (0.1–3.9 low, 4.0–6.9 medium, 7.0–8.9 high, 9.0–10
/// critical); 0.0 rates nothing.
fn by_score(score: f64) -> Option<Severity> {
    Some(match score {
        s if s >= 9.0 => Severity::Critical,
        s if s >= 7.0 => Severity::High,
        s if s >= 4.0 => Severity::Medium,
        s if s > 0.0 => Severity::Low,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_scored_by_their_version() {
        let r = rate("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").unwrap();
        assert_eq!((r.severity, r.basis), (Severity::Critical, Basis::Cvss));
        assert_eq!(r.how, "CVSS:3.1 base 9.8");
        // The example of the CVSS 3.1 calculator: 6.1, medium.
        let r = rate("CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N").unwrap();
        assert_eq!(
            (r.severity, r.how.as_str()),
            (Severity::Medium, "CVSS:3.0 base 6.1")
        );
        let r = rate("AV:N/AC:L/Au:N/C:P/I:P/A:P").unwrap();
        assert_eq!((r.severity, r.basis), (Severity::High, Basis::CvssV2));
        assert_eq!(r.how, "CVSS:2.0 base 7.5");
        let r = rate("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N").unwrap();
        assert_eq!(
            (r.severity, r.how.as_str()),
            (Severity::Critical, "CVSS:4.0 base 9.3")
        );
        // No impact at all scores 0.0: not a rating.
        assert!(rate("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N").is_none());
    }

    #[test]
    fn labels_and_scores_are_read_and_nonsense_is_not() {
        assert_eq!(rate("HIGH").unwrap().severity, Severity::High);
        assert_eq!(rate(" moderate ").unwrap().severity, Severity::Medium);
        assert_eq!(rate("unimportant").unwrap().severity, Severity::Low);
        assert_eq!(rate("9.1").unwrap().severity, Severity::Critical);
        for nothing in [
            "",
            "unknown",
            "not yet assigned",
            "CVSS:3.1/AV:Q",
            "CVSS:9.9/x:y",
        ] {
            assert!(rate(nothing).is_none(), "{nothing}");
        }
    }
}
