//! `bulwark webhook-config`: the ValidatingWebhookConfiguration that points a cluster's API
//! server at this appliance, with the appliance's certificate as caBundle.

use std::path::PathBuf;

use base64::Engine;
use clap::Args;

use super::Cli;
use crate::clusters::FailureMode;

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
    if !(1..=30).contains(&a.timeout) {
        anyhow::bail!("--timeout must be 1 to 30 seconds");
    }
    let store = crate::store::Store::open_read_only(&config.data_dir, &crate::app::migrations())?;
    let cluster = crate::compliance::service::find_cluster(&store, &a.cluster)?;
    let ca_path = a
        .ca_file
        .clone()
        .unwrap_or_else(|| crate::http::tls::trust_anchor_path(&config));
    let ca = std::fs::read(&ca_path)
        .map_err(|e| anyhow::anyhow!("cannot read the CA bundle {}: {e}", ca_path.display()))?;
    if !String::from_utf8_lossy(&ca).contains("-----BEGIN CERTIFICATE-----") {
        anyhow::bail!("{} holds no PEM certificate", ca_path.display());
    }
    let mut url = webhook_url(&a.url, &cluster.name)?;
    if cluster.webhook_token_required {
        let sealer = crate::secrets::Sealer::open(&config.data_dir)?;
        let token = crate::clusters::webhook_auth::token(&store, &sealer, cluster.id)?.ok_or_else(
            || {
                anyhow::anyhow!(
                    "cluster {} requires a webhook token but has none stored",
                    cluster.name
                )
            },
        )?;
        url = format!("{url}/{token}");
    }
    let exclude = if a.exclude.is_empty() {
        vec!["kube-system".to_string()]
    } else {
        a.exclude.clone()
    };
    print!(
        "{}",
        render(
            &cluster.name,
            cluster.failure_mode,
            &url,
            &ca,
            a.timeout,
            &exclude
        )
    );
    Ok(0)
}

fn webhook_url(base: &str, cluster: &str) -> anyhow::Result<String> {
    let u = url::Url::parse(base).map_err(|e| anyhow::anyhow!("--url '{base}': {e}"))?;
    if u.scheme() != "https" {
        anyhow::bail!("--url must be https (the API server only calls webhooks over TLS)");
    }
    if u.path() == "/" || u.path().is_empty() {
        let name: String = url::form_urlencoded::byte_serialize(cluster.as_bytes()).collect();
        Ok(format!(
            "{}/api/v1/admission/{name}",
            base.trim_end_matches('/')
        ))
    } else {
        Ok(base.to_string())
    }
}

/// YAML strings are written double-quoted with JSON escaping, which YAML accepts.
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn render(
    cluster: &str,
    mode: FailureMode,
    url: &str,
    ca_pem: &[u8],
    timeout: u8,
    exclude: &[String],
) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let failure_policy = match mode {
        FailureMode::FailOpen => "Ignore",
        FailureMode::FailClosed => "Fail",
    };
    let slug: String = cluster
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let excluded: Vec<String> = exclude.iter().map(|n| q(n)).collect();
    format!(
        r#"# Bulwark admission webhook for cluster {cluster_q}.
# failurePolicy follows the cluster's failure mode in Bulwark ({mode}).
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {name}
  labels:
    app.kubernetes.io/managed-by: bulwark
webhooks:
  - name: images.bulwark.security
    clientConfig:
      url: {url}
      caBundle: {ca}
    rules:
      - apiGroups: [""]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["pods", "replicationcontrollers"]
        scope: "Namespaced"
      - apiGroups: ["apps"]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["deployments", "statefulsets", "daemonsets", "replicasets"]
        scope: "Namespaced"
      - apiGroups: ["batch"]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["jobs", "cronjobs"]
        scope: "Namespaced"
    namespaceSelector:
      matchExpressions:
        - key: kubernetes.io/metadata.name
          operator: NotIn
          values: [{excluded}]
    failurePolicy: {failure_policy}
    matchPolicy: Equivalent
    sideEffects: None
    timeoutSeconds: {timeout}
    admissionReviewVersions: ["v1", "v1beta1"]
"#,
        cluster_q = q(cluster),
        mode = mode.as_str(),
        name = q(&format!("bulwark-{slug}")),
        url = q(url),
        excluded = excluded.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            webhook_url("https://b.example:8443", "prod").unwrap(),
            "https://b.example:8443/api/v1/admission/prod"
        );
        assert_eq!(
            webhook_url("https://b.example/", "prod").unwrap(),
            "https://b.example/api/v1/admission/prod"
        );
        assert_eq!(
            webhook_url("https://b.example/custom/path", "prod").unwrap(),
            "https://b.example/custom/path"
        );
        assert!(webhook_url("http://b.example", "prod").is_err());
        assert!(webhook_url("not a url", "prod").is_err());
    }
}
