//! Constraints: which template they instantiate, with which parameters, on which objects, and
//! what happens to a violation.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::review::Review;
use super::GatekeeperError;

/// `spec.enforcementAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Refuse the object at admission.
    #[default]
    Deny,
    /// Admit it with a warning.
    Warn,
    /// Only record the violation.
    Dryrun,
}

impl Action {
    pub fn parse(s: &str) -> Result<Action, GatekeeperError> {
        match s {
            "" | "deny" => Ok(Action::Deny),
            "warn" => Ok(Action::Warn),
            "dryrun" => Ok(Action::Dryrun),
            other => Err(GatekeeperError::Invalid(format!(
                "enforcementAction '{other}': deny, warn or dryrun"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deny => "deny",
            Action::Warn => "warn",
            Action::Dryrun => "dryrun",
        }
    }
}

/// One `match.kinds` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Kinds {
    pub api_groups: Vec<String>,
    pub kinds: Vec<String>,
}

/// A Kubernetes label selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Selector {
    pub match_labels: std::collections::BTreeMap<String, String>,
    pub match_expressions: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Requirement {
    pub key: String,
    pub operator: String,
    pub values: Vec<String>,
}

/// `spec.match`: the objects a constraint applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Match {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<Kinds>,
    /// `*` (default), `Cluster` or `Namespaced`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub excluded_namespaces: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<Selector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<Selector>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// Gatekeeper's wildcards: `kube-*` (prefix), `*-system` (suffix), `*` (anything).
pub fn wildcard(pattern: &str, s: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(_), Some(_)) if pattern.len() >= 2 => s.contains(&pattern[1..pattern.len() - 1]),
        (Some(_), Some(_)) => true,
        (Some(suffix), None) => s.ends_with(suffix),
        (None, Some(prefix)) => s.starts_with(prefix),
        (None, None) => s == pattern,
    }
}

impl Selector {
    /// Whether `labels` satisfy the selector (an empty selector selects everything).
    pub fn selects(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.match_labels
            .iter()
            .all(|(k, v)| get(k) == Some(v.as_str()))
            && self.match_expressions.iter().all(|r| {
                let value = get(&r.key);
                match r.operator.as_str() {
                    "In" => value.is_some_and(|v| r.values.iter().any(|x| x == v)),
                    "NotIn" => value.is_none_or(|v| !r.values.iter().any(|x| x == v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    // Refused when the constraint is read; nothing matches an unknown operator.
                    _ => false,
                }
            })
    }

    fn check(&self, what: &str) -> Result<(), GatekeeperError> {
        for r in &self.match_expressions {
            let ok = match r.operator.as_str() {
                "In" | "NotIn" => !r.values.is_empty(),
                "Exists" | "DoesNotExist" => r.values.is_empty(),
                _ => false,
            };
            if !ok || r.key.is_empty() {
                return Err(GatekeeperError::Invalid(format!(
                    "{what}: expression on '{}' with operator '{}' and {} values is not valid",
                    r.key,
                    r.operator,
                    r.values.len()
                )));
            }
        }
        Ok(())
    }
}

impl Match {
    /// Checks what Gatekeeper's CRD validation would refuse.
    pub fn check(&self) -> Result<(), GatekeeperError> {
        if !matches!(self.scope.as_str(), "" | "*" | "Cluster" | "Namespaced") {
            return Err(GatekeeperError::Invalid(format!(
                "match.scope '{}': *, Cluster or Namespaced",
                self.scope
            )));
        }
        if let Some(s) = &self.label_selector {
            s.check("match.labelSelector")?;
        }
        if let Some(s) = &self.namespace_selector {
            s.check("match.namespaceSelector")?;
        }
        Ok(())
    }

    /// Whether the constraint applies to the object under review.
    pub fn matches(&self, r: &Review) -> bool {
        let any = |l: &[String], v: &str| l.iter().any(|x| x == "*" || x == v);
        if !self.kinds.is_empty()
            && !self
                .kinds
                .iter()
                .any(|k| any(&k.api_groups, &r.group) && any(&k.kinds, &r.kind))
        {
            return false;
        }
        let is_namespace = r.group.is_empty() && r.kind == "Namespace";
        // A Namespace object is matched on its own name; other cluster-scoped objects are
        // outside every namespace rule.
        let ns = if is_namespace {
            Some(r.name.as_str())
        } else {
            r.namespace.as_deref().filter(|n| !n.is_empty())
        };
        match self.scope.as_str() {
            "Cluster" if r.namespace.as_deref().is_some_and(|n| !n.is_empty()) => return false,
            "Namespaced" if r.namespace.as_deref().is_none_or(str::is_empty) => return false,
            _ => {}
        }
        if let Some(ns) = ns {
            if !self.namespaces.is_empty() && !self.namespaces.iter().any(|p| wildcard(p, ns)) {
                return false;
            }
            if self.excluded_namespaces.iter().any(|p| wildcard(p, ns)) {
                return false;
            }
        }
        if !self.name.is_empty() && !wildcard(&self.name, &r.name) {
            return false;
        }
        if let Some(sel) = &self.label_selector {
            let labels = r.object_labels();
            if !sel.selects(labels) {
                return false;
            }
        }
        if let Some(sel) = &self.namespace_selector {
            if is_namespace {
                if !sel.selects(r.object_labels()) {
                    return false;
                }
            } else if ns.is_some() {
                // Without the namespace's labels the selector cannot be satisfied.
                let labels = r
                    .namespace_object
                    .as_ref()
                    .and_then(|n| n.pointer("/metadata/labels"))
                    .and_then(Value::as_object);
                if r.namespace_object.is_none() || !sel.selects(labels) {
                    return false;
                }
            }
        }
        true
    }
}

/// A constraint: an instance of a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    /// The template's kind (`K8sRequiredLabels`).
    pub kind: String,
    pub name: String,
    pub action: Action,
    #[serde(rename = "match")]
    pub matcher: Match,
    /// `spec.parameters`, `{}` when absent (as Gatekeeper defaults it).
    pub parameters: Value,
}

impl Constraint {
    /// Reads a constraint document.
    pub fn from_document(doc: &Value) -> Result<Constraint, GatekeeperError> {
        let bad = |m: String| GatekeeperError::Invalid(format!("constraint: {m}"));
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| bad("kind is missing".into()))?;
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| bad("metadata.name is missing".into()))?;
        let spec = doc.get("spec").cloned().unwrap_or(Value::Null);
        let action = Action::parse(
            spec.get("enforcementAction")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )?;
        let matcher: Match = match spec.get("match") {
            None | Some(Value::Null) => Match::default(),
            Some(m) => serde_json::from_value(m.clone()).map_err(|e| bad(format!("match: {e}")))?,
        };
        matcher.check()?;
        let parameters = match spec.get("parameters") {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(p) => p.clone(),
        };
        Ok(Constraint {
            kind: kind.to_string(),
            name: name.to_string(),
            action,
            matcher,
            parameters,
        })
    }

    /// The constraint as a Kubernetes document.
    pub fn document(&self) -> Value {
        let mut spec = serde_json::json!({
            "enforcementAction": self.action.as_str(),
            "match": self.matcher,
        });
        if self.parameters.as_object().is_none_or(|p| !p.is_empty()) {
            spec["parameters"] = self.parameters.clone();
        }
        serde_json::json!({
            "apiVersion": "constraints.gatekeeper.sh/v1beta1",
            "kind": self.kind,
            "metadata": {"name": self.name},
            "spec": spec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn review(obj: Value) -> Review {
        Review::from_object(obj, None)
    }

    fn pod(ns: &str, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": ns, "labels": labels}})
    }

    fn m(v: Value) -> Match {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn wildcards_are_prefixes_and_suffixes() {
        assert!(wildcard("kube-*", "kube-system"));
        assert!(!wildcard("kube-*", "my-kube"));
        assert!(wildcard("*-system", "kube-system"));
        assert!(wildcard("*", "x"));
        assert!(wildcard("*ube*", "kube-system"));
        assert!(wildcard("prod", "prod") && !wildcard("prod", "prod2"));
    }

    #[test]
    fn kinds_scope_namespaces_and_names() {
        let p = review(pod("kube-system", json!({})));
        assert!(Match::default().matches(&p));
        assert!(m(json!({"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}]})).matches(&p));
        assert!(m(json!({"kinds": [{"apiGroups": ["*"], "kinds": ["*"]}]})).matches(&p));
        assert!(!m(json!({"kinds": [{"apiGroups": ["apps"], "kinds": ["Pod"]}]})).matches(&p));
        assert!(!m(json!({"kinds": [{"apiGroups": [""], "kinds": []}]})).matches(&p));
        assert!(!m(json!({"excludedNamespaces": ["kube-*"]})).matches(&p));
        assert!(m(json!({"namespaces": ["*-system"]})).matches(&p));
        assert!(!m(json!({"namespaces": ["prod"]})).matches(&p));
        assert!(!m(json!({"scope": "Cluster"})).matches(&p));
        assert!(m(json!({"scope": "Namespaced", "name": "web-*"})).matches(&p));
        assert!(!m(json!({"name": "db-*"})).matches(&p));
        // A Namespace matches on its own name; a ClusterRole is outside namespace rules.
        let ns = review(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-public"}}),
        );
        assert!(!m(json!({"excludedNamespaces": ["kube-*"]})).matches(&ns));
        assert!(m(json!({"scope": "Cluster"})).matches(&ns));
        let role = review(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "x"}}),
        );
        assert!(m(json!({"namespaces": ["prod"]})).matches(&role));
        assert!(m(json!({"kinds": [{"apiGroups": ["rbac.authorization.k8s.io"], "kinds": ["ClusterRole"]}]})).matches(&role));
    }

    #[test]
    fn label_and_namespace_selectors() {
        let p = review(pod("shop", json!({"app": "web", "tier": "front"})));
        let sel = |v: Value| m(json!({"labelSelector": v}));
        assert!(sel(json!({"matchLabels": {"app": "web"}})).matches(&p));
        assert!(!sel(json!({"matchLabels": {"app": "db"}})).matches(&p));
        assert!(sel(json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]})).matches(&p));
        assert!(sel(
            json!({"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["a"]}]})
        )
        .matches(&p));
        assert!(
            !sel(json!({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}))
                .matches(&p)
        );
        assert!(
            sel(json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]})).matches(&p)
        );
        let nssel = m(json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}}));
        assert!(
            !nssel.matches(&p),
            "unknown namespace labels never satisfy a selector"
        );
        let known = Review::from_object(
            pod("shop", json!({})),
            Some(json!({"metadata": {"name": "shop", "labels": {"env": "prod"}}})),
        );
        assert!(nssel.matches(&known));
        let bad =
            m(json!({"labelSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}));
        assert!(bad.check().is_err());
        assert!(m(json!({"scope": "Everywhere"})).check().is_err());
    }

    #[test]
    fn constraints_default_their_parameters_and_action() {
        let c = Constraint::from_document(&json!({
            "kind": "K8sRequiredLabels", "metadata": {"name": "x"}, "spec": {}
        }))
        .unwrap();
        assert_eq!(c.action, Action::Deny);
        assert_eq!(c.parameters, json!({}));
        let doc = c.document();
        assert_eq!(Constraint::from_document(&doc).unwrap(), c);
        assert!(Constraint::from_document(&json!({
            "kind": "K", "metadata": {"name": "x"}, "spec": {"enforcementAction": "block"}
        }))
        .is_err());
        assert!(Constraint::from_document(&json!({
            "kind": "K", "metadata": {"name": "x"}, "spec": {"match": {"kinds": "Pod"}}
        }))
        .is_err());
        assert!(Constraint::from_document(&json!("text")).is_err());
    }
}
