//! Configuration: one typed struct, loaded as defaults < TOML file < `BULWARK_*` environment
//! < command-line flags, and validated before anything starts.
//!
//! Every key of the file can be overridden by an environment variable named after its path:
//! `[http] max_body_bytes` is `BULWARK_HTTP_MAX_BODY_BYTES`, the top-level `listen` is
//! `BULWARK_LISTEN`. The list of keys is derived from the defaults, so a key added to the struct is
//! overridable without further work.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod env;
mod outbound;
mod rules;

use env::{apply_env, collect_keys};
pub use outbound::{BundlesConfig, OutboundConfig};
pub use rules::{imported_rules, save_imported_rules, RuleFile, IMPORTED_RULES};

/// Environment variables that start with `BULWARK_` but are not configuration keys.
const NON_KEY_ENV: &[&str] = &[
    "BULWARK_CONFIG",
    "BULWARK_ADMIN_EMAIL",
    "BULWARK_ADMIN_PASSWORD",
    "BULWARK_API_KEY",
    "BULWARK_SERVER",
    "BULWARK_TEST_ARTIFACTS",
    "BULWARK_LOG",
    "BULWARK_SENSOR_TOKEN",
    "BULWARK_REGISTRY_PASSWORD",
    "BULWARK_CRAWL_POSTGRES",
    "BULWARK_CRAWL_MYSQL",
    "BULWARK_CRAWL_MSSQL",
    "BULWARK_CRAWL_S3",
    "BULWARK_CRAWL_KAFKA",
];

/// The whole configuration of the appliance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory holding `bulwark.redb`, the search index and the TLS material.
    pub data_dir: PathBuf,
    /// Address the HTTPS server listens on.
    pub listen: String,
    /// TLS certificate settings.
    pub tls: TlsConfig,
    /// Logging settings.
    pub log: LogConfig,
    /// HTTP server limits and switches.
    pub http: HttpConfig,
    /// Sessions and login throttling.
    pub auth: AuthConfig,
    /// Cron schedules of the built-in jobs.
    pub jobs: JobsConfig,
    /// How long records are kept.
    pub retention: RetentionConfig,
    /// Outgoing email (notifications to admins).
    pub smtp: SmtpConfig,
    /// Sensitive-data detection.
    pub detect: DetectConfig,
    /// The sensor embedded in `serve`.
    pub sensor: SensorConfig,
    /// Sign-on providers declared here.
    pub sso: SsoConfig,
    /// Data stores the data-at-rest crawler reads.
    pub crawl: CrawlConfig,
    /// Proxy and extra CAs for every outbound connection.
    pub outbound: OutboundConfig,
    /// Signed offline bundles.
    pub bundles: BundlesConfig,
}

/// Data stores declared in the file, one list per kind (`[[crawl.postgres]]` with `name`,
/// `connection_string`, `databases`, ...); the crawler reads the fields. They hold secrets: keep
/// the file readable by root only, or use `$(VAR)` references to the environment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CrawlConfig {
    pub postgres: Vec<toml::Table>,
    pub mysql: Vec<toml::Table>,
    pub mssql: Vec<toml::Table>,
    pub s3: Vec<toml::Table>,
    pub kafka: Vec<toml::Table>,
}

/// Sign-on providers declared in the file: each `[[sso.providers]]` table holds the fields of
/// `POST /api/v1/sso/providers` (secrets included, so keep the file readable by root only). At
/// every start each is created, or updated by name to what the file says; providers added in
/// the console are left alone.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SsoConfig {
    pub providers: Vec<toml::Table>,
}

/// The data-in-motion sensor `serve` can run itself (on a node, or on a host that sees traffic).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SensorConfig {
    /// Interfaces to capture on, comma-separated (`eth0`, `veth*`, `all-veths`); empty = off.
    pub interfaces: String,
    /// Capture workers per interface.
    pub workers: u64,
    /// Seconds between merges of what was seen into the data map.
    pub store_every_seconds: u64,
    /// Request paths left out, comma-separated (probes and health checks); empty = none.
    pub skip_paths: String,
    /// Leave out the kubelet's probes (user agent `kube-probe/…`).
    pub skip_kube_probes: bool,
    /// Most bytes of each decoded body scanned.
    pub max_body_bytes: u64,
    /// Seconds between matches of interface patterns, so pods started later are captured.
    pub rescan_seconds: u64,
}

impl Default for SensorConfig {
    fn default() -> Self {
        SensorConfig {
            interfaces: String::new(),
            workers: 1,
            store_every_seconds: 30,
            // The sensor's own defaults (the `sensor` module tests that these agree with them).
            skip_paths: "/healthz,/readyz,/livez,/health,/metrics,/ping".into(),
            skip_kube_probes: true,
            max_body_bytes: 1024 * 1024,
            rescan_seconds: 5,
        }
    }
}

/// Sensitive-data detection settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Types of your own, beside the built-in ones (`[[detect.custom]]` tables).
    pub custom: Vec<CustomTypeConfig>,
}

/// A custom data type: a regex on the value, on the field name, or both.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CustomTypeConfig {
    /// The type id reported, e.g. `acme.employee_id`.
    pub id: String,
    /// `Low`, `Medium` or `High`.
    pub sensitivity: String,
    /// Regex a value must match (empty: any value under a matching name).
    pub value: String,
    /// Regex the field, key, header or column name must match (empty: any name).
    pub key: String,
}

impl DetectConfig {
    /// What is wrong with the custom types, one sentence each (the `detect` domain builds the
    /// engine from a configuration without problems).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (i, c) in self.custom.iter().enumerate() {
            let at = format!("detect.custom[{i}]");
            let id_ok = !c.id.is_empty()
                && c.id.len() <= 64
                && c.id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
            if !id_ok {
                problems.push(format!(
                    "{at}.id: '{}' must be 1-64 lowercase letters, digits, '.', '_' or '-'",
                    c.id
                ));
            }
            if !matches!(
                c.sensitivity.to_ascii_lowercase().as_str(),
                "low" | "medium" | "" | "high"
            ) {
                problems.push(format!(
                    "{at}.sensitivity: '{}' is not Low, Medium or High",
                    c.sensitivity
                ));
            }
            if let Err(e) = (!c.value.is_empty())
                .then(|| regex::bytes::Regex::new(&c.value))
                .transpose()
            {
                problems.push(format!("{at}.value: {e}"));
            }
            if let Err(e) = (!c.key.is_empty())
                .then(|| regex::Regex::new(&c.key))
                .transpose()
            {
                problems.push(format!("{at}.key: {e}"));
            }
            if c.value.is_empty() && c.key.is_empty() {
                problems.push(format!("{at}: give a value regex, a key regex, or both"));
            }
        }
        problems
    }
}

/// Outgoing email. An empty host disables sending; mail then waits in the outbox.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// SMTP server host name; empty = do not send.
    pub host: String,
    /// SMTP port (25, 465 for `tls`, 587 for `starttls`).
    pub port: u16,
    /// `none` (plain, for a relay on a trusted network), `starttls` or `tls`.
    pub security: String,
    /// Sender address.
    pub from: String,
    /// Login (empty: no authentication).
    pub username: String,
    /// Password (prefer BULWARK_SMTP_PASSWORD over writing it in the file).
    pub password: String,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: 25,
            security: "starttls".into(),
            from: "Bulwark <bulwark@localhost>".into(),
            username: String::new(),
            password: String::new(),
        }
    }
}

// The password never appears in logs or debug output.
impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("from", &self.from)
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() { "" } else { "***" },
            )
            .finish()
    }
}

/// TLS certificate settings. Empty paths mean "generate a self-signed certificate into the data
/// directory on first start and reuse it afterwards".
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain of the operator's own certificate.
    pub cert_file: String,
    /// PEM private key matching `cert_file`.
    pub key_file: String,
}

/// Logging settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` for humans, `json` for log collectors.
    pub format: String,
    /// A tracing filter such as `info` or `bulwark=debug,actix_web=info`.
    pub level: String,
}

/// HTTP server limits and switches.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest JSON or form body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest scan report accepted (`POST /api/v1/scans` and trawler uploads), in bytes.
    pub max_scan_bytes: usize,
    /// Worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Serve `/metrics` without credentials (otherwise a key with the `metrics` scope is needed).
    pub metrics_public: bool,
    /// Seconds a request body may take before it must keep up with `body_min_bytes_per_second`.
    pub body_timeout_seconds: u64,
    /// Slowest sustained upload accepted after `body_timeout_seconds`, in bytes per second.
    pub body_min_bytes_per_second: u64,
    /// Request bodies one source address may be sending at once (further ones get 503).
    pub max_bodies_per_address: usize,
    /// How browsers reach the appliance (`https://bulwark.corp:8443`), for the redirect URIs
    /// given to identity providers; empty: the address each request came in on.
    pub public_url: String,
}

/// Sessions and login throttling.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Lifetime of a login session, in minutes.
    pub session_ttl_minutes: u64,
    /// Failed logins allowed per account, and per source address, inside `login_window_seconds`.
    pub login_max_failures: u32,
    /// The sliding window over which failures are counted, in seconds.
    pub login_window_seconds: u64,
}

/// Cron schedules (seconds minutes hours day-of-month month day-of-week, UTC).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Deletes audit-log entries past retention and expired sessions.
    pub retention: String,
    /// Sets expired exceptions inactive.
    pub exceptions: String,
    /// Queues images whose policy rescan period has passed.
    pub rescans: String,
    /// Pulls and scans queued images with the native scanner.
    pub native_scans: String,
    /// Lists the pods of clusters connected to their API servers (the live inventory).
    pub kube_sync: String,
    /// Judges every image in every cluster for the dashboard (the day's last run is its trend
    /// point).
    pub posture: String,
    /// Records each cluster's pod compliance per namespace (the day's last run is its trend
    /// point).
    pub pod_compliance: String,
    /// Audits every cluster with Gatekeeper constraints against its last synced objects
    /// (exceptions start and end by date).
    pub gatekeeper_audit: String,
    /// Deletes Falco events past `retention.falco_days` or beyond `retention.falco_max_mib`.
    pub falco_retention: String,
    /// Mails the daily digest of Falco events when alerting is set to a digest.
    pub falco_digest: String,
    /// Crawls the configured data stores (`[[crawl.*]]`) whose `check_interval` (default 24h) has
    /// passed; hourly by default, so intervals down to an hour are kept.
    pub crawl: String,
}

/// How long records are kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Audit-log entries older than this many days are deleted by the retention job.
    pub audit_log_days: u64,
    /// Runs kept per job in the job history.
    pub job_runs_kept: usize,
    /// Falco events older than this many days are deleted (by arrival).
    pub falco_days: u64,
    /// Falco events are deleted, oldest first, while they take more than this many MiB.
    pub falco_max_mib: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./bulwark-data"),
            listen: "127.0.0.1:8443".into(),
            tls: TlsConfig::default(),
            log: LogConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            jobs: JobsConfig::default(),
            retention: RetentionConfig::default(),
            smtp: SmtpConfig::default(),
            detect: DetectConfig::default(),
            sensor: SensorConfig::default(),
            sso: SsoConfig::default(),
            crawl: CrawlConfig::default(),
            outbound: OutboundConfig::default(),
            bundles: BundlesConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 1024 * 1024,
            max_scan_bytes: 128 * 1024 * 1024,
            workers: 0,
            metrics_public: false,
            body_timeout_seconds: 10,
            body_min_bytes_per_second: 64 * 1024,
            max_bodies_per_address: 32,
            public_url: String::new(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_ttl_minutes: 12 * 60,
            login_max_failures: 5,
            login_window_seconds: 900,
        }
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            retention: "0 17 3 * * *".into(),
            exceptions: "0 5 0 * * *".into(),
            rescans: "0 30 * * * *".into(),
            native_scans: "0 */10 * * * *".into(),
            kube_sync: "0 */2 * * * *".into(),
            posture: "0 45 * * * *".into(),
            pod_compliance: "0 50 * * * *".into(),
            gatekeeper_audit: "0 55 * * * *".into(),
            falco_retention: "0 */5 * * * *".into(),
            falco_digest: "0 0 7 * * *".into(),
            crawl: "0 0 * * * *".into(),
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            audit_log_days: 365,
            job_runs_kept: 50,
            falco_days: 30,
            falco_max_mib: 2048,
        }
    }
}

/// What went wrong while loading a configuration; each entry is one complete sentence.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct ConfigError {
    /// Every problem found, so an operator fixes them all in one go.
    pub problems: Vec<String>,
}

/// Overrides that come from command-line flags (highest precedence).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
}

impl Config {
    /// Loads the configuration: defaults, then `file` (if given), then `BULWARK_*` variables from
    /// `env`, then `overrides`; then validates. `env` is passed in so tests need not touch the
    /// process environment.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut table = match file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => match text.parse::<toml::Table>() {
                    Ok(t) => t,
                    Err(e) => {
                        return Err(ConfigError {
                            problems: vec![format!("{}: {}", path.display(), e.to_string().trim())],
                        })
                    }
                },
                Err(e) => {
                    return Err(ConfigError {
                        problems: vec![format!("cannot read config file {}: {e}", path.display())],
                    })
                }
            },
            None => toml::Table::new(),
        };
        let env: Vec<(String, String)> = env.into_iter().collect();
        apply_env(&mut table, env.iter().cloned(), &mut problems);
        let origin = file
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "configuration".into());
        let mut config: Config = match toml::Value::Table(table).try_into() {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!("{origin}: {}", e.to_string().trim()));
                return Err(ConfigError { problems });
            }
        };
        if let Some(d) = &overrides.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(l) = &overrides.listen {
            config.listen = l.clone();
        }
        match imported_rules(&config.data_dir) {
            Ok(rules) => {
                for r in rules {
                    if !config.detect.custom.iter().any(|c| c.id == r.id) {
                        config.detect.custom.push(r);
                    }
                }
            }
            Err(e) => problems.push(e),
        }
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let outbound = crate::outbound::with_environment(&config.outbound.settings(), lookup);
        config.outbound.https_proxy = outbound.https_proxy;
        config.outbound.http_proxy = outbound.http_proxy;
        config.outbound.no_proxy = outbound.no_proxy;
        problems.extend(config.validate());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// The outbound settings, checked, with the CA bundle read.
    pub fn outbound(&self) -> Result<crate::outbound::Outbound, String> {
        crate::outbound::Outbound::new(&self.outbound.settings())
    }

    /// Checks the values that parse but make no sense. Returns one sentence per problem.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Err(e) = self.outbound() {
            p.push(e);
        }
        let key_file = self.bundles.key_file.trim();
        if !key_file.is_empty() && !Path::new(key_file).is_file() {
            p.push(format!(
                "bundles.key_file: file '{key_file}' does not exist"
            ));
        }
        p.extend(self.detect.problems());
        if !(1..=64).contains(&self.sensor.workers) {
            p.push("sensor.workers: 1 to 64".into());
        }
        if !(1024..=64 << 20).contains(&self.sensor.max_body_bytes) {
            p.push("sensor.max_body_bytes: 1024 to 67108864".into());
        }
        if self.sensor.store_every_seconds == 0 {
            p.push("sensor.store_every_seconds: at least 1".into());
        }
        if !(1..=3600).contains(&self.sensor.rescan_seconds) {
            p.push("sensor.rescan_seconds: 1 to 3600".into());
        }
        if self.listen.parse::<SocketAddr>().is_err() {
            p.push(format!(
                "listen: '{}' is not an address such as 127.0.0.1:8443",
                self.listen
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            p.push("data_dir: must not be empty".into());
        }
        match (self.tls.cert_file.is_empty(), self.tls.key_file.is_empty()) {
            (true, true) => {}
            (false, false) => {
                for (k, f) in [
                    ("tls.cert_file", &self.tls.cert_file),
                    ("tls.key_file", &self.tls.key_file),
                ] {
                    if !Path::new(f).is_file() {
                        p.push(format!("{k}: file '{f}' does not exist"));
                    }
                }
            }
            _ => p.push("tls: cert_file and key_file must be given together".into()),
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            p.push(format!(
                "log.format: '{}' is not one of text, json",
                self.log.format
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            p.push(format!(
                "log.level: '{}' is not a valid filter (try info or debug)",
                self.log.level
            ));
        }
        if self.http.max_body_bytes < 1024 {
            p.push("http.max_body_bytes: must be at least 1024".into());
        }
        if !(1..=3600).contains(&self.http.body_timeout_seconds) {
            p.push("http.body_timeout_seconds: 1 to 3600".into());
        }
        if self.http.body_min_bytes_per_second < 1024 {
            p.push("http.body_min_bytes_per_second: must be at least 1024".into());
        }
        if !(1..=100_000).contains(&self.http.max_bodies_per_address) {
            p.push("http.max_bodies_per_address: 1 to 100000".into());
        }
        if self.auth.session_ttl_minutes == 0 {
            p.push("auth.session_ttl_minutes: must be at least 1".into());
        }
        if self.auth.login_max_failures == 0 {
            p.push("auth.login_max_failures: must be at least 1".into());
        }
        for (key, expr) in [
            ("jobs.retention", &self.jobs.retention),
            ("jobs.exceptions", &self.jobs.exceptions),
            ("jobs.rescans", &self.jobs.rescans),
            ("jobs.native_scans", &self.jobs.native_scans),
            ("jobs.kube_sync", &self.jobs.kube_sync),
            ("jobs.posture", &self.jobs.posture),
            ("jobs.pod_compliance", &self.jobs.pod_compliance),
            ("jobs.gatekeeper_audit", &self.jobs.gatekeeper_audit),
            ("jobs.falco_retention", &self.jobs.falco_retention),
            ("jobs.falco_digest", &self.jobs.falco_digest),
            ("jobs.crawl", &self.jobs.crawl),
        ] {
            if let Err(e) = expr.parse::<cron::Schedule>() {
                p.push(format!("{key}: '{expr}' is not a cron expression: {e}"));
            }
        }
        if !matches!(self.smtp.security.as_str(), "none" | "starttls" | "tls") {
            p.push(format!(
                "smtp.security: '{}' is not one of none, starttls, tls",
                self.smtp.security
            ));
        }
        if !self.smtp.host.is_empty() && self.smtp.from.parse::<lettre::message::Mailbox>().is_err()
        {
            p.push(format!(
                "smtp.from: '{}' is not an address such as Bulwark <bulwark@example.com>",
                self.smtp.from
            ));
        }
        if self.retention.audit_log_days == 0 {
            p.push("retention.audit_log_days: must be at least 1".into());
        }
        if self.retention.falco_days == 0 || self.retention.falco_max_mib == 0 {
            p.push("retention.falco_days and retention.falco_max_mib: must be at least 1".into());
        }
        p
    }

    /// Every configuration key as (dotted path, environment variable name).
    pub fn keys() -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Ok(toml::Value::Table(t)) = toml::Value::try_from(Config::default()) {
            collect_keys(&t, "", &mut out);
        }
        out.into_iter()
            .map(|k| {
                let env = format!("BULWARK_{}", k.replace('.', "_").to_uppercase());
                (k, env)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensor_limits_are_validated() {
        // The body cap is bounded.
        let mut c = Config::default();
        c.sensor.max_body_bytes = 10;
        assert!(c
            .validate()
            .iter()
            .any(|p| p.contains("sensor.max_body_bytes")));
        c.sensor.max_body_bytes = 4096;
        assert!(!c.validate().iter().any(|p| p.contains("max_body_bytes")));
        // So is the rescan period.
        c.sensor.rescan_seconds = 0;
        assert!(c
            .validate()
            .iter()
            .any(|p| p.contains("sensor.rescan_seconds")));
        c.sensor.rescan_seconds = 5;
        assert!(!c.validate().iter().any(|p| p.contains("rescan_seconds")));
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        assert!(Config::default().validate().is_empty());
    }

    #[test]
    fn env_overrides_every_kind_of_key() {
        let c = Config::load(
            None,
            env(&[
                ("BULWARK_LISTEN", "0.0.0.0:9443"),
                ("BULWARK_HTTP_MAX_BODY_BYTES", "4096"),
                ("BULWARK_HTTP_METRICS_PUBLIC", "true"),
                ("BULWARK_LOG_FORMAT", "json"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:9443");
        assert_eq!(c.http.max_body_bytes, 4096);
        assert!(c.http.metrics_public);
        assert_eq!(c.log.format, "json");
    }

    #[test]
    fn every_key_has_an_env_name() {
        let keys = Config::keys();
        assert!(keys
            .iter()
            .any(|(k, e)| k == "auth.login_window_seconds"
                && e == "BULWARK_AUTH_LOGIN_WINDOW_SECONDS"));
        assert!(keys
            .iter()
            .any(|(k, e)| k == "data_dir" && e == "BULWARK_DATA_DIR"));
    }

    #[test]
    fn problems_are_named_precisely() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("b.toml");
        std::fs::write(&f, "listn = \"x\"\n").unwrap();
        let e = Config::load(Some(&f), vec![], &Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("unknown field `listn`"), "{e}");

        std::fs::write(
            &f,
            "listen = \"nowhere\"\n[jobs]\nretention = \"every day\"\n",
        )
        .unwrap();
        let e = Config::load(
            Some(&f),
            env(&[("BULWARK_HTTP_WORKERS", "many")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            e.problems
                .iter()
                .any(|p| p.starts_with("BULWARK_HTTP_WORKERS: expected a whole number")),
            "{e}"
        );
        let e = Config::load(Some(&f), vec![], &Overrides::default()).unwrap_err();
        assert!(e.problems.iter().any(|p| p.starts_with("listen:")), "{e}");
        assert!(
            e.problems.iter().any(|p| p.starts_with("jobs.retention:")),
            "{e}"
        );
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("b.toml");
        std::fs::write(&f, "listen = \"127.0.0.1:1000\"\ndata_dir = \"/a\"\n").unwrap();
        let c = Config::load(
            Some(&f),
            env(&[("BULWARK_LISTEN", "127.0.0.1:2000")]),
            &Overrides {
                data_dir: Some("/b".into()),
                listen: None,
            },
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:2000");
        assert_eq!(c.data_dir, PathBuf::from("/b"));
    }
}
