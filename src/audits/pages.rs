//! The audit pages: a cluster's kube-bench runs rolled up by node (trend, waivers, the
//! manifest wizard), one run with its sections, remediations and what changed since the node's
//! previous run; a cluster's kube-hunter runs and one run's findings.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{Duration, NaiveDate, Utc};
use serde::Deserialize;

use super::api::{cluster, make_manifests, refresh_metrics};
use super::{bench, hunter, manifests};
use crate::http::layout::{redirect_with_flash, render, Layout};
use crate::http::{client_ip, ApiError, AppState, Auth, Perm, Routes};
use crate::posture::chart::{legend, line_chart, Series};

/// Days the trend charts cover.
const TREND_DAYS: i64 = 30;
/// Runs listed on a cluster's page.
const LISTED: usize = 50;
/// Nodes drawn as their own line.
const TREND_NODES: usize = 7;

pub(super) fn routes(r: &mut Routes) {
    r.page("/clusters/{id}/kube-bench", Perm::Read, bench_page);
    r.page(
        "/clusters/{id}/kube-bench/{run}",
        Perm::Read,
        bench_run_page,
    );
    r.form("/clusters/{id}/kube-bench/waivers", Perm::Write, waive_form);
    r.form(
        "/clusters/{id}/kube-bench/waivers/{check}/delete",
        Perm::Write,
        unwaive_form,
    );
    r.page("/clusters/{id}/kube-hunter", Perm::Read, hunter_page);
    r.page(
        "/clusters/{id}/kube-hunter/{run}",
        Perm::Read,
        hunter_run_page,
    );
    r.form(
        "/clusters/{id}/audit-manifests",
        Perm::Write,
        manifests_form,
    );
}

/// The last [`TREND_DAYS`] days, oldest first.
fn days() -> Vec<NaiveDate> {
    let today = Utc::now().date_naive();
    (0..TREND_DAYS)
        .rev()
        .map(|d| today - Duration::days(d))
        .collect()
}

/// A series' value for a run (`None`: the run is not on that line).
type Pick<'a, R> = Box<dyn Fn(&R) -> Option<f64> + 'a>;

/// One line per series: for each day, the value of that day's last run (`None`: no run).
fn by_day<R>(
    runs: &[R],
    day_of: impl Fn(&R) -> NaiveDate,
    series: &[(String, Pick<'_, R>)],
) -> (Vec<String>, Vec<Series>) {
    let days = days();
    let labels = days.iter().map(|d| d.format("%m-%d").to_string()).collect();
    let lines = series
        .iter()
        .map(|(name, value)| Series {
            name: name.clone(),
            values: days
                .iter()
                // Runs come newest first: the first of a day is its last.
                .map(|d| runs.iter().filter(|r| day_of(r) == *d).find_map(value))
                .collect(),
        })
        .collect();
    (labels, lines)
}

#[derive(Template)]
#[template(path = "audits/bench.html")]
struct BenchPage {
    layout: Layout,
    cluster_id: u64,
    cluster_name: String,
    can_write: bool,
    latest: Vec<bench::RunLine>,
    runs: Vec<bench::RunLine>,
    waivers: Vec<bench::Waiver>,
    today: NaiveDate,
    chart: String,
    chart_legend: String,
    totals_chart: String,
    totals_legend: String,
    default_image: &'static str,
}

/// For each day, the sum over nodes of each node's latest run up to that day (a node's result
/// stands until its next run): passing and failing (not waived) checks.
fn rolled_up(lines: &[bench::RunLine]) -> Vec<Series> {
    let mut pass = Vec::new();
    let mut fail = Vec::new();
    for d in days() {
        let mut seen = std::collections::BTreeSet::new();
        let (mut p, mut f, mut any) = (0u64, 0u64, false);
        // Lines are newest first: the first of a node on or before the day is its latest.
        for l in lines.iter().filter(|l| l.uploaded_at.date_naive() <= d) {
            if seen.insert(l.node.as_str()) {
                p += l.totals.pass;
                f += l.totals.fail.saturating_sub(l.waived);
                any = true;
            }
        }
        pass.push(any.then_some(p as f64));
        fail.push(any.then_some(f as f64));
    }
    vec![
        Series {
            name: "pass".into(),
            values: pass,
        },
        Series {
            name: "fail".into(),
            values: fail,
        },
    ]
}

async fn bench_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (c, runs, waivers) = state
        .with_store(move |s| {
            let c = cluster(s, id)?;
            let runs = bench::summaries(s, id, 1_000)?;
            Ok::<_, ApiError>((c, runs, bench::waivers(s, id)?))
        })
        .await?;
    let lines = bench::lines(&runs, &waivers);
    let mut latest: BTreeMap<String, bench::RunLine> = BTreeMap::new();
    for l in &lines {
        latest.entry(l.node.clone()).or_insert_with(|| l.clone());
    }
    let nodes: Vec<String> = latest.keys().take(TREND_NODES).cloned().collect();
    let series: Vec<(String, Pick<bench::RunLine>)> = nodes
        .iter()
        .map(|n| {
            let n2 = n.clone();
            let f: Pick<bench::RunLine> = Box::new(move |r| {
                (r.node == n2).then(|| (r.totals.fail.saturating_sub(r.waived)) as f64)
            });
            (n.clone(), f)
        })
        .collect();
    let (labels, lines_by_node) = by_day(&lines, |r| r.uploaded_at.date_naive(), &series);
    let chart = line_chart(
        "Failed checks (not waived) per node, by day",
        &labels,
        &lines_by_node,
        None,
        "",
    );
    let rolled = rolled_up(&lines);
    let (totals_chart, totals_legend) = (
        line_chart(
            "Checks passing and failing (not waived) across nodes, by day",
            &days()
                .iter()
                .map(|d| d.format("%m-%d").to_string())
                .collect::<Vec<_>>(),
            &rolled,
            None,
            "",
        ),
        legend(&rolled),
    );
    render(&BenchPage {
        totals_chart,
        totals_legend,
        layout: Layout::new(&state, &p, format!("{}: kube-bench", c.name), "/clusters"),
        cluster_id: id,
        cluster_name: c.name,
        can_write: p.can(Perm::Write),
        latest: latest.into_values().collect(),
        runs: lines.into_iter().take(LISTED).collect(),
        waivers: waivers.into_values().collect(),
        today: Utc::now().date_naive(),
        chart_legend: legend(&lines_by_node),
        chart,
        default_image: manifests::KUBE_BENCH_IMAGE,
    })
}

#[derive(Template)]
#[template(path = "audits/bench_run.html")]
struct BenchRunPage {
    layout: Layout,
    cluster_id: u64,
    cluster_name: String,
    run: bench::Run,
    previous: Option<u64>,
    changes: Vec<bench::Change>,
    /// Check id → the reason it is waived today.
    waived: BTreeMap<String, String>,
    /// Only failing checks (and warnings), or everything.
    all: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RunQuery {
    all: bool,
}

async fn bench_run_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    path: web::Path<(u64, u64)>,
    q: web::Query<RunQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, run_id) = path.into_inner();
    let (c, run, previous, waivers) = state
        .with_store(move |s| {
            let c = cluster(s, id)?;
            let run = bench::run(s, id, run_id)?;
            let previous = bench::previous(s, &run)?;
            Ok::<_, ApiError>((c, run, previous, bench::waivers(s, id)?))
        })
        .await?;
    let today = Utc::now().date_naive();
    let waived = waivers
        .into_values()
        .filter(|w| w.holds(today))
        .map(|w| (w.check, w.reason))
        .collect();
    render(&BenchRunPage {
        layout: Layout::new(
            &state,
            &p,
            format!("{}: kube-bench run {run_id}", c.name),
            "/clusters",
        ),
        cluster_id: id,
        cluster_name: c.name,
        changes: previous
            .as_ref()
            .map(|prev| bench::diff(prev, &run))
            .unwrap_or_default(),
        previous: previous.map(|p| p.id),
        run,
        waived,
        all: q.all,
    })
}

#[derive(Deserialize)]
struct WaiverForm {
    check: String,
    reason: String,
    until: String,
}

async fn waive_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    form: web::Form<WaiverForm>,
) -> Result<HttpResponse, ApiError> {
    let (id, ip) = (id.into_inner(), client_ip(&req));
    let back = format!("/clusters/{id}/kube-bench#waivers");
    let f = form.into_inner();
    let Ok(until) = NaiveDate::parse_from_str(f.until.trim(), "%Y-%m-%d") else {
        return Ok(redirect_with_flash(
            &state,
            &p,
            &back,
            "until: a date (YYYY-MM-DD)",
        ));
    };
    let email = p.email.clone();
    let refresh = refresh_metrics(&state);
    let result = state
        .with_store(move |s| {
            cluster(s, id)?;
            let w = bench::NewWaiver {
                check: f.check,
                reason: f.reason,
                until,
            };
            let w = bench::waive(s, &email, &ip, id, w)?;
            refresh(s, id);
            Ok::<_, ApiError>(w)
        })
        .await;
    let msg = match result {
        Ok(w) => format!("Check {} is waived until {}.", w.check, w.until),
        Err(e) => e.message,
    };
    Ok(redirect_with_flash(&state, &p, &back, &msg))
}

async fn unwaive_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    path: web::Path<(u64, String)>,
) -> Result<HttpResponse, ApiError> {
    let ((id, check), ip) = (path.into_inner(), client_ip(&req));
    let email = p.email.clone();
    let c2 = check.clone();
    let refresh = refresh_metrics(&state);
    let result = state
        .with_store(move |s| {
            cluster(s, id)?;
            bench::unwaive(s, &email, &ip, id, &c2)?;
            refresh(s, id);
            Ok::<_, ApiError>(())
        })
        .await;
    let msg = match result {
        Ok(()) => format!("The waiver of check {check} is removed."),
        Err(e) => e.message,
    };
    Ok(redirect_with_flash(
        &state,
        &p,
        &format!("/clusters/{id}/kube-bench#waivers"),
        &msg,
    ))
}

#[derive(Template)]
#[template(path = "audits/hunter.html")]
struct HunterPage {
    layout: Layout,
    cluster_id: u64,
    cluster_name: String,
    can_write: bool,
    runs: Vec<hunter::RunLine>,
    chart: String,
    chart_legend: String,
    default_image: &'static str,
}

async fn hunter_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (c, runs) = state
        .with_store(move |s| {
            let c = cluster(s, id)?;
            Ok::<_, ApiError>((c, hunter::lines(s, id, 1_000)?))
        })
        .await?;
    let lines = runs;
    let series: Vec<(String, Pick<hunter::RunLine>)> = vec![
        ("high".into(), Box::new(|r| Some(r.counts.high as f64))),
        ("medium".into(), Box::new(|r| Some(r.counts.medium as f64))),
        ("low".into(), Box::new(|r| Some(r.counts.low as f64))),
    ];
    let (labels, by_severity) = by_day(&lines, |r| r.uploaded_at.date_naive(), &series);
    let chart = line_chart(
        "Vulnerabilities found, by severity and day",
        &labels,
        &by_severity,
        None,
        "",
    );
    render(&HunterPage {
        layout: Layout::new(&state, &p, format!("{}: kube-hunter", c.name), "/clusters"),
        cluster_id: id,
        cluster_name: c.name,
        can_write: p.can(Perm::Write),
        runs: lines.into_iter().take(LISTED).collect(),
        chart_legend: legend(&by_severity),
        chart,
        default_image: manifests::KUBE_HUNTER_IMAGE,
    })
}

#[derive(Template)]
#[template(path = "audits/hunter_run.html")]
struct HunterRunPage {
    layout: Layout,
    cluster_id: u64,
    cluster_name: String,
    run: hunter::Run,
}

async fn hunter_run_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    path: web::Path<(u64, u64)>,
) -> Result<HttpResponse, ApiError> {
    let (id, run_id) = path.into_inner();
    let (c, mut run) = state
        .with_store(move |s| {
            let c = cluster(s, id)?;
            Ok::<_, ApiError>((c, hunter::run(s, id, run_id)?))
        })
        .await?;
    let rank = |s: &str| match s {
        "high" => 0,
        "medium" => 1,
        "low" => 2,
        _ => 3,
    };
    run.vulnerabilities
        .sort_by_key(|v| (rank(&v.severity), v.vid.clone()));
    render(&HunterRunPage {
        layout: Layout::new(
            &state,
            &p,
            format!("{}: kube-hunter run {run_id}", c.name),
            "/clusters",
        ),
        cluster_id: id,
        cluster_name: c.name,
        run,
    })
}

async fn manifests_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    form: web::Form<BTreeMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (id, ip) = (id.into_inner(), client_ip(&req));
    let f = form.into_inner();
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let request = manifests::Request {
        tool: get("tool"),
        image: get("image"),
        namespace: f
            .get("namespace")
            .cloned()
            .unwrap_or_else(|| "bulwark".into()),
        schedule: get("schedule"),
        target: f.get("target").cloned().unwrap_or_else(|| "node".into()),
        url: get("url"),
    };
    let back = format!(
        "/clusters/{id}/{}#manifests",
        if request.tool == "kube-hunter" {
            "kube-hunter"
        } else {
            "kube-bench"
        }
    );
    let tool = request.tool.clone();
    let p2 = p.clone();
    match state
        .with_store(move |s| make_manifests(s, &p2, &ip, id, request))
        .await
    {
        Ok(yaml) => Ok(HttpResponse::Ok()
            .content_type("application/yaml")
            .insert_header((
                "content-disposition",
                format!("attachment; filename=\"bulwark-{tool}.yaml\""),
            ))
            .body(yaml)),
        Err(e) => Ok(redirect_with_flash(&state, &p, &back, &e.message)),
    }
}
