//! The events' columns kept in memory, so a filtered list with its total over a million events
//! is a scan of small integers rather than of stored JSON. Strings (namespaces, pods, images,
//! rules, hosts, tags, priorities) are interned; the rows are in id order, the newest last.
//!
//! The writer appends what it commits, retention drops from the front (it deletes oldest
//! first), and the index is loaded from the store at start, in the background; until it is
//! loaded, lists read the store.

use std::collections::HashMap;
use std::sync::RwLock;

use super::Event;

#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(i) = self.ids.get(s) {
            return *i;
        }
        let i = self.ids.len() as u32;
        self.ids.insert(s.to_string(), i);
        i
    }

    fn find(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }
}

/// One event's columns.
#[derive(Clone, Copy)]
struct Row {
    id: u64,
    cluster: u64,
    time: i64,
    priority: u32,
    /// Falco's rank of the priority (255: not one of Falco's).
    rank: u8,
    namespace: u32,
    pod: u32,
    image: u32,
    rule: u32,
    host: u32,
    signature: u32,
    /// Range in `tags`.
    tags: (u32, u32),
}

#[derive(Default)]
struct Inner {
    loaded: bool,
    rows: Vec<Row>,
    /// Rows before this one were deleted by retention.
    start: usize,
    tags: Vec<u32>,
    strings: Interner,
}

/// A structured filter, resolved against the index's strings.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub cluster: Option<u64>,
    pub priority: Option<String>,
    /// At most this rank (0 = emergency).
    pub max_rank: Option<usize>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub image: Option<String>,
    pub rule: Option<String>,
    pub hostname: Option<String>,
    pub tag: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Only rows with smaller ids are collected (all are counted).
    pub before: Option<u64>,
    /// Only acknowledged events (`true`) or only the others (`false`).
    pub acknowledged: Option<bool>,
}

/// The in-memory columns.
#[derive(Default)]
pub struct Index {
    inner: RwLock<Inner>,
}

fn nanos(t: &chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

impl Inner {
    fn push(&mut self, e: &Event) {
        if self.rows.last().is_some_and(|r| r.id >= e.id) {
            return;
        }
        let start = self.tags.len() as u32;
        for t in &e.tags {
            let id = self.strings.id(t);
            self.tags.push(id);
        }
        let row = Row {
            id: e.id,
            cluster: e.cluster,
            time: nanos(&e.time),
            priority: self.strings.id(&e.priority),
            rank: super::event::rank(&e.priority).map_or(255, |r| r as u8),
            namespace: self.strings.id(&e.namespace),
            pod: self.strings.id(&e.pod),
            image: self.strings.id(&e.image),
            rule: self.strings.id(&e.rule),
            host: self.strings.id(&e.hostname),
            signature: self.strings.id(&e.signature),
            tags: (start, self.tags.len() as u32),
        };
        self.rows.push(row);
    }
}

impl Index {
    /// Whether the index holds every stored event.
    pub fn loaded(&self) -> bool {
        self.inner.read().map(|i| i.loaded).unwrap_or(false)
    }

    /// Appends committed events (ids increasing).
    pub fn append<'a>(&self, events: impl IntoIterator<Item = &'a Event>) {
        if let Ok(mut i) = self.inner.write() {
            for e in events {
                i.push(e);
            }
        }
    }

    /// Loads every stored event, one at a time (never the whole table in memory), then marks
    /// the index loaded; events appended meanwhile are kept.
    pub fn load_from(&self, store: &crate::store::Store) -> Result<(), crate::store::StoreError> {
        let mut fresh = Inner::default();
        store.read(|r| {
            r.scan(
                &super::EVENTS,
                crate::store::Scan::default(),
                |_: u64, e: Event| {
                    fresh.push(&e);
                    Ok(true)
                },
            )
        })?;
        self.install(fresh);
        Ok(())
    }

    fn install(&self, fresh: Inner) {
        if let Ok(mut i) = self.inner.write() {
            let appended: Vec<Row> = i.rows[i.start..].to_vec();
            let old_tags = std::mem::take(&mut i.tags);
            let old_strings = std::mem::take(&mut i.strings);
            *i = fresh;
            // Rows appended during the load re-interned from the old tables.
            let names: HashMap<u32, String> =
                old_strings.ids.into_iter().map(|(s, id)| (id, s)).collect();
            let name = |id: u32| names.get(&id).cloned().unwrap_or_default();
            for r in appended {
                if i.rows.last().is_some_and(|l| l.id >= r.id) {
                    continue;
                }
                let tags: Vec<u32> = old_tags[r.tags.0 as usize..r.tags.1 as usize]
                    .iter()
                    .map(|t| i.strings.id(&name(*t)))
                    .collect();
                let start = i.tags.len() as u32;
                i.tags.extend(tags);
                let row = Row {
                    priority: i.strings.id(&name(r.priority)),
                    namespace: i.strings.id(&name(r.namespace)),
                    pod: i.strings.id(&name(r.pod)),
                    image: i.strings.id(&name(r.image)),
                    rule: i.strings.id(&name(r.rule)),
                    host: i.strings.id(&name(r.host)),
                    signature: i.strings.id(&name(r.signature)),
                    tags: (start, i.tags.len() as u32),
                    ..r
                };
                i.rows.push(row);
            }
            i.loaded = true;
        }
    }

    /// Forgets the rows with ids up to `last_deleted` (retention deletes oldest first).
    pub fn drop_through(&self, last_deleted: u64) {
        if let Ok(mut i) = self.inner.write() {
            let skip = i.rows[i.start..].partition_point(|r| r.id <= last_deleted);
            i.start += skip;
            // Compact when the dead front is most of the rows (tags and strings stay: they are
            // shared and small next to the rows).
            if i.start > 1024 && i.start * 2 > i.rows.len() {
                let start = i.start;
                i.rows.drain(..start);
                i.start = 0;
            }
        }
    }

    /// The ids of matching events, newest first, at most `limit` of them (below `before`), and
    /// how many match in all. `None` while the index is not loaded.
    pub fn search(
        &self,
        q: &Query,
        acks: &super::acks::Acks,
        limit: usize,
    ) -> Option<(Vec<u64>, u64)> {
        let i = self.inner.read().ok()?;
        if !i.loaded {
            return None;
        }
        let (acked_events, acked_signatures) = match q.acknowledged {
            Some(_) => acks.snapshot(),
            None => Default::default(),
        };
        let through: HashMap<u32, u64> = acked_signatures
            .iter()
            .filter_map(|(s, t)| i.strings.find(s).map(|id| (id, *t)))
            .collect();
        let acked = |r: &Row| {
            acked_events.contains(&r.id) || through.get(&r.signature).is_some_and(|t| r.id <= *t)
        };
        let want = |s: &Option<String>| -> Result<Option<u32>, ()> {
            match s {
                None => Ok(None),
                Some(s) => i.strings.find(s).map(Some).ok_or(()),
            }
        };
        let (Ok(priority), Ok(ns), Ok(pod), Ok(image), Ok(rule), Ok(host), Ok(tag)) = (
            want(&q.priority),
            want(&q.namespace),
            want(&q.pod),
            want(&q.image),
            want(&q.rule),
            want(&q.hostname),
            want(&q.tag),
        ) else {
            // A value never seen matches nothing.
            return Some((Vec::new(), 0));
        };
        let max_rank = q.max_rank.map(|r| r as u8);
        let mut ids = Vec::new();
        let mut total = 0u64;
        for r in i.rows[i.start..].iter().rev() {
            let ok = q.cluster.is_none_or(|c| r.cluster == c)
                && priority.is_none_or(|p| r.priority == p)
                && max_rank.is_none_or(|m| r.rank <= m)
                && ns.is_none_or(|x| r.namespace == x)
                && pod.is_none_or(|x| r.pod == x)
                && image.is_none_or(|x| r.image == x)
                && rule.is_none_or(|x| r.rule == x)
                && host.is_none_or(|x| r.host == x)
                && q.since.is_none_or(|s| r.time >= s)
                && q.until.is_none_or(|u| r.time < u)
                && tag.is_none_or(|t| i.tags[r.tags.0 as usize..r.tags.1 as usize].contains(&t))
                && q.acknowledged.is_none_or(|want| acked(r) == want);
            if ok {
                total += 1;
                if ids.len() < limit && q.before.is_none_or(|b| r.id < b) {
                    ids.push(r.id);
                }
            }
        }
        Some((ids, total))
    }
}

#[cfg(test)]
mod tests {
    use super::super::acks::{self, Acks};
    use super::*;
    use crate::store::Store;
    use chrono::Utc;

    fn event(id: u64, ns: &str, priority: &str, tags: &[&str]) -> Event {
        let body = serde_json::json!({"rule": "R", "priority": priority, "output": "o",
            "time": "2026-01-01T00:00:00Z", "tags": tags,
            "output_fields": {"k8s.ns.name": ns}});
        let mut e = super::super::event::parse(1, body.to_string().as_bytes(), Utc::now()).unwrap();
        e.id = id;
        e
    }

    #[test]
    fn filters_totals_pages_acknowledgements_and_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::app::migrations()).unwrap();
        let stored: Vec<Event> = (1..=4)
            .map(|i| event(0, if i % 2 == 0 { "a" } else { "b" }, "warning", &["x"]))
            .collect();
        super::super::ingest::commit(&store, stored, "").unwrap();
        let idx = Index::default();
        let none = Acks::default();
        assert!(
            idx.search(&Query::default(), &none, 10).is_none(),
            "not loaded yet"
        );
        idx.append(&[event(5, "late", "debug", &[])]);
        idx.load_from(&store).unwrap();
        let q = |f: fn(&mut Query)| {
            let mut q = Query::default();
            f(&mut q);
            q
        };
        let (ids, total) = idx.search(&Query::default(), &none, 2).unwrap();
        assert_eq!(
            (ids, total),
            (vec![5, 4], 5),
            "the event appended while loading is kept"
        );
        let (ids, total) = idx
            .search(&q(|q| q.namespace = Some("a".into())), &none, 10)
            .unwrap();
        assert_eq!((ids, total), (vec![4, 2], 2));
        let (_, total) = idx
            .search(&q(|q| q.tag = Some("x".into())), &none, 10)
            .unwrap();
        assert_eq!(total, 4);
        let (_, total) = idx.search(&q(|q| q.max_rank = Some(4)), &none, 10).unwrap();
        assert_eq!(total, 4, "warning and worse, not debug");
        let (_, total) = idx
            .search(&q(|q| q.namespace = Some("never".into())), &none, 10)
            .unwrap();
        assert_eq!(total, 0);
        let (ids, total) = idx.search(&q(|q| q.before = Some(4)), &none, 10).unwrap();
        assert_eq!((ids, total), (vec![3, 2, 1], 5));

        // Event 3 acknowledged by itself; namespace b's signature through event 1 (as if
        // acknowledged when 1 was the newest): 3 is covered by its own, 1 by the signature.
        let acks = Acks::load(&store).unwrap();
        acks::ack_event(&store, &acks, "a@x", 3, "seen").unwrap();
        let sig = store
            .read(|r| r.get(&super::super::EVENTS, &1))
            .unwrap()
            .unwrap()
            .signature;
        store
            .write(|w| {
                w.put(
                    &acks::SIGNATURE_ACKS,
                    &sig,
                    &acks::Ack {
                        by: "a@x".into(),
                        at: Utc::now(),
                        note: String::new(),
                        through: 1,
                    },
                )
            })
            .unwrap();
        let acks = Acks::load(&store).unwrap();
        let (ids, total) = idx
            .search(&q(|q| q.acknowledged = Some(false)), &acks, 10)
            .unwrap();
        assert_eq!((ids, total), (vec![5, 4, 2], 3));
        let (ids, _) = idx
            .search(&q(|q| q.acknowledged = Some(true)), &acks, 10)
            .unwrap();
        assert_eq!(ids, vec![3, 1]);

        idx.drop_through(2);
        let (ids, total) = idx.search(&Query::default(), &none, 10).unwrap();
        assert_eq!((ids, total), (vec![5, 4, 3], 3));
    }
}
