//! The inventory's JSON: a cluster's namespaces with their pod compliance, a namespace's
//! workloads and pods, one pod's images and why, the daily history, and the workloads.

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::verdicts::{self, Figures};
use super::{Namespace, Summary};
use crate::admission::index::Snapshot;
use crate::admission::Admission;
use crate::clusters::Cluster;
use crate::http::listing::{csv, csv_response};
use crate::http::{ApiError, AppState, Perm, Routes};
use crate::store::Store;

/// Registers the inventory's routes and pages.
pub fn routes(r: &mut Routes) {
    r.api(
        Method::GET,
        "/api/v1/clusters/{id}/inventory",
        Perm::Read,
        api_inventory,
    );
    r.api(
        Method::GET,
        "/api/v1/clusters/{id}/namespaces/{ns}",
        Perm::Read,
        api_namespace,
    );
    r.api(
        Method::GET,
        "/api/v1/clusters/{id}/namespaces/{ns}/pods/{pod}",
        Perm::Read,
        api_pod,
    );
    r.api(
        Method::GET,
        "/api/v1/clusters/{id}/namespaces/{ns}/kubesec/{kind}/{name}",
        Perm::Read,
        api_kubesec,
    );
    r.api(
        Method::GET,
        "/api/v1/clusters/{id}/workloads",
        Perm::Read,
        api_workloads,
    );
    r.api(
        Method::GET,
        "/api/v1/clusters/{id}/pod-compliance",
        Perm::Read,
        api_history,
    );
    super::pages::routes(r);
}

/// A namespace's line in the cluster's list.
#[derive(Debug, Serialize)]
pub struct NamespaceLine {
    pub name: String,
    pub workloads: usize,
    pub pods: usize,
    #[serde(flatten)]
    pub figures: Figures,
}

/// A cluster's inventory, judged now.
pub struct Judged {
    pub cluster: Arc<Cluster>,
    pub summary: Option<Summary>,
    pub totals: Figures,
    pub namespaces: Vec<NamespaceLine>,
}

/// The snapshot admission decides from and cluster `id` in it (404 when there is none).
pub(super) fn snapshot(
    admission: &Admission,
    id: u64,
) -> Result<(Arc<Snapshot>, Arc<Cluster>), ApiError> {
    let snap = admission.index.refresh()?;
    let cluster = snap
        .cluster(&id.to_string())
        .ok_or_else(|| ApiError::not_found(format!("cluster {id} not found")))?;
    Ok((snap, cluster))
}

/// Cluster `id`'s namespaces judged now; today's history record is written when missing, so a
/// new cluster's trend starts at its first look.
pub(super) fn judge_cluster(
    store: &Store,
    admission: &Admission,
    metrics: Option<&verdicts::PodMetrics>,
    id: u64,
) -> Result<Judged, ApiError> {
    let (snap, cluster) = snapshot(admission, id)?;
    let namespaces = super::namespaces(store, id)?;
    let day = verdicts::compute_with(&snap, &cluster, &namespaces);
    let summary = super::summary(store, id)?;
    if let (Some(m), Some(_)) = (metrics, &summary) {
        m.set(&cluster.name, &day.totals);
    }
    if summary.is_some() {
        let today = day.at.date_naive();
        let recorded = verdicts::history(store, id, 1)?
            .iter()
            .any(|d| d.at.date_naive() == today);
        if !recorded {
            verdicts::save(store, &day)?;
        }
    }
    let lines = namespaces
        .iter()
        .map(|ns| NamespaceLine {
            name: ns.name.clone(),
            workloads: ns.workloads.len(),
            pods: ns.pods.len(),
            figures: day.namespaces.get(&ns.name).copied().unwrap_or_default(),
        })
        .collect();
    Ok(Judged {
        cluster,
        summary,
        totals: day.totals,
        namespaces: lines,
    })
}

async fn api_inventory(
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let (id, admission) = (id.into_inner(), crate::admission::of(&state)?);
    let metrics = state.domains.get::<verdicts::PodMetrics>();
    let j = state
        .with_store(move |s| judge_cluster(s, &admission, metrics.as_deref(), id))
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "cluster": j.cluster.id,
        "summary": j.summary,
        "totals": j.totals,
        "namespaces": j.namespaces,
    })))
}

/// A namespace with its pods judged.
pub(super) fn judge_namespace(
    store: &Store,
    admission: &Admission,
    id: u64,
    ns: &str,
) -> Result<(Arc<Cluster>, Namespace, Figures, Vec<verdicts::PodVerdict>), ApiError> {
    let (snap, cluster) = snapshot(admission, id)?;
    let namespace = super::namespace(store, id, ns)?;
    let (figures, verdicts) = verdicts::judge_namespace(&snap, &cluster, &namespace);
    Ok((cluster, namespace, figures, verdicts))
}

async fn api_namespace(
    state: web::Data<AppState>,
    path: web::Path<(u64, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, ns) = path.into_inner();
    let admission = crate::admission::of(&state)?;
    let (_, namespace, figures, verdicts) = state
        .with_store(move |s| judge_namespace(s, &admission, id, &ns))
        .await?;
    let pods: Vec<serde_json::Value> = namespace
        .pods
        .iter()
        .zip(&verdicts)
        .map(|(p, v)| {
            let mut o = serde_json::to_value(p).unwrap_or_default();
            o["compliant"] = json!(v.compliant);
            o["reasons"] = json!(v.reasons);
            o
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "cluster": id,
        "name": namespace.name,
        "labels": namespace.labels,
        "figures": figures,
        "workloads": namespace.workloads,
        "pods": pods,
    })))
}

/// One pod and the verdict of each of its images.
pub(super) fn judge_pod(
    store: &Store,
    admission: &Admission,
    id: u64,
    ns: &str,
    pod: &str,
) -> Result<(Arc<Cluster>, super::Pod, verdicts::PodVerdict), ApiError> {
    let (snap, cluster) = snapshot(admission, id)?;
    let namespace = super::namespace(store, id, ns)?;
    let p = namespace
        .pods
        .into_iter()
        .find(|p| p.name == pod)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no pod '{}' in namespace '{ns}'",
                pod.chars().take(63).collect::<String>()
            ))
        })?;
    let v = verdicts::judge_pod(&snap, &cluster, ns, &p);
    Ok((cluster, p, v))
}

/// The last Gatekeeper audit's violations of a pod and of its workload.
pub(super) fn gatekeeper_of(
    store: &Store,
    cluster: u64,
    namespace: &str,
    pod: &super::Pod,
) -> Result<Vec<crate::gatekeeper::audit::Finding>, ApiError> {
    Ok(crate::gatekeeper::audit::findings_of(
        store,
        cluster,
        namespace,
        &[("Pod", &pod.name), (&pod.workload_kind, &pod.workload)],
    )?)
}

async fn api_pod(
    state: web::Data<AppState>,
    path: web::Path<(u64, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, ns, pod) = path.into_inner();
    let admission = crate::admission::of(&state)?;
    let namespace = ns.clone();
    let (_, p, v, gatekeeper) = state
        .with_store(move |s| {
            let (c, p, v) = judge_pod(s, &admission, id, &namespace, &pod)?;
            let g = gatekeeper_of(s, id, &namespace, &p)?;
            Ok::<_, ApiError>((c, p, v, g))
        })
        .await?;
    let mut o = serde_json::to_value(&p).unwrap_or_default();
    o["namespace"] = json!(ns);
    o["compliant"] = json!(v.compliant);
    o["reasons"] = json!(v.reasons);
    o["images"] = json!(v.images);
    o["gatekeeper"] = json!(gatekeeper);
    Ok(HttpResponse::Ok().json(o))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WorkloadQuery {
    namespace: String,
    kind: String,
    /// `csv` for a spreadsheet, else JSON.
    format: String,
}

async fn api_workloads(
    state: web::Data<AppState>,
    id: web::Path<u64>,
    q: web::Query<WorkloadQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, q) = (id.into_inner(), q.into_inner());
    let admission = crate::admission::of(&state)?;
    let csv = q.format == "csv";
    let (cluster, found) = state
        .with_store(move |s| {
            let cluster = snapshot(&admission, id)?.1;
            let mut found = Vec::new();
            for ns in super::namespaces(s, id)? {
                if !q.namespace.is_empty() && ns.name != q.namespace {
                    continue;
                }
                for w in ns.workloads {
                    if q.kind.is_empty() || w.kind.eq_ignore_ascii_case(&q.kind) {
                        found.push((ns.name.clone(), w));
                    }
                }
            }
            Ok::<_, ApiError>((cluster.name.clone(), found))
        })
        .await?;
    if csv {
        return Ok(workloads_csv(&cluster, &found));
    }
    let items: Vec<_> = found
        .into_iter()
        .map(|(ns, w)| {
            let mut o = serde_json::to_value(&w).unwrap_or_default();
            o["namespace"] = json!(ns);
            o
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// One line per workload: where it runs, its pods, images and KubeSec score.
fn workloads_csv(cluster: &str, found: &[(String, super::Workload)]) -> HttpResponse {
    let rows = found.iter().map(|(ns, w)| {
        let kubesec = w.kubesec.as_ref();
        vec![
            ns.clone(),
            w.kind.clone(),
            w.name.clone(),
            w.desired.map_or(String::new(), |n| n.to_string()),
            w.ready.map_or(String::new(), |n| n.to_string()),
            w.pods.to_string(),
            w.images.join(" "),
            kubesec.map_or(String::new(), |k| k.score.to_string()),
            kubesec.map_or(String::new(), |k| k.critical.join(" ")),
        ]
    });
    let body = csv(
        &[
            "namespace",
            "kind",
            "name",
            "desired",
            "ready",
            "pods",
            "images",
            "kubesec_score",
            "kubesec_critical",
        ],
        rows,
    );
    csv_response(&format!("workloads-{cluster}"), body)
}

#[derive(Deserialize)]
struct HistoryQuery {
    #[serde(default = "thirty")]
    days: i64,
}

fn thirty() -> i64 {
    30
}

async fn api_history(
    state: web::Data<AppState>,
    id: web::Path<u64>,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if !(1..=400).contains(&q.days) {
        return Err(ApiError::bad_request("days: from 1 to 400"));
    }
    let days = q.days;
    let admission = crate::admission::of(&state)?;
    let items = state
        .with_store(move |s| {
            snapshot(&admission, id)?;
            Ok::<_, ApiError>(verdicts::history(s, id, days)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// The kubesec report of workload `kind`/`name` in namespace `ns` of cluster `id`.
pub(super) fn kubesec_report(
    store: &Store,
    id: u64,
    ns: &str,
    kind: &str,
    name: &str,
) -> Result<crate::kubesec::Report, ApiError> {
    let namespace = super::namespace(store, id, ns)?;
    let w = namespace
        .workloads
        .iter()
        .find(|w| w.kind == kind && w.name == name)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no {} '{}' in namespace '{ns}'",
                kind.chars().take(32).collect::<String>(),
                name.chars().take(63).collect::<String>()
            ))
        })?;
    let summary = w.kubesec.as_ref().ok_or_else(|| {
        ApiError::not_found(format!(
            "{kind} {name} has no pod template in the inventory (it came from an uploaded pod list)"
        ))
    })?;
    Ok(summary.report(&format!("{kind}/{name}.{ns}")))
}

async fn api_kubesec(
    state: web::Data<AppState>,
    path: web::Path<(u64, String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, ns, kind, name) = path.into_inner();
    let report = state
        .with_store(move |s| kubesec_report(s, id, &ns, &kind, &name))
        .await?;
    Ok(HttpResponse::Ok().json([report]))
}
