//! Catalogers: read package databases out of an image's files. Each is a pure parser over the
//! bytes of one file; the layer walk (to come) hands them the files they ask for.

pub mod apk;
pub mod dpkg;
pub mod lang;
pub mod os_release;
pub mod rpm;

use serde::Serialize;

/// A package found in an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    /// Binary package name.
    pub name: String,
    pub version: String,
    /// The source package, when the database names one (dpkg `Source:`, apk `o:`).
    pub source: Option<String>,
    /// Source package version, when it differs.
    pub source_version: Option<String>,
    pub arch: String,
    pub licenses: Vec<String>,
}

/// What a cataloger could not read; it skips the record and carries on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub line: usize,
    pub reason: String,
}
