//! Sign-on methods over HTTP (super-admins): list, create, change, delete and try a provider;
//! and signing in through an LDAP provider (`POST /api/v1/auth/login` with `provider`).

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{ldap, Kind, ProviderInput, ProviderView, SsoError};
use crate::auth::{AuthError, Credentials, LoginOk, Throttle, Verdict};
use crate::http::{Actor, ApiError, AppState, Auth, Perm, Routes};
use crate::store::Store;

pub fn routes(r: &mut Routes) {
    r.api(
        Method::GET,
        "/api/v1/sso/providers",
        Perm::SuperAdmin,
        api_list,
    );
    r.api(
        Method::POST,
        "/api/v1/sso/providers",
        Perm::SuperAdmin,
        api_create,
    );
    r.api(
        Method::GET,
        "/api/v1/sso/providers/{id}",
        Perm::SuperAdmin,
        api_get,
    );
    r.api(
        Method::PATCH,
        "/api/v1/sso/providers/{id}",
        Perm::SuperAdmin,
        api_update,
    );
    r.api(
        Method::DELETE,
        "/api/v1/sso/providers/{id}",
        Perm::SuperAdmin,
        api_delete,
    );
    r.api(
        Method::POST,
        "/api/v1/sso/providers/{id}/test",
        Perm::SuperAdmin,
        api_test,
    );
}

async fn api_list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let items: Vec<ProviderView> = state
        .with_store(super::list)
        .await?
        .iter()
        .map(ProviderView::from)
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

async fn api_create(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    body: web::Json<ProviderInput>,
) -> Result<HttpResponse, ApiError> {
    let (sealer, actor) = (state.sealer()?, Actor::from_request(&p, &req));
    let input = body.into_inner();
    let view = state
        .with_store(move |s| super::create(s, &sealer, &actor, input))
        .await?;
    Ok(HttpResponse::Created().json(view))
}

async fn api_get(state: web::Data<AppState>, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let p = state.with_store(move |s| super::get(s, id)).await?;
    Ok(HttpResponse::Ok().json(ProviderView::from(&p)))
}

async fn api_update(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    body: web::Json<ProviderInput>,
) -> Result<HttpResponse, ApiError> {
    let (sealer, actor) = (state.sealer()?, Actor::from_request(&p, &req));
    let (id, input) = (id.into_inner(), body.into_inner());
    let view = state
        .with_store(move |s| super::update(s, &sealer, &actor, id, input))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

async fn api_delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let (actor, id) = (Actor::from_request(&p, &req), id.into_inner());
    state
        .with_store(move |s| super::delete(s, &actor, id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Tries provider `id` now: the directory's bind and searches, or the issuer's discovery.
pub async fn try_provider(
    state: &AppState,
    id: u64,
) -> Result<(super::Provider, Result<String, String>), ApiError> {
    let sealer = state.sealer()?;
    let outbound = state.outbound();
    let (p, bind_password) = state
        .with_store(move |s| {
            let p = super::get(s, id)?;
            let pw = match p.kind {
                Kind::Ldap => super::bind_password(&sealer, &p)?,
                Kind::Oidc => String::new(),
            };
            Ok::<_, SsoError>((p, pw))
        })
        .await?;
    let outcome = match p.kind {
        Kind::Ldap => {
            let q = p.clone();
            tokio::task::spawn_blocking(move || {
                ldap::test(&q, &outbound, &bind_password).map_err(|e| e.0)
            })
            .await
            .map_err(ApiError::internal)?
        }
        Kind::Oidc => super::oidc::test(&p, &outbound).await,
    };
    Ok((p, outcome))
}

/// Tries the provider now: `{"ok": true, "message": ...}`, or `ok: false` with what failed.
async fn api_test(
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let (_, result) = try_provider(&state, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(match result {
        Ok(m) => serde_json::json!({"ok": true, "message": m}),
        Err(m) => serde_json::json!({"ok": false, "message": m}),
    }))
}

/// An LDAP provider as a sign-in method: the directory proves the user; the account is the
/// provider's (created at first sign-in, its role re-synced).
struct DirectoryLogin<'a> {
    provider: super::Provider,
    bind_password: String,
    outbound: &'a crate::outbound::Outbound,
}

impl Credentials for DirectoryLogin<'_> {
    fn verify(&self, store: &Store, login: &str, secret: &str) -> Result<Verdict, AuthError> {
        // `login` is `username@provider` (the throttle's account key); the directory wants the
        // username alone.
        let suffix = format!("@{}", self.provider.name.to_lowercase());
        let username = login.strip_suffix(&suffix).unwrap_or(login);
        match ldap::authenticate(
            &self.provider,
            self.outbound,
            &self.bind_password,
            username,
            secret,
        ) {
            Ok(ldap::Answer::Refused(why)) => {
                Ok(Verdict::Refused(format!("{}: {why}", self.provider.name)))
            }
            Ok(ldap::Answer::Allowed { email, grant, .. }) => {
                let role = grant
                    .role()
                    .ok_or_else(|| AuthError::Invalid("the directory granted no role".into()))?;
                Ok(
                    match crate::auth::sso_account(store, &self.provider.name, &email, role)? {
                        Ok(u) => Verdict::Proven(u),
                        Err(why) => Verdict::Refused(format!("{}: {why}", self.provider.name)),
                    },
                )
            }
            Err(e) => Err(AuthError::Unavailable(format!(
                "the directory of {} did not answer: {e}",
                self.provider.name
            ))),
        }
    }
}

/// Where a sign-in happens: the throttle, the session's lifetime, the caller's address.
pub struct SignInContext<'a> {
    pub throttle: &'a Throttle,
    pub ttl: std::time::Duration,
    pub ip: &'a str,
    pub outbound: &'a crate::outbound::Outbound,
}

/// Signs in through the LDAP provider named `provider` (blocking: talks to the directory).
pub fn directory_sign_in(
    store: &Store,
    sealer: &crate::secrets::Sealer,
    at: &SignInContext,
    provider: &str,
    username: &str,
    password: &str,
) -> Result<LoginOk, ApiError> {
    let p = super::enabled_by_name(store, provider)?;
    if p.kind != Kind::Ldap {
        return Err(ApiError::bad_request(format!(
            "{} signs in through its own page (/auth/sso/{}/login)",
            p.name, p.name
        )));
    }
    let bind_password = super::bind_password(sealer, &p)?;
    let login = format!("{username}@{}", p.name);
    let method = DirectoryLogin {
        provider: p,
        bind_password,
        outbound: at.outbound,
    };
    crate::auth::sign_in(store, at.throttle, at.ttl, &method, &login, password, at.ip)
        .map_err(ApiError::from)
}
