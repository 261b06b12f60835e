//! `bulwark sensor`: follow HTTP traffic and report which endpoints carry which sensitive data,
//! live on interfaces (an AF_PACKET ring per worker, flows spread by fanout) or from a capture
//! file. Live capture runs until SIGINT or SIGTERM, then flushes what it holds and exits 0.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::detect::Engine;
use crate::dim::{read_pcap, Pipeline};

/// Flags of `bulwark sensor`.
#[derive(Debug, Args)]
pub struct SensorArgs {
    /// Read this capture file (pcap or pcapng) and exit at its end.
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// Capture live on these interfaces (`veth*` prefixes and `all-veths` expand to pod
    /// interfaces). Needs CAP_NET_RAW.
    #[arg(long)]
    pub interface: Vec<String>,
    /// Capture workers per interface (flows are spread over them by hash).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Write aggregated events as JSON lines here (default: standard output).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Runs the sensor.
pub fn run(a: &SensorArgs) -> anyhow::Result<i32> {
    let (map, stats) = match (&a.pcap, a.interface.is_empty()) {
        (Some(pcap), true) => {
            let mut pipeline = Pipeline::new(Engine::default());
            read_pcap(pcap, &mut pipeline)?;
            let stats = serde_json::to_value(&pipeline.stats)?;
            (pipeline.map, stats)
        }
        (None, false) => live(a)?,
        (Some(_), false) => anyhow::bail!("give --pcap or --interface, not both"),
        (None, true) => anyhow::bail!("give --interface IF... (live) or --pcap FILE"),
    };
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    for e in map.entries() {
        serde_json::to_writer(&mut out, e)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    eprintln!("{stats}");
    Ok(0)
}

/// Live capture until SIGINT/SIGTERM: one thread per (interface, worker), each with its own
/// ring and pipeline; their maps are merged at the end.
fn live(a: &SensorArgs) -> anyhow::Result<(crate::dim::map::DataMap, serde_json::Value)> {
    use crate::dim::capture::{expand_interfaces, Ring};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let interfaces = expand_interfaces(&a.interface);
    if interfaces.is_empty() {
        anyhow::bail!("no interface matches {}", a.interface.join(", "));
    }
    let workers = a.workers.clamp(1, 64);
    let mut rings = Vec::new();
    for (i, name) in interfaces.iter().enumerate() {
        // One fanout group per interface; the id only has to be unique on this host.
        let group = ((std::process::id() as u16).wrapping_mul(31)).wrapping_add(i as u16);
        for _ in 0..workers {
            let fanout = (workers > 1).then_some(group);
            rings.push(
                Ring::open(name, fanout).map_err(|e| anyhow::anyhow!("capture on {name}: {e}"))?,
            );
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
                    }
                });
            }
            stop.store(true, Ordering::SeqCst);
        });
    }
    eprintln!(
        "capturing on {} ({} worker{} each)",
        interfaces.join(", "),
        workers,
        if workers == 1 { "" } else { "s" }
    );
    let handles: Vec<_> = rings
        .into_iter()
        .map(|mut ring| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut pipeline = Pipeline::new(Engine::default());
                while !stop.load(Ordering::SeqCst) {
                    if let Err(e) = ring.poll(100, &mut |ts, frame| {
                        pipeline.frame(crate::dim::packet::LINK_ETHERNET, ts, frame)
                    }) {
                        eprintln!("capture on {}: {e}", ring.interface);
                        break;
                    }
                }
                // What arrived before the stop is still in the ring: take it.
                let _ = ring.poll(0, &mut |ts, frame| {
                    pipeline.frame(crate::dim::packet::LINK_ETHERNET, ts, frame)
                });
                pipeline.finish();
                (pipeline, ring.stats())
            })
        })
        .collect();
    let mut map = crate::dim::map::DataMap::default();
    let mut totals = crate::dim::Stats::default();
    let (mut packets, mut drops) = (0, 0);
    for h in handles {
        let (p, r) = h
            .join()
            .map_err(|_| anyhow::anyhow!("a capture worker panicked"))?;
        totals.add(&p.stats);
        packets += r.packets;
        drops += r.drops;
        map.merge(p.map);
    }
    let mut stats = serde_json::to_value(&totals)?;
    stats["kernel_packets"] = packets.into();
    stats["kernel_drops"] = drops.into();
    Ok((map, stats))
}
