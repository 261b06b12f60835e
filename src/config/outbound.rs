//! The settings for reaching beyond the appliance (`[outbound]`) and for the signed bundles it
//! accepts (`[bundles]`).

use serde::{Deserialize, Serialize};

/// Signed offline bundles (`bulwark db bundle`): `key_file` is a PEM file of the public keys
/// whose bundles the console and the API import. When it is set, uploads must be bundles
/// signed by one of them; empty, bundles are refused and plain feed files accepted.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BundlesConfig {
    pub key_file: String,
}

/// How the appliance reaches registries, identity providers, mail servers and data stores:
/// `https_proxy`/`http_proxy` (`http://[user:password@]host:port`), `no_proxy` (hosts and
/// domains reached directly, comma-separated) and `ca_bundle` (a PEM file of CAs trusted beside
/// the system's). Empty proxy fields are filled from `HTTPS_PROXY`, `HTTP_PROXY` and
/// `NO_PROXY` (either case) as curl reads them.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    pub https_proxy: String,
    pub http_proxy: String,
    pub no_proxy: String,
    pub ca_bundle: String,
}

impl OutboundConfig {
    pub(super) fn settings(&self) -> crate::outbound::Settings {
        crate::outbound::Settings {
            https_proxy: self.https_proxy.clone(),
            http_proxy: self.http_proxy.clone(),
            no_proxy: self.no_proxy.clone(),
            ca_bundle: self.ca_bundle.clone(),
        }
    }
}

// A proxy URL may carry a password: shown without it.
impl std::fmt::Debug for OutboundConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hide = |u: &str| match u.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => u.to_string(),
        };
        f.debug_struct("OutboundConfig")
            .field("https_proxy", &hide(&self.https_proxy))
            .field("http_proxy", &hide(&self.http_proxy))
            .field("no_proxy", &self.no_proxy)
            .field("ca_bundle", &self.ca_bundle)
            .finish()
    }
}
