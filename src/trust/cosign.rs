//! Cosign signatures, verified with a public key (ECDSA P-256 / SHA-256, cosign's only key
//! type): the simple-signing scheme (a layer of the `sha256-<hex>.sig` manifest holds the
//! payload, its annotation the signature) and the DSSE envelope of a Sigstore bundle (cosign
//! 3's default, stored as an OCI 1.1 referrer). Each check ends with the signed statement
//! naming the image's digest: a valid signature over another image counts for nothing.
//!
//! The registry side (finding the `.sig` manifest or the referrer) is `verify`'s; this module
//! judges bytes.

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use base64::Engine as _;
use serde_json::Value;

/// What a signature check can find wrong.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum CosignError {
    #[error("the public key: {0}")]
    Key(String),
    #[error("the signature does not verify with this key")]
    BadSignature,
    #[error("the signed payload: {0}")]
    Payload(String),
    #[error("the signature is for {signed}, not {wanted}")]
    OtherImage { signed: String, wanted: String },
}

/// DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1, a 65-byte point).
pub(crate) const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A cosign public key (`cosign.pub`: PEM `PUBLIC KEY`, P-256).
#[derive(Debug, Clone, PartialEq)]
pub struct PublicKey {
    /// The uncompressed point (0x04 ‖ X ‖ Y).
    point: Vec<u8>,
}

impl PublicKey {
    pub fn from_pem(pem: &str) -> Result<PublicKey, CosignError> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN PUBLIC KEY-----")
            .skip(1)
            .take_while(|l| *l != "-----END PUBLIC KEY-----")
            .collect();
        if body.is_empty() {
            return Err(CosignError::Key("no PEM PUBLIC KEY block".into()));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| CosignError::Key("the PEM block is not base64".into()))?;
        Self::from_spki(&der)
    }

    /// From a DER SubjectPublicKeyInfo.
    pub fn from_spki(der: &[u8]) -> Result<PublicKey, CosignError> {
        match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) if point.len() == 65 && point[0] == 0x04 => Ok(PublicKey {
                point: point.to_vec(),
            }),
            _ => Err(CosignError::Key(
                "not an ECDSA P-256 public key (the only kind cosign makes)".into(),
            )),
        }
    }

    /// From an X.509 certificate's key (keyless signatures carry one).
    pub fn from_certificate_der(der: &[u8]) -> Result<PublicKey, CosignError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|_| CosignError::Key("not an X.509 certificate".into()))?;
        Self::from_spki(cert.tbs_certificate.subject_pki.raw)
    }

    /// SHA-256 of the key's SubjectPublicKeyInfo, in hex: how the console and the logs name a
    /// key (`openssl pkey -pubin -outform DER | sha256sum` prints the same).
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(P256_SPKI_PREFIX);
        h.update(&self.point);
        hex::encode(h.finalize())
    }

    /// Checks an ASN.1 (DER) ECDSA signature over `message` (SHA-256), as `openssl dgst -sha256
    /// -sign` makes them.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), CosignError> {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(message, signature)
            .map_err(|_| CosignError::BadSignature)
    }
}

fn b64(s: &str, what: &str) -> Result<Vec<u8>, CosignError> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| CosignError::Payload(format!("{what} is not base64")))
}

/// The simple-signing scheme: `payload` (the layer's bytes, signed as stored) and the
/// base64 signature of its `dev.cosignproject.cosign/signature` annotation, for the image
/// `digest` (`sha256:...`).
pub fn verify_simple_signing(
    key: &PublicKey,
    payload: &[u8],
    signature_b64: &str,
    digest: &str,
) -> Result<(), CosignError> {
    key.verify(payload, &b64(signature_b64, "the signature")?)?;
    let v: Value =
        serde_json::from_slice(payload).map_err(|_| CosignError::Payload("not JSON".into()))?;
    let critical = &v["critical"];
    if critical["type"] != "cosign container image signature" {
        return Err(CosignError::Payload(
            "not a cosign container image signature".into(),
        ));
    }
    let signed = critical["image"]["docker-manifest-digest"]
        .as_str()
        .ok_or_else(|| CosignError::Payload("no docker-manifest-digest".into()))?;
    same_image(signed, digest)
}

/// DSSE's pre-authentication encoding: what the envelope's signatures sign.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A Sigstore bundle's DSSE envelope (`bundle` is the bundle's JSON): some signature verifies
/// with `key`, and the in-toto statement it signs has `digest` among its subjects.
pub fn verify_bundle(key: &PublicKey, bundle: &[u8], digest: &str) -> Result<(), CosignError> {
    let v: Value =
        serde_json::from_slice(bundle).map_err(|_| CosignError::Payload("not JSON".into()))?;
    let env = &v["dsseEnvelope"];
    let payload_type = env["payloadType"]
        .as_str()
        .ok_or_else(|| CosignError::Payload("no DSSE envelope".into()))?;
    let payload = b64(env["payload"].as_str().unwrap_or(""), "the payload")?;
    let message = pae(payload_type, &payload);
    let signatures = env["signatures"].as_array().cloned().unwrap_or_default();
    if signatures.is_empty() {
        return Err(CosignError::Payload("the envelope has no signature".into()));
    }
    let verified = signatures.iter().any(|s| {
        s["sig"]
            .as_str()
            .and_then(|sig| b64(sig, "a signature").ok())
            .is_some_and(|sig| key.verify(&message, &sig).is_ok())
    });
    if !verified {
        return Err(CosignError::BadSignature);
    }
    let statement: Value = serde_json::from_slice(&payload)
        .map_err(|_| CosignError::Payload("the statement is not JSON".into()))?;
    let subjects = statement["subject"].as_array().cloned().unwrap_or_default();
    let wanted = digest.strip_prefix("sha256:").unwrap_or(digest);
    if subjects.iter().any(|s| s["digest"]["sha256"] == wanted) {
        return Ok(());
    }
    Err(CosignError::OtherImage {
        signed: subjects
            .first()
            .and_then(|s| s["digest"]["sha256"].as_str())
            .map(|d| format!("sha256:{d}"))
            .unwrap_or_else(|| "no subject".into()),
        wanted: digest.to_string(),
    })
}

fn same_image(signed: &str, wanted: &str) -> Result<(), CosignError> {
    if signed.eq_ignore_ascii_case(wanted) {
        Ok(())
    } else {
        Err(CosignError::OtherImage {
            signed: signed.chars().take(80).collect(),
            wanted: wanted.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    const DIGEST: &str = "sha256:0f6a0ca5b7c1a6b2d0e5b8f3f9d6d1e3c4b5a6978877665544332211ffeeddcc";

    /// A key pair made for the test, and its public half as cosign writes it.
    fn keys() -> (EcdsaKeyPair, PublicKey, String) {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        let body = base64::engine::general_purpose::STANDARD.encode(&spki);
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n");
        let key = PublicKey::from_pem(&pem).unwrap();
        (pair, key, pem)
    }

    fn sign(pair: &EcdsaKeyPair, message: &[u8]) -> String {
        let sig = pair.sign(&SystemRandom::new(), message).unwrap();
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    }

    fn payload(digest: &str) -> Vec<u8> {
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"registry.local/team/web"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
        )
        .into_bytes()
    }

    #[test]
    fn simple_signing_verifies_only_the_signed_image_with_the_right_key() {
        let (pair, key, _) = keys();
        let p = payload(DIGEST);
        let sig = sign(&pair, &p);
        assert_eq!(verify_simple_signing(&key, &p, &sig, DIGEST), Ok(()));

        let other = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        assert!(matches!(
            verify_simple_signing(&key, &p, &sig, other),
            Err(CosignError::OtherImage { .. })
        ));
        let mut tampered = p.clone();
        let at = tampered.len() - 20;
        tampered[at] ^= 1;
        assert_eq!(
            verify_simple_signing(&key, &tampered, &sig, DIGEST),
            Err(CosignError::BadSignature)
        );
        let (_, another, _) = keys();
        assert_eq!(
            verify_simple_signing(&another, &p, &sig, DIGEST),
            Err(CosignError::BadSignature)
        );
        let points_elsewhere = payload(other);
        let sig2 = sign(&pair, &points_elsewhere);
        assert!(verify_simple_signing(&key, &points_elsewhere, &sig2, DIGEST).is_err());
        assert!(verify_simple_signing(&key, &p, "%%%", DIGEST).is_err());
        let not_cosign = br#"{"critical":{"type":"something else"}}"#;
        let sig3 = sign(&pair, not_cosign);
        assert!(matches!(
            verify_simple_signing(&key, not_cosign, &sig3, DIGEST),
            Err(CosignError::Payload(_))
        ));
    }

    #[test]
    fn keys_that_are_not_p256_public_keys_are_refused() {
        for bad in [
            "",
            "-----BEGIN PUBLIC KEY-----\n%%%\n-----END PUBLIC KEY-----",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
            // An Ed25519 key.
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----",
        ] {
            assert!(PublicKey::from_pem(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_dsse_bundle_signed_here_and_cosigns_own() {
        let (pair, key, _) = keys();
        let hex = DIGEST.trim_start_matches("sha256:");
        let statement = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"registry.local/team/web","digest":{{"sha256":"{hex}"}}}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{{}}}}"#
        );
        let t = "application/vnd.in-toto+json";
        let sig = sign(&pair, &pae(t, statement.as_bytes()));
        let enc = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let bundle = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "dsseEnvelope": {"payload": enc(statement.as_bytes()), "payloadType": t, "signatures": [{"sig": sig}]},
        })
        .to_string();
        assert_eq!(verify_bundle(&key, bundle.as_bytes(), DIGEST), Ok(()));
        let other = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
        assert!(matches!(
            verify_bundle(&key, bundle.as_bytes(), other),
            Err(CosignError::OtherImage { .. })
        ));
        let (_, another, _) = keys();
        assert_eq!(
            verify_bundle(&another, bundle.as_bytes(), DIGEST),
            Err(CosignError::BadSignature)
        );

        // cosign's own bundle: its DSSE signature verifies with the key in its certificate.
        let real = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/cosign/oci-attestation.sigstore-bundle-v0.3.json"
        ))
        .unwrap();
        let v: Value = serde_json::from_slice(&real).unwrap();
        let cert = base64::engine::general_purpose::STANDARD
            .decode(
                v["verificationMaterial"]["certificate"]["rawBytes"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        let signer = PublicKey::from_certificate_der(&cert).unwrap();
        let subject = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4";
        assert_eq!(verify_bundle(&signer, &real, subject), Ok(()));
        assert_eq!(
            verify_bundle(&key, &real, subject),
            Err(CosignError::BadSignature)
        );
    }
}
