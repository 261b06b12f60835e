//! Image compliance: policies, exceptions and the one function that decides
//! ([`evaluate::evaluate`]), plus scan ingest.

pub mod evaluate;
pub mod model;
pub mod pattern;

pub use model::{
    migrations, Exception, ExceptionKind, ExceptionStatus, Limits, Policy, ScannerRule,
};
