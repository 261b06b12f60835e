//! Stored policy: imported templates (the bundled ones live in the binary) and each cluster's
//! constraints. Every change is checked as Gatekeeper's API server would check it (the
//! template compiles, the constraint names a known template, its parameters fit the schema)
//! and audited.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{library, schema, Action, Constraint, GatekeeperError, Match, Policy, Template};
use crate::audit::{self, Event};
use crate::store::{Store, Table};

/// An imported template.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Imported {
    pub document: Value,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// A cluster's constraint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub cluster: u64,
    #[serde(flatten)]
    pub constraint: Constraint,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// Name → imported template.
pub const TEMPLATES: Table<String, Imported> = Table::new("gatekeeper_templates");
/// `{cluster:020}/{kind}/{name}` → constraint.
pub const CONSTRAINTS: Table<String, Stored> = Table::new("gatekeeper_constraints");

/// Time a template's evaluation may take (audit and admission).
pub const TIME_LIMIT: std::time::Duration = std::time::Duration::from_millis(250);

fn key(cluster: u64, kind: &str, name: &str) -> String {
    format!("{cluster:020}/{kind}/{name}")
}

fn prefix(cluster: u64) -> String {
    format!("{cluster:020}/")
}

/// Every template: bundled first, then imported, each group by name.
pub fn templates(store: &Store) -> Result<Vec<(Template, Option<Imported>)>, GatekeeperError> {
    let mut out: Vec<(Template, Option<Imported>)> = library::templates()
        .iter()
        .map(|t| (t.clone(), None))
        .collect();
    let imported = store.read(|r| r.all(&TEMPLATES))?;
    for (_, i) in imported {
        // Stored documents were valid when imported; one that no longer reads is skipped
        // rather than hiding every other template.
        if let Ok(t) = Template::from_document(i.document.clone()) {
            out.push((t, Some(i)));
        }
    }
    Ok(out)
}

/// The template named `name` (or whose constraint kind is `name`).
pub fn template(
    store: &Store,
    name: &str,
) -> Result<(Template, Option<Imported>), GatekeeperError> {
    templates(store)?
        .into_iter()
        .find(|(t, _)| t.name == name || t.kind == name)
        .ok_or_else(|| GatekeeperError::NotFound(format!("no template '{}'", short(name))))
}

fn short(s: &str) -> String {
    s.chars().take(63).collect()
}

/// Kubernetes object names: lower-case DNS subdomain.
fn valid_name(what: &str, n: &str) -> Result<(), GatekeeperError> {
    let ok = !n.is_empty()
        && n.len() <= 253
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(GatekeeperError::Invalid(format!(
            "{what} '{}': lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
            short(n)
        )))
    }
}

/// Imports (or replaces) a template; its Rego must compile.
pub fn import(store: &Store, actor: &str, document: Value) -> Result<Template, GatekeeperError> {
    let t = Template::from_document(document)?;
    valid_name("template name", &t.name)?;
    if library::is_bundled(&t.name) {
        return Err(GatekeeperError::Conflict(format!(
            "'{}' is a bundled template; import yours under another name",
            t.name
        )));
    }
    Policy::compile(&t, TIME_LIMIT)?;
    let stored = Imported {
        document: t.document.clone(),
        by: actor.to_string(),
        at: Utc::now(),
    };
    store.write(|w| {
        let replaced = w.get(&TEMPLATES, &t.name)?.is_some();
        w.put(&TEMPLATES, &t.name, &stored)?;
        audit::record(
            w,
            Event::new(
                actor,
                "gatekeeper.template.import",
                format!("template:{}", t.name),
            )
            .detail(if replaced { "replaced" } else { "new" }),
        )
    })?;
    Ok(t)
}

/// Deletes an imported template no constraint uses.
pub fn delete_template(store: &Store, actor: &str, name: &str) -> Result<(), GatekeeperError> {
    if library::is_bundled(name) {
        return Err(GatekeeperError::Conflict(format!(
            "'{name}' is bundled and cannot be deleted"
        )));
    }
    store.write(|w| {
        let Some(i) = w.get(&TEMPLATES, &name.to_string())? else {
            return Err(GatekeeperError::NotFound(format!(
                "no imported template '{}'",
                short(name)
            )));
        };
        let kind = Template::from_document(i.document)
            .map(|t| t.kind)
            .unwrap_or_default();
        let users: Vec<String> = w
            .all(&CONSTRAINTS)?
            .into_iter()
            .filter(|(_, c)| c.constraint.kind == kind)
            .map(|(_, c)| format!("{} (cluster {})", c.constraint.name, c.cluster))
            .collect();
        if !users.is_empty() {
            return Err(GatekeeperError::Conflict(format!(
                "constraints use this template: {}",
                users.join(", ")
            )));
        }
        w.delete(&TEMPLATES, &name.to_string())?;
        audit::record(
            w,
            Event::new(
                actor,
                "gatekeeper.template.delete",
                format!("template:{name}"),
            ),
        )?;
        Ok(())
    })
}

/// What a client sends to create or change a constraint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstraintInput {
    /// The template's name or kind.
    pub template: String,
    pub name: String,
    #[serde(default)]
    pub enforcement_action: String,
    #[serde(default, rename = "match")]
    pub matcher: Match,
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// Checks a constraint against its template, as Gatekeeper's API server would.
pub fn check(store: &Store, input: ConstraintInput) -> Result<Constraint, GatekeeperError> {
    let (t, _) = template(store, &input.template)?;
    valid_name("constraint name", &input.name)?;
    input.matcher.check()?;
    let parameters = input
        .parameters
        .filter(|p| !p.is_null())
        .unwrap_or_else(|| Value::Object(Default::default()));
    if !parameters.is_object() {
        return Err(GatekeeperError::Invalid(
            "parameters: must be an object".into(),
        ));
    }
    if let Some(s) = &t.schema {
        let problems = schema::validate(s, &parameters);
        if !problems.is_empty() {
            return Err(GatekeeperError::Invalid(problems.join("; ")));
        }
    }
    Ok(Constraint {
        kind: t.kind,
        name: input.name,
        action: Action::parse(&input.enforcement_action)?,
        matcher: input.matcher,
        parameters,
    })
}

/// Creates (`create`) or replaces a constraint of cluster `cluster`.
pub fn put_constraint(
    store: &Store,
    actor: &str,
    cluster: u64,
    constraint: Constraint,
    create: bool,
) -> Result<Stored, GatekeeperError> {
    let k = key(cluster, &constraint.kind, &constraint.name);
    let stored = Stored {
        cluster,
        constraint,
        by: actor.to_string(),
        at: Utc::now(),
    };
    store.write(|w| {
        if w.get(&crate::clusters::CLUSTERS, &cluster)?.is_none() {
            return Err(GatekeeperError::NotFound(format!(
                "cluster {cluster} not found"
            )));
        }
        let exists = w.get(&CONSTRAINTS, &k)?.is_some();
        if create && exists {
            return Err(GatekeeperError::Conflict(format!(
                "cluster {cluster} already has a {} named {}",
                stored.constraint.kind, stored.constraint.name
            )));
        }
        if !create && !exists {
            return Err(GatekeeperError::NotFound(format!(
                "no {} named {} in cluster {cluster}",
                stored.constraint.kind, stored.constraint.name
            )));
        }
        w.put(&CONSTRAINTS, &k, &stored)?;
        audit::record(
            w,
            Event::new(
                actor,
                if create {
                    "gatekeeper.constraint.create"
                } else {
                    "gatekeeper.constraint.update"
                },
                format!("cluster:{cluster}"),
            )
            .detail(format!(
                "{}/{} action={}",
                stored.constraint.kind,
                stored.constraint.name,
                stored.constraint.action.as_str()
            )),
        )?;
        Ok(stored.clone())
    })
}

/// Cluster `cluster`'s constraints, by kind and name.
pub fn constraints(store: &Store, cluster: u64) -> Result<Vec<Stored>, GatekeeperError> {
    let p = prefix(cluster);
    Ok(store
        .read(|r| r.all(&CONSTRAINTS))?
        .into_iter()
        .filter(|(k, _)| k.starts_with(&p))
        .map(|(_, c)| c)
        .collect())
}

/// One constraint.
pub fn constraint(
    store: &Store,
    cluster: u64,
    kind: &str,
    name: &str,
) -> Result<Stored, GatekeeperError> {
    store
        .read(|r| r.get(&CONSTRAINTS, &key(cluster, kind, name)))?
        .ok_or_else(|| {
            GatekeeperError::NotFound(format!(
                "no {} named {} in cluster {cluster}",
                short(kind),
                short(name)
            ))
        })
}

/// Deletes a constraint.
pub fn delete_constraint(
    store: &Store,
    actor: &str,
    cluster: u64,
    kind: &str,
    name: &str,
) -> Result<(), GatekeeperError> {
    store.write(|w| {
        if !w.delete(&CONSTRAINTS, &key(cluster, kind, name))? {
            return Err(GatekeeperError::NotFound(format!(
                "no {} named {} in cluster {cluster}",
                short(kind),
                short(name)
            )));
        }
        audit::record(
            w,
            Event::new(
                actor,
                "gatekeeper.constraint.delete",
                format!("cluster:{cluster}"),
            )
            .detail(format!("{kind}/{name}")),
        )?;
        Ok(())
    })
}

/// Drops a deleted cluster's constraints, inside its delete transaction.
pub fn forget(w: &crate::store::WriteTx, cluster: u64) -> Result<(), crate::store::StoreError> {
    let p = prefix(cluster);
    w.retain(&CONSTRAINTS, |k: &String, _| !k.starts_with(&p))?;
    Ok(())
}
