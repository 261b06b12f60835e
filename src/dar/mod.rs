//! Data at rest: the crawler that reads data stores (PostgreSQL, MySQL/MariaDB), samples them boundedly
//! and read-only, and classifies what it reads with the same `detect` engine as the traffic
//! sensor, so a column and an API endpoint carrying the same data are named the same way.
//!
//! `sources.rs` reads the stores to crawl (the file's `[[crawl.*]]`, Soveren's environment
//! arrays, `BULWARK_CRAWL_*`), `classify.rs` turns sampled values into an asset's verdict,
//! `postgres.rs` and `mysql.rs` enumerate and sample a server, `crawl.rs` runs every source,
//! `store.rs` keeps the appliance's runs and the assets' latest verdicts (the `crawl` job).

pub mod api;
pub mod classify;
pub mod crawl;
pub mod kafka;
pub mod managed;
pub mod mssql;
pub mod mysql;
pub mod objects;
mod pages;
pub mod postgres;
pub mod s3;
pub mod search;
pub mod sources;
pub mod store;

use serde::{Deserialize, Serialize};

pub use crawl::{crawl, Crawl};
pub use sources::{Kind, Source};

/// What can go wrong with a data store.
#[derive(Debug, thiserror::Error)]
pub enum DarError {
    /// A source's configuration is wrong (says which and why).
    #[error("{0}")]
    Config(String),
    /// The store could not be reached or refused the connection.
    #[error("{0}")]
    Connect(String),
    /// The store answered a query with an error.
    #[error("{0}")]
    Query(String),
    /// The appliance's own store or key failed.
    #[error("{0}")]
    Store(String),
    /// No stored source has this name.
    #[error("no source named '{0}' was added in the console")]
    NotFound(String),
    /// The name is taken.
    #[error("a source named '{0}' exists already")]
    Duplicate(String),
}

impl From<crate::store::StoreError> for DarError {
    fn from(e: crate::store::StoreError) -> Self {
        DarError::Store(e.to_string())
    }
}

/// How far an asset was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Sampled as planned.
    Complete,
    /// Some of it was read (a budget ran out, some values were cut).
    Partial,
    /// Not read (the reason says why).
    Skipped,
}

/// One asset's verdict: a column, an object key pattern's field, a topic's field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asset {
    /// The source's name.
    pub source: String,
    /// `database.schema.table.column` (MySQL: `database.table.column`).
    pub asset: String,
    /// The store's type for it (`text`, `jsonb`, `bytea`, ...).
    #[serde(default)]
    pub data_type: String,
    /// Data types found (`pci.pan`, `pii.email`, ...), most frequent first.
    pub types: Vec<String>,
    /// Share of the sampled non-empty values in which something was found.
    pub hit_ratio: f64,
    /// The highest sensitivity found (`low`, `medium`, `high`), or `none`.
    pub sensitivity: String,
    /// One finding, masked (letters → `*`, digits → `1`); never a raw value.
    pub masked_sample: Option<String>,
    pub status: Status,
    /// Why it is partial or skipped.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Values sampled.
    pub sampled: u64,
}

/// How often the schedule reads a source that sets no `check_interval` (Soveren's default for
/// databases).
pub const DEFAULT_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Every source: the file's and the environment's, then those added in the console (`managed`:
/// the appliance's store and key), a console source whose name the configuration took since
/// being skipped with a warning.
pub fn all_sources(
    crawl_config: &crate::config::CrawlConfig,
    env: &std::collections::HashMap<String, String>,
    managed: Option<(&crate::store::Store, &crate::secrets::Sealer)>,
    outbound: &crate::outbound::Outbound,
) -> Result<Vec<Source>, DarError> {
    let mut all = sources::load(crawl_config, env)?;
    if let Some((store, sealer)) = managed {
        for s in managed::load(store, sealer, env)? {
            if all.iter().any(|c| c.name == s.name) {
                tracing::warn!(source = %s.name, "a console source has the name of a configured one: skipped");
                continue;
            }
            all.push(s);
        }
    }
    for s in &mut all {
        s.outbound = outbound.clone();
    }
    Ok(all)
}

/// Whether the schedule should crawl `source`, last crawled at `last`.
fn due(
    source: &Source,
    last: Option<&chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    let every = source.check_interval.unwrap_or(DEFAULT_CHECK_INTERVAL);
    // A minute's slack, so an hourly schedule is not skipped by a run that took seconds.
    let every = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX)
        - chrono::Duration::minutes(1);
    last.is_none_or(|at| now - *at >= every)
}

/// The `crawl` job: on its schedule, every source whose `check_interval` has passed since its
/// last crawl; asked for (Run now, Crawl now), every source. Recorded; the message says what
/// was found.
pub fn run_job(
    store: &crate::store::Store,
    sealer: &crate::secrets::Sealer,
    search_index: &crate::search::Search,
    crawl_config: &crate::config::CrawlConfig,
    detect: &crate::config::DetectConfig,
    outbound: &crate::outbound::Outbound,
    scheduled: bool,
) -> Result<String, String> {
    let engine = crate::detect::Engine::from_config(detect).map_err(|p| p.join("; "))?;
    let env = std::env::vars().collect();
    let mut sources = all_sources(crawl_config, &env, Some((store, sealer)), outbound)
        .map_err(|e| e.to_string())?;
    if sources.is_empty() {
        return Ok(
            "no sources configured (the Data at rest page, [[crawl.*]] or BULWARK_CRAWL_*)".into(),
        );
    }
    if scheduled {
        let last = store::last_runs(store).map_err(|e| e.to_string())?;
        sources.retain(|s| due(s, last.get(&s.name), chrono::Utc::now()));
        if sources.is_empty() {
            return Ok("no source is due (each has its check_interval)".into());
        }
    }
    let started = chrono::Utc::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let known = store::known(store).map_err(|e| e.to_string())?;
    let result = rt.block_on(crawl::crawl(&sources, &engine, None, &known));
    let runs = store::record(store, started, &result).map_err(|e| e.to_string())?;
    for r in &runs {
        search::reindex(search_index, store, &r.source);
    }
    let failed: Vec<String> = runs
        .iter()
        .filter(|r| r.status != "ok")
        .map(|r| format!("{}: {}", r.source, r.error))
        .collect();
    let summary = format!(
        "{} sources, {} tables read ({} unchanged, not read), {} assets, {} sensitive, {} newly sensitive",
        runs.len(),
        runs.iter().map(|r| r.tables_read).sum::<u64>(),
        runs.iter().map(|r| r.tables_unchanged).sum::<u64>(),
        runs.iter().map(|r| r.assets).sum::<u64>(),
        runs.iter().map(|r| r.sensitive).sum::<u64>(),
        runs.iter().map(|r| r.newly_sensitive.len()).sum::<usize>()
    );
    if failed.is_empty() {
        Ok(summary)
    } else {
        Err(format!("{summary}; failed: {}", failed.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_crawls_what_is_due() {
        let now = chrono::Utc::now();
        let hours = |h: i64| now - chrono::Duration::hours(h);
        let mut hourly = Source::new(Kind::Kafka, "events");
        hourly.check_interval = Some(std::time::Duration::from_secs(3600));
        let daily = Source::new(Kind::Postgres, "orders");
        assert!(due(&daily, None, now), "never crawled");
        assert!(!due(&daily, Some(&hours(5)), now));
        assert!(due(&daily, Some(&hours(24)), now));
        assert!(
            due(&hourly, Some(&(now - chrono::Duration::seconds(3590))), now),
            "slack"
        );
        assert!(!due(
            &hourly,
            Some(&(now - chrono::Duration::minutes(30))),
            now
        ));
    }
}
