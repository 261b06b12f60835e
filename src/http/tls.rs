//! TLS for the HTTPS server: the operator's certificate, or one Bulwark issues itself.
//!
//! Without an operator certificate Bulwark keeps a small certificate authority in
//! `DATA_DIR/tls/` (`ca.pem`, `ca-key.pem`; valid ten years) and serves a leaf it signs
//! (`cert.pem`, `key.pem`): named for the appliance's host names, valid one year, renewed 30 days
//! before it expires, at start and by a daily check while running, without a restart. Clients
//! that pin the CA (the admission webhook's `caBundle`) keep trusting each renewed leaf. An
//! operator's certificate files are read again by the same check when they change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use time::{Duration, OffsetDateTime};

use crate::config::Config;

/// How long an issued leaf is valid.
const LEAF_DAYS: i64 = 365;
/// How long the generated CA is valid.
const CA_DAYS: i64 = 3650;
/// A leaf this close to its end is renewed.
const RENEW_BEFORE_DAYS: i64 = 30;

/// TLS setup failures.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM {what}")]
    Pem { path: PathBuf, what: &'static str },
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("certificate and key do not work together: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Paths of the certificate and key in use: the operator's, or the generated pair.
pub fn cert_paths(config: &Config) -> (PathBuf, PathBuf) {
    if config.tls.cert_file.is_empty() {
        let dir = tls_dir(config);
        (dir.join("cert.pem"), dir.join("key.pem"))
    } else {
        (
            PathBuf::from(&config.tls.cert_file),
            PathBuf::from(&config.tls.key_file),
        )
    }
}

/// The certificate clients should trust: the generated CA, or the operator's certificate file.
pub fn trust_anchor_path(config: &Config) -> PathBuf {
    if config.tls.cert_file.is_empty() {
        tls_dir(config).join("ca.pem")
    } else {
        PathBuf::from(&config.tls.cert_file)
    }
}

fn tls_dir(config: &Config) -> PathBuf {
    config.data_dir.join("tls")
}

/// The names the leaf is issued for: loopback, the host name and the listen address.
fn host_names(config: &Config) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            names.push(h.to_string());
        }
    }
    for n in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|x| x == n) {
            names.push(n.to_string());
        }
    }
    if let Ok(addr) = config.listen.parse::<std::net::SocketAddr>() {
        let ip = addr.ip().to_string();
        if !addr.ip().is_unspecified() && !names.contains(&ip) {
            names.push(ip);
        }
    }
    names
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader never sees half
/// a certificate; `private` files are 0600.
fn write_atomically(path: &Path, bytes: &[u8], private: bool) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let err = |source| TlsError::Write {
        path: path.into(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// The end of validity and the issuer's name of the first certificate in `pem`.
fn validity(pem: &[u8]) -> Option<(OffsetDateTime, Vec<u8>)> {
    let der = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some((
        cert.validity().not_after.to_datetime(),
        cert.issuer().as_raw().to_vec(),
    ))
}

/// The subject name of the first certificate in `pem`.
fn subject(pem: &[u8]) -> Option<Vec<u8>> {
    let der = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some(cert.subject().as_raw().to_vec())
}

/// The generated CA, created if missing (or expiring within a year).
fn ensure_ca(dir: &Path) -> Result<(Issuer<'static, KeyPair>, Vec<u8>), TlsError> {
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    if let (Ok(pem), Ok(key)) = (
        std::fs::read(&cert_path),
        std::fs::read_to_string(&key_path),
    ) {
        let fresh = validity(&pem)
            .is_some_and(|(end, _)| end - OffsetDateTime::now_utc() > Duration::days(365));
        if fresh {
            let key = KeyPair::from_pem(&key)?;
            let issuer = Issuer::from_ca_cert_pem(&String::from_utf8_lossy(&pem), key)?;
            return Ok((issuer, pem));
        }
    }
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(CA_DAYS);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(DnType::CommonName, "Bulwark appliance CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Bulwark");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write_atomically(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_atomically(&cert_path, cert.pem().as_bytes(), false)?;
    tracing::info!(ca = %cert_path.display(), "generated the appliance's certificate authority; webhooks pin it as their caBundle");
    Ok((Issuer::new(params, key), cert.pem().into_bytes()))
}

/// Issues (or renews) the generated leaf when it is missing, not signed by the current CA, or
/// within 30 days of its end. Returns whether a new one was written. Does nothing for an
/// operator's certificate.
pub fn ensure_certificate(config: &Config) -> Result<bool, TlsError> {
    if !config.tls.cert_file.is_empty() {
        return Ok(false);
    }
    let dir = tls_dir(config);
    std::fs::create_dir_all(&dir).map_err(|source| TlsError::Write {
        path: dir.clone(),
        source,
    })?;
    let (issuer, ca_pem) = ensure_ca(&dir)?;
    let (cert_path, key_path) = cert_paths(config);
    let ca_subject = subject(&ca_pem);
    let current = std::fs::read(&cert_path).ok().and_then(|p| validity(&p));
    let valid = key_path.exists()
        && current.is_some_and(|(end, issued_by)| {
            Some(issued_by) == ca_subject
                && end - OffsetDateTime::now_utc() > Duration::days(RENEW_BEFORE_DAYS)
        });
    if valid {
        return Ok(false);
    }
    let names = host_names(config);
    let mut params = CertificateParams::new(names.clone())?;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(LEAF_DAYS);
    params
        .distinguished_name
        .push(DnType::CommonName, names[0].as_str());
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Bulwark appliance");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let leaf = params.signed_by(&key, &issuer)?;
    write_atomically(&key_path, key.serialize_pem().as_bytes(), true)?;
    let chain = format!("{}{}", leaf.pem(), String::from_utf8_lossy(&ca_pem));
    write_atomically(&cert_path, chain.as_bytes(), false)?;
    tracing::info!(cert = %cert_path.display(), names = %names.join(","), days = LEAF_DAYS, "issued the appliance's TLS certificate");
    Ok(true)
}

/// Loads the certificate chain and key in use.
fn load(config: &Config, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let (cert_path, key_path) = cert_paths(config);
    let cert_pem = read(&cert_path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(|c| c.ok())
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: cert_path,
            what: "certificate",
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&key_path)?).map_err(|_| TlsError::Pem {
        path: key_path.clone(),
        what: "private key",
    })?;
    Ok(CertifiedKey::from_der(certs, key, provider)?)
}

/// Serves the current certificate and swaps in a renewed one without a restart.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
    provider: Arc<CryptoProvider>,
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

impl CertResolver {
    /// Renews the generated certificate if due, reads the files in use and serves them from the
    /// next handshake on if they changed. Returns whether they did.
    pub fn refresh(&self, config: &Config) -> Result<bool, TlsError> {
        ensure_certificate(config)?;
        let loaded = load(config, &self.provider)?;
        let mut current = self.current.write().map_err(|_| TlsError::Pem {
            path: cert_paths(config).0,
            what: "certificate (lock poisoned)",
        })?;
        if current.cert == loaded.cert {
            return Ok(false);
        }
        *current = Arc::new(loaded);
        tracing::info!("serving a renewed TLS certificate");
        Ok(true)
    }

    /// The end-entity certificate served now (DER).
    pub fn served(&self) -> Option<CertificateDer<'static>> {
        self.current.read().ok()?.cert.first().cloned()
    }
}

/// The rustls server configuration for the certificate in use, and its resolver (for renewal).
pub fn server_config(
    config: &Config,
) -> Result<(rustls::ServerConfig, Arc<CertResolver>), TlsError> {
    ensure_certificate(config)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let resolver = Arc::new(CertResolver {
        current: RwLock::new(Arc::new(load(config, &provider)?)),
        provider: provider.clone(),
    });
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((cfg, resolver))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(config: &Config) -> x509_parser::certificate::X509Certificate<'static> {
        let pem = std::fs::read(cert_paths(config).0).unwrap();
        let der = CertificateDer::pem_slice_iter(&pem)
            .next()
            .unwrap()
            .unwrap();
        let der: &'static [u8] = Box::leak(der.to_vec().into_boxed_slice());
        x509_parser::parse_x509_certificate(der).unwrap().1
    }

    #[test]
    fn issues_a_named_one_year_leaf_from_its_own_ca_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        server_config(&config).unwrap();
        let (cert, key) = cert_paths(&config);
        let first = std::fs::read(&cert).unwrap();
        use std::os::unix::fs::PermissionsExt;
        for private in [&key, &dir.path().join("tls/ca-key.pem")] {
            assert_eq!(
                std::fs::metadata(private).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let l = leaf(&config);
        let cn = l.subject().iter_common_name().next().unwrap();
        assert_ne!(cn.as_str().unwrap(), "rcgen self signed cert");
        let days = (l.validity().not_after.to_datetime() - OffsetDateTime::now_utc()).whole_days();
        assert!(
            (360..=366).contains(&days),
            "valid about a year: {days} days"
        );
        assert_eq!(
            Some(l.issuer().as_raw().to_vec()),
            subject(&std::fs::read(trust_anchor_path(&config)).unwrap()),
            "signed by the appliance CA"
        );
        server_config(&config).unwrap();
        assert_eq!(
            std::fs::read(&cert).unwrap(),
            first,
            "certificate is kept across starts"
        );
    }

    #[test]
    fn renews_a_leaf_near_its_end_under_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let (_, resolver) = server_config(&config).unwrap();
        let ca = std::fs::read(trust_anchor_path(&config)).unwrap();
        let served = resolver.served().unwrap();
        // A leaf from the same CA that ends in 10 days, as one would after eleven months.
        let tls = dir.path().join("tls");
        let key =
            KeyPair::from_pem(&std::fs::read_to_string(tls.join("ca-key.pem")).unwrap()).unwrap();
        let issuer = Issuer::from_ca_cert_pem(&String::from_utf8_lossy(&ca), key).unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_after = OffsetDateTime::now_utc() + Duration::days(10);
        let k = KeyPair::generate().unwrap();
        let old = params.signed_by(&k, &issuer).unwrap();
        std::fs::write(tls.join("cert.pem"), old.pem()).unwrap();
        std::fs::write(tls.join("key.pem"), k.serialize_pem()).unwrap();
        assert!(resolver.refresh(&config).unwrap(), "renewed and swapped in");
        assert_ne!(resolver.served().unwrap(), served);
        let days = (leaf(&config).validity().not_after.to_datetime() - OffsetDateTime::now_utc())
            .whole_days();
        assert!(days > 300, "{days}");
        assert_eq!(
            std::fs::read(trust_anchor_path(&config)).unwrap(),
            ca,
            "same CA"
        );
        assert!(!resolver.refresh(&config).unwrap(), "nothing to do now");
    }
}
