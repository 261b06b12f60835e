//! The page layout shared by every HTML page: navigation, the signed-in user, the CSRF token for
//! forms, and a flash message. Domains render their own templates (which extend
//! `web/templates/base.html`) with a [`Layout`] inside.

use actix_web::HttpResponse;
use askama::Template;

use super::access::{Credential, Principal};
use super::{ApiError, AppState};

/// One navigation link as the layout shows it.
#[derive(Debug, Clone)]
pub struct NavLink {
    /// Text.
    pub label: &'static str,
    /// Target.
    pub href: &'static str,
    /// Whether this is the current section.
    pub active: bool,
}

/// What every page needs from the layout.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Page title.
    pub title: String,
    /// Signed-in user's email.
    pub email: String,
    /// Signed-in user's role.
    pub role: &'static str,
    /// Token every form must carry as the `csrf` field.
    pub csrf: String,
    /// Navigation entries this user may use.
    pub nav: Vec<NavLink>,
    /// One-off message (from `?flash=`), shown above the content.
    pub flash: String,
}

impl Layout {
    /// The layout for `principal` on a page of the section at `active`.
    pub fn new(
        state: &AppState,
        principal: &Principal,
        title: impl Into<String>,
        active: &str,
    ) -> Layout {
        let nav = state
            .nav
            .iter()
            .filter(|n| principal.can(n.perm))
            .map(|n| NavLink {
                label: n.label,
                href: n.href,
                active: n.href == active,
            })
            .collect();
        let csrf = match &principal.credential {
            Credential::Session { csrf, .. } => csrf.clone(),
            Credential::ApiKey { .. } => String::new(),
        };
        Layout {
            title: title.into(),
            email: principal.email.clone(),
            role: principal.role.as_str(),
            csrf,
            nav,
            flash: String::new(),
        }
    }

    /// Adds a flash message.
    pub fn with_flash(mut self, flash: Option<&str>) -> Layout {
        self.flash = flash.unwrap_or_default().chars().take(200).collect();
        self
    }
}

/// Renders a template into a 200 HTML response.
pub fn render(t: &impl Template) -> Result<HttpResponse, ApiError> {
    let body = t.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body))
}

/// Renders a template with another status (a form shown again with its error: 400).
pub fn render_status(
    t: &impl Template,
    status: actix_web::http::StatusCode,
) -> Result<HttpResponse, ApiError> {
    let mut res = render(t)?;
    *res.status_mut() = status;
    Ok(res)
}

/// The `?flash=` message pages accept (set by [`redirect_with_flash`]).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct FlashQuery {
    /// The message.
    pub flash: Option<String>,
}

/// A 303 redirect to `path` that shows `message` once.
pub fn redirect_with_flash(path: &str, message: &str) -> HttpResponse {
    let m: String = url::form_urlencoded::byte_serialize(message.as_bytes()).collect();
    redirect(&format!("{path}?flash={m}"))
}

/// A 303 redirect (after a successful form post).
pub fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, to.to_string()))
        .finish()
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    message: &'a str,
}

/// A standalone HTML error page.
pub fn error_page(e: &ApiError) -> HttpResponse {
    let body = ErrorPage {
        status: e.status.as_u16(),
        message: &e.message,
    }
    .render()
    .unwrap_or_else(|_| "error".into());
    HttpResponse::build(e.status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}
