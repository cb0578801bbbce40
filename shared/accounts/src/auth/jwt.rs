//! Short-lived access tokens: compact JWS signed with Ed25519 (`"alg":"EdDSA"`, RFC 8037), written
//! by hand so that exactly one algorithm is ever accepted (no `alg: none`, no HS256 with a public
//! key as the secret, no algorithm confusion) and every check is visible.
//!
//! Only the `auth` function can sign: it alone reads the private key ([`TokenSigner`], the SSM
//! SecureString named by `JWT_SIGNING_KEY_PARAMETER`, `{"kid":"k2","private_key":"<base64 of the
//! 32-byte Ed25519 seed>"}`). Every function, `auth` included, verifies with the public keys
//! ([`VerifyingKeys`], the parameter named by `JWT_PUBLIC_KEYS_PARAMETER`,
//! `{"keys":{"k1":"<base64, 32 bytes>","k2":"…"}}`), picked by the token's `kid`; several are
//! accepted at once. Rotation (docs/auth.md): publish the new public key beside the old one and
//! deploy, switch the private key to the new `kid` and deploy, then drop the old public key once
//! [`ACCESS_TOKEN_TTL_SECS`] has passed.

use std::collections::HashMap;
use std::fmt;

use anyhow::{anyhow, bail};
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Access-token lifetime: 15 minutes, the most we allow (revocation takes effect at refresh, and
/// at once for writes: see [`AccessClaims::cep`]).
pub const ACCESS_TOKEN_TTL_SECS: i64 = 900;
pub const ISSUER: &str = "lead-platform";

const ALG: &str = "EdDSA";
const ACCESS_TYPE: &str = "access";
const MAX_TOKEN_BYTES: usize = 4096;
const SEED_BYTES: usize = 32;
const PUBLIC_KEY_BYTES: usize = 32;
const SIGNATURE_BYTES: usize = 64;
const MAX_KID_CHARS: usize = 64;
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
    /// The user's credential epoch when the token was issued. Every write compares it with the
    /// user's current epoch, so a password reset or change, a role change, logout-all or an MFA
    /// change ends the write access of every token issued before it at once.
    pub cep: i64,
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

fn check_kid(kid: &str) -> anyhow::Result<()> {
    let ok = !kid.is_empty()
        && kid.len() <= MAX_KID_CHARS
        && kid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!("token keys: a key id is not 1 to {MAX_KID_CHARS} of A-Z a-z 0-9 - _ .");
    }
    Ok(())
}

/// serde_json's messages can quote the offending value; report only where it is.
fn parse_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> anyhow::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        anyhow!(
            "{what}: not the expected JSON shape (line {}, column {})",
            e.line(),
            e.column()
        )
    })
}

// ------------------------------------------------------------------ signing (auth only)

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrivateKeyFile {
    kid: String,
    private_key: String,
}

/// The private key that signs new access tokens, and its key id. Only the `auth` function has
/// one: no other function's configuration names the parameter, nor may its role read it.
pub struct TokenSigner {
    kid: String,
    pair: Ed25519KeyPair,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.kid)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// A new key pair, as the two parameters hold it (`devstack token-key`, the local seed).
pub struct NewKeyPair {
    /// The value of the private-key SecureString: `{"kid":…,"private_key":…}`.
    pub private_json: String,
    /// The public key, base64, to list under its `kid` in the public-keys parameter.
    pub public_key: String,
}

impl TokenSigner {
    /// Parses the private-key parameter. Errors never echo key material.
    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        let file: PrivateKeyFile = parse_json("signing key", text)?;
        check_kid(&file.kid)?;
        let seed = STANDARD
            .decode(file.private_key.trim())
            .map_err(|_| anyhow!("signing key {:?}: not valid base64", file.kid))?;
        if seed.len() != SEED_BYTES {
            bail!(
                "signing key {:?}: an Ed25519 private key is {SEED_BYTES} bytes",
                file.kid
            );
        }
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| anyhow!("signing key {:?}: not an Ed25519 private key", file.kid))?;
        Ok(Self {
            kid: file.kid,
            pair,
        })
    }

    /// A fresh key pair under `kid`, from the operating system's random source.
    pub fn generate(kid: &str) -> anyhow::Result<NewKeyPair> {
        check_kid(kid)?;
        let mut seed = [0u8; SEED_BYTES];
        aws_lc_rs::rand::fill(&mut seed).map_err(|_| anyhow!("no random bytes"))?;
        let private_json =
            serde_json::json!({ "kid": kid, "private_key": STANDARD.encode(seed) }).to_string();
        let signer = Self::from_json(&private_json)?;
        Ok(NewKeyPair {
            public_key: signer.public_key(),
            private_json,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key, base64: what the public-keys parameter lists under [`Self::kid`].
    pub fn public_key(&self) -> String {
        STANDARD.encode(self.pair.public_key().as_ref())
    }

    /// Signs the claims. The claims are taken as given: the caller sets `cep` (the user's
    /// epoch as read), `iat`, `exp` (at most `iat + ACCESS_TOKEN_TTL_SECS`), `iss` = [`ISSUER`],
    /// `typ` = "access".
    pub fn issue(&self, claims: &AccessClaims) -> String {
        let header = serde_json::json!({ "alg": ALG, "typ": "JWT", "kid": self.kid });
        let header = serde_json::to_vec(&header).expect("header serializes");
        let payload = serde_json::to_vec(claims).expect("claims serialize");
        let mut token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = self.pair.sign(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        token
    }
}

// ------------------------------------------------------------------ verifying (every function)

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicKeysFile {
    keys: HashMap<String, String>,
}

/// What an API function (every one but auth) reads from SSM on its first invocation, in one
/// request: the blind-index key and the keys tokens are verified with.
pub async fn read_api_keys(
    ssm: &shared_core::aws::SsmClient,
    blind_index_key_parameter: &str,
    public_keys_parameter: &str,
) -> anyhow::Result<(shared_core::blind_index::BlindIndexKey, VerifyingKeys)> {
    let [key, public] =
        shared_core::secrets::parameters(ssm, [blind_index_key_parameter, public_keys_parameter])
            .await?;
    Ok((
        shared_core::secrets::blind_index_key_from(blind_index_key_parameter, &key)?,
        VerifyingKeys::from_json(&public)?,
    ))
}

/// The public keys tokens are verified with, by key id. Holding them allows verifying only.
#[derive(Clone, Debug)]
pub struct VerifyingKeys {
    keys: HashMap<String, [u8; PUBLIC_KEY_BYTES]>,
}

impl VerifyingKeys {
    /// Parses the public-keys parameter: at least one key, each 32 bytes of base64.
    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        let file: PublicKeysFile = parse_json("public keys", text)?;
        if file.keys.is_empty() {
            bail!("public keys: none listed");
        }
        let mut keys = HashMap::with_capacity(file.keys.len());
        for (kid, b64) in file.keys {
            check_kid(&kid)?;
            let bytes = STANDARD
                .decode(b64.trim())
                .map_err(|_| anyhow!("public keys: key {kid:?} is not valid base64"))?;
            let key: [u8; PUBLIC_KEY_BYTES] = bytes.try_into().map_err(|_| {
                anyhow!("public keys: key {kid:?} is not {PUBLIC_KEY_BYTES} bytes (raw Ed25519)")
            })?;
            keys.insert(kid, key);
        }
        Ok(Self { keys })
    }

    /// The listed key ids, sorted.
    pub fn kids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }

    /// Fails unless `signer`'s public key is listed under its key id: `auth` refuses to start
    /// rather than issue tokens that no function accepts.
    pub fn require_published(&self, signer: &TokenSigner) -> anyhow::Result<()> {
        let published = self
            .keys
            .get(signer.kid())
            .is_some_and(|k| signer.pair.public_key().as_ref() == k.as_slice());
        if !published {
            bail!(
                "the public key of signing key {:?} is not listed in the public keys",
                signer.kid()
            );
        }
        Ok(())
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
        if sig.len() != SIGNATURE_BYTES {
            return Err(TokenError::BadSignature);
        }
        let signing_input = &token[..h64.len() + 1 + p64.len()];
        UnparsedPublicKey::new(&signature::ED25519, key)
            .verify(signing_input.as_bytes(), &sig)
            .map_err(|_| TokenError::BadSignature)?;
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

    fn signer(kid: &str, byte: u8) -> TokenSigner {
        TokenSigner::from_json(
            &json!({ "kid": kid, "private_key": STANDARD.encode([byte; 32]) }).to_string(),
        )
        .unwrap()
    }

    fn public(signers: &[&TokenSigner]) -> VerifyingKeys {
        let keys: serde_json::Map<String, Value> = signers
            .iter()
            .map(|s| (s.kid().to_string(), s.public_key().into()))
            .collect();
        VerifyingKeys::from_json(&json!({ "keys": keys }).to_string()).unwrap()
    }

    fn k1() -> TokenSigner {
        signer("k1", 1)
    }

    fn v1() -> VerifyingKeys {
        public(&[&k1()])
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            sub: "u-1".into(),
            tid: "t-1".into(),
            role: "admin".into(),
            sid: "s-1".into(),
            cep: 3,
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

    /// A token of the scheme this replaced: HS256 under a shared secret.
    fn hs256(secret: &[u8], kid: &str, c: &AccessClaims) -> String {
        use hmac::{Hmac, Mac};
        let input = format!(
            "{}.{}",
            b64json(&json!({"alg": "HS256", "typ": "JWT", "kid": kid})),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).unwrap())
        );
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{input}.{sig}")
    }

    #[test]
    fn round_trip() {
        let t = k1().issue(&claims());
        assert_eq!(t.split('.').count(), 3);
        assert_eq!(v1().verify(&t, NOW + 10), Ok(claims()));
        assert_eq!(header_of(&t), json!({"alg":"EdDSA","typ":"JWT","kid":"k1"}));
        // Ed25519 is deterministic: the same claims, the same token.
        assert_eq!(t, k1().issue(&claims()));
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
            v1().verify(&swapped_payload, NOW),
            Err(TokenError::BadSignature)
        );
        let first = if parts[2].starts_with('A') { "B" } else { "A" };
        let bad_sig = format!("{}.{}.{first}{}", parts[0], parts[1], &parts[2][1..]);
        assert_eq!(v1().verify(&bad_sig, NOW), Err(TokenError::BadSignature));
        let short_sig = format!("{}.{}.AAAA", parts[0], parts[1]);
        assert_eq!(v1().verify(&short_sig, NOW), Err(TokenError::BadSignature));
        // A key that is not the one published under this key id: any key but auth's.
        let forged = signer("k1", 2).issue(&claims());
        assert_eq!(v1().verify(&forged, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn alg_none_and_others_are_refused() {
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
        for alg in [
            "none", "None", "HS256", "HS512", "RS256", "ES256", "eddsa", "Ed25519",
        ] {
            let h = b64json(&json!({"alg": alg, "typ": "JWT", "kid": "k1"}));
            for t in [format!("{h}.{p}."), format!("{h}.{p}.AAAA")] {
                let r = v1().verify(&t, NOW);
                assert_eq!(r, Err(TokenError::UnsupportedAlgorithm), "{alg}");
            }
        }
    }

    #[test]
    fn tokens_of_the_old_hs256_scheme_are_refused() {
        // Under the secret the five functions used to share, and under the public key itself
        // taken as an HMAC secret (the classic algorithm confusion).
        let public_key = STANDARD.decode(k1().public_key()).unwrap();
        for secret in [[7u8; 32].as_slice(), public_key.as_slice()] {
            let t = hs256(secret, "k1", &claims());
            assert_eq!(v1().verify(&t, NOW), Err(TokenError::UnsupportedAlgorithm));
        }
    }

    #[test]
    fn unknown_or_missing_kid_is_refused() {
        let other = signer("k9", 1).issue(&claims());
        assert_eq!(v1().verify(&other, NOW), Err(TokenError::UnknownKey));
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
        let no_kid = format!("{}.{p}.AAAA", b64json(&json!({"alg": "EdDSA"})));
        assert_eq!(v1().verify(&no_kid, NOW), Err(TokenError::UnknownKey));
    }

    #[test]
    fn time_boundaries() {
        let t = k1().issue(&claims());
        let exp = claims().exp;
        assert!(v1().verify(&t, exp - 1).is_ok());
        assert_eq!(v1().verify(&t, exp), Err(TokenError::Expired));
        assert_eq!(v1().verify(&t, exp + 1), Err(TokenError::Expired));
        assert!(v1().verify(&t, NOW - CLOCK_SKEW_SECS).is_ok());
        let early = v1().verify(&t, NOW - CLOCK_SKEW_SECS - 1);
        assert_eq!(early, Err(TokenError::IssuedInFuture));
    }

    #[test]
    fn issuer_and_type_are_checked() {
        let k = k1();
        let mut c = claims();
        c.iss = "someone-else".into();
        assert_eq!(v1().verify(&k.issue(&c), NOW), Err(TokenError::WrongIssuer));
        let mut c = claims();
        c.typ = "refresh".into();
        assert_eq!(v1().verify(&k.issue(&c), NOW), Err(TokenError::WrongType));
    }

    #[test]
    fn malformed_and_oversized_tokens() {
        let t = k1().issue(&claims());
        let v = v1();
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
            assert!(v.verify(bad, NOW).is_err(), "{bad:?} accepted");
        }
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(v.verify(&huge, NOW), Err(TokenError::TooLong));
        // The payload is not even decoded before the signature checks out.
        let h = b64json(&json!({"alg": "EdDSA", "kid": "k1"}));
        let sig = URL_SAFE_NO_PAD.encode([0u8; 64]);
        let r = v.verify(&format!("{h}.%%%.{sig}"), NOW);
        assert_eq!(r, Err(TokenError::BadSignature));
        // A correctly signed payload that is not our claims shape (a token without `cep`, say).
        let mut old_shape = serde_json::to_value(claims()).unwrap();
        old_shape.as_object_mut().unwrap().remove("cep");
        for payload in [json!({"sub": "u-1"}), old_shape] {
            let input = format!("{h}.{}", b64json(&payload));
            let sig = URL_SAFE_NO_PAD.encode(k1().pair.sign(input.as_bytes()).as_ref());
            let r = v.verify(&format!("{input}.{sig}"), NOW);
            assert_eq!(r, Err(TokenError::Malformed));
        }
    }

    #[test]
    fn rotation_accepts_every_listed_key() {
        let (old, new) = (signer("k1", 1), signer("k2", 2));
        let old_token = old.issue(&claims());
        // Step 1: the new public key is published beside the old one.
        let during = public(&[&old, &new]);
        assert!(during.verify(&old_token, NOW).is_ok());
        // Step 2: auth signs with the new key; both verify while both are listed.
        let new_token = new.issue(&claims());
        assert_eq!(header_of(&new_token)["kid"], "k2");
        assert!(during.verify(&new_token, NOW).is_ok());
        assert!(during.verify(&old_token, NOW).is_ok());
        // Step 3: the old key is dropped; its tokens stop verifying.
        let after = public(&[&new]);
        assert_eq!(after.verify(&old_token, NOW), Err(TokenError::UnknownKey));
        assert!(after.verify(&new_token, NOW).is_ok());
        assert_eq!(after.kids(), ["k2"]);
    }

    #[test]
    fn auth_refuses_to_sign_with_an_unpublished_key() {
        let (k1, k2) = (signer("k1", 1), signer("k2", 2));
        assert!(public(&[&k1, &k2]).require_published(&k2).is_ok());
        assert!(public(&[&k1]).require_published(&k2).is_err());
        // Listed under its kid, but another key: refused too.
        let impostor = signer("k2", 3);
        assert!(public(&[&k1, &impostor]).require_published(&k2).is_err());
    }

    #[test]
    fn generated_key_pairs_are_fresh_and_round_trip() {
        let a = TokenSigner::generate("k7").unwrap();
        let b = TokenSigner::generate("k7").unwrap();
        assert_ne!(a.public_key, b.public_key);
        assert_ne!(a.private_json, b.private_json);
        let s = TokenSigner::from_json(&a.private_json).unwrap();
        assert_eq!(s.public_key(), a.public_key);
        let v = VerifyingKeys::from_json(&json!({"keys": {"k7": a.public_key}}).to_string());
        assert_eq!(v.unwrap().verify(&s.issue(&claims()), NOW), Ok(claims()));
        assert!(TokenSigner::generate("").is_err());
        assert!(TokenSigner::generate("k 1").is_err());
    }

    #[test]
    fn key_files_are_validated_without_echoing_keys() {
        let seed31 = STANDARD.encode([1u8; 31]);
        let secretish = "s3cr3t!!s3cr3t!!s3cr3t!!s3cr3t!!s3cr3t!!";
        for (text, secret) in [
            (json!({"kid": "k1", "private_key": seed31}), seed31.as_str()),
            (json!({"kid": "k1", "private_key": secretish}), "s3cr3t"),
            (
                json!({"kid": "", "private_key": STANDARD.encode([1u8; 32])}),
                "AQEB",
            ),
            (
                json!({"kid": "k1", "private_key": STANDARD.encode([1u8; 32]), "x": 1}),
                "AQEB",
            ),
            (
                json!({"kid": "k1", "private_key": 12_345_678_901_234_567_u64}),
                "1234567",
            ),
        ] {
            let err = format!(
                "{:#}",
                TokenSigner::from_json(&text.to_string()).unwrap_err()
            );
            assert!(!err.contains(secret), "{err}");
        }
        assert!(TokenSigner::from_json("not json").is_err());
        // The HS256 keys file of the old scheme is not a private key.
        let old = json!({"current": "k1", "keys": {"k1": STANDARD.encode([1u8; 32])}});
        assert!(TokenSigner::from_json(&old.to_string()).is_err());
        assert!(VerifyingKeys::from_json(&old.to_string()).is_err());
        for (text, secret) in [
            (json!({"keys": {}}), "{}"),
            (json!({"keys": {"k1": seed31}}), seed31.as_str()),
            (json!({"keys": {"k1": secretish}}), "s3cr3t"),
            (json!({"keys": {"": STANDARD.encode([1u8; 32])}}), "AQEB"),
            (json!({"keys": {"k1": STANDARD.encode([1u8; 44])}}), "AQEB"),
        ] {
            let err = format!(
                "{:#}",
                VerifyingKeys::from_json(&text.to_string()).unwrap_err()
            );
            assert!(!err.contains(secret) || secret == "{}", "{err}");
        }
    }

    #[test]
    fn debug_redacts_the_private_key() {
        let s = k1();
        let dbg = format!("{s:?}");
        assert!(dbg.contains("k1") && dbg.contains("redacted"), "{dbg}");
        assert!(!dbg.contains(&STANDARD.encode([1u8; 32])));
        assert!(!dbg.contains("1, 1, 1"));
    }
}
