//! PEP 440 versions (PyPI): `[N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]`, normalized the way
//! `packaging` does (case, `v` prefix, separators, `alpha`/`c`/`preview` spellings, `1.0-1` as a
//! post release) and ordered by its key: epoch, release without trailing zeros, then dev-only
//! releases before pre-releases before the final release, post releases after, dev releases of a
//! pre or post before it, and local versions after the public version.

use std::cmp::Ordering;

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
enum Pre {
    /// A dev release with no pre or post part sorts before every pre-release.
    DevOnly,
    /// A pre-release: a (0), b (1) or rc (2), and its number.
    Release(u8, u64),
    None,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
enum Dev {
    Dev(u64),
    None,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
enum Local {
    Alpha(String),
    Num(u64),
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
struct Key {
    epoch: u64,
    release: Vec<u64>,
    pre: Pre,
    post: Option<u64>,
    dev: Dev,
    local: Option<Vec<Local>>,
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn digits(&mut self) -> Option<u64> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        (self.i > start)
            .then(|| {
                std::str::from_utf8(&self.s[start..self.i])
                    .ok()?
                    .parse()
                    .ok()
            })
            .flatten()
    }
    fn sep(&mut self) -> bool {
        if matches!(self.peek(), Some(b'-' | b'_' | b'.')) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// Consumes the first of `words` found here (longest first), after an optional separator.
    fn word(&mut self, words: &[&str]) -> Option<usize> {
        let save = self.i;
        self.sep();
        for (k, w) in words.iter().enumerate() {
            if self.s[self.i..].starts_with(w.as_bytes()) {
                self.i += w.len();
                return Some(k);
            }
        }
        self.i = save;
        None
    }
    /// An optional separator and number (0 if absent).
    fn number(&mut self) -> u64 {
        let save = self.i;
        self.sep();
        match self.digits() {
            Some(n) => n,
            None => {
                self.i = save;
                0
            }
        }
    }
}

fn key(v: &str) -> Option<Key> {
    let lower = v.trim().to_ascii_lowercase();
    let s = lower.strip_prefix('v').unwrap_or(&lower);
    let mut c = Cursor {
        s: s.as_bytes(),
        i: 0,
    };
    let mut epoch = 0;
    let first = c.digits()?;
    let mut release = vec![first];
    if c.peek() == Some(b'!') {
        c.i += 1;
        epoch = first;
        release = vec![c.digits()?];
    }
    while c.peek() == Some(b'.') && c.s.get(c.i + 1).is_some_and(|d| d.is_ascii_digit()) {
        c.i += 1;
        release.push(c.digits()?);
    }
    let pre = c
        .word(&["alpha", "beta", "preview", "pre", "rc", "a", "b", "c"])
        .map(|k| Pre::Release([0, 1, 2, 2, 2, 0, 1, 2][k], c.number()));
    let post = if c.peek() == Some(b'-') && c.s.get(c.i + 1).is_some_and(|d| d.is_ascii_digit()) {
        c.i += 1;
        c.digits()
    } else {
        c.word(&["post", "rev", "r"]).map(|_| c.number())
    };
    let dev = c.word(&["dev"]).map(|_| c.number());
    let local = if c.peek() == Some(b'+') {
        c.i += 1;
        let rest = std::str::from_utf8(&c.s[c.i..]).ok()?;
        c.i = c.s.len();
        let segs: Vec<Local> = rest
            .split(['-', '_', '.'])
            .map(|seg| match seg.parse::<u64>() {
                Ok(n) if seg.bytes().all(|b| b.is_ascii_digit()) => Some(Local::Num(n)),
                _ if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                    Some(Local::Alpha(seg.to_string()))
                }
                _ => None,
            })
            .collect::<Option<_>>()?;
        Some(segs)
    } else {
        None
    };
    if c.i != c.s.len() {
        return None;
    }
    while release.len() > 1 && release.last() == Some(&0) {
        release.pop();
    }
    let pre = match (pre, post, dev) {
        (None, None, Some(_)) => Pre::DevOnly,
        (Some(p), _, _) => p,
        (None, _, _) => Pre::None,
    };
    Some(Key {
        epoch,
        release,
        pre,
        post,
        dev: dev.map(Dev::Dev).unwrap_or(Dev::None),
        local,
    })
}

/// Compares two PEP 440 versions; invalid ones compare as strings, below valid ones.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (key(a), key(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization() {
        for (a, b) in [
            ("1.0-1", "1.0.post1"),
            ("v1.0", "1.0"),
            ("1.0C1", "1.0rc1"),
            ("1.0alpha1", "1.0a1"),
            ("1.0.0", "1"),
            ("1.0-dev2", "1.0.dev2"),
        ] {
            assert_eq!(compare(a, b), Ordering::Equal, "{a} == {b}");
        }
        assert_eq!(compare("2!1.0", "3.0"), Ordering::Greater, "epochs first");
        assert!(key("1.0+bad!local").is_none());
    }
}
