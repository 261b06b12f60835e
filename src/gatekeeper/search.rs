//! What Gatekeeper puts in the search index: every template (by kind, title and description)
//! and every constraint (by name, kind and cluster), one group each.

use super::catalog::{self, Stored};
use super::Template;
use crate::search::{Doc, Search, Source};
use crate::store::Store;

fn template_doc(t: &Template) -> Doc {
    Doc {
        kind: "gatekeeper-template",
        id: t.name.clone(),
        title: format!("Gatekeeper template {} ({})", t.kind, t.title),
        body: t.description.clone(),
        url: format!("/gatekeeper/templates/{}", t.name),
        group: format!("gatekeeper-template:{}", t.name),
    }
}

fn constraint_group(cluster: u64, kind: &str, name: &str) -> String {
    format!("gatekeeper-constraint:{cluster}/{kind}/{name}")
}

fn constraint_doc(cluster: &crate::clusters::Cluster, s: &Stored) -> Doc {
    let c = &s.constraint;
    Doc {
        kind: "gatekeeper-constraint",
        id: format!("{}/{}/{}", cluster.id, c.kind, c.name),
        title: format!(
            "Constraint {} ({}, {}) in {}",
            c.name,
            c.kind,
            c.action.as_str(),
            cluster.name
        ),
        body: c.parameters.to_string(),
        url: format!("/clusters/{}/gatekeeper/{}/{}", cluster.id, c.kind, c.name),
        group: constraint_group(cluster.id, &c.kind, &c.name),
    }
}

/// Indexes an imported template. Best effort, as every incremental index update.
pub fn index_template(search: &Search, t: &Template) {
    let d = template_doc(t);
    if let Err(e) = search.replace_group(&d.group.clone(), &[d]) {
        tracing::warn!(error = %e, "search: a template was not indexed");
    }
}

/// Forgets a deleted template.
pub fn forget_template(search: &Search, name: &str) {
    if let Err(e) = search.delete_group(&format!("gatekeeper-template:{name}")) {
        tracing::warn!(error = %e, "search: a template was not forgotten");
    }
}

/// Indexes a created or changed constraint.
pub fn index_constraint(search: &Search, store: &Store, s: &Stored) {
    if let Ok(c) = crate::clusters::get(store, s.cluster) {
        let d = constraint_doc(&c, s);
        if let Err(e) = search.replace_group(&d.group.clone(), &[d]) {
            tracing::warn!(error = %e, "search: a constraint was not indexed");
        }
    }
}

/// Forgets a deleted constraint.
pub fn forget_constraint(search: &Search, cluster: u64, kind: &str, name: &str) {
    if let Err(e) = search.delete_group(&constraint_group(cluster, kind, name)) {
        tracing::warn!(error = %e, "search: a constraint was not forgotten");
    }
}

/// Every template and constraint, for a rebuild.
pub fn sources() -> Vec<Source> {
    vec![
        Source {
            kind: "gatekeeper-template",
            documents: |store, emit| {
                let templates = catalog::templates(store).map_err(|e| match e {
                    super::GatekeeperError::Store(s) => s,
                    other => crate::store::StoreError::Join(other.to_string()),
                })?;
                for (t, _) in templates {
                    emit(template_doc(&t));
                }
                Ok(())
            },
        },
        Source {
            kind: "gatekeeper-constraint",
            documents: |store, emit| {
                for c in crate::clusters::list(store)? {
                    let list = store.read(|r| r.all(&catalog::CONSTRAINTS))?;
                    for (_, s) in list.into_iter().filter(|(_, s)| s.cluster == c.id) {
                        emit(constraint_doc(&c, &s));
                    }
                }
                Ok(())
            },
        },
    ]
}
