//! The data-at-rest JSON: the sources (those added here stored with their secrets sealed), the
//! stored assets (filtered, or as CSV) and the runs. Crawls run as the `crawl` job (on its
//! schedule, or `POST /api/v1/jobs/crawl/run`).

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::managed::{self, View};
use super::store::{self, Stored};
use super::DarError;
use crate::http::{client_ip, ApiError, AppState, Auth, Perm, Routes};

impl From<DarError> for ApiError {
    fn from(e: DarError) -> Self {
        match e {
            DarError::Config(m) => ApiError::bad_request(m),
            DarError::Connect(m) | DarError::Query(m) => ApiError::new(
                actix_web::http::StatusCode::BAD_GATEWAY,
                "source_unavailable",
                m,
            ),
            DarError::NotFound(_) => ApiError::not_found(e.to_string()),
            DarError::Duplicate(_) => ApiError::conflict(e.to_string()),
            DarError::Store(m) => ApiError::internal(m),
        }
    }
}

/// Registers the routes.
pub fn routes(r: &mut Routes) {
    r.api(Method::GET, "/api/v1/dar/assets", Perm::Read, list_assets);
    r.api(Method::GET, "/api/v1/dar/runs", Perm::Read, list_runs);
    r.api(Method::GET, "/api/v1/dar/sources", Perm::Read, list_sources);
    r.api(
        Method::POST,
        "/api/v1/dar/sources",
        Perm::Write,
        create_source,
    );
    r.api(
        Method::PUT,
        "/api/v1/dar/sources/{name}",
        Perm::Write,
        update_source,
    );
    r.api(
        Method::DELETE,
        "/api/v1/dar/sources/{name}",
        Perm::Write,
        delete_source,
    );
    super::pages::routes(r);
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct AssetQuery {
    source: Option<String>,
    /// `any` (every asset with a finding), or one sensitivity (`high`, ...); empty: all.
    sensitivity: String,
    /// Words the asset's name must contain.
    q: String,
    format: String,
}

/// Sensitive first (high, medium, low, none), then by source and name.
fn order(s: &Stored) -> (u8, String, String) {
    let rank = match s.asset.sensitivity.as_str() {
        "high" => 0,
        "medium" => 1,
        "low" => 2,
        _ => 3,
    };
    (rank, s.asset.source.clone(), s.asset.asset.clone())
}

async fn list_assets(
    state: web::Data<AppState>,
    q: web::Query<AssetQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let source = q.source.clone();
    let mut items = state
        .with_store(move |s| Ok::<_, ApiError>(store::assets(s, source.as_deref())?))
        .await?;
    let words: Vec<String> = q.q.split_whitespace().map(str::to_lowercase).collect();
    items.retain(|s| {
        let a = &s.asset;
        (match q.sensitivity.as_str() {
            "" => true,
            "any" => !a.types.is_empty(),
            want => a.sensitivity == want,
        }) && words
            .iter()
            .all(|w| a.asset.to_lowercase().contains(w.as_str()))
    });
    items.sort_by_key(order);
    if q.format.eq_ignore_ascii_case("csv") {
        let rows = items.iter().map(|s| {
            let a = &s.asset;
            vec![
                a.source.clone(),
                a.asset.clone(),
                a.data_type.clone(),
                a.types.join(" "),
                a.hit_ratio.to_string(),
                a.sensitivity.clone(),
                a.masked_sample.clone().unwrap_or_default(),
                format!("{:?}", a.status).to_uppercase(),
                a.reason.clone(),
                s.first_seen.to_rfc3339(),
                s.last_seen.to_rfc3339(),
            ]
        });
        let body = crate::http::listing::csv(
            &[
                "source",
                "asset",
                "data_type",
                "types",
                "hit_ratio",
                "sensitivity",
                "masked_sample",
                "status",
                "reason",
                "first_seen",
                "last_seen",
            ],
            rows,
        );
        return Ok(crate::http::listing::csv_response("data-at-rest", body));
    }
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RunQuery {
    source: Option<String>,
    limit: Option<usize>,
}

async fn list_runs(
    state: web::Data<AppState>,
    q: web::Query<RunQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = q.limit.unwrap_or(100).clamp(1, 1_000);
    let items = state
        .with_store(move |s| Ok::<_, ApiError>(store::runs(s, q.source.as_deref(), limit)?))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// The configured sources (file and environment: shown, not editable here) and the ones added
/// in the console; `taken` holds the configured names.
pub(super) fn all_views(state: &AppState) -> Result<(Vec<View>, Vec<String>), DarError> {
    let env = std::env::vars().collect();
    let configured = super::sources::load(&state.config.crawl, &env)?;
    let taken = configured.iter().map(|s| s.name.clone()).collect();
    let mut views: Vec<View> = configured
        .iter()
        .map(|s| View::of(s, "configuration"))
        .collect();
    views.extend(managed::views(&state.store)?);
    Ok((views, taken))
}

async fn list_sources(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let st = state.clone();
    let (views, _) = state.with_store(move |_| all_views(&st)).await?;
    Ok(HttpResponse::Ok().json(json!({ "sources": views })))
}

/// Stores a source; `replacing` names the one an update replaces.
pub(super) async fn save_source(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    actor: String,
    body: serde_json::Value,
    replacing: Option<String>,
) -> Result<View, ApiError> {
    let (sealer, ip, st) = (state.sealer()?, client_ip(req), state.clone());
    let view = state
        .with_store(move |s| {
            let (_, taken) = all_views(&st)?;
            let env = std::env::vars().collect();
            managed::save(
                s,
                &sealer,
                &actor,
                &ip,
                body,
                replacing.as_deref(),
                &taken,
                &env,
            )
        })
        .await?;
    Ok(view)
}

async fn create_source(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let view = save_source(&state, &req, p.actor(), body.into_inner(), None).await?;
    Ok(HttpResponse::Created().json(view))
}

async fn update_source(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    name: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let name = Some(name.into_inner());
    let view = save_source(&state, &req, p.actor(), body.into_inner(), name).await?;
    Ok(HttpResponse::Ok().json(view))
}

async fn delete_source(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (actor, ip, name) = (p.actor(), client_ip(&req), name.into_inner());
    state
        .with_store(move |s| managed::delete(s, &actor, &ip, &name))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
