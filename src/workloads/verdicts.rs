//! Pod compliance: a pod may run when every image of its containers is compliant in its
//! namespace, judged exactly as admission would judge it now (admission's in-memory snapshot,
//! memoized per cluster, namespace and image, so ten thousand pods running a few hundred images
//! cost a few hundred evaluations). Finished pods (`Succeeded`, `Failed`) run nothing and are
//! counted apart.
//!
//! The `pod-compliance` job (hourly) keeps one record per cluster and day of the counts per
//! namespace, for the trend charts.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Namespace, Pod};
use crate::admission::index::Snapshot;
use crate::admission::Admission;
use crate::clusters::Cluster;
use crate::store::{Scan, Store, StoreError, Table, WriteTx};

/// `{cluster}/{YYYY-MM-DD}` → that day's last record.
pub(super) const DAYS: Table<String, Day> = Table::new("workload_days");

/// The pod-compliance gauges (one per appliance, in `DomainData`).
#[derive(Clone, Default)]
pub struct PodMetrics {
    pods: prometheus_client::metrics::family::Family<
        PodLabels,
        prometheus_client::metrics::gauge::Gauge,
    >,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct PodLabels {
    cluster: String,
    compliance: String,
}

impl PodMetrics {
    /// Registers the gauge.
    pub fn new(metrics: &crate::http::metrics::Metrics) -> PodMetrics {
        let m = PodMetrics::default();
        metrics.register(
            "pods",
            "Pods in the workload inventory by compliance (compliant, non-compliant, finished), as last judged",
            m.pods.clone(),
        );
        m
    }

    /// Sets cluster `name`'s figures.
    pub fn set(&self, name: &str, f: &Figures) {
        for (what, n) in [
            ("compliant", f.compliant),
            ("non-compliant", f.non_compliant),
            ("finished", f.finished),
        ] {
            self.pods
                .get_or_create(&PodLabels {
                    cluster: name.to_string(),
                    compliance: what.into(),
                })
                .set(i64::from(n));
        }
    }
}

/// Days of history kept.
const KEEP_DAYS: i64 = 400;

/// How one image of a pod was judged.
#[derive(Debug, Clone, Serialize)]
pub struct ImageVerdict {
    pub container: String,
    pub image: String,
    pub judged_as: String,
    pub compliant: bool,
    /// Bulwark has not scanned it.
    pub unscanned: bool,
    pub reasons: Vec<String>,
}

/// How a pod was judged.
#[derive(Debug, Clone, Serialize)]
pub struct PodVerdict {
    pub pod: String,
    /// `None` for a finished pod.
    pub compliant: Option<bool>,
    /// Why not, image by image (empty when compliant).
    pub reasons: Vec<String>,
    pub images: Vec<ImageVerdict>,
}

/// Pod counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub compliant: u32,
    pub non_compliant: u32,
    pub finished: u32,
}

impl Figures {
    fn add(&mut self, v: &PodVerdict) {
        match v.compliant {
            Some(true) => self.compliant += 1,
            Some(false) => self.non_compliant += 1,
            None => self.finished += 1,
        }
    }

    fn merge(&mut self, o: &Figures) {
        self.compliant += o.compliant;
        self.non_compliant += o.non_compliant;
        self.finished += o.finished;
    }

    /// Compliant share of the running pods, in whole percent (`None` when none runs).
    pub fn percent(&self) -> Option<u32> {
        let running = self.compliant + self.non_compliant;
        (running > 0).then(|| (self.compliant * 100 + running / 2) / running)
    }
}

/// A cluster's pod compliance at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Day {
    pub at: DateTime<Utc>,
    pub cluster: u64,
    pub totals: Figures,
    pub namespaces: BTreeMap<String, Figures>,
}

fn finished(p: &Pod) -> bool {
    matches!(p.phase.as_str(), "Succeeded" | "Failed")
}

/// Judges one pod of `namespace`.
pub fn judge_pod(snap: &Snapshot, cluster: &Cluster, namespace: &str, pod: &Pod) -> PodVerdict {
    if finished(pod) {
        return PodVerdict {
            pod: pod.name.clone(),
            compliant: None,
            reasons: vec![format!("{}: runs nothing", pod.phase)],
            images: Vec::new(),
        };
    }
    let mut images = Vec::with_capacity(pod.containers.len());
    let mut reasons = Vec::new();
    for c in &pod.containers {
        let d = snap.judge(cluster, namespace, &c.judged_as);
        if !d.compliant {
            let why = d.reasons.first().map_or("non-compliant", String::as_str);
            reasons.push(format!("{} ({}): {why}", c.name, c.image));
        }
        images.push(ImageVerdict {
            container: c.name.clone(),
            image: c.image.clone(),
            judged_as: c.judged_as.clone(),
            compliant: d.compliant,
            unscanned: d.unscanned,
            reasons: d.reasons.clone(),
        });
    }
    PodVerdict {
        pod: pod.name.clone(),
        compliant: Some(reasons.is_empty()),
        reasons,
        images,
    }
}

/// Judges every pod of a namespace, with the namespace's counts.
pub fn judge_namespace(
    snap: &Snapshot,
    cluster: &Cluster,
    ns: &Namespace,
) -> (Figures, Vec<PodVerdict>) {
    let mut f = Figures::default();
    let verdicts: Vec<PodVerdict> = ns
        .pods
        .iter()
        .map(|p| judge_pod(snap, cluster, &ns.name, p))
        .collect();
    for v in &verdicts {
        f.add(v);
    }
    (f, verdicts)
}

/// Cluster `cluster`'s pod compliance now, per namespace (`None`: no such cluster).
pub fn compute(
    store: &Store,
    admission: &Admission,
    cluster: u64,
) -> Result<Option<Day>, StoreError> {
    let snap = admission.index.refresh()?;
    let Some(c) = snap.cluster(&cluster.to_string()) else {
        return Ok(None);
    };
    Ok(Some(compute_with(
        &snap,
        &c,
        &super::namespaces(store, cluster)?,
    )))
}

/// The same, from namespaces already read.
pub fn compute_with(snap: &Snapshot, cluster: &Cluster, namespaces: &[Namespace]) -> Day {
    let mut totals = Figures::default();
    let mut per = BTreeMap::new();
    for ns in namespaces {
        let (f, _) = judge_namespace(snap, cluster, ns);
        totals.merge(&f);
        per.insert(ns.name.clone(), f);
    }
    Day {
        at: Utc::now(),
        cluster: cluster.id,
        totals,
        namespaces: per,
    }
}

fn day_key(cluster: u64, day: NaiveDate) -> String {
    format!("{cluster:020}/{day}")
}

/// Stores `day` as its cluster's record of that day.
pub fn save(store: &Store, day: &Day) -> Result<(), StoreError> {
    store.write(|w| w.put(&DAYS, &day_key(day.cluster, day.at.date_naive()), day))
}

/// The records of cluster `cluster` for the last `days` days, oldest first.
pub fn history(store: &Store, cluster: u64, days: i64) -> Result<Vec<Day>, StoreError> {
    let from = day_key(
        cluster,
        Utc::now().date_naive() - chrono::Duration::days(days - 1),
    );
    let to = format!("{cluster:020}0");
    store.read(|r| {
        let mut out = Vec::new();
        r.scan(
            &DAYS,
            Scan {
                from: Some(from.as_bytes()),
                to: Some(to.as_bytes()),
                reverse: false,
            },
            |_, d| {
                out.push(d);
                Ok(true)
            },
        )?;
        Ok(out)
    })
}

/// Drops a deleted cluster's history.
pub(super) fn forget(w: &WriteTx, cluster: u64) -> Result<(), StoreError> {
    let prefix = format!("{cluster:020}/");
    w.retain(&DAYS, |k: &String, _| !k.starts_with(&prefix))?;
    Ok(())
}

/// The `pod-compliance` job: records today's figures of every cluster with an inventory and
/// drops records past a year.
pub fn run_job(
    store: &Store,
    admission: &Admission,
    metrics: &PodMetrics,
) -> Result<String, String> {
    let summaries = super::summaries(store).map_err(|e| e.to_string())?;
    let mut done = Vec::new();
    for s in &summaries {
        if let Some(day) = compute(store, admission, s.cluster).map_err(|e| e.to_string())? {
            save(store, &day).map_err(|e| e.to_string())?;
            if let Ok(c) = crate::clusters::get(store, s.cluster) {
                metrics.set(&c.name, &day.totals);
            }
            done.push(format!(
                "cluster {}: {} of {} running pods compliant",
                s.cluster,
                day.totals.compliant,
                day.totals.compliant + day.totals.non_compliant
            ));
        }
    }
    let oldest = (Utc::now().date_naive() - chrono::Duration::days(KEEP_DAYS)).to_string();
    store
        .write(|w| {
            w.retain(&DAYS, |k: &String, _| {
                k.split_once('/').is_none_or(|(_, d)| d >= oldest.as_str())
            })
        })
        .map_err(|e| e.to_string())?;
    if done.is_empty() {
        return Ok("no cluster has a workload inventory".into());
    }
    Ok(done.join("; "))
}
