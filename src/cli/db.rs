//! `bulwark db`: import and inspect the offline vulnerability database.

use std::path::PathBuf;

use clap::Subcommand;

use super::Cli;
use crate::vulndb::db::VulnDb;

/// `bulwark db ...`
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Import OSV records: JSON files, folders of them, or osv.dev's per-ecosystem zip exports.
    Import {
        /// A standalone database file to create or update (default: the appliance's data dir).
        #[arg(long)]
        db: Option<PathBuf>,
        /// Files, folders or zip archives.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Show the sources, record counts and age of the database.
    Status {
        /// A standalone database file (default: the appliance's data dir).
        #[arg(long)]
        db: Option<PathBuf>,
    },
}

fn db_path(cli: &Cli, db: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match db {
        Some(p) => Ok(p.clone()),
        None => {
            let cfg = cli
                .load_config(None)
                .map_err(|e| anyhow::anyhow!("configuration is not valid:\n{e}"))?;
            Ok(cfg.data_dir.join("vulndb.redb"))
        }
    }
}

/// Runs `bulwark db ...`.
pub fn run(cli: &Cli, cmd: &DbCommand) -> anyhow::Result<i32> {
    match cmd {
        DbCommand::Import { db, paths } => {
            let path = db_path(cli, db)?;
            let vdb = VulnDb::open(&path)?;
            let started = std::time::Instant::now();
            let r = vdb.import(paths)?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{}: {} ({:.0} advisories/s)",
                path.display(),
                r.summary(),
                r.advisories as f64 / secs.max(1e-9)
            );
            for p in &r.problems {
                eprintln!("skipped: {p}");
            }
            Ok(0)
        }
        DbCommand::Status { db } => {
            let path = db_path(cli, db)?;
            if !path.exists() {
                anyhow::bail!(
                    "{} does not exist: import something first (bulwark db import)",
                    path.display()
                );
            }
            let vdb = VulnDb::open_read_only(&path)?;
            println!("{}: {} advisories", path.display(), vdb.len()?);
            for s in vdb.sources()? {
                let age = chrono::Utc::now() - s.imported_at;
                println!(
                    "  {:<16} {:>8} records, imported {} ({} days ago)",
                    s.name,
                    s.records,
                    s.imported_at.format("%Y-%m-%d %H:%M UTC"),
                    age.num_days()
                );
            }
            Ok(0)
        }
    }
}
