//! Compliance pages: images (filterable), image detail with every finding's judgement, policies,
//! exceptions (request, approve, comment) and admission decisions.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::evaluate::Judgement;
use super::model::{Exception, ExceptionKind, ExceptionStatus, Limits, Policy, ScannerRule};
use super::service::{self as svc, Actor, ExceptionInput, PolicyInput};
use crate::admission::{self, Admission};
use crate::clusters::Cluster;
use crate::http::layout::{redirect_with_flash, render, render_status, Layout};
use crate::http::{client_ip, ApiError, AppState, Auth, Perm, Principal, Routes};
use crate::images::{self, Finding, Image, ScanState, Severity};

/// Registers the pages.
pub fn pages(r: &mut Routes) {
    r.page("/images", Perm::Read, images_page);
    r.page("/images/{id}", Perm::Read, image_page);
    r.page("/policies", Perm::Read, policies_page);
    r.page("/policies/new", Perm::Write, policy_new_page);
    r.form("/policies", Perm::Write, policy_create_form);
    r.page("/policies/{id}", Perm::Read, policy_page);
    r.form("/policies/{id}", Perm::Write, policy_update_form);
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
    r.page("/admission", Perm::Read, admission_page);
    r.nav(20, "Images", "/images", Perm::Read);
    r.nav(21, "Policies", "/policies", Perm::Read);
    r.nav(22, "Exceptions", "/exceptions", Perm::Read);
    r.nav(23, "Admission", "/admission", Perm::Read);
}

fn actor(p: &Principal, req: &HttpRequest) -> Actor {
    Actor {
        name: p.actor(),
        role: p.role,
        ip: client_ip(req),
    }
}

// ---------------------------------------------------------------- images

struct ImageRow {
    image: Image,
    status: &'static str,
    reason: String,
    critical: u32,
    high: u32,
    medium: u32,
    low: u32,
}

#[derive(Template)]
#[template(path = "compliance/images.html")]
struct ImagesPage {
    layout: Layout,
    clusters: Vec<Cluster>,
    rows: Vec<ImageRow>,
    total: usize,
    cluster: String,
    compliance: String,
    severity: String,
    q: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ImagesQuery {
    cluster: String,
    compliance: String,
    severity: String,
    q: String,
}

async fn images_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    q: web::Query<ImagesQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let adm = state
        .domains
        .get::<Admission>()
        .ok_or_else(|| ApiError::internal("admission not configured"))?;
    let (clusters, all) = state
        .store
        .run(|s| Ok::<_, ApiError>((crate::clusters::list(s)?, images::list(s)?)))
        .await?;
    let snap = match adm.index.fresh() {
        Some(s) => s,
        None => {
            let a = adm.clone();
            tokio::task::spawn_blocking(move || a.index.refresh())
                .await
                .map_err(ApiError::internal)??
        }
    };
    let selected = clusters
        .iter()
        .find(|c| c.id.to_string() == q.cluster || c.name == q.cluster)
        .cloned();
    let needle = q.q.to_lowercase();
    let severity = (!q.severity.is_empty()).then(|| Severity::parse(&q.severity));
    let total = all.len();
    let mut rows = Vec::new();
    for image in all {
        if selected
            .as_ref()
            .is_some_and(|c| !image.clusters.contains(&c.id))
        {
            continue;
        }
        if !needle.is_empty()
            && !image.name().to_lowercase().contains(&needle)
            && !image.tags.iter().any(|t| t.contains(&needle))
        {
            continue;
        }
        let counts = image
            .last_scan
            .as_ref()
            .map(|s| s.counts.clone())
            .unwrap_or_default();
        if let Some(s) = severity {
            if counts.total(s) == 0 {
                continue;
            }
        }
        // Judge in the chosen cluster, else in the first cluster it was seen in.
        let judge_in = selected.clone().or_else(|| {
            image
                .clusters
                .first()
                .and_then(|id| clusters.iter().find(|c| c.id == *id).cloned())
        });
        let (status, reason) = match (
            &image.scan_state,
            judge_in.and_then(|c| snap.image_verdict(&c, &image.key())),
        ) {
            (ScanState::Unscanned | ScanState::Queued { .. }, _) if image.last_scan.is_none() => {
                ("unscanned", String::new())
            }
            (_, Some(v)) if v.compliant => ("compliant", String::new()),
            (_, Some(v)) => (
                "non-compliant",
                v.reasons.first().cloned().unwrap_or_default(),
            ),
            (_, None) => ("unknown", "not seen in a cluster".to_string()),
        };
        if !q.compliance.is_empty() && q.compliance != status {
            continue;
        }
        rows.push(ImageRow {
            critical: counts.total(Severity::Critical),
            high: counts.total(Severity::High),
            medium: counts.total(Severity::Medium),
            low: counts.total(Severity::Low),
            image,
            status,
            reason,
        });
        if rows.len() >= 1000 {
            break;
        }
    }
    render(&ImagesPage {
        layout: Layout::new(&state, &p, "Images", "/images"),
        clusters,
        rows,
        total,
        cluster: q.cluster,
        compliance: q.compliance,
        severity: q.severity,
        q: q.q,
    })
}

struct FindingRow {
    finding: Finding,
    judgement: String,
    class: &'static str,
}

#[derive(Template)]
#[template(path = "compliance/image.html")]
struct ImagePage {
    layout: Layout,
    image: Image,
    clusters: Vec<Cluster>,
    cluster: Option<Cluster>,
    namespace: String,
    compliant: Option<bool>,
    reasons: Vec<String>,
    findings: Vec<FindingRow>,
    exceptions: Vec<Exception>,
    can_request: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ImageQuery {
    cluster: String,
    namespace: String,
}

fn describe(
    judgements: &[Judgement],
    exceptions: &[Exception],
    policies: &[Policy],
) -> (String, &'static str) {
    let name = |id: u64| {
        policies
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| format!("policy {id}"))
    };
    let title = |id: u64| {
        exceptions
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.title.clone())
            .unwrap_or_else(|| format!("exception {id}"))
    };
    let mut parts = Vec::new();
    let mut class = "ok";
    for j in judgements {
        if let Some(o) = j.overridden_by {
            parts.push(format!(
                "severity {} by override \"{}\"",
                j.severity.as_str(),
                title(o)
            ));
        }
        if let Some(e) = j.excepted_by {
            parts.push(format!("excepted by \"{}\"", title(e)));
        } else if let Some(v) = &j.violation {
            parts.push(v.clone());
            if !j.advisory {
                class = "bad";
            }
        } else {
            parts.push(format!("within the limits of \"{}\"", name(j.policy_id)));
        }
    }
    if parts.is_empty() {
        parts.push("not judged by any policy".into());
    }
    (parts.join("; "), class)
}

async fn image_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
    q: web::Query<ImageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, q) = (id.into_inner(), q.into_inner());
    let page = state
        .store
        .run(move |s| {
            let image = images::get(s, id).map_err(ApiError::from)?;
            let clusters = crate::clusters::list(s)?;
            let cluster = clusters
                .iter()
                .find(|c| c.id.to_string() == q.cluster || c.name == q.cluster)
                .or_else(|| {
                    image
                        .clusters
                        .first()
                        .and_then(|i| clusters.iter().find(|c| c.id == *i))
                })
                .cloned();
            let namespace = q.namespace.trim().to_string();
            let exceptions = svc::list_exceptions(s)?;
            let policies = svc::list_policies(s)?;
            let (verdict, scan) = match &cluster {
                Some(c) => {
                    let ns = (!namespace.is_empty()).then_some(namespace.as_str());
                    let (v, scan) = svc::verdict_for(s, &image, c.id, ns)?;
                    (Some(v), scan)
                }
                None => (None, images::scan(s, id)?),
            };
            let findings: Vec<FindingRow> = scan
                .map(|sc| sc.findings)
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, f)| {
                    let judgements = verdict
                        .as_ref()
                        .and_then(|v| v.findings.get(i))
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    let (judgement, class) = describe(judgements, &exceptions, &policies);
                    FindingRow {
                        finding: f,
                        judgement,
                        class,
                    }
                })
                .collect();
            let applied: Vec<Exception> = exceptions
                .into_iter()
                .filter(|e| {
                    verdict.as_ref().is_some_and(|v| {
                        v.findings
                            .iter()
                            .flatten()
                            .any(|j| j.excepted_by == Some(e.id) || j.overridden_by == Some(e.id))
                    })
                })
                .collect();
            Ok::<_, ApiError>((
                image, clusters, cluster, namespace, verdict, findings, applied,
            ))
        })
        .await?;
    let (image, clusters, cluster, namespace, verdict, mut findings, exceptions) = page;
    findings.sort_by_key(|f| (f.class != "bad", f.finding.severity));
    render(&ImagePage {
        layout: Layout::new(&state, &p, image.name(), "/images"),
        compliant: verdict.as_ref().map(|v| v.compliant),
        reasons: verdict.map(|v| v.reasons).unwrap_or_default(),
        image,
        clusters,
        cluster,
        namespace,
        findings,
        exceptions,
        can_request: p.can(Perm::Request),
    })
}

// ---------------------------------------------------------------- policies

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
    let clusters = state
        .store
        .run(|s| crate::clusters::list(s).map_err(ApiError::from))
        .await?;
    let form = PolicyForm::of(&super::model::default_policy(0));
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
    let a = actor(&p, &req);
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

// ---------------------------------------------------------------- exceptions

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
    let all = state
        .store
        .run(|s| svc::list_exceptions(s).map_err(ApiError::from))
        .await?;
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
    let (a, search) = (actor(&p, &req), state.search.clone());
    let res = state
        .store
        .run(move |s| {
            let r = svc::create_exception(s, &a, input);
            if let Ok(e) = &r {
                super::search::reindex_exception(&search, e.id, Some(e));
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
    let all = state
        .store
        .run(|s| svc::list_exceptions(s).map_err(ApiError::from))
        .await?;
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

/// "all" for `None`, else the names of the ids (`#id` for ones that no longer exist).
fn names(ids: &Option<Vec<u64>>, name: impl Fn(u64) -> Option<String>) -> String {
    match ids {
        None => "all".into(),
        Some(ids) => ids
            .iter()
            .map(|id| name(*id).unwrap_or_else(|| format!("#{id}")))
            .collect::<Vec<_>>()
            .join(", "),
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
    let (a, id, search) = (actor(&p, &req), id.into_inner(), state.search.clone());
    let e = state
        .store
        .run(move |s| {
            let e = svc::set_exception_status(s, &a, id, status).map_err(ApiError::from)?;
            super::search::reindex_exception(&search, e.id, Some(&e));
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
    let (a, id, text) = (actor(&p, &req), id.into_inner(), f.into_inner().text);
    let e = state
        .store
        .run(move |s| svc::comment_exception(s, &a, id, &text).map_err(ApiError::from))
        .await?;
    Ok(redirect_with_flash(
        &state,
        &p,
        &format!("/exceptions/{}", e.id),
        "Comment added",
    ))
}

// ---------------------------------------------------------------- admission

/// Queued references the Admission page lists (the oldest; the API has them all).
const QUEUE_SHOWN: usize = 300;

#[derive(Template)]
#[template(path = "compliance/admission.html")]
struct AdmissionPage {
    layout: Layout,
    decisions: Vec<admission::Decision>,
    clusters: Vec<Cluster>,
    queue: Vec<images::Queued>,
    /// References in the queue in all (the page lists the oldest few hundred).
    queued_total: u64,
    stats: images::QueueStats,
    /// Decisions answered but not recorded since start.
    decisions_dropped: u64,
    waiting: Vec<Image>,
}

impl AdmissionPage {
    fn cluster_name(&self, id: &u64) -> String {
        self.clusters
            .iter()
            .find(|c| c.id == *id)
            .map(|c| c.name.clone())
            .unwrap_or_else(|| format!("#{id}"))
    }
}

async fn admission_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
) -> Result<HttpResponse, ApiError> {
    let adm = state
        .domains
        .get::<Admission>()
        .ok_or_else(|| ApiError::internal("admission not configured"))?;
    let decisions_dropped = adm.dropped();
    let (decisions, clusters, queue, queued_total, stats, waiting) = state
        .store
        .run(move |s| {
            adm.flush(s)?;
            let waiting = images::list(s)?
                .into_iter()
                .filter(|i| {
                    matches!(
                        i.scan_state,
                        ScanState::Queued { .. } | ScanState::Failed { .. }
                    )
                })
                .collect();
            Ok::<_, ApiError>((
                admission::decisions(s, 300)?,
                crate::clusters::list(s)?,
                images::queue_head(s, QUEUE_SHOWN)?,
                images::queue_len(s)?,
                images::queue_stats(s)?,
                waiting,
            ))
        })
        .await?;
    render(&AdmissionPage {
        layout: Layout::new(&state, &p, "Admission", "/admission"),
        decisions,
        clusters,
        queue,
        queued_total,
        stats,
        decisions_dropped,
        waiting,
    })
}

impl ImagePage {
    fn state_text(&self) -> String {
        scan_state_text(&self.image.scan_state)
    }
}

impl AdmissionPage {
    fn max_queued(&self) -> u64 {
        images::MAX_QUEUED
    }

    fn state(&self, i: &Image) -> String {
        scan_state_text(&i.scan_state)
    }
}

impl PoliciesPage {
    fn limits(&self, l: &Limits) -> String {
        limits_text(l)
    }
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

/// Used by templates.
fn scan_state_text(s: &ScanState) -> String {
    match s {
        ScanState::Unscanned => "unscanned".into(),
        ScanState::Queued { since, reason } => {
            format!("queued since {} ({reason})", since.format("%Y-%m-%d %H:%M"))
        }
        ScanState::Scanned => "scanned".into(),
        ScanState::Failed { message } => format!("scan failed: {message}"),
    }
}
