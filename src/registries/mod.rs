//! Container registries the appliance pulls from for its own scans, with their credentials.
//! Passwords and tokens are sealed with the appliance key (`crate::secrets`) before they reach
//! the store, never leave it through the API (which says only whether one is set), and are
//! opened only to answer a registry's authentication challenge.

mod routes;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use routes::routes;

use crate::audit::{self, Event};
use crate::http::ApiError;
use crate::scanner::registry::{Access, Platform};
use crate::secrets::{Sealer, SecretError};
use crate::store::{Store, StoreError, Table};

/// A registry as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Registry {
    pub id: u64,
    /// `host[:port]` as image references spell it (`registry.local:5000`, `docker.io`).
    pub host: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub username: Option<String>,
    /// The password or token, sealed (`v1:…`), bound to `registry:<id>`.
    #[serde(default)]
    pub sealed_password: Option<String>,
    /// Plain HTTP (a registry on a trusted network without TLS).
    #[serde(default)]
    pub insecure_registry: bool,
    /// Accept any TLS certificate.
    #[serde(default)]
    pub insecure_tls: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A registry as the API shows it: no secret, only whether one is set.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RegistryView {
    pub id: u64,
    pub host: String,
    pub description: String,
    pub username: Option<String>,
    pub has_password: bool,
    pub insecure_registry: bool,
    pub insecure_tls: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Registry> for RegistryView {
    fn from(r: &Registry) -> Self {
        RegistryView {
            id: r.id,
            host: r.host.clone(),
            description: r.description.clone(),
            username: r.username.clone(),
            has_password: r.sealed_password.is_some(),
            insecure_registry: r.insecure_registry,
            insecure_tls: r.insecure_tls,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Fields to add a registry with.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewRegistry {
    pub host: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub insecure_registry: bool,
    #[serde(default)]
    pub insecure_tls: bool,
}

/// Changes; `None` leaves a field alone, an empty username or password removes it.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RegistryPatch {
    pub description: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub insecure_registry: Option<bool>,
    pub insecure_tls: Option<bool>,
}

const REGISTRIES: Table<u64, Registry> = Table::new("registries");
const BY_HOST: Table<String, u64> = Table::new("registries_by_host");

/// Errors of the registries domain.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Invalid(String),
    #[error("registry {0} is already configured")]
    Duplicate(String),
    #[error("registry {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Invalid(m) => ApiError::bad_request(m),
            RegistryError::Duplicate(_) => ApiError::conflict(e.to_string()),
            RegistryError::NotFound(_) => ApiError::not_found(e.to_string()),
            RegistryError::Secret(s) => ApiError::internal(s),
            RegistryError::Store(s) => ApiError::internal(s),
        }
    }
}

fn validate_host(host: &str) -> Result<String, RegistryError> {
    let host = host.trim().trim_end_matches('/').to_ascii_lowercase();
    let host = host
        .strip_prefix("https://")
        .or_else(|| host.strip_prefix("http://"))
        .unwrap_or(&host)
        .to_string();
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if ok {
        Ok(host)
    } else {
        Err(RegistryError::Invalid(
            "host: a registry host name with an optional port, e.g. registry.local:5000".into(),
        ))
    }
}

fn validate_text(field: &str, v: &str, max: usize) -> Result<String, RegistryError> {
    if v.chars().count() > max || v.chars().any(|c| c.is_control()) {
        return Err(RegistryError::Invalid(format!(
            "{field}: at most {max} characters, no control characters"
        )));
    }
    Ok(v.to_string())
}

fn context(id: u64) -> String {
    format!("registry:{id}")
}

/// Every registry, by id.
pub fn list(store: &Store) -> Result<Vec<RegistryView>, StoreError> {
    Ok(store
        .read(|r| r.all(&REGISTRIES))?
        .iter()
        .map(|(_, r)| r.into())
        .collect())
}

/// Adds a registry; the password is sealed inside the same transaction that stores it.
pub fn create(
    store: &Store,
    sealer: &Sealer,
    actor: &str,
    ip: &str,
    new: NewRegistry,
) -> Result<RegistryView, RegistryError> {
    let host = validate_host(&new.host)?;
    let description = validate_text("description", new.description.trim(), 2000)?;
    let username = new
        .username
        .as_deref()
        .map(|u| validate_text("username", u.trim(), 255))
        .transpose()?
        .filter(|u| !u.is_empty());
    let password = new
        .password
        .as_deref()
        .map(|p| validate_text("password", p, 8192))
        .transpose()?
        .filter(|p| !p.is_empty());
    store.write(|w| {
        if w.get(&BY_HOST, &host)?.is_some() {
            return Err(RegistryError::Duplicate(host.clone()));
        }
        let id = w.next_id("registries")?;
        let now = Utc::now();
        let sealed_password = password
            .as_deref()
            .map(|p| sealer.seal(&context(id), p))
            .transpose()?;
        let r = Registry {
            id,
            host: host.clone(),
            description,
            username,
            sealed_password,
            insecure_registry: new.insecure_registry,
            insecure_tls: new.insecure_tls,
            created_at: now,
            updated_at: now,
        };
        w.put(&REGISTRIES, &id, &r)?;
        w.put(&BY_HOST, &host, &id)?;
        audit::record(
            w,
            Event::new(actor, "registry.create", format!("registry:{id}"))
                .from_ip(ip)
                .detail(format!(
                    "host={host} username={} password={}",
                    r.username.as_deref().unwrap_or("-"),
                    if r.sealed_password.is_some() {
                        "set"
                    } else {
                        "none"
                    }
                )),
        )?;
        Ok(RegistryView::from(&r))
    })
}

/// Applies `patch` to registry `id`.
pub fn update(
    store: &Store,
    sealer: &Sealer,
    actor: &str,
    ip: &str,
    id: u64,
    patch: RegistryPatch,
) -> Result<RegistryView, RegistryError> {
    store.write(|w| {
        let mut r = w
            .get(&REGISTRIES, &id)?
            .ok_or_else(|| RegistryError::NotFound(id.to_string()))?;
        let mut changes = Vec::new();
        if let Some(d) = &patch.description {
            r.description = validate_text("description", d.trim(), 2000)?;
            changes.push("description");
        }
        if let Some(u) = &patch.username {
            let u = validate_text("username", u.trim(), 255)?;
            r.username = Some(u).filter(|u| !u.is_empty());
            changes.push("username");
        }
        if let Some(p) = &patch.password {
            let p = validate_text("password", p, 8192)?;
            r.sealed_password = if p.is_empty() {
                None
            } else {
                Some(sealer.seal(&context(id), &p)?)
            };
            changes.push("password");
        }
        if let Some(v) = patch.insecure_registry {
            r.insecure_registry = v;
            changes.push("insecure_registry");
        }
        if let Some(v) = patch.insecure_tls {
            r.insecure_tls = v;
            changes.push("insecure_tls");
        }
        r.updated_at = Utc::now();
        w.put(&REGISTRIES, &id, &r)?;
        audit::record(
            w,
            Event::new(actor, "registry.update", format!("registry:{id}"))
                .from_ip(ip)
                .detail(format!("changed={}", changes.join(","))),
        )?;
        Ok(RegistryView::from(&r))
    })
}

/// Removes registry `id` and its sealed credentials.
pub fn delete(store: &Store, actor: &str, ip: &str, id: u64) -> Result<(), RegistryError> {
    store.write(|w| {
        let r = w
            .get(&REGISTRIES, &id)?
            .ok_or_else(|| RegistryError::NotFound(id.to_string()))?;
        w.delete(&REGISTRIES, &id)?;
        w.delete(&BY_HOST, &r.host)?;
        audit::record(
            w,
            Event::new(actor, "registry.delete", format!("registry:{id}"))
                .from_ip(ip)
                .detail(format!("host={}", r.host)),
        )?;
        Ok(())
    })
}

/// How to pull from `host`: its stored settings with the password opened, or anonymous HTTPS
/// when the registry is not configured; through `outbound`'s proxy and CAs.
pub fn access_for(
    store: &Store,
    sealer: &Sealer,
    outbound: &crate::outbound::Outbound,
    host: &str,
) -> Result<Access, RegistryError> {
    let key = host.to_ascii_lowercase();
    let found = store.read(|r| match r.get(&BY_HOST, &key)? {
        Some(id) => r.get(&REGISTRIES, &id),
        None => Ok(None),
    })?;
    let Some(r) = found else {
        return Ok(Access {
            outbound: outbound.clone(),
            ..Access::default()
        });
    };
    let password = r
        .sealed_password
        .as_deref()
        .map(|s| sealer.open_sealed(&context(r.id), s))
        .transpose()?;
    Ok(Access {
        username: r.username,
        password,
        plain_http: r.insecure_registry,
        insecure_tls: r.insecure_tls,
        platform: Platform::default(),
        outbound: outbound.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_sealed_at_rest_and_opened_for_pulls() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &[]).unwrap();
        let sealer = Sealer::open(dir.path()).unwrap();
        let v = create(
            &store,
            &sealer,
            "admin",
            "127.0.0.1",
            NewRegistry {
                host: "https://Registry.Local:5000/".into(),
                username: Some("ci".into()),
                password: Some("s3cret-registry-pass".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(v.host, "registry.local:5000");
        assert!(v.has_password);
        let json = serde_json::to_string(&list(&store).unwrap()).unwrap();
        assert!(!json.contains("s3cret") && !json.contains("v1:"), "{json}");
        let stored = store.read(|r| r.get(&REGISTRIES, &v.id)).unwrap().unwrap();
        assert!(!stored
            .sealed_password
            .as_deref()
            .unwrap()
            .contains("s3cret"));
        let a = access_for(&store, &sealer, &Default::default(), "registry.local:5000").unwrap();
        assert_eq!(
            (a.username.as_deref(), a.password.as_deref()),
            (Some("ci"), Some("s3cret-registry-pass"))
        );
        assert_eq!(
            access_for(&store, &sealer, &Default::default(), "other.io")
                .unwrap()
                .username,
            None
        );
        assert!(matches!(
            create(
                &store,
                &sealer,
                "admin",
                "",
                NewRegistry {
                    host: "registry.local:5000".into(),
                    ..Default::default()
                }
            ),
            Err(RegistryError::Duplicate(_))
        ));
        for bad in ["", "a b", "reg/path", "x\u{0}y"] {
            assert!(validate_host(bad).is_err(), "{bad:?}");
        }
        // An empty password removes it; another key cannot open what is stored.
        update(
            &store,
            &sealer,
            "admin",
            "",
            v.id,
            RegistryPatch {
                password: Some(String::new()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            access_for(&store, &sealer, &Default::default(), "registry.local:5000")
                .unwrap()
                .password,
            None
        );
        update(
            &store,
            &sealer,
            "admin",
            "",
            v.id,
            RegistryPatch {
                password: Some("again".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let stranger = Sealer::from_key(&[9u8; 32]).unwrap();
        assert!(matches!(
            access_for(
                &store,
                &stranger,
                &Default::default(),
                "registry.local:5000"
            ),
            Err(RegistryError::Secret(_))
        ));
        delete(&store, "admin", "", v.id).unwrap();
        assert!(list(&store).unwrap().is_empty());
    }
}
