//! Templates as Bulwark pushes them to clusters that run Gatekeeper: the template's own rule
//! renamed, and a `violation` rule in its place that drops violations a gatekeeper exception
//! excuses (its namespaces, image pattern and constraint), with the exceptions in effect today
//! written into the Rego. A push after an exception starts or ends writes the new list.
//!
//! Gatekeeper does not tell a template which constraint it evaluates, so pushed constraints
//! carry their name as the parameter `bulwarkConstraint`, which the pushed schema declares.

use serde_json::{json, Value};

use super::{compat, Constraint, GatekeeperError, Template};
use crate::compliance::Exception;

/// The parameter that carries a pushed constraint's name.
pub const CONSTRAINT_PARAMETER: &str = "bulwarkConstraint";

/// What the renamed template rule is called.
const INNER: &str = "bulwark_unexcused_violation";

/// A constraint's parameters as pushed.
pub fn parameters(c: &Constraint) -> Value {
    let mut p = c.parameters.clone();
    if !p.is_object() {
        p = json!({});
    }
    p[CONSTRAINT_PARAMETER] = json!(c.name);
    p
}

/// The exception filter, in v0 syntax (`@if` and `@contains` mark what v1 spells out).
const FILTER: &str = r#"
violation@contains(v) {
  bulwark_unexcused_violation[v]
  not bulwark_excused
}

bulwark_excused@if {
  e := bulwark_exceptions[_]
  bulwark_constraint_matches(e)
  bulwark_namespace_matches(e)
  bulwark_images_match(e)
}

bulwark_constraint_matches(e)@if {
  e.constraint == ""
}

bulwark_constraint_matches(e)@if {
  e.constraint == object.get(input.parameters, "bulwarkConstraint", "")
}

bulwark_namespace = ns@if {
  ns := object.get(input.review, "namespace", "")
  ns != ""
}

bulwark_namespace = ns@if {
  object.get(input.review, "namespace", "") == ""
  ns := object.get(object.get(input.review.object, "metadata", {}), "namespace", "")
}

bulwark_namespace_matches(e)@if {
  count(e.namespaces) == 0
}

bulwark_namespace_matches(e)@if {
  ns := bulwark_namespace
  ns != ""
  e.namespaces[_] == ns
}

bulwark_images_match(e)@if {
  e.images == ""
}

bulwark_images_match(e)@if {
  e.images != ""
  count(bulwark_image_names) > 0
  not bulwark_image_outside(e)
}

bulwark_image_outside(e)@if {
  n := bulwark_image_names[_]
  not glob.match(e.images, ["/"], n)
}

bulwark_pod_spec = s@if {
  input.review.object.kind == "Pod"
  s := input.review.object.spec
}

bulwark_pod_spec = s@if {
  input.review.object.kind == "CronJob"
  s := input.review.object.spec.jobTemplate.spec.template.spec
}

bulwark_pod_spec = s@if {
  not input.review.object.kind == "Pod"
  not input.review.object.kind == "CronJob"
  s := input.review.object.spec.template.spec
}

bulwark_image_names@contains(n) {
  f := {"containers", "initContainers", "ephemeralContainers"}[_]
  c := bulwark_pod_spec[f][_]
  n := bulwark_normalize(c.image)
}

bulwark_normalize(image) = n@if {
  bare := split(image, "@")[0]
  parts := split(bare, "/")
  last := parts[count(parts) - 1]
  path := array.concat(array.slice(parts, 0, count(parts) - 1), [split(last, ":")[0]])
  n := bulwark_qualify(path)
}

bulwark_qualify(p) = q@if {
  count(p) == 1
  q := concat("/", ["docker.io", "library", p[0]])
}

bulwark_qualify(p) = q@if {
  count(p) > 1
  not bulwark_registry(p[0])
  q := concat("/", array.concat(["docker.io"], p))
}

bulwark_qualify(p) = q@if {
  count(p) == 2
  bulwark_docker(p[0])
  q := concat("/", ["docker.io", "library", p[1]])
}

bulwark_qualify(p) = q@if {
  count(p) > 2
  bulwark_docker(p[0])
  q := concat("/", array.concat(["docker.io"], array.slice(p, 1, count(p))))
}

bulwark_qualify(p) = q@if {
  count(p) > 1
  bulwark_registry(p[0])
  not bulwark_docker(p[0])
  q := concat("/", p)
}

bulwark_docker(r)@if {
  {"docker.io", "index.docker.io", "registry-1.docker.io"}[r]
}

bulwark_registry(r)@if {
  contains(r, ".")
}

bulwark_registry(r)@if {
  contains(r, ":")
}

bulwark_registry(r)@if {
  r == "localhost"
}
"#;

fn filter(v1: bool) -> String {
    let mut out = String::new();
    for line in FILTER.lines() {
        let line = if let Some(i) = line.find("@contains(") {
            let var_end = line[i..].find(')').map(|j| i + j).unwrap_or(line.len());
            let var = &line[i + "@contains(".len()..var_end];
            let rest = &line[var_end + 1..];
            if v1 {
                format!("{} contains {var} if{rest}", &line[..i])
            } else {
                format!("{}[{var}]{rest}", &line[..i])
            }
        } else {
            line.replace("@if", if v1 { " if" } else { "" })
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The exceptions as Rego data.
fn exception_data(exceptions: &[Exception]) -> Value {
    Value::Array(
        exceptions
            .iter()
            .map(|e| {
                json!({
                    "id": e.id,
                    "constraint": e.issue_id,
                    "namespaces": e.namespaces.clone().unwrap_or_default(),
                    "images": if e.image_match.is_any() { String::new() } else { e.image_match.normalized() },
                })
            })
            .collect(),
    )
}

/// The template document Bulwark pushes, with `exceptions` (those of this cluster and
/// template) rendered in.
pub fn template(t: &Template, exceptions: &[Exception]) -> Result<Value, GatekeeperError> {
    let mut doc = t.document.clone();
    // The schema declares the constraint-name parameter.
    let schema = doc
        .pointer_mut("/spec/crd/spec/validation/openAPIV3Schema")
        .filter(|s| s.is_object())
        .map(|s| s.take());
    let mut schema = schema.unwrap_or_else(|| json!({"type": "object"}));
    schema["properties"][CONSTRAINT_PARAMETER] = json!({"type": "string",
        "description": "The constraint's name, for Bulwark's exceptions"});
    doc["spec"]["crd"]["spec"]["validation"]["openAPIV3Schema"] = schema;
    if exceptions.is_empty() {
        return Ok(doc);
    }
    let data = serde_json::to_string(&exception_data(exceptions))
        .map_err(|e| GatekeeperError::Invalid(e.to_string()))?;
    let rewrite = |rego: &str, v1: bool| {
        format!(
            "{}\n# Bulwark: violations its gatekeeper exceptions excuse are dropped.\nbulwark_exceptions = {data}\n{}",
            compat::rename_rule(rego, "violation", INNER),
            filter(v1)
        )
    };
    let targets = doc
        .pointer_mut("/spec/targets")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| GatekeeperError::Invalid("the template has no targets".into()))?;
    for target in targets.iter_mut() {
        if target.get("target").and_then(Value::as_str) != Some("admission.k8s.gatekeeper.sh") {
            continue;
        }
        if let Some(code) = target.get_mut("code").and_then(Value::as_array_mut) {
            // With CEL beside the Rego, Gatekeeper may evaluate the CEL, which knows nothing
            // of exceptions: the pushed template keeps only the Rego.
            code.retain(|c| c.get("engine").and_then(Value::as_str) == Some("Rego"));
            for c in code.iter_mut() {
                let v1 = c.pointer("/source/version").and_then(Value::as_str) == Some("v1");
                if let Some(r) = c.pointer("/source/rego").and_then(Value::as_str) {
                    let r = rewrite(r, v1);
                    c["source"]["rego"] = json!(r);
                }
            }
        }
        if let Some(r) = target.get("rego").and_then(Value::as_str) {
            let r = rewrite(r, false);
            target["rego"] = json!(r);
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gatekeeper::{engine, evaluate, library, Policy, Review};

    fn exception(
        id: u64,
        namespaces: Option<Vec<&str>>,
        constraint: &str,
        image: &str,
    ) -> Exception {
        serde_json::from_value(json!({
            "id": id, "title": "t", "type": "gatekeeper", "status": "active",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "namespaces": namespaces, "issue_id": constraint, "image_match": image,
        }))
        .unwrap()
    }

    fn pod(ns: &str, image: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns},
            "spec": {"containers": [{"name": "c", "image": image, "securityContext": {"privileged": true}}]}})
    }

    /// The rendered Rego excuses what Bulwark's own matching excuses, and nothing more.
    #[test]
    fn rendered_exceptions_agree_with_bulwarks_own_matching() {
        let t = library::templates()
            .iter()
            .find(|t| t.kind == "BulwarkPrivilegedContainers")
            .unwrap();
        let exceptions = vec![
            exception(1, Some(vec!["shop"]), "no-priv", "nginx"),
            exception(2, None, "other-constraint", ""),
            exception(3, Some(vec!["ops"]), "", "registry.internal/tools/**"),
        ];
        let doc = template(t, &exceptions).unwrap();
        let rendered = Template::from_document(doc).unwrap();
        let mut p = Policy::compile(&rendered, engine::DEFAULT_TIME_LIMIT).unwrap();
        let c =
            Constraint::from_document(&json!({"kind": t.kind, "metadata": {"name": "no-priv"}}))
                .unwrap();
        let mut pushed = c.clone();
        pushed.parameters = parameters(&c);
        let cases = [
            ("shop", "nginx:1.25", true),
            ("shop", "docker.io/library/nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true),
            ("shop", "index.docker.io/nginx:1", true),
            ("billing", "nginx:1.25", false),
            ("shop", "busybox", false),
            ("shop", "quay.io/nginx", false),
            ("ops", "registry.internal/tools/debug/shell:2", true),
            ("ops", "registry.internal:5000/tools/x:1", false),
            ("ops", "nginx", false),
        ];
        for (ns, image, excused) in cases {
            let object = pod(ns, image);
            let found =
                evaluate(&mut p, &pushed, &Review::from_object(object.clone(), None)).unwrap();
            assert_eq!(found.is_empty(), excused, "{ns} {image}: {found:?}");
            let images = crate::gatekeeper::exceptions::image_names(&object);
            let ours = crate::gatekeeper::exceptions::excusing(
                &exceptions,
                &crate::gatekeeper::exceptions::Subject {
                    cluster: 1,
                    namespace: Some(ns),
                    images: &images,
                    template: &t.kind,
                    constraint: "no-priv",
                },
            );
            assert_eq!(
                ours.is_some(),
                excused,
                "Bulwark's matching of {ns} {image}"
            );
        }
        // Without exceptions the Rego is the template's own; the schema gains the parameter.
        let plain = template(t, &[]).unwrap();
        assert_eq!(
            plain.pointer("/spec/targets/0/rego"),
            t.document.pointer("/spec/targets/0/rego")
        );
        assert!(plain
            .pointer("/spec/crd/spec/validation/openAPIV3Schema/properties/bulwarkConstraint")
            .is_some());
    }

    #[test]
    fn v1_templates_render_v1_rego() {
        let t = Template::from_document(json!({
            "kind": "ConstraintTemplate", "metadata": {"name": "k8sv"},
            "spec": {"crd": {"spec": {"names": {"kind": "K8sV"}}},
                "targets": [{"target": "admission.k8s.gatekeeper.sh", "code": [
                    {"engine": "K8sNativeValidation", "source": {"validations": []}},
                    {"engine": "Rego", "source": {"version": "v1", "rego":
                        "package k8sv\nviolation contains {\"msg\": \"no\"} if {\n  input.review.object.kind == \"Pod\"\n}\n"}}]}]}
        }))
        .unwrap();
        let doc = template(&t, &[exception(1, Some(vec!["shop"]), "", "")]).unwrap();
        assert_eq!(
            doc.pointer("/spec/targets/0/code")
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let rendered = Template::from_document(doc).unwrap();
        assert!(rendered.rego.v1);
        let mut p = Policy::compile(&rendered, engine::DEFAULT_TIME_LIMIT).unwrap();
        let c =
            Constraint::from_document(&json!({"kind": "K8sV", "metadata": {"name": "v"}})).unwrap();
        let excused = evaluate(&mut p, &c, &Review::from_object(pod("shop", "x"), None)).unwrap();
        assert!(excused.is_empty());
        let refused = evaluate(&mut p, &c, &Review::from_object(pod("other", "x"), None)).unwrap();
        assert_eq!(refused.len(), 1);
    }
}
