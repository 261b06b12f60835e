//! The ValidatingWebhookConfiguration that points a cluster's API server at this appliance,
//! with the CA the API server must trust: printed by `bulwark webhook-config` and served by
//! `GET /api/v1/clusters/{id}/webhook-configuration` for the cluster page's download.

use std::path::Path;

use base64::Engine;

use super::{Cluster, ClusterError, FailureMode};
use crate::store::Store;

/// How the configuration is written.
#[derive(Debug, Clone)]
pub struct Params {
    /// How the cluster reaches Bulwark (https; the admission path is added unless it has one).
    pub url: String,
    /// Seconds the API server waits for an answer (1-30).
    pub timeout: u8,
    /// Namespaces left out (none given: kube-system).
    pub exclude: Vec<String>,
}

/// The configuration for `cluster`, trusting the PEM bundle at `ca_path`; with the cluster's
/// webhook token in the URL when it requires one (so it is as secret as the token).
pub fn build(
    store: &Store,
    sealer: &crate::secrets::Sealer,
    cluster: &Cluster,
    params: &Params,
    ca_path: &Path,
) -> Result<String, ClusterError> {
    if !(1..=30).contains(&params.timeout) {
        return Err(ClusterError::Invalid("timeout: 1 to 30 seconds".into()));
    }
    let ca = std::fs::read(ca_path).map_err(|e| {
        ClusterError::Invalid(format!(
            "cannot read the CA bundle {}: {e}",
            ca_path.display()
        ))
    })?;
    if !String::from_utf8_lossy(&ca).contains("-----BEGIN CERTIFICATE-----") {
        return Err(ClusterError::Invalid(format!(
            "{} holds no PEM certificate",
            ca_path.display()
        )));
    }
    let mut url = webhook_url(&params.url, &cluster.name)?;
    if cluster.webhook_token_required {
        let token = super::webhook_auth::token(store, sealer, cluster.id)?.ok_or_else(|| {
            ClusterError::Invalid(format!(
                "cluster {} requires a webhook token but has none stored",
                cluster.name
            ))
        })?;
        url = format!("{url}/{token}");
    }
    let exclude = if params.exclude.is_empty() {
        vec!["kube-system".to_string()]
    } else {
        params.exclude.clone()
    };
    Ok(render(
        &cluster.name,
        cluster.failure_mode,
        &url,
        &ca,
        params.timeout,
        &exclude,
    ))
}

fn webhook_url(base: &str, cluster: &str) -> Result<String, ClusterError> {
    let u =
        url::Url::parse(base).map_err(|e| ClusterError::Invalid(format!("url '{base}': {e}")))?;
    if u.scheme() != "https" {
        return Err(ClusterError::Invalid(
            "url: must be https (the API server only calls webhooks over TLS)".into(),
        ));
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

/// The cluster's name as Kubernetes object names and file names allow: lowercase letters,
/// digits and `-`.
pub fn slug(cluster: &str) -> String {
    cluster
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
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
    let slug = slug(cluster);
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
