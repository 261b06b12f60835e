//! Signature-rule API: a cluster's rules (readers), adding and removing them (writers), and
//! the verdicts admission reached recently.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{NewRule, RuleView};
use crate::http::{client_ip, ApiError, AppState, Auth, Perm, Routes};

/// Registers the signature-rule routes and pages.
pub fn routes(r: &mut Routes) {
    let rules = "/api/v1/clusters/{id}/signature-rules";
    r.api(Method::GET, rules, Perm::Read, api_list);
    r.api(Method::POST, rules, Perm::Write, api_create);
    r.api(
        Method::DELETE,
        "/api/v1/clusters/{id}/signature-rules/{rule}",
        Perm::Write,
        api_delete,
    );
    r.api(
        Method::GET,
        "/api/v1/signatures/recent",
        Perm::Read,
        api_recent,
    );
    super::pages::routes(r);
}

async fn api_list(
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let items = state
        .with_store(move |s| {
            crate::clusters::get(s, id)?;
            let rules: Vec<RuleView> = super::list(s, id)?.iter().map(RuleView::from).collect();
            Ok::<_, ApiError>(rules)
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

async fn api_create(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    body: web::Json<NewRule>,
) -> Result<HttpResponse, ApiError> {
    let (actor, ip, id, new) = (
        p.actor(),
        client_ip(&req),
        id.into_inner(),
        body.into_inner(),
    );
    let rule = state
        .with_store(move |s| super::create(s, &actor, &ip, id, new))
        .await?;
    Ok(HttpResponse::Created().json(RuleView::from(&rule)))
}

async fn api_delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    path: web::Path<(u64, u64)>,
) -> Result<HttpResponse, ApiError> {
    let (actor, ip) = (p.actor(), client_ip(&req));
    let (cluster, rule) = path.into_inner();
    state
        .with_store(move |s| super::delete(s, &actor, &ip, cluster, rule))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn api_recent(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let items = crate::admission::of(&state)?.trust.recent();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}
