//! Exceptions: the list, the request form, one exception with its status and comments.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::names;
use crate::clusters::Cluster;
use crate::compliance::model::{Exception, ExceptionKind, ExceptionStatus, Policy};
use crate::compliance::service::{self as svc, ExceptionInput};
use crate::http::layout::{redirect_with_flash, render, render_status, Layout};
use crate::http::{Actor, ApiError, AppState, Auth, Perm, Principal, Routes};

/// Registers these pages.
pub(super) fn routes(r: &mut Routes) {
    r.page("/exceptions", Perm::Read, exceptions_page);
    r.form("/exceptions", Perm::Request, exception_create_form);
    r.page("/exceptions/{id}", Perm::Read, exception_page);
    r.form(
        "/exceptions/{id}/status",
        Perm::Write,
        exception_status_form,
    );
    r.form(
        "/exceptions/{id}/comments",
        Perm::Request,
        exception_comment_form,
    );
}

#[derive(Template)]
#[template(path = "compliance/exceptions.html")]
struct ExceptionsPage {
    layout: Layout,
    exceptions: Vec<Exception>,
    status: String,
    can_write: bool,
    can_request: bool,
    error: String,
    image_match: String,
    issue_id: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ExceptionsQuery {
    status: String,
    image_match: String,
    issue_id: String,
}

fn kind_name(k: ExceptionKind) -> &'static str {
    match k {
        ExceptionKind::Policy => "policy",
        ExceptionKind::Override => "override",
        ExceptionKind::Gatekeeper => "gatekeeper",
    }
}

async fn exceptions_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    q: web::Query<ExceptionsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let all = state.with_store(svc::list_exceptions).await?;
    let exceptions = all
        .into_iter()
        .rev()
        .filter(|e| q.status.is_empty() || e.status.as_str() == q.status)
        .collect();
    render(&ExceptionsPage {
        layout: Layout::new(&state, &p, "Exceptions", "/exceptions"),
        exceptions,
        status: q.status,
        can_write: p.can(Perm::Write),
        can_request: p.can(Perm::Request),
        error: String::new(),
        image_match: q.image_match,
        issue_id: q.issue_id,
    })
}

#[derive(Deserialize)]
struct ExceptionForm {
    title: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    issue_id: String,
    #[serde(default)]
    image_match: String,
    #[serde(default)]
    namespaces: String,
    #[serde(default)]
    end_date: String,
}

async fn exception_create_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    form: web::Form<ExceptionForm>,
) -> Result<HttpResponse, ApiError> {
    let f = form.into_inner();
    let end_date = match f.end_date.trim() {
        "" => None,
        d => match chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                return exception_form_error(&state, &p, &f, "end date: use YYYY-MM-DD".into())
                    .await
            }
        },
    };
    let namespaces: Vec<String> = f
        .namespaces
        .split([',', ' '])
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect();
    let input = ExceptionInput {
        title: f.title.clone(),
        reason: f.reason.clone(),
        issue_id: f.issue_id.clone(),
        image_match: f.image_match.clone(),
        namespaces: (!namespaces.is_empty()).then_some(namespaces),
        end_date,
        ..Default::default()
    };
    let (a, search) = (Actor::from_request(&p, &req), state.search.clone());
    let res = state
        .store
        .run(move |s| {
            let r = svc::create_exception(s, &a, input);
            if let Ok(e) = &r {
                crate::compliance::search::reindex_exception(&search, e.id, Some(e));
            }
            Ok::<_, ApiError>(r)
        })
        .await?;
    match res {
        Ok(e) => Ok(redirect_with_flash(
            &state,
            &p,
            &format!("/exceptions/{}", e.id),
            &format!("Exception \"{}\" is {}", e.title, e.status.as_str()),
        )),
        Err(e @ svc::ComplianceError::Invalid(_)) => {
            exception_form_error(&state, &p, &f, e.to_string()).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn exception_form_error(
    state: &web::Data<AppState>,
    p: &Principal,
    f: &ExceptionForm,
    error: String,
) -> Result<HttpResponse, ApiError> {
    let all = state.with_store(svc::list_exceptions).await?;
    render_status(
        &ExceptionsPage {
            layout: Layout::new(state, p, "Exceptions", "/exceptions"),
            exceptions: all.into_iter().rev().collect(),
            status: String::new(),
            can_write: p.can(Perm::Write),
            can_request: p.can(Perm::Request),
            error,
            image_match: f.image_match.clone(),
            issue_id: f.issue_id.clone(),
        },
        actix_web::http::StatusCode::BAD_REQUEST,
    )
}

#[derive(Template)]
#[template(path = "compliance/exception.html")]
struct ExceptionPage {
    layout: Layout,
    e: Exception,
    clusters: Vec<Cluster>,
    policies: Vec<Policy>,
    can_write: bool,
    can_request: bool,
}

impl ExceptionPage {
    fn clusters_text(&self) -> String {
        names(&self.e.clusters, |id| {
            self.clusters
                .iter()
                .find(|c| c.id == id)
                .map(|c| c.name.clone())
        })
    }
    fn policies_text(&self) -> String {
        names(&self.e.policies, |id| {
            self.policies
                .iter()
                .find(|p| p.id == id)
                .map(|p| p.name.clone())
        })
    }
}

async fn exception_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (e, clusters, policies) = state
        .store
        .run(move |s| {
            Ok::<_, ApiError>((
                svc::get_exception(s, id).map_err(ApiError::from)?,
                crate::clusters::list(s)?,
                svc::list_policies(s)?,
            ))
        })
        .await?;
    let layout = Layout::new(&state, &p, e.title.clone(), "/exceptions");
    render(&ExceptionPage {
        layout,
        e,
        clusters,
        policies,
        can_write: p.can(Perm::Write),
        can_request: p.can(Perm::Request),
    })
}

#[derive(Deserialize)]
struct StatusForm {
    status: String,
}

async fn exception_status_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    f: web::Form<StatusForm>,
) -> Result<HttpResponse, ApiError> {
    let status = match f.status.as_str() {
        "active" => ExceptionStatus::Active,
        "inactive" => ExceptionStatus::Inactive,
        "in-review" => ExceptionStatus::InReview,
        other => return Err(ApiError::bad_request(format!("unknown status '{other}'"))),
    };
    let (a, id, search) = (
        Actor::from_request(&p, &req),
        id.into_inner(),
        state.search.clone(),
    );
    let e = state
        .store
        .run(move |s| {
            let e = svc::set_exception_status(s, &a, id, status).map_err(ApiError::from)?;
            crate::compliance::search::reindex_exception(&search, e.id, Some(&e));
            Ok::<_, ApiError>(e)
        })
        .await?;
    Ok(redirect_with_flash(
        &state,
        &p,
        &format!("/exceptions/{}", e.id),
        &format!("Now {}", e.status.as_str()),
    ))
}

#[derive(Deserialize)]
struct CommentForm {
    text: String,
}

async fn exception_comment_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    f: web::Form<CommentForm>,
) -> Result<HttpResponse, ApiError> {
    let (a, id, text) = (
        Actor::from_request(&p, &req),
        id.into_inner(),
        f.into_inner().text,
    );
    let e = state
        .with_store(move |s| svc::comment_exception(s, &a, id, &text))
        .await?;
    Ok(redirect_with_flash(
        &state,
        &p,
        &format!("/exceptions/{}", e.id),
        "Comment added",
    ))
}

impl ExceptionsPage {
    fn kind(&self, e: &Exception) -> &'static str {
        kind_name(e.kind)
    }
}

impl ExceptionPage {
    fn kind(&self) -> &'static str {
        kind_name(self.e.kind)
    }
}
