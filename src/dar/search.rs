//! What the crawler puts in the search index: every asset with findings (found by its name, its
//! source and the data types it holds), one group per source, replaced after each crawl.

use super::store::{self, Stored};
use crate::search::{Doc, Search, Source};
use crate::store::Store;

fn group(source: &str) -> String {
    format!("dar:{source}")
}

fn doc(s: &Stored) -> Doc {
    let a = &s.asset;
    Doc {
        kind: "data-at-rest",
        id: format!("{}/{}", a.source, a.asset),
        title: format!("{} in {} ({})", a.asset, a.source, a.types.join(", ")),
        body: format!("{} {} {}", a.types.join(" "), a.data_type, a.sensitivity),
        url: format!(
            "/dar?source={}&sensitivity=all&q={}",
            encode(&a.source),
            encode(&a.asset)
        ),
        group: group(&a.source),
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Replaces `source`'s documents. Best effort: the index is rebuilt from the store when found
/// stale, so a failure here is logged, not returned.
pub fn reindex(search: &Search, store: &Store, source: &str) {
    let result = store::assets(store, Some(source))
        .map_err(|e| e.to_string())
        .and_then(|all| {
            let docs: Vec<Doc> = all
                .iter()
                .filter(|s| !s.asset.types.is_empty())
                .map(doc)
                .collect();
            search
                .replace_group(&group(source), &docs)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = result {
        tracing::warn!(source, error = %e, "search: data-at-rest assets were not reindexed");
    }
}

/// Every asset with findings, for a rebuild.
pub fn source() -> Source {
    Source {
        kind: "data-at-rest",
        documents: |store, emit| {
            for s in store::assets(store, None)? {
                if !s.asset.types.is_empty() {
                    emit(doc(&s));
                }
            }
            Ok(())
        },
    }
}
