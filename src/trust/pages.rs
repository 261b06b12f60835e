//! The cluster's signed-images page: its rules, the form that adds one, and the verdicts
//! admission reached recently.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::enforce::Recent;
use super::{NewRule, RuleView, TrustError};
use crate::clusters::{Cluster, FailureMode};
use crate::http::layout::{redirect_with_flash, render, render_status, Confirm, Layout};
use crate::http::{client_ip, ApiError, AppState, Auth, Perm, Principal, Routes};

pub(super) fn routes(r: &mut Routes) {
    r.page("/clusters/{id}/signatures", Perm::Read, rules_page);
    r.form("/clusters/{id}/signatures", Perm::Write, create_form);
    r.form(
        "/clusters/{id}/signatures/{rule}/delete",
        Perm::Write,
        delete_form,
    );
}

#[derive(Template)]
#[template(path = "trust/rules.html")]
struct RulesPage {
    layout: Layout,
    cluster: Cluster,
    fail_closed: bool,
    rules: Vec<RuleView>,
    recent: Vec<Recent>,
    can_write: bool,
    error: String,
    pattern: String,
    keys: String,
    description: String,
}

async fn page(state: &AppState, p: &Principal, id: u64) -> Result<RulesPage, ApiError> {
    let (cluster, rules) = state
        .with_store(move |s| {
            let c = crate::clusters::get(s, id)?;
            let rules: Vec<RuleView> = super::list(s, id)?.iter().map(RuleView::from).collect();
            Ok::<_, ApiError>((c, rules))
        })
        .await?;
    Ok(RulesPage {
        layout: Layout::new(
            state,
            p,
            format!("Signed images · {}", cluster.name),
            "/clusters",
        ),
        fail_closed: cluster.failure_mode == FailureMode::FailClosed,
        cluster,
        rules,
        recent: crate::admission::of(state)?.trust.recent(),
        can_write: p.can(Perm::Write),
        error: String::new(),
        pattern: String::new(),
        keys: String::new(),
        description: String::new(),
    })
}

async fn rules_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    render(&page(&state, &p, id.into_inner()).await?)
}

#[derive(Deserialize)]
struct RuleForm {
    #[serde(default)]
    pattern: String,
    #[serde(default)]
    keys: String,
    #[serde(default)]
    description: String,
}

async fn create_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    form: web::Form<RuleForm>,
) -> Result<HttpResponse, ApiError> {
    let (f, id) = (form.into_inner(), id.into_inner());
    let (actor, ip) = (p.actor(), client_ip(&req));
    let new = NewRule {
        pattern: f.pattern.clone(),
        keys: vec![f.keys.clone()],
        description: f.description.clone(),
    };
    let res = state
        .store
        .run(move |s| Ok::<_, ApiError>(super::create(s, &actor, &ip, id, new)))
        .await?;
    match res {
        Ok(r) => Ok(redirect_with_flash(
            &state,
            &p,
            &format!("/clusters/{id}/signatures"),
            &format!("Images matching {} must now be signed", r.pattern),
        )),
        Err(e @ TrustError::Invalid(_)) => {
            let mut pg = page(&state, &p, id).await?;
            pg.error = e.to_string();
            pg.pattern = f.pattern;
            pg.keys = f.keys;
            pg.description = f.description;
            render_status(&pg, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(e.into()),
    }
}

async fn delete_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    path: web::Path<(u64, u64)>,
    confirm: web::Form<Confirm>,
) -> Result<HttpResponse, ApiError> {
    confirm.require("Remove signature rule")?;
    let (actor, ip) = (p.actor(), client_ip(&req));
    let (cluster, rule) = path.into_inner();
    state
        .with_store(move |s| super::delete(s, &actor, &ip, cluster, rule))
        .await?;
    Ok(redirect_with_flash(
        &state,
        &p,
        &format!("/clusters/{cluster}/signatures"),
        "Signature rule removed",
    ))
}
