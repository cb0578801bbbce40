//! Opaque secrets: refresh tokens, email-verification and password-reset links, invitations.
//! Only a hash is stored. The secrets carry 256 random bits, so a fast hash (SHA-256) is the right
//! one: nothing can be guessed, and lookup by hash needs no per-secret salt.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::blind_index::hex;
use crate::domain::SessionId;

const SECRET_BYTES: usize = 32;
const MAX_REFRESH_TOKEN_BYTES: usize = 512;

/// A new secret: 32 bytes from the thread-local CSPRNG, base64url without padding (43 chars).
pub fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored instead of the secret: lowercase hex of SHA-256.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Equality whose time does not depend on where the inputs differ (only on their lengths).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A refresh token as handed to the client: `<session id>.<secret>`. The session id finds the
/// stored session in one read; the secret's hash is then compared to the stored one.
pub fn refresh_token(session_id: &SessionId, secret: &str) -> String {
    format!("{session_id}.{secret}")
}

/// Splits a refresh token back into its session id and secret. Anything that
/// [`refresh_token`] could not have produced from [`new_secret`] is refused.
pub fn parse_refresh_token(s: &str) -> Option<(SessionId, String)> {
    if s.len() > MAX_REFRESH_TOKEN_BYTES {
        return None;
    }
    let (sid, secret) = s.split_once('.')?;
    let sid = SessionId::parse(sid).ok()?;
    let decoded = URL_SAFE_NO_PAD.decode(secret).ok()?;
    if decoded.len() != SECRET_BYTES {
        return None;
    }
    Some((sid, secret.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn secrets_are_256_bit_url_safe_and_unique() {
        let set: HashSet<String> = (0..200).map(|_| new_secret()).collect();
        assert_eq!(set.len(), 200);
        for s in &set {
            assert_eq!(s.len(), 43);
            assert!(s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(URL_SAFE_NO_PAD.decode(s).unwrap().len(), 32);
        }
    }

    #[test]
    fn hash_is_hex_sha256() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hash_secret(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let s = new_secret();
        assert_eq!(hash_secret(&s), hash_secret(&s));
        assert_ne!(hash_secret(&s), hash_secret(&new_secret()));
    }

    #[test]
    fn constant_time_equality() {
        assert!(constant_time_eq("same", "same"));
        assert!(constant_time_eq("", ""));
        assert!(!constant_time_eq("same", "Same"));
        assert!(!constant_time_eq("same", "same "));
        assert!(!constant_time_eq("", "x"));
    }

    #[test]
    fn refresh_token_round_trip() {
        let sid = SessionId::parse("01jabcxyz-session").unwrap();
        let secret = new_secret();
        let t = refresh_token(&sid, &secret);
        assert_eq!(t, format!("01jabcxyz-session.{secret}"));
        assert_eq!(parse_refresh_token(&t), Some((sid, secret)));
    }

    #[test]
    fn malformed_refresh_tokens_are_refused() {
        let secret = new_secret();
        let long_sid = "s".repeat(65);
        let cases = [
            String::new(),
            "nodot".to_string(),
            format!(".{secret}"),
            "sess.".to_string(),
            format!("Sess.{secret}"),
            format!("se#ss.{secret}"),
            format!("sess.{secret}.extra"),
            format!("sess.{secret}="),
            format!("sess.{}", &secret[..42]),
            format!("sess.{secret}A"),
            format!("sess.{}", secret.replace(|_| true, "+")),
            format!("{long_sid}.{secret}"),
            format!("sess.{}", "A".repeat(600)),
        ];
        for c in &cases {
            assert_eq!(parse_refresh_token(c), None, "{c:?} accepted");
        }
    }
}
