//! Email addresses, read outwards from the `@`s the block pass found.

use super::*;
use crate::detect::Kind;

/// Characters of an email address's local part, as a table: the scan runs backwards over every
/// local part.
pub(super) static EMAIL_LOCAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-');
        b += 1;
    }
    t
};

/// Characters of an email address's domain: letters, digits, `-` and `.`.
pub(super) fn email_domain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.'
}

/// Letters, digits, `-` and `.` of 16 bytes, as a byte mask (SSE2).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn email_domain_bytes(v: std::arch::x86_64::__m128i) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86-64 baseline. Setting bit 5 folds capitals onto lower
    // case; bytes of 0x80 and up stay negative, so outside both ranges.
    unsafe {
        let letters = within(_mm_or_si128(v, _mm_set1_epi8(0x20)), b'a', b'z');
        let marks = _mm_or_si128(
            _mm_cmpeq_epi8(v, _mm_set1_epi8(b'-' as i8)),
            _mm_cmpeq_epi8(v, _mm_set1_epi8(b'.' as i8)),
        );
        _mm_or_si128(_mm_or_si128(letters, within(v, b'0', b'9')), marks)
    }
}

/// Where the local part ending before the `@` at `at` starts: the run of [`EMAIL_LOCAL`]
/// bytes before it, at most 64 long. Read 16 bytes at a time backwards (SSE2): local parts
/// are a dozen bytes or more, and a byte loop over them was a fifth of the email check.
pub(super) fn local_part_start(s: &[u8], at: usize) -> usize {
    let floor = at.saturating_sub(64);
    let mut start = at;
    #[cfg(target_arch = "x86_64")]
    while start >= floor + 16 {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86-64 baseline; the load reads s[start - 16..start],
        // inside the slice as `start <= at < s.len()` and `start >= 16`.
        let ok = unsafe {
            let v = _mm_loadu_si128(s.as_ptr().add(start - 16) as *const __m128i);
            let marks = _mm_or_si128(
                _mm_or_si128(
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'_' as i8)),
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'%' as i8)),
                ),
                _mm_cmpeq_epi8(v, _mm_set1_epi8(b'+' as i8)),
            );
            _mm_movemask_epi8(_mm_or_si128(email_domain_bytes(v), marks)) as u32
        };
        // Bit 15 is the byte just before `start`: count the accepted bytes down from it.
        let taken = (!(ok << 16)).leading_zeros() as usize;
        start -= taken;
        if taken < 16 {
            return start;
        }
    }
    while start > floor && EMAIL_LOCAL[s[start - 1] as usize] {
        start -= 1;
    }
    start
}

/// `run(s, from, max, email_domain_byte)`, 16 bytes at a time where SSE2 is.
pub(super) fn domain_run(s: &[u8], from: usize, max: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    let vector = email_domain_bytes;
    #[cfg(not(target_arch = "x86_64"))]
    let vector = ();
    run_end(s, from, from.saturating_add(max), vector, email_domain_byte)
}

pub(super) fn email(s: &[u8], at: usize, out: &mut Vec<Hit>) {
    let start = local_part_start(s, at);
    if start == at || s[start] == b'.' || s[at - 1] == b'.' {
        return;
    }
    let mut end = domain_run(s, at + 1, 253);
    while end > at + 1 && (s[end - 1] == b'.' || s[end - 1] == b'-') {
        end -= 1;
    }
    let domain = &s[at + 1..end];
    // Labels between dots: none empty, none over 63, at least two; the last is the TLD.
    let mut labels = 1;
    let mut label_start = 0;
    for (k, b) in domain.iter().enumerate() {
        if *b == b'.' {
            if k == label_start || k - label_start > 63 {
                return;
            }
            labels += 1;
            label_start = k + 1;
        }
    }
    let tld = &domain[label_start..];
    if labels < 2 || !(2..=24).contains(&tld.len()) || !tld.iter().all(u8::is_ascii_alphabetic) {
        return;
    }
    // The TLD in lower case as one word (TLDs this list names are at most eight letters but
    // `localhost`): every check below is a compare, not a case-blind slice compare.
    let name = if tld.len() <= 8 {
        tld.iter()
            .rev()
            .fold(0u64, |w, b| w << 8 | (b | 0x20) as u64)
    } else {
        0
    };
    // File names such as `icon@2x.png` are not addresses.
    if FILE_SUFFIXES.contains(&name) {
        return;
    }
    let local = &s[start..at];
    let starts_with = |whole: &[u8], head: &[u8]| {
        whole.len() >= head.len() && whole[..head.len()].eq_ignore_ascii_case(head)
    };
    let example = matches!(name, COM | ORG | NET)
        && domain.len() >= 11
        && domain[domain.len() - 11..domain.len() - 3].eq_ignore_ascii_case(b"example.");
    let reserved = example
        || RESERVED_TLDS.contains(&name)
        || tld.eq_ignore_ascii_case(b"localhost")
        || starts_with(local, b"noreply")
        || starts_with(local, b"no-reply");
    if !reserved {
        out.push(Hit {
            kind: Kind::Email,
            start,
            end,
        });
    }
}

/// Up to eight lower-case ASCII letters as one word, first letter lowest (how [`email`] packs
/// a TLD).
pub(super) const fn tld_word(name: &[u8]) -> u64 {
    let mut w = 0u64;
    let mut i = name.len();
    while i > 0 {
        i -= 1;
        w = w << 8 | name[i] as u64;
    }
    w
}

pub(super) const COM: u64 = tld_word(b"com");
pub(super) const ORG: u64 = tld_word(b"org");
pub(super) const NET: u64 = tld_word(b"net");

/// File extensions after an `@` (`icon@2x.png`): not an address.
pub(super) const FILE_SUFFIXES: [u64; 9] = [
    tld_word(b"png"),
    tld_word(b"jpg"),
    tld_word(b"jpeg"),
    tld_word(b"gif"),
    tld_word(b"svg"),
    tld_word(b"webp"),
    tld_word(b"js"),
    tld_word(b"css"),
    tld_word(b"map"),
];

/// Reserved TLDs (RFC 2606 and 6761) but `localhost`, which is longer than a word.
pub(super) const RESERVED_TLDS: [u64; 4] = [
    tld_word(b"test"),
    tld_word(b"invalid"),
    tld_word(b"example"),
    tld_word(b"local"),
];
