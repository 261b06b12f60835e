//! What the benchmarks that run the real appliance share.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The release binary under measurement.
pub const BIN: &str = env!("CARGO_BIN_EXE_bulwark");

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `bulwark serve` on `dir` at `port`, quiet.
pub fn start(dir: &Path, port: u16) -> Child {
    Command::new(BIN)
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("BULWARK_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}
