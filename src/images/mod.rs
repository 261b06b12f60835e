//! Images and their scans. An image is identified by registry + repository + digest; tags map
//! to digests over time (the history is kept). A scan keeps every finding; beside it a compact
//! list of facts (id, scanner, severity, fixable) per image feeds the in-memory admission index.

mod reference;
pub mod trivy;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use reference::{parse_digest, ImageRef, RefError};

use crate::store::{Store, StoreError, Table, WriteTx};

/// Severity of a finding, normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Negligible,
    /// A severity the scanner did not know or we did not recognize; limited like negligible.
    Unknown,
}

impl Severity {
    /// Every severity, most severe first.
    pub const ALL: [Severity; 6] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Negligible,
        Severity::Unknown,
    ];

    /// Case-insensitive; synonyms from other scanners are accepted; anything else is Unknown.
    pub fn parse(s: &str) -> Severity {
        match s.trim().to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" | "major" | "important" => Severity::High,
            "medium" | "moderate" | "normal" => Severity::Medium,
            "low" | "minor" => Severity::Low,
            "negligible" => Severity::Negligible,
            _ => Severity::Unknown,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Negligible => "negligible",
            Severity::Unknown => "unknown",
        }
    }
}

/// One finding of a scan.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    /// Vulnerability id, e.g. `CVE-2024-1234`.
    pub id: String,
    pub package: String,
    pub installed: String,
    /// Fixed version(s); empty if there is no fix.
    #[serde(default)]
    pub fixed: String,
    pub severity: Severity,
    /// The severity as the scanner wrote it.
    #[serde(default)]
    pub severity_source: String,
    #[serde(default)]
    pub cvss: Option<f32>,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub links: Vec<String>,
    /// Whether a fixed version exists.
    pub fixable: bool,
    /// The scanner that found it, e.g. `trivy`.
    pub scanner: String,
    /// Where in the image (OS packages, a lock file, a binary).
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub status: String,
}

/// Whether `link` may be shown as a link: an absolute http(s) URL. Scanner reports are
/// uploaded by callers, so `javascript:`, `data:` and the like are kept as text only.
pub fn is_web_link(link: &str) -> bool {
    let l = link.trim_start();
    let scheme_ok = l
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
        || l.get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("http://"));
    scheme_ok && !l.chars().any(|c| c.is_control())
}

impl Finding {
    /// The first link that may be rendered as one.
    pub fn web_link(&self) -> Option<&str> {
        self.links
            .iter()
            .map(String::as_str)
            .find(|l| is_web_link(l))
    }
}

/// The facts compliance needs about a finding; cheap to keep in memory for every image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub id: Arc<str>,
    pub scanner: Arc<str>,
    pub severity: Severity,
    pub fixable: bool,
}

impl From<&Finding> for Facts {
    fn from(f: &Finding) -> Self {
        Facts {
            id: f.id.as_str().into(),
            scanner: f.scanner.as_str().into(),
            severity: f.severity,
            fixable: f.fixable,
        }
    }
}

/// Counts by severity, split into fixable and not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub fixable: [u32; 6],
    pub unfixable: [u32; 6],
}

impl Counts {
    /// Counts of `facts`.
    pub fn of<'a>(facts: impl IntoIterator<Item = &'a Facts>) -> Counts {
        let mut c = Counts::default();
        for f in facts {
            let i = f.severity as usize;
            if f.fixable {
                c.fixable[i] += 1;
            } else {
                c.unfixable[i] += 1;
            }
        }
        c
    }
    /// Total of one severity.
    pub fn total(&self, s: Severity) -> u32 {
        self.fixable[s as usize] + self.unfixable[s as usize]
    }
}

/// Where an image stands with scanning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum ScanState {
    /// Seen (in a cluster or a tag lookup), never scanned.
    #[default]
    Unscanned,
    /// Waiting for a scan since `since`.
    Queued {
        since: DateTime<Utc>,
        reason: String,
    },
    /// Scanned; see `last_scan`.
    Scanned,
    /// The last scan failed.
    Failed { message: String },
}

impl ScanState {
    /// How pages say it: `queued since 2026-12-06 10:00 (why)`.
    pub fn describe(&self) -> String {
        match self {
            ScanState::Unscanned => "unscanned".into(),
            ScanState::Queued { since, reason } => {
                format!("queued since {} ({reason})", since.format("%Y-%m-%d %H:%M"))
            }
            ScanState::Scanned => "scanned".into(),
            ScanState::Failed { message } => format!("scan failed: {message}"),
        }
    }
}

/// Summary of the latest scan, kept on the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanSummary {
    pub at: DateTime<Utc>,
    pub scanner: String,
    pub findings: usize,
    pub counts: Counts,
    #[serde(default)]
    pub os: String,
}

/// An image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub id: u64,
    pub registry: String,
    pub repository: String,
    /// `sha256:…`; the manifest digest when known, else the config digest.
    pub digest: String,
    /// Tags seen pointing at this digest.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Clusters it was seen in (scan uploads name one; admission sees them).
    #[serde(default)]
    pub clusters: Vec<u64>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    #[serde(default)]
    pub scan_state: ScanState,
    #[serde(default)]
    pub last_scan: Option<ScanSummary>,
}

impl Image {
    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
    /// `registry/repository@digest`.
    pub fn key(&self) -> String {
        key(&self.registry, &self.repository, &self.digest)
    }
}

/// The latest scan of an image, with every finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scan {
    pub image_id: u64,
    pub at: DateTime<Utc>,
    pub scanner: String,
    #[serde(default)]
    pub artifact: String,
    #[serde(default)]
    pub os: String,
    pub findings: Vec<Finding>,
}

/// A tag's digest now and before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagHistory {
    pub digest: String,
    pub image_id: u64,
    pub seen_at: DateTime<Utc>,
    /// Earlier digests, newest first (bounded).
    #[serde(default)]
    pub previous: Vec<(String, DateTime<Utc>)>,
}

pub(crate) const IMAGES: Table<u64, Image> = Table::new("images");
const BY_KEY: Table<String, u64> = Table::new("images_by_key");
pub(crate) const TAGS: Table<String, TagHistory> = Table::new("images_tags");
const SCANS: Table<u64, Scan> = Table::new("images_scans");
pub(crate) const FACTS: Table<u64, Vec<Facts>> = Table::new("images_facts");

/// The tables whose changes the admission index follows.
pub fn tables() -> [&'static str; 3] {
    [IMAGES.name(), TAGS.name(), FACTS.name()]
}

fn key(registry: &str, repository: &str, digest: &str) -> String {
    format!("{registry}/{repository}@{digest}")
}

/// Errors of this domain.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Ref(#[from] RefError),
    #[error(transparent)]
    Report(#[from] trivy::TrivyError),
    #[error("the image has no digest: give REF@sha256:… or a report with Metadata.RepoDigests or ImageID")]
    NoDigest,
    #[error("image {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ImageError> for crate::http::ApiError {
    fn from(e: ImageError) -> Self {
        use crate::http::ApiError;
        match e {
            ImageError::Ref(_) | ImageError::Report(_) | ImageError::NoDigest => {
                ApiError::bad_request(e.to_string())
            }
            ImageError::NotFound(_) => ApiError::not_found(e.to_string()),
            ImageError::Store(s) => ApiError::internal(s),
        }
    }
}

/// Picks the digest that identifies the scanned image: the reference's, else the report's repo
/// digest for the same repository, else the first repo digest, else the config digest.
pub fn identify(r: &ImageRef, meta: &trivy::ReportMeta) -> Result<String, ImageError> {
    if let Some(d) = &r.digest {
        return Ok(d.clone());
    }
    let from_repo = |want_same: bool| {
        meta.repo_digests.iter().find_map(|rd| {
            let (repo, d) = rd.rsplit_once('@')?;
            let same = ImageRef::parse(repo)
                .map(|p| p.repository == r.repository)
                .unwrap_or(false);
            (same || !want_same).then(|| parse_digest(d)).flatten()
        })
    };
    from_repo(true)
        .or_else(|| from_repo(false))
        .or_else(|| meta.image_id.as_deref().and_then(parse_digest))
        .ok_or(ImageError::NoDigest)
}

/// Finds or creates the image `r`@`digest` inside `w`, marking it seen in `cluster` and moving
/// its tag to this digest.
pub fn upsert(
    w: &WriteTx,
    r: &ImageRef,
    digest: &str,
    cluster: Option<u64>,
) -> Result<Image, StoreError> {
    let now = Utc::now();
    let k = key(&r.registry, &r.repository, digest);
    let mut image = match w
        .get(&BY_KEY, &k)?
        .map(|id| w.get(&IMAGES, &id))
        .transpose()?
        .flatten()
    {
        Some(i) => i,
        None => {
            let id = w.next_id("images")?;
            w.put(&BY_KEY, &k, &id)?;
            Image {
                id,
                registry: r.registry.clone(),
                repository: r.repository.clone(),
                digest: digest.to_string(),
                tags: vec![],
                clusters: vec![],
                first_seen: now,
                last_seen: now,
                scan_state: ScanState::Unscanned,
                last_scan: None,
            }
        }
    };
    image.last_seen = now;
    if let Some(c) = cluster {
        if !image.clusters.contains(&c) {
            image.clusters.push(c);
        }
    }
    if let Some(tagged) = r.tagged() {
        let tag = r.tag.clone().unwrap_or_default();
        if !image.tags.contains(&tag) {
            image.tags.push(tag);
        }
        let history = match w.get(&TAGS, &tagged)? {
            Some(mut h) if h.digest != digest => {
                h.previous.insert(0, (h.digest.clone(), h.seen_at));
                h.previous.truncate(50);
                TagHistory {
                    digest: digest.to_string(),
                    image_id: image.id,
                    seen_at: now,
                    previous: h.previous,
                }
            }
            Some(mut h) => {
                h.seen_at = now;
                h
            }
            None => TagHistory {
                digest: digest.to_string(),
                image_id: image.id,
                seen_at: now,
                previous: vec![],
            },
        };
        w.put(&TAGS, &tagged, &history)?;
    }
    w.put(&IMAGES, &image.id, &image)?;
    Ok(image)
}

/// Stores `findings` as the latest scan of `image` (inside `w`) and updates its summary and facts.
pub fn store_scan(
    w: &WriteTx,
    image: &mut Image,
    meta: &trivy::ReportMeta,
    findings: Vec<Finding>,
) -> Result<(), StoreError> {
    let facts: Vec<Facts> = findings.iter().map(Facts::from).collect();
    let now = Utc::now();
    image.last_scan = Some(ScanSummary {
        at: now,
        scanner: "trivy".into(),
        findings: findings.len(),
        counts: Counts::of(&facts),
        os: meta.os.clone(),
    });
    image.scan_state = ScanState::Scanned;
    w.put(&FACTS, &image.id, &facts)?;
    w.put(
        &SCANS,
        &image.id,
        &Scan {
            image_id: image.id,
            at: now,
            scanner: "trivy".into(),
            artifact: meta.artifact.clone(),
            os: meta.os.clone(),
            findings,
        },
    )?;
    w.put(&IMAGES, &image.id, image)
}

/// One image.
pub fn get(store: &Store, id: u64) -> Result<Image, ImageError> {
    store
        .read(|r| r.get(&IMAGES, &id))?
        .ok_or_else(|| ImageError::NotFound(id.to_string()))
}

/// The latest scan of an image.
pub fn scan(store: &Store, id: u64) -> Result<Option<Scan>, StoreError> {
    store.read(|r| r.get(&SCANS, &id))
}

/// Every image.
pub fn list(store: &Store) -> Result<Vec<Image>, StoreError> {
    Ok(store
        .read(|r| r.all(&IMAGES))?
        .into_iter()
        .map(|(_, i)| i)
        .collect())
}

/// Every image, decoded once per change of the images table: list pages read the fleet many
/// times a minute and it changes far less often. One per appliance (in `DomainData`).
#[derive(Default)]
pub struct ListCache {
    current: std::sync::Mutex<Option<(u64, Arc<Vec<Image>>)>>,
}

impl ListCache {
    /// The images as they are now (blocking: reads the store when the table changed).
    pub fn get(&self, store: &Store) -> Result<Arc<Vec<Image>>, StoreError> {
        // The version first: a write racing the read below leaves the copy stale, not wrong.
        let version = store.version(&IMAGES);
        if let Ok(c) = self.current.lock() {
            if let Some((v, list)) = c.as_ref() {
                if *v == version {
                    return Ok(list.clone());
                }
            }
        }
        let list = Arc::new(list(store)?);
        if let Ok(mut c) = self.current.lock() {
            *c = Some((version, list.clone()));
        }
        Ok(list)
    }
}

/// The image a tag points at now.
pub fn by_tag(store: &Store, r: &ImageRef) -> Result<Option<Image>, StoreError> {
    let Some(tagged) = r.tagged() else {
        return Ok(None);
    };
    store.read(|rd| match rd.get(&TAGS, &tagged)? {
        Some(h) => rd.get(&IMAGES, &h.image_id),
        None => Ok(None),
    })
}

/// The image with exactly this digest.
pub fn by_digest(store: &Store, r: &ImageRef, digest: &str) -> Result<Option<Image>, StoreError> {
    let k = key(&r.registry, &r.repository, digest);
    store.read(|rd| match rd.get(&BY_KEY, &k)? {
        Some(id) => rd.get(&IMAGES, &id),
        None => Ok(None),
    })
}

/// Marks images as queued for a scan (for later scanning by the native scanner or an upload).
pub fn mark_queued(w: &WriteTx, image: &mut Image, reason: &str) -> Result<(), StoreError> {
    if !matches!(image.scan_state, ScanState::Queued { .. }) {
        image.scan_state = ScanState::Queued {
            since: Utc::now(),
            reason: reason.to_string(),
        };
        w.put(&IMAGES, &image.id, image)?;
    }
    Ok(())
}

/// One image's facts.
pub fn facts(store: &Store, id: u64) -> Result<Option<Vec<Facts>>, StoreError> {
    store.read(|r| r.get(&FACTS, &id))
}

/// A reference waiting for a scan: seen by admission before Bulwark had scanned it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queued {
    pub reference: String,
    pub clusters: Vec<u64>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub reason: String,
    #[serde(default)]
    pub times_seen: u64,
    /// Scans tried for it so far (failed ones leave it queued).
    #[serde(default)]
    pub attempts: u32,
    /// When a scan was last tried; the native-scans job takes the least recently tried first,
    /// so one reference that keeps failing cannot hold up the rest.
    #[serde(default)]
    pub last_attempt: Option<DateTime<Utc>>,
    /// Why the last try failed.
    #[serde(default)]
    pub last_error: String,
}

const QUEUE: Table<String, Queued> = Table::new("images_scan_queue");

/// How many references the scan queue holds at most. Admission queues what it has not seen
/// scanned, and reviews come from the cluster's API server unauthenticated by default, so the
/// queue must not grow with whatever a caller invents.
pub const MAX_QUEUED: u64 = 10_000;

/// Longest reference kept in the queue (Docker's own grammar allows 255 for the name).
pub const MAX_REFERENCE_LEN: usize = 1024;

/// The queue's drop count, so that what a full queue refused stays visible.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    /// References refused because the queue was full (since the appliance was installed).
    pub dropped: u64,
    /// When the last one was refused.
    pub last_dropped: Option<DateTime<Utc>>,
}

const QUEUE_STATS: Table<String, QueueStats> = Table::new("images_scan_queue_stats");
const STATS_KEY: &str = "queue";

/// Queues `reference` for a scan (or notes it was seen again). Returns `false` when the queue is
/// full (or the reference is absurdly long) and the reference was dropped; the drop is counted.
pub fn enqueue(
    w: &WriteTx,
    reference: &str,
    cluster: Option<u64>,
    reason: &str,
    seen: u64,
) -> Result<bool, StoreError> {
    let now = Utc::now();
    let key = reference.to_string();
    let existing = w.get(&QUEUE, &key)?;
    if existing.is_none() && (reference.len() > MAX_REFERENCE_LEN || w.len(&QUEUE)? >= MAX_QUEUED) {
        count_dropped(w, 1)?;
        return Ok(false);
    }
    let mut q = existing.unwrap_or(Queued {
        reference: key.clone(),
        clusters: vec![],
        first_seen: now,
        last_seen: now,
        reason: reason.to_string(),
        times_seen: 0,
        attempts: 0,
        last_attempt: None,
        last_error: String::new(),
    });
    q.last_seen = now;
    q.times_seen = q.times_seen.saturating_add(seen);
    if let Some(c) = cluster {
        if !q.clusters.contains(&c) {
            q.clusters.push(c);
        }
    }
    w.put(&QUEUE, &key, &q)?;
    Ok(true)
}

/// Adds `n` to the queue's drop count (inside `w`).
pub fn count_dropped(w: &WriteTx, n: u64) -> Result<(), StoreError> {
    if n == 0 {
        return Ok(());
    }
    let key = STATS_KEY.to_string();
    let mut s = w.get(&QUEUE_STATS, &key)?.unwrap_or_default();
    s.dropped = s.dropped.saturating_add(n);
    s.last_dropped = Some(Utc::now());
    w.put(&QUEUE_STATS, &key, &s)
}

/// The queue's drop count.
pub fn queue_stats(store: &Store) -> Result<QueueStats, StoreError> {
    Ok(store
        .read(|r| r.get(&QUEUE_STATS, &STATS_KEY.to_string()))?
        .unwrap_or_default())
}

/// Notes a failed scan of queued `reference` (inside `w`): it stays queued, behind the others.
pub fn note_attempt(w: &WriteTx, reference: &str, error: &str) -> Result<(), StoreError> {
    let key = reference.to_string();
    if let Some(mut q) = w.get(&QUEUE, &key)? {
        q.attempts = q.attempts.saturating_add(1);
        q.last_attempt = Some(Utc::now());
        q.last_error = error.chars().take(500).collect();
        w.put(&QUEUE, &key, &q)?;
    }
    Ok(())
}

/// Removes `reference` from the queue (it was scanned).
pub fn dequeue(w: &WriteTx, reference: &str) -> Result<bool, StoreError> {
    w.delete(&QUEUE, &reference.to_string())
}

/// Number of references in the queue.
pub fn queue_len(store: &Store) -> Result<u64, StoreError> {
    store.read(|r| r.len(&QUEUE))
}

/// The scan queue, oldest first.
pub fn queue(store: &Store) -> Result<Vec<Queued>, StoreError> {
    queue_head(store, usize::MAX)
}

/// The `limit` oldest references of the scan queue, oldest first.
pub fn queue_head(store: &Store, limit: usize) -> Result<Vec<Queued>, StoreError> {
    let mut q: Vec<Queued> = store
        .read(|r| r.all(&QUEUE))?
        .into_iter()
        .map(|(_, q)| q)
        .collect();
    if q.len() > limit {
        q.select_nth_unstable_by_key(limit, |q| q.first_seen);
        q.truncate(limit);
    }
    q.sort_by_key(|q| q.first_seen);
    Ok(q)
}

/// Marks an image's scan as failed (inside `w`).
pub fn mark_failed(w: &WriteTx, image: &mut Image, message: &str) -> Result<(), StoreError> {
    image.scan_state = ScanState::Failed {
        message: message.chars().take(2000).collect(),
    };
    w.put(&IMAGES, &image.id, image)
}

/// Marks image `id` queued (inside `w`) unless it already is.
pub fn mark_queued_by_id(w: &WriteTx, id: u64, reason: &str) -> Result<bool, StoreError> {
    let Some(mut image) = w.get(&IMAGES, &id)? else {
        return Ok(false);
    };
    if matches!(image.scan_state, ScanState::Queued { .. }) {
        return Ok(false);
    }
    mark_queued(w, &mut image, reason)?;
    Ok(true)
}

/// Every image's facts (for building the admission index).
pub fn all_facts(store: &Store) -> Result<Vec<(u64, Vec<Facts>)>, StoreError> {
    store.read(|r| r.all(&FACTS))
}

/// Every tag mapping.
pub fn all_tags(store: &Store) -> Result<Vec<(String, TagHistory)>, StoreError> {
    store.read(|r| r.all(&TAGS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_move_between_digests_and_keep_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &[]).unwrap();
        let r = ImageRef::parse("registry.local/app:1").unwrap();
        let d1 = format!("sha256:{}", "a".repeat(64));
        let d2 = format!("sha256:{}", "b".repeat(64));
        let a = store.write(|w| upsert(w, &r, &d1, Some(1))).unwrap();
        let again = store.write(|w| upsert(w, &r, &d1, Some(2))).unwrap();
        assert_eq!(a.id, again.id);
        assert_eq!(again.clusters, vec![1, 2]);
        let b = store.write(|w| upsert(w, &r, &d2, None)).unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(by_tag(&store, &r).unwrap().unwrap().id, b.id);
        let tags = all_tags(&store).unwrap();
        assert_eq!(tags[0].1.previous[0].0, d1);
        assert_eq!(by_digest(&store, &r, &d1).unwrap().unwrap().id, a.id);
    }

    #[test]
    fn digest_identification_order() {
        let r = ImageRef::parse("registry.local/app:1").unwrap();
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let meta = trivy::ReportMeta {
            repo_digests: vec![
                format!("other.io/x@{}", d('b')),
                format!("registry.local/app@{}", d('c')),
            ],
            image_id: Some(d('e')),
            ..Default::default()
        };
        assert_eq!(
            identify(&r, &meta).unwrap(),
            d('c'),
            "same repository first"
        );
        let pinned = ImageRef::parse(&format!("registry.local/app@{}", d('a'))).unwrap();
        assert_eq!(
            identify(&pinned, &meta).unwrap(),
            d('a'),
            "the reference's digest wins"
        );
        let bare = trivy::ReportMeta {
            image_id: Some(d('e')),
            ..Default::default()
        };
        assert_eq!(identify(&r, &bare).unwrap(), d('e'));
        assert!(matches!(
            identify(&r, &trivy::ReportMeta::default()),
            Err(ImageError::NoDigest)
        ));
    }
}
