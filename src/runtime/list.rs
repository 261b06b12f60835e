//! The filtered list of events: the filters other tools script against, answered from the
//! in-memory columns when they can be, from the stored events when the output's words are
//! asked for (only the events the columns let through, when that narrows it), and CSV.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::acks::Acks;
use super::api::Runtime;
use super::{event, Event, EVENTS};
use crate::http::ApiError;
use crate::store::{Scan, Store};

/// Events listed at most per page.
pub const MAX_LIMIT: usize = 1_000;
/// Candidates from the columns read one by one for a search with words; past this many, one
/// scan of the table is quicker.
const WORD_CANDIDATES: u64 = 200_000;

/// The list's filters (the interface other tools script against).
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default)]
pub struct Filter {
    /// Cluster id or name.
    pub cluster: String,
    /// Exactly this priority.
    pub priority: String,
    /// This priority or a more severe one.
    pub min_priority: String,
    pub namespace: String,
    pub pod: String,
    pub image: String,
    pub rule: String,
    pub hostname: String,
    pub tag: String,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Words the output must contain (case-insensitive).
    pub q: String,
    pub limit: Option<usize>,
    /// Events with smaller ids (the next page).
    pub before: Option<u64>,
    /// `no`: only events nobody acknowledged; `yes`: only acknowledged ones; empty or `any`:
    /// both.
    pub acknowledged: String,
    /// `csv` for a CSV download (up to [`MAX_CSV`] events).
    pub format: String,
}

impl Filter {
    /// The `acknowledged` filter: `None` for both.
    pub fn acknowledged(&self) -> Result<Option<bool>, ApiError> {
        match self.acknowledged.trim().to_ascii_lowercase().as_str() {
            "" | "any" => Ok(None),
            "no" | "false" => Ok(Some(false)),
            "yes" | "true" => Ok(Some(true)),
            _ => Err(ApiError::bad_request("acknowledged: one of any, no, yes")),
        }
    }

    /// Whether CSV is asked for.
    pub fn csv(&self) -> bool {
        self.format.eq_ignore_ascii_case("csv")
    }
}

/// Events one CSV export holds at most.
pub const MAX_CSV: usize = 100_000;

fn some(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// A filter with its cluster resolved and its words lower-cased.
struct Matcher {
    f: Filter,
    cluster: Option<u64>,
    min_rank: Option<usize>,
    priority: String,
    words: Vec<String>,
    acknowledged: Option<bool>,
}

impl Matcher {
    fn new(store: &Store, f: Filter) -> Result<Matcher, ApiError> {
        let cluster = match f.cluster.trim() {
            "" => None,
            c => Some(
                crate::compliance::service::find_cluster(store, c)
                    .map_err(|_| {
                        ApiError::not_found(format!(
                            "cluster '{}' not found",
                            c.chars().take(100).collect::<String>()
                        ))
                    })?
                    .id,
            ),
        };
        let min_rank = match f.min_priority.trim() {
            "" => None,
            p => Some(event::rank(p).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "min_priority: one of {}",
                    event::PRIORITIES.join(", ")
                ))
            })?),
        };
        let priority = match f.priority.trim() {
            "" => String::new(),
            p => event::normalize_priority(p),
        };
        let words =
            f.q.split_whitespace()
                .take(16)
                .map(str::to_lowercase)
                .collect();
        Ok(Matcher {
            acknowledged: f.acknowledged()?,
            f,
            cluster,
            min_rank,
            priority,
            words,
        })
    }

    fn matches(&self, e: &Event, acks: &Acks) -> bool {
        let f = &self.f;
        let eq = |want: &str, have: &str| want.is_empty() || want == have;
        self.cluster.is_none_or(|c| e.cluster == c)
            && (self.priority.is_empty() || e.priority == self.priority)
            && self
                .min_rank
                .is_none_or(|m| event::rank(&e.priority).is_some_and(|r| r <= m))
            && eq(&f.namespace, &e.namespace)
            && eq(&f.pod, &e.pod)
            && eq(&f.image, &e.image)
            && eq(&f.rule, &e.rule)
            && eq(&f.hostname, &e.hostname)
            && (f.tag.is_empty() || e.tags.contains(&f.tag))
            && f.since.is_none_or(|s| e.time >= s)
            && f.until.is_none_or(|u| e.time < u)
            && (self.words.is_empty() || {
                let out = e.output.to_lowercase();
                self.words.iter().all(|w| out.contains(w.as_str()))
            })
            && self
                .acknowledged
                .is_none_or(|want| acks.covers(e.id, &e.signature) == want)
    }
}

/// The newest `limit` matching events (below `before`) and how many events match in all.
pub fn events(
    store: &Store,
    index: &super::index::Index,
    acks: &Acks,
    f: Filter,
) -> Result<(Vec<Event>, u64), ApiError> {
    let limit = if f.csv() {
        f.limit.unwrap_or(10_000).clamp(1, MAX_CSV)
    } else {
        f.limit.unwrap_or(100).clamp(1, MAX_LIMIT)
    };
    let before = f.before;
    let m = Matcher::new(store, f)?;
    let q = super::index::Query {
        cluster: m.cluster,
        priority: (!m.priority.is_empty()).then(|| m.priority.clone()),
        max_rank: m.min_rank,
        namespace: some(&m.f.namespace),
        pod: some(&m.f.pod),
        image: some(&m.f.image),
        rule: some(&m.f.rule),
        hostname: some(&m.f.hostname),
        tag: some(&m.f.tag),
        since: m.f.since.and_then(|t| t.timestamp_nanos_opt()),
        until: m.f.until.and_then(|t| t.timestamp_nanos_opt()),
        before,
        acknowledged: m.acknowledged,
    };
    if m.words.is_empty() {
        if let Some((ids, total)) = index.search(&q, acks, limit) {
            return Ok((read(store, &ids, |_| true)?, total));
        }
    } else if let Some((ids, n)) = index.search(
        &super::index::Query {
            before: None,
            ..q.clone()
        },
        acks,
        usize::MAX,
    ) {
        // Only the events the columns let through are read for their words.
        if n <= WORD_CANDIDATES {
            let matching = read(store, &ids, |e| m.matches(e, acks))?;
            let total = matching.len() as u64;
            let items = matching
                .into_iter()
                .filter(|e| before.is_none_or(|b| e.id < b))
                .take(limit)
                .collect();
            return Ok((items, total));
        }
    }
    let mut items = Vec::new();
    let mut total = 0u64;
    store.read(|r| {
        r.scan(
            &EVENTS,
            Scan {
                reverse: true,
                ..Scan::default()
            },
            |id: u64, e: Event| {
                if m.matches(&e, acks) {
                    total += 1;
                    if items.len() < limit && before.is_none_or(|b| id < b) {
                        items.push(e);
                    }
                }
                Ok(true)
            },
        )
    })?;
    Ok((items, total))
}

/// The stored events `ids` (in that order) that `keep` keeps; ids retention has taken since the
/// index was read are skipped.
fn read(store: &Store, ids: &[u64], keep: impl Fn(&Event) -> bool) -> Result<Vec<Event>, ApiError> {
    Ok(store.read(|r| {
        let mut out = Vec::with_capacity(ids.len().min(10_000));
        for id in ids {
            if let Some(e) = r.get(&EVENTS, id)? {
                if keep(&e) {
                    out.push(e);
                }
            }
        }
        Ok::<_, crate::store::StoreError>(out)
    })?)
}

/// An event as lists show it: with whether someone acknowledged it.
#[derive(serde::Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub event: Event,
    pub acknowledged: bool,
}

/// The CSV of `events` (one row each; output fields as one JSON cell).
pub fn csv(events: &[Listed]) -> String {
    crate::http::listing::csv(
        &[
            "id",
            "time",
            "cluster",
            "priority",
            "rule",
            "namespace",
            "pod",
            "image",
            "image_tag",
            "hostname",
            "source",
            "tags",
            "silenced",
            "acknowledged",
            "output",
            "output_fields",
        ],
        events.iter().map(|l| {
            let e = &l.event;
            vec![
                e.id.to_string(),
                e.time.to_rfc3339(),
                e.cluster.to_string(),
                e.priority.clone(),
                e.rule.clone(),
                e.namespace.clone(),
                e.pod.clone(),
                e.image.clone(),
                e.image_tag.clone(),
                e.hostname.clone(),
                e.source.clone(),
                e.tags.join(" "),
                e.silenced.to_string(),
                l.acknowledged.to_string(),
                e.output.clone(),
                serde_json::to_string(&e.fields).unwrap_or_default(),
            ]
        }),
    )
}

/// The list for `f` with each event's acknowledgement.
pub fn listed(rt: &Runtime, store: &Store, f: Filter) -> Result<(Vec<Listed>, u64), ApiError> {
    let (items, total) = events(store, &rt.index, &rt.acks, f)?;
    let items = items
        .into_iter()
        .map(|e| Listed {
            acknowledged: rt.acks.covers(e.id, &e.signature),
            event: e,
        })
        .collect();
    Ok((items, total))
}
