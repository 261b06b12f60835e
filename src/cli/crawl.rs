//! `bulwark crawl [--source NAME] [--format json|table]`: one crawl of the configured data
//! stores (the file's `[[crawl.*]]`, Soveren's `SVRN_CRAWLER_CRAWL_*` arrays, `BULWARK_CRAWL_*`,
//! and those added in the console when `--data-dir` holds an appliance's store),
//! classified with the detection engine; prints what each column holds, masked, and exits.

use std::io::Write;

use clap::{Args, ValueEnum};

use crate::dar::{self, Status};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `{"sources":[...],"assets":[...]}`.
    Json,
    /// One line per asset with something found (then the sources).
    Table,
}

/// Flags of `bulwark crawl`.
#[derive(Debug, Args)]
pub struct CrawlArgs {
    /// Crawl only the source with this name.
    #[arg(long)]
    pub source: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Runs one crawl; exit code 0 when every source was read, 1 when one could not be.
pub fn run(cli: &super::Cli, a: &CrawlArgs) -> anyhow::Result<i32> {
    let config = cli.load_config(None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let engine = crate::detect::Engine::from_config(&config.detect)
        .map_err(|p| anyhow::anyhow!("{}", p.join("; ")))?;
    let env = std::env::vars().collect();
    // Sources added in the console live in the appliance's store (readable while it runs).
    let opened = if config.data_dir.join(crate::store::DB_FILE).is_file() {
        let store =
            crate::store::Store::open_read_only(&config.data_dir, &crate::app::migrations())?;
        Some((store, crate::secrets::Sealer::open(&config.data_dir)?))
    } else {
        None
    };
    let sources = dar::all_sources(
        &config.crawl,
        &env,
        opened.as_ref().map(|(store, sealer)| (store, sealer)),
        &config.outbound().map_err(|e| anyhow::anyhow!(e))?,
    )?;
    if let Some(name) = &a.source {
        if !sources.iter().any(|s| &s.name == name) {
            anyhow::bail!("no source named '{name}'");
        }
    }
    if sources.is_empty() {
        anyhow::bail!(
            "no sources: add one on the appliance's Data at rest page, declare [[crawl.postgres]] (mysql, \
             mssql, s3, kafka) in the configuration file, or set BULWARK_CRAWL_POSTGRES / \
             SVRN_CRAWLER_CRAWL_DATABASE_POSTGRES (or the other kinds')"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(dar::crawl(
        &sources,
        &engine,
        a.source.as_deref(),
        &dar::crawl::Known::new(),
    ));
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &result)?;
            out.write_all(b"\n")?;
        }
        Format::Table => {
            for x in result
                .assets
                .iter()
                .filter(|x| !x.types.is_empty() || x.status != Status::Complete)
            {
                writeln!(
                    out,
                    "{:<10} {:<8} {:<6} {:<50} {:<30} {}",
                    x.source,
                    format!("{:?}", x.status).to_uppercase(),
                    x.sensitivity,
                    x.asset,
                    x.types.join(","),
                    if x.reason.is_empty() {
                        x.masked_sample.clone().unwrap_or_default()
                    } else {
                        x.reason.clone()
                    }
                )?;
            }
            for s in &result.sources {
                writeln!(out, "source {}: {} {}", s.name, s.status, s.error)?;
            }
        }
    }
    Ok(if result.sources.iter().all(|s| s.status == "ok") {
        0
    } else {
        1
    })
}
