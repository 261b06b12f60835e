//! Key-gated types: values whose name opened a gate (names, dates of birth, phones, …).

use super::*;
use crate::detect::keys::Gate;
use crate::detect::validators as v;
use crate::detect::Kind;

/// Key-gated types for a whole value whose name opened `gates`. The first gate that yields a
/// finding wins, in the order the gates were listed (the most specific first).
pub fn gated(value: &[u8], gates: &[Gate], out: &mut Vec<Hit>) {
    let t = trim(value);
    let (start, end) = (t.0, t.1);
    let val = &value[start..end];
    if val.is_empty() || val.len() > 4096 {
        return;
    }
    let digits: Vec<u8> = val.iter().copied().filter(u8::is_ascii_digit).collect();
    let only = |ok: &dyn Fn(u8) -> bool| val.iter().all(|b| ok(*b));
    let numeric = only(&|b| b.is_ascii_digit() || b == b' ' || b == b'-');
    let hit = |kind| Hit { kind, start, end };
    for gate in gates {
        let found = match gate {
            Gate::Cvv => {
                (numeric && (3..=4).contains(&val.len()) && !v::repdigit(val)).then_some(Kind::Cvv)
            }
            Gate::Expiry => expiry(val).then_some(Kind::Expiry),
            Gate::AwsSecret => (val.len() == 40
                && only(&|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'+')
                && v::entropy(val) > 4.0
                && !v::placeholder(val))
            .then_some(Kind::AwsSecret),
            Gate::Password => (!v::placeholder(val) && val.len() <= 256).then(|| {
                if hash_like(val) {
                    Kind::PasswordHash
                } else {
                    Kind::Password
                }
            }),
            Gate::GenericSecret => (val.len() >= 20
                && only(&|b| b.is_ascii_alphanumeric() || b"+/_=-.".contains(&b))
                && v::entropy(val) > 3.5
                && !v::placeholder(val))
            .then_some(Kind::GenericSecret),
            Gate::Ssn => (numeric && v::ssn(&digits)).then_some(Kind::Ssn),
            Gate::Aba => (numeric && v::aba(&digits)).then_some(Kind::Aba),
            Gate::BankAccount => {
                (numeric && (6..=17).contains(&digits.len()) && !v::repdigit(&digits))
                    .then_some(Kind::BankAccount)
            }
            Gate::Nhs => (numeric && v::nhs(&digits)).then_some(Kind::Nhs),
            Gate::CaSin => (numeric && v::ca_sin(&digits)).then_some(Kind::CaSin),
            Gate::Aadhaar => (numeric && v::aadhaar(&digits)).then_some(Kind::Aadhaar),
            Gate::Phone => phone(val, &digits).then_some(Kind::Phone),
            Gate::Person => person(val).then_some(Kind::Person),
            Gate::Dob => dob(val).then_some(Kind::Dob),
            Gate::Passport => ((6..=12).contains(&val.len())
                && only(&|b| b.is_ascii_alphanumeric())
                && val.iter().filter(|b| b.is_ascii_digit()).count() >= 5
                && !v::repdigit(val))
            .then_some(Kind::Passport),
            Gate::DriverLicense => ((5..=16).contains(&val.len())
                && only(&|b| b.is_ascii_alphanumeric() || b == b'-')
                && val.iter().any(u8::is_ascii_digit)
                && !v::repdigit(val))
            .then_some(Kind::DriverLicense),
            Gate::Npi => (numeric && v::npi(&digits)).then_some(Kind::Npi),
            Gate::Dea => v::dea(val).then_some(Kind::Dea),
            Gate::Ip => public_ip(val).then_some(Kind::IpAddress),
        };
        if let Some(kind) = found {
            out.push(hit(kind));
            return;
        }
    }
}

pub(super) fn trim(v: &[u8]) -> (usize, usize) {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    (start, end)
}

pub(super) fn hash_like(v: &[u8]) -> bool {
    v.starts_with(b"$2a$")
        || v.starts_with(b"$2b$")
        || v.starts_with(b"$2y$")
        || v.starts_with(b"$argon2")
        || v.starts_with(b"$6$")
        || v.starts_with(b"$5$")
        || v.starts_with(b"$1$")
}

/// `MM/YY`, `MM/YYYY`, `MM-YY`, with a plausible month.
pub(super) fn expiry(v: &[u8]) -> bool {
    let s = std::str::from_utf8(v).unwrap_or("");
    let Some((m, y)) = s.split_once(['/', '-']) else {
        return false;
    };
    let (m, y) = (m.trim(), y.trim());
    let month_ok = m.len() <= 2 && m.parse::<u32>().is_ok_and(|m| (1..=12).contains(&m));
    let year_ok =
        (y.len() == 2 || (y.len() == 4 && y.starts_with("20"))) && y.parse::<u32>().is_ok();
    month_ok && year_ok
}

/// A phone number: 7–15 digits in the usual punctuation, optionally with `+`.
pub(super) fn phone(v: &[u8], digits: &[u8]) -> bool {
    (7..=15).contains(&digits.len())
        && v.iter()
            .all(|b| b.is_ascii_digit() || b" +-().".contains(b))
        && !v::repdigit(digits)
}

/// A person's name: one to four capitalised words of letters.
pub(super) fn person(v: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(v) else {
        return false;
    };
    let words: Vec<&str> = s
        .split([' ', '-', '\''])
        .filter(|w| !w.is_empty())
        .collect();
    !words.is_empty()
        && words.len() <= 4
        && s.len() <= 80
        && words.iter().all(|w| {
            let mut c = w.chars();
            c.next().is_some_and(char::is_uppercase) && c.all(char::is_alphabetic)
        })
        && !v::placeholder(v)
}

/// A date of birth: `YYYY-MM-DD`, `DD/MM/YYYY` or `MM/DD/YYYY`, age 0–120.
pub(super) fn dob(v: &[u8]) -> bool {
    let s = std::str::from_utf8(v).unwrap_or("");
    let parts: Vec<&str> = s.split(['-', '/', '.']).collect();
    if parts.len() != 3 || !parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit())) {
        return false;
    }
    let year = parts
        .iter()
        .find(|p| p.len() == 4)
        .and_then(|y| y.parse::<i32>().ok());
    let this_year = chrono::Datelike::year(&chrono::Utc::now());
    year.is_some_and(|y| y <= this_year && this_year - y <= 120)
}

/// A public IP address (not private, loopback, link-local, CGNAT or documentation ranges).
pub(super) fn public_ip(v: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(v) else {
        return false;
    };
    let first = s.split(',').next().unwrap_or("").trim();
    match first.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            let o = ip.octets();
            !(ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_multicast()
                || (o[0] == 100 && (64..=127).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 2)
                || (o[0] == 198 && o[1] == 51 && o[2] == 100)
                || (o[0] == 203 && o[1] == 0 && o[2] == 113))
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            let seg = ip.segments();
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || seg[0] == 0x2001 && seg[1] == 0x0db8)
        }
        Err(_) => false,
    }
}
