//! `bulwark db`: import and inspect the offline vulnerability database.

use std::io::Read as _;
use std::path::PathBuf;

use clap::Subcommand;

use super::Cli;
use crate::vulndb::bundle;
use crate::vulndb::db::VulnDb;

/// `bulwark db ...`
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Import OSV records: JSON files, folders of them, osv.dev's per-ecosystem zip exports,
    /// distro feeds, or signed bundles (with --key).
    Import {
        /// A standalone database file to create or update (default: the appliance's data dir).
        #[arg(long)]
        db: Option<PathBuf>,
        /// Every path is a signed bundle (`bulwark db bundle`), checked with these public keys
        /// (PEM) before anything is written; one that fails changes nothing.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Files, folders or zip archives; with --key, bundles.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Make a signed bundle for an air-gapped appliance: feed files given here and, on a
    /// connected machine, feeds downloaded now.
    Bundle(Box<BundleArgs>),
    /// Show the sources, record counts and age of the database.
    Status {
        /// A standalone database file (default: the appliance's data dir).
        #[arg(long)]
        db: Option<PathBuf>,
    },
}

/// Arguments of `bulwark db bundle`.
#[derive(Debug, clap::Args)]
pub struct BundleArgs {
    /// The signing key: an unencrypted ECDSA P-256 private key in PEM
    /// (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out bundle-key.pem`).
    #[arg(long)]
    pub key: PathBuf,
    /// The bundle to write.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// What the bundle holds: `vulndb` (feeds, for `bulwark db import`) or `detect-rules`
    /// (custom data types, for `bulwark detect rules import`).
    #[arg(long, default_value = "vulndb")]
    pub kind: String,
    /// Free text stored in the manifest (where the files came from).
    #[arg(long, default_value = "")]
    pub description: String,
    /// Download osv.dev's export of an ecosystem (`PyPI`, `npm`, `Go`, `Maven`, `Alpine`, ...).
    #[arg(long = "osv")]
    pub osv: Vec<String>,
    /// Download Alpine's secdb for BRANCH/REPO (`v3.20/main`).
    #[arg(long = "alpine")]
    pub alpine: Vec<String>,
    /// Download the Debian security tracker's JSON.
    #[arg(long)]
    pub debian: bool,
    /// Where the OSV exports are (a mirror).
    #[arg(
        long,
        default_value = "https://osv-vulnerabilities.storage.googleapis.com"
    )]
    pub osv_base: String,
    /// Where Alpine's secdb is (a mirror).
    #[arg(long, default_value = "https://secdb.alpinelinux.org")]
    pub alpine_base: String,
    /// Where the Debian tracker's JSON is (a mirror).
    #[arg(
        long,
        default_value = "https://security-tracker.debian.org/tracker/data/json"
    )]
    pub debian_url: String,
    /// Files or folders to include as they are.
    pub paths: Vec<PathBuf>,
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
        DbCommand::Bundle(a) => bundle(a),
        DbCommand::Import {
            db,
            key: Some(key),
            paths,
        } => {
            let path = db_path(cli, db)?;
            let keys = bundle::read_keys(key)?;
            let scratch = bundle::Scratch::new(&std::env::temp_dir())?;
            let rules_dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let started = std::time::Instant::now();
            let applied = bundle::import(paths, &keys, &path, rules_dir, scratch.path())
                .map_err(|e| anyhow::anyhow!(e))?;
            for b in &applied.bundles {
                eprintln!(
                    "a bundle signed by key {}, {} files, made {}",
                    &b.key[..16],
                    b.files,
                    b.created_at.format("%Y-%m-%d %H:%M UTC")
                );
            }
            println!("{}: {}", path.display(), applied.summary());
            if let Some(r) = &applied.report {
                let secs = started.elapsed().as_secs_f64();
                eprintln!("{:.0} advisories/s", r.advisories as f64 / secs.max(1e-9));
                for p in &r.problems {
                    eprintln!("skipped: {p}");
                }
            }
            Ok(0)
        }
        DbCommand::Import {
            db,
            key: None,
            paths,
        } => {
            if let Some(b) = paths.iter().find(|p| bundle::is_bundle(p)) {
                anyhow::bail!(
                    "{} is a signed bundle: give the key to check it with (--key)",
                    b.display()
                );
            }
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

/// `bulwark db bundle`: downloads what was asked, then writes and signs the bundle.
fn bundle(a: &BundleArgs) -> anyhow::Result<i32> {
    if ![bundle::VULNDB, bundle::DETECT_RULES].contains(&a.kind.as_str()) {
        anyhow::bail!("--kind: 'vulndb' or 'detect-rules'");
    }
    let key = bundle::SigningKey::from_pem(
        &std::fs::read_to_string(&a.key)
            .map_err(|e| anyhow::anyhow!("{}: {e}", a.key.display()))?,
    )?;
    let downloads = bundle::Scratch::new(&std::env::temp_dir())?;
    let mut urls = Vec::new();
    for eco in &a.osv {
        let safe = !eco.is_empty()
            && eco
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" .:_-".contains(&b));
        if !safe {
            anyhow::bail!("--osv: '{eco}' is not an ecosystem name");
        }
        urls.push((
            format!(
                "{}/{}/all.zip",
                a.osv_base.trim_end_matches('/'),
                eco.replace(' ', "%20")
            ),
            format!("osv-{}.zip", eco.replace([' ', ':'], "_")),
        ));
    }
    for branch in &a.alpine {
        let ok = branch.split('/').count() == 2
            && branch
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"./-".contains(&b))
            && !branch.contains("..");
        if !ok {
            anyhow::bail!("--alpine: '{branch}' is not BRANCH/REPO such as v3.20/main");
        }
        urls.push((
            format!("{}/{branch}.json", a.alpine_base.trim_end_matches('/')),
            format!("alpine-{}.json", branch.replace('/', "-")),
        ));
    }
    if a.debian {
        urls.push((a.debian_url.clone(), "debian-tracker.json".into()));
    }
    let mut inputs = Vec::new();
    if !urls.is_empty() {
        let outbound =
            crate::outbound::Outbound::from_process_env().map_err(|e| anyhow::anyhow!(e))?;
        let http = outbound
            .blocking_http_client()
            .timeout(std::time::Duration::from_secs(1800))
            .build()?;
        for (url, name) in urls {
            let dest = downloads.path().join(&name);
            eprintln!("downloading {url}");
            let mut res = http
                .get(&url)
                .send()
                .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
            if !res.status().is_success() {
                anyhow::bail!("{url}: the server answered {}", res.status());
            }
            let mut f = std::fs::File::create(&dest)?;
            let n = std::io::copy(&mut (&mut res).take(bundle::MAX_FILE_BYTES + 1), &mut f)?;
            if n > bundle::MAX_FILE_BYTES {
                anyhow::bail!("{url}: larger than {} bytes", bundle::MAX_FILE_BYTES);
            }
            inputs.push(dest);
        }
    }
    inputs.extend(bundle::gather(&a.paths).or_else(|e| {
        if a.paths.is_empty() && !inputs.is_empty() {
            Ok(Vec::new())
        } else {
            Err(e)
        }
    })?);
    let m = bundle::create(&a.out, &a.kind, &a.description, &inputs, &key)?;
    let bytes: u64 = m.files.iter().map(|f| f.size).sum();
    println!(
        "{}: a signed '{}' bundle of {} files ({:.1} MiB), key {}",
        a.out.display(),
        m.kind,
        m.files.len(),
        bytes as f64 / 1_048_576.0,
        key.public_key().fingerprint()
    );
    Ok(0)
}
