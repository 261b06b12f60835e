//! `POST /api/v1/kubesec`: a manifest in the body (YAML or JSON, one or more documents), the
//! kubesec JSON array back, or with `?format=csv` one line per object and rule.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{Report, RuleRef};
use crate::http::listing::{csv, csv_response};
use crate::http::{ApiError, AppState, Perm, Routes};

/// Registers the KubeSec route.
pub fn routes(r: &mut Routes) {
    r.api(Method::POST, "/api/v1/kubesec", Perm::Read, api_scan);
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ScanQuery {
    format: String,
}

async fn api_scan(
    _state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<ScanQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = crate::http::read_body(&req, payload, super::MAX_BYTES).await?;
    let reports = web::block(move || super::scan("API", &body))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if q.format == "csv" {
        return Ok(csv_response("kubesec", reports_csv(&reports)));
    }
    Ok(HttpResponse::Ok().json(reports))
}

/// One line per rule an object matched (critical, passed or advice), and one line for an
/// object that matched none, so every object appears.
fn reports_csv(reports: &[Report]) -> String {
    let mut rows = Vec::new();
    for r in reports {
        let line = |class: &str, rule: Option<&RuleRef>| {
            vec![
                r.object.clone(),
                r.valid.to_string(),
                r.score.to_string(),
                r.message.clone(),
                class.to_string(),
                rule.map_or(String::new(), |x| x.id.to_string()),
                rule.map_or(String::new(), |x| x.points.to_string()),
                rule.map_or(String::new(), |x| x.selector.to_string()),
                rule.map_or(String::new(), |x| x.reason.to_string()),
            ]
        };
        let s = &r.scoring;
        let before = rows.len();
        for (class, list) in [
            ("critical", &s.critical),
            ("passed", &s.passed),
            ("advise", &s.advise),
        ] {
            rows.extend(list.iter().map(|x| line(class, Some(x))));
        }
        if rows.len() == before {
            rows.push(line("", None));
        }
    }
    csv(
        &[
            "object", "valid", "score", "message", "class", "rule", "points", "selector", "reason",
        ],
        rows,
    )
}
