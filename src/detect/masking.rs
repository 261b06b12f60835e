//! Masking: evidence is only ever kept as its shape (letters → `*`, digits → `1`, the rest
//! kept), so a masked sample can show where data was without holding it.

/// Letters become `*`, digits `1`; everything else stays, so the shape survives and the value
/// does not.
pub fn mask(value: &[u8]) -> String {
    if value.is_ascii() {
        let value = &value[..value.len().min(128)];
        let n = value.len();
        let mut masked: Vec<u8> = Vec::with_capacity(n);
        if n < 16 {
            masked.extend(value.iter().map(|&b| MASKED[b as usize]));
        } else {
            // 16 bytes at a time, the last 16 overlapping the chunk before when `n` is not a
            // multiple of 16 (they mask the same): no byte loop, no padded copy.
            let mut at = 0;
            while at < n {
                at = at.min(n - 16);
                let chunk: [u8; 16] = value[at..at + 16].try_into().unwrap_or([0; 16]);
                let out = mask16(chunk);
                // SAFETY: `at + 16 <= n`, the capacity, and `masked` is filled in order, so
                // every byte below `at + 16` is written before the length covers it.
                unsafe {
                    std::ptr::copy_nonoverlapping(out.as_ptr(), masked.as_mut_ptr().add(at), 16);
                    masked.set_len(at + 16);
                }
                at += 16;
            }
        }
        // SAFETY: every byte is ASCII (the input was, and the mask maps ASCII to ASCII), so
        // the bytes are UTF-8; checking them again cost more than the masking.
        return unsafe { String::from_utf8_unchecked(masked) };
    }
    String::from_utf8_lossy(value)
        .chars()
        .take(128)
        .map(|c| {
            if c.is_alphabetic() {
                '*'
            } else if c.is_numeric() {
                '1'
            } else {
                c
            }
        })
        .collect()
}

/// What [`mask`] makes of each ASCII byte (the rest map to themselves; they never reach it).
static MASKED: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_alphabetic() {
            b'*'
        } else if c.is_ascii_digit() {
            b'1'
        } else {
            c
        };
        b += 1;
    }
    t
};

/// [`mask`] of 16 ASCII bytes at once (every finding is masked, so this is on the hot path).
#[cfg(target_arch = "x86_64")]
fn mask16(chunk: [u8; 16]) -> [u8; 16] {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86-64 baseline; the load and store are of 16-byte arrays.
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr() as *const __m128i);
        let within = |x: __m128i, lo: u8, hi: u8| {
            _mm_and_si128(
                _mm_cmpgt_epi8(x, _mm_set1_epi8(lo as i8 - 1)),
                _mm_cmplt_epi8(x, _mm_set1_epi8(hi as i8 + 1)),
            )
        };
        // Setting bit 5 folds capitals onto lower case; ASCII only, so no sign trouble.
        let letter = within(_mm_or_si128(v, _mm_set1_epi8(0x20)), b'a', b'z');
        let digit = within(v, b'0', b'9');
        let kept = _mm_andnot_si128(_mm_or_si128(letter, digit), v);
        let masked = _mm_or_si128(
            kept,
            _mm_or_si128(
                _mm_and_si128(letter, _mm_set1_epi8(b'*' as i8)),
                _mm_and_si128(digit, _mm_set1_epi8(b'1' as i8)),
            ),
        );
        let mut out = [0u8; 16];
        _mm_storeu_si128(out.as_mut_ptr() as *mut __m128i, masked);
        out
    }
}

/// [`mask`] of 16 ASCII bytes at once.
#[cfg(not(target_arch = "x86_64"))]
fn mask16(chunk: [u8; 16]) -> [u8; 16] {
    chunk.map(|b| MASKED[b as usize])
}
