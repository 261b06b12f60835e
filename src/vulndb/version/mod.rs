//! Version comparison for every ecosystem the scanner matches: dpkg, rpm, apk, SemVer (npm,
//! cargo, go), PEP 440. Each comparator is proven against upstream test vectors
//! (`tests/fixtures/versions`).

pub mod apk;
pub mod dpkg;
pub mod maven;
pub mod pep440;
pub mod rpm;
pub mod semver;

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    fn triples(text: &str) -> Vec<(String, String, i32)> {
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[0].to_string(), f[1].to_string(), f[2].parse().unwrap())
            })
            .collect()
    }

    fn sign(o: Ordering) -> i32 {
        match o {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }
    }

    fn check(name: &str, text: &str, cmp: fn(&str, &str) -> Ordering) {
        let vectors = triples(text);
        assert!(vectors.len() > 30, "{name}: too few vectors");
        let failures: Vec<String> = vectors
            .iter()
            .filter(|(a, b, want)| sign(cmp(a, b)) != *want)
            .map(|(a, b, want)| format!("{a} vs {b}: want {want}, got {}", sign(cmp(a, b))))
            .collect();
        assert!(
            failures.is_empty(),
            "{name}: {} of {} vectors fail:\n{}",
            failures.len(),
            vectors.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn dpkg_vectors() {
        check(
            "dpkg",
            include_str!("../../../tests/fixtures/versions/dpkg-version-cmp.txt"),
            super::dpkg::compare,
        );
    }

    #[test]
    fn rpm_vectors() {
        check(
            "rpm",
            include_str!("../../../tests/fixtures/versions/rpmvercmp.txt"),
            super::rpm::rpmvercmp,
        );
    }

    fn ascending(name: &str, text: &str, cmp: fn(&str, &str) -> Ordering) {
        let list: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert!(list.len() > 5, "{name}: too few versions");
        let mut failures = Vec::new();
        for (i, a) in list.iter().enumerate() {
            for (j, b) in list.iter().enumerate() {
                let want = i.cmp(&j);
                if cmp(a, b) != want {
                    failures.push(format!("{a} vs {b}: want {want:?}, got {:?}", cmp(a, b)));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{name}: {} of {} pairs fail:\n{}",
            failures.len(),
            list.len() * list.len(),
            failures
                .iter()
                .take(40)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    #[test]
    fn semver_vectors() {
        ascending(
            "semver",
            include_str!("../../../tests/fixtures/versions/semver-sorted.txt"),
            super::semver::compare,
        );
    }

    #[test]
    fn pep440_vectors() {
        ascending(
            "pep440",
            include_str!("../../../tests/fixtures/versions/pep440-sorted.txt"),
            super::pep440::compare,
        );
    }
}
