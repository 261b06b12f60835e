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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rows_per_table: 200,
            value_bytes: 4096,
            statement_timeout_ms: 5_000,
            table_budget_ms: 20_000,
            source_budget_ms: 600_000,
        }
    }
}

/// One store to crawl.
#[derive(Clone, PartialEq)]
pub struct Source {
    pub kind: Kind,
    pub name: String,
    /// `postgresql://user:password@host:port/db?sslmode=...`: a secret, never printed.
    pub connection_string: String,
    /// Databases to read (empty: every one the account may connect to).
    pub databases: Vec<String>,
    /// The database to connect to first (to list the others).
    pub default_db: String,
    /// PEM certificates trusted for TLS beside the system's (empty: none extra).
    pub ca_pem: String,
    pub limits: Limits,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("connection_string", &"<sealed>")
            .field("databases", &self.databases)
            .field("default_db", &self.default_db)
            .finish()
    }
}

/// A source as written: the file's snake_case names, Soveren's camelCase ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    #[serde(alias = "connectionString")]
    connection_string: String,
    #[serde(default)]
    databases: Vec<String>,
    #[serde(default, alias = "defaultDBName", alias = "defaultDbName")]
    default_db: String,
    #[serde(default)]
    ca_pem: String,
    #[serde(default)]
    limits: Limits,
}

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

fn from_entry(kind: Kind, e: Entry, env: &HashMap<String, String>) -> Result<Source, DarError> {
    let name = e.name.trim().to_string();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(DarError::Config(
            "name: 1 to 100 printable characters".into(),
        ));
    }
    let at = |what: &str, err: DarError| DarError::Config(format!("{name}: {what}: {err}"));
    let connection_string =
        expand(&e.connection_string, env).map_err(|err| at("connection_string", err))?;
    Ok(Source {
        kind,
        connection_string,
        databases: e.databases,
        default_db: expand(&e.default_db, env).map_err(|err| at("default_db", err))?,
        ca_pem: e.ca_pem,
        limits: e.limits,
        name,
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
            let e: Entry = toml::Value::Table(t.clone())
                .try_into()
                .map_err(|e| DarError::Config(format!("[[crawl.{}]]: {e}", kind.as_str())))?;
            out.push(from_entry(kind, e, env)?);
        }
        for var in [kind.soveren_env().to_string(), kind.bulwark_env()] {
            let Some(raw) = env.get(&var).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let entries: Vec<Entry> = serde_json::from_str(raw)
                .map_err(|e| DarError::Config(format!("{var}: a JSON array of sources: {e}")))?;
            for e in entries {
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
}
