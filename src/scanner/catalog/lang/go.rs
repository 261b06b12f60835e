//! Go binaries: the build information the Go linker embeds (what `go version -m` prints). Since
//! Go 1.18 it is a 32-byte header, `\xff Go buildinf:` at a 16-byte-aligned file offset, followed
//! by two length-prefixed strings: the Go version and the module information (`path`, `mod`,
//! `dep` and `=>` replacement lines). Older binaries point into their data segment instead; they
//! are recognised and reported as unread.
//!
//! The header usually sits near the end of the binary, so [`find_build_info`] streams the whole
//! file (a layer is streamed anyway) and keeps only the header and what follows it.

use std::io::{self, Read};

/// The header's first bytes.
pub const MAGIC: &[u8] = b"\xff Go buildinf:";
/// Most bytes kept after the magic (module info of a binary with thousands of deps fits).
const MAX_INFO: usize = 1 << 20;
const CHUNK: usize = 256 * 1024;

/// Streams an executable and returns its build information (from the magic on), or `None`
/// when it is not an ELF file or carries none.
pub fn find_build_info(r: &mut dyn Read) -> io::Result<Option<Vec<u8>>> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut head[got..])? {
            0 => return Ok(None),
            n => got += n,
        }
    }
    if &head != b"\x7fELF" {
        return Ok(None);
    }
    let finder = memchr::memmem::Finder::new(MAGIC);
    // `buf` holds file bytes from offset `base` on.
    let mut buf = head.to_vec();
    let mut base = 0usize;
    let mut eof = false;
    let mut from = 0;
    loop {
        let mut found = None;
        for pos in finder.find_iter(&buf[from..]).map(|p| p + from) {
            if (base + pos).is_multiple_of(16) {
                found = Some(pos);
                break;
            }
        }
        if let Some(pos) = found {
            // Read on until the candidate is whole (or the file ends), then check it parses;
            // a stray copy of the magic (Go's own debug/buildinfo has one) does not.
            while !eof && buf.len() < pos + MAX_INFO {
                eof = fill(r, &mut buf)?;
            }
            let end = buf.len().min(pos + MAX_INFO);
            if parse_build_info(&buf[pos..end]).is_ok() || is_legacy(&buf[pos..end]) {
                return Ok(Some(buf[pos..end].to_vec()));
            }
            from = pos + 1;
            continue;
        }
        if eof {
            return Ok(None);
        }
        // Keep a tail that could hold the start of a magic split across reads.
        let keep = buf.len().min(MAGIC.len() - 1);
        let drop = buf.len() - keep;
        buf.drain(..drop);
        base += drop;
        from = 0;
        eof = fill(r, &mut buf)?;
    }
}

/// Appends up to one chunk; `true` at end of input.
fn fill(r: &mut dyn Read, buf: &mut Vec<u8>) -> io::Result<bool> {
    let start = buf.len();
    buf.resize(start + CHUNK, 0);
    let mut n = 0;
    while n < CHUNK {
        match r.read(&mut buf[start + n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(start + n);
    Ok(n == 0)
}

/// A pre-1.18 header (pointers, no inline strings).
fn is_legacy(info: &[u8]) -> bool {
    info.len() >= 32 && info.starts_with(MAGIC) && info[15] & 2 == 0 && matches!(info[14], 4 | 8)
}

/// The modules a build-info block names, as Trivy lists them: the main module (unless it is
/// `(devel)`), every dependency (replacements applied), and `stdlib` at the Go version.
pub fn parse_build_info(info: &[u8]) -> Result<Vec<(String, String)>, String> {
    if info.len() < 32 || !info.starts_with(MAGIC) {
        return Err("no Go build information".into());
    }
    if info[15] & 2 == 0 {
        return Err("a Go binary built before Go 1.18: its module list is not read".into());
    }
    let mut at = 32;
    let go_version = read_string(info, &mut at)?;
    let mod_info = read_string(info, &mut at)?;
    // The module text is framed by 16 sentinel bytes on each side.
    let text = if mod_info.len() >= 33 && mod_info[mod_info.len() - 17] == b'\n' {
        &mod_info[16..mod_info.len() - 16]
    } else {
        mod_info
    };
    let text = std::str::from_utf8(text).map_err(|_| "module information is not UTF-8")?;
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["mod", path, version, ..] if *version != "(devel)" && !version.is_empty() => {
                out.push((path.to_string(), version.to_string()))
            }
            ["dep", path, version, ..] => out.push((path.to_string(), version.to_string())),
            ["=>", path, version, ..] => {
                // Replaces the dependency just listed; a local path replacement has no version.
                if let Some(last) = out.last_mut() {
                    if version.is_empty() {
                        out.pop();
                    } else {
                        *last = (path.to_string(), version.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    let go = std::str::from_utf8(go_version).map_err(|_| "the Go version is not UTF-8")?;
    if let Some(v) = go
        .split_whitespace()
        .next()
        .and_then(|v| v.strip_prefix("go"))
    {
        out.push(("stdlib".into(), format!("v{v}")));
    }
    Ok(out)
}

/// A uvarint-length-prefixed string at `*at`.
fn read_string<'a>(info: &'a [u8], at: &mut usize) -> Result<&'a [u8], String> {
    let mut len: u64 = 0;
    let mut shift = 0;
    loop {
        let b = *info.get(*at).ok_or("Go build information is cut short")?;
        *at += 1;
        len |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return Err("a bad length in Go build information".into());
        }
    }
    let end = at
        .checked_add(len as usize)
        .filter(|e| *e <= info.len())
        .ok_or("Go build information is cut short")?;
    let s = &info[*at..end];
    *at = end;
    Ok(s)
}

#[cfg(test)]
pub mod testing {
    /// A build-info block as the Go 1.18+ linker writes it.
    pub fn build_info(go: &str, modinfo: &str) -> Vec<u8> {
        let mut out = super::MAGIC.to_vec();
        out.extend_from_slice(&[8, 2]);
        out.resize(32, 0);
        let framed = [&[0x30u8; 16][..], modinfo.as_bytes(), &[0xf9u8; 16][..]].concat();
        for s in [go.as_bytes(), &framed[..]] {
            let mut n = s.len();
            while n >= 0x80 {
                out.push((n as u8) | 0x80);
                n >>= 7;
            }
            out.push(n as u8);
            out.extend_from_slice(s);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::build_info;
    use super::*;

    const MODINFO: &str = "path\texample.com/cmd/app\nmod\texample.com\tv1.2.0\th1:x=\ndep\tgolang.org/x/net\tv0.1.0\th1:y=\ndep\tgithub.com/old/lib\tv1.0.0\n=>\tgithub.com/fork/lib\tv1.0.1\th1:z=\ndep\tlocal/thing\tv0.0.0\n=>\t../thing\t\nbuild\tGOOS=linux\n";

    #[test]
    fn parses_modules_replacements_and_stdlib() {
        let info = build_info("go1.22.3 X:boringcrypto", MODINFO);
        assert_eq!(
            parse_build_info(&info).unwrap(),
            vec![
                ("example.com".to_string(), "v1.2.0".to_string()),
                ("golang.org/x/net".into(), "v0.1.0".into()),
                ("github.com/fork/lib".into(), "v1.0.1".into()),
                ("stdlib".into(), "v1.22.3".into()),
            ]
        );
        let devel = build_info("go1.21.0", "path\tx\nmod\tx\t(devel)\t\n");
        assert_eq!(
            parse_build_info(&devel).unwrap(),
            vec![("stdlib".to_string(), "v1.21.0".to_string())]
        );
    }

    #[test]
    fn finds_the_aligned_header_in_a_stream() {
        let info = build_info("go1.22.3", MODINFO);
        // An ELF file with a stray unaligned magic, then the real header across a chunk edge.
        let mut file = b"\x7fELF".to_vec();
        file.resize(100, 0);
        file.extend_from_slice(MAGIC);
        file.resize(CHUNK - 16, 7);
        file.extend_from_slice(&info);
        file.extend_from_slice(&[0u8; 1000]);
        let got = find_build_info(&mut &file[..]).unwrap().unwrap();
        assert!(got.starts_with(&info));
        assert_eq!(parse_build_info(&got).unwrap().len(), 4);
        // Not ELF, or ELF without build info.
        assert_eq!(find_build_info(&mut &b"#!/bin/sh\n"[..]).unwrap(), None);
        assert_eq!(find_build_info(&mut &file[..200]).unwrap(), None);
    }

    #[test]
    fn hostile_build_info_is_an_error() {
        let info = build_info("go1.22.3", MODINFO);
        for cut in [10, 32, 33, 40, info.len() - 1] {
            assert!(parse_build_info(&info[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&[8, 2]);
        huge.resize(32, 0);
        huge.extend_from_slice(&[0xff; 10]);
        assert!(parse_build_info(&huge).is_err());
        let mut legacy = MAGIC.to_vec();
        legacy.extend_from_slice(&[8, 0]);
        legacy.resize(64, 0);
        assert!(parse_build_info(&legacy)
            .unwrap_err()
            .contains("before Go 1.18"));
    }
}
