//! OSV `affected` semantics: is a version affected by a set of ranges and explicit versions?
//!
//! Within one range the events are put in version order (`introduced: "0"` first) and walked up
//! to the version: `introduced` at or below it turns "affected" on, `fixed` at or below it turns
//! it off, `last_affected` strictly below it turns it off; a `limit` at or below it ends the range
//! for this version. A version listed in `versions` is affected whatever the ranges say.

use std::cmp::Ordering;

/// One event of an OSV range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Introduced(String),
    Fixed(String),
    LastAffected(String),
    Limit(String),
}

impl Event {
    fn version(&self) -> &str {
        match self {
            Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => v,
        }
    }
}

/// Whether `version` is affected by `ranges` (each a list of events) or listed in `versions`,
/// comparing with the ecosystem's `cmp`.
pub fn affected(
    version: &str,
    ranges: &[Vec<Event>],
    versions: &[String],
    cmp: fn(&str, &str) -> Ordering,
) -> bool {
    if versions.iter().any(|v| cmp(v, version) == Ordering::Equal) {
        return true;
    }
    ranges.iter().any(|events| in_range(version, events, cmp))
}

fn in_range(version: &str, events: &[Event], cmp: fn(&str, &str) -> Ordering) -> bool {
    let order = |v: &str, w: &str| match (v == "0", w == "0") {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => cmp(v, w),
    };
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by(|a, b| order(a.version(), b.version()));
    // A limit at or below the version puts it outside this range.
    if sorted
        .iter()
        .any(|e| matches!(e, Event::Limit(l) if order(l, version) != Ordering::Greater))
    {
        return false;
    }
    let mut affected = false;
    for e in sorted {
        match e {
            Event::Introduced(v) if order(v, version) != Ordering::Greater => affected = true,
            Event::Fixed(v) if order(v, version) != Ordering::Greater => affected = false,
            Event::LastAffected(v) if order(v, version) == Ordering::Less => affected = false,
            _ => {}
        }
    }
    affected
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vulndb::version::{dpkg, semver};
    use Event::*;

    fn s(v: &str) -> String {
        v.to_string()
    }

    #[test]
    fn introduced_fixed_last_affected_limit_and_lists() {
        let fixed = vec![vec![Introduced(s("0")), Fixed(s("1.2.3"))]];
        assert!(affected("1.0.0", &fixed, &[], semver::compare));
        assert!(affected("1.2.2", &fixed, &[], semver::compare));
        assert!(
            !affected("1.2.3", &fixed, &[], semver::compare),
            "fixed is not affected"
        );
        assert!(!affected("2.0.0", &fixed, &[], semver::compare));
        let last = vec![vec![Introduced(s("1.0.0")), LastAffected(s("1.4.0"))]];
        assert!(
            !affected("0.9.0", &last, &[], semver::compare),
            "before introduced"
        );
        assert!(
            affected("1.4.0", &last, &[], semver::compare),
            "last_affected is affected"
        );
        assert!(!affected("1.4.1", &last, &[], semver::compare));
        // Two introduced/fixed pairs in one range, given out of order.
        let pairs = vec![vec![
            Fixed(s("2.0.1")),
            Introduced(s("1.0.0")),
            Introduced(s("2.0.0")),
            Fixed(s("1.0.5")),
        ]];
        assert!(affected("1.0.1", &pairs, &[], semver::compare));
        assert!(
            !affected("1.5.0", &pairs, &[], semver::compare),
            "between the pairs"
        );
        assert!(affected("2.0.0", &pairs, &[], semver::compare));
        assert!(!affected("2.0.1", &pairs, &[], semver::compare));
        // A limit ends the range (git branches).
        let limited = vec![vec![Introduced(s("0")), Limit(s("3.0.0"))]];
        assert!(affected("2.9.9", &limited, &[], semver::compare));
        assert!(!affected("3.0.0", &limited, &[], semver::compare));
        // Explicit versions, with no ranges.
        assert!(affected("1.1.1", &[], &[s("1.1.1")], semver::compare));
        assert!(!affected("1.1.2", &[], &[s("1.1.1")], semver::compare));
        // Distro versions through their comparator: an epoch and a ~ pre-release.
        let deb = vec![vec![Introduced(s("0")), Fixed(s("1:2.0-1"))]];
        assert!(
            affected("2.5-1", &deb, &[], dpkg::compare),
            "no epoch is below epoch 1"
        );
        assert!(!affected("1:2.0-1", &deb, &[], dpkg::compare));
        let tilde = vec![vec![Introduced(s("0")), Fixed(s("2.0-1"))]];
        assert!(
            affected("2.0~rc1-1", &tilde, &[], dpkg::compare),
            "~ sorts before the release"
        );
    }
}
