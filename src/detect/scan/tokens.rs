//! Tokens with a rigid shape: JWTs, cloud and SaaS keys, private keys, credentials in URIs and
//! `Basic` headers.

use base64::Engine as _;

use super::*;
use crate::detect::validators as v;
use crate::detect::Kind;

/// Base64url characters, as a table: JWTs are long, and this is the loop that reads them.
pub(super) static B64URL: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    t
};

pub(super) fn b64url(b: u8) -> bool {
    B64URL[b as usize]
}

/// `run(s, start, max, b64url)`, 16 bytes at a time: a JWT is a few hundred base64url
/// characters, read three runs at a time.
pub(super) fn b64url_run(s: &[u8], start: usize, max: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    // SAFETY (of the closure's intrinsics): SSE2 is part of the x86-64 baseline.
    let vector = |v| unsafe {
        use std::arch::x86_64::*;
        let alnum = _mm_or_si128(
            _mm_or_si128(within(v, b'0', b'9'), within(v, b'A', b'Z')),
            within(v, b'a', b'z'),
        );
        let marks = _mm_or_si128(
            _mm_cmpeq_epi8(v, _mm_set1_epi8(b'-' as i8)),
            _mm_cmpeq_epi8(v, _mm_set1_epi8(b'_' as i8)),
        );
        _mm_or_si128(alnum, marks)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let vector = ();
    run_end(s, start, start.saturating_add(max), vector, b64url)
}

/// [`jwt`], returning where the token found ends (0 when there is none).
pub(super) fn jwt_from(s: &[u8], at: usize, out: &mut Vec<Hit>) -> usize {
    let before = out.len();
    jwt(s, at, out);
    out.get(before).map_or(0, |h| h.end)
}

pub(super) fn jwt(s: &[u8], at: usize, out: &mut Vec<Hit>) {
    if at > 0 && b64url(s[at - 1]) {
        return;
    }
    let h_end = b64url_run(s, at, 4096);
    if h_end - at < 8 || h_end >= s.len() || s[h_end] != b'.' {
        return;
    }
    let p_end = b64url_run(s, h_end + 1, 65536);
    if p_end - h_end < 8
        || p_end >= s.len()
        || s[p_end] != b'.'
        || &s[h_end + 1..h_end + 4] != b"eyJ"
    {
        return;
    }
    let sig_end = b64url_run(s, p_end + 1, 4096);
    let unsigned = sig_end == p_end + 1;
    let ok = header_alg(&s[at..h_end]).is_some_and(|none| none || !unsigned);
    if ok {
        out.push(Hit {
            kind: Kind::Jwt,
            start: at,
            end: sig_end,
        });
    }
}

/// What [`jwt_alg`] says of the base64url-encoded JWT header `encoded`. An issuer puts the same
/// header on every token, so the last header accepted and its verdict are kept (per thread),
/// and a token with that header is not decoded again; look-alikes, whose headers are refused,
/// do not displace it.
pub(super) fn header_alg(encoded: &[u8]) -> Option<bool> {
    thread_local! {
        static LAST: std::cell::RefCell<(Vec<u8>, Option<bool>)> = Default::default();
    }
    LAST.with_borrow_mut(|(last, verdict)| {
        if verdict.is_some() && *last == encoded {
            return *verdict;
        }
        let read = decode_header_alg(encoded);
        // Only short headers are kept: the memory stays bounded.
        if read.is_some() && encoded.len() <= 256 {
            last.clear();
            last.extend_from_slice(encoded);
            *verdict = read;
        }
        read
    })
}

/// [`header_alg`] without the memory: the header must decode to a JSON object naming an
/// algorithm.
pub(super) fn decode_header_alg(encoded: &[u8]) -> Option<bool> {
    // Real headers are a few dozen bytes: a small buffer on the stack (zeroing one sized for
    // the longest header cost more than the decode), the heap for the rare long one.
    let mut small = [0u8; 256];
    let mut large = Vec::new();
    let buf: &mut [u8] = if encoded.len() / 4 * 3 + 3 <= small.len() {
        &mut small
    } else {
        large.resize(encoded.len() / 4 * 3 + 3, 0);
        &mut large
    };
    decode_b64url(encoded, buf).and_then(|n| jwt_alg(&buf[..n]))
}

/// Each base64url character's six bits; 0xff for anything else.
pub(super) static B64URL_VALUE: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut t = [0xffu8; 256];
    let mut k = 0;
    while k < 64 {
        t[alphabet[k] as usize] = k as u8;
        k += 1;
    }
    t
};

/// Unpadded base64url `encoded`, decoded into `out`, which must hold `encoded.len() / 4 * 3 +
/// 2` bytes; the decoded length, or `None` where a strict decoder refuses: a length of 4n + 1,
/// a character outside the alphabet, bits set past the last whole byte. A JWT header is a few
/// dozen characters, and the general decoder's setup cost more than decoding them.
pub(super) fn decode_b64url(encoded: &[u8], out: &mut [u8]) -> Option<usize> {
    let value = |c: &u8| B64URL_VALUE[*c as usize] as u32;
    let mut chunks = encoded.chunks_exact(4);
    let mut n = 0;
    // An invalid character's value has bit 7 set; they are gathered, not branched on.
    let mut invalid = 0;
    for c in chunks.by_ref() {
        let (a, b, c, d) = (value(&c[0]), value(&c[1]), value(&c[2]), value(&c[3]));
        invalid |= a | b | c | d;
        let bits = a << 18 | b << 12 | c << 6 | d;
        out.get_mut(n..n + 3)?
            .copy_from_slice(&bits.to_be_bytes()[1..]);
        n += 3;
    }
    let rest = chunks.remainder();
    let bits = rest.iter().enumerate().fold(0u32, |bits, (k, c)| {
        invalid |= value(c);
        bits | value(c) << (18 - 6 * k)
    });
    let whole = match rest.len() {
        0 => 0,
        2 => 1,
        3 => 2,
        _ => return None,
    };
    let bytes = bits.to_be_bytes();
    // The bits after the last whole byte must be zero (what a canonical encoder writes).
    if invalid & 0x80 != 0 || bytes[1 + whole..].iter().any(|b| *b != 0) {
        return None;
    }
    out.get_mut(n..n + whole)?
        .copy_from_slice(&bytes[1..1 + whole]);
    Some(n + whole)
}

/// Whether a decoded JWT header is a JSON object whose `alg` member is a string: `None` when
/// it is not, else whether that algorithm is `none`. Read with the detector's own walker,
/// which builds nothing (a serde parse of each header cost a tenth of the whole scan).
pub(super) fn jwt_alg(header: &[u8]) -> Option<bool> {
    // Text, an object, and valid JSON; `alg` a top-level string member, named once.
    std::str::from_utf8(header).ok()?;
    if header.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    thread_local! {
        // The walker's path, kept: a fresh one allocated at every header.
        static SCRATCH: std::cell::RefCell<crate::detect::json::Scratch<bool>> = Default::default();
    }
    let mut alg: Option<bool> = None;
    let mut named = 0;
    SCRATCH
        .with_borrow_mut(|scratch| {
            crate::detect::json::walk_with(
                header,
                scratch,
                |key: &[u8]| key == b"alg",
                |path: &[crate::detect::json::Seg<bool>],
                 value: &[u8],
                 span: std::ops::Range<usize>| {
                    if let [crate::detect::json::Seg::Key(true)] = path {
                        named += 1;
                        // Strings are visited with the span between their quotes.
                        if span.start > 0 && header[span.start - 1] == b'"' {
                            alg = Some(value == b"none");
                        }
                    }
                },
            )
        })
        .ok()?;
    // A number or object under `alg`, or `alg` twice, is not a header.
    if named != 1 {
        return None;
    }
    alg
}

pub(super) fn aws_akid(s: &[u8], at: usize, out: &mut Vec<Hit>) {
    if at > 0 && s[at - 1].is_ascii_alphanumeric() {
        return;
    }
    let end = run(s, at + 4, 16, |b| {
        b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)
    });
    if end - at != 20 || (end < s.len() && s[end].is_ascii_alphanumeric()) {
        return;
    }
    if s[at..end].ends_with(b"EXAMPLE") {
        return;
    }
    out.push(Hit {
        kind: Kind::AwsAccessKeyId,
        start: at,
        end,
    });
}

/// A token of exactly `len` characters after its prefix.
pub(super) fn fixed_token(
    s: &[u8],
    at: usize,
    body: usize,
    len: usize,
    kind: Kind,
    out: &mut Vec<Hit>,
) {
    if at > 0 && is_word(s[at - 1]) {
        return;
    }
    let end = run(s, body, len + 1, |b| is_word(b) || b == b'-');
    if end - body == len && v::entropy(&s[body..end]) > 3.0 && !v::placeholder(&s[body..end]) {
        out.push(Hit {
            kind,
            start: at,
            end,
        });
    }
}

/// A token of at least `min` characters after its prefix.
pub(super) fn min_token(
    s: &[u8],
    at: usize,
    body: usize,
    min: usize,
    kind: Kind,
    out: &mut Vec<Hit>,
) {
    if at > 0 && is_word(s[at - 1]) {
        return;
    }
    let end = run(s, body, 256, |b| is_word(b) || b == b'-');
    if end - body >= min && v::entropy(&s[body..end]) > 3.0 && !v::placeholder(&s[body..end]) {
        out.push(Hit {
            kind,
            start: at,
            end,
        });
    }
}

pub(super) fn private_key(s: &[u8], at: usize, out: &mut Vec<Hit>) {
    let line_end = run(s, at, 100, |b| b != b'\n' && b != b'\r' && b != b'\\');
    let line = &s[at..line_end];
    let putty = line.starts_with(b"PuTTY-User-Key-File-");
    let pem = line.ends_with(b"PRIVATE KEY-----") || line.ends_with(b"PRIVATE KEY BLOCK-----");
    if !(putty || pem) {
        return;
    }
    // A PEM key needs its body: base64 after the header line.
    if pem {
        let body = &s[line_end..s.len().min(line_end + 200)];
        let b64 = body
            .iter()
            .filter(|b| b.is_ascii_alphanumeric() || **b == b'+' || **b == b'/')
            .count();
        if b64 < 40 {
            return;
        }
    }
    out.push(Hit {
        kind: Kind::PrivateKey,
        start: at,
        end: line_end,
    });
}

pub(super) fn conn_uri(s: &[u8], colon: usize, out: &mut Vec<Hit>) {
    const SCHEMES: &[&[u8]] = &[
        b"postgres",
        b"postgresql",
        b"mysql",
        b"mongodb",
        b"mongodb+srv",
        b"redis",
        b"rediss",
        b"amqp",
        b"amqps",
        b"sqlserver",
        b"mssql",
        b"mariadb",
    ];
    let mut start = colon;
    while start > 0
        && (s[start - 1].is_ascii_alphanumeric() || s[start - 1] == b'+' || s[start - 1] == b':')
    {
        start -= 1;
    }
    let scheme = s[start..colon].to_ascii_lowercase();
    let scheme = scheme.strip_prefix(b"jdbc:").unwrap_or(&scheme);
    if !SCHEMES.contains(&scheme) {
        return;
    }
    let auth_start = colon + 3;
    let at = run(s, auth_start, 256, |b| {
        b != b'@' && b != b'/' && !b.is_ascii_whitespace() && b != b'"'
    });
    if at >= s.len() || s[at] != b'@' {
        return;
    }
    let Some(c) = s[auth_start..at].iter().position(|b| *b == b':') else {
        return;
    };
    let password = &s[auth_start + c + 1..at];
    if password.is_empty() || v::placeholder(password) {
        return;
    }
    let end = run(s, at, 512, |b| {
        !b.is_ascii_whitespace() && b != b'"' && b != b'\''
    });
    out.push(Hit {
        kind: Kind::ConnectionUri,
        start,
        end,
    });
}

pub(super) fn http_basic(s: &[u8], at: usize, body: usize, out: &mut Vec<Hit>) {
    // Only in an Authorization header (or a header-like line).
    let before = &s[at.saturating_sub(20)..at].to_ascii_lowercase();
    if !before.windows(13).any(|w| w == b"authorization") {
        return;
    }
    let end = run(s, body, 1024, |b| {
        b.is_ascii_alphanumeric() || b"+/=".contains(&b)
    });
    if end - body < 8 {
        return;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(&s[body..end]);
    if decoded.is_ok_and(|d| d.contains(&b':') && d.iter().all(|b| !b.is_ascii_control())) {
        out.push(Hit {
            kind: Kind::HttpBasic,
            start: at,
            end,
        });
    }
}
