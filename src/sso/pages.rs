//! The "Sign-on methods" page (super-admins): the providers, a form to add or change an LDAP
//! directory, trying one now, enabling, disabling and deleting.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{Grant, Kind, Provider, ProviderInput, SsoError};
use crate::http::layout::{field_of, redirect_with_flash, render_status, Confirm, Layout};
use crate::http::{Actor, ApiError, AppState, Auth, Perm, Principal, Routes};

pub fn routes(r: &mut Routes) {
    r.page("/sso", Perm::SuperAdmin, page);
    r.form("/sso", Perm::SuperAdmin, save_form);
    r.page("/sso/{id}", Perm::SuperAdmin, edit_page);
    r.form("/sso/{id}", Perm::SuperAdmin, save_form);
    r.form("/sso/{id}/test", Perm::SuperAdmin, test_form);
    r.form("/sso/{id}/delete", Perm::SuperAdmin, delete_form);
    r.nav(88, "Sign-on methods", "/sso", Perm::SuperAdmin);
}

/// The LDAP fields of the form, in order: (field, label).
const LDAP_FIELDS: [(&str, &str); 14] = [
    ("url", "URL (ldap://host:389 or ldaps://host:636)"),
    ("bind_dn", "Admin (service account) DN"),
    ("user_search_base", "User search base"),
    ("username_attribute", "Username attribute"),
    ("group_search_base", "Group search base"),
    ("group_object_class", "Group class"),
    ("group_member_attribute", "Group member attribute"),
    (
        "group_member_user_attribute",
        "Group member user attribute (or dn)",
    ),
    ("group_auth_level_attribute", "Group auth level attribute"),
    ("group_value_read_only", "Its value for read-only"),
    ("group_value_admin", "Its value for admin"),
    ("group_value_super_admin", "Its value for super-admin"),
    ("connect_timeout_seconds", "Connect timeout (seconds)"),
    ("timeout_seconds", "Operation timeout (seconds)"),
];

#[derive(Template)]
#[template(path = "sso/providers.html")]
struct ProvidersPage {
    layout: Layout,
    providers: Vec<Provider>,
    /// The provider being edited (`None`: adding one).
    editing: Option<Provider>,
    /// The form's values as shown (typed, or the provider's).
    values: BTreeMap<String, String>,
    starttls: bool,
    enabled: bool,
    default_role: String,
    error: String,
    error_field: String,
    /// The result of "try it now".
    tried: Option<(bool, String)>,
    /// The kind of the form being shown after an error (`ldap` or `oidc`).
    kind: String,
}

impl ProvidersPage {
    fn fields(&self) -> Vec<(&'static str, &'static str, String)> {
        LDAP_FIELDS
            .iter()
            .map(|(f, l)| (*f, *l, self.values.get(*f).cloned().unwrap_or_default()))
            .collect()
    }
    fn invalid(&self, field: &str) -> bool {
        self.error_field == field
    }
    fn value(&self, field: &str) -> String {
        self.values.get(field).cloned().unwrap_or_default()
    }
    fn target(&self, p: &Provider) -> String {
        match p.kind {
            Kind::Ldap => p.ldap.url.clone(),
            Kind::Oidc => p.oidc.issuer.clone(),
        }
    }
}

fn values_of(p: &Provider) -> BTreeMap<String, String> {
    let mut v: BTreeMap<String, String> = serde_json::to_value(&p.ldap)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            serde_json::Value::Number(n) => Some((k, n.to_string())),
            _ => None,
        })
        .collect();
    v.remove("sealed_bind_password");
    v.insert("name".into(), p.name.clone());
    v.insert("ca_pem".into(), p.ldap.ca_pem.clone());
    let o = &p.oidc;
    v.insert("issuer".into(), o.issuer.clone());
    v.insert("client_id".into(), o.client_id.clone());
    v.insert("scopes".into(), o.scopes.join(" "));
    v.insert("allowed_domains".into(), o.allowed_domains.join(", "));
    v.insert("group_claim".into(), o.group_claim.clone());
    v.insert(
        "group_roles".into(),
        o.group_roles
            .iter()
            .map(|(g, r)| format!("{g} = {}", grant_name(*r)))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    v
}

fn grant_name(g: Grant) -> String {
    serde_json::to_value(g)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

async fn draw(
    state: &AppState,
    p: &Principal,
    editing: Option<Provider>,
    typed: Option<(BTreeMap<String, String>, bool, bool, String)>,
    error: String,
    tried: Option<(bool, String)>,
) -> Result<HttpResponse, ApiError> {
    let providers = state.with_store(super::list).await?;
    let (values, starttls, enabled, default_role) = match (typed, &editing) {
        (Some(t), _) => t,
        (None, Some(e)) => (
            values_of(e),
            e.ldap.starttls,
            e.enabled,
            grant_name(e.default_role),
        ),
        (None, None) => {
            let defaults = super::create_defaults();
            let mut v = values_of(&defaults);
            v.insert("name".into(), String::new());
            (v, false, true, "none".into())
        }
    };
    let kind = values
        .get("kind")
        .cloned()
        .unwrap_or_else(|| match &editing {
            Some(e) if e.kind == Kind::Oidc => "oidc".into(),
            _ => "ldap".into(),
        });
    let fields: Vec<&str> = LDAP_FIELDS
        .iter()
        .map(|(f, _)| *f)
        .chain([
            "name",
            "ca_pem",
            "issuer",
            "client_id",
            "scopes",
            "allowed_domains",
            "group_claim",
            "group_roles",
        ])
        .collect();
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    render_status(
        &ProvidersPage {
            layout: Layout::new(state, p, "Sign-on methods", "/sso"),
            providers,
            editing,
            values,
            starttls,
            enabled,
            default_role,
            error_field: field_of(&error, &fields),
            error,
            tried,
            kind,
        },
        status,
    )
}

async fn page(state: web::Data<AppState>, Auth(p): Auth) -> Result<HttpResponse, ApiError> {
    draw(&state, &p, None, None, String::new(), None).await
}

async fn edit_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let provider = state.with_store(move |s| super::get(s, id)).await?;
    draw(&state, &p, Some(provider), None, String::new(), None).await
}

/// The posted form: every LDAP field, `name`, `bind_password` (empty: unchanged), checkboxes.
struct Posted {
    values: BTreeMap<String, String>,
    bind_password: String,
    client_secret: String,
    starttls: bool,
    enabled: bool,
    default_role: String,
}

impl Posted {
    fn parse(body: &[u8]) -> Posted {
        let mut p = Posted {
            values: BTreeMap::new(),
            bind_password: String::new(),
            client_secret: String::new(),
            starttls: false,
            enabled: false,
            default_role: "none".into(),
        };
        for (k, v) in url::form_urlencoded::parse(body).into_owned() {
            match k.as_str() {
                "csrf" => {}
                "bind_password" => p.bind_password = v,
                "client_secret" => p.client_secret = v,
                "starttls" => p.starttls = true,
                "enabled" => p.enabled = true,
                "default_role" => p.default_role = v,
                _ if k.len() <= 64 => {
                    p.values.insert(k, v);
                }
                _ => {}
            }
        }
        p
    }

    fn input(&self, creating: bool) -> Result<ProviderInput, String> {
        if self.values.get("kind").map(String::as_str) == Some("oidc") {
            return self.oidc_input(creating);
        }
        let mut json = serde_json::Map::new();
        for (f, _) in LDAP_FIELDS.iter() {
            let v = self.values.get(*f).cloned().unwrap_or_default();
            let v = v.trim();
            let value = if f.ends_with("_seconds") {
                serde_json::Value::from(
                    v.parse::<u64>()
                        .map_err(|_| format!("{f}: '{v}' is not a whole number of seconds"))?,
                )
            } else {
                serde_json::Value::from(v)
            };
            json.insert((*f).into(), value);
        }
        json.insert(
            "ca_pem".into(),
            self.values
                .get("ca_pem")
                .cloned()
                .unwrap_or_default()
                .into(),
        );
        if creating {
            json.insert("type".into(), "ldap".into());
            json.insert(
                "name".into(),
                self.values.get("name").cloned().unwrap_or_default().into(),
            );
        }
        json.insert("starttls".into(), self.starttls.into());
        json.insert("enabled".into(), self.enabled.into());
        json.insert("default_role".into(), self.default_role.clone().into());
        if !self.bind_password.is_empty() {
            json.insert("bind_password".into(), self.bind_password.clone().into());
        }
        serde_json::from_value(serde_json::Value::Object(json)).map_err(|e| e.to_string())
    }

    /// The OpenID Connect form: lists as text (scopes by spaces, domains by commas, one
    /// `GROUP = ROLE` per line).
    fn oidc_input(&self, creating: bool) -> Result<ProviderInput, String> {
        let get = |k: &str| self.values.get(k).cloned().unwrap_or_default();
        let mut roles = serde_json::Map::new();
        for (n, line) in get("group_roles").lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let Some((group, role)) = line.split_once('=') else {
                return Err(format!("group_roles: line {}: write GROUP = ROLE", n + 1));
            };
            roles.insert(group.trim().to_string(), role.trim().into());
        }
        let mut json = serde_json::json!({
            "issuer": get("issuer").trim(),
            "client_id": get("client_id").trim(),
            "scopes": get("scopes").split_whitespace().collect::<Vec<_>>(),
            "allowed_domains": get("allowed_domains")
                .split([',', ' '])
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .collect::<Vec<_>>(),
            "group_claim": get("group_claim").trim(),
            "group_roles": roles,
            "enabled": self.enabled,
            "default_role": self.default_role,
        });
        if creating {
            json["type"] = "oidc".into();
            json["name"] = get("name").into();
        }
        if !self.client_secret.is_empty() {
            json["client_secret"] = self.client_secret.clone().into();
        }
        serde_json::from_value(json).map_err(|e| format!("group_roles: {e}"))
    }

    fn typed(&self) -> (BTreeMap<String, String>, bool, bool, String) {
        (
            self.values.clone(),
            self.starttls,
            self.enabled,
            self.default_role.clone(),
        )
    }
}

async fn save(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    id: Option<u64>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let posted = Posted::parse(&body);
    let (sealer, actor) = (state.sealer()?, Actor::from_request(&p, &req));
    let input = posted.input(id.is_none());
    let result = state
        .store
        .run(move |s| {
            Ok::<_, SsoError>(match input {
                Err(m) => Err(SsoError::Invalid(m)),
                Ok(i) => match id {
                    Some(id) => super::update(s, &sealer, &actor, id, i),
                    None => super::create(s, &sealer, &actor, i),
                },
            })
        })
        .await?;
    match result {
        Ok(v) => Ok(redirect_with_flash(
            &state,
            &p,
            "/sso",
            &format!("Saved sign-on method {}", v.name),
        )),
        Err(e @ (SsoError::Invalid(_) | SsoError::Duplicate(_))) => {
            let editing = match id {
                Some(id) => Some(state.with_store(move |s| super::get(s, id)).await?),
                None => None,
            };
            draw(
                &state,
                &p,
                editing,
                Some(posted.typed()),
                e.to_string(),
                None,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// Adds (`/sso`) or changes (`/sso/{id}`) a provider from the form.
async fn save_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: Option<web::Path<u64>>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    save(state, req, p, id.map(|i| i.into_inner()), body).await
}

async fn test_form(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let (provider, outcome) = super::api::try_provider(&state, id.into_inner()).await?;
    let tried = match outcome {
        Ok(m) => (true, m),
        Err(m) => (false, m),
    };
    draw(&state, &p, Some(provider), None, String::new(), Some(tried)).await
}

async fn delete_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    confirm: web::Form<Confirm>,
) -> Result<HttpResponse, ApiError> {
    confirm.require("Delete the sign-on method")?;
    let (actor, id) = (Actor::from_request(&p, &req), id.into_inner());
    state
        .with_store(move |s| super::delete(s, &actor, id))
        .await?;
    Ok(redirect_with_flash(
        &state,
        &p,
        "/sso",
        "Deleted the sign-on method; its users' sessions ended",
    ))
}
