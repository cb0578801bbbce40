//! The `Webhook-Signature` header of every delivery: `t=<unix seconds>,v1=<hex>[,v1=<hex>]`,
//! each `v1` the HMAC-SHA256, keyed with one of the endpoint's live signing secrets, over
//! `"<t>.<raw body>"` — the scheme of Stripe's `Stripe-Signature`, which the platform itself
//! verifies (functions/billing-webhook/src/stripe/signature.rs). During a rotation's overlap
//! window both secrets sign, so a receiver holding either verifies.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

pub const HEADER: &str = "webhook-signature";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac(secret: &[u8], t: i64, body: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().into()
}

/// The header value for `body` sent at `t`, one `v1` per live secret (newest first).
pub fn header(secrets: &[&[u8]], t: i64, body: &[u8]) -> String {
    let mut out = format!("t={t}");
    for s in secrets {
        out.push_str(",v1=");
        out.push_str(&hex(&mac(s, t, body)));
    }
    out
}

/// A receiver's check (what docs/outbound.md shows in Python and Node): some `v1` of the
/// header matches `secret`, and `t` is within `tolerance_s` of `now`.
pub fn verify(secret: &[u8], header_value: &str, body: &[u8], now: i64, tolerance_s: i64) -> bool {
    let mut t = None;
    let mut sigs = vec![];
    for part in header_value.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v.to_string()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > tolerance_s {
        return false;
    }
    let expected = hex(&mac(secret, t, body));
    sigs.iter()
        .any(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_vector() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"whsec_test",b"1700000000.{}",hashlib.sha256).hexdigest())'
        assert_eq!(
            header(&[b"whsec_test"], 1_700_000_000, b"{}"),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }

    #[test]
    fn both_secrets_of_a_rotation_verify_and_nothing_else_does() {
        let h = header(&[b"new", b"old"], 100, b"body");
        assert!(verify(b"new", &h, b"body", 100, 300));
        assert!(verify(b"old", &h, b"body", 100, 300));
        assert!(!verify(b"other", &h, b"body", 100, 300));
        assert!(!verify(b"new", &h, b"body2", 100, 300));
        assert!(!verify(b"new", &h, b"body", 1000, 300), "too old");
        assert!(!verify(b"new", "v1=00", b"body", 100, 300));
    }
}
