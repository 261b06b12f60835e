//! One crawl of every configured source (or one of them): an unreachable source is reported
//! and the crawl goes on with the others.

use std::collections::HashMap;

use serde::Serialize;

use super::sources::{Kind, Source};
use super::Asset;
use crate::detect::Engine;

/// A table the crawl looked at: its fingerprint (columns, size, changes) and whether it was
/// read, or left alone because the fingerprint matched the previous crawl's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableSeen {
    pub source: String,
    /// `database.schema.table` (MySQL: `database.table`).
    pub table: String,
    /// Empty when the table was not read completely (so the next crawl reads it again).
    pub fingerprint: String,
    pub reread: bool,
}

/// What one source's crawler found.
#[derive(Debug, Default)]
pub struct Found {
    pub assets: Vec<Asset>,
    pub tables: Vec<TableSeen>,
}

/// Fingerprints of the tables the previous crawl read completely: [`known_key`] → fingerprint.
pub type Known = HashMap<String, String>;

/// The key of a table in [`Known`].
pub fn known_key(source: &str, table: &str) -> String {
    format!("{source}\u{0}{table}")
}

/// A table's fingerprint: its extent (size and change counters, as the server gives them) and
/// its columns' names and types.
pub fn fingerprint<'a>(
    extent: &str,
    columns: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(extent.as_bytes());
    for (name, kind) in columns {
        for p in [name, kind] {
            h.update([0]);
            h.update(p.as_bytes());
        }
    }
    h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Found {
    /// Records a table: left alone when `known` has its fingerprint, else read by `read`.
    pub async fn table<F: std::future::Future<Output = Vec<Asset>>>(
        &mut self,
        source: &str,
        table: String,
        fingerprint: String,
        known: &Known,
        read: F,
    ) {
        if known.get(&known_key(source, &table)) == Some(&fingerprint) {
            self.tables.push(TableSeen {
                source: source.to_string(),
                table,
                fingerprint,
                reread: false,
            });
            return;
        }
        let assets = read.await;
        let complete = assets.iter().all(super::classify::settled);
        self.tables.push(TableSeen {
            source: source.to_string(),
            table,
            fingerprint: if complete { fingerprint } else { String::new() },
            reread: true,
        });
        self.assets.extend(assets);
    }
}

/// TLS for a store: the system's roots, the appliance's extra CAs and the source's own
/// `ca_pem`.
pub fn tls_config(source: &super::Source) -> Result<rustls::ClientConfig, super::DarError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let bad = |e: &dyn std::fmt::Display| super::DarError::Config(format!("ca_pem: {e}"));
    let mut roots = source.outbound.root_store();
    for cert in CertificateDer::pem_slice_iter(source.ca_pem.as_bytes()) {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| super::DarError::Config(format!("tls: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

impl Found {
    /// Records a table the source's time budget left unread: each of its columns (name, type)
    /// as `table.column`, SKIPPED.
    pub fn out_of_time<'a>(
        &mut self,
        source: &str,
        table: &str,
        columns: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        for (name, kind) in columns {
            self.assets.push(super::classify::skipped(
                source,
                format!("{table}.{name}"),
                kind,
                "source time budget spent",
            ));
        }
    }
}

/// How a source's crawl ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceOutcome {
    pub name: String,
    pub kind: Kind,
    /// `ok` or `error`.
    pub status: String,
    /// Why it could not be read (empty when `ok`).
    pub error: String,
}

/// What one crawl found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Crawl {
    pub sources: Vec<SourceOutcome>,
    pub assets: Vec<Asset>,
    /// Every table looked at (not printed by `bulwark crawl`).
    #[serde(skip)]
    pub tables: Vec<TableSeen>,
}

/// Crawls `sources` one after the other (one connection at a time, so a crawl adds one
/// session to each server), the one named `only` when given; tables whose fingerprint is in
/// `known` are not read again.
pub async fn crawl(
    sources: &[Source],
    engine: &Engine,
    only: Option<&str>,
    known: &Known,
) -> Crawl {
    let mut out = Crawl {
        sources: Vec::new(),
        assets: Vec::new(),
        tables: Vec::new(),
    };
    for s in sources.iter().filter(|s| only.is_none_or(|n| n == s.name)) {
        let result = match s.kind {
            Kind::Postgres => super::postgres::crawl(s, engine, known).await,
            Kind::Mysql => super::mysql::crawl(s, engine, known).await,
            Kind::Mssql => super::mssql::crawl(s, engine, known).await,
            Kind::S3 => super::s3::crawl(s, engine, known).await,
            Kind::Kafka => super::kafka::crawl(s, engine, known).await,
        };
        let (status, error) = match result {
            Ok(found) => {
                out.assets.extend(found.assets);
                out.tables.extend(found.tables);
                ("ok".to_string(), String::new())
            }
            Err(e) => ("error".to_string(), e.to_string()),
        };
        out.sources.push(SourceOutcome {
            name: s.name.clone(),
            kind: s.kind,
            status,
            error,
        });
    }
    out
}
