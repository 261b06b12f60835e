//! Live capture: one thread per (interface, worker), each with its own ring and pipeline.
//! Every `every`, each worker hands over what it aggregated (its map is then empty again), so a
//! caller can ship or store batches while capture goes on; at stop the workers drain their
//! rings, close their connections and hand over the rest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

/// Captures on `interfaces` until `stop`, calling `on_ready` with the interfaces once every
/// ring is open (capture has begun), and `on_batch` with each handed-over map (both on the
/// calling thread). Returns the totals.
pub fn capture(
    interfaces: &[String],
    workers: usize,
    engine: &Engine,
    every: Duration,
    stop: Arc<AtomicBool>,
    on_ready: &mut dyn FnMut(&[String]),
    on_batch: &mut dyn FnMut(DataMap),
) -> Result<Totals, String> {
    let names = expand_interfaces(interfaces);
    if names.is_empty() {
        return Err(format!("no interface matches {}", interfaces.join(", ")));
    }
    let workers = workers.clamp(1, 64);
    let mut rings = Vec::new();
    for (i, name) in names.iter().enumerate() {
        // One fanout group per interface; the id only has to be unique on this host.
        let group = (std::process::id() as u16)
            .wrapping_mul(31)
            .wrapping_add(i as u16);
        for _ in 0..workers {
            let fanout = (workers > 1).then_some(group);
            rings.push(Ring::open(name, fanout).map_err(|e| format!("capture on {name}: {e}"))?);
        }
    }
    on_ready(&names);
    let (tx, rx) = std::sync::mpsc::channel::<DataMap>();
    let handles: Vec<_> = rings
        .into_iter()
        .map(|mut ring| {
            let stop = stop.clone();
            let tx = tx.clone();
            let engine = engine.clone();
            std::thread::spawn(move || {
                let mut pipeline = Pipeline::new(engine);
                let mut last = std::time::Instant::now();
                let frame =
                    |p: &mut Pipeline, ts: f64, f: &[u8]| p.frame(packet::LINK_ETHERNET, ts, f);
                while !stop.load(Ordering::SeqCst) {
                    if let Err(e) = ring.poll(100, &mut |ts, f| frame(&mut pipeline, ts, f)) {
                        tracing::warn!(interface = %ring.interface, error = %e, "capture stopped");
                        break;
                    }
                    if last.elapsed() >= every {
                        last = std::time::Instant::now();
                        let _ = tx.send(std::mem::take(&mut pipeline.map));
                    }
                }
                // What arrived before the stop may sit in a block the kernel has not handed over
                // yet; it does so within its retire timeout, so wait a little for it.
                for _ in 0..3 {
                    let _ = ring.poll(50, &mut |ts, f| frame(&mut pipeline, ts, f));
                }
                pipeline.finish();
                let _ = tx.send(std::mem::take(&mut pipeline.map));
                (pipeline.stats, ring.stats())
            })
        })
        .collect();
    drop(tx);
    // Batches arrive until every worker has finished and dropped its sender.
    while let Ok(m) = rx.recv() {
        if !m.is_empty() {
            on_batch(m);
        }
    }
    let mut totals = Totals::default();
    for h in handles {
        let (s, r) = h
            .join()
            .map_err(|_| "a capture worker panicked".to_string())?;
        totals.stats.add(&s);
        totals.kernel_packets += r.packets;
        totals.kernel_drops += r.drops;
    }
    Ok(totals)
}
