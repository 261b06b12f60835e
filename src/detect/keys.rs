//! Context from names: a JSON key, a form field, a header or a column name says what a value is
//! (Macie's rule: any element of the field path counts). Names are normalised to lowercase
//! letters and digits (`cardNumber`, `card_number`, `Card-Number` → `cardnumber`), then matched
//! against each type's keywords: exactly, or as a prefix or suffix for keywords of four or more
//! letters (`billingCvv` → `cvv` does not qualify, `customerPassword` → `password` does).

/// Key-gated types: found only when a name says so. `KEYWORDS` lists them most specific first,
/// and the first gate that yields a finding wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gate {
    Cvv,
    Expiry,
    Password,
    GenericSecret,
    AwsSecret,
    Ssn,
    Aba,
    BankAccount,
    Nhs,
    CaSin,
    Aadhaar,
    Phone,
    Person,
    Dob,
    Passport,
    DriverLicense,
    Npi,
    Dea,
    Ip,
}

const KEYWORDS: &[(Gate, &[&str])] = &[
    (
        Gate::AwsSecret,
        &[
            "awssecretaccesskey",
            "secretaccesskey",
            "awssecretkey",
            "awssecret",
        ],
    ),
    (
        Gate::Cvv,
        &[
            "cvv",
            "cvv2",
            "cvc",
            "cvc2",
            "cid",
            "csc",
            "securitycode",
            "cardcvv",
            "cardcvc",
            "cardsecuritycode",
            "cardverificationvalue",
        ],
    ),
    (
        Gate::Expiry,
        &[
            "exp",
            "expiry",
            "expiration",
            "expirationdate",
            "expdate",
            "expirydate",
            "cardexpiry",
            "cardexp",
            "validthru",
            "validthrough",
        ],
    ),
    (
        Gate::Password,
        &[
            "password",
            "passwd",
            "pwd",
            "pass",
            "passphrase",
            "clientsecret",
            "pin",
            "pincode",
            "userpassword",
            "dbpassword",
        ],
    ),
    (
        Gate::GenericSecret,
        &[
            "apikey",
            "token",
            "secret",
            "accesskey",
            "privatekey",
            "signature",
            "authtoken",
            "accesstoken",
            "refreshtoken",
            "sessiontoken",
            "apitoken",
            "secretkey",
        ],
    ),
    (
        Gate::Ssn,
        &[
            "ssn",
            "socialsecurity",
            "socialsecuritynumber",
            "socialsecurityno",
        ],
    ),
    (
        Gate::Aba,
        &[
            "routing",
            "routingnumber",
            "aba",
            "abanumber",
            "rtn",
            "routingno",
        ],
    ),
    (
        Gate::BankAccount,
        &[
            "accountnumber",
            "acctno",
            "acctnumber",
            "bankaccount",
            "bankaccountnumber",
            "accountno",
        ],
    ),
    (Gate::Nhs, &["nhs", "nhsnumber", "nhsno"]),
    (
        Gate::CaSin,
        &["sin", "socialinsurance", "socialinsurancenumber"],
    ),
    (Gate::Aadhaar, &["aadhaar", "aadhar", "aadhaarnumber"]),
    (
        Gate::Phone,
        &[
            "phone",
            "phonenumber",
            "mobile",
            "mobilephone",
            "msisdn",
            "tel",
            "telephone",
            "cell",
            "cellphone",
            "contactnumber",
        ],
    ),
    (
        Gate::Person,
        &[
            "firstname",
            "lastname",
            "fullname",
            "givenname",
            "familyname",
            "surname",
            "middlename",
            "cardholder",
            "cardholdername",
            "holdername",
            "nameoncard",
            "customername",
        ],
    ),
    (
        Gate::Dob,
        &["dob", "birthdate", "dateofbirth", "birthday", "birthdt"],
    ),
    (
        Gate::Passport,
        &["passport", "passportno", "passportnumber", "documentnumber"],
    ),
    (
        Gate::DriverLicense,
        &[
            "driverlicense",
            "driverslicense",
            "driverlicence",
            "drivinglicence",
            "dlnumber",
            "licenseno",
            "licensenumber",
        ],
    ),
    (Gate::Npi, &["npi", "npinumber"]),
    (Gate::Dea, &["dea", "deanumber"]),
    (
        Gate::Ip,
        &[
            "ip",
            "ipaddress",
            "clientip",
            "remoteip",
            "remoteaddr",
            "xforwardedfor",
            "sourceip",
            "userip",
        ],
    ),
];

/// A name in normalised form.
pub fn normalize(name: &str) -> String {
    name.bytes()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(|b| b.to_ascii_lowercase() as char)
        .collect()
}

/// The gates a (normalised) name opens.
pub fn gates(normalized: &str) -> Vec<Gate> {
    if normalized.is_empty() || normalized.len() > 64 {
        return vec![];
    }
    let mut out = Vec::new();
    for (gate, words) in KEYWORDS {
        let hit = words.iter().any(|w| {
            normalized == *w
                || (w.len() >= 4 && (normalized.ends_with(w) || normalized.starts_with(w)))
        });
        if hit {
            out.push(*gate);
        }
    }
    // "expiry" names also end in "pass"-like words rarely; the one real clash: "passport"
    // starts with "pass", which must not open the password gate.
    if out.contains(&Gate::Passport) {
        out.retain(|g| *g != Gate::Password);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_open_their_gates() {
        let g = |n: &str| gates(&normalize(n));
        assert_eq!(normalize("Card-Number_2"), "cardnumber2");
        assert!(g("cvv").contains(&Gate::Cvv));
        assert!(g("card_cvc").contains(&Gate::Cvv) || g("cardCvc").contains(&Gate::Cvv));
        assert!(g("customerPassword").contains(&Gate::Password));
        assert!(g("aws_secret_access_key").contains(&Gate::AwsSecret));
        assert!(g("dateOfBirth").contains(&Gate::Dob));
        assert!(g("X-Forwarded-For").contains(&Gate::Ip));
        assert!(g("passportNumber").contains(&Gate::Passport));
        assert!(!g("passportNumber").contains(&Gate::Password));
        assert!(g("description").is_empty());
        assert!(g("shipping").is_empty(), "no 'pin' inside words");
        assert!(g("tin").is_empty());
    }
}
