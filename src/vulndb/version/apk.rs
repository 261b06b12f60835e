//! Alpine package versions (apk-tools 3): `digit{.digit}...{letter}{_suffix{#}}...{~hash}{-r#}`.
//!
//! Tokens are compared in order while both versions have the same kind of token. Numbers compare
//! numerically, except that a number after the first with a leading zero compares as a string
//! (the Gentoo rule). Suffixes order `_alpha < _beta < _pre < _rc < (none) < _cvs < _svn < _git <
//! _hg < _p`. When one version runs out first, the longer one is greater, unless what follows is a
//! pre-release suffix. Fuzzy matching (`~`) accepts any version that starts with the other.

use std::cmp::Ordering;

/// Token kinds, in the order the grammar allows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    CommitHash,
    RevisionNo,
    End,
    Invalid,
}

/// Suffix ranks; `NONE` is where a version without a suffix stands.
const SUFFIXES: [&str; 9] = ["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"];
const NONE: usize = 4;

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    /// Rank of a suffix (0..=3 pre-release, 5.. post-release).
    suffix: usize,
    number: u64,
    text: &'a [u8],
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Lexer<'a> {
    fn span(&mut self, ok: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.i < self.s.len() && ok(self.s[self.i]) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    fn digits(&mut self, t: &mut Token<'a>) {
        t.text = self.span(|c| c.is_ascii_digit());
        t.number = t.text.iter().fold(0u64, |n, d| {
            n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))
        });
        if t.text.is_empty() {
            t.kind = Kind::Invalid;
        }
    }

    fn first(&mut self) -> Token<'a> {
        let mut t = Token {
            kind: Kind::InitialDigit,
            suffix: NONE,
            number: 0,
            text: &[],
        };
        self.digits(&mut t);
        t
    }

    fn next(&mut self, t: &mut Token<'a>) {
        let Some(&c) = self.s.get(self.i) else {
            t.kind = Kind::End;
            return;
        };
        let invalid = |t: &mut Token<'a>| t.kind = Kind::Invalid;
        match c {
            b'a'..=b'z' => {
                if t.kind > Kind::Digit {
                    return invalid(t);
                }
                t.text = &self.s[self.i..self.i + 1];
                t.kind = Kind::Letter;
                self.i += 1;
            }
            b'.' | b'0'..=b'9' => {
                if c == b'.' {
                    if t.kind > Kind::Digit {
                        return invalid(t);
                    }
                    self.i += 1;
                }
                t.kind = match t.kind {
                    Kind::InitialDigit | Kind::Digit => Kind::Digit,
                    Kind::Suffix if c != b'.' => Kind::SuffixNo,
                    _ => return invalid(t),
                };
                self.digits(t);
            }
            b'_' => {
                if t.kind > Kind::SuffixNo {
                    return invalid(t);
                }
                self.i += 1;
                t.text = self.span(|c| c.is_ascii_lowercase());
                match SUFFIXES.iter().position(|s| s.as_bytes() == t.text) {
                    Some(p) => t.suffix = if p < NONE { p } else { p + 1 },
                    None => return invalid(t),
                }
                t.kind = Kind::Suffix;
            }
            b'~' => {
                if t.kind >= Kind::CommitHash {
                    return invalid(t);
                }
                self.i += 1;
                t.text = self.span(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
                if t.text.is_empty() {
                    return invalid(t);
                }
                t.kind = Kind::CommitHash;
            }
            b'-' => {
                if t.kind >= Kind::RevisionNo || self.s.get(self.i + 1) != Some(&b'r') {
                    return invalid(t);
                }
                self.i += 2;
                t.kind = Kind::RevisionNo;
                self.digits(t);
            }
            _ => invalid(t),
        }
    }
}

fn cmp_tokens(a: &Token, b: &Token) -> Ordering {
    let as_text = |a: &Token, b: &Token| a.text.cmp(b.text);
    match a.kind {
        Kind::Digit if a.text.first() == Some(&b'0') || b.text.first() == Some(&b'0') => {
            as_text(a, b)
        }
        Kind::InitialDigit | Kind::Digit | Kind::SuffixNo | Kind::RevisionNo => {
            a.number.cmp(&b.number)
        }
        Kind::Letter => a.text.cmp(b.text),
        Kind::Suffix => a.suffix.cmp(&b.suffix),
        _ => as_text(a, b),
    }
}

fn compare_fuzzy(a: &str, b: &str, fuzzy: bool) -> Ordering {
    let (mut la, mut lb) = (
        Lexer {
            s: a.as_bytes(),
            i: 0,
        },
        Lexer {
            s: b.as_bytes(),
            i: 0,
        },
    );
    let (mut ta, mut tb) = (la.first(), lb.first());
    while ta.kind == tb.kind && ta.kind < Kind::End {
        let r = cmp_tokens(&ta, &tb);
        if r != Ordering::Equal {
            return r;
        }
        la.next(&mut ta);
        lb.next(&mut tb);
    }
    if ta.kind == tb.kind || (fuzzy && tb.kind == Kind::End) {
        return Ordering::Equal;
    }
    if ta.kind == Kind::Suffix && ta.suffix < NONE {
        return Ordering::Less;
    }
    if tb.kind == Kind::Suffix && tb.suffix < NONE {
        return Ordering::Greater;
    }
    // The one that goes on (to a later kind of token) is greater.
    tb.kind.cmp(&ta.kind)
}

/// Compares two apk versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    compare_fuzzy(a.trim(), b.trim(), false)
}

/// Whether `v` follows the grammar.
pub fn valid(v: &str) -> bool {
    let mut l = Lexer {
        s: v.as_bytes(),
        i: 0,
    };
    let mut t = l.first();
    while t.kind < Kind::End {
        l.next(&mut t);
    }
    t.kind == Kind::End
}

/// Whether `a OP b` holds, for apk's operators `<`, `<=`, `=`, `>=`, `>`, `~` (a starts with b),
/// `<~`, `>~`.
pub fn matches(a: &str, op: &str, b: &str) -> bool {
    let (mut less, mut equal, mut greater, mut fuzzy) = (false, false, false, false);
    for c in op.chars() {
        match c {
            '<' => less = true,
            '>' => greater = true,
            '=' => equal = true,
            '~' => {
                fuzzy = true;
                equal = true
            }
            _ => return false,
        }
    }
    match compare_fuzzy(a, b, fuzzy) {
        Ordering::Less => less,
        Ordering::Equal => equal,
        Ordering::Greater => greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line of apk-tools' own vector file: `v1 OP v2` (`!OP` negated), `version` (must be
    /// valid), `!version` (must be invalid).
    #[test]
    fn apk_tools_vectors() {
        let data = include_str!("../../../tests/fixtures/versions/apk-version.data");
        let mut checked = 0;
        let mut failures = Vec::new();
        for raw in data.lines() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(' ').collect();
            let ok = if fields.len() >= 3 {
                let (op, invert) = match fields[1].strip_prefix('!') {
                    Some(op) => (op, true),
                    None => (fields[1], false),
                };
                matches(fields[0], op, fields[2]) != invert
            } else {
                match line.strip_prefix('!') {
                    Some(v) => !valid(v),
                    None => valid(line),
                }
            };
            checked += 1;
            if !ok {
                failures.push(line.to_string());
            }
        }
        assert!(checked > 750, "only {checked} vectors");
        assert!(
            failures.is_empty(),
            "{} of {checked} apk vectors fail:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}
