//! Custom data types imported from signed bundles, kept beside the data and read with the
//! configuration.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CustomTypeConfig;

/// Custom types imported from signed `detect-rules` bundles (`bulwark db import --key`), kept
/// in the data directory and read with the configuration (whose own types win on a shared id).
pub const IMPORTED_RULES: &str = "detect-rules.toml";

/// The imported-rules file: `[[custom]]` tables, as a bundle's rule files hold them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuleFile {
    pub custom: Vec<CustomTypeConfig>,
}

/// The custom types imported into `data_dir` (none when nothing was).
pub fn imported_rules(data_dir: &Path) -> Result<Vec<CustomTypeConfig>, String> {
    // A data dir that is not one yet (or not one at all) is for the store to judge and explain.
    if !data_dir.is_dir() {
        return Ok(Vec::new());
    }
    let path = data_dir.join(IMPORTED_RULES);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str::<RuleFile>(&text)
            .map(|f| f.custom)
            .map_err(|e| format!("{}: {}", path.display(), e.to_string().trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Replaces the imported custom types of `data_dir` (written whole, then renamed into place).
pub fn save_imported_rules(data_dir: &Path, rules: &[CustomTypeConfig]) -> Result<(), String> {
    let path = data_dir.join(IMPORTED_RULES);
    let text = toml::to_string(&RuleFile {
        custom: rules.to_vec(),
    })
    .map_err(|e| e.to_string())?;
    let tmp = path.with_extension("toml.partial");
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| format!("{}: {e}", path.display()))
}
