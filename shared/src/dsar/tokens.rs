//! Secrets of the request lifecycle: the 6-digit verification code (stored only as a keyed hash
//! bound to its request), the signed status link, and the signed one-click unsubscribe token.
//! Every comparison is constant-time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::Rng;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::blind_index::BlindIndexKey;
use crate::domain::TenantId;

/// A fresh 6-digit code (uniform over 000000..=999999).
pub fn new_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// The stored form of a request's code: a keyed hash bound to the request, so a leaked table
/// cannot be brute-forced offline (10^6 codes) without the key, nor a code moved to another
/// request.
pub fn code_hash(key: &BlindIndexKey, request_id: &str, code: &str) -> String {
    key.dsar_tag("code", &[request_id, code])
}

/// Whether `code` (as typed: digits, spaces and dashes ignored) is the request's code.
pub fn code_matches(key: &BlindIndexKey, request_id: &str, code: &str, stored: &str) -> bool {
    let digits: String = code
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .take(16)
        .collect();
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        // Still compare, so a malformed code costs what a wrong one does.
        let _ = bool::from(stored.as_bytes().ct_eq(stored.as_bytes()));
        return false;
    }
    let h = code_hash(key, request_id, &digits);
    bool::from(h.as_bytes().ct_eq(stored.as_bytes()))
}

/// The token of a request's status link (`?token=`): whoever got the emails may look.
pub fn status_token(key: &BlindIndexKey, request_id: &str) -> String {
    key.dsar_tag("status", &[request_id])
}

pub fn status_token_matches(key: &BlindIndexKey, request_id: &str, token: &str) -> bool {
    let want = status_token(key, request_id);
    token.len() == want.len() && bool::from(want.as_bytes().ct_eq(token.as_bytes()))
}

/// What a one-click link withdraws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsubscribePurpose {
    /// Objection to direct marketing (absolute: marketing stops).
    Marketing,
    /// Withdrawal of consent given (marketing consent on a form).
    Consent,
}

impl UnsubscribePurpose {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Marketing => "marketing",
            Self::Consent => "consent",
        }
    }
}

/// Whose marketing the link stops: the platform's own (to account holders), or one tenant's
/// (to its leads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsubscribeScope {
    Platform,
    Tenant(TenantId),
}

impl UnsubscribeScope {
    pub fn to_stored(&self) -> String {
        match self {
            Self::Platform => "platform".into(),
            Self::Tenant(t) => format!("tenant:{t}"),
        }
    }
    pub fn from_stored(raw: &str) -> Option<Self> {
        match raw.strip_prefix("tenant:") {
            Some(t) => TenantId::parse(t).ok().map(Self::Tenant),
            None if raw == "platform" => Some(Self::Platform),
            None => None,
        }
    }
}

/// The signed content of an unsubscribe link: purpose, the recipient's email blind index and
/// the scope; no email in clear, no expiry (an old newsletter's link must keep working).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeToken {
    pub purpose: UnsubscribePurpose,
    pub subject_bidx: String,
    pub scope: UnsubscribeScope,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    p: UnsubscribePurpose,
    b: String,
    s: String,
}

/// Longer tokens are refused before decoding.
const MAX_TOKEN_LEN: usize = 512;

impl UnsubscribeToken {
    /// `base64url(payload).signature`.
    pub fn sign(&self, key: &BlindIndexKey) -> String {
        let payload = serde_json::to_string(&Payload {
            p: self.purpose,
            b: self.subject_bidx.clone(),
            s: self.scope.to_stored(),
        })
        .unwrap_or_default();
        let sig = key.dsar_tag("unsubscribe", &[&payload]);
        format!("{}.{sig}", URL_SAFE_NO_PAD.encode(payload.as_bytes()))
    }

    /// The token's content, if `raw` is a token this platform signed.
    pub fn verify(key: &BlindIndexKey, raw: &str) -> Option<Self> {
        if raw.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (payload_b64, sig) = raw.split_once('.')?;
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload_b64).ok()?).ok()?;
        let want = key.dsar_tag("unsubscribe", &[&payload]);
        if sig.len() != want.len() || !bool::from(want.as_bytes().ct_eq(sig.as_bytes())) {
            return None;
        }
        let p: Payload = serde_json::from_str(&payload).ok()?;
        let bidx_ok =
            !p.b.is_empty() && p.b.len() <= 64 && p.b.bytes().all(|b| b.is_ascii_hexdigit());
        if !bidx_ok {
            return None;
        }
        Some(Self {
            purpose: p.p,
            subject_bidx: p.b,
            scope: UnsubscribeScope::from_stored(&p.s)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> BlindIndexKey {
        BlindIndexKey::new(vec![b; 32]).unwrap()
    }

    #[test]
    fn codes_are_six_digits_and_bound_to_their_request() {
        let k = key(1);
        let code = new_code();
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        let h = code_hash(&k, "r1", &code);
        assert!(code_matches(&k, "r1", &code, &h));
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(code_matches(&k, "r1", &spaced, &h));
        assert!(!code_matches(&k, "r2", &code, &h), "another request");
        assert!(!code_matches(&key(2), "r1", &code, &h), "another key");
        assert!(!code_matches(&k, "r1", "12345", &h));
        assert!(!code_matches(&k, "r1", "abcdef", &h));
        assert!(!h.contains(&code));
    }

    #[test]
    fn status_tokens_verify_only_for_their_request() {
        let k = key(1);
        let t = status_token(&k, "r1");
        assert!(status_token_matches(&k, "r1", &t));
        assert!(!status_token_matches(&k, "r2", &t));
        assert!(!status_token_matches(&k, "r1", ""));
    }

    #[test]
    fn unsubscribe_tokens_round_trip_and_refuse_tampering() {
        let k = key(1);
        let tok = UnsubscribeToken {
            purpose: UnsubscribePurpose::Consent,
            subject_bidx: "00ff".repeat(8),
            scope: UnsubscribeScope::Tenant(TenantId::parse("tn-1").unwrap()),
        };
        let raw = tok.sign(&k);
        assert_eq!(UnsubscribeToken::verify(&k, &raw), Some(tok.clone()));
        assert_eq!(UnsubscribeToken::verify(&key(2), &raw), None);
        let (p, s) = raw.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD
            .encode(br#"{"p":"consent","b":"00ff00ff00ff00ff00ff00ff00ff00ff","s":"tenant:tn-2"}"#);
        assert_eq!(
            UnsubscribeToken::verify(&k, &format!("{forged_payload}.{s}")),
            None
        );
        assert_eq!(UnsubscribeToken::verify(&k, p), None);
        assert_eq!(UnsubscribeToken::verify(&k, "x.y"), None);
        assert_eq!(UnsubscribeToken::verify(&k, &"a".repeat(600)), None);
    }
}
