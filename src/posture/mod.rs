//! Security posture at a glance: per cluster, how many of its images are compliant,
//! non-compliant or unscanned, its critical and high findings, the worst images, the exception
//! requests waiting, admission denials and the vulnerability database's age.
//!
//! Judging every image in every cluster costs a pass over every finding, so it is done by the
//! `posture` job (hourly, and on demand) into a snapshot per day; the dashboard reads the
//! latest snapshot and the last 30 days for its trends, never the findings.

pub mod chart;
pub mod pages;

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::admission::Admission;
use crate::images::{ScanState, Severity};
use crate::store::{Scan, Store, StoreError, Table};
use crate::vulndb::db::SourceStatus;

/// `YYYY-MM-DD` → the last snapshot taken that day.
const DAYS: Table<String, Snapshot> = Table::new("posture_days");

/// Days of history kept (trends show 30; a year answers "how were we last spring").
const KEEP_DAYS: i64 = 400;

/// Images listed as the worst.
const WORST: usize = 10;

/// One cluster's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterFigures {
    pub cluster: u64,
    pub name: String,
    pub compliant: u32,
    pub non_compliant: u32,
    pub unscanned: u32,
    pub critical_fixable: u32,
    pub critical_unfixable: u32,
    pub high_fixable: u32,
    pub high_unfixable: u32,
}

impl ClusterFigures {
    pub fn images(&self) -> u32 {
        self.compliant + self.non_compliant + self.unscanned
    }

    /// Compliant share of the scanned images, in whole percent (`None` when none is scanned).
    pub fn percent(&self) -> Option<u32> {
        let scanned = self.compliant + self.non_compliant;
        (scanned > 0).then(|| (self.compliant * 100 + scanned / 2) / scanned)
    }
}

/// An image with the most serious findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorstImage {
    pub id: u64,
    pub name: String,
    pub critical: u32,
    pub high: u32,
    pub fixable: u32,
    /// Clusters where it is non-compliant.
    pub clusters: Vec<String>,
}

/// Everything the dashboard shows, as of `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub at: DateTime<Utc>,
    pub clusters: Vec<ClusterFigures>,
    pub worst: Vec<WorstImage>,
    /// Admission decisions last seen in the 24 h before `at` that denied: distinct object
    /// shapes, and the reviews they answered.
    pub denials_24h: u64,
    pub denied_reviews_24h: u64,
    /// Empty when the appliance has no vulnerability database yet.
    #[serde(default)]
    pub feeds: Vec<SourceStatus>,
    pub advisories: u64,
}

impl Snapshot {
    /// Figures over every cluster.
    pub fn totals(&self) -> ClusterFigures {
        let mut t = ClusterFigures {
            name: "all clusters".into(),
            ..ClusterFigures::default()
        };
        for c in &self.clusters {
            t.compliant += c.compliant;
            t.non_compliant += c.non_compliant;
            t.unscanned += c.unscanned;
            t.critical_fixable += c.critical_fixable;
            t.critical_unfixable += c.critical_unfixable;
            t.high_fixable += c.high_fixable;
            t.high_unfixable += c.high_unfixable;
        }
        t
    }

    /// When the vulnerability database last took a feed.
    pub fn feeds_updated(&self) -> Option<DateTime<Utc>> {
        self.feeds.iter().map(|f| f.imported_at).max()
    }
}

/// Judges every image in every cluster it runs in, as admission would now.
pub fn compute(
    store: &Store,
    admission: &Admission,
    vulndb: &Path,
) -> Result<Snapshot, StoreError> {
    let now = Utc::now();
    let index = admission.index.refresh()?;
    let clusters = crate::clusters::list(store)?;
    let mut figures: Vec<ClusterFigures> = clusters
        .iter()
        .map(|c| ClusterFigures {
            cluster: c.id,
            name: c.name.clone(),
            ..ClusterFigures::default()
        })
        .collect();
    let slot: HashMap<u64, usize> = clusters
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i))
        .collect();
    let mut worst: Vec<WorstImage> = Vec::new();
    for image in crate::images::list(store)? {
        let counts = image
            .last_scan
            .as_ref()
            .map(|s| s.counts.clone())
            .unwrap_or_default();
        let (crit, high) = (Severity::Critical as usize, Severity::High as usize);
        let unscanned = image.last_scan.is_none()
            && matches!(
                image.scan_state,
                ScanState::Unscanned | ScanState::Queued { .. }
            );
        let mut bad_in = Vec::new();
        for cid in &image.clusters {
            let Some(&i) = slot.get(cid) else { continue };
            let f = &mut figures[i];
            if unscanned {
                f.unscanned += 1;
                continue;
            }
            f.critical_fixable += counts.fixable[crit];
            f.critical_unfixable += counts.unfixable[crit];
            f.high_fixable += counts.fixable[high];
            f.high_unfixable += counts.unfixable[high];
            match index.image_verdict(&clusters[i], &image.key()) {
                Some(v) if v.compliant => f.compliant += 1,
                Some(_) => {
                    f.non_compliant += 1;
                    bad_in.push(clusters[i].name.clone());
                }
                None => f.unscanned += 1,
            }
        }
        if !bad_in.is_empty() {
            worst.push(WorstImage {
                id: image.id,
                name: image.name(),
                critical: counts.total(Severity::Critical),
                high: counts.total(Severity::High),
                fixable: counts.fixable[crit] + counts.fixable[high],
                clusters: bad_in,
            });
            // Keep the list short while walking ten thousand images.
            if worst.len() > WORST * 4 {
                rank(&mut worst);
                worst.truncate(WORST);
            }
        }
    }
    rank(&mut worst);
    worst.truncate(WORST);
    // References waiting for their first scan with no image record yet (running without a
    // digest, or seen by admission only).
    for q in crate::images::queue(store)? {
        for cid in &q.clusters {
            if let Some(&i) = slot.get(cid) {
                figures[i].unscanned += 1;
            }
        }
    }
    let since = now - Duration::hours(24);
    let (mut denials_24h, mut denied_reviews_24h) = (0, 0);
    for d in crate::admission::decisions(store, usize::MAX)? {
        if !d.allowed && d.last >= since {
            denials_24h += 1;
            denied_reviews_24h += d.count;
        }
    }
    let (feeds, advisories) = crate::vulndb::db::status(vulndb);
    Ok(Snapshot {
        at: now,
        clusters: figures,
        worst,
        denials_24h,
        denied_reviews_24h,
        feeds,
        advisories,
    })
}

/// Most critical first, then most high, then the most fixable.
fn rank(worst: &mut [WorstImage]) {
    worst.sort_by(|a, b| {
        (b.critical, b.high, b.fixable, a.id).cmp(&(a.critical, a.high, a.fixable, b.id))
    });
}

/// Stores `s` as its day's snapshot and forgets days past [`KEEP_DAYS`].
pub fn save(store: &Store, s: &Snapshot) -> Result<(), StoreError> {
    let cutoff = (s.at - Duration::days(KEEP_DAYS)).date_naive().to_string();
    store.write(|w| {
        w.put(&DAYS, &s.at.date_naive().to_string(), s)?;
        w.retain(&DAYS, |day, _| *day >= cutoff)?;
        Ok(())
    })
}

/// The newest snapshot, if any.
pub fn latest(store: &Store) -> Result<Option<Snapshot>, StoreError> {
    Ok(history(store, 1)?.pop())
}

/// The snapshots of the last `days` days that have one, oldest first.
pub fn history(store: &Store, days: usize) -> Result<Vec<Snapshot>, StoreError> {
    let mut out = Vec::new();
    store.read(|r| {
        r.scan(
            &DAYS,
            Scan {
                reverse: true,
                ..Scan::default()
            },
            |_, s| {
                out.push(s);
                Ok(out.len() < days)
            },
        )
    })?;
    out.reverse();
    Ok(out)
}

/// The snapshot's day.
pub fn day(s: &Snapshot) -> NaiveDate {
    s.at.date_naive()
}

/// The `posture` job: a snapshot now.
pub fn run_job(store: &Store, admission: &Admission, vulndb: &Path) -> Result<String, String> {
    let s = compute(store, admission, vulndb).map_err(|e| e.to_string())?;
    save(store, &s).map_err(|e| e.to_string())?;
    let t = s.totals();
    Ok(format!(
        "{} clusters: {} compliant, {} non-compliant, {} unscanned image placements",
        s.clusters.len(),
        t.compliant,
        t.non_compliant,
        t.unscanned
    ))
}
