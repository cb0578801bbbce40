//! Stripe's webhook signature: the `Stripe-Signature` header is `t=<unix>,v1=<hex>[,v1=<hex>…]`
//! (other schemes such as `v0` are ignored), and each `v1` is HMAC-SHA256, keyed with the
//! endpoint's signing secret, over `"<t>.<raw body>"`. Stripe sends several `v1` values while an
//! endpoint has more than one live secret; we accept several secrets for our side of a rotation.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use crate::provider::SignatureError;

type HmacSha256 = Hmac<Sha256>;

/// A header longer than this is refused before it is parsed.
const MAX_HEADER_LEN: usize = 4096;
/// More signatures than this is not a header Stripe sends.
const MAX_SIGNATURES: usize = 16;

/// The parsed header: its timestamp and its `v1` signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    pub v1: Vec<[u8; 32]>,
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Some(out)
}

fn encode_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

/// Parses the header. A missing or repeated `t`, a part without `=`, or no well-formed `v1` is
/// malformed; unknown schemes are ignored.
pub fn parse_header(value: &str) -> Result<SignatureHeader, SignatureError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for part in value.split(',') {
        let (k, v) = part.split_once('=').ok_or(SignatureError::Malformed)?;
        match k.trim() {
            "t" => {
                let t: i64 = v.trim().parse().map_err(|_| SignatureError::Malformed)?;
                if timestamp.replace(t).is_some() || t <= 0 {
                    return Err(SignatureError::Malformed);
                }
            }
            "v1" => {
                let sig = decode_hex32(v.trim()).ok_or(SignatureError::Malformed)?;
                if v1.len() == MAX_SIGNATURES {
                    return Err(SignatureError::Malformed);
                }
                v1.push(sig);
            }
            _ => {}
        }
    }
    match (timestamp, v1.is_empty()) {
        (Some(timestamp), false) => Ok(SignatureHeader { timestamp, v1 }),
        _ => Err(SignatureError::Malformed),
    }
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().into()
}

/// Verifies `header` over `body` with any of `secrets`, then the timestamp against `now_unix`.
/// Every (secret, signature) pair is compared, in constant time, before deciding.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[String],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let header = parse_header(header.ok_or(SignatureError::Missing)?)?;
    let mut matched = Choice::from(0);
    for secret in secrets {
        let expected = mac(secret, header.timestamp, body);
        for candidate in &header.v1 {
            matched |= expected.ct_eq(candidate);
        }
    }
    if !bool::from(matched) {
        return Err(SignatureError::Mismatch);
    }
    if (now_unix - header.timestamp).abs() > tolerance_secs {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// The header Stripe would send for `body` signed with `secret` at `timestamp`: for tests and
/// for sending a local event by hand.
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        encode_hex(&mac(secret, timestamp, body))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_953_600;
    const SECRET: &str = "whsec_local_dev";
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;

    fn secrets(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_known_vector() {
        // HMAC-SHA256(key = "whsec_local_dev", "1795953600." + BODY), computed independently
        // with Python's hmac module.
        assert_eq!(
            signature_header(SECRET, NOW, BODY),
            "t=1795953600,v1=1372485473c71964dfb14752ee8b8e1b690103dfbf4004e65ef0b674fd733b10"
        );
    }

    #[test]
    fn valid_signature() {
        let h = signature_header(SECRET, NOW, BODY);
        assert_eq!(
            verify(Some(&h), BODY, &secrets(&[SECRET]), NOW, 300),
            Ok(())
        );
    }

    #[test]
    fn wrong_secret() {
        let h = signature_header("whsec_other", NOW, BODY);
        assert_eq!(
            verify(Some(&h), BODY, &secrets(&[SECRET]), NOW, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn tampered_body() {
        let h = signature_header(SECRET, NOW, BODY);
        let tampered = br#"{"id":"evt_2","object":"event"}"#;
        assert_eq!(
            verify(Some(&h), tampered, &secrets(&[SECRET]), NOW, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_timestamp_is_signed_too() {
        let h = signature_header(SECRET, NOW - 1000, BODY);
        let moved = h.replace(&format!("t={}", NOW - 1000), &format!("t={NOW}"));
        assert_eq!(
            verify(Some(&moved), BODY, &secrets(&[SECRET]), NOW, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn stale_and_future_timestamps() {
        let old = signature_header(SECRET, NOW - 301, BODY);
        assert_eq!(
            verify(Some(&old), BODY, &secrets(&[SECRET]), NOW, 300),
            Err(SignatureError::Stale)
        );
        let edge = signature_header(SECRET, NOW - 300, BODY);
        assert_eq!(
            verify(Some(&edge), BODY, &secrets(&[SECRET]), NOW, 300),
            Ok(())
        );
        let future = signature_header(SECRET, NOW + 301, BODY);
        assert_eq!(
            verify(Some(&future), BODY, &secrets(&[SECRET]), NOW, 300),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn any_matching_v1_is_accepted() {
        let good = signature_header(SECRET, NOW, BODY);
        let bad = signature_header("whsec_old", NOW, BODY);
        let good_sig = good.split_once("v1=").unwrap().1;
        let bad_sig = bad.split_once("v1=").unwrap().1;
        for h in [
            format!("t={NOW},v1={bad_sig},v1={good_sig}"),
            format!("t={NOW},v1={good_sig},v1={bad_sig}"),
            format!("v1={good_sig}, t={NOW}, v0=deadbeef"),
        ] {
            assert_eq!(
                verify(Some(&h), BODY, &secrets(&[SECRET]), NOW, 300),
                Ok(()),
                "{h}"
            );
        }
    }

    #[test]
    fn rotated_secrets_are_all_tried() {
        let with_new = signature_header("whsec_new", NOW, BODY);
        let with_old = signature_header("whsec_old", NOW, BODY);
        let both = secrets(&["whsec_old", "whsec_new"]);
        assert_eq!(verify(Some(&with_new), BODY, &both, NOW, 300), Ok(()));
        assert_eq!(verify(Some(&with_old), BODY, &both, NOW, 300), Ok(()));
        assert_eq!(
            verify(Some(&with_new), BODY, &secrets(&["whsec_old"]), NOW, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_and_malformed_headers() {
        let s = secrets(&[SECRET]);
        assert_eq!(
            verify(None, BODY, &s, NOW, 300),
            Err(SignatureError::Missing)
        );
        let sig = encode_hex(&mac(SECRET, NOW, BODY));
        for h in [
            String::new(),
            "garbage".to_string(),
            format!("v1={sig}"),
            format!("t={NOW}"),
            format!("t=abc,v1={sig}"),
            format!("t={NOW},t={NOW},v1={sig}"),
            format!("t={NOW},v1=zz{}", &sig[2..]),
            format!("t={NOW},v1={}", &sig[..10]),
            format!("t={NOW},v1={sig},junk"),
            format!("t=-5,v1={sig}"),
            format!("t={NOW},{}", vec![format!("v1={sig}"); 17].join(",")),
            "x".repeat(5000),
        ] {
            assert_eq!(
                verify(Some(&h), BODY, &s, NOW, 300),
                Err(SignatureError::Malformed),
                "{h}"
            );
        }
    }

    #[test]
    fn no_secrets_matches_nothing() {
        let h = signature_header(SECRET, NOW, BODY);
        assert_eq!(
            verify(Some(&h), BODY, &[], NOW, 300),
            Err(SignatureError::Mismatch)
        );
    }
}
