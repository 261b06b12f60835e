//! The audits' Prometheus gauges: per cluster, the checks of its latest kube-bench run per node
//! by status (waived failures counted apart), and the vulnerabilities of its latest kube-hunter
//! run by severity. Set when a report arrives or a waiver changes, and for every cluster at start.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::{bench, hunter};
use crate::store::Store;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BenchLabels {
    cluster: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HunterLabels {
    cluster: String,
    severity: String,
}

/// The gauges (one per appliance, in `DomainData`).
#[derive(Clone, Default)]
pub struct AuditMetrics {
    bench: Family<BenchLabels, Gauge>,
    hunter: Family<HunterLabels, Gauge>,
}

impl AuditMetrics {
    /// Registers the gauges.
    pub fn new(metrics: &crate::http::metrics::Metrics) -> AuditMetrics {
        let m = AuditMetrics::default();
        metrics.register(
            "kube_bench_checks",
            "Checks of each node's latest kube-bench run, summed per cluster, by status (fail: not waived)",
            m.bench.clone(),
        );
        metrics.register(
            "kube_hunter_vulnerabilities",
            "Vulnerabilities of the cluster's latest kube-hunter run, by severity",
            m.hunter.clone(),
        );
        m
    }

    /// Sets cluster `id`'s gauges from the store. Best effort: a failed read leaves them.
    pub fn refresh(&self, store: &Store, id: u64, name: &str) {
        if let (Ok(latest), Ok(waivers)) =
            (bench::latest_by_node(store, id), bench::waivers(store, id))
        {
            let lines = bench::lines(&latest, &waivers);
            let sum = |f: fn(&bench::RunLine) -> u64| lines.iter().map(f).sum::<u64>();
            for (status, n) in [
                ("pass", sum(|l| l.totals.pass)),
                ("fail", sum(|l| l.totals.fail.saturating_sub(l.waived))),
                ("waived", sum(|l| l.waived)),
                ("warn", sum(|l| l.totals.warn)),
                ("info", sum(|l| l.totals.info)),
            ] {
                self.bench
                    .get_or_create(&BenchLabels {
                        cluster: name.to_string(),
                        status: status.into(),
                    })
                    .set(n as i64);
            }
        }
        if let Ok(Some(last)) = hunter::lines(store, id, 1).map(|v| v.into_iter().next()) {
            for (severity, n) in [
                ("high", last.counts.high),
                ("medium", last.counts.medium),
                ("low", last.counts.low),
                ("unknown", last.counts.unknown),
            ] {
                self.hunter
                    .get_or_create(&HunterLabels {
                        cluster: name.to_string(),
                        severity: severity.into(),
                    })
                    .set(n as i64);
            }
        }
    }

    /// Sets every cluster's gauges (at start).
    pub fn refresh_all(&self, store: &Store) {
        if let Ok(clusters) = crate::clusters::list(store) {
            for c in clusters {
                self.refresh(store, c.id, &c.name);
            }
        }
    }
}
