//! The image list (filterable) and an image with every finding's judgement.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::clusters::Cluster;
use crate::compliance::evaluate::Judgement;
use crate::compliance::model::{Exception, Policy};
use crate::compliance::service::{self as svc};
use crate::http::layout::{render, Layout};
use crate::http::listing::{self, ListQuery, Order, SortKey, Sorting};
use crate::http::{ApiError, AppState, Auth, Perm, Routes};
use crate::images::{self, Finding, Image, ScanState, Severity};

/// Registers these pages.
pub(super) fn routes(r: &mut Routes) {
    r.page("/images", Perm::Read, images_page);
    r.page("/images/{id}", Perm::Read, image_page);
}

struct ImageRow<'a> {
    image: &'a Image,
    status: &'static str,
    reason: String,
    critical: u32,
    high: u32,
    medium: u32,
    low: u32,
}

/// Columns the image list sorts by.
const SORTING: Sorting = Sorting {
    columns: &[
        ("name", false),
        ("status", false),
        ("critical", true),
        ("high", true),
        ("medium", true),
        ("low", true),
        ("last_scan", true),
    ],
    default: "name",
};

#[derive(Template)]
#[template(path = "compliance/images.html")]
struct ImagesPage<'a> {
    layout: Layout,
    clusters: Vec<Cluster>,
    rows: Vec<ImageRow<'a>>,
    matching: usize,
    total: usize,
    cluster: String,
    compliance: String,
    severity: String,
    q: String,
    query: String,
    order: Order,
    next: Option<String>,
}

impl ImagesPage<'_> {
    /// The header link that sorts by `column` (the other way when it is the current one).
    fn sort_href(&self, column: &str) -> String {
        format!(
            "/images?{}",
            listing::sort_query(&self.query, column, &self.order)
        )
    }

    fn sort_mark(&self, column: &str) -> &'static str {
        listing::sort_mark(column, &self.order)
    }

    fn csv_href(&self) -> String {
        format!(
            "/images?{}",
            listing::with_param(&self.query, "format", "csv")
        )
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ImagesQuery {
    cluster: String,
    compliance: String,
    severity: String,
    q: String,
}

/// Where an image stands in `judge_in` (its first cluster when none is chosen).
fn status_of(
    image: &Image,
    judge_in: Option<&Cluster>,
    snap: &crate::admission::index::Snapshot,
) -> (&'static str, String) {
    match (
        &image.scan_state,
        judge_in.and_then(|c| snap.image_verdict(c, &image.key())),
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
    }
}

async fn images_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    q: web::Query<ImagesQuery>,
) -> Result<HttpResponse, ApiError> {
    let list = ListQuery::of(&req)?;
    let order = SORTING.pick(&list)?;
    let q = q.into_inner();
    let adm = crate::admission::of(&state)?;
    let cache = state
        .domains
        .get::<images::ListCache>()
        .ok_or_else(|| ApiError::internal("image list cache missing"))?;
    let (clusters, all) = state
        .store
        .run(move |s| Ok::<_, ApiError>((crate::clusters::list(s)?, cache.get(s)?)))
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
    // Judging an image costs a pass over its findings: only when the filter or the sort needs
    // every verdict are all of them judged; otherwise only the page's.
    let judge_all = !q.compliance.is_empty() || order.column == "status";
    let judge_in = |image: &Image| {
        selected.clone().or_else(|| {
            image
                .clusters
                .first()
                .and_then(|id| clusters.iter().find(|c| c.id == *id).cloned())
        })
    };
    let mut rows = Vec::new();
    for image in all.iter() {
        if selected
            .as_ref()
            .is_some_and(|c| !image.clusters.contains(&c.id))
        {
            continue;
        }
        if !needle.is_empty()
            && !image.name().to_lowercase().contains(&needle)
            && !image
                .tags
                .iter()
                .any(|t| t.to_lowercase().contains(&needle))
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
        let (status, reason) = if judge_all {
            status_of(image, judge_in(image).as_ref(), &snap)
        } else {
            ("", String::new())
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
    }
    let matching = rows.len();
    let wants_csv = list.wants_csv(&req);
    let paged = if wants_csv {
        ListQuery {
            limit: Some(listing::MAX_LIMIT),
            ..list.clone()
        }
    } else {
        list.clone()
    };
    let (mut rows, next) = listing::page(rows, &order, &paged, |r| {
        let key = match order.column {
            "status" => r.status.into(),
            "critical" => r.critical.into(),
            "high" => r.high.into(),
            "medium" => r.medium.into(),
            "low" => r.low.into(),
            "last_scan" => SortKey::Int(
                r.image
                    .last_scan
                    .as_ref()
                    .map(|s| s.at.timestamp_millis())
                    .unwrap_or(0),
            ),
            _ => r.image.name().into(),
        };
        (key, r.image.id)
    })?;
    if !judge_all {
        for r in &mut rows {
            (r.status, r.reason) = status_of(r.image, judge_in(r.image).as_ref(), &snap);
        }
    }
    if wants_csv {
        let lines = rows.iter().map(|r| {
            vec![
                r.image.id.to_string(),
                r.image.name(),
                r.image.digest.clone(),
                r.image.tags.join(" "),
                r.status.to_string(),
                r.reason.clone(),
                r.critical.to_string(),
                r.high.to_string(),
                r.medium.to_string(),
                r.low.to_string(),
                r.image
                    .last_scan
                    .as_ref()
                    .map(|s| s.at.to_rfc3339())
                    .unwrap_or_default(),
            ]
        });
        return Ok(listing::csv_response(
            "bulwark-images",
            listing::csv(
                &[
                    "id",
                    "image",
                    "digest",
                    "tags",
                    "status",
                    "reason",
                    "critical",
                    "high",
                    "medium",
                    "low",
                    "last_scan",
                ],
                lines,
            ),
        ));
    }
    let query = req.query_string().to_string();
    render(&ImagesPage {
        layout: Layout::new(&state, &p, "Images", "/images"),
        clusters,
        rows,
        matching,
        total,
        cluster: q.cluster,
        compliance: q.compliance,
        severity: q.severity,
        q: q.q,
        next: next.map(|n| format!("/images?{}", listing::with_cursor(&query, &n))),
        query,
        order,
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
