//! The vulnerability database: a redb file of advisories indexed by (ecosystem, package).
//!
//! Imports are atomic (one write transaction: a failed import leaves the previous database as it
//! was) and incremental (a record replaces the stored one only if its `modified` is newer).
//! Malformed records are skipped and counted; the import goes on.

use std::cmp::Ordering;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::feeds;
use super::osv::{self, Advisory};
use super::range;
use super::severity::{self, Rating};
use super::version;
use crate::store::{Store, StoreError, Table};

const ADVISORIES: Table<String, Advisory> = Table::new("vulndb_advisories");
/// `ecosystem|package` → advisory ids.
const BY_PACKAGE: Table<String, Vec<String>> = Table::new("vulndb_by_package");
const SOURCES: Table<String, SourceStatus> = Table::new("vulndb_sources");
/// CVE or advisory id → the ratings feeds give it (one per advisory that names it).
const RATINGS: Table<String, Vec<Rated>> = Table::new("vulndb_ratings");

/// Ratings kept per id: more feeds than this rarely name one CVE.
const MAX_RATINGS: usize = 8;

/// A rating one advisory gives an id (its own, or a CVE among its aliases).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rated {
    /// The advisory that gave it, and its feed.
    pub advisory: String,
    pub source: String,
    pub rating: Rating,
}

impl Rated {
    /// Where it came from, for people: `osv GHSA-…: CVSS:3.1 base 9.8`.
    pub fn provenance(&self) -> String {
        format!("{} {}: {}", self.source, self.advisory, self.rating.how)
    }
}

/// Largest single JSON record read from a file or a zip entry (guards against zip bombs).
const MAX_RECORD_BYTES: u64 = 16 * 1024 * 1024;

/// What one source has contributed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    pub name: String,
    pub records: u64,
    pub imported_at: DateTime<Utc>,
}

impl ImportReport {
    /// One line saying what was counted: `read 10 files, 21 advisories: 21 imported, 0
    /// unchanged; 1 skipped`.
    pub fn summary(&self) -> String {
        let from = match &self.bundle {
            Some(b) => format!(
                "a bundle signed by key {} (made {}): ",
                &b.key[..16.min(b.key.len())],
                b.created_at.format("%Y-%m-%d")
            ),
            None => String::new(),
        };
        format!(
            "{from}read {} files, {} advisories: {} imported, {} unchanged; {} skipped",
            self.files, self.advisories, self.imported, self.unchanged, self.skipped
        )
    }
}

/// What an import did.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct ImportReport {
    /// Files (and zip entries) read.
    pub files: u64,
    /// Advisories found in them (a secdb or tracker file holds many).
    pub advisories: u64,
    /// Advisories stored, new or newer than the stored version.
    pub imported: u64,
    /// Advisories already stored at the same `modified`.
    pub unchanged: u64,
    /// Files or entries that could not be read (see `problems`).
    pub skipped: u64,
    /// The first problems met (file and why).
    pub problems: Vec<String>,
    /// The signed bundle the files came from, if they did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<super::bundle::Imported>,
}

/// Errors of the vulnerability database.
#[derive(Debug, thiserror::Error)]
pub enum VulnDbError {
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The comparator for an OSV ecosystem, if Bulwark knows its version scheme.
pub fn comparator(ecosystem: &str) -> Option<fn(&str, &str) -> Ordering> {
    let base = ecosystem.split(':').next().unwrap_or(ecosystem);
    Some(match base {
        "Alpine" | "Wolfi" | "Chainguard" => version::apk::compare,
        "Debian" | "Ubuntu" => version::dpkg::compare,
        "Red Hat" | "Rocky Linux" | "AlmaLinux" | "openSUSE" | "SUSE" | "Mageia" | "openEuler" => {
            version::rpm::compare
        }
        "PyPI" => version::pep440::compare,
        "Maven" => version::maven::compare,
        "npm" | "crates.io" | "Go" | "Packagist" | "NuGet" | "Hex" | "Pub" | "RubyGems" => {
            version::semver::compare
        }
        _ => return None,
    })
}

/// An open vulnerability database.
pub struct VulnDb {
    store: Store,
}

fn index_key(ecosystem: &str, package: &str) -> String {
    format!("{ecosystem}|{}", canonical_name(ecosystem, package))
}

/// The name under which a package is indexed: PyPI names are compared in their PEP 503 form
/// (`Gradio`, `gradio` and `GRADIO` are one project); other ecosystems compare names exactly.
pub fn canonical_name(ecosystem: &str, name: &str) -> String {
    if ecosystem != "PyPI" {
        return name.to_string();
    }
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            dash = true;
        } else {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

fn same_package(ecosystem: &str, a: &str, b: &str) -> bool {
    a == b || canonical_name(ecosystem, a) == canonical_name(ecosystem, b)
}

/// The feeds and size of the database at `path`; nothing when there is none (yet) or it cannot
/// be read.
pub fn status(path: &Path) -> (Vec<SourceStatus>, u64) {
    if !path.exists() {
        return (Vec::new(), 0);
    }
    match VulnDb::open_read_only(path) {
        Ok(db) => (db.sources().unwrap_or_default(), db.len().unwrap_or(0)),
        Err(_) => (Vec::new(), 0),
    }
}

impl VulnDb {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<VulnDb, StoreError> {
        Ok(VulnDb {
            store: Store::open_file(path, &[])?,
        })
    }

    /// Opens an existing database for lookups only. Any number of scans may do so at once, and
    /// beside an import that is writing it.
    pub fn open_read_only(path: &Path) -> Result<VulnDb, StoreError> {
        Ok(VulnDb {
            store: Store::open_file_read_only(path, &[])?,
        })
    }

    /// Number of advisories.
    pub fn len(&self) -> Result<u64, StoreError> {
        self.store.read(|r| r.len(&ADVISORIES))
    }

    /// Whether the database holds no advisory.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// The sources imported so far.
    pub fn sources(&self) -> Result<Vec<SourceStatus>, StoreError> {
        Ok(self
            .store
            .read(|r| r.all(&SOURCES))?
            .into_iter()
            .map(|(_, s)| s)
            .collect())
    }

    /// Imports OSV records, Alpine secdb files and Debian tracker files (told apart by content)
    /// from files (`.json`), folders (walked recursively) and zip archives, in one transaction.
    pub fn import(&self, paths: &[PathBuf]) -> Result<ImportReport, VulnDbError> {
        let mut report = ImportReport::default();
        let mut advisories = Vec::new();
        for p in paths {
            collect(p, &mut advisories, &mut report)?;
        }
        let now = Utc::now();
        let touched: std::collections::BTreeSet<String> =
            advisories.iter().map(|a| a.source.clone()).collect();
        self.store.write(|w| {
            if w.len(&RATINGS)? == 0 {
                // A database imported before ratings were indexed: index what it holds once.
                for (_, a) in w.all(&ADVISORIES)? {
                    index_rating(w, &a)?;
                }
            }
            for a in advisories {
                let old = w.get(&ADVISORIES, &a.id)?;
                if old
                    .as_ref()
                    .is_some_and(|o| !o.modified.is_empty() && o.modified >= a.modified)
                {
                    report.unchanged += 1;
                    continue;
                }
                if let Some(o) = &old {
                    for af in &o.affected {
                        let k = index_key(&af.ecosystem, &af.package);
                        let mut ids = w.get(&BY_PACKAGE, &k)?.unwrap_or_default();
                        ids.retain(|i| *i != o.id);
                        w.put(&BY_PACKAGE, &k, &ids)?;
                    }
                }
                for af in &a.affected {
                    let k = index_key(&af.ecosystem, &af.package);
                    let mut ids = w.get(&BY_PACKAGE, &k)?.unwrap_or_default();
                    if !ids.contains(&a.id) {
                        ids.push(a.id.clone());
                    }
                    w.put(&BY_PACKAGE, &k, &ids)?;
                }
                index_rating(w, &a)?;
                w.put(&ADVISORIES, &a.id, &a)?;
                report.imported += 1;
            }
            let mut totals: std::collections::BTreeMap<String, u64> = Default::default();
            for (_, a) in w.all(&ADVISORIES)? {
                *totals.entry(a.source).or_default() += 1;
            }
            for (name, records) in totals {
                let old = w.get(&SOURCES, &name)?;
                let imported_at = if touched.contains(&name) {
                    now
                } else {
                    old.map(|o| o.imported_at).unwrap_or(now)
                };
                w.put(
                    &SOURCES,
                    &name.clone(),
                    &SourceStatus {
                        name,
                        records,
                        imported_at,
                    },
                )?;
            }
            Ok::<_, VulnDbError>(())
        })?;
        Ok(report)
    }

    /// The best rating any imported feed gives one of `ids` (a CVE and an advisory's ids), other
    /// than `except`'s own: how a feed that publishes no severity (Alpine's secdb) borrows one.
    pub fn rating_of(&self, ids: &[&str], except: &str) -> Result<Option<Rated>, StoreError> {
        self.store.read(|r| {
            let mut best: Option<Rated> = None;
            for id in ids {
                for rated in r.get(&RATINGS, &id.to_string())?.unwrap_or_default() {
                    if rated.advisory == except {
                        continue;
                    }
                    let better = best.as_ref().is_none_or(|b| {
                        (rated.rating.basis, &rated.advisory) < (b.rating.basis, &b.advisory)
                    });
                    if better {
                        best = Some(rated);
                    }
                }
            }
            Ok(best)
        })
    }

    /// Like [`VulnDb::affecting`], with the version that fixes each (the lowest `fixed` event above
    /// `version` in the ranges that matched), if any.
    pub fn affecting_with_fix(
        &self,
        ecosystem: &str,
        package: &str,
        version: &str,
    ) -> Result<Vec<(Advisory, Option<String>)>, StoreError> {
        let Some(cmp) = comparator(ecosystem) else {
            return Ok(vec![]);
        };
        Ok(self
            .affecting(ecosystem, package, version)?
            .into_iter()
            .map(|a| {
                let fix = a
                    .affected
                    .iter()
                    .filter(|af| {
                        af.ecosystem == ecosystem && same_package(ecosystem, &af.package, package)
                    })
                    .flat_map(|af| af.ranges.iter().flatten())
                    .filter_map(|e| match e {
                        osv::StoredEvent::Fixed(f) if cmp(f, version) == Ordering::Greater => {
                            Some(f.clone())
                        }
                        _ => None,
                    })
                    .min_by(|x, y| cmp(x, y));
                (a, fix)
            })
            .collect())
    }

    /// Advisories affecting `package` at `version` in `ecosystem`.
    pub fn affecting(
        &self,
        ecosystem: &str,
        package: &str,
        version: &str,
    ) -> Result<Vec<Advisory>, StoreError> {
        let Some(cmp) = comparator(ecosystem) else {
            return Ok(vec![]);
        };
        self.store.read(|r| {
            let ids = r
                .get(&BY_PACKAGE, &index_key(ecosystem, package))?
                .unwrap_or_default();
            let mut out = Vec::new();
            for id in ids {
                let Some(a) = r.get(&ADVISORIES, &id)? else {
                    continue;
                };
                let hit = a
                    .affected
                    .iter()
                    .filter(|af| {
                        af.ecosystem == ecosystem && same_package(ecosystem, &af.package, package)
                    })
                    .any(|af| {
                        let ranges: Vec<Vec<range::Event>> = af
                            .ranges
                            .iter()
                            .map(|evs| evs.iter().map(Into::into).collect())
                            .collect();
                        range::affected(version, &ranges, &af.versions, cmp)
                    });
                if hit {
                    out.push(a);
                }
            }
            Ok(out)
        })
    }
}

/// Records the rating `a` gives its id and its aliases (replacing an earlier version's), or
/// removes it when this version of `a` rates nothing.
fn index_rating(w: &crate::store::WriteTx, a: &Advisory) -> Result<(), StoreError> {
    let rating = severity::rate(&a.severity);
    let mut ids: Vec<&str> = vec![a.id.as_str()];
    ids.extend(a.aliases.iter().map(String::as_str).filter(|x| *x != a.id));
    for id in ids {
        let key = id.to_string();
        let mut list = w.get(&RATINGS, &key)?.unwrap_or_default();
        let before = list.len();
        list.retain(|r| r.advisory != a.id);
        match &rating {
            Some(rating) if list.len() < MAX_RATINGS => list.push(Rated {
                advisory: a.id.clone(),
                source: a.source.clone(),
                rating: rating.clone(),
            }),
            _ if list.len() == before => continue,
            _ => {}
        }
        w.put(&RATINGS, &key, &list)?;
    }
    Ok(())
}

fn problem(report: &mut ImportReport, what: String) {
    report.skipped += 1;
    if report.problems.len() < 20 {
        report.problems.push(what);
    }
}

fn collect(
    path: &Path,
    out: &mut Vec<Advisory>,
    report: &mut ImportReport,
) -> Result<(), VulnDbError> {
    let input = |reason: String| VulnDbError::Input {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| input(e.to_string()))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| input(e.to_string()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect();
        entries.sort();
        for e in entries {
            let ext = e.extension().and_then(|x| x.to_str()).unwrap_or_default();
            if e.is_dir() || ext == "json" || ext == "zip" {
                collect(&e, out, report)?;
            }
        }
        return Ok(());
    }
    if path.extension().and_then(|x| x.to_str()) == Some("zip") {
        let f = std::fs::File::open(path).map_err(|e| input(e.to_string()))?;
        let mut zip =
            zip::ZipArchive::new(f).map_err(|e| input(format!("not a zip archive: {e}")))?;
        for i in 0..zip.len() {
            let mut entry = match zip.by_index(i) {
                Ok(e) => e,
                Err(e) => {
                    problem(report, format!("{}: entry {i}: {e}", path.display()));
                    continue;
                }
            };
            if !entry.name().ends_with(".json") {
                continue;
            }
            let name = format!("{}:{}", path.display(), entry.name());
            let mut buf = Vec::new();
            if let Err(e) = (&mut entry)
                .take(MAX_RECORD_BYTES + 1)
                .read_to_end(&mut buf)
            {
                problem(report, format!("{name}: {e}"));
                continue;
            }
            record(&name, &buf, out, report);
        }
        return Ok(());
    }
    if meta.len() > MAX_RECORD_BYTES {
        problem(
            report,
            format!("{}: larger than {MAX_RECORD_BYTES} bytes", path.display()),
        );
        return Ok(());
    }
    let bytes = std::fs::read(path).map_err(|e| input(e.to_string()))?;
    record(&path.display().to_string(), &bytes, out, report);
    Ok(())
}

fn record(name: &str, bytes: &[u8], out: &mut Vec<Advisory>, report: &mut ImportReport) {
    report.files += 1;
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        return problem(
            report,
            format!("{name}: larger than {MAX_RECORD_BYTES} bytes"),
        );
    }
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return problem(report, format!("{name}: {e}")),
    };
    let parsed = match feeds::detect(&value) {
        Some(feeds::Format::Osv) => osv::parse(bytes).map(|a| vec![a]),
        Some(feeds::Format::AlpineSecdb) => feeds::alpine_secdb(value),
        Some(feeds::Format::DebianTracker) => feeds::debian_tracker(value),
        None => Err("neither an OSV record, an Alpine secdb file nor the Debian tracker".into()),
    };
    match parsed {
        Ok(list) => {
            report.advisories += list.len() as u64;
            out.extend(list)
        }
        Err(e) => problem(report, format!("{name}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::Severity;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vulndb")
    }

    /// The OSV records among the fixtures (the folder also holds distribution feeds).
    fn osv_files() -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("osv-"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn imports_matches_and_is_incremental() {
        let dir = tempfile::tempdir().unwrap();
        let db = VulnDb::open(&dir.path().join("v.redb")).unwrap();
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, b"{\"summary\": \"no id\"}").unwrap();
        let mut paths = osv_files();
        paths.push(bad);
        let rep = db.import(&paths).unwrap();
        assert_eq!(
            (rep.files, rep.advisories, rep.imported, rep.skipped),
            (8, 7, 7, 1),
            "{rep:?}"
        );
        assert!(rep.problems[0].contains("bad.json"));
        assert_eq!(db.len().unwrap(), 7);
        // Alpine openssl: fixed in 1.0.2q-r0.
        assert_eq!(
            db.affecting("Alpine:v3.3", "openssl", "1.0.2p-r0")
                .unwrap()
                .len(),
            1
        );
        assert!(db
            .affecting("Alpine:v3.3", "openssl", "1.0.2q-r0")
            .unwrap()
            .is_empty());
        // Go (SEMVER), Red Hat (epoch-prefixed rpm).
        assert_eq!(
            db.affecting("Go", "github.com/gin-gonic/gin", "1.5.0")
                .unwrap()[0]
                .id,
            "GO-2020-0001"
        );
        assert!(db
            .affecting("Go", "github.com/gin-gonic/gin", "v1.6.0")
            .unwrap()
            .is_empty());
        let rh = db
            .affecting(
                "Red Hat:rhel_aus:8.6::appstream",
                "git-lfs",
                "0:2.13.3-3.el8_6",
            )
            .unwrap();
        assert_eq!(rh.len(), 1, "an older release is affected");
        assert!(db
            .affecting(
                "Red Hat:rhel_aus:8.6::appstream",
                "git-lfs",
                "0:2.13.3-3.el8_6.1"
            )
            .unwrap()
            .is_empty());
        // PyPI names match in any PEP 503 spelling: the record says `Gradio`.
        for spelling in ["Gradio", "gradio", "GRADIO"] {
            assert_eq!(db.affecting("PyPI", spelling, "4.36.1").unwrap().len(), 1);
        }
        assert_eq!(
            canonical_name("PyPI", "Zope.Interface__x"),
            "zope-interface-x"
        );
        assert_eq!(
            canonical_name("npm", "Lodash"),
            "Lodash",
            "npm names are exact"
        );
        // Again: nothing changes.
        let again = db.import(&osv_files()).unwrap();
        assert_eq!((again.imported, again.unchanged), (0, 7));
        assert_eq!(db.sources().unwrap()[0].records, 7);
        // A missing path fails the whole import and changes nothing.
        let mut with_missing = osv_files();
        with_missing.push(dir.path().join("missing"));
        assert!(db.import(&with_missing).is_err());
        assert_eq!(db.len().unwrap(), 7);
    }

    #[test]
    fn distribution_feeds() {
        let dir = tempfile::tempdir().unwrap();
        let db = VulnDb::open(&dir.path().join("v.redb")).unwrap();
        let rep = db
            .import(&[
                fixtures().join("alpine-secdb-v3.10-community.json"),
                fixtures().join("debian-security-tracker-subset.json"),
            ])
            .unwrap();
        assert_eq!(rep.skipped, 0, "{rep:?}");
        // botan fixed CVE-2018-20187 in 2.9.0-r0.
        let hit = db.affecting("Alpine:v3.10", "botan", "2.8.0-r0").unwrap();
        assert!(
            hit.iter().any(|a| a.aliases[0] == "CVE-2018-20187"),
            "{hit:?}"
        );
        assert!(db
            .affecting("Alpine:v3.10", "botan", "2.9.0-r0")
            .unwrap()
            .iter()
            .all(|a| a.aliases[0] != "CVE-2018-20187"));
        // prototypejs CVE-2008-7220: fixed in 1.6.0.2-1 for stretch (Debian 9).
        let hit = db
            .affecting("Debian:9", "prototypejs", "1.6.0.1-1")
            .unwrap();
        assert!(
            hit.iter().any(|a| a.aliases[0] == "CVE-2008-7220"),
            "{hit:?}"
        );
        assert!(db
            .affecting("Debian:9", "prototypejs", "1.7.1-3")
            .unwrap()
            .iter()
            .all(|a| a.aliases[0] != "CVE-2008-7220"));
        let names: Vec<String> = db.sources().unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, vec!["alpine-secdb", "debian-tracker"]);
    }

    #[test]
    fn ratings_come_from_vectors_and_from_other_feeds() {
        let dir = tempfile::tempdir().unwrap();
        let db = VulnDb::open(&dir.path().join("v.redb")).unwrap();
        // Alpine's secdb rates nothing; an OSV record for the same CVE has only a vector.
        db.import(&[fixtures().join("alpine-secdb-v3.10-community.json")])
            .unwrap();
        let botan = db.affecting("Alpine:v3.10", "botan", "2.8.0-r0").unwrap();
        let cve = botan
            .iter()
            .find(|a| a.aliases.iter().any(|x| x == "CVE-2018-20187"))
            .unwrap();
        assert!(severity::rate(&cve.severity).is_none());
        assert!(db
            .rating_of(&["CVE-2018-20187"], &cve.id)
            .unwrap()
            .is_none());
        let osv = dir.path().join("GHSA-test.json");
        std::fs::write(
            &osv,
            r#"{"id": "GHSA-test-botan", "aliases": ["CVE-2018-20187"], "modified": "2024-01-01T00:00:00Z",
                "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
                "affected": [{"package": {"ecosystem": "PyPI", "name": "unrelated"}, "versions": ["1"]}]}"#,
        )
        .unwrap();
        db.import(std::slice::from_ref(&osv)).unwrap();
        let r = db.rating_of(&["CVE-2018-20187"], &cve.id).unwrap().unwrap();
        assert_eq!(r.rating.severity, Severity::Medium);
        assert_eq!(r.provenance(), "osv GHSA-test-botan: CVSS:3.1 base 5.9");
        // A newer version of the record without a severity takes its rating away.
        std::fs::write(
            &osv,
            r#"{"id": "GHSA-test-botan", "aliases": ["CVE-2018-20187"], "modified": "2024-02-01T00:00:00Z",
                "affected": [{"package": {"ecosystem": "PyPI", "name": "unrelated"}, "versions": ["1"]}]}"#,
        )
        .unwrap();
        db.import(&[osv]).unwrap();
        assert!(db
            .rating_of(&["CVE-2018-20187"], &cve.id)
            .unwrap()
            .is_none());
    }

    #[test]
    fn zip_exports_and_zip_bombs() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let zpath = dir.path().join("all.zip");
        {
            let mut z = zip::ZipWriter::new(std::fs::File::create(&zpath).unwrap());
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            z.start_file("GO-2020-0001.json", opts).unwrap();
            z.write_all(include_bytes!(
                "../../tests/fixtures/vulndb/osv-GO-2020-0001-go.json"
            ))
            .unwrap();
            z.start_file("bomb.json", opts).unwrap();
            let zeros = vec![b' '; 1024 * 1024];
            for _ in 0..17 {
                z.write_all(&zeros).unwrap();
            }
            z.start_file("README.txt", opts).unwrap();
            z.write_all(b"not a record").unwrap();
            z.finish().unwrap();
        }
        assert!(
            std::fs::metadata(&zpath).unwrap().len() < 200 * 1024,
            "the bomb compresses well"
        );
        let db = VulnDb::open(&dir.path().join("v.redb")).unwrap();
        let rep = db.import(&[zpath]).unwrap();
        assert_eq!((rep.imported, rep.skipped), (1, 1), "{rep:?}");
        assert!(rep.problems[0].contains("bomb.json"));
        let garbage = dir.path().join("garbage.zip");
        std::fs::write(&garbage, b"PK but not really").unwrap();
        assert!(db.import(&[garbage]).is_err());
    }
}
