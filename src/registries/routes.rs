//! Registry API: list (readers see hosts and whether a password is set, never the password),
//! add, change and remove (writers).

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{NewRegistry, RegistryPatch};
use crate::http::{client_ip, ApiError, AppState, Auth, Perm, Routes};
use crate::secrets::Sealer;

/// Registers the registry routes.
pub fn routes(r: &mut Routes) {
    r.api(Method::GET, "/api/v1/registries", Perm::Read, api_list);
    r.api(Method::POST, "/api/v1/registries", Perm::Write, api_create);
    r.api(
        Method::PATCH,
        "/api/v1/registries/{id}",
        Perm::Write,
        api_update,
    );
    r.api(
        Method::DELETE,
        "/api/v1/registries/{id}",
        Perm::Write,
        api_delete,
    );
}

fn sealer(state: &AppState) -> Result<Arc<Sealer>, ApiError> {
    state
        .domains
        .get::<Sealer>()
        .ok_or_else(|| ApiError::internal("the appliance key is not loaded"))
}

async fn api_list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let items = state
        .store
        .run(|s| super::list(s).map_err(ApiError::internal))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

async fn api_create(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    body: web::Json<NewRegistry>,
) -> Result<HttpResponse, ApiError> {
    let (sealer, actor, ip) = (sealer(&state)?, p.actor(), client_ip(&req));
    let new = body.into_inner();
    let r = state
        .store
        .run(move |s| super::create(s, &sealer, &actor, &ip, new).map_err(ApiError::from))
        .await?;
    Ok(HttpResponse::Created().json(r))
}

async fn api_update(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    body: web::Json<RegistryPatch>,
) -> Result<HttpResponse, ApiError> {
    let (sealer, actor, ip) = (sealer(&state)?, p.actor(), client_ip(&req));
    let (id, patch) = (id.into_inner(), body.into_inner());
    let r = state
        .store
        .run(move |s| super::update(s, &sealer, &actor, &ip, id, patch).map_err(ApiError::from))
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

async fn api_delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let (actor, ip, id) = (p.actor(), client_ip(&req), id.into_inner());
    state
        .store
        .run(move |s| super::delete(s, &actor, &ip, id).map_err(ApiError::from))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
