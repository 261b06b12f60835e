//! The native scanner (issue 4, in progress): package catalogers so far. The registry client,
//! layer walk, matching and report formats come next.

pub mod catalog;
