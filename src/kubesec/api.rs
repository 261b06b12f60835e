//! `POST /api/v1/kubesec`: a manifest in the body (YAML or JSON, one or more documents), the
//! kubesec JSON array back.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::http::{ApiError, AppState, Perm, Routes};

/// Registers the KubeSec route.
pub fn routes(r: &mut Routes) {
    r.api(Method::POST, "/api/v1/kubesec", Perm::Read, api_scan);
}

async fn api_scan(
    _state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = crate::http::read_body(&req, payload, super::MAX_BYTES).await?;
    let reports = web::block(move || super::scan("API", &body))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(HttpResponse::Ok().json(reports))
}
