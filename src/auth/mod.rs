//! Identity: local users (argon2id), login sessions, scoped API keys, login throttling, and the
//! [`Authenticator`] that `http` uses to turn a cookie or key into a [`Principal`].
//!
//! Raw session tokens and API keys are never stored: only their SHA-256 (they are 256-bit random,
//! so nothing can be guessed from the hash). Every change is audited in its own transaction.

mod password;
mod routes;
mod throttle;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use password::{random_password, random_token, MIN_LEN as MIN_PASSWORD_LEN};
pub use routes::routes;
pub use throttle::Throttle;

use crate::audit::{self, Event};
use crate::http::{ApiError, Authenticator, Credential, Principal, Role, Scope};
use crate::store::{Migration, Store, StoreError, Table, WriteTx};

/// A local user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    /// Id.
    pub id: u64,
    /// Email, lower-case; unique.
    pub email: String,
    /// Role.
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Disabled users cannot sign in and their keys stop working.
    #[serde(default)]
    pub disabled: bool,
    /// Added in schema 2; absent in older files.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// Last successful sign-in.
    #[serde(default)]
    pub last_login: Option<DateTime<Utc>>,
}

/// A user as the API shows it (no hash).
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub id: u64,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: Option<DateTime<Utc>>,
    pub last_login: Option<DateTime<Utc>>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id,
            email: u.email.clone(),
            role: u.role,
            disabled: u.disabled,
            created_at: u.created_at,
            last_login: u.last_login,
        }
    }
}

/// A login session, keyed by the hash of its token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub id: u64,
    pub user_id: u64,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[serde(default)]
    pub source_ip: String,
}

/// An API key; the key itself is shown once and only its hash kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiKey {
    pub id: u64,
    pub user_id: u64,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// First characters of the key, to tell keys apart in lists.
    pub prefix: String,
    pub hash: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An API key as lists show it.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyView {
    pub id: u64,
    pub user_id: u64,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        ApiKeyView {
            id: k.id,
            user_id: k.user_id,
            name: k.name.clone(),
            scopes: k.scopes.clone(),
            prefix: k.prefix.clone(),
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        }
    }
}

const USERS: Table<u64, User> = Table::new("auth_users");
/// Email → user id. Introduced by schema 2 (schema 1 scanned `auth_users`).
const USERS_BY_EMAIL: Table<String, u64> = Table::new("auth_users_by_email");
const SESSIONS: Table<String, Session> = Table::new("auth_sessions");
const API_KEYS: Table<u64, ApiKey> = Table::new("auth_api_keys");
const API_KEYS_BY_HASH: Table<String, u64> = Table::new("auth_api_keys_by_hash");

/// Schema migrations of this domain.
pub fn migrations() -> Vec<Migration> {
    vec![Migration {
        to: 2,
        name: "index users by email",
        run: index_users_by_email,
    }]
}

fn index_users_by_email(w: &WriteTx) -> Result<(), StoreError> {
    for (id, mut user) in w.all(&USERS)? {
        let email = normalize_email(&user.email);
        if user.email != email || user.created_at.is_none() {
            user.email = email.clone();
            user.created_at.get_or_insert_with(Utc::now);
            w.put(&USERS, &id, &user)?;
        }
        w.put(&USERS_BY_EMAIL, &email, &id)?;
    }
    Ok(())
}

/// Errors of the identity domain.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("email or password is wrong")]
    BadCredentials,
    #[error("too many failed sign-ins; try again in {0} seconds")]
    Throttled(u64),
    #[error("{0}")]
    Invalid(String),
    #[error("a user with email {0} already exists")]
    Duplicate(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::BadCredentials => ApiError::unauthorized(e.to_string()),
            AuthError::Throttled(s) => ApiError::too_many(e.to_string(), s),
            AuthError::Invalid(m) => ApiError::bad_request(m),
            AuthError::Duplicate(_) => ApiError::conflict(e.to_string()),
            AuthError::NotFound(_) => ApiError::not_found(e.to_string()),
            AuthError::Forbidden(m) => ApiError::forbidden(m),
            AuthError::Store(s) => ApiError::internal(s),
        }
    }
}

/// Trims and lower-cases an email.
pub fn normalize_email(s: &str) -> String {
    s.trim().to_lowercase()
}

fn validate_email(email: &str) -> Result<(), AuthError> {
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        && !email.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid(format!(
            "'{}' is not an email address",
            email.chars().take(80).collect::<String>()
        )))
    }
}

/// Who is making a change, for checks and the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Audit-log name.
    pub name: String,
    /// Role (`None` for the local command line, which may do anything).
    pub role: Option<Role>,
    /// User id, if a user.
    pub user_id: Option<u64>,
    /// Source address.
    pub ip: String,
}

impl Actor {
    /// The command line on the appliance host (full rights: it has the data dir already).
    pub fn cli() -> Actor {
        Actor {
            name: "cli".into(),
            role: None,
            user_id: None,
            ip: String::new(),
        }
    }
    /// A principal of a request from `ip`.
    pub fn of(p: &Principal, ip: String) -> Actor {
        Actor {
            name: p.actor(),
            role: Some(p.role),
            user_id: Some(p.user_id),
            ip,
        }
    }
    fn event(&self, action: &'static str, target: impl Into<String>) -> Event {
        Event::new(self.name.clone(), action, target).from_ip(self.ip.clone())
    }
    /// Admins may not create, change or promote to super-admins.
    fn may_manage(&self, role: Role) -> bool {
        match self.role {
            None | Some(Role::SuperAdmin) => true,
            Some(Role::Admin) => role != Role::SuperAdmin,
            Some(Role::ReadOnly) => false,
        }
    }
}

/// Creates a user.
pub fn create_user(
    store: &Store,
    actor: &Actor,
    email: &str,
    pw: &str,
    role: Role,
) -> Result<UserView, AuthError> {
    let email = normalize_email(email);
    validate_email(&email)?;
    password::check_policy(pw).map_err(AuthError::Invalid)?;
    if !actor.may_manage(role) {
        return Err(AuthError::Forbidden(format!(
            "{} may not create {role} users",
            actor.name
        )));
    }
    let hash = password::hash(pw).map_err(AuthError::Invalid)?;
    store.write(|w| {
        if w.get(&USERS_BY_EMAIL, &email)?.is_some() {
            return Err(AuthError::Duplicate(email.clone()));
        }
        let id = w.next_id("users")?;
        let user = User {
            id,
            email: email.clone(),
            role,
            password_hash: hash,
            disabled: false,
            created_at: Some(Utc::now()),
            last_login: None,
        };
        w.put(&USERS, &id, &user)?;
        w.put(&USERS_BY_EMAIL, &email, &id)?;
        audit::record(
            w,
            actor
                .event("user.create", format!("user:{id}"))
                .detail(format!("email={email} role={role}")),
        )?;
        Ok(UserView::from(&user))
    })
}

/// Every user.
pub fn list_users(store: &Store) -> Result<Vec<UserView>, StoreError> {
    Ok(store
        .read(|r| r.all(&USERS))?
        .iter()
        .map(|(_, u)| UserView::from(u))
        .collect())
}

/// Emails of every enabled admin and super-admin (recipients of notifications).
pub fn admin_emails(store: &Store) -> Result<Vec<String>, StoreError> {
    Ok(admins_of(store.read(|r| r.all(&USERS))?))
}

/// [`admin_emails`] inside a write transaction, for writers that only sometimes notify.
pub fn admin_emails_in(w: &crate::store::WriteTx) -> Result<Vec<String>, StoreError> {
    Ok(admins_of(w.all(&USERS)?))
}

fn admins_of(users: Vec<(u64, User)>) -> Vec<String> {
    users
        .into_iter()
        .filter(|(_, u)| !u.disabled && matches!(u.role, Role::Admin | Role::SuperAdmin))
        .map(|(_, u)| u.email)
        .collect()
}

/// Number of users.
pub fn user_count(store: &Store) -> Result<u64, StoreError> {
    store.read(|r| r.len(&USERS))
}

/// One user.
pub fn get_user(store: &Store, id: u64) -> Result<UserView, AuthError> {
    store
        .read(|r| r.get(&USERS, &id))?
        .map(|u| UserView::from(&u))
        .ok_or_else(|| AuthError::NotFound(format!("user {id}")))
}

/// A user by email.
pub fn find_user(store: &Store, email: &str) -> Result<Option<UserView>, StoreError> {
    let email = normalize_email(email);
    store.read(|r| match r.get(&USERS_BY_EMAIL, &email)? {
        Some(id) => Ok(r.get(&USERS, &id)?.map(|u| UserView::from(&u))),
        None => Ok(None),
    })
}

/// Changes to a user; `None` leaves a field alone.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password: Option<String>,
}

/// Applies `patch` to user `id`. Refuses to leave the appliance without an enabled super-admin.
pub fn update_user(
    store: &Store,
    actor: &Actor,
    id: u64,
    patch: &UserPatch,
) -> Result<UserView, AuthError> {
    let new_hash = match &patch.password {
        Some(pw) => {
            password::check_policy(pw).map_err(AuthError::Invalid)?;
            Some(password::hash(pw).map_err(AuthError::Invalid)?)
        }
        None => None,
    };
    store.write(|w| {
        let mut user = w
            .get(&USERS, &id)?
            .ok_or_else(|| AuthError::NotFound(format!("user {id}")))?;
        if !actor.may_manage(user.role) || patch.role.is_some_and(|r| !actor.may_manage(r)) {
            return Err(AuthError::Forbidden(format!(
                "{} may not change super-admins",
                actor.name
            )));
        }
        let mut changes = Vec::new();
        if let Some(role) = patch.role {
            if role != user.role {
                changes.push(format!("role {}→{role}", user.role));
                user.role = role;
            }
        }
        if let Some(d) = patch.disabled {
            if d != user.disabled {
                changes.push(if d {
                    "disabled".to_string()
                } else {
                    "enabled".to_string()
                });
                user.disabled = d;
            }
        }
        let password_reset = new_hash.is_some();
        if let Some(h) = new_hash {
            user.password_hash = h;
            changes.push("password changed; sessions ended".into());
        }
        w.put(&USERS, &id, &user)?;
        let super_admins = w
            .all(&USERS)?
            .iter()
            .filter(|(_, u)| u.role == Role::SuperAdmin && !u.disabled)
            .count();
        if super_admins == 0 {
            return Err(AuthError::Invalid(
                "that would leave no enabled super-admin".into(),
            ));
        }
        if user.disabled || password_reset {
            // Whoever held the old password (or the disabled account) is signed out now.
            w.retain(&SESSIONS, |_, s| s.user_id != id)?;
        }
        audit::record(
            w,
            actor
                .event("user.update", format!("user:{id}"))
                .detail(changes.join(", ")),
        )?;
        Ok(UserView::from(&user))
    })
}

/// A user changes their own password: `current` must be right; every other session of the user
/// ends (the one making the change, `keep_session`, stays).
pub fn change_own_password(
    store: &Store,
    actor: &Actor,
    user_id: u64,
    current: &str,
    new: &str,
    keep_session: Option<u64>,
) -> Result<(), AuthError> {
    password::check_policy(new).map_err(AuthError::Invalid)?;
    let user = store
        .read(|r| r.get(&USERS, &user_id))?
        .ok_or_else(|| AuthError::NotFound(format!("user {user_id}")))?;
    if !password::verify(current, &user.password_hash) {
        store.write(|w| {
            audit::record(
                w,
                actor
                    .event("user.password", format!("user:{user_id}"))
                    .detail("wrong current password")
                    .failed(),
            )
        })?;
        return Err(AuthError::Invalid("the current password is wrong".into()));
    }
    let hash = password::hash(new).map_err(AuthError::Invalid)?;
    store.write(|w| {
        let mut u = w
            .get(&USERS, &user_id)?
            .ok_or_else(|| AuthError::NotFound(format!("user {user_id}")))?;
        u.password_hash = hash;
        w.put(&USERS, &user_id, &u)?;
        let ended = w.retain(&SESSIONS, |_, s| {
            s.user_id != user_id || Some(s.id) == keep_session
        })?;
        audit::record(
            w,
            actor
                .event("user.password", format!("user:{user_id}"))
                .detail(format!("changed; {ended} other sessions ended")),
        )?;
        Ok(())
    })
}

/// What a successful login yields.
pub struct LoginOk {
    /// The user.
    pub user: UserView,
    /// The session token for the cookie (only ever in the response).
    pub token: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
}

/// Longest e-mail address kept (RFC 5321's limit on a path); longer ones cannot be accounts and
/// are cut before they reach the audit log.
const MAX_EMAIL_LEN: usize = 254;

/// Password login with throttling per account and per source address; every attempt is audited
/// (refused ones at most once a minute per throttled key, with a count of the others).
pub fn login(
    store: &Store,
    throttle: &Throttle,
    ttl: Duration,
    email: &str,
    pw: &str,
    ip: &str,
) -> Result<LoginOk, AuthError> {
    let mut email = normalize_email(email);
    if email.len() > MAX_EMAIL_LEN {
        let mut end = MAX_EMAIL_LEN;
        while !email.is_char_boundary(end) {
            end -= 1;
        }
        email.truncate(end);
        email.push('…');
    }
    let ip: String = ip.chars().take(64).collect();
    let account_key = format!("account:{email}");
    let ip_key = format!("ip:{ip}");
    // Counted before the password is verified, so parallel guesses share the limit.
    if let Err((key, wait)) = throttle.attempt(&[(&account_key, 1), (&ip_key, 4)]) {
        if let Some(skipped) = throttle.audit_refusal(&key) {
            let detail = if skipped > 0 {
                format!("{skipped} more refused attempts since the last entry")
            } else {
                String::new()
            };
            store.write(|w| {
                audit::record(
                    w,
                    Event::new(email.clone(), "login.throttled", "")
                        .from_ip(ip.clone())
                        .detail(detail)
                        .failed(),
                )
            })?;
        }
        return Err(AuthError::Throttled(wait));
    }
    let user = store.read(|r| match r.get(&USERS_BY_EMAIL, &email)? {
        Some(id) => r.get(&USERS, &id),
        None => Ok(None),
    })?;
    let verdict = match &user {
        Some(u) => password::verify(pw, &u.password_hash) && !u.disabled,
        None => {
            password::burn_time(pw);
            false
        }
    };
    let Some(user) = user.filter(|_| verdict) else {
        store.write(|w| {
            audit::record(
                w,
                Event::new(email.clone(), "login.failure", "")
                    .from_ip(ip.clone())
                    .failed(),
            )
        })?;
        return Err(AuthError::BadCredentials);
    };
    throttle.succeeded(&account_key, &ip_key);
    let token = password::random_token(32);
    let csrf = password::random_token(32);
    let now = Utc::now();
    let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(12));
    let view = store.write(|w| {
        let id = w.next_id("sessions")?;
        let session = Session {
            id,
            user_id: user.id,
            csrf: csrf.clone(),
            created_at: now,
            expires_at,
            source_ip: ip.to_string(),
        };
        w.put(&SESSIONS, &password::token_hash(&token), &session)?;
        let mut u = user.clone();
        u.last_login = Some(now);
        w.put(&USERS, &u.id, &u)?;
        audit::record(
            w,
            Event::new(u.email.clone(), "login.success", format!("user:{}", u.id)).from_ip(ip),
        )?;
        Ok::<_, AuthError>(UserView::from(&u))
    })?;
    Ok(LoginOk {
        user: view,
        token,
        csrf,
        expires_at,
    })
}

/// Ends the session with this token.
pub fn logout(store: &Store, token: &str, ip: &str) -> Result<(), StoreError> {
    store.write(|w| {
        let key = password::token_hash(token);
        if let Some(s) = w.get(&SESSIONS, &key)? {
            w.delete(&SESSIONS, &key)?;
            let email = w
                .get(&USERS, &s.user_id)?
                .map(|u| u.email)
                .unwrap_or_default();
            audit::record(
                w,
                Event::new(email, "logout", format!("user:{}", s.user_id)).from_ip(ip),
            )?;
        }
        Ok(())
    })
}

/// Deletes expired sessions; returns how many.
pub fn prune_sessions(store: &Store) -> Result<u64, StoreError> {
    let now = Utc::now();
    store.write(|w| w.retain(&SESSIONS, |_, s| s.expires_at > now))
}

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

/// The in-memory state this domain keeps beside the store.
pub fn domain_data(config: &crate::config::Config, data: &mut crate::http::DomainData) {
    data.insert(Throttle::new(
        config.auth.login_max_failures,
        Duration::from_secs(config.auth.login_window_seconds),
    ));
}

/// Creates the first super-admin if there are no users. Returns the generated password when one
/// had to be generated (the caller prints it once).
pub fn bootstrap_admin(
    store: &Store,
    email: Option<String>,
    password: Option<String>,
) -> Result<Option<(String, String)>, AuthError> {
    if user_count(store)? > 0 {
        return Ok(None);
    }
    let email = email
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "admin@bulwark.local".into());
    let (pw, generated) = match password.filter(|p| !p.is_empty()) {
        Some(p) => (p, false),
        None => (random_password(), true),
    };
    let actor = Actor {
        name: "bootstrap".into(),
        ..Actor::cli()
    };
    let user = create_user(store, &actor, &email, &pw, Role::SuperAdmin)?;
    Ok(generated.then_some((user.email, pw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &migrations()).unwrap();
        (dir, store)
    }

    #[test]
    fn login_throttles_and_audits() {
        let (_d, store) = setup();
        create_user(
            &store,
            &Actor::cli(),
            "Alice@Example.com ",
            "password-123",
            Role::Admin,
        )
        .unwrap();
        let t = Throttle::new(3, Duration::from_secs(60));
        let ttl = Duration::from_secs(60);
        let ok = login(
            &store,
            &t,
            ttl,
            "alice@example.com",
            "password-123",
            "1.2.3.4",
        )
        .unwrap();
        assert_eq!(ok.user.email, "alice@example.com");
        let auth = StoreAuthenticator::shared(store.clone());
        let p = auth.session(&ok.token).unwrap().unwrap();
        assert_eq!(p.role, Role::Admin);
        assert!(auth.session("forged").unwrap().is_none());
        for _ in 0..3 {
            assert!(matches!(
                login(
                    &store,
                    &t,
                    ttl,
                    "alice@example.com",
                    "nope-nope-nope",
                    "1.2.3.4"
                ),
                Err(AuthError::BadCredentials)
            ));
        }
        assert!(matches!(
            login(
                &store,
                &t,
                ttl,
                "alice@example.com",
                "password-123",
                "5.6.7.8"
            ),
            Err(AuthError::Throttled(_))
        ));
        let log = audit::list(
            &store,
            &audit::Filter {
                action: "login".into(),
                ..Default::default()
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            log.iter().filter(|e| e.action == "login.failure").count(),
            3
        );
        assert_eq!(
            log.iter().filter(|e| e.action == "login.throttled").count(),
            1
        );
    }

    #[test]
    fn expired_sessions_are_refused_and_pruned() {
        let (_d, store) = setup();
        create_user(
            &store,
            &Actor::cli(),
            "old@x.io",
            "password-123",
            Role::ReadOnly,
        )
        .unwrap();
        let t = Throttle::new(10, Duration::from_secs(60));
        let gone = login(
            &store,
            &t,
            Duration::from_secs(0),
            "old@x.io",
            "password-123",
            "",
        )
        .unwrap();
        let live = login(
            &store,
            &t,
            Duration::from_secs(600),
            "old@x.io",
            "password-123",
            "",
        )
        .unwrap();
        let auth = StoreAuthenticator::shared(store.clone());
        assert!(
            auth.session(&gone.token).unwrap().is_none(),
            "an expired session is refused"
        );
        assert!(auth.session(&live.token).unwrap().is_some());
        assert_eq!(prune_sessions(&store).unwrap(), 1);
        assert!(
            auth.session(&live.token).unwrap().is_some(),
            "pruning keeps live sessions"
        );
    }

    #[test]
    fn api_keys_hash_scope_and_revoke() {
        let (_d, store) = setup();
        let ro = create_user(
            &store,
            &Actor::cli(),
            "ro@x.io",
            "password-123",
            Role::ReadOnly,
        )
        .unwrap();
        let actor = Actor {
            name: "ro@x.io".into(),
            role: Some(Role::ReadOnly),
            user_id: Some(ro.id),
            ip: String::new(),
        };
        assert!(matches!(
            create_api_key(&store, &actor, ro.id, "k", &[Scope::Admin]),
            Err(AuthError::Forbidden(_))
        ));
        let k = create_api_key(&store, &actor, ro.id, "ci", &[Scope::Read, Scope::Read]).unwrap();
        assert_eq!(k.scopes, vec![Scope::Read]);
        let listed = list_api_keys(&store, Some(ro.id)).unwrap();
        let json = serde_json::to_string(&listed).unwrap();
        assert!(!json.contains(&k.key), "lists never show the key");
        let auth = StoreAuthenticator::shared(store.clone());
        assert!(auth.api_key(&k.key).unwrap().is_some());
        assert!(
            auth.cached_api_key(&k.key).is_some(),
            "a key that worked is remembered"
        );
        revoke_api_key(&store, &actor, k.id).unwrap();
        assert!(
            auth.cached_api_key(&k.key).is_none(),
            "a revoke forgets every remembered key"
        );
        assert!(
            auth.api_key(&k.key).unwrap().is_none(),
            "revoked keys stop working"
        );
    }

    #[test]
    fn own_password_change_needs_the_current_one_and_ends_other_sessions() {
        let (_d, store) = setup();
        let u = create_user(
            &store,
            &Actor::cli(),
            "p@x.io",
            "password-123",
            Role::ReadOnly,
        )
        .unwrap();
        let t = Throttle::new(10, Duration::from_secs(60));
        let a = login(
            &store,
            &t,
            Duration::from_secs(60),
            "p@x.io",
            "password-123",
            "",
        )
        .unwrap();
        let b = login(
            &store,
            &t,
            Duration::from_secs(60),
            "p@x.io",
            "password-123",
            "",
        )
        .unwrap();
        let auth = StoreAuthenticator::shared(store.clone());
        let keep = match auth.session(&a.token).unwrap().unwrap().credential {
            Credential::Session { id, .. } => id,
            _ => unreachable!(),
        };
        let me = Actor {
            name: "p@x.io".into(),
            role: Some(Role::ReadOnly),
            user_id: Some(u.id),
            ip: String::new(),
        };
        assert!(matches!(
            change_own_password(
                &store,
                &me,
                u.id,
                "wrong-password",
                "new-password-1",
                Some(keep)
            ),
            Err(AuthError::Invalid(_))
        ));
        change_own_password(
            &store,
            &me,
            u.id,
            "password-123",
            "new-password-1",
            Some(keep),
        )
        .unwrap();
        assert!(
            auth.session(&a.token).unwrap().is_some(),
            "the session that changed it stays"
        );
        assert!(
            auth.session(&b.token).unwrap().is_none(),
            "other sessions end"
        );
        assert!(login(
            &store,
            &t,
            Duration::from_secs(60),
            "p@x.io",
            "new-password-1",
            ""
        )
        .is_ok());
    }

    #[test]
    fn last_super_admin_cannot_be_removed_and_admins_cannot_touch_super_admins() {
        let (_d, store) = setup();
        let sa = create_user(
            &store,
            &Actor::cli(),
            "root@x.io",
            "password-123",
            Role::SuperAdmin,
        )
        .unwrap();
        let patch = UserPatch {
            disabled: Some(true),
            ..Default::default()
        };
        assert!(matches!(
            update_user(&store, &Actor::cli(), sa.id, &patch),
            Err(AuthError::Invalid(_))
        ));
        let admin = Actor {
            name: "a".into(),
            role: Some(Role::Admin),
            user_id: Some(99),
            ip: String::new(),
        };
        assert!(matches!(
            update_user(&store, &admin, sa.id, &patch),
            Err(AuthError::Forbidden(_))
        ));
        assert!(matches!(
            create_user(&store, &admin, "x@x.io", "password-123", Role::SuperAdmin),
            Err(AuthError::Forbidden(_))
        ));
        assert!(matches!(
            create_user(
                &store,
                &Actor::cli(),
                "ROOT@x.io",
                "password-123",
                Role::Admin
            ),
            Err(AuthError::Duplicate(_))
        ));
    }
}
