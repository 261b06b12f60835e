//! The `http::Authenticator` over the store: sessions and API keys to principals, with a
//! memory of recent answers that every relevant write invalidates.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::*;
use crate::http::{ApiError, Authenticator, Credential, Principal};
use crate::store::Store;

/// Resolves cookies and keys against the store, remembering recent answers.
///
/// The memory is keyed by the token's hash and tagged with the store versions of the users, API
/// key and session tables at lookup time: any write to those tables (revoke, disable, logout,
/// role change, new login) makes every remembered answer stale, so a cached answer is never one
/// the store would not give. Sessions also re-check their expiry on every use.
pub struct StoreAuthenticator {
    store: Store,
    memory: std::sync::Mutex<std::collections::HashMap<String, Remembered>>,
}

#[derive(Clone)]
struct Remembered {
    principal: Principal,
    expires_at: Option<DateTime<Utc>>,
    versions: [u64; 3],
}

/// Bound on remembered credentials; the map is cleared when full (it refills on use).
const MEMORY_LIMIT: usize = 10_000;

impl StoreAuthenticator {
    /// An authenticator over `store`, as the trait object `http` wants.
    pub fn shared(store: Store) -> Arc<dyn Authenticator> {
        Arc::new(StoreAuthenticator {
            store,
            memory: Default::default(),
        })
    }

    fn versions(&self) -> [u64; 3] {
        [
            self.store.version(&USERS),
            self.store.version(&API_KEYS),
            self.store.version(&SESSIONS),
        ]
    }

    fn recall(&self, hash: &str) -> Option<Principal> {
        let memory = self.memory.lock().ok()?;
        let r = memory.get(hash)?;
        let fresh = r.versions == self.versions() && r.expires_at.is_none_or(|e| e > Utc::now());
        fresh.then(|| r.principal.clone())
    }

    fn remember(
        &self,
        hash: String,
        principal: &Principal,
        expires_at: Option<DateTime<Utc>>,
        versions: [u64; 3],
    ) {
        if let Ok(mut memory) = self.memory.lock() {
            if memory.len() >= MEMORY_LIMIT {
                memory.clear();
            }
            memory.insert(
                hash,
                Remembered {
                    principal: principal.clone(),
                    expires_at,
                    versions,
                },
            );
        }
    }
}

impl Authenticator for StoreAuthenticator {
    fn session(&self, token: &str) -> Result<Option<Principal>, ApiError> {
        if token.len() > 128 {
            return Ok(None);
        }
        let key = password::token_hash(token);
        let now = Utc::now();
        // Versions first: a write racing this lookup leaves the entry stale, never wrong.
        let versions = self.versions();
        let found = self.store.read(|r| {
            let Some(s) = r.get(&SESSIONS, &key)? else {
                return Ok(None);
            };
            if s.expires_at <= now {
                return Ok(None);
            }
            let Some(u) = r.get(&USERS, &s.user_id)? else {
                return Ok(None);
            };
            if u.disabled {
                return Ok(None);
            }
            let p = Principal {
                user_id: u.id,
                email: u.email,
                role: u.role,
                credential: Credential::Session {
                    id: s.id,
                    csrf: s.csrf,
                },
            };
            Ok(Some((p, s.expires_at)))
        })?;
        Ok(found.map(|(p, expires_at)| {
            self.remember(key, &p, Some(expires_at), versions);
            p
        }))
    }

    fn api_key(&self, key: &str) -> Result<Option<Principal>, ApiError> {
        if key.len() > 128 {
            return Ok(None);
        }
        let hash = password::token_hash(key);
        let versions = self.versions();
        let found = self.store.read(|r| {
            let Some(id) = r.get(&API_KEYS_BY_HASH, &hash)? else {
                return Ok(None);
            };
            let Some(k) = r.get(&API_KEYS, &id)? else {
                return Ok(None);
            };
            if k.revoked_at.is_some() {
                return Ok(None);
            }
            let Some(u) = r.get(&USERS, &k.user_id)? else {
                return Ok(None);
            };
            if u.disabled {
                return Ok(None);
            }
            Ok(Some(Principal {
                user_id: u.id,
                email: u.email,
                role: u.role,
                credential: Credential::ApiKey {
                    id: k.id,
                    scopes: k.scopes,
                },
            }))
        })?;
        if let Some(p) = &found {
            self.remember(hash, p, None, versions);
        }
        Ok(found)
    }

    fn cached_session(&self, token: &str) -> Option<Principal> {
        (token.len() <= 128)
            .then(|| self.recall(&password::token_hash(token)))
            .flatten()
    }

    fn cached_api_key(&self, key: &str) -> Option<Principal> {
        (key.len() <= 128)
            .then(|| self.recall(&password::token_hash(key)))
            .flatten()
    }
}
