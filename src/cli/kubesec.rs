//! `bulwark kubesec [--format json|table] FILE...`: kubesec's scan, offline. Prints one report
//! per document (a kubesec-compatible JSON array with `--format json`) and exits 2 when an
//! object scores zero or less, fails a critical rule, or is not a Kubernetes object; 1 when a
//! file cannot be read.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::kubesec::{self, Report};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// kubesec's JSON: an array with one report per document.
    Json,
    /// A table for people.
    Table,
}

/// Flags of `bulwark kubesec`.
#[derive(Debug, Args)]
pub struct KubesecArgs {
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "json")]
    pub format: Format,
    /// Manifests (YAML with one or more documents, or JSON); `-` for standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let limit = kubesec::MAX_BYTES as u64 + 1;
    let mut data = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin().take(limit).read_to_end(&mut data)?;
    } else {
        std::fs::File::open(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            .take(limit)
            .read_to_end(&mut data)?;
    }
    Ok(data)
}

/// Runs `bulwark kubesec`; returns the exit code.
pub fn run(a: &KubesecArgs) -> anyhow::Result<i32> {
    let mut reports: Vec<Report> = Vec::new();
    for path in &a.files {
        let name = path.display().to_string();
        let data = read(path)?;
        reports.extend(kubesec::scan(&name, &data)?);
    }
    let out = match a.format {
        Format::Json => serde_json::to_string_pretty(&reports)? + "\n",
        Format::Table => kubesec::table(&reports),
    };
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(if reports.iter().all(Report::passes) {
        0
    } else {
        2
    })
}
