//! A cluster's compliance report for auditors: one printable page with its settings, the
//! policies and exceptions that apply, and every image it runs with its verdict.

use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::{DateTime, Utc};

use super::onboarding::Onboarding;
use super::Cluster;
use crate::compliance::model::{Exception, ExceptionStatus, Policy};
use crate::http::layout::{render, Layout};
use crate::http::{ApiError, AppState, Auth, Perm, Routes};

pub(super) fn routes(r: &mut Routes) {
    r.page("/clusters/{id}/report", Perm::Read, report_page);
}

#[derive(Template)]
#[template(path = "clusters/report.html")]
struct ReportPage {
    layout: Layout,
    cluster: Cluster,
    at: DateTime<Utc>,
    version: &'static str,
    standing: Onboarding,
    policies: Vec<Policy>,
    exceptions: Vec<Exception>,
}

impl ReportPage {
    fn compliant(&self) -> usize {
        self.standing.images_total - self.standing.non_compliant - self.standing.unscanned
    }
}

async fn report_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let admission = crate::admission::of(&state)?;
    let (cluster, standing, policies, exceptions) = state
        .with_store(move |s| {
            let c = super::get(s, id)?;
            let standing = super::onboarding::compute(s, &admission, &c, usize::MAX)?;
            let today = Utc::now().date_naive();
            let policies = crate::compliance::service::list_policies(s)?
                .into_iter()
                .filter(|p| p.applies_to(c.id))
                .collect();
            let exceptions = crate::compliance::service::list_exceptions(s)?
                .into_iter()
                .filter(|e| e.status == ExceptionStatus::Active)
                .filter(|e| e.end_date.is_none_or(|d| d > today))
                .filter(|e| e.clusters.as_ref().is_none_or(|ids| ids.contains(&c.id)))
                .collect();
            Ok::<_, ApiError>((c, standing, policies, exceptions))
        })
        .await?;
    render(&ReportPage {
        layout: Layout::new(
            &state,
            &p,
            format!("Compliance report: {}", cluster.name),
            "/clusters",
        ),
        cluster,
        at: Utc::now(),
        version: env!("CARGO_PKG_VERSION"),
        standing,
        policies,
        exceptions,
    })
}
