//! The recorded decisions over the API: filtered, paged, sorted, as JSON or CSV.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{cut, decisions, of, Decision, MAX_DECISIONS};
use crate::http::listing::{self, ListQuery, SortKey, Sorting};
use crate::http::{ApiError, AppState};

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct DecisionQuery {
    /// Cluster name or id.
    cluster: Option<String>,
    allowed: Option<bool>,
    namespace: Option<String>,
}

/// A decision's value in the sorted column, and its id.
pub(super) fn decision_key(order: &listing::Order, d: &Decision) -> (SortKey, u64) {
    let key = match order.column {
        "count" => SortKey::Int(d.count as i64),
        "first" => SortKey::Int(d.first.timestamp_millis()),
        "id" => SortKey::Int(d.id as i64),
        _ => SortKey::Int(d.last.timestamp_millis()),
    };
    (key, d.id)
}

pub(super) const DECISION_SORTING: Sorting = Sorting {
    columns: &[
        ("last", true),
        ("count", true),
        ("first", true),
        ("id", true),
    ],
    default: "last",
};

/// Recorded decisions, filtered by `cluster`, `namespace` and `allowed`, paged and sortable
/// (most recent first by default); CSV with `?format=csv`. `dropped` counts decisions that
/// were not recorded (too many distinct ones between two flushes).
pub(super) async fn api_decisions(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<DecisionQuery>,
) -> Result<HttpResponse, ApiError> {
    let list = ListQuery::of(&req)?;
    let order = DECISION_SORTING.pick(&list)?;
    let adm = of(&state)?;
    let q = q.into_inner();
    let (items, clusters) = state
        .store
        .run({
            let adm = adm.clone();
            move |s| {
                adm.flush(s)?;
                let clusters = crate::clusters::list(s)?;
                Ok::<_, ApiError>((decisions(s, MAX_DECISIONS as usize)?, clusters))
            }
        })
        .await?;
    let cluster = match q.cluster.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            clusters
                .iter()
                .find(|x| x.name.eq_ignore_ascii_case(c) || x.id.to_string() == c)
                .map(|x| x.id)
                .ok_or_else(|| ApiError::not_found(format!("cluster '{}'", cut(c, 100))))?,
        ),
    };
    let items: Vec<Decision> = items
        .into_iter()
        .filter(|d| cluster.is_none_or(|c| d.cluster == c))
        .filter(|d| q.allowed.is_none_or(|a| d.allowed == a))
        .filter(|d| q.namespace.as_deref().is_none_or(|n| d.namespace == n))
        .collect();
    let (items, next) = listing::page(items, &order, &list, |d| decision_key(&order, d))?;
    if list.wants_csv(&req) {
        let name = |id: u64| {
            clusters
                .iter()
                .find(|c| c.id == id)
                .map(|c| c.name.clone())
                .unwrap_or_else(|| id.to_string())
        };
        let rows = items.iter().map(|d| {
            vec![
                d.id.to_string(),
                name(d.cluster),
                d.namespace.clone(),
                d.kind.clone(),
                d.sample_name.clone(),
                d.images.join(" "),
                d.allowed.to_string(),
                d.count.to_string(),
                d.first.to_rfc3339(),
                d.last.to_rfc3339(),
                d.message.clone(),
            ]
        });
        return Ok(listing::csv_response(
            "bulwark-admission-decisions",
            listing::csv(
                &[
                    "id",
                    "cluster",
                    "namespace",
                    "kind",
                    "name",
                    "images",
                    "allowed",
                    "count",
                    "first",
                    "last",
                    "message",
                ],
                rows,
            ),
        ));
    }
    let mut body = serde_json::json!({ "items": items, "dropped": adm.dropped() });
    if let Some(n) = next {
        body["next"] = serde_json::Value::String(n);
    }
    Ok(HttpResponse::Ok().json(body))
}
