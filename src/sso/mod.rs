//! Single sign-on: the providers operators sign in with (LDAP directories and OpenID Connect
//! issuers), their settings and sealed secrets, and sign-in through them. An account proven by a
//! provider is created at its first sign-in and its role re-synced at every one (see
//! `auth::sso_account`); local accounts stay for break-glass super-admins.

pub mod api;
pub mod flow;
pub mod ldap;
pub mod oidc;
pub mod pages;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::{self, ActorEvent};
use crate::http::{Actor, ApiError, Role};
use crate::secrets::Sealer;
use crate::store::{Store, StoreError, Table};

const PROVIDERS: Table<u64, Provider> = Table::new("sso_providers");

/// Errors of the sign-on domain.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("a provider named {0} exists")]
    Duplicate(String),
    #[error("{0}")]
    Secret(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SsoError> for ApiError {
    fn from(e: SsoError) -> ApiError {
        match e {
            SsoError::Invalid(m) => ApiError::bad_request(m),
            SsoError::NotFound(_) => ApiError::not_found(e.to_string()),
            SsoError::Duplicate(_) => ApiError::conflict(e.to_string()),
            SsoError::Secret(m) => ApiError::internal(m),
            SsoError::Store(s) => s.into(),
        }
    }
}

/// What kind of provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Ldap,
    Oidc,
}

/// The role a provider grants, or none (sign-in refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Grant {
    #[default]
    None,
    ReadOnly,
    Admin,
    SuperAdmin,
}

impl Grant {
    pub fn role(self) -> Option<Role> {
        match self {
            Grant::None => None,
            Grant::ReadOnly => Some(Role::ReadOnly),
            Grant::Admin => Some(Role::Admin),
            Grant::SuperAdmin => Some(Role::SuperAdmin),
        }
    }
}

/// A sign-on provider as stored. Fields of the other kind stay empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provider {
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Unique; how users and URLs name it (`corp-ldap`).
    pub name: String,
    pub enabled: bool,
    pub default_role: Grant,
    #[serde(default)]
    pub ldap: LdapSettings,
    #[serde(default)]
    pub oidc: OidcSettings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How to reach and read a directory (the m9sweeper settings, by their names here).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LdapSettings {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// Upgrade a plain `ldap://` connection with StartTLS.
    pub starttls: bool,
    /// Extra CA certificates (PEM) the directory's certificate may chain to.
    pub ca_pem: String,
    pub bind_dn: String,
    /// The service account's password, sealed; never returned.
    pub sealed_bind_password: Option<String>,
    pub user_search_base: String,
    pub username_attribute: String,
    pub group_search_base: String,
    pub group_object_class: String,
    pub group_member_attribute: String,
    /// The user's attribute whose value groups list as members, or `dn` for the user's DN.
    pub group_member_user_attribute: String,
    pub group_auth_level_attribute: String,
    pub group_value_read_only: String,
    pub group_value_admin: String,
    pub group_value_super_admin: String,
    /// Read the user's groups from this attribute of the user's entry (`memberOf`, where the
    /// directory keeps it) instead of searching under the group search base.
    pub member_of_attribute: String,
    /// Active Directory: count groups the user belongs to through other groups (the in-chain
    /// matching rule; with `group_member_user_attribute = dn`).
    pub nested_groups: bool,
    pub connect_timeout_seconds: u64,
    pub timeout_seconds: u64,
}

/// How to reach an OpenID Connect issuer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    /// Sealed; absent for a public client (PKCE only).
    pub sealed_client_secret: Option<String>,
    pub scopes: Vec<String>,
    pub allowed_domains: Vec<String>,
    pub group_claim: String,
    pub group_roles: BTreeMap<String, Grant>,
}

/// A provider as the API shows it: every setting, no secret, only whether one is set.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderView {
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub name: String,
    pub enabled: bool,
    pub default_role: Grant,
    #[serde(flatten)]
    pub settings: serde_json::Value,
    pub has_bind_password: bool,
    pub has_client_secret: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Provider> for ProviderView {
    fn from(p: &Provider) -> ProviderView {
        let settings = match p.kind {
            Kind::Ldap => {
                let mut v = serde_json::to_value(&p.ldap).unwrap_or_default();
                if let Some(m) = v.as_object_mut() {
                    m.remove("sealed_bind_password");
                }
                v
            }
            Kind::Oidc => {
                let mut v = serde_json::to_value(&p.oidc).unwrap_or_default();
                if let Some(m) = v.as_object_mut() {
                    m.remove("sealed_client_secret");
                }
                v
            }
        };
        ProviderView {
            id: p.id,
            kind: p.kind,
            name: p.name.clone(),
            enabled: p.enabled,
            default_role: p.default_role,
            settings,
            has_bind_password: p.ldap.sealed_bind_password.is_some(),
            has_client_secret: p.oidc.sealed_client_secret.is_some(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// What the API takes to create or change a provider: `type` and `name` to create, any field to
/// change. Secrets (`bind_password`, `client_secret`) are write-only; an empty one removes it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderInput {
    #[serde(rename = "type")]
    pub kind: Option<Kind>,
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub default_role: Option<Grant>,
    pub url: Option<String>,
    pub starttls: Option<bool>,
    pub ca_pem: Option<String>,
    pub bind_dn: Option<String>,
    pub bind_password: Option<String>,
    pub user_search_base: Option<String>,
    pub username_attribute: Option<String>,
    pub group_search_base: Option<String>,
    pub group_object_class: Option<String>,
    pub group_member_attribute: Option<String>,
    pub group_member_user_attribute: Option<String>,
    pub group_auth_level_attribute: Option<String>,
    pub group_value_read_only: Option<String>,
    pub group_value_admin: Option<String>,
    pub group_value_super_admin: Option<String>,
    pub member_of_attribute: Option<String>,
    pub nested_groups: Option<bool>,
    pub connect_timeout_seconds: Option<u64>,
    pub timeout_seconds: Option<u64>,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub allowed_domains: Option<Vec<String>>,
    pub group_claim: Option<String>,
    pub group_roles: Option<BTreeMap<String, Grant>>,
    /// `google` or `azure`: fills in the issuer (Azure AD's from `tenant`) and the scopes.
    pub preset: Option<String>,
    /// The Azure AD tenant (id or domain) for the `azure` preset.
    pub tenant: Option<String>,
}

impl ProviderInput {
    /// Fills in what a preset implies, unless given.
    fn apply_preset(&mut self) -> Result<(), SsoError> {
        let Some(preset) = self.preset.clone() else {
            return Ok(());
        };
        let issuer = match preset.as_str() {
            "google" => "https://accounts.google.com".to_string(),
            "azure" => {
                let tenant = self.tenant.clone().unwrap_or_default();
                let ok = !tenant.is_empty()
                    && tenant.len() <= 100
                    && tenant
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
                if !ok {
                    return Err(SsoError::Invalid(
                        "tenant: the Azure AD tenant id or domain, for the azure preset".into(),
                    ));
                }
                format!("https://login.microsoftonline.com/{tenant}/v2.0")
            }
            other => {
                return Err(SsoError::Invalid(format!(
                    "preset: '{}' is not google or azure",
                    other.chars().take(40).collect::<String>()
                )))
            }
        };
        self.kind.get_or_insert(Kind::Oidc);
        self.issuer.get_or_insert(issuer);
        self.scopes
            .get_or_insert_with(|| vec!["openid".into(), "email".into(), "profile".into()]);
        Ok(())
    }
}

/// The context a provider's secrets are sealed to (a sealed value moved to another record
/// does not open).
fn context(id: u64, what: &str) -> String {
    format!("sso:{id}:{what}")
}

fn seal(sealer: &Sealer, id: u64, what: &str, secret: &str) -> Result<Option<String>, SsoError> {
    if secret.is_empty() {
        return Ok(None);
    }
    sealer
        .seal(&context(id, what), secret)
        .map(Some)
        .map_err(|e| SsoError::Secret(format!("sealing the {what}: {e}")))
}

/// The service account's password of an LDAP provider.
pub fn bind_password(sealer: &Sealer, p: &Provider) -> Result<String, SsoError> {
    open(sealer, p.id, "bind_password", &p.ldap.sealed_bind_password)
}

/// The client secret of an OIDC provider (empty for a public client).
pub fn client_secret(sealer: &Sealer, p: &Provider) -> Result<String, SsoError> {
    open(sealer, p.id, "client_secret", &p.oidc.sealed_client_secret)
}

fn open(sealer: &Sealer, id: u64, what: &str, sealed: &Option<String>) -> Result<String, SsoError> {
    match sealed {
        None => Ok(String::new()),
        Some(s) => sealer
            .open_sealed(&context(id, what), s)
            .map_err(|e| SsoError::Secret(format!("opening the {what}: {e}"))),
    }
}

/// An attribute or object-class name as LDAP writes them (they go into filters unescaped).
fn valid_attribute(field: &str, v: &str) -> Result<(), SsoError> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';');
    if ok {
        Ok(())
    } else {
        Err(SsoError::Invalid(format!(
            "{field}: '{}' is not an attribute name (letters, digits, '-')",
            v.chars().take(64).collect::<String>()
        )))
    }
}

fn validate(p: &Provider) -> Result<(), SsoError> {
    let bad = |m: String| Err(SsoError::Invalid(m));
    let name_ok = !p.name.is_empty()
        && p.name.len() <= 64
        && p.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return bad("name: 1 to 64 letters, digits, '-' or '_' (it appears in URLs)".into());
    }
    match p.kind {
        Kind::Ldap => {
            let l = &p.ldap;
            let scheme_ok = l.url.starts_with("ldap://") || l.url.starts_with("ldaps://");
            if !scheme_ok || url::Url::parse(&l.url).is_err() {
                return bad("url: ldap://host[:port] or ldaps://host[:port]".into());
            }
            if l.starttls && l.url.starts_with("ldaps://") {
                return bad("starttls: only for ldap:// URLs (ldaps:// is TLS already)".into());
            }
            for (field, v) in [
                ("bind_dn", &l.bind_dn),
                ("user_search_base", &l.user_search_base),
                ("group_search_base", &l.group_search_base),
            ] {
                if v.trim().is_empty() || v.len() > 1024 {
                    return bad(format!("{field}: required (a DN)"));
                }
            }
            valid_attribute("username_attribute", &l.username_attribute)?;
            valid_attribute("group_object_class", &l.group_object_class)?;
            valid_attribute("group_member_attribute", &l.group_member_attribute)?;
            if l.group_member_user_attribute != "dn" {
                valid_attribute(
                    "group_member_user_attribute",
                    &l.group_member_user_attribute,
                )?;
            }
            valid_attribute("group_auth_level_attribute", &l.group_auth_level_attribute)?;
            if !l.member_of_attribute.is_empty() {
                valid_attribute("member_of_attribute", &l.member_of_attribute)?;
            }
            if l.nested_groups && l.group_member_user_attribute != "dn" {
                return bad(
                    "nested_groups: needs group_member_user_attribute = dn (groups list DNs)"
                        .into(),
                );
            }
            if !(1..=60).contains(&l.connect_timeout_seconds)
                || !(1..=60).contains(&l.timeout_seconds)
            {
                return bad("connect_timeout_seconds and timeout_seconds: 1 to 60".into());
            }
            if !l.ca_pem.is_empty() && !l.ca_pem.contains("-----BEGIN CERTIFICATE-----") {
                return bad("ca_pem: PEM certificates".into());
            }
        }
        Kind::Oidc => {
            let o = &p.oidc;
            let issuer_ok = url::Url::parse(&o.issuer)
                .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some());
            if !issuer_ok {
                return bad("issuer: the issuer's URL".into());
            }
            if o.client_id.trim().is_empty() || o.client_id.len() > 256 {
                return bad("client_id: required".into());
            }
            if o.scopes.len() > 20 || o.allowed_domains.len() > 100 || o.group_roles.len() > 200 {
                return bad(
                    "scopes (20), allowed_domains (100), group_roles (200): too many".into(),
                );
            }
        }
    }
    Ok(())
}

/// Applies `input` to `p` (secrets are sealed by the caller).
fn apply(p: &mut Provider, i: &ProviderInput) {
    macro_rules! set {
        ($($field:ident => $target:expr),* $(,)?) => {
            $(if let Some(v) = &i.$field { $target = v.clone(); })*
        };
    }
    set!(name => p.name, enabled => p.enabled, default_role => p.default_role);
    set!(
        url => p.ldap.url, starttls => p.ldap.starttls, ca_pem => p.ldap.ca_pem,
        bind_dn => p.ldap.bind_dn, user_search_base => p.ldap.user_search_base,
        username_attribute => p.ldap.username_attribute,
        group_search_base => p.ldap.group_search_base,
        group_object_class => p.ldap.group_object_class,
        group_member_attribute => p.ldap.group_member_attribute,
        group_member_user_attribute => p.ldap.group_member_user_attribute,
        group_auth_level_attribute => p.ldap.group_auth_level_attribute,
        group_value_read_only => p.ldap.group_value_read_only,
        group_value_admin => p.ldap.group_value_admin,
        group_value_super_admin => p.ldap.group_value_super_admin,
        member_of_attribute => p.ldap.member_of_attribute,
        nested_groups => p.ldap.nested_groups,
        connect_timeout_seconds => p.ldap.connect_timeout_seconds,
        timeout_seconds => p.ldap.timeout_seconds,
    );
    set!(
        issuer => p.oidc.issuer, client_id => p.oidc.client_id, scopes => p.oidc.scopes,
        allowed_domains => p.oidc.allowed_domains, group_claim => p.oidc.group_claim,
        group_roles => p.oidc.group_roles,
    );
}

/// A provider with the defaults a new one starts from (posixGroup-style directories).
pub fn create_defaults() -> Provider {
    let now = Utc::now();
    Provider {
        id: 0,
        kind: Kind::Ldap,
        name: String::new(),
        enabled: true,
        default_role: Grant::None,
        ldap: LdapSettings {
            username_attribute: "uid".into(),
            group_object_class: "posixGroup".into(),
            group_member_attribute: "memberUid".into(),
            group_member_user_attribute: "uid".into(),
            group_auth_level_attribute: "cn".into(),
            connect_timeout_seconds: 5,
            timeout_seconds: 10,
            ..LdapSettings::default()
        },
        oidc: OidcSettings {
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            ..OidcSettings::default()
        },
        created_at: now,
        updated_at: now,
    }
}

/// Creates a provider.
pub fn create(
    store: &Store,
    sealer: &Sealer,
    actor: &Actor,
    mut input: ProviderInput,
) -> Result<ProviderView, SsoError> {
    input.apply_preset()?;
    let kind = input
        .kind
        .ok_or_else(|| SsoError::Invalid("type: ldap or oidc".into()))?;
    let mut p = Provider {
        kind,
        ..create_defaults()
    };
    apply(&mut p, &input);
    validate(&p)?;
    store.write(|w| {
        if w.all(&PROVIDERS)?
            .iter()
            .any(|(_, o)| o.name.eq_ignore_ascii_case(&p.name))
        {
            return Err(SsoError::Duplicate(p.name.clone()));
        }
        p.id = w.next_id("sso_providers")?;
        if let Some(pw) = &input.bind_password {
            p.ldap.sealed_bind_password = seal(sealer, p.id, "bind_password", pw)?;
        }
        if let Some(s) = &input.client_secret {
            p.oidc.sealed_client_secret = seal(sealer, p.id, "client_secret", s)?;
        }
        w.put(&PROVIDERS, &p.id, &p)?;
        audit::record(
            w,
            actor
                .event("sso.create", format!("sso:{}", p.id))
                .detail(format!("type={:?} name={}", p.kind, p.name).to_lowercase()),
        )?;
        Ok(ProviderView::from(&p))
    })
}

/// Changes a provider. Disabling it ends the sessions of its users.
pub fn update(
    store: &Store,
    sealer: &Sealer,
    actor: &Actor,
    id: u64,
    input: ProviderInput,
) -> Result<ProviderView, SsoError> {
    if input.kind.is_some() {
        return Err(SsoError::Invalid(
            "type: cannot change; create another provider".into(),
        ));
    }
    store.write(|w| {
        let mut p = w
            .get(&PROVIDERS, &id)?
            .ok_or_else(|| SsoError::NotFound(format!("provider {id}")))?;
        let (old_name, was_enabled) = (p.name.clone(), p.enabled);
        apply(&mut p, &input);
        validate(&p)?;
        if p.name != old_name {
            return Err(SsoError::Invalid(
                "name: cannot change (its accounts carry it); create another provider".into(),
            ));
        }
        if let Some(pw) = &input.bind_password {
            p.ldap.sealed_bind_password = seal(sealer, p.id, "bind_password", pw)?;
        }
        if let Some(s) = &input.client_secret {
            p.oidc.sealed_client_secret = seal(sealer, p.id, "client_secret", s)?;
        }
        p.updated_at = Utc::now();
        w.put(&PROVIDERS, &id, &p)?;
        let mut detail = "settings".to_string();
        if was_enabled && !p.enabled {
            let ended = crate::auth::end_provider_sessions(w, &p.name)?;
            detail = format!("disabled; {ended} sessions ended");
        }
        audit::record(
            w,
            actor
                .event("sso.update", format!("sso:{id}"))
                .detail(detail),
        )?;
        Ok(ProviderView::from(&p))
    })
}

/// Deletes a provider and ends its users' sessions (their accounts stay, unable to sign in).
pub fn delete(store: &Store, actor: &Actor, id: u64) -> Result<(), SsoError> {
    store.write(|w| {
        let p = w
            .get(&PROVIDERS, &id)?
            .ok_or_else(|| SsoError::NotFound(format!("provider {id}")))?;
        w.delete(&PROVIDERS, &id)?;
        let ended = crate::auth::end_provider_sessions(w, &p.name)?;
        audit::record(
            w,
            actor
                .event("sso.delete", format!("sso:{id}"))
                .detail(format!("name={} sessions ended={ended}", p.name)),
        )?;
        Ok(())
    })
}

/// Every provider.
pub fn list(store: &Store) -> Result<Vec<Provider>, StoreError> {
    Ok(store
        .read(|r| r.all(&PROVIDERS))?
        .into_iter()
        .map(|(_, p)| p)
        .collect())
}

/// One provider.
pub fn get(store: &Store, id: u64) -> Result<Provider, SsoError> {
    store
        .read(|r| r.get(&PROVIDERS, &id))?
        .ok_or_else(|| SsoError::NotFound(format!("provider {id}")))
}

/// An enabled provider by name.
pub fn enabled_by_name(store: &Store, name: &str) -> Result<Provider, SsoError> {
    list(store)?
        .into_iter()
        .find(|p| p.enabled && p.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            SsoError::NotFound(format!(
                "enabled sign-on provider '{}'",
                name.chars().take(64).collect::<String>()
            ))
        })
}

/// Creates or updates (by name) the providers the configuration file declares; returns their
/// names. A table that is not a valid provider stops the start, saying which and why.
pub fn apply_config(
    store: &Store,
    sealer: &Sealer,
    tables: &[toml::Table],
) -> Result<Vec<String>, SsoError> {
    let actor = Actor {
        name: "config".into(),
        role: None,
        user_id: None,
        ip: String::new(),
    };
    let mut names = Vec::new();
    for (n, table) in tables.iter().enumerate() {
        let bad = |e: String| SsoError::Invalid(format!("[[sso.providers]] #{}: {e}", n + 1));
        let json = serde_json::to_value(table).map_err(|e| bad(e.to_string()))?;
        let mut input: ProviderInput =
            serde_json::from_value(json).map_err(|e| bad(e.to_string()))?;
        let name = input
            .name
            .clone()
            .ok_or_else(|| bad("name: required".into()))?;
        let existing = list(store)?
            .into_iter()
            .find(|p| p.name.eq_ignore_ascii_case(&name));
        match existing {
            None => {
                create(store, sealer, &actor, input).map_err(|e| bad(e.to_string()))?;
            }
            Some(p) => {
                if input.kind.is_some_and(|k| k != p.kind) {
                    return Err(bad(format!("type: {name} exists with another type")));
                }
                input.kind = None;
                update(store, sealer, &actor, p.id, input).map_err(|e| bad(e.to_string()))?;
            }
        }
        names.push(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_fill_in_the_issuer() {
        let mut google = ProviderInput {
            preset: Some("google".into()),
            ..ProviderInput::default()
        };
        google.apply_preset().unwrap();
        assert_eq!(google.kind, Some(Kind::Oidc));
        assert_eq!(
            google.issuer.as_deref(),
            Some("https://accounts.google.com")
        );
        let mut azure = ProviderInput {
            preset: Some("azure".into()),
            tenant: Some("contoso.onmicrosoft.com".into()),
            issuer: None,
            ..ProviderInput::default()
        };
        azure.apply_preset().unwrap();
        assert_eq!(
            azure.issuer.as_deref(),
            Some("https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0")
        );
        for bad in [("azure", None), ("azure", Some("a/b")), ("okta", None)] {
            let mut i = ProviderInput {
                preset: Some(bad.0.into()),
                tenant: bad.1.map(String::from),
                ..ProviderInput::default()
            };
            assert!(i.apply_preset().is_err(), "{bad:?}");
        }
    }
}
