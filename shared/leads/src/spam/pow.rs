//! Proof of work, compatible with the ALTCHA protocol (v1, `SHA-256`): the platform issues a
//! challenge `{algorithm, challenge, maxnumber, salt, signature}` where
//! `challenge = hex(SHA-256(salt ‖ number))` for a secret `number ≤ maxnumber`, and
//! `signature = hex(HMAC-SHA-256(key, challenge))`. The browser finds `number` by trying them in
//! order and posts `base64(JSON {algorithm, challenge, number, salt, signature})` (the ALTCHA
//! widget's `altcha` field; our snippet sends the same).
//!
//! The salt carries the challenge's parameters as ALTCHA does (`<random>?expires=…`), plus the
//! form it was issued for and its issue time (the time trap's signed issue time): the signature
//! covers the challenge, and the challenge is a hash of the salt, so none can be altered without
//! finding a new preimage. Single use is enforced by the intake's transaction, not here: a
//! challenge issued for an idempotency key (`key=`, what the embed snippet asks for, [`binding`])
//! is good only for posts under that key, and the key's idempotency record, already one item of
//! the transaction, is its single use (a second post under the key replays the first's answer or
//! is refused); any other challenge gets a guard item keyed by the challenge of its own
//! (`crate::ports::UsedChallenge`), two write units more.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use shared_core::blind_index::{hex, BlindIndexKey};
use shared_core::domain::FormId;

/// How long a challenge may be used: a day, the time trap's upper bound.
pub const CHALLENGE_TTL: Duration = Duration::days(1);
pub const ALGORITHM: &str = "SHA-256";
/// A posted payload longer than this is not ours.
const MAX_PAYLOAD: usize = 1024;

/// The signing key: derived from the platform's blind-index key (SSM), under its own domain.
#[derive(Clone)]
pub struct PowKey([u8; 32]);

impl PowKey {
    pub fn from_platform_key(key: &BlindIndexKey) -> Self {
        Self(key.derived_key("altcha-hmac"))
    }

    fn sign(&self, challenge: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(challenge.as_bytes());
        hex(&mac.finalize().into_bytes())
    }
}

impl std::fmt::Debug for PowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PowKey(<secret>)")
    }
}

/// A challenge as the embed snippet (or an ALTCHA widget) fetches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub algorithm: String,
    pub challenge: String,
    pub maxnumber: u64,
    pub salt: String,
    pub signature: String,
}

/// What a browser posts back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Solution {
    pub algorithm: String,
    pub challenge: String,
    pub number: u64,
    pub salt: String,
    pub signature: String,
}

impl Solution {
    /// The form field's value: base64 of the JSON.
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(self).expect("serializable"))
    }
}

/// A verified solution: the challenge (its hash keys the single-use guard) and its times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub challenge: String,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// The [`binding`] of the idempotency key the challenge was issued for, if any.
    pub bound: Option<String>,
}

impl Verified {
    /// Whether a post under `idempotency_key` may use this challenge: any post when it was
    /// issued for no key, only one under that key when it was.
    pub fn admits(&self, idempotency_key: Option<&str>) -> bool {
        match &self.bound {
            None => true,
            Some(b) => idempotency_key.is_some_and(|k| binding(k) == *b),
        }
    }
}

/// Hex digits of a key's [`binding`].
const BINDING_HEX: usize = 32;

/// What a challenge carries of the idempotency key it is issued for: 128 bits of its SHA-256,
/// so the salt stays short and holds no key (a challenge is shown to the page, as the key is).
pub fn binding(idempotency_key: &str) -> String {
    let mut h = sha256_hex(idempotency_key);
    h.truncate(BINDING_HEX);
    h
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowError {
    /// Not a payload, a wrong hash or signature, or issued for another form.
    Invalid,
    /// Past its expiry (older than a day).
    Expired,
}

fn sha256_hex(data: &str) -> String {
    hex(&Sha256::digest(data.as_bytes()))
}

/// Issues a challenge for `form`: `random` (hex from the caller's RNG) salts it, `number`
/// (at most `max_number`) is its secret solution; `for_key`, an idempotency key, makes it good
/// for posts under that key only.
pub fn issue(
    key: &PowKey,
    form: &FormId,
    now: OffsetDateTime,
    max_number: u32,
    random: &str,
    number: u64,
    for_key: Option<&str>,
) -> Challenge {
    let issued = now.unix_timestamp();
    let expires = (now + CHALLENGE_TTL).unix_timestamp();
    let mut salt = format!("{random}?expires={expires}&form={form}&issued={issued}");
    if let Some(k) = for_key {
        salt.push_str("&key=");
        salt.push_str(&binding(k));
    }
    let challenge = sha256_hex(&format!("{salt}{}", number.min(u64::from(max_number))));
    Challenge {
        algorithm: ALGORITHM.into(),
        signature: key.sign(&challenge),
        challenge,
        maxnumber: u64::from(max_number),
        salt,
    }
}

/// The salt's parameters (`a=b&c=d` after the `?`).
fn param<'a>(salt: &'a str, name: &str) -> Option<&'a str> {
    let (_, query) = salt.split_once('?')?;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Checks a posted payload: ours (signature), solved (hash), for this form, not expired.
pub fn verify(
    key: &PowKey,
    form: &FormId,
    now: OffsetDateTime,
    payload: &str,
) -> Result<Verified, PowError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(PowError::Invalid);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload.trim())
        .map_err(|_| PowError::Invalid)?;
    let s: Solution = serde_json::from_slice(&bytes).map_err(|_| PowError::Invalid)?;
    if s.algorithm != ALGORITHM {
        return Err(PowError::Invalid);
    }
    let expected = key.sign(&s.challenge);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        expected.as_bytes(),
        s.signature.as_bytes(),
    )) {
        return Err(PowError::Invalid);
    }
    if sha256_hex(&format!("{}{}", s.salt, s.number)) != s.challenge {
        return Err(PowError::Invalid);
    }
    if param(&s.salt, "form") != Some(form.as_str()) {
        return Err(PowError::Invalid);
    }
    let time = |name| {
        param(&s.salt, name)
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .ok_or(PowError::Invalid)
    };
    let (issued_at, expires_at) = (time("issued")?, time("expires")?);
    let bound = match param(&s.salt, "key") {
        None => None,
        Some(b) if b.len() == BINDING_HEX && b.bytes().all(|c| c.is_ascii_hexdigit()) => {
            Some(b.to_string())
        }
        Some(_) => return Err(PowError::Invalid),
    };
    if expires_at <= now {
        return Err(PowError::Expired);
    }
    Ok(Verified {
        challenge: s.challenge,
        issued_at,
        expires_at,
        bound,
    })
}

/// What the browser does: tries every number up to `maxnumber`. For tests and the benchmark.
pub fn solve(c: &Challenge) -> Option<Solution> {
    (0..=c.maxnumber)
        .find(|n| sha256_hex(&format!("{}{n}", c.salt)) == c.challenge)
        .map(|number| Solution {
            algorithm: c.algorithm.clone(),
            challenge: c.challenge.clone(),
            number,
            salt: c.salt.clone(),
            signature: c.signature.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-03 10:00 UTC);

    fn key() -> PowKey {
        PowKey::from_platform_key(&BlindIndexKey::new(vec![7; 32]).unwrap())
    }

    fn form() -> FormId {
        FormId::parse("fm-1").unwrap()
    }

    fn solved() -> Solution {
        solve(&issue(&key(), &form(), NOW, 1000, "ab12", 417, None)).unwrap()
    }

    #[test]
    fn a_solved_challenge_verifies_with_its_issue_time() {
        let s = solved();
        assert_eq!(s.number, 417);
        let v = verify(&key(), &form(), NOW + Duration::seconds(9), &s.encode()).unwrap();
        assert_eq!(v.issued_at, NOW);
        assert_eq!(v.expires_at, NOW + CHALLENGE_TTL);
        assert_eq!(v.challenge, s.challenge);
        assert_eq!(v.bound, None);
        assert!(v.admits(None) && v.admits(Some("any")));
    }

    /// Issued for an idempotency key: good under that key only, and the binding cannot be
    /// altered or dropped (it is part of the salt the challenge hashes).
    #[test]
    fn a_challenge_issued_for_a_key_admits_posts_under_that_key_only() {
        let c = issue(&key(), &form(), NOW, 1000, "ab12", 417, Some("page-key-1"));
        assert!(
            c.salt.ends_with(&format!("&key={}", binding("page-key-1"))),
            "{}",
            c.salt
        );
        let s = solve(&c).unwrap();
        let later = NOW + Duration::seconds(9);
        let v = verify(&key(), &form(), later, &s.encode()).unwrap();
        assert_eq!(v.bound.as_deref(), Some(binding("page-key-1").as_str()));
        assert!(v.admits(Some("page-key-1")));
        assert!(!v.admits(Some("page-key-2")));
        assert!(!v.admits(None));

        for altered in [
            s.salt
                .replace(&binding("page-key-1"), &binding("page-key-2")),
            s.salt
                .replace(&format!("&key={}", binding("page-key-1")), ""),
        ] {
            let mut forged = s.clone();
            forged.salt = altered;
            assert_eq!(
                verify(&key(), &form(), later, &forged.encode()),
                Err(PowError::Invalid)
            );
        }
        // Golden vector: the first 128 bits of SHA-256 of the key, as hex.
        // Computed independently: hashlib.sha256(b"page-key-1").hexdigest()[:32]
        assert_eq!(binding("page-key-1"), "c86167065a7be64f95134ccf49f43598");
    }

    /// Golden vector: the challenge is ALTCHA's `hex(SHA-256(salt ‖ number))`.
    #[test]
    fn the_challenge_is_altchas_hash_of_salt_and_number() {
        let c = issue(&key(), &form(), NOW, 1000, "ab12", 3, None);
        assert_eq!(
            c.salt,
            "ab12?expires=1796378400&form=fm-1&issued=1796292000"
        );
        // Computed independently: hashlib.sha256(salt + b"3").hexdigest()
        assert_eq!(
            c.challenge,
            "52b45d1738211e4d4839d5258cc88e8e58d1222b94c48b7c78e5c3330a5067ea"
        );
        assert_eq!(c.algorithm, "SHA-256");
        assert_eq!(c.maxnumber, 1000);
    }

    #[test]
    fn altered_wrong_form_unsigned_or_expired_solutions_are_refused() {
        let s = solved();
        let later = NOW + Duration::seconds(10);
        let other_form = FormId::parse("fm-2").unwrap();
        assert_eq!(
            verify(&key(), &other_form, later, &s.encode()),
            Err(PowError::Invalid)
        );
        let mut wrong = s.clone();
        wrong.number += 1;
        assert_eq!(
            verify(&key(), &form(), later, &wrong.encode()),
            Err(PowError::Invalid)
        );
        let mut moved = s.clone();
        moved.salt = moved.salt.replace("form=fm-1", "form=fm-2");
        assert_eq!(
            verify(&key(), &other_form, later, &moved.encode()),
            Err(PowError::Invalid)
        );
        let other_key = PowKey::from_platform_key(&BlindIndexKey::new(vec![8; 32]).unwrap());
        assert_eq!(
            verify(&other_key, &form(), later, &s.encode()),
            Err(PowError::Invalid)
        );
        assert_eq!(
            verify(&key(), &form(), NOW + CHALLENGE_TTL, &s.encode()),
            Err(PowError::Expired)
        );
        for junk in ["", "not base64!", "e30=", &"A".repeat(5000)] {
            assert_eq!(
                verify(&key(), &form(), later, junk),
                Err(PowError::Invalid),
                "{junk}"
            );
        }
    }
}
