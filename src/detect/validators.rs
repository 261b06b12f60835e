//! Checksums and range rules that turn a candidate into a finding. All public algorithms; each
//! takes the candidate's digits (or characters) without separators.

/// Luhn (mod 10) over ASCII digits.
pub fn luhn(digits: &[u8]) -> bool {
    if digits.len() < 2 || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    // Every second digit from the right is doubled, its digits summed: a table, not branches.
    const DOUBLED: [u32; 10] = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let v = (d - b'0') as usize;
        sum += if i % 2 == 1 { DOUBLED[v] } else { v as u32 };
    }
    sum.is_multiple_of(10)
}

/// All one repeated character (`0000000000`, `1111…`).
pub fn repdigit(s: &[u8]) -> bool {
    s.windows(2).all(|w| w[0] == w[1])
}

/// Card numbers: 13–19 digits, Luhn, and a known issuer prefix (IIN).
pub fn pan(digits: &[u8]) -> bool {
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    // The numbers formed by the first 1 to 6 digits, each from the one before (the caller
    // passes ASCII digits only; `% 10` keeps anything else from overflowing).
    let mut prefix = [0u32; 7];
    for k in 0..6 {
        prefix[k + 1] = prefix[k] * 10 + digits[k].wrapping_sub(b'0') as u32 % 10;
    }
    let [_, p1, p2, p3, p4, _, p6] = prefix;
    let len = digits.len();
    // The issuer prefix first: it rejects most numbers (timestamps, order numbers) for less
    // than the checksum costs.
    let issuer = match p1 {
        4 => matches!(len, 13 | 16 | 19),                        // Visa
        5 => (51..=55).contains(&p2) || (50..=59).contains(&p2), // Mastercard, Maestro
        2 => (2221..=2720).contains(&p4) && len == 16,           // Mastercard 2-series
        3 => {
            ((p2 == 34 || p2 == 37) && len == 15)                 // Amex
                || ((300..=305).contains(&p3) || p2 == 36 || p2 == 38) && (14..=19).contains(&len) // Diners
                || (3528..=3589).contains(&p4) // JCB
        }
        6 => {
            p4 == 6011
                || (644..=649).contains(&p3)
                || p2 == 65
                || p2 == 62
                || (622_126..=622_925).contains(&p6)
                || (56..=69).contains(&p2)
        }
        _ => false,
    };
    issuer && !repdigit(digits) && luhn(digits)
}

/// Card numbers published for testing by card networks and payment providers.
pub fn test_pan(digits: &[u8]) -> bool {
    const KNOWN: &[&str] = &[
        "4111111111111111",
        "4242424242424242",
        "4012888888881881",
        "4000056655665556",
        "4222222222222",
        "5555555555554444",
        "5105105105105100",
        "5200828282828210",
        "2223003122003222",
        "378282246310005",
        "371449635398431",
        "378734493671000",
        "6011111111111117",
        "6011000990139424",
        "3530111333300000",
        "3566002020360505",
        "30569309025904",
        "38520000023237",
        "6200000000000005",
    ];
    KNOWN.iter().any(|k| k.as_bytes() == digits)
}

/// IBAN: a known country, its length, and ISO 7064 mod 97 = 1.
pub fn iban(s: &[u8]) -> bool {
    let Some(len) = iban_length(s.get(..2).unwrap_or_default()) else {
        return false;
    };
    // Check digits run 02-98 (ISO 13616); 00, 01 and 99 are never issued. Characters that are
    // neither digits nor capitals are caught by the checksum's table below.
    if s.len() != len
        || !s[2..4].iter().all(u8::is_ascii_digit)
        || matches!(&s[2..4], b"00" | b"01" | b"99")
    {
        return false;
    }
    // Move the first four characters to the end, letters to numbers (A=10), mod 97.
    // Digits and letters interleave unpredictably in a BBAN, so each character's value and
    // its scale (10 for a digit, 100 for a letter's two digits) come from a table, not a
    // branch. The remainder is reduced after every seven characters, not tested at each:
    // below 97 and scaled by at most 100^7, it stays far inside 64 bits.
    let mut rem: u64 = 0;
    let mut invalid = 0u8;
    let mut step = |rem: u64, c: u8| {
        let v = IBAN_VALUE[c as usize];
        invalid |= v;
        let scale = if v >= 10 { 100 } else { 10 };
        rem * scale + (v & 0x3f) as u64
    };
    let (bban, head) = (&s[4..], &s[..4]);
    for chunk in bban.chunks(7) {
        rem = chunk.iter().fold(rem, |r, &c| step(r, c)) % 97;
    }
    rem = head.iter().fold(rem, |r, &c| step(r, c)) % 97;
    invalid & 0x80 == 0 && rem == 1
}

/// A character's value in the IBAN checksum (digits 0-9, capitals 10-35); 0xff for anything
/// else.
static IBAN_VALUE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_digit() {
            t[c] = b - b'0';
        } else if b.is_ascii_uppercase() {
            t[c] = b - b'A' + 10;
        }
        c += 1;
    }
    t
};

/// IBAN lengths by country (SWIFT's IBAN registry).
const IBAN_LENGTHS: &[([u8; 2], u8)] = &[
    (*b"AD", 24),
    (*b"AE", 23),
    (*b"AL", 28),
    (*b"AT", 20),
    (*b"AZ", 28),
    (*b"BA", 20),
    (*b"BE", 16),
    (*b"BG", 22),
    (*b"BH", 22),
    (*b"BR", 29),
    (*b"CH", 21),
    (*b"CR", 22),
    (*b"CY", 28),
    (*b"CZ", 24),
    (*b"DE", 22),
    (*b"DK", 18),
    (*b"DO", 28),
    (*b"EE", 20),
    (*b"EG", 29),
    (*b"ES", 24),
    (*b"FI", 18),
    (*b"FO", 18),
    (*b"FR", 27),
    (*b"GB", 22),
    (*b"GE", 22),
    (*b"GI", 23),
    (*b"GL", 18),
    (*b"GR", 27),
    (*b"GT", 28),
    (*b"HR", 21),
    (*b"HU", 28),
    (*b"IE", 22),
    (*b"IL", 23),
    (*b"IS", 26),
    (*b"IT", 27),
    (*b"JO", 30),
    (*b"KW", 30),
    (*b"KZ", 20),
    (*b"LB", 28),
    (*b"LI", 21),
    (*b"LT", 20),
    (*b"LU", 20),
    (*b"LV", 21),
    (*b"MC", 27),
    (*b"MD", 24),
    (*b"ME", 22),
    (*b"MK", 19),
    (*b"MR", 27),
    (*b"MT", 31),
    (*b"MU", 30),
    (*b"NL", 18),
    (*b"NO", 15),
    (*b"PK", 24),
    (*b"PL", 28),
    (*b"PS", 29),
    (*b"PT", 25),
    (*b"QA", 29),
    (*b"RO", 24),
    (*b"RS", 22),
    (*b"SA", 24),
    (*b"SE", 24),
    (*b"SI", 19),
    (*b"SK", 24),
    (*b"SM", 27),
    (*b"TN", 24),
    (*b"TR", 26),
    (*b"UA", 29),
    (*b"VG", 24),
    (*b"XK", 20),
];

/// [`IBAN_LENGTHS`] as a table indexed by the two capitals (0: no such country): every long
/// digit run after two capitals asks it, so a lookup, not a search.
static IBAN_LENGTH_TABLE: [u8; 26 * 26] = {
    let mut t = [0u8; 26 * 26];
    let mut i = 0;
    while i < IBAN_LENGTHS.len() {
        let (cc, len) = IBAN_LENGTHS[i];
        t[(cc[0] - b'A') as usize * 26 + (cc[1] - b'A') as usize] = len;
        i += 1;
    }
    t
};

/// The length of an IBAN of country `cc` (its first two bytes), if there is such a country.
pub fn iban_length(cc: &[u8]) -> Option<usize> {
    let &[a, b] = cc else { return None };
    if !a.is_ascii_uppercase() || !b.is_ascii_uppercase() {
        return None;
    }
    match IBAN_LENGTH_TABLE[(a - b'A') as usize * 26 + (b - b'A') as usize] {
        0 => None,
        len => Some(len as usize),
    }
}

/// US SSN rules: area not 000, 666 or 900–999; group not 00; serial not 0000; not a famous
/// sample (078-05-1120, 219-09-9999, 123-45-6789) or a repdigit.
pub fn ssn(d: &[u8]) -> bool {
    if d.len() != 9 || !d.iter().all(u8::is_ascii_digit) || repdigit(d) {
        return false;
    }
    let area = &d[..3];
    if area == b"000" || area == b"666" || area[0] == b'9' {
        return false;
    }
    if &d[3..5] == b"00" || &d[5..] == b"0000" {
        return false;
    }
    !matches!(d, b"078051120" | b"219099999" | b"123456789")
}

/// ABA routing numbers: 3-7-1 weights mod 10, and a Federal Reserve prefix (00–12, 21–32,
/// 61–72, 80).
pub fn aba(d: &[u8]) -> bool {
    if d.len() != 9 || !d.iter().all(u8::is_ascii_digit) || repdigit(d) {
        return false;
    }
    let prefix = (d[0] - b'0') * 10 + (d[1] - b'0');
    if !matches!(prefix, 0..=12 | 21..=32 | 61..=72 | 80) {
        return false;
    }
    let w = [3u32, 7, 1];
    let sum: u32 = d
        .iter()
        .enumerate()
        .map(|(i, c)| (c - b'0') as u32 * w[i % 3])
        .sum();
    sum.is_multiple_of(10)
}

/// Verhoeff check (Aadhaar).
pub fn verhoeff(d: &[u8]) -> bool {
    const D: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const P: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut c = 0u8;
    for (i, x) in d.iter().rev().enumerate() {
        c = D[c as usize][P[i % 8][(x - b'0') as usize] as usize];
    }
    c == 0
}

/// Aadhaar: 12 digits, first 2–9, Verhoeff.
pub fn aadhaar(d: &[u8]) -> bool {
    d.len() == 12 && (b'2'..=b'9').contains(&d[0]) && !repdigit(d) && verhoeff(d)
}

/// NHS number: 10 digits, mod 11 check digit (a remainder giving 10 is invalid).
pub fn nhs(d: &[u8]) -> bool {
    if d.len() != 10 || !d.iter().all(u8::is_ascii_digit) || repdigit(d) {
        return false;
    }
    let sum: u32 = d[..9]
        .iter()
        .enumerate()
        .map(|(i, c)| (c - b'0') as u32 * (10 - i as u32))
        .sum();
    let check = (11 - sum % 11) % 11;
    check != 10 && check == (d[9] - b'0') as u32
}

/// Canadian SIN: 9 digits, Luhn, first digit not 0 or 8.
pub fn ca_sin(d: &[u8]) -> bool {
    d.len() == 9 && d[0] != b'0' && d[0] != b'8' && !repdigit(d) && luhn(d)
}

/// US NPI: 10 digits starting 1 or 2, Luhn over "80840" + the number.
pub fn npi(d: &[u8]) -> bool {
    if d.len() != 10 || !(d[0] == b'1' || d[0] == b'2') {
        return false;
    }
    let mut full = b"80840".to_vec();
    full.extend_from_slice(d);
    luhn(&full)
}

/// DEA registration: two letters, seven digits; (d1+d3+d5) + 2(d2+d4+d6) ≡ d7 (mod 10).
pub fn dea(s: &[u8]) -> bool {
    if s.len() != 9 || !s[0].is_ascii_uppercase() || !(s[1].is_ascii_uppercase() || s[1] == b'9') {
        return false;
    }
    let d = &s[2..];
    if !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let n = |i: usize| (d[i] - b'0') as u32;
    (n(0) + n(2) + n(4) + 2 * (n(1) + n(3) + n(5))) % 10 == n(6)
}

/// Shannon entropy in bits per character.
pub fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in s {
        counts[*b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = *c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Values that are placeholders, not data: `${VAR}`, `{{ x }}`, `<redacted>`, `****`, `xxxx`,
/// `null`, `changeme`, repeated characters.
pub fn placeholder(v: &[u8]) -> bool {
    let t = std::str::from_utf8(v).unwrap_or("").trim();
    if t.len() < 3 {
        return true;
    }
    let lower = t.to_ascii_lowercase();
    (t.starts_with("${") && t.ends_with('}'))
        || (t.starts_with("{{") && t.ends_with("}}"))
        || (t.starts_with('<') && t.ends_with('>'))
        || (t.starts_with('%') && t.ends_with('%'))
        || repdigit(t.as_bytes())
        || t.bytes()
            .all(|b| matches!(b, b'*' | b'x' | b'X' | b'#' | b'.' | b'-'))
        || matches!(
            lower.as_str(),
            "null"
                | "none"
                | "nil"
                | "true"
                | "false"
                | "undefined"
                | "changeme"
                | "change_me"
                | "password"
                | "secret"
                | "redacted"
                | "example"
                | "test"
                | "dummy"
                | "placeholder"
                | "your_password"
                | "yourpassword"
                | "********"
        )
        || lower.contains("example")
        || lower.contains("redacted")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_and_cards() {
        assert!(luhn(b"79927398713"));
        assert!(!luhn(b"79927398710"));
        assert!(pan(b"4539578763621486"), "Visa");
        assert!(pan(b"5425233430109903"), "Mastercard");
        assert!(pan(b"2223000048410010"), "Mastercard 2-series");
        assert!(pan(b"374245455400126"), "Amex");
        assert!(!pan(b"4539578763621487"), "bad check digit");
        assert!(!pan(b"9539578763621483"), "unknown issuer");
        assert!(!pan(b"0000000000000000"));
        assert!(test_pan(b"4111111111111111") && pan(b"4111111111111111"));
    }

    #[test]
    fn iban_lengths_by_country() {
        assert_eq!(iban_length(b"GB"), Some(22));
        assert_eq!(iban_length(b"NO"), Some(15));
        assert_eq!(iban_length(b"MT"), Some(31));
        // Every country listed, and nothing else of two bytes.
        let listed: std::collections::HashMap<[u8; 2], u8> = IBAN_LENGTHS.iter().copied().collect();
        assert_eq!(listed.len(), IBAN_LENGTHS.len(), "a country listed twice");
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let expected = listed.get(&[a, b]).map(|n| *n as usize);
                assert_eq!(iban_length(&[a, b]), expected, "{a} {b}");
            }
        }
        for cc in [&b""[..], b"G", b"GBR", b"gb"] {
            assert_eq!(iban_length(cc), None, "{cc:?}");
        }
    }

    #[test]
    fn iban_mod97() {
        assert!(iban(b"GB82WEST12345698765432"));
        assert!(iban(b"DE89370400440532013000"));
        assert!(iban(b"NL91ABNA0417164300"));
        assert!(!iban(b"GB82WEST12345698765433"), "check");
        assert!(!iban(b"GB82WEST1234569876543"), "length");
        assert!(!iban(b"QQ82WEST12345698765432"), "country");
        // 01 is 98 modulo 97, but never issued.
        assert!(!iban(b"GB01WEST12345698765432"));
        assert!(!iban(b"GB82west12345698765432"), "lowercase");
        assert!(!iban(b"GB82WEST1234569876543/"), "punctuation");
        assert!(!iban(b"GB82WEST\x8034569876543"), "high byte");
        assert!(!iban(b"GB82 WEST123456987654"), "space");
        // The table-driven checksum agrees with the textbook one (reduce at every character)
        // on random BBANs of letters and digits.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(97);
        let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        for _ in 0..20_000 {
            let mut s = b"GB".to_vec();
            // Check digits as issued: 02 to 98.
            s.extend(format!("{:02}", rng.gen_range(2..99)).bytes());
            s.extend((0..18).map(|_| alphabet[rng.gen_range(0..alphabet.len())]));
            let textbook = s[4..].iter().chain(&s[..4]).fold(0u64, |rem, &c| {
                let v = if c.is_ascii_digit() {
                    (c - b'0') as u64
                } else {
                    (c - b'A') as u64 + 10
                };
                (rem * if v >= 10 { 100 } else { 10 } + v) % 97
            }) == 1;
            assert_eq!(iban(&s), textbook, "{}", String::from_utf8_lossy(&s));
        }
    }

    #[test]
    fn national_ids_and_routing() {
        assert!(ssn(b"536904399"));
        for bad in [
            b"000123456",
            b"666123456",
            b"912345678",
            b"536004399",
            b"536900000",
            b"078051120",
            b"123456789",
            b"111111111",
        ] {
            assert!(!ssn(bad), "{}", String::from_utf8_lossy(bad));
        }
        assert!(aba(b"011000015"), "Boston Fed");
        assert!(aba(b"121000358"));
        assert!(!aba(b"121000359"));
        assert!(!aba(b"991000015"), "prefix");
        assert!(verhoeff(b"2363"));
        assert!(aadhaar(b"234123412346"));
        assert!(!aadhaar(b"234123412347"));
        assert!(nhs(b"9434765919"));
        assert!(!nhs(b"9434765918"));
        assert!(ca_sin(b"130692544"));
        assert!(!ca_sin(b"130692545"));
        assert!(!ca_sin(b"046454286"), "a first digit of 0 is not issued");
        assert!(npi(b"1234567893"));
        assert!(!npi(b"1234567894"));
        assert!(dea(b"AB1234563"));
        assert!(!dea(b"AB1234564"));
    }

    #[test]
    fn entropy_and_placeholders() {
        assert!(entropy(b"aaaaaaaa") < 0.1);
        assert!(entropy(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ9xT3") > 4.0);
        for p in [
            "${DB_PASSWORD}",
            "{{ .Values.pass }}",
            "********",
            "null",
            "changeme",
            "xxxx",
            "AKIAIOSFODNN7EXAMPLE",
        ] {
            assert!(placeholder(p.as_bytes()), "{p}");
        }
        assert!(!placeholder(b"Tr0ub4dor&3"));
    }
}
