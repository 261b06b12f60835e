//! SemVer 2.0.0 precedence (npm, cargo, go modules): major.minor.patch numerically, a
//! pre-release below its release, pre-release identifiers compared field by field (numeric
//! below alphanumeric, numbers numerically), build metadata ignored. A leading `v` (go) and
//! missing minor/patch are accepted; anything unparsable compares as a plain string, below any
//! valid version.

use std::cmp::Ordering;

#[derive(Debug, PartialEq, Eq)]
struct Version<'a> {
    core: [u64; 3],
    pre: Vec<&'a str>,
}

fn parse(v: &str) -> Option<Version<'_>> {
    let v = v.trim().trim_start_matches(['v', '=']);
    let v = v.split_once('+').map(|(a, _)| a).unwrap_or(v);
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, p.split('.').collect()),
        None => (v, vec![]),
    };
    let mut parts = core.split('.');
    let mut out = [0u64; 3];
    for (k, slot) in out.iter_mut().enumerate() {
        match parts.next() {
            Some(p) if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) => {
                *slot = p.parse().ok()?
            }
            None if k > 0 => {}
            _ => return None,
        }
    }
    if parts.next().is_some() || pre.iter().any(|p: &&str| p.is_empty()) {
        return None;
    }
    Some(Version { core: out, pre })
}

fn cmp_ident(a: &str, b: &str) -> Ordering {
    let num = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse::<u128>().ok())
            .flatten()
    };
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// Compares two SemVer versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => {
            x.core
                .cmp(&y.core)
                .then_with(|| match (x.pre.is_empty(), y.pre.is_empty()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    (false, false) => {
                        for (p, q) in x.pre.iter().zip(&y.pre) {
                            let c = cmp_ident(p, q);
                            if c != Ordering::Equal {
                                return c;
                            }
                        }
                        x.pre.len().cmp(&y.pre.len())
                    }
                })
        }
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_forms_and_build_metadata() {
        assert_eq!(compare("v1.2.3", "1.2.3"), Ordering::Equal);
        assert_eq!(compare("1.2", "1.2.0"), Ordering::Equal);
        assert_eq!(compare("1.0.0+build.1", "1.0.0+build.2"), Ordering::Equal);
        assert_eq!(compare("1.10.0", "1.9.0"), Ordering::Greater);
        assert_eq!(
            compare("0.0.0-20230101-abcdef", "0.0.0"),
            Ordering::Less,
            "go pseudo-versions are pre-releases"
        );
        assert_eq!(compare("garbage", "1.0.0"), Ordering::Less);
    }
}
