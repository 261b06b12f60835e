//! Runtime events: Falco's alerts as falcosidekick's webhook output sends them, on m9sweeper's
//! upload path. Events are committed in groups by one writer (`ingest.rs`), deduplicated by
//! falcosidekick's uuid, counted per anomaly signature (cluster, rule, namespace, image) and
//! filtered by ignore and silence rules (`rules.rs`). People acknowledge events and signatures
//! (`acks.rs`), alerts go out by e-mail (`alerts.rs`), and retention bounds the store
//! (`retention.rs`).

pub mod acks;
pub mod alerts;
pub mod api;
pub mod event;
pub mod index;
pub mod ingest;
pub mod list;
mod pages;
pub mod retention;
pub mod rules;
pub mod settings;
pub mod setup;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use event::Event;

use crate::http::ApiError;
use crate::store::{StoreError, Table};

/// What can go wrong with runtime events.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The writer is gone (the appliance is stopping).
    #[error("events cannot be stored right now: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Invalid(m) => ApiError::bad_request(m),
            RuntimeError::NotFound(m) => ApiError::not_found(m),
            RuntimeError::Unavailable(m) => ApiError::new(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                m,
            ),
            RuntimeError::Store(e) => e.into(),
        }
    }
}

/// One kind of anomaly in one cluster, counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub signature: String,
    pub cluster: u64,
    pub rule: String,
    pub namespace: String,
    pub image: String,
    pub count: u64,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    /// The highest priority seen (rank: 0 = emergency).
    pub worst: String,
    /// The newest event's id.
    #[serde(default)]
    pub last_id: u64,
}

/// Events by id (ids grow with arrival).
pub const EVENTS: Table<u64, Event> = Table::new("runtime_events");
/// falcosidekick uuid → event id, for retries.
pub const UUIDS: Table<String, u64> = Table::new("runtime_event_uuids");
/// Signature → its counts.
pub const SIGNATURES: Table<String, Signature> = Table::new("runtime_signatures");
/// `{cluster:020}/{date}/{priority}` → events that day.
pub const DAILY: Table<String, u64> = Table::new("runtime_daily");

/// How many events are stored and how many bytes they take (their stored form).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub events: u64,
    pub bytes: u64,
}

/// The one row of [`Totals`], under the key `all`.
pub const TOTALS: Table<String, Totals> = Table::new("runtime_totals");

/// The key of the one [`TOTALS`] row.
pub fn totals_key() -> String {
    "all".to_string()
}

/// The stored size of an event, as [`TOTALS`] counts it.
pub fn size_of(e: &Event) -> u64 {
    serde_json::to_vec(e).map_or(0, |b| b.len() as u64)
}
