//! One repository of an OCI distribution registry, spoken to over HTTP: anonymous, basic and
//! bearer-token auth (one challenge answered per request), manifests checked against their
//! digest, blobs verified as they stream, and OCI 1.1 referrers (the API, or the tag the
//! distribution spec falls back to).
//!
//! Errors say which kind of trouble it was: [`ScanError::Unreachable`] for the network, the
//! registry's own failures and refused credentials (the caller may retry or fail open), and
//! [`ScanError::Image`] for content that is wrong whatever happens next.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Access, ImageRef};
use crate::scanner::ScanError;

/// Manifest media types asked for: images, indexes, and their Docker forms.
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
/// Largest manifest accepted.
const MAX_MANIFEST: usize = 4 * 1024 * 1024;

fn bad(msg: impl Into<String>) -> ScanError {
    ScanError::Image(msg.into())
}

fn unreachable(msg: impl Into<String>) -> ScanError {
    ScanError::Unreachable(msg.into())
}

/// A manifest as fetched: parsed, and the digest of its bytes.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub value: Value,
    pub digest: String,
}

/// A session with one repository (a token obtained once serves the following requests).
pub struct Client {
    http: reqwest::Client,
    base: String,
    access: Access,
    token: Option<String>,
    repository: String,
}

fn challenge_params(header: &str) -> HashMap<String, String> {
    // `Bearer realm="https://…",service="…",scope="…"`
    let mut out = HashMap::new();
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

/// The innermost cause of an error: reqwest's own text repeats the URL and hides the reason
/// ("connection refused", "timed out") at the end of the chain.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Whether a status means the registry, not the request, is at fault for now.
fn transient(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

impl Client {
    /// A client for `image`'s repository; `timeout` bounds each request whole.
    pub fn new(image: &ImageRef, access: &Access, timeout: Duration) -> Result<Client, ScanError> {
        let http = access
            .outbound
            .http_client()
            .danger_accept_invalid_certs(access.insecure_tls)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let host = if image.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            image.registry.as_str()
        };
        let scheme = if access.plain_http { "http" } else { "https" };
        Ok(Client {
            http,
            base: format!("{scheme}://{host}"),
            access: access.clone(),
            token: None,
            repository: image.repository.clone(),
        })
    }

    async fn send(&self, url: &str, accept: Option<&str>) -> Result<Response, ScanError> {
        let mut req = self.http.get(url);
        if let Some(a) = accept {
            req = req.header(ACCEPT, a);
        }
        if let Some(t) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        } else if let Some(u) = &self.access.username {
            req = req.basic_auth(u, self.access.password.as_deref());
        }
        req.send()
            .await
            .map_err(|e| unreachable(format!("{url}: {}", root_cause(&e))))
    }

    /// GETs a path under the repository, answering one bearer challenge with a token. A
    /// refusal of the credentials and the registry's own failures are [`ScanError::Unreachable`].
    async fn get(&mut self, path: &str, accept: Option<&str>) -> Result<Response, ScanError> {
        let url = format!("{}/v2/{}/{path}", self.base, self.repository);
        let mut res = self.send(&url, accept).await?;
        if res.status() == StatusCode::UNAUTHORIZED {
            let challenge = res
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            if !challenge.to_ascii_lowercase().starts_with("bearer") {
                return Err(unreachable(if self.access.username.is_some() {
                    format!("{url}: the registry refused the credentials (401)")
                } else {
                    format!("{url}: the registry wants credentials (401): pass --username and BULWARK_REGISTRY_PASSWORD")
                }));
            }
            self.token = Some(self.fetch_token(&challenge).await?);
            res = self.send(&url, accept).await?;
        }
        let status = res.status();
        if transient(status) {
            return Err(unreachable(format!(
                "{url}: the registry answered {status}"
            )));
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(unreachable(format!(
                "{url}: the registry refused access ({status}): check the credentials"
            )));
        }
        Ok(res)
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
        let mut req = self.http.get(url);
        if let Some(u) = &self.access.username {
            req = req.basic_auth(u, self.access.password.as_deref());
        }
        let res = req
            .send()
            .await
            .map_err(|e| unreachable(format!("token: {}", root_cause(&e))))?;
        if !res.status().is_success() {
            return Err(unreachable(format!(
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

    /// The manifest or index at `reference` (a tag or a digest), or `None` when the registry
    /// has none there.
    pub async fn find_manifest(&mut self, reference: &str) -> Result<Option<Manifest>, ScanError> {
        let res = self
            .get(&format!("manifests/{reference}"), Some(MANIFEST_TYPES))
            .await?;
        let status = res.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(bad(format!(
                "manifest {reference}: the registry answered {status}"
            )));
        }
        let body = capped_body(res, MAX_MANIFEST as u64, || {
            bad("the manifest is larger than 4 MiB")
        })
        .await?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        if reference.starts_with("sha256:") && digest != reference {
            return Err(bad(format!(
                "manifest {reference} does not match its digest"
            )));
        }
        let value = serde_json::from_slice(&body).map_err(|e| bad(format!("manifest: {e}")))?;
        Ok(Some(Manifest { value, digest }))
    }

    /// The manifest at `reference`; its absence is an error.
    pub async fn manifest(&mut self, reference: &str) -> Result<Manifest, ScanError> {
        self.find_manifest(reference)
            .await?
            .ok_or_else(|| bad(format!("manifest {reference}: the registry has none (404)")))
    }

    /// Streams a blob to `file`, verifying its digest and size cap.
    pub async fn blob_to_file(
        &mut self,
        digest: &str,
        file: &mut std::fs::File,
        cap: u64,
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<(), ScanError> {
        let hex = crate::scanner::archive::digest_hex(digest)?.to_string();
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
            .map_err(|e| unreachable(format!("blob {digest}: {e}")))?
        {
            total += chunk.len() as u64;
            if total > cap {
                return Err(bad(format!("blob {digest} is larger than {cap} bytes")));
            }
            hash.update(&chunk);
            file.write_all(&chunk).map_err(|e| bad(e.to_string()))?;
            on_bytes(total);
        }
        if hex::encode(hash.finalize()) != hex {
            return Err(bad(format!("blob {digest} does not match its digest")));
        }
        Ok(())
    }

    /// A small blob in memory, verified against its digest; more than `cap` bytes is refused
    /// without reading the rest.
    pub async fn blob(&mut self, digest: &str, cap: u64) -> Result<Vec<u8>, ScanError> {
        let hex = crate::scanner::archive::digest_hex(digest)?.to_string();
        let res = self.get(&format!("blobs/{digest}"), None).await?;
        if !res.status().is_success() {
            return Err(bad(format!(
                "blob {digest}: the registry answered {}",
                res.status()
            )));
        }
        let body = capped_body(res, cap, || {
            bad(format!("blob {digest} is larger than {cap} bytes"))
        })
        .await?;
        if hex::encode(Sha256::digest(&body)) != hex {
            return Err(bad(format!("blob {digest} does not match its digest")));
        }
        Ok(body)
    }

    /// The descriptors of the manifests that name `digest` as their subject, of
    /// `artifact_type` only: from the referrers API, or, where the registry has none, from
    /// the `sha256-<hex>` tag the distribution spec has clients maintain instead.
    pub async fn referrers(
        &mut self,
        digest: &str,
        artifact_type: &str,
    ) -> Result<Vec<Value>, ScanError> {
        let hex = crate::scanner::archive::digest_hex(digest)?.to_string();
        let res = self
            .get(
                &format!("referrers/{digest}?artifactType={artifact_type}"),
                Some("application/vnd.oci.image.index.v1+json"),
            )
            .await?;
        let index = if res.status().is_success() {
            let body = capped_body(res, MAX_MANIFEST as u64, || {
                bad("the referrers index is larger than 4 MiB")
            })
            .await?;
            serde_json::from_slice(&body).map_err(|e| bad(format!("referrers: {e}")))?
        } else if res.status() == StatusCode::NOT_FOUND {
            match self.find_manifest(&format!("sha256-{hex}")).await? {
                Some(m) => m.value,
                None => return Ok(Vec::new()),
            }
        } else {
            return Err(bad(format!(
                "referrers of {digest}: the registry answered {}",
                res.status()
            )));
        };
        Ok(index
            .get("manifests")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            // The API may ignore the filter (it says so in an annotation); the tag never filters.
            .filter(|d| d.get("artifactType").and_then(Value::as_str) == Some(artifact_type))
            .cloned()
            .collect())
    }
}

/// A response body of at most `cap` bytes (read in chunks, so a lying or absent length header
/// cannot make it read more).
async fn capped_body(
    mut res: Response,
    cap: u64,
    too_big: impl Fn() -> ScanError,
) -> Result<Vec<u8>, ScanError> {
    if res.content_length().is_some_and(|n| n > cap) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| unreachable(e.to_string()))? {
        if body.len() as u64 + chunk.len() as u64 > cap {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_challenges() {
        let p = challenge_params(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull");
    }

    #[test]
    fn server_errors_and_throttling_are_transient() {
        assert!(transient(StatusCode::SERVICE_UNAVAILABLE));
        assert!(transient(StatusCode::TOO_MANY_REQUESTS));
        assert!(!transient(StatusCode::NOT_FOUND));
        assert!(!transient(StatusCode::OK));
    }
}
