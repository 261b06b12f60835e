//! Routes of the identity domain: login/logout (JSON and form), `me`, users, API keys.

use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{Actor, ApiKeyView, AuthError, NewApiKey, Throttle, UserPatch, UserView};
use crate::http::layout::{redirect, redirect_with_flash, render, render_status, Confirm, Layout};
use crate::http::routes::{LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::http::{
    client_ip, ApiError, AppState, Auth, Credential, MaybeAuth, Perm, Role, Routes, Scope,
};
use actix_web::http::StatusCode;

/// Registers the identity routes and pages.
pub fn routes(r: &mut Routes) {
    r.api(Method::POST, "/api/v1/auth/login", Perm::Public, api_login);
    r.api_csrf_exempt(
        Method::POST,
        "/api/v1/auth/logout",
        Perm::Authenticated,
        api_logout,
    );
    r.api(Method::GET, "/api/v1/me", Perm::Authenticated, api_me);
    r.api(
        Method::POST,
        "/api/v1/me/password",
        Perm::OwnKeys,
        api_change_password,
    );
    r.api(
        Method::GET,
        "/api/v1/users",
        Perm::ManageUsers,
        api_list_users,
    );
    r.api(
        Method::POST,
        "/api/v1/users",
        Perm::ManageUsers,
        api_create_user,
    );
    r.api(
        Method::GET,
        "/api/v1/users/{id}",
        Perm::ManageUsers,
        api_get_user,
    );
    r.api(
        Method::PATCH,
        "/api/v1/users/{id}",
        Perm::ManageUsers,
        api_update_user,
    );
    r.api(
        Method::GET,
        "/api/v1/api-keys",
        Perm::OwnKeys,
        api_list_keys,
    );
    r.api(
        Method::POST,
        "/api/v1/api-keys",
        Perm::OwnKeys,
        api_create_key,
    );
    r.api(
        Method::DELETE,
        "/api/v1/api-keys/{id}",
        Perm::OwnKeys,
        api_revoke_key,
    );

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

fn throttle(state: &AppState) -> Result<std::sync::Arc<Throttle>, ApiError> {
    state
        .domains
        .get::<Throttle>()
        .ok_or_else(|| ApiError::internal("login throttle not configured"))
}

pub fn session_cookie(token: String, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, token)
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age_secs))
        .finish()
}

/// `{"email","password"}` for a local account, `{"provider","username","password"}` through a
/// directory.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    #[serde(default)]
    email: String,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    username: String,
    password: String,
}

async fn do_login(
    state: &web::Data<AppState>,
    ip: String,
    email: String,
    pw: String,
) -> Result<super::LoginOk, ApiError> {
    let throttle = throttle(state)?;
    let ttl = Duration::from_secs(state.config.auth.session_ttl_minutes * 60);
    state
        .store
        .run(move |store| {
            super::login(store, &throttle, ttl, &email, &pw, &ip).map_err(ApiError::from)
        })
        .await
}

/// Signs in through the directory `provider` (see `sso::api::directory_sign_in`).
async fn directory_login(
    state: &web::Data<AppState>,
    ip: String,
    provider: String,
    username: String,
    password: String,
) -> Result<super::LoginOk, ApiError> {
    let throttle = throttle(state)?;
    let ttl = Duration::from_secs(state.config.auth.session_ttl_minutes * 60);
    let sealer = state.sealer()?;
    state
        .store
        .run(move |s| {
            let at = crate::sso::api::SignInContext {
                throttle: &throttle,
                ttl,
                ip: &ip,
            };
            crate::sso::api::directory_sign_in(s, &sealer, &at, &provider, &username, &password)
        })
        .await
}

async fn api_login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let ok = match body.provider {
        Some(provider) => {
            directory_login(
                &state,
                client_ip(&req),
                provider,
                body.username,
                body.password,
            )
            .await?
        }
        None => do_login(&state, client_ip(&req), body.email, body.password).await?,
    };
    let max_age = (ok.expires_at - chrono::Utc::now()).num_seconds();
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(ok.token, max_age))
        .json(serde_json::json!({
            "email": ok.user.email,
            "role": ok.user.role,
            "id": ok.user.id,
            "csrf": ok.csrf,
            "expires_at": ok.expires_at,
        })))
}

/// Ends the request's session (if it has one) and returns the cookie that removes it.
async fn end_session(state: &AppState, req: &HttpRequest) -> Result<Cookie<'static>, ApiError> {
    if let Some(c) = req.cookie(SESSION_COOKIE) {
        let token = c.value().to_string();
        let ip = client_ip(req);
        state
            .with_store(move |s| super::logout(s, &token, &ip))
            .await?;
    }
    let mut gone = session_cookie(String::new(), 0);
    gone.make_removal();
    Ok(gone)
}

async fn api_logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    _auth: Auth,
) -> Result<HttpResponse, ApiError> {
    let gone = end_session(&state, &req).await?;
    Ok(HttpResponse::Ok()
        .cookie(gone)
        .json(serde_json::json!({"signed_out": true})))
}

async fn api_me(Auth(p): Auth) -> HttpResponse {
    let (via, scopes, csrf) = match &p.credential {
        Credential::Session { csrf, .. } => ("session", None, Some(csrf.clone())),
        Credential::ApiKey { scopes, .. } => ("api-key", Some(scopes.clone()), None),
    };
    HttpResponse::Ok().json(serde_json::json!({
        "id": p.user_id,
        "email": p.email,
        "role": p.role,
        "auth": via,
        "scopes": scopes,
        "csrf": csrf,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

fn session_id(p: &crate::http::Principal) -> Option<u64> {
    match &p.credential {
        Credential::Session { id, .. } => Some(*id),
        Credential::ApiKey { .. } => None,
    }
}

async fn change_password(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    p: &crate::http::Principal,
    current: String,
    new: String,
) -> Result<Result<(), AuthError>, ApiError> {
    let actor = Actor::of(p, client_ip(req));
    let (uid, keep) = (p.user_id, session_id(p));
    state
        .store
        .run(move |s| {
            Ok::<_, ApiError>(super::change_own_password(
                s, &actor, uid, &current, &new, keep,
            ))
        })
        .await
}

async fn api_change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    body: web::Json<PasswordChange>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    change_password(&state, &req, &p, b.current_password, b.new_password).await??;
    Ok(HttpResponse::Ok().json(serde_json::json!({"changed": true})))
}

async fn api_list_users(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let users = state.with_store(super::list_users).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": users })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    password: String,
    role: Role,
}

async fn api_create_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    body: web::Json<NewUser>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::of(&p, client_ip(&req));
    let b = body.into_inner();
    let user = state
        .with_store(move |s| super::create_user(s, &actor, &b.email, &b.password, b.role))
        .await?;
    Ok(HttpResponse::Created().json(user))
}

async fn api_get_user(
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let user = state.with_store(move |s| super::get_user(s, id)).await?;
    Ok(HttpResponse::Ok().json(user))
}

async fn api_update_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    body: web::Json<UserPatch>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::of(&p, client_ip(&req));
    let (id, patch) = (id.into_inner(), body.into_inner());
    let user = state
        .with_store(move |s| super::update_user(s, &actor, id, &patch))
        .await?;
    Ok(HttpResponse::Ok().json(user))
}

async fn api_list_keys(
    state: web::Data<AppState>,
    Auth(p): Auth,
) -> Result<HttpResponse, ApiError> {
    let keys = state
        .with_store(move |s| super::list_api_keys(s, Some(p.user_id)))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": keys })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    scopes: Vec<String>,
}

fn parse_scopes(raw: &[String]) -> Result<Vec<Scope>, ApiError> {
    raw.iter()
        .map(|s| {
            Scope::parse(s).ok_or_else(|| {
                let all: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::bad_request(format!(
                    "unknown scope '{s}'; scopes are {}",
                    all.join(", ")
                ))
            })
        })
        .collect()
}

/// A key may only create keys with scopes it holds itself: an `admin` key acts for its owner
/// but cannot mint upload or metrics keys it could not use. Sessions may create any scope the
/// owner's role allows (checked by `create_api_key`).
fn may_mint(p: &crate::http::Principal, scopes: &[Scope]) -> Result<(), ApiError> {
    if let Credential::ApiKey { scopes: held, .. } = &p.credential {
        if let Some(s) = scopes.iter().find(|s| !held.contains(s)) {
            return Err(ApiError::forbidden(format!(
                "an API key may only create keys with scopes it holds; this one has no '{}'",
                s.as_str()
            )));
        }
    }
    Ok(())
}

async fn api_create_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    body: web::Json<NewKey>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let scopes = parse_scopes(&b.scopes)?;
    may_mint(&p, &scopes)?;
    let actor = Actor::of(&p, client_ip(&req));
    let owner = p.user_id;
    let key = state
        .with_store(move |s| super::create_api_key(s, &actor, owner, &b.name, &scopes))
        .await?;
    Ok(HttpResponse::Created().json(key))
}

async fn api_revoke_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::of(&p, client_ip(&req));
    let id = id.into_inner();
    let key = state
        .with_store(move |s| super::revoke_api_key(s, &actor, id))
        .await?;
    Ok(HttpResponse::Ok().json(key))
}

// ---- pages ----

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
