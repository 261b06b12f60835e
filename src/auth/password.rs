//! Password hashing (argon2id with per-hash random salts) and random secrets.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use rand::RngCore;

/// Shortest password accepted.
pub const MIN_LEN: usize = 10;
/// Longest password accepted (hashing megabytes on request would be a denial of service).
pub const MAX_LEN: usize = 1024;

/// Passwords of the allowed length that guessing lists try first (compared case-insensitively).
const COMMON: &[&str] = &[
    "password123",
    "password1234",
    "password12345",
    "password!123",
    "passw0rd123",
    "p@ssw0rd123",
    "p@ssword123",
    "passwordpassword",
    "1234567890",
    "0987654321",
    "123456789a",
    "a123456789",
    "1234512345",
    "1234554321",
    "1122334455",
    "abc1234567",
    "abcd123456",
    "a1b2c3d4e5",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "zaq12wsxcde3",
    "qwertyuiop",
    "qwerty1234",
    "qwerty12345",
    "qwerty123456",
    "asdfghjkl1",
    "zxcvbnm123",
    "iloveyou123",
    "welcome123",
    "welcome1234",
    "letmein123",
    "changeme123",
    "changeme1234",
    "trustno1234",
    "administrator",
    "adminadmin",
    "admin12345",
    "admin123456",
    "football123",
    "baseball123",
    "sunshine123",
    "princess123",
    "dragon1234",
    "monkey12345",
    "superman123",
    "master12345",
    "secret1234",
    "security123",
    "kubernetes",
    "kubernetes1",
    "kubernetes123",
    "bulwark123",
    "bulwark1234",
    "bulwarkadmin",
];

/// Runs of keys and digits that make no password (`abcdefghij`, `9876543210`, `qwertyuiop`…).
const SEQUENCES: &[&str] = &[
    "01234567890123456789",
    "98765432109876543210",
    "abcdefghijklmnopqrstuvwxyz",
    "zyxwvutsrqponmlkjihgfedcba",
    "qwertyuiopasdfghjklzxcvbnm",
];

/// Why a password was refused.
pub fn check_policy(pw: &str) -> Result<(), String> {
    let n = pw.chars().count();
    if n < MIN_LEN {
        return Err(format!("password must be at least {MIN_LEN} characters"));
    }
    if pw.len() > MAX_LEN {
        return Err(format!("password must be at most {MAX_LEN} bytes"));
    }
    let mut distinct: Vec<char> = pw.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 4 {
        return Err("password must use at least 4 different characters".into());
    }
    let lower = pw.to_lowercase();
    if COMMON.contains(&lower.as_str()) || SEQUENCES.iter().any(|s| s.contains(&lower)) {
        return Err("that password is one of the first that guessing tools try".into());
    }
    Ok(())
}

/// An argon2id PHC string for `pw`.
pub fn hash(pw: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `pw` matches `phc`. A malformed stored hash never matches.
pub fn verify(pw: &str, phc: &str) -> bool {
    if pw.len() > MAX_LEN {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default().verify_password(pw.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// Verifies against a fixed hash so that unknown accounts take as long as known ones.
pub fn burn_time(pw: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let h = DUMMY.get_or_init(|| hash("timing-equalizer-password").unwrap_or_default());
    let _ = verify(pw, h);
}

/// `bytes` random bytes, URL-safe base64 without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// A random password for the first super-admin: 20 characters from an unambiguous alphabet.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut buf = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf.iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// SHA-256 hex of a high-entropy token (session or API key). Tokens carry 256 random bits, so a
/// fast hash is enough: there is nothing to brute-force.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("wrong horse battery", &h));
        assert!(!verify("x", "not a hash"));
        assert!(check_policy("short").is_err());
        assert!(check_policy(&"x".repeat(2000)).is_err());
        assert_eq!(random_password().len(), 20);
        assert_ne!(random_token(32), random_token(32));
    }

    #[test]
    fn refuses_short_repeated_and_common_passwords() {
        for bad in [
            "short",
            "aaaaaaaaaa",
            "abababababab",
            "1111111111",
            "Password123",
            "QWERTYUIOP",
            "abcdefghijk",
            "6543210987",
            "kubernetes",
        ] {
            assert!(check_policy(bad).is_err(), "{bad}");
        }
        for good in ["password-1234", "correct horse battery", "x7#Lp2!qRt"] {
            assert!(check_policy(good).is_ok(), "{good}");
        }
    }
}
