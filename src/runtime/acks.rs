//! Acknowledgements: someone looked at an event, or at a kind of anomaly (a signature), and
//! says so with a note. Acknowledged events leave the console's default view; nothing is
//! deleted. A signature's acknowledgement covers its events up to the moment it was given (the
//! newest stored id then): the next occurrence shows again.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{RuntimeError, EVENTS, SIGNATURES};
use crate::audit::{self, Event as AuditEvent};
use crate::store::{Scan, Store, StoreError, Table};

/// Longest note kept.
const MAX_NOTE: usize = 2_000;

/// Who acknowledged, when, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub note: String,
    /// For a signature: the events it covers are those with ids up to this one.
    #[serde(default)]
    pub through: u64,
}

/// Event id → its acknowledgement.
pub const EVENT_ACKS: Table<u64, Ack> = Table::new("runtime_event_acks");
/// Signature → its acknowledgement.
pub const SIGNATURE_ACKS: Table<String, Ack> = Table::new("runtime_signature_acks");

/// Every acknowledgement, in memory, so a list can tell acknowledged events apart without
/// reading two more tables per event.
#[derive(Default)]
pub struct Acks {
    inner: RwLock<Known>,
}

#[derive(Default, Clone)]
struct Known {
    events: HashSet<u64>,
    /// Signature → the newest event id it covers.
    signatures: HashMap<String, u64>,
}

impl Acks {
    /// Reads every acknowledgement from the store.
    pub fn load(store: &Store) -> Result<Acks, StoreError> {
        let mut k = Known::default();
        store.read(|r| {
            r.scan(&EVENT_ACKS, Scan::default(), |id: u64, _: Ack| {
                k.events.insert(id);
                Ok(true)
            })?;
            r.scan(&SIGNATURE_ACKS, Scan::default(), |s: String, a: Ack| {
                k.signatures.insert(s, a.through);
                Ok(true)
            })
        })?;
        Ok(Acks {
            inner: RwLock::new(k),
        })
    }

    /// Whether event `id` of `signature` is acknowledged (itself or through its signature).
    pub fn covers(&self, id: u64, signature: &str) -> bool {
        self.inner.read().is_ok_and(|k| {
            k.events.contains(&id) || k.signatures.get(signature).is_some_and(|t| id <= *t)
        })
    }

    /// The acknowledged event ids and signatures (for a scan over many events).
    pub fn snapshot(&self) -> (HashSet<u64>, HashMap<String, u64>) {
        self.inner
            .read()
            .map(|k| (k.events.clone(), k.signatures.clone()))
            .unwrap_or_default()
    }

    /// Whether nothing is acknowledged (every event is unacknowledged).
    pub fn is_empty(&self) -> bool {
        self.inner
            .read()
            .is_ok_and(|k| k.events.is_empty() && k.signatures.is_empty())
    }

    fn set_event(&self, id: u64, on: bool) {
        if let Ok(mut k) = self.inner.write() {
            if on {
                k.events.insert(id);
            } else {
                k.events.remove(&id);
            }
        }
    }

    fn set_signature(&self, s: &str, through: Option<u64>) {
        if let Ok(mut k) = self.inner.write() {
            match through {
                Some(t) => k.signatures.insert(s.to_string(), t),
                None => k.signatures.remove(s),
            };
        }
    }

    /// Forgets acknowledgements of events retention deleted (ids up to `last_deleted`).
    pub fn drop_through(&self, last_deleted: u64) {
        if let Ok(mut k) = self.inner.write() {
            k.events.retain(|id| *id > last_deleted);
        }
    }
}

fn note(n: &str) -> String {
    n.trim().chars().take(MAX_NOTE).collect()
}

/// Acknowledges event `id` (again: the note and time are replaced).
pub fn ack_event(
    store: &Store,
    acks: &Acks,
    actor: &str,
    id: u64,
    text: &str,
) -> Result<Ack, RuntimeError> {
    let a = store.write(|w| {
        if w.get(&EVENTS, &id)?.is_none() {
            return Err(RuntimeError::NotFound(format!("no falco event {id}")));
        }
        let a = Ack {
            by: actor.to_string(),
            at: Utc::now(),
            note: note(text),
            through: id,
        };
        w.put(&EVENT_ACKS, &id, &a)?;
        audit::record(
            w,
            AuditEvent::new(actor, "falco.event.ack", format!("falco-event:{id}")),
        )?;
        Ok(a)
    })?;
    acks.set_event(id, true);
    Ok(a)
}

/// Withdraws event `id`'s acknowledgement.
pub fn unack_event(store: &Store, acks: &Acks, actor: &str, id: u64) -> Result<(), RuntimeError> {
    store.write(|w| {
        if !w.delete(&EVENT_ACKS, &id)? {
            return Err(RuntimeError::NotFound(format!(
                "falco event {id} is not acknowledged"
            )));
        }
        audit::record(
            w,
            AuditEvent::new(actor, "falco.event.unack", format!("falco-event:{id}")),
        )?;
        Ok(())
    })?;
    acks.set_event(id, false);
    Ok(())
}

/// Acknowledges signature `sig`: its events stored so far.
pub fn ack_signature(
    store: &Store,
    acks: &Acks,
    actor: &str,
    sig: &str,
    text: &str,
) -> Result<Ack, RuntimeError> {
    // Events committed after this read are not covered: they show, which is the safe side.
    let newest = newest_id(store)?;
    let a = store.write(|w| {
        if w.get(&SIGNATURES, &sig.to_string())?.is_none() {
            return Err(RuntimeError::NotFound(format!(
                "no falco signature '{}'",
                sig.chars().take(40).collect::<String>()
            )));
        }
        let a = Ack {
            by: actor.to_string(),
            at: Utc::now(),
            note: note(text),
            through: newest,
        };
        w.put(&SIGNATURE_ACKS, &sig.to_string(), &a)?;
        audit::record(
            w,
            AuditEvent::new(
                actor,
                "falco.signature.ack",
                format!("falco-signature:{sig}"),
            ),
        )?;
        Ok(a)
    })?;
    acks.set_signature(sig, Some(a.through));
    Ok(a)
}

/// The newest stored event's id (0: none).
pub fn newest_id(store: &Store) -> Result<u64, StoreError> {
    let mut newest = 0;
    store.read(|r| {
        r.scan(
            &EVENTS,
            Scan {
                reverse: true,
                ..Scan::default()
            },
            |id: u64, _: super::Event| {
                newest = id;
                Ok(false)
            },
        )
    })?;
    Ok(newest)
}

/// Withdraws signature `sig`'s acknowledgement.
pub fn unack_signature(
    store: &Store,
    acks: &Acks,
    actor: &str,
    sig: &str,
) -> Result<(), RuntimeError> {
    store.write(|w| {
        if !w.delete(&SIGNATURE_ACKS, &sig.to_string())? {
            return Err(RuntimeError::NotFound(format!(
                "falco signature '{}' is not acknowledged",
                sig.chars().take(40).collect::<String>()
            )));
        }
        audit::record(
            w,
            AuditEvent::new(
                actor,
                "falco.signature.unack",
                format!("falco-signature:{sig}"),
            ),
        )?;
        Ok(())
    })?;
    acks.set_signature(sig, None);
    Ok(())
}

/// The acknowledgement that covers event `e`: its own, else its signature's.
pub fn of_event(store: &Store, e: &super::Event) -> Result<Option<Ack>, StoreError> {
    store.read(|r| {
        if let Some(a) = r.get(&EVENT_ACKS, &e.id)? {
            return Ok(Some(a));
        }
        Ok(r.get(&SIGNATURE_ACKS, &e.signature)?
            .filter(|a| e.id <= a.through))
    })
}

/// Every signature acknowledgement.
pub fn signatures(store: &Store) -> Result<HashMap<String, Ack>, StoreError> {
    Ok(store
        .read(|r| r.all(&SIGNATURE_ACKS))?
        .into_iter()
        .collect())
}
