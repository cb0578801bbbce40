//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP): HMAC-SHA1, 6 digits, 30-second
//! steps, the parameters every authenticator app supports. The secret travels as RFC 4648
//! base32 in an `otpauth://` URI (shown as a QR code) once, at enrolment.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;

const STEP_SECS: i64 = 30;
const DIGITS: usize = 6;
const MODULUS: u32 = 1_000_000;
/// Steps accepted either side of now: tolerates a phone clock off by up to ~30 s and a code
/// typed just as it rolled over.
const WINDOW: i64 = 1;
const SECRET_BYTES: usize = 20;
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new 160-bit secret (the size RFC 4226 recommends for HMAC-SHA1).
pub fn new_secret() -> Vec<u8> {
    let mut s = vec![0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut s);
    s
}

/// RFC 4648 base32, uppercase, without `=` padding (authenticator apps expect it unpadded).
pub fn encode_base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes base32, case-insensitive, ignoring spaces and correct trailing `=` padding. Refuses other
/// characters, lengths no encoding produces, and non-zero leftover bits (non-canonical input).
pub fn decode_base32(text: &str) -> Option<Vec<u8>> {
    let cleaned: Vec<u8> = text.bytes().filter(|b| *b != b' ').collect();
    let end = cleaned
        .iter()
        .rposition(|b| *b != b'=')
        .map_or(0, |i| i + 1);
    let (data, padding) = cleaned.split_at(end);
    if !padding.is_empty() && (data.len() + padding.len()) % 8 != 0 {
        return None;
    }
    if !matches!(data.len() % 8, 0 | 2 | 4 | 5 | 7) {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &c in data {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    if buffer != 0 {
        return None;
    }
    Some(out)
}

fn hotp(secret: &[u8], counter: u64) -> u32 {
    let mut mac = HmacSha1::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = (h[h.len() - 1] & 0x0f) as usize;
    let bin =
        u32::from_be_bytes([h[offset], h[offset + 1], h[offset + 2], h[offset + 3]]) & 0x7fff_ffff;
    bin % MODULUS
}

fn step_of(unix: i64) -> i64 {
    unix.div_euclid(STEP_SECS)
}

fn code_for_step(secret: &[u8], step: i64) -> String {
    // Steps before 1970 never occur in practice; clamp instead of wrapping.
    let counter = u64::try_from(step).unwrap_or(0);
    format!("{:0width$}", hotp(secret, counter), width = DIGITS)
}

/// The 6-digit code for the step containing `unix`.
pub fn code_at(secret: &[u8], unix: i64) -> String {
    code_for_step(secret, step_of(unix))
}

/// Checks a code typed by the user. Returns the matched time step, which the caller stores as
/// the new `last_used_step`: a code for that step or an earlier one is refused afterwards, so a
/// code seen over someone's shoulder cannot be replayed. Only exactly six ASCII digits (outer
/// whitespace ignored) are considered; every candidate step is compared in constant time.
pub fn verify(
    secret: &[u8],
    code: &str,
    now_unix: i64,
    last_used_step: Option<i64>,
) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) || secret.is_empty() {
        return None;
    }
    let now = step_of(now_unix);
    let mut matched = None;
    for step in (now - WINDOW)..=(now + WINDOW) {
        if last_used_step.is_some_and(|last| step <= last) {
            continue;
        }
        let candidate = code_for_step(secret, step);
        if bool::from(candidate.as_bytes().ct_eq(code.as_bytes())) && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

fn percent_encode(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The enrolment URI (Google Authenticator key-URI format). The label is `issuer:account`, each
/// part percent-encoded; the issuer is repeated as a parameter as the format recommends.
pub fn otpauth_uri(issuer: &str, account_email: &str, secret_b32: &str) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}\
         &algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        account = percent_encode(account_email),
        secret = percent_encode(secret_b32),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B (SHA1), last six digits of the eight-digit values.
        let vectors = [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ];
        for (t, code) in vectors {
            assert_eq!(code_at(RFC_SECRET, t), code, "at {t}");
        }
    }

    #[test]
    fn rfc4226_hotp_vectors() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(hotp(RFC_SECRET, counter as u64), *want);
        }
    }

    #[test]
    fn rfc4648_base32_vectors() {
        let vectors = [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (plain, enc) in vectors {
            assert_eq!(encode_base32(plain.as_bytes()), enc);
            assert_eq!(decode_base32(enc).unwrap(), plain.as_bytes());
        }
        // The padded forms from the RFC decode too.
        assert_eq!(decode_base32("MY======").unwrap(), b"f");
        assert_eq!(decode_base32("MZXW6YQ=").unwrap(), b"foob");
    }

    #[test]
    fn base32_round_trip_case_and_spaces() {
        for len in 0..=40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let enc = encode_base32(&bytes);
            assert_eq!(decode_base32(&enc).unwrap(), bytes);
            assert_eq!(decode_base32(&enc.to_lowercase()).unwrap(), bytes);
        }
        let secret = new_secret();
        assert_eq!(secret.len(), 20);
        let enc = encode_base32(&secret);
        assert_eq!(enc.len(), 32);
        let spaced: String = enc
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(decode_base32(&spaced).unwrap(), secret);
    }

    #[test]
    fn base32_rejects_bad_input() {
        for bad in [
            "M1",
            "MY0",
            "M",
            "MZX",
            "MZXW6Y",
            "MZ",
            "MZ-XQ",
            "MY=======",
            "MY==",
            "=",
            "é",
        ] {
            assert_eq!(decode_base32(bad), None, "{bad:?} accepted");
        }
    }

    #[test]
    fn verify_accepts_one_step_either_side() {
        let s = new_secret();
        let now = 1_780_000_015;
        let step = step_of(now);
        assert_eq!(verify(&s, &code_at(&s, now), now, None), Some(step));
        assert_eq!(
            verify(&s, &code_at(&s, now - 30), now, None),
            Some(step - 1)
        );
        assert_eq!(
            verify(&s, &code_at(&s, now + 30), now, None),
            Some(step + 1)
        );
        assert_eq!(verify(&s, &code_at(&s, now - 60), now, None), None);
        assert_eq!(verify(&s, &code_at(&s, now + 60), now, None), None);
        assert_eq!(
            verify(&s, &format!(" {} ", code_at(&s, now)), now, None),
            Some(step)
        );
    }

    #[test]
    fn verify_refuses_replay() {
        let s = new_secret();
        let now = 1_780_000_015;
        let code = code_at(&s, now);
        let used = verify(&s, &code, now, None).unwrap();
        assert_eq!(verify(&s, &code, now, Some(used)), None);
        assert_eq!(verify(&s, &code, now + 20, Some(used)), None);
        // An earlier step's code is refused once a later one was used.
        assert_eq!(verify(&s, &code_at(&s, now - 30), now, Some(used)), None);
        // The next step's code is still good.
        let next = code_at(&s, now + 30);
        assert_eq!(verify(&s, &next, now + 30, Some(used)), Some(used + 1));
    }

    #[test]
    fn verify_refuses_non_six_digit_input() {
        let s = new_secret();
        let now = 1_780_000_015;
        let code = code_at(&s, now);
        let seven = format!("{code}0");
        let five = code[..5].to_string();
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        let wide = code.replace('0', "０");
        for bad in [
            "", "abcdef", "12345a", "+12345", "-12345", &seven, &five, &spaced,
        ] {
            assert_eq!(verify(&s, bad, now, None), None, "{bad:?} accepted");
        }
        if wide != code {
            assert_eq!(verify(&s, &wide, now, None), None);
        }
        assert_eq!(verify(&[], "000000", now, None), None);
    }

    #[test]
    fn otpauth_uri_is_percent_encoded() {
        let uri = otpauth_uri("Lead Platform", "ana+mfa@example.com", "JBSWY3DPEHPK3PXP");
        assert_eq!(
            uri,
            "otpauth://totp/Lead%20Platform:ana%2Bmfa%40example.com?secret=JBSWY3DPEHPK3PXP\
             &issuer=Lead%20Platform&algorithm=SHA1&digits=6&period=30"
        );
        let tricky = otpauth_uri("A&B", "x?y#z@e.com", "AAAA");
        assert!(
            tricky.starts_with("otpauth://totp/A%26B:x%3Fy%23z%40e.com?secret=AAAA&issuer=A%26B&")
        );
    }
}
