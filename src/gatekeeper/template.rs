//! ConstraintTemplates: the Rego a template carries, the kind of constraint it defines and the
//! schema of that constraint's parameters.

use serde::Serialize;
use serde_json::Value;

use super::GatekeeperError;

/// The Rego of one template, read from either form Gatekeeper accepts: the legacy
/// `targets[].rego`/`libs`, or `targets[].code[engine=Rego].source` (which may ask for v1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rego {
    pub source: String,
    pub libs: Vec<String>,
    /// Rego v1 syntax (`code[].source.version: v1`); Gatekeeper's default is v0.
    pub v1: bool,
}

impl Rego {
    /// Whether the policy or one of its libraries reads `data.inventory` (a referential
    /// template, audited against the cluster's objects).
    pub fn reads_inventory(&self) -> bool {
        std::iter::once(&self.source)
            .chain(&self.libs)
            .any(|s| s.contains("data.inventory"))
    }
}

/// A ConstraintTemplate as Bulwark evaluates it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Template {
    /// `metadata.name`: the constraint kind in lower case.
    pub name: String,
    /// `spec.crd.spec.names.kind`: the kind of its constraints.
    pub kind: String,
    pub title: String,
    pub description: String,
    /// The OpenAPI v3 schema of constraint parameters, when the template gives one.
    pub schema: Option<Value>,
    pub rego: Rego,
    /// The template as given, for pushing to clusters that run Gatekeeper.
    pub document: Value,
}

const TARGET: &str = "admission.k8s.gatekeeper.sh";

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

impl Template {
    /// Reads a ConstraintTemplate document (already parsed from YAML or JSON).
    pub fn from_document(doc: Value) -> Result<Template, GatekeeperError> {
        let bad = |m: &str| GatekeeperError::Invalid(format!("ConstraintTemplate: {m}"));
        if str_at(&doc, &["kind"]) != Some("ConstraintTemplate") {
            return Err(bad("kind is not ConstraintTemplate"));
        }
        let name = str_at(&doc, &["metadata", "name"])
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("metadata.name is missing"))?
            .to_string();
        let kind = str_at(&doc, &["spec", "crd", "spec", "names", "kind"])
            .filter(|k| !k.is_empty())
            .ok_or_else(|| bad("spec.crd.spec.names.kind is missing"))?
            .to_string();
        if kind.to_ascii_lowercase() != name {
            return Err(bad(&format!(
                "metadata.name '{name}' must be the lower-case kind '{}'",
                kind.to_ascii_lowercase()
            )));
        }
        let annotation = |k: &str| {
            str_at(&doc, &["metadata", "annotations", k])
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let title = annotation("metadata.gatekeeper.sh/title");
        let description = annotation("description");
        let schema = doc
            .pointer("/spec/crd/spec/validation/openAPIV3Schema")
            .filter(|s| !s.is_null())
            .cloned();
        let targets = doc
            .pointer("/spec/targets")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("spec.targets is missing"))?;
        let target = targets
            .iter()
            .find(|t| str_at(t, &["target"]) == Some(TARGET))
            .ok_or_else(|| bad(&format!("no target {TARGET}")))?;
        let rego = rego_of(target).ok_or_else(|| {
            bad("the target has no Rego (only CEL validation, which Bulwark does not evaluate)")
        })?;
        Ok(Template {
            name,
            kind,
            title,
            description,
            schema,
            rego,
            document: doc,
        })
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn rego_of(target: &Value) -> Option<Rego> {
    let code = target.get("code").and_then(Value::as_array);
    if let Some(source) = code
        .into_iter()
        .flatten()
        .find(|c| str_at(c, &["engine"]) == Some("Rego"))
        .and_then(|c| c.get("source"))
    {
        if let Some(rego) = source.get("rego").and_then(Value::as_str) {
            return Some(Rego {
                source: rego.to_string(),
                libs: strings(source.get("libs")),
                v1: str_at(source, &["version"]) == Some("v1"),
            });
        }
    }
    let rego = target.get("rego").and_then(Value::as_str)?;
    Some(Rego {
        source: rego.to_string(),
        libs: strings(target.get("libs")),
        v1: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(target: Value) -> Value {
        json!({
            "apiVersion": "templates.gatekeeper.sh/v1",
            "kind": "ConstraintTemplate",
            "metadata": {"name": "k8sdemo", "annotations": {"metadata.gatekeeper.sh/title": "Demo"}},
            "spec": {"crd": {"spec": {"names": {"kind": "K8sDemo"},
                "validation": {"openAPIV3Schema": {"type": "object"}}}},
                "targets": [target]}
        })
    }

    #[test]
    fn both_rego_forms_are_read() {
        let t = Template::from_document(doc(json!({
            "target": TARGET, "rego": "package k8sdemo", "libs": ["package lib.x"]
        })))
        .unwrap();
        assert_eq!(t.kind, "K8sDemo");
        assert_eq!(t.title, "Demo");
        assert_eq!(t.rego.libs, ["package lib.x"]);
        assert!(!t.rego.v1);
        let t = Template::from_document(doc(json!({"target": TARGET, "code": [
            {"engine": "K8sNativeValidation", "source": {"validations": []}},
            {"engine": "Rego", "source": {"rego": "package k8sdemo", "version": "v1"}}
        ]})))
        .unwrap();
        assert!(t.rego.v1);
        assert_eq!(t.rego.source, "package k8sdemo");
    }

    #[test]
    fn templates_without_rego_or_with_a_wrong_name_are_refused() {
        let cel = doc(json!({"target": TARGET, "code": [
            {"engine": "K8sNativeValidation", "source": {"validations": []}}]}));
        assert!(Template::from_document(cel)
            .unwrap_err()
            .to_string()
            .contains("only CEL"));
        let mut d = doc(json!({"target": TARGET, "rego": "package k8sdemo"}));
        d["metadata"]["name"] = json!("other");
        assert!(Template::from_document(d)
            .unwrap_err()
            .to_string()
            .contains("lower-case kind"));
        assert!(Template::from_document(json!({"kind": "Pod"})).is_err());
        assert!(Template::from_document(json!([])).is_err());
    }
}
