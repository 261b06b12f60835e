//! Retention of Falco events: older than a number of days (by arrival) or beyond a total size,
//! whichever comes first, oldest first. Deletion runs in short transactions of a few thousand
//! events, so the ingest writer commits between them and never waits long.

use chrono::{Duration, Utc};

use super::{size_of, totals_key, Event, Totals, EVENTS, TOTALS, UUIDS};
use crate::store::{Store, StoreError};

/// Events deleted per transaction.
const BATCH: usize = 250;
/// Pause between two deleting transactions, so the ingest writer (waiting on the store's write
/// lock) commits in between rather than after the whole deletion.
const BREATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// What one enforcement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub deleted: u64,
    pub left: Totals,
    /// The newest id deleted (every older one is gone too).
    pub last_deleted: Option<u64>,
    /// The longest deleting transaction, commit included: the longest a writer waited on it.
    pub longest: std::time::Duration,
}

/// Deletes events older than `days` or while the events take more than `max_bytes`.
pub fn enforce(store: &Store, days: u64, max_bytes: u64) -> Result<Pruned, StoreError> {
    let cutoff = Utc::now() - Duration::days(days.min(100_000) as i64);
    let mut deleted = 0;
    let mut last_deleted = None;
    let mut longest = std::time::Duration::ZERO;
    loop {
        let started = std::time::Instant::now();
        let (n, totals, last) = store.write(|w| {
            let mut totals = w.get(&TOTALS, &totals_key())?.unwrap_or_default();
            let mut n = 0;
            let mut last = None;
            for id in w.first_keys(&EVENTS, BATCH)? {
                let Some(e): Option<Event> = w.get(&EVENTS, &id)? else {
                    continue;
                };
                if e.received >= cutoff && totals.bytes <= max_bytes {
                    break;
                }
                w.delete(&EVENTS, &id)?;
                w.delete(&super::acks::EVENT_ACKS, &id)?;
                if !e.uuid.is_empty() && w.get(&UUIDS, &e.uuid)? == Some(id) {
                    w.delete(&UUIDS, &e.uuid)?;
                }
                totals.events = totals.events.saturating_sub(1);
                totals.bytes = totals.bytes.saturating_sub(size_of(&e));
                n += 1;
                last = Some(id);
            }
            if n > 0 {
                w.put(&TOTALS, &totals_key(), &totals)?;
            }
            Ok::<_, StoreError>((n, totals, last))
        })?;
        longest = longest.max(started.elapsed());
        deleted += n;
        last_deleted = last.or(last_deleted);
        if n < BATCH as u64 {
            return Ok(Pruned {
                deleted,
                left: totals,
                last_deleted,
                longest,
            });
        }
        std::thread::sleep(BREATHER);
    }
}

/// How long and how much is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub days: u64,
    pub max_bytes: u64,
}

/// Retention run at once when the writer sees the size limit passed, so a flood is trimmed as
/// it arrives rather than at the job's next run.
#[derive(Clone)]
pub struct Guard {
    wake: std::sync::mpsc::SyncSender<()>,
    max_bytes: u64,
}

impl Guard {
    /// Starts the thread that enforces `limits` whenever [`Guard::check`] finds them passed,
    /// dropping what it deletes from `index` and `acks`.
    pub fn start(
        store: Store,
        limits: Limits,
        index: std::sync::Arc<super::index::Index>,
        acks: std::sync::Arc<super::acks::Acks>,
    ) -> Guard {
        // One pending wake-up is enough: a run trims everything over the limit.
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let spawned = std::thread::Builder::new()
            .name("falco-size-guard".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    match enforce(&store, limits.days, limits.max_bytes) {
                        Ok(p) => {
                            if let Some(last) = p.last_deleted {
                                index.drop_through(last);
                                acks.drop_through(last);
                            }
                            tracing::info!(
                                deleted = p.deleted,
                                kept = p.left.events,
                                "falco events over the size limit trimmed"
                            );
                        }
                        Err(e) => tracing::error!(error = %e, "falco retention failed"),
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "no size guard for falco events; the job still runs");
        }
        Guard {
            wake,
            max_bytes: limits.max_bytes,
        }
    }

    /// Wakes the guard when `totals` passes the size limit.
    pub fn check(&self, totals: Totals) {
        if totals.bytes > self.max_bytes {
            let _ = self.wake.try_send(());
        }
    }
}

/// The current totals.
pub fn totals(store: &Store) -> Result<Totals, StoreError> {
    Ok(store
        .read(|r| r.get(&TOTALS, &totals_key()))?
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(uuid: &str) -> Event {
        let body = serde_json::json!({"uuid": uuid, "rule": "R", "priority": "Notice",
            "output": "o".repeat(500), "time": "2026-01-01T00:00:00Z"});
        super::super::event::parse(1, body.to_string().as_bytes(), Utc::now()).unwrap()
    }

    #[test]
    fn oldest_first_by_size_and_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::app::migrations()).unwrap();
        let events: Vec<Event> = (0..5_000).map(|i| event(&format!("u{i}"))).collect();
        super::super::ingest::commit(&store, events, "").unwrap();
        let all = totals(&store).unwrap();
        assert_eq!(all.events, 5_000);
        // Half the size: the oldest half goes, uuids with them.
        let p = enforce(&store, 30, all.bytes / 2).unwrap();
        assert!((2_400..=2_600).contains(&p.deleted), "{p:?}");
        assert!(p.left.bytes <= all.bytes / 2);
        assert_eq!(p.left.events, 5_000 - p.deleted);
        let first = store.write(|w| w.first_keys(&EVENTS, 1)).unwrap()[0];
        assert_eq!(first, p.deleted + 1);
        assert!(store
            .read(|r| r.get(&UUIDS, &"u0".to_string()))
            .unwrap()
            .is_none());
        assert!(store
            .read(|r| r.get(&UUIDS, &"u4999".to_string()))
            .unwrap()
            .is_some());
        // Nothing is old enough and the size fits: nothing goes.
        assert_eq!(enforce(&store, 30, u64::MAX).unwrap().deleted, 0);
        // Age: an event that arrived 31 days ago goes.
        let mut old = event("old");
        old.received = Utc::now() - Duration::days(31);
        store
            .write(|w| {
                w.put(&EVENTS, &0, &old)?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        assert_eq!(enforce(&store, 30, u64::MAX).unwrap().deleted, 1);
    }
}
