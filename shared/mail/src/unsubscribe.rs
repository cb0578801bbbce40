//! The signed one-click unsubscribe token (RFC 8058) every platform email carries: which
//! marketing it stops, for whose email blind index. Signed with the data-subject request key
//! ([`BlindIndexKey::dsar_tag`]); verified by the `dsar` function's unsubscribe route.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use shared_core::blind_index::BlindIndexKey;
use shared_core::domain::TenantId;

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
