//! Policies and exceptions: what they are, how they are stored, how they are validated.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::pattern::ImagePattern;
use crate::images::Severity;
use crate::store::{Migration, StoreError, Table, WriteTx};

/// Maximum number of findings of each severity a scanner rule allows; `None` = no limit.
/// A count equal to the maximum is compliant ("at most N"). Unknown severities count as
/// negligible.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub critical: Option<u32>,
    pub high: Option<u32>,
    pub medium: Option<u32>,
    pub low: Option<u32>,
    pub negligible: Option<u32>,
}

impl Limits {
    /// The limit for `s`.
    pub fn of(&self, s: Severity) -> Option<u32> {
        match s {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
            Severity::Negligible | Severity::Unknown => self.negligible,
        }
    }
}

/// What a policy demands of one scanner's findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannerRule {
    /// Scanner name as findings carry it, e.g. `trivy`.
    pub scanner: String,
    /// Disabled rules are skipped.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A violation of a non-required rule is reported, not enforced.
    #[serde(default = "yes")]
    pub required: bool,
    /// Limits on findings that have a fix.
    #[serde(default)]
    pub fixable: Limits,
    /// Limits on findings without a fix.
    #[serde(default)]
    pub unfixable: Limits,
}

fn yes() -> bool {
    true
}

/// A compliance policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Inactive policies are ignored.
    pub active: bool,
    /// A non-required policy is advisory: its violations are reported but do not make an image
    /// non-compliant.
    pub required: bool,
    /// Clusters it applies to; `None` = all.
    #[serde(default)]
    pub clusters: Option<Vec<u64>>,
    #[serde(default)]
    pub scanners: Vec<ScannerRule>,
    /// Days of temporary exception for newly found violations (0 = none).
    #[serde(default)]
    pub grace_period_days: u32,
    /// Rescan running images this often (0 = never).
    #[serde(default)]
    pub rescan_period_days: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Policy {
    /// Whether it applies to `cluster`.
    pub fn applies_to(&self, cluster: u64) -> bool {
        self.active && self.clusters.as_ref().is_none_or(|c| c.contains(&cluster))
    }
}

/// What an exception does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ExceptionKind {
    /// Excuses findings from policy limits.
    #[default]
    Policy,
    /// Replaces findings' severity with `alternate_severity`.
    Override,
    /// Excuses Gatekeeper constraint violations (used by cluster audits).
    Gatekeeper,
}

/// Lifecycle of an exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ExceptionStatus {
    #[default]
    Active,
    /// Requested, waiting for an admin.
    #[serde(alias = "review")]
    InReview,
    Inactive,
}

impl ExceptionStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionStatus::Active => "active",
            ExceptionStatus::InReview => "in-review",
            ExceptionStatus::Inactive => "inactive",
        }
    }
}

/// A comment on an exception.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    pub author: String,
    pub at: DateTime<Utc>,
    pub text: String,
}

/// An exception.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exception {
    pub id: u64,
    pub title: String,
    #[serde(default)]
    pub reason: String,
    #[serde(rename = "type")]
    pub kind: ExceptionKind,
    pub status: ExceptionStatus,
    /// First day it applies (UTC); `None` = already.
    #[serde(default)]
    pub start_date: Option<NaiveDate>,
    /// First day it no longer applies (exclusive); `None` = never ends.
    #[serde(default)]
    pub end_date: Option<NaiveDate>,
    /// `None` = all clusters.
    #[serde(default)]
    pub clusters: Option<Vec<u64>>,
    /// `None` = all policies.
    #[serde(default)]
    pub policies: Option<Vec<u64>>,
    /// `None` = all namespaces.
    #[serde(default)]
    pub namespaces: Option<Vec<String>>,
    /// `None` = all scanners.
    #[serde(default)]
    pub scanner: Option<String>,
    /// Vulnerability id (or constraint name for gatekeeper); empty = every issue.
    #[serde(default)]
    pub issue_id: String,
    /// For gatekeeper: the constraint template (its kind or name); empty = every template.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub constraint_template: String,
    /// Which images (see [`ImagePattern`]); empty = all.
    #[serde(default = "ImagePattern::any")]
    pub image_match: ImagePattern,
    /// For overrides: the severity findings get instead.
    #[serde(default)]
    pub alternate_severity: Option<Severity>,
    /// Created automatically for a policy's grace period.
    #[serde(default)]
    pub temporary: bool,
    #[serde(default)]
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub comments: Vec<Comment>,
    /// The "expires tomorrow" mail went out.
    #[serde(default)]
    pub expiry_notified: bool,
}

impl Exception {
    /// Whether it is in effect on `today` (active, started, not ended).
    pub fn in_effect(&self, today: NaiveDate) -> bool {
        self.status == ExceptionStatus::Active
            && self.start_date.is_none_or(|s| s <= today)
            && self.end_date.is_none_or(|e| today < e)
    }

    /// Whether it covers this cluster, namespace and image. Without a namespace (scan time) only
    /// exceptions for all namespaces count, so a namespace-scoped exception never excuses an image
    /// everywhere.
    pub fn covers(&self, cluster: u64, namespace: Option<&str>, image_name: &str) -> bool {
        self.clusters.as_ref().is_none_or(|c| c.contains(&cluster))
            && match (&self.namespaces, namespace) {
                (None, _) => true,
                (Some(list), Some(ns)) => list.iter().any(|n| n == ns),
                (Some(_), None) => false,
            }
            && self.image_match.matches(image_name)
    }

    /// Whether it covers policy `policy`.
    pub fn for_policy(&self, policy: u64) -> bool {
        self.policies.as_ref().is_none_or(|p| p.contains(&policy))
    }

    /// Whether it covers a finding `id` of `scanner`.
    pub fn for_issue(&self, scanner: &str, id: &str) -> bool {
        self.scanner
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case(scanner))
            && (self.issue_id.is_empty() || self.issue_id.trim().eq_ignore_ascii_case(id.trim()))
    }
}

pub(crate) const POLICIES: Table<u64, Policy> = Table::new("compliance_policies");
pub(crate) const EXCEPTIONS: Table<u64, Exception> = Table::new("compliance_exceptions");

/// The tables whose changes the admission index follows.
pub fn tables() -> [&'static str; 2] {
    [POLICIES.name(), EXCEPTIONS.name()]
}

const DEFAULT_POLICY_DESCRIPTION: &str = "Blocks images with critical or high vulnerabilities \
     that have a fix. A finding no feed rates (UNKNOWN) counts as negligible, which this policy \
     does not limit.";

/// The policy a new install starts with: fixable critical and high findings block.
pub fn default_policy(id: u64) -> Policy {
    let now = Utc::now();
    Policy {
        id,
        name: "No fixable critical or high".into(),
        description: DEFAULT_POLICY_DESCRIPTION.into(),
        active: true,
        required: true,
        clusters: None,
        // The same rule for Trivy uploads and for Bulwark's own scanner.
        scanners: ["trivy", "bulwark"]
            .into_iter()
            .map(|scanner| ScannerRule {
                scanner: scanner.into(),
                enabled: true,
                required: true,
                fixable: Limits {
                    critical: Some(0),
                    high: Some(0),
                    ..Limits::default()
                },
                unfixable: Limits::default(),
            })
            .collect(),
        grace_period_days: 0,
        rescan_period_days: 7,
        created_at: now,
        updated_at: now,
    }
}

fn seed_default_policy(w: &WriteTx) -> Result<(), StoreError> {
    if w.all(&POLICIES)?.is_empty() {
        let id = w.next_id("policies")?;
        w.put(&POLICIES, &id, &default_policy(id))?;
    }
    Ok(())
}

/// Bulwark's native scanner files its findings as scanner `bulwark`. Policies written before it
/// judged Trivy's findings only; each gets a `bulwark` rule copied from its `trivy` rule, so a
/// native scan is held to the same limits. (A rule only counts its own scanner's findings, so
/// images scanned by Trivy alone are judged exactly as before.)
fn add_bulwark_rules(w: &WriteTx) -> Result<(), StoreError> {
    for (id, mut p) in w.all(&POLICIES)? {
        let has = |name: &str| {
            p.scanners
                .iter()
                .any(|r| r.scanner.eq_ignore_ascii_case(name))
        };
        if has("bulwark") {
            continue;
        }
        let Some(trivy) = p
            .scanners
            .iter()
            .find(|r| r.scanner.eq_ignore_ascii_case("trivy"))
            .cloned()
        else {
            continue;
        };
        p.scanners.push(ScannerRule {
            scanner: "bulwark".into(),
            ..trivy
        });
        w.put(&POLICIES, &id, &p)?;
    }
    Ok(())
}

/// A policy form that showed only the Trivy rule dropped the `bulwark` rule on every save, so
/// the repair of migration 4 runs again over what it saved. The default policy, if its
/// description is still the one it was seeded with, now says what it does with UNKNOWN.
fn repair_policies(w: &WriteTx) -> Result<(), StoreError> {
    add_bulwark_rules(w)?;
    const SEEDED: &str = "Blocks images with critical or high vulnerabilities that have a fix.";
    for (id, mut p) in w.all(&POLICIES)? {
        if p.description == SEEDED {
            p.description = DEFAULT_POLICY_DESCRIPTION.into();
            w.put(&POLICIES, &id, &p)?;
        }
    }
    Ok(())
}

/// Schema migrations of this domain.
pub fn migrations() -> Vec<Migration> {
    vec![
        Migration {
            to: 3,
            name: "seed the default compliance policy",
            run: seed_default_policy,
        },
        Migration {
            to: 4,
            name: "policies judge the native scanner's findings like Trivy's",
            run: add_bulwark_rules,
        },
        Migration {
            to: 5,
            name: "policies saved from a Trivy-only form judge the native scanner again",
            run: repair_policies,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn migration_4_copies_trivy_rules_for_the_native_scanner() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &[]).unwrap();
        let mut custom = default_policy(7);
        custom.scanners.retain(|r| r.scanner == "trivy");
        custom.scanners[0].fixable.medium = Some(3);
        let mut other = default_policy(8);
        other.scanners = vec![];
        store
            .write(|w| {
                w.put(&POLICIES, &7, &custom)?;
                w.put(&POLICIES, &8, &other)?;
                add_bulwark_rules(w)?;
                // Twice changes nothing more.
                add_bulwark_rules(w)
            })
            .unwrap();
        let all = store.read(|r| r.all(&POLICIES)).unwrap();
        let p7 = &all.iter().find(|(id, _)| *id == 7).unwrap().1;
        assert_eq!(p7.scanners.len(), 2);
        assert_eq!(p7.scanners[1].scanner, "bulwark");
        assert_eq!(p7.scanners[1].fixable, p7.scanners[0].fixable);
        let p8 = &all.iter().find(|(id, _)| *id == 8).unwrap().1;
        assert!(p8.scanners.is_empty(), "no trivy rule, nothing to copy");
    }

    #[test]
    fn migration_5_repairs_form_saved_policies_and_describes_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &[]).unwrap();
        let mut saved = default_policy(1);
        saved.scanners.retain(|r| r.scanner == "trivy");
        saved.description =
            "Blocks images with critical or high vulnerabilities that have a fix.".into();
        let mut own = default_policy(2);
        own.description = "Ours.".into();
        store
            .write(|w| {
                w.put(&POLICIES, &1, &saved)?;
                w.put(&POLICIES, &2, &own)?;
                repair_policies(w)
            })
            .unwrap();
        let all = store.read(|r| r.all(&POLICIES)).unwrap();
        assert_eq!(all[0].1.scanners.len(), 2, "the bulwark rule is back");
        assert!(all[0].1.description.contains("UNKNOWN"));
        assert_eq!(
            all[1].1.description, "Ours.",
            "an edited description is left alone"
        );
    }
}
