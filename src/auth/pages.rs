//! The identity domain's pages: sign-in and sign-out forms, users, the account, API keys.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::api::{
    change_password, directory_login, do_login, end_session, may_mint, parse_scopes, session_cookie,
};
use super::{Actor, ApiKeyView, AuthError, NewApiKey, UserPatch, UserView};
use crate::http::layout::{redirect, redirect_with_flash, render, render_status, Confirm, Layout};
use crate::http::routes::LOGIN_CSRF_COOKIE;
use crate::http::{client_ip, ApiError, AppState, Auth, MaybeAuth, Perm, Role, Routes, Scope};
use actix_web::http::StatusCode;

pub(super) fn routes(r: &mut Routes) {
    r.page("/login", Perm::Public, login_page);
    r.form("/login", Perm::Public, login_form);
    r.form("/logout", Perm::Authenticated, logout_form);
    r.page("/users", Perm::ManageUsers, users_page);
    r.form("/users", Perm::ManageUsers, users_create_form);
    r.form("/users/{id}", Perm::ManageUsers, users_update_form);
    r.page("/account", Perm::OwnKeys, account_page);
    r.form("/account/password", Perm::OwnKeys, account_password_form);
    r.page("/api-keys", Perm::OwnKeys, keys_page);
    r.form("/api-keys", Perm::OwnKeys, keys_create_form);
    r.form("/api-keys/{id}/revoke", Perm::OwnKeys, keys_revoke_form);
    r.nav(90, "Users", "/users", Perm::ManageUsers);
    r.nav(91, "API keys", "/api-keys", Perm::OwnKeys);
    r.nav(93, "Account", "/account", Perm::OwnKeys);
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    error: String,
    email: String,
    /// Enabled directories (LDAP sign-on providers) to choose from, and the one chosen.
    directories: Vec<String>,
    provider: String,
    /// Enabled OpenID Connect providers: a button each.
    identity_providers: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NextQuery {
    next: String,
}

/// Only paths on this site: `/x`, never `//evil.example`, `/\evil` or anything a browser
/// could read as another host. Browsers drop tabs and newlines inside URLs and treat `\` as
/// `/`, so any control character or backslash is refused outright, as is anything over 2 KiB.
fn safe_next(next: &str) -> String {
    let same_site = next.starts_with('/')
        && next.len() <= 2048
        && !next.starts_with("//")
        && !next
            .chars()
            .any(|c| c.is_control() || c == '\\' || c.is_whitespace());
    if same_site {
        next.to_string()
    } else {
        "/".into()
    }
}

/// The names of the enabled sign-on providers, directories first (none when they cannot be
/// read: local sign-in must keep working).
async fn directories(state: &AppState) -> (Vec<String>, Vec<String>) {
    let all = state.with_store(crate::sso::list).await.unwrap_or_default();
    let names = |kind: crate::sso::Kind| {
        all.iter()
            .filter(|p| p.enabled && p.kind == kind)
            .map(|p| p.name.clone())
            .collect()
    };
    (names(crate::sso::Kind::Ldap), names(crate::sso::Kind::Oidc))
}

fn login_response(
    csrf: String,
    next: String,
    error: String,
    (email, provider): (String, String),
    (directories, identity_providers): (Vec<String>, Vec<String>),
    status: actix_web::http::StatusCode,
) -> Result<HttpResponse, ApiError> {
    let body = LoginPage {
        csrf: csrf.clone(),
        next,
        error,
        email,
        directories,
        provider,
        identity_providers,
    }
    .render()
    .map_err(ApiError::internal)?;
    let cookie = Cookie::build(LOGIN_CSRF_COOKIE, csrf)
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .finish();
    Ok(HttpResponse::build(status)
        .cookie(cookie)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

async fn login_page(
    state: web::Data<AppState>,
    MaybeAuth(p): MaybeAuth,
    q: web::Query<NextQuery>,
) -> Result<HttpResponse, ApiError> {
    let next = safe_next(&q.next);
    if p.is_some() {
        return Ok(redirect(&next));
    }
    login_response(
        super::password::random_token(24),
        next,
        String::new(),
        Default::default(),
        directories(&state).await,
        actix_web::http::StatusCode::OK,
    )
}

#[derive(Deserialize)]
struct LoginForm {
    /// An email for a local account, a username for a directory.
    email: String,
    password: String,
    #[serde(default)]
    next: String,
    /// The directory to sign in with (empty: a local account).
    #[serde(default)]
    provider: String,
}

async fn login_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, ApiError> {
    let f = form.into_inner();
    let next = safe_next(&f.next);
    let attempt = if f.provider.is_empty() {
        do_login(&state, client_ip(&req), f.email.clone(), f.password).await
    } else {
        directory_login(
            &state,
            client_ip(&req),
            f.provider.clone(),
            f.email.clone(),
            f.password,
        )
        .await
    };
    match attempt {
        Ok(ok) => {
            let max_age = (ok.expires_at - chrono::Utc::now()).num_seconds();
            Ok(HttpResponse::SeeOther()
                .cookie(session_cookie(ok.token, max_age))
                .insert_header((actix_web::http::header::LOCATION, next))
                .finish())
        }
        Err(e) if e.status.is_client_error() || e.status.as_u16() == 503 => login_response(
            super::password::random_token(24),
            next,
            e.message,
            (f.email, f.provider),
            directories(&state).await,
            e.status,
        ),
        Err(e) => Err(e),
    }
}

async fn logout_form(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let gone = end_session(&state, &req).await?;
    Ok(HttpResponse::SeeOther()
        .cookie(gone)
        .insert_header((actix_web::http::header::LOCATION, "/login"))
        .finish())
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    layout: Layout,
    users: Vec<UserView>,
    roles: Vec<&'static str>,
    error: String,
    /// The new-user form as typed (the password is never sent back).
    new_email: String,
    new_role: String,
}

async fn users_page_with(
    state: &web::Data<AppState>,
    p: &crate::http::Principal,
    error: String,
    typed: (String, String),
) -> Result<HttpResponse, ApiError> {
    let users = state.with_store(super::list_users).await?;
    let roles = Role::ALL
        .iter()
        .filter(|r| p.role == Role::SuperAdmin || **r != Role::SuperAdmin)
        .map(|r| r.as_str())
        .collect();
    let (new_email, new_role) = typed;
    let status = if error.is_empty() {
        actix_web::http::StatusCode::OK
    } else {
        actix_web::http::StatusCode::BAD_REQUEST
    };
    render_status(
        &UsersPage {
            layout: Layout::new(state, p, "Users", "/users"),
            users,
            roles,
            error,
            new_email,
            new_role: if new_role.is_empty() {
                "read-only".into()
            } else {
                new_role
            },
        },
        status,
    )
}

async fn users_page(state: web::Data<AppState>, Auth(p): Auth) -> Result<HttpResponse, ApiError> {
    users_page_with(&state, &p, String::new(), Default::default()).await
}

#[derive(Deserialize)]
struct UserForm {
    email: String,
    password: String,
    role: String,
}

async fn users_create_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    form: web::Form<UserForm>,
) -> Result<HttpResponse, ApiError> {
    let f = form.into_inner();
    let typed = (f.email.clone(), f.role.clone());
    let Some(role) = Role::parse(&f.role) else {
        return users_page_with(&state, &p, format!("unknown role '{}'", f.role), typed).await;
    };
    let actor = Actor::of(&p, client_ip(&req));
    let res = state
        .store
        .run(move |s| Ok::<_, ApiError>(super::create_user(s, &actor, &f.email, &f.password, role)))
        .await?;
    after_user_form(&state, &p, res, "Created", typed).await
}

/// Back to the users page: with `done` and the user's email on success, or with the error when
/// the user can fix it.
async fn after_user_form(
    state: &web::Data<AppState>,
    p: &crate::http::Principal,
    res: Result<UserView, AuthError>,
    done: &str,
    typed: (String, String),
) -> Result<HttpResponse, ApiError> {
    match res {
        Ok(u) => Ok(redirect_with_flash(
            state,
            p,
            "/users",
            &format!("{done} {}", u.email),
        )),
        Err(
            e @ (AuthError::Invalid(_)
            | AuthError::Duplicate(_)
            | AuthError::Forbidden(_)
            | AuthError::NotFound(_)),
        ) => users_page_with(state, p, e.to_string(), typed).await,
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct UserUpdateForm {
    role: String,
    #[serde(default)]
    disabled: Option<String>,
}

async fn users_update_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    form: web::Form<UserUpdateForm>,
) -> Result<HttpResponse, ApiError> {
    let f = form.into_inner();
    let patch = UserPatch {
        role: Role::parse(&f.role),
        disabled: Some(f.disabled.is_some()),
        password: None,
    };
    let actor = Actor::of(&p, client_ip(&req));
    let id = id.into_inner();
    let res = state
        .store
        .run(move |s| Ok::<_, ApiError>(super::update_user(s, &actor, id, &patch)))
        .await?;
    after_user_form(&state, &p, res, "Saved", Default::default()).await
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    error: String,
}

async fn account_page(state: web::Data<AppState>, Auth(p): Auth) -> Result<HttpResponse, ApiError> {
    render(&AccountPage {
        layout: Layout::new(&state, &p, "Account", "/account"),
        error: String::new(),
    })
}

#[derive(Deserialize)]
struct PasswordForm {
    current_password: String,
    new_password: String,
    confirm_password: String,
}

async fn account_password_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, ApiError> {
    let f = form.into_inner();
    let error = if f.new_password != f.confirm_password {
        "the new passwords do not match".to_string()
    } else {
        match change_password(&state, &req, &p, f.current_password, f.new_password).await? {
            Ok(()) => {
                return Ok(redirect_with_flash(
                    &state,
                    &p,
                    "/account",
                    "Password changed",
                ))
            }
            Err(e @ (AuthError::Invalid(_) | AuthError::NotFound(_))) => e.to_string(),
            Err(e) => return Err(e.into()),
        }
    };
    render_status(
        &AccountPage {
            layout: Layout::new(&state, &p, "Account", "/account"),
            error,
        },
        StatusCode::BAD_REQUEST,
    )
}

#[derive(Template)]
#[template(path = "api_keys.html")]
struct KeysPage {
    layout: Layout,
    keys: Vec<ApiKeyView>,
    scopes: Vec<&'static str>,
    created: Option<NewApiKey>,
    error: String,
    /// The new-key form as typed.
    new_name: String,
    new_scopes: Vec<String>,
}

impl KeysPage {
    fn typed_scope(&self, s: &str) -> bool {
        self.new_scopes.iter().any(|t| t == s)
    }

    fn scope_list(k: &ApiKeyView) -> String {
        k.scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn keys_page_with(
    state: &web::Data<AppState>,
    p: &crate::http::Principal,
    created: Option<NewApiKey>,
    error: String,
    typed: (String, Vec<String>),
) -> Result<HttpResponse, ApiError> {
    let uid = p.user_id;
    let keys = state
        .with_store(move |s| super::list_api_keys(s, Some(uid)))
        .await?;
    let scopes = Scope::ALL
        .iter()
        .filter(|s| s.allowed_for(p.role))
        .map(|s| s.as_str())
        .collect();
    let status = if error.is_empty() {
        actix_web::http::StatusCode::OK
    } else {
        actix_web::http::StatusCode::BAD_REQUEST
    };
    let (new_name, new_scopes) = typed;
    render_status(
        &KeysPage {
            layout: Layout::new(state, p, "API keys", "/api-keys"),
            keys,
            scopes,
            created,
            error,
            new_name,
            new_scopes,
        },
        status,
    )
}

async fn keys_page(state: web::Data<AppState>, Auth(p): Auth) -> Result<HttpResponse, ApiError> {
    keys_page_with(&state, &p, None, String::new(), Default::default()).await
}

async fn keys_create_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // Several `scope` fields: parse the pairs by hand (serde_urlencoded has no repeated keys).
    let mut name = String::new();
    let mut raw = Vec::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "name" => name = v.into_owned(),
            "scope" => raw.push(v.into_owned()),
            _ => {}
        }
    }
    let typed = (name.clone(), raw.clone());
    let scopes = match parse_scopes(&raw).and_then(|s| may_mint(&p, &s).map(|_| s)) {
        Ok(s) => s,
        Err(e) => return keys_page_with(&state, &p, None, e.message, typed).await,
    };
    let actor = Actor::of(&p, client_ip(&req));
    let owner = p.user_id;
    let res = state
        .store
        .run(move |s| Ok::<_, ApiError>(super::create_api_key(s, &actor, owner, &name, &scopes)))
        .await?;
    match res {
        // The page that shows the key is a POST response: it is not cached or re-fetchable.
        Ok(k) => keys_page_with(&state, &p, Some(k), String::new(), Default::default()).await,
        Err(e @ (AuthError::Invalid(_) | AuthError::Forbidden(_))) => {
            keys_page_with(&state, &p, None, e.to_string(), typed).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn keys_revoke_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    confirm: web::Form<Confirm>,
) -> Result<HttpResponse, ApiError> {
    confirm.require("Revoke key")?;
    let actor = Actor::of(&p, client_ip(&req));
    let id = id.into_inner();
    let k = state
        .with_store(move |s| super::revoke_api_key(s, &actor, id))
        .await?;
    Ok(redirect_with_flash(
        &state,
        &p,
        "/api-keys",
        &format!("Revoked {}", k.name),
    ))
}
