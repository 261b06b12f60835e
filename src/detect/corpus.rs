//! A labelled synthetic corpus for measuring the engine: JSON bodies shaped like real API
//! traffic (orders, payments, profiles, sessions, logs) that carry known sensitive values and
//! decoys built to fool weak detectors (checksum-failing cards and IBANs, SSNs in the 9xx area,
//! documentation AWS keys, example.com addresses, JWT look-alikes, order numbers, timestamps,
//! hashes). The tests measure precision and recall on it; `benches/detect.rs` measures speed.
//! Deterministic for a given seed.

use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// A planted sensitive value and the type the engine should report for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planted {
    pub kind: &'static str,
    pub value: String,
}

/// One document and what it truly contains.
#[derive(Debug, Clone)]
pub struct Doc {
    pub body: Vec<u8>,
    pub planted: Vec<Planted>,
}

/// Generates documents.
pub struct Generator {
    rng: StdRng,
}

const FIRST: &[&str] = &[
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Frances", "Dennis",
];
const LAST: &[&str] = &[
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson", "Allen",
    "Ritchie",
];
const DOMAINS: &[&str] = &[
    "acme-corp.io",
    "globex.com",
    "initech.net",
    "umbrella.co.uk",
    "hooli.dev",
];
const WORDS: &[&str] = &[
    "shipment",
    "delayed",
    "customer",
    "asked",
    "refund",
    "please",
    "call",
    "back",
    "order",
    "priority",
    "warehouse",
    "north",
    "blue",
    "size",
    "large",
    "gift",
    "wrap",
    "note",
];

fn luhn_complete(prefix: &[u8], len: usize, rng: &mut StdRng) -> String {
    let mut d: Vec<u8> = prefix.to_vec();
    while d.len() < len - 1 {
        d.push(b'0' + rng.gen_range(0..10));
    }
    for check in 0..10u8 {
        let mut t = d.clone();
        t.push(b'0' + check);
        if super::validators::luhn(&t) {
            return String::from_utf8(t).unwrap_or_default();
        }
    }
    unreachable!("one check digit always completes a Luhn number")
}

fn iban_with(country: &str, bban: &str) -> String {
    // Check digits: 98 - (BBAN + country + "00" as digits) mod 97.
    let rearranged = format!("{bban}{country}00");
    let mut rem: u64 = 0;
    for c in rearranged.bytes() {
        let v = if c.is_ascii_digit() {
            (c - b'0') as u64
        } else {
            (c - b'A') as u64 + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    format!("{country}{:02}{bban}", 98 - rem)
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn pick<'a>(&mut self, from: &'a [&'a str]) -> &'a str {
        from[self.rng.gen_range(0..from.len())]
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| (b'0' + self.rng.gen_range(0..10)) as char)
            .collect()
    }

    fn alnum(&mut self, n: usize, alphabet: &[u8]) -> String {
        (0..n)
            .map(|_| alphabet[self.rng.gen_range(0..alphabet.len())] as char)
            .collect()
    }

    /// A valid card number (Visa, Mastercard or Amex), grouped or not.
    pub fn pan(&mut self) -> String {
        let (prefix, len): (&[u8], usize) = match self.rng.gen_range(0..3) {
            0 => (b"4", 16),
            1 => (
                [b"51", b"52", b"53", b"54", b"55"][self.rng.gen_range(0..5)],
                16,
            ),
            _ => ([b"34", b"37"][self.rng.gen_range(0..2)], 15),
        };
        let mut p = luhn_complete(prefix, len, &mut self.rng);
        while super::validators::test_pan(p.as_bytes()) {
            p = luhn_complete(prefix, len, &mut self.rng);
        }
        if len == 16 && self.rng.gen_bool(0.3) {
            let b = p.as_bytes();
            p = format!(
                "{} {} {} {}",
                std::str::from_utf8(&b[0..4]).unwrap_or(""),
                std::str::from_utf8(&b[4..8]).unwrap_or(""),
                std::str::from_utf8(&b[8..12]).unwrap_or(""),
                std::str::from_utf8(&b[12..16]).unwrap_or("")
            );
        }
        p
    }

    /// A card-shaped number whose Luhn check fails.
    pub fn bad_pan(&mut self) -> String {
        let good = self.pan().replace(' ', "");
        let mut b = good.into_bytes();
        let last = b.len() - 1;
        b[last] = b'0' + ((b[last] - b'0' + 1 + self.rng.gen_range(0..8)) % 10);
        String::from_utf8(b).unwrap_or_default()
    }

    pub fn ssn(&mut self) -> String {
        loop {
            let area = self.rng.gen_range(1..900);
            if area == 666 {
                continue;
            }
            let s = format!(
                "{area:03}-{:02}-{:04}",
                self.rng.gen_range(1..100),
                self.rng.gen_range(1..10000)
            );
            if super::validators::ssn(s.replace('-', "").as_bytes()) {
                return s;
            }
        }
    }

    /// An SSN-shaped decoy: area 9xx or 000, or group 00.
    pub fn bad_ssn(&mut self) -> String {
        match self.rng.gen_range(0..3) {
            0 => format!("9{}-{}-{}", self.digits(2), self.digits(2), self.digits(4)),
            1 => format!("000-{:02}-{}", self.rng.gen_range(1..100), self.digits(4)),
            _ => format!("{:03}-00-{}", self.rng.gen_range(1..600), self.digits(4)),
        }
    }

    pub fn iban(&mut self) -> String {
        if self.rng.gen_bool(0.5) {
            let bban = self.digits(18);
            iban_with("DE", &bban)
        } else {
            let bank = self.alnum(4, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ");
            let bban = format!("{bank}{}", self.digits(14));
            iban_with("GB", &bban)
        }
    }

    pub fn bad_iban(&mut self) -> String {
        let good = self.iban();
        let (head, tail) = good.split_at(2);
        let check: u32 = tail[..2].parse().unwrap_or(0);
        format!(
            "{head}{:02}{}",
            (check + 1 + self.rng.gen_range(0..50)) % 100,
            &tail[2..]
        )
    }

    pub fn email(&mut self) -> String {
        let first = self.pick(FIRST).to_lowercase();
        let last = self.pick(LAST).to_lowercase();
        let dom = self.pick(DOMAINS);
        format!("{first}.{last}{}@{dom}", self.rng.gen_range(1..999))
    }

    pub fn bad_email(&mut self) -> String {
        let first = self.pick(FIRST).to_lowercase();
        match self.rng.gen_range(0..3) {
            0 => format!("{first}@example.com"),
            1 => format!("{first}@corp.test"),
            _ => format!("icon-{first}@2x.png"),
        }
    }

    pub fn aws_akid(&mut self) -> String {
        format!(
            "AKIA{}",
            self.alnum(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        )
    }

    pub fn bad_aws_akid(&mut self) -> String {
        format!(
            "AKIA{}EXAMPLE",
            self.alnum(9, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        )
    }

    pub fn aws_secret(&mut self) -> String {
        self.alnum(
            40,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+",
        )
    }

    pub fn jwt(&mut self) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = b64.encode(
            json!({"sub": self.digits(8), "iat": 1_700_000_000 + self.rng.gen_range(0..1000)})
                .to_string(),
        );
        let sig = self.alnum(
            43,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        );
        format!("{header}.{payload}.{sig}")
    }

    /// Three base64url parts starting `eyJ` whose header is not JSON.
    pub fn bad_jwt(&mut self) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let junk = b64.encode(format!("{{not json {}", self.digits(6)));
        format!(
            "eyJ{}.eyJ{}.{}",
            &junk[3..],
            self.digits(12),
            self.digits(20)
        )
    }

    fn words(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| self.pick(WORDS))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Non-sensitive filler that looks numeric or random: ids, timestamps, hashes, amounts.
    fn filler(&mut self) -> Value {
        let uuid = format!(
            "{}-{}-{}-{}-{}",
            self.alnum(8, b"0123456789abcdef"),
            self.alnum(4, b"0123456789abcdef"),
            self.alnum(4, b"0123456789abcdef"),
            self.alnum(4, b"0123456789abcdef"),
            self.alnum(12, b"0123456789abcdef")
        );
        json!({
            "request_id": uuid,
            "order_no": self.digits(12),
            "created_ms": 1_700_000_000_000u64 + self.rng.gen_range(0..1_000_000_000u64),
            "sha256": self.alnum(64, b"0123456789abcdef"),
            "amount": format!("{}.{:02}", self.rng.gen_range(1..5000), self.rng.gen_range(0..100)),
            "sku": format!("SKU-{}-{}", self.alnum(3, b"ABCDEFGHJKLMNPQRSTUVWXYZ"), self.digits(5)),
            "description": self.words(12),
            "tracking": format!("1Z{}", self.alnum(16, b"0123456789ABCDEFGHJKLMNPRSTUVWXYZ")),
        })
    }

    /// One document: sensitive values planted in realistic places, with decoys and filler.
    pub fn doc(&mut self) -> Doc {
        let mut planted = Vec::new();
        let plant = |kind: &'static str, value: String, planted: &mut Vec<Planted>| {
            planted.push(Planted {
                kind,
                value: value.clone(),
            });
            value
        };
        let mut body = serde_json::Map::new();
        body.insert("meta".into(), self.filler());
        let shape = self.rng.gen_range(0..5);
        match shape {
            0 => {
                let email = self.email();
                let pan = self.pan();
                let iban = self.iban();
                body.insert(
                    "customer".into(),
                    json!({"email": plant("pii.email", email, &mut planted), "loyalty": self.digits(10)}),
                );
                body.insert(
                    "payment".into(),
                    json!({"card": {"number": plant("pci.pan", pan, &mut planted)},
                           "refund_iban": plant("fin.iban", iban, &mut planted)}),
                );
            }
            1 => {
                let ssn = self.ssn();
                let bad_pan = self.bad_pan();
                let bad_iban = self.bad_iban();
                let note = format!(
                    "{} ssn {} {} card {} iban {}",
                    self.words(4),
                    plant("id.us_ssn", ssn, &mut planted),
                    self.words(3),
                    bad_pan,
                    bad_iban
                );
                body.insert("notes".into(), json!(note));
            }
            2 => {
                let akid = self.aws_akid();
                let bad = self.bad_aws_akid();
                let jwt = self.jwt();
                body.insert(
                    "deploy".into(),
                    json!({"access_key_id": plant("sec.aws_akid", akid, &mut planted),
                           "docs_key": bad,
                           "session": {"id_token": plant("sec.jwt", jwt, &mut planted)}}),
                );
            }
            3 => {
                let bad_email = self.bad_email();
                let bad_ssn = self.bad_ssn();
                let bad_jwt = self.bad_jwt();
                let email = self.email();
                body.insert(
                    "log".into(),
                    json!(format!(
                        "user {} ({}) reset; ref {} trace {} contact {}",
                        self.words(2),
                        bad_email,
                        bad_ssn,
                        bad_jwt,
                        plant("pii.email", email, &mut planted)
                    )),
                );
            }
            _ => {
                let pan = self.pan();
                let iban = self.iban();
                let ssn = self.ssn();
                body.insert(
                    "transfer".into(),
                    json!({"from": {"iban": plant("fin.iban", iban, &mut planted), "bad": self.bad_iban()},
                           "memo": format!("paid with {} {}", plant("pci.pan", pan, &mut planted), self.words(3)),
                           "tax": {"ssn": plant("id.us_ssn", ssn, &mut planted)}}),
                );
            }
        }
        Doc {
            body: Value::Object(body).to_string().into_bytes(),
            planted,
        }
    }
}

/// Precision and recall of the engine on `docs`, over the planted types. A finding counts as
/// true when the planted value of its type starts where it starts; `pci.pan_test` findings
/// (published test cards, reported as such) are left out.
pub fn score(engine: &super::Engine, docs: &[Doc]) -> Score {
    let mut s = Score::default();
    for d in docs {
        let findings: Vec<super::Finding> = engine
            .scan_json(&d.body)
            .into_iter()
            .filter(|f| f.kind != "pci.pan_test")
            .collect();
        let mut matched = vec![false; d.planted.len()];
        for f in &findings {
            let hit = d.planted.iter().enumerate().find(|(i, p)| {
                !matched[*i]
                    && p.kind == f.kind
                    && d.body[f.offset..].starts_with(p.value.as_bytes())
            });
            match hit {
                Some((i, _)) => {
                    matched[i] = true;
                    s.true_positives += 1;
                }
                None => {
                    s.false_positives += 1;
                    if s.examples.len() < 10 {
                        s.examples.push(format!(
                            "false positive {} at {}",
                            f.kind,
                            f.path.clone().unwrap_or_default()
                        ));
                    }
                }
            }
        }
        for (i, m) in matched.iter().enumerate() {
            if !m {
                s.false_negatives += 1;
                if s.examples.len() < 10 {
                    s.examples.push(format!("missed {}", d.planted[i].kind));
                }
            }
        }
    }
    s
}

/// Counts from [`score`].
#[derive(Debug, Default, Clone)]
pub struct Score {
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    /// Up to ten misses and false positives, for a failure message.
    pub examples: Vec<String>,
}

impl Score {
    pub fn precision(&self) -> f64 {
        self.true_positives as f64 / (self.true_positives + self.false_positives).max(1) as f64
    }
    pub fn recall(&self) -> f64 {
        self.true_positives as f64 / (self.true_positives + self.false_negatives).max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_are_what_they_claim() {
        let mut g = Generator::new(7);
        for _ in 0..200 {
            assert!(super::super::validators::pan(
                g.pan().replace(' ', "").as_bytes()
            ));
            assert!(!super::super::validators::luhn(g.bad_pan().as_bytes()));
            assert!(super::super::validators::iban(g.iban().as_bytes()));
            assert!(!super::super::validators::iban(g.bad_iban().as_bytes()));
            assert!(!super::super::validators::ssn(
                g.bad_ssn().replace('-', "").as_bytes()
            ));
        }
    }

    #[test]
    fn precision_and_recall_on_the_corpus() {
        let mut g = Generator::new(42);
        let docs: Vec<Doc> = (0..3000).map(|_| g.doc()).collect();
        let s = score(&super::super::Engine::default(), &docs);
        assert!(s.true_positives > 3000, "{s:?}");
        assert!(
            s.precision() >= 0.95 && s.recall() >= 0.95,
            "precision {:.3}, recall {:.3}: {:?}",
            s.precision(),
            s.recall(),
            s.examples
        );
    }
}
