//! The appliance's own scans: images waiting in the scan queue (rescans due under a policy, and
//! references admission saw before any scan) are pulled with the registry credentials the
//! appliance keeps sealed, scanned in-process by the native scanner against `DATA_DIR/vulndb.redb`,
//! and ingested exactly as an upload would be, once per cluster the image was seen in.

use std::collections::HashSet;
use std::path::Path;

use tokio_util::sync::CancellationToken;

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

/// What waits for a scan: queued images by digest (oldest first), then admission's references,
/// least recently tried first, each reference once. Linear in the queue's length.
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
    let mut seen: HashSet<String> = HashSet::with_capacity(images.len());
    let mut work: Vec<Work> = Vec::with_capacity(images.len());
    for i in images {
        let reference = i.key();
        if seen.insert(reference.clone()) {
            work.push(Work {
                reference,
                clusters: i.clusters,
                digest: Some(i.digest),
            });
        }
    }
    let mut queue = images::queue(store).map_err(|e| e.to_string())?;
    queue.sort_by_key(|q| (q.last_attempt, q.first_seen));
    for q in queue {
        if seen.insert(q.reference.clone()) {
            work.push(Work {
                reference: q.reference,
                clusters: q.clusters,
                digest: None,
            });
        }
    }
    Ok(work)
}

/// Scans up to `limit` waiting images, stopping early when `stop` fires; returns a one-line
/// summary for the job history.
pub fn run(
    store: &Store,
    sealer: &Sealer,
    outbound: &crate::outbound::Outbound,
    vulndb: &Path,
    limit: usize,
    stop: &CancellationToken,
) -> Result<String, String> {
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
        if stop.is_cancelled() {
            break;
        }
        match scan_one(store, sealer, outbound, &db, &rt, w, stop) {
            Ok(()) => scanned += 1,
            Err(_) if stop.is_cancelled() => break,
            Err(e) => {
                failed += 1;
                tracing::warn!(image = %w.reference, error = %e, "native scan failed");
                if w.digest.is_none() {
                    let note = store.write(|tx| images::note_attempt(tx, &w.reference, &e));
                    if let Err(e) = note {
                        tracing::warn!(error = %e, "recording a failed scan attempt");
                    }
                }
                first_error.get_or_insert(format!("{}: {e}", w.reference));
            }
        }
    }
    let mut msg = format!("{scanned} images scanned, {failed} failed");
    let left = work.len() - scanned - failed;
    if stop.is_cancelled() && left > 0 {
        msg.push_str(&format!(", stopped by shutdown with {left} left"));
    } else if left > 0 {
        msg.push_str(&format!(", {left} left for the next run"));
    }
    if let Some(e) = first_error {
        msg.push_str(&format!(" (first failure: {e})"));
    }
    Ok(msg)
}

fn scan_one(
    store: &Store,
    sealer: &Sealer,
    outbound: &crate::outbound::Outbound,
    db: &VulnDb,
    rt: &tokio::runtime::Runtime,
    w: &Work,
    stop: &CancellationToken,
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
            let access = crate::registries::access_for(store, sealer, outbound, &image.registry)
                .map_err(|e| e.to_string())?;
            let limits = Limits::default();
            rt.block_on(async {
                tokio::select! {
                    _ = stop.cancelled() => Err("stopped by shutdown".to_string()),
                    pulled = registry::pull(&image, &access, &limits) => {
                        pulled.map_err(|e| e.to_string())
                    }
                }
            })
        });
    let flat = match pulled {
        Ok(f) => f,
        // Not the image's fault: it stays queued as it was.
        Err(e) if stop.is_cancelled() => return Err(e),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_that_keep_failing_go_to_the_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &[]).unwrap();
        store
            .write(|w| {
                images::enqueue(w, "registry.local/a:1", Some(1), "test", 1)?;
                images::enqueue(w, "registry.local/b:1", Some(1), "test", 1)?;
                images::enqueue(w, "registry.local/a:1", Some(1), "test", 1)
            })
            .unwrap();
        let order = |store: &Store| -> Vec<String> {
            pending(store)
                .unwrap()
                .into_iter()
                .map(|w| w.reference)
                .collect()
        };
        assert_eq!(
            order(&store),
            ["registry.local/a:1", "registry.local/b:1"],
            "oldest first, each once"
        );
        store
            .write(|w| images::note_attempt(w, "registry.local/a:1", "unreachable"))
            .unwrap();
        assert_eq!(
            order(&store),
            ["registry.local/b:1", "registry.local/a:1"],
            "a failing reference waits behind the others"
        );
    }
}
