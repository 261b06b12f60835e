//! Who did something and from where: the one description of a caller that domains check rights
//! against and write into the audit log.

use super::access::{Principal, Role};

/// Who is making a change.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Audit-log name (`alice@example.com`, `alice@example.com (key 4)`, `cli`).
    pub name: String,
    /// Role (`None` for the local command line, which may do anything).
    pub role: Option<Role>,
    /// User id, if a user.
    pub user_id: Option<u64>,
    /// Source address.
    pub ip: String,
}

impl Actor {
    /// The command line on the appliance host (full rights: it has the data dir already).
    pub fn cli() -> Actor {
        Actor {
            name: "cli".into(),
            role: None,
            user_id: None,
            ip: String::new(),
        }
    }

    /// The caller of a request from `ip`.
    pub fn of(p: &Principal, ip: String) -> Actor {
        Actor {
            name: p.actor(),
            role: Some(p.role),
            user_id: Some(p.user_id),
            ip,
        }
    }

    /// The caller of `req`, authenticated as `p`.
    pub fn from_request(p: &Principal, req: &actix_web::HttpRequest) -> Actor {
        Actor::of(p, super::client_ip(req))
    }

    /// An admin, a super-admin or the command line.
    pub fn is_admin(&self) -> bool {
        matches!(self.role, None | Some(Role::Admin | Role::SuperAdmin))
    }

    /// Whether this actor may create or change users of `role` (admins may not create, change or
    /// promote to super-admins).
    pub fn may_manage(&self, role: Role) -> bool {
        match self.role {
            None | Some(Role::SuperAdmin) => true,
            Some(Role::Admin) => role != Role::SuperAdmin,
            Some(Role::ReadOnly) => false,
        }
    }
}
