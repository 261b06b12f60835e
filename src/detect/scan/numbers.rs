//! Digit runs: cards, IBANs, delimited SSNs and the other numbers a run can be, judged where
//! the block pass found them.

use super::*;
use crate::detect::validators as v;
use crate::detect::Kind;

/// A mask with the bits below `n` cleared (all clear from 64 on).
pub(super) fn below_cleared(n: usize) -> u64 {
    if n >= 64 {
        0
    } else {
        !0u64 << n
    }
}

/// Whether the run of digits alone `s[start..end]` (nine or more, nothing numeric on either
/// side) is surely no type: what [`judge_number`] would conclude, without reading the digits.
/// Such a run is an IBAN's only after a capital or a digit (past one space), and a card's
/// only with 13 to 19 digits and an issuer's first digit (2 to 6); without separators it is
/// never an SSN.
pub(super) fn plain_digits_are_nothing(s: &[u8], start: usize, end: usize) -> bool {
    let (_, prev) = bytes_before_run(s, start);
    let card_shaped = (13..=19).contains(&(end - start)) && (b'2'..=b'6').contains(&s[start]);
    !card_shaped && !may_end_iban_head(prev)
}

/// The byte before a run starting at `start`, and the byte an IBAN's head would end with: the
/// same, or the one before it when it is a space. 0 before the input: selects, not branches.
pub(super) fn bytes_before_run(s: &[u8], start: usize) -> (u8, u8) {
    let at = |k: Option<usize>| k.and_then(|k| s.get(k)).copied().unwrap_or(0);
    let before = at(start.checked_sub(1));
    let prev = if before == b' ' {
        at(start.checked_sub(2))
    } else {
        before
    };
    (before, prev)
}

/// Whether `b` may end the country letters and check digits before an IBAN's digits.
pub(super) fn may_end_iban_head(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

/// Whether `s[i]` belongs to a run: a digit, or a space or dash between two digits.
pub(super) fn numeric_at(s: &[u8], i: usize) -> bool {
    let c = s[i];
    c.is_ascii_digit()
        || ((c == b' ' || c == b'-')
            && i > 0
            && s[i - 1].is_ascii_digit()
            && s.get(i + 1).is_some_and(u8::is_ascii_digit))
}

/// Most digits a number of any type has.
pub(super) const MAX_DIGITS: usize = 24;

/// Reads the run of digits starting at `start`, reports what it is, returns where it ends.
pub(super) fn number_at(s: &[u8], start: usize, out: &mut Vec<Hit>) -> usize {
    // Most runs are digits alone (ids, timestamps, most card numbers): their digits are the
    // bytes themselves, so they need no copy and no group bookkeeping.
    let end = digit_run_end(s, start);
    let separator_follows =
        matches!(s.get(end), Some(b' ' | b'-')) && s.get(end + 1).is_some_and(u8::is_ascii_digit);
    if separator_follows {
        return grouped_number_at(s, start, out);
    }
    let n = end - start;
    let digits = &s[start..start + n.min(MAX_DIGITS)];
    judge_number(s, start, end, digits, n, &[n], true, out);
    end
}

/// The end of the run of ASCII digits from `i`.
pub(super) fn digit_run_end(s: &[u8], i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    // SAFETY (of the closure's intrinsics): SSE2 is part of the x86-64 baseline.
    let digits = |v| unsafe { within(v, b'0', b'9') };
    #[cfg(not(target_arch = "x86_64"))]
    let digits = ();
    run_end(s, i, s.len(), digits, |b| b.is_ascii_digit())
}

/// Bytes of `v` from `lo` to `hi` (ASCII), as a byte mask. Signed compares: bytes of 0x80 and up
/// are negative, so in no range. Unsafe only as the SSE2 intrinsics are; every x86-64 CPU has
/// SSE2.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(in crate::detect) unsafe fn within(
    v: std::arch::x86_64::__m128i,
    lo: u8,
    hi: u8,
) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::*;
    _mm_and_si128(
        _mm_cmpgt_epi8(v, _mm_set1_epi8(lo as i8 - 1)),
        _mm_cmplt_epi8(v, _mm_set1_epi8(hi as i8 + 1)),
    )
}

/// The end of the run of bytes accepted by `ok` from `i`, before `limit`: 16 bytes at a time
/// where `vector` gives the same answer as a byte mask (SSE2), byte by byte for the tail.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(in crate::detect) fn run_end(
    s: &[u8],
    mut i: usize,
    limit: usize,
    vector: impl Fn(std::arch::x86_64::__m128i) -> std::arch::x86_64::__m128i,
    ok: impl Fn(u8) -> bool,
) -> usize {
    use std::arch::x86_64::*;
    let limit = limit.min(s.len());
    while i + 16 <= limit {
        // SAFETY: SSE2 is part of the x86-64 baseline; the unaligned load reads s[i..i + 16],
        // inside the slice since `limit` is at most its length.
        let hits = unsafe {
            _mm_movemask_epi8(vector(_mm_loadu_si128(s.as_ptr().add(i) as *const __m128i))) as u32
        };
        if hits != 0xffff {
            return i + (!hits).trailing_zeros() as usize;
        }
        i += 16;
    }
    while i < limit && ok(s[i]) {
        i += 1;
    }
    i
}

/// [`run_end`] without vectors.
#[cfg(not(target_arch = "x86_64"))]
pub(in crate::detect) fn run_end(
    s: &[u8],
    mut i: usize,
    limit: usize,
    _: (),
    ok: impl Fn(u8) -> bool,
) -> usize {
    let limit = limit.min(s.len());
    while i < limit && ok(s[i]) {
        i += 1;
    }
    i
}

/// [`number_at`] for a run with separators (`4539 5787 6362 1486`, `536-90-4399`): the digits
/// are gathered and the groups measured. Reads digit-only runs the same way, only slower.
pub(super) fn grouped_number_at(s: &[u8], start: usize, out: &mut Vec<Hit>) -> usize {
    let mut digits = [0u8; MAX_DIGITS];
    let mut n = 0;
    // Lengths of the first three groups, recorded at each separator (a running count kept in
    // memory would put a store-to-load stall on every digit).
    let mut groups = [0usize; 3];
    let mut ngroups = 1;
    let mut group_start = 0;
    let mut sep: Option<u8> = None;
    let mut same_seps = true;
    let mut j = start;
    while j < s.len() {
        let c = s[j];
        if c.is_ascii_digit() {
            if n == MAX_DIGITS {
                n += 1;
                break;
            }
            digits[n] = c;
            n += 1;
            j += 1;
        } else if (c == b' ' || c == b'-') && j + 1 < s.len() && s[j + 1].is_ascii_digit() {
            same_seps &= sep.is_none_or(|p| p == c);
            sep = Some(c);
            if ngroups <= 3 {
                groups[ngroups - 1] = n - group_start;
            }
            group_start = n;
            ngroups += 1;
            j += 1;
        } else {
            break;
        }
    }
    let end = j;
    if ngroups <= 3 {
        groups[ngroups - 1] = n - group_start;
    }
    let digits = &digits[..n.min(MAX_DIGITS)];
    judge_number(
        s,
        start,
        end,
        digits,
        n,
        &groups[..ngroups.min(3)],
        same_seps,
        out,
    );
    end
}

/// Reports what the run `s[start..end]` is: `n` digits (the first [`MAX_DIGITS`] of them in
/// `digits`), in groups of the lengths `groups` (the first three), separated alike or not.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn judge_number(
    s: &[u8],
    start: usize,
    end: usize,
    digits: &[u8],
    n: usize,
    groups: &[usize],
    same_seps: bool,
    out: &mut Vec<Hit>,
) {
    if n < 9 {
        return;
    }
    // IBAN: country letters and check digits lead the BBAN, up to 34 characters back.
    let (before, prev) = bytes_before_run(s, start);
    if may_end_iban_head(prev) && iban_before(s, start, out) {
        return;
    }
    // Word boundaries: a number glued to letters is an identifier, not a number.
    let glued = is_word(before) | is_word(s.get(end).copied().unwrap_or(0));
    if glued || n > MAX_DIGITS {
        return;
    }
    if (13..=19).contains(&n) && same_seps && v::pan(digits) {
        let kind = if v::test_pan(digits) {
            Kind::TestPan
        } else {
            Kind::Pan
        };
        out.push(Hit { kind, start, end });
    } else if n == 9 && groups == [3, 2, 4] && same_seps && v::ssn(digits) {
        out.push(Hit {
            kind: Kind::Ssn,
            start,
            end,
        });
    }
}

/// Tries IBAN starts (two capitals and two digits at a word start) in the 34 bytes before a
/// long digit run.
pub(super) fn iban_before(s: &[u8], run_start: usize, out: &mut Vec<Hit>) -> bool {
    let from = run_start.saturating_sub(34);
    for at in (from..run_start).rev() {
        let c = |k: usize| s.get(at + k).copied().unwrap_or(0);
        if c(0).is_ascii_uppercase()
            && c(1).is_ascii_uppercase()
            && c(2).is_ascii_digit()
            && c(3).is_ascii_digit()
            && (at == 0 || !is_word(s[at - 1]))
            && iban_at(s, at, out)
        {
            return true;
        }
        // Stop at anything an IBAN cannot contain.
        if !(s[at].is_ascii_uppercase() || s[at].is_ascii_digit() || s[at] == b' ') {
            break;
        }
    }
    false
}

/// An IBAN starting at `at` (spaces every four characters allowed).
pub(super) fn iban_at(s: &[u8], at: usize, out: &mut Vec<Hit>) -> bool {
    if at > 0 && is_word(s[at - 1]) {
        return false;
    }
    // The country fixes the length, so only one prefix can validate: read exactly that many
    // characters (spaces between groups allowed).
    let Some(len) = v::iban_length(&s[at..s.len().min(at + 2)]).filter(|l| *l <= 34) else {
        return false;
    };
    // Most IBANs in data are written without spaces: validate them in place (the checksum's
    // table refuses any character an IBAN cannot hold, so they need no pass of their own).
    if let Some(whole) = s.get(at..at + len) {
        let end = at + len;
        // It must end at a word boundary.
        if s.get(end).is_none_or(|c| !is_word(*c)) && v::iban(whole) {
            out.push(Hit {
                kind: Kind::Iban,
                start: at,
                end,
            });
            return true;
        }
        // Only one written in groups can still be an IBAN.
        if !whole.contains(&b' ') {
            return false;
        }
    }
    spaced_iban_at(s, at, len, out)
}

/// [`iban_at`] for an IBAN of `len` characters that may be written in groups (`GB82 WEST 1234
/// …`): the characters are gathered first. Reads unspaced IBANs the same way, only slower.
pub(super) fn spaced_iban_at(s: &[u8], at: usize, len: usize, out: &mut Vec<Hit>) -> bool {
    let mut compact = [0u8; 34];
    let mut n = 0;
    let mut i = at;
    while i < s.len() && n < len {
        let c = s[i];
        if c.is_ascii_uppercase() || c.is_ascii_digit() {
            compact[n] = c;
            n += 1;
            i += 1;
        } else if c == b' ' && i + 1 < s.len() && s[i + 1].is_ascii_alphanumeric() {
            i += 1;
        } else {
            break;
        }
    }
    // It must end at a word boundary.
    if n == len && (i >= s.len() || !is_word(s[i])) && v::iban(&compact[..n]) {
        out.push(Hit {
            kind: Kind::Iban,
            start: at,
            end: i,
        });
        return true;
    }
    false
}
