//! Signing in against an LDAP directory: bind as the service account, find the user by the
//! username attribute, bind as the user with the password, find the user's groups, and map the
//! groups' auth-level values to a role. Every value that goes into a filter is escaped; an empty
//! password is refused before any bind (an empty simple bind is an anonymous one).

use std::sync::Arc;
use std::time::Duration;

use ldap3::{ldap_escape, LdapConn, LdapConnSettings, Scope, SearchEntry};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::{Grant, LdapSettings, Provider};

/// Longest username or password sent to a directory.
const MAX_CREDENTIAL_LEN: usize = 512;
/// The LDAP result code of a bind with a wrong password (RFC 4511).
const INVALID_CREDENTIALS: u32 = 49;

/// What the directory says about a sign-in.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// Proven, with the account's email and the role its groups grant.
    Allowed {
        email: String,
        grant: Grant,
        groups: Vec<String>,
    },
    /// Not proven, and why (for the audit log; never the password).
    Refused(String),
}

/// The directory could not answer (unreachable, timed out, the service account refused).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DirectoryError(pub String);

fn tls_config(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>, DirectoryError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| DirectoryError(format!("ca_pem: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| DirectoryError(format!("ca_pem: {e}")))?;
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// A connection to the directory with its timeouts.
struct Directory<'a> {
    conn: LdapConn,
    settings: &'a LdapSettings,
}

impl<'a> Directory<'a> {
    fn connect(settings: &'a LdapSettings) -> Result<Directory<'a>, DirectoryError> {
        let mut s = LdapConnSettings::new()
            .set_conn_timeout(Duration::from_secs(settings.connect_timeout_seconds))
            .set_starttls(settings.starttls);
        if !settings.ca_pem.trim().is_empty() {
            s = s.set_config(tls_config(&settings.ca_pem)?);
        }
        let conn = LdapConn::with_settings(s, &settings.url)
            .map_err(|e| DirectoryError(format!("cannot reach {}: {e}", settings.url)))?;
        Ok(Directory { conn, settings })
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.settings.timeout_seconds)
    }

    /// Binds; `Ok(false)` for wrong credentials.
    fn bind(&mut self, dn: &str, password: &str) -> Result<bool, DirectoryError> {
        let t = self.timeout();
        let r = self
            .conn
            .with_timeout(t)
            .simple_bind(dn, password)
            .map_err(|e| DirectoryError(format!("bind: {e}")))?;
        match r.rc {
            0 => Ok(true),
            INVALID_CREDENTIALS => Ok(false),
            rc => Err(DirectoryError(format!("bind refused ({rc}): {}", r.text))),
        }
    }

    fn search(
        &mut self,
        base: &str,
        filter: &str,
        attrs: Vec<&str>,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let t = self.timeout();
        let (entries, _) = self
            .conn
            .with_timeout(t)
            .search(base, Scope::Subtree, filter, attrs)
            .and_then(|r| r.success())
            .map_err(|e| DirectoryError(format!("search under {base}: {e}")))?;
        Ok(entries.into_iter().map(SearchEntry::construct).collect())
    }

    fn service_bind(&mut self, password: &str) -> Result<(), DirectoryError> {
        if password.is_empty() {
            return Err(DirectoryError(
                "the provider has no bind password (an empty one would bind anonymously)".into(),
            ));
        }
        let dn = self.settings.bind_dn.clone();
        if self.bind(&dn, password)? {
            Ok(())
        } else {
            Err(DirectoryError(format!(
                "the directory refused the service account {dn}"
            )))
        }
    }
}

impl Drop for Directory<'_> {
    fn drop(&mut self) {
        let _ = self.conn.unbind();
    }
}

/// The role `values` (the user's groups' auth-level attribute values) grant: the highest one
/// any value maps to.
fn grant_of(l: &LdapSettings, values: &[String]) -> Grant {
    let mapped = |v: &str| {
        let is = |configured: &str| !configured.is_empty() && configured.eq_ignore_ascii_case(v);
        if is(&l.group_value_super_admin) {
            Grant::SuperAdmin
        } else if is(&l.group_value_admin) {
            Grant::Admin
        } else if is(&l.group_value_read_only) {
            Grant::ReadOnly
        } else {
            Grant::None
        }
    };
    values
        .iter()
        .map(|v| mapped(v))
        .max()
        .unwrap_or(Grant::None)
}

/// Signs `username` in with `password` at provider `p` (whose service account's password is
/// `bind_password`).
pub fn authenticate(
    p: &Provider,
    bind_password: &str,
    username: &str,
    password: &str,
) -> Result<Answer, DirectoryError> {
    let l = &p.ldap;
    if username.is_empty() || password.is_empty() {
        return Ok(Answer::Refused("empty username or password".into()));
    }
    if username.len() > MAX_CREDENTIAL_LEN || password.len() > MAX_CREDENTIAL_LEN {
        return Ok(Answer::Refused("username or password too long".into()));
    }
    let mut d = Directory::connect(l)?;
    d.service_bind(bind_password)?;
    let member_attr = l.group_member_user_attribute.as_str();
    let mut wanted = vec![l.username_attribute.as_str(), "mail"];
    if member_attr != "dn" {
        wanted.push(member_attr);
    }
    let filter = format!("({}={})", l.username_attribute, ldap_escape(username));
    let mut users = d.search(&l.user_search_base, &filter, wanted)?;
    let user = match users.len() {
        0 => return Ok(Answer::Refused("no such user in the directory".into())),
        1 => users.remove(0),
        n => {
            return Ok(Answer::Refused(format!(
                "the username matches {n} directory entries"
            )))
        }
    };
    if !d.bind(&user.dn, password)? {
        return Ok(Answer::Refused("wrong password".into()));
    }
    // Groups are read as the service account (users often may not read them).
    d.service_bind(bind_password)?;
    let member_value = if member_attr == "dn" {
        user.dn.clone()
    } else {
        match user.attrs.get(member_attr).and_then(|v| v.first()) {
            Some(v) => v.clone(),
            None => {
                return Ok(Answer::Refused(format!(
                    "the user's entry has no {member_attr}"
                )))
            }
        }
    };
    let filter = format!(
        "(&(objectClass={})({}={}))",
        l.group_object_class,
        l.group_member_attribute,
        ldap_escape(&member_value)
    );
    let groups = d.search(
        &l.group_search_base,
        &filter,
        vec![l.group_auth_level_attribute.as_str()],
    )?;
    let values: Vec<String> = groups
        .iter()
        .flat_map(|g| {
            g.attrs
                .get(&l.group_auth_level_attribute)
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let grant = match grant_of(l, &values) {
        Grant::None => p.default_role,
        g => g,
    };
    if grant == Grant::None {
        return Ok(Answer::Refused(format!(
            "no group of the user grants a role ({} groups) and the default role is none",
            groups.len()
        )));
    }
    let email = user
        .attrs
        .get("mail")
        .and_then(|m| m.first())
        .filter(|m| m.contains('@') && m.len() <= 254)
        .cloned()
        .unwrap_or_else(|| format!("{username}@{}", p.name));
    Ok(Answer::Allowed {
        email,
        grant,
        groups: values,
    })
}

/// Tries the provider's connection and service account now: how many users and groups it sees.
pub fn test(p: &Provider, bind_password: &str) -> Result<String, DirectoryError> {
    let l = &p.ldap;
    let mut d = Directory::connect(l)?;
    d.service_bind(bind_password)?;
    let users = d.search(
        &l.user_search_base,
        &format!("({}=*)", l.username_attribute),
        vec!["1.1"],
    )?;
    let groups = d.search(
        &l.group_search_base,
        &format!("(objectClass={})", l.group_object_class),
        vec!["1.1"],
    )?;
    Ok(format!(
        "bound as {}; {} users with {} under {}, {} {} groups under {}",
        l.bind_dn,
        users.len(),
        l.username_attribute,
        l.user_search_base,
        groups.len(),
        l.group_object_class,
        l.group_search_base
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_mapped_group_wins() {
        let l = LdapSettings {
            group_value_read_only: "viewers".into(),
            group_value_admin: "admins".into(),
            group_value_super_admin: "root".into(),
            ..LdapSettings::default()
        };
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            grant_of(&l, &v(&["viewers", "ADMINS", "other"])),
            Grant::Admin
        );
        assert_eq!(grant_of(&l, &v(&["root"])), Grant::SuperAdmin);
        assert_eq!(grant_of(&l, &v(&["other"])), Grant::None);
        assert_eq!(grant_of(&l, &[]), Grant::None);
        // An unset mapping matches nothing, not an empty value.
        let unset = LdapSettings::default();
        assert_eq!(grant_of(&unset, &v(&[""])), Grant::None);
    }

    #[test]
    fn filter_values_are_escaped() {
        assert_eq!(ldap_escape("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
        assert_eq!(ldap_escape("a\\b"), "a\\5cb");
    }
}
