//! `bulwark sensor`: follow HTTP traffic and report which endpoints carry which sensitive data,
//! live on interfaces (an AF_PACKET ring per worker, flows spread by fanout) or from a capture
//! file. Live capture runs until SIGINT or SIGTERM, then flushes what it holds and exits 0.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::detect::Engine;
use crate::dim::map::DataMap;
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
    /// Write aggregated events as JSON lines here (default: standard output, unless --server
    /// is given).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Send events to the appliance, e.g. `https://bulwark.internal:8443`.
    #[arg(long, requires = "token")]
    pub server: Option<String>,
    /// An API key with the `sensor` scope.
    #[arg(long, env = "BULWARK_SENSOR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the CA that signed the appliance's certificate.
    #[arg(long)]
    pub server_ca: Option<PathBuf>,
    /// Seconds between shipments of what was seen (live capture).
    #[arg(long, default_value_t = 30)]
    pub ship_every: u64,
}

/// Sends data-map entries to the appliance.
struct Shipper {
    client: reqwest::blocking::Client,
    url: String,
    token: String,
}

impl Shipper {
    fn new(a: &SensorArgs) -> anyhow::Result<Option<Shipper>> {
        let (Some(server), Some(token)) = (&a.server, &a.token) else {
            return Ok(None);
        };
        let mut b =
            reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(60));
        if let Some(ca) = &a.server_ca {
            let pem = std::fs::read(ca)
                .map_err(|e| anyhow::anyhow!("--server-ca {}: {e}", ca.display()))?;
            b = b.add_root_certificate(
                reqwest::Certificate::from_pem(&pem)
                    .map_err(|e| anyhow::anyhow!("--server-ca: {e}"))?,
            );
        }
        let url = reqwest::Url::parse(server)
            .map_err(|e| anyhow::anyhow!("--server {server}: {e}"))?
            .join("/api/v1/sensor/events")?
            .to_string();
        Ok(Some(Shipper {
            client: b.build()?,
            url,
            token: token.clone(),
        }))
    }

    /// Posts the entries as JSON lines; an error leaves them to the caller to retry.
    fn ship(&self, map: &DataMap) -> anyhow::Result<()> {
        if map.is_empty() {
            return Ok(());
        }
        let mut body = Vec::new();
        for e in map.entries() {
            serde_json::to_writer(&mut body, e)?;
            body.push(b'\n');
        }
        let res = self
            .client
            .post(&self.url)
            .header("x-api-key", &self.token)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .map_err(|e| anyhow::anyhow!("sending events to {}: {e}", self.url))?;
        if !res.status().is_success() {
            let status = res.status();
            anyhow::bail!(
                "the appliance refused the events ({status}): {}",
                res.text().unwrap_or_default()
            );
        }
        Ok(())
    }
}

/// Runs the sensor.
pub fn run(cli: &super::Cli, a: &SensorArgs) -> anyhow::Result<i32> {
    let engine = super::detect::engine(cli)?;
    let shipper = Shipper::new(a)?;
    let (map, stats) = match (&a.pcap, a.interface.is_empty()) {
        (Some(pcap), true) => {
            let mut pipeline = Pipeline::new(engine.clone());
            read_pcap(pcap, &mut pipeline)?;
            let stats = serde_json::to_value(&pipeline.stats)?;
            if let Some(s) = &shipper {
                s.ship(&pipeline.map)?;
            }
            (pipeline.map, stats)
        }
        (None, false) => live(a, shipper.as_ref(), &engine)?,
        (Some(_), false) => anyhow::bail!("give --pcap or --interface, not both"),
        (None, true) => anyhow::bail!("give --interface IF... (live) or --pcap FILE"),
    };
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        )),
        None if a.server.is_some() => Box::new(std::io::sink()),
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
fn live(
    a: &SensorArgs,
    shipper: Option<&Shipper>,
    engine: &Engine,
) -> anyhow::Result<(crate::dim::map::DataMap, serde_json::Value)> {
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
    let every = std::time::Duration::from_secs(a.ship_every.max(1));
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
                while !stop.load(Ordering::SeqCst) {
                    if let Err(e) = ring.poll(100, &mut |ts, frame| {
                        pipeline.frame(crate::dim::packet::LINK_ETHERNET, ts, frame)
                    }) {
                        eprintln!("capture on {}: {e}", ring.interface);
                        break;
                    }
                    // Hand over what was seen so far; the main thread ships it.
                    if last.elapsed() >= every {
                        last = std::time::Instant::now();
                        let _ = tx.send(std::mem::take(&mut pipeline.map));
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
    drop(tx);
    let mut map = crate::dim::map::DataMap::default();
    let mut unsent = DataMap::default();
    // Ship on schedule while the workers capture; a failed shipment is retried next time.
    let mut last_ship = std::time::Instant::now();
    while !stop.load(Ordering::SeqCst) || handles.iter().any(|h| !h.is_finished()) {
        match rx.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(m) => {
                map.merge(m.clone());
                unsent.merge(m);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if let Some(s) = shipper {
            if last_ship.elapsed() >= every && !unsent.is_empty() {
                last_ship = std::time::Instant::now();
                match s.ship(&unsent) {
                    Ok(()) => unsent = DataMap::default(),
                    Err(e) => eprintln!("{e}; will retry"),
                }
            }
        }
    }
    while let Ok(m) = rx.try_recv() {
        map.merge(m.clone());
        unsent.merge(m);
    }
    let mut totals = crate::dim::Stats::default();
    let (mut packets, mut drops) = (0, 0);
    for h in handles {
        let (p, r) = h
            .join()
            .map_err(|_| anyhow::anyhow!("a capture worker panicked"))?;
        totals.add(&p.stats);
        packets += r.packets;
        drops += r.drops;
        unsent.merge(p.map.clone());
        map.merge(p.map);
    }
    if let Some(s) = shipper {
        s.ship(&unsent)?;
    }
    let mut stats = serde_json::to_value(&totals)?;
    stats["kernel_packets"] = packets.into();
    stats["kernel_drops"] = drops.into();
    Ok((map, stats))
}
