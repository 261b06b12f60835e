//! The scanner database page: what is imported, from which feeds and when, and a form to
//! upload a feed file.

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::Utc;
use futures_util::TryStreamExt;

use super::db::SourceStatus;
use crate::http::layout::{redirect_with_flash, render_status, Layout};
use crate::http::{ApiError, AppState, Auth, Perm, Principal, Routes};

pub fn routes(r: &mut Routes) {
    r.page("/vulndb", Perm::Read, page);
    r.upload("/vulndb/import", Perm::Write, upload_form);
    r.nav(36, "Scanner database", "/vulndb", Perm::Read);
}

#[derive(Template)]
#[template(path = "vulndb/page.html")]
struct VulnDbPage {
    layout: Layout,
    path: String,
    advisories: u64,
    feeds: Vec<SourceStatus>,
    can_import: bool,
    error: String,
    max_mib: u64,
    signed_only: bool,
    key_file: String,
}

impl VulnDbPage {
    fn age(&self, f: &SourceStatus) -> String {
        match Utc::now().signed_duration_since(f.imported_at).num_days() {
            0 => "today".into(),
            1 => "1 day ago".into(),
            n => format!("{n} days ago"),
        }
    }
}

async fn draw(state: &AppState, p: &Principal, error: String) -> Result<HttpResponse, ApiError> {
    let path = super::api::path(state);
    let shown = path.display().to_string();
    let (feeds, advisories) = tokio::task::spawn_blocking(move || super::db::status(&path))
        .await
        .map_err(ApiError::internal)?;
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    render_status(
        &VulnDbPage {
            layout: Layout::new(state, p, "Scanner database", "/vulndb"),
            path: shown,
            advisories,
            feeds,
            can_import: p.can(Perm::Write),
            error,
            max_mib: super::api::MAX_FEED_BYTES / (1024 * 1024),
            signed_only: !state.config.bundles.key_file.trim().is_empty(),
            key_file: state.config.bundles.key_file.trim().to_string(),
        },
        status,
    )
}

async fn page(state: web::Data<AppState>, Auth(p): Auth) -> Result<HttpResponse, ApiError> {
    draw(&state, &p, String::new()).await
}

/// The form's `feed` file field, imported as it streams in.
async fn upload_form(
    state: web::Data<AppState>,
    Auth(p): Auth,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    let mut outcome = None;
    while let Some(field) = form
        .try_next()
        .await
        .map_err(|e| ApiError::bad_request(format!("could not read the form: {e}")))?
    {
        if field.name() == Some("feed") {
            outcome = Some(super::api::import_upload(&state, field).await);
            break;
        }
    }
    match outcome {
        Some(Ok(report)) => Ok(redirect_with_flash(
            &state,
            &p,
            "/vulndb",
            &format!("Imported the upload: {}", report.summary()),
        )),
        Some(Err(e)) if e.status.is_client_error() => draw(&state, &p, e.message).await,
        Some(Err(e)) => Err(e),
        None => draw(&state, &p, "choose a feed file to upload".into()).await,
    }
}
