//! The appliance's own scans: images waiting in the scan queue (rescans due under a policy, and
//! references admission saw before any scan) are pulled with the registry credentials the
//! appliance keeps sealed, scanned in-process by the native scanner against `DATA_DIR/vulndb.redb`,
//! and ingested exactly as an upload would be, once per cluster the image was seen in.

use std::path::Path;

use super::service::{ingest, ingest_failure};
use crate::images::{self, ImageRef, ScanState};
use crate::scanner::layers::Limits;
use crate::scanner::{registry, scan_layers};
use crate::secrets::Sealer;
use crate::store::Store;
use crate::vulndb::db::VulnDb;

/// Who the audit log names for these scans.
const ACTOR: &str = "system:native-scanner";

/// One thing to scan: a reference and the clusters it is for.
struct Work {
    reference: String,
    clusters: Vec<u64>,
    /// The digest already known for it (queued images), for recording a failure.
    digest: Option<String>,
}

/// What waits for a scan, oldest first: queued images by digest, then admission's references.
fn pending(store: &Store) -> Result<Vec<Work>, String> {
    let mut images: Vec<images::Image> = images::list(store)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|i| matches!(i.scan_state, ScanState::Queued { .. }))
        .collect();
    images.sort_by_key(|i| match &i.scan_state {
        ScanState::Queued { since, .. } => *since,
        _ => i.last_seen,
    });
    let mut work: Vec<Work> = images
        .into_iter()
        .map(|i| Work {
            reference: i.key(),
            clusters: i.clusters.clone(),
            digest: Some(i.digest.clone()),
        })
        .collect();
    for q in images::queue(store).map_err(|e| e.to_string())? {
        if !work.iter().any(|w| w.reference == q.reference) {
            work.push(Work {
                reference: q.reference,
                clusters: q.clusters,
                digest: None,
            });
        }
    }
    Ok(work)
}

/// Scans up to `limit` waiting images; returns a one-line summary for the job history.
pub fn run(store: &Store, sealer: &Sealer, vulndb: &Path, limit: usize) -> Result<String, String> {
    let work = pending(store)?;
    if work.is_empty() {
        return Ok("nothing waits for a scan".into());
    }
    if !vulndb.exists() {
        return Err(format!(
            "{} images wait, but there is no vulnerability database at {}: import one with `bulwark db import`",
            work.len(),
            vulndb.display()
        ));
    }
    let db = VulnDb::open_read_only(vulndb).map_err(|e| format!("vulnerability database: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (mut scanned, mut failed) = (0, 0);
    let mut first_error = None;
    for w in work.iter().take(limit) {
        match scan_one(store, sealer, &db, &rt, w) {
            Ok(()) => scanned += 1,
            Err(e) => {
                failed += 1;
                tracing::warn!(image = %w.reference, error = %e, "native scan failed");
                first_error.get_or_insert(format!("{}: {e}", w.reference));
            }
        }
    }
    let mut msg = format!("{scanned} images scanned, {failed} failed");
    if work.len() > limit {
        msg.push_str(&format!(", {} left for the next run", work.len() - limit));
    }
    if let Some(e) = first_error {
        msg.push_str(&format!(" (first failure: {e})"));
    }
    Ok(msg)
}

fn scan_one(
    store: &Store,
    sealer: &Sealer,
    db: &VulnDb,
    rt: &tokio::runtime::Runtime,
    w: &Work,
) -> Result<(), String> {
    let clusters: Vec<_> = w
        .clusters
        .iter()
        .filter_map(|id| crate::clusters::get(store, *id).ok())
        .collect();
    if clusters.is_empty() {
        return Err("seen in no known cluster".into());
    }
    let record_failure = |message: &str| {
        // An image whose digest is known is marked failed (non-compliant until a scan works);
        // a tag from admission stays queued for the next run.
        if let (Some(digest), Ok(r)) = (&w.digest, ImageRef::parse(&w.reference)) {
            for c in &clusters {
                if let Err(e) = ingest_failure(store, ACTOR, c, &r, digest, message) {
                    tracing::warn!(error = %e, "recording a scan failure");
                }
            }
        }
    };
    let pulled = registry::ImageRef::parse(&w.reference)
        .map_err(|e| e.to_string())
        .and_then(|image| {
            let access = crate::registries::access_for(store, sealer, &image.registry)
                .map_err(|e| e.to_string())?;
            rt.block_on(registry::pull(&image, &access, &Limits::default()))
                .map_err(|e| e.to_string())
        });
    let flat = match pulled {
        Ok(f) => f,
        Err(e) => {
            record_failure(&e);
            return Err(e);
        }
    };
    let report = scan_layers(&flat, &w.reference, db).map_err(|e| e.to_string())?;
    // The same path as an upload: the report's Trivy-compatible JSON, read by the ingest.
    let json = serde_json::to_vec(&report.trivy_json(false)).map_err(|e| e.to_string())?;
    let (meta, findings) = images::trivy::parse(&json).map_err(|e| e.to_string())?;
    let r = ImageRef::parse(&w.reference).map_err(|e| e.to_string())?;
    let digest = images::identify(&r, &meta).map_err(|e| e.to_string())?;
    for c in &clusters {
        ingest(store, ACTOR, c, &r, &digest, &meta, findings.clone()).map_err(|e| e.to_string())?;
    }
    Ok(())
}
