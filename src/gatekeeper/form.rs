//! The parameters form of a template, generated from its openAPIV3Schema, and the
//! parameters read back from a submitted form.
//!
//! Scalars get inputs (text, numbers, a choice for enums and booleans), lists of strings a
//! text area with one value per line, nested objects their own fields. Anything else (lists
//! of objects, `anyOf`, free-form objects) is edited as JSON, and the form says why.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

/// How a field is edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Widget {
    Text,
    Integer,
    Number,
    /// Unset, true or false.
    Boolean,
    /// One of `options`.
    Choice,
    /// A list of strings, one per line.
    Lines,
    /// JSON, with `note` saying why.
    Json,
}

/// One field of the form.
#[derive(Debug, Clone, Serialize)]
pub struct Field {
    /// Dotted path into the parameters (`limits.cpu`).
    pub path: String,
    pub description: String,
    pub widget: Widget,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
    pub required: bool,
}

/// The fields for `schema` (none: the template takes no parameters).
pub fn fields(schema: Option<&Value>) -> Vec<Field> {
    let mut out = Vec::new();
    if let Some(s) = schema {
        object_fields(s, "", &mut out, 0);
    }
    out
}

fn text(s: &Value, k: &str) -> String {
    s.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn object_fields(s: &Value, prefix: &str, out: &mut Vec<Field>, depth: usize) {
    let Some(props) = s.get("properties").and_then(Value::as_object) else {
        if s.get("type").and_then(Value::as_str) == Some("object") && !prefix.is_empty() {
            out.push(json_field(
                prefix,
                s,
                "a free-form object has no fixed fields",
                false,
            ));
        }
        return;
    };
    let required: Vec<&str> = s
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, sub) in props {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let req = required.contains(&name.as_str());
        out.push(match field(&path, sub, req, depth) {
            Some(f) => f,
            None => {
                object_fields(sub, &path, out, depth + 1);
                continue;
            }
        });
    }
}

fn json_field(path: &str, s: &Value, why: &str, required: bool) -> Field {
    Field {
        path: path.to_string(),
        description: text(s, "description"),
        widget: Widget::Json,
        options: Vec::new(),
        note: format!("edited as JSON: {why}"),
        required,
    }
}

/// The field for a property, or `None` for an object with its own fields.
fn field(path: &str, s: &Value, required: bool, depth: usize) -> Option<Field> {
    let mk = |widget, options| Field {
        path: path.to_string(),
        description: text(s, "description"),
        widget,
        options,
        note: String::new(),
        required,
    };
    if s.get("anyOf").is_some() || s.get("oneOf").is_some() {
        return Some(json_field(
            path,
            s,
            "the schema allows several forms (anyOf/oneOf)",
            required,
        ));
    }
    if s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        return Some(mk(Widget::Text, Vec::new()));
    }
    let enums: Vec<String> = s
        .get("enum")
        .and_then(Value::as_array)
        .map(|e| {
            e.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    match s.get("type").and_then(Value::as_str) {
        Some("string") if !enums.is_empty() => Some(mk(Widget::Choice, enums)),
        Some("string") => Some(mk(Widget::Text, Vec::new())),
        Some("integer") => Some(mk(Widget::Integer, Vec::new())),
        Some("number") => Some(mk(Widget::Number, Vec::new())),
        Some("boolean") => Some(mk(Widget::Boolean, Vec::new())),
        Some("array") => {
            let items = s.get("items").cloned().unwrap_or(Value::Null);
            if items.get("type").and_then(Value::as_str) == Some("string") {
                let mut f = mk(Widget::Lines, Vec::new());
                if let Some(e) = items.get("enum").and_then(Value::as_array) {
                    f.options = e
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect();
                }
                Some(f)
            } else {
                Some(json_field(
                    path,
                    s,
                    "a list of objects or of lists",
                    required,
                ))
            }
        }
        Some("object")
            if depth < 4
                && s.get("properties").is_some()
                && s.get("x-kubernetes-preserve-unknown-fields").is_none() =>
        {
            None
        }
        Some("object") => Some(json_field(
            path,
            s,
            "a free-form object has no fixed fields",
            required,
        )),
        _ => Some(json_field(path, s, "the schema gives no type", required)),
    }
}

/// Parameters from a submitted form (`p.<path>` keys); every problem, by field.
pub fn parse(fields: &[Field], form: &HashMap<String, String>) -> Result<Value, Vec<String>> {
    let mut root = Map::new();
    let mut errors = Vec::new();
    for f in fields {
        let raw = form
            .get(&format!("p.{}", f.path))
            .map(|s| s.trim())
            .unwrap_or("");
        if raw.is_empty() {
            continue;
        }
        let value = match f.widget {
            Widget::Text | Widget::Choice => Ok(Value::String(raw.to_string())),
            Widget::Integer => raw
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| "a whole number".to_string()),
            Widget::Number => raw
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| "a number".to_string()),
            Widget::Boolean => match raw {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err("true or false".to_string()),
            },
            Widget::Lines => Ok(Value::Array(
                raw.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| Value::String(l.to_string()))
                    .collect(),
            )),
            Widget::Json => serde_json::from_str::<Value>(raw).map_err(|e| format!("JSON: {e}")),
        };
        match value {
            Ok(v) => insert(&mut root, &f.path, v),
            Err(want) => errors.push(format!("parameters.{}: must be {want}", f.path)),
        }
    }
    if errors.is_empty() {
        Ok(Value::Object(root))
    } else {
        Err(errors)
    }
}

fn insert(root: &mut Map<String, Value>, path: &str, v: Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap_or_default();
    let mut cur = root;
    for p in parts {
        let next = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        cur = next.as_object_mut().expect("made an object above");
    }
    cur.insert(last.to_string(), v);
}

/// The form's values for existing parameters (for editing a constraint).
pub fn values(fields: &[Field], parameters: &Value) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for f in fields {
        let v = f.path.split('.').try_fold(parameters, |v, k| v.get(k));
        let Some(v) = v else { continue };
        let text = match (f.widget, v) {
            (Widget::Lines, Value::Array(a)) => a
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join("\n"),
            (Widget::Json, v) => serde_json::to_string_pretty(v).unwrap_or_default(),
            (_, Value::String(s)) => s.clone(),
            (_, v) => v.to_string(),
        };
        out.insert(format!("p.{}", f.path), text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn forms_round_trip_and_say_what_they_cannot_render() {
        let schema = json!({"type": "object", "properties": {
            "repos": {"type": "array", "items": {"type": "string"}, "description": "prefixes"},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "max": {"type": "integer"},
            "strict": {"type": "boolean"},
            "limits": {"type": "object", "properties": {"cpu": {"type": "string"}}},
            "labels": {"type": "array", "items": {"type": "object"}},
            "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }});
        let f = fields(Some(&schema));
        let by = |p: &str| f.iter().find(|x| x.path == p).unwrap();
        assert_eq!(by("repos").widget, Widget::Lines);
        assert_eq!(by("mode").options, ["a", "b"]);
        assert_eq!(by("limits.cpu").widget, Widget::Text);
        assert!(by("labels").note.contains("list of objects"));
        assert!(by("either").note.contains("anyOf"));
        assert_eq!(by("free").widget, Widget::Json);
        let form: HashMap<String, String> = [
            ("p.repos", "registry.internal/\n\n quay.io/org/ "),
            ("p.mode", "b"),
            ("p.max", "3"),
            ("p.strict", "false"),
            ("p.limits.cpu", "2"),
            ("p.labels", "[{\"key\": \"owner\"}]"),
            ("p.either", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = parse(&f, &form).unwrap();
        assert_eq!(
            p,
            json!({"repos": ["registry.internal/", "quay.io/org/"], "mode": "b", "max": 3,
                "strict": false, "limits": {"cpu": "2"}, "labels": [{"key": "owner"}]})
        );
        let back = values(&f, &p);
        assert_eq!(back["p.repos"], "registry.internal/\nquay.io/org/");
        assert_eq!(parse(&f, &back).unwrap(), p);
        let bad: HashMap<String, String> = [("p.max", "many"), ("p.labels", "[")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let e = parse(&f, &bad).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(fields(None).is_empty());
    }
}
