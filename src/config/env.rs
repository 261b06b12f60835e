//! `BULWARK_*` environment variables applied over the file's table, typed like the defaults.

use super::{Config, NON_KEY_ENV};

pub(super) fn collect_keys(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in t {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(inner) => collect_keys(inner, &path, out),
            // Lists of tables (`[[detect.custom]]`) are set in the file only.
            toml::Value::Array(_) => {}
            _ => out.push(path),
        }
    }
}

/// Applies `BULWARK_*` variables on top of the file's table, typed like the default value.
pub(super) fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    problems: &mut Vec<String>,
) {
    let defaults = toml::Value::try_from(Config::default()).ok();
    let keys = Config::keys();
    for (name, raw) in env {
        if !name.starts_with("BULWARK_") || NON_KEY_ENV.contains(&name.as_str()) {
            continue;
        }
        let Some((path, _)) = keys.iter().find(|(_, e)| *e == name) else {
            tracing::warn!(variable = %name, "ignoring unknown BULWARK_ environment variable");
            continue;
        };
        let default = defaults.as_ref().and_then(|d| lookup(d, path));
        let value = match default {
            Some(toml::Value::Integer(_)) => match raw.trim().parse::<i64>() {
                Ok(i) => toml::Value::Integer(i),
                Err(_) => {
                    problems.push(format!("{name}: expected a whole number, got '{raw}'"));
                    continue;
                }
            },
            Some(toml::Value::Boolean(_)) => match raw.trim() {
                "true" | "1" | "yes" => toml::Value::Boolean(true),
                "false" | "0" | "no" => toml::Value::Boolean(false),
                _ => {
                    problems.push(format!("{name}: expected true or false, got '{raw}'"));
                    continue;
                }
            },
            _ => toml::Value::String(raw),
        };
        set(table, path, value);
    }
}

fn lookup<'a>(v: &'a toml::Value, path: &str) -> Option<&'a toml::Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn set(table: &mut toml::Table, path: &str, value: toml::Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap_or_default();
    let mut cur = table;
    for p in parts {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        match entry {
            toml::Value::Table(t) => cur = t,
            _ => return,
        }
    }
    cur.insert(last.to_string(), value);
}
