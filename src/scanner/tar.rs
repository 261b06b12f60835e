//! A small streaming tar reader for image layers. Layers come from untrusted registries, so it
//! checks every header's checksum, caps long names and PAX records, never trusts a size it has
//! not read, and never touches the host filesystem: callers get paths and bodies, nothing else.
//!
//! It reads ustar and GNU headers, GNU long names (`L`, `K`) and PAX extended headers (`x`:
//! `path`, `linkpath`, `size`); global PAX headers (`g`) are skipped.

use std::io::{self, Read};

/// Largest long name or PAX record set accepted (real ones are a few hundred bytes).
const MAX_META_BYTES: u64 = 1024 * 1024;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink(String),
    Hardlink(String),
    /// Devices, FIFOs and anything else a scanner never reads.
    Other,
}

/// One entry's header, names already resolved from long-name and PAX records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The raw path as stored (normalise it before use).
    pub path: String,
    pub size: u64,
    pub kind: Kind,
    /// Permission bits (`0o755`); unreadable ones read as 0.
    pub mode: u32,
}

/// A malformed archive.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("tar: {0}")]
    Malformed(String),
    #[error("tar: {0}")]
    Io(#[from] io::Error),
}

/// Streams entries out of `R`.
pub struct Reader<R: Read> {
    inner: R,
    /// Body bytes of the current entry not read yet, then its padding to 512.
    unread: u64,
    pad: u64,
    /// Bytes consumed so far (a body's offset in the archive, for random access later).
    position: u64,
    done: bool,
}

impl<R: Read> Reader<R> {
    /// Starts reading.
    pub fn new(inner: R) -> Self {
        Reader {
            inner,
            unread: 0,
            pad: 0,
            position: 0,
            done: false,
        }
    }

    /// Offset of the current entry's body from the start of the archive.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next entry (skipping whatever is left of the current body), or `None` at the end.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        if self.done {
            return Ok(None);
        }
        self.skip_rest()?;
        let mut long_name: Option<String> = None;
        let mut long_link: Option<String> = None;
        let mut pax: Vec<(String, String)> = Vec::new();
        loop {
            let mut block = [0u8; 512];
            if !self.read_block(&mut block)? {
                // A missing end-of-archive marker is common; a cut header is not.
                self.done = true;
                return Ok(None);
            }
            if block.iter().all(|b| *b == 0) {
                self.done = true;
                return Ok(None);
            }
            verify_checksum(&block)?;
            let size = parse_size(&block[124..136])?;
            let flag = block[156];
            self.unread = size;
            self.pad = (512 - size % 512) % 512;
            match flag {
                b'L' | b'K' | b'x' | b'g' => {
                    if size > MAX_META_BYTES {
                        return Err(TarError::Malformed(format!(
                            "a {} byte metadata record",
                            size
                        )));
                    }
                    let body = self.read_body_unchecked()?;
                    match flag {
                        b'L' => long_name = Some(c_string(&body)),
                        b'K' => long_link = Some(c_string(&body)),
                        b'x' => pax = parse_pax(&body)?,
                        _ => {}
                    }
                    continue;
                }
                _ => {}
            }
            let mut path = long_name.take().unwrap_or_else(|| {
                let name = c_string(&block[0..100]);
                let prefix = if &block[257..262] == b"ustar" {
                    c_string(&block[345..500])
                } else {
                    String::new()
                };
                if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                }
            });
            let mut link = long_link
                .take()
                .unwrap_or_else(|| c_string(&block[157..257]));
            let mut size = size;
            for (k, v) in pax.drain(..) {
                match k.as_str() {
                    "path" => path = v,
                    "linkpath" => link = v,
                    "size" => {
                        size = v.parse().map_err(|_| {
                            TarError::Malformed(format!("PAX size '{v}' is not a number"))
                        })?;
                        self.unread = size;
                        self.pad = (512 - size % 512) % 512;
                    }
                    _ => {}
                }
            }
            let kind = match flag {
                b'0' | 0 | b'7' => Kind::File,
                b'5' => Kind::Dir,
                b'2' => Kind::Symlink(link),
                b'1' => Kind::Hardlink(link),
                _ => Kind::Other,
            };
            // Links and directories carry no body whatever their size field says.
            if !matches!(kind, Kind::File | Kind::Other) {
                self.unread = 0;
                self.pad = 0;
                size = 0;
            }
            let mode = parse_octal(&block[100..108]).unwrap_or(0) as u32 & 0o7777;
            return Ok(Some(Entry {
                path,
                size,
                kind,
                mode,
            }));
        }
    }

    /// The current body as a stream (what is left unread is skipped by the next call).
    pub fn body(&mut self) -> Body<'_, R> {
        Body(self)
    }

    /// Reads the current body when it is at most `limit` bytes; `None` (and the body is skipped
    /// by the next call) when larger.
    pub fn read_body(&mut self, limit: u64) -> Result<Option<Vec<u8>>, TarError> {
        if self.unread > limit {
            return Ok(None);
        }
        self.read_body_unchecked().map(Some)
    }

    fn read_body_unchecked(&mut self) -> Result<Vec<u8>, TarError> {
        let mut body = Vec::with_capacity(self.unread.min(1 << 20) as usize);
        let n = (&mut self.inner).take(self.unread).read_to_end(&mut body)? as u64;
        self.position += n;
        if n < self.unread {
            return Err(TarError::Malformed(
                "the archive ends inside an entry".into(),
            ));
        }
        self.unread = 0;
        self.skip_rest()?;
        Ok(body)
    }

    fn skip_rest(&mut self) -> Result<(), TarError> {
        let want = self.unread + self.pad;
        if want > 0 {
            let n = io::copy(&mut (&mut self.inner).take(want), &mut io::sink())?;
            self.position += n;
            if n < self.unread {
                return Err(TarError::Malformed(
                    "the archive ends inside an entry".into(),
                ));
            }
            if n < want {
                // The last body is whole but its padding (and the end marker) is missing: umoci
                // 0.4.7 writes layers like that, and Docker and Trivy accept them.
                self.done = true;
            }
        }
        self.unread = 0;
        self.pad = 0;
        Ok(())
    }

    /// Reads one block; `false` on a clean end of input before it.
    fn read_block(&mut self, block: &mut [u8; 512]) -> Result<bool, TarError> {
        let mut got = 0;
        while got < 512 {
            match self.inner.read(&mut block[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    return Err(TarError::Malformed(
                        "the archive ends inside a header".into(),
                    ))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.position += 512;
        Ok(true)
    }

    /// Gives back the underlying reader (to drain it, e.g. to finish a digest).
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// The current entry's body; see [`Reader::body`].
pub struct Body<'a, R: Read>(&'a mut Reader<R>);

impl<R: Read> Read for Body<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = &mut *self.0;
        let want = (buf.len() as u64).min(r.unread) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = r.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside an entry",
            ));
        }
        r.unread -= n as u64;
        r.position += n as u64;
        Ok(n)
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn verify_checksum(block: &[u8; 512]) -> Result<(), TarError> {
    let stored = parse_octal(&block[148..156])
        .ok_or_else(|| TarError::Malformed("a header with an unreadable checksum".into()))?;
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                *b as u64
            }
        })
        .sum();
    if sum != stored {
        return Err(TarError::Malformed(
            "a header checksum does not match".into(),
        ));
    }
    Ok(())
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let s = c_string(field);
    let s = s.trim_matches(|c: char| c == ' ' || c == '\0');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

/// Sizes are octal, or GNU base-256 when the first byte's high bit is set.
fn parse_size(field: &[u8]) -> Result<u64, TarError> {
    if field[0] & 0x80 != 0 {
        let mut v: u64 = (field[0] & 0x7f) as u64;
        for b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(*b as u64))
                .ok_or_else(|| TarError::Malformed("an entry size overflows".into()))?;
        }
        return Ok(v);
    }
    parse_octal(field).ok_or_else(|| TarError::Malformed("an unreadable entry size".into()))
}

/// PAX records: `LEN key=value\n`, LEN counting the whole record.
fn parse_pax(body: &[u8]) -> Result<Vec<(String, String)>, TarError> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let space = rest
            .iter()
            .position(|b| *b == b' ')
            .ok_or_else(|| TarError::Malformed("a PAX record without a length".into()))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|l| *l > space + 1 && *l <= rest.len())
            .ok_or_else(|| TarError::Malformed("a PAX record with a bad length".into()))?;
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|b| *b == b'=') {
            out.push((
                String::from_utf8_lossy(&record[..eq]).into_owned(),
                String::from_utf8_lossy(&record[eq + 1..]).into_owned(),
            ));
        }
        rest = &rest[len..];
    }
    Ok(out)
}

/// Test helpers that write tar bytes (used by this module's and `layers`' tests).
#[cfg(test)]
pub mod testing {
    /// A header block for `name` of `size` bytes with `flag` and `link`.
    pub fn header(name: &str, size: u64, flag: u8, link: &str) -> [u8; 512] {
        let mut b = [0u8; 512];
        b[..name.len().min(100)].copy_from_slice(&name.as_bytes()[..name.len().min(100)]);
        b[100..108].copy_from_slice(b"0000644\0");
        b[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        b[156] = flag;
        b[157..157 + link.len()].copy_from_slice(link.as_bytes());
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        b[148..156].copy_from_slice(b"        ");
        let sum: u32 = b.iter().map(|x| *x as u32).sum();
        b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        b
    }

    /// An archive of (name, flag, link, body) entries with its end marker.
    pub fn archive(entries: &[(&str, u8, &str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, flag, link, body) in entries {
            out.extend_from_slice(&header(name, body.len() as u64, *flag, link));
            out.extend_from_slice(body);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    /// Entries with their bodies (`None`: over the 16-byte test limit).
    type Entries = Vec<(Entry, Option<Vec<u8>>)>;

    fn all(bytes: &[u8]) -> Result<Entries, TarError> {
        let mut r = Reader::new(bytes);
        let mut out = vec![];
        while let Some(e) = r.next_entry()? {
            let body = r.read_body(16)?;
            out.push((e, body));
        }
        Ok(out)
    }

    #[test]
    fn reads_files_links_long_names_and_pax() {
        let long = format!("{}/file", "d".repeat(150));
        let pax_body = {
            let rec = "path=pax/renamed\n";
            format!("{} {rec}", rec.len() + 3)
        };
        let bytes = archive(&[
            ("etc/os-release", b'0', "", b"ID=alpine\n"),
            ("etc/link", b'2', "/usr/lib/x", b""),
            ("./././@LongLink", b'L', "", long.as_bytes()),
            ("truncated", b'0', "", b"long"),
            ("pax", b'x', "", pax_body.as_bytes()),
            ("short", b'0', "", b"p"),
            ("big", b'0', "", &[7u8; 600]),
            ("after", b'5', "", b""),
        ]);
        let got = all(&bytes).unwrap();
        let names: Vec<&str> = got.iter().map(|(e, _)| e.path.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "etc/os-release",
                "etc/link",
                long.as_str(),
                "pax/renamed",
                "big",
                "after"
            ]
        );
        assert_eq!(got[0].1.as_deref(), Some(&b"ID=alpine\n"[..]));
        assert_eq!(got[1].0.kind, Kind::Symlink("/usr/lib/x".into()));
        assert_eq!(
            got[4].1, None,
            "over the limit: skipped, and the next entry still reads"
        );
        assert_eq!(got[5].0.kind, Kind::Dir);
        assert_eq!(got[0].0.mode, 0o644);
    }

    #[test]
    fn bodies_stream_and_the_rest_is_skipped() {
        let bytes = archive(&[("big", b'0', "", &[7u8; 1500]), ("next", b'0', "", b"n")]);
        let mut r = Reader::new(&bytes[..]);
        r.next_entry().unwrap().unwrap();
        let mut head = [0u8; 10];
        r.body().read_exact(&mut head).unwrap();
        assert_eq!(head, [7u8; 10]);
        assert_eq!(r.next_entry().unwrap().unwrap().path, "next");
        assert_eq!(r.read_body(16).unwrap().as_deref(), Some(&b"n"[..]));
        // A body cut short is an error when streamed, too.
        let mut cut = Reader::new(&bytes[..800]);
        cut.next_entry().unwrap().unwrap();
        let mut sink = Vec::new();
        assert!(cut.body().read_to_end(&mut sink).is_err());
    }

    #[test]
    fn hostile_archives_are_errors_not_panics() {
        let good = archive(&[("a", b'0', "", b"hello")]);
        // A flipped byte breaks the checksum.
        let mut bad = good.clone();
        bad[3] ^= 0x55;
        assert!(matches!(all(&bad), Err(TarError::Malformed(_))));
        // Cut inside the body.
        assert!(all(&good[..515]).is_err());
        // Cut after the last body, inside its padding (umoci 0.4.7 writes such layers): the
        // entry is whole, so it reads, and the archive ends there.
        let cut = all(&good[..517]).unwrap();
        assert_eq!(cut.len(), 1);
        assert_eq!(cut[0].1.as_deref(), Some(&b"hello"[..]));
        // Cut inside a header.
        assert!(all(&good[..100]).is_err());
        // A body claiming far more than exists.
        let mut huge = header("a", 0, b'0', "").to_vec();
        huge[124..136].copy_from_slice(b"77777777777\0");
        huge[148..156].copy_from_slice(b"        ");
        let sum: u32 = huge.iter().map(|x| *x as u32).sum();
        huge[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        assert!(all(&huge).is_err());
        // An oversized long-name record.
        let mut meta = header("././@LongLink", 0, b'L', "").to_vec();
        meta[124..136].copy_from_slice(b"00777777777\0");
        meta[148..156].copy_from_slice(b"        ");
        let sum: u32 = meta.iter().map(|x| *x as u32).sum();
        meta[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        assert!(all(&meta).is_err());
        // A bad PAX length.
        let pax = archive(&[("p", b'x', "", b"999 path=x\n"), ("a", b'0', "", b"")]);
        assert!(all(&pax).is_err());
        // Empty input is an empty archive.
        assert!(all(&[]).unwrap().is_empty());
    }
}
