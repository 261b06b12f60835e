//! `bulwark sensor`: follow HTTP traffic and report which endpoints carry which sensitive data,
//! live on interfaces (an AF_PACKET ring per worker, flows spread by fanout) or from a capture
//! file. Live capture runs until SIGINT or SIGTERM, then flushes what it holds and exits 0.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::detect::Engine;
use crate::sensor::map::DataMap;
use crate::sensor::{read_pcap, Pipeline};

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
    /// Serve Prometheus metrics (kernel packets and drops, pipeline counters) on
    /// `http://ADDR/metrics` during live capture, e.g. `0.0.0.0:9847`.
    #[arg(long)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Leave out requests to this path (repeatable; replaces the default probe paths
    /// /healthz, /readyz, /livez, /health, /metrics, /ping).
    #[arg(long)]
    pub skip_path: Vec<String>,
    /// Scan probes and health checks too (no path skipped, kubelet probes included).
    #[arg(long, conflicts_with = "skip_path")]
    pub keep_probes: bool,
    /// Most bytes of each (decoded) body scanned; the rest is skipped and counted.
    #[arg(long, default_value_t = crate::sensor::http::BODY_CAP, value_parser = clap::value_parser!(usize))]
    pub max_body_bytes: usize,
    /// Seconds between matches of interface patterns (`veth*`, `all-veths`), so the
    /// interfaces of pods started later are captured too.
    #[arg(long, default_value_t = crate::sensor::live::RESCAN.as_secs())]
    pub rescan_every: u64,
}

impl SensorArgs {
    /// What the pipeline leaves out, from the flags.
    fn skip(&self) -> crate::sensor::Skip {
        if self.keep_probes {
            crate::sensor::Skip::nothing()
        } else if self.skip_path.is_empty() {
            crate::sensor::Skip::default()
        } else {
            crate::sensor::Skip {
                paths: self.skip_path.clone(),
                kube_probes: true,
            }
        }
    }
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
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| anyhow::anyhow!("--server-ca: {e}"))?
            {
                b = b.add_root_certificate(cert);
            }
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
            let mut pipeline =
                Pipeline::skipping(engine.clone(), a.skip()).with_body_cap(a.max_body_bytes);
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

/// Serves the capture counters as Prometheus text on `addr` from a background thread: a plain
/// HTTP/1.1 listener is enough for a scraper, and keeps a web framework out of the sensor.
fn serve_metrics(
    addr: std::net::SocketAddr,
    counters: &crate::sensor::live::LiveCounters,
) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("metrics listener on {addr}: {e}"))?;
    let metrics = crate::http::metrics::Metrics::new();
    counters.register(&metrics);
    eprintln!("metrics on http://{addr}/metrics");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            // The request line is all that matters; read until the headers end (bounded).
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while req.len() < 8192 && !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let (status, body) = if req.starts_with(b"GET /metrics ") {
                ("200 OK", metrics.render())
            } else {
                ("404 Not Found", "not found: GET /metrics\n".to_string())
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(())
}

/// Live capture until SIGINT/SIGTERM, shipping batches on schedule when a server is given.
fn live(
    a: &SensorArgs,
    shipper: Option<&Shipper>,
    engine: &Engine,
) -> anyhow::Result<(DataMap, serde_json::Value)> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    let mut term =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                            .ok();
                    let sigterm = async {
                        match term.as_mut() {
                            Some(t) => {
                                t.recv().await;
                            }
                            None => std::future::pending::<()>().await,
                        }
                    };
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = sigterm => {}
                    }
                });
            }
            stop.store(true, Ordering::SeqCst);
        });
    }
    let every = std::time::Duration::from_secs(a.ship_every.max(1));
    let counters = crate::sensor::live::LiveCounters::default();
    if let Some(addr) = a.metrics_listen {
        serve_metrics(addr, &counters)?;
    }
    let mut total = DataMap::default();
    let mut unsent = DataMap::default();
    let mut last_ship = std::time::Instant::now();
    let opts = crate::sensor::live::Capture {
        interfaces: a.interface.clone(),
        workers: a.workers,
        every,
        stop,
        counters,
        skip: a.skip(),
        body_cap: a.max_body_bytes,
        rescan: std::time::Duration::from_secs(a.rescan_every.max(1)),
    };
    let totals = crate::sensor::live::capture(
        &opts,
        engine,
        &mut |names: &[String]| {
            if names.is_empty() {
                eprintln!(
                    "waiting for interfaces matching {} (checked every {} s)",
                    a.interface.join(", "),
                    a.rescan_every.max(1)
                );
            } else {
                eprintln!(
                    "capturing on {} ({} worker{} each)",
                    names.join(", "),
                    a.workers.max(1),
                    if a.workers > 1 { "s" } else { "" }
                )
            }
        },
        &mut |m| {
            total.merge(m.clone());
            unsent.merge(m);
            if let Some(s) = shipper {
                if last_ship.elapsed() >= every {
                    last_ship = std::time::Instant::now();
                    match s.ship(&unsent) {
                        Ok(()) => unsent = DataMap::default(),
                        Err(e) => eprintln!("{e}; will retry"),
                    }
                }
            }
        },
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    if let Some(s) = shipper {
        s.ship(&unsent)?;
    }
    Ok((total, serde_json::to_value(&totals)?))
}
