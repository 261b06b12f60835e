//! Gatekeeper's JSON: the template library (bundled and imported), each cluster's
//! constraints, the audit of its inventory, and a dry run of its constraints on an object.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit::{self, Compiled};
use super::catalog::{self, ConstraintInput, Imported};
use super::{form, Review, Template};
use crate::http::listing::{csv, csv_response};
use crate::http::{ApiError, AppState, Auth, Perm, Routes};
use crate::store::Store;

/// Largest template or object accepted.
pub const MAX_BYTES: usize = 1 << 20;

/// Registers the Gatekeeper routes and pages.
pub fn routes(r: &mut Routes) {
    r.api(
        Method::GET,
        "/api/v1/gatekeeper/templates",
        Perm::Read,
        list_templates,
    );
    r.api(
        Method::POST,
        "/api/v1/gatekeeper/templates",
        Perm::Write,
        import_template,
    );
    r.api(
        Method::GET,
        "/api/v1/gatekeeper/templates/{name}",
        Perm::Read,
        get_template,
    );
    r.api(
        Method::DELETE,
        "/api/v1/gatekeeper/templates/{name}",
        Perm::Write,
        delete_template,
    );
    let constraints = "/api/v1/clusters/{id}/gatekeeper/constraints";
    r.api(Method::GET, constraints, Perm::Read, list_constraints);
    r.api(Method::POST, constraints, Perm::Write, create_constraint);
    let one = "/api/v1/clusters/{id}/gatekeeper/constraints/{kind}/{name}";
    r.api(Method::GET, one, Perm::Read, get_constraint);
    r.api(Method::PUT, one, Perm::Write, update_constraint);
    r.api(Method::DELETE, one, Perm::Write, delete_constraint);
    r.api(
        Method::GET,
        "/api/v1/clusters/{id}/gatekeeper/audit",
        Perm::Read,
        get_audit,
    );
    r.api(
        Method::POST,
        "/api/v1/clusters/{id}/gatekeeper/audit",
        Perm::Write,
        run_audit,
    );
    r.api(
        Method::GET,
        "/api/v1/clusters/{id}/gatekeeper/history",
        Perm::Read,
        history,
    );
    r.api(
        Method::POST,
        "/api/v1/clusters/{id}/gatekeeper/evaluate",
        Perm::Read,
        evaluate,
    );
    let pushed = "/api/v1/clusters/{id}/gatekeeper/in-cluster";
    r.api(Method::GET, pushed, Perm::Read, in_cluster);
    r.api(Method::PUT, pushed, Perm::Write, push);
    r.api(Method::DELETE, pushed, Perm::Write, remove_pushed);
    super::pages::routes(r);
}

fn cluster(store: &Store, id: u64) -> Result<crate::clusters::Cluster, ApiError> {
    crate::clusters::get(store, id).map_err(ApiError::from)
}

/// A template as lists show it.
pub fn template_line(t: &Template, imported: Option<&Imported>) -> Value {
    json!({
        "name": t.name,
        "kind": t.kind,
        "title": t.title,
        "description": t.description,
        "bundled": imported.is_none(),
        "imported_by": imported.map(|i| i.by.clone()),
        "imported_at": imported.map(|i| i.at),
        "rego_version": if t.rego.v1 { "v1" } else { "v0" },
        "reads_inventory": t.rego.reads_inventory(),
    })
}

async fn list_templates(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let items = state
        .with_store(|s| {
            Ok::<_, ApiError>(
                catalog::templates(s)?
                    .iter()
                    .map(|(t, i)| template_line(t, i.as_ref()))
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// The first document of a YAML or JSON body.
fn document(body: &[u8], what: &str) -> Result<Value, ApiError> {
    crate::manifests::documents(what, body, 16)
        .map_err(ApiError::bad_request)?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::bad_request(format!("{what}: empty")))
}

async fn import_template(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = crate::http::read_body(&req, payload, MAX_BYTES).await?;
    let doc = document(&body, "template")?;
    let t = state
        .with_store(move |s| catalog::import(s, &p.email, doc))
        .await?;
    super::search::index_template(&state.search, &t);
    Ok(HttpResponse::Created().json(template_line(&t, None)))
}

async fn get_template(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let (t, i) = state
        .with_store(move |s| catalog::template(s, &name))
        .await?;
    let mut v = template_line(&t, i.as_ref());
    v["parameters_schema"] = t.schema.clone().unwrap_or(Value::Null);
    v["form"] = serde_json::to_value(form::fields(t.schema.as_ref())).unwrap_or_default();
    v["rego"] = json!(t.rego.source);
    v["libs"] = json!(t.rego.libs);
    v["document"] = t.document.clone();
    Ok(HttpResponse::Ok().json(v))
}

async fn delete_template(
    state: web::Data<AppState>,
    Auth(p): Auth,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let n = name.clone();
    state
        .with_store(move |s| catalog::delete_template(s, &p.email, &n))
        .await?;
    super::search::forget_template(&state.search, &name);
    Ok(HttpResponse::NoContent().finish())
}

async fn list_constraints(
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let items = state
        .with_store(move |s| {
            cluster(s, id)?;
            Ok::<_, ApiError>(catalog::constraints(s, id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// Reads a constraint body: our JSON form, or a Gatekeeper constraint document.
fn constraint_input(body: &[u8]) -> Result<ConstraintInput, ApiError> {
    let doc = document(body, "constraint")?;
    if doc.get("apiVersion").is_some() && doc.get("spec").is_some() {
        let c = super::Constraint::from_document(&doc)?;
        return Ok(ConstraintInput {
            template: c.kind,
            name: c.name,
            enforcement_action: c.action.as_str().to_string(),
            matcher: c.matcher,
            parameters: Some(c.parameters),
        });
    }
    serde_json::from_value(doc).map_err(|e| ApiError::bad_request(format!("constraint: {e}")))
}

async fn create_constraint(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let body = crate::http::read_body(&req, payload, MAX_BYTES).await?;
    let input = constraint_input(&body)?;
    let search = state.search.clone();
    let stored = state
        .with_store(move |s| {
            cluster(s, id)?;
            let c = catalog::check(s, input)?;
            let stored = catalog::put_constraint(s, &p.email, id, c, true)?;
            after_change(&search, s, id, None);
            Ok::<_, ApiError>(stored)
        })
        .await?;
    Ok(HttpResponse::Created().json(stored))
}

/// After a constraint of cluster `id` changed (`removed`: the one deleted): the cluster is
/// audited again and its constraints re-indexed. The change stands whatever the audit says.
pub(super) fn after_change(
    search: &crate::search::Search,
    store: &Store,
    id: u64,
    removed: Option<(&str, &str)>,
) {
    if let Err(e) = audit::run(store, id) {
        tracing::warn!(cluster = id, error = %e, "gatekeeper audit after a change failed");
    }
    if let Some((kind, name)) = removed {
        super::search::forget_constraint(search, id, kind, name);
    }
    if let Ok(list) = catalog::constraints(store, id) {
        for c in &list {
            super::search::index_constraint(search, store, c);
        }
    }
}

async fn get_constraint(
    state: web::Data<AppState>,
    path: web::Path<(u64, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, kind, name) = path.into_inner();
    let c = state
        .with_store(move |s| catalog::constraint(s, id, &kind, &name))
        .await?;
    Ok(HttpResponse::Ok().json(c))
}

async fn update_constraint(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    path: web::Path<(u64, String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (id, kind, name) = path.into_inner();
    let body = crate::http::read_body(&req, payload, MAX_BYTES).await?;
    let input = constraint_input(&body)?;
    let search = state.search.clone();
    let stored = state
        .with_store(move |s| {
            let c = catalog::check(s, input)?;
            if c.kind != kind || c.name != name {
                return Err(ApiError::bad_request(format!(
                    "the body names {}/{}, the path {kind}/{name}",
                    c.kind, c.name
                )));
            }
            let stored = catalog::put_constraint(s, &p.email, id, c, false)?;
            after_change(&search, s, id, None);
            Ok(stored)
        })
        .await?;
    Ok(HttpResponse::Ok().json(stored))
}

async fn delete_constraint(
    state: web::Data<AppState>,
    Auth(p): Auth,
    path: web::Path<(u64, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, kind, name) = path.into_inner();
    let search = state.search.clone();
    state
        .with_store(move |s| {
            catalog::delete_constraint(s, &p.email, id, &kind, &name)?;
            after_change(&search, s, id, Some((&kind, &name)));
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuditQuery {
    format: String,
}

async fn get_audit(
    state: web::Data<AppState>,
    id: web::Path<u64>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (c, run) = state
        .with_store(move |s| {
            let c = cluster(s, id)?;
            Ok::<_, ApiError>((c, audit::last(s, id)?))
        })
        .await?;
    let run = run.ok_or_else(|| {
        ApiError::not_found(format!(
            "cluster {id} has not been audited (add a constraint)"
        ))
    })?;
    if q.format == "csv" {
        let rows = run.findings.iter().map(|f| {
            vec![
                f.constraint_kind.clone(),
                f.constraint.clone(),
                f.action.as_str().to_string(),
                f.kind.clone(),
                f.namespace.clone(),
                f.name.clone(),
                f.msg.clone(),
            ]
        });
        let body = csv(
            &[
                "constraint_kind",
                "constraint",
                "action",
                "kind",
                "namespace",
                "name",
                "message",
            ],
            rows,
        );
        return Ok(csv_response(&format!("gatekeeper-{}", c.name), body));
    }
    Ok(HttpResponse::Ok().json(run))
}

async fn run_audit(
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let run = state
        .with_store(move |s| {
            cluster(s, id)?;
            Ok::<_, ApiError>(audit::run(s, id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(run))
}

async fn history(state: web::Data<AppState>, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let items = state
        .with_store(move |s| {
            cluster(s, id)?;
            Ok::<_, ApiError>(audit::days(s, id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// A dry run: the object (a Kubernetes object or an AdmissionReview) against the cluster's
/// constraints, whatever their enforcement action, or against one draft constraint given
/// beside it (`{"object": ..., "constraint": ...}`).
async fn evaluate(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<u64>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let body = crate::http::read_body(&req, payload, MAX_BYTES).await?;
    let doc = document(&body, "object")?;
    let results = state
        .with_store(move |s| {
            cluster(s, id)?;
            let (object, draft) = match (doc.get("object"), doc.get("constraint")) {
                (Some(o), Some(c)) if o.is_object() => {
                    let input: ConstraintInput = serde_json::from_value(c.clone())
                        .map_err(|e| ApiError::bad_request(format!("constraint: {e}")))?;
                    (o.clone(), Some(catalog::check(s, input)?))
                }
                (Some(o), None) if o.is_object() && doc.get("kind").is_none() => (o.clone(), None),
                _ => (doc, None),
            };
            let constraints = match draft {
                Some(c) => vec![c],
                None => catalog::constraints(s, id)?
                    .into_iter()
                    .map(|c| c.constraint)
                    .collect(),
            };
            let (mut compiled, errors) = Compiled::all(s, constraints)?;
            let review = Review::from_document(object, None);
            super::engine::check_object(&review.object)?;
            let value = regorus::Value::from(review.to_value());
            let mut results = Vec::new();
            for c in compiled.iter_mut() {
                let matched = c.constraint.matcher.matches(&review);
                let (violations, error) = match c.evaluate(&review, &value) {
                    Ok(v) => (v, None),
                    Err(e) => (Vec::new(), Some(e.to_string())),
                };
                results.push(json!({
                    "kind": c.constraint.kind,
                    "name": c.constraint.name,
                    "enforcement_action": c.constraint.action,
                    "matched": matched,
                    "violations": violations,
                    "error": error,
                }));
            }
            Ok::<_, ApiError>(json!({"results": results, "errors": errors}))
        })
        .await?;
    Ok(HttpResponse::Ok().json(results))
}

/// What the cluster's Gatekeeper holds against what Bulwark would push.
async fn in_cluster(
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let drift = super::push::status(&state.store, state.sealer()?, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(drift))
}

/// Installs or updates the cluster's templates and constraints in its Gatekeeper.
async fn push(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let drift = super::push::push(&state.store, state.sealer()?, &p.email, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(drift))
}

/// Removes everything Bulwark pushed from the cluster's Gatekeeper.
async fn remove_pushed(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let removed =
        super::push::remove(&state.store, state.sealer()?, &p.email, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(json!({ "removed": removed })))
}
