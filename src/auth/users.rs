//! Users: create, list, change (role, disabled, password), and a user's own password.

use chrono::Utc;
use serde::Deserialize;

use super::*;
use crate::audit::{self};
use crate::http::Role;
use crate::store::{Store, StoreError};

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
            source: None,
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

/// The account a sign-on provider proved: created at the first sign-in (no local password),
/// its role set from the directory or the claims at every sign-in. A local account with the same
/// email, or one from another provider, is never taken over; a disabled account stays out.
pub fn sso_account(
    store: &Store,
    provider: &str,
    email: &str,
    role: Role,
) -> Result<Result<User, String>, AuthError> {
    let email = normalize_email(email);
    validate_email(&email)?;
    store.write(|w| {
        let existing = match w.get(&USERS_BY_EMAIL, &email)? {
            Some(id) => w.get(&USERS, &id)?,
            None => None,
        };
        let user = match existing {
            Some(u) if u.source.as_deref() != Some(provider) => {
                return Ok(Err(format!(
                    "{email} is an account of {}, not of {provider}",
                    u.source.as_deref().unwrap_or("this appliance (local)")
                )))
            }
            Some(u) if u.disabled => return Ok(Err(format!("{email} is disabled"))),
            Some(mut u) => {
                if u.role != role {
                    audit::record(
                        w,
                        audit::Event::new(provider, "user.role-sync", format!("user:{}", u.id))
                            .detail(format!("{} → {role}", u.role)),
                    )?;
                    u.role = role;
                    w.put(&USERS, &u.id, &u)?;
                }
                u
            }
            None => {
                let id = w.next_id("users")?;
                let u = User {
                    id,
                    email: email.clone(),
                    role,
                    password_hash: String::new(),
                    disabled: false,
                    created_at: Some(Utc::now()),
                    last_login: None,
                    source: Some(provider.to_string()),
                };
                w.put(&USERS, &id, &u)?;
                w.put(&USERS_BY_EMAIL, &email, &id)?;
                audit::record(
                    w,
                    audit::Event::new(provider, "user.create", format!("user:{id}"))
                        .detail(format!("email={email} role={role} source={provider}")),
                )?;
                u
            }
        };
        Ok(Ok(user))
    })
}

/// Ends every session of the users of sign-on provider `provider` (it was disabled or deleted).
pub fn end_provider_sessions(w: &crate::store::WriteTx, provider: &str) -> Result<u64, StoreError> {
    let ids: std::collections::HashSet<u64> = w
        .all(&USERS)?
        .into_iter()
        .filter(|(_, u)| u.source.as_deref() == Some(provider))
        .map(|(id, _)| id)
        .collect();
    w.retain(&SESSIONS, |_, s| !ids.contains(&s.user_id))
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
