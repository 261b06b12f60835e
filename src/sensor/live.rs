//! Live capture: one thread per (interface, worker), each with its own ring and pipeline.
//! Every `every`, each worker hands over what it aggregated (its map is then empty again), so a
//! caller can ship or store batches while capture goes on; at stop the workers drain their
//! rings, close their connections and hand over the rest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::capture::{expand_interfaces, Ring};
use super::map::DataMap;
use super::{packet, Pipeline, Stats};
use crate::detect::Engine;

/// Totals of a capture run.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Totals {
    #[serde(flatten)]
    pub stats: Stats,
    pub kernel_packets: u64,
    pub kernel_drops: u64,
}

/// What to capture and how.
pub struct Capture {
    /// Interface names or patterns (`veth*`, `all-veths`).
    pub interfaces: Vec<String>,
    /// Fanout workers per interface.
    pub workers: usize,
    /// How often each worker hands over its map.
    pub every: Duration,
    /// Set to stop: workers drain their rings and hand over the rest.
    pub stop: Arc<AtomicBool>,
    /// Where the running counts go (exported as metrics by whoever registered them).
    pub counters: LiveCounters,
    /// Exchanges left out (probes).
    pub skip: super::Skip,
    /// Most bytes of each decoded body scanned.
    pub body_cap: usize,
    /// How often patterns (`veth*`, `all-veths`) are matched again, so interfaces of pods
    /// started later are captured too.
    pub rescan: Duration,
}

/// How often interface patterns are matched again unless the caller says otherwise.
pub const RESCAN: Duration = Duration::from_secs(5);

/// Whether a name is a pattern (`all-veths`, `veth*`) rather than one interface.
fn is_pattern(name: &str) -> bool {
    name == "all-veths" || name.ends_with('*')
}

/// Counts of a running capture, shared by the workers (which add to them about once a second)
/// and the metrics registry that exports them: kernel packets and drops per the ring, and the
/// pipeline's counters (`bulwark_sensor_capture_total{counter="exchanges"}`, …).
#[derive(Clone, Default)]
pub struct LiveCounters {
    kernel_packets: Counter,
    kernel_drops: Counter,
    pipeline: Family<CounterLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct CounterLabel {
    counter: String,
}

impl LiveCounters {
    /// Registers the counters in `metrics`.
    pub fn register(&self, metrics: &crate::http::metrics::Metrics) {
        metrics.register(
            "sensor_kernel_packets",
            "Packets the kernel delivered to the capture rings",
            self.kernel_packets.clone(),
        );
        metrics.register(
            "sensor_kernel_drops",
            "Packets the kernel dropped because a capture ring was full",
            self.kernel_drops.clone(),
        );
        metrics.register(
            "sensor_capture",
            "Capture pipeline counters (frames, connections, exchanges, findings, gaps, ...)",
            self.pipeline.clone(),
        );
    }

    /// Adds what a worker counted since its last call (`seen` remembers what it had added).
    fn publish(&self, stats: &Stats, ring: super::capture::RingStats, seen: &mut Published) {
        self.kernel_packets
            .inc_by(ring.packets.saturating_sub(seen.ring.packets));
        self.kernel_drops
            .inc_by(ring.drops.saturating_sub(seen.ring.drops));
        seen.ring = ring;
        // Every field of `Stats`, by name, without listing them twice.
        if let Ok(serde_json::Value::Object(now)) = serde_json::to_value(stats) {
            for (name, v) in now {
                let v = v.as_u64().unwrap_or(0);
                let before = seen.stats.insert(name.clone(), v).unwrap_or(0);
                self.pipeline
                    .get_or_create(&CounterLabel { counter: name })
                    .inc_by(v.saturating_sub(before));
            }
        }
    }

    /// Kernel packets so far (all workers).
    pub fn kernel_packets(&self) -> u64 {
        self.kernel_packets.get()
    }
}

/// What one worker has published so far.
#[derive(Default)]
struct Published {
    ring: super::capture::RingStats,
    stats: std::collections::BTreeMap<String, u64>,
}

/// Captures as `opts` says until its `stop`, calling `on_ready` with the interfaces once their
/// rings are open (at the start, and again with each interface a pattern matches later), and
/// `on_batch` with each handed-over map (both on the calling thread). Returns the totals.
///
/// Named interfaces must exist at the start. Patterns may match nothing yet (a node without
/// pods); they are matched again every `rescan`. A worker whose interface disappears (its pod
/// was deleted) ends with what it saw, and the interface is captured again if it comes back.
pub fn capture(
    opts: &Capture,
    engine: &Engine,
    on_ready: &mut dyn FnMut(&[String]),
    on_batch: &mut dyn FnMut(DataMap),
) -> Result<Totals, String> {
    let Capture {
        interfaces,
        workers,
        stop,
        rescan,
        ..
    } = opts;
    let names = expand_interfaces(interfaces);
    if names.is_empty() && !interfaces.iter().any(|n| is_pattern(n)) {
        return Err(format!("no interface matches {}", interfaces.join(", ")));
    }
    let workers = (*workers).clamp(1, 64);
    let (tx, rx) = std::sync::mpsc::channel::<DataMap>();
    // Every worker ever started, with its interface; finished ones are joined at the end.
    let mut running: Vec<(String, Worker)> = Vec::new();
    let mut groups = 0u16;
    // Opens rings on those of `names` not captured yet; returns the interfaces now captured
    // and, for each that could not be opened, why (one failing interface stops no other).
    let mut open = |names: &[String], running: &mut Vec<(String, Worker)>| {
        let (mut opened, mut failed) = (Vec::new(), Vec::new());
        for name in names {
            if running.iter().any(|(n, w)| n == name && !w.is_finished()) {
                continue;
            }
            // One fanout group per interface; the id only has to be unique on this host.
            let group = (std::process::id() as u16)
                .wrapping_mul(31)
                .wrapping_add(groups);
            groups = groups.wrapping_add(1);
            let rings: Result<Vec<Ring>, _> = (0..workers)
                .map(|_| Ring::open(name, (workers > 1).then_some(group)))
                .collect();
            match rings {
                Ok(rings) => {
                    for ring in rings {
                        running.push((name.clone(), spawn_worker(ring, opts, engine, tx.clone())));
                    }
                    opened.push(name.clone());
                }
                Err(e) => failed.push(format!("capture on {name}: {e}")),
            }
        }
        (opened, failed)
    };
    let (first, failed) = open(&names, &mut running);
    if !failed.is_empty() {
        // Named at the start, they must work: say so instead of capturing less than asked.
        stop.store(true, Ordering::SeqCst);
        drop(tx);
        for (_, w) in running {
            let _ = w.join();
        }
        return Err(failed.join("; "));
    }
    on_ready(&first);
    let mut totals = Totals::default();
    let mut last_scan = std::time::Instant::now();
    let tick = (*rescan)
        .min(Duration::from_millis(500))
        .max(Duration::from_millis(10));
    while !stop.load(Ordering::SeqCst) {
        if let Ok(m) = rx.recv_timeout(tick) {
            if !m.is_empty() {
                on_batch(m);
            }
        }
        if last_scan.elapsed() >= *rescan && !stop.load(Ordering::SeqCst) {
            last_scan = std::time::Instant::now();
            // Workers of interfaces that went away: their counts join the totals now, so a
            // node with years of pod churn does not keep a handle per pod it ever saw.
            let mut i = 0;
            while i < running.len() {
                if running[i].1.is_finished() {
                    let (_, w) = running.swap_remove(i);
                    add(&mut totals, w)?;
                } else {
                    i += 1;
                }
            }
            let (new, failed) = open(&expand_interfaces(interfaces), &mut running);
            if !new.is_empty() {
                on_ready(&new);
            }
            // An interface that vanished between the listing and the open is no error: the
            // next scan sees it gone.
            for e in failed {
                tracing::debug!(error = %e, "an interface could not be opened");
            }
        }
    }
    drop(tx);
    // Batches arrive until every worker has finished and dropped its sender.
    while let Ok(m) = rx.recv() {
        if !m.is_empty() {
            on_batch(m);
        }
    }
    for (_, w) in running {
        add(&mut totals, w)?;
    }
    Ok(totals)
}

/// Adds a finished worker's counts to `totals`.
fn add(totals: &mut Totals, worker: Worker) -> Result<(), String> {
    let (s, r) = worker
        .join()
        .map_err(|_| "a capture worker panicked".to_string())?;
    totals.stats.add(&s);
    totals.kernel_packets += r.packets;
    totals.kernel_drops += r.drops;
    Ok(())
}

type Worker = std::thread::JoinHandle<(Stats, super::capture::RingStats)>;

/// One capture worker: reads `ring` into its own pipeline until the stop (or until its
/// interface goes away), handing its map over every `opts.every` and at the end.
fn spawn_worker(
    mut ring: Ring,
    opts: &Capture,
    engine: &Engine,
    tx: std::sync::mpsc::Sender<DataMap>,
) -> Worker {
    let (stop, engine, counters, skip) = (
        opts.stop.clone(),
        engine.clone(),
        opts.counters.clone(),
        opts.skip.clone(),
    );
    let (every, body_cap) = (opts.every, opts.body_cap);
    std::thread::spawn(move || {
        let mut pipeline = Pipeline::skipping(engine, skip).with_body_cap(body_cap);
        let mut last = std::time::Instant::now();
        let (mut published, mut last_published) = (Published::default(), std::time::Instant::now());
        let frame = |p: &mut Pipeline, ts: f64, f: &[u8]| p.frame(packet::LINK_ETHERNET, ts, f);
        let mut gone = false;
        while !stop.load(Ordering::SeqCst) {
            if let Err(e) = ring.poll(100, &mut |ts, f| frame(&mut pipeline, ts, f)) {
                tracing::info!(interface = %ring.interface, error = %e, "capture on this interface ended");
                gone = true;
                break;
            }
            if last.elapsed() >= every {
                last = std::time::Instant::now();
                let _ = tx.send(std::mem::take(&mut pipeline.map));
            }
            if last_published.elapsed() >= Duration::from_secs(1) {
                last_published = std::time::Instant::now();
                counters.publish(&pipeline.stats, ring.stats(), &mut published);
            }
        }
        // What arrived before the stop may sit in a block the kernel has not handed over
        // yet; it does so within its retire timeout, so wait a little for it.
        if !gone {
            for _ in 0..3 {
                let _ = ring.poll(50, &mut |ts, f| frame(&mut pipeline, ts, f));
            }
        }
        pipeline.finish();
        let _ = tx.send(std::mem::take(&mut pipeline.map));
        let ring_stats = ring.stats();
        counters.publish(&pipeline.stats, ring_stats, &mut published);
        (pipeline.stats, ring_stats)
    })
}
