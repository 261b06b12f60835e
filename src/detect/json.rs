//! A JSON walker that hands every scalar to the detector with its key path, without building a
//! document tree: strings are borrowed unless they hold escapes, numbers are scanned as text.
//! Depth is capped, so hostile nesting cannot exhaust the stack (there is no recursion anyway).

/// One element of a path: an object key or an array index.
/// `K` is whatever the caller turns a key into ([`walk`]: a shared string); it is cloned each
/// time a value under the key is entered, so it should be a reference count, not a copy.
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A key (or `}` while the object is empty).
    Key,
    Colon,
    Value,
    /// `,` or the closing bracket.
    Next,
}

/// The state of one open container. The innermost one lives in local variables of the walk
/// (registers, not memory: every value reads and writes it); the ones around it are saved here.
struct Frame<K> {
    object: bool,
    want: Want,
    /// No member yet (an object may still close with `}`, an array with `]`).
    empty: bool,
    index: usize,
    key: Option<K>,
}

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
    stack: Vec<Frame<K>>,
    path: Vec<Seg<K>>,
}

impl<K> Default for Scratch<K> {
    fn default() -> Self {
        Scratch {
            stack: Vec::new(),
            path: Vec::new(),
        }
    }
}

/// [`walk`], with each key (unescaped) turned into a `K` by `key` once per occurrence, and the
/// working memory of `scratch`.
pub fn walk_with<K: Clone>(
    doc: &[u8],
    scratch: &mut Scratch<K>,
    mut make_key: impl FnMut(&[u8]) -> K,
    mut visit: impl FnMut(&[Seg<K>], &[u8], std::ops::Range<usize>),
) -> Result<(), NotJson> {
    scratch.stack.clear();
    scratch.path.clear();
    let Scratch { stack, path } = scratch;
    // The innermost container (meaningless while `depth` is 0).
    let mut depth = 0usize;
    let (mut object, mut want, mut empty, mut index) = (false, Want::Value, true, 0usize);
    let mut key: Option<K> = None;
    let mut i = skip_ws(doc, 0);
    let mut seen_root = false;
    // The path segment of a value about to be visited, and the state after it.
    macro_rules! enter {
        () => {
            if depth > 0 {
                if object {
                    if let Some(k) = &key {
                        path.push(Seg::Key(k.clone()));
                    }
                } else {
                    path.push(Seg::Index(index));
                }
            }
        };
    }
    macro_rules! leave {
        () => {
            if depth > 0 {
                want = Want::Next;
                path.pop();
            }
        };
    }
    while i < doc.len() {
        let c = doc[i];
        let in_key = depth > 0 && object && want == Want::Key;
        // Everything but structure characters and keys is a value: it must be wanted here.
        let is_value = matches!(c, b'{' | b'[' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n')
            || (c == b'"' && !in_key);
        if is_value {
            let wanted = if depth == 0 {
                !seen_root
            } else {
                want == Want::Value
            };
            if !wanted {
                return Err(NotJson(i));
            }
        }
        match c {
            b'{' | b'[' => {
                if depth >= MAX_DEPTH {
                    return Err(NotJson(i));
                }
                enter!();
                if depth > 0 {
                    stack.push(Frame {
                        object,
                        want,
                        empty,
                        index,
                        key: key.take(),
                    });
                }
                depth += 1;
                object = c == b'{';
                want = if object { Want::Key } else { Want::Value };
                (empty, index, key) = (true, 0, None);
                seen_root = true;
                i += 1;
            }
            b'}' | b']' => {
                let ok = depth > 0
                    && if c == b'}' {
                        object && (want == Want::Next || (want == Want::Key && empty))
                    } else {
                        !object && (want == Want::Next || (want == Want::Value && index == 0))
                    };
                if !ok {
                    return Err(NotJson(i));
                }
                depth -= 1;
                if let Some(f) = stack.pop() {
                    (object, want, empty, index, key) = (f.object, f.want, f.empty, f.index, f.key);
                }
                leave!();
                i += 1;
            }
            b',' => {
                if depth == 0 || want != Want::Next {
                    return Err(NotJson(i));
                }
                if object {
                    key = None;
                    want = Want::Key;
                } else {
                    index += 1;
                    want = Want::Value;
                }
                i += 1;
            }
            b':' => {
                if depth == 0 || !object || want != Want::Colon {
                    return Err(NotJson(i));
                }
                want = Want::Value;
                i += 1;
            }
            b'"' if in_key => {
                let (value, end) = string(doc, i)?;
                key = Some(make_key(&value));
                want = Want::Colon;
                empty = false;
                i = end;
            }
            b'"' => {
                let (value, end) = string(doc, i)?;
                enter!();
                visit(path, &value, i + 1..end - 1);
                leave!();
                seen_root = true;
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let end = number_end(doc, i);
                enter!();
                visit(path, &doc[i..end], i..end);
                leave!();
                seen_root = true;
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
                enter!();
                leave!();
                seen_root = true;
                i += word.len();
            }
            _ => return Err(NotJson(i)),
        }
        i = skip_ws(doc, i);
    }
    if depth != 0 || !seen_root {
        return Err(NotJson(doc.len()));
    }
    Ok(())
}

fn skip_ws(doc: &[u8], mut i: usize) -> usize {
    while i < doc.len() && matches!(doc[i], b' ' | b'\n' | b'\r' | b'\t') {
        i += 1;
    }
    i
}

fn number_end(doc: &[u8], mut i: usize) -> usize {
    while i < doc.len() && matches!(doc[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
        i += 1;
    }
    i
}

/// The string starting at `doc[at] == '"'`, unescaped, and the index after its closing quote.
fn string(doc: &[u8], at: usize) -> Result<(std::borrow::Cow<'_, [u8]>, usize), NotJson> {
    let body = at + 1;
    let Some(rel) = quote_or_backslash(&doc[body..]) else {
        return Err(NotJson(at));
    };
    if doc[body + rel] == b'"' {
        return Ok((
            std::borrow::Cow::Borrowed(&doc[body..body + rel]),
            body + rel + 1,
        ));
    }
    // Escapes: decode.
    let mut out = doc[body..body + rel].to_vec();
    let mut i = body + rel;
    while i < doc.len() {
        match doc[i] {
            b'"' => return Ok((std::borrow::Cow::Owned(out), i + 1)),
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
