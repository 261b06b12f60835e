//! dpkg databases: `/var/lib/dpkg/status` and distroless `/var/lib/dpkg/status.d/*`, in
//! deb822 stanzas separated by blank lines. Only installed packages count (a `Status:` that does
//! not end in `installed` is skipped; status.d files have no `Status:`).

use super::{Package, Skipped};

/// Reads every installed package.
pub fn parse(text: &str) -> (Vec<Package>, Vec<Skipped>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut start = 1;
    let lines: Vec<&str> = text.lines().collect();
    for (n, line) in lines.iter().chain(std::iter::once(&"")).enumerate() {
        if line.trim().is_empty() {
            if !fields.is_empty() {
                match stanza(&fields) {
                    Ok(Some(p)) => out.push(p),
                    Ok(None) => {}
                    Err(reason) => skipped.push(Skipped {
                        line: start,
                        reason,
                    }),
                }
                fields.clear();
            }
            start = n + 2;
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            // A continuation line (descriptions, conffiles): not needed.
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            fields.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    (out, skipped)
}

fn stanza(fields: &[(String, String)]) -> Result<Option<Package>, String> {
    let get = |k: &str| {
        fields
            .iter()
            .find(|(f, _)| f.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    };
    if let Some(status) = get("Status") {
        if !status.ends_with(" installed") {
            return Ok(None);
        }
    }
    let name = get("Package")
        .filter(|n| !n.is_empty())
        .ok_or("a stanza without Package")?;
    let version = get("Version")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{name} has no Version"))?;
    // `Source: name (version)` when the source version differs from the binary's.
    let (source, source_version) = match get("Source") {
        Some(s) => match s.split_once(' ') {
            Some((n, v)) => (
                Some(n.to_string()),
                Some(
                    v.trim()
                        .trim_start_matches('(')
                        .trim_end_matches(')')
                        .to_string(),
                ),
            ),
            None => (Some(s.to_string()), None),
        },
        None => (None, None),
    };
    Ok(Some(Package {
        name: name.to_string(),
        version: version.to_string(),
        source,
        source_version,
        arch: get("Architecture").unwrap_or_default().to_string(),
        licenses: vec![],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_packages_and_sources() {
        let status = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n multi-line\n text\n\nPackage: removed-pkg\nStatus: deinstall ok config-files\nVersion: 1.0\n\nPackage: libssl3\nStatus: install ok installed\nSource: openssl (3.0.11-1~deb12u2)\nVersion: 3.0.11-1~deb12u2+b1\nArchitecture: amd64\n\nPackage: broken\nStatus: install ok installed\n";
        let (pkgs, skipped) = parse(status);
        assert_eq!(pkgs.len(), 2, "{pkgs:?}");
        assert_eq!(pkgs[0].source.as_deref(), Some("glibc"));
        assert_eq!(pkgs[1].source_version.as_deref(), Some("3.0.11-1~deb12u2"));
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].reason.contains("broken has no Version"));
        // Distroless status.d stanzas have no Status field.
        let (pkgs, _) = parse("Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n");
        assert_eq!(pkgs[0].name, "base-files");
        // Garbage does not panic.
        let (pkgs, _) = parse("\u{0}\u{1}:::\n\n: :\n");
        assert!(pkgs.is_empty());
    }
}
