//! Constraint parameters checked against their template's openAPIV3Schema, the subset
//! Kubernetes structural schemas use: types, properties, items, required, enums, bounds,
//! patterns, `anyOf`/`oneOf`/`allOf`, `nullable` and the `x-kubernetes-*` escapes.
//! Keywords it does not know are ignored rather than guessed at.

use serde_json::{Map, Value};

/// Every problem found, each as `path: what is wrong`.
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, value, "parameters", &mut errors, 0);
    errors
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn flag(s: &Map<String, Value>, k: &str) -> bool {
    s.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn check(schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>, depth: usize) {
    let Some(s) = schema.as_object() else { return };
    if depth > 32 || errors.len() >= 50 {
        return;
    }
    if v.is_null() && flag(s, "nullable") {
        return;
    }
    if flag(s, "x-kubernetes-int-or-string") {
        if !(v.is_string() || type_name(v) == "integer") {
            errors.push(format!("{path}: must be an integer or a string"));
        }
        return;
    }
    if let Some(t) = s.get("type").and_then(Value::as_str) {
        let actual = type_name(v);
        let ok = actual == t || (t == "number" && actual == "integer");
        if !ok {
            errors.push(format!("{path}: must be {}{t}, not {actual}", article(t)));
            return;
        }
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array) {
        if !options.contains(v) {
            let shown: Vec<String> = options.iter().take(10).map(Value::to_string).collect();
            errors.push(format!("{path}: must be one of {}", shown.join(", ")));
        }
    }
    for (k, any) in [("anyOf", true), ("oneOf", false)] {
        if let Some(list) = s.get(k).and_then(Value::as_array) {
            let passing = list
                .iter()
                .filter(|sub| {
                    let mut e = Vec::new();
                    check(sub, v, path, &mut e, depth + 1);
                    e.is_empty()
                })
                .count();
            if (any && passing == 0) || (!any && passing != 1) {
                errors.push(format!(
                    "{path}: must match {} of the {} allowed forms",
                    if any { "one or more" } else { "exactly one" },
                    list.len()
                ));
            }
        }
    }
    if let Some(list) = s.get("allOf").and_then(Value::as_array) {
        for sub in list {
            check(sub, v, path, errors, depth + 1);
        }
    }
    match v {
        Value::String(text) => {
            let len = text.chars().count() as u64;
            if let Some(min) = s
                .get("minLength")
                .and_then(Value::as_u64)
                .filter(|m| len < *m)
            {
                errors.push(format!("{path}: at least {min} characters"));
            }
            if let Some(max) = s
                .get("maxLength")
                .and_then(Value::as_u64)
                .filter(|m| len > *m)
            {
                errors.push(format!("{path}: at most {max} characters"));
            }
            if let Some(p) = s.get("pattern").and_then(Value::as_str) {
                match regex::RegexBuilder::new(p).size_limit(1 << 20).build() {
                    Ok(re) if !re.is_match(text) => {
                        errors.push(format!("{path}: must match the pattern {p}"))
                    }
                    _ => {}
                }
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(min) = s.get("minimum").and_then(Value::as_f64).filter(|m| x < *m) {
                errors.push(format!("{path}: at least {min}"));
            }
            if let Some(max) = s.get("maximum").and_then(Value::as_f64).filter(|m| x > *m) {
                errors.push(format!("{path}: at most {max}"));
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(min) = s.get("minItems").and_then(Value::as_u64).filter(|m| n < *m) {
                errors.push(format!("{path}: at least {min} items"));
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64).filter(|m| n > *m) {
                errors.push(format!("{path}: at most {max} items"));
            }
            if let Some(item) = s.get("items") {
                for (i, x) in items.iter().enumerate() {
                    check(item, x, &format!("{path}[{i}]"), errors, depth + 1);
                }
            }
        }
        Value::Object(o) => {
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !o.contains_key(r) {
                    errors.push(format!("{path}.{r}: required"));
                }
            }
            let props = s.get("properties").and_then(Value::as_object);
            let extra = s.get("additionalProperties");
            let open = flag(s, "x-kubernetes-preserve-unknown-fields")
                || (props.is_none() && extra.is_none())
                || extra == Some(&Value::Bool(true));
            for (k, x) in o {
                let sub = format!("{path}.{k}");
                if let Some(p) = props.and_then(|p| p.get(k)) {
                    check(p, x, &sub, errors, depth + 1);
                } else if let Some(e) = extra.filter(|e| e.is_object()) {
                    check(e, x, &sub, errors, depth + 1);
                } else if !open {
                    errors.push(format!("{sub}: unknown field"));
                }
            }
        }
        _ => {}
    }
}

fn article(t: &str) -> &'static str {
    if matches!(t.chars().next(), Some('a' | 'e' | 'i' | 'o' | 'u')) {
        "an "
    } else {
        "a "
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_nesting_and_messages() {
        let schema = json!({"type": "object", "properties": {
            "labels": {"type": "array", "items": {"type": "object", "required": ["key"],
                "properties": {"key": {"type": "string", "minLength": 1}, "allowedRegex": {"type": "string"}}}},
            "limit": {"type": "integer", "minimum": 1},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "port": {"x-kubernetes-int-or-string": true},
            "either": {"anyOf": [{"type": "string"}, {"type": "boolean"}]},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }});
        assert!(validate(
            &schema,
            &json!({"labels": [{"key": "owner"}], "limit": 3, "mode": "a",
            "port": "http", "either": true, "free": {"x": 1}})
        )
        .is_empty());
        let e = validate(
            &schema,
            &json!({"labels": [{"allowedRegex": 1}], "limit": "3",
            "mode": "c", "port": 1.5, "either": 3, "extra": 1}),
        );
        for want in [
            "parameters.labels[0].key: required",
            "parameters.labels[0].allowedRegex: must be a string, not integer",
            "parameters.limit: must be an integer, not string",
            "parameters.mode: must be one of \"a\", \"b\"",
            "parameters.port: must be an integer or a string",
            "parameters.either: must match one or more of the 2 allowed forms",
            "parameters.extra: unknown field",
        ] {
            assert!(e.iter().any(|x| x == want), "{want} in {e:?}");
        }
        assert_eq!(
            validate(&json!({"type": "object"}), &json!({"any": 1})),
            Vec::<String>::new()
        );
        assert_eq!(validate(&json!({"type": "array"}), &json!({})).len(), 1);
        // A schema that is not an object checks nothing rather than failing.
        assert!(validate(&json!("weird"), &json!(1)).is_empty());
    }
}
