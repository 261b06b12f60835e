//! Exceptions: requests and approvals, edits, comments, expiry and its notices.

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::*;
use crate::audit::{self, Event};
use crate::compliance::pattern::ImagePattern;
use crate::images::Severity;
use crate::store::{Store, StoreError};

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
    /// For type gatekeeper: the constraint template (kind or name); the constraint is
    /// `issue_id`.
    #[serde(default)]
    pub constraint_template: String,
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
    if e.kind != ExceptionKind::Gatekeeper && !e.constraint_template.trim().is_empty() {
        return bad("constraint_template is only for type gatekeeper".into());
    }
    if e.constraint_template.chars().count() > 253 {
        return bad("constraint_template: at most 253 characters".into());
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
        constraint_template: e.constraint_template.trim().to_string(),
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
/// Exception requests waiting for an admin's review.
pub fn waiting_requests(store: &Store) -> Result<usize, StoreError> {
    let mut n = 0;
    store.read(|r| {
        r.scan(&EXCEPTIONS, Default::default(), |_, e: Exception| {
            n += usize::from(e.status == ExceptionStatus::InReview);
            Ok(true)
        })
    })?;
    Ok(n)
}

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
