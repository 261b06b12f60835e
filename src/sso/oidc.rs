//! Signing in through an OpenID Connect provider: the authorization-code flow with state, nonce
//! and PKCE (the `openidconnect` crate), the ID token's signature, issuer, audience and expiry
//! checked (5 minutes of clock skew allowed, no more), allowed e-mail domains, and a group
//! claim mapped to a role.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};

use super::{Grant, Provider};

/// How long a started sign-in waits for its callback.
const PENDING_FOR: Duration = Duration::from_secs(600);
/// Sign-ins waiting at once (more: the oldest are dropped).
const MAX_PENDING: usize = 10_000;
/// Clock skew allowed on the ID token's expiry.
const LEEWAY: chrono::Duration = chrono::Duration::minutes(5);
/// Largest group claim read.
const MAX_GROUPS: usize = 500;

/// A sign-in between the redirect to the provider and its callback.
pub struct Pending {
    pub provider: String,
    nonce: String,
    verifier: String,
    pub next: String,
    redirect_uri: String,
    started: Instant,
}

/// Started sign-ins by their `state`; each is taken once, so a replayed callback finds nothing.
#[derive(Default)]
pub struct PendingLogins(Mutex<HashMap<String, Pending>>);

impl PendingLogins {
    fn put(&self, state: String, p: Pending) {
        if let Ok(mut m) = self.0.lock() {
            m.retain(|_, v| v.started.elapsed() < PENDING_FOR);
            if m.len() >= MAX_PENDING {
                if let Some(oldest) = m
                    .iter()
                    .min_by_key(|(_, v)| v.started)
                    .map(|(k, _)| k.clone())
                {
                    m.remove(&oldest);
                }
            }
            m.insert(state, p);
        }
    }

    /// The sign-in `state` started, once.
    pub fn take(&self, state: &str) -> Option<Pending> {
        let p = self.0.lock().ok()?.remove(state)?;
        (p.started.elapsed() < PENDING_FOR).then_some(p)
    }
}

/// Who the provider says signed in.
#[derive(Debug)]
pub struct Identity {
    pub email: String,
    pub grant: Grant,
}

fn http(outbound: &crate::outbound::Outbound) -> Result<reqwest::Client, String> {
    // No redirects: a provider's endpoints are where its metadata says.
    outbound
        .http_client()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())
}

async fn discover(
    p: &Provider,
    outbound: &crate::outbound::Outbound,
) -> Result<CoreProviderMetadata, String> {
    let issuer = IssuerUrl::new(p.oidc.issuer.clone()).map_err(|e| format!("issuer: {e}"))?;
    CoreProviderMetadata::discover_async(issuer, &http(outbound)?)
        .await
        .map_err(|e| format!("discovery at {} failed: {e}", p.oidc.issuer))
}

/// Fetches the provider's discovery document now: what "try it now" reports.
pub async fn test(p: &Provider, outbound: &crate::outbound::Outbound) -> Result<String, String> {
    let m = discover(p, outbound).await?;
    Ok(format!(
        "discovered {}: authorization at {}, {} signing keys",
        m.issuer().as_str(),
        m.authorization_endpoint().as_str(),
        m.jwks().keys().len()
    ))
}

/// Starts a sign-in: the provider's authorization URL to send the browser to.
pub async fn begin(
    p: &Provider,
    outbound: &crate::outbound::Outbound,
    secret: &str,
    redirect_uri: &str,
    next: &str,
    pending: &PendingLogins,
) -> Result<String, String> {
    let m = discover(p, outbound).await?;
    let client = CoreClient::from_provider_metadata(
        m,
        ClientId::new(p.oidc.client_id.clone()),
        (!secret.is_empty()).then(|| ClientSecret::new(secret.to_string())),
    )
    .set_redirect_uri(RedirectUrl::new(redirect_uri.to_string()).map_err(|e| e.to_string())?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = client.authorize_url(
        CoreAuthenticationFlow::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for s in p.oidc.scopes.iter().filter(|s| *s != "openid") {
        req = req.add_scope(Scope::new(s.clone()));
    }
    let (url, state, nonce) = req.set_pkce_challenge(challenge).url();
    pending.put(
        state.secret().clone(),
        Pending {
            provider: p.name.clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            next: next.to_string(),
            redirect_uri: redirect_uri.to_string(),
            started: Instant::now(),
        },
    );
    Ok(url.to_string())
}

/// Finishes a sign-in: exchanges `code`, verifies the ID token, reads the email and groups.
pub async fn finish(
    p: &Provider,
    outbound: &crate::outbound::Outbound,
    secret: &str,
    pending: Pending,
    code: &str,
) -> Result<Result<Identity, String>, String> {
    let m = discover(p, outbound).await?;
    let userinfo = m.userinfo_endpoint().map(|u| u.url().clone());
    let client = CoreClient::from_provider_metadata(
        m,
        ClientId::new(p.oidc.client_id.clone()),
        (!secret.is_empty()).then(|| ClientSecret::new(secret.to_string())),
    )
    .set_redirect_uri(RedirectUrl::new(pending.redirect_uri.clone()).map_err(|e| e.to_string())?);
    let token = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .map_err(|e| e.to_string())?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
        .request_async(&http(outbound)?)
        .await;
    let token = match token {
        Ok(t) => t,
        Err(e) => return Ok(Err(format!("the provider refused the code: {e}"))),
    };
    let Some(id_token) = token.id_token() else {
        return Ok(Err("the provider sent no ID token".into()));
    };
    let verifier = client
        .id_token_verifier()
        .set_time_fn(|| chrono::Utc::now() - LEEWAY);
    let claims = match id_token.claims(&verifier, &Nonce::new(pending.nonce.clone())) {
        Ok(c) => c,
        Err(e) => return Ok(Err(format!("the ID token does not hold: {e}"))),
    };
    // The verified token's own claims, for the group claim and Azure's fallbacks.
    let raw: serde_json::Value = id_token
        .to_string()
        .split('.')
        .nth(1)
        .and_then(|b| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(b)
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let email = claims.email().map(|e| e.as_str().to_string()).or_else(|| {
        ["preferred_username", "upn"].iter().find_map(|k| {
            raw[k]
                .as_str()
                .filter(|v| v.contains('@'))
                .map(String::from)
        })
    });
    let Some(email) = email.map(|e| e.to_lowercase()) else {
        return Ok(Err("the ID token carries no email".into()));
    };
    let domain = email.rsplit('@').next().unwrap_or_default();
    if !p.oidc.allowed_domains.is_empty()
        && !p
            .oidc
            .allowed_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    {
        return Ok(Err(format!("{email}: the domain {domain} is not allowed")));
    }
    // Providers that keep groups out of the ID token give them at the userinfo endpoint, for
    // the same subject only.
    let mut source = raw.clone();
    if !p.oidc.group_claim.is_empty() && raw.get(&p.oidc.group_claim).is_none() {
        if let Some(url) = userinfo {
            let info: Option<serde_json::Value> = async {
                let r = http(outbound)
                    .ok()?
                    .get(url)
                    .bearer_auth(token.access_token().secret())
                    .send()
                    .await
                    .ok()?;
                if !r.status().is_success() {
                    return None;
                }
                let bytes = r.bytes().await.ok()?;
                (bytes.len() <= 1024 * 1024)
                    .then(|| serde_json::from_slice(&bytes).ok())
                    .flatten()
            }
            .await;
            if let Some(info) = info.filter(|i| i["sub"] == raw["sub"]) {
                source = info;
            }
        }
    }
    let groups: Vec<String> = if p.oidc.group_claim.is_empty() {
        Vec::new()
    } else {
        match &source[&p.oidc.group_claim] {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|g| g.as_str().map(String::from))
                .take(MAX_GROUPS)
                .collect(),
            serde_json::Value::String(s) => vec![s.clone()],
            _ => Vec::new(),
        }
    };
    let grant = groups
        .iter()
        .filter_map(|g| p.oidc.group_roles.get(g).copied())
        .max()
        .filter(|g| *g != Grant::None)
        .unwrap_or(p.default_role);
    if grant == Grant::None {
        return Ok(Err(format!(
            "{email}: no group maps to a role and the default role is none"
        )));
    }
    Ok(Ok(Identity { email, grant }))
}
