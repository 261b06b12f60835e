//! Audit-log API (JSON and CSV) and page; super-admins only.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{Entry, Filter};
use crate::http::layout::{render, Layout};
use crate::http::{ApiError, AppState, Auth, Perm, Routes};

/// Registers the audit-log routes.
pub fn routes(r: &mut Routes) {
    r.api(Method::GET, "/api/v1/audit-log", Perm::SuperAdmin, api_list);
    r.page("/audit-log", Perm::SuperAdmin, page);
    r.nav(92, "Audit log", "/audit-log", Perm::SuperAdmin);
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Format {
    format: String,
}

async fn query(
    state: &web::Data<AppState>,
    f: Filter,
) -> Result<Result<Vec<Entry>, super::FilterError>, ApiError> {
    state.with_store(move |s| super::list(s, &f)).await
}

async fn api_list(
    state: web::Data<AppState>,
    req: HttpRequest,
    f: web::Query<Filter>,
) -> Result<HttpResponse, ApiError> {
    let fmt = web::Query::<Format>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let entries = query(&state, f.into_inner())
        .await?
        .map_err(|e| ApiError::bad_request(e.0))?;
    let wants_csv = fmt.format == "csv"
        || req
            .headers()
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.starts_with("text/csv"));
    if wants_csv {
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                "attachment; filename=\"bulwark-audit-log.csv\"",
            ))
            .body(super::to_csv(&entries)));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": entries })))
}

#[derive(Template)]
#[template(path = "audit_log.html")]
struct Page {
    layout: Layout,
    entries: Vec<Entry>,
    f: Filter,
    error: String,
    csv_link: String,
}

async fn page(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    f: web::Query<Filter>,
) -> Result<HttpResponse, ApiError> {
    let f = f.into_inner();
    let (entries, error) = match query(&state, f.clone()).await? {
        Ok(e) => (e, String::new()),
        Err(e) => (Vec::new(), e.0),
    };
    let qs = req.query_string();
    let csv_link = if qs.is_empty() {
        "/api/v1/audit-log?format=csv".to_string()
    } else {
        format!("/api/v1/audit-log?{qs}&format=csv")
    };
    render(&Page {
        layout: Layout::new(&state, &p, "Audit log", "/audit-log"),
        entries,
        f,
        error,
        csv_link,
    })
}
