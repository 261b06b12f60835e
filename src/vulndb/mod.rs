//! The offline vulnerability database (issue 4, in progress): version comparators so far.

pub mod version;
