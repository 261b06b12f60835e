//! Policies: create, change, list, delete; what a policy may say.

use chrono::Utc;
use serde::Deserialize;

use super::*;
use crate::audit::{self};
use crate::store::{Store, StoreError, WriteTx};

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
