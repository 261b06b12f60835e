//! The audit log: every change and every login attempt, recorded inside the same write
//! transaction as the change itself, so the log can neither miss a committed change nor record
//! one that rolled back. Readable by super-admins, filterable, exportable as CSV.

mod routes;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use routes::routes;

use crate::store::{Scan, Store, StoreError, StoreKey, Table, WriteTx};

/// One audit-log entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// Increasing id.
    pub id: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who (email, `email (key N)`, `cli`, or the attempted email for failed logins).
    pub actor: String,
    /// What, dotted: `login.success`, `cluster.create`, ...
    pub action: String,
    /// On what, e.g. `cluster:3`.
    pub target: String,
    /// Human-readable detail (never secrets).
    #[serde(default)]
    pub detail: String,
    /// Source address, if over the network.
    #[serde(default)]
    pub source_ip: String,
    /// Whether the attempt succeeded.
    #[serde(default = "yes")]
    pub ok: bool,
}

fn yes() -> bool {
    true
}

const LOG: Table<u64, Entry> = Table::new("audit_log");

/// What to record; `id` and `at` are filled in.
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// Who.
    pub actor: String,
    /// What.
    pub action: &'static str,
    /// On what.
    pub target: String,
    /// Detail.
    pub detail: String,
    /// Source address.
    pub source_ip: String,
    /// Succeeded?
    pub ok: bool,
}

impl Event {
    /// A successful action by `actor` on `target`.
    pub fn new(actor: impl Into<String>, action: &'static str, target: impl Into<String>) -> Event {
        Event {
            actor: actor.into(),
            action,
            target: target.into(),
            ok: true,
            ..Event::default()
        }
    }
    /// Adds detail.
    pub fn detail(mut self, d: impl Into<String>) -> Event {
        self.detail = d.into();
        self
    }
    /// Adds the source address.
    pub fn from_ip(mut self, ip: impl Into<String>) -> Event {
        self.source_ip = ip.into();
        self
    }
    /// Marks the attempt failed.
    pub fn failed(mut self) -> Event {
        self.ok = false;
        self
    }
}

/// `s` cut to at most `max` characters (with an ellipsis when it was longer).
fn bounded(mut s: String, max: usize) -> String {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
        s.push('…');
    }
    s
}

/// An event by an actor: `actor.event("cluster.create", "cluster:3")`.
pub trait ActorEvent {
    /// A successful `action` on `target`, by this actor, from its address.
    fn event(&self, action: &'static str, target: impl Into<String>) -> Event;
}

impl ActorEvent for crate::http::Actor {
    fn event(&self, action: &'static str, target: impl Into<String>) -> Event {
        Event::new(self.name.clone(), action, target).from_ip(self.ip.clone())
    }
}

/// Records `event` in the caller's write transaction. Every field is cut to a fixed length, so
/// no caller (least of all an anonymous one) can make the log grow by more than ~5 KiB a line.
pub fn record(w: &WriteTx, event: Event) -> Result<(), StoreError> {
    let id = w.next_id("audit_log")?;
    let entry = Entry {
        id,
        at: Utc::now(),
        actor: bounded(event.actor, 300),
        action: event.action.to_string(),
        target: bounded(event.target, 300),
        detail: bounded(event.detail, 4000),
        source_ip: bounded(event.source_ip, 64),
        ok: event.ok,
    };
    w.put(&LOG, &id, &entry)
}

/// Filters for [`list`]. Empty strings mean "any".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Filter {
    /// Actor contains this (case-insensitive).
    pub actor: String,
    /// Action starts with this (`login` matches `login.success` and `login.failure`).
    pub action: String,
    /// Target equals this.
    pub target: String,
    /// Any field contains this (case-insensitive).
    pub q: String,
    /// Only entries at or after (RFC 3339 or YYYY-MM-DD).
    pub since: String,
    /// Only entries before (RFC 3339 or YYYY-MM-DD).
    pub until: String,
    /// `ok` or `failed`.
    pub outcome: String,
    /// Entries with an id below this (for paging backwards).
    pub before: Option<u64>,
    /// At most this many (default 100, max 10,000).
    pub limit: Option<usize>,
}

/// A filter value that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

fn parse_time(field: &str, s: &str) -> Result<Option<DateTime<Utc>>, FilterError> {
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()));
    }
    Err(FilterError(format!(
        "{field}: '{s}' is not a date (use 2026-01-31 or RFC 3339)"
    )))
}

/// Entries matching `f`, newest first.
pub fn list(store: &Store, f: &Filter) -> Result<Result<Vec<Entry>, FilterError>, StoreError> {
    let since = match parse_time("since", &f.since) {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    let until = match parse_time("until", &f.until) {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    let outcome = match f.outcome.as_str() {
        "" => None,
        "ok" => Some(true),
        "failed" => Some(false),
        other => {
            return Ok(Err(FilterError(format!(
                "outcome: '{other}' is not ok or failed"
            ))))
        }
    };
    let limit = f.limit.unwrap_or(100).clamp(1, 10_000);
    let actor = f.actor.to_lowercase();
    let q = f.q.to_lowercase();
    let upper = f.before.map(|b| b.encode());
    let mut out = Vec::new();
    store.read(|r| {
        r.scan(
            &LOG,
            Scan {
                to: upper.as_deref(),
                reverse: true,
                ..Scan::default()
            },
            |_, e| {
                if let Some(s) = since {
                    if e.at < s {
                        return Ok(false); // ids grow with time: nothing older can match
                    }
                }
                let keep = until.is_none_or(|u| e.at < u)
                    && (actor.is_empty() || e.actor.to_lowercase().contains(&actor))
                    && (f.action.is_empty() || e.action.starts_with(&f.action))
                    && (f.target.is_empty() || e.target == f.target)
                    && outcome.is_none_or(|o| e.ok == o)
                    && (q.is_empty()
                        || [&e.actor, &e.action, &e.target, &e.detail, &e.source_ip]
                            .iter()
                            .any(|s| s.to_lowercase().contains(&q)));
                if keep {
                    out.push(e);
                }
                Ok(out.len() < limit)
            },
        )
    })?;
    Ok(Ok(out))
}

/// Deletes entries older than `days`; returns how many.
pub fn prune(store: &Store, days: u64) -> Result<u64, StoreError> {
    let cutoff = Utc::now() - chrono::Duration::days(days.min(100_000) as i64);
    store.write(|w| w.retain(&LOG, |_, e| e.at >= cutoff))
}

/// Number of entries.
pub fn count(store: &Store) -> Result<u64, StoreError> {
    store.read(|r| r.len(&LOG))
}

/// Renders entries as CSV (RFC 4180), with cells that a spreadsheet would run as formulas
/// neutralized.
pub fn to_csv(entries: &[Entry]) -> String {
    crate::http::listing::csv(
        &[
            "id",
            "at",
            "actor",
            "action",
            "target",
            "ok",
            "source_ip",
            "detail",
        ],
        entries.iter().map(|e| {
            vec![
                e.id.to_string(),
                e.at.to_rfc3339(),
                e.actor.clone(),
                e.action.clone(),
                e.target.clone(),
                e.ok.to_string(),
                e.source_ip.clone(),
                e.detail.clone(),
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_csv() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &[]).unwrap();
        store
            .write(|w| {
                record(
                    w,
                    Event::new("alice@x", "login.success", "user:1").from_ip("10.0.0.1"),
                )?;
                record(w, Event::new("bob@x", "login.failure", "user:2").failed())?;
                record(
                    w,
                    Event::new("alice@x", "cluster.create", "cluster:1")
                        .detail("name=\"prod, eu\""),
                )
            })
            .unwrap();
        let all = list(&store, &Filter::default()).unwrap().unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].action, "cluster.create", "newest first");
        let f = Filter {
            action: "login".into(),
            ..Filter::default()
        };
        assert_eq!(list(&store, &f).unwrap().unwrap().len(), 2);
        let f = Filter {
            outcome: "failed".into(),
            ..Filter::default()
        };
        assert_eq!(list(&store, &f).unwrap().unwrap()[0].actor, "bob@x");
        let f = Filter {
            q: "10.0.0".into(),
            ..Filter::default()
        };
        assert_eq!(list(&store, &f).unwrap().unwrap().len(), 1);
        let f = Filter {
            since: "yesterday".into(),
            ..Filter::default()
        };
        assert!(list(&store, &f).unwrap().is_err());
        let f = Filter {
            before: Some(3),
            limit: Some(1),
            ..Filter::default()
        };
        assert_eq!(list(&store, &f).unwrap().unwrap()[0].id, 2);
        let csv = to_csv(&all);
        assert!(csv.contains("\"name=\"\"prod, eu\"\"\""), "{csv}");
        assert_eq!(prune(&store, 1).unwrap(), 0, "nothing is a day old yet");
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(
            prune(&store, 0).unwrap(),
            3,
            "a zero-day retention removes everything older than now"
        );
        assert_eq!(count(&store).unwrap(), 0);
    }
}
