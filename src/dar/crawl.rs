//! One crawl of every configured source (or one of them): an unreachable source is reported
//! and the crawl goes on with the others.

use serde::Serialize;

use super::sources::{Kind, Source};
use super::Asset;
use crate::detect::Engine;

/// How a source's crawl ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceOutcome {
    pub name: String,
    pub kind: Kind,
    /// `ok` or `error`.
    pub status: String,
    /// Why it could not be read (empty when `ok`).
    pub error: String,
}

/// What one crawl found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Crawl {
    pub sources: Vec<SourceOutcome>,
    pub assets: Vec<Asset>,
}

/// Crawls `sources` one after the other (one connection at a time, so a crawl adds one
/// session to each server), the one named `only` when given.
pub async fn crawl(sources: &[Source], engine: &Engine, only: Option<&str>) -> Crawl {
    let mut out = Crawl {
        sources: Vec::new(),
        assets: Vec::new(),
    };
    for s in sources.iter().filter(|s| only.is_none_or(|n| n == s.name)) {
        let result = match s.kind {
            Kind::Postgres => super::postgres::crawl(s, engine).await,
            Kind::Mysql => super::mysql::crawl(s, engine).await,
            other => Err(super::DarError::Config(format!(
                "crawling {} sources is not in this build yet",
                other.as_str()
            ))),
        };
        let (status, error) = match result {
            Ok(assets) => {
                out.assets.extend(assets);
                ("ok".to_string(), String::new())
            }
            Err(e) => ("error".to_string(), e.to_string()),
        };
        out.sources.push(SourceOutcome {
            name: s.name.clone(),
            kind: s.kind,
            status,
            error,
        });
    }
    out
}
