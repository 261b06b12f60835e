//! The sensitive-data detection engine that data in motion (the sensor) and data at rest (the
//! crawler) share. Every detection is a candidate found in one pass (`scan`), a validator
//! (`validators`: Luhn, mod 97, ABA, SSN rules, Verhoeff, …) and context: the names around a
//! value (`keys`: JSON key paths, form fields, headers, column names) open the gates of types
//! that have no checksum. Placeholders and published test values are suppressed. Evidence is
//! only ever kept masked (letters → `*`, digits → `1`).
//!
//! Inputs: JSON (with key paths; `json`), form bodies, CSV and free text (`key: value` pairs
//! give names there). Custom types from the configuration add regexes on values and/or names.

mod assessment;
mod configured;
pub mod corpus;
mod engine;
pub mod json;
pub mod keys;
mod masking;
pub mod scan;
pub mod validators;

use serde::Serialize;

pub use assessment::{assess, Assessment};
pub(crate) use engine::push_decimal;
pub use engine::{CustomType, Engine};
pub use masking::mask;

/// How sensitive a type is (Soveren's model: Low, Medium, High).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
pub enum Sensitivity {
    Low,
    Medium,
    High,
}

/// The built-in data types (ids as in DETECTION.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Pan,
    /// A card number networks publish for testing: reported separately, never as `pci.pan`.
    TestPan,
    Cvv,
    Expiry,
    Iban,
    Aba,
    BankAccount,
    Ssn,
    Nhs,
    CaSin,
    Aadhaar,
    Passport,
    DriverLicense,
    PrivateKey,
    Jwt,
    HttpBasic,
    AwsAccessKeyId,
    AwsSecret,
    GcpApiKey,
    VcsToken,
    ConnectionUri,
    Password,
    PasswordHash,
    GenericSecret,
    Email,
    Phone,
    Person,
    Dob,
    IpAddress,
    Npi,
    Dea,
}

impl Kind {
    /// The type id (`pci.pan`, `sec.jwt`, …).
    pub fn id(self) -> &'static str {
        match self {
            Kind::Pan => "pci.pan",
            Kind::TestPan => "pci.pan_test",
            Kind::Cvv => "pci.cvv",
            Kind::Expiry => "pci.expiry",
            Kind::Iban => "fin.iban",
            Kind::Aba => "fin.aba",
            Kind::BankAccount => "fin.bank_acct",
            Kind::Ssn => "id.us_ssn",
            Kind::Nhs => "id.uk_nhs",
            Kind::CaSin => "id.ca_sin",
            Kind::Aadhaar => "id.in_aadhaar",
            Kind::Passport => "id.passport",
            Kind::DriverLicense => "id.driver_license",
            Kind::PrivateKey => "sec.private_key",
            Kind::Jwt => "sec.jwt",
            Kind::HttpBasic => "sec.http_basic",
            Kind::AwsAccessKeyId => "sec.aws_akid",
            Kind::AwsSecret => "sec.aws_secret",
            Kind::GcpApiKey => "sec.gcp",
            Kind::VcsToken => "sec.vcs_saas",
            Kind::ConnectionUri => "sec.conn_uri",
            Kind::Password => "sec.password",
            Kind::PasswordHash => "sec.pw_hash",
            Kind::GenericSecret => "sec.generic_secret",
            Kind::Email => "pii.email",
            Kind::Phone => "pii.phone",
            Kind::Person => "pii.person",
            Kind::Dob => "pii.dob",
            Kind::IpAddress => "pii.ip_public",
            Kind::Npi => "phi.us_npi",
            Kind::Dea => "phi.dea",
        }
    }

    /// Its sensitivity on its own.
    pub fn sensitivity(self) -> Sensitivity {
        use Sensitivity::*;
        match self {
            Kind::TestPan | Kind::Dob | Kind::IpAddress => Low,
            Kind::PasswordHash | Kind::GenericSecret | Kind::Email | Kind::Phone | Kind::Person => {
                Medium
            }
            _ => High,
        }
    }
}

/// One detection. Only the masked value is ever kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The type id.
    #[serde(rename = "type")]
    pub kind: std::borrow::Cow<'static, str>,
    pub sensitivity: Sensitivity,
    pub masked: String,
    /// Where in a JSON document (`$.customer.card`) or which field / column / header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Byte offset in the input.
    pub offset: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(f: &[Finding]) -> Vec<(&str, Option<&str>)> {
        f.iter()
            .map(|f| (f.kind.as_ref(), f.path.as_deref()))
            .collect()
    }

    #[test]
    fn json_with_paths_and_gates() {
        let e = Engine::default();
        let doc = br#"{"customer":{"name":"Ada Lovelace","firstName":"Ada","email":"ada@analytical.engineering","ssn":"536904399"},
            "card":{"number":"4539578763621486","cvv":"123","exp":"12/27"},
            "note":"call +1 415 555 0100","password":"${SECRET}","token":"ab"}"#;
        let f = e.scan_json(doc);
        assert_eq!(
            types(&f),
            vec![
                ("pii.person", Some("$.customer.firstName")),
                ("pii.email", Some("$.customer.email")),
                ("id.us_ssn", Some("$.customer.ssn")),
                ("pci.pan", Some("$.card.number")),
                ("pci.cvv", Some("$.card.cvv")),
                ("pci.expiry", Some("$.card.exp")),
            ]
        );
        assert_eq!(f[3].masked, "1111111111111111");
        assert_eq!(f[0].masked, "***");
        // The offset points at the value in the document.
        assert_eq!(&doc[f[3].offset..f[3].offset + 16], b"4539578763621486");
        let a = assess(&f);
        assert_eq!(a.sensitivity, Some(Sensitivity::High));
        assert!(a.combinations.contains(&"pci.card_with_security_data"));
    }

    #[test]
    fn text_forms_and_custom_types() {
        let e = Engine::new(vec![CustomType {
            id: "acme.employee_id".into(),
            sensitivity: Sensitivity::Medium,
            value: Some(regex::bytes::Regex::new(r"\bEMP-\d{6}\b").unwrap()),
            key: None,
        }]);
        let f = e.scan_text(b"user=jo password=Tr0ub4dor&3 ssn: 536-90-4399 id EMP-123456\nAuthorization: Basic dXNlcjpwYXNzd29yZA==");
        let ids: Vec<&str> = f.iter().map(|f| f.kind.as_ref()).collect();
        assert!(ids.contains(&"sec.password"), "{ids:?}");
        assert!(ids.contains(&"id.us_ssn"));
        assert!(ids.contains(&"acme.employee_id"));
        assert!(ids.contains(&"sec.http_basic"));
        assert_eq!(
            ids.iter().filter(|i| **i == "id.us_ssn").count(),
            1,
            "deduplicated"
        );
        let f = e.scan_form(b"email=ada%40analytical.engineering&cvv=123&comment=hello+world");
        assert_eq!(
            types(&f),
            vec![("pii.email", Some("email")), ("pci.cvv", Some("cvv"))]
        );
        // Key-only custom type.
        let e = Engine::new(vec![CustomType {
            id: "acme.loyalty".into(),
            sensitivity: Sensitivity::Low,
            value: None,
            key: Some(regex::Regex::new("(?i)loyalty").unwrap()),
        }]);
        let f = e.scan_json(br#"{"loyaltyNumber":"X99","other":"X99"}"#);
        assert_eq!(types(&f), vec![("acme.loyalty", Some("$.loyaltyNumber"))]);
    }

    #[test]
    fn masking_keeps_shape_only() {
        assert_eq!(mask(b"Ab-12 @x.io"), "**-11 @*.**");
        assert_eq!(mask("Zoë 7".as_bytes()), "*** 1");
        // Every ASCII byte, in the 16-byte chunks and in the tail, against the rule itself;
        // and the cut at 128 bytes.
        let all: Vec<u8> = (0..=127u8).chain(b"@[`{/:09AZaz".iter().copied()).collect();
        for start in 0..all.len() {
            let value = &all[start..];
            let expected: String = value[..value.len().min(128)]
                .iter()
                .map(|&b| match b {
                    b if b.is_ascii_alphabetic() => '*',
                    b if b.is_ascii_digit() => '1',
                    b => b as char,
                })
                .collect();
            assert_eq!(mask(value), expected, "from byte {start}");
        }
    }

    /// Keys that share their first 16 bytes, or their length and both ends, are still told
    /// apart by the key table, and a flood of distinct keys neither grows it nor confuses it.
    #[test]
    fn hostile_input_never_panics() {
        let e = Engine::default();
        for input in [
            &b""[..],
            b"\xff\xfe\x00",
            b"{\"a\":\"\xff\xfe\"}",
            b"%%%&&&===",
            b"@@@@",
            b"eyJ.eyJ.",
            b"-----BEGIN ",
            b"://@:",
            b"GB",
            b"4",
        ] {
            let _ = e.scan_json(input);
            let _ = e.scan_text(input);
            let _ = e.scan_form(input);
        }
        let deep = "[".repeat(10_000);
        let _ = e.scan_json(deep.as_bytes());
        // Generated bodies, damaged: findings stay inside the input and stay masked.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut corpus = corpus::Generator::new(3);
        let hostile = b"{}[]:,\"\\@-\xff";
        for _ in 0..1000 {
            let mut doc = corpus.doc().body;
            for _ in 0..rng.gen_range(1..6) {
                let at = rng.gen_range(0..doc.len());
                doc[at] = hostile[rng.gen_range(0..hostile.len())];
            }
            for f in e.scan_json(&doc) {
                assert!(f.offset <= doc.len(), "{f:?}");
                assert!(
                    !f.masked.chars().any(|c| c.is_alphanumeric() && c != '1'),
                    "{f:?}"
                );
            }
        }
        let big_digits = "9".repeat(100_000);
        let _ = e.scan_text(big_digits.as_bytes());
    }
}
