//! The compliance function: the single source of truth for whether an image may run.
//!
//! Input: the image's findings (or that it is unscanned or its scan failed), the cluster and
//! namespace it is for, the policies and the exceptions, and today's date. Output: a verdict with a
//! reason for every finding each policy looked at. Pure: no I/O, no clock, no storage, so the same
//! function serves scan ingest, admission and the UI, and the unit table below pins it down.
//!
//! Rules:
//! 1. Policies that are inactive or scoped to other clusters are ignored. No policy → compliant.
//! 2. Unscanned → non-compliant ("not scanned"); a failed scan → non-compliant; unless a blanket
//!    exception (policy type, every policy, every scanner, every issue) covers the image here, as
//!    the usual "leave kube-system alone" exception does.
//! 3. Exceptions count only if in effect today (active, start ≤ today < end), and they cover the
//!    cluster, the namespace (without a namespace only all-namespace exceptions count), the image
//!    (anchored `image_match`), the policy, the scanner and the issue (empty = every issue).
//! 4. Per policy, per enabled scanner rule: an `override` exception changes a finding's severity
//!    (the lowest exception id wins); a `policy` exception excuses it; the remaining findings
//!    are counted by severity and fixability, and where a count is above the rule's maximum, every
//!    finding in that group violates the policy.
//! 5. A violation makes the image non-compliant only if both the policy and the scanner rule are
//!    required; otherwise it is advisory (reported, not enforced).

use chrono::NaiveDate;
use serde::Serialize;

use super::model::{Exception, ExceptionKind, Policy};
use crate::images::{Facts, Severity};

/// Where the evaluation happens.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub cluster: u64,
    /// The namespace for admission; `None` at scan time.
    pub namespace: Option<&'a str>,
    /// `registry/repository`.
    pub image_name: &'a str,
    pub today: NaiveDate,
}

/// What is known of the image's scan.
#[derive(Debug, Clone, Copy)]
pub enum ScanInput<'a> {
    NotScanned,
    Failed(&'a str),
    Scanned(&'a [Facts]),
}

/// How one policy judged one finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judgement {
    pub policy_id: u64,
    /// Severity after overrides.
    pub severity: Severity,
    /// The override that changed the severity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overridden_by: Option<u64>,
    /// The exception that excused the finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excepted_by: Option<u64>,
    /// Why it violates the policy, if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violation: Option<String>,
    /// The violation is reported but not enforced.
    pub advisory: bool,
}

/// A policy's overall judgement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyResult {
    pub policy_id: u64,
    pub name: String,
    pub required: bool,
    pub compliant: bool,
    pub reasons: Vec<String>,
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub compliant: bool,
    /// Human-readable reasons, enforced ones first.
    pub reasons: Vec<String>,
    pub policies: Vec<PolicyResult>,
    /// Per finding (same order as the input), how each policy judged it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Vec<Judgement>>,
}

/// Decides. See the module documentation for the rules.
pub fn evaluate(
    ctx: &Context<'_>,
    scan: ScanInput<'_>,
    policies: &[&Policy],
    exceptions: &[&Exception],
) -> Verdict {
    let applicable: Vec<&Policy> = policies
        .iter()
        .copied()
        .filter(|p| p.applies_to(ctx.cluster))
        .collect();
    if applicable.is_empty() {
        return Verdict {
            compliant: true,
            reasons: vec!["no active policy applies to this cluster".into()],
            policies: vec![],
            findings: vec![],
        };
    }
    // Exceptions that can matter here at all; per-finding checks then only look at these.
    let relevant: Vec<&Exception> = exceptions
        .iter()
        .copied()
        .filter(|e| e.kind != ExceptionKind::Gatekeeper)
        .filter(|e| e.in_effect(ctx.today) && e.covers(ctx.cluster, ctx.namespace, ctx.image_name))
        .collect();
    let facts = match scan {
        ScanInput::Scanned(f) => f,
        ScanInput::NotScanned | ScanInput::Failed(_) => {
            let why = match scan {
                ScanInput::Failed(m) => format!("the last scan failed: {m}"),
                _ => "the image has not been scanned".to_string(),
            };
            let blanket = relevant
                .iter()
                .filter(|e| {
                    e.kind == ExceptionKind::Policy
                        && e.policies.is_none()
                        && e.scanner.is_none()
                        && e.issue_id.is_empty()
                })
                .min_by_key(|e| e.id);
            return match blanket {
                Some(e) => Verdict {
                    compliant: true,
                    reasons: vec![format!(
                        "{why}, but exception \"{}\" (id {}) covers it",
                        e.title, e.id
                    )],
                    policies: vec![],
                    findings: vec![],
                },
                None => whole_image_failure(&applicable, &why),
            };
        }
    };
    let mut findings: Vec<Vec<Judgement>> = vec![Vec::new(); facts.len()];
    let mut results = Vec::new();
    for policy in &applicable {
        let mut reasons = Vec::new();
        let mut enforced_violation = false;
        for rule in policy.scanners.iter().filter(|r| r.enabled) {
            let advisory = !(policy.required && rule.required);
            // (fixable, severity bucket) -> indexes of counted findings
            let mut groups: std::collections::BTreeMap<(bool, Severity), Vec<usize>> =
                Default::default();
            for (i, f) in facts.iter().enumerate() {
                if !f.scanner.eq_ignore_ascii_case(&rule.scanner) {
                    continue;
                }
                let for_this = |kind: ExceptionKind| {
                    relevant
                        .iter()
                        .filter(move |e| {
                            e.kind == kind
                                && e.for_policy(policy.id)
                                && e.for_issue(&f.scanner, &f.id)
                        })
                        .min_by_key(|e| e.id)
                };
                let (severity, overridden_by) = match for_this(ExceptionKind::Override) {
                    Some(o) => (o.alternate_severity.unwrap_or(f.severity), Some(o.id)),
                    None => (f.severity, None),
                };
                let excepted_by = for_this(ExceptionKind::Policy).map(|e| e.id);
                if excepted_by.is_none() {
                    let bucket = if severity == Severity::Unknown {
                        Severity::Negligible
                    } else {
                        severity
                    };
                    groups.entry((f.fixable, bucket)).or_default().push(i);
                }
                findings[i].push(Judgement {
                    policy_id: policy.id,
                    severity,
                    overridden_by,
                    excepted_by,
                    violation: None,
                    advisory,
                });
            }
            for ((fixable, severity), members) in groups {
                let limits = if fixable {
                    &rule.fixable
                } else {
                    &rule.unfixable
                };
                let Some(max) = limits.of(severity) else {
                    continue;
                };
                let count = members.len() as u32;
                if count <= max {
                    continue;
                }
                let reason = format!(
                    "{count} {} {} finding{} from {}, more than the {max} policy \"{}\" allows{}",
                    if fixable { "fixable" } else { "unfixable" },
                    severity.as_str(),
                    if count == 1 { "" } else { "s" },
                    rule.scanner,
                    policy.name,
                    if advisory { " (advisory)" } else { "" }
                );
                for i in members {
                    if let Some(j) = findings[i]
                        .iter_mut()
                        .rev()
                        .find(|j| j.policy_id == policy.id)
                    {
                        j.violation = Some(reason.clone());
                    }
                }
                enforced_violation |= !advisory;
                reasons.push(reason);
            }
        }
        results.push(PolicyResult {
            policy_id: policy.id,
            name: policy.name.clone(),
            required: policy.required,
            compliant: !enforced_violation,
            reasons,
        });
    }
    let compliant = results.iter().all(|r| r.compliant);
    let mut reasons: Vec<String> = results
        .iter()
        .filter(|r| !r.compliant)
        .flat_map(|r| r.reasons.clone())
        .collect();
    reasons.extend(
        results
            .iter()
            .filter(|r| r.compliant)
            .flat_map(|r| r.reasons.clone()),
    );
    if reasons.is_empty() {
        reasons.push(format!(
            "complies with {} polic{}",
            results.len(),
            if results.len() == 1 { "y" } else { "ies" }
        ));
    }
    Verdict {
        compliant,
        reasons,
        policies: results,
        findings,
    }
}

fn whole_image_failure(applicable: &[&Policy], reason: &str) -> Verdict {
    let enforced = applicable.iter().any(|p| p.required);
    Verdict {
        compliant: !enforced,
        reasons: vec![reason.to_string()],
        policies: applicable
            .iter()
            .map(|p| PolicyResult {
                policy_id: p.id,
                name: p.name.clone(),
                required: p.required,
                compliant: !p.required,
                reasons: vec![reason.to_string()],
            })
            .collect(),
        findings: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::model::{default_policy, ExceptionStatus, Limits, ScannerRule};
    use crate::compliance::pattern::ImagePattern;

    const IMAGE: &str = "registry.local/team/app";

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 6, 15).unwrap()
    }

    fn fact(id: &str, severity: Severity, fixable: bool) -> Facts {
        Facts {
            id: id.into(),
            scanner: "trivy".into(),
            severity,
            fixable,
        }
    }

    fn policy(id: u64) -> Policy {
        let mut p = default_policy(id);
        p.name = format!("p{id}");
        p
    }

    fn exception(id: u64, issue: &str) -> Exception {
        let t = chrono::Utc::now();
        Exception {
            id,
            title: format!("e{id}"),
            reason: String::new(),
            kind: ExceptionKind::Policy,
            status: ExceptionStatus::Active,
            start_date: None,
            end_date: None,
            clusters: None,
            policies: None,
            namespaces: None,
            scanner: None,
            issue_id: issue.into(),
            constraint_template: String::new(),
            image_match: ImagePattern::any(),
            alternate_severity: None,
            temporary: false,
            created_by: String::new(),
            created_at: t,
            updated_at: t,
            comments: vec![],
            expiry_notified: false,
        }
    }

    fn run(
        facts: &[Facts],
        policies: &[Policy],
        exceptions: &[Exception],
        ns: Option<&str>,
    ) -> Verdict {
        let ctx = Context {
            cluster: 1,
            namespace: ns,
            image_name: IMAGE,
            today: today(),
        };
        evaluate(
            &ctx,
            ScanInput::Scanned(facts),
            &policies.iter().collect::<Vec<_>>(),
            &exceptions.iter().collect::<Vec<_>>(),
        )
    }

    fn d(y: i32, m: u32, day: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, day)
    }

    /// (case, facts, policies, exceptions, namespace, expected compliant)
    type Case = (
        &'static str,
        Vec<Facts>,
        Vec<Policy>,
        Vec<Exception>,
        Option<&'static str>,
        bool,
    );

    /// The table.
    #[test]
    fn table() {
        let crit_fix = fact("CVE-1", Severity::Critical, true);
        let crit_nofix = fact("CVE-2", Severity::Critical, false);
        let high_fix = fact("CVE-3", Severity::High, true);
        let low_fix = fact("CVE-4", Severity::Low, true);
        let unknown = fact("CVE-5", Severity::Unknown, true);

        let mut limit_one = policy(1);
        limit_one.scanners[0].fixable.critical = Some(1);
        let mut disabled_scanner = policy(1);
        disabled_scanner.scanners[0].enabled = false;
        let mut advisory_scanner = policy(1);
        advisory_scanner.scanners[0].required = false;
        let mut advisory_policy = policy(1);
        advisory_policy.required = false;
        let mut inactive = policy(1);
        inactive.active = false;
        let mut other_cluster = policy(1);
        other_cluster.clusters = Some(vec![2]);
        let mut this_cluster = policy(1);
        this_cluster.clusters = Some(vec![1, 3]);
        let mut negligible_zero = policy(1);
        negligible_zero.scanners[0].fixable.negligible = Some(0);
        let mut other_scanner = policy(1);
        other_scanner.scanners = vec![ScannerRule {
            scanner: "grype".into(),
            enabled: true,
            required: true,
            fixable: Limits {
                critical: Some(0),
                ..Limits::default()
            },
            unfixable: Limits::default(),
        }];
        let lenient = {
            let mut p = policy(2);
            p.scanners[0].fixable = Limits::default();
            p
        };

        let mut override_low = exception(10, "CVE-1");
        override_low.kind = ExceptionKind::Override;
        override_low.alternate_severity = Some(Severity::Low);
        let mut override_crit = exception(11, "CVE-4");
        override_crit.kind = ExceptionKind::Override;
        override_crit.alternate_severity = Some(Severity::Critical);
        let mut expired = exception(12, "CVE-1");
        expired.end_date = d(2026, 6, 15); // end is exclusive: today is already outside
        let mut ends_tomorrow = exception(13, "CVE-1");
        ends_tomorrow.end_date = d(2026, 6, 16);
        let mut future = exception(14, "CVE-1");
        future.start_date = d(2026, 6, 16);
        let mut starts_today = exception(15, "CVE-1");
        starts_today.start_date = d(2026, 6, 15);
        let mut in_review = exception(16, "CVE-1");
        in_review.status = ExceptionStatus::InReview;
        let mut inactive_exc = exception(17, "CVE-1");
        inactive_exc.status = ExceptionStatus::Inactive;
        let mut ns_prod = exception(18, "CVE-1");
        ns_prod.namespaces = Some(vec!["prod".into()]);
        let mut other_cluster_exc = exception(19, "CVE-1");
        other_cluster_exc.clusters = Some(vec![2]);
        let mut other_policy_exc = exception(20, "CVE-1");
        other_policy_exc.policies = Some(vec![2]);
        let mut other_image_exc = exception(21, "CVE-1");
        other_image_exc.image_match = ImagePattern::parse("registry.local/team/other").unwrap();
        let mut this_image_exc = exception(22, "CVE-1");
        this_image_exc.image_match = ImagePattern::parse("registry.local/team/*").unwrap();
        let mut grype_only = exception(23, "CVE-1");
        grype_only.scanner = Some("grype".into());
        let blanket = exception(24, "");
        let mut gatekeeper = exception(25, "CVE-1");
        gatekeeper.kind = ExceptionKind::Gatekeeper;
        let case_insensitive = exception(26, " cve-1 ");

        let p = policy(1);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("no findings", vec![], vec![p.clone()], vec![], None, true),
            ("fixable critical blocks", vec![crit_fix.clone()], vec![p.clone()], vec![], None, false),
            ("unfixable critical is allowed by default", vec![crit_nofix.clone()], vec![p.clone()], vec![], None, true),
            ("fixable high blocks", vec![high_fix.clone()], vec![p.clone()], vec![], None, false),
            ("low is unlimited", vec![low_fix.clone()], vec![p.clone()], vec![], None, true),
            ("count == limit is compliant", vec![crit_fix.clone()], vec![limit_one.clone()], vec![], None, true),
            ("count == limit + 1 is not", vec![crit_fix.clone(), fact("CVE-9", Severity::Critical, true)], vec![limit_one.clone()], vec![], None, false),
            ("disabled scanner is skipped", vec![crit_fix.clone()], vec![disabled_scanner], vec![], None, true),
            ("non-required scanner is advisory", vec![crit_fix.clone()], vec![advisory_scanner], vec![], None, true),
            ("non-required policy is advisory", vec![crit_fix.clone()], vec![advisory_policy], vec![], None, true),
            ("inactive policy is ignored", vec![crit_fix.clone()], vec![inactive], vec![], None, true),
            ("policy for another cluster is ignored", vec![crit_fix.clone()], vec![other_cluster], vec![], None, true),
            ("policy for this cluster applies", vec![crit_fix.clone()], vec![this_cluster], vec![], None, false),
            ("unknown severity counts as negligible", vec![unknown.clone()], vec![negligible_zero], vec![], None, false),
            ("findings of another scanner are not judged", vec![crit_fix.clone()], vec![other_scanner], vec![], None, true),
            ("override lowers severity", vec![crit_fix.clone()], vec![p.clone()], vec![override_low.clone()], None, true),
            ("override raises severity", vec![low_fix.clone()], vec![p.clone()], vec![override_crit], None, false),
            ("exception excuses the CVE", vec![crit_fix.clone()], vec![p.clone()], vec![exception(30, "CVE-1")], None, true),
            ("exception for another CVE does not", vec![crit_fix.clone()], vec![p.clone()], vec![exception(30, "CVE-2")], None, false),
            ("issue ids compare trimmed and case-insensitively", vec![crit_fix.clone()], vec![p.clone()], vec![case_insensitive], None, true),
            ("blanket exception excuses everything", vec![crit_fix.clone(), high_fix.clone()], vec![p.clone()], vec![blanket.clone()], None, true),
            ("expired exception (end date is exclusive)", vec![crit_fix.clone()], vec![p.clone()], vec![expired], None, false),
            ("exception ending tomorrow applies today", vec![crit_fix.clone()], vec![p.clone()], vec![ends_tomorrow], None, true),
            ("future exception does not apply yet", vec![crit_fix.clone()], vec![p.clone()], vec![future], None, false),
            ("exception starting today applies", vec![crit_fix.clone()], vec![p.clone()], vec![starts_today], None, true),
            ("exception in review does not apply", vec![crit_fix.clone()], vec![p.clone()], vec![in_review], None, false),
            ("inactive exception does not apply", vec![crit_fix.clone()], vec![p.clone()], vec![inactive_exc], None, false),
            ("namespace exception applies in its namespace", vec![crit_fix.clone()], vec![p.clone()], vec![ns_prod.clone()], Some("prod"), true),
            ("namespace exception does not apply elsewhere", vec![crit_fix.clone()], vec![p.clone()], vec![ns_prod.clone()], Some("dev"), false),
            ("namespace exception does not apply at scan time", vec![crit_fix.clone()], vec![p.clone()], vec![ns_prod], None, false),
            ("exception for another cluster", vec![crit_fix.clone()], vec![p.clone()], vec![other_cluster_exc], None, false),
            ("exception for another policy", vec![crit_fix.clone()], vec![p.clone()], vec![other_policy_exc.clone()], None, false),
            ("exception for another image", vec![crit_fix.clone()], vec![p.clone()], vec![other_image_exc], None, false),
            ("exception matching this image", vec![crit_fix.clone()], vec![p.clone()], vec![this_image_exc], None, true),
            ("exception for another scanner", vec![crit_fix.clone()], vec![p.clone()], vec![grype_only], None, false),
            ("gatekeeper exceptions do not excuse vulnerabilities", vec![crit_fix.clone()], vec![p.clone()], vec![gatekeeper], None, false),
            ("several policies: one failing blocks", vec![crit_fix.clone()], vec![lenient.clone(), p.clone()], vec![], None, false),
            ("several policies: all passing", vec![low_fix.clone()], vec![lenient.clone(), p.clone()], vec![], None, true),
            ("several policies: exception scoped to the failing one", vec![crit_fix.clone()], vec![lenient.clone(), p.clone()], vec![{ let mut e = exception(31, "CVE-1"); e.policies = Some(vec![1]); e }], None, true),
            ("several policies: exception scoped to the passing one", vec![crit_fix.clone()], vec![lenient, p.clone()], vec![other_policy_exc], None, false),
        ];
        let mut failures = Vec::new();
        for (name, facts, policies, exceptions, ns, expected) in cases {
            let v = run(&facts, &policies, &exceptions, ns);
            if v.compliant != expected {
                failures.push(format!("{name}: expected compliant={expected}, got {v:#?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }

    #[test]
    fn no_policy_unscanned_and_failed() {
        let ctx = Context {
            cluster: 1,
            namespace: None,
            image_name: IMAGE,
            today: today(),
        };
        let p = policy(1);
        assert!(
            evaluate(&ctx, ScanInput::NotScanned, &[], &[]).compliant,
            "nothing to enforce"
        );
        let v = evaluate(&ctx, ScanInput::NotScanned, &[&p], &[]);
        assert!(!v.compliant);
        assert_eq!(v.reasons, vec!["the image has not been scanned"]);
        let v = evaluate(&ctx, ScanInput::Failed("registry unreachable"), &[&p], &[]);
        assert!(!v.compliant && v.reasons[0].contains("registry unreachable"));
        // A blanket exception for the namespace lets unscanned images in there, nowhere else.
        let mut kube_system = exception(50, "");
        kube_system.namespaces = Some(vec!["kube-system".into()]);
        let in_ns = Context {
            namespace: Some("kube-system"),
            ..ctx
        };
        assert!(evaluate(&in_ns, ScanInput::NotScanned, &[&p], &[&kube_system]).compliant);
        let other_ns = Context {
            namespace: Some("default"),
            ..ctx
        };
        assert!(!evaluate(&other_ns, ScanInput::NotScanned, &[&p], &[&kube_system]).compliant);
        // A CVE-specific exception does not excuse being unscanned.
        let cve_only = exception(51, "CVE-1");
        assert!(!evaluate(&ctx, ScanInput::NotScanned, &[&p], &[&cve_only]).compliant);
    }

    #[test]
    fn reasons_name_each_finding() {
        let facts = [
            fact("CVE-1", Severity::Critical, true),
            fact("CVE-4", Severity::Low, true),
            fact("CVE-7", Severity::Critical, true),
        ];
        let v = run(&facts, &[policy(1)], &[exception(40, "CVE-7")], None);
        assert!(!v.compliant);
        assert_eq!(
            v.reasons,
            vec!["1 fixable critical finding from trivy, more than the 0 policy \"p1\" allows"]
        );
        assert!(v.findings[0][0].violation.is_some());
        assert!(v.findings[1][0].violation.is_none(), "low is within limits");
        assert_eq!(v.findings[2][0].excepted_by, Some(40));
        let mut o = exception(41, "CVE-1");
        o.kind = ExceptionKind::Override;
        o.alternate_severity = Some(Severity::Medium);
        let v = run(&facts[..1], &[policy(1)], &[o], None);
        assert_eq!(v.findings[0][0].severity, Severity::Medium);
        assert_eq!(v.findings[0][0].overridden_by, Some(41));
    }
}
