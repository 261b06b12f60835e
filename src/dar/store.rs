//! Crawl results kept by the appliance: each run of each source (when, how it ended, what
//! became sensitive since the previous run) and the latest verdict of every asset with when it
//! was first and last seen. A run's difference from the previous one (an asset newly sensitive,
//! or holding a type it did not) is mailed to the admins through the outbox.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::crawl::{known_key, Crawl, Known, SourceOutcome, TableSeen};
use super::Asset;
use crate::store::{Scan, Store, StoreError, Table, WriteTx};

/// One source's crawl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: u64,
    pub source: String,
    pub kind: String,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    /// `ok` or `error`.
    pub status: String,
    #[serde(default)]
    pub error: String,
    pub assets: u64,
    /// Assets with any finding.
    pub sensitive: u64,
    /// Assets not complete (partial or skipped).
    pub incomplete: u64,
    /// Assets that became sensitive, or hold a new type, since the previous run.
    #[serde(default)]
    pub newly_sensitive: Vec<String>,
    /// Tables read, and tables left alone because nothing about them changed.
    #[serde(default)]
    pub tables_read: u64,
    #[serde(default)]
    pub tables_unchanged: u64,
}

/// An asset's latest verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    #[serde(flatten)]
    pub asset: Asset,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The run that last judged it.
    pub run: u64,
}

/// Runs by id.
pub const RUNS: Table<u64, Run> = Table::new("dar_runs");
/// `source\u{0}asset` → its latest verdict.
pub const ASSETS: Table<String, Stored> = Table::new("dar_assets");
/// `source\u{0}table` → the fingerprint of the table when it was last read completely.
pub const TABLES: Table<String, String> = Table::new("dar_tables");

/// The fingerprints a crawl compares tables with.
pub fn known(store: &Store) -> Result<Known, StoreError> {
    Ok(store.read(|r| r.all(&TABLES))?.into_iter().collect())
}

/// An asset's key: the same shape as a table's in [`Known`], so a table's columns are the keys
/// that start with the table's.
fn key(source: &str, asset: &str) -> String {
    known_key(source, asset)
}

/// Whether `now` shows something `before` did not: sensitive where it was not, or a new type.
fn newly(before: Option<&Stored>, now: &Asset) -> bool {
    if now.types.is_empty() {
        return false;
    }
    match before {
        None => true,
        Some(b) => now.types.iter().any(|t| !b.asset.types.contains(t)),
    }
}

fn record_source(
    w: &WriteTx,
    at: (DateTime<Utc>, DateTime<Utc>),
    outcome: &SourceOutcome,
    assets: &[&Asset],
    tables: &[&TableSeen],
) -> Result<Run, StoreError> {
    let id = w.next_id("dar_runs")?;
    let mut run = Run {
        id,
        source: outcome.name.clone(),
        kind: outcome.kind.as_str().to_string(),
        started: at.0,
        finished: at.1,
        status: outcome.status.clone(),
        error: outcome.error.clone(),
        assets: assets.len() as u64,
        sensitive: assets.iter().filter(|a| !a.types.is_empty()).count() as u64,
        incomplete: assets
            .iter()
            .filter(|a| a.status != super::Status::Complete)
            .count() as u64,
        newly_sensitive: Vec::new(),
        tables_read: tables.iter().filter(|t| t.reread).count() as u64,
        tables_unchanged: tables.iter().filter(|t| !t.reread).count() as u64,
    };
    // The columns of tables left alone keep their verdicts, seen again in this run: one pass
    // over the stored assets for all of them.
    let unchanged: std::collections::HashSet<String> = tables
        .iter()
        .filter(|t| !t.reread)
        .map(|t| key(&t.source, &t.table))
        .collect();
    if !unchanged.is_empty() {
        for (k, mut stored) in w.all(&ASSETS)? {
            if k.rsplit_once('.')
                .is_some_and(|(table, _)| unchanged.contains(table))
            {
                stored.last_seen = at.1;
                stored.run = id;
                w.put(&ASSETS, &k, &stored)?;
            }
        }
    }
    for t in tables.iter().filter(|t| t.reread) {
        let k = known_key(&t.source, &t.table);
        if t.fingerprint.is_empty() {
            w.delete(&TABLES, &k)?;
        } else {
            w.put(&TABLES, &k, &t.fingerprint)?;
        }
    }
    for a in assets {
        let k = key(&a.source, &a.asset);
        let before = w.get(&ASSETS, &k)?;
        if newly(before.as_ref(), a) {
            run.newly_sensitive.push(a.asset.clone());
        }
        let stored = Stored {
            asset: (*a).clone(),
            first_seen: before.as_ref().map_or(at.1, |b| b.first_seen),
            last_seen: at.1,
            run: id,
        };
        w.put(&ASSETS, &k, &stored)?;
    }
    w.put(&RUNS, &id, &run)?;
    Ok(run)
}

/// Records `crawl` (started at `started`): one run per source, the assets' latest verdicts, and
/// one mail to the admins listing what became sensitive (none when nothing did).
pub fn record(
    store: &Store,
    started: DateTime<Utc>,
    crawl: &Crawl,
) -> Result<Vec<Run>, StoreError> {
    let finished = Utc::now();
    store.write(|w| {
        let mut runs = Vec::new();
        for outcome in &crawl.sources {
            let assets: Vec<&Asset> = crawl
                .assets
                .iter()
                .filter(|a| a.source == outcome.name)
                .collect();
            let tables: Vec<&TableSeen> = crawl
                .tables
                .iter()
                .filter(|t| t.source == outcome.name)
                .collect();
            runs.push(record_source(
                w,
                (started, finished),
                outcome,
                &assets,
                &tables,
            )?);
        }
        let news: Vec<(&Run, &String)> = runs
            .iter()
            .flat_map(|r| r.newly_sensitive.iter().map(move |a| (r, a)))
            .collect();
        if !news.is_empty() {
            let mut body = format!(
                "The data-at-rest crawl found sensitive data in {} place(s) where the previous crawl did not:\n\n",
                news.len()
            );
            for (r, asset) in news.iter().take(200) {
                let a = crawl
                    .assets
                    .iter()
                    .find(|a| a.source == r.source && &a.asset == *asset);
                body.push_str(&format!(
                    "- {}: {} ({})\n",
                    r.source,
                    asset,
                    a.map(|a| a.types.join(", ")).unwrap_or_default()
                ));
            }
            let admins = crate::auth::admin_emails_in(w)?;
            crate::notify::enqueue(
                w,
                admins,
                &format!("Data at rest: {} newly sensitive asset(s)", news.len()),
                &body,
            )?;
        }
        Ok(runs)
    })
}

/// The newest `limit` runs (of one source when given).
/// When each source's last crawl started.
pub fn last_runs(store: &Store) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
    let mut out: HashMap<String, DateTime<Utc>> = HashMap::new();
    store.read(|r| {
        r.scan(&RUNS, Scan::default(), |_: u64, run: Run| {
            let at = out.entry(run.source).or_insert(run.started);
            *at = (*at).max(run.started);
            Ok(true)
        })
    })?;
    Ok(out)
}

pub fn runs(store: &Store, source: Option<&str>, limit: usize) -> Result<Vec<Run>, StoreError> {
    let mut out = Vec::new();
    store.read(|r| {
        r.scan(
            &RUNS,
            Scan {
                reverse: true,
                ..Scan::default()
            },
            |_: u64, run: Run| {
                if source.is_none_or(|s| s == run.source) {
                    out.push(run);
                }
                Ok(out.len() < limit)
            },
        )
    })?;
    Ok(out)
}

/// Every stored asset (of one source when given).
pub fn assets(store: &Store, source: Option<&str>) -> Result<Vec<Stored>, StoreError> {
    Ok(store
        .read(|r| r.all(&ASSETS))?
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| source.is_none_or(|want| want == s.asset.source))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dar::{Kind, Status};

    fn asset(name: &str, types: &[&str]) -> Asset {
        Asset {
            source: "pg".into(),
            asset: name.into(),
            data_type: "text".into(),
            types: types.iter().map(|t| t.to_string()).collect(),
            hit_ratio: if types.is_empty() { 0.0 } else { 1.0 },
            sensitivity: if types.is_empty() { "none" } else { "high" }.into(),
            masked_sample: None,
            status: Status::Complete,
            reason: String::new(),
            sampled: 10,
        }
    }

    fn crawl(assets: Vec<Asset>) -> Crawl {
        Crawl {
            sources: vec![SourceOutcome {
                name: "pg".into(),
                kind: Kind::Postgres,
                status: "ok".into(),
                error: String::new(),
            }],
            assets,
            tables: Vec::new(),
        }
    }

    #[test]
    fn runs_keep_first_seen_and_say_what_became_sensitive() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::app::migrations()).unwrap();
        let first = record(
            &store,
            Utc::now(),
            &crawl(vec![
                asset("db.t.card", &["pci.pan"]),
                asset("db.t.note", &[]),
            ]),
        )
        .unwrap();
        assert_eq!(first[0].newly_sensitive, ["db.t.card"]);
        let again = record(
            &store,
            Utc::now(),
            &crawl(vec![
                asset("db.t.card", &["pci.pan"]),
                asset("db.t.note", &["pii.email"]),
            ]),
        )
        .unwrap();
        assert_eq!(again[0].newly_sensitive, ["db.t.note"], "only the change");
        let stored = assets(&store, Some("pg")).unwrap();
        let card = stored
            .iter()
            .find(|s| s.asset.asset == "db.t.card")
            .unwrap();
        assert!(card.first_seen < card.last_seen);
        assert_eq!(card.run, again[0].id);
        assert_eq!(runs(&store, None, 10).unwrap().len(), 2);
        let mail = crate::notify::outbox(&store, 10).unwrap();
        assert_eq!(mail.len(), 0, "no admins, no mail");
    }
}
