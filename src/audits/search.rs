//! What the audits put in the search index: each kube-bench run (by node, benchmark and failing
//! check ids) and each kube-hunter run (by KHV id, vulnerability and location), one group per run.

use super::{bench, hunter};
use crate::search::{Doc, Search, Source};
use crate::store::Store;

fn bench_doc(cluster: &crate::clusters::Cluster, r: &bench::Summary) -> Doc {
    Doc {
        kind: "kube-bench",
        id: r.id.to_string(),
        title: format!(
            "kube-bench on {} in {} ({}, {} failing)",
            r.node,
            cluster.name,
            r.uploaded_at.format("%Y-%m-%d"),
            r.totals.fail
        ),
        body: format!("{} {}", r.version, r.failing.join(" ")),
        url: format!("/clusters/{}/kube-bench/{}", cluster.id, r.id),
        group: format!("kube-bench:{}", r.id),
    }
}

fn hunter_doc(cluster: &crate::clusters::Cluster, r: &hunter::Run) -> Doc {
    Doc {
        kind: "kube-hunter",
        id: r.id.to_string(),
        title: format!(
            "kube-hunter in {} ({}, {} high)",
            cluster.name,
            r.uploaded_at.format("%Y-%m-%d"),
            r.counts.high
        ),
        body: r
            .vulnerabilities
            .iter()
            .map(|v| format!("{} {} {}", v.vid, v.vulnerability, v.location))
            .collect::<Vec<_>>()
            .join(" "),
        url: format!("/clusters/{}/kube-hunter/{}", cluster.id, r.id),
        group: format!("kube-hunter:{}", r.id),
    }
}

/// Indexes a new kube-bench run. Best effort, as every incremental index update.
pub fn index_bench(search: &Search, store: &Store, cluster: u64, r: &bench::Run) {
    if let Ok(c) = crate::clusters::get(store, cluster) {
        let d = bench_doc(&c, &bench::Summary::from(r));
        if let Err(e) = search.replace_group(&d.group.clone(), &[d]) {
            tracing::warn!(error = %e, "search: a kube-bench run was not indexed");
        }
    }
}

/// Indexes a new kube-hunter run.
pub fn index_hunter(search: &Search, store: &Store, cluster: u64, r: &hunter::Run) {
    if let Ok(c) = crate::clusters::get(store, cluster) {
        let d = hunter_doc(&c, r);
        if let Err(e) = search.replace_group(&d.group.clone(), &[d]) {
            tracing::warn!(error = %e, "search: a kube-hunter run was not indexed");
        }
    }
}

/// Every run, for a rebuild.
pub fn sources() -> Vec<Source> {
    vec![
        Source {
            kind: "kube-bench",
            documents: |store, emit| {
                for c in crate::clusters::list(store)? {
                    for r in bench::summaries(store, c.id, usize::MAX)? {
                        emit(bench_doc(&c, &r));
                    }
                }
                Ok(())
            },
        },
        Source {
            kind: "kube-hunter",
            documents: |store, emit| {
                for c in crate::clusters::list(store)? {
                    for l in hunter::lines(store, c.id, usize::MAX)? {
                        if let Ok(r) = hunter::run(store, c.id, l.id) {
                            emit(hunter_doc(&c, &r));
                        }
                    }
                }
                Ok(())
            },
        },
    ]
}
