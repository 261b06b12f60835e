//! `bulwark serve`.

use super::Cli;
use crate::app::Appliance;

/// Starts the appliance and blocks until it stops.
pub fn run(cli: &Cli, listen: Option<String>) -> anyhow::Result<i32> {
    let config = match cli.load_config(listen) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bulwark: configuration is not valid:\n{e}");
            return Ok(2);
        }
    };
    super::init_logging(&config);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async move {
        let data_dir = config.data_dir.clone();
        let appliance = Appliance::open(config)?;
        let store = appliance.state.store.clone();
        let email = std::env::var("BULWARK_ADMIN_EMAIL").ok();
        let password = std::env::var("BULWARK_ADMIN_PASSWORD").ok();
        let generated = tokio::task::spawn_blocking(move || crate::auth::bootstrap_admin(&store, email, password)).await??;
        if let Some((email, pw)) = generated {
            // Printed once, to stderr only; it is not logged and not stored in clear.
            eprintln!(
                "\n  Bulwark created the first super-admin.\n    email:    {email}\n    password: {pw}\n  It is shown only this once. Sign in and change it, or add users with `bulwark user add`.\n"
            );
        }
        tracing::info!(data_dir = %data_dir.display(), version = env!("CARGO_PKG_VERSION"), "starting");
        appliance.serve().await
    });
    // Blocking work still running (a job past its cancellation point) must not hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    result?;
    Ok(0)
}
