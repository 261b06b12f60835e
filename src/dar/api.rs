//! The data-at-rest JSON: the stored assets (filtered, or as CSV) and the runs. Crawls run as
//! the `crawl` job (on its schedule, or `POST /api/v1/jobs/crawl/run`).

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::store::{self, Stored};
use super::DarError;
use crate::http::{ApiError, AppState, Perm, Routes};

impl From<DarError> for ApiError {
    fn from(e: DarError) -> Self {
        match e {
            DarError::Config(m) => ApiError::bad_request(m),
            DarError::Connect(m) | DarError::Query(m) => ApiError::new(
                actix_web::http::StatusCode::BAD_GATEWAY,
                "source_unavailable",
                m,
            ),
        }
    }
}

/// Registers the routes.
pub fn routes(r: &mut Routes) {
    r.api(Method::GET, "/api/v1/dar/assets", Perm::Read, list_assets);
    r.api(Method::GET, "/api/v1/dar/runs", Perm::Read, list_runs);
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
