//! Cluster audits run inside the clusters and sent to Bulwark: kube-bench (the CIS benchmark,
//! `bench.rs`) and kube-hunter (a penetration test, `hunter.rs`). Both upload to m9sweeper's
//! paths with a key holding the tool's scope, so existing CronJobs keep working; runs are kept
//! per cluster (the newest thousand), with pages, CSV, trends and the manifests that run the
//! tools in a cluster (`manifests.rs`).

pub mod api;
pub mod bench;
pub mod hunter;
pub mod manifests;
mod pages;

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

/// Records run `id` of cluster `cluster` in `index` (cluster → its run ids, oldest first) and
/// deletes the runs beyond the newest `keep` from `table`.
fn keep_newest<V>(
    w: &WriteTx,
    table: &Table<(u64, u64), V>,
    index: &Table<u64, Vec<u64>>,
    cluster: u64,
    id: u64,
    keep: usize,
) -> Result<(), StoreError>
where
    V: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut ids = w.get(index, &cluster)?.unwrap_or_default();
    ids.push(id);
    if ids.len() > keep {
        for old in ids.drain(..ids.len() - keep) {
            w.delete(table, &(cluster, old))?;
        }
    }
    w.put(index, &cluster, &ids)
}

/// Drops cluster `cluster`'s runs of `table` and its `index`.
fn drop_runs<V>(
    w: &WriteTx,
    table: &Table<(u64, u64), V>,
    index: &Table<u64, Vec<u64>>,
    cluster: u64,
) -> Result<(), StoreError>
where
    V: serde::Serialize + serde::de::DeserializeOwned,
{
    for id in w.get(index, &cluster)?.unwrap_or_default() {
        w.delete(table, &(cluster, id))?;
    }
    w.delete(index, &cluster)?;
    Ok(())
}

/// Drops a deleted cluster's audits, inside its delete transaction.
pub fn forget(w: &WriteTx, cluster: u64) -> Result<(), StoreError> {
    bench::forget(w, cluster)?;
    hunter::forget(w, cluster)
}
