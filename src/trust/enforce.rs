//! Signature rules at admission: every cluster's rules compiled once (until the rules table
//! changes), verdicts cached per (digest, keys) and tags' digests for a minute, so a review of
//! images already checked costs a few map lookups. Misses go to the registries concurrently,
//! the whole within [`CHECK_DEADLINE`]: a registry that hangs makes the verdict unknown, and
//! the cluster's failure mode decides.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::cosign::PublicKey;
use super::verify::{self, Verdict};
use super::{Pattern, SignatureRule, RULES};
use crate::outbound::Outbound;
use crate::scanner::registry::{Client, ImageRef};
use crate::scanner::ScanError;
use crate::secrets::Sealer;
use crate::store::Store;

/// Longest a review waits for signature checks (webhooks time out at 10 s by default).
pub const CHECK_DEADLINE: Duration = Duration::from_secs(5);
/// Longest one registry request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);
/// How long a verified signature is trusted before it is looked up again (a signature deleted
/// from the registry stops counting after this).
const SIGNED_TTL: Duration = Duration::from_secs(3600);
/// How long "not signed" holds: short, so an image signed after a denial is admitted soon.
const UNSIGNED_TTL: Duration = Duration::from_secs(30);
/// How long a tag's digest is reused (a tag moved to another image is seen after this).
const TAG_TTL: Duration = Duration::from_secs(60);
/// Entries kept in each cache before it is emptied (it refills from the images in use).
const CACHE_LIMIT: usize = 20_000;

/// The signature part of an admission decision for one image.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// No rule covers it, or every rule covering it is satisfied.
    Passed,
    /// A covering rule is not satisfied: the rule's pattern and why.
    Refused { pattern: String, reason: String },
    /// A covering rule could not be checked now (the registry): the failure mode decides.
    Unknown { pattern: String, reason: String },
}

struct Rule {
    pattern: Pattern,
    keys: Arc<Vec<PublicKey>>,
    /// The keys' fingerprints, sorted and joined: verdicts are cached under this.
    keyset: String,
}

struct RuleSet {
    version: u64,
    by_cluster: HashMap<u64, Arc<Vec<Rule>>>,
}

/// A cached verdict and when it stops counting.
#[derive(Clone)]
struct Cached {
    verdict: Verdict,
    until: Instant,
}

/// A verdict recently reached, for the console.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Recent {
    pub image: String,
    pub digest: String,
    pub signed: bool,
    pub detail: String,
    pub checked_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    result: String,
}

/// The webhook's view of the signature rules.
pub struct Trust {
    store: Store,
    outbound: Outbound,
    rules: RwLock<Option<Arc<RuleSet>>>,
    verdicts: Mutex<HashMap<(String, String), Cached>>,
    tags: Mutex<HashMap<String, (String, Instant)>>,
    recent: Mutex<std::collections::VecDeque<Recent>>,
    checks: Family<CheckLabels, Counter>,
}

/// Recent verdicts kept for the console.
const RECENT_KEPT: usize = 200;

impl Trust {
    pub fn new(store: Store, outbound: Outbound, metrics: &crate::http::metrics::Metrics) -> Trust {
        let checks = Family::<CheckLabels, Counter>::default();
        metrics.register(
            "signature_checks",
            "Image signature checks at admission by result (cached, signed, unsigned, unknown)",
            checks.clone(),
        );
        Trust {
            store,
            outbound,
            rules: RwLock::new(None),
            verdicts: Mutex::default(),
            tags: Mutex::default(),
            recent: Mutex::default(),
            checks,
        }
    }

    fn count(&self, result: &str) {
        self.checks
            .get_or_create(&CheckLabels {
                result: result.into(),
            })
            .inc();
    }

    fn fresh(&self) -> Option<Arc<RuleSet>> {
        let set = self.rules.read().ok()?.clone()?;
        (set.version == self.store.version(&RULES)).then_some(set)
    }

    /// Whether the compiled rules are current (else [`Trust::warm`] them off the request's
    /// worker first).
    pub fn is_fresh(&self) -> bool {
        self.fresh().is_some()
    }

    /// Compiles the rules from the store.
    pub fn warm(&self) -> Result<(), crate::store::StoreError> {
        if self.is_fresh() {
            return Ok(());
        }
        let version = self.store.version(&RULES);
        let all = self.store.read(|r| r.all(&RULES))?;
        let mut grouped: HashMap<u64, Vec<Rule>> = HashMap::new();
        for (_, r) in all {
            if let Some(rule) = compile(&r) {
                grouped.entry(r.cluster).or_default().push(rule);
            }
        }
        let set = RuleSet {
            version,
            by_cluster: grouped.into_iter().map(|(c, r)| (c, Arc::new(r))).collect(),
        };
        if let Ok(mut w) = self.rules.write() {
            *w = Some(Arc::new(set));
        }
        Ok(())
    }

    fn rules_of(&self, cluster: u64) -> Option<Arc<Vec<Rule>>> {
        let set = self.fresh().or_else(|| {
            self.warm().ok()?;
            self.fresh()
        })?;
        set.by_cluster.get(&cluster).cloned()
    }

    /// Whether cluster `cluster` has any signature rule.
    pub fn applies(&self, cluster: u64) -> bool {
        self.rules_of(cluster).is_some_and(|r| !r.is_empty())
    }

    /// The signature checks of `images` under cluster `cluster`'s rules, by image. Registry
    /// credentials come from the configured registries (opened with `sealer`).
    pub async fn check(
        &self,
        sealer: &Sealer,
        cluster: u64,
        images: &[String],
    ) -> HashMap<String, Check> {
        let mut out = HashMap::new();
        let Some(rules) = self.rules_of(cluster) else {
            return out;
        };
        // (image, rule index) pairs that need the registry.
        let mut misses = Vec::new();
        for image in images {
            if out.contains_key(image) {
                continue;
            }
            let parsed = ImageRef::parse(image);
            let name = parsed
                .as_ref()
                .map(|r| format!("{}/{}", r.registry, r.repository));
            let mut result = Check::Passed;
            for (i, rule) in rules.iter().enumerate() {
                let Ok(name) = &name else {
                    result = Check::Refused {
                        pattern: "**".into(),
                        reason: "not an image reference".into(),
                    };
                    break;
                };
                if !rule.pattern.matches(name) {
                    continue;
                }
                match parsed.as_ref().ok().and_then(|r| self.cached(r, rule)) {
                    Some(Verdict::Signed { .. }) => self.count("cached"),
                    Some(Verdict::Unsigned { reason, .. }) => {
                        self.count("cached");
                        result = Check::Refused {
                            pattern: rule.pattern.as_str().to_string(),
                            reason,
                        };
                        break;
                    }
                    None => misses.push((image.clone(), i)),
                }
            }
            out.insert(image.clone(), result);
        }
        if misses.is_empty() {
            return out;
        }
        let work = misses.iter().map(|(image, i)| {
            let rule = &rules[*i];
            async move { (image, rule, self.lookup(sealer, image, rule).await) }
        });
        let found =
            tokio::time::timeout(CHECK_DEADLINE, futures_util::future::join_all(work)).await;
        let found = match found {
            Ok(f) => f,
            Err(_) => {
                for (image, i) in &misses {
                    self.count("unknown");
                    settle(
                        &mut out,
                        image,
                        Check::Unknown {
                            pattern: rules[*i].pattern.as_str().to_string(),
                            reason: format!(
                                "the registry did not answer within {} s",
                                CHECK_DEADLINE.as_secs()
                            ),
                        },
                    );
                }
                return out;
            }
        };
        for (image, rule, verdict) in found {
            let pattern = rule.pattern.as_str().to_string();
            let check = match verdict {
                Ok(Verdict::Signed { .. }) => {
                    self.count("signed");
                    Check::Passed
                }
                Ok(Verdict::Unsigned { reason, .. }) => {
                    self.count("unsigned");
                    Check::Refused { pattern, reason }
                }
                Err(e) => {
                    self.count("unknown");
                    Check::Unknown {
                        pattern,
                        reason: e.to_string(),
                    }
                }
            };
            settle(&mut out, image, check);
        }
        out
    }

    /// A verdict still in the cache for `image` under `rule`'s keys.
    fn cached(&self, image: &ImageRef, rule: &Rule) -> Option<Verdict> {
        let now = Instant::now();
        let digest = if image.reference.starts_with("sha256:") {
            image.reference.clone()
        } else {
            let tags = self.tags.lock().ok()?;
            let (d, until) = tags.get(&tag_key(image))?;
            if *until < now {
                return None;
            }
            d.clone()
        };
        let verdicts = self.verdicts.lock().ok()?;
        let c = verdicts.get(&(digest, rule.keyset.clone()))?;
        (c.until >= now).then(|| c.verdict.clone())
    }

    /// Asks the registry, and caches what it says.
    async fn lookup(
        &self,
        sealer: &Sealer,
        image: &str,
        rule: &Rule,
    ) -> Result<Verdict, ScanError> {
        let parsed = ImageRef::parse(image)?;
        let access =
            crate::registries::access_for(&self.store, sealer, &self.outbound, &parsed.registry)
                .map_err(|e| ScanError::Unreachable(format!("registry credentials: {e}")))?;
        let mut client = Client::new(&parsed, &access, REQUEST_TIMEOUT)?;
        let verdict = verify::check_image(&mut client, &parsed, &rule.keys).await?;
        let digest = verdict.digest().to_string();
        if digest.is_empty() {
            return Ok(verdict);
        }
        let now = Instant::now();
        if !parsed.reference.starts_with("sha256:") {
            if let Ok(mut tags) = self.tags.lock() {
                if tags.len() >= CACHE_LIMIT {
                    tags.clear();
                }
                tags.insert(tag_key(&parsed), (digest.clone(), now + TAG_TTL));
            }
        }
        let ttl = if verdict.is_signed() {
            SIGNED_TTL
        } else {
            UNSIGNED_TTL
        };
        if let Ok(mut v) = self.verdicts.lock() {
            if v.len() >= CACHE_LIMIT {
                v.clear();
            }
            v.insert(
                (digest, rule.keyset.clone()),
                Cached {
                    verdict: verdict.clone(),
                    until: now + ttl,
                },
            );
        }
        self.remember(image, &verdict);
        Ok(verdict)
    }

    fn remember(&self, image: &str, verdict: &Verdict) {
        let (digest, signed, detail) = match verdict {
            Verdict::Signed {
                digest,
                scheme,
                key,
            } => (
                digest.clone(),
                true,
                format!("{scheme} signature by key {}", &key[..16.min(key.len())]),
            ),
            Verdict::Unsigned { digest, reason } => (digest.clone(), false, reason.clone()),
        };
        if let Ok(mut r) = self.recent.lock() {
            if r.len() >= RECENT_KEPT {
                r.pop_back();
            }
            r.push_front(Recent {
                image: image.chars().take(256).collect(),
                digest,
                signed,
                detail,
                checked_at: chrono::Utc::now(),
            });
        }
    }

    /// Verdicts reached from the registry, newest first.
    pub fn recent(&self) -> Vec<Recent> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Keeps the worst check per image: refused over unknown over passed.
fn settle(out: &mut HashMap<String, Check>, image: &str, check: Check) {
    let rank = |c: &Check| match c {
        Check::Passed => 0,
        Check::Unknown { .. } => 1,
        Check::Refused { .. } => 2,
    };
    let entry = out.entry(image.to_string()).or_insert(Check::Passed);
    if rank(&check) > rank(entry) {
        *entry = check;
    }
}

fn tag_key(image: &ImageRef) -> String {
    format!(
        "{}/{}:{}",
        image.registry, image.repository, image.reference
    )
}

fn compile(r: &SignatureRule) -> Option<Rule> {
    let pattern = match Pattern::parse(&r.pattern) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(rule = r.id, error = %e, "signature rule left out");
            return None;
        }
    };
    let keys: Vec<PublicKey> = r
        .keys
        .iter()
        .filter_map(|pem| PublicKey::from_pem(pem).ok())
        .collect();
    if keys.is_empty() {
        // A rule whose keys cannot be read must still refuse, not vanish: it keeps its
        // pattern with no key any signature could satisfy.
        tracing::warn!(rule = r.id, "signature rule without a readable key");
    }
    let mut prints: Vec<String> = keys.iter().map(PublicKey::fingerprint).collect();
    prints.sort();
    Some(Rule {
        pattern,
        keys: Arc::new(keys),
        keyset: prints.join(","),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_check_of_an_image_stands() {
        let mut out = HashMap::new();
        let unknown = Check::Unknown {
            pattern: "a".into(),
            reason: "down".into(),
        };
        let refused = Check::Refused {
            pattern: "b".into(),
            reason: "unsigned".into(),
        };
        settle(&mut out, "img", unknown.clone());
        assert_eq!(out["img"], unknown);
        settle(&mut out, "img", refused.clone());
        settle(&mut out, "img", unknown);
        settle(&mut out, "img", Check::Passed);
        assert_eq!(out["img"], refused);
    }
}
