//! Scan results in: uploads and the appliance's own scans, their verdicts and temporary
//! exceptions, and queueing images whose rescan is due.

use chrono::{NaiveDate, Utc};
use serde::Serialize;

use super::*;
use crate::audit::{self, Event};
use crate::clusters::Cluster;
use crate::compliance::evaluate::{evaluate, Context, ScanInput, Verdict};
use crate::compliance::pattern::ImagePattern;
use crate::images::{self, Facts, Image, ImageRef, ScanState, Severity};
use crate::store::{Store, StoreError, WriteTx};

/// What an upload yields.
#[derive(Debug, Serialize)]
pub struct IngestResult {
    pub compliant: bool,
    pub reasons: Vec<String>,
    pub image: Image,
    pub cluster: ClusterBrief,
    pub findings: usize,
    pub violations: Vec<Violation>,
    pub temporary_exceptions: Vec<u64>,
    pub verdict: Verdict,
}

/// A cluster in responses.
#[derive(Debug, Serialize)]
pub struct ClusterBrief {
    pub id: u64,
    pub name: String,
}

/// A finding that violates a policy.
#[derive(Debug, Serialize)]
pub struct Violation {
    pub id: String,
    pub package: String,
    pub installed: String,
    pub fixed: String,
    pub severity: Severity,
    pub policy_id: u64,
    pub reason: String,
    pub advisory: bool,
}

/// Finds a cluster by name or numeric id.
pub fn find_cluster(store: &Store, name_or_id: &str) -> Result<Cluster, ComplianceError> {
    if let Some(c) = crate::clusters::by_name(store, name_or_id)? {
        return Ok(c);
    }
    if let Ok(id) = name_or_id.parse::<u64>() {
        if let Ok(c) = crate::clusters::get(store, id) {
            return Ok(c);
        }
    }
    Err(ComplianceError::NotFound(format!(
        "cluster '{}'",
        name_or_id.chars().take(100).collect::<String>()
    )))
}

/// Stores a Trivy report as the latest scan of `image_ref` seen in `cluster`, creates temporary
/// exceptions where a policy grants a grace period, and returns the verdict for the cluster.
pub fn ingest_trivy(
    store: &Store,
    actor: &str,
    cluster: &str,
    image_ref: &str,
    body: &[u8],
) -> Result<IngestResult, ComplianceError> {
    let cluster = find_cluster(store, cluster)?;
    let r = ImageRef::parse(image_ref).map_err(images::ImageError::from)?;
    let (meta, findings) = images::trivy::parse(body).map_err(images::ImageError::from)?;
    let digest = images::identify(&r, &meta)?;
    ingest(store, actor, &cluster, &r, &digest, &meta, findings)
}

/// Stores `findings` as the latest scan of `r`@`digest` seen in `cluster` (see [`ingest_trivy`]).
pub fn ingest(
    store: &Store,
    actor: &str,
    cluster: &Cluster,
    r: &ImageRef,
    digest: &str,
    meta: &images::trivy::ReportMeta,
    findings: Vec<images::Finding>,
) -> Result<IngestResult, ComplianceError> {
    let today = today();
    let n = findings.len();
    let policies = list_policies(store)?;
    let admins = crate::auth::admin_emails(store)?;
    let (image, verdict, temporary) = store.write(|w| {
        let mut image = images::upsert(w, r, digest, Some(cluster.id))?;
        let facts: Vec<Facts> = findings.iter().map(Facts::from).collect();
        images::store_scan(w, &mut image, meta, findings.clone())?;
        images::dequeue(w, &r.to_string())?;
        if let Some(t) = r.tagged() {
            images::dequeue(w, &t)?;
        }
        let exceptions: Vec<Exception> = w.all(&EXCEPTIONS)?.into_iter().map(|(_, e)| e).collect();
        let name = image.name();
        let ctx = Context {
            cluster: cluster.id,
            namespace: None,
            image_name: &name,
            today,
        };
        let prefs: Vec<&Policy> = policies.iter().collect();
        let erefs: Vec<&Exception> = exceptions.iter().collect();
        let mut verdict = evaluate(&ctx, ScanInput::Scanned(&facts), &prefs, &erefs);
        let temporary = grant_grace(
            w,
            cluster,
            &image,
            &facts,
            &verdict,
            &policies,
            &exceptions,
            today,
        )?;
        if !temporary.is_empty() {
            // The mail commits with the exceptions it announces.
            let list: Vec<String> = temporary
                .iter()
                .filter_map(|id| w.get(&EXCEPTIONS, id).ok().flatten())
                .map(|e| format!("  - {} (until {}, exception {})", e.title, e.end_date.map(|d| d.to_string()).unwrap_or_default(), e.id))
                .collect();
            let body = format!(
                "Bulwark found new policy violations in {} (cluster {}) and created temporary exceptions for the policy grace period:\n\n{}\n\nThe image is allowed until they end. Review them under Exceptions.\n",
                image.name(),
                cluster.name,
                list.join("\n")
            );
            crate::notify::enqueue(w, admins.clone(), &format!("Temporary exceptions created for {}", image.name()), &body)?;
            let exceptions: Vec<Exception> =
                w.all(&EXCEPTIONS)?.into_iter().map(|(_, e)| e).collect();
            let erefs: Vec<&Exception> = exceptions.iter().collect();
            verdict = evaluate(&ctx, ScanInput::Scanned(&facts), &prefs, &erefs);
        }
        audit::record(
            w,
            Event::new(actor, "scan.ingest", format!("image:{}", image.id)).detail(format!(
                "{} cluster={} findings={n} compliant={}",
                r, cluster.name, verdict.compliant
            )),
        )?;
        Ok::<_, ComplianceError>((image, verdict, temporary))
    })?;
    let violations = violations(&findings, &verdict);
    Ok(IngestResult {
        compliant: verdict.compliant,
        reasons: verdict.reasons.clone(),
        cluster: ClusterBrief {
            id: cluster.id,
            name: cluster.name.clone(),
        },
        findings: n,
        violations,
        temporary_exceptions: temporary,
        image,
        verdict,
    })
}

/// Records that scanning `r`@`digest` failed; the image is non-compliant until a scan succeeds.
pub fn ingest_failure(
    store: &Store,
    actor: &str,
    cluster: &Cluster,
    r: &ImageRef,
    digest: &str,
    message: &str,
) -> Result<Image, ComplianceError> {
    Ok(store.write(|w| {
        let mut image = images::upsert(w, r, digest, Some(cluster.id))?;
        images::mark_failed(w, &mut image, message)?;
        audit::record(
            w,
            Event::new(actor, "scan.failed", format!("image:{}", image.id))
                .detail(format!("{r}: {message}")),
        )?;
        Ok::<_, StoreError>(image)
    })?)
}

/// The findings that violate a policy, with the reason.
pub fn violations(findings: &[images::Finding], verdict: &Verdict) -> Vec<Violation> {
    let mut out = Vec::new();
    for (f, judgements) in findings.iter().zip(&verdict.findings) {
        for j in judgements {
            if let Some(reason) = &j.violation {
                out.push(Violation {
                    id: f.id.clone(),
                    package: f.package.clone(),
                    installed: f.installed.clone(),
                    fixed: f.fixed.clone(),
                    severity: j.severity,
                    policy_id: j.policy_id,
                    reason: reason.clone(),
                    advisory: j.advisory,
                });
            }
        }
    }
    out
}

/// Creates one temporary exception per (cluster, policy, CVE, image) for enforced violations of
/// policies with a grace period; never twice for the same tuple, whatever became of the first.
#[allow(clippy::too_many_arguments)]
fn grant_grace(
    w: &WriteTx,
    cluster: &Cluster,
    image: &Image,
    facts: &[Facts],
    verdict: &Verdict,
    policies: &[Policy],
    existing: &[Exception],
    today: NaiveDate,
) -> Result<Vec<u64>, StoreError> {
    let name = image.name();
    let mut created = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (f, judgements) in facts.iter().zip(&verdict.findings) {
        for j in judgements
            .iter()
            .filter(|j| j.violation.is_some() && !j.advisory)
        {
            let Some(policy) = policies.iter().find(|p| p.id == j.policy_id) else {
                continue;
            };
            if policy.grace_period_days == 0 || !seen.insert((policy.id, f.id.clone())) {
                continue;
            }
            let already = existing.iter().any(|e| {
                e.temporary
                    && e.clusters.as_deref() == Some(&[cluster.id][..])
                    && e.policies.as_deref() == Some(&[policy.id][..])
                    && e.issue_id.eq_ignore_ascii_case(&f.id)
                    && e.image_match.as_str() == name
            });
            if already {
                continue;
            }
            let id = w.next_id("exceptions")?;
            let now = Utc::now();
            let end = today + chrono::Duration::days(policy.grace_period_days as i64);
            let e = Exception {
                id,
                title: format!("Temporary exception for {} in {name}", f.id),
                reason: format!(
                    "grace period of policy \"{}\" ({} days)",
                    policy.name, policy.grace_period_days
                ),
                kind: ExceptionKind::Policy,
                status: ExceptionStatus::Active,
                start_date: Some(today),
                end_date: Some(end),
                clusters: Some(vec![cluster.id]),
                policies: Some(vec![policy.id]),
                namespaces: None,
                scanner: Some(f.scanner.to_string()),
                issue_id: f.id.to_string(),
                constraint_template: String::new(),
                image_match: ImagePattern::parse(&name).unwrap_or_else(|_| ImagePattern::any()),
                alternate_severity: None,
                temporary: true,
                created_by: "system".into(),
                created_at: now,
                updated_at: now,
                comments: vec![],
                expiry_notified: false,
            };
            w.put(&EXCEPTIONS, &id, &e)?;
            audit::record(
                w,
                Event::new("system", "exception.temporary", format!("exception:{id}"))
                    .detail(e.title.clone()),
            )?;
            created.push(id);
        }
    }
    Ok(created)
}

/// The verdict for an image in a cluster (and namespace), from the store.
pub fn verdict_for(
    store: &Store,
    image: &Image,
    cluster: u64,
    namespace: Option<&str>,
) -> Result<(Verdict, Option<images::Scan>), StoreError> {
    let policies = list_policies(store)?;
    let exceptions = list_exceptions(store)?;
    let scan = images::scan(store, image.id)?;
    let facts: Vec<Facts> = scan
        .as_ref()
        .map(|s| s.findings.iter().map(Facts::from).collect())
        .unwrap_or_default();
    let name = image.name();
    let ctx = Context {
        cluster,
        namespace,
        image_name: &name,
        today: today(),
    };
    let input = match (&image.scan_state, &scan) {
        (ScanState::Failed { message }, _) => ScanInput::Failed(message),
        (_, Some(_)) => ScanInput::Scanned(&facts),
        (_, None) => ScanInput::NotScanned,
    };
    let verdict = evaluate(
        &ctx,
        input,
        &policies.iter().collect::<Vec<_>>(),
        &exceptions.iter().collect::<Vec<_>>(),
    );
    Ok((verdict, scan))
}

/// Queues images whose newest scan is older than the shortest rescan period of the active
/// policies for their clusters; returns how many. The native scanner (or an upload) picks them up.
pub fn queue_due_rescans(store: &Store) -> Result<u64, StoreError> {
    let policies = list_policies(store)?;
    let now = Utc::now();
    let mut due = Vec::new();
    for image in images::list(store)? {
        let Some(scan) = &image.last_scan else {
            continue;
        };
        let period = policies
            .iter()
            .filter(|p| p.rescan_period_days > 0 && image.clusters.iter().any(|c| p.applies_to(*c)))
            .min_by_key(|p| p.rescan_period_days);
        if let Some(p) = period {
            if scan.at + chrono::Duration::days(p.rescan_period_days as i64) <= now {
                due.push((
                    image.id,
                    format!(
                        "rescan due: policy \"{}\" rescans every {} days",
                        p.name, p.rescan_period_days
                    ),
                ));
            }
        }
    }
    store.write(|w| {
        let mut n = 0;
        for (id, reason) in &due {
            if images::mark_queued_by_id(w, *id, reason)? {
                n += 1;
            }
        }
        Ok(n)
    })
}
