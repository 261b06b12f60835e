//! The in-memory snapshot admission decides from.
//!
//! A [`Snapshot`] holds everything a decision needs: clusters, policies, exceptions, every image's
//! compact facts and the tag → digest map. It is tagged with the store versions of the tables it
//! was built from; a request whose versions still match decides without any I/O. When something
//! changed, [`AdmissionIndex::refresh`] rebuilds it incrementally: small tables are reloaded, and
//! only images whose last scan changed reload their facts. Verdicts are memoized inside the
//! snapshot, so a rebuild drops them with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, NaiveDate, Utc};

use crate::clusters::Cluster;
use crate::compliance::evaluate::{evaluate, Context, ScanInput};
use crate::compliance::{Exception, Policy};
use crate::images::{self, Facts, ImageRef, ScanState};
use crate::store::{Store, StoreError};

/// What the snapshot knows of one image.
#[derive(Debug)]
pub struct Entry {
    pub id: u64,
    pub name: String,
    scanned_at: Option<DateTime<Utc>>,
    state: EntryState,
}

#[derive(Debug)]
enum EntryState {
    Scanned(Arc<Vec<Facts>>),
    Failed(String),
    Unscanned,
}

/// The judgement of one image in one cluster and namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageDecision {
    pub compliant: bool,
    pub reasons: Vec<String>,
    /// Bulwark has never scanned it.
    pub unscanned: bool,
}

/// An immutable view for deciding.
pub struct Snapshot {
    versions: Vec<u64>,
    today: NaiveDate,
    clusters: HashMap<String, Arc<Cluster>>,
    policies: Vec<Policy>,
    exceptions: Vec<Exception>,
    images: HashMap<String, Arc<Entry>>,
    tags: HashMap<String, String>,
    /// SHA-256 of each cluster's webhook token, for clusters that require one.
    tokens: HashMap<u64, String>,
    memo: Mutex<HashMap<(u64, String, String), Arc<ImageDecision>>>,
}

/// Memo entries kept before the memo is cleared (it refills from hot images).
const MEMO_LIMIT: usize = 100_000;

impl Snapshot {
    /// A cluster by name (case-insensitive) or id.
    pub fn cluster(&self, name_or_id: &str) -> Option<Arc<Cluster>> {
        self.clusters.get(&name_or_id.to_lowercase()).cloned()
    }

    /// Whether `given` (the token in the webhook path, if any) lets a review for `cluster` in:
    /// a cluster with a token needs it; a token given to a cluster without one is refused too,
    /// so a misconfigured webhook shows up at once.
    pub fn caller_allowed(&self, cluster: &Cluster, given: Option<&str>) -> bool {
        match (self.tokens.get(&cluster.id), given) {
            (None, None) => true,
            (Some(expected), Some(t)) => crate::clusters::webhook_auth::matches(expected, t),
            _ => false,
        }
    }

    /// Number of images known.
    pub fn images(&self) -> usize {
        self.images.len()
    }

    /// Judges `reference` for `cluster` in `namespace`. No I/O.
    pub fn judge(&self, cluster: &Cluster, namespace: &str, reference: &str) -> Arc<ImageDecision> {
        let memo_key = (cluster.id, namespace.to_string(), reference.to_string());
        if let Some(d) = self
            .memo
            .lock()
            .ok()
            .and_then(|m| m.get(&memo_key).cloned())
        {
            return d;
        }
        let decision = Arc::new(self.judge_uncached(cluster, namespace, reference));
        if let Ok(mut m) = self.memo.lock() {
            if m.len() >= MEMO_LIMIT {
                m.clear();
            }
            m.insert(memo_key, decision.clone());
        }
        decision
    }

    /// The verdict for image `key` (`registry/repository@digest`) in `cluster` without a namespace
    /// (as at scan time), for lists. `None` if the image is unknown. No I/O.
    pub fn image_verdict(&self, cluster: &Cluster, key: &str) -> Option<ImageDecision> {
        // Lists ask for the same images again and again; the snapshot does not change, so
        // neither does the answer. The namespace slot holds a name no namespace can have.
        let memo_key = (cluster.id, "\0list".to_string(), key.to_string());
        if let Some(d) = self
            .memo
            .lock()
            .ok()
            .and_then(|m| m.get(&memo_key).cloned())
        {
            return Some((*d).clone());
        }
        let decision = self.image_verdict_uncached(cluster, key)?;
        if let Ok(mut m) = self.memo.lock() {
            if m.len() >= MEMO_LIMIT {
                m.clear();
            }
            m.insert(memo_key, Arc::new(decision.clone()));
        }
        Some(decision)
    }

    fn image_verdict_uncached(&self, cluster: &Cluster, key: &str) -> Option<ImageDecision> {
        let entry = self.images.get(key)?;
        let ctx = Context {
            cluster: cluster.id,
            namespace: None,
            image_name: &entry.name,
            today: self.today,
        };
        let input = match &entry.state {
            EntryState::Scanned(f) => ScanInput::Scanned(f),
            EntryState::Failed(m) => ScanInput::Failed(m),
            EntryState::Unscanned => ScanInput::NotScanned,
        };
        let v = evaluate(
            &ctx,
            input,
            &self.policies.iter().collect::<Vec<_>>(),
            &self.exceptions.iter().collect::<Vec<_>>(),
        );
        Some(ImageDecision {
            compliant: v.compliant,
            reasons: v.reasons,
            unscanned: matches!(entry.state, EntryState::Unscanned),
        })
    }

    fn judge_uncached(&self, cluster: &Cluster, namespace: &str, reference: &str) -> ImageDecision {
        let r = match ImageRef::parse(reference) {
            Ok(r) => r,
            Err(e) => {
                return ImageDecision {
                    compliant: false,
                    reasons: vec![e.to_string()],
                    unscanned: false,
                }
            }
        };
        let digest = r
            .digest
            .clone()
            .or_else(|| r.tagged().and_then(|t| self.tags.get(&t).cloned()));
        let entry = digest.and_then(|d| self.images.get(&format!("{}@{d}", r.name())));
        let name = r.name();
        let ctx = Context {
            cluster: cluster.id,
            namespace: Some(namespace),
            image_name: &name,
            today: self.today,
        };
        let (input, unscanned) = match entry.map(|e| &e.state) {
            Some(EntryState::Scanned(f)) => (ScanInput::Scanned(f), false),
            Some(EntryState::Failed(m)) => (ScanInput::Failed(m), false),
            Some(EntryState::Unscanned) | None => (ScanInput::NotScanned, true),
        };
        let policies: Vec<&Policy> = self.policies.iter().collect();
        let exceptions: Vec<&Exception> = self.exceptions.iter().collect();
        let v = evaluate(&ctx, input, &policies, &exceptions);
        ImageDecision {
            unscanned: unscanned && !v.compliant,
            compliant: v.compliant,
            reasons: v.reasons,
        }
    }
}

/// The tables a snapshot depends on.
fn watched() -> Vec<&'static str> {
    let mut t = vec![
        crate::clusters::table(),
        crate::clusters::webhook_auth::table(),
    ];
    t.extend(crate::compliance::model::tables());
    t.extend(images::tables());
    t
}

/// Holds the current snapshot.
pub struct AdmissionIndex {
    store: Store,
    current: RwLock<Option<Arc<Snapshot>>>,
    refreshing: Mutex<()>,
}

impl AdmissionIndex {
    /// An index over `store`; the first snapshot is built on first use (or by `refresh`).
    pub fn new(store: Store) -> AdmissionIndex {
        AdmissionIndex {
            store,
            current: RwLock::new(None),
            refreshing: Mutex::new(()),
        }
    }

    /// The snapshot, if it is up to date. No I/O.
    pub fn fresh(&self) -> Option<Arc<Snapshot>> {
        let snap = self.current.read().ok()?.clone()?;
        (snap.versions == self.store.versions(&watched()) && snap.today == Utc::now().date_naive())
            .then_some(snap)
    }

    /// The last snapshot built, even if stale (for failing open or closed on errors).
    pub fn last(&self) -> Option<Arc<Snapshot>> {
        self.current.read().ok()?.clone()
    }

    /// Brings the snapshot up to date (blocking: reads the store) and returns it.
    pub fn refresh(&self) -> Result<Arc<Snapshot>, StoreError> {
        let _one_at_a_time = self.refreshing.lock();
        if let Some(s) = self.fresh() {
            return Ok(s);
        }
        // Versions first: a write racing the reads below leaves the snapshot stale, not wrong.
        let versions = self.store.versions(&watched());
        let old = self.last();
        let mut clusters = HashMap::new();
        for c in crate::clusters::list(&self.store)? {
            let c = Arc::new(c);
            clusters.insert(c.name.to_lowercase(), c.clone());
            clusters.insert(c.id.to_string(), c);
        }
        let tokens = crate::clusters::webhook_auth::digests(&self.store)?
            .into_iter()
            .collect();
        let policies = crate::compliance::service::list_policies(&self.store)?;
        let exceptions = crate::compliance::service::list_exceptions(&self.store)?;
        let mut by_id: HashMap<u64, Arc<Entry>> = HashMap::new();
        if let Some(o) = &old {
            for e in o.images.values() {
                by_id.insert(e.id, e.clone());
            }
        }
        let mut entries = HashMap::new();
        let mut scanners: Vec<Arc<str>> = Vec::new();
        let mut ids: std::collections::HashSet<Arc<str>> = Default::default();
        for image in images::list(&self.store)? {
            let scanned_at = image.last_scan.as_ref().map(|s| s.at);
            let reuse = by_id.get(&image.id).filter(|e| {
                e.scanned_at == scanned_at
                    && matches!(e.state, EntryState::Scanned(_))
                        == matches!(image.scan_state, ScanState::Scanned)
            });
            let entry = match reuse {
                Some(e) => e.clone(),
                None => {
                    let state = match &image.scan_state {
                        ScanState::Failed { message } => EntryState::Failed(message.clone()),
                        _ if image.last_scan.is_some() => {
                            let mut facts =
                                images::facts(&self.store, image.id)?.unwrap_or_default();
                            // One shared allocation per scanner name and per vulnerability id
                            // (a few thousand distinct ids among a million findings).
                            for f in &mut facts {
                                match scanners.iter().find(|s| **s == f.scanner) {
                                    Some(s) => f.scanner = s.clone(),
                                    None => scanners.push(f.scanner.clone()),
                                }
                                match ids.get(&f.id) {
                                    Some(shared) => f.id = shared.clone(),
                                    None => {
                                        ids.insert(f.id.clone());
                                    }
                                }
                            }
                            EntryState::Scanned(Arc::new(facts))
                        }
                        _ => EntryState::Unscanned,
                    };
                    Arc::new(Entry {
                        id: image.id,
                        name: image.name(),
                        scanned_at,
                        state,
                    })
                }
            };
            entries.insert(image.key(), entry);
        }
        let tags = images::all_tags(&self.store)?
            .into_iter()
            .map(|(t, h)| (t, h.digest))
            .collect();
        let snap = Arc::new(Snapshot {
            versions,
            today: Utc::now().date_naive(),
            clusters,
            policies,
            exceptions,
            images: entries,
            tags,
            tokens,
            memo: Mutex::new(HashMap::new()),
        });
        if let Ok(mut c) = self.current.write() {
            *c = Some(snap.clone());
        }
        Ok(snap)
    }
}
