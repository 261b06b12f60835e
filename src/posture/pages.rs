//! The dashboard (`/`) and its JSON (`/api/v1/posture`).

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::chart::{legend, line_chart, Series};
use super::{ClusterFigures, Snapshot};
use crate::audit;
use crate::http::layout::{redirect_with_flash, render, Layout};
use crate::http::{ApiError, AppState, Auth, Perm, Routes};
use crate::jobs::{JobStatus, TaskState};

/// Age past which the dashboard takes a snapshot itself (the job runs hourly).
const STALE_AFTER: chrono::Duration = chrono::Duration::hours(2);

/// Days the trend charts cover.
const TREND_DAYS: usize = 30;
/// Clusters drawn as their own line in the compliance trend (the rest are in "all clusters").
const TREND_CLUSTERS: usize = 7;

/// Registers the dashboard, its refresh and its JSON.
pub fn routes(r: &mut Routes) {
    r.page("/", Perm::Read, dashboard);
    r.form("/posture/refresh", Perm::Write, refresh_form);
    r.api(Method::GET, "/api/v1/posture", Perm::Read, api_posture);
    r.nav(0, "Dashboard", "/", Perm::Read);
}

/// Takes a snapshot now (blocking work off the reactor) and stores it.
async fn snapshot_now(state: &AppState) -> Result<Snapshot, ApiError> {
    let admission = crate::admission::of(state)?;
    let vulndb = state.config.data_dir.join("vulndb.redb");
    state
        .with_store(move |s| {
            let snap = super::compute(s, &admission, &vulndb)?;
            super::save(s, &snap)?;
            Ok::<_, crate::store::StoreError>(snap)
        })
        .await
}

/// The stored history, with a snapshot taken now when the newest is older than
/// [`STALE_AFTER`] (a new install, or an appliance that was off when the job was due).
async fn history(state: &AppState, days: usize) -> Result<Vec<Snapshot>, ApiError> {
    let mut h = state.with_store(move |s| super::history(s, days)).await?;
    let stale = h
        .last()
        .is_none_or(|s| Utc::now().signed_duration_since(s.at) > STALE_AFTER);
    if stale {
        let now = snapshot_now(state).await?;
        // Today's snapshot replaces an earlier one of the same day.
        if h.last().is_some_and(|s| super::day(s) == super::day(&now)) {
            h.pop();
        }
        h.push(now);
    }
    Ok(h)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PostureQuery {
    days: Option<usize>,
}

/// The latest snapshot, `history` (oldest first, `?days=` up to 400, default 30) and the exception
/// requests waiting now.
async fn api_posture(
    state: web::Data<AppState>,
    q: web::Query<PostureQuery>,
) -> Result<HttpResponse, ApiError> {
    let days = q.days.unwrap_or(TREND_DAYS).clamp(1, 400);
    let h = history(&state, days).await?;
    let waiting = state
        .with_store(crate::compliance::service::waiting_requests)
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "latest": h.last(),
        "totals": h.last().map(Snapshot::totals),
        "exception_requests_waiting": waiting,
        "history": h,
    })))
}

async fn refresh_form(state: web::Data<AppState>, Auth(p): Auth) -> Result<HttpResponse, ApiError> {
    let s = snapshot_now(&state).await?;
    Ok(redirect_with_flash(
        &state,
        &p,
        "/",
        &format!("Posture refreshed at {}", s.at.format("%H:%M:%S UTC")),
    ))
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    layout: Layout,
    now: Snapshot,
    totals: ClusterFigures,
    waiting: usize,
    can_review: bool,
    can_refresh: bool,
    compliance_chart: String,
    compliance_legend: String,
    findings_chart: String,
    findings_legend: String,
    trend_days: usize,
    jobs: Vec<JobStatus>,
    tasks: Vec<(String, String)>,
    recent: Vec<audit::Entry>,
    show_audit: bool,
}

impl Dashboard {
    /// `3 h ago`, `5 days ago`: how old the database's newest feed is.
    fn age(&self, t: &DateTime<Utc>) -> String {
        let d = self.now.at.signed_duration_since(*t);
        match (d.num_days(), d.num_hours()) {
            (0, 0) => "less than an hour ago".into(),
            (0, h) => format!("{h} h ago"),
            (1, _) => "1 day ago".into(),
            (n, _) => format!("{n} days ago"),
        }
    }

    fn percent(&self, c: &ClusterFigures) -> String {
        c.percent().map(|p| format!("{p}%")).unwrap_or("—".into())
    }

    /// A database older than a week is flagged: advisories published since are missed.
    fn stale(&self, t: &DateTime<Utc>) -> bool {
        self.now.at.signed_duration_since(*t).num_days() > 7
    }
}

fn trends(history: &[Snapshot]) -> (String, String, String, String) {
    let labels: Vec<String> = history
        .iter()
        .map(|s| s.at.format("%m-%d").to_string())
        .collect();
    let latest = history.last();
    let mut series = vec![Series {
        name: "all clusters".into(),
        values: history
            .iter()
            .map(|s| s.totals().percent().map(f64::from))
            .collect(),
    }];
    // The clusters of the latest snapshot with the most images get their own line.
    let mut named: Vec<&ClusterFigures> = latest
        .map(|s| s.clusters.iter().collect())
        .unwrap_or_default();
    named.sort_by_key(|c| std::cmp::Reverse(c.images()));
    for c in named.into_iter().take(TREND_CLUSTERS) {
        series.push(Series {
            name: c.name.clone(),
            values: history
                .iter()
                .map(|s| {
                    s.clusters
                        .iter()
                        .find(|x| x.cluster == c.cluster)
                        .and_then(ClusterFigures::percent)
                        .map(f64::from)
                })
                .collect(),
        });
    }
    let compliance = line_chart(
        "Compliant share of scanned images, by day",
        &labels,
        &series,
        Some(100.0),
        "%",
    );
    let compliance_legend = legend(&series);
    let pick = |f: fn(&ClusterFigures) -> u32| -> Vec<Option<f64>> {
        history
            .iter()
            .map(|s| Some(f64::from(f(&s.totals()))))
            .collect()
    };
    let findings = vec![
        Series {
            name: "critical, fixable".into(),
            values: pick(|c| c.critical_fixable),
        },
        Series {
            name: "critical, no fix".into(),
            values: pick(|c| c.critical_unfixable),
        },
        Series {
            name: "high, fixable".into(),
            values: pick(|c| c.high_fixable),
        },
        Series {
            name: "high, no fix".into(),
            values: pick(|c| c.high_unfixable),
        },
    ];
    let findings_chart = line_chart(
        "Critical and high findings in running images, by day",
        &labels,
        &findings,
        None,
        "",
    );
    (
        compliance,
        compliance_legend,
        findings_chart,
        legend(&findings),
    )
}

async fn dashboard(state: web::Data<AppState>, Auth(p): Auth) -> Result<HttpResponse, ApiError> {
    let history = history(&state, TREND_DAYS).await?;
    let show_audit = p.can(Perm::SuperAdmin);
    let sched = state.scheduler.clone();
    let (waiting, recent, jobs) = state
        .with_store(move |s| {
            let recent = if show_audit {
                audit::list(
                    s,
                    &audit::Filter {
                        limit: Some(8),
                        ..Default::default()
                    },
                )?
                .unwrap_or_default()
            } else {
                Vec::new()
            };
            Ok::<_, ApiError>((
                crate::compliance::service::waiting_requests(s)?,
                recent,
                sched.status()?,
            ))
        })
        .await?;
    let tasks = state
        .supervisor
        .states()
        .into_iter()
        .map(|(n, s)| {
            let st = match s {
                TaskState::Running => "running".to_string(),
                TaskState::Stopped => "stopped".to_string(),
                TaskState::Done => "done".to_string(),
                TaskState::Failed(why) => format!("failed: {why}"),
            };
            (n, st)
        })
        .collect();
    let (compliance_chart, compliance_legend, findings_chart, findings_legend) = trends(&history);
    let now = history
        .last()
        .cloned()
        .ok_or_else(|| ApiError::internal("no posture snapshot"))?;
    render(&Dashboard {
        layout: Layout::new(&state, &p, "Dashboard", "/"),
        totals: now.totals(),
        now,
        waiting,
        can_review: p.can(Perm::Write),
        can_refresh: p.can(Perm::Write),
        compliance_chart,
        compliance_legend,
        findings_chart,
        findings_legend,
        trend_days: TREND_DAYS,
        jobs,
        tasks,
        recent,
        show_audit,
    })
}
