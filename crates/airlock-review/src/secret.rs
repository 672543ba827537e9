//! Secrets at rest and in comparison: password hashes, random tokens, token digests.
//!
//! Passwords are low-entropy, so they get a slow, salted, memory-hard hash (Argon2id with the
//! crate's defaults: 19 MiB, 2 passes). API tokens and session ids are 256-bit random values, so
//! a single SHA-256 is enough to make a stolen database useless for logging in.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

use crate::error::ReviewError;

/// Shortest password [`crate::ReviewStore::add_reviewer`] accepts, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted, in bytes (hashing cost must stay bounded).
const MAX_PASSWORD_BYTES: usize = 1024;

/// Prefix of API tokens, so a leaked one is recognisable in a scan.
pub(crate) const TOKEN_PREFIX: &str = "alk_";

/// `bytes` random bytes from the operating system, hex-encoded.
pub fn random_token(bytes: usize) -> Result<String, ReviewError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| ReviewError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

/// A new API token (shown once, never stored).
pub(crate) fn new_api_token() -> Result<String, ReviewError> {
    Ok(format!("{TOKEN_PREFIX}{}", random_token(32)?))
}

/// The digest under which a token is stored and looked up.
pub(crate) fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub(crate) fn check_password_policy(password: &str) -> Result<(), ReviewError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ReviewError::invalid(format!(
            "a password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ReviewError::invalid(format!(
            "a password must have at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// An Argon2id PHC string (`$argon2id$v=19$m=…`) with a fresh random salt.
pub(crate) fn hash_password(password: &str) -> Result<String, ReviewError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| ReviewError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| ReviewError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ReviewError::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC string. A malformed stored hash never matches.
pub(crate) fn verify_password(password: &str, stored: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the same time as a real verification, so a login for an unknown name takes as long
/// as one with a wrong password.
pub(crate) fn burn_verification(password: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    if let Some(stored) = DUMMY.get_or_init(|| hash_password("airlock-dummy-password").ok()) {
        let _ = verify_password(password, stored);
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_round_trips_and_is_salted() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "two hashes of one password must differ (salt)");
        assert!(!a.contains("correct horse"));
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse battery!", &a));
        assert!(!verify_password("anything", "not a phc string"));
    }

    #[test]
    fn tokens_are_random_and_stored_as_digests() {
        let t1 = new_api_token().unwrap();
        let t2 = new_api_token().unwrap();
        assert_ne!(t1, t2);
        assert!(t1.starts_with(TOKEN_PREFIX));
        assert_eq!(t1.len(), TOKEN_PREFIX.len() + 64);
        assert_eq!(token_digest(&t1), token_digest(&t1));
        assert_ne!(token_digest(&t1), token_digest(&t2));
        assert!(!token_digest(&t1).contains(&t1));
    }

    #[test]
    fn password_policy() {
        assert!(check_password_policy("short").is_err());
        assert!(check_password_policy("twelve chars").is_ok());
        assert!(check_password_policy(&"x".repeat(2000)).is_err());
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
