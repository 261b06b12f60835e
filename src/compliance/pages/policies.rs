//! Policies: the list and the form.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::names;
use crate::clusters::Cluster;
use crate::compliance::model::{Limits, Policy, ScannerRule};
use crate::compliance::service::{self as svc, PolicyInput};
use crate::http::layout::{redirect_with_flash, render, render_status, Layout};
use crate::http::{Actor, ApiError, AppState, Auth, Perm, Principal, Routes};

/// Registers these pages.
pub(super) fn routes(r: &mut Routes) {
    r.page("/policies", Perm::Read, policies_page);
    r.page("/policies/new", Perm::Write, policy_new_page);
    r.form("/policies", Perm::Write, policy_create_form);
    r.page("/policies/{id}", Perm::Read, policy_page);
    r.form("/policies/{id}", Perm::Write, policy_update_form);
}

#[derive(Template)]
#[template(path = "compliance/policies.html")]
struct PoliciesPage {
    layout: Layout,
    policies: Vec<Policy>,
    clusters: Vec<Cluster>,
    can_write: bool,
}

impl PoliciesPage {
    fn scope(&self, p: &Policy) -> String {
        match &p.clusters {
            None => "all clusters".into(),
            some => names(some, |id| {
                self.clusters
                    .iter()
                    .find(|c| c.id == id)
                    .map(|c| c.name.clone())
            }),
        }
    }
}

fn limits_text(l: &Limits) -> String {
    let parts: Vec<String> = [
        ("critical", l.critical),
        ("high", l.high),
        ("medium", l.medium),
        ("low", l.low),
        ("negligible", l.negligible),
    ]
    .iter()
    .filter_map(|(n, v)| v.map(|v| format!("{n} ≤ {v}")))
    .collect();
    if parts.is_empty() {
        "no limit".into()
    } else {
        parts.join(", ")
    }
}

async fn policies_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
) -> Result<HttpResponse, ApiError> {
    let (policies, clusters) = state
        .store
        .run(|s| Ok::<_, ApiError>((svc::list_policies(s)?, crate::clusters::list(s)?)))
        .await?;
    let layout = Layout::new(&state, &p, "Policies", "/policies");
    render(&PoliciesPage {
        layout,
        policies,
        clusters,
        can_write: p.can(Perm::Write),
    })
}

#[derive(Template)]
#[template(path = "compliance/policy.html")]
struct PolicyPage {
    layout: Layout,
    policy: Option<Policy>,
    form: PolicyForm,
    clusters: Vec<Cluster>,
    error: String,
    can_write: bool,
}

/// The policy form: one Trivy rule (the API takes any number of scanner rules).
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct PolicyForm {
    name: String,
    description: String,
    active: Option<String>,
    required: Option<String>,
    all_clusters: Option<String>,
    grace_period_days: String,
    rescan_period_days: String,
    fixable_critical: String,
    fixable_high: String,
    fixable_medium: String,
    fixable_low: String,
    fixable_negligible: String,
    unfixable_critical: String,
    unfixable_high: String,
    unfixable_medium: String,
    unfixable_low: String,
    unfixable_negligible: String,
}

impl PolicyForm {
    fn of(p: &Policy) -> PolicyForm {
        let rule = p.scanners.first();
        let n = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
        let fx = rule.map(|r| r.fixable.clone()).unwrap_or_default();
        let ux = rule.map(|r| r.unfixable.clone()).unwrap_or_default();
        PolicyForm {
            name: p.name.clone(),
            description: p.description.clone(),
            active: p.active.then(|| "1".into()),
            required: p.required.then(|| "1".into()),
            all_clusters: p.clusters.is_none().then(|| "1".into()),
            grace_period_days: p.grace_period_days.to_string(),
            rescan_period_days: p.rescan_period_days.to_string(),
            fixable_critical: n(fx.critical),
            fixable_high: n(fx.high),
            fixable_medium: n(fx.medium),
            fixable_low: n(fx.low),
            fixable_negligible: n(fx.negligible),
            unfixable_critical: n(ux.critical),
            unfixable_high: n(ux.high),
            unfixable_medium: n(ux.medium),
            unfixable_low: n(ux.low),
            unfixable_negligible: n(ux.negligible),
        }
    }

    fn input(&self, clusters: Vec<u64>) -> Result<PolicyInput, String> {
        let n = |field: &str, v: &str| -> Result<Option<u32>, String> {
            let v = v.trim();
            if v.is_empty() {
                Ok(None)
            } else {
                v.parse().map(Some).map_err(|_| {
                    format!("{field}: '{v}' is not a whole number (leave it empty for no limit)")
                })
            }
        };
        let days = |field: &str, v: &str| -> Result<u32, String> { Ok(n(field, v)?.unwrap_or(0)) };
        Ok(PolicyInput {
            name: self.name.clone(),
            description: self.description.clone(),
            active: self.active.is_some(),
            required: self.required.is_some(),
            clusters: if self.all_clusters.is_some() {
                None
            } else {
                Some(clusters)
            },
            scanners: vec![ScannerRule {
                scanner: "trivy".into(),
                enabled: true,
                required: true,
                fixable: Limits {
                    critical: n("fixable critical", &self.fixable_critical)?,
                    high: n("fixable high", &self.fixable_high)?,
                    medium: n("fixable medium", &self.fixable_medium)?,
                    low: n("fixable low", &self.fixable_low)?,
                    negligible: n("fixable negligible", &self.fixable_negligible)?,
                },
                unfixable: Limits {
                    critical: n("unfixable critical", &self.unfixable_critical)?,
                    high: n("unfixable high", &self.unfixable_high)?,
                    medium: n("unfixable medium", &self.unfixable_medium)?,
                    low: n("unfixable low", &self.unfixable_low)?,
                    negligible: n("unfixable negligible", &self.unfixable_negligible)?,
                },
            }],
            grace_period_days: days("grace period", &self.grace_period_days)?,
            rescan_period_days: days("rescan period", &self.rescan_period_days)?,
        })
    }
}

/// Parses the form body by hand: several `cluster` fields.
fn parse_policy_form(body: &[u8]) -> (PolicyForm, Vec<u64>) {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let clusters = pairs
        .iter()
        .filter(|(k, _)| k == "cluster")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let rest: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, _)| k != "cluster" && k != "csrf")
        .collect();
    let form = serde_urlencoded_like(&rest);
    (form, clusters)
}

fn serde_urlencoded_like(pairs: &[(String, String)]) -> PolicyForm {
    let v: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::from_value(serde_json::Value::Object(v)).unwrap_or_default()
}

async fn policy_new_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
) -> Result<HttpResponse, ApiError> {
    let clusters = state.with_store(crate::clusters::list).await?;
    let form = PolicyForm::of(&crate::compliance::model::default_policy(0));
    let form = PolicyForm {
        name: String::new(),
        description: String::new(),
        ..form
    };
    render(&PolicyPage {
        layout: Layout::new(&state, &p, "New policy", "/policies"),
        policy: None,
        form,
        clusters,
        error: String::new(),
        can_write: true,
    })
}

async fn policy_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (policy, clusters) = state
        .store
        .run(move |s| {
            Ok::<_, ApiError>((
                svc::get_policy(s, id).map_err(ApiError::from)?,
                crate::clusters::list(s)?,
            ))
        })
        .await?;
    let form = PolicyForm::of(&policy);
    let layout = Layout::new(&state, &p, policy.name.clone(), "/policies");
    render(&PolicyPage {
        layout,
        policy: Some(policy),
        form,
        clusters,
        error: String::new(),
        can_write: p.can(Perm::Write),
    })
}

async fn policy_save(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    id: Option<u64>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (form, cluster_ids) = parse_policy_form(&body);
    let a = Actor::from_request(&p, &req);
    let input = form.input(cluster_ids);
    let f2 = form.clone();
    let res = state
        .store
        .run(move |s| {
            let out = match input {
                Err(m) => Err(svc::ComplianceError::Invalid(m)),
                Ok(input) => match id {
                    Some(id) => svc::update_policy(s, &a, id, input),
                    None => svc::create_policy(s, &a, input),
                },
            };
            Ok::<_, ApiError>((
                out,
                crate::clusters::list(s)?,
                id.map(|i| svc::get_policy(s, i)).transpose().ok().flatten(),
            ))
        })
        .await?;
    match res {
        (Ok(policy), _, _) => Ok(redirect_with_flash(
            &state,
            &p,
            "/policies",
            &format!("Saved policy {}", policy.name),
        )),
        (
            Err(e @ (svc::ComplianceError::Invalid(_) | svc::ComplianceError::NotFound(_))),
            clusters,
            policy,
        ) => render_status(
            &PolicyPage {
                layout: Layout::new(&state, &p, "Policy", "/policies"),
                policy,
                form: f2,
                clusters,
                error: e.to_string(),
                can_write: true,
            },
            actix_web::http::StatusCode::BAD_REQUEST,
        ),
        (Err(e), _, _) => Err(e.into()),
    }
}

async fn policy_create_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    policy_save(state, req, p, None, body).await
}

async fn policy_update_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    policy_save(state, req, p, Some(id.into_inner()), body).await
}

impl PoliciesPage {
    fn limits(&self, l: &Limits) -> String {
        limits_text(l)
    }
}
