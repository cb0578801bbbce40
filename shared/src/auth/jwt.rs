//! Short-lived access tokens: compact JWS with HS256 only, written by hand so that exactly one
//! algorithm is ever accepted (no `alg: none`, no algorithm confusion) and every check is visible.
//!
//! Keys live in one SSM parameter, `{"current":"k2","keys":{"k1":"<base64>","k2":"<base64>"}}`.
//! Rotation: add a new key, make it `current` (new tokens are signed with it, old ones still
//! verify by their `kid`), and remove the old key once [`ACCESS_TOKEN_TTL_SECS`] has passed.

use std::collections::HashMap;
use std::fmt;

use anyhow::{anyhow, bail};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Access-token lifetime: 15 minutes, the most we allow (revocation takes effect at refresh).
pub const ACCESS_TOKEN_TTL_SECS: i64 = 900;
pub const ISSUER: &str = "lead-platform";

const ALG: &str = "HS256";
const ACCESS_TYPE: &str = "access";
const MAX_TOKEN_BYTES: usize = 4096;
const MIN_KEY_BYTES: usize = 32;
/// Tolerated clock difference between the issuing and the verifying function.
const CLOCK_SKEW_SECS: i64 = 60;

/// Why a token was refused. Messages never include any part of the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum TokenError {
    #[error("token is too long")]
    TooLong,
    #[error("token is malformed")]
    Malformed,
    #[error("token algorithm is not accepted")]
    UnsupportedAlgorithm,
    #[error("token key id is unknown")]
    UnknownKey,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token was issued in the future")]
    IssuedInFuture,
    #[error("token issuer is wrong")]
    WrongIssuer,
    #[error("token type is wrong")]
    WrongType,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AccessClaims {
    /// The user id.
    pub sub: String,
    /// The tenant id: the only source of the tenant for an authenticated request.
    pub tid: String,
    pub role: String,
    /// The session id, so a revoked session can be recognised.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    /// Always `"access"`: keeps any other token we might sign from passing as an access token.
    pub typ: String,
}

#[derive(Deserialize)]
struct HeaderIn {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
struct KeysFile {
    current: String,
    keys: HashMap<String, String>,
}

/// The HMAC keys, by key id, and the id of the one that signs new tokens.
#[derive(Clone)]
pub struct SigningKeys {
    current: String,
    keys: HashMap<String, Vec<u8>>,
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        ids.sort_unstable();
        f.debug_struct("SigningKeys")
            .field("current", &self.current)
            .field("key_ids", &ids)
            .field("keys", &"<redacted>")
            .finish()
    }
}

impl SigningKeys {
    /// Parses the SSM parameter. Errors name the key id at fault, never any key material.
    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        // serde_json's messages can quote the offending value; report only where it is.
        let file: KeysFile = serde_json::from_str(text).map_err(|e| {
            anyhow!(
                "signing keys: not the expected JSON shape (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        let mut keys = HashMap::with_capacity(file.keys.len());
        for (kid, b64) in file.keys {
            if kid.is_empty() {
                bail!("signing keys: a key id is empty");
            }
            let bytes = STANDARD
                .decode(b64.trim())
                .map_err(|_| anyhow!("signing keys: key {kid:?} is not valid base64"))?;
            if bytes.len() < MIN_KEY_BYTES {
                bail!("signing keys: key {kid:?} is shorter than {MIN_KEY_BYTES} bytes");
            }
            keys.insert(kid, bytes);
        }
        if !keys.contains_key(&file.current) {
            bail!("signing keys: current key {:?} is not listed", file.current);
        }
        Ok(Self {
            current: file.current,
            keys,
        })
    }

    fn sign(key: &[u8], signing_input: &str) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(signing_input.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Signs the claims with the current key. The claims are taken as given: the caller sets
    /// `iat`, `exp` (at most `iat + ACCESS_TOKEN_TTL_SECS`), `iss` = [`ISSUER`], `typ` = "access".
    pub fn issue(&self, claims: &AccessClaims) -> String {
        let header = serde_json::json!({ "alg": ALG, "typ": "JWT", "kid": self.current });
        let header = serde_json::to_vec(&header).expect("header serializes");
        let payload = serde_json::to_vec(claims).expect("claims serialize");
        let mut token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let key = &self.keys[&self.current];
        let sig = Self::sign(key, &token);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(sig));
        token
    }

    /// Verifies signature and claims. The header is read only to pick the key; nothing in the
    /// payload is trusted until the signature has been checked.
    pub fn verify(&self, token: &str, now_unix: i64) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong);
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header_bytes = URL_SAFE_NO_PAD
            .decode(h64)
            .map_err(|_| TokenError::Malformed)?;
        let header: HeaderIn =
            serde_json::from_slice(&header_bytes).map_err(|_| TokenError::Malformed)?;
        if header.alg != ALG {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or(TokenError::UnknownKey)?;
        let sig = URL_SAFE_NO_PAD
            .decode(s64)
            .map_err(|_| TokenError::Malformed)?;
        let signing_input = &token[..h64.len() + 1 + p64.len()];
        let expected = Self::sign(key, signing_input);
        if !bool::from(expected.as_slice().ct_eq(sig.as_slice())) {
            return Err(TokenError::BadSignature);
        }
        let payload = URL_SAFE_NO_PAD
            .decode(p64)
            .map_err(|_| TokenError::Malformed)?;
        let claims: AccessClaims =
            serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.iss != ISSUER {
            return Err(TokenError::WrongIssuer);
        }
        if claims.typ != ACCESS_TYPE {
            return Err(TokenError::WrongType);
        }
        if claims.exp <= now_unix {
            return Err(TokenError::Expired);
        }
        if claims.iat > now_unix.saturating_add(CLOCK_SKEW_SECS) {
            return Err(TokenError::IssuedInFuture);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const NOW: i64 = 1_780_000_000;

    fn keys_json(current: &str, ids: &[(&str, u8)]) -> String {
        let keys: serde_json::Map<String, Value> = ids
            .iter()
            .map(|(id, b)| ((*id).to_string(), STANDARD.encode([*b; 32]).into()))
            .collect();
        json!({ "current": current, "keys": keys }).to_string()
    }

    fn keys(current: &str, ids: &[(&str, u8)]) -> SigningKeys {
        SigningKeys::from_json(&keys_json(current, ids)).unwrap()
    }

    fn k1() -> SigningKeys {
        keys("k1", &[("k1", 1)])
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            sub: "u-1".into(),
            tid: "t-1".into(),
            role: "admin".into(),
            sid: "s-1".into(),
            iat: NOW,
            exp: NOW + ACCESS_TOKEN_TTL_SECS,
            iss: ISSUER.into(),
            typ: "access".into(),
        }
    }

    fn b64json(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn header_of(token: &str) -> Value {
        let h = URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap());
        serde_json::from_slice(&h.unwrap()).unwrap()
    }

    #[test]
    fn round_trip() {
        let t = k1().issue(&claims());
        assert_eq!(t.split('.').count(), 3);
        assert_eq!(k1().verify(&t, NOW + 10), Ok(claims()));
        assert_eq!(header_of(&t), json!({"alg":"HS256","typ":"JWT","kid":"k1"}));
    }

    #[test]
    fn tampering_and_forgery_fail() {
        let t = k1().issue(&claims());
        let parts: Vec<&str> = t.split('.').collect();
        let mut forged = claims();
        forged.role = "owner".into();
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let swapped_payload = format!("{}.{}.{}", parts[0], p, parts[2]);
        assert_eq!(
            k1().verify(&swapped_payload, NOW),
            Err(TokenError::BadSignature)
        );
        let first = if parts[2].starts_with('A') { "B" } else { "A" };
        let bad_sig = format!("{}.{}.{first}{}", parts[0], parts[1], &parts[2][1..]);
        assert_eq!(k1().verify(&bad_sig, NOW), Err(TokenError::BadSignature));
        // Same key id, another secret.
        let forger = keys("k1", &[("k1", 2)]);
        let forged = forger.issue(&claims());
        assert_eq!(k1().verify(&forged, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn alg_none_and_others_are_refused() {
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
        for alg in ["none", "None", "HS512", "RS256", "hs256"] {
            let h = b64json(&json!({"alg": alg, "typ": "JWT", "kid": "k1"}));
            for t in [format!("{h}.{p}."), format!("{h}.{p}.AAAA")] {
                let r = k1().verify(&t, NOW);
                assert_eq!(r, Err(TokenError::UnsupportedAlgorithm), "{alg}");
            }
        }
    }

    #[test]
    fn unknown_or_missing_kid_is_refused() {
        let other = keys("k9", &[("k9", 1)]).issue(&claims());
        assert_eq!(k1().verify(&other, NOW), Err(TokenError::UnknownKey));
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
        let no_kid = format!("{}.{p}.AAAA", b64json(&json!({"alg": "HS256"})));
        assert_eq!(k1().verify(&no_kid, NOW), Err(TokenError::UnknownKey));
    }

    #[test]
    fn time_boundaries() {
        let t = k1().issue(&claims());
        let exp = claims().exp;
        assert!(k1().verify(&t, exp - 1).is_ok());
        assert_eq!(k1().verify(&t, exp), Err(TokenError::Expired));
        assert_eq!(k1().verify(&t, exp + 1), Err(TokenError::Expired));
        assert!(k1().verify(&t, NOW - CLOCK_SKEW_SECS).is_ok());
        let early = k1().verify(&t, NOW - CLOCK_SKEW_SECS - 1);
        assert_eq!(early, Err(TokenError::IssuedInFuture));
    }

    #[test]
    fn issuer_and_type_are_checked() {
        let k = k1();
        let mut c = claims();
        c.iss = "someone-else".into();
        assert_eq!(k.verify(&k.issue(&c), NOW), Err(TokenError::WrongIssuer));
        let mut c = claims();
        c.typ = "refresh".into();
        assert_eq!(k.verify(&k.issue(&c), NOW), Err(TokenError::WrongType));
    }

    #[test]
    fn malformed_and_oversized_tokens() {
        let k = k1();
        let t = k.issue(&claims());
        let too_many = format!("{t}.x");
        let padded = format!("{t}=");
        let no_sig = t.rsplit_once('.').unwrap().0.to_string();
        for bad in [
            "",
            ".",
            "..",
            "a.b.c",
            "not a token",
            &too_many,
            &padded,
            &no_sig,
        ] {
            assert!(k.verify(bad, NOW).is_err(), "{bad:?} accepted");
        }
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(k.verify(&huge, NOW), Err(TokenError::TooLong));
        // The payload is not even decoded before the signature checks out.
        let h = b64json(&json!({"alg": "HS256", "kid": "k1"}));
        let r = k.verify(&format!("{h}.%%%.AAAA"), NOW);
        assert_eq!(r, Err(TokenError::BadSignature));
        // A correctly signed payload that is not our claims shape.
        let input = format!("{h}.{}", b64json(&json!({"sub": "u-1"})));
        let sig = URL_SAFE_NO_PAD.encode(SigningKeys::sign(&[1; 32], &input));
        let r = k.verify(&format!("{input}.{sig}"), NOW);
        assert_eq!(r, Err(TokenError::Malformed));
    }

    #[test]
    fn rotation() {
        let old_token = k1().issue(&claims());
        let during = keys("k2", &[("k1", 1), ("k2", 2)]);
        assert!(during.verify(&old_token, NOW).is_ok());
        let new_token = during.issue(&claims());
        assert_eq!(header_of(&new_token)["kid"], "k2");
        let after = keys("k2", &[("k2", 2)]);
        assert_eq!(after.verify(&old_token, NOW), Err(TokenError::UnknownKey));
        assert!(after.verify(&new_token, NOW).is_ok());
    }

    #[test]
    fn key_file_validation_never_echoes_keys() {
        assert!(SigningKeys::from_json("{}").is_err());
        assert!(SigningKeys::from_json("not json").is_err());
        assert!(SigningKeys::from_json(&keys_json("k3", &[("k1", 1)])).is_err());
        let short_key = STANDARD.encode([1u8; 31]);
        let doc = |kid: &str, v: Value| json!({"current": "k1", "keys": {kid: v}}).to_string();
        let bad = [
            (doc("k1", short_key.clone().into()), short_key.as_str()),
            (
                doc("k1", "s3cr3t!!s3cr3t!!s3cr3t!!s3cr3t!!s3cr3t!!".into()),
                "s3cr3t",
            ),
            (doc("k1", 12_345_678_901_234_567_u64.into()), "1234567"),
            (doc("", "AAAA".into()), "AAAA"),
        ];
        for (text, secret) in bad {
            let err = format!("{:#}", SigningKeys::from_json(&text).unwrap_err());
            assert!(!err.contains(secret), "{err}");
        }
    }

    #[test]
    fn debug_redacts_key_material() {
        let dbg = format!("{:?}", keys("k2", &[("k1", 1), ("k2", 2)]));
        assert!(dbg.contains("k1") && dbg.contains("k2"));
        assert!(!dbg.contains(&STANDARD.encode([1u8; 32])));
        assert!(!dbg.contains("1, 1, 1") && !dbg.contains("2, 2, 2"));
    }
}
