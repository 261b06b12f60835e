//! The *Data at rest* page: each source's last crawl (status, error, counts), its assets with
//! their types, sensitivity and masked sample, and the crawl history with what became
//! sensitive.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use askama::Template;

use super::store::{self, Run, Stored};
use crate::http::layout::{render, Layout};
use crate::http::{ApiError, AppState, Auth, Perm, Routes};

/// Assets shown at most.
const SHOWN: usize = 2_000;

pub(super) fn routes(r: &mut Routes) {
    r.nav(42, "Data at rest", "/dar", Perm::Read);
    r.page("/dar", Perm::Read, dar_page);
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
    let (all, runs) = state
        .with_store(|s| Ok::<_, ApiError>((store::assets(s, None)?, store::runs(s, None, 200)?)))
        .await?;
    let mut names: Vec<String> = runs.iter().map(|r| r.source.clone()).collect();
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
