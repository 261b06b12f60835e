//! Where a cluster stands on the way to enforcement: has its API server sent a review, does
//! Bulwark know what runs there, how its images are judged, and what switching enforcement on
//! would deny right now. The cluster page turns this into its next steps.

use chrono::{DateTime, Utc};

use super::{Cluster, UnscannedAction};
use crate::admission::Admission;
use crate::images::{ScanState, Severity};
use crate::store::{Store, StoreError};

/// Images listed on the cluster page (the rest are a link away).
pub const SHOWN: usize = 10;

/// One image the cluster runs, as admission would judge it now.
#[derive(Debug, Clone)]
pub struct ImageLine {
    /// The image record (0: a reference waiting in the scan queue, with no record yet).
    pub id: u64,
    pub name: String,
    /// `compliant`, `non-compliant` or `unscanned`.
    pub status: &'static str,
    pub reason: String,
    pub critical: u32,
    pub high: u32,
    pub digest: String,
}

#[derive(Debug, Clone, Default)]
pub struct Onboarding {
    /// The newest admission review recorded for the cluster.
    pub last_review: Option<DateTime<Utc>>,
    pub images: Vec<ImageLine>,
    pub images_total: usize,
    /// Never scanned (image records and references waiting in the scan queue).
    pub unscanned: usize,
    pub non_compliant: usize,
}

impl Onboarding {
    /// How many of its images enforcement would deny now under the cluster's settings.
    pub fn would_deny(&self, c: &Cluster) -> usize {
        self.non_compliant
            + match c.unscanned_action {
                UnscannedAction::Deny => self.unscanned,
                UnscannedAction::AllowAndQueue => 0,
            }
    }
}

/// The cluster's standing, judged with admission's current snapshot, listing the first `shown`
/// images (non-compliant first).
pub fn compute(
    store: &Store,
    admission: &Admission,
    c: &Cluster,
    shown: usize,
) -> Result<Onboarding, StoreError> {
    let index = admission.index.refresh()?;
    let mut o = Onboarding {
        last_review: crate::admission::decisions(store, usize::MAX)?
            .iter()
            .filter(|d| d.cluster == c.id)
            .map(|d| d.last)
            .max(),
        ..Onboarding::default()
    };
    let mut lines = Vec::new();
    for image in crate::images::list(store)? {
        if !image.clusters.contains(&c.id) {
            continue;
        }
        o.images_total += 1;
        let never = image.last_scan.is_none()
            && matches!(
                image.scan_state,
                ScanState::Unscanned | ScanState::Queued { .. }
            );
        let (status, reason) = match index.image_verdict(c, &image.key()) {
            _ if never => ("unscanned", String::new()),
            Some(v) if v.compliant => ("compliant", String::new()),
            Some(v) => (
                "non-compliant",
                v.reasons.first().cloned().unwrap_or_default(),
            ),
            None => ("unscanned", String::new()),
        };
        match status {
            "unscanned" => o.unscanned += 1,
            "non-compliant" => o.non_compliant += 1,
            _ => {}
        }
        let counts = image
            .last_scan
            .as_ref()
            .map(|s| s.counts.clone())
            .unwrap_or_default();
        lines.push(ImageLine {
            id: image.id,
            name: image.name(),
            status,
            reason,
            critical: counts.total(Severity::Critical),
            high: counts.total(Severity::High),
            digest: image.digest.clone(),
        });
    }
    // References running there with no image record yet (no digest known): unscanned.
    for q in crate::images::queue(store)? {
        if !q.clusters.contains(&c.id) {
            continue;
        }
        o.unscanned += 1;
        o.images_total += 1;
        lines.push(ImageLine {
            id: 0,
            name: q.reference,
            status: "unscanned",
            reason: "waiting for its first scan".into(),
            critical: 0,
            high: 0,
            digest: String::new(),
        });
    }
    // What needs attention first: non-compliant (most critical first), then unscanned.
    let rank = |s: &str| match s {
        "non-compliant" => 0,
        "unscanned" => 1,
        _ => 2,
    };
    lines.sort_by(|a, b| {
        (rank(a.status), std::cmp::Reverse(a.critical), &a.name).cmp(&(
            rank(b.status),
            std::cmp::Reverse(b.critical),
            &b.name,
        ))
    });
    lines.truncate(shown);
    o.images = lines;
    Ok(o)
}
