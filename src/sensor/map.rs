//! The data map: findings aggregated by (source, destination, method, endpoint template,
//! direction), with the data types seen, counts, first and last time, sensitivity and one masked
//! sample per type. Endpoint templates collapse ids so `/users/42` and `/users/43` are one
//! endpoint.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::detect::{Finding, Sensitivity};

/// Where data flowed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Route {
    pub source: String,
    pub destination: String,
    pub method: String,
    pub endpoint: String,
    /// `request` or `response`.
    pub direction: &'static str,
}

/// What flowed there.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    #[serde(flatten)]
    pub route: Route,
    pub host: String,
    pub data_types: BTreeSet<String>,
    pub counts: BTreeMap<String, u64>,
    pub sensitivity: Sensitivity,
    pub combinations: BTreeSet<&'static str>,
    /// One masked example per type.
    pub samples: BTreeMap<String, String>,
    pub exchanges: u64,
    pub first_seen: f64,
    pub last_seen: f64,
}

/// The aggregate.
#[derive(Debug, Default, Clone)]
pub struct DataMap {
    /// Routes come from traffic (a peer chooses paths and hosts): a per-process random seed
    /// (foldhash, much cheaper than SipHash), and at most [`MAX_ROUTES`] of them.
    entries: HashMap<Route, Entry, foldhash::fast::RandomState>,
}

/// Caps the map so a flood of distinct endpoints cannot grow it without end.
pub const MAX_ROUTES: usize = 100_000;

impl DataMap {
    /// Adds one message's findings; `false` when the map is full and the route is new.
    pub fn add(&mut self, route: &Route, host: &str, findings: &[Finding], at: f64) -> bool {
        if findings.is_empty() {
            return true;
        }
        // The route is copied only into a new entry; a known one is looked up by reference,
        // once.
        let e = match self.entries.get_mut(route) {
            Some(e) => e,
            None => {
                if self.entries.len() >= MAX_ROUTES {
                    return false;
                }
                self.entries.entry(route.clone()).or_insert_with(|| Entry {
                    route: route.clone(),
                    host: host.to_string(),
                    data_types: BTreeSet::new(),
                    counts: BTreeMap::new(),
                    sensitivity: Sensitivity::Low,
                    combinations: BTreeSet::new(),
                    samples: BTreeMap::new(),
                    exchanges: 0,
                    first_seen: at,
                    last_seen: at,
                })
            }
        };
        let assessment = crate::detect::assess(findings);
        e.exchanges += 1;
        e.last_seen = e.last_seen.max(at);
        e.first_seen = e.first_seen.min(at);
        for f in findings {
            // Types repeat on every exchange of a route: look them up by `&str` and allocate
            // only the first time.
            let kind: &str = &f.kind;
            match e.counts.get_mut(kind) {
                Some(n) => *n += 1,
                None => {
                    e.counts.insert(kind.to_string(), 1);
                    e.data_types.insert(kind.to_string());
                }
            }
            if !e.samples.contains_key(kind) {
                e.samples.insert(kind.to_string(), f.masked.clone());
            }
        }
        if let Some(s) = assessment.sensitivity {
            e.sensitivity = e.sensitivity.max(s);
        }
        e.combinations.extend(assessment.combinations);
        true
    }

    /// Adds another map's entries (from another capture worker).
    pub fn merge(&mut self, other: DataMap) {
        for (route, e) in other.entries {
            let room = self.entries.len() < MAX_ROUTES;
            match self.entries.get_mut(&route) {
                Some(mine) => {
                    mine.exchanges += e.exchanges;
                    mine.first_seen = mine.first_seen.min(e.first_seen);
                    mine.last_seen = mine.last_seen.max(e.last_seen);
                    mine.sensitivity = mine.sensitivity.max(e.sensitivity);
                    mine.data_types.extend(e.data_types);
                    mine.combinations.extend(e.combinations);
                    for (k, v) in e.counts {
                        *mine.counts.entry(k).or_default() += v;
                    }
                    for (k, v) in e.samples {
                        mine.samples.entry(k).or_insert(v);
                    }
                }
                None if room => {
                    self.entries.insert(route, e);
                }
                None => {}
            }
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, ordered by route.
    pub fn entries(&self) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self.entries.values().collect();
        v.sort_by(|a, b| a.route.cmp(&b.route));
        v
    }
}

/// `/users/42/cards/4f9c…?x=1` → `/users/{id}/cards/{id}`: numbers, UUIDs, long hex and
/// token-like segments become `{id}`; the query string is dropped.
pub fn endpoint_template(target: &str) -> String {
    let path = target.split(['?', '#']).next().unwrap_or("");
    // Absolute-form targets (proxies): keep only the path.
    let path = match path.find("://") {
        Some(i) => path[i + 3..]
            .find('/')
            .map(|j| &path[i + 3 + j..])
            .unwrap_or("/"),
        None => path,
    };
    // Written into one string (this runs for every exchange).
    let mut t = String::with_capacity(path.len().min(32 * 65));
    for (k, s) in path.split('/').take(32).enumerate() {
        if k > 0 {
            t.push('/');
        }
        let digits = s.bytes().filter(u8::is_ascii_digit).count();
        let hex = !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        let id = (!s.is_empty() && digits == s.len())
            || (hex && s.len() >= 8 && digits > 0)
            || (s.len() >= 20 && digits >= 2);
        if id {
            t.push_str("{id}");
        } else {
            t.extend(s.chars().take(64));
        }
    }
    if t.is_empty() {
        "/".into()
    } else {
        t
    }
}

/// Appends `ip` as `Display` writes it: IPv4 by hand (every exchange names two addresses), IPv6
/// through `Display`.
pub(crate) fn push_ip(out: &mut String, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (k, octet) in v4.octets().into_iter().enumerate() {
                if k > 0 {
                    out.push('.');
                }
                crate::detect::push_decimal(out, octet as usize);
            }
        }
        std::net::IpAddr::V6(v6) => out.push_str(&v6.to_string()),
    }
}

/// Appends `addr` as `Display` writes it (`10.0.0.2:8080`, `[fe80::1]:443`).
pub(crate) fn push_socket_addr(out: &mut String, addr: std::net::SocketAddr) {
    match addr {
        std::net::SocketAddr::V4(_) => {
            push_ip(out, addr.ip());
            out.push(':');
            crate::detect::push_decimal(out, addr.port() as usize);
        }
        std::net::SocketAddr::V6(_) => out.push_str(&addr.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for addr in [
            "10.0.0.2:8080",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "192.168.100.9:443",
            "[fe80::1]:443",
            "[::ffff:10.0.0.1]:80",
        ] {
            let addr: std::net::SocketAddr = addr.parse().expect("address");
            let mut socket = String::new();
            push_socket_addr(&mut socket, addr);
            assert_eq!(socket, addr.to_string());
            let mut ip = String::new();
            push_ip(&mut ip, addr.ip());
            assert_eq!(ip, addr.ip().to_string());
        }
    }

    #[test]
    fn ids_collapse_into_templates() {
        assert_eq!(endpoint_template("/users/42"), "/users/{id}");
        assert_eq!(
            endpoint_template("/orders/7f9c2ba4-e88f-11d4-a716-446655440000/items?x=1"),
            "/orders/{id}/items"
        );
        assert_eq!(endpoint_template("/v1/health"), "/v1/health");
        assert_eq!(endpoint_template("http://api.local/a/1"), "/a/{id}");
        assert_eq!(endpoint_template(""), "/");
    }
}
