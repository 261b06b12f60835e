//! `bulwark verify IMAGE --key FILE`: whether an image in a registry carries a valid cosign
//! signature by a key, for CI pipelines. Exit status 0 only for a valid signature; 1 when there
//! is none (or the image is missing); 2 when it could not be checked (the registry, the key).

use std::path::PathBuf;
use std::time::Duration;

use crate::scanner::registry::{Client, ImageRef};
use crate::trust::cosign::PublicKey;
use crate::trust::verify::{self, Verdict};

/// Arguments of `bulwark verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The image: REGISTRY/REPO[:TAG][@DIGEST].
    pub image: String,
    /// A cosign public key (PEM); repeat for several keys, any of which may have signed.
    #[arg(long, required = true)]
    pub key: Vec<PathBuf>,
    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
    /// Longest any registry request may take, in seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    #[command(flatten)]
    pub registry: super::scan::RegistryArgs,
}

/// Runs `verify`; returns the exit status.
pub fn run(a: &VerifyArgs) -> anyhow::Result<i32> {
    let mut keys = Vec::new();
    for path in &a.key {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        match PublicKey::from_pem(&text) {
            Ok(k) => keys.push(k),
            Err(e) => {
                eprintln!("bulwark: {}: {e}", path.display());
                return Ok(2);
            }
        }
    }
    let image = match ImageRef::parse(&a.image) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("bulwark: {e}: give REGISTRY/REPO[:TAG][@DIGEST]");
            return Ok(2);
        }
    };
    let access = a.registry.access(&image.registry)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let checked = rt.block_on(async {
        let mut client = Client::new(&image, &access, Duration::from_secs(a.timeout.max(1)))?;
        verify::check_image(&mut client, &image, &keys).await
    });
    let name = format!("{}/{}", image.registry, image.repository);
    let (code, json, line) = match checked {
        Ok(Verdict::Signed {
            digest,
            scheme,
            key,
        }) => (
            0,
            serde_json::json!({"image": a.image, "digest": digest, "verified": true, "scheme": scheme, "key": key}),
            format!("Verified: {name}@{digest} carries a {scheme} signature by key {key}"),
        ),
        Ok(Verdict::Unsigned { digest, reason }) => (
            1,
            serde_json::json!({"image": a.image, "digest": digest, "verified": false, "reason": reason}),
            format!("Not verified: {}: {reason}", a.image),
        ),
        Err(e) => (
            2,
            serde_json::json!({"image": a.image, "verified": false, "error": e.to_string()}),
            format!("Could not check {}: {e}", a.image),
        ),
    };
    if a.json {
        println!("{json}");
    } else if code == 0 {
        println!("{line}");
    } else {
        eprintln!("{line}");
    }
    Ok(code)
}
