//! What compliance puts in the search index: images, their findings (found by CVE id, package,
//! title) and packages, and exceptions. An image's documents form one group, replaced whenever
//! it is rescanned.

use crate::images::{self, Image, Scan};
use crate::search::{Doc, Search, Source};
use crate::store::{Store, StoreError};

use super::model::Exception;

/// The documents of one image and its latest scan.
pub fn image_docs(image: &Image, scan: Option<&Scan>) -> Vec<Doc> {
    let group = format!("image:{}", image.id);
    let url = format!("/images/{}", image.id);
    let short = image.digest.get(..19).unwrap_or(&image.digest);
    let mut docs = vec![Doc {
        kind: "image",
        id: image.id.to_string(),
        title: format!("{} ({short})", image.name()),
        body: format!(
            "{} {} {}",
            image.tags.join(" "),
            image.digest,
            scan.map(|s| s.os.as_str()).unwrap_or_default()
        ),
        url: url.clone(),
        group: group.clone(),
    }];
    let mut packages = std::collections::BTreeSet::new();
    for f in scan.map(|s| s.findings.as_slice()).unwrap_or_default() {
        docs.push(Doc {
            kind: "finding",
            id: f.id.clone(),
            title: format!(
                "{} in {} {} ({})",
                f.id,
                f.package,
                f.installed,
                image.name()
            ),
            body: format!("{} {} {}", f.package, f.severity.as_str(), f.title),
            url: format!("{url}#{}", f.id),
            group: group.clone(),
        });
        packages.insert((f.package.clone(), f.installed.clone()));
    }
    for (name, version) in packages {
        docs.push(Doc {
            kind: "package",
            id: format!("{name}@{version}"),
            title: format!("{name} {version} ({})", image.name()),
            body: name.clone(),
            url: url.clone(),
            group: group.clone(),
        });
    }
    docs
}

/// The document of an exception.
pub fn exception_doc(e: &Exception) -> Doc {
    Doc {
        kind: "exception",
        id: e.id.to_string(),
        title: e.title.clone(),
        body: format!(
            "{} {} {} {}",
            e.issue_id,
            e.image_match.as_str(),
            e.reason,
            e.status.as_str()
        ),
        url: format!("/exceptions/{}", e.id),
        group: format!("exception:{}", e.id),
    }
}

/// Reindexes one image (after an upload); failures are logged, the index heals on rebuild.
pub fn reindex_image(search: &Search, store: &Store, image_id: u64) {
    let res = images::get(store, image_id)
        .map_err(|e| e.to_string())
        .and_then(|i| Ok((images::scan(store, image_id).map_err(|e| e.to_string())?, i)))
        .and_then(|(scan, i)| {
            search
                .replace_group(&format!("image:{image_id}"), &image_docs(&i, scan.as_ref()))
                .map_err(|e| e.to_string())
        });
    if let Err(e) = res {
        tracing::warn!(error = %e, image = image_id, "search index not updated; it is rebuilt on next start");
    }
}

/// Reindexes one exception (or removes it when `e` is `None`).
pub fn reindex_exception(search: &Search, id: u64, e: Option<&Exception>) {
    let docs: Vec<Doc> = e.map(exception_doc).into_iter().collect();
    if let Err(err) = search.replace_group(&format!("exception:{id}"), &docs) {
        tracing::warn!(error = %err, exception = id, "search index not updated; it is rebuilt on next start");
    }
}

fn all_image_docs(store: &Store, emit: &mut dyn FnMut(Doc)) -> Result<(), StoreError> {
    for image in images::list(store)? {
        let scan = images::scan(store, image.id)?;
        image_docs(&image, scan.as_ref())
            .into_iter()
            .for_each(&mut *emit);
    }
    Ok(())
}

fn all_exception_docs(store: &Store, emit: &mut dyn FnMut(Doc)) -> Result<(), StoreError> {
    super::service::list_exceptions(store)?
        .iter()
        .map(exception_doc)
        .for_each(emit);
    Ok(())
}

/// Compliance's contributions to the index.
pub fn sources() -> Vec<Source> {
    vec![
        Source {
            kind: "image",
            documents: all_image_docs,
        },
        Source {
            kind: "exception",
            documents: all_exception_docs,
        },
    ]
}
