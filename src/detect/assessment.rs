//! What a set of findings adds up to: the combinations that make data more sensitive than any
//! one type alone.

use super::*;

/// What a set of findings in one object (a document, a request) amounts to: the highest
/// sensitivity after combination rules, and the rules that fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assessment {
    pub sensitivity: Option<Sensitivity>,
    pub combinations: Vec<&'static str>,
}

/// Combination escalation (Soveren-like): card data stored with its CVV or expiry, a live
/// cloud credential pair, a person with contact or identity data.
pub fn assess(findings: &[Finding]) -> Assessment {
    let has = |id: &str| findings.iter().any(|f| f.kind == id);
    let mut combinations = Vec::new();
    if has("pci.pan") && (has("pci.cvv") || has("pci.expiry")) {
        combinations.push("pci.card_with_security_data");
    }
    if has("sec.aws_akid") && has("sec.aws_secret") {
        combinations.push("sec.live_credential_pair");
    }
    let person = has("pii.person");
    let contact = has("pii.email") || has("pii.phone");
    if person && (has("pii.dob") || has("id.us_ssn") || has("id.passport")) {
        combinations.push("pii.identity_profile");
    } else if person && contact {
        combinations.push("pii.contact_profile");
    }
    let mut sensitivity = findings.iter().map(|f| f.sensitivity).max();
    if !combinations.is_empty() {
        sensitivity = Some(Sensitivity::High);
    }
    Assessment {
        sensitivity,
        combinations,
    }
}
