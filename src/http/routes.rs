//! The route table. Every route is registered through [`Routes`] with the [`Perm`] it requires,
//! and registration wraps the handler in [`gate`], which authenticates the caller and checks the
//! permission before the handler runs. A route cannot be added without a permission, and the
//! table can be listed ([`Routes::infos`]), which is how the route × role test finds every route,
//! including those later issues add.

use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::{from_fn, Next};
use actix_web::{
    guard, web, FromRequest, Handler, HttpMessage, HttpRequest, HttpResponse, Responder,
};

use super::access::{Credential, Perm, Principal};
use super::{ApiError, AppState};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "bulwark_session";
/// Name of the pre-login CSRF cookie (double-submit for the login form).
pub const LOGIN_CSRF_COOKIE: &str = "bulwark_csrf";

/// How a route answers and how it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// JSON API: failures are JSON 401/403.
    Api,
    /// HTML page (GET): no session redirects to the login page.
    Page,
    /// HTML form post: like a page, and the body must carry the CSRF token.
    Form,
}

/// One registered route.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    /// HTTP method.
    pub method: Method,
    /// actix path pattern, e.g. `/api/v1/clusters/{id}`.
    pub path: &'static str,
    /// Permission required.
    pub perm: Perm,
    /// API, page or form.
    pub kind: Kind,
    /// Session-authenticated calls need no JSON content type (only for harmless POSTs, logout).
    pub csrf_exempt: bool,
    /// A form whose body is a file upload (multipart): its CSRF token comes in the `?csrf=`
    /// query instead, so the body streams to its handler unread.
    pub csrf_in_query: bool,
}

impl RouteInfo {
    fn new(method: Method, path: &'static str, perm: Perm, kind: Kind) -> RouteInfo {
        RouteInfo {
            method,
            path,
            perm,
            kind,
            csrf_exempt: false,
            csrf_in_query: false,
        }
    }
}

/// A count shown beside a navigation entry (things waiting for the user), computed on every
/// page: it must be a cheap read.
#[derive(Clone)]
pub struct Badge {
    /// Shown only to principals holding this.
    pub perm: Perm,
    /// What it says, for screen readers and the tooltip: `exception requests waiting`.
    pub what: &'static str,
    pub count: Arc<dyn Fn(&crate::store::Store) -> u64 + Send + Sync>,
}

impl std::fmt::Debug for Badge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Badge").field("what", &self.what).finish()
    }
}

/// A navigation entry of the page layout.
#[derive(Debug, Clone)]
pub struct NavEntry {
    /// Text shown.
    pub label: &'static str,
    /// Target.
    pub href: &'static str,
    /// Shown only to principals holding this.
    pub perm: Perm,
    /// Position: lower comes first (0 dashboard, 10–70 capabilities, 80+ administration).
    pub weight: u16,
    pub badge: Option<Badge>,
}

type Register = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// The route table under construction; domains add to it in their `routes` functions.
#[derive(Clone, Default)]
pub struct Routes {
    infos: Vec<RouteInfo>,
    regs: Vec<Register>,
    nav: Vec<NavEntry>,
}

impl Routes {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A JSON API route.
    pub fn api<F, Args>(&mut self, method: Method, path: &'static str, perm: Perm, handler: F)
    where
        F: Handler<Args> + Send + Sync,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(RouteInfo::new(method, path, perm, Kind::Api), handler)
    }

    /// A JSON API POST that is harmless to forge (logout), so it needs no JSON content type.
    pub fn api_csrf_exempt<F, Args>(
        &mut self,
        method: Method,
        path: &'static str,
        perm: Perm,
        handler: F,
    ) where
        F: Handler<Args> + Send + Sync,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(
            RouteInfo {
                csrf_exempt: true,
                ..RouteInfo::new(method, path, perm, Kind::Api)
            },
            handler,
        )
    }

    /// An HTML page (GET).
    pub fn page<F, Args>(&mut self, path: &'static str, perm: Perm, handler: F)
    where
        F: Handler<Args> + Send + Sync,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(RouteInfo::new(Method::GET, path, perm, Kind::Page), handler)
    }

    /// An HTML form post (POST, CSRF-checked).
    pub fn form<F, Args>(&mut self, path: &'static str, perm: Perm, handler: F)
    where
        F: Handler<Args> + Send + Sync,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(
            RouteInfo::new(Method::POST, path, perm, Kind::Form),
            handler,
        )
    }

    /// A file-upload form (POST, multipart): the CSRF token is checked from `?csrf=`.
    pub fn upload<F, Args>(&mut self, path: &'static str, perm: Perm, handler: F)
    where
        F: Handler<Args> + Send + Sync,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(
            RouteInfo {
                csrf_in_query: true,
                ..RouteInfo::new(Method::POST, path, perm, Kind::Form)
            },
            handler,
        )
    }

    /// Adds a navigation entry to the page layout at position `weight`.
    pub fn nav(&mut self, weight: u16, label: &'static str, href: &'static str, perm: Perm) {
        self.nav.push(NavEntry {
            label,
            href,
            perm,
            weight,
            badge: None,
        });
        self.nav.sort_by_key(|n| n.weight);
    }

    /// Puts `badge` on the navigation entry for `href` (registered before).
    pub fn nav_badge(&mut self, href: &'static str, badge: Badge) {
        if let Some(n) = self.nav.iter_mut().find(|n| n.href == href) {
            n.badge = Some(badge);
        }
    }

    /// Every registered route.
    pub fn infos(&self) -> &[RouteInfo] {
        &self.infos
    }

    /// The navigation entries, in registration order.
    pub fn nav_entries(&self) -> &[NavEntry] {
        &self.nav
    }

    /// Registers every route with actix.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        for r in &self.regs {
            r(cfg);
        }
    }

    fn add<F, Args>(&mut self, info: RouteInfo, handler: F)
    where
        F: Handler<Args> + Send + Sync,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.infos.push(info.clone());
        self.regs
            .push(Arc::new(move |cfg: &mut web::ServiceConfig| {
                let info = Rc::new(info.clone());
                // A resource guard (not a route guard) makes routing fall through to the resource
                // registered for the same path with another method.
                cfg.service(
                    web::resource(info.path)
                        .guard(guard::Method(info.method.clone()))
                        .route(web::route().to(handler.clone()))
                        .wrap(from_fn(move |req, next| gate(info.clone(), req, next))),
                );
            }));
    }
}

/// Authenticates, authorizes and CSRF-checks a request before its handler.
async fn gate(
    info: Rc<RouteInfo>,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(ApiError::internal("application state missing").into());
    };
    if info.perm == Perm::Public {
        if info.kind == Kind::Form {
            let cookie = req.cookie(LOGIN_CSRF_COOKIE).map(|c| c.value().to_string());
            let ok = match cookie {
                Some(expected) => match check_form_csrf(&mut req, &expected).await {
                    Ok(ok) => ok,
                    Err(e) => {
                        return Ok(req.into_response(e.error_response_for(info.kind, String::new())))
                    }
                },
                None => false,
            };
            if !ok {
                return Ok(req.into_response(csrf_failure()));
            }
        }
        return Ok(no_store(next.call(req).await?.map_into_boxed_body()));
    }
    let path = req_path(&req);
    let principal = match authenticate(&req, &state).await {
        Ok(p) => p,
        Err(e) => return Ok(req.into_response(e.error_response_for(info.kind, path.clone()))),
    };
    let Some(principal) = principal else {
        let e = ApiError::unauthorized(
            "sign in or send an API key (Authorization: Bearer, x-api-key or ?key=)",
        );
        return Ok(req.into_response(e.error_response_for(info.kind, path.clone())));
    };
    if !principal.can(info.perm) {
        // The tools that push reports (kube-bench, kube-hunter, Falco) treat a key without
        // their scope like a wrong key, as m9sweeper answers them.
        if matches!(
            info.perm,
            Perm::UploadKubeBench | Perm::UploadKubeHunter | Perm::UploadFalco
        ) {
            let e = ApiError::unauthorized(format!(
                "this key does not hold the {:?} permission",
                info.perm
            ));
            return Ok(req.into_response(e.error_response_for(info.kind, path.clone())));
        }
        let e = ApiError::forbidden(format!(
            "{} may not do this ({:?} is required)",
            principal.role.as_str(),
            info.perm
        ));
        if info.kind != Kind::Api {
            let page =
                super::layout::error_page_in_layout(&state, &principal, e.status, &e.message);
            return Ok(req.into_response(page));
        }
        return Ok(req.into_response(e.error_response_for(info.kind, path.clone())));
    }
    if let Credential::Session { csrf, .. } = &principal.credential {
        match info.kind {
            Kind::Api => {
                let unsafe_method =
                    matches!(info.method, Method::POST | Method::PUT | Method::PATCH);
                if unsafe_method && !info.csrf_exempt && !is_json(&req) {
                    let e = ApiError::new(
                        actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_media_type",
                        "calls authenticated by the session cookie must send Content-Type: application/json",
                    );
                    return Ok(req.into_response(actix_web::ResponseError::error_response(&e)));
                }
            }
            Kind::Form if info.csrf_in_query => {
                let given = url::form_urlencoded::parse(req.query_string().as_bytes())
                    .find(|(k, _)| k == "csrf")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                if !constant_time_eq(given.as_bytes(), csrf.as_bytes()) {
                    return Ok(req.into_response(csrf_failure()));
                }
            }
            Kind::Form => {
                let csrf = csrf.clone();
                match check_form_csrf(&mut req, &csrf).await {
                    Ok(true) => {}
                    Ok(false) => return Ok(req.into_response(csrf_failure())),
                    Err(e) => return Ok(req.into_response(e.error_response_for(info.kind, path))),
                }
            }
            Kind::Page => {}
        }
    }
    let caller = (info.kind != Kind::Api).then(|| principal.clone());
    req.extensions_mut().insert(principal);
    let res = next.call(req).await?.map_into_boxed_body();
    Ok(no_store(match caller {
        Some(p) => errors_as_pages(&state, &p, res),
        None => res,
    }))
}

/// A page or form whose handler failed (an unknown id, a refused change) answers with an error
/// page in the console's layout, not the API's JSON.
fn errors_as_pages(
    state: &AppState,
    p: &Principal,
    res: ServiceResponse<BoxBody>,
) -> ServiceResponse<BoxBody> {
    let Some(err) = res.response().error() else {
        return res;
    };
    let status = res.status();
    let message = match err.as_error::<ApiError>() {
        Some(e) => e.message.clone(),
        None => err.to_string(),
    };
    let page = super::layout::error_page_in_layout(state, p, status, &message);
    let (req, _) = res.into_parts();
    ServiceResponse::new(req, page)
}

/// Marks a response uncacheable unless its handler chose otherwise (static assets do): pages
/// and answers carry data a shared or back-button cache must not keep.
fn no_store(mut res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let h = res.headers_mut();
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    res
}

fn req_path(req: &ServiceRequest) -> String {
    req.uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into())
}

fn is_json(req: &ServiceRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false)
}

fn csrf_failure() -> HttpResponse {
    HttpResponse::Forbidden()
        .content_type("text/html; charset=utf-8")
        .body("<!doctype html><title>Form expired</title><p>This form has expired or did not come from Bulwark. Go back, reload the page and try again.</p>")
}

/// Reads the form body (bounded), compares its `csrf` field with `expected` in constant time and
/// puts the body back for the handler.
async fn check_form_csrf(req: &mut ServiceRequest, expected: &str) -> Result<bool, ApiError> {
    let body = req.extract::<web::Bytes>().await.map_err(|e| {
        let e: actix_web::Error = e;
        if e.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "form is larger than http.max_body_bytes",
            )
        } else {
            ApiError::bad_request(format!("could not read the form: {e}"))
        }
    })?;
    let given = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    let (_, mut payload) = actix_http::h1::Payload::create(true);
    payload.unread_data(body);
    req.set_payload(payload.into());
    Ok(matches!(given, Some(g) if constant_time_eq(g.as_bytes(), expected.as_bytes())))
}

/// Compares without an early exit, so timing does not reveal a prefix.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Finds credentials in the request: an API key (Authorization: Bearer, x-api-key, ?key=) wins
/// over the session cookie. A presented key that is wrong is an error, not "anonymous".
async fn authenticate(
    req: &ServiceRequest,
    state: &AppState,
) -> Result<Option<Principal>, ApiError> {
    let key = api_key_of(req.request());
    let auth = state.auth.clone();
    if let Some(key) = key {
        if let Some(p) = auth.cached_api_key(&key) {
            return Ok(Some(p));
        }
        let found = tokio::task::spawn_blocking(move || auth.api_key(&key))
            .await
            .map_err(ApiError::internal)??;
        return match found {
            Some(p) => Ok(Some(p)),
            None => Err(ApiError::unauthorized(
                "the API key is unknown, revoked or its owner is disabled",
            )),
        };
    }
    let Some(cookie) = req.cookie(SESSION_COOKIE) else {
        return Ok(None);
    };
    let token = cookie.value().to_string();
    if let Some(p) = auth.cached_session(&token) {
        return Ok(Some(p));
    }
    tokio::task::spawn_blocking(move || auth.session(&token))
        .await
        .map_err(ApiError::internal)?
}

/// The API key a request carries, if any.
pub fn api_key_of(req: &HttpRequest) -> Option<String> {
    if let Some(v) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(k) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        {
            return Some(k.trim().to_string());
        }
    }
    if let Some(v) = req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_string());
    }
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "key")
        .map(|(_, v)| v.into_owned())
}

impl ApiError {
    /// Renders this error the way a route of `kind` fails: JSON for APIs, a redirect to the login
    /// page (401) or an HTML page (others) for pages and forms.
    pub fn error_response_for(&self, kind: Kind, path: String) -> HttpResponse {
        use actix_web::ResponseError;
        match kind {
            Kind::Api => self.error_response(),
            Kind::Page | Kind::Form if self.status == actix_web::http::StatusCode::UNAUTHORIZED => {
                let next: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
                HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, format!("/login?next={next}")))
                    .finish()
            }
            Kind::Page | Kind::Form => super::layout::error_page(self),
        }
    }
}

/// The authenticated caller, for handlers of non-public routes.
pub struct Auth(pub Principal);

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Auth, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<Principal>()
                .cloned()
                .map(Auth)
                .ok_or_else(|| ApiError::unauthorized("not signed in")),
        )
    }
}

/// The caller if one is signed in, on public routes (the login page uses it to skip itself).
pub struct MaybeAuth(pub Option<Principal>);

impl FromRequest for MaybeAuth {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<MaybeAuth, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
        Box::pin(async move {
            let (Some(state), Some(token)) = (state, token) else {
                return Ok(MaybeAuth(None));
            };
            let auth = state.auth.clone();
            let p = tokio::task::spawn_blocking(move || auth.session(&token))
                .await
                .map_err(ApiError::internal)??;
            Ok(MaybeAuth(p))
        })
    }
}
