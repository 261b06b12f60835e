//! Flattening an image's layers into the few files the catalogers read, in memory.
//!
//! Nothing is extracted to disk, so a hostile layer cannot write outside anything: entry paths
//! are normalised (`..` stops at the root), and only package databases, os-release, language
//! package files, symlinks and the build information of Go executables are kept. Whiteouts (`.wh.NAME`, `.wh..wh..opq`) hide lower layers as the OCI image spec says.
//! Limits on entries, bytes and kept-file size turn a decompression bomb into an error.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};

use super::catalog::lang::go;
use super::rootfs::{resolve_with, Node};
use super::tar::{Kind, Reader, TarError};

/// Bounds that make hostile layers fail fast.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Entries across all layers.
    pub max_entries: u64,
    /// Uncompressed bytes across all layers.
    pub max_bytes: u64,
    /// Largest file kept for a cataloger (larger ones are skipped and reported).
    pub max_file: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 5_000_000,
            max_bytes: 64 * 1024 * 1024 * 1024,
            max_file: super::rootfs::MAX_FILE_BYTES,
        }
    }
}

/// Why a layer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {layer}: {source}")]
    Tar { layer: usize, source: TarError },
    #[error("the image exceeds {0}")]
    TooLarge(String),
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A zstd stream of one or more frames (pzstd and some registries write several). Each frame's
/// window is capped at 128 MiB, zstd's own default for decoders, so a hostile header cannot
/// make the decoder reserve gigabytes.
struct ZstdFrames<R: BufRead> {
    src: Option<R>,
    frame: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(src: R) -> Self {
        ZstdFrames {
            src: Some(src),
            frame: None,
        }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let bad =
            |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("zstd: {e}"));
        loop {
            if let Some(frame) = self.frame.as_mut() {
                let n = frame.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.src = self.frame.take().map(|f| f.into_inner());
            }
            let Some(mut src) = self.src.take() else {
                return Ok(0);
            };
            if src.fill_buf()?.is_empty() {
                return Ok(0);
            }
            self.frame =
                Some(ruzstd::decoding::StreamingDecoder::new(src).map_err(|e| bad(e.to_string()))?);
        }
    }
}

/// Paths the catalogers read; everything else in a layer is only counted.
pub fn wanted(path: &str) -> bool {
    matches!(
        path,
        "etc/os-release" | "usr/lib/os-release" | "var/lib/dpkg/status" | "lib/apk/db/installed"
    ) || path.starts_with("var/lib/dpkg/status.d/")
        || super::catalog::rpm::SQLITE_PATHS.contains(&path)
        || super::catalog::rpm::BDB_PATHS.contains(&path)
        || super::catalog::lang::classify(path).is_some()
}

/// Normalises a tar path: no leading `/` or `./`, `..` clamped at the root, no NULs.
pub fn normalize(raw: &str) -> Option<String> {
    if raw.contains('\0') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

/// The merged view of an image's layers.
#[derive(Debug, Default)]
pub struct Flattened {
    files: BTreeMap<String, Vec<u8>>,
    links: BTreeMap<String, String>,
    /// Kept-file candidates that were too large, and similar notes for the report.
    pub skipped: Vec<String>,
    /// The image's config digest (`Metadata.ImageID`), when its source names one.
    pub image_id: Option<String>,
    /// `repository@sha256:…` of a registry pull (`Metadata.RepoDigests`).
    pub repo_digests: Vec<String>,
    entries: u64,
    bytes: u64,
    layers: usize,
}

/// One layer's changes, applied only after the whole layer is read: whiteouts hide lower
/// layers, never entries of the same layer.
#[derive(Default)]
struct Staged {
    files: Vec<(String, Vec<u8>)>,
    links: Vec<(String, String)>,
    hardlinks: Vec<(String, String)>,
    paths: Vec<String>,
    whiteouts: Vec<String>,
    opaque: Vec<String>,
}

fn remove_under<V>(map: &mut BTreeMap<String, V>, dir: &str) {
    let prefix = format!("{dir}/");
    let doomed: Vec<String> = map
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        map.remove(&k);
    }
}

impl Flattened {
    /// Starts an empty image.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the next layer (plain or gzip tar; the compression is detected).
    pub fn apply(&mut self, layer: impl Read, limits: &Limits) -> Result<(), LayerError> {
        let index = self.layers;
        self.layers += 1;
        let mut input = BufReader::new(layer);
        let head = input
            .fill_buf()
            .map_err(|e| LayerError::Tar {
                layer: index,
                source: e.into(),
            })?
            .to_vec();
        let staged = if head.starts_with(&ZSTD_MAGIC) {
            self.read_layer(ZstdFrames::new(input), limits, index)?
        } else if head.starts_with(&[0x1f, 0x8b]) {
            self.read_layer(flate2::read::GzDecoder::new(input), limits, index)?
        } else {
            self.read_layer(input, limits, index)?
        };
        self.commit(staged);
        Ok(())
    }

    fn read_layer(
        &mut self,
        input: impl Read,
        limits: &Limits,
        layer: usize,
    ) -> Result<Staged, LayerError> {
        let err = |source| LayerError::Tar { layer, source };
        let mut tar = Reader::new(input);
        let mut staged = Staged::default();
        while let Some(entry) = tar.next_entry().map_err(err)? {
            self.entries += 1;
            self.bytes += entry.size;
            if self.entries > limits.max_entries {
                return Err(LayerError::TooLarge(format!(
                    "{} entries",
                    limits.max_entries
                )));
            }
            if self.bytes > limits.max_bytes {
                return Err(LayerError::TooLarge(format!(
                    "{} uncompressed bytes",
                    limits.max_bytes
                )));
            }
            let Some(path) = normalize(&entry.path) else {
                continue;
            };
            let (dir, base) = match path.rsplit_once('/') {
                Some((d, b)) => (d.to_string(), b),
                None => (String::new(), path.as_str()),
            };
            if base == ".wh..wh..opq" {
                staged.opaque.push(dir);
                continue;
            }
            if let Some(hidden) = base.strip_prefix(".wh.") {
                staged.whiteouts.push(if dir.is_empty() {
                    hidden.to_string()
                } else {
                    format!("{dir}/{hidden}")
                });
                continue;
            }
            staged.paths.push(path.clone());
            match entry.kind {
                Kind::Symlink(target) => staged.links.push((path, target)),
                Kind::Hardlink(target) => {
                    if let Some(t) = normalize(&target).filter(|_| wanted(&path)) {
                        staged.hardlinks.push((path, t));
                    }
                }
                // Databases the scan cannot read yet: only their presence is kept, to say so.
                Kind::File if super::catalog::rpm::UNREAD_PATHS.contains(&path.as_str()) => {
                    staged.files.push((path, Vec::new()))
                }
                Kind::File if wanted(&path) => match tar.read_body(limits.max_file).map_err(err)? {
                    Some(body) => staged.files.push((path, body)),
                    None => self.skipped.push(format!(
                        "{path}: larger than {} bytes, not read",
                        limits.max_file
                    )),
                },
                // Executables are streamed through for Go build information; only that is kept,
                // at the binary's path (see `go_binaries`).
                Kind::File if entry.mode & 0o111 != 0 && entry.size > 1024 => {
                    if let Some(info) =
                        go::find_build_info(&mut tar.body()).map_err(|e| err(e.into()))?
                    {
                        staged.files.push((path, info));
                    }
                }
                _ => {}
            }
        }
        // Drain what follows the end marker so a streaming digest sees every byte.
        let mut rest = tar.into_inner();
        std::io::copy(&mut rest, &mut std::io::sink()).map_err(|e| err(e.into()))?;
        Ok(staged)
    }

    fn commit(&mut self, staged: Staged) {
        for dir in &staged.opaque {
            remove_under(&mut self.files, dir);
            remove_under(&mut self.links, dir);
        }
        for p in &staged.whiteouts {
            self.files.remove(p);
            self.links.remove(p);
            remove_under(&mut self.files, p);
            remove_under(&mut self.links, p);
        }
        for p in staged.paths {
            // A later entry replaces whatever was at its path.
            self.files.remove(&p);
            self.links.remove(&p);
        }
        for (p, body) in staged.files {
            self.files.insert(p, body);
        }
        for (p, t) in staged.links {
            self.links.insert(p, t);
        }
        for (p, target) in staged.hardlinks {
            if let Some(body) = self.files.get(&target).cloned() {
                self.files.insert(p, body);
            }
        }
    }

    fn resolve(&self, rel: &str) -> Option<String> {
        resolve_with(rel, |parts| {
            // Only links matter here: layers may omit parent directories, and a missing leaf
            // shows up as a failed lookup in `read`.
            match self.links.get(&parts.join("/")) {
                Some(t) => Node::Link(t.clone()),
                None => Node::Present,
            }
        })
        .map(|parts| parts.join("/"))
    }

    /// A kept file, following symlinks inside the image.
    pub fn read(&self, rel: &str) -> Option<Vec<u8>> {
        self.files.get(&self.resolve(rel)?).cloned()
    }

    /// Whether a file is kept at `rel` (following symlinks), without copying it.
    pub fn contains(&self, rel: &str) -> bool {
        self.resolve(rel)
            .is_some_and(|p| self.files.contains_key(&p))
    }

    /// Every kept file `pred` accepts (language metadata lives anywhere in an image).
    pub fn find(&self, pred: &dyn Fn(&str) -> bool) -> Vec<String> {
        self.files.keys().filter(|k| pred(k)).cloned().collect()
    }

    /// Executables that carry Go build information, with that information.
    pub fn go_binaries(&self) -> Vec<(String, Vec<u8>)> {
        self.files
            .iter()
            .filter(|(_, body)| body.starts_with(go::MAGIC))
            .map(|(p, b)| (p.clone(), b.clone()))
            .collect()
    }

    /// Kept files directly in a directory (for `var/lib/dpkg/status.d/`).
    pub fn list(&self, rel: &str) -> Vec<String> {
        let Some(dir) = self.resolve(rel) else {
            return vec![];
        };
        let prefix = format!("{dir}/");
        self.files
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|rest| !rest.contains('/'))
            .map(|rest| format!("{}/{rest}", rel.trim_end_matches('/')))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tar::testing::archive;
    use super::*;

    const OS: &[u8] = b"ID=alpine\nVERSION_ID=3.10.9\n";

    #[test]
    fn whiteouts_links_and_replacement_follow_the_spec() {
        let mut f = Flattened::new();
        let lower = archive(&[
            ("usr/lib/os-release", b'0', "", OS),
            ("etc/os-release", b'2', "../usr/lib/os-release", b""),
            ("lib/apk/db/installed", b'0', "", b"P:old\nV:1\n"),
            ("var/lib/dpkg/status.d/a", b'0', "", b"Package: a\n"),
            ("var/lib/dpkg/status.d/b", b'0', "", b"Package: b\n"),
            ("usr/bin/tool", b'0', "", b"binary, not kept"),
        ]);
        f.apply(&lower[..], &Limits::default()).unwrap();
        assert_eq!(f.read("etc/os-release").as_deref(), Some(OS));
        assert_eq!(
            f.read("usr/bin/tool"),
            None,
            "only cataloged files are kept"
        );
        assert_eq!(
            f.list("var/lib/dpkg/status.d"),
            vec!["var/lib/dpkg/status.d/a", "var/lib/dpkg/status.d/b"]
        );

        let upper = archive(&[
            // Replaced in an upper layer.
            ("./lib/apk/db/installed", b'0', "", b"P:new\nV:2\n"),
            // One file whited out; an opaque directory hides the rest of the lower directory
            // but not what this same layer adds to it.
            ("var/lib/dpkg/status.d/c", b'0', "", b"Package: c\n"),
            ("var/lib/dpkg/status.d/.wh..wh..opq", b'0', "", b""),
            ("etc/.wh.os-release", b'0', "", b""),
        ]);
        f.apply(&upper[..], &Limits::default()).unwrap();
        assert_eq!(
            f.read("lib/apk/db/installed").as_deref(),
            Some(&b"P:new\nV:2\n"[..])
        );
        assert_eq!(
            f.list("var/lib/dpkg/status.d"),
            vec!["var/lib/dpkg/status.d/c"]
        );
        assert_eq!(f.read("etc/os-release"), None);
        assert_eq!(f.read("usr/lib/os-release").as_deref(), Some(OS));
    }

    #[test]
    fn hostile_layers_stay_contained() {
        let mut f = Flattened::new();
        let evil = archive(&[
            // Traversal is clamped at the image root, never the host.
            ("../../../../etc/os-release", b'0', "", OS),
            // A link out of the image resolves inside it.
            ("lib/apk/db/installed", b'2', "/../../../etc/shadow", b""),
        ]);
        f.apply(&evil[..], &Limits::default()).unwrap();
        assert_eq!(f.read("etc/os-release").as_deref(), Some(OS));
        assert_eq!(f.read("lib/apk/db/installed"), None);

        // Too many entries, too many bytes, oversized kept files.
        let many = archive(&[
            ("a", b'0', "", b""),
            ("b", b'0', "", b""),
            ("c", b'0', "", b""),
        ]);
        let tight = Limits {
            max_entries: 2,
            ..Limits::default()
        };
        assert!(matches!(
            Flattened::new().apply(&many[..], &tight),
            Err(LayerError::TooLarge(_))
        ));
        let big = archive(&[("usr/share/blob", b'0', "", &[1u8; 4096])]);
        let small = Limits {
            max_bytes: 1000,
            ..Limits::default()
        };
        assert!(Flattened::new().apply(&big[..], &small).is_err());
        let mut f = Flattened::new();
        let fat = archive(&[("var/lib/dpkg/status", b'0', "", &[b'x'; 4096])]);
        let lim = Limits {
            max_file: 100,
            ..Limits::default()
        };
        f.apply(&fat[..], &lim).unwrap();
        assert_eq!(f.read("var/lib/dpkg/status"), None);
        assert_eq!(f.skipped.len(), 1);

        // A zstd frame asking for a 2 TiB window, truncated zstd, garbage and truncated gzip
        // are errors.
        for hostile in [
            &[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0, 0, 0, 0][..],
            &[0x28, 0xb5, 0x2f, 0xfd, 0, 0][..],
        ] {
            assert!(Flattened::new().apply(hostile, &Limits::default()).is_err());
        }
        assert!(Flattened::new()
            .apply(&[0x1f, 0x8b, 8, 0, 1, 2, 3][..], &Limits::default())
            .is_err());
        assert!(Flattened::new()
            .apply(
                &b"not a tar at all, just text that fills a block"[..],
                &Limits::default()
            )
            .is_err());
    }

    #[test]
    fn zstd_layers_of_one_or_more_frames() {
        use ruzstd::encoding::{compress_to_vec, CompressionLevel};
        let plain = archive(&[
            ("etc/os-release", b'0', "", OS),
            ("lib/apk/db/installed", b'0', "", b"P:musl\nV:1.1.24-r2\n\n"),
        ]);
        let one = compress_to_vec(&plain[..], CompressionLevel::Fastest);
        let mut f = Flattened::new();
        f.apply(&one[..], &Limits::default()).unwrap();
        assert_eq!(f.read("etc/os-release").as_deref(), Some(OS));
        // The same archive split across two frames, as pzstd writes.
        let (a, b) = plain.split_at(700);
        let mut two = compress_to_vec(a, CompressionLevel::Fastest);
        two.extend(compress_to_vec(b, CompressionLevel::Fastest));
        let mut f = Flattened::new();
        f.apply(&two[..], &Limits::default()).unwrap();
        assert!(f.read("lib/apk/db/installed").is_some());
    }

    #[test]
    fn gzip_layers_are_detected() {
        use std::io::Write;
        let plain = archive(&[("etc/os-release", b'0', "", OS)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let mut f = Flattened::new();
        f.apply(&gz[..], &Limits::default()).unwrap();
        assert_eq!(f.read("etc/os-release").as_deref(), Some(OS));
    }
}
