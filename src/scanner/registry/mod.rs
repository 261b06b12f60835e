//! Pulling an image straight from an OCI distribution registry (Docker Registry v2, Harbor,
//! Artifactory, ...): manifests (multi-platform indexes resolve to the requested platform,
//! linux/amd64 by default), anonymous, basic and bearer-token auth (credentials given, or read
//! from a Docker `config.json`), and layers verified against their digest before they are read.
//! Manifests and layers of media types that are not container images (Helm charts, signatures,
//! schema 1) are refused by name.
//!
//! Layers stream to a temporary file (hashed on the way) and are read from there, so memory
//! stays flat whatever the layer size.

pub mod client;

use serde_json::Value;

use super::layers::{Flattened, Limits};
use super::ScanError;
pub use client::Client;

fn bad(msg: impl Into<String>) -> ScanError {
    ScanError::Image(msg.into())
}

/// `[registry/]repository[:tag][@sha256:…]`, with Docker Hub's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    /// A tag or a `sha256:` digest.
    pub reference: String,
}

impl ImageRef {
    /// Parses an image reference as `docker pull` does.
    pub fn parse(s: &str) -> Result<ImageRef, ScanError> {
        let invalid = || bad(format!("'{s}' is not an image reference"));
        if s.is_empty() || s.len() > 1024 || s.chars().any(|c| c.is_whitespace()) {
            return Err(invalid());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                super::archive::digest_hex(d).map_err(|_| invalid())?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, p)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), p.to_string())
            }
            _ => ("docker.io".to_string(), rest.to_string()),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), Some(t.to_string())),
            _ => (path, None),
        };
        if repository.is_empty()
            || !repository
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        {
            return Err(invalid());
        }
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        Ok(ImageRef {
            registry,
            repository,
            reference: digest.or(tag).unwrap_or_else(|| "latest".into()),
        })
    }
}

/// Credentials and transport for one registry.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Basic credentials (also used to obtain bearer tokens).
    pub username: Option<String>,
    pub password: Option<String>,
    /// Plain HTTP, for registries on a trusted network without TLS.
    pub plain_http: bool,
    /// Accept any TLS certificate (self-signed in-house registries).
    pub insecure_tls: bool,
    /// Which manifest of a multi-platform index to scan.
    pub platform: Platform,
    /// Proxy and extra CAs.
    pub outbound: crate::outbound::Outbound,
}

/// `os/architecture[/variant]`, as `docker pull --platform` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl std::str::FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric());
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(format!(
                "'{s}' is not a platform: give OS/ARCH[/VARIANT], e.g. linux/arm64"
            )),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// Whether an index entry's `platform` object is this one (a variant is compared only when
    /// one was asked for).
    fn matches(&self, p: &Value) -> bool {
        p.get("os").and_then(Value::as_str) == Some(&self.os)
            && p.get("architecture").and_then(Value::as_str) == Some(&self.architecture)
            && self
                .variant
                .as_deref()
                .is_none_or(|v| p.get("variant").and_then(Value::as_str) == Some(v))
    }
}

/// Credentials for `registry` in a Docker `config.json` (`auths`, with or without a scheme;
/// Docker Hub under its legacy key), as (user, password). Credential helpers are not run.
pub fn docker_config_credentials(config: &str, registry: &str) -> Option<(String, String)> {
    use base64::Engine;
    let v: Value = serde_json::from_str(config).ok()?;
    let auths = v.get("auths")?.as_object()?;
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ];
    if registry == "docker.io" {
        keys.insert(0, "https://index.docker.io/v1/".into());
        keys.push("index.docker.io".into());
    }
    let entry = keys.iter().find_map(|k| auths.get(k))?;
    if let (Some(u), Some(p)) = (
        entry.get("username").and_then(Value::as_str),
        entry.get("password").and_then(Value::as_str),
    ) {
        return Some((u.to_string(), p.to_string()));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(entry.get("auth")?.as_str()?.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Layer media types that hold a root filesystem diff (plain, gzip or zstd tar).
fn is_layer_type(media_type: &str) -> bool {
    media_type.is_empty()
        || media_type.starts_with("application/vnd.oci.image.layer.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.")
}

/// Where a pull is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullProgress {
    /// The layer being fetched (0-based) and how many there are.
    pub layer: usize,
    pub layers: usize,
    /// Bytes of this layer fetched, and its size as the manifest states it.
    pub done: u64,
    pub size: u64,
}

impl PullProgress {
    /// `layer 2/5 [########............]  12.3/51.0 MiB`.
    pub fn bar(&self) -> String {
        const WIDTH: u64 = 20;
        let filled = (self.done.min(self.size) * WIDTH)
            .checked_div(self.size)
            .unwrap_or(0);
        let mib = |b: u64| b as f64 / 1_048_576.0;
        format!(
            "layer {}/{} [{}{}] {:6.1}/{:.1} MiB",
            self.layer + 1,
            self.layers,
            "#".repeat(filled as usize),
            ".".repeat((WIDTH - filled) as usize),
            mib(self.done),
            mib(self.size)
        )
    }
}

/// Pulls `image` and flattens its layers.
pub async fn pull(
    image: &ImageRef,
    access: &Access,
    limits: &Limits,
) -> Result<Flattened, ScanError> {
    pull_with_progress(image, access, limits, &mut |_| {}).await
}

/// [`pull`], reporting progress as layers arrive.
pub async fn pull_with_progress(
    image: &ImageRef,
    access: &Access,
    limits: &Limits,
    progress: &mut dyn FnMut(PullProgress),
) -> Result<Flattened, ScanError> {
    let mut s = Client::new(image, access, std::time::Duration::from_secs(600))?;
    let top = s.manifest(&image.reference).await?;
    let top_digest = top.digest;
    let mut manifest = top.value;
    if let Some(list) = manifest.get("manifests").and_then(Value::as_array) {
        let wanted = &access.platform;
        let chosen = list
            .iter()
            .find(|m| m.get("platform").is_some_and(|p| wanted.matches(p)))
            .ok_or_else(|| {
                let offered: Vec<String> = list
                    .iter()
                    .filter_map(|m| m.get("platform"))
                    .map(|p| {
                        let f = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("?");
                        format!("{}/{}", f("os"), f("architecture"))
                    })
                    .collect();
                bad(format!(
                    "the image has no {wanted} manifest (it has: {}); choose one with --platform",
                    offered.join(", ")
                ))
            })?
            .get("digest")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("an index entry without a digest"))?
            .to_string();
        manifest = s.manifest(&chosen).await?.value;
    }
    check_media_types(&manifest)?;
    let layers: Vec<(String, u64)> = manifest
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("the manifest lists no layers"))?
        .iter()
        .map(|l| {
            (
                l.get("digest")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                l.get("size").and_then(Value::as_u64).unwrap_or(0),
            )
        })
        .collect();
    let repo_digest = format!("{}/{}@{top_digest}", image.registry, image.repository);
    let mut image = Flattened::new();
    image.repo_digests = vec![repo_digest];
    image.image_id = manifest
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .map(String::from);
    let tmp = std::env::temp_dir().join(format!(
        "bulwark-layer-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = async {
        let count = layers.len();
        for (layer, (digest, size)) in layers.iter().enumerate() {
            let mut f = std::fs::File::create(&tmp).map_err(|e| bad(e.to_string()))?;
            let size = *size;
            progress(PullProgress {
                layer,
                layers: count,
                done: 0,
                size,
            });
            s.blob_to_file(digest, &mut f, limits.max_bytes, &mut |done| {
                progress(PullProgress {
                    layer,
                    layers: count,
                    done,
                    size,
                })
            })
            .await?;
            let f = std::fs::File::open(&tmp).map_err(|e| bad(e.to_string()))?;
            image
                .apply(std::io::BufReader::new(f), limits)
                .map_err(|e| bad(e.to_string()))?;
        }
        Ok::<(), ScanError>(())
    }
    .await;
    let _ = std::fs::remove_file(&tmp);
    result.map(|_| image)
}

/// Refuses, by name, manifests that are not container images: schema 1, artifacts such as Helm
/// charts or signatures (their config or layers are of other types).
fn check_media_types(manifest: &Value) -> Result<(), ScanError> {
    if manifest.get("schemaVersion").and_then(Value::as_i64) == Some(1) {
        return Err(bad(
            "Docker schema 1 manifests are not supported (deprecated since 2017): push the image again with a current client",
        ));
    }
    let media = |v: &Value| {
        v.get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let top = media(manifest);
    if !(top.is_empty()
        || top == "application/vnd.oci.image.manifest.v1+json"
        || top == "application/vnd.docker.distribution.manifest.v2+json")
    {
        return Err(bad(format!("unsupported manifest media type '{top}'")));
    }
    if let Some(config) = manifest.get("config") {
        let c = media(config);
        if !(c.is_empty()
            || c == "application/vnd.oci.image.config.v1+json"
            || c == "application/vnd.docker.container.image.v1+json")
        {
            return Err(bad(format!(
                "not a container image: its config is '{c}' (an artifact such as a Helm chart or a signature)"
            )));
        }
    }
    for l in manifest
        .get("layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let t = media(l);
        if !is_layer_type(&t) {
            return Err(bad(format!("a layer of unsupported media type '{t}'")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_bars() {
        let p = PullProgress {
            layer: 1,
            layers: 5,
            done: 5 * 1_048_576,
            size: 10 * 1_048_576,
        };
        assert_eq!(p.bar(), "layer 2/5 [##########..........]    5.0/10.0 MiB");
        let unknown_size = PullProgress { size: 0, ..p };
        assert!(unknown_size.bar().contains("[....................]"));
        let over = PullProgress {
            done: 99 * 1_048_576,
            ..p
        };
        assert!(over.bar().contains("[####################]"));
    }

    #[test]
    fn platforms_and_media_types() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert!(p.matches(&serde_json::json!({"os":"linux","architecture":"arm64","variant":"v8"})));
        assert!(
            !p.matches(&serde_json::json!({"os":"linux","architecture":"arm64","variant":"v7"}))
        );
        let any_variant: Platform = "linux/arm".parse().unwrap();
        assert!(any_variant
            .matches(&serde_json::json!({"os":"linux","architecture":"arm","variant":"v7"})));
        assert_eq!(Platform::default().to_string(), "linux/amd64");
        for bad in ["linux", "linux/", "a/b/c/d", "li nux/amd64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
        let helm = serde_json::json!({"schemaVersion":2,"config":{"mediaType":"application/vnd.cncf.helm.config.v1+json"},"layers":[]});
        assert!(check_media_types(&helm)
            .unwrap_err()
            .to_string()
            .contains("Helm"));
        let v1 = serde_json::json!({"schemaVersion":1,"fsLayers":[]});
        assert!(check_media_types(&v1)
            .unwrap_err()
            .to_string()
            .contains("schema 1"));
        let odd_layer =
            serde_json::json!({"schemaVersion":2,"layers":[{"mediaType":"application/x-unknown"}]});
        assert!(check_media_types(&odd_layer)
            .unwrap_err()
            .to_string()
            .contains("x-unknown"));
        let image = serde_json::json!({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json"},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd"},{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip"}]});
        check_media_types(&image).unwrap();
    }

    #[test]
    fn docker_config_credentials_by_registry() {
        let cfg = r#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"aHViOmh1YnBhc3M="},
            "registry.local:5000":{"auth":"Y2k6czNjcjp0"},
            "https://harbor.example":{"username":"robot$ci","password":"tok"}},
            "credHelpers":{"gcr.io":"gcloud"}}"#;
        assert_eq!(
            docker_config_credentials(cfg, "docker.io"),
            Some(("hub".into(), "hubpass".into()))
        );
        assert_eq!(
            docker_config_credentials(cfg, "registry.local:5000"),
            Some(("ci".into(), "s3cr:t".into())),
            "only the first colon splits"
        );
        assert_eq!(
            docker_config_credentials(cfg, "harbor.example"),
            Some(("robot$ci".into(), "tok".into()))
        );
        assert_eq!(docker_config_credentials(cfg, "gcr.io"), None);
        assert_eq!(docker_config_credentials("{bad", "x"), None);
    }

    #[test]
    fn parses_references_like_docker() {
        let r = ImageRef::parse("alpine").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("docker.io", "library/alpine", "latest")
        );
        let r = ImageRef::parse("127.0.0.1:5000/team/app:1.2").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("127.0.0.1:5000", "team/app", "1.2")
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("registry.local/app:1@{d}")).unwrap();
        assert_eq!(r.reference, d, "the digest wins over the tag");
        for bad in ["", "UPPER/case", "a b", "x@sha256:../../etc", "reg.io/:tag"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }
}
