//! Sign-in and sessions: the credentials seam every sign-in method plugs into, throttling and
//! auditing in one place, logout, expiry.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::*;
use crate::audit::{self, Event};
use crate::store::{Store, StoreError};

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

/// A way of proving who one is. Each sign-in method (local passwords here; a directory or an
/// identity provider beside it) only answers "which user, if any, do these credentials prove";
/// [`sign_in`] keeps throttling, the audit entries and session creation in one place for all.
pub trait Credentials {
    /// The user `login` and `secret` prove, or why not (recorded in the audit log, so it never
    /// holds the secret). Must take about as long for an unknown user as for a known one.
    fn verify(&self, store: &Store, login: &str, secret: &str) -> Result<Verdict, AuthError>;
}

/// What a sign-in method decided.
pub enum Verdict {
    Proven(User),
    Refused(String),
}

/// Local accounts: argon2id password hashes in the store.
pub struct LocalPassword;

impl Credentials for LocalPassword {
    fn verify(&self, store: &Store, email: &str, secret: &str) -> Result<Verdict, AuthError> {
        let user = store.read(|r| match r.get(&USERS_BY_EMAIL, &email.to_string())? {
            Some(id) => r.get(&USERS, &id),
            None => Ok(None),
        })?;
        // Accounts of a sign-on provider have no local password (and an empty hash verifies
        // nothing), so they never sign in here.
        let proven = match &user {
            Some(u) => {
                password::verify(secret, &u.password_hash) && !u.disabled && u.source.is_none()
            }
            None => {
                password::burn_time(secret);
                false
            }
        };
        Ok(match user {
            Some(u) if proven => Verdict::Proven(u),
            _ => Verdict::Refused("wrong email or password".into()),
        })
    }
}

/// Password login against local accounts (see [`sign_in`]).
pub fn login(
    store: &Store,
    throttle: &Throttle,
    ttl: Duration,
    email: &str,
    pw: &str,
    ip: &str,
) -> Result<LoginOk, AuthError> {
    sign_in(store, throttle, ttl, &LocalPassword, email, pw, ip)
}

/// Signs in with `method`, throttled per account and per source address; every attempt is
/// audited (refused ones at most once a minute per throttled key, with a count of the others).
pub fn sign_in(
    store: &Store,
    throttle: &Throttle,
    ttl: Duration,
    method: &dyn Credentials,
    email: &str,
    secret: &str,
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
    let verdict = match method.verify(store, &email, secret) {
        Err(AuthError::Unavailable(why)) => {
            store.write(|w| {
                audit::record(
                    w,
                    Event::new(email.clone(), "login.failure", "")
                        .from_ip(ip.clone())
                        .detail(why.clone())
                        .failed(),
                )
            })?;
            return Err(AuthError::Unavailable(why));
        }
        other => other?,
    };
    let user = match verdict {
        Verdict::Proven(u) => u,
        Verdict::Refused(reason) => {
            store.write(|w| {
                audit::record(
                    w,
                    Event::new(email.clone(), "login.failure", "")
                        .from_ip(ip.clone())
                        .detail(reason)
                        .failed(),
                )
            })?;
            return Err(AuthError::BadCredentials);
        }
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
