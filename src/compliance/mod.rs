//! Image compliance: policies, exceptions and the one function that decides
//! ([`evaluate::evaluate`]), plus scan ingest.

pub mod evaluate;
pub mod model;
pub mod pattern;
mod routes;
pub mod search;
pub mod service;

pub use model::{
    migrations, Exception, ExceptionKind, ExceptionStatus, Limits, Policy, ScannerRule,
};
pub use routes::{read_body, routes};
