//! The validating admission webhook: AdmissionReview in, a decision from memory out.
//!
//! `POST /api/v1/admission/{cluster}` and m9sweeper's `/api/clusters/{cluster}/validation` take a
//! review for a Pod or a workload, judge every container image with the compliance function
//! against the in-memory [`index::Snapshot`], and answer. Per cluster: enforcement off → allowed
//! with warnings; unscanned images → denied, or allowed and queued for a scan; an internal error →
//! the cluster's failure mode. Decisions are aggregated in memory and written in batches.

mod decisions;
pub mod index;
mod pages;
pub mod review;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::clusters::{Cluster, FailureMode, UnscannedAction};
use crate::http::{ApiError, AppState, Perm, Routes};
use crate::store::{Scan, Store, StoreError, Table};
use crate::trust::enforce::Check;
use index::{AdmissionIndex, Snapshot};

/// Largest AdmissionReview accepted (objects are at most ~1.5 MiB in etcd; an update's review
/// carries the old and the new object).
const MAX_REVIEW_BYTES: usize = 4 * 1024 * 1024;

/// Longest denial message, in characters: kubectl users read it, and it is stored.
pub const MAX_MESSAGE: usize = 2048;
/// Images kept in a decision record (the rest are counted in `images_total`).
const MAX_RECORDED_IMAGES: usize = 8;
/// Characters kept of each recorded image reference.
const MAX_RECORDED_IMAGE_LEN: usize = 256;
/// Distinct decision shapes held in memory between two flushes; more are counted as dropped.
const MAX_PENDING: usize = 2_000;
/// References held in memory for the scan queue between two flushes.
const MAX_PENDING_QUEUE: usize = 2_000;
/// Decision records kept; each flush deletes the oldest beyond this.
const MAX_DECISIONS: u64 = 20_000;

/// An aggregated decision: the same answer for the same workload shape, counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub id: u64,
    pub cluster: u64,
    pub namespace: String,
    pub kind: String,
    /// One object name it was made for (pods of a ReplicaSet have many).
    pub sample_name: String,
    /// The first images of the object (at most 8, each cut to 256 characters).
    pub images: Vec<String>,
    /// How many images the object had in all.
    #[serde(default)]
    pub images_total: usize,
    pub allowed: bool,
    pub message: String,
    pub count: u64,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

const DECISIONS: Table<u64, Decision> = Table::new("admission_decisions");

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReviewLabels {
    cluster: String,
    decision: String,
}

/// Admission state kept beside the store: the index, pending decisions, metrics.
pub struct Admission {
    pub index: AdmissionIndex,
    /// Each cluster's Gatekeeper constraints, compiled.
    pub gatekeeper: crate::gatekeeper::enforce::Enforcer,
    /// Each cluster's signature rules and the verdicts reached.
    pub trust: crate::trust::enforce::Trust,
    pending: Mutex<HashMap<DecisionKey, Pending>>,
    queue: Mutex<HashMap<(String, u64), u64>>,
    /// References admission could not hold for the queue since the last flush.
    queue_dropped: AtomicU64,
    reviews: Family<ReviewLabels, Counter>,
    /// Decisions not recorded because too many distinct ones arrived between two flushes.
    dropped: Counter,
    latency: Histogram,
}

/// (cluster, namespace, kind, images, allowed, message): what makes two decisions the same.
type DecisionKey = (u64, String, String, Vec<String>, bool, String);

struct Pending {
    sample_name: String,
    images_total: usize,
    count: u64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

impl Admission {
    /// Admission over `store`, registering its metrics.
    pub fn new(
        store: Store,
        outbound: crate::outbound::Outbound,
        metrics: &crate::http::metrics::Metrics,
    ) -> Admission {
        let reviews = Family::<ReviewLabels, Counter>::default();
        metrics.register(
            "admission_reviews",
            "Admission reviews by cluster and decision",
            reviews.clone(),
        );
        let dropped = Counter::default();
        metrics.register(
            "admission_decisions_dropped",
            "Admission decisions answered but not recorded (too many distinct ones at once)",
            dropped.clone(),
        );
        let latency = Histogram::new([
            0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05,
        ]);
        metrics.register(
            "admission_decision_seconds",
            "Time to decide an admission review (server side)",
            latency.clone(),
        );
        Admission {
            gatekeeper: crate::gatekeeper::enforce::Enforcer::new(store.clone()),
            trust: crate::trust::enforce::Trust::new(store.clone(), outbound, metrics),
            index: AdmissionIndex::new(store),
            pending: Mutex::default(),
            queue: Mutex::default(),
            queue_dropped: AtomicU64::new(0),
            reviews,
            dropped,
            latency,
        }
    }

    /// Decisions answered but not recorded since the appliance started.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    fn record(
        &self,
        cluster: &Cluster,
        r: &review::Review,
        allowed: bool,
        message: &str,
        unscanned: Vec<String>,
    ) {
        let now = Utc::now();
        let images: Vec<String> = r
            .images
            .iter()
            .take(MAX_RECORDED_IMAGES)
            .map(|(_, i)| cut(i, MAX_RECORDED_IMAGE_LEN))
            .collect();
        if let Ok(mut p) = self.pending.lock() {
            let key = (
                cluster.id,
                r.namespace.clone(),
                r.kind.clone(),
                images,
                allowed,
                message.to_string(),
            );
            if p.len() >= MAX_PENDING && !p.contains_key(&key) {
                self.dropped.inc();
            } else {
                let e = p.entry(key).or_insert(Pending {
                    sample_name: r.name.clone(),
                    images_total: r.containers,
                    count: 0,
                    first: now,
                    last: now,
                });
                e.count += 1;
                e.last = now;
            }
        }
        if !unscanned.is_empty() {
            if let Ok(mut q) = self.queue.lock() {
                for u in unscanned {
                    let key = (u, cluster.id);
                    if q.len() >= MAX_PENDING_QUEUE && !q.contains_key(&key) {
                        self.queue_dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    *q.entry(key).or_default() += 1;
                }
            }
        }
        self.reviews
            .get_or_create(&ReviewLabels {
                cluster: cluster.name.clone(),
                decision: if allowed { "allowed" } else { "denied" }.into(),
            })
            .inc();
    }

    /// Writes pending decisions and queued images in one transaction; returns how many rows.
    pub fn flush(&self, store: &Store) -> Result<usize, StoreError> {
        let pending: Vec<_> = self
            .pending
            .lock()
            .map(|mut p| p.drain().collect())
            .unwrap_or_default();
        let queued: Vec<_> = self
            .queue
            .lock()
            .map(|mut q| q.drain().collect())
            .unwrap_or_default();
        let queue_dropped = self.queue_dropped.swap(0, Ordering::Relaxed);
        if pending.is_empty() && queued.is_empty() && queue_dropped == 0 {
            return Ok(0);
        }
        let n = pending.len() + queued.len();
        store.write(|w| {
            for ((cluster, namespace, kind, images, allowed, message), p) in pending {
                let id = w.next_id("admission_decisions")?;
                let d = Decision {
                    id,
                    cluster,
                    namespace,
                    kind,
                    sample_name: p.sample_name,
                    images_total: p.images_total.max(images.len()),
                    images,
                    allowed,
                    message,
                    count: p.count,
                    first: p.first,
                    last: p.last,
                };
                w.put(&DECISIONS, &id, &d)?;
            }
            let excess = w.len(&DECISIONS)?.saturating_sub(MAX_DECISIONS);
            if excess > 0 {
                for id in w.first_keys(&DECISIONS, excess as usize)? {
                    w.delete(&DECISIONS, &id)?;
                }
            }
            for ((reference, cluster), seen) in queued {
                crate::images::enqueue(
                    w,
                    &reference,
                    Some(cluster),
                    "seen by admission before any scan",
                    seen,
                )?;
            }
            crate::images::count_dropped(w, queue_dropped)?;
            Ok::<_, StoreError>(())
        })?;
        Ok(n)
    }
}

/// Recent decisions, newest first.
pub fn decisions(store: &Store, limit: usize) -> Result<Vec<Decision>, StoreError> {
    let mut out = Vec::new();
    store.read(|r| {
        r.scan(
            &DECISIONS,
            Scan {
                reverse: true,
                ..Scan::default()
            },
            |_, d| {
                out.push(d);
                Ok(out.len() < limit)
            },
        )
    })?;
    Ok(out)
}

/// Deletes decisions last seen more than `days` ago.
pub fn prune(store: &Store, days: u64) -> Result<u64, StoreError> {
    let cutoff = Utc::now() - chrono::Duration::days(days.min(100_000) as i64);
    store.write(|w| w.retain(&DECISIONS, |_, d| d.last >= cutoff))
}

/// `s` cut to at most `max` characters, with an ellipsis when it was longer.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// `head` followed by as many `problems` as fit in [`MAX_MESSAGE`] characters, then a count of
/// the rest, so a denial stays readable (and storable) whatever the object holds.
fn bounded_message(head: &str, problems: &[String]) -> String {
    let mut out = cut(head, MAX_MESSAGE / 4);
    let mut len = out.chars().count();
    for (i, p) in problems.iter().enumerate() {
        let sep = if i == 0 { ": " } else { " | " };
        let rest = problems.len() - i;
        let p = cut(p, MAX_MESSAGE / 2);
        let need = sep.len() + p.chars().count();
        // Leave room for the " | … and N more" tail.
        if len + need + 24 > MAX_MESSAGE {
            out.push_str(&format!("{sep}… and {rest} more"));
            return out;
        }
        out.push_str(sep);
        out.push_str(&p);
        len += need;
    }
    out
}

/// Whether a review's images are judged: a write of a kind whose images Bulwark reads.
fn judges_images(r: &review::Review) -> bool {
    r.checked_kind && matches!(r.operation.as_str(), "CREATE" | "UPDATE") && !r.images.is_empty()
}

/// Decides a review with a snapshot and the signature checks of its images. Pure apart from
/// recording.
fn decide(
    adm: &Admission,
    snap: &Snapshot,
    cluster: &Cluster,
    r: &review::Review,
    signatures: &HashMap<String, Check>,
) -> serde_json::Value {
    let writes = matches!(r.operation.as_str(), "CREATE" | "UPDATE");
    let gk = if writes {
        adm.gatekeeper.review(cluster.id, &r.request)
    } else {
        Ok(Default::default())
    };
    let gk = gk.unwrap_or_else(|e| crate::gatekeeper::enforce::Outcome {
        errors: vec![e.to_string()],
        ..Default::default()
    });
    let images_judged = judges_images(r);
    if !images_judged && gk == Default::default() {
        return review::respond(&r.api_version, &r.uid, true, None, &[]);
    }
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut unscanned = Vec::new();
    problems.extend(gk.deny.iter().map(|v| format!("Gatekeeper {v}")));
    warnings.extend(gk.warn.iter().map(|v| format!("Gatekeeper {v}")));
    // A constraint that cannot be evaluated never refuses an object, as with Gatekeeper's
    // own webhook failing open.
    warnings.extend(
        gk.errors
            .iter()
            .map(|e| format!("a Gatekeeper constraint could not be evaluated: {e}")),
    );
    if images_judged && r.containers > r.images.len() {
        problems.push(format!(
            "the object has {} containers; Bulwark judges objects of at most {}",
            r.containers,
            review::MAX_CONTAINERS
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let judged: &[(String, String)] = if images_judged { &r.images } else { &[] };
    for (container, image) in judged {
        if !seen.insert(image.as_str()) {
            continue;
        }
        if image.chars().count() > review::MAX_IMAGE_LEN {
            problems.push(format!(
                "{} ({container}): the image reference is longer than {} characters",
                cut(image, 80),
                review::MAX_IMAGE_LEN
            ));
            continue;
        }
        match signatures.get(image) {
            Some(Check::Refused { pattern, reason }) => problems.push(format!(
                "{image} ({container}): no valid cosign signature by a key that rule '{pattern}' trusts: {reason}"
            )),
            Some(Check::Unknown { pattern, reason }) => {
                // The verdict first: warnings are cut to 240 characters.
                if cluster.failure_mode == FailureMode::FailClosed {
                    problems.push(format!(
                        "{image} ({container}): denied by fail-closed, its signature could not be checked (rule '{pattern}'): {reason}"
                    ));
                } else {
                    warnings.push(format!(
                        "{image} ({container}): allowed by fail-open, its signature could not be checked (rule '{pattern}'): {reason}"
                    ));
                }
            }
            Some(Check::Passed) | None => {}
        }
        let d = snap.judge(cluster, &r.namespace, image);
        if d.compliant {
            continue;
        }
        if d.unscanned && cluster.unscanned_action == UnscannedAction::AllowAndQueue {
            // Only this setting queues: a cluster that denies unscanned images has not asked
            // Bulwark to pull whatever its callers name.
            unscanned.push(image.clone());
            warnings.push(format!(
                "{image} ({container}) is not scanned yet; queued for a scan"
            ));
            continue;
        }
        problems.push(format!("{image} ({container}): {}", d.reasons.join("; ")));
    }
    let (allowed, message) = if problems.is_empty() {
        (true, None)
    } else if !cluster.enforcement {
        for p in &problems {
            warnings.push(format!("Bulwark would deny: {p}"));
        }
        (true, None)
    } else {
        let who = if r.name.is_empty() {
            r.kind.clone()
        } else {
            format!("{} {}/{}", r.kind, r.namespace, r.name)
        };
        (
            false,
            Some(bounded_message(&format!("Bulwark denied {who}"), &problems)),
        )
    };
    let mut recorded = message.clone().unwrap_or_else(|| {
        if warnings.is_empty() {
            String::new()
        } else {
            "allowed with warnings".into()
        }
    });
    if !gk.dryrun.is_empty() {
        // Dry-run constraints only leave a trace in the decision log.
        let note = bounded_message("Gatekeeper dryrun", &gk.dryrun);
        recorded = if recorded.is_empty() {
            note
        } else {
            cut(&format!("{recorded} | {note}"), MAX_MESSAGE)
        };
    }
    adm.record(cluster, r, allowed, &recorded, unscanned);
    review::respond(
        &r.api_version,
        &r.uid,
        allowed,
        message.as_deref(),
        &warnings,
    )
}

/// Registers the webhook routes and the decisions API.
pub fn routes(r: &mut Routes) {
    // The Kubernetes API server calls webhooks without credentials (as m9sweeper's did).
    r.api(
        Method::POST,
        "/api/v1/admission/{cluster}",
        Perm::Public,
        webhook,
    );
    r.api(
        Method::POST,
        "/api/clusters/{cluster}/validation",
        Perm::Public,
        webhook,
    );
    // The same, for clusters whose webhook URL carries a secret token (`webhook_auth`).
    r.api(
        Method::POST,
        "/api/v1/admission/{cluster}/{token}",
        Perm::Public,
        webhook_with_token,
    );
    r.api(
        Method::POST,
        "/api/clusters/{cluster}/validation/{token}",
        Perm::Public,
        webhook_with_token,
    );
    r.api(
        Method::GET,
        "/api/v1/admission/decisions",
        Perm::Read,
        decisions::api_decisions,
    );
    r.page("/admission", Perm::Read, pages::admission_page);
    r.nav(23, "Admission", "/admission", Perm::Read);
}

/// The admission state the appliance holds (domains reach the snapshot and the signature
/// checks through it).
pub fn of(state: &AppState) -> Result<Arc<Admission>, ApiError> {
    state
        .domains
        .get::<Admission>()
        .ok_or_else(|| ApiError::internal("admission not configured"))
}

async fn webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    cluster: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    answer(state, req, cluster.into_inner(), None, payload).await
}

async fn webhook_with_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (cluster, token) = path.into_inner();
    answer(state, req, cluster, Some(token), payload).await
}

fn refused_caller() -> ApiError {
    ApiError::forbidden(
        "this cluster's webhook needs its secret token in the URL (see `bulwark webhook-config`)",
    )
}

async fn answer(
    state: web::Data<AppState>,
    req: HttpRequest,
    cluster: String,
    token: Option<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let start = Instant::now();
    let adm = of(&state)?;
    // The caller is checked before the body is read, when the snapshot is at hand; the same
    // snapshot then decides.
    let fresh = adm.index.fresh();
    if let Some(snap) = &fresh {
        if let Some(c) = snap.cluster(&cluster) {
            if !snap.caller_allowed(&c, token.as_deref()) {
                return Err(refused_caller());
            }
        }
    }
    let body = crate::http::read_body(&req, payload, MAX_REVIEW_BYTES).await?;
    let r = review::parse(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if !adm.gatekeeper.is_fresh() {
        let a = adm.clone();
        let warmed = tokio::task::spawn_blocking(move || a.gatekeeper.warm()).await;
        if let Ok(Err(e)) = warmed {
            tracing::error!(error = %e, "gatekeeper constraints unavailable");
        }
    }
    let snap = match fresh {
        Some(s) => Ok(s),
        None => {
            let a = adm.clone();
            tokio::task::spawn_blocking(move || a.index.refresh())
                .await
                .map_err(ApiError::internal)?
        }
    };
    let answer = match snap {
        Ok(snap) => {
            let Some(c) = snap.cluster(&cluster) else {
                return Err(ApiError::not_found(format!(
                    "no cluster '{}'",
                    cluster.chars().take(100).collect::<String>()
                )));
            };
            if !snap.caller_allowed(&c, token.as_deref()) {
                return Err(refused_caller());
            }
            let signatures = signature_checks(&state, &adm, &c, &r).await?;
            decide(&adm, &snap, &c, &r, &signatures)
        }
        Err(e) => {
            // Bulwark itself failed: the cluster's failure mode decides (from the last snapshot).
            tracing::error!(error = %e, "admission snapshot unavailable");
            let last = adm.index.last();
            let c = last.as_ref().and_then(|s| s.cluster(&cluster));
            if let (Some(s), Some(c)) = (&last, &c) {
                if !s.caller_allowed(c, token.as_deref()) {
                    return Err(refused_caller());
                }
            }
            let open = c
                .as_ref()
                .is_none_or(|c| c.failure_mode == FailureMode::FailOpen);
            let msg = "Bulwark could not decide (internal error)";
            if open {
                review::respond(
                    &r.api_version,
                    &r.uid,
                    true,
                    None,
                    &[format!("{msg}; allowed by fail-open")],
                )
            } else {
                review::respond(
                    &r.api_version,
                    &r.uid,
                    false,
                    Some(&format!("{msg}; denied by fail-closed")),
                    &[],
                )
            }
        }
    };
    adm.latency.observe(start.elapsed().as_secs_f64());
    Ok(HttpResponse::Ok().json(answer))
}

/// The signature checks of a review's images under its cluster's rules (none when the
/// cluster has none or the review's images are not judged).
async fn signature_checks(
    state: &AppState,
    adm: &Arc<Admission>,
    cluster: &Cluster,
    r: &review::Review,
) -> Result<HashMap<String, Check>, ApiError> {
    if !judges_images(r) {
        return Ok(HashMap::new());
    }
    if !adm.trust.is_fresh() {
        let a = adm.clone();
        let warmed = tokio::task::spawn_blocking(move || a.trust.warm()).await;
        if let Ok(Err(e)) = warmed {
            tracing::error!(error = %e, "signature rules unavailable");
        }
    }
    if !adm.trust.applies(cluster.id) {
        return Ok(HashMap::new());
    }
    let sealer = state.sealer()?;
    let images: Vec<String> = r
        .images
        .iter()
        .map(|(_, i)| i.clone())
        .filter(|i| i.chars().count() <= review::MAX_IMAGE_LEN)
        .collect();
    Ok(adm.trust.check(&sealer, cluster.id, &images).await)
}

/// Starts the background work: the first snapshot, and flushing decisions every 2 seconds.
pub fn start(state: &AppState) {
    let Some(adm) = state.domains.get::<Admission>() else {
        return;
    };
    let store = state.store.clone();
    let a = adm.clone();
    state
        .supervisor
        .spawn_oneshot("admission-index", move |_| async move {
            tokio::task::spawn_blocking(move || a.index.refresh().map(|s| s.images()))
                .await
                .map_err(|e| e.to_string())?
                .map(|n| tracing::info!(images = n, "admission index built"))
                .map_err(|e| e.to_string())
        });
    state
        .supervisor
        .spawn("admission-recorder", move |stop| async move {
            loop {
                let done = tokio::select! {
                    _ = stop.cancelled() => true,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => false,
                };
                let (a, s) = (adm.clone(), store.clone());
                match tokio::task::spawn_blocking(move || a.flush(&s)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "admission decisions not written; retrying")
                    }
                    Err(e) => tracing::warn!(error = %e, "admission recorder"),
                }
                if done {
                    return Ok(());
                }
            }
        });
}
