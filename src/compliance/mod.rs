//! Image compliance: policies, exceptions and the one function that decides
//! ([`evaluate::evaluate`]), plus scan ingest.

pub mod evaluate;
mod m9s;
pub mod model;
mod pages;
pub mod pattern;
pub mod rescan;
mod routes;
pub mod search;
pub mod service;

pub use m9s::routes as m9sweeper_routes;
pub use model::{
    migrations, Exception, ExceptionKind, ExceptionStatus, Limits, Policy, ScannerRule,
};
pub use pages::pages;

/// The exceptions table's name, for caches that watch it.
pub const EXCEPTIONS_TABLE: &str = model::EXCEPTIONS.name();
pub use routes::routes;
