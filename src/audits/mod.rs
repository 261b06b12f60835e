//! Cluster audits run inside the clusters and sent to Bulwark: kube-bench (the CIS benchmark,
//! `bench.rs`) and kube-hunter (a penetration test, `hunter.rs`). Both upload to m9sweeper's
//! paths with a key holding the tool's scope, so existing CronJobs keep working; runs are kept
//! per cluster (the newest thousand), with pages, CSV, trends and the manifests that run the
//! tools in a cluster (`manifests.rs`).

pub mod api;
pub mod bench;
pub mod hunter;
pub mod manifests;
pub mod metrics;
mod pages;
pub mod search;

use crate::http::ApiError;
use crate::store::{Scan, Store, StoreError, StoreKey, Table, WriteTx};

/// Why an audit request failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Invalid(m) => ApiError::bad_request(m),
            AuditError::NotFound(m) => ApiError::not_found(m),
            AuditError::Store(e) => e.into(),
        }
    }
}

/// A node name given with an upload: a Kubernetes name.
fn valid_node(n: &str) -> Result<String, AuditError> {
    if n.len() > 253
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(AuditError::Invalid(
            "node: a node name (letters, digits, '-', '.', '_'; at most 253)".into(),
        ));
    }
    Ok(n.to_string())
}

/// The key range of one cluster in a `(cluster, id)` table.
fn bounds(cluster: u64) -> (Vec<u8>, Vec<u8>) {
    ((cluster, 0).encode(), (cluster, u64::MAX).encode())
}

/// Cluster `cluster`'s newest `limit` entries of `table`, newest first.
fn newest<V>(
    store: &Store,
    table: &Table<(u64, u64), V>,
    cluster: u64,
    limit: usize,
) -> Result<Vec<V>, StoreError>
where
    V: serde::Serialize + serde::de::DeserializeOwned,
{
    let (from, to) = bounds(cluster);
    let mut out = Vec::new();
    store.read(|r| {
        r.scan(
            table,
            Scan {
                from: Some(&from),
                to: Some(&to),
                reverse: true,
            },
            |_, v| {
                out.push(v);
                Ok(out.len() < limit)
            },
        )
    })?;
    Ok(out)
}

/// Records run `id` of cluster `cluster` in `index` (cluster → its run ids, oldest first);
/// returns the ids beyond the newest `keep`, which the caller deletes.
fn keep_newest(
    w: &WriteTx,
    index: &Table<u64, Vec<u64>>,
    cluster: u64,
    id: u64,
    keep: usize,
) -> Result<Vec<u64>, StoreError> {
    let mut ids = w.get(index, &cluster)?.unwrap_or_default();
    ids.push(id);
    let gone = if ids.len() > keep {
        ids.drain(..ids.len() - keep).collect()
    } else {
        Vec::new()
    };
    w.put(index, &cluster, &ids)?;
    Ok(gone)
}

/// Forgets cluster `cluster`'s `index`; returns the run ids it held, which the caller deletes.
fn drop_index(
    w: &WriteTx,
    index: &Table<u64, Vec<u64>>,
    cluster: u64,
) -> Result<Vec<u64>, StoreError> {
    let ids = w.get(index, &cluster)?.unwrap_or_default();
    w.delete(index, &cluster)?;
    Ok(ids)
}

/// Drops a deleted cluster's audits, inside its delete transaction.
pub fn forget(w: &WriteTx, cluster: u64) -> Result<(), StoreError> {
    bench::forget(w, cluster)?;
    hunter::forget(w, cluster)
}
