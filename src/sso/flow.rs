//! The browser's side of OpenID Connect sign-in: `/auth/sso/{name}/login` sends the browser to
//! the provider; the provider sends it back to `/auth/sso/{name}/callback`, which checks the
//! state it started, finishes the code flow, and signs the account in.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::oidc::{self, PendingLogins};
use super::{Kind, SsoError};
use crate::auth::{AuthError, Credentials, User, Verdict};
use crate::http::layout::error_page;
use crate::http::{client_ip, ApiError, AppState, Perm, Routes};
use crate::store::Store;

pub fn routes(r: &mut Routes) {
    r.page("/auth/sso/{name}/login", Perm::Public, login);
    r.page("/auth/sso/{name}/callback", Perm::Public, callback);
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginQuery {
    next: String,
}

/// The redirect URI registered with the provider: `[http] public_url`, else how this request
/// reached the appliance.
fn redirect_uri(state: &AppState, req: &HttpRequest, name: &str) -> String {
    let base = if state.config.http.public_url.trim().is_empty() {
        format!("https://{}", req.connection_info().host())
    } else {
        state
            .config
            .http
            .public_url
            .trim_end_matches('/')
            .to_string()
    };
    format!("{base}/auth/sso/{name}/callback")
}

/// Only paths of this site (as the sign-in form's `next`).
fn local_path(next: &str) -> String {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && next.len() <= 2048
        && !next
            .chars()
            .any(|c| c.is_control() || c == '\\' || c.is_whitespace());
    if ok {
        next.to_string()
    } else {
        "/".into()
    }
}

fn pending(state: &AppState) -> Result<std::sync::Arc<PendingLogins>, ApiError> {
    state
        .domains
        .get::<PendingLogins>()
        .ok_or_else(|| ApiError::internal("sign-on state missing"))
}

async fn provider_and_secret(
    state: &AppState,
    name: String,
) -> Result<(super::Provider, String), ApiError> {
    let sealer = state.sealer()?;
    state
        .with_store(move |s| {
            let p = super::enabled_by_name(s, &name)?;
            if p.kind != Kind::Oidc {
                return Err(SsoError::Invalid(format!(
                    "{} is a directory: sign in with its username on the sign-in page",
                    p.name
                )));
            }
            let secret = super::client_secret(&sealer, &p)?;
            Ok((p, secret))
        })
        .await
}

async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    name: web::Path<String>,
    q: web::Query<LoginQuery>,
) -> HttpResponse {
    let name = name.into_inner();
    let (p, secret) = match provider_and_secret(&state, name.clone()).await {
        Ok(x) => x,
        Err(e) => return error_page(&e),
    };
    let (Ok(pending), redirect) = (pending(&state), redirect_uri(&state, &req, &p.name)) else {
        return error_page(&ApiError::internal("sign-on state missing"));
    };
    match oidc::begin(
        &p,
        &state.outbound(),
        &secret,
        &redirect,
        &local_path(&q.next),
        &pending,
    )
    .await
    {
        Ok(url) => HttpResponse::SeeOther()
            .insert_header((actix_web::http::header::LOCATION, url))
            .finish(),
        Err(e) => error_page(&ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{}: {e}. Local accounts can still sign in.", p.name),
        )),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CallbackQuery {
    code: String,
    state: String,
    error: String,
    error_description: String,
}

/// What the provider proved (or why not), as a sign-in method for `auth::sign_in`.
struct Asserted(Result<User, String>);

impl Credentials for Asserted {
    fn verify(&self, _: &Store, _: &str, _: &str) -> Result<Verdict, AuthError> {
        Ok(match &self.0 {
            Ok(u) => Verdict::Proven(u.clone()),
            Err(why) => Verdict::Refused(why.clone()),
        })
    }
}

async fn callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    name: web::Path<String>,
    q: web::Query<CallbackQuery>,
) -> HttpResponse {
    match finish(&state, &req, name.into_inner(), q.into_inner()).await {
        Ok(resp) => resp,
        Err(e) => error_page(&e),
    }
}

async fn finish(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    name: String,
    q: CallbackQuery,
) -> Result<HttpResponse, ApiError> {
    if !q.error.is_empty() {
        return Err(ApiError::unauthorized(format!(
            "the provider says: {} {}",
            q.error.chars().take(100).collect::<String>(),
            q.error_description.chars().take(300).collect::<String>()
        )));
    }
    let started = pending(state)?
        .take(&q.state)
        .filter(|p| p.provider.eq_ignore_ascii_case(&name))
        .ok_or_else(|| {
            ApiError::bad_request(
                "this sign-in was not started here, has expired, or was already used: start again",
            )
        })?;
    let next = started.next.clone();
    let (p, secret) = provider_and_secret(state, name).await?;
    let outcome = oidc::finish(&p, &state.outbound(), &secret, started, &q.code)
        .await
        .map_err(|e| {
            ApiError::new(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("{}: {e}", p.name),
            )
        })?;
    let throttle = state
        .domains
        .get::<crate::auth::Throttle>()
        .ok_or_else(|| ApiError::internal("login throttle not configured"))?;
    let ttl = std::time::Duration::from_secs(state.config.auth.session_ttl_minutes * 60);
    let ip = client_ip(req);
    let provider_name = p.name.clone();
    let ok = state
        .store
        .run(move |s| {
            let (login, asserted) = match outcome {
                Err(why) => (
                    provider_name.clone(),
                    Err(format!("{provider_name}: {why}")),
                ),
                Ok(id) => {
                    let role = id
                        .grant
                        .role()
                        .ok_or_else(|| ApiError::internal("a granted sign-in without a role"))?;
                    let account = crate::auth::sso_account(s, &provider_name, &id.email, role)?
                        .map_err(|why| format!("{provider_name}: {why}"));
                    (id.email, account)
                }
            };
            crate::auth::sign_in(s, &throttle, ttl, &Asserted(asserted), &login, "", &ip)
                .map_err(ApiError::from)
        })
        .await?;
    let max_age = (ok.expires_at - chrono::Utc::now()).num_seconds();
    // A page, not a redirect: the session cookie is SameSite=Strict, which the browser would
    // not send on a redirect chain that began at the provider.
    let target = crate::http::layout::attribute_escape(&next);
    Ok(HttpResponse::Ok()
        .cookie(crate::auth::session_cookie(ok.token, max_age))
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0;url={target}\"><title>Signed in</title></head><body><p>Signed in. <a href=\"{target}\" id=\"continue\">Continue</a></p></body></html>"
        )))
}
