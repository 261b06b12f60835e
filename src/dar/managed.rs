//! Sources added in the console or through the API, kept in the appliance's store: their
//! secret fields (connection strings, secret keys, passwords) sealed with the appliance's key,
//! the rest as written. They join the file's and the environment's sources at each crawl, and
//! are never shown back: views carry the target without credentials and whether secrets are set.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::sources::{self, Kind, Source};
use super::DarError;
use crate::audit::{self, Event};
use crate::secrets::Sealer;
use crate::store::{Store, Table};

/// Name → source.
pub const SOURCES: Table<String, Managed> = Table::new("dar_sources");

/// Fields that are secrets (in their matched spelling).
const SECRET_KEYS: [&str; 3] = ["connectionstring", "secretaccesskey", "password"];

/// A stored source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Managed {
    pub name: String,
    pub kind: Kind,
    /// The fields as written, but the secrets.
    pub fields: Map<String, Value>,
    /// The secret fields as one JSON object, sealed.
    pub sealed: String,
    /// What the views show, worked out when it was saved.
    pub view: View,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

/// A source as the API and the console show it: never a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct View {
    pub name: String,
    pub kind: Kind,
    /// `console` (stored here, editable) or `configuration` (the file or the environment).
    pub origin: String,
    /// Where it is, without credentials.
    pub target: String,
    /// Databases, buckets or topics (empty: every one visible).
    pub scope: Vec<String>,
    /// Seconds between scheduled crawls.
    pub check_interval_s: u64,
    /// Whether a password, secret key or connection string is stored for it.
    pub secrets_set: bool,
}

impl View {
    pub fn of(s: &Source, origin: &'static str) -> View {
        View {
            name: s.name.clone(),
            kind: s.kind,
            origin: origin.to_string(),
            target: sources::target(s),
            scope: s.scope.clone(),
            check_interval_s: s
                .check_interval
                .unwrap_or(super::DEFAULT_CHECK_INTERVAL)
                .as_secs(),
            secrets_set: !s.connection_string.is_empty() || !s.secret.is_empty(),
        }
    }
}

fn context(name: &str) -> String {
    format!("dar-source:{name}")
}

/// Splits a submitted object into its plain fields and its secrets (empty values dropped, so
/// an edit that leaves a secret blank keeps the stored one).
fn split(body: Map<String, Value>) -> (Map<String, Value>, Map<String, Value>) {
    let (mut plain, mut secret) = (Map::new(), Map::new());
    for (k, v) in body {
        let key = sources::normal_key(&k);
        if v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty()) {
            continue;
        }
        if SECRET_KEYS.contains(&key.as_str()) {
            secret.insert(key, v);
        } else if key != "kind" {
            plain.insert(key, v);
        }
    }
    (plain, secret)
}

fn open(sealer: &Sealer, m: &Managed) -> Result<Map<String, Value>, DarError> {
    let plain = sealer
        .open_sealed(&context(&m.name), &m.sealed)
        .map_err(|e| DarError::Store(e.to_string()))?;
    serde_json::from_str(&plain).map_err(|e| DarError::Store(e.to_string()))
}

fn source_of(
    m: &Managed,
    secrets: Map<String, Value>,
    env: &HashMap<String, String>,
) -> Result<Source, DarError> {
    let mut all = m.fields.clone();
    all.extend(secrets);
    sources::parse(m.kind, Value::Object(all), env)
}

/// Every stored source, opened, for a crawl.
pub fn load(
    store: &Store,
    sealer: &Sealer,
    env: &HashMap<String, String>,
) -> Result<Vec<Source>, DarError> {
    let stored: Vec<(String, Managed)> = store.read(|r| r.all(&SOURCES))?;
    stored
        .iter()
        .map(|(_, m)| source_of(m, open(sealer, m)?, env))
        .collect()
}

/// The views of every stored source (without opening a secret).
pub fn views(store: &Store) -> Result<Vec<View>, DarError> {
    let stored: Vec<(String, Managed)> = store.read(|r| r.all(&SOURCES))?;
    Ok(stored.into_iter().map(|(_, m)| m.view).collect())
}

/// Stores a source from `body` (`{"kind": "postgres", "name": ..., "connection_string": ...}`),
/// or replaces the one named `replacing`, whose secrets stay unless `body` gives new ones.
/// `taken` are the names of the file's and environment's sources.
#[allow(clippy::too_many_arguments)]
pub fn save(
    store: &Store,
    sealer: &Sealer,
    actor: &str,
    ip: &str,
    body: Value,
    replacing: Option<&str>,
    taken: &[String],
    env: &HashMap<String, String>,
) -> Result<View, DarError> {
    let Value::Object(body) = body else {
        return Err(DarError::Config(
            "a JSON object describing the source".into(),
        ));
    };
    let kind_field = body
        .iter()
        .find(|(k, _)| sources::normal_key(k) == "kind")
        .and_then(|(_, v)| v.as_str())
        .map(str::to_string);
    let (mut plain, mut secrets) = split(body);
    store.write(|w| {
        let before = match replacing {
            Some(name) => Some(
                w.get(&SOURCES, &name.to_string())?
                    .ok_or_else(|| DarError::NotFound(name.to_string()))?,
            ),
            None => None,
        };
        let kind = match (&kind_field, &before) {
            (Some(k), _) => serde_json::from_value::<Kind>(Value::String(k.to_lowercase()))
                .map_err(|_| {
                    DarError::Config("kind: postgres, mysql, mssql, s3 or kafka".into())
                })?,
            (None, Some(b)) => b.kind,
            (None, None) => {
                return Err(DarError::Config(
                    "kind: postgres, mysql, mssql, s3 or kafka".into(),
                ))
            }
        };
        if let Some(b) = &before {
            let mut kept = open(sealer, b)?;
            kept.extend(secrets);
            secrets = kept;
            if !plain.contains_key("name") {
                plain.insert("name".into(), Value::String(b.name.clone()));
            }
        }
        let mut all = plain.clone();
        all.extend(secrets.clone());
        let source = sources::parse(kind, Value::Object(all), env)?;
        let name = source.name.clone();
        let renamed = before.as_ref().is_some_and(|b| b.name != name);
        if taken.contains(&name)
            || ((before.is_none() || renamed) && w.get(&SOURCES, &name)?.is_some())
        {
            return Err(DarError::Duplicate(name));
        }
        let sealed = sealer
            .seal(&context(&name), &Value::Object(secrets).to_string())
            .map_err(|e| DarError::Store(e.to_string()))?;
        let now = Utc::now();
        if let Some(b) = &before {
            w.delete(&SOURCES, &b.name)?;
        }
        let m = Managed {
            name: name.clone(),
            kind,
            fields: plain,
            sealed,
            view: View::of(&source, "console"),
            created_at: before.as_ref().map(|b| b.created_at).unwrap_or(now),
            updated_at: now,
            updated_by: actor.to_string(),
        };
        w.put(&SOURCES, &name, &m)?;
        let secrets_set = m.view.secrets_set;
        let action = if before.is_some() {
            "dar.source.update"
        } else {
            "dar.source.create"
        };
        audit::record(
            w,
            Event::new(actor, action, format!("dar-source:{name}"))
                .from_ip(ip)
                .detail(format!(
                    "kind={} target={} secrets={}",
                    kind.as_str(),
                    sources::target(&source),
                    if secrets_set { "set" } else { "none" }
                )),
        )?;
        Ok(m.view)
    })
}

/// Removes a stored source (its findings stay until the next crawl replaces them).
pub fn delete(store: &Store, actor: &str, ip: &str, name: &str) -> Result<(), DarError> {
    store.write(|w| {
        if w.get(&SOURCES, &name.to_string())?.is_none() {
            return Err(DarError::NotFound(name.to_string()));
        }
        w.delete(&SOURCES, &name.to_string())?;
        audit::record(
            w,
            Event::new(actor, "dar.source.delete", format!("dar-source:{name}")).from_ip(ip),
        )?;
        Ok(())
    })
}
