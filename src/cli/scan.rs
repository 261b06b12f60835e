//! `bulwark scan`: scan an image offline and print a report.

use std::path::PathBuf;

use clap::Args;

use super::Cli;
use crate::scanner::report::Severity;
use crate::vulndb::db::VulnDb;

/// Flags of `bulwark scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// What to scan: `dir:PATH` (an unpacked root filesystem), `docker-archive:FILE.tar` (from
    /// `docker save`) or `oci:DIR[:TAG]` (an OCI image layout). Registry references come next.
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
    /// Registry user (basic auth, also used to obtain bearer tokens).
    #[arg(long)]
    pub username: Option<String>,
    /// Registry password or token; prefer the environment variable to keep it out of `ps`.
    #[arg(long, env = "BULWARK_REGISTRY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Talk to the registry over plain HTTP (trusted networks only).
    #[arg(long)]
    pub plain_http: bool,
    /// Accept the registry's TLS certificate without checking it.
    #[arg(long)]
    pub insecure: bool,
    /// The lowest severity that makes --exit-code apply (`UNKNOWN`, the default, counts every
    /// finding, as feeds such as Alpine's secdb publish no severity).
    #[arg(long, value_enum, ignore_case = true, default_value = "UNKNOWN")]
    pub fail_on: Severity,
}

/// Reads the image `reference` names and scans it.
fn scan_target(a: &ScanArgs, db: &VulnDb) -> anyhow::Result<crate::scanner::report::Report> {
    use crate::scanner::{archive, layers::Limits, registry, scan_layers, scan_rootfs};
    use std::path::Path;
    let reference = a.reference.as_str();
    let limits = Limits::default();
    if let Some(dir) = reference.strip_prefix("dir:") {
        return Ok(scan_rootfs(Path::new(dir), dir, db)?);
    }
    if let Some(file) = reference.strip_prefix("docker-archive:") {
        let image = archive::docker_archive(Path::new(file), &limits)?;
        return Ok(scan_layers(&image, file, db)?);
    }
    if let Some(rest) = reference.strip_prefix("oci:") {
        // `oci:DIR:TAG`: the tag is what follows the last colon, when that is not a path.
        let (dir, tag) = match rest.rsplit_once(':') {
            Some((d, t)) if !t.contains('/') && !d.is_empty() => (d, Some(t)),
            _ => (rest, None),
        };
        let image = archive::oci_layout(Path::new(dir), tag, &limits)?;
        return Ok(scan_layers(&image, rest, db)?);
    }
    let image = registry::ImageRef::parse(reference).map_err(|e| {
        anyhow::anyhow!("{e}: give REGISTRY/REPO[:TAG][@DIGEST], dir:PATH, docker-archive:FILE.tar or oci:DIR[:TAG]")
    })?;
    let access = registry::Access {
        username: a.username.clone(),
        password: a.password.clone(),
        plain_http: a.plain_http,
        insecure_tls: a.insecure,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let flat = rt.block_on(registry::pull(&image, &access, &limits))?;
    Ok(scan_layers(&flat, reference, db)?)
}

/// Runs the scan.
pub fn run(cli: &Cli, a: &ScanArgs) -> anyhow::Result<i32> {
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
    let report = scan_target(a, &db)?;
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
    let failing = report.vulns.iter().any(|v| v.severity >= a.fail_on);
    Ok(if failing { a.exit_code } else { 0 })
}
