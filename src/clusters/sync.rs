//! Live inventory: a cluster connected to its Kubernetes API server (a kubeconfig, sealed with
//! the appliance key, or the in-cluster service account) has its pods listed by the `kube-sync`
//! job and on demand, replacing what the last upload or sync recorded. A failed sync changes
//! nothing but the recorded outcome: the previous inventory stays in use.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::inventory::{self, PodsReplaced};
use super::kube::{self, Access, KubeError};
use super::{ClusterError, CLUSTERS};
use crate::audit::{self, Event};
use crate::secrets::Sealer;
use crate::store::{Store, Table};

/// Where the credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A stored kubeconfig.
    Kubeconfig,
    /// The service account of the pod Bulwark runs in.
    InCluster,
}

/// How the last sync ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncOutcome {
    pub at: DateTime<Utc>,
    pub ok: bool,
    /// What was recorded, or why nothing was.
    pub message: String,
    #[serde(default)]
    pub pods: usize,
    #[serde(default)]
    pub workloads: usize,
}

/// A cluster's connection to its API server.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Link {
    cluster: u64,
    source: Source,
    #[serde(default)]
    context: Option<String>,
    /// The API server's URL (from the kubeconfig; shown, not secret).
    #[serde(default)]
    server: String,
    /// The kubeconfig, sealed (`v1:…`) and bound to `kube:<cluster>`.
    #[serde(default)]
    sealed_kubeconfig: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[serde(default)]
    last_sync: Option<SyncOutcome>,
}

/// What the API shows of a connection: never the kubeconfig.
#[derive(Debug, Clone, Serialize)]
pub struct LinkView {
    pub cluster: u64,
    pub source: Source,
    pub context: Option<String>,
    pub server: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_sync: Option<SyncOutcome>,
}

impl From<&Link> for LinkView {
    fn from(l: &Link) -> Self {
        LinkView {
            cluster: l.cluster,
            source: l.source,
            context: l.context.clone(),
            server: l.server.clone(),
            created_at: l.created_at,
            updated_at: l.updated_at,
            last_sync: l.last_sync.clone(),
        }
    }
}

/// `PUT /api/v1/clusters/{id}/kubernetes`: a kubeconfig (and optionally its context), or
/// `in_cluster: true`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    #[serde(default)]
    pub kubeconfig: Option<String>,
    #[serde(default)]
    pub context: Option<String>,
    #[serde(default)]
    pub in_cluster: bool,
}

const LINKS: Table<u64, Link> = Table::new("cluster_kube_links");

/// Largest kubeconfig accepted (one with embedded certificates is a few KiB).
const MAX_KUBECONFIG: usize = 256 * 1024;
/// Who syncs, in the audit log.
const SYNC_ACTOR: &str = "system:kube-sync";

fn context_of(cluster: u64) -> String {
    format!("kube:{cluster}")
}

impl From<KubeError> for ClusterError {
    fn from(e: KubeError) -> Self {
        ClusterError::Kube(e.to_string())
    }
}

/// Connects cluster `id` to its API server; the kubeconfig is checked, then sealed inside the
/// transaction that stores it. Replaces an earlier connection.
pub fn connect(
    store: &Store,
    sealer: &Sealer,
    actor: &str,
    ip: &str,
    id: u64,
    req: Connect,
) -> Result<LinkView, ClusterError> {
    let context = req
        .context
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    if context.as_ref().is_some_and(|c| c.len() > 253) {
        return Err(ClusterError::Invalid(
            "context: at most 253 characters".into(),
        ));
    }
    let (source, server, kubeconfig) = match (req.kubeconfig, req.in_cluster) {
        (Some(_), true) => {
            return Err(ClusterError::Invalid(
                "give a kubeconfig or in_cluster: true, not both".into(),
            ))
        }
        (None, false) => {
            return Err(ClusterError::Invalid(
                "kubeconfig: the cluster's kubeconfig (YAML), or in_cluster: true".into(),
            ))
        }
        (None, true) => (Source::InCluster, "in-cluster".to_string(), None),
        (Some(k), false) => {
            if k.len() > MAX_KUBECONFIG {
                return Err(ClusterError::Invalid(format!(
                    "kubeconfig: at most {} KiB",
                    MAX_KUBECONFIG / 1024
                )));
            }
            let server = kube::kubeconfig_server(&k, context.as_deref())
                .map_err(|e| ClusterError::Invalid(e.to_string()))?;
            (Source::Kubeconfig, server, Some(k))
        }
    };
    store.write(|w| {
        if w.get(&CLUSTERS, &id)?.is_none() {
            return Err(ClusterError::NotFound(id.to_string()));
        }
        let now = Utc::now();
        let created_at = w.get(&LINKS, &id)?.map_or(now, |l| l.created_at);
        let sealed_kubeconfig = match &kubeconfig {
            Some(k) => Some(
                sealer
                    .seal(&context_of(id), k)
                    .map_err(|e| ClusterError::Secret(e.to_string()))?,
            ),
            None => None,
        };
        let link = Link {
            cluster: id,
            source,
            context: context.clone(),
            server: server.clone(),
            sealed_kubeconfig,
            created_at,
            updated_at: now,
            last_sync: None,
        };
        w.put(&LINKS, &id, &link)?;
        audit::record(
            w,
            Event::new(actor, "cluster.kube.connect", format!("cluster:{id}"))
                .from_ip(ip)
                .detail(format!("server={server}")),
        )?;
        Ok(LinkView::from(&link))
    })
}

/// Cluster `id`'s connection.
pub fn link(store: &Store, id: u64) -> Result<LinkView, ClusterError> {
    store
        .read(|r| r.get(&LINKS, &id))?
        .map(|l| LinkView::from(&l))
        .ok_or_else(|| not_connected(id))
}

fn not_connected(id: u64) -> ClusterError {
    ClusterError::NotConnected(id)
}

/// Every connection.
pub fn links(store: &Store) -> Result<Vec<LinkView>, ClusterError> {
    Ok(store
        .read(|r| r.all(&LINKS))?
        .iter()
        .map(|(_, l)| LinkView::from(l))
        .collect())
}

/// Forgets cluster `id`'s connection and its sealed kubeconfig (the inventory stays).
pub fn disconnect(store: &Store, actor: &str, ip: &str, id: u64) -> Result<(), ClusterError> {
    store.write(|w| {
        if w.get(&LINKS, &id)?.is_none() {
            return Err(not_connected(id));
        }
        w.delete(&LINKS, &id)?;
        audit::record(
            w,
            Event::new(actor, "cluster.kube.disconnect", format!("cluster:{id}")).from_ip(ip),
        )?;
        Ok(())
    })
}

/// Drops the connection of a cluster being deleted, inside its delete transaction.
pub(super) fn forget(w: &crate::store::WriteTx, id: u64) -> Result<(), ClusterError> {
    w.delete(&LINKS, &id)?;
    Ok(())
}

/// How to reach cluster `id`'s API server.
pub fn access(store: &Store, sealer: &Sealer, id: u64) -> Result<Access, ClusterError> {
    let l = store
        .read(|r| r.get(&LINKS, &id))?
        .ok_or_else(|| not_connected(id))?;
    Ok(match l.source {
        Source::InCluster => Access::InCluster,
        Source::Kubeconfig => {
            let sealed = l
                .sealed_kubeconfig
                .as_deref()
                .ok_or_else(|| ClusterError::Secret("the stored kubeconfig is missing".into()))?;
            let yaml = sealer
                .open_sealed(&context_of(id), sealed)
                .map_err(|e| ClusterError::Secret(e.to_string()))?;
            Access::Kubeconfig {
                yaml,
                context: l.context,
            }
        }
    })
}

/// Lists cluster `id`'s pods from its API server and replaces its inventory with them. The
/// outcome, good or bad, is recorded on the connection; a failure leaves the inventory alone.
pub async fn sync(
    store: &Store,
    sealer: std::sync::Arc<Sealer>,
    actor: &str,
    id: u64,
) -> Result<PodsReplaced, ClusterError> {
    let access = {
        let sealer = sealer.clone();
        store.run(move |s| access(s, &sealer, id)).await?
    };
    let mut parsed = inventory::Parsed::default();
    let mut objects = crate::workloads::Objects::default();
    let listed = async {
        let conn = kube::connect(&access).await?;
        kube::list(&conn, kube::PODS, |page| {
            match page {
                kube::Page::Items(body) => parsed.append(inventory::records(id, body)?),
                kube::Page::Restart => parsed = inventory::Parsed::default(),
            }
            if parsed.pods.len() > inventory::MAX_PODS {
                return Err(ClusterError::Invalid(format!(
                    "the cluster has more than {} pods",
                    inventory::MAX_PODS
                )));
            }
            Ok(())
        })
        .await?;
        // The rest of the inventory; an older reader role may not grant them (the pods and
        // their addresses are still worth recording).
        for (what, path) in [
            ("namespaces", kube::NAMESPACES),
            ("deployments", kube::DEPLOYMENTS),
            ("statefulsets", kube::STATEFUL_SETS),
            ("daemonsets", kube::DAEMON_SETS),
            ("replicasets", kube::REPLICA_SETS),
            ("jobs", kube::JOBS),
            ("cronjobs", kube::CRON_JOBS),
        ] {
            let mut gathered = crate::workloads::Objects::default();
            let r = kube::list(&conn, path, |page| match page {
                kube::Page::Items(body) => gathered
                    .add_page(body)
                    .map_err(|e| ClusterError::Invalid(format!("{what}: {e}"))),
                kube::Page::Restart => {
                    gathered = crate::workloads::Objects::default();
                    Ok(())
                }
            })
            .await;
            match r {
                Ok(_) => objects.merge(gathered),
                Err(ClusterError::Kube(m)) => objects.missing(what, &m),
                Err(e) => return Err(e),
            }
        }
        Ok::<_, ClusterError>(())
    }
    .await;
    let actor = actor.to_string();
    store
        .run(move |s| {
            let result =
                listed.and_then(|_| inventory::replace_records(s, &actor, "", id, parsed, objects, "api"));
            let outcome = match &result {
                Ok(r) => SyncOutcome {
                    at: Utc::now(),
                    ok: true,
                    message: format!(
                        "{} pod addresses of {} workloads recorded, {} pods left out; {} images running, {} queued for a scan; inventory: {} namespaces, {} pods{}",
                        r.recorded, r.workloads, r.skipped, r.images, r.queued_for_scan,
                        r.namespaces, r.inventory_pods,
                        if r.missing.is_empty() { String::new() } else { format!(" (not listed: {})", r.missing.join("; ")) }
                    ),
                    pods: r.recorded,
                    workloads: r.workloads,
                },
                Err(e) => SyncOutcome {
                    at: Utc::now(),
                    ok: false,
                    message: e.to_string(),
                    pods: 0,
                    workloads: 0,
                },
            };
            s.write(|w| {
                // The connection may have been removed while the list ran.
                if let Some(mut l) = w.get(&LINKS, &id)? {
                    l.last_sync = Some(outcome);
                    w.put(&LINKS, &id, &l)?;
                }
                Ok::<_, ClusterError>(())
            })?;
            result
        })
        .await
}

/// The `kube-sync` job: syncs every connected cluster, one after another. One cluster failing
/// does not stop the others; the run fails if any did, naming them.
pub fn sync_all(store: &Store, sealer: std::sync::Arc<Sealer>) -> Result<String, String> {
    let ids: Vec<u64> = links(store)
        .map_err(|e| e.to_string())?
        .iter()
        .map(|l| l.cluster)
        .collect();
    let run = async {
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for id in ids {
            match sync(store, sealer.clone(), SYNC_ACTOR, id).await {
                Ok(r) => done.push(format!("cluster {id}: {} pods", r.recorded)),
                Err(e) => failed.push(format!("cluster {id}: {e}")),
            }
        }
        (done, failed)
    };
    // Jobs run on the blocking pool, inside the runtime; a caller outside one gets its own.
    let (done, failed) = match tokio::runtime::Handle::try_current() {
        Ok(h) => h.block_on(run),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(run),
    };
    if !failed.is_empty() {
        return Err(format!("{}; synced: {}", failed.join("; "), done.len()));
    }
    if done.is_empty() {
        return Ok("no cluster is connected to its API server".into());
    }
    Ok(done.join("; "))
}
