//! What the inventory puts in the search index: each namespace and workload of each cluster
//! (found by name, kind, cluster and the images it runs). A cluster's documents form one group,
//! replaced after each sync or upload. Pods are not indexed one by one: their names start with
//! their workload's.

use crate::search::{Doc, Search, Source};
use crate::store::{Store, StoreError};

fn group(cluster: u64) -> String {
    format!("inventory:{cluster}")
}

/// The documents of cluster `cluster`'s inventory.
pub fn docs(store: &Store, cluster: u64) -> Result<Vec<Doc>, StoreError> {
    let name = crate::clusters::get(store, cluster)
        .map(|c| c.name)
        .unwrap_or_else(|_| cluster.to_string());
    let mut out = Vec::new();
    for ns in super::namespaces(store, cluster)? {
        let url = format!("/clusters/{cluster}/namespaces/{}", urlencode(&ns.name));
        out.push(Doc {
            kind: "namespace",
            id: format!("{cluster}/{}", ns.name),
            title: format!("namespace {} in {name}", ns.name),
            body: ns
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            url: url.clone(),
            group: group(cluster),
        });
        for w in &ns.workloads {
            out.push(Doc {
                kind: "workload",
                id: format!("{cluster}/{}/{}/{}", ns.name, w.kind, w.name),
                title: format!("{}/{}/{} in {name}", ns.name, w.kind, w.name),
                body: w.images.join(" "),
                url: url.clone(),
                group: group(cluster),
            });
        }
    }
    Ok(out)
}

/// Minimal percent-encoding for a path segment (Kubernetes names need none; labels might).
fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Replaces cluster `cluster`'s documents. Best effort: the index is rebuilt from the store
/// when it is found stale, so a failure here is logged, not returned.
pub fn reindex(search: &Search, store: &Store, cluster: u64) {
    let result = docs(store, cluster)
        .map_err(|e| e.to_string())
        .and_then(|d| {
            search
                .replace_group(&group(cluster), &d)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = result {
        tracing::warn!(cluster, error = %e, "search: the inventory was not reindexed");
    }
}

/// Every cluster's inventory, for a rebuild.
pub fn source() -> Source {
    Source {
        kind: "workload",
        documents: |store, emit| {
            for s in super::summaries(store)? {
                docs(store, s.cluster)?.into_iter().for_each(&mut *emit);
            }
            Ok(())
        },
    }
}
