//! Clusters: the Kubernetes clusters Bulwark guards, with their admission settings. Names are
//! unique (case-insensitively) because m9sweeper-compatible endpoints address clusters by name.

mod api;
pub mod inventory;
pub mod kube;
pub mod onboarding;
mod pages;
mod report;
pub mod sync;
pub mod webhook_auth;
pub mod webhook_config;
pub mod webhook_install;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use api::routes;

use crate::audit::{self, Event};
use crate::http::prepared::PreparedBody;
use crate::http::ApiError;
use crate::search::{Doc, Source};
use crate::store::{Store, StoreError, Table, WriteTx};

/// What the admission webhook does when Bulwark itself fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FailureMode {
    /// Allow the deploy (the default: Bulwark failing must not stop a cluster).
    #[default]
    FailOpen,
    /// Deny the deploy.
    FailClosed,
}

impl FailureMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureMode::FailOpen => "fail-open",
            FailureMode::FailClosed => "fail-closed",
        }
    }
}

/// What admission does with an image Bulwark has never scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UnscannedAction {
    /// Deny the deploy (until the image is scanned).
    #[default]
    Deny,
    /// Allow it with a warning and queue the image for a scan.
    AllowAndQueue,
}

impl UnscannedAction {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            UnscannedAction::Deny => "deny",
            UnscannedAction::AllowAndQueue => "allow-and-queue",
        }
    }
}

/// A cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cluster {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Whether admission decisions are enforced (off: allowed with warnings).
    #[serde(default)]
    pub enforcement: bool,
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// Admission of images never scanned.
    #[serde(default)]
    pub unscanned_action: UnscannedAction,
    /// Reviews must carry the cluster's secret webhook token (see `webhook_auth`).
    #[serde(default)]
    pub webhook_token_required: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Fields to create a cluster with.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewCluster {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub enforcement: bool,
    #[serde(default)]
    pub failure_mode: FailureMode,
    #[serde(default)]
    pub unscanned_action: UnscannedAction,
}

/// Changes to a cluster; `None` leaves a field alone.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub enforcement: Option<bool>,
    pub failure_mode: Option<FailureMode>,
    pub unscanned_action: Option<UnscannedAction>,
}

pub const CLUSTERS: Table<u64, Cluster> = Table::new("clusters");
const BY_NAME: Table<String, u64> = Table::new("clusters_by_name");

/// Errors of the clusters domain.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{0}")]
    Invalid(String),
    #[error("a cluster named '{0}' already exists")]
    Duplicate(String),
    #[error("cluster {0} not found")]
    NotFound(String),
    #[error("cluster {0} has no Kubernetes connection")]
    NotConnected(u64),
    /// The cluster's API server could not be read.
    #[error("{0}")]
    Kube(String),
    /// A sealed credential could not be sealed or opened.
    #[error("sealed credentials: {0}")]
    Secret(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Invalid(m) => ApiError::bad_request(m),
            ClusterError::Duplicate(_) => ApiError::conflict(e.to_string()),
            ClusterError::NotFound(_) | ClusterError::NotConnected(_) => {
                ApiError::not_found(e.to_string())
            }
            ClusterError::Kube(m) => ApiError::new(
                actix_web::http::StatusCode::BAD_GATEWAY,
                "kube_unreachable",
                m,
            ),
            ClusterError::Secret(m) => ApiError::internal(m),
            ClusterError::Store(s) => ApiError::internal(s),
        }
    }
}

fn validate_name(name: &str) -> Result<String, ClusterError> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(ClusterError::Invalid(
            "name: 1 to 100 characters, letters, digits, '-', '_' or '.', starting with a letter or digit".into(),
        ))
    }
}

fn validate_description(d: &str) -> Result<String, ClusterError> {
    if d.chars().count() > 2000 {
        return Err(ClusterError::Invalid(
            "description: at most 2000 characters".into(),
        ));
    }
    Ok(d.trim().to_string())
}

fn validate_tags(tags: &[String]) -> Result<Vec<String>, ClusterError> {
    if tags.len() > 32 {
        return Err(ClusterError::Invalid("tags: at most 32".into()));
    }
    let mut out = Vec::new();
    for t in tags {
        let t = t.trim();
        let ok = !t.is_empty()
            && t.len() <= 64
            && t.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '=')
            });
        if !ok {
            return Err(ClusterError::Invalid(format!(
                "tag '{}': 1 to 64 characters of letters, digits and - _ . : / =",
                t.chars().take(64).collect::<String>()
            )));
        }
        if !out.iter().any(|o: &String| o == t) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// Creates a cluster; `actor` and `ip` go to the audit log.
pub fn create(
    store: &Store,
    actor: &str,
    ip: &str,
    new: NewCluster,
) -> Result<Cluster, ClusterError> {
    let name = validate_name(&new.name)?;
    let description = validate_description(&new.description)?;
    let tags = validate_tags(&new.tags)?;
    store.write(|w| {
        if w.get(&BY_NAME, &name_key(&name))?.is_some() {
            return Err(ClusterError::Duplicate(name.clone()));
        }
        let id = w.next_id("clusters")?;
        let now = Utc::now();
        let c = Cluster {
            id,
            name: name.clone(),
            description,
            tags,
            enforcement: new.enforcement,
            failure_mode: new.failure_mode,
            unscanned_action: new.unscanned_action,
            webhook_token_required: false,
            created_at: now,
            updated_at: now,
        };
        w.put(&CLUSTERS, &id, &c)?;
        w.put(&BY_NAME, &name_key(&name), &id)?;
        audit::record(
            w,
            Event::new(actor, "cluster.create", format!("cluster:{id}"))
                .from_ip(ip)
                .detail(format!(
                    "name={name} enforcement={} failure_mode={}",
                    c.enforcement,
                    c.failure_mode.as_str()
                )),
        )?;
        Ok(c)
    })
}

/// Every cluster, by id.
pub fn list(store: &Store) -> Result<Vec<Cluster>, StoreError> {
    Ok(store
        .read(|r| r.all(&CLUSTERS))?
        .into_iter()
        .map(|(_, c)| c)
        .collect())
}

/// Number of clusters.
pub fn count(store: &Store) -> Result<u64, StoreError> {
    store.read(|r| r.len(&CLUSTERS))
}

/// One cluster by id.
pub fn get(store: &Store, id: u64) -> Result<Cluster, ClusterError> {
    store
        .read(|r| r.get(&CLUSTERS, &id))?
        .ok_or_else(|| ClusterError::NotFound(id.to_string()))
}

/// Whether cluster `id` exists, as write transaction `w` sees it.
pub fn exists_in(w: &WriteTx, id: u64) -> Result<bool, StoreError> {
    Ok(w.get(&CLUSTERS, &id)?.is_some())
}

/// One cluster by name (case-insensitive).
pub fn by_name(store: &Store, name: &str) -> Result<Option<Cluster>, StoreError> {
    store.read(|r| match r.get(&BY_NAME, &name_key(name))? {
        Some(id) => r.get(&CLUSTERS, &id),
        None => Ok(None),
    })
}

/// Applies `patch` to cluster `id`.
pub fn update(
    store: &Store,
    actor: &str,
    ip: &str,
    id: u64,
    patch: ClusterPatch,
) -> Result<Cluster, ClusterError> {
    let name = patch.name.as_deref().map(validate_name).transpose()?;
    let description = patch
        .description
        .as_deref()
        .map(validate_description)
        .transpose()?;
    let tags = patch.tags.as_deref().map(validate_tags).transpose()?;
    store.write(|w| {
        let mut c = w
            .get(&CLUSTERS, &id)?
            .ok_or_else(|| ClusterError::NotFound(id.to_string()))?;
        let mut changes = Vec::new();
        if let Some(n) = name {
            if n != c.name {
                if let Some(other) = w.get(&BY_NAME, &name_key(&n))? {
                    if other != id {
                        return Err(ClusterError::Duplicate(n));
                    }
                }
                w.delete(&BY_NAME, &name_key(&c.name))?;
                w.put(&BY_NAME, &name_key(&n), &id)?;
                changes.push(format!("name {}→{n}", c.name));
                c.name = n;
            }
        }
        if let Some(d) = description {
            if d != c.description {
                changes.push("description".to_string());
                c.description = d;
            }
        }
        if let Some(t) = tags {
            if t != c.tags {
                changes.push(format!("tags={}", t.join(",")));
                c.tags = t;
            }
        }
        if let Some(e) = patch.enforcement {
            if e != c.enforcement {
                changes.push(format!("enforcement={e}"));
                c.enforcement = e;
            }
        }
        if let Some(m) = patch.failure_mode {
            if m != c.failure_mode {
                changes.push(format!("failure_mode={}", m.as_str()));
                c.failure_mode = m;
            }
        }
        if let Some(u) = patch.unscanned_action {
            if u != c.unscanned_action {
                changes.push(format!("unscanned_action={}", u.as_str()));
                c.unscanned_action = u;
            }
        }
        c.updated_at = Utc::now();
        w.put(&CLUSTERS, &id, &c)?;
        audit::record(
            w,
            Event::new(actor, "cluster.update", format!("cluster:{id}"))
                .from_ip(ip)
                .detail(changes.join(", ")),
        )?;
        Ok(c)
    })
}

/// Deletes cluster `id`.
pub fn delete(store: &Store, actor: &str, ip: &str, id: u64) -> Result<Cluster, ClusterError> {
    store.write(|w| {
        let c = w
            .get(&CLUSTERS, &id)?
            .ok_or_else(|| ClusterError::NotFound(id.to_string()))?;
        w.delete(&CLUSTERS, &id)?;
        w.delete(&BY_NAME, &name_key(&c.name))?;
        inventory::forget(w, id)?;
        crate::workloads::forget(w, id)?;
        crate::audits::forget(w, id)?;
        crate::gatekeeper::catalog::forget(w, id)?;
        crate::gatekeeper::audit::forget(w, id)?;
        crate::gatekeeper::push::forget(w, id)?;
        crate::runtime::settings::forget(w, id)?;
        crate::trust::forget(w, id)?;
        sync::forget(w, id)?;
        webhook_auth::forget(w, id)?;
        webhook_install::forget(w, id)?;
        audit::record(
            w,
            Event::new(actor, "cluster.delete", format!("cluster:{id}"))
                .from_ip(ip)
                .detail(format!("name={}", c.name)),
        )?;
        Ok(c)
    })
}

/// The name of the clusters table (for caches that follow it).
pub fn table() -> &'static str {
    CLUSTERS.name()
}

/// The JSON of `GET /api/v1/clusters` (`{"items":[...]}`), kept in memory until the clusters
/// table changes: listing is frequent, changes are rare, and rendering 1,000 clusters costs
/// milliseconds.
#[derive(Default)]
pub struct ListCache {
    cached: std::sync::Mutex<Option<(u64, PreparedBody)>>,
}

impl ListCache {
    /// The cached body, if the table has not changed since it was rendered. Does no I/O.
    pub fn get(&self, store: &Store) -> Option<PreparedBody> {
        let version = store.version(&CLUSTERS);
        match &*self.cached.lock().ok()? {
            Some((v, body)) if *v == version => Some(body.clone()),
            _ => None,
        }
    }

    /// Renders (and compresses) the body from the store and caches it (blocking).
    pub fn render(&self, store: &Store) -> Result<PreparedBody, StoreError> {
        // Read the version first: if a write lands in between, the cached body may be newer than
        // its version, which only costs one extra render.
        let version = store.version(&CLUSTERS);
        #[derive(Serialize)]
        struct Items<'a> {
            items: &'a [Cluster],
        }
        let items = list(store)?;
        let json =
            serde_json::to_vec(&Items { items: &items }).map_err(|source| StoreError::Encode {
                table: CLUSTERS.name(),
                source,
            })?;
        let body = PreparedBody::json(json.into());
        if let Ok(mut c) = self.cached.lock() {
            *c = Some((version, body.clone()));
        }
        Ok(body)
    }
}

/// In-memory state of this domain.
pub fn domain_data(data: &mut crate::http::DomainData) {
    data.insert(ListCache::default());
}

/// The search document of a cluster.
pub fn search_doc(c: &Cluster) -> Doc {
    Doc {
        kind: "cluster",
        id: c.id.to_string(),
        title: c.name.clone(),
        body: format!("{} {}", c.description, c.tags.join(" ")),
        url: format!("/clusters/{}", c.id),
        group: format!("cluster:{}", c.id),
    }
}

/// Clusters' contribution to the search index.
pub fn search_source() -> Source {
    Source {
        kind: "cluster",
        documents: |store, emit| {
            list(store)?.iter().map(search_doc).for_each(emit);
            Ok(())
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: &str) -> NewCluster {
        NewCluster {
            name: name.into(),
            description: String::new(),
            tags: vec![],
            enforcement: false,
            failure_mode: FailureMode::FailOpen,
            unscanned_action: UnscannedAction::Deny,
        }
    }

    #[test]
    fn names_are_unique_and_validated() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &[]).unwrap();
        let c = create(&store, "t", "", new("prod-eu")).unwrap();
        assert!(matches!(
            create(&store, "t", "", new("PROD-EU")),
            Err(ClusterError::Duplicate(_))
        ));
        assert!(matches!(
            create(&store, "t", "", new("<script>")),
            Err(ClusterError::Invalid(_))
        ));
        assert!(matches!(
            create(&store, "t", "", new("x'; DROP TABLE")),
            Err(ClusterError::Invalid(_))
        ));
        let b = create(&store, "t", "", new("staging")).unwrap();
        let rename = ClusterPatch {
            name: Some("staging".into()),
            ..Default::default()
        };
        assert!(matches!(
            update(&store, "t", "", c.id, rename),
            Err(ClusterError::Duplicate(_))
        ));
        let patch = ClusterPatch {
            name: Some("prod".into()),
            tags: Some(vec!["env=prod".into(), "env=prod".into()]),
            ..Default::default()
        };
        let c = update(&store, "t", "", c.id, patch).unwrap();
        assert_eq!(c.tags, vec!["env=prod"]);
        assert_eq!(by_name(&store, "PROD").unwrap().unwrap().id, c.id);
        assert!(by_name(&store, "prod-eu").unwrap().is_none());
        delete(&store, "t", "", b.id).unwrap();
        assert!(matches!(get(&store, b.id), Err(ClusterError::NotFound(_))));
        create(&store, "t", "", new("staging")).unwrap();
    }
}
