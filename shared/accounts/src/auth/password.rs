//! Passwords: the policy a new password must meet (ASVS 2.1: length, not a known breached
//! password, not the account's email; no composition rules) and argon2id hashing at the OWASP
//! minimum cost (m = 19 MiB, t = 2, p = 1), stored as a PHC string that carries its own
//! parameters so a later cost increase can rehash on the next successful login.

use std::collections::HashSet;
use std::sync::OnceLock;

use anyhow::anyhow;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

/// Minimum length in characters (ASVS 2.1.1 asks for at least 12 only at level 3 for
/// single-factor; OWASP and NIST 800-63B accept 8, we ask for 10).
pub const MIN_LEN: usize = 10;
/// Maximum length in characters (ASVS 2.1.2 requires at least 64 to be allowed).
pub const MAX_LEN: usize = 128;
/// Byte cap, checked before any hashing: argon2 reads the whole input, so an unbounded password
/// would be a cheap way to make us burn CPU.
const MAX_BYTES: usize = 512;

pub const ARGON2_M_KIB: u32 = 19_456;
pub const ARGON2_T: u32 = 2;
pub const ARGON2_P: u32 = 1;

const SALT_LEN: usize = 16;

static COMMON_LIST: &str = include_str!("../../data/common-passwords.txt");

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_LIST
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()
    })
}

/// Checks a new password against the policy. The error is a message fit to show the user; it
/// never repeats the password.
pub fn check_policy(password: &str, email: Option<&str>) -> Result<(), &'static str> {
    if password.len() > MAX_BYTES {
        return Err("The password is too long (at most 128 characters).");
    }
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Err("The password is too short (at least 10 characters).");
    }
    if chars > MAX_LEN {
        return Err("The password is too long (at most 128 characters).");
    }
    let lower = password.to_lowercase();
    if common_passwords().contains(lower.as_str()) {
        return Err("This password is too common; choose another one.");
    }
    if let Some(email) = email {
        let email = email.trim().to_lowercase();
        let local = email.split('@').next().unwrap_or("");
        if lower == email || (!local.is_empty() && lower == local) {
            return Err("The password must not be your email address.");
        }
    }
    Ok(())
}

fn params() -> Params {
    Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).expect("constant argon2 params are valid")
}

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
}

/// Hashes a password with argon2id at the current parameters and a fresh 16-byte salt.
/// Returns the PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    if password.len() > MAX_BYTES {
        return Err(anyhow!("password longer than {MAX_BYTES} bytes refused"));
    }
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow!("argon2 salt: {e}"))?;
    let hash = hasher()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow!("argon2 hashing failed: {e}"))?;
    Ok(hash.to_string())
}

/// True when `password` matches the PHC string. Verification uses the parameters recorded in
/// the PHC string (so older hashes still verify) and compares in constant time. A malformed or
/// non-argon2 PHC string, or an oversized password, is simply a mismatch.
///
/// The argon2 memory (19 MiB at the current parameters) is a buffer kept for the next
/// verification ([`with_blocks`]), not allocated and freed each time: a warm function pays no
/// page faults for it, and its resident memory stays one buffer however many threads verify in
/// turn (freed, an allocation that size stays in the allocator's per-thread arena).
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_BYTES {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_bytes = [0u8; argon2::password_hash::Salt::MAX_LENGTH];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let hashed = with_blocks(blocks, |memory| {
        argon2
            .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, memory)
            .is_ok()
    });
    // `Output`'s equality is constant-time.
    hashed && argon2::password_hash::Output::new(&out).is_ok_and(|o| o == expected)
}

/// Buffers of argon2 memory kept between verifications (at most [`KEPT_BUFFERS`]).
static BLOCKS: std::sync::Mutex<Vec<Vec<argon2::Block>>> = std::sync::Mutex::new(Vec::new());
/// A function verifies one password at a time; tests verify a few at once.
const KEPT_BUFFERS: usize = 2;

/// Runs `f` with `count` blocks of argon2 memory: a kept buffer when one is free, else a new
/// one, kept afterwards unless [`KEPT_BUFFERS`] are. Argon2 writes every block before it reads
/// it, so a buffer needs no clearing between uses.
fn with_blocks<T>(count: usize, f: impl FnOnce(&mut [argon2::Block]) -> T) -> T {
    let kept = BLOCKS
        .lock()
        .map(|mut free| {
            free.iter()
                .position(|b| b.len() >= count)
                .map(|i| free.swap_remove(i))
        })
        .unwrap_or(None);
    let mut buffer = kept.unwrap_or_else(|| vec![argon2::Block::default(); count]);
    let result = f(&mut buffer[..count]);
    if let Ok(mut free) = BLOCKS.lock() {
        if free.len() < KEPT_BUFFERS {
            free.push(buffer);
        }
    }
    result
}

/// A PHC string at the current parameters whose salt and output are random bytes: verifying
/// against it costs exactly what verifying against a real hash costs, and no password matches
/// it (that would take finding a preimage of a random output). Built without hashing anything,
/// so no function pays an argon2 run for it (it used to be the hash of a random password: one
/// hash, 19 MiB, at a cold start or in the first failed login).
fn dummy_phc() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut salt = [0u8; SALT_LEN];
        let mut output = [0u8; 32];
        rand::rng().fill_bytes(&mut salt);
        rand::rng().fill_bytes(&mut output);
        let salt = SaltString::encode_b64(&salt).expect("16 bytes encode");
        let output = argon2::password_hash::Output::new(&output).expect("32 bytes are an output");
        format!("$argon2id$v=19$m={ARGON2_M_KIB},t={ARGON2_T},p={ARGON2_P}${salt}${output}")
    })
}

/// Runs one verification of the same cost as [`verify_password`] against a fixed dummy hash
/// and discards the result, so a login for an unknown email takes as long as a wrong password
/// (no account enumeration by timing).
pub fn verify_against_dummy(password: &str) {
    let _ = verify_password(password, dummy_phc());
}

/// True when the stored hash should be replaced by a fresh [`hash_password`] after a successful
/// login: another algorithm or version, parameters weaker than the current ones, or unreadable.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    if !matches!(
        Algorithm::try_from(parsed.algorithm),
        Ok(Algorithm::Argon2id)
    ) {
        return true;
    }
    if parsed.version != Some(Version::V0x13.into()) {
        return true;
    }
    let Ok(p) = Params::try_from(&parsed) else {
        return true;
    };
    p.m_cost() < ARGON2_M_KIB || p.t_cost() < ARGON2_T || p.p_cost() < ARGON2_P
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One hash shared by the tests that only need "some valid hash": argon2 at 19 MiB is slow.
    fn shared_hash() -> &'static str {
        static H: OnceLock<String> = OnceLock::new();
        H.get_or_init(|| hash_password("correct horse battery").unwrap())
    }

    #[test]
    fn round_trip_and_wrong_password() {
        let phc = shared_hash();
        assert!(verify_password("correct horse battery", phc));
        assert!(!verify_password("correct horse batterY", phc));
        assert!(!verify_password("", phc));
    }

    #[test]
    fn phc_string_carries_the_owasp_parameters() {
        let phc = shared_hash();
        assert!(
            phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "unexpected PHC prefix"
        );
        assert!(!phc.contains("correct"));
        assert!(!needs_rehash(phc));
    }

    #[test]
    fn salts_differ_between_hashes() {
        let other = hash_password("correct horse battery").unwrap();
        assert_ne!(other, shared_hash());
        assert!(verify_password("correct horse battery", &other));
    }

    #[test]
    fn malformed_phc_is_a_mismatch() {
        for bad in [
            "",
            "not a hash",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$",
            "$bcrypt$2b$10$abcdefghijklmnopqrstuv",
            "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
        ] {
            assert!(!verify_password("whatever1234", bad), "{bad:?} verified");
            assert!(needs_rehash(bad), "{bad:?} should need a rehash");
        }
    }

    #[test]
    fn oversized_passwords_are_refused_before_hashing() {
        let huge = "a".repeat(MAX_BYTES + 1);
        assert!(hash_password(&huge).is_err());
        assert!(!verify_password(&huge, shared_hash()));
        verify_against_dummy(&huge);
    }

    #[test]
    fn weaker_parameters_need_a_rehash() {
        // Cheap hashes at weaker settings: only the parameters are inspected.
        let weak = |m, t, p, alg| {
            let params = Params::new(m, t, p, None).unwrap();
            let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
            Argon2::new(alg, Version::V0x13, params)
                .hash_password(b"x", &salt)
                .unwrap()
                .to_string()
        };
        assert!(needs_rehash(&weak(8192, 2, 1, Algorithm::Argon2id)));
        assert!(needs_rehash(&weak(19_456, 1, 1, Algorithm::Argon2id)));
        assert!(needs_rehash(&weak(19_456, 2, 1, Algorithm::Argon2i)));
        let old_version = "$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$\
                           aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(needs_rehash(old_version));
        // Stronger than current is fine.
        let strong = "$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHRzYWx0$\
                      aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(!needs_rehash(strong));
    }

    #[test]
    fn hashes_at_older_parameters_still_verify() {
        let params = Params::new(8192, 1, 1, None).unwrap();
        let salt = SaltString::encode_b64(&[9u8; 16]).unwrap();
        let old = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"an older password", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password("an older password", &old));
        assert!(!verify_password("another password", &old));
    }

    #[test]
    fn verification_matches_the_reference_and_reuses_its_memory() {
        // The argon2 crate's own verification is the reference.
        use argon2::password_hash::PasswordVerifier;
        let reference = |pw: &str, phc: &str| {
            PasswordHash::new(phc)
                .map(|h| hasher().verify_password(pw.as_bytes(), &h).is_ok())
                .unwrap_or(false)
        };
        let older = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 1, 1, Some(24)).unwrap(),
        )
        .hash_password(b"older", &SaltString::encode_b64(&[3u8; 16]).unwrap())
        .unwrap()
        .to_string();
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x10,
            Params::new(8192, 1, 1, None).unwrap(),
        )
        .hash_password(b"legacy", &SaltString::encode_b64(&[4u8; 16]).unwrap())
        .unwrap()
        .to_string();
        let cases = [
            ("correct horse battery", shared_hash()),
            ("Correct horse battery", shared_hash()),
            ("older", older.as_str()),
            ("older!", older.as_str()),
            ("legacy", argon2i.as_str()),
            ("legacy", "$argon2id$v=19$m=19456,t=2,p=1$bm90LWJhc2U2NA"),
            ("legacy", "not a phc string"),
        ];
        for _ in 0..2 {
            for (pw, phc) in cases {
                assert_eq!(verify_password(pw, phc), reference(pw, phc), "{pw} / {phc}");
            }
        }
        assert!(verify_password("older", &older) && verify_password("legacy", &argon2i));
        assert!(verify_password("correct horse battery", shared_hash()));
        // One buffer serves verification after verification.
        assert!(BLOCKS.lock().unwrap().len() <= KEPT_BUFFERS);
        let big = BLOCKS
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b.len() >= ARGON2_M_KIB as usize)
            .count();
        assert!(big >= 1, "the buffer at the current cost is kept");
    }

    #[test]
    fn dummy_verification_runs_and_never_matches() {
        verify_against_dummy("correct horse battery");
        verify_against_dummy("");
        assert!(!verify_password("correct horse battery", dummy_phc()));
        assert!(dummy_phc().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        // A well-formed PHC string at the current parameters: verifying runs argon2 in full.
        let parsed = PasswordHash::new(dummy_phc()).expect("a PHC string");
        assert_eq!(parsed.hash.map(|h| h.len()), Some(32));
        assert!(!needs_rehash(dummy_phc()));
    }

    #[test]
    fn policy_length_limits_in_characters() {
        assert_eq!(
            check_policy("short", None),
            Err("The password is too short (at least 10 characters).")
        );
        assert!(check_policy("nine char", None).is_err());
        assert!(check_policy("ten chars!", None).is_ok());
        // Ten characters but more bytes: counted as characters.
        assert!(check_policy("ăâîșțăâîșț", None).is_ok());
        assert!(check_policy(&"v7".repeat(MAX_LEN / 2), None).is_ok());
        assert!(check_policy(&"v7".repeat(MAX_LEN / 2 + 1), None).is_err());
        // 128 four-byte characters are exactly the byte cap; one more is refused.
        assert!(check_policy(&"😀".repeat(MAX_LEN), None).is_ok());
        assert!(check_policy(&"😀".repeat(MAX_LEN + 1), None).is_err());
        assert!(check_policy(&"a".repeat(100_000), None).is_err());
        // Spaces are allowed and not collapsed.
        assert!(check_policy("a long passphrase with spaces", None).is_ok());
    }

    #[test]
    fn policy_refuses_common_passwords_in_any_case() {
        for p in [
            "1234567890",
            "QWERTYUIOP",
            "Password123",
            "1q2w3e4r5t",
            "iloveyou123",
        ] {
            assert_eq!(
                check_policy(p, None),
                Err("This password is too common; choose another one."),
                "{p} accepted"
            );
        }
    }

    #[test]
    fn policy_refuses_the_email_and_its_local_part() {
        let email = Some("Ana.Popescu@example.com");
        assert!(check_policy("ana.popescu@example.com", email).is_err());
        assert!(check_policy("ANA.POPESCU", email).is_err());
        assert!(check_policy("ana.popescu-2026", email).is_ok());
        assert!(check_policy("ana.popescu", None).is_ok());
        // A degenerate email without a local part does not block everything.
        assert!(check_policy("something long", Some("@example.com")).is_ok());
    }

    #[test]
    fn bundled_list_is_well_formed() {
        let set = common_passwords();
        assert!(set.len() >= 300, "only {} entries", set.len());
        for p in set {
            assert!(
                p.chars().count() >= MIN_LEN,
                "{p} is shorter than the minimum"
            );
            assert_eq!(*p, p.to_lowercase(), "{p} is not lowercase");
        }
        let lines = COMMON_LIST.lines().filter(|l| !l.trim().is_empty()).count();
        assert_eq!(lines, set.len(), "duplicates in the list");
    }
}
