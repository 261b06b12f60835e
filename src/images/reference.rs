//! Container image references, parsed the way container runtimes resolve them:
//! `[registry[:port]/]repository[:tag][@algorithm:hex]`.
//!
//! The first path component is a registry only if it contains `.` or `:` or is `localhost`;
//! otherwise the image is on Docker Hub (`docker.io`), where one-component names live under
//! `library/` (`nginx` is `docker.io/library/nginx`). `index.docker.io` and
//! `registry-1.docker.io` are the same registry as `docker.io`. Without tag and digest the tag is
//! `latest`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageRef {
    /// Registry host (and port), e.g. `docker.io`, `registry.local:5000`.
    pub registry: String,
    /// Repository path, e.g. `library/nginx`.
    pub repository: String,
    /// Tag, if any (`latest` when neither tag nor digest was given).
    pub tag: Option<String>,
    /// Digest `sha256:<hex>`, if given.
    pub digest: Option<String>,
}

/// Why a reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{input}' is not an image reference: {reason}")]
pub struct RefError {
    pub input: String,
    pub reason: &'static str,
}

const DOCKER_HUB: &str = "docker.io";

impl ImageRef {
    /// Parses and normalizes `input`.
    pub fn parse(input: &str) -> Result<ImageRef, RefError> {
        let err = |reason| RefError {
            input: input.chars().take(300).collect(),
            reason,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        if s.len() > 1024 {
            return Err(err("it is longer than 1024 characters"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("it contains whitespace or control characters"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(parse_digest(d).ok_or_else(|| err("the digest is not algorithm:hex"))?),
            ),
            None => (s, None),
        };
        // A tag is after the last ':' that comes after the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(i) if last_slash.is_none_or(|sl| i > sl) => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !ok {
                return Err(err(
                    "the tag must be 1-128 of letters, digits, '_', '.', '-'",
                ));
            }
        }
        let (registry, repository) = split_registry(name);
        let registry = normalize_registry(registry.unwrap_or(DOCKER_HUB));
        let mut repository = repository.to_string();
        if repository.is_empty() {
            return Err(err("the repository is empty"));
        }
        if !repository.split('/').all(valid_component) {
            return Err(err(
                "repository components must be lower-case letters, digits and separators",
            ));
        }
        if registry == DOCKER_HUB && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        if !valid_registry(&registry) {
            return Err(err("the registry host is not valid"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, the identity exceptions match against.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository:tag`, if there is a tag.
    pub fn tagged(&self) -> Option<String> {
        self.tag
            .as_ref()
            .map(|t| format!("{}/{}:{t}", self.registry, self.repository))
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `algorithm:hex` with a known algorithm and the right length, lower-cased.
pub fn parse_digest(d: &str) -> Option<String> {
    let (algo, hex) = d.split_once(':')?;
    let len = match algo {
        "sha256" => 64,
        "sha512" => 128,
        _ => return None,
    };
    (hex.len() == len && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| format!("{algo}:{}", hex.to_ascii_lowercase()))
}

fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn normalize_registry(r: &str) -> String {
    let r = r.to_ascii_lowercase();
    match r.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        _ => r,
    }
}

fn valid_registry(r: &str) -> bool {
    let (host, port) = match r.rsplit_once(':') {
        // An IPv6 literal keeps its colons inside brackets.
        Some((h, p)) if !h.ends_with(']') || r.starts_with('[') => (h, Some(p)),
        _ => (r, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
    host_ok && port_ok
}

/// One repository path component: lower-case alphanumerics separated by `.`, `_`, `__` or `-`.
fn valid_component(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 255
        && c.chars()
            .next()
            .is_some_and(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
        && c.chars()
            .last()
            .is_some_and(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
        && c.chars().all(|ch| {
            ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:72c4c2b9e8e2a0b4b3a3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5";

    fn p(s: &str) -> (String, String, Option<String>, Option<String>) {
        let r = ImageRef::parse(s).unwrap_or_else(|e| panic!("{e}"));
        (r.registry, r.repository, r.tag, r.digest)
    }

    #[test]
    fn every_legal_shape() {
        let s = |x: &str| x.to_string();
        assert_eq!(
            p("nginx"),
            (s("docker.io"), s("library/nginx"), Some(s("latest")), None)
        );
        assert_eq!(
            p("nginx:1.25"),
            (s("docker.io"), s("library/nginx"), Some(s("1.25")), None)
        );
        assert_eq!(
            p("library/nginx:1.25"),
            (s("docker.io"), s("library/nginx"), Some(s("1.25")), None)
        );
        assert_eq!(
            p("bitnami/redis"),
            (s("docker.io"), s("bitnami/redis"), Some(s("latest")), None)
        );
        assert_eq!(
            p("index.docker.io/library/nginx"),
            (s("docker.io"), s("library/nginx"), Some(s("latest")), None)
        );
        assert_eq!(
            p("docker.io/nginx"),
            (s("docker.io"), s("library/nginx"), Some(s("latest")), None)
        );
        assert_eq!(
            p("registry.local:5000/team/app:v1.2.3"),
            (
                s("registry.local:5000"),
                s("team/app"),
                Some(s("v1.2.3")),
                None
            )
        );
        assert_eq!(
            p("localhost/app"),
            (s("localhost"), s("app"), Some(s("latest")), None)
        );
        assert_eq!(
            p("localhost:5000/app"),
            (s("localhost:5000"), s("app"), Some(s("latest")), None)
        );
        assert_eq!(
            p(&format!("nginx@{D}")),
            (s("docker.io"), s("library/nginx"), None, Some(s(D)))
        );
        assert_eq!(
            p(&format!("ghcr.io/org/app:1.0@{D}")),
            (s("ghcr.io"), s("org/app"), Some(s("1.0")), Some(s(D)))
        );
        assert_eq!(
            p(&format!(
                "10.0.0.1:5000/a/b/c@{}",
                D.to_uppercase().replace("SHA256", "sha256")
            ))
            .3,
            Some(s(D))
        );
        assert_eq!(
            p("quay.io/prometheus/node-exporter:v1.7.0").1,
            "prometheus/node-exporter"
        );
        assert_eq!(
            p("gcr.io/distroless/static-debian12:nonroot").2,
            Some(s("nonroot"))
        );
        assert_eq!(
            p("my-registry.example.com/a__b/c-d.e:x_y").0,
            "my-registry.example.com"
        );
        assert_eq!(
            ImageRef::parse("nginx").unwrap().to_string(),
            "docker.io/library/nginx:latest"
        );
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "   ",
            "Nginx",
            "nginx:",
            "nginx:-bad",
            "nginx@sha256:short",
            "nginx@md5:abcd",
            "a b",
            "registry.local:port/app",
            "/app",
            "app/",
            "a//b",
            "nginx:tag:more",
            "my_registry.example.com/app",
            &"a".repeat(2000),
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
