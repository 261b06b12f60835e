//! The inventory's pages: cluster → namespaces → pods → images, each with its verdict and why,
//! and the trend of pod compliance (server-side SVG).

use actix_web::{web, HttpResponse};
use askama::Template;

use super::api::{judge_cluster, judge_namespace, judge_pod, kubesec_report, NamespaceLine};
use super::verdicts::{self, Day, Figures, ImageVerdict, PodVerdict};
use super::{Namespace, Pod, Summary};
use crate::http::layout::{render, Layout};
use crate::http::{ApiError, AppState, Auth, Perm, Routes};
use crate::posture::chart::{legend, line_chart, Series};

/// Days the trend charts cover.
const TREND_DAYS: i64 = 30;

pub(super) fn routes(r: &mut Routes) {
    r.page("/clusters/{id}/namespaces", Perm::Read, namespaces_page);
    r.page("/clusters/{id}/namespaces/{ns}", Perm::Read, namespace_page);
    r.page(
        "/clusters/{id}/namespaces/{ns}/pods/{pod}",
        Perm::Read,
        pod_page,
    );
    r.page(
        "/clusters/{id}/namespaces/{ns}/kubesec/{kind}/{name}",
        Perm::Read,
        kubesec_page,
    );
}

/// The compliant share per day, one line per name given (`None`: the cluster's totals).
fn trend(history: &[Day], lines: &[Option<&str>], title: &str) -> (String, String) {
    let labels: Vec<String> = history
        .iter()
        .map(|d| d.at.format("%m-%d").to_string())
        .collect();
    let series: Vec<Series> = lines
        .iter()
        .map(|line| Series {
            name: line.unwrap_or("all namespaces").to_string(),
            values: history
                .iter()
                .map(|d| {
                    let f = match line {
                        None => Some(d.totals),
                        Some(ns) => d.namespaces.get(*ns).copied(),
                    };
                    f.and_then(|f| f.percent()).map(f64::from)
                })
                .collect(),
        })
        .collect();
    (
        line_chart(title, &labels, &series, Some(100.0), "%"),
        legend(&series),
    )
}

#[derive(Template)]
#[template(path = "workloads/namespaces.html")]
struct NamespacesPage {
    layout: Layout,
    cluster_id: u64,
    cluster_name: String,
    summary: Option<Summary>,
    totals: Figures,
    namespaces: Vec<NamespaceLine>,
    chart: String,
    chart_legend: String,
}

async fn namespaces_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let (id, admission) = (id.into_inner(), crate::admission::of(&state)?);
    let metrics = state.domains.get::<verdicts::PodMetrics>();
    let (j, history) = state
        .with_store(move |s| {
            let j = judge_cluster(s, &admission, metrics.as_deref(), id)?;
            Ok::<_, ApiError>((j, verdicts::history(s, id, TREND_DAYS)?))
        })
        .await?;
    // The busiest namespaces get their own lines beside the cluster's.
    let mut busiest: Vec<&NamespaceLine> = j.namespaces.iter().collect();
    busiest.sort_by_key(|n| std::cmp::Reverse(n.pods));
    let mut lines = vec![None];
    lines.extend(busiest.iter().take(5).map(|n| Some(n.name.as_str())));
    let (chart, chart_legend) = trend(&history, &lines, "Compliant share of running pods, by day");
    render(&NamespacesPage {
        layout: Layout::new(
            &state,
            &p,
            format!("{}: namespaces", j.cluster.name),
            "/clusters",
        ),
        cluster_id: id,
        cluster_name: j.cluster.name.clone(),
        summary: j.summary,
        totals: j.totals,
        namespaces: j.namespaces,
        chart,
        chart_legend,
    })
}

#[derive(Template)]
#[template(path = "workloads/namespace.html")]
struct NamespacePage {
    layout: Layout,
    cluster_id: u64,
    cluster_name: String,
    namespace: Namespace,
    figures: Figures,
    pods: Vec<(Pod, PodVerdict)>,
    chart: String,
    chart_legend: String,
}

async fn namespace_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    path: web::Path<(u64, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, ns) = path.into_inner();
    let admission = crate::admission::of(&state)?;
    let ((cluster, namespace, figures, verdicts), history) = state
        .with_store(move |s| {
            let judged = judge_namespace(s, &admission, id, &ns)?;
            Ok::<_, ApiError>((judged, verdicts::history(s, id, TREND_DAYS)?))
        })
        .await?;
    let (chart, chart_legend) = trend(
        &history,
        &[Some(namespace.name.as_str())],
        "Compliant share of the namespace's running pods, by day",
    );
    // Non-compliant pods first: they are what the page is visited for.
    let mut pods: Vec<(Pod, PodVerdict)> =
        namespace.pods.clone().into_iter().zip(verdicts).collect();
    pods.sort_by_key(|(p, v)| (v.compliant != Some(false), p.name.clone()));
    render(&NamespacePage {
        layout: Layout::new(
            &state,
            &p,
            format!("{}/{}", cluster.name, namespace.name),
            "/clusters",
        ),
        cluster_id: id,
        cluster_name: cluster.name.clone(),
        namespace,
        figures,
        pods,
        chart,
        chart_legend,
    })
}

#[derive(Template)]
#[template(path = "workloads/pod.html")]
struct PodPage {
    layout: Layout,
    cluster_id: u64,
    cluster_name: String,
    namespace: String,
    pod: Pod,
    verdict: PodVerdict,
    /// Each image with the id of its image page, when Bulwark knows the image.
    images: Vec<(ImageVerdict, Option<u64>)>,
    /// The last Gatekeeper audit's violations of the pod and its workload.
    gatekeeper: Vec<crate::gatekeeper::audit::Finding>,
}

async fn pod_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    path: web::Path<(u64, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, ns, pod) = path.into_inner();
    let admission = crate::admission::of(&state)?;
    let namespace = ns.clone();
    let (cluster, pod, verdict, images, gatekeeper) = state
        .with_store(move |s| {
            let (cluster, pod, verdict) = judge_pod(s, &admission, id, &namespace, &pod)?;
            let mut images = Vec::new();
            for (iv, c) in verdict.images.iter().zip(&pod.containers) {
                images.push((iv.clone(), image_id(s, c)?));
            }
            let gatekeeper = super::api::gatekeeper_of(s, id, &namespace, &pod)?;
            Ok::<_, ApiError>((cluster, pod, verdict, images, gatekeeper))
        })
        .await?;
    render(&PodPage {
        layout: Layout::new(&state, &p, format!("{ns}/{}", pod.name), "/clusters"),
        cluster_id: id,
        cluster_name: cluster.name.clone(),
        namespace: ns,
        pod,
        verdict,
        images,
        gatekeeper,
    })
}

/// The image Bulwark holds for a container: by digest, else by the tag's current image.
fn image_id(
    store: &crate::store::Store,
    c: &super::Container,
) -> Result<Option<u64>, crate::store::StoreError> {
    let Ok(r) = crate::images::ImageRef::parse(&c.image) else {
        return Ok(None);
    };
    let found = match &c.digest {
        Some(d) => crate::images::by_digest(store, &r, d)?,
        None => crate::images::by_tag(store, &r)?,
    };
    Ok(found.map(|i| i.id))
}

#[derive(Template)]
#[template(path = "workloads/kubesec.html")]
struct KubesecPage {
    layout: Layout,
    cluster_id: u64,
    namespace: String,
    report: crate::kubesec::Report,
    sections: Vec<(&'static str, Vec<crate::kubesec::RuleRef>)>,
}

async fn kubesec_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    path: web::Path<(u64, String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, ns, kind, name) = path.into_inner();
    let namespace = ns.clone();
    let report = state
        .with_store(move |s| kubesec_report(s, id, &namespace, &kind, &name))
        .await?;
    render(&KubesecPage {
        layout: Layout::new(
            &state,
            &p,
            format!("KubeSec: {}", report.object),
            "/clusters",
        ),
        cluster_id: id,
        namespace: ns,
        sections: vec![
            ("Critical", report.scoring.critical.clone()),
            ("Passed", report.scoring.passed.clone()),
            ("Advice", report.scoring.advise.clone()),
        ],
        report,
    })
}
