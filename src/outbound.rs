//! How the appliance reaches beyond itself: an HTTP(S) proxy, the hosts that bypass it, and
//! extra certificate authorities to trust (an in-house CA that signed a registry, an identity
//! provider or an S3 endpoint).
//!
//! The settings travel with each client that needs them and are never process-wide state:
//! two appliances in one process (as the tests run them) may route differently. Every HTTP
//! client is built from [`Outbound::http_client`], which ignores the proxy variables of the
//! environment unless the configuration took them in ([`Outbound::from_settings`] does that for
//! the command line, `Config::load` for the appliance).

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// The outbound settings as configured (`[outbound]`), before they are checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub https_proxy: String,
    pub http_proxy: String,
    pub no_proxy: String,
    /// A PEM file of extra CAs.
    pub ca_bundle: String,
}

/// Checked outbound settings, cheap to clone.
#[derive(Clone, Default, PartialEq)]
pub struct Outbound {
    https_proxy: Option<url::Url>,
    http_proxy: Option<url::Url>,
    no_proxy: Vec<String>,
    extra_roots: Arc<Vec<CertificateDer<'static>>>,
}

impl std::fmt::Debug for Outbound {
    // A proxy URL may carry credentials: only the host is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = |u: &Option<url::Url>| u.as_ref().and_then(|u| u.host_str().map(String::from));
        f.debug_struct("Outbound")
            .field("https_proxy", &host(&self.https_proxy))
            .field("http_proxy", &host(&self.http_proxy))
            .field("no_proxy", &self.no_proxy)
            .field("extra_roots", &self.extra_roots.len())
            .finish()
    }
}

fn proxy_url(key: &str, raw: &str) -> Result<Option<url::Url>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    // `proxy:3128` is how many write it; curl reads it as http://.
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("http://{raw}")
    };
    let u = url::Url::parse(&with_scheme)
        .map_err(|e| format!("{key}: '{}' is not a proxy URL: {e}", mask_userinfo(raw)))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(format!(
            "{key}: '{}' is not an http:// or https:// proxy URL",
            mask_userinfo(raw)
        ));
    }
    Ok(Some(u))
}

/// `user:secret@host` → `***@host`, for messages.
fn mask_userinfo(raw: &str) -> String {
    match raw.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => raw.to_string(),
    }
}

/// The certificates of a PEM bundle.
pub fn read_ca_bundle(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = std::fs::read(path).map_err(|e| format!("outbound.ca_bundle: {path}: {e}"))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("outbound.ca_bundle: {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "outbound.ca_bundle: {path} holds no PEM CERTIFICATE block"
        ));
    }
    Ok(certs)
}

impl Outbound {
    /// Checks the settings and reads the CA bundle.
    pub fn new(s: &Settings) -> Result<Outbound, String> {
        let extra_roots = if s.ca_bundle.trim().is_empty() {
            Vec::new()
        } else {
            read_ca_bundle(s.ca_bundle.trim())?
        };
        Ok(Outbound {
            https_proxy: proxy_url("outbound.https_proxy", &s.https_proxy)?,
            http_proxy: proxy_url("outbound.http_proxy", &s.http_proxy)?,
            no_proxy: s
                .no_proxy
                .split(',')
                .map(|h| {
                    h.trim()
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_ascii_lowercase()
                })
                .filter(|h| !h.is_empty())
                .collect(),
            extra_roots: Arc::new(extra_roots),
        })
    }

    /// `settings`, with the usual variables (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, either
    /// case) filling what they leave empty, as curl reads them.
    pub fn from_settings(
        settings: &Settings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Outbound, String> {
        Outbound::new(&with_environment(settings, env))
    }

    /// For commands run without the appliance's configuration (`bulwark scan`, `verify`):
    /// `BULWARK_OUTBOUND_HTTPS_PROXY`, `_HTTP_PROXY`, `_NO_PROXY` and `_CA_BUNDLE`, then the
    /// usual proxy variables.
    pub fn from_process_env() -> Result<Outbound, String> {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        let own = Settings {
            https_proxy: var("BULWARK_OUTBOUND_HTTPS_PROXY"),
            http_proxy: var("BULWARK_OUTBOUND_HTTP_PROXY"),
            no_proxy: var("BULWARK_OUTBOUND_NO_PROXY"),
            ca_bundle: var("BULWARK_OUTBOUND_CA_BUNDLE"),
        };
        Outbound::from_settings(&own, |k| std::env::var(k).ok())
    }

    /// Whether a proxy is configured at all.
    pub fn has_proxy(&self) -> bool {
        self.https_proxy.is_some() || self.http_proxy.is_some()
    }

    /// Whether `host` bypasses the proxy: listed exactly, under a listed domain (`.corp` or
    /// `corp` both cover `a.corp`), or `*`.
    pub fn bypasses(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.to_ascii_lowercase();
        self.no_proxy.iter().any(|n| {
            let n = n.trim_start_matches("*.").trim_start_matches('.');
            n == "*" || host == n || host.ends_with(&format!(".{n}"))
        })
    }

    /// The proxy for a request to `scheme://host`, if any.
    pub fn proxy_for(&self, scheme: &str, host: &str) -> Option<&url::Url> {
        if self.bypasses(host) {
            return None;
        }
        match scheme {
            "https" => self.https_proxy.as_ref(),
            _ => self.http_proxy.as_ref(),
        }
    }

    /// The proxy rule for reqwest clients, when a proxy is configured.
    fn reqwest_proxy(&self) -> Option<reqwest::Proxy> {
        let me = self.clone();
        self.has_proxy().then(|| {
            reqwest::Proxy::custom(move |u| {
                me.proxy_for(u.scheme(), u.host_str().unwrap_or(""))
                    .cloned()
            })
        })
    }

    fn reqwest_roots(&self) -> impl Iterator<Item = reqwest::Certificate> + '_ {
        self.extra_roots
            .iter()
            .filter_map(|der| reqwest::Certificate::from_der(der).ok())
    }

    /// A reqwest client builder routed and trusting as configured (the environment's proxy
    /// variables are not read here).
    pub fn http_client(&self) -> reqwest::ClientBuilder {
        let mut b = reqwest::Client::builder().no_proxy();
        if let Some(p) = self.reqwest_proxy() {
            b = b.proxy(p);
        }
        self.reqwest_roots()
            .fold(b, |b, c| b.add_root_certificate(c))
    }

    /// The blocking form of [`Outbound::http_client`].
    pub fn blocking_http_client(&self) -> reqwest::blocking::ClientBuilder {
        let mut b = reqwest::blocking::Client::builder().no_proxy();
        if let Some(p) = self.reqwest_proxy() {
            b = b.proxy(p);
        }
        self.reqwest_roots()
            .fold(b, |b, c| b.add_root_certificate(c))
    }

    /// The extra CAs.
    pub fn extra_roots(&self) -> &[CertificateDer<'static>] {
        &self.extra_roots
    }

    /// The extra CAs as PEM text, for clients that take a bundle.
    pub fn extra_roots_pem(&self) -> String {
        use base64::Engine as _;
        let mut out = String::new();
        for der in self.extra_roots.iter() {
            let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
            out.push_str("-----BEGIN CERTIFICATE-----\n");
            for line in b64.as_bytes().chunks(64) {
                out.push_str(&String::from_utf8_lossy(line));
                out.push('\n');
            }
            out.push_str("-----END CERTIFICATE-----\n");
        }
        out
    }

    /// The system's trusted roots plus the extra CAs, for clients that take a rustls
    /// configuration (database drivers, Kafka, LDAP).
    pub fn root_store(&self) -> rustls::RootCertStore {
        // The system's store is read once per process: it is files under /etc, and connections
        // (a crawl per source, a directory sign-in) would otherwise reread them each time.
        static NATIVE: std::sync::OnceLock<Vec<CertificateDer<'static>>> =
            std::sync::OnceLock::new();
        let native = NATIVE.get_or_init(|| rustls_native_certs::load_native_certs().certs);
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(native.iter().cloned());
        roots.add_parsable_certificates(self.extra_roots.iter().cloned());
        roots
    }

    /// A TCP connection to `host:port` for a protocol that is not HTTP (SMTP, Kafka): through
    /// the HTTPS proxy with `CONNECT` when one applies to the host, else direct.
    pub async fn connect_tcp(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> std::io::Result<tokio::net::TcpStream> {
        let io = |m: String| std::io::Error::other(m);
        let work = async {
            let Some(proxy) = self.proxy_for("https", host) else {
                return tokio::net::TcpStream::connect((host, port)).await;
            };
            let (phost, pport) = (
                proxy.host_str().unwrap_or_default().to_string(),
                proxy.port_or_known_default().unwrap_or(3128),
            );
            let mut s = tokio::net::TcpStream::connect((phost.as_str(), pport)).await?;
            tunnel(&mut s, proxy, host, port).await.map_err(io)?;
            Ok(s)
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| io(format!("{host}:{port}: no connection within {timeout:?}")))?
    }
}

/// Asks a proxy for a tunnel (`CONNECT host:port`) and reads its answer's head.
async fn tunnel(
    s: &mut tokio::net::TcpStream,
    proxy: &url::Url,
    host: &str,
    port: u16,
) -> Result<(), String> {
    use base64::Engine as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut req = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n");
    if !proxy.username().is_empty() {
        let user = percent_decode(proxy.username());
        let pass = percent_decode(proxy.password().unwrap_or(""));
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("proxy: {e}"))?;
    // Byte by byte up to the blank line, so nothing of the tunnelled stream is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err("proxy: an answer head longer than 8 KiB".into());
        }
        let mut b = [0u8; 1];
        let n = s.read(&mut b).await.map_err(|e| format!("proxy: {e}"))?;
        if n == 0 {
            return Err("proxy: the connection closed before it answered CONNECT".into());
        }
        head.push(b[0]);
    }
    let status = String::from_utf8_lossy(&head);
    let line = status.lines().next().unwrap_or("");
    match line.split_whitespace().nth(1) {
        Some(code) if code.starts_with('2') => Ok(()),
        _ => Err(format!(
            "the proxy refused a tunnel to {host}:{port}: {}",
            line.chars().take(120).collect::<String>()
        )),
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `settings` with the environment's proxy variables filling its empty fields.
pub fn with_environment(settings: &Settings, env: impl Fn(&str) -> Option<String>) -> Settings {
    let pick = |own: &str, names: [&str; 2]| {
        if !own.trim().is_empty() {
            return own.to_string();
        }
        names
            .iter()
            .find_map(|n| env(n).filter(|v| !v.trim().is_empty()))
            .unwrap_or_default()
    };
    Settings {
        https_proxy: pick(&settings.https_proxy, ["HTTPS_PROXY", "https_proxy"]),
        http_proxy: pick(&settings.http_proxy, ["HTTP_PROXY", "http_proxy"]),
        no_proxy: pick(&settings.no_proxy, ["NO_PROXY", "no_proxy"]),
        ca_bundle: settings.ca_bundle.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(https: &str, no_proxy: &str) -> Settings {
        Settings {
            https_proxy: https.into(),
            no_proxy: no_proxy.into(),
            ..Settings::default()
        }
    }

    #[test]
    fn proxies_apply_except_to_listed_hosts() {
        let o = Outbound::new(&settings(
            "proxy.corp:3128",
            "localhost, .svc,registry.local,[::1]",
        ))
        .unwrap();
        assert_eq!(
            o.proxy_for("https", "quay.io").map(|u| u.as_str()),
            Some("http://proxy.corp:3128/")
        );
        assert_eq!(o.proxy_for("http", "quay.io"), None, "no http proxy set");
        for direct in [
            "localhost",
            "a.b.svc",
            "svc",
            "REGISTRY.local",
            "::1",
            "[::1]",
        ] {
            assert!(o.bypasses(direct), "{direct}");
        }
        assert!(!o.bypasses("notsvc"));
        assert!(!o.bypasses("registry.local.evil.io"));
        let all = Outbound::new(&settings("http://p:1", "*")).unwrap();
        assert_eq!(all.proxy_for("https", "anything"), None);
    }

    #[test]
    fn bad_settings_are_refused_without_their_secrets() {
        let e = Outbound::new(&settings("socks5://user:hunter2@p:1080", "")).unwrap_err();
        assert!(e.contains("outbound.https_proxy"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = Outbound::new(&Settings {
            ca_bundle: "/nonexistent/ca.pem".into(),
            ..Settings::default()
        })
        .unwrap_err();
        assert!(e.contains("outbound.ca_bundle"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let e = Outbound::new(&Settings {
            ca_bundle: empty.display().to_string(),
            ..Settings::default()
        })
        .unwrap_err();
        assert!(e.contains("no PEM CERTIFICATE"), "{e}");
        let debug = format!(
            "{:?}",
            Outbound::new(&settings("http://u:hunter2@p:1", "")).unwrap()
        );
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn the_environment_fills_only_what_the_configuration_leaves_empty() {
        let env = |k: &str| match k {
            "https_proxy" => Some("http://env-proxy:8080".to_string()),
            "NO_PROXY" => Some("internal".to_string()),
            _ => None,
        };
        let s = with_environment(&settings("", ""), env);
        assert_eq!(s.https_proxy, "http://env-proxy:8080");
        assert_eq!(s.no_proxy, "internal");
        let s = with_environment(&settings("http://mine:1", ""), env);
        assert_eq!(s.https_proxy, "http://mine:1");
    }

    #[test]
    fn proxy_credentials_are_percent_decoded() {
        assert_eq!(percent_decode("p%40ss%3Aword"), "p@ss:word");
    }
}
