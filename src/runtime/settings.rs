//! Per-cluster settings for Falco events: the minimum priority kept (events below it are
//! dropped like an ignore rule's; priorities Falco does not define are always kept).

use serde::{Deserialize, Serialize};

use super::{event, RuntimeError};
use crate::audit::{self, Event as AuditEvent};
use crate::store::{Store, StoreError, Table};

/// A cluster's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Events less severe than this are not stored (empty: every priority).
    pub min_priority: String,
}

/// Cluster → its settings.
const SETTINGS: Table<u64, Settings> = Table::new("runtime_settings");

/// Cluster `cluster`'s settings (defaults when never set).
pub fn get(store: &Store, cluster: u64) -> Result<Settings, StoreError> {
    Ok(store
        .read(|r| r.get(&SETTINGS, &cluster))?
        .unwrap_or_default())
}

/// Replaces cluster `cluster`'s settings.
pub fn put(
    store: &Store,
    actor: &str,
    cluster: u64,
    s: Settings,
) -> Result<Settings, RuntimeError> {
    let min = s.min_priority.trim();
    let s = Settings {
        min_priority: if min.is_empty() {
            String::new()
        } else {
            let rank = event::rank(min).ok_or_else(|| {
                RuntimeError::Invalid(format!(
                    "min_priority: one of {}",
                    event::PRIORITIES.join(", ")
                ))
            })?;
            event::PRIORITIES[rank].to_string()
        },
    };
    store.write(|w| {
        if w.get(&crate::clusters::CLUSTERS, &cluster)?.is_none() {
            return Err(RuntimeError::NotFound(format!(
                "cluster {cluster} not found"
            )));
        }
        w.put(&SETTINGS, &cluster, &s)?;
        audit::record(
            w,
            AuditEvent::new(actor, "falco.settings", format!("cluster:{cluster}"))
                .detail(format!("min_priority={}", s.min_priority)),
        )?;
        Ok(s.clone())
    })
}

/// Whether an event of `priority` is below the cluster's minimum.
pub fn below_minimum(s: &Settings, priority: &str) -> bool {
    match (event::rank(&s.min_priority), event::rank(priority)) {
        (Some(min), Some(p)) => p > min,
        _ => false,
    }
}

/// Drops a deleted cluster's settings, inside its delete transaction.
pub fn forget(w: &crate::store::WriteTx, cluster: u64) -> Result<(), StoreError> {
    w.delete(&SETTINGS, &cluster)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimums_compare_falco_ranks_and_keep_unknown_priorities() {
        let s = Settings {
            min_priority: "warning".into(),
        };
        assert!(below_minimum(&s, "notice"));
        assert!(!below_minimum(&s, "warning"));
        assert!(!below_minimum(&s, "critical"));
        assert!(!below_minimum(&s, "Loud"));
        assert!(!below_minimum(&Settings::default(), "debug"));
    }
}
