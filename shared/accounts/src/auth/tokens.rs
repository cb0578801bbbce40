//! Opaque secrets: refresh tokens, email-verification and password-reset links, invitations.
//! Only a hash is stored. The secrets carry 256 random bits, so a fast hash (SHA-256) is the right
//! one: nothing can be guessed, and lookup by hash needs no per-secret salt.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use shared_core::blind_index::hex;
use shared_core::domain::SessionId;

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

/// Encrypts `plaintext` for storage next to the hash of `secret`, with a key derived from the
/// secret itself (HMAC-SHA256 of `purpose`, AES-256-GCM, random nonce): only the holder of the
/// link (the emailed secret, never stored) can read it back. Used for the invited address on an
/// invitation record, so a copy of the table holds no address in clear.
/// `base64url(nonce || ciphertext || tag)`.
pub fn seal(secret: &str, purpose: &str, plaintext: &str) -> String {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &sealing_key(secret, purpose))
            .expect("a 32-byte key is valid for AES-256-GCM"),
    );
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let mut data = plaintext.as_bytes().to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(purpose.as_bytes()),
        &mut data,
    )
    .expect("sealing a short text cannot fail");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&data);
    URL_SAFE_NO_PAD.encode(out)
}

/// Reads back what [`seal`] stored, with the same secret and purpose; `None` for anything
/// else (another secret, altered, not sealed).
pub fn open(secret: &str, purpose: &str, sealed: &str) -> Option<String> {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
    let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if raw.len() < NONCE_LEN {
        return None;
    }
    let (nonce, data) = raw.split_at(NONCE_LEN);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &sealing_key(secret, purpose)).ok()?);
    let mut data = data.to_vec();
    let plain = key
        .open_in_place(
            Nonce::try_assume_unique_for_key(nonce).ok()?,
            Aad::from(purpose.as_bytes()),
            &mut data,
        )
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

fn sealing_key(secret: &str, purpose: &str) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(b"lead-platform sealing key v1: ");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
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
    fn sealed_text_opens_only_with_its_secret_and_purpose() {
        let secret = new_secret();
        let sealed = seal(&secret, "invitation-email", "ana@example.com");
        assert!(!sealed.contains("ana"));
        assert_eq!(
            open(&secret, "invitation-email", &sealed).as_deref(),
            Some("ana@example.com")
        );
        assert_eq!(open(&new_secret(), "invitation-email", &sealed), None);
        assert_eq!(open(&secret, "other", &sealed), None);
        let mut altered = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert_eq!(
            open(
                &secret,
                "invitation-email",
                &URL_SAFE_NO_PAD.encode(altered)
            ),
            None
        );
        assert_eq!(open(&secret, "invitation-email", "x"), None);
        assert_ne!(sealed, seal(&secret, "invitation-email", "ana@example.com"));
    }

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
