//! Secrets of the request lifecycle: the 6-digit verification code (stored only as a keyed hash
//! bound to its request), the signed status link (the signed one-click unsubscribe token is
//! `shared_mail::unsubscribe`, re-exported here), and
//! the signed download token of the links a subject is emailed. Every comparison is
//! constant-time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::Rng;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use shared_core::blind_index::BlindIndexKey;

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

pub use shared_mail::unsubscribe::{UnsubscribePurpose, UnsubscribeScope, UnsubscribeToken};

/// Which bucket a download link opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownloadBucket {
    /// The subject's export or certificate (`dsar/...` in the exports bucket).
    Exports,
    /// A lead's attachment linked from an access export (`tenants/.../leads/...`).
    Attachments,
}

/// The signed content of a download link emailed to a subject: one object of one request, until
/// a time. The link goes to the platform's download route, which checks it and answers with a
/// redirect to a URL presigned for seconds at that moment: a presigned URL dies with the
/// temporary credentials of the role that signed it (hours), whatever its `X-Amz-Expires`
/// says, so no link a subject keeps for days may be one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadToken {
    pub request_id: String,
    pub bucket: DownloadBucket,
    pub key: String,
    /// Unix seconds after which the link is refused.
    pub expires_at: i64,
}

#[derive(Serialize, Deserialize)]
struct DownloadPayload {
    r: String,
    b: DownloadBucket,
    k: String,
    e: i64,
}

/// Why a download link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadRefused {
    /// Not a link this platform signed, tampered with, or naming an object outside its request.
    Invalid,
    /// Signed, but past its time.
    Expired,
}

/// Longer download tokens are refused before decoding (object keys are at most ~300 bytes).
const MAX_DOWNLOAD_TOKEN_LEN: usize = 1024;

impl DownloadToken {
    /// `base64url(payload).signature`.
    pub fn sign(&self, key: &BlindIndexKey) -> String {
        let payload = serde_json::to_string(&DownloadPayload {
            r: self.request_id.clone(),
            b: self.bucket,
            k: self.key.clone(),
            e: self.expires_at,
        })
        .unwrap_or_default();
        let sig = key.dsar_tag("download", &[&payload]);
        format!("{}.{sig}", URL_SAFE_NO_PAD.encode(payload.as_bytes()))
    }

    /// The token's content if `raw` is a link this platform signed, still valid at `now`
    /// (unix seconds), naming an object of its own request.
    pub fn verify(key: &BlindIndexKey, raw: &str, now: i64) -> Result<Self, DownloadRefused> {
        use DownloadRefused::*;
        if raw.len() > MAX_DOWNLOAD_TOKEN_LEN {
            return Err(Invalid);
        }
        let (payload_b64, sig) = raw.split_once('.').ok_or(Invalid)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(Invalid)?;
        let want = key.dsar_tag("download", &[&payload]);
        if sig.len() != want.len() || !bool::from(want.as_bytes().ct_eq(sig.as_bytes())) {
            return Err(Invalid);
        }
        let p: DownloadPayload = serde_json::from_str(&payload).map_err(|_| Invalid)?;
        let t = Self {
            request_id: p.r,
            bucket: p.b,
            key: p.k,
            expires_at: p.e,
        };
        if !t.names_its_own_object() {
            return Err(Invalid);
        }
        if now >= t.expires_at {
            return Err(Expired);
        }
        Ok(t)
    }

    /// Defence in depth beside the signature: an export link opens only an object of its own
    /// request (`dsar/.../<request>/...` or its certificate), an attachment link only a lead's
    /// file; never `..`, never another prefix.
    fn names_its_own_object(&self) -> bool {
        let id_ok = !self.request_id.is_empty()
            && self
                .request_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok || self.key.contains("..") || self.key.starts_with('/') {
            return false;
        }
        match self.bucket {
            DownloadBucket::Exports => {
                self.key == format!("dsar/certificates/{}.json", self.request_id)
                    || (self.key.starts_with("dsar/")
                        && self
                            .key
                            .split('/')
                            .any(|segment| segment == self.request_id))
            }
            DownloadBucket::Attachments => {
                self.key.starts_with("tenants/") && self.key.contains("/leads/")
            }
        }
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

    fn download(request: &str, key: &str) -> DownloadToken {
        DownloadToken {
            request_id: request.into(),
            bucket: DownloadBucket::Exports,
            key: key.into(),
            expires_at: 1_000,
        }
    }

    #[test]
    fn download_tokens_expire_refuse_tampering_and_open_only_their_requests_objects() {
        let k = key(1);
        let t = download("dsr-a", "dsar/tenants/tn-1/00ff/dsr-a/access.json");
        let raw = t.sign(&k);
        assert_eq!(DownloadToken::verify(&k, &raw, 999), Ok(t.clone()));
        assert_eq!(
            DownloadToken::verify(&k, &raw, 1_000),
            Err(DownloadRefused::Expired)
        );
        assert_eq!(
            DownloadToken::verify(&key(2), &raw, 0),
            Err(DownloadRefused::Invalid),
            "another key"
        );
        // Another subject's object: the payload changed, the signature no longer matches.
        let (_, sig) = raw.split_once('.').unwrap();
        let other = serde_json::json!({"r": "dsr-a", "b": "exports", "k": "dsar/tenants/tn-1/00ff/dsr-b/access.json", "e": 1000});
        let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(other.to_string()));
        assert_eq!(
            DownloadToken::verify(&k, &forged, 0),
            Err(DownloadRefused::Invalid)
        );
        // A later expiry, same signature: refused.
        let later =
            serde_json::json!({"r": "dsr-a", "b": "exports", "k": t.key, "e": 9_999_999_999i64});
        let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(later.to_string()));
        assert_eq!(
            DownloadToken::verify(&k, &forged, 0),
            Err(DownloadRefused::Invalid)
        );
        // Even signed, a link may only name an object of its own request.
        for (request, key_) in [
            ("dsr-a", "dsar/tenants/tn-1/00ff/dsr-b/access.json"),
            ("dsr-a", "exports/tn-1/exp_1.csv"),
            ("dsr-a", "dsar/certificates/dsr-b.json"),
            ("dsr-a", "dsar/tenants/tn-1/../dsr-a/x"),
            ("", "dsar/certificates/.json"),
        ] {
            let raw = download(request, key_).sign(&k);
            assert_eq!(
                DownloadToken::verify(&k, &raw, 0),
                Err(DownloadRefused::Invalid),
                "{key_}"
            );
        }
        let cert = download("dsr-a", "dsar/certificates/dsr-a.json");
        assert!(DownloadToken::verify(&k, &cert.sign(&k), 0).is_ok());
        for garbage in ["", ".", "x.y", &"a".repeat(2000)] {
            assert_eq!(
                DownloadToken::verify(&k, garbage, 0),
                Err(DownloadRefused::Invalid)
            );
        }
    }

    #[test]
    fn status_tokens_verify_only_for_their_request() {
        let k = key(1);
        let t = status_token(&k, "r1");
        assert!(status_token_matches(&k, "r1", &t));
        assert!(!status_token_matches(&k, "r2", &t));
        assert!(!status_token_matches(&k, "r1", ""));
    }
}
