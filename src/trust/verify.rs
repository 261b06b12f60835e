//! Finding an image's cosign signatures in its registry and checking them with trusted keys:
//! the simple-signing manifest under the `sha256-<hex>.sig` tag (one signature per layer) and
//! the Sigstore bundles that refer to the image (OCI 1.1 referrers). The first signature that
//! verifies with a trusted key and names the image's digest settles it; everything else that
//! was found is kept as the reason when none does.
//!
//! Everything fetched is bounded: manifests by the registry client, signature layers and
//! bundles by [`MAX_SIGNATURE_BYTES`] (checked on the descriptor, then while reading), and
//! the number of signatures looked at by [`MAX_SIGNATURES`].

use serde_json::Value;

use super::cosign::{self, PublicKey};
use crate::scanner::registry::{Client, ImageRef};
use crate::scanner::ScanError;

/// The simple-signing payload's media type (a layer of the `.sig` manifest).
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// A Sigstore bundle's media type (the referrer's artifact type and its one layer).
pub const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The layer annotation holding a simple signature, base64.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Largest signature layer or bundle read (real ones are a few KiB, a certificate chain
/// included).
pub const MAX_SIGNATURE_BYTES: u64 = 256 * 1024;
/// Most signatures looked at per image, per scheme.
pub const MAX_SIGNATURES: usize = 32;

/// What the registry holds for an image, judged.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A signature by a trusted key names the image.
    Signed {
        digest: String,
        /// `simple-signing` or `bundle`.
        scheme: &'static str,
        /// The fingerprint of the key that verified it.
        key: String,
    },
    /// No signature by a trusted key: why, in words.
    Unsigned { digest: String, reason: String },
}

impl Verdict {
    pub fn is_signed(&self) -> bool {
        matches!(self, Verdict::Signed { .. })
    }

    /// The digest judged (empty when the tag was not found).
    pub fn digest(&self) -> &str {
        match self {
            Verdict::Signed { digest, .. } | Verdict::Unsigned { digest, .. } => digest,
        }
    }
}

/// The digest `image` stands for: its own when it names one, else what its tag points at now
/// (`None`: the registry has no such tag).
pub async fn resolve(client: &mut Client, image: &ImageRef) -> Result<Option<String>, ScanError> {
    if image.reference.starts_with("sha256:") {
        crate::scanner::archive::digest_hex(&image.reference)?;
        return Ok(Some(image.reference.clone()));
    }
    Ok(client
        .find_manifest(&image.reference)
        .await?
        .map(|m| m.digest))
}

/// Resolves `image` to its digest and checks its signatures against `keys`: a tag the registry
/// lacks is [`Verdict::Unsigned`] with an empty digest.
pub async fn check_image(
    client: &mut Client,
    image: &ImageRef,
    keys: &[PublicKey],
) -> Result<Verdict, ScanError> {
    match resolve(client, image).await? {
        Some(digest) => check(client, &digest, keys).await,
        None => Ok(Verdict::Unsigned {
            digest: String::new(),
            reason: format!("the registry has no tag '{}'", image.reference),
        }),
    }
}

/// Checks the signatures of the image `digest` in `client`'s repository against `keys`. Only
/// [`ScanError::Unreachable`] is an error: anything wrong with what was found is a reason of
/// [`Verdict::Unsigned`].
pub async fn check(
    client: &mut Client,
    digest: &str,
    keys: &[PublicKey],
) -> Result<Verdict, ScanError> {
    let hex = crate::scanner::archive::digest_hex(digest)?.to_string();
    let mut reasons = Vec::new();
    let mut note = |r: String| {
        if !reasons.contains(&r) && reasons.len() < 8 {
            reasons.push(r);
        }
    };
    if let Some(sig) = client.find_manifest(&format!("sha256-{hex}.sig")).await? {
        let layers = sig.value.get("layers").and_then(Value::as_array);
        for layer in layers.into_iter().flatten().take(MAX_SIGNATURES) {
            match simple_signature(client, layer, digest, keys).await {
                Ok(key) => {
                    return Ok(Verdict::Signed {
                        digest: digest.to_string(),
                        scheme: "simple-signing",
                        key,
                    })
                }
                Err(Found::Unreachable(e)) => return Err(e),
                Err(Found::Wrong(r)) => note(r),
            }
        }
    }
    for referrer in client
        .referrers(digest, BUNDLE)
        .await?
        .iter()
        .take(MAX_SIGNATURES)
    {
        match bundle_signature(client, referrer, digest, keys).await {
            Ok(key) => {
                return Ok(Verdict::Signed {
                    digest: digest.to_string(),
                    scheme: "bundle",
                    key,
                })
            }
            Err(Found::Unreachable(e)) => return Err(e),
            Err(Found::Wrong(r)) => note(r),
        }
    }
    let reason = if reasons.is_empty() {
        "no cosign signature found (neither a .sig tag nor a Sigstore bundle referrer)".to_string()
    } else {
        format!(
            "no valid signature by a trusted key: {}",
            reasons.join("; ")
        )
    };
    Ok(Verdict::Unsigned {
        digest: digest.to_string(),
        reason,
    })
}

/// Why one signature did not settle it.
enum Found {
    Unreachable(ScanError),
    Wrong(String),
}

impl From<ScanError> for Found {
    fn from(e: ScanError) -> Self {
        match e {
            ScanError::Unreachable(_) => Found::Unreachable(e),
            other => Found::Wrong(other.to_string()),
        }
    }
}

/// A descriptor's digest, if its size is within bounds.
fn bounded_digest(desc: &Value, what: &str) -> Result<String, Found> {
    let size = desc.get("size").and_then(Value::as_u64).unwrap_or(0);
    if size > MAX_SIGNATURE_BYTES {
        return Err(Found::Wrong(format!(
            "a {what} of {size} bytes was not read (at most {MAX_SIGNATURE_BYTES})"
        )));
    }
    desc.get("digest")
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| Found::Wrong(format!("a {what} without a digest")))
}

/// The first key that verifies `payload` by `verify`, or every key's failure.
fn first_key(
    keys: &[PublicKey],
    verify: impl Fn(&PublicKey) -> Result<(), cosign::CosignError>,
) -> Result<String, Found> {
    let mut last = None;
    for key in keys {
        match verify(key) {
            Ok(()) => return Ok(key.fingerprint()),
            // A statement about another image is worth saying over a key mismatch.
            Err(e @ cosign::CosignError::OtherImage { .. }) => last = Some(e),
            Err(e) => {
                if last.is_none() {
                    last = Some(e)
                }
            }
        }
    }
    Err(Found::Wrong(
        last.map(|e| e.to_string())
            .unwrap_or_else(|| "no key to check with".into()),
    ))
}

async fn simple_signature(
    client: &mut Client,
    layer: &Value,
    digest: &str,
    keys: &[PublicKey],
) -> Result<String, Found> {
    let media = layer.get("mediaType").and_then(Value::as_str).unwrap_or("");
    if media != SIMPLE_SIGNING {
        return Err(Found::Wrong(format!(
            "a .sig layer of type '{}' is not a simple signature",
            media.chars().take(80).collect::<String>()
        )));
    }
    let signature = layer
        .pointer("/annotations/dev.cosignproject.cosign~1signature")
        .and_then(Value::as_str)
        .ok_or_else(|| Found::Wrong("a .sig layer without its signature annotation".into()))?
        .to_string();
    let blob = bounded_digest(layer, "signature payload")?;
    let payload = client.blob(&blob, MAX_SIGNATURE_BYTES).await?;
    first_key(keys, |k| {
        cosign::verify_simple_signing(k, &payload, &signature, digest)
    })
}

async fn bundle_signature(
    client: &mut Client,
    referrer: &Value,
    digest: &str,
    keys: &[PublicKey],
) -> Result<String, Found> {
    let at = bounded_digest(referrer, "referrer manifest")?;
    let manifest = client.manifest(&at).await?;
    let subject = manifest
        .value
        .pointer("/subject/digest")
        .and_then(Value::as_str)
        .unwrap_or("");
    if subject != digest {
        return Err(Found::Wrong(format!(
            "a referrer whose subject is {}, not this image",
            if subject.is_empty() {
                "missing".to_string()
            } else {
                subject.chars().take(80).collect()
            }
        )));
    }
    let layer = manifest
        .value
        .get("layers")
        .and_then(Value::as_array)
        .and_then(|l| l.first())
        .filter(|l| l.get("mediaType").and_then(Value::as_str) == Some(BUNDLE))
        .ok_or_else(|| Found::Wrong("a bundle referrer without a bundle layer".into()))?;
    let blob = bounded_digest(layer, "bundle")?;
    let bundle = client.blob(&blob, MAX_SIGNATURE_BYTES).await?;
    first_key(keys, |k| cosign::verify_bundle(k, &bundle, digest))
}
