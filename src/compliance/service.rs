//! Stored policies and exceptions, scan ingest and temporary exceptions. Every change is audited
//! in its own transaction.

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::evaluate::{evaluate, Context, ScanInput, Verdict};
use super::model::*;
use super::pattern::ImagePattern;
use crate::audit::{self, Event};
use crate::clusters::Cluster;
use crate::http::{ApiError, Role};
use crate::images::{self, Facts, Image, ImageRef, ScanState, Severity};
use crate::store::{Store, StoreError, WriteTx};

/// Errors of the compliance domain.
#[derive(Debug, thiserror::Error)]
pub enum ComplianceError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Image(#[from] images::ImageError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ComplianceError> for ApiError {
    fn from(e: ComplianceError) -> Self {
        match e {
            ComplianceError::Invalid(m) => ApiError::bad_request(m),
            ComplianceError::NotFound(_) => ApiError::not_found(e.to_string()),
            ComplianceError::Forbidden(m) => ApiError::forbidden(m),
            ComplianceError::Image(i) => i.into(),
            ComplianceError::Store(s) => ApiError::internal(s),
        }
    }
}

/// Who is acting, for checks and the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub role: Role,
    pub ip: String,
}

impl Actor {
    fn event(&self, action: &'static str, target: String) -> Event {
        Event::new(self.name.clone(), action, target).from_ip(self.ip.clone())
    }
    fn is_admin(&self) -> bool {
        matches!(self.role, Role::Admin | Role::SuperAdmin)
    }
}

/// Today in UTC (exception dates are UTC days).
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

// ---------------------------------------------------------------- policies

/// Fields of a new or replaced policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default)]
    pub clusters: Option<Vec<u64>>,
    #[serde(default = "default_scanners")]
    pub scanners: Vec<ScannerRule>,
    #[serde(default)]
    pub grace_period_days: u32,
    #[serde(default = "seven")]
    pub rescan_period_days: u32,
}

fn yes() -> bool {
    true
}
fn seven() -> u32 {
    7
}
fn default_scanners() -> Vec<ScannerRule> {
    default_policy(0).scanners
}

fn validate_policy(p: &PolicyInput) -> Result<(), ComplianceError> {
    let bad = |m: &str| Err(ComplianceError::Invalid(m.to_string()));
    if p.name.trim().is_empty() || p.name.chars().count() > 200 {
        return bad("name: 1 to 200 characters");
    }
    if p.description.chars().count() > 2000 {
        return bad("description: at most 2000 characters");
    }
    if p.scanners.len() > 16
        || p.scanners
            .iter()
            .any(|s| s.scanner.trim().is_empty() || s.scanner.len() > 64)
    {
        return bad("scanners: at most 16, each with a name of 1 to 64 characters");
    }
    if p.grace_period_days > 3650 || p.rescan_period_days > 3650 {
        return bad("grace_period_days and rescan_period_days: at most 3650");
    }
    if p.clusters.as_ref().is_some_and(|c| c.is_empty()) {
        return bad("clusters: leave it out for all clusters, or list at least one");
    }
    if p.clusters.as_ref().is_some_and(|c| c.len() > MAX_LISTED) {
        return bad("clusters: at most 100 entries");
    }
    Ok(())
}

/// Refuses a policy naming clusters that do not exist (inside the write that saves it).
fn check_clusters(w: &WriteTx, p: &PolicyInput) -> Result<(), ComplianceError> {
    for id in p.clusters.iter().flatten() {
        if !crate::clusters::exists_in(w, *id)? {
            return Err(ComplianceError::Invalid(format!(
                "clusters: no cluster {id}"
            )));
        }
    }
    Ok(())
}

fn policy_from(
    id: u64,
    p: PolicyInput,
    created_at: chrono::DateTime<Utc>,
    updated_at: chrono::DateTime<Utc>,
) -> Policy {
    Policy {
        id,
        name: p.name.trim().to_string(),
        description: p.description,
        active: p.active,
        required: p.required,
        clusters: p.clusters,
        scanners: p.scanners,
        grace_period_days: p.grace_period_days,
        rescan_period_days: p.rescan_period_days,
        created_at,
        updated_at,
    }
}

/// Every policy.
pub fn list_policies(store: &Store) -> Result<Vec<Policy>, StoreError> {
    Ok(store
        .read(|r| r.all(&POLICIES))?
        .into_iter()
        .map(|(_, p)| p)
        .collect())
}

/// One policy.
pub fn get_policy(store: &Store, id: u64) -> Result<Policy, ComplianceError> {
    store
        .read(|r| r.get(&POLICIES, &id))?
        .ok_or_else(|| ComplianceError::NotFound(format!("policy {id}")))
}

/// Creates a policy.
pub fn create_policy(
    store: &Store,
    actor: &Actor,
    p: PolicyInput,
) -> Result<Policy, ComplianceError> {
    validate_policy(&p)?;
    store.write(|w| {
        check_clusters(w, &p)?;
        let id = w.next_id("policies")?;
        let now = Utc::now();
        let policy = policy_from(id, p, now, now);
        w.put(&POLICIES, &id, &policy)?;
        audit::record(
            w,
            actor
                .event("policy.create", format!("policy:{id}"))
                .detail(format!("name={}", policy.name)),
        )?;
        Ok(policy)
    })
}

/// Replaces policy `id` with `p`.
pub fn update_policy(
    store: &Store,
    actor: &Actor,
    id: u64,
    p: PolicyInput,
) -> Result<Policy, ComplianceError> {
    validate_policy(&p)?;
    store.write(|w| {
        check_clusters(w, &p)?;
        let old = w
            .get(&POLICIES, &id)?
            .ok_or_else(|| ComplianceError::NotFound(format!("policy {id}")))?;
        let policy = policy_from(id, p, old.created_at, Utc::now());
        w.put(&POLICIES, &id, &policy)?;
        audit::record(
            w,
            actor
                .event("policy.update", format!("policy:{id}"))
                .detail(format!("name={}", policy.name)),
        )?;
        Ok(policy)
    })
}

/// Deletes policy `id`.
pub fn delete_policy(store: &Store, actor: &Actor, id: u64) -> Result<Policy, ComplianceError> {
    store.write(|w| {
        let p = w
            .get(&POLICIES, &id)?
            .ok_or_else(|| ComplianceError::NotFound(format!("policy {id}")))?;
        w.delete(&POLICIES, &id)?;
        audit::record(
            w,
            actor
                .event("policy.delete", format!("policy:{id}"))
                .detail(format!("name={}", p.name)),
        )?;
        Ok(p)
    })
}

// ---------------------------------------------------------------- exceptions

/// Fields of a new exception; left out means "all" (clusters, policies, namespaces, scanners,
/// issues, images) and no end date.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ExceptionInput {
    pub title: String,
    #[serde(default)]
    pub reason: String,
    #[serde(rename = "type", default)]
    pub kind: ExceptionKind,
    #[serde(default)]
    pub status: Option<ExceptionStatus>,
    #[serde(default)]
    pub start_date: Option<NaiveDate>,
    #[serde(default)]
    pub end_date: Option<NaiveDate>,
    /// Cluster ids or names.
    #[serde(default)]
    pub clusters: Option<Vec<ClusterRef>>,
    #[serde(default)]
    pub policies: Option<Vec<u64>>,
    #[serde(default)]
    pub namespaces: Option<Vec<String>>,
    #[serde(default)]
    pub scanner: Option<String>,
    #[serde(default)]
    pub issue_id: String,
    #[serde(default)]
    pub image_match: String,
    #[serde(default)]
    pub alternate_severity: Option<Severity>,
}

/// A cluster named by id or name.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ClusterRef {
    Id(u64),
    Name(String),
}

/// Entries an exception may list per field (clusters, policies, namespaces), and a policy per
/// cluster list; every one is checked on every evaluation.
const MAX_LISTED: usize = 100;
/// Comments an exception holds.
const MAX_COMMENTS: usize = 200;

fn valid_namespace(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !n.starts_with('-')
        && !n.ends_with('-')
}

fn resolve_clusters(
    store: &Store,
    refs: Option<Vec<ClusterRef>>,
) -> Result<Option<Vec<u64>>, ComplianceError> {
    let Some(refs) = refs else { return Ok(None) };
    if refs.is_empty() {
        return Ok(None);
    }
    let mut ids = Vec::new();
    for r in refs {
        let c = match &r {
            ClusterRef::Id(id) => crate::clusters::get(store, *id).ok(),
            ClusterRef::Name(n) => crate::clusters::by_name(store, n)?,
        };
        let c = c.ok_or_else(|| ComplianceError::Invalid(format!("clusters: no cluster {r:?}")))?;
        if !ids.contains(&c.id) {
            ids.push(c.id);
        }
    }
    Ok(Some(ids))
}

fn build_exception(
    store: &Store,
    actor: &Actor,
    e: ExceptionInput,
    id: u64,
) -> Result<Exception, ComplianceError> {
    let bad = |m: String| Err(ComplianceError::Invalid(m));
    if e.title.trim().is_empty() || e.title.chars().count() > 200 {
        return bad("title: 1 to 200 characters".into());
    }
    if e.reason.chars().count() > 4000 || e.issue_id.chars().count() > 200 {
        return bad("reason: at most 4000 characters; issue_id: at most 200".into());
    }
    if e.scanner.as_ref().is_some_and(|s| s.chars().count() > 64) {
        return bad("scanner: at most 64 characters".into());
    }
    let listed = [
        ("clusters", e.clusters.as_ref().map_or(0, Vec::len)),
        ("policies", e.policies.as_ref().map_or(0, Vec::len)),
        ("namespaces", e.namespaces.as_ref().map_or(0, Vec::len)),
    ];
    if let Some((field, _)) = listed.iter().find(|(_, n)| *n > MAX_LISTED) {
        return bad(format!("{field}: at most {MAX_LISTED} entries"));
    }
    if let (Some(s), Some(end)) = (e.start_date, e.end_date) {
        if end <= s {
            return bad("end_date must be after start_date (the end date is exclusive)".into());
        }
    }
    if e.kind == ExceptionKind::Override && e.alternate_severity.is_none() {
        return bad("an override needs alternate_severity".into());
    }
    if e.kind != ExceptionKind::Override && e.alternate_severity.is_some() {
        return bad("alternate_severity is only for type override".into());
    }
    let namespaces = match e.namespaces {
        Some(list) if list.is_empty() => None,
        Some(list) => {
            if let Some(bad_ns) = list.iter().find(|n| !valid_namespace(n)) {
                return bad(format!("namespaces: '{bad_ns}' is not a namespace name"));
            }
            Some(list)
        }
        None => None,
    };
    let image_match = ImagePattern::parse(&e.image_match).map_err(ComplianceError::Invalid)?;
    let policies = match e.policies {
        Some(p) if p.is_empty() => None,
        Some(p) => {
            for id in &p {
                get_policy(store, *id)
                    .map_err(|_| ComplianceError::Invalid(format!("policies: no policy {id}")))?;
            }
            Some(p)
        }
        None => None,
    };
    // Read-only users may only ask: their exceptions wait for an admin.
    let status = if actor.is_admin() {
        e.status.unwrap_or_default()
    } else {
        ExceptionStatus::InReview
    };
    let now = Utc::now();
    Ok(Exception {
        id,
        title: e.title.trim().to_string(),
        reason: e.reason,
        kind: e.kind,
        status,
        start_date: e.start_date,
        end_date: e.end_date,
        clusters: resolve_clusters(store, e.clusters)?,
        policies,
        namespaces,
        scanner: e.scanner.filter(|s| !s.trim().is_empty()),
        issue_id: e.issue_id.trim().to_string(),
        image_match,
        alternate_severity: e.alternate_severity,
        temporary: false,
        created_by: actor.name.clone(),
        created_at: now,
        updated_at: now,
        comments: vec![],
        expiry_notified: false,
    })
}

/// Creates (admins) or requests (read-only users: forced to in review) an exception.
pub fn create_exception(
    store: &Store,
    actor: &Actor,
    e: ExceptionInput,
) -> Result<Exception, ComplianceError> {
    let draft = build_exception(store, actor, e, 0)?;
    store.write(|w| {
        let id = w.next_id("exceptions")?;
        let exc = Exception { id, ..draft };
        w.put(&EXCEPTIONS, &id, &exc)?;
        let action = if exc.status == ExceptionStatus::InReview && !actor.is_admin() {
            "exception.request"
        } else {
            "exception.create"
        };
        audit::record(
            w,
            actor
                .event(action, format!("exception:{id}"))
                .detail(format!(
                    "title={} status={}",
                    exc.title,
                    exc.status.as_str()
                )),
        )?;
        Ok(exc)
    })
}

/// Replaces exception `id` (admins); comments and creation data are kept.
pub fn update_exception(
    store: &Store,
    actor: &Actor,
    id: u64,
    e: ExceptionInput,
) -> Result<Exception, ComplianceError> {
    if !actor.is_admin() {
        return Err(ComplianceError::Forbidden(
            "only admins edit exceptions".into(),
        ));
    }
    let draft = build_exception(store, actor, e, id)?;
    store.write(|w| {
        let old = w
            .get(&EXCEPTIONS, &id)?
            .ok_or_else(|| ComplianceError::NotFound(format!("exception {id}")))?;
        let exc = Exception {
            created_by: old.created_by,
            created_at: old.created_at,
            comments: old.comments,
            temporary: old.temporary,
            ..draft
        };
        w.put(&EXCEPTIONS, &id, &exc)?;
        audit::record(
            w,
            actor
                .event("exception.update", format!("exception:{id}"))
                .detail(format!("status={}", exc.status.as_str())),
        )?;
        Ok(exc)
    })
}

/// Approves (→ active) or rejects (→ inactive) an exception (admins).
pub fn set_exception_status(
    store: &Store,
    actor: &Actor,
    id: u64,
    status: ExceptionStatus,
) -> Result<Exception, ComplianceError> {
    if !actor.is_admin() {
        return Err(ComplianceError::Forbidden(
            "only admins approve or reject exceptions".into(),
        ));
    }
    store.write(|w| {
        let mut e = w
            .get(&EXCEPTIONS, &id)?
            .ok_or_else(|| ComplianceError::NotFound(format!("exception {id}")))?;
        let before = e.status;
        e.status = status;
        e.updated_at = Utc::now();
        w.put(&EXCEPTIONS, &id, &e)?;
        audit::record(
            w,
            actor
                .event("exception.status", format!("exception:{id}"))
                .detail(format!("{}→{}", before.as_str(), status.as_str())),
        )?;
        Ok(e)
    })
}

/// Deletes an exception (admins).
pub fn delete_exception(
    store: &Store,
    actor: &Actor,
    id: u64,
) -> Result<Exception, ComplianceError> {
    store.write(|w| {
        let e = w
            .get(&EXCEPTIONS, &id)?
            .ok_or_else(|| ComplianceError::NotFound(format!("exception {id}")))?;
        w.delete(&EXCEPTIONS, &id)?;
        audit::record(
            w,
            actor
                .event("exception.delete", format!("exception:{id}"))
                .detail(format!("title={}", e.title)),
        )?;
        Ok(e)
    })
}

/// Adds a comment (anyone who may request exceptions).
pub fn comment_exception(
    store: &Store,
    actor: &Actor,
    id: u64,
    text: &str,
) -> Result<Exception, ComplianceError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > 4000 {
        return Err(ComplianceError::Invalid(
            "comment: 1 to 4000 characters".into(),
        ));
    }
    store.write(|w| {
        let mut e = w
            .get(&EXCEPTIONS, &id)?
            .ok_or_else(|| ComplianceError::NotFound(format!("exception {id}")))?;
        if e.comments.len() >= MAX_COMMENTS {
            return Err(ComplianceError::Invalid(format!(
                "an exception holds at most {MAX_COMMENTS} comments"
            )));
        }
        e.comments.push(Comment {
            author: actor.name.clone(),
            at: Utc::now(),
            text: text.to_string(),
        });
        w.put(&EXCEPTIONS, &id, &e)?;
        audit::record(
            w,
            actor.event("exception.comment", format!("exception:{id}")),
        )?;
        Ok(e)
    })
}

/// One exception.
pub fn get_exception(store: &Store, id: u64) -> Result<Exception, ComplianceError> {
    store
        .read(|r| r.get(&EXCEPTIONS, &id))?
        .ok_or_else(|| ComplianceError::NotFound(format!("exception {id}")))
}

/// Every exception.
pub fn list_exceptions(store: &Store) -> Result<Vec<Exception>, StoreError> {
    Ok(store
        .read(|r| r.all(&EXCEPTIONS))?
        .into_iter()
        .map(|(_, e)| e)
        .collect())
}

/// Mails admins about active exceptions whose last day is today (they end tomorrow); once per
/// exception. Returns how many.
pub fn notify_expiring(store: &Store) -> Result<u64, StoreError> {
    let tomorrow = today() + chrono::Duration::days(1);
    let admins = crate::auth::admin_emails(store)?;
    store.write(|w| {
        let mut n = 0;
        for (id, mut e) in w.all(&EXCEPTIONS)? {
            if e.status == ExceptionStatus::Active && e.end_date == Some(tomorrow) && !e.expiry_notified {
                let body = format!(
                    "The exception \"{}\" (id {id}{}) ends tomorrow, {tomorrow}. After that the findings it excuses count again.\n\nIssue: {}\nImages: {}\n",
                    e.title,
                    if e.temporary { ", temporary" } else { "" },
                    if e.issue_id.is_empty() { "all" } else { &e.issue_id },
                    if e.image_match.as_str().is_empty() { "all" } else { e.image_match.as_str() },
                );
                crate::notify::enqueue(w, admins.clone(), &format!("Exception ends tomorrow: {}", e.title), &body)?;
                e.expiry_notified = true;
                w.put(&EXCEPTIONS, &id, &e)?;
                n += 1;
            }
        }
        Ok(n)
    })
}

/// Sets expired exceptions inactive (the nightly job); returns how many. Expiry is also
/// enforced by date in every evaluation, so this only keeps the lists honest.
pub fn deactivate_expired(store: &Store) -> Result<u64, StoreError> {
    let today = today();
    store.write(|w| {
        let mut n = 0;
        for (id, mut e) in w.all(&EXCEPTIONS)? {
            if e.status != ExceptionStatus::Inactive && e.end_date.is_some_and(|end| end <= today) {
                e.status = ExceptionStatus::Inactive;
                e.updated_at = Utc::now();
                w.put(&EXCEPTIONS, &id, &e)?;
                audit::record(
                    w,
                    Event::new("system", "exception.expire", format!("exception:{id}"))
                        .detail(format!("title={}", e.title)),
                )?;
                n += 1;
            }
        }
        Ok(n)
    })
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

// ---------------------------------------------------------------- ingest

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

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &[u8] = include_bytes!("../../tests/fixtures/trivy/debian-buster.trivy.json");

    fn setup() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::app::migrations()).unwrap();
        let new = crate::clusters::NewCluster {
            name: "prod".into(),
            ..Default::default()
        };
        crate::clusters::create(&store, "t", "", new).unwrap();
        (dir, store)
    }

    #[test]
    fn rescans_are_queued_when_the_period_passes() {
        let (_d, store) = setup();
        let res = ingest_trivy(&store, "t", "prod", "registry.local/app:1", DEBIAN).unwrap();
        assert_eq!(queue_due_rescans(&store).unwrap(), 0, "just scanned");
        // Age the scan past the default policy's 7 days.
        store
            .write(|w| {
                let mut i = w.get(&images::IMAGES, &res.image.id)?.unwrap();
                i.last_scan.as_mut().unwrap().at -= chrono::Duration::days(8);
                w.put(&images::IMAGES, &i.id, &i)
            })
            .unwrap();
        assert_eq!(queue_due_rescans(&store).unwrap(), 1);
        assert_eq!(queue_due_rescans(&store).unwrap(), 0, "queued once");
        let i = images::get(&store, res.image.id).unwrap();
        assert!(
            matches!(&i.scan_state, ScanState::Queued { reason, .. } if reason.contains("every 7 days")),
            "{:?}",
            i.scan_state
        );
        // A new upload clears the queue state.
        ingest_trivy(&store, "t", "prod", "registry.local/app:1", DEBIAN).unwrap();
        assert_eq!(
            images::get(&store, res.image.id).unwrap().scan_state,
            ScanState::Scanned
        );
    }

    #[test]
    fn expired_exceptions_are_deactivated() {
        let (_d, store) = setup();
        let admin = Actor {
            name: "a".into(),
            role: Role::Admin,
            ip: String::new(),
        };
        let past = today() - chrono::Duration::days(1);
        let e = ExceptionInput {
            title: "old".into(),
            start_date: Some(past - chrono::Duration::days(10)),
            end_date: Some(past),
            ..Default::default()
        };
        let old = create_exception(&store, &admin, e).unwrap();
        let current = create_exception(
            &store,
            &admin,
            ExceptionInput {
                title: "current".into(),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(deactivate_expired(&store).unwrap(), 1);
        assert_eq!(
            get_exception(&store, old.id).unwrap().status,
            ExceptionStatus::Inactive
        );
        assert_eq!(
            get_exception(&store, current.id).unwrap().status,
            ExceptionStatus::Active
        );
        assert_eq!(deactivate_expired(&store).unwrap(), 0);
    }
}
