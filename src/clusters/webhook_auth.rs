//! Optional caller authentication for a cluster's admission webhook. Kubernetes calls webhooks
//! without credentials, so by default (as with m9sweeper) anyone who can reach Bulwark can send
//! reviews. An operator can give a cluster a secret token: the webhook URL then carries it
//! (`/api/v1/admission/{cluster}/{token}`, written into `bulwark webhook-config`'s output) and
//! reviews without it are refused with 403, which the API server treats as a webhook failure.
//!
//! The token is 256 random bits. The store keeps it sealed with the appliance key (so the
//! webhook configuration can be printed again) and its SHA-256, which admission compares.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ClusterError, CLUSTERS};
use crate::audit::{self, Event};
use crate::secrets::Sealer;
use crate::store::{Store, StoreError, Table, WriteTx};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WebhookToken {
    /// The token, sealed (`v1:…`) and bound to `webhook-token:<cluster>`.
    sealed: String,
    /// SHA-256 (hex) of the token.
    sha256: String,
    created_at: DateTime<Utc>,
}

const TOKENS: Table<u64, WebhookToken> = Table::new("clusters_webhook_tokens");

fn context_of(id: u64) -> String {
    format!("webhook-token:{id}")
}

fn digest(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// The table admission's snapshot follows.
pub fn table() -> &'static str {
    TOKENS.name()
}

/// Gives cluster `id` a new webhook token (replacing any earlier one) and returns it; from now on
/// its reviews must carry it.
pub fn issue(
    store: &Store,
    sealer: &Sealer,
    actor: &str,
    ip: &str,
    id: u64,
) -> Result<String, ClusterError> {
    let token = crate::auth::random_token(32);
    let sealed = sealer
        .seal(&context_of(id), &token)
        .map_err(|e| ClusterError::Secret(e.to_string()))?;
    store.write(|w| {
        let mut c = w
            .get(&CLUSTERS, &id)?
            .ok_or_else(|| ClusterError::NotFound(id.to_string()))?;
        w.put(
            &TOKENS,
            &id,
            &WebhookToken {
                sealed,
                sha256: digest(&token),
                created_at: Utc::now(),
            },
        )?;
        c.webhook_token_required = true;
        c.updated_at = Utc::now();
        w.put(&CLUSTERS, &id, &c)?;
        audit::record(
            w,
            Event::new(
                actor,
                "cluster.webhook_token.issue",
                format!("cluster:{id}"),
            )
            .from_ip(ip),
        )?;
        Ok(token)
    })
}

/// Removes cluster `id`'s token: its webhook takes reviews without one again.
pub fn revoke(store: &Store, actor: &str, ip: &str, id: u64) -> Result<(), ClusterError> {
    store.write(|w| {
        let mut c = w
            .get(&CLUSTERS, &id)?
            .ok_or_else(|| ClusterError::NotFound(id.to_string()))?;
        w.delete(&TOKENS, &id)?;
        c.webhook_token_required = false;
        c.updated_at = Utc::now();
        w.put(&CLUSTERS, &id, &c)?;
        audit::record(
            w,
            Event::new(
                actor,
                "cluster.webhook_token.revoke",
                format!("cluster:{id}"),
            )
            .from_ip(ip),
        )?;
        Ok(())
    })
}

/// Cluster `id`'s token in clear, for printing its webhook configuration.
pub fn token(store: &Store, sealer: &Sealer, id: u64) -> Result<Option<String>, ClusterError> {
    let Some(t) = store.read(|r| r.get(&TOKENS, &id))? else {
        return Ok(None);
    };
    sealer
        .open_sealed(&context_of(id), &t.sealed)
        .map(Some)
        .map_err(|e| ClusterError::Secret(e.to_string()))
}

/// The token digests of every cluster that has one, by cluster id.
pub fn digests(store: &Store) -> Result<Vec<(u64, String)>, StoreError> {
    Ok(store
        .read(|r| r.all(&TOKENS))?
        .into_iter()
        .map(|(id, t)| (id, t.sha256))
        .collect())
}

/// Whether `given` is the token whose digest is `expected`. Comparing digests keeps the
/// comparison's timing independent of the secret.
pub fn matches(expected: &str, given: &str) -> bool {
    digest(given) == expected
}

/// Forgets cluster `id`'s token (inside the transaction deleting the cluster).
pub(super) fn forget(w: &WriteTx, id: u64) -> Result<(), StoreError> {
    w.delete(&TOKENS, &id).map(|_| ())
}
