//! Signed offline bundles: what a connected machine gathers (feed exports, rule files) in one
//! zip archive an air-gapped appliance can check before it trusts a byte of it.
//!
//! The archive holds `bulwark-bundle.json` (the manifest: format, kind, when, and each file's
//! path, size and SHA-256), `bulwark-bundle.sig` (base64 of an ECDSA P-256 / SHA-256 signature
//! over the manifest's bytes, as `openssl dgst -sha256 -sign` makes it) and the files under
//! `files/`. Opening one checks, in this order and before anything is written anywhere but a
//! scratch directory: the signature with the trusted keys, the manifest, that every entry of
//! the archive is the manifest, its signature or a listed file, and each file's size and
//! digest as it is extracted under a name of our own making. A bundle that fails any check
//! yields an error and nothing else.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::trust::cosign::PublicKey;

pub const MANIFEST: &str = "bulwark-bundle.json";
/// Feed files for the vulnerability database.
pub const VULNDB: &str = "vulndb";
/// Custom data types for the detection engine (TOML files of `[[custom]]` tables).
pub const DETECT_RULES: &str = "detect-rules";
pub const SIGNATURE: &str = "bulwark-bundle.sig";
const FORMAT: &str = "bulwark-bundle/1";
/// Largest manifest read.
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;
/// Most files in a bundle.
const MAX_FILES: usize = 10_000;
/// Largest file in a bundle, and largest bundle content in all.
pub const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024 * 1024;
const MAX_TOTAL_BYTES: u64 = 8 * 1024 * 1024 * 1024;

/// What can be wrong with a bundle or its making.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0}")]
    Invalid(String),
    #[error("the bundle's signature does not verify with the trusted key(s): it was changed, or signed by another key")]
    BadSignature,
    #[error("{0}")]
    Io(String),
}

fn invalid(m: impl Into<String>) -> BundleError {
    BundleError::Invalid(m.into())
}

fn io(e: impl std::fmt::Display) -> BundleError {
    BundleError::Io(e.to_string())
}

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// `files/NAME`: letters, digits, `.`, `_`, `-` only.
    pub path: String,
    pub size: u64,
    /// Hex.
    pub sha256: String,
}

/// What a bundle says it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// `vulndb` (feed files for `bulwark db import`) or `detect-rules` (custom data types).
    pub kind: String,
    pub created_at: DateTime<Utc>,
    /// Free text: where the files came from.
    #[serde(default)]
    pub description: String,
    pub files: Vec<FileEntry>,
}

/// What an import says of the bundle it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Imported {
    /// The fingerprint of the key that signed it.
    pub key: String,
    pub created_at: DateTime<Utc>,
    pub files: usize,
}

/// A bundle checked and unpacked into a scratch directory.
#[derive(Debug)]
pub struct Opened {
    pub manifest: Manifest,
    /// The fingerprint of the key that signed it.
    pub key: String,
    /// The files, in manifest order, each under a name of our making with its original
    /// extension (importers tell formats by it).
    pub files: Vec<PathBuf>,
}

/// A scratch directory, removed with everything in it when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    /// A new empty directory under `parent`.
    pub fn new(parent: &Path) -> Result<Scratch, BundleError> {
        let dir = parent.join(format!(
            "bulwark-bundle-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| io(format!("{}: {e}", dir.display())))?;
        Ok(Scratch(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An ECDSA P-256 private key (PEM: PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`, as openssl
/// writes them unencrypted).
pub struct SigningKey(EcdsaKeyPair);

impl SigningKey {
    pub fn from_pem(pem: &str) -> Result<SigningKey, BundleError> {
        use rustls::pki_types::pem::PemObject;
        if pem.contains("ENCRYPTED") {
            return Err(invalid(
                "the signing key is encrypted: decrypt it first (openssl pkey -in KEY -out PLAIN)",
            ));
        }
        let der = rustls::pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| invalid("the signing key is not a PEM private key"))?;
        EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, der.secret_der())
            .map(SigningKey)
            .map_err(|_| invalid("the signing key is not an ECDSA P-256 private key"))
    }

    /// The public half, which checks what this key signs.
    pub fn public_key(&self) -> PublicKey {
        use aws_lc_rs::signature::KeyPair as _;
        let mut spki = crate::trust::cosign::P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(self.0.public_key().as_ref());
        PublicKey::from_spki(&spki).expect("a P-256 key pair's own public key")
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, BundleError> {
        self.0
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| invalid("signing failed"))
    }
}

/// A safe name inside `files/`: the input's base name, prefixed by its position.
fn bundle_name(i: usize, input: &Path) -> String {
    let base = input.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("files/{i:04}-{}", clean.trim_start_matches('.'))
}

fn safe_path(p: &str) -> bool {
    p.strip_prefix("files/").is_some_and(|n| {
        !n.is_empty()
            && n.len() <= 200
            && !n.starts_with('.')
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    })
}

/// Every regular file under `inputs` (folders walked, sorted), for bundling.
pub fn gather(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, BundleError> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) -> Result<(), BundleError> {
        let meta = std::fs::metadata(p).map_err(|e| io(format!("{}: {e}", p.display())))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| io(format!("{}: {e}", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for e in entries {
                walk(&e, out)?;
            }
        } else if meta.is_file() {
            out.push(p.to_path_buf());
        }
        Ok(())
    }
    let mut out = Vec::new();
    for i in inputs {
        walk(i, &mut out)?;
    }
    if out.is_empty() {
        return Err(invalid("nothing to bundle: no files under the given paths"));
    }
    if out.len() > MAX_FILES {
        return Err(invalid(format!("at most {MAX_FILES} files per bundle")));
    }
    Ok(out)
}

/// Writes a bundle of `kind` holding `files` to `out`, signed with `key`.
pub fn create(
    out: &Path,
    kind: &str,
    description: &str,
    files: &[PathBuf],
    key: &SigningKey,
) -> Result<Manifest, BundleError> {
    let tmp = out.with_extension("partial");
    let result = (|| {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&tmp).map_err(io)?);
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(true);
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        let mut entries = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let name = bundle_name(i, f);
            let compressed = matches!(
                f.extension().and_then(|x| x.to_str()),
                Some("zip" | "gz" | "bz2" | "xz" | "zst")
            );
            zip.start_file(&name, if compressed { stored } else { deflated })
                .map_err(io)?;
            let src = std::fs::File::open(f).map_err(|e| io(format!("{}: {e}", f.display())))?;
            let (size, sha256) =
                copy_hashed(&mut src.take(MAX_FILE_BYTES + 1), &mut zip).map_err(io)?;
            if size > MAX_FILE_BYTES {
                return Err(invalid(format!(
                    "{}: larger than {MAX_FILE_BYTES} bytes",
                    f.display()
                )));
            }
            entries.push(FileEntry {
                path: name,
                size,
                sha256,
            });
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            kind: kind.into(),
            created_at: Utc::now(),
            description: description.into(),
            files: entries,
        };
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(io)?;
        let sig = base64::engine::general_purpose::STANDARD.encode(key.sign(&bytes)?);
        zip.start_file(MANIFEST, deflated).map_err(io)?;
        zip.write_all(&bytes).map_err(io)?;
        zip.start_file(SIGNATURE, stored).map_err(io)?;
        zip.write_all(sig.as_bytes()).map_err(io)?;
        zip.finish().map_err(io)?.sync_all().map_err(io)?;
        Ok(manifest)
    })();
    match result {
        Ok(m) => {
            std::fs::rename(&tmp, out).map_err(io)?;
            Ok(m)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Copies `from` into `to`, returning how many bytes and their SHA-256 (hex).
fn copy_hashed(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<(u64, String)> {
    let (mut hash, mut size, mut buf) = (Sha256::new(), 0u64, vec![0u8; 1 << 16]);
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok((size, hex::encode(hash.finalize())));
        }
        hash.update(&buf[..n]);
        size += n as u64;
        to.write_all(&buf[..n])?;
    }
}

/// Whether `path` is a bundle (a zip archive holding a bundle manifest).
pub fn is_bundle(path: &Path) -> bool {
    std::fs::File::open(path)
        .ok()
        .and_then(|f| zip::ZipArchive::new(f).ok())
        .is_some_and(|z| z.index_for_name(MANIFEST).is_some())
}

fn read_entry(
    zip: &mut zip::ZipArchive<std::fs::File>,
    name: &str,
    cap: u64,
) -> Result<Vec<u8>, BundleError> {
    let entry = zip
        .by_name(name)
        .map_err(|_| invalid(format!("not a signed bundle: it has no {name}")))?;
    let mut out = Vec::new();
    entry.take(cap + 1).read_to_end(&mut out).map_err(io)?;
    if out.len() as u64 > cap {
        return Err(invalid(format!("{name} is larger than {cap} bytes")));
    }
    Ok(out)
}

/// Checks the bundle at `path` against `keys` and unpacks its files into `scratch` (an empty
/// directory the caller removes). `kind` is what the caller can import.
pub fn open(
    path: &Path,
    keys: &[PublicKey],
    kinds: &[&str],
    scratch: &Path,
) -> Result<Opened, BundleError> {
    if keys.is_empty() {
        return Err(invalid("no key to check the bundle with"));
    }
    let file = std::fs::File::open(path).map_err(|e| io(format!("{}: {e}", path.display())))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| invalid(format!("not a bundle (a zip archive): {e}")))?;
    let manifest_bytes = read_entry(&mut zip, MANIFEST, MAX_MANIFEST)?;
    let sig_text = read_entry(&mut zip, SIGNATURE, 4096)?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(String::from_utf8_lossy(&sig_text).trim())
        .map_err(|_| BundleError::BadSignature)?;
    let key = keys
        .iter()
        .find(|k| k.verify(&manifest_bytes, &sig).is_ok())
        .ok_or(BundleError::BadSignature)?;
    // Signed: from here on the manifest is the publisher's word, still checked for sense.
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| invalid(format!("the manifest: {e}")))?;
    if manifest.format != FORMAT {
        return Err(invalid(format!(
            "a bundle of format '{}' (this Bulwark reads {FORMAT})",
            manifest.format.chars().take(40).collect::<String>()
        )));
    }
    if !kinds.contains(&manifest.kind.as_str()) {
        return Err(invalid(format!(
            "a '{}' bundle, not a {} bundle",
            manifest.kind.chars().take(40).collect::<String>(),
            kinds
                .iter()
                .map(|k| format!("'{k}'"))
                .collect::<Vec<_>>()
                .join(" or ")
        )));
    }
    if manifest.files.len() > MAX_FILES {
        return Err(invalid(format!("more than {MAX_FILES} files")));
    }
    let mut total = 0u64;
    for f in &manifest.files {
        if !safe_path(&f.path) {
            return Err(invalid(format!(
                "the manifest lists '{}', which is not a plain name under files/",
                f.path.chars().take(100).collect::<String>()
            )));
        }
        total = total.saturating_add(f.size);
        if f.size > MAX_FILE_BYTES || total > MAX_TOTAL_BYTES {
            return Err(invalid("the bundle's files are larger than allowed"));
        }
    }
    // Every entry must be accounted for: an extra one (a path that climbs out, a stray file)
    // means the archive is not what was signed.
    for i in 0..zip.len() {
        let name = zip
            .name_for_index(i)
            .ok_or_else(|| invalid("an unreadable entry name"))?
            .to_string();
        let known =
            name == MANIFEST || name == SIGNATURE || manifest.files.iter().any(|f| f.path == name);
        if !known {
            return Err(invalid(format!(
                "the archive holds '{}', which the signed manifest does not list",
                name.chars().take(100).collect::<String>()
            )));
        }
    }
    let mut files = Vec::new();
    for (i, f) in manifest.files.iter().enumerate() {
        let ext = Path::new(&f.path)
            .extension()
            .and_then(|x| x.to_str())
            .filter(|x| x.len() <= 8)
            .unwrap_or("bin");
        let dest = scratch.join(format!("{i:05}.{ext}"));
        let entry = zip
            .by_name(&f.path)
            .map_err(|_| invalid(format!("{} is listed but missing", f.path)))?;
        let mut out = std::fs::File::create(&dest).map_err(io)?;
        // One byte more than the manifest says is enough to tell a lie.
        let (size, sha256) = copy_hashed(&mut entry.take(f.size + 1), &mut out)
            .map_err(|e| invalid(format!("{}: {e}", f.path)))?;
        if size > f.size {
            return Err(invalid(format!(
                "{} does not match the signed manifest (larger than it says)",
                f.path
            )));
        }
        if size != f.size || sha256 != f.sha256.to_ascii_lowercase() {
            return Err(invalid(format!(
                "{} does not match the signed manifest (changed after signing)",
                f.path
            )));
        }
        files.push(dest);
    }
    Ok(Opened {
        manifest,
        key: key.fingerprint(),
        files,
    })
}

/// What importing bundles did.
#[derive(Debug, Default)]
pub struct Applied {
    /// The feeds' import, when a `vulndb` bundle was among them.
    pub report: Option<super::db::ImportReport>,
    /// Custom data types imported, when a `detect-rules` bundle was.
    pub rules: Option<usize>,
    pub bundles: Vec<Imported>,
}

impl Applied {
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = &self.report {
            parts.push(r.summary());
        }
        if let Some(n) = self.rules {
            parts.push(format!(
                "{n} detection rules imported (they apply from the next start)"
            ));
        }
        parts.join("; ")
    }
}

/// Imports bundles: every one is opened and checked with `keys` (into `scratch`), and every
/// rule file parsed and checked, before anything is written; then feeds go into the database
/// at `db` in one transaction and rules into `rules_dir`'s imported rules (replacing same ids).
pub fn import(
    bundles: &[PathBuf],
    keys: &[PublicKey],
    db: &Path,
    rules_dir: &Path,
    scratch: &Path,
) -> Result<Applied, String> {
    let mut feeds = Vec::new();
    let mut rules: Option<Vec<crate::config::CustomTypeConfig>> = None;
    let mut out = Applied::default();
    for (i, path) in bundles.iter().enumerate() {
        let dir = scratch.join(i.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let named = |e: String| format!("{}: {e}; nothing was imported", path.display());
        let opened =
            open(path, keys, &[VULNDB, DETECT_RULES], &dir).map_err(|e| named(e.to_string()))?;
        if opened.manifest.kind == DETECT_RULES {
            let list = rules.get_or_insert_with(Vec::new);
            for f in &opened.files {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| named(format!("a rule file is not text: {e}")))?;
                let file: crate::config::RuleFile = toml::from_str(&text)
                    .map_err(|e| named(format!("a rule file: {}", e.to_string().trim())))?;
                list.extend(file.custom);
            }
        } else {
            feeds.extend(opened.files.iter().cloned());
        }
        out.bundles.push(Imported {
            key: opened.key,
            created_at: opened.manifest.created_at,
            files: opened.files.len(),
        });
    }
    // Rules: the imported set after this import, checked whole.
    let merged = match &rules {
        Some(new) => {
            let mut all = crate::config::imported_rules(rules_dir)?;
            for r in new {
                all.retain(|o| o.id != r.id);
                all.push(r.clone());
            }
            let problems = crate::config::DetectConfig {
                custom: all.clone(),
            }
            .problems();
            if !problems.is_empty() {
                return Err(format!(
                    "the bundle's rules are not valid, nothing was imported: {}",
                    problems.join("; ")
                ));
            }
            Some((new.len(), all))
        }
        None => None,
    };
    if !feeds.is_empty() {
        let vdb = super::db::VulnDb::open(db).map_err(|e| e.to_string())?;
        let mut report = vdb.import(&feeds).map_err(|e| e.to_string())?;
        report.bundle = out.bundles.first().cloned();
        out.report = Some(report);
    }
    if let Some((n, all)) = merged {
        crate::config::save_imported_rules(rules_dir, &all)?;
        out.rules = Some(n);
    }
    Ok(out)
}

/// The trusted public keys in a PEM file (one or more `PUBLIC KEY` blocks).
pub fn read_keys(path: &Path) -> Result<Vec<PublicKey>, BundleError> {
    let text = std::fs::read_to_string(path).map_err(|e| io(format!("{}: {e}", path.display())))?;
    let blocks = crate::trust::parse_keys(&[text])
        .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    blocks
        .iter()
        .map(|b| PublicKey::from_pem(b).map_err(|e| invalid(e.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair() -> (SigningKey, PublicKey) {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
        );
        let key = SigningKey::from_pem(&pem).unwrap();
        let public = key.public_key();
        (key, public)
    }

    #[test]
    fn names_inside_a_bundle_are_plain() {
        assert_eq!(
            bundle_name(3, Path::new("/x/../osv PyPI.zip")),
            "files/0003-osv_PyPI.zip"
        );
        assert_eq!(bundle_name(0, Path::new("/a/.hidden")), "files/0000-hidden");
        for ok in ["files/0001-a.zip", "files/x"] {
            assert!(safe_path(ok), "{ok}");
        }
        for bad in [
            "files/../etc/passwd",
            "/files/a",
            "files/",
            "files/.a",
            "other/a",
            "files/a/b",
            "files/a\\b",
        ] {
            assert!(!safe_path(bad), "{bad}");
        }
    }

    #[test]
    fn a_bundle_opens_only_with_its_key_and_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let feed = dir.path().join("feed.json");
        std::fs::write(&feed, br#"{"id":"X-1"}"#).unwrap();
        let (key, public) = keypair();
        let out = dir.path().join("b.zip");
        let m = create(&out, "vulndb", "test", &[feed], &key).unwrap();
        assert_eq!(m.files.len(), 1);
        assert!(is_bundle(&out));
        let scratch = tempfile::tempdir().unwrap();
        let opened = open(
            &out,
            std::slice::from_ref(&public),
            &[VULNDB],
            scratch.path(),
        )
        .unwrap();
        assert_eq!(std::fs::read(&opened.files[0]).unwrap(), br#"{"id":"X-1"}"#);
        assert_eq!(opened.key, public.fingerprint());
        // Another key, another kind.
        let (_, other) = keypair();
        let s = tempfile::tempdir().unwrap();
        assert!(matches!(
            open(&out, &[other], &[VULNDB], s.path()),
            Err(BundleError::BadSignature)
        ));
        assert!(open(&out, &[public], &[DETECT_RULES], s.path())
            .unwrap_err()
            .to_string()
            .contains("not a 'detect-rules' bundle"));
        assert!(SigningKey::from_pem("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA\n").is_err());
        assert!(SigningKey::from_pem("nothing").is_err());
    }
}
