//! API keys: created once in clear, kept as SHA-256, scoped, revocable.

use chrono::Utc;
use serde::Serialize;

use super::*;
use crate::audit::{self};
use crate::http::{Role, Scope};
use crate::store::{Store, StoreError};

/// A created key: the only time the raw key exists outside the caller.
#[derive(Debug, Serialize)]
pub struct NewApiKey {
    pub id: u64,
    pub key: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub prefix: String,
}

/// Creates an API key owned by `owner_id` with `scopes` (each must fit the owner's role).
pub fn create_api_key(
    store: &Store,
    actor: &Actor,
    owner_id: u64,
    name: &str,
    scopes: &[Scope],
) -> Result<NewApiKey, AuthError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AuthError::Invalid(
            "name must be 1 to 100 characters".into(),
        ));
    }
    if scopes.is_empty() {
        return Err(AuthError::Invalid("give at least one scope".into()));
    }
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    let key = format!("bwk_{}", password::random_token(32));
    let prefix: String = key.chars().take(10).collect();
    store.write(|w| {
        let owner = w
            .get(&USERS, &owner_id)?
            .ok_or_else(|| AuthError::NotFound(format!("user {owner_id}")))?;
        if let Some(bad) = scopes.iter().find(|s| !s.allowed_for(owner.role)) {
            return Err(AuthError::Forbidden(format!(
                "a {} user may not hold a '{}' key",
                owner.role,
                bad.as_str()
            )));
        }
        let id = w.next_id("api_keys")?;
        let hash = password::token_hash(&key);
        let record = ApiKey {
            id,
            user_id: owner_id,
            name: name.to_string(),
            scopes: scopes.clone(),
            prefix: prefix.clone(),
            hash: hash.clone(),
            created_at: Utc::now(),
            revoked_at: None,
        };
        w.put(&API_KEYS, &id, &record)?;
        w.put(&API_KEYS_BY_HASH, &hash, &id)?;
        let scope_list: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        audit::record(
            w,
            actor
                .event("apikey.create", format!("apikey:{id}"))
                .detail(format!("name={name} scopes={}", scope_list.join(","))),
        )?;
        Ok(NewApiKey {
            id,
            key: key.clone(),
            name: name.to_string(),
            scopes: scopes.clone(),
            prefix: prefix.clone(),
        })
    })
}

/// Keys of one user (or of everyone for `None`).
pub fn list_api_keys(store: &Store, owner: Option<u64>) -> Result<Vec<ApiKeyView>, StoreError> {
    Ok(store
        .read(|r| r.all(&API_KEYS))?
        .iter()
        .filter(|(_, k)| owner.is_none_or(|o| k.user_id == o))
        .map(|(_, k)| ApiKeyView::from(k))
        .collect())
}

/// Revokes key `id`. Users revoke their own keys; super-admins any key.
pub fn revoke_api_key(store: &Store, actor: &Actor, id: u64) -> Result<ApiKeyView, AuthError> {
    store.write(|w| {
        let mut k = w
            .get(&API_KEYS, &id)?
            .ok_or_else(|| AuthError::NotFound(format!("API key {id}")))?;
        let own = actor.user_id == Some(k.user_id);
        if !own && !matches!(actor.role, None | Some(Role::SuperAdmin)) {
            // Same answer as a missing key: others' key ids are not disclosed.
            return Err(AuthError::NotFound(format!("API key {id}")));
        }
        if k.revoked_at.is_none() {
            k.revoked_at = Some(Utc::now());
            w.put(&API_KEYS, &id, &k)?;
            w.delete(&API_KEYS_BY_HASH, &k.hash)?;
            audit::record(
                w,
                actor
                    .event("apikey.revoke", format!("apikey:{id}"))
                    .detail(format!("name={}", k.name)),
            )?;
        }
        Ok(ApiKeyView::from(&k))
    })
}
