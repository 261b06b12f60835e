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

/// The system's roots, the appliance's extra CAs and the provider's own `ca_pem`.
fn tls_config(
    ca_pem: &str,
    outbound: &crate::outbound::Outbound,
) -> Result<Arc<rustls::ClientConfig>, DirectoryError> {
    let mut roots = outbound.root_store();
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
    fn connect(
        settings: &'a LdapSettings,
        outbound: &crate::outbound::Outbound,
    ) -> Result<Directory<'a>, DirectoryError> {
        let mut s = LdapConnSettings::new()
            .set_conn_timeout(Duration::from_secs(settings.connect_timeout_seconds))
            .set_starttls(settings.starttls);
        if !settings.ca_pem.trim().is_empty() || !outbound.extra_roots().is_empty() {
            s = s.set_config(tls_config(&settings.ca_pem, outbound)?);
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

    /// The entry at `dn` (none if it does not exist), with `attr`.
    fn read(&mut self, dn: &str, attr: &str) -> Result<Vec<SearchEntry>, DirectoryError> {
        let t = self.timeout();
        match self
            .conn
            .with_timeout(t)
            .search(dn, Scope::Base, "(objectClass=*)", vec![attr])
            .and_then(|r| r.success())
        {
            Ok((entries, _)) => Ok(entries.into_iter().map(SearchEntry::construct).collect()),
            // A group that has gone (32: no such object) is no group.
            Err(ldap3::LdapError::LdapResult { result }) if result.rc == 32 => Ok(Vec::new()),
            Err(e) => Err(DirectoryError(format!("reading {dn}: {e}"))),
        }
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

/// Groups of a user read through `member_of_attribute`, at most.
const MAX_GROUPS: usize = 500;

/// The filter finding the groups whose member attribute holds `member` (escaped); with nested
/// groups, Active Directory's in-chain rule finds those reached through other groups too.
fn group_filter(l: &LdapSettings, member: &str) -> String {
    let rule = if l.nested_groups {
        ":1.2.840.113556.1.4.1941:"
    } else {
        ""
    };
    format!(
        "(&(objectClass={})({}{rule}={}))",
        l.group_object_class,
        l.group_member_attribute,
        ldap_escape(member)
    )
}

/// The auth-level attribute's values of `groups`.
fn auth_levels(l: &LdapSettings, groups: &[SearchEntry]) -> Vec<String> {
    groups
        .iter()
        .flat_map(|g| {
            g.attrs
                .get(&l.group_auth_level_attribute)
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

/// Signs `username` in with `password` at provider `p` (whose service account's password is
/// `bind_password`).
pub fn authenticate(
    p: &Provider,
    outbound: &crate::outbound::Outbound,
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
    let mut d = Directory::connect(l, outbound)?;
    d.service_bind(bind_password)?;
    let member_attr = l.group_member_user_attribute.as_str();
    let mut wanted = vec![l.username_attribute.as_str(), "mail"];
    if member_attr != "dn" {
        wanted.push(member_attr);
    }
    if !l.member_of_attribute.is_empty() {
        wanted.push(l.member_of_attribute.as_str());
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
    let (count, values) = if l.member_of_attribute.is_empty() {
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
        let groups = d.search(
            &l.group_search_base,
            &group_filter(l, &member_value),
            vec![l.group_auth_level_attribute.as_str()],
        )?;
        (groups.len(), auth_levels(l, &groups))
    } else {
        // The groups the user's entry names, each read by its DN.
        let dns: Vec<String> = user
            .attrs
            .get(&l.member_of_attribute)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .take(MAX_GROUPS)
            .collect();
        let mut groups = Vec::new();
        for dn in &dns {
            groups.extend(d.read(dn, &l.group_auth_level_attribute)?);
        }
        (dns.len(), auth_levels(l, &groups))
    };
    let grant = match grant_of(l, &values) {
        Grant::None => p.default_role,
        g => g,
    };
    if grant == Grant::None {
        return Ok(Answer::Refused(format!(
            "no group of the user grants a role ({count} groups) and the default role is none"
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
pub fn test(
    p: &Provider,
    outbound: &crate::outbound::Outbound,
    bind_password: &str,
) -> Result<String, DirectoryError> {
    let l = &p.ldap;
    let mut d = Directory::connect(l, outbound)?;
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
    fn group_filters_escape_and_can_follow_nesting() {
        let mut l = LdapSettings {
            group_object_class: "group".into(),
            group_member_attribute: "member".into(),
            ..LdapSettings::default()
        };
        assert_eq!(
            group_filter(&l, "cn=a*,dc=x"),
            "(&(objectClass=group)(member=cn=a\\2a,dc=x))"
        );
        l.nested_groups = true;
        assert_eq!(
            group_filter(&l, "cn=a,dc=x"),
            "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:=cn=a,dc=x))"
        );
    }

    #[test]
    fn filter_values_are_escaped() {
        assert_eq!(ldap_escape("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
        assert_eq!(ldap_escape("a\\b"), "a\\5cb");
    }
}
