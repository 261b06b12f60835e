//! The Admission page: recent decisions and what waits for a scan.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::Decision;
use crate::clusters::Cluster;
use crate::http::layout::{render, Layout};
use crate::http::listing::{self, ListQuery};
use crate::http::{ApiError, AppState, Auth};
use crate::images::{self, Image, ScanState};

/// Queued references the Admission page lists (the oldest; the API has them all).
const QUEUE_SHOWN: usize = 300;

#[derive(Template)]
#[template(path = "admission.html")]
struct AdmissionPage {
    layout: Layout,
    decisions: Vec<Decision>,
    clusters: Vec<Cluster>,
    queue: Vec<images::Queued>,
    /// References in the queue in all (the page lists the oldest few hundred).
    queued_total: u64,
    stats: images::QueueStats,
    /// Decisions answered but not recorded since start.
    decisions_dropped: u64,
    waiting: Vec<Image>,
    next: Option<String>,
    csv: String,
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

pub(super) async fn admission_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
) -> Result<HttpResponse, ApiError> {
    let list = ListQuery::of(&req)?;
    let order = super::decisions::DECISION_SORTING.pick(&list)?;
    let adm = crate::admission::of(&state)?;
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
                super::decisions(s, super::MAX_DECISIONS as usize)?,
                crate::clusters::list(s)?,
                images::queue_head(s, QUEUE_SHOWN)?,
                images::queue_len(s)?,
                images::queue_stats(s)?,
                waiting,
            ))
        })
        .await?;
    let (decisions, next) = listing::page(decisions, &order, &list, |d| {
        super::decisions::decision_key(&order, d)
    })?;
    let query = req.query_string();
    render(&AdmissionPage {
        layout: Layout::new(&state, &p, "Admission", "/admission"),
        decisions,
        clusters,
        queue,
        queued_total,
        stats,
        decisions_dropped,
        waiting,
        next: next.map(|n| format!("/admission?{}", listing::with_cursor(query, &n))),
        csv: format!(
            "/api/v1/admission/decisions?{}",
            listing::with_param(query, "format", "csv")
        ),
    })
}

impl AdmissionPage {
    fn max_queued(&self) -> u64 {
        images::MAX_QUEUED
    }

    fn state(&self, i: &Image) -> String {
        i.scan_state.describe()
    }
}
