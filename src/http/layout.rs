//! The page layout shared by every HTML page: navigation, the signed-in user, the CSRF token for
//! forms, and a flash message. Domains render their own templates (which extend
//! `web/templates/base.html`) with a [`Layout`] inside.
//!
//! Flash messages live in the server's memory, keyed by the caller's session (or key), from the
//! redirect that sets one to the next page that caller sees: never in the URL, where anyone
//! could write text onto Bulwark's pages and send the link around.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    /// Things waiting there for this user (0: no badge), and what they are.
    pub badge: u64,
    pub badge_what: &'static str,
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
    /// One-off message set by the form that redirected here, shown above the content.
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
            .map(|n| {
                let badge = n.badge.as_ref().filter(|b| principal.can(b.perm));
                NavLink {
                    label: n.label,
                    href: n.href,
                    active: n.href == active,
                    badge: badge.map(|b| (b.count)(&state.store)).unwrap_or(0),
                    badge_what: badge.map(|b| b.what).unwrap_or(""),
                }
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
            flash: state.flashes.take(principal).unwrap_or_default(),
        }
    }
}

/// Pending flash messages by caller.
#[derive(Default)]
pub struct Flashes {
    pending: Mutex<HashMap<String, (Instant, String)>>,
}

/// Flash messages kept at most (the oldest go first) and for how long.
const MAX_FLASHES: usize = 10_000;
const FLASH_TTL: Duration = Duration::from_secs(300);

impl Flashes {
    fn key(p: &Principal) -> String {
        match &p.credential {
            Credential::Session { id, .. } => format!("s{id}"),
            Credential::ApiKey { id, .. } => format!("k{id}"),
        }
    }

    /// Shows `message` on the next page `p` sees.
    pub fn set(&self, p: &Principal, message: &str) {
        let Ok(mut m) = self.pending.lock() else {
            return;
        };
        if m.len() >= MAX_FLASHES {
            m.retain(|_, (at, _)| at.elapsed() < FLASH_TTL);
            if m.len() >= MAX_FLASHES {
                m.clear();
            }
        }
        m.insert(
            Self::key(p),
            (Instant::now(), message.chars().take(300).collect()),
        );
    }

    /// The message waiting for `p`, if any (shown once).
    pub fn take(&self, p: &Principal) -> Option<String> {
        let mut m = self.pending.lock().ok()?;
        let (at, msg) = m.remove(&Self::key(p))?;
        (at.elapsed() < FLASH_TTL).then_some(msg)
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

/// A 303 redirect to `path` after which `p`'s next page shows `message` once.
pub fn redirect_with_flash(
    state: &AppState,
    p: &Principal,
    path: &str,
    message: &str,
) -> HttpResponse {
    state.flashes.set(p, message);
    redirect(path)
}

/// The `confirm` box of a destructive form. Browsers refuse to submit the form until it is
/// ticked (`required`); the handler checks it too, so a post without it changes nothing.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Confirm {
    #[serde(default)]
    pub confirm: Option<String>,
}

impl Confirm {
    /// `Ok` when the box was ticked; else a 400 saying what to confirm.
    pub fn require(&self, what: &str) -> Result<(), ApiError> {
        match self.confirm.as_deref() {
            Some("1") => Ok(()),
            _ => Err(ApiError::bad_request(format!(
                "{what}: tick the confirmation box to go ahead"
            ))),
        }
    }
}

/// The form field an error message is about, if it is one of `fields`: messages name their
/// field first (`end date: use YYYY-MM-DD` → `end_date`, `tag 'x': …` → `tags`).
pub fn field_of(error: &str, fields: &[&str]) -> String {
    let head = error.split(':').next().unwrap_or("").trim();
    let word = head.split(' ').next().unwrap_or("");
    [head.replace(' ', "_"), word.to_string(), format!("{word}s")]
        .into_iter()
        .find(|f| fields.contains(&f.as_str()))
        .unwrap_or_default()
}

/// `s` safe inside a double-quoted HTML attribute.
pub fn attribute_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// A 303 redirect (after a successful form post).
pub fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, to.to_string()))
        .finish()
}

#[derive(Template)]
#[template(path = "error_page.html")]
struct ErrorInLayout<'a> {
    layout: Layout,
    status: u16,
    title: &'static str,
    message: &'a str,
}

/// An error as a page of the console (nav and all), for a signed-in caller of a page or form.
pub fn error_page_in_layout(
    state: &AppState,
    p: &Principal,
    status: actix_web::http::StatusCode,
    message: &str,
) -> HttpResponse {
    let title = match status.as_u16() {
        403 => "Not allowed",
        404 => "Not found",
        409 => "Conflict",
        400..=499 => "That did not work",
        _ => "Something went wrong",
    };
    let page = ErrorInLayout {
        layout: Layout::new(state, p, title, ""),
        status: status.as_u16(),
        title,
        message,
    };
    let body = page.render().unwrap_or_else(|_| message.to_string());
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
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
