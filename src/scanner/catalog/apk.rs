//! The Alpine package database, `/lib/apk/db/installed`: records of `X:value` lines separated
//! by blank lines (`P` name, `V` version, `A` arch, `L` license, `o` origin).

use super::{Package, Skipped};

/// Reads every package; records without a name or version are skipped and reported.
pub fn parse(text: &str) -> (Vec<Package>, Vec<Skipped>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let mut rec: Vec<(char, &str)> = Vec::new();
    let mut start = 1;
    let lines: Vec<&str> = text.lines().collect();
    for (n, line) in lines.iter().copied().chain(std::iter::once("")).enumerate() {
        if line.trim().is_empty() {
            if !rec.is_empty() {
                let get = |k: char| {
                    rec.iter()
                        .find(|(f, _)| *f == k)
                        .map(|(_, v)| *v)
                        .filter(|v| !v.is_empty())
                };
                match (get('P'), get('V')) {
                    (Some(name), Some(version)) => out.push(Package {
                        name: name.to_string(),
                        version: version.to_string(),
                        source: get('o').map(String::from),
                        source_version: None,
                        arch: get('A').unwrap_or_default().to_string(),
                        licenses: get('L')
                            .map(|l| l.split_whitespace().map(String::from).collect())
                            .unwrap_or_default(),
                    }),
                    (name, _) => skipped.push(Skipped {
                        line: start,
                        reason: format!(
                            "record {} has no {}",
                            name.unwrap_or("(unnamed)"),
                            if name.is_none() { "name" } else { "version" }
                        ),
                    }),
                }
                rec.clear();
            }
            start = n + 2;
            continue;
        }
        let mut chars = line.chars();
        if let (Some(k), Some(':')) = (chars.next(), chars.next()) {
            rec.push((k, &line[2..]));
        }
    }
    (out, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_trivys_fixture_and_skips_the_invalid_record() {
        let (pkgs, skipped) = parse(include_str!(
            "../../../tests/fixtures/trivy/apk-installed-db.txt"
        ));
        assert_eq!(pkgs.len(), 15, "16 records, one without a version");
        assert_eq!(skipped.len(), 1);
        assert!(
            skipped[0].reason.contains("invalidPackageWithoutAVersion"),
            "{skipped:?}"
        );
        let musl = &pkgs[0];
        assert_eq!(
            (
                musl.name.as_str(),
                musl.version.as_str(),
                musl.arch.as_str()
            ),
            ("musl", "1.1.14-r10", "x86_64")
        );
        assert_eq!(musl.source.as_deref(), Some("musl"));
        assert_eq!(musl.licenses, vec!["MIT"]);
        assert!(
            pkgs.iter()
                .all(|p| crate::vulndb::version::apk::valid(&p.version)),
            "apk versions are valid"
        );
    }
}
