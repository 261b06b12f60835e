//! Gatekeeper pages: the template library (with import), one template with the form that
//! creates a constraint from it, a cluster's constraints with its last audit, and the edit
//! form of one constraint. Forms post back here and work without JavaScript.

use std::collections::{BTreeMap, HashMap};

use actix_web::{web, HttpResponse};
use askama::Template as Askama;
use chrono::{Duration, Utc};

use super::audit;
use super::catalog::{self, ConstraintInput};
use super::form::{self, Field};
use super::{Action, Match, Template};
use crate::gatekeeper::constraint::{Kinds, Selector};
use crate::http::layout::{redirect_with_flash, render, Layout};
use crate::http::{ApiError, AppState, Auth, Perm, Principal, Routes};
use crate::posture::chart::{legend, line_chart, Series};

pub(super) fn routes(r: &mut Routes) {
    r.page("/gatekeeper", Perm::Read, library_page);
    r.nav(24, "Gatekeeper", "/gatekeeper", Perm::Read);
    r.form("/gatekeeper/templates", Perm::Write, import_form);
    r.page("/gatekeeper/templates/{name}", Perm::Read, template_page);
    r.form(
        "/gatekeeper/templates/{name}/delete",
        Perm::Write,
        delete_template_form,
    );
    r.page("/clusters/{id}/gatekeeper", Perm::Read, cluster_page);
    r.form(
        "/clusters/{id}/gatekeeper/constraints",
        Perm::Write,
        constraint_form,
    );
    r.page(
        "/clusters/{id}/gatekeeper/{kind}/{name}",
        Perm::Read,
        constraint_page,
    );
    r.form(
        "/clusters/{id}/gatekeeper/{kind}/{name}/delete",
        Perm::Write,
        delete_constraint_form,
    );
    r.form("/clusters/{id}/gatekeeper/audit", Perm::Write, audit_form);
    r.page(
        "/clusters/{id}/gatekeeper-in-cluster",
        Perm::Read,
        in_cluster_page,
    );
    r.form(
        "/clusters/{id}/gatekeeper-in-cluster/push",
        Perm::Write,
        push_form,
    );
    r.form(
        "/clusters/{id}/gatekeeper-in-cluster/remove",
        Perm::Write,
        remove_form,
    );
}

struct TemplateLine {
    name: String,
    kind: String,
    title: String,
    description: String,
    bundled: bool,
}

fn line(t: &Template, bundled: bool) -> TemplateLine {
    TemplateLine {
        name: t.name.clone(),
        kind: t.kind.clone(),
        title: if t.title.is_empty() {
            t.kind.clone()
        } else {
            t.title.clone()
        },
        description: t.description.clone(),
        bundled,
    }
}

#[derive(Askama)]
#[template(path = "gatekeeper/library.html")]
struct LibraryPage {
    layout: Layout,
    can_write: bool,
    templates: Vec<TemplateLine>,
}

async fn library_page(state: web::Data<AppState>, Auth(p): Auth) -> Result<HttpResponse, ApiError> {
    let templates = state
        .with_store(|s| Ok::<_, ApiError>(catalog::templates(s)?))
        .await?;
    render(&LibraryPage {
        layout: Layout::new(
            &state,
            &p,
            "Gatekeeper templates".to_string(),
            "/gatekeeper",
        ),
        can_write: p.can(Perm::Write),
        templates: templates
            .iter()
            .map(|(t, i)| line(t, i.is_none()))
            .collect(),
    })
}

#[derive(serde::Deserialize)]
struct ImportForm {
    document: String,
}

async fn import_form(
    state: web::Data<AppState>,
    Auth(p): Auth,
    f: web::Form<ImportForm>,
) -> Result<HttpResponse, ApiError> {
    let email = p.email.clone();
    let text = f.into_inner().document;
    let result = state
        .with_store(move |s| {
            let doc = crate::manifests::documents("template", text.as_bytes(), 16)
                .map_err(ApiError::bad_request)?
                .into_iter()
                .next()
                .ok_or_else(|| ApiError::bad_request("the template is empty"))?;
            Ok::<_, ApiError>(catalog::import(s, &email, doc)?)
        })
        .await;
    if let Ok(t) = &result {
        super::search::index_template(&state.search, t);
    }
    Ok(match result {
        Ok(t) => redirect_with_flash(
            &state,
            &p,
            &format!("/gatekeeper/templates/{}", t.name),
            &format!("Template {} imported.", t.kind),
        ),
        Err(e) => redirect_with_flash(&state, &p, "/gatekeeper#import", &e.message),
    })
}

/// The constraint form's values.
#[derive(Default)]
struct Draft {
    cluster: u64,
    name: String,
    action: String,
    kinds: String,
    scope: String,
    namespaces: String,
    excluded: String,
    labels: String,
    object_name: String,
    params: HashMap<String, String>,
}

impl Draft {
    fn param(&self, path: &str) -> &str {
        self.params
            .get(&format!("p.{path}"))
            .map_or("", String::as_str)
    }

    fn of(cluster: u64, c: &super::Constraint, fields: &[Field]) -> Draft {
        let m = &c.matcher;
        Draft {
            cluster,
            name: c.name.clone(),
            action: c.action.as_str().to_string(),
            kinds: m
                .kinds
                .iter()
                .flat_map(|k| {
                    k.api_groups.iter().flat_map(move |g| {
                        k.kinds.iter().map(move |kind| {
                            if g.is_empty() {
                                kind.clone()
                            } else {
                                format!("{g}/{kind}")
                            }
                        })
                    })
                })
                .collect::<Vec<_>>()
                .join("\n"),
            scope: m.scope.clone(),
            namespaces: m.namespaces.join("\n"),
            excluded: m.excluded_namespaces.join("\n"),
            labels: m
                .label_selector
                .as_ref()
                .map(|s| {
                    s.match_labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default(),
            object_name: m.name.clone(),
            params: form::values(fields, &c.parameters),
        }
    }
}

fn lines(s: &str) -> Vec<String> {
    s.split(['\n', ','])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The match settings of a submitted form.
fn matcher(f: &HashMap<String, String>) -> Result<Match, String> {
    let get = |k: &str| f.get(k).map_or("", String::as_str);
    let mut kinds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in lines(get("kinds")) {
        let (g, k) = l.rsplit_once('/').unwrap_or(("", &l));
        kinds.entry(g.to_string()).or_default().push(k.to_string());
    }
    let mut labels = BTreeMap::new();
    for l in lines(get("labels")) {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| format!("labels: '{l}' is not key=value"))?;
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(Match {
        kinds: kinds
            .into_iter()
            .map(|(g, k)| Kinds {
                api_groups: vec![g],
                kinds: k,
            })
            .collect(),
        scope: get("scope").to_string(),
        namespaces: lines(get("namespaces")),
        excluded_namespaces: lines(get("excluded")),
        label_selector: (!labels.is_empty()).then(|| Selector {
            match_labels: labels,
            match_expressions: Vec::new(),
        }),
        namespace_selector: None,
        name: get("object_name").trim().to_string(),
    })
}

struct ClusterOption {
    id: u64,
    name: String,
}

#[derive(Askama)]
#[template(path = "gatekeeper/template.html")]
struct TemplatePage {
    layout: Layout,
    can_write: bool,
    t: TemplateLine,
    rego: String,
    fields: Vec<Field>,
    clusters: Vec<ClusterOption>,
    draft: Draft,
    editing: bool,
}

async fn template_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let ((t, i), clusters) = state
        .with_store(move |s| {
            Ok::<_, ApiError>((catalog::template(s, &name)?, crate::clusters::list(s)?))
        })
        .await?;
    render(&TemplatePage {
        layout: Layout::new(&state, &p, t.kind.clone(), "/gatekeeper"),
        can_write: p.can(Perm::Write),
        rego: t.rego.source.clone(),
        fields: form::fields(t.schema.as_ref()),
        clusters: clusters
            .into_iter()
            .map(|c| ClusterOption {
                id: c.id,
                name: c.name,
            })
            .collect(),
        draft: Draft {
            action: "deny".into(),
            ..Draft::default()
        },
        editing: false,
        t: line(&t, i.is_none()),
    })
}

async fn delete_template_form(
    state: web::Data<AppState>,
    Auth(p): Auth,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let email = p.email.clone();
    let search = state.search.clone();
    let n2 = name.clone();
    let r = state
        .with_store(move |s| catalog::delete_template(s, &email, &n2))
        .await;
    if r.is_ok() {
        super::search::forget_template(&search, &name);
    }
    Ok(match r {
        Ok(()) => redirect_with_flash(
            &state,
            &p,
            "/gatekeeper",
            &format!("Template {name} deleted."),
        ),
        Err(e) => redirect_with_flash(
            &state,
            &p,
            &format!("/gatekeeper/templates/{name}"),
            &e.message,
        ),
    })
}

/// Creates or changes a constraint from the form (the cluster is in the form when it comes
/// from a template's page).
async fn constraint_form(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
    f: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let f = f.into_inner();
    let id = f
        .get("cluster")
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| id.into_inner());
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let template = get("template");
    let editing = f.contains_key("editing");
    let back = if editing {
        format!("/clusters/{id}/gatekeeper/{}/{}", get("kind"), get("name"))
    } else {
        format!("/gatekeeper/templates/{template}")
    };
    let (name, action) = (get("name").trim().to_string(), get("action"));
    let email = p.email.clone();
    let search = state.search.clone();
    let result = state
        .with_store(move |s| {
            let (t, _) = catalog::template(s, &template)?;
            let fields = form::fields(t.schema.as_ref());
            let parameters =
                form::parse(&fields, &f).map_err(|e| ApiError::bad_request(e.join("; ")))?;
            let input = ConstraintInput {
                template: t.kind.clone(),
                name,
                enforcement_action: action,
                matcher: matcher(&f).map_err(ApiError::bad_request)?,
                parameters: Some(parameters),
            };
            let c = catalog::check(s, input)?;
            let stored = catalog::put_constraint(s, &email, id, c, !editing)?;
            super::api::after_change(&search, s, id, None);
            Ok::<_, ApiError>(stored)
        })
        .await;
    Ok(match result {
        Ok(c) => redirect_with_flash(
            &state,
            &p,
            &format!("/clusters/{id}/gatekeeper"),
            &format!(
                "Constraint {} saved ({}); the cluster was audited again.",
                c.constraint.name,
                c.constraint.action.as_str()
            ),
        ),
        Err(e) => redirect_with_flash(&state, &p, &back, &e.message),
    })
}

struct ConstraintLine {
    kind: String,
    name: String,
    action: Action,
    violations: Option<usize>,
    errors: usize,
    by: String,
}

/// (constraint, message, action, excusing exception) of one violation.
type Message = (String, String, Action, Option<u64>);

struct Group {
    namespace: String,
    name: String,
    kind: String,
    messages: Vec<Message>,
}

#[derive(Askama)]
#[template(path = "gatekeeper/cluster.html")]
struct ClusterPage {
    layout: Layout,
    can_write: bool,
    cluster_id: u64,
    cluster_name: String,
    constraints: Vec<ConstraintLine>,
    run: Option<audit::Run>,
    groups: Vec<Group>,
    chart: String,
    chart_legend: String,
}

async fn cluster_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (c, constraints, run, days) = state
        .with_store(move |s| {
            let c = crate::clusters::get(s, id)?;
            Ok::<_, ApiError>((
                c,
                catalog::constraints(s, id)?,
                audit::last(s, id)?,
                audit::days(s, id)?,
            ))
        })
        .await?;
    let counted = |kind: &str, name: &str| {
        run.as_ref().and_then(|r| {
            r.constraints
                .iter()
                .find(|t| t.kind == kind && t.name == name)
        })
    };
    let constraints = constraints
        .into_iter()
        .map(|s| {
            let t = counted(&s.constraint.kind, &s.constraint.name);
            ConstraintLine {
                violations: t.map(|t| t.violations),
                errors: t.map_or(0, |t| t.errors),
                kind: s.constraint.kind,
                name: s.constraint.name,
                action: s.constraint.action,
                by: s.by,
            }
        })
        .collect();
    // Violations by namespace and object.
    let mut grouped: BTreeMap<(String, String, String), Vec<Message>> = BTreeMap::new();
    for f in run.iter().flat_map(|r| &r.findings) {
        grouped
            .entry((f.namespace.clone(), f.kind.clone(), f.name.clone()))
            .or_default()
            .push((f.constraint.clone(), f.msg.clone(), f.action, f.excused_by));
    }
    let groups = grouped
        .into_iter()
        .map(|((namespace, kind, name), messages)| Group {
            namespace,
            name,
            kind,
            messages,
        })
        .collect();
    let today = Utc::now().date_naive();
    let span: Vec<_> = (0..30).rev().map(|d| today - Duration::days(d)).collect();
    let labels: Vec<String> = span.iter().map(|d| d.format("%m-%d").to_string()).collect();
    let series = |name: &str, pick: fn(&audit::Day) -> usize| Series {
        name: name.to_string(),
        values: span
            .iter()
            .map(|d| days.iter().find(|x| x.date == *d).map(|x| pick(x) as f64))
            .collect(),
    };
    let lines = vec![
        series("deny", |d| d.deny),
        series("warn", |d| d.warn),
        series("dryrun", |d| d.dryrun),
    ];
    render(&ClusterPage {
        layout: Layout::new(&state, &p, format!("{}: Gatekeeper", c.name), "/clusters"),
        can_write: p.can(Perm::Write),
        cluster_id: id,
        cluster_name: c.name,
        constraints,
        groups,
        run,
        chart: line_chart(
            "Violations by enforcement action and day",
            &labels,
            &lines,
            None,
            "",
        ),
        chart_legend: legend(&lines),
    })
}

async fn constraint_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    path: web::Path<(u64, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, kind, name) = path.into_inner();
    let (stored, (t, i), clusters) = state
        .with_store(move |s| {
            let c = catalog::constraint(s, id, &kind, &name)?;
            let t = catalog::template(s, &c.constraint.kind)?;
            Ok::<_, ApiError>((c, t, crate::clusters::list(s)?))
        })
        .await?;
    let fields = form::fields(t.schema.as_ref());
    render(&TemplatePage {
        layout: Layout::new(
            &state,
            &p,
            format!("{} {}", stored.constraint.kind, stored.constraint.name),
            "/clusters",
        ),
        can_write: p.can(Perm::Write),
        rego: t.rego.source.clone(),
        draft: Draft::of(id, &stored.constraint, &fields),
        fields,
        clusters: clusters
            .into_iter()
            .filter(|c| c.id == id)
            .map(|c| ClusterOption {
                id: c.id,
                name: c.name,
            })
            .collect(),
        editing: true,
        t: line(&t, i.is_none()),
    })
}

async fn delete_constraint_form(
    state: web::Data<AppState>,
    Auth(p): Auth,
    path: web::Path<(u64, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, kind, name) = path.into_inner();
    let email = p.email.clone();
    let search = state.search.clone();
    let n2 = name.clone();
    let r = state
        .with_store(move |s| {
            catalog::delete_constraint(s, &email, id, &kind, &n2)?;
            super::api::after_change(&search, s, id, Some((&kind, &n2)));
            Ok::<_, ApiError>(())
        })
        .await;
    let msg = match r {
        Ok(()) => format!("Constraint {name} deleted."),
        Err(e) => e.message,
    };
    Ok(redirect_with_flash(
        &state,
        &p,
        &format!("/clusters/{id}/gatekeeper"),
        &msg,
    ))
}

async fn audit_form(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let r = state
        .with_store(move |s| Ok::<_, ApiError>(audit::run(s, id)?))
        .await;
    let msg = match r {
        Ok(run) => format!(
            "Audited {} objects against {} constraints: {} violations.",
            run.objects,
            run.constraints.len(),
            run.violations
        ),
        Err(e) => e.message,
    };
    Ok(redirect_with_flash(
        &state,
        &p,
        &format!("/clusters/{id}/gatekeeper"),
        &msg,
    ))
}

#[derive(Askama)]
#[template(path = "gatekeeper/in_cluster.html")]
struct InClusterPage {
    layout: Layout,
    can_write: bool,
    cluster_id: u64,
    cluster_name: String,
    drift: Option<super::push::Drift>,
    problem: String,
}

/// What the cluster's Gatekeeper holds against what Bulwark would push.
async fn in_cluster_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let c = state
        .with_store(move |s| Ok::<_, ApiError>(crate::clusters::get(s, id)?))
        .await?;
    let (drift, problem) = match super::push::status(&state.store, state.sealer()?, id).await {
        Ok(d) => (Some(d), String::new()),
        Err(e) => (None, ApiError::from(e).message),
    };
    render(&InClusterPage {
        layout: Layout::new(
            &state,
            &p,
            format!("{}: Gatekeeper in the cluster", c.name),
            "/clusters",
        ),
        can_write: p.can(Perm::Write),
        cluster_id: id,
        cluster_name: c.name,
        drift,
        problem,
    })
}

/// Back to the cluster's in-cluster Gatekeeper page, with what a form did.
fn back_to_in_cluster(state: &AppState, p: &Principal, id: u64, msg: &str) -> HttpResponse {
    redirect_with_flash(
        state,
        p,
        &format!("/clusters/{id}/gatekeeper-in-cluster"),
        msg,
    )
}

async fn push_form(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let msg = match super::push::push(&state.store, state.sealer()?, &p.email, id).await {
        Ok(d) => format!(
            "Pushed {} objects to the cluster's Gatekeeper{}.",
            d.objects.len(),
            if d.in_sync {
                "; it is in sync"
            } else {
                "; some still differ"
            }
        ),
        Err(e) => ApiError::from(e).message,
    };
    Ok(back_to_in_cluster(&state, &p, id, &msg))
}

async fn remove_form(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let msg = match super::push::remove(&state.store, state.sealer()?, &p.email, id).await {
        Ok(n) => format!("Removed {n} objects Bulwark had pushed."),
        Err(e) => ApiError::from(e).message,
    };
    Ok(back_to_in_cluster(&state, &p, id, &msg))
}
