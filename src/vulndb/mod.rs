//! The offline vulnerability database (issue 4, in progress): version comparators for every
//! ecosystem and OSV range semantics so far; import and matching come next.

pub mod db;
pub mod feeds;
pub mod osv;
pub mod range;
pub mod version;
