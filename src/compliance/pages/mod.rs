//! Compliance pages: images (filterable), image detail with every finding's judgement, policies,
//! exceptions (request, approve, comment).

pub(crate) mod exceptions;
mod images;
mod policies;

use crate::http::{Perm, Routes};

/// Registers the pages.
pub fn pages(r: &mut Routes) {
    images::routes(r);
    policies::routes(r);
    exceptions::routes(r);
    r.nav(20, "Images", "/images", Perm::Read);
    r.nav(21, "Policies", "/policies", Perm::Read);
    r.nav(22, "Exceptions", "/exceptions", Perm::Read);
    r.nav_badge(
        "/exceptions",
        crate::http::Badge {
            perm: Perm::Write,
            what: "exception requests waiting for review",
            count: std::sync::Arc::new(|store| {
                crate::compliance::service::waiting_requests(store).unwrap_or(0) as u64
            }),
        },
    );
}

/// "all" for `None`, else the names of the ids (`#id` for ones that no longer exist).
pub(super) fn names(ids: &Option<Vec<u64>>, name: impl Fn(u64) -> Option<String>) -> String {
    match ids {
        None => "all".into(),
        Some(ids) => ids
            .iter()
            .map(|id| name(*id).unwrap_or_else(|| format!("#{id}")))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
