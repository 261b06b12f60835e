//! The `bulwark` binary: parse the command line, call the library.

use clap::Parser;

fn main() {
    // Two rustls crypto providers are compiled in (via dependencies); pick one explicitly or
    // rustls' builders panic.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = bulwark::cli::Cli::parse();
    match bulwark::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("bulwark: {e:#}");
            std::process::exit(1);
        }
    }
}
