//! What a sync gathers before it is stored: the API server's lists of namespaces and
//! controllers (parsed here, only the fields the inventory shows) and the pods (parsed with the
//! pod addresses in `clusters::inventory`). [`Objects::into_namespaces`] then resolves each pod's
//! workload through its owners: a pod of a ReplicaSet belongs to the ReplicaSet's Deployment, a
//! pod of a Job to the Job's CronJob.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Namespace, Pod};

/// Most objects of one kind a sync keeps (the pod limit is the inventory's own).
pub const MAX_OBJECTS: usize = 200_000;

/// A controller: Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob (or, for pods
/// without one, the pod itself as `Pod`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    pub kind: String,
    pub name: String,
    /// Its own controller (a Deployment's ReplicaSet, a CronJob's Job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<(String, String)>,
    /// Pods wanted (replicas, or the nodes a DaemonSet should run on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<i64>,
    /// Pods ready (or, for a Job, succeeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<i64>,
    /// A CronJob's schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The images of its pod template.
    #[serde(default)]
    pub images: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    /// Its pods in the inventory.
    #[serde(default)]
    pub pods: usize,
    /// Its pod template scored with kubesec's rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubesec: Option<crate::kubesec::Summary>,
}

/// Everything one sync (or upload) gathered.
#[derive(Debug, Default)]
pub struct Objects {
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// (namespace, workload).
    workloads: Vec<(String, Workload)>,
    /// (namespace, pod).
    pub pods: Vec<(String, Pod)>,
    /// Whether the controllers were listed (else workloads are inferred from pods).
    controllers_listed: bool,
    /// Collections that could not be listed, with why.
    pub missing: Vec<String>,
    /// Every listed object whole (with its `apiVersion` and `kind`, which list items lack), for
    /// the Gatekeeper audit.
    pub raw: Vec<serde_json::Value>,
}

/// A list item as a whole object: `apiVersion` and `kind` from its list, without the
/// `managedFields` bookkeeping no policy reads.
pub fn whole(mut item: serde_json::Value, api_version: &str, kind: &str) -> serde_json::Value {
    if let Some(o) = item.as_object_mut() {
        if !api_version.is_empty() {
            o.entry("apiVersion").or_insert_with(|| api_version.into());
        }
        o.entry("kind").or_insert_with(|| kind.into());
        if let Some(m) = o.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.remove("managedFields");
        }
    }
    item
}

// A list's items are kept whole for KubeSec and policy audits; the inventory reads only what
// it shows.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct List {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    items: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Item {
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
    creation_timestamp: Option<DateTime<Utc>>,
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
    replicas: Option<i64>,
    #[serde(default)]
    completions: Option<i64>,
    #[serde(default)]
    schedule: Option<String>,
    #[serde(default)]
    template: Option<Template>,
    #[serde(default)]
    job_template: Option<JobTemplate>,
}

#[derive(Deserialize, Default)]
struct Template {
    #[serde(default)]
    spec: PodSpec,
}

#[derive(Deserialize, Default)]
struct JobTemplate {
    #[serde(default)]
    spec: JobSpec,
}

#[derive(Deserialize, Default)]
struct JobSpec {
    #[serde(default)]
    template: Template,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    #[serde(default)]
    containers: Vec<ContainerSpec>,
    #[serde(default)]
    init_containers: Vec<ContainerSpec>,
}

#[derive(Deserialize)]
struct ContainerSpec {
    #[serde(default)]
    image: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Status {
    #[serde(default)]
    ready_replicas: Option<i64>,
    #[serde(default)]
    number_ready: Option<i64>,
    #[serde(default)]
    desired_number_scheduled: Option<i64>,
    #[serde(default)]
    succeeded: Option<i64>,
}

/// The kind of the items of a list, from the list's own kind (`DeploymentList` → `Deployment`).
fn item_kind(list_kind: &str) -> Option<&'static str> {
    Some(match list_kind {
        "NamespaceList" => "Namespace",
        "DeploymentList" => "Deployment",
        "StatefulSetList" => "StatefulSet",
        "DaemonSetList" => "DaemonSet",
        "ReplicaSetList" => "ReplicaSet",
        "JobList" => "Job",
        "CronJobList" => "CronJob",
        _ => return None,
    })
}

fn valid_name(what: &str, v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > 253 || v.contains('/') || v.chars().any(char::is_control) {
        return Err(format!(
            "{what} '{}' is not a Kubernetes name",
            v.chars().take(40).collect::<String>()
        ));
    }
    Ok(())
}

/// The controller among a list of owners (the first owner when none says it controls).
fn controller(owners: &[Owner]) -> Option<(String, String)> {
    owners
        .iter()
        .find(|o| o.controller)
        .or(owners.first())
        .map(|o| (o.kind.clone(), o.name.clone()))
}

impl Objects {
    /// Adds one page of a namespace or controller list from the API server.
    pub fn add_page(&mut self, body: &[u8]) -> Result<(), String> {
        let list: List = serde_json::from_slice(body).map_err(|e| format!("not a list: {e}"))?;
        let kind = item_kind(&list.kind)
            .ok_or_else(|| format!("unexpected list kind '{}'", truncated(&list.kind)))?;
        let read = |v: &serde_json::Value| {
            Item::deserialize(v).map_err(|e| format!("a {kind} is not readable: {e}"))
        };
        if kind == "Namespace" {
            for v in &list.items {
                let item = read(v)?;
                valid_name("namespace", &item.metadata.name)?;
                self.namespaces
                    .insert(item.metadata.name, item.metadata.labels);
            }
            let api_version = list.api_version.clone();
            self.raw
                .extend(list.items.into_iter().map(|v| whole(v, &api_version, kind)));
            return Ok(());
        }
        self.controllers_listed = true;
        if self.workloads.len() + list.items.len() > MAX_OBJECTS {
            return Err(format!("more than {MAX_OBJECTS} workloads"));
        }
        for v in &list.items {
            let item = read(v)?;
            let kubesec = crate::kubesec::score_as(v, kind, "inventory");
            let m = item.metadata;
            valid_name("name", &m.name)?;
            valid_name("namespace", &m.namespace)?;
            let template = match kind {
                "CronJob" => item.spec.job_template.map(|j| j.spec.template),
                _ => item.spec.template,
            }
            .unwrap_or_default();
            let mut images: Vec<String> = template
                .spec
                .init_containers
                .iter()
                .chain(&template.spec.containers)
                .map(|c| c.image.chars().take(1024).collect())
                .collect();
            images.dedup();
            let st = item.status;
            let (desired, ready) = match kind {
                "DaemonSet" => (st.desired_number_scheduled, st.number_ready),
                "Job" => (item.spec.completions, st.succeeded),
                "CronJob" => (None, None),
                _ => (item.spec.replicas, Some(st.ready_replicas.unwrap_or(0))),
            };
            self.workloads.push((
                m.namespace,
                Workload {
                    kind: kind.to_string(),
                    name: m.name,
                    owner: controller(&m.owner_references),
                    desired,
                    ready,
                    schedule: item.spec.schedule.map(|s| truncated(&s)),
                    images,
                    created: m.creation_timestamp,
                    pods: 0,
                    kubesec: Some(crate::kubesec::Summary::of(&kubesec)),
                },
            ));
        }
        let api_version = list.api_version.clone();
        self.raw
            .extend(list.items.into_iter().map(|v| whole(v, &api_version, kind)));
        Ok(())
    }

    /// Adds what another list gathered.
    pub fn merge(&mut self, other: Objects) {
        self.namespaces.extend(other.namespaces);
        self.workloads.extend(other.workloads);
        self.pods.extend(other.pods);
        self.controllers_listed |= other.controllers_listed;
        self.missing.extend(other.missing);
        self.raw.extend(other.raw);
    }

    /// Notes a collection the API server would not list.
    pub fn missing(&mut self, what: &str, why: &str) {
        self.missing.push(format!("{what}: {why}"));
    }

    /// Groups everything by namespace, resolving each pod's workload and counting pods per
    /// workload. Without controller lists (an uploaded pod list), each pod's workload is what its
    /// owner reference and `pod-template-hash` label say.
    pub fn into_namespaces(self) -> Vec<Namespace> {
        let mut out: BTreeMap<String, Namespace> = self
            .namespaces
            .into_iter()
            .map(|(name, labels)| {
                let ns = Namespace {
                    name: name.clone(),
                    labels,
                    ..Namespace::default()
                };
                (name, ns)
            })
            .collect();
        // (namespace, kind, name) → its controller.
        let owners: HashMap<(&str, &str, &str), &(String, String)> = self
            .workloads
            .iter()
            .filter_map(|(ns, w)| {
                w.owner
                    .as_ref()
                    .map(|o| ((ns.as_str(), w.kind.as_str(), w.name.as_str()), o))
            })
            .collect();
        let mut resolved = Vec::with_capacity(self.pods.len());
        for (ns, mut pod) in self.pods {
            // Two levels at most: Deployment → ReplicaSet → Pod, CronJob → Job → Pod. An owner
            // the lists do not hold keeps what the pod itself says (its owner reference and
            // `pod-template-hash` label), as for an upload.
            if let Some((k, n)) = &pod.owner {
                if let Some((ok, on)) = owners.get(&(ns.as_str(), k.as_str(), n.as_str())) {
                    if matches!(k.as_str(), "ReplicaSet" | "Job") {
                        pod.workload_kind = ok.clone();
                        pod.workload = on.clone();
                    }
                }
            }
            resolved.push((ns, pod));
        }
        let mut counts: HashMap<(String, String, String), usize> = HashMap::new();
        for (ns, pod) in &resolved {
            *counts
                .entry((ns.clone(), pod.workload_kind.clone(), pod.workload.clone()))
                .or_default() += 1;
        }
        let mut workloads = self.workloads;
        if !self.controllers_listed {
            // Inferred from the pods: one workload per (kind, name) they name.
            let mut seen = std::collections::BTreeSet::new();
            for (ns, pod) in &resolved {
                if seen.insert((ns.clone(), pod.workload_kind.clone(), pod.workload.clone())) {
                    workloads.push((
                        ns.clone(),
                        Workload {
                            kind: pod.workload_kind.clone(),
                            name: pod.workload.clone(),
                            owner: None,
                            desired: None,
                            ready: None,
                            schedule: None,
                            images: Vec::new(),
                            created: None,
                            pods: 0,
                            kubesec: None,
                        },
                    ));
                }
            }
        } else {
            // Bare pods are their own workloads.
            for (ns, pod) in &resolved {
                if pod.workload_kind == "Pod" {
                    workloads.push((
                        ns.clone(),
                        Workload {
                            kind: "Pod".into(),
                            name: pod.name.clone(),
                            owner: None,
                            desired: None,
                            ready: None,
                            schedule: None,
                            images: pod.containers.iter().map(|c| c.image.clone()).collect(),
                            created: pod.created,
                            pods: 0,
                            kubesec: pod.kubesec.clone(),
                        },
                    ));
                }
            }
        }
        for (ns, mut w) in workloads {
            w.pods = counts
                .get(&(ns.clone(), w.kind.clone(), w.name.clone()))
                .copied()
                .unwrap_or(0);
            out.entry(ns.clone())
                .or_insert_with(|| Namespace {
                    name: ns,
                    ..Namespace::default()
                })
                .workloads
                .push(w);
        }
        for (ns, pod) in resolved {
            out.entry(ns.clone())
                .or_insert_with(|| Namespace {
                    name: ns,
                    ..Namespace::default()
                })
                .pods
                .push(pod);
        }
        let mut v: Vec<Namespace> = out.into_values().collect();
        for ns in &mut v {
            ns.workloads
                .sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
            ns.pods.sort_by(|a, b| a.name.cmp(&b.name));
        }
        v
    }
}

fn truncated(s: &str) -> String {
    s.chars().take(63).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, owner: Option<(&str, &str)>) -> Pod {
        Pod {
            name: name.into(),
            workload_kind: owner.map_or("Pod", |o| o.0).into(),
            workload: owner.map_or(name, |o| o.1).into(),
            node: "n1".into(),
            phase: "Running".into(),
            created: None,
            containers: vec![],
            owner: owner.map(|(k, n)| (k.to_string(), n.to_string())),
            template_hash: None,
            kubesec: None,
        }
    }

    #[test]
    fn pods_belong_to_the_controllers_of_their_owners() {
        let mut o = Objects::default();
        o.add_page(br#"{"kind":"NamespaceList","items":[{"metadata":{"name":"shop","labels":{"team":"a"}}},{"metadata":{"name":"empty"}}]}"#).unwrap();
        o.add_page(br#"{"kind":"DeploymentList","items":[{"metadata":{"name":"api","namespace":"shop"},
            "spec":{"replicas":2,"template":{"spec":{"containers":[{"image":"shop/api:1"}]}}},"status":{"readyReplicas":1}}]}"#).unwrap();
        o.add_page(br#"{"kind":"ReplicaSetList","items":[{"metadata":{"name":"api-5f7c","namespace":"shop",
            "ownerReferences":[{"kind":"Deployment","name":"api","controller":true}]},"spec":{"replicas":2}}]}"#).unwrap();
        o.add_page(br#"{"kind":"CronJobList","items":[{"metadata":{"name":"report","namespace":"shop"},
            "spec":{"schedule":"0 * * * *","jobTemplate":{"spec":{"template":{"spec":{"containers":[{"image":"shop/report:2"}]}}}}}}]}"#).unwrap();
        o.add_page(br#"{"kind":"JobList","items":[{"metadata":{"name":"report-29001","namespace":"shop",
            "ownerReferences":[{"kind":"CronJob","name":"report","controller":true}]},"spec":{"completions":1},"status":{"succeeded":1}}]}"#).unwrap();
        o.pods = vec![
            (
                "shop".into(),
                pod("api-5f7c-a", Some(("ReplicaSet", "api-5f7c"))),
            ),
            (
                "shop".into(),
                pod("api-5f7c-b", Some(("ReplicaSet", "api-5f7c"))),
            ),
            (
                "shop".into(),
                pod("report-29001-x", Some(("Job", "report-29001"))),
            ),
            ("shop".into(), pod("debug", None)),
            ("other".into(), pod("lost-1", Some(("ReplicaSet", "gone")))),
        ];
        let v = o.into_namespaces();
        let names: Vec<&str> = v.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["empty", "other", "shop"]);
        let shop = &v[2];
        assert_eq!(shop.labels["team"], "a");
        let of = |p: &str| {
            let p = shop.pods.iter().find(|x| x.name == p).unwrap();
            format!("{}/{}", p.workload_kind, p.workload)
        };
        assert_eq!(of("api-5f7c-a"), "Deployment/api");
        assert_eq!(of("report-29001-x"), "CronJob/report");
        assert_eq!(of("debug"), "Pod/debug");
        let w = |k: &str, n: &str| shop.workloads.iter().find(|w| w.kind == k && w.name == n);
        let api = w("Deployment", "api").unwrap();
        assert_eq!((api.pods, api.desired, api.ready), (2, Some(2), Some(1)));
        assert_eq!(api.images, ["shop/api:1"]);
        assert_eq!(w("CronJob", "report").unwrap().pods, 1);
        assert_eq!(
            w("CronJob", "report").unwrap().schedule.as_deref(),
            Some("0 * * * *")
        );
        assert_eq!(w("Pod", "debug").unwrap().pods, 1);
        assert_eq!(w("ReplicaSet", "api-5f7c").unwrap().pods, 0);
        // An owner the lists do not hold stays the pod's workload.
        assert_eq!(v[1].pods[0].workload, "gone");
    }

    #[test]
    fn uploaded_pods_infer_their_workloads() {
        let o = Objects {
            pods: vec![
                ("a".into(), pod("web-1", Some(("Deployment", "web")))),
                ("a".into(), pod("web-2", Some(("Deployment", "web")))),
                ("a".into(), pod("solo", None)),
            ],
            ..Objects::default()
        };
        let v = o.into_namespaces();
        let w: Vec<(String, usize)> = v[0]
            .workloads
            .iter()
            .map(|w| (format!("{}/{}", w.kind, w.name), w.pods))
            .collect();
        assert_eq!(w, [("Deployment/web".into(), 2), ("Pod/solo".into(), 1)]);
    }

    #[test]
    fn lists_that_are_not_inventory_are_refused() {
        let mut o = Objects::default();
        for bad in [
            &b"{"[..],
            br#"{"kind":"SecretList","items":[]}"#,
            br#"{"kind":"DeploymentList","items":[{"metadata":{"name":"a/b","namespace":"x"}}]}"#,
            br#"{"kind":"NamespaceList","items":[{"metadata":{"name":""}}]}"#,
        ] {
            assert!(o.add_page(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
