//! A cluster's pod inventory: which workload owns which pod IP, so the data map can name
//! workloads instead of addresses.
//!
//! The inventory arrives as Kubernetes JSON (`kubectl get pods -A -o json`, a `List` or
//! `PodList`), uploaded with `PUT /api/v1/clusters/{id}/pods`; each upload replaces what the
//! cluster had. A pod's workload is its controller: a ReplicaSet carrying the pod's
//! `pod-template-hash` is its Deployment, a Job named `<cronjob>-<digits>` stays a Job (the
//! CronJob is not knowable from the pod alone), anything else is named as its owner says, and a
//! pod without one is its own workload. Pods on the host network share the node's address and
//! finished pods no longer hold theirs, so neither is recorded.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{ClusterError, CLUSTERS};
use crate::audit::{self, Event};
use crate::store::{ReadTx, Store, Table, WriteTx};

/// The workload behind one pod IP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    pub ip: String,
    pub cluster: u64,
    pub namespace: String,
    pub pod: String,
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `Job`, `ReplicaSet`, …, or `Pod`.
    pub kind: String,
    pub workload: String,
}

impl PodRecord {
    /// How the data map names it: `namespace/Kind/name`.
    pub fn label(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.kind, self.workload)
    }
}

/// What an upload did.
#[derive(Debug, Default, Serialize)]
pub struct PodsReplaced {
    pub cluster: u64,
    /// Pod IPs now attributed.
    pub recorded: usize,
    /// Pods left out: host network, finished, no IP yet, or not a pod.
    pub skipped: usize,
    /// Distinct workloads.
    pub workloads: usize,
    /// Distinct images the pods run (marked seen in the cluster).
    pub images: usize,
    /// Of those, never scanned and now waiting for the native scanner.
    pub queued_for_scan: usize,
    /// Namespaces in the workload inventory.
    pub namespaces: usize,
    /// Pods in the workload inventory (finished and host-network ones included).
    pub inventory_pods: usize,
    /// Collections the API server would not list, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// Pod IP → workload, across clusters (pod networks of different clusters should not overlap;
/// when they do, the newest upload wins the address).
const POD_IPS: Table<String, PodRecord> = Table::new("inventory_pod_ips");
/// Cluster → the IPs its last upload recorded, so the next upload can replace them.
const CLUSTER_IPS: Table<u64, Vec<String>> = Table::new("inventory_cluster_ips");

/// Most pods one upload may carry.
pub(super) const MAX_PODS: usize = 200_000;

// Only the fields the inventory needs; serde skips the rest of each (large) pod object.
#[derive(Deserialize)]
struct List {
    #[serde(default)]
    kind: String,
    items: Vec<Pod>,
}

#[derive(Deserialize)]
struct Pod {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: Spec,
    #[serde(default)]
    status: Status,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    owner_references: Vec<Owner>,
    #[serde(default)]
    creation_timestamp: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Deserialize)]
struct Owner {
    kind: String,
    name: String,
    #[serde(default)]
    controller: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    host_network: bool,
    #[serde(default)]
    node_name: String,
    #[serde(default)]
    containers: Vec<Container>,
    #[serde(default)]
    init_containers: Vec<Container>,
    #[serde(default)]
    ephemeral_containers: Vec<Container>,
}

#[derive(Deserialize)]
struct Container {
    #[serde(default)]
    name: String,
    #[serde(default)]
    image: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStatus {
    #[serde(default)]
    name: String,
    #[serde(default)]
    image: String,
    #[serde(default, rename = "imageID")]
    image_id: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Status {
    #[serde(default)]
    phase: String,
    #[serde(default, rename = "podIP")]
    pod_ip: String,
    #[serde(default, rename = "podIPs")]
    pod_ips: Vec<PodIp>,
    #[serde(default)]
    container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    init_container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    ephemeral_container_statuses: Vec<ContainerStatus>,
}

/// An image a pod runs: its reference and, once the kubelet has pulled it, its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningImage {
    pub reference: crate::images::ImageRef,
    pub digest: Option<String>,
}

/// Each image once, in reference order.
fn dedup_images(images: &mut Vec<RunningImage>) {
    images.sort_by_cached_key(|i| (i.reference.to_string(), i.digest.clone()));
    images.dedup();
}

/// The image of one container: the status's reference and repository digest when the
/// container has started (`imageID` is `docker-pullable://repo@sha256:…` or `repo@sha256:…`;
/// a bare `sha256:…` is the local image id, not a digest), else the spec's reference.
fn running_image(spec: &str, status: Option<&ContainerStatus>) -> Option<RunningImage> {
    use crate::images::{parse_digest, ImageRef};
    let from_status = status.filter(|s| !s.image.is_empty());
    let reference = ImageRef::parse(from_status.map_or(spec, |s| s.image.as_str())).ok()?;
    let Some((repo, digest)) = status.and_then(|s| s.image_id.rsplit_once('@')) else {
        return Some(RunningImage {
            reference,
            digest: None,
        });
    };
    let digest = parse_digest(digest);
    let repo = repo.rsplit("://").next().unwrap_or(repo);
    // The digest names the repository it was pulled from; when that is not the reference's
    // (a mirror, a rewritten name), the image is that repository's, known by digest alone.
    let reference = match ImageRef::parse(repo) {
        Ok(r) if r.registry != reference.registry || r.repository != reference.repository => {
            ImageRef {
                tag: None,
                digest: None,
                ..r
            }
        }
        _ => reference,
    };
    Some(RunningImage { reference, digest })
}

#[derive(Deserialize)]
struct PodIp {
    ip: String,
}

/// The workload (kind, name) that owns a pod.
fn workload_of(meta: &Meta) -> (String, String) {
    let owner = meta
        .owner_references
        .iter()
        .find(|o| o.controller)
        .or(meta.owner_references.first());
    match owner {
        None => ("Pod".into(), meta.name.clone()),
        Some(o) if o.kind == "ReplicaSet" => {
            // A Deployment names its ReplicaSets `<deployment>-<pod-template-hash>`.
            match meta.labels.get("pod-template-hash") {
                Some(hash) if o.name.ends_with(&format!("-{hash}")) => (
                    "Deployment".into(),
                    o.name[..o.name.len() - hash.len() - 1].to_string(),
                ),
                _ => ("ReplicaSet".into(), o.name.clone()),
            }
        }
        Some(o) => (o.kind.clone(), o.name.clone()),
    }
}

fn bounded(what: &str, v: &str, max: usize) -> Result<(), String> {
    if v.len() > max || v.chars().any(char::is_control) {
        return Err(format!(
            "{what} '{}' is not valid",
            v.chars().take(40).collect::<String>()
        ));
    }
    Ok(())
}

/// What a pod list yields.
#[derive(Default)]
pub(super) struct Parsed {
    /// Pod addresses and their workloads.
    pub pods: Vec<PodRecord>,
    /// Pods left out of the addresses: host network, finished, no address yet, not a pod.
    pub skipped: usize,
    /// Images of the pods that have not finished (host-network ones included), deduplicated.
    pub images: Vec<RunningImage>,
    /// Every pod, for the workload inventory.
    pub inventory: Vec<(String, crate::workloads::Pod)>,
    /// Every pod whole, for the Gatekeeper audit.
    pub raw: Vec<serde_json::Value>,
}

impl Parsed {
    /// Adds another page's.
    pub fn append(&mut self, mut other: Parsed) {
        self.pods.append(&mut other.pods);
        self.skipped += other.skipped;
        self.images.append(&mut other.images);
        dedup_images(&mut self.images);
        self.inventory.append(&mut other.inventory);
        self.raw.append(&mut other.raw);
    }
}

/// The records an upload (or one page of a list from the API server) yields, and how many
/// pods it left out.
pub(super) fn records(cluster: u64, body: &[u8]) -> Result<Parsed, ClusterError> {
    let list: List = serde_json::from_slice(body).map_err(|e| {
        ClusterError::Invalid(format!(
            "expected Kubernetes JSON with items (kubectl get pods -A -o json): {e}"
        ))
    })?;
    if !matches!(list.kind.as_str(), "" | "List" | "PodList") {
        return Err(ClusterError::Invalid(format!(
            "expected a List or PodList, got '{}'",
            list.kind.chars().take(40).collect::<String>()
        )));
    }
    if list.items.len() > MAX_PODS {
        return Err(ClusterError::Invalid(format!(
            "at most {MAX_PODS} pods per upload"
        )));
    }
    let mut out = Vec::new();
    let mut skipped = 0;
    let mut images = Vec::new();
    let mut inventory = Vec::new();
    // (index in the list, index in `inventory`) of pods without a controller.
    let mut bare = Vec::new();
    for (index, pod) in list.items.into_iter().enumerate() {
        let finished = matches!(pod.status.phase.as_str(), "Succeeded" | "Failed");
        let not_pod = pod.kind.as_deref().is_some_and(|k| k != "Pod");
        if not_pod {
            skipped += 1;
            continue;
        }
        let meta = &pod.metadata;
        for (what, v) in [("name", &meta.name), ("namespace", &meta.namespace)] {
            bounded(what, v, 253).map_err(ClusterError::Invalid)?;
        }
        let (kind, workload) = workload_of(meta);
        bounded("owner kind", &kind, 63).map_err(ClusterError::Invalid)?;
        bounded("owner name", &workload, 253).map_err(ClusterError::Invalid)?;
        let mut containers = Vec::new();
        let st = &pod.status;
        for (what, specs, statuses) in [
            ("container", &pod.spec.containers, &st.container_statuses),
            (
                "init",
                &pod.spec.init_containers,
                &st.init_container_statuses,
            ),
            (
                "ephemeral",
                &pod.spec.ephemeral_containers,
                &st.ephemeral_container_statuses,
            ),
        ] {
            for c in specs {
                let status = statuses.iter().find(|s| s.name == c.name);
                let running = running_image(&c.image, status);
                containers.push(inventory_container(what, c, running.as_ref()));
                if !finished {
                    images.extend(running);
                }
            }
        }
        inventory.push((
            meta.namespace.clone(),
            crate::workloads::Pod {
                name: meta.name.clone(),
                workload_kind: kind.clone(),
                workload: workload.clone(),
                node: pod.spec.node_name.chars().take(253).collect(),
                phase: pod.status.phase.chars().take(32).collect(),
                created: meta.creation_timestamp,
                containers,
                owner: meta
                    .owner_references
                    .iter()
                    .find(|o| o.controller)
                    .or(meta.owner_references.first())
                    .map(|o| (o.kind.clone(), o.name.clone())),
                template_hash: meta.labels.get("pod-template-hash").cloned(),
                kubesec: None,
            },
        ));
        if meta.owner_references.is_empty() {
            bare.push((index, inventory.len() - 1));
        }
        if pod.spec.host_network || finished {
            skipped += 1;
            continue;
        }
        let mut ips: Vec<String> = pod.status.pod_ips.iter().map(|p| p.ip.clone()).collect();
        if ips.is_empty() && !pod.status.pod_ip.is_empty() {
            ips.push(pod.status.pod_ip.clone());
        }
        // Addresses are normalised (`fd00::0001` and `fd00::1` are one pod).
        let ips: Vec<IpAddr> = ips.iter().filter_map(|ip| ip.parse().ok()).collect();
        if ips.is_empty() {
            skipped += 1;
            continue;
        }
        for ip in ips {
            out.push(PodRecord {
                ip: ip.to_string(),
                cluster,
                namespace: meta.namespace.clone(),
                pod: meta.name.clone(),
                kind: kind.clone(),
                workload: workload.clone(),
            });
        }
    }
    dedup_images(&mut images);
    // The page again, whole: pods without a controller are scored with kubesec's rules (the
    // others are their workload's template, scored with the workload), and every pod goes to
    // the Gatekeeper audit.
    #[derive(Deserialize)]
    struct Whole {
        items: Vec<serde_json::Value>,
    }
    let items = serde_json::from_slice::<Whole>(body)
        .map(|w| w.items)
        .unwrap_or_default();
    for &(i, j) in &bare {
        if let (Some(v), Some(entry)) = (items.get(i), inventory.get_mut(j)) {
            let r = crate::kubesec::score_as(v, "Pod", "inventory");
            entry.1.kubesec = Some(crate::kubesec::Summary::of(&r));
        }
    }
    let raw = items
        .into_iter()
        .filter(|v| {
            v.get("kind")
                .and_then(|k| k.as_str())
                .is_none_or(|k| k == "Pod")
        })
        .map(|v| crate::workloads::objects::whole(v, "v1", "Pod"))
        .collect();
    Ok(Parsed {
        pods: out,
        skipped,
        images,
        inventory,
        raw,
    })
}

/// A container as the workload inventory shows it: the image it runs and how it is judged.
fn inventory_container(
    kind: &str,
    c: &Container,
    running: Option<&RunningImage>,
) -> crate::workloads::Container {
    let cut = |s: &str| s.chars().take(1024).collect::<String>();
    match running {
        Some(r) => crate::workloads::Container {
            name: cut(&c.name),
            kind: kind.into(),
            image: r.reference.to_string(),
            digest: r.digest.clone(),
            judged_as: match &r.digest {
                Some(d) => format!("{}@{d}", r.reference.name()),
                None => r.reference.to_string(),
            },
        },
        // Not a reference Bulwark can parse: shown as given, and judged (refused) as given.
        None => crate::workloads::Container {
            name: cut(&c.name),
            kind: kind.into(),
            image: cut(&c.image),
            digest: None,
            judged_as: cut(&c.image),
        },
    }
}

/// Replaces cluster `cluster`'s pods with those in `body` (Kubernetes JSON), in one transaction.
pub fn replace_pods(
    store: &Store,
    actor: &str,
    ip: &str,
    cluster: u64,
    body: &[u8],
) -> Result<PodsReplaced, ClusterError> {
    let parsed = records(cluster, body)?;
    replace_records(
        store,
        actor,
        ip,
        cluster,
        parsed,
        crate::workloads::Objects::default(),
        "upload",
    )
}

/// Replaces cluster `cluster`'s pods with those of `parsed` and its workload inventory with
/// `objects` and the pods, and marks its images seen in the cluster, in one transaction
/// (uploads and API syncs; `source` says which). An image never scanned is queued for the
/// native scanner: by digest when the kubelet has pulled it, else by its reference.
pub(super) fn replace_records(
    store: &Store,
    actor: &str,
    ip: &str,
    cluster: u64,
    mut parsed: Parsed,
    mut objects: crate::workloads::Objects,
    source: &str,
) -> Result<PodsReplaced, ClusterError> {
    objects.pods = std::mem::take(&mut parsed.inventory);
    objects.raw.append(&mut parsed.raw);
    let (recs, skipped) = (&parsed.pods, parsed.skipped);
    if recs.len() > MAX_PODS {
        return Err(ClusterError::Invalid(format!(
            "at most {MAX_PODS} pods per cluster"
        )));
    }
    let replaced = store.write(|w| {
        if w.get(&CLUSTERS, &cluster)?.is_none() {
            return Err(ClusterError::NotFound(cluster.to_string()));
        }
        forget(w, cluster)?;
        let mut ips = Vec::with_capacity(recs.len());
        let mut workloads = std::collections::BTreeSet::new();
        for r in recs {
            w.put(&POD_IPS, &r.ip, r)?;
            ips.push(r.ip.clone());
            workloads.insert(r.label());
        }
        w.put(&CLUSTER_IPS, &cluster, &ips)?;
        let mut queued = 0;
        for i in &parsed.images {
            const WHY: &str = "running in the cluster";
            match &i.digest {
                Some(d) => {
                    let mut image = crate::images::upsert(w, &i.reference, d, Some(cluster))?;
                    if image.scan_state == crate::images::ScanState::Unscanned {
                        crate::images::mark_queued(w, &mut image, WHY)?;
                        queued += 1;
                    }
                }
                None => {
                    crate::images::enqueue(w, &i.reference.to_string(), Some(cluster), WHY, 1)?;
                    queued += 1;
                }
            }
        }
        crate::gatekeeper::audit::record_objects(w, cluster, &objects.raw)?;
        let summary = crate::workloads::replace(w, cluster, source, objects)?;
        audit::record(
            w,
            Event::new(actor, "cluster.pods", format!("cluster:{cluster}"))
                .from_ip(ip)
                .detail(format!(
                    "pods={} skipped={skipped} images={}",
                    recs.len(),
                    parsed.images.len()
                )),
        )?;
        Ok(PodsReplaced {
            cluster,
            recorded: recs.len(),
            skipped,
            workloads: workloads.len(),
            images: parsed.images.len(),
            queued_for_scan: queued,
            namespaces: summary.namespaces,
            inventory_pods: summary.pods,
            missing: summary.missing,
        })
    })?;
    // The objects just recorded are audited against the cluster's constraints; a failed audit
    // is the audit's to report and never undoes the inventory.
    if let Err(e) = crate::gatekeeper::audit::run(store, cluster) {
        tracing::warn!(cluster, error = %e, "gatekeeper audit failed");
    }
    Ok(replaced)
}

/// Drops cluster `cluster`'s pod addresses (an address another cluster has taken since
/// stay with that cluster).
pub(super) fn forget(w: &WriteTx, cluster: u64) -> Result<(), ClusterError> {
    for ip in w.get(&CLUSTER_IPS, &cluster)?.unwrap_or_default() {
        if w.get(&POD_IPS, &ip)?.is_some_and(|r| r.cluster == cluster) {
            w.delete(&POD_IPS, &ip)?;
        }
    }
    w.delete(&CLUSTER_IPS, &cluster)?;
    Ok(())
}

/// Cluster `cluster`'s recorded pods, by namespace, workload and pod.
pub fn pods(store: &Store, cluster: u64) -> Result<Vec<PodRecord>, ClusterError> {
    let mut v = store
        .read(|r| {
            if r.get(&CLUSTERS, &cluster)?.is_none() {
                return Ok(None);
            }
            let mut v = Vec::new();
            for ip in r.get(&CLUSTER_IPS, &cluster)?.unwrap_or_default() {
                if let Some(rec) = r.get(&POD_IPS, &ip)?.filter(|p| p.cluster == cluster) {
                    v.push(rec);
                }
            }
            Ok(Some(v))
        })?
        .ok_or_else(|| ClusterError::NotFound(cluster.to_string()))?;
    v.sort_by(|a, b| (&a.namespace, &a.workload, &a.pod).cmp(&(&b.namespace, &b.workload, &b.pod)));
    Ok(v)
}

/// The workload at `addr` (an IP, or `ip:port` / `[v6]:port`), if the inventory knows it.
pub fn lookup(r: &impl PodLookup, addr: &str) -> Option<PodRecord> {
    let ip = parse_addr(addr)?;
    r.pod_at(&ip.to_string())
}

/// Reads an IP out of `addr`: a bare address, `ip:port` or `[v6]:port`.
fn parse_addr(addr: &str) -> Option<IpAddr> {
    if let Ok(ip) = addr.parse() {
        return Some(ip);
    }
    if let Ok(sa) = addr.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    None
}

/// Something the inventory can be read through: a read or a write transaction. Attribution is
/// best effort: a failed read leaves the address as it is rather than failing the ingest.
pub trait PodLookup {
    fn pod_at(&self, ip: &str) -> Option<PodRecord>;
}

impl PodLookup for ReadTx {
    fn pod_at(&self, ip: &str) -> Option<PodRecord> {
        self.get(&POD_IPS, &ip.to_string()).ok().flatten()
    }
}

impl PodLookup for WriteTx {
    fn pod_at(&self, ip: &str) -> Option<PodRecord> {
        self.get(&POD_IPS, &ip.to_string()).ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_name_the_workload() {
        let body = br#"{"apiVersion":"v1","kind":"List","items":[
          {"kind":"Pod","metadata":{"name":"api-7d9f8c6b5-x2x9q","namespace":"shop",
            "labels":{"app":"api","pod-template-hash":"7d9f8c6b5"},
            "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"api-7d9f8c6b5","uid":"u1","controller":true,"blockOwnerDeletion":true}]},
            "spec":{"containers":[{"name":"api","image":"shop/api:1"}]},
            "status":{"phase":"Running","podIP":"10.244.1.5","podIPs":[{"ip":"10.244.1.5"},{"ip":"fd00::0005"}]}},
          {"metadata":{"name":"db-0","namespace":"shop","ownerReferences":[{"kind":"StatefulSet","name":"db","controller":true}]},
            "status":{"phase":"Running","podIP":"10.244.2.7"}},
          {"metadata":{"name":"debug","namespace":"default"},"status":{"phase":"Running","podIP":"10.244.2.9"}},
          {"metadata":{"name":"node-exporter-abcde","namespace":"mon","ownerReferences":[{"kind":"DaemonSet","name":"node-exporter","controller":true}]},
            "spec":{"hostNetwork":true},"status":{"phase":"Running","podIP":"192.168.1.10"}},
          {"metadata":{"name":"report-28312-abc","namespace":"jobs","ownerReferences":[{"kind":"Job","name":"report-28312","controller":true}]},
            "status":{"phase":"Succeeded","podIP":"10.244.3.3"}},
          {"metadata":{"name":"pending","namespace":"jobs"},"status":{"phase":"Pending"}},
          {"metadata":{"name":"rs-only","namespace":"x","ownerReferences":[{"kind":"ReplicaSet","name":"legacy","controller":true}]},
            "status":{"podIP":"not-an-ip"}}
        ]}"#;
        let Parsed {
            pods: recs,
            skipped,
            ..
        } = records(7, body).unwrap();
        let got: Vec<(String, String)> = recs.iter().map(|r| (r.ip.clone(), r.label())).collect();
        assert_eq!(
            got,
            vec![
                ("10.244.1.5".to_string(), "shop/Deployment/api".to_string()),
                ("fd00::5".into(), "shop/Deployment/api".into()),
                ("10.244.2.7".into(), "shop/StatefulSet/db".into()),
                ("10.244.2.9".into(), "default/Pod/debug".into()),
            ]
        );
        assert_eq!(skipped, 4, "host network, finished, pending, bad IP");
        for bad in [
            &b"{"[..],
            b"[]",
            br#"{"kind":"Deployment","items":[]}"#,
            br#"{"items":[{"metadata":{"name":"a\u0000b"},"status":{"podIP":"10.0.0.1"}}]}"#,
        ] {
            assert!(records(1, bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_addr("[fd00::5]:8080"), "fd00::5".parse().ok());
        assert_eq!(parse_addr("10.0.0.1:80"), "10.0.0.1".parse().ok());
        assert_eq!(parse_addr("api.shop"), None);
    }

    #[test]
    fn images_come_from_statuses_with_their_digests() {
        let d = format!("sha256:{}", "bd17".repeat(16));
        let status = |image: &str, id: &str| ContainerStatus {
            name: "c".into(),
            image: image.into(),
            image_id: id.into(),
        };
        let got = |spec: &str, st: Option<ContainerStatus>| {
            running_image(spec, st.as_ref()).map(|i| (i.reference.to_string(), i.digest))
        };
        // Docker's `docker-pullable://` form, with the tag from the status.
        assert_eq!(
            got(
                "gcr.io/kuar-demo/kuard-amd64:1",
                Some(status(
                    "gcr.io/kuar-demo/kuard-amd64:1",
                    &format!("docker-pullable://gcr.io/kuar-demo/kuard-amd64@{d}")
                ))
            ),
            Some(("gcr.io/kuar-demo/kuard-amd64:1".into(), Some(d.clone())))
        );
        // containerd's plain `repo@digest`, for a Docker Hub short name.
        assert_eq!(
            got(
                "nginx:1.25",
                Some(status(
                    "docker.io/library/nginx:1.25",
                    &format!("docker.io/library/nginx@{d}")
                ))
            ),
            Some(("docker.io/library/nginx:1.25".into(), Some(d.clone())))
        );
        // Pulled through a mirror: the digest belongs to the mirror's repository.
        assert_eq!(
            got(
                "nginx:1.25",
                Some(status(
                    "nginx:1.25",
                    &format!("mirror.local:5000/library/nginx@{d}")
                ))
            ),
            Some(("mirror.local:5000/library/nginx".into(), Some(d.clone())))
        );
        // A local image id is not a repository digest; not started yet: the spec's reference.
        assert_eq!(
            got("nginx:1.25", Some(status("nginx:1.25", &d))).and_then(|x| x.1),
            None
        );
        assert_eq!(
            got("registry.local/app:2", None),
            Some(("registry.local/app:2".into(), None))
        );
        assert_eq!(got("", None), None);
    }
}
