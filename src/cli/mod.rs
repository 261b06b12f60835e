//! The command line: one module per subcommand; each parses its flags and calls the library.

mod admin;
mod crawl;
mod db;
mod detect;
mod gatekeeper;
mod generate;
mod kubesec;
mod scan;
mod sensor;
mod sensor_manifest;
mod serve;
mod verify;
mod webhook;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, Overrides};

/// Bulwark: on-prem Kubernetes security appliance.
#[derive(Debug, Parser)]
#[command(name = "bulwark", version, about)]
pub struct Cli {
    /// TOML configuration file (see config/bulwark.toml); every key can also be set with BULWARK_*.
    #[arg(long, global = true, env = "BULWARK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (default ./bulwark-data).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the appliance: web UI, API, scheduler.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8443.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage users of a stopped appliance's data dir.
    User {
        #[command(subcommand)]
        command: admin::UserCommand,
    },
    /// Manage API keys of a stopped appliance's data dir.
    Apikey {
        #[command(subcommand)]
        command: admin::ApiKeyCommand,
    },
    /// Write a consistent copy of the database to FILE (works while the appliance runs).
    Backup {
        /// Where to write the copy.
        file: PathBuf,
    },
    /// Replace the database of a stopped appliance with the backup FILE.
    Restore {
        /// A file written by `bulwark backup`.
        file: PathBuf,
    },
    /// Scan an image offline: a registry reference, dir:, oci: or docker-archive:.
    Scan(Box<scan::ScanArgs>),
    /// Check that an image in a registry carries a valid cosign signature by a key (exit 0 only
    /// then; 1 unsigned; 2 could not check).
    Verify(Box<verify::VerifyArgs>),
    /// Find sensitive data (cards, IBANs, national ids, secrets, contact data) in a file or
    /// standard input; prints masked findings as JSON.
    Detect(detect::DetectArgs),
    /// Crawl the configured data stores (PostgreSQL, MySQL, SQL Server, S3, Kafka) for
    /// sensitive data: samples each read-only and prints what each column or field holds,
    /// masked.
    Crawl(crawl::CrawlArgs),
    /// Score Kubernetes manifests with kubesec's rules (offline); exits 2 when an object scores
    /// zero or less or fails a critical rule.
    Kubesec(kubesec::KubesecArgs),
    /// Gatekeeper policy tools (offline).
    Gatekeeper {
        #[command(subcommand)]
        command: gatekeeper::GatekeeperCommand,
    },
    /// Follow HTTP traffic (a capture file in this build) and report which endpoints carry
    /// which sensitive data, as JSON lines.
    Sensor(sensor::SensorArgs),
    /// Print the Kubernetes DaemonSet (and ServiceAccount, optional NetworkPolicy) that runs
    /// the sensor on every node.
    SensorManifest(sensor_manifest::ManifestArgs),
    /// The offline vulnerability database.
    Db {
        #[command(subcommand)]
        command: db::DbCommand,
    },
    /// Print the ValidatingWebhookConfiguration for a cluster (works while the appliance runs).
    WebhookConfig(webhook::WebhookArgs),
    /// Search index tools.
    Search {
        #[command(subcommand)]
        command: SearchCommand,
    },
    /// Write the manual pages or the shell completions (the .deb ships them).
    Generate {
        #[command(subcommand)]
        command: generate::GenerateCommand,
    },
}

/// `bulwark config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file (and BULWARK_* variables) and say exactly what is wrong.
    Check {
        /// The file (default: --config).
        file: Option<PathBuf>,
    },
    /// Print every key with its environment variable name and default.
    Keys,
}

/// `bulwark search ...`
#[derive(Debug, Subcommand)]
pub enum SearchCommand {
    /// Rebuild the search index from the database (appliance stopped).
    Reindex,
}

impl Cli {
    /// Loads the configuration with this command line's overrides.
    pub fn load_config(
        &self,
        listen: Option<String>,
    ) -> Result<Config, crate::config::ConfigError> {
        let overrides = Overrides {
            data_dir: self.data_dir.clone(),
            listen,
        };
        Config::load(self.config.as_deref(), std::env::vars(), &overrides)
    }
}

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match &cli.command {
        Command::Serve { listen } => serve::run(&cli, listen.clone()),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => Ok(admin::config_check(&cli, file.clone())),
        Command::Config {
            command: ConfigCommand::Keys,
        } => {
            admin::config_keys();
            Ok(0)
        }
        Command::User { command } => admin::user(&cli, command),
        Command::Apikey { command } => admin::apikey(&cli, command),
        Command::Backup { file } => admin::backup(&cli, file),
        Command::Restore { file } => admin::restore(&cli, file),
        Command::Search {
            command: SearchCommand::Reindex,
        } => admin::reindex(&cli),
        Command::WebhookConfig(a) => webhook::run(&cli, a),
        Command::Generate { command } => generate::run(command),
        Command::Db { command } => db::run(&cli, command),
        Command::Scan(a) => scan::run(&cli, a),
        Command::Verify(a) => verify::run(a),
        Command::Detect(a) => detect::run(&cli, a),
        Command::Kubesec(a) => kubesec::run(a),
        Command::Crawl(a) => crawl::run(&cli, a),
        Command::Gatekeeper { command } => gatekeeper::run(command),
        Command::Sensor(a) => sensor::run(&cli, a),
        Command::SensorManifest(a) => sensor_manifest::run(a),
    }
}

/// Sets up logging from the configuration (`BULWARK_LOG` or `RUST_LOG` override the level).
pub fn init_logging(config: &Config) {
    let filter = std::env::var("BULWARK_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| config.log.level.clone());
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal, never into files or the journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if config.log.format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
