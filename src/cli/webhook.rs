//! `bulwark webhook-config`: the ValidatingWebhookConfiguration that points a cluster's API
//! server at this appliance, with the appliance's certificate as caBundle.

use std::path::PathBuf;

use clap::Args;

use super::Cli;
use crate::clusters::webhook_config;

/// Flags of `bulwark webhook-config`.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// The cluster (name or id) as registered in Bulwark.
    #[arg(long)]
    pub cluster: String,
    /// How the cluster reaches Bulwark, e.g. https://bulwark.example.com:8443 (the admission
    /// path is added unless the URL already has a path).
    #[arg(long)]
    pub url: String,
    /// Seconds the API server waits for an answer (1-30).
    #[arg(long, default_value_t = 5)]
    pub timeout: u8,
    /// Namespaces left out (repeatable). Default: kube-system.
    #[arg(long = "exclude-namespace")]
    pub exclude: Vec<String>,
    /// CA bundle (PEM) the API server trusts Bulwark with. Default: the appliance's own CA (or
    /// the operator's certificate file when one is configured).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
}

/// Prints the configuration.
pub fn run(cli: &Cli, a: &WebhookArgs) -> anyhow::Result<i32> {
    let config = cli
        .load_config(None)
        .map_err(|e| anyhow::anyhow!("configuration is not valid:\n{e}"))?;
    let store = crate::store::Store::open_read_only(&config.data_dir, &crate::app::migrations())?;
    let cluster = crate::compliance::service::find_cluster(&store, &a.cluster)?;
    let ca_path = a
        .ca_file
        .clone()
        .unwrap_or_else(|| crate::http::tls::trust_anchor_path(&config));
    let sealer = crate::secrets::Sealer::open(&config.data_dir)?;
    let params = webhook_config::Params {
        url: a.url.clone(),
        timeout: a.timeout,
        exclude: a.exclude.clone(),
    };
    print!(
        "{}",
        webhook_config::build(&store, &sealer, &cluster, &params, &ca_path)?
    );
    Ok(0)
}
