//! Exceptions: the list, the request form, one exception with its status and comments.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::names;
use crate::clusters::Cluster;
use crate::compliance::model::{Exception, ExceptionKind, ExceptionStatus, Policy};
use crate::compliance::service::{self as svc, ExceptionInput};
use crate::http::layout::{field_of, redirect_with_flash, render, render_status, Confirm, Layout};
use crate::http::listing::{self, ListQuery, Order, SortKey, Sorting};
use crate::http::{Actor, ApiError, AppState, Auth, Perm, Principal, Routes};
use actix_web::http::StatusCode;

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
    /// The field the error is about, marked on the form.
    error_field: String,
    /// The request form as typed (refilled after an error).
    form: ExceptionForm,
    query: String,
    order: Order,
    next: Option<String>,
}

impl ExceptionsPage {
    fn sort_href(&self, column: &str) -> String {
        format!(
            "/exceptions?{}",
            listing::sort_query(&self.query, column, &self.order)
        )
    }
    fn sort_mark(&self, column: &str) -> &'static str {
        listing::sort_mark(column, &self.order)
    }
    fn csv_href(&self) -> String {
        format!(
            "/api/v1/exceptions?{}",
            listing::with_param(&self.query, "format", "csv")
        )
    }
    fn invalid(&self, field: &str) -> bool {
        self.error_field == field
    }
}

/// Columns exceptions sort by (the page and `/api/v1/exceptions`): newest first by default.
pub(crate) const SORTING: Sorting = Sorting {
    columns: &[
        ("id", true),
        ("title", false),
        ("status", false),
        ("end_date", false),
    ],
    default: "id",
};

/// An exception's value in the sorted column, and its id. No end date sorts last: it never
/// ends.
pub(crate) fn exception_key(order: &Order, e: &Exception) -> (SortKey, u64) {
    let key = match order.column {
        "title" => e.title.to_lowercase().into(),
        "status" => e.status.as_str().into(),
        "end_date" => e
            .end_date
            .map(|d| d.to_string())
            .unwrap_or_else(|| "9999".into())
            .into(),
        _ => SortKey::Int(e.id as i64),
    };
    (key, e.id)
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
    req: HttpRequest,
    Auth(p): Auth,
    q: web::Query<ExceptionsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let form = ExceptionForm {
        image_match: q.image_match.clone(),
        issue_id: q.issue_id.clone(),
        ..ExceptionForm::default()
    };
    list_page(
        &state,
        &req,
        &p,
        &q.status,
        form,
        String::new(),
        StatusCode::OK,
    )
    .await
}

/// The list (filtered by `status`, paged and sorted by the request's query) above the request
/// form holding `form`, with `error` when the form was refused.
async fn list_page(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    p: &Principal,
    status: &str,
    form: ExceptionForm,
    error: String,
    code: StatusCode,
) -> Result<HttpResponse, ApiError> {
    let list = ListQuery::of(req)?;
    let order = SORTING.pick(&list)?;
    let all = state.with_store(svc::list_exceptions).await?;
    let wanted: Vec<Exception> = all
        .into_iter()
        .filter(|e| status.is_empty() || e.status.as_str() == status)
        .collect();
    let (exceptions, next) = listing::page(wanted, &order, &list, |e| exception_key(&order, e))?;
    let query = req.query_string().to_string();
    render_status(
        &ExceptionsPage {
            layout: Layout::new(state, p, "Exceptions", "/exceptions"),
            exceptions,
            status: status.to_string(),
            can_write: p.can(Perm::Write),
            can_request: p.can(Perm::Request),
            error_field: field_of(
                &error,
                &[
                    "title",
                    "reason",
                    "issue_id",
                    "constraint_template",
                    "image_match",
                    "namespaces",
                    "end_date",
                ],
            ),
            error,
            form,
            next: next.map(|n| format!("/exceptions?{}", listing::with_cursor(&query, &n))),
            query,
            order,
        },
        code,
    )
}

#[derive(Deserialize, Default, Clone)]
struct ExceptionForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    issue_id: String,
    /// `policy` or `gatekeeper`.
    #[serde(default)]
    kind: String,
    #[serde(default)]
    constraint_template: String,
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
                return exception_form_error(&state, &req, &p, f, "end date: use YYYY-MM-DD".into())
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
    let kind = match f.kind.as_str() {
        "gatekeeper" => ExceptionKind::Gatekeeper,
        _ => ExceptionKind::Policy,
    };
    let input = ExceptionInput {
        title: f.title.clone(),
        reason: f.reason.clone(),
        kind,
        constraint_template: f.constraint_template.clone(),
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
            exception_form_error(&state, &req, &p, f, e.to_string()).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn exception_form_error(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    p: &Principal,
    f: ExceptionForm,
    error: String,
) -> Result<HttpResponse, ApiError> {
    list_page(state, req, p, "", f, error, StatusCode::BAD_REQUEST).await
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
    /// Ticked to confirm a rejection or deactivation.
    #[serde(default)]
    confirm: Option<String>,
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
        "inactive" => {
            Confirm {
                confirm: f.confirm.clone(),
            }
            .require("Reject or deactivate the exception")?;
            ExceptionStatus::Inactive
        }
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
