//! Identity: local users (argon2id), login sessions, scoped API keys, login throttling, and the
//! `http::Authenticator` (`authenticator.rs`) that turns a cookie or key into a principal.
//!
//! Raw session tokens and API keys are never stored: only their SHA-256 (they are 256-bit random,
//! so nothing can be guessed from the hash). Every change is audited in its own transaction.

mod api;
mod api_keys;
mod authenticator;
mod pages;
mod password;
mod sessions;
mod throttle;
mod users;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::http::Actor;
pub use api::{routes, session_cookie};
pub use api_keys::*;
pub use authenticator::StoreAuthenticator;
pub use password::{random_password, random_token, MIN_LEN as MIN_PASSWORD_LEN};
pub use sessions::*;
pub use throttle::Throttle;
pub use users::*;

use crate::audit::ActorEvent;
use crate::http::{ApiError, Role, Scope};
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
    /// The sign-on provider the account comes from (`None`: a local account with a password).
    #[serde(default)]
    pub source: Option<String>,
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
    /// The sign-on provider of the account (absent: local).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
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
            source: u.source.clone(),
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
    /// A sign-on provider could not answer (unreachable, timed out, misconfigured).
    #[error("{0}")]
    Unavailable(String),
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
            AuthError::Unavailable(m) => ApiError::new(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                m,
            ),
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
    use crate::audit;
    use crate::http::Credential;

    fn setup() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &migrations()).unwrap();
        (dir, store)
    }

    /// A user made from the command line, with the password `password-123`.
    fn add_user(store: &Store, email: &str, role: Role) -> UserView {
        create_user(store, &Actor::cli(), email, "password-123", role).unwrap()
    }

    /// A local sign-in from no address, with a session of `ttl_secs`.
    fn local(
        store: &Store,
        t: &Throttle,
        ttl_secs: u64,
        email: &str,
        pw: &str,
    ) -> Result<LoginOk, AuthError> {
        login(store, t, Duration::from_secs(ttl_secs), email, pw, "")
    }

    fn actor(name: &str, role: Role, user_id: u64) -> Actor {
        Actor {
            name: name.into(),
            role: Some(role),
            user_id: Some(user_id),
            ip: String::new(),
        }
    }

    #[test]
    fn login_throttles_and_audits() {
        let (_d, store) = setup();
        add_user(&store, "Alice@Example.com ", Role::Admin);
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
        add_user(&store, "old@x.io", Role::ReadOnly);
        let t = Throttle::new(10, Duration::from_secs(60));
        let gone = local(&store, &t, 0, "old@x.io", "password-123").unwrap();
        let live = local(&store, &t, 600, "old@x.io", "password-123").unwrap();
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
        let ro = add_user(&store, "ro@x.io", Role::ReadOnly);
        let actor = actor("ro@x.io", Role::ReadOnly, ro.id);
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
        let u = add_user(&store, "p@x.io", Role::ReadOnly);
        let t = Throttle::new(10, Duration::from_secs(60));
        let a = local(&store, &t, 60, "p@x.io", "password-123").unwrap();
        let b = local(&store, &t, 60, "p@x.io", "password-123").unwrap();
        let auth = StoreAuthenticator::shared(store.clone());
        let keep = match auth.session(&a.token).unwrap().unwrap().credential {
            Credential::Session { id, .. } => id,
            _ => unreachable!(),
        };
        let me = actor("p@x.io", Role::ReadOnly, u.id);
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
        assert!(local(&store, &t, 60, "p@x.io", "new-password-1").is_ok());
    }

    #[test]
    fn last_super_admin_cannot_be_removed_and_admins_cannot_touch_super_admins() {
        let (_d, store) = setup();
        let sa = add_user(&store, "root@x.io", Role::SuperAdmin);
        let patch = UserPatch {
            disabled: Some(true),
            ..Default::default()
        };
        assert!(matches!(
            update_user(&store, &Actor::cli(), sa.id, &patch),
            Err(AuthError::Invalid(_))
        ));
        let admin = actor("a", Role::Admin, 99);
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
