//! Registry API: list (readers see hosts and whether a password is set, never the password),
//! add, change and remove (writers).

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{NewRegistry, RegistryError, RegistryPatch, RegistryView};
use crate::http::layout::{redirect_with_flash, render, render_status, Confirm, Layout};
use crate::http::{client_ip, ApiError, AppState, Auth, Perm, Principal, Routes};

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
    r.page("/registries", Perm::Read, list_page);
    r.form("/registries", Perm::Write, create_form);
    r.form("/registries/{id}/delete", Perm::Write, delete_form);
    r.nav(15, "Registries", "/registries", Perm::Read);
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
    let (sealer, actor, ip) = (state.sealer()?, p.actor(), client_ip(&req));
    let new = body.into_inner();
    let r = state
        .with_store(move |s| super::create(s, &sealer, &actor, &ip, new))
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
    let (sealer, actor, ip) = (state.sealer()?, p.actor(), client_ip(&req));
    let (id, patch) = (id.into_inner(), body.into_inner());
    let r = state
        .with_store(move |s| super::update(s, &sealer, &actor, &ip, id, patch))
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
        .with_store(move |s| super::delete(s, &actor, &ip, id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- pages ----

#[derive(Template)]
#[template(path = "registries/list.html")]
struct ListPage {
    layout: Layout,
    registries: Vec<RegistryView>,
    can_write: bool,
    error: String,
    host: String,
    description: String,
    username: String,
}

async fn page(state: &web::Data<AppState>, p: &Principal) -> Result<ListPage, ApiError> {
    let registries = state
        .store
        .run(|s| super::list(s).map_err(ApiError::internal))
        .await?;
    Ok(ListPage {
        layout: Layout::new(state, p, "Registries", "/registries"),
        registries,
        can_write: p.can(Perm::Write),
        error: String::new(),
        host: String::new(),
        description: String::new(),
        username: String::new(),
    })
}

async fn list_page(state: web::Data<AppState>, Auth(p): Auth) -> Result<HttpResponse, ApiError> {
    render(&page(&state, &p).await?)
}

#[derive(Deserialize)]
struct RegistryForm {
    host: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    insecure_registry: Option<String>,
    #[serde(default)]
    insecure_tls: Option<String>,
}

async fn create_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    form: web::Form<RegistryForm>,
) -> Result<HttpResponse, ApiError> {
    let f = form.into_inner();
    let (sealer, actor, ip) = (state.sealer()?, p.actor(), client_ip(&req));
    let new = NewRegistry {
        host: f.host.clone(),
        description: f.description.clone(),
        username: Some(f.username.clone()),
        password: Some(f.password),
        insecure_registry: f.insecure_registry.is_some(),
        insecure_tls: f.insecure_tls.is_some(),
    };
    let res = state
        .store
        .run(move |s| Ok::<_, ApiError>(super::create(s, &sealer, &actor, &ip, new)))
        .await?;
    match res {
        Ok(r) => Ok(redirect_with_flash(
            &state,
            &p,
            "/registries",
            &format!("Added registry {}", r.host),
        )),
        Err(e @ (RegistryError::Invalid(_) | RegistryError::Duplicate(_))) => {
            // The password is never echoed back into the page.
            let mut pg = page(&state, &p).await?;
            pg.error = e.to_string();
            pg.host = f.host;
            pg.description = f.description;
            pg.username = f.username;
            render_status(&pg, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(e.into()),
    }
}

async fn delete_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    confirm: web::Form<Confirm>,
) -> Result<HttpResponse, ApiError> {
    confirm.require("Remove registry")?;
    let (actor, ip, id) = (p.actor(), client_ip(&req), id.into_inner());
    state
        .with_store(move |s| super::delete(s, &actor, &ip, id))
        .await?;
    Ok(redirect_with_flash(
        &state,
        &p,
        "/registries",
        "Registry removed",
    ))
}
