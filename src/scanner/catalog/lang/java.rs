//! Java archives (`.jar`, `.war`, `.ear`, `.par`): every `META-INF/maven/GROUP/ARTIFACT/
//! pom.properties` names a Maven artifact as `GROUP:ARTIFACT`, and archives nested inside
//! (Spring Boot's `BOOT-INF/lib/`, `WEB-INF/lib/`) are opened in turn. Archives without
//! `pom.properties` are not identified: Trivy looks those up by SHA-1 in its online Java
//! database, which an air-gapped site does not have.

use std::io::{Cursor, Read};

/// Nesting depth followed (an archive in an archive in an archive).
const MAX_DEPTH: usize = 3;
/// Largest entry read out of an archive, so a zip bomb is skipped, not expanded.
const MAX_ENTRY: u64 = 32 * 1024 * 1024;
/// Entries looked at per archive.
const MAX_ENTRIES: usize = 200_000;

/// The Maven artifacts an archive (and the archives inside it) declares.
pub fn archive(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    walk(bytes, 0, &mut out)?;
    Ok(out)
}

fn walk(bytes: &[u8], depth: usize, out: &mut Vec<(String, String)>) -> Result<(), String> {
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a Java archive: {e}"))?;
    if zip.len() > MAX_ENTRIES {
        return Err(format!("more than {MAX_ENTRIES} entries"));
    }
    for i in 0..zip.len() {
        let Ok(mut entry) = zip.by_index(i) else {
            continue;
        };
        let name = entry.name().to_string();
        let lower = name.to_ascii_lowercase();
        let is_pom = name.starts_with("META-INF/maven/") && name.ends_with("/pom.properties");
        let is_nested = depth < MAX_DEPTH
            && [".jar", ".war", ".ear", ".par"]
                .iter()
                .any(|e| lower.ends_with(e));
        if !(is_pom || is_nested) || entry.size() > MAX_ENTRY {
            continue;
        }
        let mut body = Vec::new();
        if (&mut entry).take(MAX_ENTRY).read_to_end(&mut body).is_err() {
            continue;
        }
        drop(entry);
        if is_pom {
            if let Some(p) = pom_properties(&String::from_utf8_lossy(&body)) {
                out.push(p);
            }
        } else {
            // A nested archive that does not open is skipped; the outer one still counts.
            let _ = walk(&body, depth + 1, out);
        }
    }
    Ok(())
}

/// `groupId:artifactId` and `version` from a `pom.properties`.
fn pom_properties(text: &str) -> Option<(String, String)> {
    let (mut group, mut artifact, mut version) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((k, v)) = line.split_once(['=', ':']) else {
            continue;
        };
        let v = v.trim().to_string();
        match k.trim() {
            "groupId" => group = Some(v),
            "artifactId" => artifact = Some(v),
            "version" => version = Some(v),
            _ => {}
        }
    }
    let (g, a, v) = (group?, artifact?, version?);
    if g.is_empty() || a.is_empty() || v.is_empty() {
        return None;
    }
    Some((format!("{g}:{a}"), v))
}

#[cfg(test)]
pub mod testing {
    use std::io::Write;

    /// A zip archive of (name, body) entries.
    pub fn jar(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, body) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(body).unwrap();
        }
        w.finish().unwrap().into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::jar;
    use super::*;

    const LOG4J: &[u8] = b"#Created by Apache Maven\nversion=2.14.1\ngroupId=org.apache.logging.log4j\nartifactId=log4j-core\n";

    #[test]
    fn reads_pom_properties_and_nested_archives() {
        let inner = jar(&[
            (
                "META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties",
                LOG4J,
            ),
            ("org/apache/Foo.class", b"\xca\xfe"),
        ]);
        let outer = jar(&[
            (
                "META-INF/maven/com.example/app/pom.properties",
                b"groupId=com.example\nartifactId=app\nversion=1.0.0\n",
            ),
            ("BOOT-INF/lib/log4j-core-2.14.1.jar", &inner),
            ("BOOT-INF/lib/broken.jar", b"not a zip"),
        ]);
        let mut got = archive(&outer).unwrap();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("com.example:app".to_string(), "1.0.0".to_string()),
                (
                    "org.apache.logging.log4j:log4j-core".into(),
                    "2.14.1".into()
                ),
            ]
        );
        assert!(archive(b"PK\x03\x04 garbage").is_err());
        assert_eq!(
            pom_properties("groupId=g\nartifactId=a\n"),
            None,
            "no version"
        );
    }
}
