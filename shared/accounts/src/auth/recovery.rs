//! MFA recovery codes: ten single-use codes shown once at enrolment, for when the authenticator
//! is lost. Each is `xxxxx-xxxxx` over Crockford's base32 alphabet in lowercase (no `i`, `l`,
//! `o`, `u`), so a code read off paper cannot be mistyped as a look-alike; on input `o` is read as
//! `0` and `i`/`l` as `1`.
//!
//! Storage: a code carries 50 random bits, below the 112 bits ASVS 2.6.2 asks of an unsalted
//! lookup secret, so each stored entry is `<salt>:<hash>`: a random 32-bit salt (hex) and the
//! SHA-256 (hex) of the salt followed by the normalized code. Callers treat entries as opaque
//! strings: produce them with [`generate`], match them with [`find`], delete the matched one.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use shared_core::blind_index::hex;

const CODE_COUNT: usize = 10;
const HALF: usize = 5;
const CODE_CHARS: usize = 2 * HALF;
const SALT_BYTES: usize = 4;
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Longest input worth normalizing; anything longer cannot be a code.
const MAX_INPUT_BYTES: usize = 64;

/// Ten new codes (to show once) and the entries to store, in the same order.
pub fn generate() -> (Vec<String>, Vec<String>) {
    let mut rng = rand::rng();
    let mut codes = Vec::with_capacity(CODE_COUNT);
    let mut stored = Vec::with_capacity(CODE_COUNT);
    for _ in 0..CODE_COUNT {
        let mut raw = [0u8; CODE_CHARS];
        rng.fill_bytes(&mut raw);
        // 256 is a multiple of 32, so masking keeps every character equally likely.
        let chars: String = raw
            .iter()
            .map(|b| ALPHABET[(b & 31) as usize] as char)
            .collect();
        let mut salt = [0u8; SALT_BYTES];
        rng.fill_bytes(&mut salt);
        stored.push(format!("{}:{}", hex(&salt), digest(&salt, &chars)));
        codes.push(format!("{}-{}", &chars[..HALF], &chars[HALF..]));
    }
    (codes, stored)
}

fn digest(salt: &[u8], normalized: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(normalized.as_bytes());
    hex(&h.finalize())
}

/// The canonical form of a typed code: lowercase, without spaces or dashes, look-alikes mapped
/// (`o` → `0`, `i`/`l` → `1`).
pub fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_lowercase() {
            'o' => '0',
            'i' | 'l' => '1',
            c => c,
        })
        .collect()
}

fn parse_entry(entry: &str) -> Option<([u8; SALT_BYTES], &str)> {
    let (salt_hex, hash) = entry.split_once(':')?;
    if salt_hex.len() != 2 * SALT_BYTES || hash.len() != 64 {
        return None;
    }
    let mut salt = [0u8; SALT_BYTES];
    for (i, byte) in salt.iter_mut().enumerate() {
        *byte = u8::from_str_radix(salt_hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some((salt, hash))
}

/// The index of the stored entry the code matches, if any. Every entry is checked (no early
/// exit) and each comparison is constant-time. The caller deletes the matched entry, which is
/// what makes a code single-use.
pub fn find(code: &str, hashes: &[String]) -> Option<usize> {
    if code.len() > MAX_INPUT_BYTES {
        return None;
    }
    let normalized = normalize(code);
    if normalized.len() != CODE_CHARS || !normalized.bytes().all(|b| ALPHABET.contains(&b)) {
        return None;
    }
    let mut found = None;
    for (i, entry) in hashes.iter().enumerate() {
        let Some((salt, stored)) = parse_entry(entry) else {
            continue;
        };
        let candidate = digest(&salt, &normalized);
        if bool::from(candidate.as_bytes().ct_eq(stored.as_bytes())) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generates_ten_well_formed_distinct_codes() {
        let (codes, stored) = generate();
        assert_eq!(codes.len(), CODE_COUNT);
        assert_eq!(stored.len(), CODE_COUNT);
        for c in &codes {
            assert_eq!(c.len(), 11);
            assert_eq!(&c[5..6], "-");
            assert!(c
                .bytes()
                .filter(|b| *b != b'-')
                .all(|b| ALPHABET.contains(&b)));
            assert!(!c.contains(['i', 'l', 'o', 'u']), "{c} has a look-alike");
        }
        assert_eq!(codes.iter().collect::<HashSet<_>>().len(), CODE_COUNT);
        for s in &stored {
            let (_, h) = parse_entry(s).expect("stored entry parses");
            assert!(h
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(!codes.iter().any(|c| s.contains(&normalize(c))));
        }
    }

    #[test]
    fn each_code_finds_its_own_entry() {
        let (codes, stored) = generate();
        for (i, c) in codes.iter().enumerate() {
            assert_eq!(find(c, &stored), Some(i));
        }
    }

    #[test]
    fn typed_variants_are_accepted() {
        let (codes, stored) = generate();
        let c = &codes[3];
        let upper = c.to_uppercase();
        let spaced = format!(" {} {} ", &c[..5], &c[6..]);
        let joined = c.replace('-', "");
        for typed in [&upper, &spaced, &joined] {
            assert_eq!(find(typed, &stored), Some(3), "{typed:?}");
        }
    }

    #[test]
    fn normalize_maps_look_alikes() {
        assert_eq!(normalize("AbC-De F"), "abcdef");
        assert_eq!(normalize("oO-iI-lL"), "001111");
        assert_eq!(normalize("  12345 - 67890 "), "1234567890");
    }

    #[test]
    fn look_alike_input_matches_the_digit() {
        let salt = [1, 2, 3, 4];
        let entry = format!("{}:{}", hex(&salt), digest(&salt, "0a1b2c3d4e"));
        let stored = vec![entry];
        assert_eq!(find("oa1b2-c3d4e", &stored), Some(0));
        assert_eq!(find("0aib2-c3d4e", &stored), Some(0));
        assert_eq!(find("0alb2-c3d4e", &stored), Some(0));
    }

    #[test]
    fn wrong_or_malformed_input_finds_nothing() {
        let (codes, stored) = generate();
        let (other, _) = generate();
        assert_eq!(find(&other[0], &stored), None);
        let long = "a".repeat(200);
        let too_short = codes[0][..10].to_string();
        let extra = format!("{}a", codes[0]);
        for bad in [
            "",
            "-----",
            "uuuuu-uuuuu",
            "#####-#####",
            &long,
            &too_short,
            &extra,
        ] {
            assert_eq!(find(bad, &stored), None, "{bad:?}");
        }
        assert_eq!(find(&codes[0], &[]), None);
    }

    #[test]
    fn malformed_stored_entries_are_skipped() {
        let (codes, mut stored) = generate();
        stored.insert(0, "garbage".into());
        stored.insert(1, format!("zzzzzzzz:{}", "0".repeat(64)));
        stored.insert(2, String::new());
        assert_eq!(find(&codes[0], &stored), Some(3));
    }

    #[test]
    fn same_code_hashes_differently_under_each_salt() {
        let a = digest(&[0, 0, 0, 1], "0a1b2c3d4e");
        let b = digest(&[0, 0, 0, 2], "0a1b2c3d4e");
        assert_ne!(a, b);
    }
}
