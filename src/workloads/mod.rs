//! The workload inventory of each cluster: its namespaces, workloads (Deployments,
//! StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs, bare pods) and pods with their
//! containers' images and digests, and whether each pod may run under the policies.
//!
//! The inventory arrives with a cluster's sync from its API server (every collection listed)
//! or with an uploaded pod list (pods only: workloads are then inferred from the pods'
//! owners). Each arrival replaces the cluster's whole inventory inside the transaction that
//! records the pod addresses, so the two never disagree. Rows are per namespace: the pages
//! read one namespace at a time, and a cluster has tens of namespaces, not thousands.
//!
//! Pod compliance is not stored: it is judged when read, by admission's in-memory snapshot
//! (`verdicts.rs`), so a changed policy or exception shows at once. The daily history of those
//! judgements, for the trend charts, is what is stored.

pub mod api;
pub mod objects;
pub mod pages;
pub mod search;
pub mod verdicts;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::http::ApiError;
use crate::store::{Scan, Store, StoreError, Table, WriteTx};

pub use objects::{Objects, Workload};

/// One container of a pod and the image it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    /// `container`, `init` or `ephemeral`.
    pub kind: String,
    /// The reference the kubelet reports (or the spec's, before the container started).
    pub image: String,
    /// The repository digest the kubelet pulled, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// How the image is judged: `registry/repository@digest` when the digest is known, else the
    /// full reference.
    pub judged_as: String,
}

/// A pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    pub name: String,
    /// The workload that owns it (through its ReplicaSet or Job), or `Pod` and its own name.
    pub workload_kind: String,
    pub workload: String,
    #[serde(default)]
    pub node: String,
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`.
    #[serde(default)]
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    pub containers: Vec<Container>,
    /// Its immediate controller (kind, name), from which the workload was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<(String, String)>,
    /// The `pod-template-hash` label, which names a Deployment's ReplicaSets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_hash: Option<String>,
    /// A pod without a controller, scored with kubesec's rules (other pods are their
    /// workload's template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubesec: Option<crate::kubesec::Summary>,
}

/// Everything one namespace holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub workloads: Vec<Workload>,
    pub pods: Vec<Pod>,
}

/// Where a cluster's inventory came from and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub cluster: u64,
    pub at: DateTime<Utc>,
    /// `api` (a sync from the API server) or `upload` (a pod list).
    pub source: String,
    pub namespaces: usize,
    pub workloads: usize,
    pub pods: usize,
    /// Collections the API server would not list (the inventory lacks them), and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// Why an inventory request failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WorkloadError> for ApiError {
    fn from(e: WorkloadError) -> Self {
        match e {
            WorkloadError::NotFound(m) => ApiError::not_found(m),
            WorkloadError::Invalid(m) => ApiError::bad_request(m),
            WorkloadError::Store(e) => e.into(),
        }
    }
}

/// `{cluster}/{namespace}` → the namespace. Cluster ids are zero-padded so one cluster's rows
/// are one key range.
const NAMESPACES: Table<String, Namespace> = Table::new("workload_namespaces");
/// Cluster → its inventory's summary.
const SUMMARIES: Table<u64, Summary> = Table::new("workload_summaries");

fn ns_key(cluster: u64, namespace: &str) -> String {
    format!("{cluster:020}/{namespace}")
}

/// The key range of one cluster's namespaces.
fn range(cluster: u64) -> (Vec<u8>, Vec<u8>) {
    (
        format!("{cluster:020}/").into_bytes(),
        format!("{cluster:020}0").into_bytes(),
    )
}

/// Replaces cluster `cluster`'s inventory with `objects`, inside the caller's transaction.
pub fn replace(
    w: &WriteTx,
    cluster: u64,
    source: &str,
    objects: Objects,
) -> Result<Summary, StoreError> {
    clear(w, cluster)?;
    let missing = objects.missing.clone();
    let namespaces = objects.into_namespaces();
    let summary = Summary {
        cluster,
        at: Utc::now(),
        source: source.to_string(),
        namespaces: namespaces.len(),
        workloads: namespaces.iter().map(|n| n.workloads.len()).sum(),
        pods: namespaces.iter().map(|n| n.pods.len()).sum(),
        missing,
    };
    for ns in &namespaces {
        w.put(&NAMESPACES, &ns_key(cluster, &ns.name), ns)?;
    }
    w.put(&SUMMARIES, &cluster, &summary)?;
    Ok(summary)
}

/// Drops cluster `cluster`'s inventory (its history stays).
fn clear(w: &WriteTx, cluster: u64) -> Result<(), StoreError> {
    let (from, to) = range(cluster);
    w.retain(&NAMESPACES, |k: &String, _| {
        !(k.as_bytes() >= from.as_slice() && k.as_bytes() < to.as_slice())
    })?;
    w.delete(&SUMMARIES, &cluster)?;
    Ok(())
}

/// Drops everything of a cluster being deleted, inside its delete transaction.
pub fn forget(w: &WriteTx, cluster: u64) -> Result<(), StoreError> {
    clear(w, cluster)?;
    verdicts::forget(w, cluster)
}

/// Cluster `cluster`'s inventory summary, if it has one.
pub fn summary(store: &Store, cluster: u64) -> Result<Option<Summary>, StoreError> {
    store.read(|r| r.get(&SUMMARIES, &cluster))
}

/// Every cluster with an inventory.
pub fn summaries(store: &Store) -> Result<Vec<Summary>, StoreError> {
    Ok(store
        .read(|r| r.all(&SUMMARIES))?
        .into_iter()
        .map(|(_, s)| s)
        .collect())
}

/// Cluster `cluster`'s namespaces, by name.
pub fn namespaces(store: &Store, cluster: u64) -> Result<Vec<Namespace>, StoreError> {
    let (from, to) = range(cluster);
    store.read(|r| {
        let mut out = Vec::new();
        r.scan(
            &NAMESPACES,
            Scan {
                from: Some(&from),
                to: Some(&to),
                reverse: false,
            },
            |_, ns| {
                out.push(ns);
                Ok(true)
            },
        )?;
        Ok(out)
    })
}

/// One namespace of cluster `cluster`.
pub fn namespace(store: &Store, cluster: u64, name: &str) -> Result<Namespace, WorkloadError> {
    store
        .read(|r| r.get(&NAMESPACES, &ns_key(cluster, name)))?
        .ok_or_else(|| {
            WorkloadError::NotFound(format!(
                "cluster {cluster} has no namespace '{}' in its inventory",
                name.chars().take(63).collect::<String>()
            ))
        })
}
