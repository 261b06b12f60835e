//! `bulwark scan`: scan an image offline, print or write a report, optionally upload it to the
//! appliance.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::Cli;
use crate::scanner::registry::{self, Platform};
use crate::scanner::report::{Report, Severity};
use crate::vulndb::db::VulnDb;

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people (severities in color on a terminal).
    Table,
    /// Trivy's JSON (SchemaVersion 2).
    Json,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
    /// A CycloneDX 1.5 SBOM with the vulnerabilities found.
    Cyclonedx,
}

/// Flags of `bulwark scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// What to scan: `REGISTRY/REPO[:TAG][@sha256:…]`, `dir:PATH` (an unpacked root
    /// filesystem), `docker-archive:FILE.tar` (from `docker save`) or `oci:DIR[:TAG]` (an OCI
    /// image layout).
    pub reference: String,
    /// A standalone vulnerability database (default: the appliance's data dir).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Report format.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    pub format: Format,
    /// Write the report to this file instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Also list every package found (`Results[].Packages[]`).
    #[arg(long)]
    pub list_all_pkgs: bool,
    /// Report only these severities (comma-separated, e.g. `CRITICAL,HIGH`).
    #[arg(long, value_enum, ignore_case = true, value_delimiter = ',')]
    pub severity: Vec<Severity>,
    /// Leave out vulnerabilities that have no fixed version yet.
    #[arg(long)]
    pub ignore_unfixed: bool,
    /// Exit with this code when a reported vulnerability is at or above --fail-on.
    #[arg(long, default_value_t = 0)]
    pub exit_code: i32,
    /// The lowest severity that makes --exit-code apply (`UNKNOWN`, the default, counts every
    /// finding, as feeds such as Alpine's secdb publish no severity).
    #[arg(long, value_enum, ignore_case = true, default_value = "UNKNOWN")]
    pub fail_on: Severity,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Which image of a multi-platform index to scan (`OS/ARCH[/VARIANT]`).
    #[arg(long, default_value = "linux/amd64")]
    pub platform: Platform,
    /// No progress on standard error, even on a terminal.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Send the report to the appliance's ingest endpoint (needs --server, --api-key, --cluster).
    #[arg(long, requires_all = ["server", "api_key", "cluster"])]
    pub upload: bool,
    /// The appliance, e.g. `https://bulwark.internal:8443`.
    #[arg(long)]
    pub server: Option<String>,
    /// An API key with the `scanner` scope.
    #[arg(long, env = "BULWARK_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The cluster the image runs in, by name.
    #[arg(long)]
    pub cluster: Option<String>,
    /// The image name to file the report under (default: the registry reference scanned; needed
    /// for `dir:`, `oci:` and `docker-archive:` targets).
    #[arg(long)]
    pub image: Option<String>,
    /// PEM file of the CA that signed the appliance's certificate (its self-signed certificate
    /// is `DATA_DIR/tls/cert.pem`).
    #[arg(long)]
    pub server_ca: Option<PathBuf>,
}

/// Progress lines on standard error, only when it is a terminal.
struct Progress(bool);

impl Progress {
    fn say(&self, msg: &str) {
        if self.0 {
            // `\r` + clear line: one status line that updates in place.
            eprint!("\r\x1b[2K{msg}");
            let _ = std::io::stderr().flush();
        }
    }
    fn done(&self) {
        if self.0 {
            eprint!("\r\x1b[2K");
        }
    }
}

/// Reads the image `reference` names and scans it.
fn scan_target(a: &ScanArgs, db: &VulnDb, progress: &Progress) -> anyhow::Result<Report> {
    use crate::scanner::{archive, layers::Limits, scan_layers, scan_rootfs};
    let reference = a.reference.as_str();
    let limits = Limits::default();
    if let Some(dir) = reference.strip_prefix("dir:") {
        progress.say(&format!("analysing {dir}"));
        return Ok(scan_rootfs(Path::new(dir), dir, db)?);
    }
    if let Some(file) = reference.strip_prefix("docker-archive:") {
        progress.say(&format!("reading layers of {file}"));
        let image = archive::docker_archive(Path::new(file), &limits)?;
        progress.say("matching packages");
        return Ok(scan_layers(&image, file, db)?);
    }
    if let Some(rest) = reference.strip_prefix("oci:") {
        // `oci:DIR:TAG`: the tag is what follows the last colon, when that is not a path.
        let (dir, tag) = match rest.rsplit_once(':') {
            Some((d, t)) if !t.contains('/') && !d.is_empty() => (d, Some(t)),
            _ => (rest, None),
        };
        progress.say(&format!("reading layers of {rest}"));
        let image = archive::oci_layout(Path::new(dir), tag, &limits)?;
        progress.say("matching packages");
        return Ok(scan_layers(&image, rest, db)?);
    }
    let image = registry::ImageRef::parse(reference).map_err(|e| {
        anyhow::anyhow!("{e}: give REGISTRY/REPO[:TAG][@DIGEST], dir:PATH, docker-archive:FILE.tar or oci:DIR[:TAG]")
    })?;
    let mut access = a.registry.access(&image.registry)?;
    access.platform = a.platform.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    progress.say(&format!("pulling {reference}"));
    let mut last = std::time::Instant::now();
    let flat = rt.block_on(registry::pull_with_progress(
        &image,
        &access,
        &limits,
        &mut |p| {
            // Redraw at most ten times a second, and at the end of each layer.
            if p.done == p.size || last.elapsed() >= std::time::Duration::from_millis(100) {
                last = std::time::Instant::now();
                progress.say(&p.bar());
            }
        },
    ))?;
    progress.say("matching packages");
    Ok(scan_layers(&flat, reference, db)?)
}

/// How to reach a registry, for the commands that pull (`scan`, `verify`).
#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    /// Registry user (basic auth, also used to obtain bearer tokens). Without it, credentials
    /// come from Docker's config.json ($DOCKER_CONFIG or ~/.docker), when it has the registry.
    #[arg(long)]
    pub username: Option<String>,
    /// Registry password or token; prefer the environment variable to keep it out of `ps`.
    #[arg(long, env = "BULWARK_REGISTRY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Talk to the registry over plain HTTP (trusted networks only).
    #[arg(long, alias = "plain-http")]
    pub insecure_registry: bool,
    /// Accept the registry's TLS certificate without checking it.
    #[arg(long)]
    pub insecure: bool,
}

impl RegistryArgs {
    /// Credentials and transport for `registry` (proxy and extra CAs from the environment:
    /// `HTTPS_PROXY`, `NO_PROXY`, `BULWARK_OUTBOUND_CA_BUNDLE`).
    pub fn access(&self, registry: &str) -> anyhow::Result<registry::Access> {
        let (username, password) = match &self.username {
            Some(u) => (Some(u.clone()), self.password.clone()),
            None => match docker_config_credentials(registry) {
                Some((u, p)) => (Some(u), Some(p)),
                None => (None, None),
            },
        };
        Ok(registry::Access {
            username,
            password,
            plain_http: self.insecure_registry,
            insecure_tls: self.insecure,
            platform: Platform::default(),
            outbound: crate::outbound::Outbound::from_process_env()
                .map_err(|e| anyhow::anyhow!(e))?,
        })
    }
}

/// Credentials for `registry` from Docker's `config.json`, if it has them.
fn docker_config_credentials(registry: &str) -> Option<(String, String)> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    registry::docker_config_credentials(&text, registry)
}

/// Where an upload goes: checked before the scan, so a mistake costs no scan.
struct UploadTarget<'a> {
    server: &'a str,
    key: &'a str,
    cluster: &'a str,
    image: String,
}

fn upload_target(a: &ScanArgs) -> anyhow::Result<UploadTarget<'_>> {
    let (Some(server), Some(key), Some(cluster)) = (&a.server, &a.api_key, &a.cluster) else {
        anyhow::bail!("--upload needs --server, --api-key (or BULWARK_API_KEY) and --cluster");
    };
    let image = match &a.image {
        Some(i) => i.clone(),
        None if !is_local(&a.reference) => a.reference.clone(),
        None => anyhow::bail!(
            "--upload of a dir:, oci: or docker-archive: target needs --image NAME (the image it will run as)"
        ),
    };
    // An archive or layout carries its image's config digest; a folder has none, so the name
    // must say which image it is.
    if a.reference.starts_with("dir:") && !image.contains("@sha256:") {
        anyhow::bail!(
            "--image {image}: a dir: target has no image digest, so name it with one (NAME@sha256:DIGEST) for the appliance to file the report under"
        );
    }
    Ok(UploadTarget {
        server,
        key,
        cluster,
        image,
    })
}

/// Posts the Trivy-compatible JSON to the appliance; returns its verdict line.
fn upload(a: &ScanArgs, report: &Report) -> anyhow::Result<String> {
    let UploadTarget {
        server,
        key,
        cluster,
        image,
    } = upload_target(a)?;
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(120));
    if let Some(ca) = &a.server_ca {
        let pem =
            std::fs::read(ca).map_err(|e| anyhow::anyhow!("--server-ca {}: {e}", ca.display()))?;
        // Every certificate in the file: the appliance's CA, or its whole served chain.
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| anyhow::anyhow!("--server-ca {}: {e}", ca.display()))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder.build()?;
    let body = serde_json::to_vec(&report.trivy_json(false))?;
    let mut url = reqwest::Url::parse(server)
        .map_err(|e| anyhow::anyhow!("--server {server}: {e}"))?
        .join("/api/v1/scans")?;
    url.query_pairs_mut()
        .append_pair("cluster", cluster)
        .append_pair("image", &image);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, text) = rt.block_on(async {
        let res = client
            .post(url)
            .header("x-api-key", key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| upload_error(server, a.server_ca.is_none(), &e))?;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        Ok::<_, anyhow::Error>((status, text))
    })?;
    if !status.is_success() {
        let msg = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .and_then(|m| m.as_str())
                    .map(String::from)
            })
            .unwrap_or(text);
        anyhow::bail!("upload refused ({status}): {msg}");
    }
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let compliant = v
        .pointer("/verdict/compliant")
        .and_then(|c| c.as_bool())
        .map(|c| if c { "compliant" } else { "NOT compliant" })
        .unwrap_or("stored");
    Ok(format!("uploaded {image} to {cluster}: {compliant}"))
}

/// Why an upload could not reach the appliance, saying what to do about an untrusted
/// certificate (an appliance serves one from its own CA until the operator installs theirs).
fn upload_error(server: &str, no_ca: bool, e: &reqwest::Error) -> anyhow::Error {
    let chain = format!("{e:?}");
    let untrusted = ["UnknownIssuer", "certificate", "Certificate"]
        .iter()
        .any(|w| chain.contains(w));
    if untrusted && no_ca {
        anyhow::anyhow!(
            "upload to {server}: the appliance's certificate is not trusted by this machine; pass --server-ca with the appliance's CA (DATA_DIR/tls/ca.pem on the appliance host, ./bulwark-data/tls/ca.pem by default)"
        )
    } else if untrusted {
        anyhow::anyhow!(
            "upload to {server}: its certificate is not signed by the CA in --server-ca ({e})"
        )
    } else {
        anyhow::anyhow!("upload to {server}: {e}")
    }
}

fn is_local(reference: &str) -> bool {
    ["dir:", "oci:", "docker-archive:"]
        .iter()
        .any(|p| reference.starts_with(p))
}

/// Runs the scan.
pub fn run(cli: &Cli, a: &ScanArgs) -> anyhow::Result<i32> {
    if a.upload {
        upload_target(a)?;
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
    let db = VulnDb::open_read_only(&db_path)?;
    let progress = Progress(!a.quiet && std::io::stderr().is_terminal());
    let scanned = scan_target(a, &db, &progress);
    progress.done();
    let mut report = scanned?;
    report.retain(&a.severity, a.ignore_unfixed);
    let to_terminal = a.output.is_none() && std::io::stdout().is_terminal();
    let text = match a.format {
        Format::Json => serde_json::to_string_pretty(&report.trivy_json(a.list_all_pkgs))?,
        Format::Sarif => serde_json::to_string_pretty(&report.sarif())?,
        Format::Cyclonedx => serde_json::to_string_pretty(&report.cyclonedx())?,
        Format::Table => report.table(to_terminal),
    };
    match &a.output {
        Some(path) => std::fs::write(path, text.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            if !text.ends_with('\n') {
                out.write_all(b"\n")?;
            }
        }
    }
    for s in &report.skipped {
        eprintln!("skipped: {s}");
    }
    if a.upload {
        eprintln!("{}", upload(a, &report)?);
    }
    let failing = report.vulns.iter().any(|v| v.severity >= a.fail_on);
    Ok(if failing { a.exit_code } else { 0 })
}
