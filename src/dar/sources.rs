//! The stores to crawl, from the configuration file (`[[crawl.postgres]]`, ...), from Soveren's
//! environment arrays (`SVRN_CRAWLER_CRAWL_DATABASE_POSTGRES`, ...) and from their
//! `BULWARK_CRAWL_*` equivalents. `$(VAR)` in any string is replaced by the variable's value, as
//! Soveren's sensor does, so credentials can stay in the environment.

use std::collections::HashMap;

use serde::Deserialize;

use super::DarError;
use crate::config::CrawlConfig;

/// The kinds of store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Postgres,
    Mysql,
    Mssql,
    S3,
    Kafka,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Postgres,
        Kind::Mysql,
        Kind::Mssql,
        Kind::S3,
        Kind::Kafka,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::Mysql => "mysql",
            Kind::Mssql => "mssql",
            Kind::S3 => "s3",
            Kind::Kafka => "kafka",
        }
    }

    /// Soveren's variable for this kind.
    fn soveren_env(self) -> &'static str {
        match self {
            Kind::Postgres => "SVRN_CRAWLER_CRAWL_DATABASE_POSTGRES",
            Kind::Mysql => "SVRN_CRAWLER_CRAWL_DATABASE_MYSQL",
            Kind::Mssql => "SVRN_CRAWLER_CRAWL_DATABASE_MSSQL",
            Kind::S3 => "SVRN_CRAWLER_CRAWL_S3",
            Kind::Kafka => "SVRN_CRAWLER_CRAWL_KAFKA",
        }
    }

    fn bulwark_env(self) -> String {
        format!("BULWARK_CRAWL_{}", self.as_str().to_uppercase())
    }
}

/// How much one crawl of a source may read and how long it may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Rows sampled per table at most.
    pub rows_per_table: u32,
    /// Bytes kept of one value (longer ones are cut, and the asset is partial).
    pub value_bytes: u32,
    /// Every statement's timeout.
    pub statement_timeout_ms: u64,
    /// Time one table may take, all its statements together.
    pub table_budget_ms: u64,
    /// Time the whole source may take; tables left when it runs out are skipped.
    pub source_budget_ms: u64,
    /// Object stores: bytes read of one object (a ranged read; gzip inflated to as much).
    pub object_bytes: u32,
    /// Object stores: objects read of one key pattern at most (fewer for small groups:
    /// `1 + log2(objects)`).
    pub objects_per_group: u32,
    /// Object stores: keys listed per bucket at most (a bucket of millions is sampled from its
    /// first keys, and says so).
    pub keys_listed: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rows_per_table: 200,
            value_bytes: 4096,
            statement_timeout_ms: 5_000,
            table_budget_ms: 20_000,
            source_budget_ms: 600_000,
            object_bytes: 1 << 20,
            objects_per_group: 8,
            keys_listed: 100_000,
        }
    }
}

/// One store to crawl.
#[derive(Clone, PartialEq)]
pub struct Source {
    pub kind: Kind,
    pub name: String,
    /// Databases: `postgresql://user:password@host:port/db?sslmode=...`, `mysql://...`,
    /// `sqlserver://...`. A secret, never printed. Empty for S3 and Kafka.
    pub connection_string: String,
    /// S3: the endpoint URL (empty: AWS in `region`); Kafka: `host:port` of every bootstrap
    /// broker, comma-separated.
    pub endpoint: String,
    /// Databases, buckets or topics to read (empty: every one the account can see).
    pub scope: Vec<String>,
    /// The database to connect to first (to list the others).
    pub default_db: String,
    /// PEM certificates trusted for TLS beside the system's (empty: none extra).
    pub ca_pem: String,
    /// S3: the access key id; Kafka: the SASL user (empty: no SASL).
    pub user: String,
    /// S3: the secret access key; Kafka: the SASL password. A secret, never printed.
    pub secret: String,
    /// S3: the region requests are signed for.
    pub region: String,
    /// S3: `path` (`https://host/bucket/key`, MinIO and most others) or `virtual`
    /// (`https://bucket.host/key`, AWS).
    pub url_style: UrlStyle,
    /// Kafka: connect with TLS.
    pub tls: bool,
    /// How often the scheduled crawl reads this source (none: at every scheduled run).
    pub check_interval: Option<std::time::Duration>,
    pub limits: Limits,
    /// The appliance's proxy and extra CAs (not part of the source's own settings).
    pub outbound: crate::outbound::Outbound,
}

impl Source {
    /// A source of `kind` with nothing set but its name and the default limits.
    pub fn new(kind: Kind, name: &str) -> Source {
        Source {
            kind,
            name: name.to_string(),
            connection_string: String::new(),
            endpoint: String::new(),
            scope: Vec::new(),
            default_db: String::new(),
            ca_pem: String::new(),
            user: String::new(),
            secret: String::new(),
            region: String::new(),
            url_style: UrlStyle::Path,
            tls: false,
            check_interval: None,
            limits: Limits::default(),
            outbound: Default::default(),
        }
    }
}

/// How an S3 bucket is addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlStyle {
    Path,
    Virtual,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("connection_string", &"<sealed>")
            .field("endpoint", &self.endpoint)
            .field("scope", &self.scope)
            .field("default_db", &self.default_db)
            .field("user", &self.user)
            .field("secret", &"<sealed>")
            .finish()
    }
}

/// A source as written. Keys are matched without case and underscores, as Soveren's Go decoder
/// does, so the file's `connection_string`, Soveren's `connectionString` and its compose
/// files' `connectionstring` are one field.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Entry {
    name: String,
    /// Soveren's Kafka entries name themselves `instancename`.
    instancename: String,
    connectionstring: String,
    /// S3 endpoint.
    url: String,
    endpoint: String,
    brokers: Vec<String>,
    databases: Vec<String>,
    buckets: Vec<String>,
    topics: Vec<String>,
    #[serde(alias = "defaultdb")]
    defaultdbname: String,
    capem: String,
    #[serde(alias = "accesskey")]
    accesskeyid: String,
    #[serde(alias = "secretkey")]
    secretaccesskey: String,
    user: String,
    password: String,
    region: String,
    /// S3 flavour: `aws`, `minio`, ... (AWS is addressed by virtual host, the rest by path).
    #[serde(rename = "type")]
    flavour: String,
    urlstyle: String,
    tls: bool,
    sasl: bool,
    checkinterval: String,
    limits: Limits,
}

/// Soveren fields Bulwark has no use for: accepted and ignored (with a warning) in its arrays.
const SOVEREN_IGNORED: &[&str] = &[
    "stsurl",
    "retrymaxattempts",
    "retrymaxbackoffdelay",
    "folderid",
    "consoleurl",
    "bucketsdomain",
    "getbucketownerfromlist",
    "s3role",
    "yandexcloud",
    "clienttlsconfig",
    "tlsconfig",
];

/// `s` with every `$(VAR)` replaced from `env`; an unset variable is an error naming it.
pub fn expand(s: &str, env: &HashMap<String, String>) -> Result<String, DarError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("$(") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else {
            return Err(DarError::Config("an unclosed $( in a value".into()));
        };
        let var = &after[..end];
        let valid = !var.is_empty() && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(DarError::Config(format!(
                "$({}) is not a variable name",
                var.chars().take(40).collect::<String>()
            )));
        }
        let value = env
            .get(var)
            .ok_or_else(|| DarError::Config(format!("$({var}): the variable is not set")))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `12h`, `30m`, `1d`, `90s`, or a combination (`1h30m`), as Soveren's intervals are written.
pub fn parse_interval(s: &str) -> Result<std::time::Duration, DarError> {
    let bad = || {
        DarError::Config(format!(
            "check_interval: '{}' is not like 12h, 30m or 1d",
            s.chars().take(40).collect::<String>()
        ))
    };
    let mut secs: u64 = 0;
    let mut digits = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        secs = n
            .checked_mul(unit)
            .and_then(|v| secs.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || secs == 0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// Reads one entry from a JSON or TOML object whose keys may be in any case and spelling.
fn entry(value: serde_json::Value, soveren: bool) -> Result<Entry, String> {
    let serde_json::Value::Object(map) = value else {
        return Err("each source is an object".into());
    };
    let mut norm = serde_json::Map::new();
    for (k, v) in map {
        let key = normal_key(&k);
        if soveren && SOVEREN_IGNORED.contains(&key.as_str()) {
            tracing::warn!(field = %k, "a Soveren crawler field Bulwark does not use: ignored");
            continue;
        }
        norm.insert(key, v);
    }
    serde_json::from_value(serde_json::Value::Object(norm)).map_err(|e| e.to_string())
}

/// One source from an object in any key spelling (the console's and the API's form), checked
/// as the file's are.
pub fn parse(
    kind: Kind,
    value: serde_json::Value,
    env: &HashMap<String, String>,
) -> Result<Source, DarError> {
    let e = entry(value, false).map_err(DarError::Config)?;
    from_entry(kind, e, env)
}

/// `key` as entries match it: lowercase, without underscores.
pub fn normal_key(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Where a source is, without its credentials: `host:port/db`, the S3 endpoint, the brokers.
pub fn target(s: &Source) -> String {
    if !s.endpoint.is_empty() {
        return s.endpoint.clone();
    }
    let cs = s.connection_string.trim();
    if let Ok(u) = url::Url::parse(cs) {
        let host = u.host_str().unwrap_or("");
        let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
        return format!("{host}{port}{}", u.path());
    }
    // ADO.NET: `Server=tcp:host,1433;...`
    cs.split(';')
        .find_map(|part| {
            let (k, v) = part.split_once('=')?;
            let k = normal_key(k.trim()).replace(' ', "");
            matches!(k.as_str(), "server" | "datasource" | "address" | "addr")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

fn from_entry(kind: Kind, e: Entry, env: &HashMap<String, String>) -> Result<Source, DarError> {
    let name = if e.name.is_empty() {
        e.instancename.clone()
    } else {
        e.name.clone()
    };
    let name = name.trim().to_string();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(DarError::Config(
            "name: 1 to 100 printable characters".into(),
        ));
    }
    let at = |what: &str, err: DarError| DarError::Config(format!("{name}: {what}: {err}"));
    let need = |what: &str, v: &str| {
        if v.trim().is_empty() {
            Err(DarError::Config(format!("{name}: {what} is required")))
        } else {
            Ok(())
        }
    };
    let connection_string =
        expand(&e.connectionstring, env).map_err(|err| at("connection_string", err))?;
    let mut endpoint = expand(
        if e.url.is_empty() {
            &e.endpoint
        } else {
            &e.url
        },
        env,
    )
    .map_err(|err| at("url", err))?;
    let mut scope = e.databases;
    let (mut user, mut secret) = (String::new(), String::new());
    let mut url_style = UrlStyle::Path;
    let mut region = e.region.clone();
    match kind {
        Kind::Postgres | Kind::Mysql | Kind::Mssql => {
            need("connection_string", &connection_string)?
        }
        Kind::S3 => {
            scope = e.buckets;
            user = expand(&e.accesskeyid, env).map_err(|err| at("access_key_id", err))?;
            secret = expand(&e.secretaccesskey, env).map_err(|err| at("secret_access_key", err))?;
            if region.is_empty() {
                region = "us-east-1".into();
            }
            let aws = e.flavour.eq_ignore_ascii_case("aws")
                || (e.flavour.is_empty() && endpoint.is_empty());
            if endpoint.is_empty() {
                if !aws {
                    return Err(DarError::Config(format!(
                        "{name}: url is required (the S3 endpoint)"
                    )));
                }
                endpoint = format!("https://s3.{region}.amazonaws.com");
            }
            url_style = match e.urlstyle.to_ascii_lowercase().as_str() {
                "" if aws => UrlStyle::Virtual,
                "" | "path" => UrlStyle::Path,
                "virtual" | "virtualhost" | "virtual-host" => UrlStyle::Virtual,
                other => {
                    return Err(DarError::Config(format!(
                        "{name}: url_style: 'path' or 'virtual', not '{}'",
                        other.chars().take(20).collect::<String>()
                    )))
                }
            };
            match url::Url::parse(&endpoint) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => {
                    return Err(DarError::Config(format!(
                        "{name}: url: an http(s) endpoint URL"
                    )))
                }
            }
            if user.is_empty() != secret.is_empty() {
                return Err(DarError::Config(format!(
                    "{name}: access_key_id and secret_access_key go together"
                )));
            }
        }
        Kind::Kafka => {
            scope = e.topics;
            if !e.brokers.is_empty() {
                endpoint = e.brokers.join(",");
            }
            need("brokers", &endpoint)?;
            if e.sasl || !e.user.is_empty() {
                user = expand(&e.user, env).map_err(|err| at("user", err))?;
                secret = expand(&e.password, env).map_err(|err| at("password", err))?;
                need("user", &user)?;
            }
        }
    }
    let check_interval = match e.checkinterval.trim() {
        "" => None,
        s => Some(parse_interval(s).map_err(|err| at("check_interval", err))?),
    };
    Ok(Source {
        kind,
        connection_string,
        endpoint,
        scope,
        default_db: expand(&e.defaultdbname, env).map_err(|err| at("default_db", err))?,
        ca_pem: e.capem,
        user,
        secret,
        region,
        url_style,
        tls: e.tls,
        check_interval,
        limits: e.limits,
        name,
        outbound: Default::default(),
    })
}

/// Every source the file and the environment declare, in that order; names are unique.
pub fn load(config: &CrawlConfig, env: &HashMap<String, String>) -> Result<Vec<Source>, DarError> {
    let mut out: Vec<Source> = Vec::new();
    for kind in Kind::ALL {
        let file = match kind {
            Kind::Postgres => &config.postgres,
            Kind::Mysql => &config.mysql,
            Kind::Mssql => &config.mssql,
            Kind::S3 => &config.s3,
            Kind::Kafka => &config.kafka,
        };
        for t in file {
            let value = serde_json::to_value(t).map_err(|e| DarError::Config(e.to_string()))?;
            let e = entry(value, false)
                .map_err(|e| DarError::Config(format!("[[crawl.{}]]: {e}", kind.as_str())))?;
            out.push(from_entry(kind, e, env)?);
        }
        for var in [kind.soveren_env().to_string(), kind.bulwark_env()] {
            let Some(raw) = env.get(&var).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let entries: Vec<serde_json::Value> = serde_json::from_str(raw)
                .map_err(|e| DarError::Config(format!("{var}: a JSON array of sources: {e}")))?;
            for value in entries {
                let e = entry(value, true).map_err(|e| DarError::Config(format!("{var}: {e}")))?;
                out.push(from_entry(kind, e, env)?);
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for s in &out {
        if !seen.insert(s.name.clone()) {
            return Err(DarError::Config(format!(
                "two sources are named '{}'",
                s.name
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn soveren_arrays_the_file_and_variables_expanded() {
        let config: CrawlConfig = toml::from_str(
            r#"
            [[postgres]]
            name = "orders"
            connection_string = "postgresql://crawler:$(PG_PASS)@db:5432/orders"
            databases = ["orders"]
            "#,
        )
        .unwrap();
        let e = env(&[
            ("PG_PASS", "s3cret"),
            ("DB_USERNAME", "ro"),
            ("DB_PASSWORD", "pw"),
            (
                "SVRN_CRAWLER_CRAWL_DATABASE_POSTGRES",
                r#"[{"name":"pg_instance_1","connectionString":"postgresql://$(DB_USERNAME):$(DB_PASSWORD)@host:5432","defaultDBName":"db"}]"#,
            ),
        ]);
        let sources = load(&config, &e).unwrap();
        assert_eq!(sources.len(), 2);
        assert_eq!(
            sources[0].connection_string,
            "postgresql://crawler:s3cret@db:5432/orders"
        );
        assert_eq!(sources[1].name, "pg_instance_1");
        assert_eq!(sources[1].connection_string, "postgresql://ro:pw@host:5432");
        assert_eq!(sources[1].default_db, "db");
        assert!(
            !format!("{:?}", sources[1]).contains("pw@"),
            "never printed"
        );

        let missing = env(&[(
            "BULWARK_CRAWL_POSTGRES",
            r#"[{"name":"x","connectionString":"postgresql://$(NOPE)@h"}]"#,
        )]);
        let err = load(&CrawlConfig::default(), &missing)
            .unwrap_err()
            .to_string();
        assert!(err.contains("$(NOPE): the variable is not set"), "{err}");
        let dup = env(&[(
            "BULWARK_CRAWL_POSTGRES",
            r#"[{"name":"orders","connectionString":"postgresql://h"}]"#,
        )]);
        assert!(load(&config, &dup).is_err(), "names are unique");
        let junk = env(&[("BULWARK_CRAWL_POSTGRES", "{")]);
        assert!(load(&CrawlConfig::default(), &junk).is_err());
        assert!(expand("$(a b)", &HashMap::new()).is_err());
        assert!(expand("x$(", &HashMap::new()).is_err());
    }

    #[test]
    fn object_stores_and_brokers_in_soveren_spelling() {
        let e = env(&[
            ("S3_SECRET", "very-secret"),
            (
                "SVRN_CRAWLER_CRAWL_S3",
                r#"[{"name":"minio","url":"http://minio:9000","type":"minio","accessKeyId":"AK","secretAccessKey":"$(S3_SECRET)","checkinterval":"12h","retrymaxattempts":5,"s3role":{"enabled":false}}]"#,
            ),
            (
                "BULWARK_CRAWL_S3",
                r#"[{"name":"aws","region":"eu-west-1","access_key_id":"A","secret_access_key":"S","buckets":["b"]}]"#,
            ),
            (
                "SVRN_CRAWLER_CRAWL_KAFKA",
                r#"[{"instancename":"events","brokers":["k1:9092","k2:9092"],"sasl":true,"user":"u","password":"$(S3_SECRET)","checkinterval":"1h30m"}]"#,
            ),
        ]);
        let s = load(&CrawlConfig::default(), &e).unwrap();
        let (minio, aws, kafka) = (&s[0], &s[1], &s[2]);
        assert_eq!(
            (minio.endpoint.as_str(), minio.url_style),
            ("http://minio:9000", UrlStyle::Path)
        );
        assert_eq!(minio.secret, "very-secret");
        assert_eq!(
            minio.check_interval,
            Some(std::time::Duration::from_secs(12 * 3600))
        );
        assert_eq!(aws.endpoint, "https://s3.eu-west-1.amazonaws.com");
        assert_eq!(
            (aws.url_style, aws.scope.clone()),
            (UrlStyle::Virtual, vec!["b".to_string()])
        );
        assert_eq!(kafka.name, "events");
        assert_eq!(kafka.endpoint, "k1:9092,k2:9092");
        assert_eq!(
            (kafka.user.as_str(), kafka.secret.as_str()),
            ("u", "very-secret")
        );
        assert_eq!(
            kafka.check_interval,
            Some(std::time::Duration::from_secs(5400))
        );
        let shown = format!("{s:?}");
        assert!(!shown.contains("very-secret"), "{shown}");

        for bad in [
            r#"[{"name":"x","url":"ftp://h","type":"minio"}]"#,
            r#"[{"name":"x","url":"http://h","accessKeyId":"only-half"}]"#,
            r#"[{"name":"x","url":"http://h","checkinterval":"soon"}]"#,
            r#"[{"name":"x","url":"http://h","typo":"1"}]"#,
        ] {
            assert!(
                load(&CrawlConfig::default(), &env(&[("BULWARK_CRAWL_S3", bad)])).is_err(),
                "{bad}"
            );
        }
        assert!(load(
            &CrawlConfig::default(),
            &env(&[("BULWARK_CRAWL_KAFKA", r#"[{"name":"k"}]"#)])
        )
        .is_err());
        assert_eq!(parse_interval("1d").unwrap().as_secs(), 86_400);
        assert!(parse_interval("0s").is_err() && parse_interval("5").is_err());
    }
}
