//! Compliance API: scan ingest, policies, exceptions, images with their verdicts.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::model::ExceptionStatus;
use super::service::{self as svc, Actor, ExceptionInput, PolicyInput};
use crate::http::listing::{self, ListQuery, Order, SortKey, Sorting};
use crate::http::{ApiError, AppState, Auth, Perm, Principal, Routes};
use crate::images;

/// Registers the compliance API (pages are in `pages`).
pub fn routes(r: &mut Routes) {
    r.api(Method::POST, "/api/v1/scans", Perm::UploadScan, api_ingest);
    r.api(Method::GET, "/api/v1/policies", Perm::Read, api_policies);
    r.api(
        Method::POST,
        "/api/v1/policies",
        Perm::Write,
        api_create_policy,
    );
    r.api(Method::GET, "/api/v1/policies/{id}", Perm::Read, api_policy);
    r.api(
        Method::PUT,
        "/api/v1/policies/{id}",
        Perm::Write,
        api_update_policy,
    );
    r.api(
        Method::DELETE,
        "/api/v1/policies/{id}",
        Perm::Write,
        api_delete_policy,
    );
    r.api(
        Method::GET,
        "/api/v1/exceptions",
        Perm::Read,
        api_exceptions,
    );
    r.api(
        Method::POST,
        "/api/v1/exceptions",
        Perm::Request,
        api_create_exception,
    );
    r.api(
        Method::GET,
        "/api/v1/exceptions/{id}",
        Perm::Read,
        api_exception,
    );
    r.api(
        Method::PUT,
        "/api/v1/exceptions/{id}",
        Perm::Write,
        api_update_exception,
    );
    r.api(
        Method::DELETE,
        "/api/v1/exceptions/{id}",
        Perm::Write,
        api_delete_exception,
    );
    r.api(
        Method::POST,
        "/api/v1/exceptions/{id}/approve",
        Perm::Write,
        api_approve,
    );
    r.api(
        Method::POST,
        "/api/v1/exceptions/{id}/reject",
        Perm::Write,
        api_reject,
    );
    r.api(
        Method::POST,
        "/api/v1/exceptions/{id}/comments",
        Perm::Request,
        api_comment,
    );
    r.api(Method::GET, "/api/v1/images", Perm::Read, api_images);
    r.api(Method::GET, "/api/v1/images/queue", Perm::Read, api_queue);
    r.api(Method::GET, "/api/v1/images/{id}", Perm::Read, api_image);
    r.api(
        Method::GET,
        "/api/v1/images/{id}/findings",
        Perm::Read,
        api_image_findings,
    );
}

#[derive(Deserialize)]
struct IngestQuery {
    cluster: Option<String>,
    image: Option<String>,
}

async fn api_ingest(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    q: web::Query<IngestQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let search = state.search.clone();
    let q = q.into_inner();
    let cluster = q
        .cluster
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("?cluster=NAME is required"))?;
    let image = q
        .image
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("?image=REF is required"))?;
    let body = crate::http::read_body(&req, payload, state.config.http.max_scan_bytes).await?;
    let actor = p.actor();
    let result = state
        .store
        .run(move |s| {
            let r =
                svc::ingest_trivy(s, &actor, &cluster, &image, &body).map_err(ApiError::from)?;
            super::search::reindex_image(&search, s, r.image.id);
            Ok::<_, ApiError>(r)
        })
        .await?;
    Ok(HttpResponse::Ok().json(result))
}

async fn api_policies(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let items = state.with_store(svc::list_policies).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

async fn api_policy(
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let p = state.with_store(move |s| svc::get_policy(s, id)).await?;
    Ok(HttpResponse::Ok().json(p))
}

async fn api_create_policy(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    body: web::Json<PolicyInput>,
) -> Result<HttpResponse, ApiError> {
    let (a, b) = (Actor::from_request(&p, &req), body.into_inner());
    let policy = state
        .with_store(move |s| svc::create_policy(s, &a, b))
        .await?;
    Ok(HttpResponse::Created().json(policy))
}

async fn api_update_policy(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    body: web::Json<PolicyInput>,
) -> Result<HttpResponse, ApiError> {
    let (a, id, b) = (
        Actor::from_request(&p, &req),
        id.into_inner(),
        body.into_inner(),
    );
    let policy = state
        .with_store(move |s| svc::update_policy(s, &a, id, b))
        .await?;
    Ok(HttpResponse::Ok().json(policy))
}

async fn api_delete_policy(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let (a, id) = (Actor::from_request(&p, &req), id.into_inner());
    state
        .with_store(move |s| svc::delete_policy(s, &a, id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ExceptionQuery {
    status: Option<ExceptionStatus>,
    temporary: Option<bool>,
}

/// Exceptions, filtered by `status` and `temporary`, paged and sortable (newest first by
/// default); CSV with `?format=csv`.
async fn api_exceptions(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<ExceptionQuery>,
) -> Result<HttpResponse, ApiError> {
    let list = ListQuery::of(&req)?;
    let order = super::pages::exceptions::SORTING.pick(&list)?;
    let q = q.into_inner();
    let all = state.with_store(svc::list_exceptions).await?;
    let items: Vec<_> = all
        .into_iter()
        .filter(|e| q.status.is_none_or(|s| e.status == s))
        .filter(|e| q.temporary.is_none_or(|t| e.temporary == t))
        .collect();
    let (items, next) = listing::page(items, &order, &list, |e| {
        super::pages::exceptions::exception_key(&order, e)
    })?;
    if list.wants_csv(&req) {
        let rows = items.iter().map(|e| {
            vec![
                e.id.to_string(),
                e.title.clone(),
                e.status.as_str().to_string(),
                format!("{:?}", e.kind).to_lowercase(),
                e.issue_id.clone(),
                e.image_match.as_str().to_string(),
                e.start_date.map(|d| d.to_string()).unwrap_or_default(),
                e.end_date.map(|d| d.to_string()).unwrap_or_default(),
                e.reason.clone(),
            ]
        });
        return Ok(listing::csv_response(
            "bulwark-exceptions",
            listing::csv(
                &[
                    "id",
                    "title",
                    "status",
                    "type",
                    "issue_id",
                    "image_match",
                    "start_date",
                    "end_date",
                    "reason",
                ],
                rows,
            ),
        ));
    }
    Ok(listing::json_page(items, next))
}

async fn api_exception(
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let e = state.with_store(move |s| svc::get_exception(s, id)).await?;
    Ok(HttpResponse::Ok().json(e))
}

async fn api_create_exception(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    body: web::Json<ExceptionInput>,
) -> Result<HttpResponse, ApiError> {
    let search = state.search.clone();
    let (a, b) = (Actor::from_request(&p, &req), body.into_inner());
    let e = state
        .store
        .run(move |s| {
            let e = svc::create_exception(s, &a, b).map_err(ApiError::from)?;
            super::search::reindex_exception(&search, e.id, Some(&e));
            Ok::<_, ApiError>(e)
        })
        .await?;
    Ok(HttpResponse::Created().json(e))
}

async fn api_update_exception(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    body: web::Json<ExceptionInput>,
) -> Result<HttpResponse, ApiError> {
    let search = state.search.clone();
    let (a, id, b) = (
        Actor::from_request(&p, &req),
        id.into_inner(),
        body.into_inner(),
    );
    let e = state
        .store
        .run(move |s| {
            let e = svc::update_exception(s, &a, id, b).map_err(ApiError::from)?;
            super::search::reindex_exception(&search, e.id, Some(&e));
            Ok::<_, ApiError>(e)
        })
        .await?;
    Ok(HttpResponse::Ok().json(e))
}

async fn api_delete_exception(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let search = state.search.clone();
    let (a, id) = (Actor::from_request(&p, &req), id.into_inner());
    state
        .store
        .run(move |s| {
            let e = svc::delete_exception(s, &a, id).map_err(ApiError::from)?;
            super::search::reindex_exception(&search, e.id, None);
            Ok::<_, ApiError>(e)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn set_status(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    id: u64,
    status: ExceptionStatus,
) -> Result<HttpResponse, ApiError> {
    let search = state.search.clone();
    let a = Actor::from_request(&p, &req);
    let e = state
        .store
        .run(move |s| {
            let e = svc::set_exception_status(s, &a, id, status).map_err(ApiError::from)?;
            super::search::reindex_exception(&search, e.id, Some(&e));
            Ok::<_, ApiError>(e)
        })
        .await?;
    Ok(HttpResponse::Ok().json(e))
}

async fn api_approve(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    set_status(state, req, p, id.into_inner(), ExceptionStatus::Active).await
}

async fn api_reject(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    set_status(state, req, p, id.into_inner(), ExceptionStatus::Inactive).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    text: String,
}

async fn api_comment(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    body: web::Json<CommentBody>,
) -> Result<HttpResponse, ApiError> {
    let search = state.search.clone();
    let (a, id, text) = (
        Actor::from_request(&p, &req),
        id.into_inner(),
        body.into_inner().text,
    );
    let e = state
        .store
        .run(move |s| {
            let e = svc::comment_exception(s, &a, id, &text).map_err(ApiError::from)?;
            super::search::reindex_exception(&search, e.id, Some(&e));
            Ok::<_, ApiError>(e)
        })
        .await?;
    Ok(HttpResponse::Created().json(e))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ImageQuery {
    cluster: Option<String>,
    q: Option<String>,
    namespace: Option<String>,
}

/// Columns `/api/v1/images` sorts by.
const IMAGE_SORTING: Sorting = Sorting {
    columns: &[
        ("name", false),
        ("last_seen", true),
        ("critical", true),
        ("high", true),
        ("findings", true),
        ("id", false),
    ],
    default: "name",
};

fn image_key(order: &Order, i: &images::Image) -> (SortKey, u64) {
    let counts = i
        .last_scan
        .as_ref()
        .map(|s| s.counts.clone())
        .unwrap_or_default();
    let key = match order.column {
        "last_seen" => SortKey::Int(i.last_seen.timestamp_millis()),
        "critical" => counts.total(images::Severity::Critical).into(),
        "high" => counts.total(images::Severity::High).into(),
        "findings" => SortKey::Int(i.last_scan.as_ref().map(|s| s.findings as i64).unwrap_or(0)),
        "id" => SortKey::Int(i.id as i64),
        _ => i.name().into(),
    };
    (key, i.id)
}

/// Images, filtered by `cluster` and `q` (name or tag contains), paged and sortable; CSV with
/// `?format=csv`.
async fn api_images(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<ImageQuery>,
) -> Result<HttpResponse, ApiError> {
    let list = ListQuery::of(&req)?;
    let order = IMAGE_SORTING.pick(&list)?;
    let q = q.into_inner();
    let needle = q.q.unwrap_or_default().to_lowercase();
    let cluster = q.cluster;
    let cache = state
        .domains
        .get::<images::ListCache>()
        .ok_or_else(|| ApiError::internal("image list cache missing"))?;
    let (cluster, all) = state
        .store
        .run(move |s| {
            let cluster = cluster
                .map(|c| svc::find_cluster(s, &c))
                .transpose()
                .map_err(ApiError::from)?;
            Ok::<_, ApiError>((cluster, cache.get(s)?))
        })
        .await?;
    let items: Vec<&images::Image> = all
        .iter()
        .filter(|i| cluster.as_ref().is_none_or(|c| i.clusters.contains(&c.id)))
        .filter(|i| {
            needle.is_empty()
                || i.name().to_lowercase().contains(&needle)
                || i.tags.iter().any(|t| t.to_lowercase().contains(&needle))
        })
        .collect();
    let (items, next) = listing::page(items, &order, &list, |i| image_key(&order, i))?;
    if list.wants_csv(&req) {
        let rows = items.iter().map(|i| {
            let c = i
                .last_scan
                .as_ref()
                .map(|s| s.counts.clone())
                .unwrap_or_default();
            let n = |s: images::Severity| c.total(s).to_string();
            vec![
                i.id.to_string(),
                i.name(),
                i.digest.clone(),
                i.tags.join(" "),
                i.scan_state.describe(),
                i.last_seen.to_rfc3339(),
                n(images::Severity::Critical),
                n(images::Severity::High),
                n(images::Severity::Medium),
                n(images::Severity::Low),
            ]
        });
        return Ok(listing::csv_response(
            "bulwark-images",
            listing::csv(
                &[
                    "id",
                    "image",
                    "digest",
                    "tags",
                    "scan",
                    "last_seen",
                    "critical",
                    "high",
                    "medium",
                    "low",
                ],
                rows,
            ),
        ));
    }
    Ok(listing::json_page(items, next))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FindingQuery {
    severity: Option<String>,
    fixable: Option<bool>,
    q: Option<String>,
}

const FINDING_SORTING: Sorting = Sorting {
    columns: &[("severity", false), ("id", false), ("package", false)],
    default: "severity",
};

/// The findings of an image's latest scan: filtered by `severity`, `fixable` and `q` (id or
/// package contains), paged and sortable (most severe first by default); CSV with
/// `?format=csv`.
async fn api_image_findings(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<u64>,
    q: web::Query<FindingQuery>,
) -> Result<HttpResponse, ApiError> {
    let list = ListQuery::of(&req)?;
    let order = FINDING_SORTING.pick(&list)?;
    let (id, q) = (id.into_inner(), q.into_inner());
    let severity = q.severity.as_deref().map(images::Severity::parse);
    let needle = q.q.unwrap_or_default().to_lowercase();
    let scan = state
        .with_store(move |s| {
            images::get(s, id)?;
            Ok::<_, images::ImageError>(images::scan(s, id)?)
        })
        .await?;
    let findings: Vec<(u64, images::Finding)> = scan
        .map(|s| s.findings)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(n, f)| (n as u64, f))
        .filter(|(_, f)| severity.is_none_or(|s| f.severity == s))
        .filter(|(_, f)| q.fixable.is_none_or(|x| f.fixable == x))
        .filter(|(_, f)| {
            needle.is_empty()
                || f.id.to_lowercase().contains(&needle)
                || f.package.to_lowercase().contains(&needle)
        })
        .collect();
    let (items, next) = listing::page(findings, &order, &list, |(n, f)| {
        let key = match order.column {
            "id" => f.id.clone().into(),
            "package" => f.package.clone().into(),
            // The enum's order is most severe first.
            _ => SortKey::Int(f.severity as i64),
        };
        (key, *n)
    })?;
    if list.wants_csv(&req) {
        let rows = items.iter().map(|(_, f)| {
            vec![
                f.id.clone(),
                f.package.clone(),
                f.installed.clone(),
                f.fixed.clone(),
                f.severity.as_str().to_string(),
                f.severity_source.clone(),
                f.scanner.clone(),
                f.target.clone(),
                f.title.clone(),
            ]
        });
        return Ok(listing::csv_response(
            &format!("bulwark-image-{id}-findings"),
            listing::csv(
                &[
                    "id",
                    "package",
                    "installed",
                    "fixed",
                    "severity",
                    "severity_source",
                    "scanner",
                    "target",
                    "title",
                ],
                rows,
            ),
        ));
    }
    let items: Vec<images::Finding> = items.into_iter().map(|(_, f)| f).collect();
    Ok(listing::json_page(items, next))
}

/// What waits for a scan: images due for a rescan (or never scanned) and references seen by
/// admission before any scan, oldest first, so nothing is silently stuck.
async fn api_queue(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let body = state
        .store
        .run(|s| {
            let waiting: Vec<images::Image> = images::list(s)?
                .into_iter()
                .filter(|i| {
                    matches!(
                        i.scan_state,
                        images::ScanState::Queued { .. } | images::ScanState::Failed { .. }
                    )
                })
                .collect();
            let references = images::queue(s)?;
            let stats = images::queue_stats(s)?;
            Ok::<_, ApiError>(serde_json::json!({
                "images": waiting,
                "references": references,
                "max_references": images::MAX_QUEUED,
                "dropped": stats.dropped,
                "last_dropped": stats.last_dropped,
            }))
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}

async fn api_image(
    state: web::Data<AppState>,
    id: web::Path<u64>,
    q: web::Query<ImageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, q) = (id.into_inner(), q.into_inner());
    let body = state
        .store
        .run(move |s| {
            let image = images::get(s, id).map_err(ApiError::from)?;
            let cluster = match q.cluster {
                Some(c) => Some(svc::find_cluster(s, &c).map_err(ApiError::from)?.id),
                None => image.clusters.first().copied(),
            };
            let (verdict, scan) = match cluster {
                Some(c) => {
                    let (v, scan) = svc::verdict_for(s, &image, c, q.namespace.as_deref())?;
                    (Some(v), scan)
                }
                None => (None, images::scan(s, id)?),
            };
            Ok::<_, ApiError>(serde_json::json!({ "image": image, "cluster": cluster, "verdict": verdict, "scan": scan }))
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}
