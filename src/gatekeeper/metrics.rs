//! The Gatekeeper gauge: per cluster, the violations of its last audit by enforcement action
//! (excused ones apart). Audits run from syncs, uploads, jobs and requests alike, so the
//! family is one per process and every registry of the process shows it.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::audit::Run;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    cluster: String,
    action: String,
}

fn family() -> &'static Family<Labels, Gauge> {
    static F: OnceLock<Family<Labels, Gauge>> = OnceLock::new();
    F.get_or_init(Family::default)
}

/// Registers the gauge with the appliance's metrics.
pub fn register(metrics: &crate::http::metrics::Metrics) {
    metrics.register(
        "gatekeeper_violations",
        "Violations found by the cluster's last Gatekeeper audit, by enforcement action (excused: covered by an exception)",
        family().clone(),
    );
}

/// Sets cluster `name`'s gauge from its last audit.
pub fn record(name: &str, run: &Run) {
    for action in ["deny", "warn", "dryrun"] {
        let n: usize = run
            .constraints
            .iter()
            .filter(|t| t.action.as_str() == action)
            .map(|t| t.violations)
            .sum();
        family()
            .get_or_create(&Labels {
                cluster: name.to_string(),
                action: action.to_string(),
            })
            .set(n as i64);
    }
    let excused: usize = run.constraints.iter().map(|t| t.excused).sum();
    family()
        .get_or_create(&Labels {
            cluster: name.to_string(),
            action: "excused".to_string(),
        })
        .set(excused as i64);
}
