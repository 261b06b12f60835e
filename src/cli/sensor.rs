//! `bulwark sensor`: follow HTTP traffic and report which endpoints carry which sensitive data.
//! This build reads capture files (`--pcap`, pcap or pcapng); live capture on interfaces is the
//! next step of issue 5.

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
    /// Capture live on these interfaces (not in this build).
    #[arg(long)]
    pub interface: Vec<String>,
    /// Write aggregated events as JSON lines here (default: standard output).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Runs the sensor.
pub fn run(a: &SensorArgs) -> anyhow::Result<i32> {
    let Some(pcap) = &a.pcap else {
        if a.interface.is_empty() {
            anyhow::bail!("give --pcap FILE (live capture with --interface is not in this build)");
        }
        anyhow::bail!(
            "live capture (--interface {}) is not in this build yet; capture with tcpdump and use --pcap",
            a.interface.join(",")
        );
    };
    let mut pipeline = Pipeline::new(Engine::default());
    read_pcap(pcap, &mut pipeline)?;
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    for e in pipeline.map.entries() {
        serde_json::to_writer(&mut out, e)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    eprintln!("{}", serde_json::to_string(&pipeline.stats)?);
    Ok(0)
}
