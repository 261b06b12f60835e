//! Data-map routes: sensors post events; readers list flows and new-type events, and see the
//! map as a table and a graph.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::Flow;
use crate::http::layout::{render, Layout};
use crate::http::{ApiError, AppState, Auth, Perm, Routes};

/// Registers the data-map routes and page.
pub fn routes(r: &mut Routes) {
    r.api(
        Method::POST,
        "/api/v1/sensor/events",
        Perm::UploadSensor,
        api_events_in,
    );
    r.api(Method::GET, "/api/v1/datamap", Perm::Read, api_flows);
    r.api(
        Method::GET,
        "/api/v1/datamap/events",
        Perm::Read,
        api_new_types,
    );
    r.page("/datamap", Perm::Read, page);
    r.nav(40, "Data map", "/datamap", Perm::Read);
}

async fn api_events_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = crate::http::read_body(&req, payload, state.config.http.max_scan_bytes).await?;
    let events = super::parse_events(&body)?;
    let sensor = p.actor();
    let (search, metrics) = (
        state.search.clone(),
        state.domains.get::<super::DataMapMetrics>(),
    );
    let r = state
        .store
        .run(move |s| {
            let r = super::ingest(s, &sensor, &events).map_err(ApiError::from)?;
            super::reindex(&search, &r.touched);
            if let Some(m) = metrics {
                m.record(&events, &r);
            }
            Ok::<_, ApiError>(r)
        })
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FlowQuery {
    /// Only flows carrying this data type.
    r#type: String,
    /// `Low`, `Medium` or `High`: at least this sensitive.
    sensitivity: String,
}

fn filtered(flows: Vec<Flow>, q: &FlowQuery) -> Vec<Flow> {
    let min = match q.sensitivity.to_ascii_lowercase().as_str() {
        "high" => Some(crate::detect::Sensitivity::High),
        "medium" => Some(crate::detect::Sensitivity::Medium),
        "low" => Some(crate::detect::Sensitivity::Low),
        _ => None,
    };
    flows
        .into_iter()
        .filter(|f| q.r#type.is_empty() || f.data_types.contains(&q.r#type))
        .filter(|f| min.is_none_or(|m| f.sensitivity >= m))
        .collect()
}

async fn api_flows(
    state: web::Data<AppState>,
    q: web::Query<FlowQuery>,
) -> Result<HttpResponse, ApiError> {
    let flows = state
        .store
        .run(|s| super::list(s).map_err(ApiError::internal))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": filtered(flows, &q) })))
}

async fn api_new_types(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let items = state
        .store
        .run(|s| super::events(s, 500).map_err(ApiError::internal))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

/// A node of the graph: a source on the left or a destination on the right.
struct Node {
    label: String,
    x: u32,
    y: u32,
}

/// An edge: one (source, destination) pair with every type that flowed between them.
struct Edge {
    x1: u32,
    y1: u32,
    x2: u32,
    y2: u32,
    color: &'static str,
    title: String,
}

#[derive(Template)]
#[template(path = "datamap.html")]
struct Page {
    layout: Layout,
    flows: Vec<Flow>,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    height: u32,
    q_type: String,
    q_sensitivity: String,
    events: Vec<super::NewTypeEvent>,
    /// The data stores the crawler read, beside the flows.
    at_rest: Vec<AtRest>,
}

/// One crawled data store as the map shows it.
struct AtRest {
    source: String,
    sensitive: usize,
    types: Vec<String>,
}

/// The crawled stores with what they hold.
fn at_rest(stored: Vec<crate::dar::store::Stored>) -> Vec<AtRest> {
    let mut by: std::collections::BTreeMap<String, AtRest> = std::collections::BTreeMap::new();
    for s in stored {
        let e = by.entry(s.asset.source.clone()).or_insert_with(|| AtRest {
            source: s.asset.source.clone(),
            sensitive: 0,
            types: Vec::new(),
        });
        if !s.asset.types.is_empty() {
            e.sensitive += 1;
        }
        for t in s.asset.types {
            if !e.types.contains(&t) {
                e.types.push(t);
            }
        }
    }
    by.into_values().collect()
}

/// Sources in a left column, destinations in a right one, an edge per pair coloured by its
/// highest sensitivity.
fn graph(flows: &[Flow]) -> (Vec<Node>, Vec<Edge>, u32) {
    use std::collections::{BTreeMap, BTreeSet};
    let sources: BTreeSet<&str> = flows.iter().map(|f| f.source.as_str()).collect();
    let dests: BTreeSet<&str> = flows.iter().map(|f| f.destination.as_str()).collect();
    let ypos = |i: usize| 30 + 40 * i as u32;
    let mut nodes = Vec::new();
    let mut sy = BTreeMap::new();
    for (i, s) in sources.iter().take(100).enumerate() {
        sy.insert(*s, ypos(i));
        nodes.push(Node {
            label: s.to_string(),
            x: 10,
            y: ypos(i),
        });
    }
    let mut dy = BTreeMap::new();
    for (i, d) in dests.iter().take(100).enumerate() {
        dy.insert(*d, ypos(i));
        nodes.push(Node {
            label: d.to_string(),
            x: 560,
            y: ypos(i),
        });
    }
    let mut pairs: BTreeMap<(&str, &str), (crate::detect::Sensitivity, BTreeSet<&str>)> =
        BTreeMap::new();
    for f in flows {
        let e = pairs
            .entry((f.source.as_str(), f.destination.as_str()))
            .or_insert((f.sensitivity, BTreeSet::new()));
        e.0 = e.0.max(f.sensitivity);
        e.1.extend(f.data_types.iter().map(String::as_str));
    }
    let edges = pairs
        .into_iter()
        .filter_map(|((s, d), (sens, types))| {
            Some(Edge {
                x1: 200,
                y1: *sy.get(s)?,
                x2: 550,
                y2: *dy.get(d)?,
                color: match sens {
                    crate::detect::Sensitivity::High => "#c0392b",
                    crate::detect::Sensitivity::Medium => "#e67e22",
                    crate::detect::Sensitivity::Low => "#7f8c8d",
                },
                title: format!(
                    "{s} → {d}: {}",
                    types.into_iter().collect::<Vec<_>>().join(", ")
                ),
            })
        })
        .collect();
    let rows = sources.len().max(dests.len()).min(100) as u32;
    (nodes, edges, 40 + 40 * rows)
}

async fn page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    q: web::Query<FlowQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let (flows, events, stored) = state
        .store
        .run(|s| {
            Ok::<_, ApiError>((
                super::list(s).map_err(ApiError::internal)?,
                super::events(s, 20).map_err(ApiError::internal)?,
                crate::dar::store::assets(s, None)?,
            ))
        })
        .await?;
    let flows = filtered(flows, &q);
    let (nodes, edges, height) = graph(&flows);
    render(&Page {
        layout: Layout::new(&state, &p, "Data map", "/datamap"),
        flows,
        nodes,
        edges,
        height,
        q_type: q.r#type,
        q_sensitivity: q.sensitivity,
        events,
        at_rest: at_rest(stored),
    })
}
