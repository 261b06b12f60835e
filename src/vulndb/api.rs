//! The appliance's vulnerability database over HTTP: what it holds, and importing a feed file
//! (what `bulwark db import` does on the host) for appliances no one logs in to.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use super::bundle;
use super::db::{VulnDb, VulnDbError};
use crate::http::{ApiError, AppState, Perm, Routes};

/// Largest feed file accepted (an OSV export of one ecosystem is a few hundred MiB zipped).
pub const MAX_FEED_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// One import at a time: the database has one writer.
static IMPORTING: Mutex<()> = Mutex::new(());

impl From<VulnDbError> for ApiError {
    fn from(e: VulnDbError) -> ApiError {
        match e {
            VulnDbError::Input { .. } => ApiError::bad_request(e.to_string()),
            VulnDbError::Store(s) => s.into(),
        }
    }
}

pub fn routes(r: &mut Routes) {
    r.api(Method::GET, "/api/v1/vulndb", Perm::Read, api_status);
    r.api(
        Method::POST,
        "/api/v1/vulndb/import",
        Perm::Write,
        api_import,
    );
}

/// The database file the appliance scans with.
pub fn path(state: &AppState) -> PathBuf {
    state.config.data_dir.join("vulndb.redb")
}

async fn api_status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let path = path(&state);
    let (feeds, advisories) = tokio::task::spawn_blocking(move || super::db::status(&path))
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "advisories": advisories,
        "feeds": feeds,
    })))
}

/// `POST` a feed file as the body: an OSV record or a zip of them, an Alpine secdb file, the
/// Debian tracker's JSON.
async fn api_import(
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let applied = import_upload(&state, payload).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "summary": applied.summary(),
        "report": applied.report,
        "rules": applied.rules,
        "bundles": applied.bundles,
    })))
}

/// Writes `body` to a file beside the database (bounded by [`MAX_FEED_BYTES`]) and imports it.
pub async fn import_upload<S, E>(state: &AppState, body: S) -> Result<bundle::Applied, ApiError>
where
    S: Stream<Item = Result<web::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let dir = state.config.data_dir.join("tmp");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(ApiError::internal)?;
    let staged = dir.join(format!("feed-{}.upload", rand::random::<u64>()));
    let result = stage_and_import(state, body, &staged).await;
    let _ = tokio::fs::remove_file(&staged).await;
    let _ = tokio::fs::remove_file(staged.with_extension("zip")).await;
    let _ = tokio::fs::remove_file(staged.with_extension("json")).await;
    result
}

async fn stage_and_import<S, E>(
    state: &AppState,
    mut body: S,
    staged: &Path,
) -> Result<bundle::Applied, ApiError>
where
    S: Stream<Item = Result<web::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut file = tokio::fs::File::create(staged)
        .await
        .map_err(ApiError::internal)?;
    let (mut len, mut head) = (0u64, Vec::new());
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the upload broke off: {e}")))?;
        len += chunk.len() as u64;
        if len > MAX_FEED_BYTES {
            return Err(ApiError::new(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("a feed file may have at most {MAX_FEED_BYTES} bytes"),
            ));
        }
        if head.len() < 4 {
            head.extend_from_slice(&chunk[..chunk.len().min(4 - head.len())]);
        }
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    file.flush().await.map_err(ApiError::internal)?;
    drop(file);
    if len == 0 {
        return Err(ApiError::bad_request("the feed file is empty"));
    }
    let data_dir = state.config.data_dir.clone();
    let (db, tmp) = (path(state), data_dir.join("tmp"));
    let key_file = state.config.bundles.key_file.trim().to_string();
    let staged = staged.to_path_buf();
    let zipped = head.starts_with(b"PK\x03\x04");
    tokio::task::spawn_blocking(move || {
        let Ok(_one) = IMPORTING.try_lock() else {
            return Err(ApiError::new(
                actix_web::http::StatusCode::CONFLICT,
                "conflict",
                "another import is running; try again when it ends",
            ));
        };
        if zipped && bundle::is_bundle(&staged) {
            if key_file.is_empty() {
                return Err(ApiError::bad_request(
                    "a signed bundle, but this appliance has no bundle key to check it with: set [bundles] key_file",
                ));
            }
            let keys = bundle::read_keys(std::path::Path::new(&key_file))
                .map_err(ApiError::internal)?;
            let scratch = bundle::Scratch::new(&tmp).map_err(ApiError::internal)?;
            // Everything is checked before the database (or the rules) is written.
            let applied = bundle::import(
                std::slice::from_ref(&staged),
                &keys,
                &db,
                &data_dir,
                scratch.path(),
            )
            .map_err(|e| ApiError::bad_request(format!("the bundle was refused: {e}")))?;
            return Ok(applied);
        }
        if !key_file.is_empty() {
            return Err(ApiError::bad_request(
                "this appliance imports signed bundles only ([bundles] key_file is set): make one with `bulwark db bundle`",
            ));
        }
        // The importer tells zips from JSON by the name; the content says which this is.
        let named = staged.with_extension(if zipped { "zip" } else { "json" });
        std::fs::rename(&staged, &named).map_err(ApiError::internal)?;
        let vdb = VulnDb::open(&db)?;
        let mut report = vdb.import(std::slice::from_ref(&named))?;
        // Problems name the staged file; the uploader knows it as "the upload".
        for p in &mut report.problems {
            *p = p.replace(&named.display().to_string(), "upload");
        }
        Ok(bundle::Applied {
            report: Some(report),
            ..Default::default()
        })
    })
    .await
    .map_err(ApiError::internal)?
}
