//! A scan as a CycloneDX 1.5 SBOM (JSON): the image as the metadata component, the operating
//! system, every package with its package URL (purl, as Trivy spells them, so tools that match
//! SBOMs by purl agree), and the vulnerabilities found, each pointing at the packages it affects.

use serde_json::{json, Value};

use super::catalog::lang::Source;
use super::report::{Report, Vuln};

/// Characters a purl keeps as they are in a name or version segment.
fn purl_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The purl of an OS package: `pkg:deb/debian/NAME@VERSION?arch=…&distro=debian-12` (the epoch
/// moves to a qualifier, as the purl spec says), `pkg:apk/alpine/…`, `pkg:rpm/…`.
pub fn os_purl(family: &str, os_version: &str, name: &str, version: &str, arch: &str) -> String {
    let kind = match family {
        "debian" | "ubuntu" => "deb",
        "alpine" | "wolfi" | "chainguard" => "apk",
        _ => "rpm",
    };
    let (epoch, version) = match version.split_once(':') {
        Some((e, v)) if kind != "apk" && e.bytes().all(|b| b.is_ascii_digit()) => (Some(e), v),
        _ => (None, version),
    };
    let mut q = Vec::new();
    if !arch.is_empty() {
        q.push(format!("arch={}", purl_escape(arch)));
    }
    // Trivy writes Alpine's distro qualifier as the bare version (`distro=3.19.1`).
    if kind == "apk" {
        q.push(format!("distro={}", purl_escape(os_version)));
    } else {
        q.push(format!("distro={family}-{}", purl_escape(os_version)));
    }
    if let Some(e) = epoch.filter(|e| *e != "0") {
        q.push(format!("epoch={e}"));
    }
    format!(
        "pkg:{kind}/{family}/{}@{}?{}",
        purl_escape(name),
        purl_escape(version),
        q.join("&")
    )
}

/// The purl of a language package.
pub fn lang_purl(source: Source, name: &str, version: &str) -> String {
    use super::catalog::lang::Lang;
    let v = purl_escape(version);
    match source.lang() {
        Lang::Node => match name.strip_prefix('@').and_then(|n| n.split_once('/')) {
            Some((scope, n)) => format!("pkg:npm/%40{}/{}@{v}", purl_escape(scope), purl_escape(n)),
            None => format!("pkg:npm/{}@{v}", purl_escape(name)),
        },
        // PyPI names are case-insensitive; the purl spec lowercases them.
        Lang::Python => format!(
            "pkg:pypi/{}@{v}",
            purl_escape(&name.to_ascii_lowercase().replace('_', "-"))
        ),
        Lang::Rust => format!("pkg:cargo/{}@{v}", purl_escape(name)),
        Lang::Go => {
            let path: Vec<String> = name.split('/').map(purl_escape).collect();
            format!("pkg:golang/{}@{v}", path.join("/"))
        }
        Lang::Java => match name.split_once(':') {
            Some((g, a)) => format!("pkg:maven/{}/{}@{v}", purl_escape(g), purl_escape(a)),
            None => format!("pkg:maven/{}@{v}", purl_escape(name)),
        },
    }
}

impl Report {
    /// The CycloneDX 1.5 document.
    pub fn cyclonedx(&self) -> Value {
        let family = self.os.as_ref().map(|o| o.family()).unwrap_or("");
        let os_version = self
            .os
            .as_ref()
            .map(|o| o.version_id.as_str())
            .unwrap_or("");
        let mut components = Vec::new();
        let mut refs = std::collections::HashSet::new();
        // bom-refs are purls, made unique with a suffix when a package appears twice.
        let mut unique = |purl: String| {
            let mut r = purl.clone();
            let mut n = 1;
            while !refs.insert(r.clone()) {
                n += 1;
                r = format!("{purl}#{n}");
            }
            r
        };
        let mut os_refs = std::collections::HashMap::new();
        if let Some(os) = &self.os {
            components.push(json!({
                "bom-ref": unique(format!("os:{}-{}", os.family(), os.version_id)),
                "type": "operating-system", "name": os.family(), "version": os.version_id,
            }));
        }
        for p in &self.packages {
            let purl = os_purl(family, os_version, &p.name, &p.version, &p.arch);
            let r = unique(purl.clone());
            os_refs.insert((p.name.as_str(), p.version.as_str()), r.clone());
            let mut c = json!({
                "bom-ref": r, "type": "library", "name": p.name, "version": p.version, "purl": purl,
            });
            if !p.licenses.is_empty() {
                c["licenses"] = p
                    .licenses
                    .iter()
                    .map(|l| json!({"license": {"name": l}}))
                    .collect();
            }
            components.push(c);
        }
        let mut lang_refs = std::collections::HashMap::new();
        for p in &self.lang_packages {
            let purl = lang_purl(p.source, &p.name, &p.version);
            let r = unique(purl.clone());
            lang_refs.insert(
                (
                    p.source,
                    p.name.as_str(),
                    p.version.as_str(),
                    p.path.as_str(),
                ),
                r.clone(),
            );
            components.push(json!({
                "bom-ref": r, "type": "library", "name": p.name, "version": p.version, "purl": purl,
                "properties": [
                    {"name": "bulwark:PkgType", "value": p.source.trivy_type()},
                    {"name": "bulwark:FilePath", "value": p.path},
                ],
            }));
        }
        let affected_ref = |v: &Vuln| -> Option<String> {
            match v.source {
                None => os_refs
                    .get(&(v.package.as_str(), v.installed.as_str()))
                    .cloned(),
                Some(s) => lang_refs
                    .get(&(
                        s,
                        v.package.as_str(),
                        v.installed.as_str(),
                        v.path.as_deref().unwrap_or(""),
                    ))
                    .cloned(),
            }
        };
        // One entry per vulnerability id, listing every package it affects.
        let mut by_id: std::collections::BTreeMap<&str, Vec<&Vuln>> = Default::default();
        for v in &self.vulns {
            by_id.entry(v.id.as_str()).or_default().push(v);
        }
        let vulnerabilities: Vec<Value> = by_id
            .into_iter()
            .map(|(id, vs)| {
                let first = vs[0];
                let affects: Vec<Value> = vs
                    .iter()
                    .filter_map(|v| {
                        affected_ref(v).map(|r| {
                            json!({"ref": r, "versions": [{"version": v.installed, "status": "affected"}]})
                        })
                    })
                    .collect();
                let mut entry = json!({
                    "bom-ref": format!("vuln:{id}"),
                    "id": id,
                    "source": {"name": first.advisory},
                    "ratings": [{"severity": first.severity.as_str().to_ascii_lowercase(), "method": "other"}],
                    "description": first.title,
                    "affects": affects,
                });
                let fixes: Vec<String> = vs
                    .iter()
                    .filter_map(|v| v.fixed.as_ref().map(|f| format!("Upgrade {} to {f}", v.package)))
                    .collect();
                if !fixes.is_empty() {
                    entry["recommendation"] = json!(fixes.join("; "));
                }
                entry
            })
            .collect();
        json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "serialNumber": format!("urn:uuid:{}", uuid_v4()),
            "version": 1,
            "metadata": {
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "tools": {"components": [{"type": "application", "name": "bulwark", "version": env!("CARGO_PKG_VERSION")}]},
                "component": {"bom-ref": "image", "type": "container", "name": self.artifact},
            },
            "components": components,
            "vulnerabilities": vulnerabilities,
        })
    }
}

/// A random (version 4) UUID for the document's serial number.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_follow_the_spec_and_trivy() {
        assert_eq!(
            os_purl("debian", "12", "bsdutils", "1:2.38.1-5+deb12u3", "amd64"),
            "pkg:deb/debian/bsdutils@2.38.1-5%2Bdeb12u3?arch=amd64&distro=debian-12&epoch=1"
        );
        assert_eq!(
            os_purl("alpine", "3.19.1", "musl", "1.2.4-r2", "x86_64"),
            "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=3.19.1"
        );
        assert_eq!(
            lang_purl(Source::NpmLock, "@babel/core", "7.22.5"),
            "pkg:npm/%40babel/core@7.22.5"
        );
        assert_eq!(
            lang_purl(Source::Requirements, "PyYAML", "5.3.1"),
            "pkg:pypi/pyyaml@5.3.1"
        );
        assert_eq!(
            lang_purl(Source::GoBinary, "github.com/gin-gonic/gin", "v1.5.0"),
            "pkg:golang/github.com/gin-gonic/gin@v1.5.0"
        );
        assert_eq!(
            lang_purl(Source::Jar, "org.apache.logging.log4j:log4j-core", "2.14.1"),
            "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"
        );
        let u = uuid_v4();
        assert_eq!((u.len(), &u[14..15]), (36, "4"));
    }
}
