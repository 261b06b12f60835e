//! The audits' JSON: m9sweeper's upload paths for kube-bench and kube-hunter, the runs of a
//! cluster, waivers, CSV of a run, and the manifests that run the tools.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{bench, hunter, manifests};
use crate::http::listing::{csv, csv_response};
use crate::http::{client_ip, ApiError, AppState, Auth, Perm, Principal, Routes};
use crate::store::Store;

/// Largest report accepted (a full kube-bench run is a few hundred KiB).
pub const MAX_REPORT_BYTES: usize = 16 << 20;
/// Runs listed at most.
const LIST_LIMIT: usize = 1_000;

/// Registers the audit routes and pages.
pub fn routes(r: &mut Routes) {
    // m9sweeper's paths, with and without the trailing slash its wizard prints.
    for path in ["/api/kube-bench/{cluster}", "/api/kube-bench/{cluster}/"] {
        r.api(Method::POST, path, Perm::UploadKubeBench, upload_bench);
    }
    for path in [
        "/api/kubehunter/hunter/{cluster}",
        "/api/kubehunter/hunter/{cluster}/",
    ] {
        r.api(Method::POST, path, Perm::UploadKubeHunter, upload_hunter);
    }
    r.api(
        Method::GET,
        "/api/v1/clusters/{id}/kube-bench",
        Perm::Read,
        list_bench,
    );
    r.api(
        Method::GET,
        "/api/v1/clusters/{id}/kube-bench/waivers",
        Perm::Read,
        list_waivers,
    );
    r.api(
        Method::POST,
        "/api/v1/clusters/{id}/kube-bench/waivers",
        Perm::Write,
        add_waiver,
    );
    r.api(
        Method::DELETE,
        "/api/v1/clusters/{id}/kube-bench/waivers/{check}",
        Perm::Write,
        delete_waiver,
    );
    r.api(
        Method::GET,
        "/api/v1/clusters/{id}/kube-bench/{run}",
        Perm::Read,
        get_bench,
    );
    r.api(
        Method::GET,
        "/api/v1/clusters/{id}/kube-hunter",
        Perm::Read,
        list_hunter,
    );
    r.api(
        Method::GET,
        "/api/v1/clusters/{id}/kube-hunter/{run}",
        Perm::Read,
        get_hunter,
    );
    r.api(
        Method::POST,
        "/api/v1/clusters/{id}/audit-manifests",
        Perm::Write,
        api_manifests,
    );
    super::pages::routes(r);
}

/// The cluster an upload names (by id or name); 404 when there is none.
fn cluster_named(store: &Store, name_or_id: &str) -> Result<crate::clusters::Cluster, ApiError> {
    crate::compliance::service::find_cluster(store, name_or_id).map_err(|_| {
        ApiError::not_found(format!(
            "cluster '{}' not found",
            name_or_id.chars().take(100).collect::<String>()
        ))
    })
}

/// Sets cluster `id`'s gauges after a change.
pub(super) fn refresh_metrics(state: &AppState) -> impl Fn(&Store, u64) + Send + 'static {
    let m = state.domains.get::<super::metrics::AuditMetrics>();
    move |s: &Store, id: u64| {
        if let (Some(m), Ok(c)) = (&m, crate::clusters::get(s, id)) {
            m.refresh(s, id, &c.name);
        }
    }
}

/// Cluster `id`, or 404.
pub(super) fn cluster(store: &Store, id: u64) -> Result<crate::clusters::Cluster, ApiError> {
    crate::clusters::get(store, id).map_err(ApiError::from)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UploadQuery {
    node: Option<String>,
}

async fn upload_bench(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    name: web::Path<String>,
    q: web::Query<UploadQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = crate::http::read_body(&req, payload, MAX_REPORT_BYTES).await?;
    let (name, node, ip) = (name.into_inner(), q.into_inner().node, client_ip(&req));
    let refresh = refresh_metrics(&state);
    let search = state.search.clone();
    let run = state
        .with_store(move |s| {
            let c = cluster_named(s, &name)?;
            let run = bench::store(s, &p.email, &ip, c.id, node.as_deref(), &body)?;
            refresh(s, c.id);
            super::search::index_bench(&search, s, c.id, &run);
            Ok::<_, ApiError>(run)
        })
        .await?;
    Ok(HttpResponse::Created().json(json!({
        "id": run.id, "cluster": run.cluster, "uploaded_at": run.uploaded_at,
        "node": run.node, "totals": run.totals,
    })))
}

async fn upload_hunter(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = crate::http::read_body(&req, payload, MAX_REPORT_BYTES).await?;
    let (name, ip) = (name.into_inner(), client_ip(&req));
    let refresh = refresh_metrics(&state);
    let search = state.search.clone();
    let run = state
        .with_store(move |s| {
            let c = cluster_named(s, &name)?;
            let run = hunter::store(s, &p.email, &ip, c.id, &body)?;
            refresh(s, c.id);
            super::search::index_hunter(&search, s, c.id, &run);
            Ok::<_, ApiError>(run)
        })
        .await?;
    Ok(HttpResponse::Created().json(json!({
        "id": run.id, "cluster": run.cluster, "uploaded_at": run.uploaded_at,
        "counts": run.counts,
    })))
}

async fn list_bench(
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let items = state
        .with_store(move |s| {
            cluster(s, id)?;
            let runs = bench::summaries(s, id, LIST_LIMIT)?;
            Ok::<_, ApiError>(bench::lines(&runs, &bench::waivers(s, id)?))
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Format {
    format: String,
}

async fn get_bench(
    state: web::Data<AppState>,
    path: web::Path<(u64, u64)>,
    f: web::Query<Format>,
) -> Result<HttpResponse, ApiError> {
    let (id, run_id) = path.into_inner();
    let (run, previous, waivers) = state
        .with_store(move |s| {
            cluster(s, id)?;
            let run = bench::run(s, id, run_id)?;
            let previous = bench::previous(s, &run)?;
            Ok::<_, ApiError>((run, previous, bench::waivers(s, id)?))
        })
        .await?;
    let today = chrono::Utc::now().date_naive();
    let waived = |check: &str| waivers.get(check).filter(|w| w.holds(today));
    if f.format == "csv" {
        let rows = run.checks().map(|(c, s, k)| {
            vec![
                c.id.clone(),
                s.id.clone(),
                k.id.clone(),
                k.text.clone(),
                k.status.clone(),
                k.scored.to_string(),
                waived(&k.id).map_or(String::new(), |w| w.reason.clone()),
                k.remediation.clone(),
            ]
        });
        return Ok(run_csv(
            "kube-bench",
            &run.cluster,
            run_id,
            &[
                "control",
                "section",
                "check",
                "text",
                "status",
                "scored",
                "waived",
                "remediation",
            ],
            rows,
        ));
    }
    let changes = previous.as_ref().map(|p| bench::diff(p, &run));
    let waived_ids: Vec<&String> = run
        .checks()
        .filter(|(_, _, k)| k.status == "FAIL" && waived(&k.id).is_some())
        .map(|(_, _, k)| &k.id)
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "id": run.id, "cluster": run.cluster, "uploaded_at": run.uploaded_at, "node": run.node,
        "version": run.version(), "totals": run.totals, "controls": run.controls,
        "waived": waived_ids,
        "previous": previous.map(|p| p.id), "changes": changes,
    })))
}

async fn list_waivers(
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let items = state
        .with_store(move |s| {
            cluster(s, id)?;
            Ok::<_, ApiError>(bench::waivers(s, id)?.into_values().collect::<Vec<_>>())
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

async fn add_waiver(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    body: web::Json<bench::NewWaiver>,
) -> Result<HttpResponse, ApiError> {
    let (id, ip) = (id.into_inner(), client_ip(&req));
    let refresh = refresh_metrics(&state);
    let w = state
        .with_store(move |s| {
            cluster(s, id)?;
            let w = bench::waive(s, &p.email, &ip, id, body.into_inner())?;
            refresh(s, id);
            Ok::<_, ApiError>(w)
        })
        .await?;
    Ok(HttpResponse::Created().json(w))
}

async fn delete_waiver(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    path: web::Path<(u64, String)>,
) -> Result<HttpResponse, ApiError> {
    let ((id, check), ip) = (path.into_inner(), client_ip(&req));
    let refresh = refresh_metrics(&state);
    state
        .with_store(move |s| {
            cluster(s, id)?;
            bench::unwaive(s, &p.email, &ip, id, &check)?;
            refresh(s, id);
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_hunter(
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let items = state
        .with_store(move |s| {
            cluster(s, id)?;
            Ok::<_, ApiError>(hunter::lines(s, id, LIST_LIMIT)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

async fn get_hunter(
    state: web::Data<AppState>,
    path: web::Path<(u64, u64)>,
    f: web::Query<Format>,
) -> Result<HttpResponse, ApiError> {
    let (id, run_id) = path.into_inner();
    let run = state
        .with_store(move |s| {
            cluster(s, id)?;
            Ok::<_, ApiError>(hunter::run(s, id, run_id)?)
        })
        .await?;
    if f.format == "csv" {
        let rows = run.vulnerabilities.iter().map(|v| {
            vec![
                v.vid.clone(),
                v.severity.clone(),
                v.vulnerability.clone(),
                v.category.clone(),
                v.location.clone(),
                v.hunter.clone(),
                v.evidence.clone(),
                v.link().unwrap_or_default(),
            ]
        });
        return Ok(run_csv(
            "kube-hunter",
            &run.cluster,
            run_id,
            &[
                "vid",
                "severity",
                "vulnerability",
                "category",
                "location",
                "hunter",
                "evidence",
                "link",
            ],
            rows,
        ));
    }
    let vulns: Vec<serde_json::Value> = run
        .vulnerabilities
        .iter()
        .map(|v| {
            let mut o = serde_json::to_value(v).unwrap_or_default();
            o["link"] = json!(v.link());
            o
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "id": run.id, "cluster": run.cluster, "uploaded_at": run.uploaded_at,
        "counts": run.counts, "nodes": run.nodes, "services": run.services,
        "vulnerabilities": vulns,
    })))
}

/// Generates the manifests for a tool, with a new API key holding only that tool's scope,
/// owned by the caller (revocable under API keys like any other).
pub(super) fn make_manifests(
    store: &Store,
    p: &Principal,
    ip: &str,
    id: u64,
    mut req: manifests::Request,
) -> Result<String, ApiError> {
    req.validate()?;
    let c = cluster(store, id)?;
    let scope = if req.tool == "kube-bench" {
        crate::http::Scope::KubeBench
    } else {
        crate::http::Scope::KubeHunter
    };
    let actor = crate::http::Actor::of(p, ip.to_string());
    let key = crate::auth::create_api_key(
        store,
        &actor,
        p.user_id,
        &format!("{} for cluster {}", req.tool, c.name),
        &[scope],
    )
    .map_err(ApiError::from)?;
    Ok(manifests::render(&req, &c.name, &key.key)?)
}

async fn api_manifests(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    body: web::Json<manifests::Request>,
) -> Result<HttpResponse, ApiError> {
    let (id, ip) = (id.into_inner(), client_ip(&req));
    let yaml = state
        .with_store(move |s| make_manifests(s, &p, &ip, id, body.into_inner()))
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/yaml")
        .body(yaml))
}

/// One run as a CSV download named `{tool}-{cluster}-{run}.csv`.
fn run_csv(
    tool: &str,
    cluster: &impl std::fmt::Display,
    run: u64,
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> HttpResponse {
    csv_response(&format!("{tool}-{cluster}-{run}"), csv(header, rows))
}
