//! Who may do what: roles of users, scopes of API keys, and the permissions routes require.
//!
//! A route declares one [`Perm`] when it is registered (see [`super::routes`]); a request is let
//! through only if its [`Principal`] holds that permission. A key's permissions are its scopes'
//! permissions intersected with its owner's role, so a key can never do more than its owner.

use serde::{Deserialize, Serialize};

/// Role of a local (or, later, SSO) user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything, including the audit log, backups and other super-admins.
    SuperAdmin,
    /// Manages clusters, policies, users (not super-admins) and uploads.
    Admin,
    /// Sees everything that is not a secret, changes nothing but its own API keys.
    ReadOnly,
}

impl Role {
    /// All roles, most powerful first.
    pub const ALL: [Role; 3] = [Role::SuperAdmin, Role::Admin, Role::ReadOnly];

    /// The wire name, e.g. `read-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SuperAdmin => "super-admin",
            Role::Admin => "admin",
            Role::ReadOnly => "read-only",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this role holds `perm`.
    pub fn grants(self, perm: Perm) -> bool {
        use Perm::*;
        match perm {
            Public | Authenticated | Read | OwnKeys | Metrics | Request => true,
            Write | ManageUsers | UploadScan | UploadKubeBench | UploadKubeHunter | UploadFalco
            | UploadSensor => {
                matches!(self, Role::SuperAdmin | Role::Admin)
            }
            SuperAdmin => self == Role::SuperAdmin,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Scope of an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Read the API.
    Read,
    /// Everything the owner's role allows.
    Admin,
    /// Upload scan results (trawler, `bulwark scan --upload`).
    Scanner,
    /// Upload kube-bench reports.
    KubeBench,
    /// Upload kube-hunter reports.
    KubeHunter,
    /// Send Falco events.
    Falco,
    /// Send data-in-motion sensor events.
    Sensor,
    /// Scrape `/metrics`.
    Metrics,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 8] = [
        Scope::Read,
        Scope::Admin,
        Scope::Scanner,
        Scope::KubeBench,
        Scope::KubeHunter,
        Scope::Falco,
        Scope::Sensor,
        Scope::Metrics,
    ];

    /// The wire name, e.g. `kube-bench`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Admin => "admin",
            Scope::Scanner => "scanner",
            Scope::KubeBench => "kube-bench",
            Scope::KubeHunter => "kube-hunter",
            Scope::Falco => "falco",
            Scope::Sensor => "sensor",
            Scope::Metrics => "metrics",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether a key with this scope (before intersecting with the owner's role) holds `perm`.
    pub fn grants(self, perm: Perm) -> bool {
        use Perm::*;
        match self {
            Scope::Admin => !matches!(
                perm,
                UploadScan | UploadKubeBench | UploadKubeHunter | UploadFalco | UploadSensor
            ),
            Scope::Read => matches!(perm, Public | Authenticated | Read),
            Scope::Scanner => matches!(perm, Public | Authenticated | UploadScan),
            Scope::KubeBench => matches!(perm, Public | Authenticated | UploadKubeBench),
            Scope::KubeHunter => matches!(perm, Public | Authenticated | UploadKubeHunter),
            Scope::Falco => matches!(perm, Public | Authenticated | UploadFalco),
            Scope::Sensor => matches!(perm, Public | Authenticated | UploadSensor),
            Scope::Metrics => matches!(perm, Public | Authenticated | Metrics),
        }
    }

    /// The permission that is this scope's reason to exist.
    pub fn purpose(self) -> Perm {
        match self {
            Scope::Read => Perm::Read,
            Scope::Admin => Perm::Write,
            Scope::Scanner => Perm::UploadScan,
            Scope::KubeBench => Perm::UploadKubeBench,
            Scope::KubeHunter => Perm::UploadKubeHunter,
            Scope::Falco => Perm::UploadFalco,
            Scope::Sensor => Perm::UploadSensor,
            Scope::Metrics => Perm::Metrics,
        }
    }

    /// Whether a user of `role` may create a key with this scope: only if the role holds the
    /// scope's purpose, so a read-only user cannot mint an `admin` key.
    pub fn allowed_for(self, role: Role) -> bool {
        role.grants(self.purpose())
    }
}

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Perm {
    /// Nothing: health checks, the login page.
    Public,
    /// Any valid session or key.
    Authenticated,
    /// Read inventory, findings and settings that are not secret.
    Read,
    /// Change clusters, policies and other configuration.
    Write,
    /// Create and change users.
    ManageUsers,
    /// Ask for things an admin approves (exceptions in review) and comment on them.
    Request,
    /// Create, list and revoke one's own API keys.
    OwnKeys,
    /// Audit log, backups, anything that concerns the whole appliance.
    SuperAdmin,
    /// `/metrics` when it is not public.
    Metrics,
    /// Scan result uploads.
    UploadScan,
    /// kube-bench uploads.
    UploadKubeBench,
    /// kube-hunter uploads.
    UploadKubeHunter,
    /// Falco events.
    UploadFalco,
    /// DIM sensor events.
    UploadSensor,
}

impl Perm {
    /// Every permission.
    pub const ALL: [Perm; 14] = [
        Perm::Public,
        Perm::Request,
        Perm::Authenticated,
        Perm::Read,
        Perm::Write,
        Perm::ManageUsers,
        Perm::OwnKeys,
        Perm::SuperAdmin,
        Perm::Metrics,
        Perm::UploadScan,
        Perm::UploadKubeBench,
        Perm::UploadKubeHunter,
        Perm::UploadFalco,
        Perm::UploadSensor,
    ];
}

/// How a principal proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A browser or API session; `csrf` is the token forms must carry.
    Session { id: u64, csrf: String },
    /// An API key and its scopes.
    ApiKey { id: u64, scopes: Vec<Scope> },
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user (key owner for API keys).
    pub user_id: u64,
    /// The user's email.
    pub email: String,
    /// The user's role.
    pub role: Role,
    /// How it authenticated.
    pub credential: Credential,
}

impl Principal {
    /// Whether this caller holds `perm`.
    pub fn can(&self, perm: Perm) -> bool {
        if !self.role.grants(perm) {
            return false;
        }
        match &self.credential {
            Credential::Session { .. } => true,
            Credential::ApiKey { scopes, .. } => scopes.iter().any(|s| s.grants(perm)),
        }
    }

    /// A short description for the audit log, e.g. `alice@example.com (key 4)`.
    pub fn actor(&self) -> String {
        match &self.credential {
            Credential::Session { .. } => self.email.clone(),
            Credential::ApiKey { id, .. } => format!("{} (key {id})", self.email),
        }
    }
}

/// Resolves credentials into principals; the `auth` domain implements it, `http` calls it.
/// `session` and `api_key` block (they read the store) and are called from the blocking pool;
/// the `cached_*` methods answer from memory, without I/O, when they can.
pub trait Authenticator: Send + Sync + 'static {
    /// The principal of a session cookie value, if the session is valid and unexpired.
    fn session(&self, token: &str) -> Result<Option<Principal>, super::ApiError>;
    /// The principal of an API key, if it exists, is not revoked and its owner is enabled.
    fn api_key(&self, key: &str) -> Result<Option<Principal>, super::ApiError>;
    /// A still-valid principal for this session token remembered from an earlier lookup.
    fn cached_session(&self, _token: &str) -> Option<Principal> {
        None
    }
    /// A still-valid principal for this API key remembered from an earlier lookup.
    fn cached_api_key(&self, _key: &str) -> Option<Principal> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_exceed_their_owner() {
        for role in Role::ALL {
            for scope in Scope::ALL {
                let p = Principal {
                    user_id: 1,
                    email: "a@b".into(),
                    role,
                    credential: Credential::ApiKey {
                        id: 1,
                        scopes: vec![scope],
                    },
                };
                for perm in Perm::ALL {
                    if p.can(perm) {
                        assert!(
                            role.grants(perm) && scope.grants(perm),
                            "{role:?} {scope:?} {perm:?}"
                        );
                    }
                }
            }
        }
        assert!(!Scope::Admin.allowed_for(Role::ReadOnly));
        assert!(Scope::Read.allowed_for(Role::ReadOnly));
        assert!(!Scope::Scanner.allowed_for(Role::ReadOnly));
        assert!(Scope::Scanner.allowed_for(Role::Admin));
    }
}
