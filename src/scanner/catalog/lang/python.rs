//! Python: installed distributions (`METADATA`, `PKG-INFO`), `requirements.txt` (exact pins
//! only: a range names no installed version), `poetry.lock` and `Pipfile.lock` (its `default`
//! section; `develop` is left out, as Trivy does by default).

use serde_json::Value;

/// `Name` and `Version` from RFC 822-style headers, up to the first blank line.
pub fn metadata(text: &str) -> Option<(String, String)> {
    let mut name = None;
    let mut version = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Name:") {
            name.get_or_insert_with(|| v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Version:") {
            version.get_or_insert_with(|| v.trim().to_string());
        }
    }
    Some((name?, version?))
}

/// `name==version` lines; extras, environment markers, hashes and comments are dropped, and
/// options (`-r`, `--index-url`, `-e`) skipped.
pub fn requirements(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // Backslash continuations join lines first.
    let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
    for line in joined.lines() {
        let line = match line.find(" #") {
            Some(i) => &line[..i],
            None => line,
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('-') {
            continue;
        }
        let spec = line.split(';').next().unwrap_or("").trim();
        let spec = spec.split(" --").next().unwrap_or("").trim();
        let Some((name, version)) = spec.split_once("==") else {
            continue;
        };
        let name = name.split('[').next().unwrap_or("").trim();
        let version = version.trim_start_matches('=').trim();
        if name.is_empty()
            || version.is_empty()
            || version.contains(['*', ',', ' ', '<', '>'])
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            continue;
        }
        out.push((name.to_string(), version.to_string()));
    }
    out
}

#[derive(serde::Deserialize)]
struct Lock {
    #[serde(default)]
    package: Vec<LockedPackage>,
}

#[derive(serde::Deserialize)]
struct LockedPackage {
    name: String,
    version: String,
}

/// Every `[[package]]` of a TOML lock file (`poetry.lock`, `Cargo.lock`).
pub(super) fn toml_packages(text: &str, what: &str) -> Result<Vec<(String, String)>, String> {
    let lock: Lock = toml::from_str(text).map_err(|e| format!("not a {what}: {e}"))?;
    Ok(lock
        .package
        .into_iter()
        .map(|p| (p.name, p.version))
        .collect())
}

/// Every package of a `poetry.lock`.
pub fn poetry_lock(text: &str) -> Result<Vec<(String, String)>, String> {
    toml_packages(text, "poetry.lock")
}

/// The `default` packages of a `Pipfile.lock` (`"version": "==1.2.3"`).
pub fn pipfile_lock(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not a Pipfile.lock: {e}"))?;
    let mut out = Vec::new();
    if let Some(default) = v.get("default").and_then(Value::as_object) {
        for (name, p) in default {
            if let Some(version) = p.get("version").and_then(Value::as_str) {
                out.push((name.clone(), version.trim_start_matches('=').to_string()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_stops_at_the_body() {
        let meta =
            "Metadata-Version: 2.1\nName: Django\nVersion: 3.2.0\nSummary: x\n\nName: NotThis\n";
        assert_eq!(metadata(meta), Some(("Django".into(), "3.2.0".into())));
        assert_eq!(metadata("Summary: nothing\n"), None);
    }

    #[test]
    fn requirements_keep_exact_pins_only() {
        let text = "# pins\nDjango==3.2.0\nrequests[security]==2.25.1 ; python_version >= \"3.6\"\nurllib3 == 1.26.4  # why\nflask>=2.0\n-r other.txt\n--index-url https://x/simple\nPyYAML==5.3.1 \\\n    --hash=sha256:abc\nsix===1.16.0\nbad name==1\nrange==1.*\n";
        assert_eq!(
            requirements(text),
            vec![
                ("Django".to_string(), "3.2.0".to_string()),
                ("requests".into(), "2.25.1".into()),
                ("urllib3".into(), "1.26.4".into()),
                ("PyYAML".into(), "5.3.1".into()),
                ("six".into(), "1.16.0".into()),
            ]
        );
    }

    #[test]
    fn poetry_and_pipfile_locks() {
        let poetry = "[[package]]\nname = \"Jinja2\"\nversion = \"2.11.2\"\noptional = false\n\n[package.dependencies]\nMarkupSafe = \">=0.23\"\n\n[[package]]\nname = \"markupsafe\"\nversion = \"2.1.3\"\n\n[metadata]\nlock-version = \"2.0\"\n";
        assert_eq!(
            poetry_lock(poetry).unwrap(),
            vec![
                ("Jinja2".to_string(), "2.11.2".to_string()),
                ("markupsafe".into(), "2.1.3".into())
            ]
        );
        assert!(poetry_lock("[[package]]\nname = 1\n").is_err());
        let pipfile = br#"{"default":{"idna":{"version":"==3.4"},"vcs":{"git":"https://x"}},"develop":{"pytest":{"version":"==7.4.0"}}}"#;
        assert_eq!(
            pipfile_lock(pipfile).unwrap(),
            vec![("idna".to_string(), "3.4".to_string())]
        );
    }
}
