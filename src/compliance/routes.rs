//! Compliance API: scan ingest, policies, exceptions, images with their verdicts.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::model::ExceptionStatus;
use super::service::{self as svc, Actor, ExceptionInput, PolicyInput};
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

async fn api_exceptions(
    state: web::Data<AppState>,
    q: web::Query<ExceptionQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let all = state.with_store(svc::list_exceptions).await?;
    let items: Vec<_> = all
        .into_iter()
        .filter(|e| q.status.is_none_or(|s| e.status == s))
        .filter(|e| q.temporary.is_none_or(|t| e.temporary == t))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
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
    namespace: Option<String>,
}

async fn api_images(
    state: web::Data<AppState>,
    q: web::Query<ImageQuery>,
) -> Result<HttpResponse, ApiError> {
    let cluster = q.into_inner().cluster;
    let items = state
        .store
        .run(move |s| {
            let cluster = cluster
                .map(|c| svc::find_cluster(s, &c))
                .transpose()
                .map_err(ApiError::from)?;
            let images = images::list(s)?;
            Ok::<_, ApiError>(
                images
                    .into_iter()
                    .filter(|i| cluster.as_ref().is_none_or(|c| i.clusters.contains(&c.id)))
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
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
