//! `bulwark gatekeeper verify [--format json] DIR...`: gator verify's semantics, evaluated
//! natively. One line per case and a summary (or a JSON document); exit 0 only when every
//! case passes, 1 when a case fails or errors, 2 when the paths cannot be read.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use crate::gatekeeper::verify::{Outcome, Runner};

/// `bulwark gatekeeper ...`
#[derive(Debug, Subcommand)]
pub enum GatekeeperCommand {
    /// Run gator suites (every suite.yaml under the paths) against their templates.
    Verify(VerifyArgs),
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per case and a summary.
    Text,
    /// `{"results": [...], "summary": {...}}`.
    Json,
}

/// Flags of `bulwark gatekeeper verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "text")]
    pub format: Format,
    /// Time one evaluation may take, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub time_limit_ms: u64,
    /// Directories searched for suite.yaml files, or suite files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Runs a `bulwark gatekeeper` command; returns the exit code.
pub fn run(c: &GatekeeperCommand) -> anyhow::Result<i32> {
    let GatekeeperCommand::Verify(a) = c;
    let started = Instant::now();
    let mut runner = Runner::new(Duration::from_millis(a.time_limit_ms.max(1)));
    let report = match runner.run(&a.paths) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bulwark gatekeeper verify: {e}");
            return Ok(2);
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let (pass, fail, error) = (
        report.count(Outcome::Pass),
        report.count(Outcome::Fail),
        report.count(Outcome::Error),
    );
    let mut out = String::new();
    match a.format {
        Format::Json => {
            let doc = json!({
                "results": report.results,
                "summary": {"cases": report.results.len(), "passed": pass, "failed": fail,
                    "errors": error, "seconds": (seconds * 1000.0).round() / 1000.0},
            });
            out = serde_json::to_string_pretty(&doc)? + "\n";
        }
        Format::Text => {
            for r in &report.results {
                let tag = match r.outcome {
                    Outcome::Pass => "PASS ",
                    Outcome::Fail => "FAIL ",
                    Outcome::Error => "ERROR",
                };
                out.push_str(&format!("{tag} {} {}/{}", r.suite, r.test, r.case));
                if !r.reason.is_empty() {
                    out.push_str(&format!(": {}", r.reason));
                }
                out.push('\n');
            }
            out.push_str(&format!(
                "{} cases: {pass} passed, {fail} failed, {error} errors ({seconds:.2} s)\n",
                report.results.len()
            ));
        }
    }
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(if report.passed() && !report.results.is_empty() {
        0
    } else {
        1
    })
}
