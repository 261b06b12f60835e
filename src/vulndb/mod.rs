//! The offline vulnerability database: version comparators for every ecosystem (`version`), OSV
//! range semantics (`range`), the feeds it imports (`osv`, `feeds`), what their severities mean
//! (`severity`) and the store that imports and answers lookups (`db`).

pub mod api;
pub mod bundle;
pub mod db;
pub mod feeds;
pub mod osv;
pub mod pages;
pub mod range;
pub mod severity;
pub mod version;
