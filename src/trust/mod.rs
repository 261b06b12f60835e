//! Signed images: per cluster, rules "images matching PATTERN must carry a valid cosign
//! signature by one of these keys", enforced at admission.
//!
//! A rule names a pattern over image names (`registry/repository`, Docker Hub's defaults
//! spelled out: `docker.io/library/nginx`; `*` within one path segment, `**` across them) and
//! one or more cosign public keys (PEM, ECDSA P-256). An image matching several rules must
//! satisfy each. [`cosign`] judges signature bytes, [`verify`] finds them in the registry,
//! [`enforce`] holds the rules and the per-digest verdicts for the webhook.

pub mod api;
pub mod cosign;
pub mod enforce;
mod pages;
pub mod verify;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::{self, Event};
use crate::http::ApiError;
use crate::store::{Store, StoreError, Table, WriteTx};
use cosign::PublicKey;

/// A rule as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SignatureRule {
    pub id: u64,
    pub cluster: u64,
    /// Image names it covers (see [`Pattern`]).
    pub pattern: String,
    /// The trusted public keys, PEM; a signature by any one of them satisfies the rule.
    pub keys: Vec<String>,
    #[serde(default)]
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A rule as the API shows it: keys with their fingerprints.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleView {
    pub id: u64,
    pub cluster: u64,
    pub pattern: String,
    pub keys: Vec<KeyView>,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A trusted key: its PEM and its fingerprint (SHA-256 of the SubjectPublicKeyInfo).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KeyView {
    pub fingerprint: String,
    pub pem: String,
}

impl From<&SignatureRule> for RuleView {
    fn from(r: &SignatureRule) -> Self {
        RuleView {
            id: r.id,
            cluster: r.cluster,
            pattern: r.pattern.clone(),
            keys: r
                .keys
                .iter()
                .map(|pem| KeyView {
                    fingerprint: PublicKey::from_pem(pem)
                        .map(|k| k.fingerprint())
                        .unwrap_or_default(),
                    pem: pem.clone(),
                })
                .collect(),
            description: r.description.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Fields to add a rule with.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    pub pattern: String,
    /// One PEM public key per entry (an entry holding several PEM blocks adds each).
    pub keys: Vec<String>,
    #[serde(default)]
    pub description: String,
}

pub(crate) const RULES: Table<u64, SignatureRule> = Table::new("signature_rules");

/// Most rules per cluster: each admitted image is matched against all of them.
const MAX_RULES: usize = 200;
/// Most keys per rule.
const MAX_KEYS: usize = 20;

/// Errors of the signed-images domain.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    /// A signature that could not be checked now (the registry is unreachable, failing or
    /// refusing the credentials).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TrustError> for ApiError {
    fn from(e: TrustError) -> Self {
        match e {
            TrustError::Invalid(m) => ApiError::bad_request(m),
            TrustError::NotFound(_) => ApiError::not_found(e.to_string()),
            TrustError::Unavailable(m) => ApiError::new(
                actix_web::http::StatusCode::BAD_GATEWAY,
                "registry_unavailable",
                m,
            ),
            TrustError::Store(s) => ApiError::internal(s),
        }
    }
}

/// A compiled image-name pattern: `*` matches within one path segment, `**` across segments,
/// anything else itself (case-insensitively, as image names are lower case).
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    text: String,
}

impl Pattern {
    pub fn parse(raw: &str) -> Result<Pattern, TrustError> {
        let text = raw.trim().to_ascii_lowercase();
        let ok = !text.is_empty()
            && text.len() <= 255
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/:*[]".contains(&b));
        if !ok {
            return Err(TrustError::Invalid(format!(
                "pattern: '{}' is not an image-name pattern such as registry.local:5000/team/* or docker.io/library/** (letters, digits, . _ - / : and *, at most 255 characters)",
                raw.chars().take(100).collect::<String>()
            )));
        }
        Ok(Pattern { text })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the image name `name` (`registry/repository`) matches.
    pub fn matches(&self, name: &str) -> bool {
        glob(self.text.as_bytes(), name.to_ascii_lowercase().as_bytes())
    }
}

/// Wildcard matching by dynamic programming over (pattern, text) positions, so no pattern
/// costs more than their product.
fn glob(p: &[u8], t: &[u8]) -> bool {
    // Tokens: a literal byte, `*` (not '/'), `**` (anything).
    enum Tok {
        Lit(u8),
        Star,
        DoubleStar,
    }
    let mut toks = Vec::new();
    let mut i = 0;
    while i < p.len() {
        if p[i] == b'*' {
            if p.get(i + 1) == Some(&b'*') {
                toks.push(Tok::DoubleStar);
                while p.get(i) == Some(&b'*') {
                    i += 1;
                }
                continue;
            }
            toks.push(Tok::Star);
        } else {
            toks.push(Tok::Lit(p[i]));
        }
        i += 1;
    }
    // reach[j]: the tokens so far can consume exactly t[..j].
    let mut reach = vec![false; t.len() + 1];
    reach[0] = true;
    for tok in &toks {
        let mut next = vec![false; t.len() + 1];
        match tok {
            Tok::Lit(c) => {
                for j in 0..t.len() {
                    if reach[j] && t[j] == *c {
                        next[j + 1] = true;
                    }
                }
            }
            Tok::Star | Tok::DoubleStar => {
                let any = matches!(tok, Tok::DoubleStar);
                for j in 0..=t.len() {
                    if reach[j] || (j > 0 && next[j - 1] && (any || t[j - 1] != b'/')) {
                        next[j] = true;
                    }
                }
            }
        }
        reach = next;
    }
    reach[t.len()]
}

/// The PEM blocks of `text` as trusted keys, each checked to be a P-256 public key.
pub fn parse_keys(entries: &[String]) -> Result<Vec<String>, TrustError> {
    let mut out = Vec::new();
    for entry in entries {
        let mut block = String::new();
        let mut inside = false;
        for line in entry.lines().map(str::trim) {
            if line == "-----BEGIN PUBLIC KEY-----" {
                inside = true;
                block.clear();
            }
            if inside {
                block.push_str(line);
                block.push('\n');
            }
            if line == "-----END PUBLIC KEY-----" && inside {
                inside = false;
                PublicKey::from_pem(&block)
                    .map_err(|e| TrustError::Invalid(format!("keys: {e}")))?;
                if !out.contains(&block) {
                    out.push(block.clone());
                }
            }
        }
        if inside || !entry.contains("-----END PUBLIC KEY-----") {
            return Err(TrustError::Invalid(
                "keys: each entry must hold a PEM block from -----BEGIN PUBLIC KEY----- to -----END PUBLIC KEY----- (cosign.pub)".into(),
            ));
        }
    }
    if out.is_empty() {
        return Err(TrustError::Invalid(
            "keys: give at least one cosign public key (PEM)".into(),
        ));
    }
    if out.len() > MAX_KEYS {
        return Err(TrustError::Invalid(format!(
            "keys: at most {MAX_KEYS} per rule"
        )));
    }
    Ok(out)
}

/// Every rule of cluster `cluster`, by id.
pub fn list(store: &Store, cluster: u64) -> Result<Vec<SignatureRule>, StoreError> {
    Ok(store
        .read(|r| r.all(&RULES))?
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| r.cluster == cluster)
        .collect())
}

/// Adds a rule to cluster `cluster`.
pub fn create(
    store: &Store,
    actor: &str,
    ip: &str,
    cluster: u64,
    new: NewRule,
) -> Result<SignatureRule, TrustError> {
    let pattern = Pattern::parse(&new.pattern)?;
    let keys = parse_keys(&new.keys)?;
    let description = new.description.trim().to_string();
    if description.chars().count() > 2000 || description.chars().any(|c| c.is_control()) {
        return Err(TrustError::Invalid(
            "description: at most 2000 characters, no control characters".into(),
        ));
    }
    store.write(|w| {
        if w.get(&crate::clusters::CLUSTERS, &cluster)?.is_none() {
            return Err(TrustError::NotFound(format!("cluster {cluster}")));
        }
        let existing = w
            .all(&RULES)?
            .into_iter()
            .filter(|(_, r)| r.cluster == cluster)
            .count();
        if existing >= MAX_RULES {
            return Err(TrustError::Invalid(format!(
                "a cluster holds at most {MAX_RULES} signature rules"
            )));
        }
        let id = w.next_id("signature_rules")?;
        let now = Utc::now();
        let rule = SignatureRule {
            id,
            cluster,
            pattern: pattern.as_str().to_string(),
            keys,
            description,
            created_at: now,
            updated_at: now,
        };
        w.put(&RULES, &id, &rule)?;
        let fingerprints: Vec<String> = RuleView::from(&rule)
            .keys
            .iter()
            .map(|k| k.fingerprint[..16].to_string())
            .collect();
        audit::record(
            w,
            Event::new(actor, "signature_rule.create", format!("cluster:{cluster}"))
                .from_ip(ip)
                .detail(format!(
                    "rule={id} pattern={} keys={}",
                    rule.pattern,
                    fingerprints.join(",")
                )),
        )?;
        Ok(rule)
    })
}

/// Removes rule `id` of cluster `cluster`.
pub fn delete(
    store: &Store,
    actor: &str,
    ip: &str,
    cluster: u64,
    id: u64,
) -> Result<(), TrustError> {
    store.write(|w| {
        let r = w
            .get(&RULES, &id)?
            .filter(|r| r.cluster == cluster)
            .ok_or_else(|| TrustError::NotFound(format!("signature rule {id}")))?;
        w.delete(&RULES, &id)?;
        audit::record(
            w,
            Event::new(actor, "signature_rule.delete", format!("cluster:{cluster}"))
                .from_ip(ip)
                .detail(format!("rule={id} pattern={}", r.pattern)),
        )?;
        Ok(())
    })
}

/// Drops a deleted cluster's rules.
pub fn forget(w: &WriteTx, cluster: u64) -> Result<(), StoreError> {
    w.retain(&RULES, |_, r| r.cluster != cluster)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_segments_and_across() {
        let p = |s: &str| Pattern::parse(s).unwrap();
        assert!(p("registry.local:5000/team/*").matches("registry.local:5000/team/app"));
        assert!(!p("registry.local:5000/team/*").matches("registry.local:5000/team/sub/app"));
        assert!(p("registry.local:5000/team/**").matches("registry.local:5000/team/sub/app"));
        assert!(p("**").matches("docker.io/library/nginx"));
        assert!(p("docker.io/library/nginx").matches("docker.io/library/nginx"));
        assert!(!p("docker.io/library/nginx").matches("docker.io/library/nginx2"));
        assert!(p("*.corp/**").matches("harbor.corp/a/b"));
        assert!(!p("*.corp/**").matches("harbor.corp.evil.io/a"));
        assert!(p("Registry.Local/APP").matches("registry.local/app"));
        // No pattern explodes: 30 stars against a long name that does not match.
        let many = format!("{}x", "*a".repeat(30));
        assert!(!p(&many).matches(&"a".repeat(1000)));
    }

    #[test]
    fn patterns_and_keys_are_checked() {
        for bad in ["", "a b", "reg/$(x)", &"a".repeat(300)] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};
        use base64::Engine as _;
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let mut spki = cosign::P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&spki)
        );
        assert_eq!(parse_keys(std::slice::from_ref(&pem)).unwrap().len(), 1);
        assert_eq!(
            parse_keys(&[format!("{pem}{pem}")]).unwrap().len(),
            1,
            "the same key twice counts once"
        );
        for bad in [
            "",
            "not a key",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "-----BEGIN PUBLIC KEY-----\n%%%\n-----END PUBLIC KEY-----\n",
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n",
        ] {
            assert!(parse_keys(&[bad.to_string()]).is_err(), "{bad}");
        }
        assert!(parse_keys(&[]).is_err());
    }
}
