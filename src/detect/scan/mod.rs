//! Candidate finding in one pass, then validation. Two families:
//! - strong types, found anywhere because a checksum or a rigid structure makes them
//!   unambiguous (cards, IBANs, delimited SSNs, emails, JWTs, cloud keys, private keys,
//!   credentials in URIs, SaaS tokens): one classification of each 64-byte block marks digits,
//!   `@`s and a byte of every literal anchor, and only those places are parsed and validated;
//! - key-gated types, checked on a whole value only when its name opened their gate.

mod email;
mod gated;
mod numbers;
mod tokens;

use email::*;
pub use gated::gated;
pub(super) use numbers::run_end;
#[cfg(target_arch = "x86_64")]
pub(super) use numbers::within;
use numbers::*;
use tokens::*;

use super::Kind;

/// A candidate that passed validation: its type and byte span in the scanned slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

fn is_word(b: u8) -> bool {
    WORD[b as usize]
}

/// [`is_word`] by byte value: one load where the range tests were branches, which next to a
/// number (glued or not) the CPU cannot predict.
static WORD: [bool; 256] = {
    let mut word = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        word[b] = c.is_ascii_alphanumeric() || c == b'_';
        b += 1;
    }
    word
};

/// The end of a run of bytes accepted by `ok`, from `start`, at most `max` long.
fn run(s: &[u8], start: usize, max: usize, ok: impl Fn(u8) -> bool) -> usize {
    let mut i = start;
    while i < s.len() && i - start < max && ok(s[i]) {
        i += 1;
    }
    i
}

/// Strong types anywhere in `s`, in start order.
pub fn strong(s: &[u8], out: &mut Vec<Hit>) {
    strong_and_quotes(s, out, None)
}

/// [`strong`], also filling `quotes` (when given) with where `s` has a `"` or a `\`: bit
/// `i % 64` of word `i / 64`, and a zero word after the last. The JSON walker finds the end of
/// each string there instead of reading the string again (see [`crate::detect::json::walk_indexed`]).
pub fn strong_and_quotes(s: &[u8], out: &mut Vec<Hit>, quotes: Option<&mut Vec<u64>>) {
    // Numbers, `@`s and every literal anchor come from one classification of each 64-byte
    // block: each anchor has a byte the block's masks mark (`J` ends `eyJ`, `_` ends `ghp_`,
    // `/` is the second byte of `://`, …), checked where it occurs. An Aho-Corasick automaton
    // over the anchors read every byte again and cost more than the whole classification.
    #[cfg(target_arch = "x86_64")]
    if wide::available() {
        // SAFETY: the CPU has the features `blocks_wide` is compiled for (checked just now).
        unsafe { wide::blocks_wide(s, out, quotes) };
        keep_outermost(out);
        return;
    }
    blocks::<true>(s, out, quotes, classify::<true>);
    keep_outermost(out);
}

/// The block pass compiled for AVX2 and BMI, chosen at run time: 32-byte compares halve the
/// classification's instructions, and BMI's `tzcnt`/`blsr` shorten the loops over mask bits.
/// The binary itself stays baseline x86-64, so it runs on any x86-64 CPU.
#[cfg(target_arch = "x86_64")]
mod wide {
    use super::{Hit, Masks};
    use std::arch::x86_64::*;

    /// Whether this CPU has what [`blocks_wide`] needs (the check is cached by std).
    pub(super) fn available() -> bool {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("bmi1")
            && is_x86_feature_detected!("bmi2")
            && is_x86_feature_detected!("lzcnt")
    }

    /// [`super::blocks`] with anchors, classifying 32 bytes per compare.
    ///
    /// # Safety
    /// The CPU must have the features [`available`] checks.
    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
    pub(super) unsafe fn blocks_wide(s: &[u8], out: &mut Vec<Hit>, quotes: Option<&mut Vec<u64>>) {
        super::blocks::<true>(s, out, quotes, |block| {
            // SAFETY: this closure runs inside `blocks_wide`, on a CPU with AVX2.
            unsafe { classify(block) }
        })
    }

    /// The full [`Masks`] of the 64-byte block inside a [`super::WINDOW`], in two 32-byte
    /// halves.
    ///
    /// # Safety
    /// The CPU must have AVX2, and `window` at least [`super::WINDOW`] bytes.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn classify(window: &[u8]) -> Masks {
        assert!(window.len() >= super::WINDOW);
        let lo = half(window.as_ptr().add(super::BEFORE));
        let hi = half(window.as_ptr().add(super::BEFORE + 32));
        let join = |l: u32, h: u32| l as u64 | (h as u64) << 32;
        Masks {
            digit: join(lo[0], hi[0]),
            sep: join(lo[1], hi[1]),
            trigger: join(lo[2], hi[2]),
            quote: join(lo[3], hi[3]),
        }
    }

    /// `vpmovmskb`, hidden from the optimiser: seeing `_mm256_movemask_epi8`, LLVM turns the
    /// masks into vectors of 32 booleans and the block pass's shifts of them into hundreds of
    /// byte inserts, which tripled the pass's instructions.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn movemask(m: __m256i) -> u32 {
        let bits: u32;
        std::arch::asm!(
            "vpmovmskb {bits:e}, {m}",
            bits = lateout(reg) bits,
            m = in(ymm_reg) m,
            options(pure, nomem, nostack, preserves_flags),
        );
        bits
    }

    /// Digits, separators, triggers and quotes of the 32 bytes at `p`, as bit masks.
    ///
    /// # Safety
    /// The CPU must have AVX2, and `p - BEFORE .. p + 32 + AFTER` must be readable.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn half(p: *const u8) -> [u32; 4] {
        let load = |k: isize| _mm256_loadu_si256(p.offset(k) as *const __m256i);
        let (v, before, before2, after, after3) = (load(0), load(-1), load(-2), load(1), load(3));
        let eq = |v: __m256i, c: u8| _mm256_cmpeq_epi8(v, _mm256_set1_epi8(c as i8));
        let is = |c: u8| eq(v, c);
        let bits = |m: __m256i| movemask(m);
        // Signed compares: bytes of 0x80 and up are negative, so never digits.
        let digit = _mm256_and_si256(
            _mm256_cmpgt_epi8(v, _mm256_set1_epi8(b'0' as i8 - 1)),
            _mm256_cmpgt_epi8(_mm256_set1_epi8(b'9' as i8 + 1), v),
        );
        let dashes = is(b'-');
        let sep = _mm256_or_si256(is(b' '), dashes);
        // The neighbours each anchor needs (see `Masks::trigger`). `a`, `v` and `h` two bytes
        // before an `_` in one lookup: the table holds each at its low nibble, so a byte equals
        // its entry only when it is one of them (bytes from 0x80 look up 0).
        let avh = _mm256_setr_epi8(
            -1, b'a' as i8, -1, -1, -1, -1, b'v' as i8, -1, b'h' as i8, -1, -1, -1, -1, -1, -1, -1,
            -1, b'a' as i8, -1, -1, -1, -1, b'v' as i8, -1, b'h' as i8, -1, -1, -1, -1, -1, -1, -1,
        );
        let token = _mm256_cmpeq_epi8(_mm256_shuffle_epi8(avh, before2), before2);
        // A `-` before another, or after a `Y`, `t`, `a`, `b`, `p`, `r` or `s`: `r` shares its
        // low nibble with `b`, so it has a compare of its own.
        let ytabps = _mm256_setr_epi8(
            b'p' as i8, b'a' as i8, b'b' as i8, b's' as i8, b't' as i8, -1, -1, -1, -1, b'Y' as i8,
            -1, -1, -1, -1, -1, -1, b'p' as i8, b'a' as i8, b'b' as i8, b's' as i8, b't' as i8, -1,
            -1, -1, -1, b'Y' as i8, -1, -1, -1, -1, -1, -1,
        );
        let dash_anchor = _mm256_or_si256(
            _mm256_or_si256(
                _mm256_cmpeq_epi8(_mm256_shuffle_epi8(ytabps, before), before),
                eq(before, b'r'),
            ),
            eq(after, b'-'),
        );
        let letters = _mm256_or_si256(
            _mm256_or_si256(
                _mm256_and_si256(is(b'J'), eq(before, b'y')),
                _mm256_and_si256(
                    is(b'A'),
                    eq(_mm256_or_si256(after3, _mm256_set1_epi8(0x20)), b'a'),
                ),
            ),
            _mm256_or_si256(_mm256_and_si256(is(b'B'), eq(after, b'a')), is(b'@')),
        );
        let marks = _mm256_or_si256(
            _mm256_or_si256(
                _mm256_and_si256(dashes, dash_anchor),
                _mm256_and_si256(is(b'_'), token),
            ),
            _mm256_and_si256(is(b'/'), eq(before, b':')),
        );
        let trigger = _mm256_or_si256(letters, marks);
        let quote = _mm256_or_si256(is(b'"'), is(b'\\'));
        [bits(digit), bits(sep), bits(trigger), bits(quote)]
    }
}

/// Drops hits inside longer ones: they are part of them (the user@host of a connection URI is
/// not an email address, the `AKIA…` inside a JWT's payload is not a key of its own).
fn keep_outermost(out: &mut Vec<Hit>) {
    // In start order (longest first at a tie), a hit lies inside a longer one exactly when an
    // earlier hit reaches as far and is not the same span.
    if out.len() > 1 {
        out.sort_unstable_by_key(|h| (h.start, std::cmp::Reverse(h.end)));
        let mut reach: Option<(usize, usize)> = None;
        out.retain(|h| {
            let inside = reach.is_some_and(|(s, e)| e >= h.end && (s, e) != (h.start, h.end));
            if reach.is_none_or(|(_, e)| h.end > e) {
                reach = Some((h.start, h.end));
            }
            !inside
        });
    }
}

/// Numbers: runs of digits with single space or dash separators, checked as cards, SSNs and
/// IBANs. Every type here has at least nine digits in a row, so a run is only parsed once nine
/// numeric bytes in a row have been seen. The input is classified 64 bytes at a time into bit
/// masks (SSE2 on x86-64, which every x86-64 CPU has), so text without such runs costs a few
/// instructions per 16 bytes. No allocation.
pub fn digit_runs(s: &[u8], out: &mut Vec<Hit>) {
    blocks::<false>(s, out, None, classify::<false>)
}

/// [`digit_runs`], and with `ANCHORS` also every `@` checked as an email address and every
/// literal anchor (`eyJ`, `AKIA`, `ghp_`, `://`, `-----BEGIN `, …) checked from the byte the
/// trigger mask marks: a few compares per 16 bytes in a classification already made, where a
/// separate pass would read the whole input again.
#[inline(always)]
fn blocks<const ANCHORS: bool>(
    s: &[u8],
    out: &mut Vec<Hit>,
    quotes: Option<&mut Vec<u64>>,
    classify: impl Fn(&[u8]) -> Masks,
) {
    // One word per block, written in place (cheaper than a push per block), and a zero word
    // after them, so a reader can always take two words. Every block writes its word, so the
    // words left from the last input need no clearing.
    let mut quotes: Option<&mut [u64]> = quotes.map(|q| {
        let words = s.len().div_ceil(64) + 1;
        q.resize(words, 0);
        q[words - 1] = 0;
        &mut q[..]
    });
    let mut pos = 0;
    // The previous block's numeric mask, and whether its last byte was a digit.
    let mut prev_numeric = 0u64;
    let mut prev_digit = 0u64;
    // Everything before `done` belongs to a run already parsed.
    let mut done = 0;
    // Anchors inside a JWT already found (its payload's `eyJ`) start nothing new.
    let mut jwt_end = 0;
    while pos < s.len() {
        let Masks {
            digit,
            sep,
            mut trigger,
            quote,
        } = match pos
            .checked_sub(BEFORE)
            .and_then(|from| s.get(from..from + WINDOW))
        {
            Some(window) => classify(window),
            // The first block of a longer input: a copy of fixed size, which needs no call.
            None if pos == 0 && s.len() >= 64 + AFTER => {
                let mut window = [0u8; WINDOW];
                window[BEFORE..].copy_from_slice(&s[..64 + AFTER]);
                classify(&window)
            }
            // The last block of an input of a window or more: the input's last WINDOW bytes,
            // copied at a fixed size, with zeros after them.
            None if pos > 0 && s.len() >= WINDOW => {
                let mut tail = [0u8; 2 * WINDOW];
                tail[..WINDOW].copy_from_slice(&s[s.len() - WINDOW..]);
                // Where `s[pos - BEFORE]` landed: `pos - BEFORE < s.len() < pos + 64 + AFTER`
                // keeps the window inside `tail`.
                let from = pos - BEFORE + WINDOW - s.len();
                classify(&tail[from..from + WINDOW])
            }
            None => {
                // The first and last blocks of short inputs: zeros stand in for the bytes
                // before and after `s`, and no check accepts a zero.
                let mut window = [0u8; WINDOW];
                let from = pos.saturating_sub(BEFORE);
                let to = s.len().min(pos + 64 + AFTER);
                let at = BEFORE - (pos - from);
                window[at..at + to - from].copy_from_slice(&s[from..to]);
                classify(&window)
            }
        };
        if let Some(q) = quotes.as_deref_mut() {
            if let Some(word) = q.get_mut(pos / 64) {
                *word = quote;
            }
        }
        // Each byte the trigger mask marks starts a check ([`triggered`]), in position order:
        // one mask and one loop for emails and every anchor.
        while trigger != 0 {
            let i = pos + trigger.trailing_zeros() as usize;
            trigger &= trigger - 1;
            triggered(s, i, &mut jwt_end, out);
        }
        let next_digit = s.get(pos + 64).is_some_and(u8::is_ascii_digit) as u64;
        // A separator counts only between two digits.
        let numeric =
            digit | (sep & ((digit << 1) | prev_digit) & ((digit >> 1) | (next_digit << 63)));
        // Bit i of `ends`: the nine bytes ending at pos + i are all numeric. Runs of nine set
        // bits are found in two words, without 128-bit shifts: the block's mask with the
        // previous block's last eight bits below it (ends up to bit 55), and the block's mask
        // alone (ends from bit 8).
        let nine = |m: u64| {
            let two = m & (m << 1);
            let four = two & (two << 2);
            (four & (four << 4)) & (m << 8)
        };
        let mut ends = nine((numeric << 8) | (prev_numeric >> 56)) >> 8 | nine(numeric);
        if done > pos {
            ends &= below_cleared(done - pos);
        }
        while ends != 0 {
            let bit = ends.trailing_zeros();
            let at = pos + bit as usize;
            // The run starts after the last non-numeric byte below it in this block, or, when
            // there is none, somewhere in the blocks before.
            let below = !numeric & ((1u64 << bit) - 1);
            let mut start = pos + 64 - below.leading_zeros() as usize;
            // Most runs are ids, order numbers and timestamps: digits alone, inside this block,
            // that no type can be. The masks give such a run's end, so it is passed over
            // without being read again.
            let above = !numeric & !(2u64 << bit).wrapping_sub(1);
            if below != 0 && above != 0 {
                let end = pos + above.trailing_zeros() as usize;
                let run = below_cleared(start - pos) & !below_cleared(end - pos);
                if numeric & !digit & run == 0 && plain_digits_are_nothing(s, start, end) {
                    done = end;
                    ends &= below_cleared(done - pos);
                    continue;
                }
            }
            if below == 0 {
                start = pos;
                while start > 0 && numeric_at(s, start - 1) {
                    start -= 1;
                }
            }
            let mut end = number_at(s, start, out);
            // A run longer than any number (the parser stops at 25 digits) is skipped whole.
            while end < s.len() && numeric_at(s, end) {
                end += 1;
            }
            done = end.max(at + 1);
            ends &= below_cleared(done - pos);
        }
        prev_numeric = numeric;
        prev_digit = digit >> 63;
        pos += 64;
    }
}

/// Bytes the classification reads before a 64-byte block: an `_` needs the byte two before it.
const BEFORE: usize = 2;
/// Bytes the classification reads after a 64-byte block: an `A` needs the byte three after it.
const AFTER: usize = 3;
/// A 64-byte block with the bytes around it that its classification reads.
const WINDOW: usize = BEFORE + 64 + AFTER;

/// Bit masks of a 64-byte block.
struct Masks {
    /// ASCII digits.
    digit: u64,
    /// Spaces and dashes.
    sep: u64,
    /// Where a check starts (when asked for): `@`s; `J`s after a `y` (where `eyJ` ends); `A`s
    /// with an `A` or `a` three bytes on (`AKIA`-like and `AIza` prefixes); `B`s before an
    /// `a` (`Basic `); `_`s two bytes after an `a`, `h` or `v` (`gh?_`, `github_pat_`,
    /// `?k_live_`); `-`s before another or after a `Y`, `t`, `a`, `b`, `p`, `r` or `s`
    /// (`-----BEGIN`, `PuTTY-`, `glpat-`, `xox?-`, `sk-ant-`); `/`s after a `:` (`://`). The neighbours
    /// are read in the vector compare, so the many such bytes of base64 text, snake_case keys
    /// and hyphenated words cost no check; each marked byte is checked in full after.
    trigger: u64,
    /// `"`s and `\`s (when asked for).
    quote: u64,
}

/// The [`Masks`] of the 64-byte block inside a [`WINDOW`]; triggers and quotes only with
/// `FULL`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify<const FULL: bool>(window: &[u8]) -> Masks {
    use std::arch::x86_64::*;
    assert!(window.len() >= WINDOW);
    let (mut digit, mut sep, mut trigger, mut quote) = (0u64, 0, 0, 0);
    // SAFETY: SSE2 is part of the x86-64 baseline, and every unaligned 16-byte load reads
    // `window[BEFORE + 16 * k + d..][..16]` with d from -BEFORE to AFTER: inside the window
    // asserted above.
    unsafe {
        let load = |at: usize| _mm_loadu_si128(window.as_ptr().add(at) as *const __m128i);
        let eq = |v: __m128i, c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
        let below = _mm_set1_epi8(b'0' as i8 - 1);
        let above = _mm_set1_epi8(b'9' as i8 + 1);
        for k in 0..4 {
            let at = BEFORE + 16 * k;
            let v = load(at);
            // Signed compares: bytes of 0x80 and up are negative, so never digits.
            let d = _mm_and_si128(_mm_cmpgt_epi8(v, below), _mm_cmplt_epi8(v, above));
            let dashes = eq(v, b'-');
            let p = _mm_or_si128(eq(v, b' '), dashes);
            digit |= (_mm_movemask_epi8(d) as u32 as u64) << (16 * k);
            sep |= (_mm_movemask_epi8(p) as u32 as u64) << (16 * k);
            if FULL {
                // What `wide::half` computes, without its AVX2 table lookup.
                let (before, before2, after, after3) =
                    (load(at - 1), load(at - 2), load(at + 1), load(at + 3));
                let token = _mm_or_si128(
                    _mm_or_si128(eq(before2, b'a'), eq(before2, b'v')),
                    eq(before2, b'h'),
                );
                let letters = _mm_or_si128(
                    _mm_or_si128(
                        _mm_and_si128(eq(v, b'J'), eq(before, b'y')),
                        _mm_and_si128(
                            eq(v, b'A'),
                            eq(_mm_or_si128(after3, _mm_set1_epi8(0x20)), b'a'),
                        ),
                    ),
                    _mm_or_si128(_mm_and_si128(eq(v, b'B'), eq(after, b'a')), eq(v, b'@')),
                );
                let dash_anchor = b"Ytabprs-"
                    .iter()
                    .zip([before; 7].into_iter().chain([after]))
                    .fold(_mm_setzero_si128(), |m, (c, n)| _mm_or_si128(m, eq(n, *c)));
                let marks = _mm_or_si128(
                    _mm_or_si128(
                        _mm_and_si128(dashes, dash_anchor),
                        _mm_and_si128(eq(v, b'_'), token),
                    ),
                    _mm_and_si128(eq(v, b'/'), eq(before, b':')),
                );
                let t = _mm_or_si128(letters, marks);
                trigger |= (_mm_movemask_epi8(t) as u32 as u64) << (16 * k);
                let q = _mm_or_si128(eq(v, b'"'), eq(v, b'\\'));
                quote |= (_mm_movemask_epi8(q) as u32 as u64) << (16 * k);
            }
        }
    }
    Masks {
        digit,
        sep,
        trigger,
        quote,
    }
}

/// The [`Masks`] of the 64-byte block inside a [`WINDOW`]; triggers and quotes only with
/// `FULL`.
#[cfg(not(target_arch = "x86_64"))]
fn classify<const FULL: bool>(window: &[u8]) -> Masks {
    let (mut digit, mut sep, mut trigger, mut quote) = (0u64, 0, 0, 0);
    for i in 0..64 {
        let at = |d: usize| window[BEFORE + i + d - BEFORE];
        let c = at(BEFORE);
        let anchor = match c {
            b'J' => at(BEFORE - 1) == b'y',
            b'A' => at(BEFORE + 3) | 0x20 == b'a',
            b'B' => at(BEFORE + 1) == b'a',
            b'_' => matches!(at(0), b'a' | b'v' | b'h'),
            b'-' => {
                matches!(
                    at(BEFORE - 1),
                    b'Y' | b't' | b'a' | b'b' | b'p' | b'r' | b's'
                ) || at(BEFORE + 1) == b'-'
            }
            b'/' => at(BEFORE - 1) == b':',
            b'@' => true,
            _ => false,
        };
        digit |= (c.is_ascii_digit() as u64) << i;
        sep |= ((c == b' ' || c == b'-') as u64) << i;
        trigger |= ((FULL && anchor) as u64) << i;
        quote |= ((FULL && (c == b'"' || c == b'\\')) as u64) << i;
    }
    Masks {
        digit,
        sep,
        trigger,
        quote,
    }
}

/// The prefixes of AWS access key ids, as [`word_at`] reads them.
const AKIA: u32 = word(b"AKIA");
const ASIA: u32 = word(b"ASIA");
const ABIA: u32 = word(b"ABIA");
const ACCA: u32 = word(b"ACCA");

/// The check that starts at a byte of the trigger mask: an email address at an `@`, a JWT
/// ending `eyJ` at a `J`, an AWS or GCP key at an `A`, `Basic ` credentials at a `B`, the other
/// anchors at their punctuation. `jwt_end` is where the last JWT found ends: the `eyJ` of its
/// payload and key ids inside it start nothing new.
#[inline(always)]
fn triggered(s: &[u8], i: usize, jwt_end: &mut usize, out: &mut Vec<Hit>) {
    match s[i] {
        b'@' => email(s, i, out),
        b'J' => {
            if i >= 2 && &s[i - 2..i] == b"ey" && i - 2 >= *jwt_end {
                *jwt_end = (*jwt_end).max(jwt_from(s, i - 2, out));
            }
        }
        b'A' => {
            let w = word_at(s, i);
            if matches!(w, AKIA | ASIA | ABIA | ACCA) {
                if i >= *jwt_end {
                    aws_akid(s, i, out);
                }
            } else if w == word(b"AIza") {
                fixed_token(s, i, i + 4, 35, Kind::GcpApiKey, out);
            }
        }
        b'B' => {
            if word_at(s, i) == word(b"Basi") && s.get(i + 4..i + 6) == Some(b"c ") {
                http_basic(s, i, i + 6, out);
            }
        }
        // The classification let through only punctuation with an anchor's neighbours.
        _ => punctuated_anchor(s, i, out),
    }
}

/// The anchors marked by their punctuation, checked at the `_`, `-` or `/` at `i`: `://` (at
/// its first slash), `ghp_`-like and `github_pat_` GitHub tokens, Stripe's `sk_live_` and
/// `rk_live_`, GitLab's `glpat-`, Slack's `xoxb-`-like, Anthropic's `sk-ant-`, PEM and PuTTY
/// private keys. Every anchor is matched whole, so where the punctuation sits in it is only a
/// matter of which byte to check from.
fn punctuated_anchor(s: &[u8], i: usize, out: &mut Vec<Hit>) {
    // Keys (`order_id`), ids and dates put these bytes everywhere: most are ruled out by one
    // compare of the four bytes around them (a slice compare costs a call).
    match s[i] {
        b'/' if i > 0 && s[i - 1] == b':' && s.get(i + 1) == Some(&b'/') => {
            conn_uri(s, i - 1, out);
        }
        b'_' if i >= 3 => {
            let prev = word_at(s, i - 3);
            if prev & 0xff00_ffff == word(b"gh\0_")
                && matches!(s[i - 1], b'p' | b'o' | b'u' | b's' | b'r')
            {
                fixed_token(s, i - 3, i + 1, 36, Kind::VcsToken, out);
            } else if prev == word(b"pat_") && s[..i].ends_with(b"github_pat") {
                fixed_token(s, i - 10, i + 1, 82, Kind::VcsToken, out);
            } else if prev == word(b"ive_")
                && i >= 7
                && matches!(&s[i - 7..i - 3], b"sk_l" | b"rk_l")
            {
                min_token(s, i - 7, i + 1, 24, Kind::VcsToken, out);
            }
        }
        b'-' => {
            if word_at(s, i) == word(b"----") && s[i..].starts_with(b"-----BEGIN ") {
                private_key(s, i, out);
            } else if i >= 4 {
                let prev = word_at(s, i - 4);
                if prev == word(b"uTTY")
                    && i >= 5
                    && s[i - 5..].starts_with(b"PuTTY-User-Key-File-")
                {
                    private_key(s, i - 5, out);
                } else if prev == word(b"lpat") && i >= 5 && s[i - 5] == b'g' {
                    fixed_token(s, i - 5, i + 1, 20, Kind::VcsToken, out);
                } else if prev & 0x00ff_ffff == word(b"xox\0")
                    && matches!(s[i - 1], b'a' | b'b' | b'p' | b'r' | b's')
                {
                    min_token(s, i - 4, i + 1, 10, Kind::VcsToken, out);
                } else if prev == word(b"-ant") && i >= 6 && &s[i - 6..i - 4] == b"sk" {
                    min_token(s, i - 6, i + 1, 32, Kind::VcsToken, out);
                }
            }
        }
        _ => {}
    }
}

/// Four bytes as a little-endian word, for comparing with [`word_at`].
const fn word(b: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*b)
}

/// The four bytes of `s` from `i` as a word (0 past the end, which no anchor is).
#[inline]
fn word_at(s: &[u8], i: usize) -> u32 {
    match s.get(i..i + 4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

#[cfg(test)]
pub(super) mod tests {
    /// `len` bytes drawn from `common`, each one instead drawn from `rare` with the chance
    /// `odds`: the inputs of the tests that hold a vector reading to a byte loop.
    pub(in crate::detect) fn soup(
        rng: &mut impl rand::Rng,
        len: usize,
        common: &[u8],
        rare: &[u8],
        odds: f64,
    ) -> Vec<u8> {
        (0..len)
            .map(|_| {
                if rng.gen_bool(odds) {
                    rare[rng.gen_range(0..rare.len())]
                } else {
                    common[rng.gen_range(0..common.len())]
                }
            })
            .collect()
    }

    use super::*;
    use crate::detect::keys::Gate;
    use crate::detect::validators as v;
    use base64::Engine as _;

    fn kinds(s: &str) -> Vec<Kind> {
        let mut out = vec![];
        strong(s.as_bytes(), &mut out);
        out.into_iter().map(|h| h.kind).collect()
    }

    /// Appends randomly chosen `pieces` to `s` until it is at least `len` long.
    fn append_pieces(rng: &mut impl rand::Rng, pieces: &[&[u8]], s: &mut Vec<u8>, len: usize) {
        while s.len() < len {
            s.extend_from_slice(pieces[rng.gen_range(0..pieces.len())]);
        }
    }

    #[test]
    fn ibans_read_in_place_match_the_gathering_reader() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        let pieces: &[&[u8]] = &[
            b"GB82WEST12345698765432",
            b"GB82 WEST 1234 5698 7654 32",
            b"DE89370400440532013000",
            b"DE89370400440532013001",
            b"DE8937040044053201300",
            b"NL91ABNA0417164300",
            b"a",
            b"7",
            b" ",
            b"\"",
            b"-",
        ];
        for _ in 0..3000 {
            let mut s = Vec::new();
            append_pieces(&mut rng, pieces, &mut s, 60);
            for at in 0..s.len() {
                let Some(len) = v::iban_length(&s[at..s.len().min(at + 2)]) else {
                    continue;
                };
                if at > 0 && is_word(s[at - 1]) {
                    continue;
                }
                let (mut fast, mut gathered) = (vec![], vec![]);
                assert_eq!(
                    iban_at(&s, at, &mut fast),
                    spaced_iban_at(&s, at, len, &mut gathered),
                    "{:?} at {at}",
                    String::from_utf8_lossy(&s)
                );
                assert_eq!(fast, gathered);
            }
        }
    }

    #[test]
    fn the_vector_base64url_run_matches_a_byte_by_byte_reading() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(64);
        // Mostly base64url, with every kind of byte that ends a run (and ones that look close:
        // the neighbours of each range, bytes of 0x80 and up).
        let stops = [
            b'.', b'"', b'/', b':', b'@', b'[', b'`', b'{', 0x80, 0xff, 0,
        ];
        for _ in 0..5000 {
            let len = rng.gen_range(0..100);
            let s = soup(&mut rng, len, B64URL_ALPHABET, &stops, 0.05);
            let start = rng.gen_range(0..=len);
            let max = rng.gen_range(0..120);
            assert_eq!(
                b64url_run(&s, start, max),
                run(&s, start, max, b64url),
                "{s:?} from {start}, at most {max}"
            );
        }
    }

    /// The email check reads the local part backwards and the domain forwards 16 bytes at a
    /// time: both must stop exactly where a byte-by-byte reading stops.
    #[test]
    fn the_vector_email_runs_match_a_byte_by_byte_reading() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(65);
        // Every byte a local part or a domain may hold, and the neighbours of each range.
        let bytes = b"aAzZ09-._%+@\"/:`{[ \x80\xff\x00";
        for _ in 0..20_000 {
            let len = rng.gen_range(1..160);
            let stop_odds = [0.0, 0.02, 0.2][rng.gen_range(0..3)];
            let s = soup(&mut rng, len, B64URL_ALPHABET, bytes, stop_odds);
            let at = rng.gen_range(0..len);
            let mut start = at;
            while start > 0 && at - start < 64 && EMAIL_LOCAL[s[start - 1] as usize] {
                start -= 1;
            }
            assert_eq!(local_part_start(&s, at), start, "{s:?} before {at}");
            let max = rng.gen_range(0..300);
            assert_eq!(
                domain_run(&s, at, max),
                run(&s, at, max, email_domain_byte),
                "{s:?} from {at}, at most {max}"
            );
        }
    }

    /// The JWT header decoder accepts and refuses exactly what the base64 crate's strict
    /// unpadded base64url decoder does, and decodes to the same bytes.
    #[test]
    fn the_jwt_header_decoder_matches_the_base64_crate() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(66);
        let strays = b"=+/.\x80 ";
        let mut refused = 0;
        for round in 0..20_000 {
            let len = rng.gen_range(0..80);
            let mut text: Vec<u8> = (0..len)
                .map(|_| B64URL_ALPHABET[rng.gen_range(0..B64URL_ALPHABET.len())])
                .collect();
            if round % 5 == 0 && len > 0 {
                text[rng.gen_range(0..len)] = strays[rng.gen_range(0..strays.len())];
            }
            let mut buf = vec![0u8; len / 4 * 3 + 2];
            let ours = decode_b64url(&text, &mut buf).map(|n| buf[..n].to_vec());
            let theirs = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&text)
                .ok();
            assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(&text));
            refused += ours.is_none() as usize;
        }
        // Both outcomes were exercised.
        assert!((1000..19_000).contains(&refused), "{refused}");
    }

    const B64URL_ALPHABET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    /// The block scanner must parse exactly the runs a byte-by-byte reading would: every
    /// maximal run of nine or more numeric bytes, wherever it sits against the 64-byte blocks.
    #[test]
    fn block_digit_scanner_matches_a_byte_by_byte_reading() {
        use rand::SeedableRng;
        fn byte_by_byte(s: &[u8]) -> Vec<Hit> {
            let mut out = vec![];
            let mut i = 0;
            while i < s.len() {
                if !numeric_at(s, i) {
                    i += 1;
                    continue;
                }
                let mut end = i;
                while end < s.len() && numeric_at(s, end) {
                    end += 1;
                }
                if end - i >= 9 {
                    // The general reader, so the block scanner's digit-only fast path is
                    // checked against it.
                    grouped_number_at(s, i, &mut out);
                }
                i = end;
            }
            out
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let pieces: &[&[u8]] = &[
            b"4539 5787 6362 1486",
            b"4539578763621486",
            b"536-90-4399",
            b"DE89370400440532013000",
            b"GB82WEST12345698765432",
            b"378282246310005",
            b"5425233430109903",
            b"1700000123456",
            b"0123456789012345678901234567890123",
            b"DE89 3704 0044 0532 0130 00",
            b"Q",
            b"a",
            b" ",
            b"-",
            b"\"",
            b"7",
            b"12",
        ];
        for round in 0..3000 {
            let mut s = Vec::new();
            // Shift the pieces against the block edges.
            s.extend(std::iter::repeat_n(b'x', round % 70));
            append_pieces(&mut rng, pieces, &mut s, 40 + round % 300);
            let mut got = vec![];
            digit_runs(&s, &mut got);
            assert_eq!(got, byte_by_byte(&s), "{:?}", String::from_utf8_lossy(&s));
        }
        // A megabyte of digits is read once, not once per byte.
        let long = vec![b'7'; 1 << 20];
        let mut got = vec![];
        digit_runs(&long, &mut got);
        assert!(got.is_empty());
    }

    /// The reference reading of [`strong`]: digit runs, a memchr pass for `@`, and the
    /// automaton over every anchor.
    // The reference the block pass is checked against: every literal anchor found by an
    // Aho-Corasick automaton (what the engine did before the classifier marked them all).
    use aho_corasick::AhoCorasick;
    use std::sync::OnceLock;

    /// Literal anchors of the strong, non-numeric types.
    const ANCHORS: &[&str] = &[
        "eyJ",
        "AKIA",
        "ASIA",
        "ABIA",
        "ACCA",
        "AIza",
        "-----BEGIN ",
        "PuTTY-User-Key-File-",
        "://",
        "ghp_",
        "gho_",
        "ghu_",
        "ghs_",
        "ghr_",
        "github_pat_",
        "glpat-",
        // Slack's five prefixes share `xox`, Stripe's two `k_live_`: one anchor each, the rest
        // checked after a match (fewer patterns, fewer candidates for the automaton to verify).
        "xox",
        "k_live_",
        "sk-ant-",
        "Basic ",
    ];

    /// The automaton over `ANCHORS`, with the anchor each of its pattern ids stands for.
    fn anchors() -> &'static (AhoCorasick, Vec<&'static str>) {
        static ALL: OnceLock<(AhoCorasick, Vec<&'static str>)> = OnceLock::new();
        ALL.get_or_init(|| {
            let ac = AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostFirst)
                .build(ANCHORS)
                .expect("static anchor set");
            (ac, ANCHORS.to_vec())
        })
    }

    /// The types found from a literal anchor (`@`, `eyJ`, `AKIA`, `-----BEGIN `, …).
    fn anchored(s: &[u8], out: &mut Vec<Hit>) {
        // `@` alone would force the automaton to one-byte fingerprints; memchr finds it faster.
        for at in memchr::memchr_iter(b'@', s) {
            email(s, at, out);
        }
        literal_anchors(s, out);
    }

    /// The types found from a multi-byte literal anchor (all of [`anchored`] but emails).
    fn literal_anchors(s: &[u8], out: &mut Vec<Hit>) {
        // Anchors inside a token already found (the `eyJ` of a JWT's payload) start nothing new.
        let mut jwt_end = 0;
        let (ac, names) = anchors();
        for m in ac.find_iter(s) {
            let (a, b) = (m.start(), m.end());
            if a < jwt_end {
                continue;
            }
            match names[m.pattern().as_usize()] {
                "eyJ" => jwt_end = jwt_end.max(jwt_from(s, a, out)),
                "AKIA" | "ASIA" | "ABIA" | "ACCA" => aws_akid(s, a, out),
                "AIza" => fixed_token(s, a, b, 35, Kind::GcpApiKey, out),
                "-----BEGIN " | "PuTTY-User-Key-File-" => private_key(s, a, out),
                "://" => conn_uri(s, a, out),
                "ghp_" | "gho_" | "ghu_" | "ghs_" | "ghr_" => {
                    fixed_token(s, a, b, 36, Kind::VcsToken, out)
                }
                "github_pat_" => fixed_token(s, a, b, 82, Kind::VcsToken, out),
                "glpat-" => fixed_token(s, a, b, 20, Kind::VcsToken, out),
                "xox"
                    if matches!(s.get(b), Some(b'a' | b'b' | b'p' | b'r' | b's'))
                        && s.get(b + 1) == Some(&b'-') =>
                {
                    min_token(s, a, b + 2, 10, Kind::VcsToken, out)
                }
                "k_live_" if a > 0 && matches!(s[a - 1], b's' | b'r') => {
                    min_token(s, a - 1, b, 24, Kind::VcsToken, out)
                }
                "sk-ant-" => min_token(s, a, b, 32, Kind::VcsToken, out),
                "Basic " => http_basic(s, a, b, out),
                _ => {}
            }
        }
    }

    fn strong_by_separate_passes(s: &[u8]) -> Vec<Hit> {
        let mut out = Vec::new();
        digit_runs(s, &mut out);
        anchored(s, &mut out);
        keep_outermost(&mut out);
        out
    }

    /// Emails and every anchored type come from the block classification's trigger mask: at
    /// every offset around the 64-byte block edges, at the very end, inside one another, and
    /// over the generated corpus, exactly what separate passes (memchr and an automaton over
    /// every anchor) find.
    /// The AVX2 pass must see exactly what the baseline one sees, or a finding (or a string's
    /// end) would depend on the CPU. Skipped, with a message, on a CPU without AVX2.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_wide_pass_matches_the_baseline_one() {
        if !wide::available() {
            eprintln!("skipped: this CPU has no AVX2, so only the baseline pass runs here");
            return;
        }
        // Every byte value at every position of a block, among the classified bytes; and
        // every anchor's first bytes with every neighbour the classification reads.
        let mut window = [0u8; WINDOW];
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let pool: &[u8] = b"yaAvh_JBjb\\\"@- /z0Ytprs-:";
        let anchors: &[&[u8]] = &[
            b"eyJ", b"AKIA", b"AIza", b"Basic", b"gho_", b"pat_", b"ive_",
        ];
        for round in 0..4096u32 {
            for (i, b) in window.iter_mut().enumerate() {
                *b = if round < 256 {
                    (round as u8).wrapping_add((i * 7) as u8)
                } else {
                    pool[rng.gen_range(0..pool.len())]
                };
            }
            let a = anchors[round as usize % anchors.len()];
            let at = rng.gen_range(0..WINDOW - a.len());
            window[at..at + a.len()].copy_from_slice(a);
            // SAFETY: AVX2 was checked above.
            let wide = unsafe { wide::classify(&window) };
            let base = classify::<true>(&window);
            assert_eq!(
                (wide.digit, wide.sep, wide.trigger, wide.quote),
                (base.digit, base.sep, base.trigger, base.quote),
                "window {round}"
            );
        }
        let mut g = crate::detect::corpus::Generator::new(11);
        let (mut wide_hits, mut base_hits) = (Vec::new(), Vec::new());
        let (mut wide_quotes, mut base_quotes) = (Vec::new(), Vec::new());
        let mut found = 0;
        for n in 0..2000 {
            let d = g.doc();
            // Cut at every length near the end too: the last block is padded.
            let body = &d.body[..d.body.len() - n % 70];
            wide_hits.clear();
            base_hits.clear();
            // SAFETY: AVX2 was checked above.
            unsafe { wide::blocks_wide(body, &mut wide_hits, Some(&mut wide_quotes)) };
            blocks::<true>(
                body,
                &mut base_hits,
                Some(&mut base_quotes),
                classify::<true>,
            );
            assert_eq!(wide_hits, base_hits);
            assert_eq!(wide_quotes, base_quotes);
            found += wide_hits.len();
        }
        assert!(found > 2000, "the corpus has findings to compare: {found}");
    }

    #[test]
    fn the_fused_block_pass_matches_separate_passes() {
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let p = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"AKIAIOSFODNN7QUEUEXZ"}"#);
        let jwt = format!("{h}.{p}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c");
        let values = [
            "ada@analytical.engineering".to_string(),
            jwt.clone(),
            "AKIAIOSFODNN7QUEUEXZ".into(),
            "ASIAY34FZKBOKMUTVV7A".into(),
            format!("{jwt}AKIAIOSFODNN7QUEUEXZ"),
            "eyJ eyJhbGciOi AKIA ACCA AAAA".into(),
            "4539578763621486".into(),
        ];
        // Every anchor the classifier finds by its punctuation or its capital, built at run
        // time (so no scanner mistakes this file for a leak), with near misses.
        let body = "9fK2mQ7xL4vR8tW1zY6nB3cD5hJ0pS";
        let mut values = values.to_vec();
        for prefix in ["xoxb-", "xoxs-", "sk_live_", "rk_live_", "sk-ant-", "xoxz-"] {
            values.push(format!("{prefix}{body}{body}"));
        }
        values.extend([
            format!("ghp_{body}aZ4k9Q"),
            format!("ghr_{body}aZ4k9Q"),
            format!("github_pat_{body}{body}{body}aZ4k9Q1234567890ab"),
            format!("glpat-{}", &body[..20]),
            format!("AIza{body}aZ4k9"),
            format!("jdbc:postgresql://svc:{body}@db.internal:5432/app"),
            "mongodb+srv://app:hunter2@cluster0/x redis://:@h".into(),
            "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI".into(),
            // After a digit: the one dash after a digit that can start an anchor.
            format!("2024-----BEGIN OPENSSH PRIVATE KEY-----\n{body}{body} 2024-11-23 1-2"),
            "------BEGIN RSA PRIVATE KEY----- PuTTY-User-Key-File-3: ssh-ed25519".into(),
            format!("Authorization: Basic {}", "YWxhZGRpbjpvcGVuc2VzYW1l"),
            "Authorization: Basic !! k_live_ _live_ ://  /_-".into(),
            format!("https://u:{body}@example.org/ ghp_{body}"),
        ]);
        let after_digit = values.iter().find(|v| v.starts_with("2024-----BEGIN"));
        let mut hits = Vec::new();
        strong(after_digit.map_or(&b""[..], |v| v.as_bytes()), &mut hits);
        assert_eq!(
            hits.iter().map(|h| h.kind).collect::<Vec<_>>(),
            vec![Kind::PrivateKey],
            "a key header right after a digit"
        );
        // The values the comparison runs over are found, not all missed alike.
        let found: std::collections::BTreeSet<Kind> = values
            .iter()
            .flat_map(|v| {
                let mut hits = Vec::new();
                strong(v.as_bytes(), &mut hits);
                hits.into_iter().map(|h| h.kind)
            })
            .collect();
        for kind in [
            Kind::VcsToken,
            Kind::GcpApiKey,
            Kind::ConnectionUri,
            Kind::PrivateKey,
            Kind::HttpBasic,
        ] {
            assert!(found.contains(&kind), "{kind:?} in {found:?}");
        }
        for offset in 0..140 {
            for v in &values {
                for tail in ["", " ", "\"} 4539578763621486"] {
                    let doc = format!("{} {v}{tail}", "x".repeat(offset));
                    let mut fused = Vec::new();
                    strong(doc.as_bytes(), &mut fused);
                    assert_eq!(fused, strong_by_separate_passes(doc.as_bytes()), "{doc:?}");
                }
            }
        }
        let mut g = crate::detect::corpus::Generator::new(7);
        let mut found = 0;
        for _ in 0..3000 {
            let d = g.doc();
            let mut fused = Vec::new();
            strong(&d.body, &mut fused);
            assert_eq!(fused, strong_by_separate_passes(&d.body));
            found += fused.len();
        }
        assert!(found > 3000, "the corpus has findings to compare: {found}");
    }

    #[test]
    fn strong_types_in_free_text() {
        assert_eq!(kinds("card 4539 5787 6362 1486 ok"), vec![Kind::Pan]);
        assert_eq!(kinds("card 4539-5787-6362-1486"), vec![Kind::Pan]);
        assert_eq!(kinds("4539578763621487"), vec![], "bad Luhn");
        assert_eq!(kinds("id45395787636214860"), vec![], "glued to letters");
        assert_eq!(kinds("4111111111111111"), vec![Kind::TestPan]);
        assert_eq!(kinds("ssn 536-90-4399."), vec![Kind::Ssn]);
        assert_eq!(kinds("536-90 4399"), vec![], "mixed delimiters");
        assert_eq!(kinds("936-90-4399"), vec![], "area 9xx");
        assert_eq!(
            kinds("pay to GB82 WEST 1234 5698 7654 32 now"),
            vec![Kind::Iban]
        );
        assert_eq!(kinds("DE89370400440532013000"), vec![Kind::Iban]);
        assert_eq!(kinds("DE89370400440532013001"), vec![]);
        assert_eq!(
            kinds("write to jane.doe@acme-corp.io please"),
            vec![Kind::Email]
        );
        assert_eq!(kinds("jane@example.com icon@2x.png a@b"), vec![]);
        // Reserved names and file names, in any case; near misses are addresses.
        for reserved in [
            "a@Example.COM",
            "a@mail.example.net",
            "a@myexample.org",
            "a@host.TEST",
            "a@h.invalid",
            "a@h.example",
            "a@box.localhost",
            "a@box.Local",
            "NoReply@acme.io",
            "no-reply@acme.io",
            "logo@3x.WEBP",
            "bundle@1.2.js",
            "a@cdn.JPEG",
            "a@b..io",
            "a@.io",
            "a@io",
        ] {
            assert_eq!(kinds(reserved), vec![], "{reserved}");
        }
        for address in [
            "a@example.co",
            "a@examples.com",
            "a@acme.testing",
            "a@acme.locals",
            "a@acme.jsx",
            "a@box.localhosts",
            "reply@acme.io",
            "A.B@ACME-CORP.IO",
        ] {
            assert_eq!(kinds(address), vec![Kind::Email], "{address}");
        }
        assert_eq!(
            kinds("key AKIA2E0A8F3B244C9986 here"),
            vec![],
            "0 and 8 are not base32"
        );
        assert_eq!(
            kinds("key AKIAZ7VRSQ5TLE4MCUGQ here"),
            vec![Kind::AwsAccessKeyId]
        );
        assert_eq!(kinds("AKIAIOSFODNN7EXAMPLE"), vec![]);
        assert_eq!(
            kinds("postgres://app:Sup3r-S3cret@db.internal:5432/app"),
            vec![Kind::ConnectionUri]
        );
        assert_eq!(kinds("postgres://app:${DB_PASS}@db/app"), vec![]);
        assert_eq!(
            kinds("https://user:pw@host/x"),
            vec![],
            "not a database scheme"
        );
        assert_eq!(
            kinds("token ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"),
            vec![Kind::VcsToken]
        );
        assert_eq!(
            kinds("Authorization: Basic dXNlcjpwYXNzd29yZA=="),
            vec![Kind::HttpBasic]
        );
        assert_eq!(
            kinds("Basic dXNlcjpwYXNzd29yZA=="),
            vec![],
            "not in a header"
        );
    }

    #[test]
    fn jwts_and_keys() {
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"1234567890"}"#);
        let jwt = format!("{h}.{p}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c");
        assert_eq!(kinds(&format!("Bearer {jwt}")), vec![Kind::Jwt]);
        assert_eq!(
            kinds(&format!("{h}.{p}.")),
            vec![],
            "unsigned and not alg none"
        );
        let fake = format!("eyJub3Rqc29u.{p}.abcdefghij");
        assert_eq!(kinds(&fake), vec![]);
        // Headers of every length decode, the long ones (certificate chains) off the stack.
        for kid in [0, 100, 180, 181, 182, 183, 400, 2000] {
            let h = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!(r#"{{"alg":"RS256","kid":"{}"}}"#, "k".repeat(kid)));
            let jwt = format!("{h}.{p}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c");
            assert_eq!(kinds(&jwt), vec![Kind::Jwt], "kid of {kid}");
        }
        let pem = format!(
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA{}\n-----END RSA PRIVATE KEY-----",
            "q".repeat(60)
        );
        assert_eq!(kinds(&pem), vec![Kind::PrivateKey]);
        assert_eq!(kinds("-----BEGIN PUBLIC KEY-----\nMIIB"), vec![]);
    }

    /// Every anchor's checks look back from the byte that triggers them: cut anywhere, at the
    /// very start or end of the input, an anchor reads nothing outside it.
    #[test]
    fn cut_anchors_at_the_edges_of_the_input() {
        let anchors = [
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
            "AKIAIOSFODNN7QUEUEXZ",
            "AIzaSyA1234567890abcdefghijklmnopqrs",
            "-----BEGIN RSA PRIVATE KEY-----",
            "PuTTY-User-Key-File-3: ssh-rsa",
            "postgres://u:p@h/db",
            "ghp_",
            "github_pat_",
            "glpat-",
            "xoxb-",
            "sk_live_",
            "rk_live_",
            "sk-ant-",
            "Authorization: Basic dTpw",
            "a@b.co",
            "4539 5787 6362 1486",
        ];
        // Soups of anchor pieces, glued or spaced, at random.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(31);
        for _ in 0..20_000 {
            let mut soup = Vec::new();
            for _ in 0..rng.gen_range(1..8) {
                let a = anchors[rng.gen_range(0..anchors.len())].as_bytes();
                let from = rng.gen_range(0..a.len());
                let to = rng.gen_range(from..=a.len());
                soup.extend_from_slice(&a[from..to]);
                if rng.gen_bool(0.3) {
                    soup.push(b" _-/@\"\\"[rng.gen_range(0..7)]);
                }
            }
            let mut hits = Vec::new();
            strong(&soup, &mut hits);
            assert!(hits.iter().all(|h| h.start <= h.end && h.end <= soup.len()));
        }
        for a in anchors {
            for from in 0..a.len() {
                for to in from..=a.len() {
                    let piece = &a.as_bytes()[from..to];
                    let mut hits = Vec::new();
                    strong(piece, &mut hits);
                    assert!(hits
                        .iter()
                        .all(|h| h.start <= h.end && h.end <= piece.len()));
                }
            }
        }
    }

    /// What a JWT header must be: a JSON object with one top-level string `alg`.
    #[test]
    fn jwt_headers_are_read_as_json() {
        for (header, want) in [
            (&br#"{"alg":"HS256","typ":"JWT"}"#[..], Some(false)),
            (br#" { "typ" : "JWT", "alg" : "none" }"#, Some(true)),
            (br#"{"alg":"\u006eone"}"#, Some(true)),
            (br#"{"kid":{"alg":"HS256"},"alg":"RS256"}"#, Some(false)),
            (br#"{"alg":256}"#, None),
            (br#"{"alg":null}"#, None),
            (br#"{"alg":["HS256"]}"#, None),
            (br#"{"alg":"HS256","alg":"none"}"#, None),
            (br#"{"typ":"JWT"}"#, None),
            (br#"["alg","HS256"]"#, None),
            (br#""alg""#, None),
            (br#"{"alg":"HS256""#, None),
            (br#"{"alg":"HS256"} x"#, None),
            (b"{\"alg\":\"HS\xff\"}", None),
            (b"", None),
        ] {
            assert_eq!(jwt_alg(header), want, "{}", String::from_utf8_lossy(header));
        }
    }

    /// The kept verdict of the last header is the one reading the header gives, whatever the
    /// order headers come in: repeated, alternating, long, undecodable.
    #[test]
    fn a_kept_header_verdict_is_the_headers_own() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let long = format!(r#"{{"alg":"RS256","kid":"{}"}}"#, "k".repeat(300));
        let headers: Vec<Vec<u8>> = [
            &br#"{"alg":"HS256","typ":"JWT"}"#[..],
            br#"{"alg":"none"}"#,
            br#"{"alg":256}"#,
            long.as_bytes(),
        ]
        .iter()
        .map(|h| b64.encode(h).into_bytes())
        .chain([b"eyJ!!!!".to_vec(), b"eyJhbGciOiJIUzI1NiJ9x".to_vec()])
        .collect();
        for order in [
            [0, 0, 1, 1, 0, 2, 2, 3, 3, 0],
            [4, 4, 5, 0, 5, 3, 1, 4, 2, 0],
        ] {
            for k in order {
                let h = &headers[k];
                assert_eq!(header_alg(h), decode_header_alg(h), "header {k}");
            }
        }
        assert_eq!(header_alg(&headers[0]), Some(false));
        assert_eq!(header_alg(&headers[1]), Some(true));
        assert_eq!(header_alg(&headers[3]), Some(false));
        assert_eq!(header_alg(&headers[4]), None);
    }

    /// SaaS tokens by their prefixes (built at run time, so no scanner mistakes this file for
    /// a leak).
    #[test]
    fn saas_tokens_by_prefix() {
        let body = "9fK2mQ7xL4vR8tW1zY6nB3cD5hJ0pS";
        for prefix in [
            "xoxb-", "xoxp-", "xoxa-", "sk_live_", "rk_live_", "ghp_", "glpat-",
        ] {
            let tail = match prefix {
                "ghp_" => format!("{body}aZ4k9Q"),
                "glpat-" => body[..20].to_string(),
                _ => body.to_string(),
            };
            let token = format!("{prefix}{tail}");
            assert_eq!(
                kinds(&format!("token={token} ")),
                vec![Kind::VcsToken],
                "{token}"
            );
            assert_eq!(kinds(&format!("x{token}")), vec![], "glued: {token}");
        }
        for not in [
            format!("xoxz-{body}"),
            format!("xoxb{body}"),
            format!("ak_live_{body}"),
            "sk_live_short".to_string(),
            format!("xoxb-{}", "a".repeat(30)),
        ] {
            assert_eq!(kinds(&not), vec![], "{not}");
        }
    }

    #[test]
    fn gated_types_need_their_name() {
        let g = |v: &str, gates: &[Gate]| {
            let mut out = vec![];
            gated(v.as_bytes(), gates, &mut out);
            out.first().map(|h| h.kind)
        };
        assert_eq!(g("123", &[Gate::Cvv]), Some(Kind::Cvv));
        assert_eq!(g("12/27", &[Gate::Expiry]), Some(Kind::Expiry));
        assert_eq!(g("13/27", &[Gate::Expiry]), None);
        assert_eq!(g("hunter2!", &[Gate::Password]), Some(Kind::Password));
        assert_eq!(g("${PASSWORD}", &[Gate::Password]), None);
        assert_eq!(
            g(
                "$2b$12$abcdefghijklmnopqrstuvABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
                &[Gate::Password]
            ),
            Some(Kind::PasswordHash)
        );
        assert_eq!(g("536904399", &[Gate::Ssn]), Some(Kind::Ssn));
        assert_eq!(g("+44 20 7946 0958", &[Gate::Phone]), Some(Kind::Phone));
        assert_eq!(g("Ada Lovelace", &[Gate::Person]), Some(Kind::Person));
        assert_eq!(g("ada", &[Gate::Person]), None);
        assert_eq!(g("1990-04-01", &[Gate::Dob]), Some(Kind::Dob));
        assert_eq!(g("8.8.8.8", &[Gate::Ip]), Some(Kind::IpAddress));
        assert_eq!(g("10.1.2.3", &[Gate::Ip]), None);
        assert_eq!(
            g(
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ9xT3uVwX",
                &[Gate::AwsSecret]
            ),
            Some(Kind::AwsSecret)
        );
        assert_eq!(g("536904399", &[]), None);
    }
}
