//! Ignore rules (the event is not stored) and silence rules (stored, never alerted on):
//! clusters, namespaces, a regular expression on the rule name and one on the image. The first
//! active rule that matches decides. A rule ignoring `kube-system` everywhere is seeded once;
//! an admin may change or delete it.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{Event, RuntimeError};
use crate::audit::{self, Event as AuditEvent};
use crate::store::{Store, StoreError, Table};

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Ignore,
    Silence,
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: u64,
    pub action: Action,
    /// `None`: every cluster.
    pub clusters: Option<Vec<u64>>,
    /// `None`: every namespace.
    pub namespaces: Option<Vec<String>>,
    /// A regular expression on Falco's rule name (empty: any).
    #[serde(default)]
    pub rule: String,
    /// A regular expression on the image repository (empty: any).
    #[serde(default)]
    pub image: String,
    pub active: bool,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// What a client sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub action: Action,
    #[serde(default)]
    pub clusters: Option<Vec<u64>>,
    #[serde(default)]
    pub namespaces: Option<Vec<String>>,
    #[serde(default)]
    pub rule: String,
    #[serde(default)]
    pub image: String,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// Rules by id, checked in id order.
pub const RULES: Table<u64, Rule> = Table::new("runtime_rules");
/// Set once the default rule has been seeded (so a deleted one stays deleted).
const SEEDED: Table<String, bool> = Table::new("runtime_rules_seeded");

fn regex(what: &str, s: &str) -> Result<Option<Regex>, RuntimeError> {
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() > 512 {
        return Err(RuntimeError::Invalid(format!(
            "{what}: at most 512 characters"
        )));
    }
    regex::RegexBuilder::new(s)
        .size_limit(1 << 20)
        .build()
        .map(Some)
        .map_err(|e| RuntimeError::Invalid(format!("{what}: {e}")))
}

/// A rule ready to match.
struct Compiled {
    rule: Rule,
    name: Option<Regex>,
    image: Option<Regex>,
}

impl Compiled {
    fn matches(&self, e: &Event) -> bool {
        let r = &self.rule;
        r.active
            && r.clusters.as_ref().is_none_or(|c| c.contains(&e.cluster))
            && r.namespaces
                .as_ref()
                .is_none_or(|n| n.contains(&e.namespace))
            && self.name.as_ref().is_none_or(|re| re.is_match(&e.rule))
            && self.image.as_ref().is_none_or(|re| re.is_match(&e.image))
    }
}

/// The rules, compiled, kept until the table changes.
#[derive(Default)]
pub struct RuleCache {
    current: RwLock<Option<(u64, Arc<Vec<Compiled>>)>>,
}

impl RuleCache {
    fn rules(&self, store: &Store) -> Result<Arc<Vec<Compiled>>, RuntimeError> {
        let version = store.version(&RULES);
        if let Some((v, r)) = self.current.read().ok().and_then(|c| c.clone()) {
            if v == version {
                return Ok(r);
            }
        }
        let mut out = Vec::new();
        for (_, rule) in store.read(|r| r.all(&RULES))? {
            // Stored rules compiled when saved; one that no longer does is skipped.
            if let (Ok(name), Ok(image)) = (regex("rule", &rule.rule), regex("image", &rule.image))
            {
                out.push(Compiled { rule, name, image });
            }
        }
        let out = Arc::new(out);
        if let Ok(mut c) = self.current.write() {
            *c = Some((version, out.clone()));
        }
        Ok(out)
    }

    /// The first active rule matching `e`: its action and id.
    pub fn decide(&self, store: &Store, e: &Event) -> Result<Option<(Action, u64)>, RuntimeError> {
        Ok(self
            .rules(store)?
            .iter()
            .find(|c| c.matches(e))
            .map(|c| (c.rule.action, c.rule.id)))
    }
}

fn check(input: &RuleInput) -> Result<(), RuntimeError> {
    regex("rule", &input.rule)?;
    regex("image", &input.image)?;
    if input.namespaces.as_ref().is_some_and(|n| n.len() > 200) {
        return Err(RuntimeError::Invalid("namespaces: at most 200".into()));
    }
    Ok(())
}

/// Creates a rule.
pub fn create(store: &Store, actor: &str, input: RuleInput) -> Result<Rule, RuntimeError> {
    check(&input)?;
    store.write(|w| {
        let rule = Rule {
            id: w.next_id("runtime_rules")?,
            action: input.action,
            clusters: input.clusters.filter(|c| !c.is_empty()),
            namespaces: input.namespaces.filter(|n| !n.is_empty()),
            rule: input.rule,
            image: input.image,
            active: input.active,
            by: actor.to_string(),
            at: Utc::now(),
        };
        w.put(&RULES, &rule.id, &rule)?;
        audit::record(
            w,
            AuditEvent::new(
                actor,
                "falco.rule.create",
                format!("falco-rule:{}", rule.id),
            ),
        )?;
        Ok(rule)
    })
}

/// Replaces rule `id`.
pub fn update(store: &Store, actor: &str, id: u64, input: RuleInput) -> Result<Rule, RuntimeError> {
    check(&input)?;
    store.write(|w| {
        let old = w
            .get(&RULES, &id)?
            .ok_or_else(|| RuntimeError::NotFound(format!("no falco rule {id}")))?;
        let rule = Rule {
            action: input.action,
            clusters: input.clusters.filter(|c| !c.is_empty()),
            namespaces: input.namespaces.filter(|n| !n.is_empty()),
            rule: input.rule,
            image: input.image,
            active: input.active,
            by: actor.to_string(),
            at: Utc::now(),
            ..old
        };
        w.put(&RULES, &id, &rule)?;
        audit::record(
            w,
            AuditEvent::new(actor, "falco.rule.update", format!("falco-rule:{id}")),
        )?;
        Ok(rule)
    })
}

/// Deletes rule `id`.
pub fn delete(store: &Store, actor: &str, id: u64) -> Result<(), RuntimeError> {
    store.write(|w| {
        if !w.delete(&RULES, &id)? {
            return Err(RuntimeError::NotFound(format!("no falco rule {id}")));
        }
        audit::record(
            w,
            AuditEvent::new(actor, "falco.rule.delete", format!("falco-rule:{id}")),
        )?;
        Ok(())
    })
}

/// Every rule, in the order they are checked.
pub fn list(store: &Store) -> Result<Vec<Rule>, StoreError> {
    Ok(store
        .read(|r| r.all(&RULES))?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

/// Seeds the rule that ignores `kube-system`, once in the life of the data directory.
pub fn seed(store: &Store) -> Result<(), StoreError> {
    let key = "kube-system".to_string();
    if store.read(|r| r.get(&SEEDED, &key))?.is_some() {
        return Ok(());
    }
    store.write(|w| {
        let rule = Rule {
            id: w.next_id("runtime_rules")?,
            action: Action::Ignore,
            clusters: None,
            namespaces: Some(vec!["kube-system".into()]),
            rule: String::new(),
            image: String::new(),
            active: true,
            by: "bulwark".into(),
            at: Utc::now(),
        };
        w.put(&RULES, &rule.id, &rule)?;
        w.put(&SEEDED, &key, &true)
    })
}
