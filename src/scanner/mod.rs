//! The native scanner: images from registries, OCI layouts, `docker save` archives and unpacked
//! root filesystems are catalogued (OS and language packages, `catalog`) and matched against the
//! offline vulnerability database (`crate::vulndb`); `report`, `sarif` and `cyclonedx` write the
//! results.

pub mod archive;
pub mod catalog;
pub mod cyclonedx;
pub mod layers;
pub mod registry;
pub mod report;
pub mod rootfs;
pub mod sarif;
pub mod tar;

use std::path::Path;

use catalog::lang::LangPackage;
use catalog::Package;
use report::{Report, Severity, Vuln};

use crate::store::StoreError;
use crate::vulndb::db::VulnDb;
use crate::vulndb::osv::Advisory;

/// Scanning failures.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{0}")]
    Unsupported(String),
    #[error("{0} is not a directory")]
    NotADirectory(String),
    /// An image on disk that cannot be read (with why).
    #[error("{0}")]
    Image(String),
    /// A registry that could not be reached, failed, or refused the credentials: the answer
    /// may differ on a later try.
    #[error("{0}")]
    Unreachable(String),
    #[error(transparent)]
    Db(#[from] StoreError),
}

/// The files of an image, however it is stored.
pub trait ImageFs {
    /// A regular file, following symlinks inside the image.
    fn read(&self, rel: &str) -> Option<Vec<u8>>;
    /// Whether a regular file is there (however large).
    fn exists(&self, rel: &str) -> bool;
    /// Regular files directly in a directory.
    fn list(&self, rel: &str) -> Vec<String>;
    /// Regular files anywhere that `pred` accepts.
    fn find(&self, pred: &dyn Fn(&str) -> bool) -> Vec<String>;
    /// Executables with Go build information, and that information.
    fn go_binaries(&self) -> Vec<(String, Vec<u8>)>;
}

struct DirFs<'a>(&'a Path);

impl ImageFs for DirFs<'_> {
    fn read(&self, rel: &str) -> Option<Vec<u8>> {
        rootfs::read(self.0, rel)
    }
    fn exists(&self, rel: &str) -> bool {
        rootfs::resolve(self.0, rel).is_some_and(|p| p.is_file())
    }
    fn list(&self, rel: &str) -> Vec<String> {
        rootfs::list(self.0, rel)
    }
    fn find(&self, pred: &dyn Fn(&str) -> bool) -> Vec<String> {
        rootfs::find(self.0, pred, 5_000_000)
    }
    fn go_binaries(&self) -> Vec<(String, Vec<u8>)> {
        rootfs::go_binaries(self.0, 5_000_000)
    }
}

impl ImageFs for layers::Flattened {
    fn read(&self, rel: &str) -> Option<Vec<u8>> {
        layers::Flattened::read(self, rel)
    }
    fn exists(&self, rel: &str) -> bool {
        layers::Flattened::contains(self, rel)
    }
    fn list(&self, rel: &str) -> Vec<String> {
        layers::Flattened::list(self, rel)
    }
    fn find(&self, pred: &dyn Fn(&str) -> bool) -> Vec<String> {
        layers::Flattened::find(self, pred)
    }
    fn go_binaries(&self) -> Vec<(String, Vec<u8>)> {
        layers::Flattened::go_binaries(self)
    }
}

/// Catalogues and matches a root filesystem on disk.
pub fn scan_rootfs(root: &Path, artifact: &str, db: &VulnDb) -> Result<Report, ScanError> {
    if !root.is_dir() {
        return Err(ScanError::NotADirectory(root.display().to_string()));
    }
    scan_fs(&DirFs(root), artifact, db)
}

/// Catalogues and matches a flattened image (from an archive or layout), reporting the files
/// its layers had that were too large to read.
pub fn scan_layers(
    image: &layers::Flattened,
    artifact: &str,
    db: &VulnDb,
) -> Result<Report, ScanError> {
    let mut report = scan_fs(image, artifact, db)?;
    report.skipped.extend(image.skipped.iter().cloned());
    report.image_id = image.image_id.clone();
    report.repo_digests = image.repo_digests.clone();
    Ok(report)
}

/// Catalogues and matches any image.
pub fn scan_fs(fs: &dyn ImageFs, artifact: &str, db: &VulnDb) -> Result<Report, ScanError> {
    let os = fs
        .read("etc/os-release")
        .or_else(|| fs.read("usr/lib/os-release"))
        .and_then(|b| catalog::os_release::parse(&String::from_utf8_lossy(&b)));
    let mut packages: Vec<Package> = Vec::new();
    let mut skipped = Vec::new();
    let mut dpkg_files = vec!["var/lib/dpkg/status".to_string()];
    dpkg_files.extend(fs.list("var/lib/dpkg/status.d"));
    for f in dpkg_files {
        if let Some(bytes) = fs.read(&f) {
            let (p, s) = catalog::dpkg::parse(&String::from_utf8_lossy(&bytes));
            packages.extend(p);
            skipped.extend(
                s.into_iter()
                    .map(|s| format!("{f}:{}: {}", s.line, s.reason)),
            );
        }
    }
    if let Some(bytes) = fs.read("lib/apk/db/installed") {
        let (p, s) = catalog::apk::parse(&String::from_utf8_lossy(&bytes));
        packages.extend(p);
        skipped.extend(
            s.into_iter()
                .map(|s| format!("lib/apk/db/installed:{}: {}", s.line, s.reason)),
        );
    }
    match catalog::rpm::read_database(&|p| fs.read(p)) {
        Some((path, Ok((p, s)))) => {
            packages.extend(p);
            skipped.extend(
                s.into_iter()
                    .map(|s| format!("{path}: package {}: {}", s.line, s.reason)),
            );
        }
        Some((path, Err(e))) => skipped.push(format!("{path}: {e}")),
        None => {}
    }
    for path in catalog::rpm::UNREAD_PATHS {
        if fs.exists(path) {
            skipped.push(format!(
                "{path}: NDB rpm databases (SLES 15) are not read yet; their packages are missing from this report"
            ));
        }
    }
    let mut vulns = Vec::new();
    let ecosystems = os.as_ref().map(|o| o.ecosystems()).unwrap_or_default();
    // Debian's tracker and Alpine's secdb name source packages; rpm distributions' advisories
    // list every binary package, so there a source name would match its siblings twice.
    let by_source = os.as_ref().is_some_and(|o| {
        matches!(
            o.family(),
            "debian" | "ubuntu" | "alpine" | "wolfi" | "chainguard"
        )
    });
    for eco in &ecosystems {
        for p in &packages {
            let mut names = vec![p.name.as_str()];
            if let Some(src) = p.source.as_deref().filter(|s| *s != p.name && by_source) {
                names.push(src);
            }
            let target = Target {
                ecosystem: eco,
                package: &p.name,
                version: &p.version,
                source: None,
                path: None,
            };
            vulns.extend(matches(db, &target, &names)?);
        }
    }
    if ecosystems.len() > 1 {
        // One finding per (package, CVE) however many streams list it.
        let mut seen = std::collections::HashSet::new();
        vulns.retain(|v| seen.insert((v.package.clone(), v.installed.clone(), v.id.clone())));
    }
    let (lang_packages, lang_skipped) = lang_packages(fs);
    skipped.extend(lang_skipped);
    for p in &lang_packages {
        // PyPI spellings (`Django`, `django`) are reconciled by the database's index.
        let target = Target {
            ecosystem: p.source.lang().ecosystem(),
            package: &p.name,
            version: &p.version,
            source: Some(p.source),
            path: Some(&p.path),
        };
        vulns.extend(matches(db, &target, &[p.name.as_str()])?);
    }
    vulns.sort_by(|a, b| {
        a.source
            .cmp(&b.source)
            .then(a.package.cmp(&b.package))
            .then(a.id.cmp(&b.id))
            .then(a.path.cmp(&b.path))
    });
    Ok(Report {
        artifact: artifact.to_string(),
        os,
        packages,
        lang_packages,
        vulns,
        skipped,
        image_id: None,
        repo_digests: vec![],
    })
}

/// Language packages from package files and Go binaries, and what could not be read.
fn lang_packages(fs: &dyn ImageFs) -> (Vec<LangPackage>, Vec<String>) {
    use catalog::lang::{classify, is_installed_module, parse, Source};
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    let mut files: Vec<(String, Source, Vec<u8>)> = Vec::new();
    for path in fs.find(&|p| classify(p).is_some()) {
        if let (Some(source), Some(bytes)) = (classify(&path), fs.read(&path)) {
            files.push((path, source, bytes));
        }
    }
    for (path, info) in fs.go_binaries() {
        files.push((path, Source::GoBinary, info));
    }
    for (path, source, bytes) in files {
        match parse(source, &path, &bytes) {
            Ok(p) => found.extend(p),
            // An application's own package.json often has no version: not worth a line.
            Err(_) if source == Source::NodePackage && !is_installed_module(&path) => {}
            Err(e) => skipped.push(format!("{path}: {e}")),
        }
    }
    (found, skipped)
}

/// One installed package to match.
struct Target<'a> {
    ecosystem: &'a str,
    package: &'a str,
    version: &'a str,
    source: Option<catalog::lang::Source>,
    path: Option<&'a str>,
}

/// The severity of `a` (reported as `id`) and where it came from: the advisory's own, else the
/// best another imported feed gives the same CVE, else unknown, saying so.
fn rate(db: &VulnDb, a: &Advisory, id: &str) -> Result<(Severity, String), ScanError> {
    if let Some(r) = crate::vulndb::severity::rate(&a.severity) {
        return Ok((
            r.severity.into(),
            format!("{} {}: {}", a.source, a.id, r.how),
        ));
    }
    let mut ids: Vec<&str> = vec![id, a.id.as_str()];
    ids.extend(a.aliases.iter().map(String::as_str));
    Ok(match db.rating_of(&ids, &a.id)? {
        Some(r) => (r.rating.severity.into(), r.provenance()),
        None => (
            Severity::Unknown,
            format!("{} {}: no imported feed rates it", a.source, a.id),
        ),
    })
}

/// The advisories affecting `target` under any of `names`, one finding per CVE (or advisory id
/// when it has no CVE alias).
fn matches(db: &VulnDb, target: &Target, names: &[&str]) -> Result<Vec<Vuln>, ScanError> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for name in names {
        for (a, fixed) in db.affecting_with_fix(target.ecosystem, name, target.version)? {
            let id = a
                .aliases
                .iter()
                .find(|x| x.starts_with("CVE-"))
                .cloned()
                .unwrap_or_else(|| a.id.clone());
            if seen.insert(id.clone()) {
                let (severity, severity_source) = rate(db, &a, &id)?;
                out.push(Vuln {
                    id,
                    advisory: a.id.clone(),
                    package: target.package.to_string(),
                    installed: target.version.to_string(),
                    fixed,
                    severity,
                    severity_source,
                    title: a.summary.chars().take(200).collect(),
                    source: target.source,
                    path: target.path.map(String::from),
                });
            }
        }
    }
    Ok(out)
}
