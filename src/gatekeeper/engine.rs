//! A template compiled once into a regorus engine, evaluated against reviews.
//!
//! Every evaluation has limits: the object is refused past a size and depth, evaluation stops
//! at a time limit, and a template cannot return more than a fixed number of violations or
//! messages past a fixed length. An evaluation that errors is an error, never a violation:
//! Bulwark must not refuse what Gatekeeper would admit.

use std::num::NonZeroU32;
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use serde::Serialize;
use serde_json::Value;

use super::compat;
use super::template::Template;
use super::GatekeeperError;

/// Objects larger than this (as JSON) are not evaluated.
pub const MAX_OBJECT_BYTES: usize = 4 << 20;
/// Nesting deeper than this is not evaluated.
pub const MAX_DEPTH: usize = 64;
/// Violations kept per evaluation.
pub const MAX_VIOLATIONS: usize = 100;
/// Characters kept of a violation's message.
pub const MAX_MESSAGE: usize = 2048;
/// Time one evaluation may take, by default.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_millis(250);

/// One violation a template reported.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Violation {
    pub msg: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

/// A compiled template. Clone it to evaluate on another thread: clones share the compiled
/// modules.
#[derive(Clone)]
pub struct Policy {
    engine: regorus::Engine,
    rule: String,
    /// Whether the template reads `data.inventory` (referential templates).
    inventory: bool,
}

/// Builtins refused in templates: network calls, and ranges that let a tiny object allocate
/// without bound (the time limit is checked between steps, not inside one builtin).
const REFUSED_BUILTINS: &[&str] = &[
    "http.send",
    "net.lookup_ip_addr",
    "numbers.range",
    "numbers.range_step",
    "opa.runtime",
];

fn check_builtins(src: &str) -> Result<(), GatekeeperError> {
    for b in REFUSED_BUILTINS {
        let mut from = 0;
        while let Some(i) = src[from..].find(b) {
            let at = from + i;
            let before = src[..at].chars().next_back();
            let after = src[at + b.len()..].trim_start().chars().next();
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
                && after == Some('(')
            {
                return Err(GatekeeperError::Compile(format!(
                    "the builtin {b} is not allowed in templates"
                )));
            }
            from = at + b.len();
        }
    }
    Ok(())
}

impl Policy {
    /// Compiles a template's Rego (and its libs) with a time limit per evaluation.
    pub fn compile(t: &Template, time_limit: Duration) -> Result<Policy, GatekeeperError> {
        let compile = |e: anyhow::Error| GatekeeperError::Compile(format!("{e:#}"));
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(!t.rego.v1);
        engine.set_strict_builtin_errors(false);
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit: time_limit,
            check_interval: NonZeroU32::new(64).expect("non-zero"),
        });
        check_builtins(&t.rego.source)?;
        let v0 = !t.rego.v1;
        let path = format!("{}.rego", t.name);
        let package = engine
            .add_policy(path.clone(), compat::for_regorus(&t.rego.source, v0))
            .map_err(compile)?;
        let rule = format!("{package}.violation");
        if !engine
            .has_declared_rule_rooted_at(&path, "violation")
            .unwrap_or(false)
        {
            return Err(GatekeeperError::Compile(format!(
                "{package} has no violation rule"
            )));
        }
        for (i, lib) in t.rego.libs.iter().enumerate() {
            check_builtins(lib)?;
            engine
                .add_policy(format!("lib_{i}.rego"), compat::for_regorus(lib, v0))
                .map_err(compile)?;
        }
        engine
            .add_data(regorus::Value::from(serde_json::json!({"inventory": {}})))
            .map_err(compile)?;
        let inventory = t.rego.reads_inventory();
        let mut p = Policy {
            engine,
            rule,
            inventory,
        };
        // A trial run surfaces what only preparation finds (unknown functions, conflicts, a
        // package without `violation`).
        p.engine.set_input(regorus::Value::from(
            serde_json::json!({"review": {}, "parameters": {}}),
        ));
        p.engine.eval_rule(p.rule.clone()).map_err(compile)?;
        Ok(p)
    }

    /// Whether the template reads `data.inventory`.
    pub fn reads_inventory(&self) -> bool {
        self.inventory
    }

    /// The same policy with `data.inventory` set (referential templates read it).
    pub fn with_inventory(&self, inventory: Value) -> Result<Policy, GatekeeperError> {
        let mut p = self.clone();
        p.engine.clear_data();
        p.engine
            .add_data(regorus::Value::from(
                serde_json::json!({ "inventory": inventory }),
            ))
            .map_err(|e| GatekeeperError::Compile(format!("{e:#}")))?;
        Ok(p)
    }

    /// Evaluates `input` (`{"review": …, "parameters": …}`, already converted).
    pub fn evaluate(&mut self, input: regorus::Value) -> Result<Vec<Violation>, GatekeeperError> {
        self.engine.set_input(input);
        let out = self
            .engine
            .eval_rule(self.rule.clone())
            .map_err(|e| GatekeeperError::Evaluation(format!("{e:#}")))?;
        violations(&out)
    }
}

fn violations(out: &regorus::Value) -> Result<Vec<Violation>, GatekeeperError> {
    let set = match out {
        regorus::Value::Undefined => return Ok(Vec::new()),
        regorus::Value::Set(s) => s,
        _ => {
            return Err(GatekeeperError::Evaluation(
                "violation is not a set of objects".into(),
            ))
        }
    };
    let mut list = Vec::new();
    for v in set.iter().take(MAX_VIOLATIONS) {
        let json = serde_json::to_value(v)
            .map_err(|e| GatekeeperError::Evaluation(format!("violation: {e}")))?;
        let mut msg = json
            .get("msg")
            .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string))
            .unwrap_or_default();
        if let Some((cut, _)) = msg.char_indices().nth(MAX_MESSAGE) {
            msg.truncate(cut);
        }
        list.push(Violation {
            msg,
            details: json.get("details").cloned().unwrap_or(Value::Null),
        });
    }
    Ok(list)
}

/// Refuses objects past the size and depth limits before they reach an engine.
pub fn check_object(v: &Value) -> Result<(), GatekeeperError> {
    fn depth(v: &Value, d: usize) -> bool {
        if d > MAX_DEPTH {
            return false;
        }
        match v {
            Value::Array(a) => a.iter().all(|x| depth(x, d + 1)),
            Value::Object(o) => o.values().all(|x| depth(x, d + 1)),
            _ => true,
        }
    }
    if !depth(v, 0) {
        return Err(GatekeeperError::Invalid(format!(
            "the object is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let size = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
    if size > MAX_OBJECT_BYTES {
        return Err(GatekeeperError::Invalid(format!(
            "the object is {size} bytes, more than {MAX_OBJECT_BYTES}"
        )));
    }
    Ok(())
}

/// `{"review": review, "parameters": parameters}` as an engine input.
pub fn input(review: regorus::Value, parameters: regorus::Value) -> regorus::Value {
    let mut m = std::collections::BTreeMap::new();
    m.insert(regorus::Value::from("review"), review);
    m.insert(regorus::Value::from("parameters"), parameters);
    regorus::Value::from(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(rego: &str) -> Template {
        Template::from_document(json!({
            "kind": "ConstraintTemplate",
            "metadata": {"name": "k8st"},
            "spec": {"crd": {"spec": {"names": {"kind": "K8sT"}}},
                "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego": rego}]}
        }))
        .unwrap()
    }

    fn run(rego: &str, review: Value, parameters: Value) -> Result<Vec<String>, GatekeeperError> {
        let mut p = Policy::compile(&template(rego), DEFAULT_TIME_LIMIT)?;
        let v = p.evaluate(input(
            regorus::Value::from(review),
            regorus::Value::from(parameters),
        ))?;
        Ok(v.into_iter().map(|v| v.msg).collect())
    }

    /// Each case reads as OPA reads it, where regorus 0.14 alone differs.
    #[test]
    fn regorus_differences_from_opa_are_bridged() {
        // A term on one line, a parenthesised expression on the next.
        let rego = "package t\nviolation[{\"msg\": \"spread\"}] {\n  x := input.review.object.n\n  x\n  (x - 1) >= 3\n}\n";
        assert_eq!(
            run(rego, json!({"object": {"n": 5}}), json!({})).unwrap(),
            ["spread"]
        );
        assert!(run(rego, json!({"object": {"n": 2}}), json!({}))
            .unwrap()
            .is_empty());
        // Chained bodies: each body is a definition.
        let rego = "package t\nviolation[{\"msg\": m}] { m := \"a\" } { m := \"b\" }\n";
        let mut got = run(rego, json!({}), json!({})).unwrap();
        got.sort();
        assert_eq!(got, ["a", "b"]);
        // `not f(undefined)` is undefined, not true: no violation for an allowed object.
        let rego = "package t\nf(\"A\", _, _) { true }\nviolation[{\"msg\": \"neg\"}] {\n  p := input.parameters\n  not f(p.rule, 1, p.ranges)\n}\n";
        assert!(run(rego, json!({}), json!({"rule": "B"}))
            .unwrap()
            .is_empty());
        assert_eq!(
            run(rego, json!({}), json!({"rule": "B", "ranges": []})).unwrap(),
            ["neg"]
        );
        // A builtin error is undefined, as in OPA.
        let rego = "package t\nviolation[{\"msg\": \"x\"}] { object.get(null, \"a\", 1) == 1 }\n";
        assert!(run(rego, json!({}), json!({})).unwrap().is_empty());
        // sprintf with fewer arguments than verbs still reports, as Go prints it.
        let rego = "package t\nviolation[{\"msg\": msg}] { msg := sprintf(\"%v and %v\", [1]) }\n";
        assert_eq!(
            run(rego, json!({}), json!({})).unwrap(),
            ["1 and %!v(MISSING)"]
        );
    }

    #[test]
    fn bad_rego_is_refused_with_the_compilers_message() {
        let e = run(
            "package t\nviolation[{\"msg\": m}] { m := }\n",
            json!({}),
            json!({}),
        )
        .unwrap_err();
        assert!(matches!(e, GatekeeperError::Compile(_)), "{e}");
        let e = run("package t\nallow { true }\n", json!({}), json!({})).unwrap_err();
        assert!(e.to_string().contains("violation"), "{e}");
        let e = run(
            "package t\nviolation[{\"msg\": \"x\"}] { numbers.range(1, 1000000000)[_] == 0 }\n",
            json!({}),
            json!({}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("numbers.range"), "{e}");
        let e = run(
            "package t\nviolation[{\"msg\": \"x\"}] { nope(1) }\n",
            json!({}),
            json!({}),
        )
        .unwrap_err();
        assert!(matches!(e, GatekeeperError::Compile(_)), "{e}");
    }

    #[test]
    fn a_looping_template_stops_at_the_time_limit() {
        let rego = "package t\nviolation[{\"msg\": \"x\"}] {\n  xs := [x | x := input.review.object.items[_]]\n  ys := [y | a := xs[_]; b := xs[_]; c := xs[_]; y := a + b + c]\n  count(ys) < 0\n}\n";
        let items: Vec<u32> = (0..400).collect();
        let mut p = Policy::compile(&template(rego), Duration::from_millis(50)).unwrap();
        let started = std::time::Instant::now();
        let r = p.evaluate(input(
            regorus::Value::from(json!({"object": {"items": items}})),
            regorus::Value::from(json!({})),
        ));
        assert!(matches!(r, Err(GatekeeperError::Evaluation(_))), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn oversized_and_deep_objects_are_refused() {
        let mut deep = json!(1);
        for _ in 0..80 {
            deep = json!([deep]);
        }
        assert!(check_object(&deep).is_err());
        assert!(check_object(&json!({"a": "x".repeat(MAX_OBJECT_BYTES)})).is_err());
        assert!(check_object(&json!({"a": [1, 2, {"b": 3}]})).is_ok());
    }
}
