//! `bulwark scan`: scan an image offline and print a report.

use std::path::PathBuf;

use clap::Args;

use super::Cli;
use crate::vulndb::db::VulnDb;

/// Flags of `bulwark scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// What to scan. This build reads `dir:PATH` (an unpacked root filesystem); registry
    /// references, `oci:DIR[:TAG]` and `docker-archive:FILE.tar` come next.
    pub reference: String,
    /// A standalone vulnerability database (default: the appliance's data dir).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// `table` or `json` (Trivy's SchemaVersion 2 layout).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Also list every package found (`Results[].Packages[]`).
    #[arg(long)]
    pub list_all_pkgs: bool,
    /// Exit with this code when a vulnerability at or above --fail-on is found.
    #[arg(long, default_value_t = 0)]
    pub exit_code: i32,
    /// The lowest severity that makes --exit-code apply (`UNKNOWN`, the default, counts every
    /// finding, as feeds such as Alpine's secdb publish no severity).
    #[arg(long, default_value = "UNKNOWN")]
    pub fail_on: String,
}

fn rank(s: &str) -> u8 {
    match s.to_ascii_uppercase().as_str() {
        "CRITICAL" => 4,
        "HIGH" => 3,
        "MEDIUM" => 2,
        "LOW" => 1,
        _ => 0,
    }
}

/// Runs the scan.
pub fn run(cli: &Cli, a: &ScanArgs) -> anyhow::Result<i32> {
    let Some(dir) = a.reference.strip_prefix("dir:") else {
        anyhow::bail!("'{}': this build scans dir:PATH only; registries, oci: and docker-archive: are not implemented yet", a.reference);
    };
    if !matches!(
        a.fail_on.to_ascii_uppercase().as_str(),
        "UNKNOWN" | "LOW" | "MEDIUM" | "HIGH" | "CRITICAL"
    ) {
        anyhow::bail!("--fail-on must be UNKNOWN, LOW, MEDIUM, HIGH or CRITICAL");
    }
    if !matches!(a.format.as_str(), "table" | "json") {
        anyhow::bail!("--format must be table or json");
    }
    let db_path = match &a.db {
        Some(p) => p.clone(),
        None => cli
            .load_config(None)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .data_dir
            .join("vulndb.redb"),
    };
    if !db_path.exists() {
        anyhow::bail!(
            "no vulnerability database at {}: import one with bulwark db import",
            db_path.display()
        );
    }
    let db = VulnDb::open(&db_path)?;
    let report = crate::scanner::scan_rootfs(std::path::Path::new(dir), dir, &db)?;
    match a.format.as_str() {
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&report.trivy_json(a.list_all_pkgs))?
        ),
        _ => print!("{}", report.table()),
    }
    for s in &report.skipped {
        eprintln!("skipped: {s}");
    }
    let threshold = rank(&a.fail_on);
    let failing = report.vulns.iter().any(|v| rank(v.severity) >= threshold);
    Ok(if failing { a.exit_code } else { 0 })
}
