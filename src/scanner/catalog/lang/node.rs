//! Node.js: `package.json`, `package-lock.json` (lockfile versions 1 to 3) and `yarn.lock`
//! (classic v1 and Berry). Development dependencies are left out, as Trivy does by default:
//! they are rarely installed in an image.

use serde_json::Value;

/// `name` and `version` of a `package.json`.
pub fn package_json(bytes: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    Some((
        v.get("name")?.as_str()?.to_string(),
        v.get("version")?.as_str()?.to_string(),
    ))
}

/// Every non-dev package a `package-lock.json` pins.
pub fn package_lock(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not a package-lock.json: {e}"))?;
    let mut out = Vec::new();
    if let Some(packages) = v.get("packages").and_then(Value::as_object) {
        // Lockfile v2/v3: keys are install paths, `node_modules/a/node_modules/@s/b`.
        for (key, p) in packages {
            let Some(idx) = key.rfind("node_modules/") else {
                continue; // "" is the project itself; other keys are workspace folders
            };
            if p.get("dev").and_then(Value::as_bool) == Some(true)
                || p.get("link").and_then(Value::as_bool) == Some(true)
            {
                continue;
            }
            let name = p
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(&key[idx + "node_modules/".len()..]);
            if let Some(version) = p.get("version").and_then(Value::as_str) {
                out.push((name.to_string(), version.to_string()));
            }
        }
        return Ok(out);
    }
    // Lockfile v1: nested `dependencies` maps.
    fn walk(deps: &serde_json::Map<String, Value>, out: &mut Vec<(String, String)>, depth: usize) {
        if depth > 64 {
            return;
        }
        for (name, d) in deps {
            if d.get("dev").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            if let Some(version) = d.get("version").and_then(Value::as_str) {
                // Git and file dependencies carry a URL, not a version.
                if !version.contains(':') {
                    out.push((name.clone(), version.to_string()));
                }
            }
            if let Some(nested) = d.get("dependencies").and_then(Value::as_object) {
                walk(nested, out, depth + 1);
            }
        }
    }
    if let Some(deps) = v.get("dependencies").and_then(Value::as_object) {
        walk(deps, &mut out, 0);
    }
    Ok(out)
}

/// Every package a `yarn.lock` pins. An entry starts with an unindented line listing its
/// specifiers (`"@types/node@^18.0.0", lodash@npm:^4:`); its indented `version` line follows.
pub fn yarn_lock(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut name: Option<String> = None;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            name = line
                .trim_end_matches(':')
                .split(',')
                .next()
                .map(|s| s.trim().trim_matches('"'))
                .filter(|spec| !spec.starts_with("__metadata"))
                // Workspace members are the project's own code.
                .filter(|spec| !spec.contains("@workspace:"))
                .and_then(spec_name)
                .map(String::from);
            continue;
        }
        let trimmed = line.trim();
        let version = trimmed
            .strip_prefix("version ")
            .or_else(|| trimmed.strip_prefix("version: "));
        if let (Some(n), Some(v)) = (name.as_ref(), version) {
            out.push((n.clone(), v.trim().trim_matches('"').to_string()));
            name = None;
        }
    }
    out
}

/// The package name of a specifier `name@range` (`@scope/name@range` keeps its scope).
fn spec_name(spec: &str) -> Option<&str> {
    let at = spec.get(1..)?.find('@')? + 1;
    Some(&spec[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockfile_v3_skips_the_project_dev_and_links() {
        let lock = br#"{"lockfileVersion":3,"packages":{
            "":{"name":"app","version":"1.0.0"},
            "node_modules/lodash":{"version":"4.17.15"},
            "node_modules/a/node_modules/@s/b":{"version":"2.0.0"},
            "node_modules/jest":{"version":"29.0.0","dev":true},
            "node_modules/local":{"resolved":"packages/local","link":true},
            "packages/local":{"name":"local","version":"0.1.0"},
            "node_modules/alias":{"name":"real-name","version":"3.0.0"}}}"#;
        let mut got = package_lock(lock).unwrap();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("@s/b".to_string(), "2.0.0".to_string()),
                ("lodash".into(), "4.17.15".into()),
                ("real-name".into(), "3.0.0".into()),
            ]
        );
    }

    #[test]
    fn lockfile_v1_walks_nested_dependencies() {
        let lock = br#"{"lockfileVersion":1,"dependencies":{
            "a":{"version":"1.0.0","dependencies":{"b":{"version":"2.0.0"}}},
            "dev-only":{"version":"1.0.0","dev":true},
            "from-git":{"version":"git+https://example.com/x.git#abc"}}}"#;
        let mut got = package_lock(lock).unwrap();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("a".to_string(), "1.0.0".to_string()),
                ("b".into(), "2.0.0".into())
            ]
        );
        assert!(package_lock(b"[1,2").is_err());
    }

    #[test]
    fn yarn_classic_and_berry() {
        let classic = "# yarn lockfile v1\n\n\"@types/node@^18.0.0\", \"@types/node@^18.1\":\n  version \"18.19.3\"\n  dependencies:\n    undici-types \"~5.26.4\"\n\nlodash@4.17.15:\n  version \"4.17.15\"\n";
        assert_eq!(
            yarn_lock(classic),
            vec![
                ("@types/node".to_string(), "18.19.3".to_string()),
                ("lodash".into(), "4.17.15".into())
            ]
        );
        let berry = "__metadata:\n  version: 6\n\n\"app@workspace:.\":\n  version: 0.0.0-use.local\n\n\"lodash@npm:^4.17.0\":\n  version: 4.17.21\n  resolution: \"lodash@npm:4.17.21\"\n";
        assert_eq!(
            yarn_lock(berry),
            vec![("lodash".to_string(), "4.17.21".to_string())]
        );
    }
}
