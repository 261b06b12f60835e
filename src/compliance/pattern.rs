//! `image_match`: which images an exception covers. Anchored: it must match the whole image name
//! `registry/repository` (no tag, no digest), segment by segment.
//!
//! - empty, or `**`: every image;
//! - `*` matches within one path segment (`registry.local/team/*` matches `registry.local/team/app`
//!   but not `registry.local/team/app/worker`);
//! - `**` as a whole segment matches any number of segments (`registry.local/**`);
//! - the pattern is normalized like an image reference: no registry means Docker Hub and a single
//!   Docker Hub segment means `library/` (`nginx` is `docker.io/library/nginx`); a pattern that
//!   starts with `*/` or `**/` leaves the registry open (`**/nginx` is nginx on any registry).
//!
//! Matching is linear in practice and O(segments × parts) at worst, whatever the pattern: reviews
//! are unauthenticated and judged on the HTTP workers, so a pattern must never make one slow.
//! Patterns are also limited when saved (16 segments, 4 of them `**`, 300 characters).

use serde::{Deserialize, Serialize};

/// A validated, normalized pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImagePattern {
    source: String,
    segments: Vec<String>,
}

/// Most segments a saved pattern may have.
const MAX_SEGMENTS: usize = 16;
/// Most `**` segments a saved pattern may have.
const MAX_ANY_SEGMENTS: usize = 4;

impl TryFrom<String> for ImagePattern {
    type Error = String;
    /// Reads a stored pattern: the syntax is checked, the limits of new patterns are not (a
    /// pattern saved before them still loads, and the matcher is safe with any pattern).
    fn try_from(s: String) -> Result<Self, String> {
        ImagePattern::parse_unlimited(&s)
    }
}

impl From<ImagePattern> for String {
    fn from(p: ImagePattern) -> String {
        p.source
    }
}

impl ImagePattern {
    /// Parses a pattern to be saved; the message says what is wrong.
    pub fn parse(s: &str) -> Result<ImagePattern, String> {
        let p = Self::parse_unlimited(s)?;
        let written: Vec<&str> = s.trim().split('/').collect();
        if written.len() > MAX_SEGMENTS {
            return Err(format!("image_match: at most {MAX_SEGMENTS} path segments"));
        }
        if written.iter().filter(|x| **x == "**").count() > MAX_ANY_SEGMENTS {
            return Err(format!(
                "image_match: at most {MAX_ANY_SEGMENTS} '**' segments"
            ));
        }
        Ok(p)
    }

    fn parse_unlimited(s: &str) -> Result<ImagePattern, String> {
        let s = s.trim();
        if s.len() > 300 {
            return Err("image_match: at most 300 characters".into());
        }
        if s.is_empty() || s == "**" {
            return Ok(ImagePattern {
                source: s.to_string(),
                segments: vec!["**".into()],
            });
        }
        if s.contains('@') {
            return Err("image_match: names images without a digest (drop the @…)".into());
        }
        let valid =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '*');
        if !s.chars().all(valid) {
            return Err(format!("image_match: '{s}' may only contain letters, digits, '.', '_', '-', ':', '/' and '*'"));
        }
        let lower = s.to_ascii_lowercase();
        let mut segments: Vec<String> = lower.split('/').map(String::from).collect();
        if segments.iter().any(|x| x.is_empty()) {
            return Err("image_match: empty path segment".into());
        }
        if segments.last().is_some_and(|l| l.contains(':')) {
            return Err("image_match: names images without a tag (drop the :tag)".into());
        }
        let first = segments[0].clone();
        let open_registry = first == "*" || first == "**";
        let has_registry =
            open_registry || first.contains('.') || first.contains(':') || first == "localhost";
        if !has_registry {
            if segments.len() == 1 && !first.contains('*') {
                segments.insert(0, "library".into());
            }
            segments.insert(0, "docker.io".into());
        } else if matches!(first.as_str(), "index.docker.io" | "registry-1.docker.io") {
            segments[0] = "docker.io".into();
            if segments.len() == 2 && !segments[1].contains('*') {
                segments.insert(1, "library".into());
            }
        } else if first == "docker.io" && segments.len() == 2 && !segments[1].contains('*') {
            segments.insert(1, "library".into());
        }
        if segments.iter().any(|x| x.contains("**") && x != "**") {
            return Err("image_match: '**' must be a whole segment".into());
        }
        // `**/**` means what `**` means.
        segments.dedup_by(|a, b| a == "**" && b == "**");
        Ok(ImagePattern {
            source: s.to_string(),
            segments,
        })
    }

    /// Matches every image.
    pub fn any() -> ImagePattern {
        ImagePattern {
            source: String::new(),
            segments: vec!["**".into()],
        }
    }

    /// The normalized pattern, `/`-separated (what [`ImagePattern::matches`] compares).
    pub fn normalized(&self) -> String {
        self.segments.join("/")
    }

    /// Whether it matches every image (empty, or only `**`).
    pub fn is_any(&self) -> bool {
        self.segments.iter().all(|s| s == "**")
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `name` (`registry/repository`) is covered.
    pub fn matches(&self, name: &str) -> bool {
        let parts: Vec<&str> = name.split('/').collect();
        let segs: Vec<&str> = self.segments.iter().map(String::as_str).collect();
        match_segments(&segs, &parts)
    }
}

/// Segment-level wildcard matching with one backtrack point, the classic linear glob: `**` is
/// the star, every other segment a "character" compared with [`glob`]. Each `**` only ever moves
/// its resume point forward, so the work is bounded by segments × parts.
fn match_segments(pat: &[&str], parts: &[&str]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut resume: Option<(usize, usize)> = None;
    while i < parts.len() {
        if p < pat.len() && pat[p] == "**" {
            resume = Some((p, i));
            p += 1;
        } else if p < pat.len() && glob(pat[p].as_bytes(), parts[i].as_bytes()) {
            p += 1;
            i += 1;
        } else if let Some((star, from)) = resume {
            // Let the last `**` swallow one more part and try again after it.
            p = star + 1;
            i = from + 1;
            resume = Some((star, from + 1));
        } else {
            return false;
        }
    }
    while p < pat.len() && pat[p] == "**" {
        p += 1;
    }
    p == pat.len()
}

/// `*` matches any run of bytes within a segment (linear glob with one backtrack point).
fn glob(p: &[u8], s: &[u8]) -> bool {
    #[cfg(test)]
    tests::GLOBS.with(|g| g.set(g.get() + 1));
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Segment comparisons made on this thread, to bound the matcher's work.
        pub static GLOBS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    fn m(p: &str, name: &str) -> bool {
        ImagePattern::parse(p)
            .unwrap_or_else(|e| panic!("{e}"))
            .matches(name)
    }

    #[test]
    fn anchored_matching() {
        assert!(m("", "docker.io/library/nginx"));
        assert!(m("**", "registry.local:5000/a/b/c"));
        assert!(m("nginx", "docker.io/library/nginx"));
        assert!(
            !m("nginx", "docker.io/library/nginx-ingress"),
            "anchored: no prefix match"
        );
        assert!(!m("nginx", "docker.io/bitnami/nginx"));
        assert!(m("bitnami/*", "docker.io/bitnami/redis"));
        assert!(m("docker.io/nginx", "docker.io/library/nginx"));
        assert!(m("index.docker.io/nginx", "docker.io/library/nginx"));
        assert!(m("registry.local/team/*", "registry.local/team/app"));
        assert!(
            !m("registry.local/team/*", "registry.local/team/app/worker"),
            "* stays in one segment"
        );
        assert!(m("registry.local/**", "registry.local/team/app/worker"));
        assert!(m(
            "registry.local/**/worker",
            "registry.local/team/app/worker"
        ));
        assert!(m("registry.local:5000/app", "registry.local:5000/app"));
        assert!(!m("registry.local/app", "registry.local:5000/app"));
        assert!(m("**/nginx", "quay.io/nginx"));
        assert!(m("*/library/nginx", "docker.io/library/nginx"));
        assert!(m("registry.local/app-*", "registry.local/app-api"));
        assert!(!m("registry.local/app-*", "registry.local/web-api"));
        assert!(
            m("Registry.Local/App", "registry.local/app"),
            "case-insensitive"
        );
    }

    #[test]
    fn refuses_what_cannot_mean_anything() {
        for bad in [
            "nginx:1.25",
            "nginx@sha256:abc",
            "a//b",
            "reg.io/a**b",
            "bad pattern",
            "ra(n)ge",
            "%",
        ] {
            assert!(ImagePattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostile_patterns_cost_at_most_segments_times_parts() {
        // 99 `**` segments: refused when saved, and harmless when read from an old store.
        let many = vec!["**"; 99].join("/") + "/zzz";
        assert!(ImagePattern::parse(&many).is_err());
        let p: ImagePattern = serde_json::from_value(serde_json::json!(many)).unwrap();
        let name = format!("registry.local/{}", vec!["a"; 200].join("/"));
        GLOBS.with(|g| g.set(0));
        assert!(!p.matches(&name));
        let work = GLOBS.with(|g| g.get());
        assert!(
            work <= 2 * 201,
            "consecutive ** collapse to one: {work} comparisons"
        );

        // The tester's pattern (8 `**`) is refused; the most a saved one may have (4) against
        // a long name stays within segments × parts comparisons.
        assert!(ImagePattern::parse("**/**/**/**/**/**/**/**/zzz").is_err());
        let p = ImagePattern::parse("**/a/**/a/**/a/**/zzz").unwrap();
        GLOBS.with(|g| g.set(0));
        assert!(!p.matches(&name));
        let work = GLOBS.with(|g| g.get());
        assert!(
            work <= 8 * 202,
            "{work} comparisons for 8 segments × 201 parts"
        );
        assert!(p.matches("registry.local/a/a/a/x/zzz"));
        assert!(!p.matches("registry.local/a/a/zzz"));
    }
}
