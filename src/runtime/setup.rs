//! What a cluster needs to send its Falco events here: Helm values for the falco chart's
//! falcosidekick (webhook address with a key of scope `falco`, `checkcert`, `minimumpriority`,
//! the appliance's CA mounted and trusted), and the ConfigMap holding that CA.

use serde::{Deserialize, Serialize};

use super::{event, RuntimeError};

/// Where falcosidekick finds the appliance's CA inside its pod.
const CA_DIR: &str = "/etc/bulwark";
/// The ConfigMap holding the CA.
const CA_CONFIG_MAP: &str = "bulwark-ca";

/// What the operator chooses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// How the cluster reaches Bulwark (`https://bulwark.internal:8443`).
    pub url: String,
    /// Events below this are not sent (Falco's names; default `notice`).
    #[serde(default = "notice")]
    pub min_priority: String,
    /// Verify Bulwark's certificate (default on; the CA comes along).
    #[serde(default = "yes")]
    pub checkcert: bool,
    /// Namespace falco (and falcosidekick) run in.
    #[serde(default = "falco_ns")]
    pub namespace: String,
}

fn notice() -> String {
    "notice".into()
}
fn yes() -> bool {
    true
}
fn falco_ns() -> String {
    "falco".into()
}

/// The generated files.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// `helm upgrade --install falco falcosecurity/falco -n falco -f values.yaml`.
    pub values: String,
    /// `kubectl apply -f` before the chart.
    pub ca_config_map: String,
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A YAML double-quoted scalar.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

impl Request {
    fn check(&self) -> Result<url::Url, RuntimeError> {
        let u = url::Url::parse(self.url.trim())
            .ok()
            .filter(|u| u.scheme() == "https" && u.host_str().is_some())
            .ok_or_else(|| {
                RuntimeError::Invalid(
                    "url: how the cluster reaches Bulwark, as https://host[:port]".into(),
                )
            })?;
        if event::rank(&self.min_priority).is_none() {
            return Err(RuntimeError::Invalid(format!(
                "min_priority: one of {}",
                event::PRIORITIES.join(", ")
            )));
        }
        if !dns_label(&self.namespace) {
            return Err(RuntimeError::Invalid(
                "namespace: a Kubernetes name (lower-case letters, digits, '-')".into(),
            ));
        }
        Ok(u)
    }
}

/// The files for cluster `id` (named `cluster`) with API key `key`, trusting `ca_pem`.
pub fn render(
    req: &Request,
    id: u64,
    cluster: &str,
    key: &str,
    ca_pem: &str,
) -> Result<Setup, RuntimeError> {
    let base = req.check()?;
    let mut address = base.clone();
    // The id, not the name: it survives a rename and needs no escaping.
    address.set_path(&format!("/api/falco/{id}/create/"));
    address.set_query(None);
    address.query_pairs_mut().append_pair("key", key);
    let min = event::normalize_priority(&req.min_priority);
    let values = format!(
        "# falcosidekick for cluster {name}: Falco's events go to Bulwark.\n\
         # Apply the bulwark-ca ConfigMap first, then:\n\
         #   helm upgrade --install falco falcosecurity/falco -n {ns} -f this-file.yaml\n\
         # The key in the address has only the falco scope; revoke it under API keys.\n\
         falcosidekick:\n  enabled: true\n  config:\n    webhook:\n      address: {address}\n      checkcert: {checkcert}\n      minimumpriority: {min}\n    tlsclient:\n      cacertfile: {ca_file}\n  extraVolumes:\n    - name: bulwark-ca\n      configMap:\n        name: {CA_CONFIG_MAP}\n  extraVolumeMounts:\n    - name: bulwark-ca\n      mountPath: {CA_DIR}\n      readOnly: true\n\
         falco:\n  json_output: true\n  http_output:\n    enabled: true\n",
        ns = req.namespace,
        name = cluster.replace(['\n', '\r'], " "),
        address = quoted(address.as_str()),
        checkcert = req.checkcert,
        min = quoted(&min),
        ca_file = quoted(&format!("{CA_DIR}/ca.pem")),
    );
    let mut ca_config_map = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {CA_CONFIG_MAP}\n  namespace: {}\ndata:\n  ca.pem: |\n",
        req.namespace
    );
    for line in ca_pem.lines() {
        ca_config_map.push_str("    ");
        ca_config_map.push_str(line);
        ca_config_map.push('\n');
    }
    Ok(Setup {
        values,
        ca_config_map,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(url: &str) -> Request {
        Request {
            url: url.into(),
            min_priority: "Warning".into(),
            checkcert: true,
            namespace: "falco".into(),
        }
    }

    #[test]
    fn values_carry_the_address_with_its_key_and_the_ca() {
        let s = render(
            &req("https://bulwark.internal:8443/ignored?x=1"),
            7,
            "prod eu",
            "bwk_abc+/=",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&s.values).unwrap();
        let hook = &v["falcosidekick"]["config"]["webhook"];
        assert_eq!(
            hook["address"].as_str().unwrap(),
            "https://bulwark.internal:8443/api/falco/7/create/?key=bwk_abc%2B%2F%3D"
        );
        assert_eq!(hook["checkcert"].as_bool(), Some(true));
        assert_eq!(hook["minimumpriority"].as_str(), Some("warning"));
        let cm: serde_yaml::Value = serde_yaml::from_str(&s.ca_config_map).unwrap();
        assert!(cm["data"]["ca.pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----\nMIIB\n"));
        assert!(render(&req("http://plain"), 1, "c", "k", "").is_err());
        assert!(render(
            &Request {
                namespace: "Bad NS".into(),
                ..req("https://b")
            },
            1,
            "c",
            "k",
            ""
        )
        .is_err());
    }
}
