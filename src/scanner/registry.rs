//! Pulling an image straight from an OCI distribution registry (Docker Registry v2, Harbor,
//! Artifactory, ...): manifests (multi-platform indexes resolve to linux/amd64), anonymous,
//! basic and bearer-token auth, and layers verified against their digest before they are read.
//!
//! Layers stream to a temporary file (hashed on the way) and are read from there, so memory
//! stays flat whatever the layer size.

use std::io::Write;

use reqwest::header::{ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::layers::{Flattened, Limits};
use super::ScanError;

const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
/// Largest manifest accepted.
const MAX_MANIFEST: usize = 4 * 1024 * 1024;

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
}

struct Session {
    client: Client,
    base: String,
    access: Access,
    token: Option<String>,
    repository: String,
}

fn challenge_params(header: &str) -> std::collections::HashMap<String, String> {
    // `Bearer realm="https://…",service="…",scope="…"`
    let mut out = std::collections::HashMap::new();
    let rest = header.split_once(' ').map(|x| x.1).unwrap_or("");
    for part in rest.split(',') {
        if let Some((k, v)) = part.trim().split_once('=') {
            out.insert(
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            );
        }
    }
    out
}

impl Session {
    async fn send(&self, url: &str, accept: Option<&str>) -> Result<Response, ScanError> {
        let mut req = self.client.get(url);
        if let Some(a) = accept {
            req = req.header(ACCEPT, a);
        }
        if let Some(t) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        } else if let Some(u) = &self.access.username {
            req = req.basic_auth(u, self.access.password.as_deref());
        }
        req.send().await.map_err(|e| bad(format!("{url}: {e}")))
    }

    /// GETs a path under the repository, answering one bearer challenge with a token.
    async fn get(&mut self, path: &str, accept: Option<&str>) -> Result<Response, ScanError> {
        let url = format!("{}/v2/{}/{path}", self.base, self.repository);
        let res = self.send(&url, accept).await?;
        if res.status() != StatusCode::UNAUTHORIZED {
            return Ok(res);
        }
        let challenge = res
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !challenge.to_ascii_lowercase().starts_with("bearer") {
            return Err(bad(if self.access.username.is_some() {
                format!("{url}: the registry refused the credentials (401)")
            } else {
                format!("{url}: the registry wants credentials (401): pass --username and BULWARK_REGISTRY_PASSWORD")
            }));
        }
        self.token = Some(self.fetch_token(&challenge).await?);
        self.send(&url, accept).await
    }

    async fn fetch_token(&self, challenge: &str) -> Result<String, ScanError> {
        let p = challenge_params(challenge);
        let realm = p
            .get("realm")
            .ok_or_else(|| bad("the registry's bearer challenge names no realm"))?;
        let mut url = url::Url::parse(realm).map_err(|e| bad(format!("token realm: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = p.get("service") {
                q.append_pair("service", s);
            }
            let scope = p
                .get("scope")
                .cloned()
                .unwrap_or_else(|| format!("repository:{}:pull", self.repository));
            q.append_pair("scope", &scope);
        }
        let mut req = self.client.get(url);
        if let Some(u) = &self.access.username {
            req = req.basic_auth(u, self.access.password.as_deref());
        }
        let res = req.send().await.map_err(|e| bad(format!("token: {e}")))?;
        if !res.status().is_success() {
            return Err(bad(format!(
                "the registry refused a token ({}): check the credentials",
                res.status()
            )));
        }
        let v: Value = res.json().await.map_err(|e| bad(format!("token: {e}")))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| bad("the token response holds no token"))
    }

    /// A manifest or index and the digest of its bytes.
    async fn manifest(&mut self, reference: &str) -> Result<(Value, String), ScanError> {
        let res = self
            .get(&format!("manifests/{reference}"), Some(MANIFEST_TYPES))
            .await?;
        let status = res.status();
        if !status.is_success() {
            return Err(bad(format!(
                "manifest {reference}: the registry answered {status}"
            )));
        }
        let body = res.bytes().await.map_err(|e| bad(e.to_string()))?;
        if body.len() > MAX_MANIFEST {
            return Err(bad("the manifest is larger than 4 MiB"));
        }
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        if reference.starts_with("sha256:") && digest != reference {
            return Err(bad(format!(
                "manifest {reference} does not match its digest"
            )));
        }
        let v = serde_json::from_slice(&body).map_err(|e| bad(format!("manifest: {e}")))?;
        Ok((v, digest))
    }

    /// Streams a blob to `file`, verifying its digest and size cap.
    async fn blob(
        &mut self,
        digest: &str,
        file: &mut std::fs::File,
        cap: u64,
    ) -> Result<(), ScanError> {
        let hex = super::archive::digest_hex(digest)?.to_string();
        let mut res = self.get(&format!("blobs/{digest}"), None).await?;
        if !res.status().is_success() {
            return Err(bad(format!(
                "blob {digest}: the registry answered {}",
                res.status()
            )));
        }
        let mut hash = Sha256::new();
        let mut total = 0u64;
        while let Some(chunk) = res
            .chunk()
            .await
            .map_err(|e| bad(format!("blob {digest}: {e}")))?
        {
            total += chunk.len() as u64;
            if total > cap {
                return Err(bad(format!("blob {digest} is larger than {cap} bytes")));
            }
            hash.update(&chunk);
            file.write_all(&chunk).map_err(|e| bad(e.to_string()))?;
        }
        if hex::encode(hash.finalize()) != hex {
            return Err(bad(format!("blob {digest} does not match its digest")));
        }
        Ok(())
    }
}

/// Pulls `image` and flattens its layers.
pub async fn pull(
    image: &ImageRef,
    access: &Access,
    limits: &Limits,
) -> Result<Flattened, ScanError> {
    let client = Client::builder()
        .danger_accept_invalid_certs(access.insecure_tls)
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let host = if image.registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        image.registry.as_str()
    };
    let scheme = if access.plain_http { "http" } else { "https" };
    let mut s = Session {
        client,
        base: format!("{scheme}://{host}"),
        access: access.clone(),
        token: None,
        repository: image.repository.clone(),
    };
    let (mut manifest, top_digest) = s.manifest(&image.reference).await?;
    if let Some(list) = manifest.get("manifests").and_then(Value::as_array) {
        let chosen = list
            .iter()
            .find(|m| {
                m.pointer("/platform/os").and_then(Value::as_str) == Some("linux")
                    && m.pointer("/platform/architecture").and_then(Value::as_str) == Some("amd64")
            })
            .or_else(|| list.first())
            .and_then(|m| m.get("digest"))
            .and_then(Value::as_str)
            .ok_or_else(|| bad("the image index lists no manifests"))?
            .to_string();
        manifest = s.manifest(&chosen).await?.0;
    }
    let layers: Vec<String> = manifest
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("the manifest lists no layers"))?
        .iter()
        .map(|l| {
            l.get("digest")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
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
        for digest in &layers {
            let mut f = std::fs::File::create(&tmp).map_err(|e| bad(e.to_string()))?;
            s.blob(digest, &mut f, limits.max_bytes).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn reads_bearer_challenges() {
        let p = challenge_params(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull");
    }
}
