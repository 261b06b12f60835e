//! One writer commits events in groups: a request hands its event over and waits for the
//! commit that holds it, so every 2xx means the event is on disk, and under load one
//! transaction carries hundreds of events instead of one fsync each.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{Event, RuntimeError, Signature, DAILY, EVENTS, SIGNATURES, TOTALS, UUIDS};
use crate::store::{Store, StoreError, WriteTx};

/// Events one transaction carries at most.
const GROUP: usize = 1_000;
/// Events waiting for the writer at most; a full queue answers 503 rather than growing.
const QUEUE: usize = 20_000;

/// What became of a submitted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored under this id.
    New(u64),
    /// A retry of an event already stored under this id.
    Duplicate(u64),
}

type Reply = oneshot::Sender<Result<Stored, String>>;

/// The handle requests submit through.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<(Event, Reply)>,
}

impl Ingest {
    /// Starts the writer thread over `store`, appending what it commits to `index`; it ends
    /// when every handle is dropped. `base_url` starts the links in alert mails.
    pub fn start(
        store: Store,
        index: std::sync::Arc<super::index::Index>,
        base_url: String,
        guard: super::retention::Guard,
    ) -> Ingest {
        let (tx, mut rx) = mpsc::channel::<(Event, Reply)>(QUEUE);
        std::thread::Builder::new()
            .name("falco-ingest".into())
            .spawn(move || {
                while let Some(first) = rx.blocking_recv() {
                    let mut batch = vec![first];
                    while batch.len() < GROUP {
                        match rx.try_recv() {
                            Ok(next) => batch.push(next),
                            Err(_) => break,
                        }
                    }
                    let (events, replies): (Vec<Event>, Vec<Reply>) = batch.into_iter().unzip();
                    match commit_counted(&store, events, &base_url) {
                        Ok((outcomes, stored, totals)) => {
                            index.append(&stored);
                            guard.check(totals);
                            for (r, o) in replies.into_iter().zip(outcomes) {
                                let _ = r.send(Ok(o));
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "falco events not stored");
                            for r in replies {
                                let _ = r.send(Err(e.to_string()));
                            }
                        }
                    }
                }
            })
            .expect("the ingest thread starts");
        Ingest { tx }
    }

    /// Submits one event and waits until it is committed.
    pub async fn submit(&self, e: Event) -> Result<Stored, RuntimeError> {
        let (reply, answer) = oneshot::channel();
        self.tx.try_send((e, reply)).map_err(|e| {
            RuntimeError::Unavailable(match e {
                mpsc::error::TrySendError::Full(_) => "the event queue is full; retry".into(),
                mpsc::error::TrySendError::Closed(_) => "the appliance is stopping".into(),
            })
        })?;
        match tokio::time::timeout(Duration::from_secs(30), answer).await {
            Ok(Ok(Ok(s))) => Ok(s),
            Ok(Ok(Err(e))) => Err(RuntimeError::Unavailable(e)),
            Ok(Err(_)) => Err(RuntimeError::Unavailable("the writer stopped".into())),
            Err(_) => Err(RuntimeError::Unavailable(
                "the commit took over 30 s".into(),
            )),
        }
    }
}

/// Stores `events` in one transaction, in order; a uuid seen before (or twice in the group)
/// is answered with the first event's id; alerts due are queued in the same transaction.
/// Returns each outcome and the events stored.
pub fn commit(
    store: &Store,
    events: Vec<Event>,
    base_url: &str,
) -> Result<(Vec<Stored>, Vec<Event>), StoreError> {
    commit_counted(store, events, base_url).map(|(out, stored, _)| (out, stored))
}

/// [`commit`], also answering the totals after it (what the size guard checks).
fn commit_counted(
    store: &Store,
    events: Vec<Event>,
    base_url: &str,
) -> Result<(Vec<Stored>, Vec<Event>, super::Totals), StoreError> {
    store.write(|w| {
        let mut out = Vec::with_capacity(events.len());
        let mut stored = Vec::with_capacity(events.len());
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut totals = w.get(&TOTALS, &super::totals_key())?.unwrap_or_default();
        for mut e in events {
            if !e.uuid.is_empty() {
                if let Some(id) = seen.get(&e.uuid).copied() {
                    out.push(Stored::Duplicate(id));
                    continue;
                }
                if let Some(id) = w.get(&UUIDS, &e.uuid)? {
                    out.push(Stored::Duplicate(id));
                    continue;
                }
            }
            e.id = w.next_id("runtime_events")?;
            if !e.uuid.is_empty() {
                w.put(&UUIDS, &e.uuid, &e.id)?;
                seen.insert(e.uuid.clone(), e.id);
            }
            count(w, &e)?;
            totals.events += 1;
            totals.bytes += super::size_of(&e);
            w.put(&EVENTS, &e.id, &e)?;
            out.push(Stored::New(e.id));
            stored.push(e);
        }
        w.put(&TOTALS, &super::totals_key(), &totals)?;
        super::alerts::on_commit(w, &stored, base_url)?;
        Ok((out, stored, totals))
    })
}

fn count(w: &WriteTx, e: &Event) -> Result<(), StoreError> {
    let mut s = w
        .get(&SIGNATURES, &e.signature)?
        .unwrap_or_else(|| Signature {
            signature: e.signature.clone(),
            cluster: e.cluster,
            rule: e.rule.clone(),
            namespace: e.namespace.clone(),
            image: e.image.clone(),
            count: 0,
            first: e.time,
            last: e.time,
            worst: e.priority.clone(),
            last_id: e.id,
        });
    s.count += 1;
    s.last_id = s.last_id.max(e.id);
    s.first = s.first.min(e.time);
    s.last = s.last.max(e.time);
    let rank = |p: &str| super::event::rank(p).unwrap_or(usize::MAX);
    if rank(&e.priority) < rank(&s.worst) {
        s.worst = e.priority.clone();
    }
    w.put(&SIGNATURES, &e.signature, &s)?;
    let key = format!("{:020}/{}/{}", e.cluster, e.time.date_naive(), e.priority);
    let n = w.get(&DAILY, &key)?.unwrap_or(0);
    w.put(&DAILY, &key, &(n + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn event(uuid: &str) -> Event {
        let body = serde_json::json!({"uuid": uuid, "rule": "R", "priority": "Notice",
            "output": "o", "time": "2026-01-01T00:00:00Z"});
        super::super::event::parse(1, body.to_string().as_bytes(), Utc::now()).unwrap()
    }

    #[test]
    fn a_group_stores_each_uuid_once_and_counts_signatures() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::app::migrations()).unwrap();
        let (out, stored) = commit(
            &store,
            vec![event("a"), event("b"), event("a"), event("")],
            "",
        )
        .unwrap();
        assert_eq!(stored.len(), 3);
        assert!(matches!(out[0], Stored::New(_)));
        assert!(matches!(out[1], Stored::New(_)));
        assert_eq!(
            out[2],
            Stored::Duplicate(match out[0] {
                Stored::New(i) => i,
                _ => 0,
            })
        );
        assert!(matches!(out[3], Stored::New(_)));
        let (again, _) = commit(&store, vec![event("b")], "").unwrap();
        assert_eq!(again[0], out[1].into_dup());
        let sig = store.read(|r| r.all(&SIGNATURES)).unwrap();
        assert_eq!(sig.len(), 1);
        assert_eq!(sig[0].1.count, 3);
    }

    impl Stored {
        fn into_dup(self) -> Stored {
            match self {
                Stored::New(i) | Stored::Duplicate(i) => Stored::Duplicate(i),
            }
        }
    }
}
