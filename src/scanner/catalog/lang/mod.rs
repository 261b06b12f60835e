//! Language packages in an image, from the files each ecosystem leaves behind:
//! - installed packages: Node.js `package.json`, Python `*.dist-info/METADATA` and
//!   `*.egg-info/PKG-INFO`, Java archives (`pom.properties`, nested jars too);
//! - lock files: `package-lock.json`, `yarn.lock`, `Cargo.lock`, `requirements.txt`,
//!   `poetry.lock`, `Pipfile.lock`;
//! - Go binaries, by the build information the Go linker embeds (Go 1.18 and later).
//!
//! Each parser is pure: the bytes of one file in, packages out. Which file is which is decided
//! by its path ([`classify`]), except Go binaries, which are recognised by content
//! ([`go::find_build_info`]).

pub mod go;
pub mod java;
pub mod node;
pub mod python;
pub mod rust;

/// A language ecosystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    Node,
    Python,
    Rust,
    Go,
    Java,
}

impl Lang {
    /// The OSV ecosystem its advisories use.
    pub fn ecosystem(self) -> &'static str {
        match self {
            Lang::Node => "npm",
            Lang::Python => "PyPI",
            Lang::Rust => "crates.io",
            Lang::Go => "Go",
            Lang::Java => "Maven",
        }
    }
}

/// The kind of file a language package was read from; it decides how Trivy groups and names
/// the result the package is reported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// `node_modules/NAME/package.json` and any other `package.json` naming a version.
    NodePackage,
    PythonPackage,
    Jar,
    NpmLock,
    YarnLock,
    CargoLock,
    Requirements,
    PoetryLock,
    PipfileLock,
    GoBinary,
}

impl Source {
    pub fn lang(self) -> Lang {
        match self {
            Source::NodePackage | Source::NpmLock | Source::YarnLock => Lang::Node,
            Source::PythonPackage
            | Source::Requirements
            | Source::PoetryLock
            | Source::PipfileLock => Lang::Python,
            Source::CargoLock => Lang::Rust,
            Source::GoBinary => Lang::Go,
            Source::Jar => Lang::Java,
        }
    }

    /// Trivy's result `Type`.
    pub fn trivy_type(self) -> &'static str {
        match self {
            Source::NodePackage => "node-pkg",
            Source::PythonPackage => "python-pkg",
            Source::Jar => "jar",
            Source::NpmLock => "npm",
            Source::YarnLock => "yarn",
            Source::CargoLock => "cargo",
            Source::Requirements => "pip",
            Source::PoetryLock => "poetry",
            Source::PipfileLock => "pipenv",
            Source::GoBinary => "gobinary",
        }
    }

    /// Installed packages are reported in one result per ecosystem (`Node.js`, `Python`,
    /// `Java`); lock files and binaries in one result per file, named by its path.
    pub fn aggregate_target(self) -> Option<&'static str> {
        match self {
            Source::NodePackage => Some("Node.js"),
            Source::PythonPackage => Some("Python"),
            Source::Jar => Some("Java"),
            _ => None,
        }
    }
}

/// A language package and the file that declared it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LangPackage {
    #[serde(skip)]
    pub source: Source,
    pub name: String,
    pub version: String,
    /// Path inside the image (`PkgPath` in Trivy's JSON).
    pub path: String,
}

/// Which kind of package file `path` (inside the image, no leading `/`) is, if any.
pub fn classify(path: &str) -> Option<Source> {
    let parts: Vec<&str> = path.split('/').collect();
    let n = parts.len();
    let file = parts[n - 1];
    match file {
        "package.json" => return Some(Source::NodePackage),
        "package-lock.json" => return Some(Source::NpmLock),
        "yarn.lock" => return Some(Source::YarnLock),
        "Cargo.lock" => return Some(Source::CargoLock),
        "requirements.txt" => return Some(Source::Requirements),
        "poetry.lock" => return Some(Source::PoetryLock),
        "Pipfile.lock" => return Some(Source::PipfileLock),
        _ => {}
    }
    if n >= 3 && matches!(parts[n - 3], "site-packages" | "dist-packages") {
        let dir = parts[n - 2];
        if (dir.ends_with(".dist-info") && file == "METADATA")
            || (dir.ends_with(".egg-info") && file == "PKG-INFO")
        {
            return Some(Source::PythonPackage);
        }
    }
    let lower = file.to_ascii_lowercase();
    if [".jar", ".war", ".ear", ".par"]
        .iter()
        .any(|ext| lower.ends_with(ext))
    {
        return Some(Source::Jar);
    }
    None
}

/// Whether a `package.json` lies inside `node_modules`: there a missing version is worth
/// reporting; elsewhere it is an application's own manifest.
pub fn is_installed_module(path: &str) -> bool {
    path.split('/').any(|p| p == "node_modules")
}

/// The packages a file declares. `Err` says why none could be read.
pub fn parse(source: Source, path: &str, bytes: &[u8]) -> Result<Vec<LangPackage>, String> {
    let found: Vec<(String, String)> = match source {
        Source::NodePackage => node::package_json(bytes).into_iter().collect(),
        Source::NpmLock => node::package_lock(bytes)?,
        Source::YarnLock => node::yarn_lock(&String::from_utf8_lossy(bytes)),
        Source::PythonPackage => python::metadata(&String::from_utf8_lossy(bytes))
            .into_iter()
            .collect(),
        Source::Requirements => python::requirements(&String::from_utf8_lossy(bytes)),
        Source::PoetryLock => python::poetry_lock(&String::from_utf8_lossy(bytes))?,
        Source::PipfileLock => python::pipfile_lock(bytes)?,
        Source::CargoLock => rust::cargo_lock(&String::from_utf8_lossy(bytes))?,
        Source::Jar => java::archive(bytes)?,
        Source::GoBinary => go::parse_build_info(bytes)?,
    };
    let mut seen = std::collections::HashSet::new();
    let out: Vec<LangPackage> = found
        .into_iter()
        .filter(|(name, version)| {
            !name.is_empty() && !version.is_empty() && name.len() <= 214 && version.len() <= 128
        })
        .filter(|p| seen.insert(p.clone()))
        .map(|(name, version)| LangPackage {
            source,
            name,
            version,
            path: path.to_string(),
        })
        .collect();
    if out.is_empty() && matches!(source, Source::NodePackage | Source::PythonPackage) {
        return Err("no name and version".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_package_files() {
        for (path, want) in [
            (
                "usr/lib/node_modules/npm/node_modules/semver/package.json",
                Some(Source::NodePackage),
            ),
            ("app/package.json", Some(Source::NodePackage)),
            ("app/package-lock.json", Some(Source::NpmLock)),
            ("app/yarn.lock", Some(Source::YarnLock)),
            ("src/Cargo.lock", Some(Source::CargoLock)),
            ("requirements.txt", Some(Source::Requirements)),
            ("srv/poetry.lock", Some(Source::PoetryLock)),
            ("srv/Pipfile.lock", Some(Source::PipfileLock)),
            (
                "usr/lib/python3/dist-packages/requests-2.25.1.dist-info/METADATA",
                Some(Source::PythonPackage),
            ),
            (
                "usr/lib/python3.11/site-packages/six.egg-info/PKG-INFO",
                Some(Source::PythonPackage),
            ),
            ("opt/app/lib/log4j-core-2.14.1.JAR", Some(Source::Jar)),
            ("srv/ROOT.war", Some(Source::Jar)),
            ("usr/lib/python3.11/site-packages/six.py", None),
            ("app/METADATA", None),
        ] {
            assert_eq!(classify(path), want, "{path}");
        }
    }

    #[test]
    fn parse_dedups_and_reports_unreadable_metadata() {
        let p = parse(
            Source::NodePackage,
            "a/node_modules/lodash/package.json",
            br#"{"name":"lodash","version":"4.17.15","license":"MIT"}"#,
        )
        .unwrap();
        assert_eq!(
            (p[0].name.as_str(), p[0].version.as_str()),
            ("lodash", "4.17.15")
        );
        assert!(parse(Source::NodePackage, "x", br#"{"name":"x"}"#).is_err());
        assert!(parse(Source::NodePackage, "x", b"{not json").is_err());
        let twice = parse(Source::Requirements, "r.txt", b"six==1.16.0\nsix==1.16.0\n").unwrap();
        assert_eq!(twice.len(), 1);
        // A lock file with nothing pinned is not an error, just empty.
        assert_eq!(
            parse(Source::Requirements, "r.txt", b"flask>=2\n").unwrap(),
            vec![]
        );
    }
}
