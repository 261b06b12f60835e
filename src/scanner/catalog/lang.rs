//! Language packages installed in an image: Node.js modules (`node_modules/NAME/package.json`,
//! scoped `node_modules/@SCOPE/NAME/package.json`) and Python distributions
//! (`site-packages/*.dist-info/METADATA`, `*.egg-info/PKG-INFO`, also under `dist-packages`).

/// A language ecosystem the scanner reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    Node,
    Python,
}

impl Lang {
    /// The OSV ecosystem its advisories use.
    pub fn ecosystem(self) -> &'static str {
        match self {
            Lang::Node => "npm",
            Lang::Python => "PyPI",
        }
    }

    /// Trivy's result `Type`.
    pub fn trivy_type(self) -> &'static str {
        match self {
            Lang::Node => "node-pkg",
            Lang::Python => "python-pkg",
        }
    }

    /// Trivy's result `Target`.
    pub fn target(self) -> &'static str {
        match self {
            Lang::Node => "Node.js",
            Lang::Python => "Python",
        }
    }
}

/// A language package and the file that declared it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LangPackage {
    #[serde(skip)]
    pub lang: Lang,
    pub name: String,
    pub version: String,
    /// Path inside the image (`PkgPath` in Trivy's JSON).
    pub path: String,
}

/// Which ecosystem's metadata file `path` (inside the image, no leading `/`) is, if any.
pub fn classify(path: &str) -> Option<Lang> {
    let parts: Vec<&str> = path.split('/').collect();
    let n = parts.len();
    if n >= 3 && parts[n - 1] == "package.json" {
        if parts[n - 3] == "node_modules" && !parts[n - 2].starts_with('@') {
            return Some(Lang::Node);
        }
        if n >= 4 && parts[n - 4] == "node_modules" && parts[n - 3].starts_with('@') {
            return Some(Lang::Node);
        }
    }
    if n >= 3 && matches!(parts[n - 3], "site-packages" | "dist-packages") {
        let (dir, file) = (parts[n - 2], parts[n - 1]);
        if (dir.ends_with(".dist-info") && file == "METADATA")
            || (dir.ends_with(".egg-info") && file == "PKG-INFO")
        {
            return Some(Lang::Python);
        }
    }
    None
}

/// Name and version from a metadata file; `None` when it names neither (e.g. a test fixture's
/// `package.json` without a version).
pub fn parse(lang: Lang, path: &str, bytes: &[u8]) -> Option<LangPackage> {
    let (name, version) = match lang {
        Lang::Node => {
            let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
            (
                v.get("name")?.as_str()?.to_string(),
                v.get("version")?.as_str()?.to_string(),
            )
        }
        Lang::Python => {
            // RFC 822-style headers up to the first blank line.
            let text = String::from_utf8_lossy(bytes);
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
            (name?, version?)
        }
    };
    if name.is_empty() || version.is_empty() || name.len() > 214 || version.len() > 128 {
        return None;
    }
    Some(LangPackage {
        lang,
        name,
        version,
        path: path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_metadata_files() {
        assert_eq!(
            classify("usr/lib/node_modules/npm/node_modules/semver/package.json"),
            Some(Lang::Node)
        );
        assert_eq!(
            classify("app/node_modules/@babel/core/package.json"),
            Some(Lang::Node)
        );
        assert_eq!(classify("app/package.json"), None, "the app itself");
        assert_eq!(classify("app/node_modules/@babel/package.json"), None);
        assert_eq!(
            classify("usr/lib/python3/dist-packages/requests-2.25.1.dist-info/METADATA"),
            Some(Lang::Python)
        );
        assert_eq!(
            classify("usr/lib/python3.11/site-packages/six.egg-info/PKG-INFO"),
            Some(Lang::Python)
        );
        assert_eq!(classify("usr/lib/python3.11/site-packages/six.py"), None);
    }

    #[test]
    fn parses_names_and_versions() {
        let p = parse(
            Lang::Node,
            "a/node_modules/lodash/package.json",
            br#"{"name":"lodash","version":"4.17.15","license":"MIT"}"#,
        )
        .unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str()), ("lodash", "4.17.15"));
        assert_eq!(parse(Lang::Node, "x", br#"{"name":"x"}"#), None);
        assert_eq!(parse(Lang::Node, "x", b"{not json"), None);
        let meta =
            b"Metadata-Version: 2.1\nName: Django\nVersion: 3.2.0\nSummary: x\n\nName: NotThis\n";
        let p = parse(Lang::Python, "m", meta).unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str()), ("Django", "3.2.0"));
        assert_eq!(parse(Lang::Python, "m", b"Summary: nothing\n"), None);
    }
}
