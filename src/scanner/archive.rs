//! Images saved to disk: `docker save` archives (`docker-archive:FILE.tar`, both the classic
//! layout and the OCI layout newer Docker writes inside it) and OCI image layouts
//! (`oci:DIR[:TAG]`, as written by skopeo, crane, buildah or `docker buildx --output type=oci`).
//!
//! Digests from manifests are validated before they become paths, and OCI blobs are checked
//! against their digest while they stream through the layer reader.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::layers::{Flattened, LayerError, Limits};
use super::tar::Reader;
use super::ScanError;

/// Largest manifest or index read (real ones are a few KiB).
const MAX_JSON: u64 = 4 * 1024 * 1024;

fn bad(msg: impl Into<String>) -> ScanError {
    ScanError::Image(msg.into())
}

fn layer_err(e: LayerError) -> ScanError {
    ScanError::Image(e.to_string())
}

/// `sha256:<64 hex>` → the hex, refusing anything that could name another path or URL.
pub(crate) fn digest_hex(digest: &str) -> Result<&str, ScanError> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(h),
        _ => Err(bad(format!("unsupported or malformed digest '{digest}'"))),
    }
}

/// Reads a `docker save` tarball.
pub fn docker_archive(path: &Path, limits: &Limits) -> Result<Flattened, ScanError> {
    let open = || File::open(path).map_err(|e| bad(format!("{}: {e}", path.display())));
    // First pass: where each member's body starts, and the manifest.
    let mut members: std::collections::HashMap<String, (u64, u64)> = Default::default();
    let mut manifest: Option<Vec<u8>> = None;
    let mut tar = Reader::new(std::io::BufReader::new(open()?));
    while let Some(e) = tar.next_entry().map_err(|e| bad(e.to_string()))? {
        let name = super::layers::normalize(&e.path).unwrap_or_default();
        if name == "manifest.json" {
            manifest = tar.read_body(MAX_JSON).map_err(|e| bad(e.to_string()))?;
            continue;
        }
        if matches!(e.kind, super::tar::Kind::File) {
            members.insert(name, (tar.position(), e.size));
        }
    }
    let manifest = manifest.ok_or_else(|| bad("no manifest.json: not a docker save archive"))?;
    let manifest: Value = serde_json::from_slice(&manifest)
        .map_err(|e| bad(format!("manifest.json is not JSON: {e}")))?;
    let layers: Vec<String> = manifest
        .get(0)
        .and_then(|m| m.get("Layers"))
        .and_then(Value::as_array)
        .ok_or_else(|| bad("manifest.json lists no Layers"))?
        .iter()
        .map(|l| {
            l.as_str()
                .and_then(super::layers::normalize)
                .unwrap_or_default()
        })
        .collect();
    let mut image = Flattened::new();
    // `Config` is `<hex>.json` (classic) or `blobs/sha256/<hex>` (OCI inside the archive).
    image.image_id = manifest
        .pointer("/0/Config")
        .and_then(Value::as_str)
        .and_then(|c| c.rsplit('/').next())
        .map(|c| c.trim_end_matches(".json"))
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|h| format!("sha256:{h}"));
    for layer in layers {
        let (offset, size) = *members
            .get(&layer)
            .ok_or_else(|| bad(format!("layer '{layer}' is missing from the archive")))?;
        let mut f = open()?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| bad(e.to_string()))?;
        image.apply(f.take(size), limits).map_err(layer_err)?;
    }
    Ok(image)
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, ScanError> {
    Ok(dir.join("blobs/sha256").join(digest_hex(digest)?))
}

fn read_json_blob(dir: &Path, digest: &str) -> Result<Value, ScanError> {
    let p = blob_path(dir, digest)?;
    let mut body = Vec::new();
    File::open(&p)
        .map_err(|e| bad(format!("blob {digest}: {e}")))?
        .take(MAX_JSON)
        .read_to_end(&mut body)
        .map_err(|e| bad(e.to_string()))?;
    if hex::encode(Sha256::digest(&body)) != digest_hex(digest)? {
        return Err(bad(format!("blob {digest} does not match its digest")));
    }
    serde_json::from_slice(&body).map_err(|e| bad(format!("blob {digest} is not JSON: {e}")))
}

/// Picks the image manifest: by tag annotation when given, descending through an index (the
/// linux/amd64 entry, else the first) when the layout holds a multi-platform image.
fn pick_manifest(dir: &Path, index: &Value, tag: Option<&str>) -> Result<Value, ScanError> {
    let entries = index
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("the index lists no manifests"))?;
    let chosen = match tag {
        Some(t) => entries.iter().find(|m| {
            m.pointer("/annotations/org.opencontainers.image.ref.name")
                .and_then(Value::as_str)
                == Some(t)
        }),
        None => entries
            .iter()
            .find(|m| m.pointer("/platform/architecture").and_then(Value::as_str) == Some("amd64"))
            .or_else(|| entries.first()),
    }
    .ok_or_else(|| bad(format!("no manifest tagged '{}'", tag.unwrap_or(""))))?;
    let digest = chosen
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a manifest entry has no digest"))?;
    let blob = read_json_blob(dir, digest)?;
    if blob.get("manifests").is_some() {
        return pick_manifest(dir, &blob, None);
    }
    Ok(blob)
}

/// Reads an OCI image layout directory.
pub fn oci_layout(dir: &Path, tag: Option<&str>, limits: &Limits) -> Result<Flattened, ScanError> {
    let mut index = Vec::new();
    File::open(dir.join("index.json"))
        .map_err(|e| bad(format!("{}: no index.json ({e})", dir.display())))?
        .take(MAX_JSON)
        .read_to_end(&mut index)
        .map_err(|e| bad(e.to_string()))?;
    let index: Value =
        serde_json::from_slice(&index).map_err(|e| bad(format!("index.json: {e}")))?;
    let manifest = pick_manifest(dir, &index, tag)?;
    let layers = manifest
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("the manifest lists no layers"))?;
    let mut image = Flattened::new();
    image.image_id = manifest
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .filter(|d| digest_hex(d).is_ok())
        .map(String::from);
    for l in layers {
        let digest = l
            .get("digest")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("a layer has no digest"))?;
        let path = blob_path(dir, digest)?;
        let file = File::open(&path).map_err(|e| bad(format!("layer {digest}: {e}")))?;
        let mut hashing = Hashing {
            inner: std::io::BufReader::new(file),
            hash: Sha256::new(),
        };
        image.apply(&mut hashing, limits).map_err(layer_err)?;
        std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| bad(e.to_string()))?;
        if hex::encode(hashing.hash.finalize()) != digest_hex(digest)? {
            return Err(bad(format!("layer {digest} does not match its digest")));
        }
    }
    Ok(image)
}
