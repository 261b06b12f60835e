//! A JSON walker that hands every scalar to the detector with its key path, without building a
//! document tree: strings are borrowed unless they hold escapes, numbers are scanned as text.
//! Depth is capped, so hostile nesting cannot exhaust the stack (there is no recursion anyway).

/// One element of a path: an object key or an array index.
/// `K` is whatever the caller turns a key into ([`walk`]: a shared string); the walker makes one
/// per member and drops it when the member ends, without cloning it.
#[derive(Debug, Clone)]
pub enum Seg<K = std::rc::Rc<str>> {
    Key(K),
    Index(usize),
}

/// Renders a path as `$.a.b[2]`.
pub fn render<K: AsRef<str>>(path: &[Seg<K>]) -> String {
    let len: usize = path
        .iter()
        .map(|s| match s {
            Seg::Key(k) => k.as_ref().len() + 4,
            Seg::Index(_) => 6,
        })
        .sum();
    let mut out = String::with_capacity(len + 1);
    out.push('$');
    for s in path {
        match s {
            Seg::Key(k) if is_plain(k.as_ref()) => {
                out.push('.');
                out.push_str(k.as_ref());
            }
            Seg::Key(k) => {
                let k = k.as_ref();
                out.push_str("[\"");
                out.push_str(&k.replace('\\', "\\\\").replace('"', "\\\""));
                out.push_str("\"]");
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// A key that needs no quoting in a path.
fn is_plain(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Why a document is not JSON.
#[derive(Debug, PartialEq, Eq)]
pub struct NotJson(pub usize);

/// What [`walk`] calls for each scalar: its path, its value (unescaped) and its span in the
/// document (between the quotes, for strings).
pub type Visitor<'a, K = std::rc::Rc<str>> =
    dyn FnMut(&[Seg<K>], &[u8], std::ops::Range<usize>) + 'a;

/// Most nesting followed.
pub const MAX_DEPTH: usize = 256;

/// Calls `visit(path, value, span)` for every string and number in `doc`.
pub fn walk(doc: &[u8], visit: &mut Visitor<'_>) -> Result<(), NotJson> {
    walk_with(
        doc,
        &mut Scratch::default(),
        |k: &[u8]| -> std::rc::Rc<str> { String::from_utf8_lossy(k).into() },
        visit,
    )
}

/// The walker's working memory, kept between documents by callers that walk many, so a
/// document costs no allocation for its nesting.
pub struct Scratch<K> {
    path: Vec<Seg<K>>,
    /// The unescaped text of the last string that held an escape.
    text: Vec<u8>,
}

impl<K> Default for Scratch<K> {
    fn default() -> Self {
        Scratch {
            path: Vec::new(),
            text: Vec::new(),
        }
    }
}

/// [`walk`], with each key (unescaped) turned into a `K` by `key` once per occurrence, and the
/// working memory of `scratch`.
///
/// The walk follows the grammar instead of dispatching on every byte: after a key only `:` may
/// come, after a member only `,` or the closing bracket, so the one branch that depends on the
/// data is the kind of each value. The path is the whole nesting state: each open container
/// holds one segment, the member being read (a key for an object, an index for an array), so
/// an empty container opens nothing and a scalar costs no push or pop.
pub fn walk_with<K>(
    doc: &[u8],
    scratch: &mut Scratch<K>,
    make_key: impl FnMut(&[u8]) -> K,
    visit: impl FnMut(&[Seg<K>], &[u8], std::ops::Range<usize>),
) -> Result<(), NotJson> {
    walk_indexed(doc, None, scratch, make_key, visit)
}

/// What turns a key's unescaped bytes into the walker's `K`: any `FnMut(&[u8]) -> K`, or a
/// type of its own whose method the walk can inline (a closure called once per member is a
/// call the optimiser would not inline).
pub trait MakeKey<K> {
    /// The `K` of a key whose unescaped bytes are `raw`. `ahead` starts with `raw`: it is the
    /// document from the key's first byte on when the key held no escape (so a maker may read
    /// a few bytes past the key without a copy), else `raw` itself.
    fn make_key(&mut self, raw: &[u8], ahead: &[u8]) -> K;
}

impl<K, F: FnMut(&[u8]) -> K> MakeKey<K> for F {
    fn make_key(&mut self, raw: &[u8], _: &[u8]) -> K {
        self(raw)
    }
}

/// [`walk_with`], given (in `quotes`) where `doc` has a `"` or a `\\`, as
/// [`super::scan::strong_and_quotes`] records them: the end of each string is then found there
/// instead of by reading the string.
pub fn walk_indexed<K>(
    doc: &[u8],
    quotes: Option<&[u64]>,
    scratch: &mut Scratch<K>,
    make_key: impl MakeKey<K>,
    visit: impl FnMut(&[Seg<K>], &[u8], std::ops::Range<usize>),
) -> Result<(), NotJson> {
    // A bitmap for another document would misread this one: it must cover exactly this one
    // (and the zero word after it).
    let walked = match quotes.filter(|q| q.len() == doc.len().div_ceil(64) + 1) {
        Some(q) => walk_generic(doc, Bitmap(q), scratch, make_key, visit),
        None => walk_generic(doc, Search, scratch, make_key, visit),
    };
    // A huge escaped string is not kept between documents.
    if scratch.text.capacity() > 1 << 16 {
        scratch.text = Vec::new();
    }
    walked
}

/// How the walk finds the first `"` or `\\` of a string's text: compiled into the walk once per
/// way, so no string pays for a choice between them.
trait Specials {
    /// The first `"` or `\\` in `doc` at or after `from` (at most `doc.len()`).
    fn first(&self, doc: &[u8], from: usize) -> Option<usize>;
}

/// By reading the string.
struct Search;

impl Specials for Search {
    #[inline(always)]
    fn first(&self, doc: &[u8], from: usize) -> Option<usize> {
        quote_or_backslash(&doc[from..]).map(|k| from + k)
    }
}

/// In a bitmap of the document's `"`s and `\\`s, one bit per byte and a zero word after them.
struct Bitmap<'q>(&'q [u64]);

impl Specials for Bitmap<'_> {
    #[inline(always)]
    fn first(&self, _: &[u8], from: usize) -> Option<usize> {
        next_bit(self.0, from)
    }
}

/// [`walk_indexed`], with the way strings are read chosen.
#[inline(always)]
fn walk_generic<K>(
    doc: &[u8],
    quotes: impl Specials,
    scratch: &mut Scratch<K>,
    mut make_key: impl MakeKey<K>,
    mut visit: impl FnMut(&[Seg<K>], &[u8], std::ops::Range<usize>),
) -> Result<(), NotJson> {
    let quotes = &quotes;
    let Scratch { path, text } = scratch;
    path.clear();
    // `c` is always the byte at `i` (0 past the end, which no JSON token starts with): each
    // step reads the byte it stops at once, for the next step to dispatch on.
    let (mut i, mut c) = skip_ws(doc, 0);
    'value: loop {
        // A value starts at `i`.
        match c {
            b'{' | b'[' => {
                let (first, fc) = skip_ws(doc, i + 1);
                let object = c == b'{';
                let close = if object { b'}' } else { b']' };
                if fc == close {
                    // Empty: a complete value that opens nothing.
                    i = first + 1;
                } else if path.len() >= MAX_DEPTH {
                    return Err(NotJson(i));
                } else if object {
                    let (key, value, vc) = member_key(doc, first, fc, quotes, text, &mut make_key)?;
                    path.push(Seg::Key(key));
                    (i, c) = (value, vc);
                    continue 'value;
                } else {
                    path.push(Seg::Index(0));
                    (i, c) = (first, fc);
                    continue 'value;
                }
            }
            b'"' => {
                let (value, _, end) = string(doc, i, quotes, text)?;
                visit(path, value, i + 1..end - 1);
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let end = number_end(doc, i);
                visit(path, &doc[i..end], i..end);
                i = end;
            }
            b't' | b'f' | b'n' => {
                let word: &[u8] = match c {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                if !doc[i..].starts_with(word) {
                    return Err(NotJson(i));
                }
                i += word.len();
            }
            _ => return Err(NotJson(i)),
        }
        // A value ended before `i`: the next member of its container, or the container's end
        // (which ends a value of the container around it, and so on).
        loop {
            (i, c) = skip_ws(doc, i);
            match path.last_mut() {
                None if i == doc.len() => return Ok(()),
                None => return Err(NotJson(i)),
                Some(member @ Seg::Key(_)) => match c {
                    b',' => {
                        // The next member's key takes the place of this one's.
                        let (at, ac) = skip_ws(doc, i + 1);
                        let (key, value, vc) =
                            member_key(doc, at, ac, quotes, text, &mut make_key)?;
                        *member = Seg::Key(key);
                        (i, c) = (value, vc);
                        continue 'value;
                    }
                    b'}' => {
                        path.pop();
                        i += 1;
                    }
                    _ => return Err(NotJson(i)),
                },
                Some(Seg::Index(index)) => match c {
                    b',' => {
                        *index += 1;
                        (i, c) = skip_ws(doc, i + 1);
                        continue 'value;
                    }
                    b']' => {
                        path.pop();
                        i += 1;
                    }
                    _ => return Err(NotJson(i)),
                },
            }
        }
    }
}

/// Reads `"key" :` at `at` (a member must follow; `c` is the byte there), and returns the key
/// made of it, where its value starts and the value's first byte. Inlined: it runs once per
/// member.
#[inline(always)]
fn member_key<K>(
    doc: &[u8],
    at: usize,
    c: u8,
    quotes: &impl Specials,
    text: &mut Vec<u8>,
    make_key: &mut impl MakeKey<K>,
) -> Result<(K, usize, u8), NotJson> {
    if c != b'"' {
        return Err(NotJson(at));
    }
    let (key, escaped, end) = string(doc, at, quotes, text)?;
    let (colon, cc) = skip_ws(doc, end);
    if cc != b':' {
        return Err(NotJson(colon));
    }
    let ahead = if escaped { key } else { &doc[at + 1..] };
    let (value, vc) = skip_ws(doc, colon + 1);
    Ok((make_key.make_key(key, ahead), value, vc))
}

/// Where the whitespace from `i` ends, and the byte there (0 at the end of `doc`). Most JSON on
/// the wire is compact: a byte above the space ends it at once, in one compare.
#[inline(always)]
fn skip_ws(doc: &[u8], i: usize) -> (usize, u8) {
    match doc.get(i) {
        Some(&b) if b > b' ' => (i, b),
        _ => skip_ws_from(doc, i),
    }
}

fn skip_ws_from(doc: &[u8], mut i: usize) -> (usize, u8) {
    while i < doc.len() && matches!(doc[i], b' ' | b'\n' | b'\r' | b'\t') {
        i += 1;
    }
    (i, doc.get(i).copied().unwrap_or(0))
}

/// Bytes a JSON number may hold.
fn number_byte(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
}

/// Where the number starting at `i` ends. Ids and timestamps are a dozen digits or more: the
/// run is read 16 bytes at a time (SSE2, which every x86-64 CPU has) while it lasts.
fn number_end(doc: &[u8], i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    // SAFETY (of the closure's intrinsics): SSE2 is part of the x86-64 baseline.
    let vector = |v| unsafe {
        use std::arch::x86_64::*;
        let is = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
        let signs = _mm_or_si128(is(b'-'), is(b'+'));
        // Setting bit 5 folds `E` onto `e`.
        let e = _mm_cmpeq_epi8(
            _mm_or_si128(v, _mm_set1_epi8(0x20)),
            _mm_set1_epi8(b'e' as i8),
        );
        let marks = _mm_or_si128(_mm_or_si128(signs, is(b'.')), e);
        _mm_or_si128(super::scan::within(v, b'0', b'9'), marks)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let vector = ();
    super::scan::run_end(doc, i, doc.len(), vector, number_byte)
}

/// The string starting at `doc[at] == '"'`: its text, unescaped, whether it held an escape,
/// and the index after its closing quote. Inlined into the walk: most strings hold no escape,
/// and for them this is a search and a compare, and the text is borrowed from `doc`
/// ([`unescape`] decodes the others into `text`, which is reused from string to string).
#[inline(always)]
fn string<'a>(
    doc: &'a [u8],
    at: usize,
    quotes: &impl Specials,
    text: &'a mut Vec<u8>,
) -> Result<(&'a [u8], bool, usize), NotJson> {
    let body = at + 1;
    match quotes.first(doc, body) {
        Some(k) if doc.get(k) == Some(&b'"') => Ok((&doc[body..k], false, k + 1)),
        Some(k) => {
            let end = unescape(doc, body, k, text)?;
            Ok((&text[..], true, end))
        }
        None => Err(NotJson(at)),
    }
}

/// The string whose text starts at `body` and whose first escape is at `first`, decoded into
/// `out`; the index after its closing quote.
#[cold]
#[inline(never)]
fn unescape(doc: &[u8], body: usize, first: usize, out: &mut Vec<u8>) -> Result<usize, NotJson> {
    let at = body - 1;
    out.clear();
    out.extend_from_slice(&doc[body..first]);
    let mut i = first;
    while i < doc.len() {
        match doc[i] {
            b'"' => return Ok(i + 1),
            b'\\' => {
                let e = *doc.get(i + 1).ok_or(NotJson(i))?;
                i += 2;
                match e {
                    b'"' => out.push(b'"'),
                    b'\\' => out.push(b'\\'),
                    b'/' => out.push(b'/'),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'u' => {
                        let hex = doc.get(i..i + 4).ok_or(NotJson(i))?;
                        let cp = std::str::from_utf8(hex)
                            .ok()
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .ok_or(NotJson(i))?;
                        i += 4;
                        let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => return Err(NotJson(i)),
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Err(NotJson(at))
}

/// The first set bit at or after `from` in a bitmap of `"`s and `\\`s.
#[inline]
fn next_bit(bits: &[u64], from: usize) -> Option<usize> {
    // Most strings end within 64 bytes of their start but a third of them cross into the next
    // word: reading the two words as one window decides both cases without a branch on the data.
    // The bitmap ends in a zero word, so both words exist for any `from` in the document.
    let word = from / 64;
    let &[lo, hi] = bits.get(word..word + 2)? else {
        return None;
    };
    let window = (((hi as u128) << 64) | lo as u128) >> (from % 64);
    if window != 0 {
        return Some(from + window.trailing_zeros() as usize);
    }
    bits.get(word + 2..)?
        .iter()
        .position(|w| *w != 0)
        .map(|k| (word + 2 + k) * 64 + bits[word + 2 + k].trailing_zeros() as usize)
}

/// The first `"` or `\\` in `s`. Most JSON strings are short, so this checks 16 bytes at a time
/// inline (SSE2, which every x86-64 CPU has) before handing long strings to memchr.
fn quote_or_backslash(s: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let mut i = 0;
        while i + 16 <= s.len() && i < 64 {
            // SAFETY: SSE2 is part of the x86-64 baseline; the 16-byte unaligned load reads
            // s[i..i + 16], inside the slice by the loop condition.
            let hits = unsafe {
                let v = _mm_loadu_si128(s.as_ptr().add(i) as *const __m128i);
                let q = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
                let b = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
                _mm_movemask_epi8(_mm_or_si128(q, b)) as u32
            };
            if hits != 0 {
                return Some(i + hits.trailing_zeros() as usize);
            }
            i += 16;
        }
        memchr::memchr2(b'"', b'\\', &s[i..]).map(|k| i + k)
    }
    #[cfg(not(target_arch = "x86_64"))]
    memchr::memchr2(b'"', b'\\', s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(doc: &str) -> Result<Vec<(String, String)>, NotJson> {
        let mut out = vec![];
        walk(doc.as_bytes(), &mut |p, v, _| {
            out.push((render(p), String::from_utf8_lossy(v).into_owned()))
        })?;
        Ok(out)
    }

    #[test]
    fn paths_for_every_scalar() {
        let got = all(r#"{"user":{"email":"a@b.io","cards":[{"pan":"4111"},{"pan":4242}]},"odd key":"x\"y\u0041","ok":true}"#)
            .unwrap();
        assert_eq!(
            got,
            vec![
                ("$.user.email".to_string(), "a@b.io".to_string()),
                ("$.user.cards[0].pan".into(), "4111".into()),
                ("$.user.cards[1].pan".into(), "4242".into()),
                ("$[\"odd key\"]".into(), "x\"yA".into()),
            ]
        );
        assert_eq!(all(r#"["a",["b"]]"#).unwrap().len(), 2);
        assert_eq!(
            all(r#"{"e":{},"f":[],"g":[[],{}],"h":[{"i":[0,{"j":"k"}]}]}"#).unwrap(),
            vec![
                ("$.h[0].i[0]".to_string(), "0".to_string()),
                ("$.h[0].i[1].j".into(), "k".into()),
            ]
        );
        assert_eq!(
            all(r#""top""#).unwrap(),
            vec![("$".to_string(), "top".to_string())]
        );
    }

    /// Every scalar with its rendered path, value and span, walked with or without a bitmap.
    fn walked(
        doc: &[u8],
        quotes: Option<&[u64]>,
    ) -> Result<Vec<(String, Vec<u8>, usize)>, NotJson> {
        let mut out = vec![];
        walk_indexed(
            doc,
            quotes,
            &mut Scratch::default(),
            |k: &[u8]| -> std::rc::Rc<str> { String::from_utf8_lossy(k).into() },
            |p, v, span| out.push((render(p), v.to_vec(), span.start)),
        )?;
        Ok(out)
    }

    #[test]
    fn the_quote_bitmap_finds_the_same_strings() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        // Long pieces carry strings across the 64-byte blocks of the bitmap, the longest past
        // the two words the end of a string is first looked for in.
        let long = "x".repeat(70);
        let longer = "y".repeat(150);
        let pieces = [
            "a", "\\\"", "\\\\", "\\u00e9", "\\n", "é", " ", &long, &longer,
        ];
        let mut quotes = vec![];
        for round in 0..500 {
            let mut text = || -> String {
                (0..rng.gen_range(0..6))
                    .map(|_| pieces[rng.gen_range(0..pieces.len())])
                    .collect()
            };
            let doc = format!(
                "{}{{\"{}\":[\"{}\",{{\"{}\":\"{}\"}},12,\"{}\"],\"n\":null}}",
                " ".repeat(round % 67),
                text(),
                text(),
                text(),
                text(),
                text()
            );
            let doc = doc.as_bytes();
            crate::detect::scan::strong_and_quotes(doc, &mut vec![], Some(&mut quotes));
            let plain = walked(doc, None).unwrap();
            assert_eq!(walked(doc, Some(&quotes)).unwrap(), plain, "{doc:?}");
            // A bitmap that does not fit the document is not used.
            assert_eq!(walked(doc, Some(&quotes[1..])).unwrap(), plain);
            // A cut document is an error either way.
            let cut = &doc[..doc.len() - 20];
            assert!(walked(cut, None).is_err());
            crate::detect::scan::strong_and_quotes(cut, &mut vec![], Some(&mut quotes));
            assert!(walked(cut, Some(&quotes)).is_err());
        }
    }

    /// Real-shaped documents, damaged at random (bytes changed to structure characters, quotes,
    /// backslashes or high bytes; cut short): the bitmap never changes what the walk sees or
    /// where it fails, and nothing panics.
    #[test]
    fn damaged_documents_walk_the_same_with_the_bitmap() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut corpus = crate::detect::corpus::Generator::new(11);
        let hostile = b"{}[]:,\"\\ \x80\xffu0";
        let mut quotes = vec![];
        for _ in 0..2000 {
            let mut doc = corpus.doc().body;
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..doc.len());
                doc[at] = hostile[rng.gen_range(0..hostile.len())];
            }
            if rng.gen_bool(0.2) {
                doc.truncate(rng.gen_range(0..doc.len()));
            }
            crate::detect::scan::strong_and_quotes(&doc, &mut vec![], Some(&mut quotes));
            assert_eq!(
                walked(&doc, Some(&quotes)),
                walked(&doc, None),
                "{:?}",
                String::from_utf8_lossy(&doc)
            );
        }
    }

    /// Numbers are read 16 bytes at a time: they must end exactly where a byte-by-byte
    /// reading ends them, whatever follows.
    #[test]
    fn the_vector_number_reader_matches_a_byte_by_byte_reading() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let inside = b"0123456789-+.eE";
        // What may end a number, and the neighbours of the ranges it is read with.
        let after = b",]} \"/:dDfF\x80\xff\x00";
        for _ in 0..20_000 {
            let len = rng.gen_range(0..80);
            let doc = crate::detect::scan::tests::soup(&mut rng, len, inside, after, 0.04);
            let from = rng.gen_range(0..=len);
            let mut end = from;
            while end < doc.len() && number_byte(doc[end]) {
                end += 1;
            }
            assert_eq!(number_end(&doc, from), end, "{doc:?} from {from}");
        }
    }

    /// Whitespace of every kind, wherever JSON allows it, walks as the compact document does;
    /// where JSON does not allow a value, whitespace does not make one.
    #[test]
    fn whitespace_anywhere_between_tokens() {
        let compact = r#"{"user":{"email":"a@b.io","cards":[{"pan":"4111"},{"pan":4242},[],{}]},"odd, key":"x\"y: [1]","n":[-1.5e3,true,null,false]}"#;
        let want = all(compact).unwrap();
        for (round, ws) in [" ", "\n", "\r\n", "\t", " \t\n\r "].iter().enumerate() {
            // Around every structural byte outside strings, and at both ends.
            let mut spaced = String::from(*ws);
            let (mut in_string, mut escaped) = (false, false);
            for c in compact.chars() {
                let structural = !in_string && "{}[]:,".contains(c);
                if in_string {
                    in_string = escaped || c != '"';
                    escaped = !escaped && c == '\\';
                } else if c == '"' {
                    in_string = true;
                }
                if structural {
                    spaced.push_str(ws);
                    spaced.push(c);
                    spaced.push_str(ws);
                } else {
                    spaced.push(c);
                }
            }
            spaced.push_str(ws);
            assert_eq!(all(&spaced).unwrap(), want, "round {round}: {spaced:?}");
        }
        for bad in [
            " ",
            "\n\t",
            "[1, ]",
            "{ \"a\" : 1 , }",
            "[ 1 2 ]",
            "{ , }",
            "[\n]x",
        ] {
            assert!(all(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn malformed_and_hostile_documents_are_errors() {
        for bad in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":1,}x",
            "[1,2",
            "}",
            "{\"a\":\"unterminated",
            "nul",
            "{\"a\":\"\\u12\"}",
            "{\"a\":1} {",
            "\u{1}",
            "[1,]",
            "{,}",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "[1 2]",
            "[}",
            "{]",
            "{\"a\":{\"b\":1}]",
            ":",
            ",",
        ] {
            assert!(all(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(all(&deep).is_err(), "depth is capped");
        let ok_deep = "[".repeat(200) + "\"x\"" + &"]".repeat(200);
        assert_eq!(all(&ok_deep).unwrap().len(), 1);
    }
}
