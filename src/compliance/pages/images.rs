//! The image list (filterable) and an image with every finding's judgement.

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::admission::Admission;
use crate::clusters::Cluster;
use crate::compliance::evaluate::Judgement;
use crate::compliance::model::{Exception, Policy};
use crate::compliance::service::{self as svc};
use crate::http::layout::{render, Layout};
use crate::http::{ApiError, AppState, Auth, Perm, Routes};
use crate::images::{self, Finding, Image, ScanState, Severity};

/// Registers these pages.
pub(super) fn routes(r: &mut Routes) {
    r.page("/images", Perm::Read, images_page);
    r.page("/images/{id}", Perm::Read, image_page);
}

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

impl ImagePage {
    fn state_text(&self) -> String {
        self.image.scan_state.describe()
    }
}
