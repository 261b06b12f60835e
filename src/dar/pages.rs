//! The *Data at rest* page: each source's last crawl (status, error, counts), its assets with
//! their types, sensitivity and masked sample, and the crawl history with what became
//! sensitive.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::{Map, Value};

use super::managed::{self, View};
use super::store::{self, Run, Stored};
use crate::http::layout::{redirect_with_flash, render, Confirm, Layout};
use crate::http::{client_ip, ApiError, AppState, Auth, Perm, Routes};

/// Assets shown at most.
const SHOWN: usize = 2_000;

pub(super) fn routes(r: &mut Routes) {
    r.nav(42, "Data at rest", "/dar", Perm::Read);
    r.page("/dar", Perm::Read, dar_page);
    r.form("/dar/sources", Perm::Write, add_source_form);
    r.form(
        "/dar/sources/{name}/delete",
        Perm::Write,
        delete_source_form,
    );
}

/// A source as the page sums it up.
struct SourceLine {
    name: String,
    last: Option<Run>,
    assets: usize,
    sensitive: usize,
}

#[derive(Template)]
#[template(path = "dar/page.html")]
struct DarPage {
    layout: Layout,
    sources: Vec<SourceLine>,
    assets: Vec<Stored>,
    more: usize,
    runs: Vec<Run>,
    /// Every source: configured ones and the console's.
    configured: Vec<View>,
    source: String,
    sensitivity: String,
    q: String,
    can_write: bool,
}

async fn dar_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    q: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let (source, words) = (get("source"), get("q"));
    let sensitivity = q
        .get("sensitivity")
        .cloned()
        .unwrap_or_else(|| "any".into());
    let st = state.clone();
    let (all, runs, configured) = state
        .with_store(move |s| {
            let views = super::api::all_views(&st)?.0;
            Ok::<_, ApiError>((store::assets(s, None)?, store::runs(s, None, 200)?, views))
        })
        .await?;
    let mut names: Vec<String> = runs.iter().map(|r| r.source.clone()).collect();
    names.extend(configured.iter().map(|v| v.name.clone()));
    names.extend(all.iter().map(|a| a.asset.source.clone()));
    names.sort();
    names.dedup();
    let sources = names
        .into_iter()
        .map(|n| SourceLine {
            last: runs.iter().find(|r| r.source == n).cloned(),
            assets: all.iter().filter(|a| a.asset.source == n).count(),
            sensitive: all
                .iter()
                .filter(|a| a.asset.source == n && !a.asset.types.is_empty())
                .count(),
            name: n,
        })
        .collect();
    let lower: Vec<String> = words.split_whitespace().map(str::to_lowercase).collect();
    let mut assets: Vec<Stored> = all
        .into_iter()
        .filter(|s| {
            let a = &s.asset;
            (source.is_empty() || a.source == source)
                && match sensitivity.as_str() {
                    "all" => true,
                    "any" => !a.types.is_empty(),
                    "incomplete" => a.status != super::Status::Complete,
                    want => a.sensitivity == want,
                }
                && lower
                    .iter()
                    .all(|w| a.asset.to_lowercase().contains(w.as_str()))
        })
        .collect();
    assets.sort_by(|a, b| {
        rank(&a.asset.sensitivity)
            .cmp(&rank(&b.asset.sensitivity))
            .then(a.asset.source.cmp(&b.asset.source))
            .then(a.asset.asset.cmp(&b.asset.asset))
    });
    let more = assets.len().saturating_sub(SHOWN);
    assets.truncate(SHOWN);
    let runs = runs
        .into_iter()
        .filter(|r| source.is_empty() || r.source == source)
        .take(50)
        .collect();
    render(&DarPage {
        layout: Layout::new(&state, &p, "Data at rest", "/dar"),
        sources,
        assets,
        more,
        runs,
        configured,
        source,
        sensitivity,
        q: words,
        can_write: p.can(Perm::Write),
    })
}

fn rank(s: &str) -> u8 {
    match s {
        "high" => 0,
        "medium" => 1,
        "low" => 2,
        _ => 3,
    }
}

/// The form's fields as the API's JSON: empty fields left out, lists split at commas, the
/// scope under the kind's own name (databases, buckets, topics).
fn source_json(form: &BTreeMap<String, String>) -> Value {
    let mut out = Map::new();
    let kind = form.get("kind").cloned().unwrap_or_default();
    for (k, v) in form {
        let v = v.trim();
        if v.is_empty() || k == "csrf" {
            continue;
        }
        let list = || {
            Value::Array(
                v.split(',')
                    .map(|x| Value::String(x.trim().into()))
                    .collect(),
            )
        };
        match k.as_str() {
            "scope" => {
                let key = match kind.as_str() {
                    "s3" => "buckets",
                    "kafka" => "topics",
                    _ => "databases",
                };
                out.insert(key.into(), list());
            }
            "brokers" => {
                out.insert(k.clone(), list());
            }
            "tls" => {
                out.insert(k.clone(), Value::Bool(true));
            }
            _ => {
                out.insert(k.clone(), Value::String(v.to_string()));
            }
        }
    }
    Value::Object(out)
}

async fn add_source_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    form: web::Form<BTreeMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let body = source_json(&form.into_inner());
    let msg = match super::api::save_source(&state, &req, p.actor(), body, None).await {
        Ok(v) => format!(
            "Source {} added: the next crawl reads it (Crawl now to read it at once)",
            v.name
        ),
        Err(e) => e.message,
    };
    Ok(redirect_with_flash(&state, &p, "/dar", &msg))
}

async fn delete_source_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    name: web::Path<String>,
    confirm: web::Form<Confirm>,
) -> Result<HttpResponse, ApiError> {
    confirm.require("Remove source")?;
    let (actor, ip, name) = (p.actor(), client_ip(&req), name.into_inner());
    state
        .with_store(move |s| managed::delete(s, &actor, &ip, &name))
        .await?;
    Ok(redirect_with_flash(&state, &p, "/dar", "Source removed"))
}
