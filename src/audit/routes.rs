//! Audit-log API (JSON and CSV) and page; super-admins only.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{Entry, Filter};
use crate::http::layout::{render, Layout};
use crate::http::listing::{self, ListQuery};
use crate::http::{ApiError, AppState, Auth, Perm, Routes};

/// Registers the audit-log routes.
pub fn routes(r: &mut Routes) {
    r.api(Method::GET, "/api/v1/audit-log", Perm::SuperAdmin, api_list);
    r.page("/audit-log", Perm::SuperAdmin, page);
    r.nav(92, "Audit log", "/audit-log", Perm::SuperAdmin);
}

async fn query(
    state: &web::Data<AppState>,
    f: Filter,
) -> Result<Result<Vec<Entry>, super::FilterError>, ApiError> {
    state.with_store(move |s| super::list(s, &f)).await
}

/// The filter with paging applied: `cursor` resumes below the last id shown.
fn paged(mut f: Filter, q: &ListQuery) -> Result<Filter, ApiError> {
    if let Some(id) = listing::cursor_id(q)? {
        f.before = Some(id);
    }
    f.limit = Some(q.limit());
    Ok(f)
}

/// The cursor of the page after `entries`, when it was full.
fn next_of(entries: &[Entry], q: &ListQuery) -> Option<String> {
    (entries.len() == q.limit())
        .then(|| entries.last())
        .flatten()
        .map(|e| listing::cursor_after(e.at.to_rfc3339(), e.id))
}

async fn api_list(
    state: web::Data<AppState>,
    req: HttpRequest,
    f: web::Query<Filter>,
) -> Result<HttpResponse, ApiError> {
    let q = ListQuery::of(&req)?;
    let entries = query(&state, paged(f.into_inner(), &q)?)
        .await?
        .map_err(|e| ApiError::bad_request(e.0))?;
    if q.wants_csv(&req) {
        return Ok(listing::csv_response(
            "bulwark-audit-log",
            super::to_csv(&entries),
        ));
    }
    let next = next_of(&entries, &q);
    Ok(listing::json_page(entries, next))
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
