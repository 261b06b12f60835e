//! The identity domain's JSON: sign-in and sign-out, `me` and its password, users, API keys;
//! and the sign-in helpers the pages share.

use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{Actor, AuthError, Throttle, UserPatch};
use crate::http::routes::SESSION_COOKIE;
use crate::http::{client_ip, ApiError, AppState, Auth, Credential, Perm, Role, Routes, Scope};

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

    super::pages::routes(r);
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

pub(super) async fn do_login(
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
pub(super) async fn directory_login(
    state: &web::Data<AppState>,
    ip: String,
    provider: String,
    username: String,
    password: String,
) -> Result<super::LoginOk, ApiError> {
    let throttle = throttle(state)?;
    let ttl = Duration::from_secs(state.config.auth.session_ttl_minutes * 60);
    let sealer = state.sealer()?;
    let outbound = state.outbound();
    state
        .store
        .run(move |s| {
            let at = crate::sso::api::SignInContext {
                throttle: &throttle,
                ttl,
                ip: &ip,
                outbound: &outbound,
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
pub(super) async fn end_session(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Cookie<'static>, ApiError> {
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

pub(super) async fn change_password(
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

pub(super) fn parse_scopes(raw: &[String]) -> Result<Vec<Scope>, ApiError> {
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
pub(super) fn may_mint(p: &crate::http::Principal, scopes: &[Scope]) -> Result<(), ApiError> {
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
