//! API keys: long-lived, tenant-scoped credentials for a tenant's own tools, presented as
//! `Authorization: Bearer lmk_live_…` to the same extractor that reads access tokens
//! ([`crate::auth::caller::authenticate`]). Everything here is pure; the store is
//! [`crate::api_keys`]. See `docs/auth.md`, "API keys".
//!
//! A key is `lmk_live_<tenant>.<creator>.<key id>.<secret>`:
//! - the fixed prefix lets secret scanners recognise a leaked key;
//! - the public part names the item to read (tenant, key id) and the member the key acts for, so
//!   one consistent `BatchGetItem` reads the key, its creator and the tenant together;
//! - the secret is 256 random bits. Only SHA-256 of the whole key is stored: with 256 bits of
//!   entropy nothing can be guessed, so a slow password hash (argon2) would only cost time on
//!   every request, and a keyless hash needs no server secret in every function.

use shared_core::domain::{ApiKeyId, TenantId, UserId};
use time::{Duration, OffsetDateTime};

use super::permissions::{allows, Permission, Role};
use super::tokens;

/// What every key starts with (`lmk`: lead management key; `live`: a key of a deployed stage).
pub const PREFIX: &str = "lmk_live_";

/// A key's lifetime when the request names none.
pub const DEFAULT_TTL_DAYS: i64 = 90;

/// The longest lifetime a key can be given.
pub const MAX_TTL_DAYS: i64 = 365;

/// The most keys a tenant holds that are neither revoked nor expired: a key is a credential to
/// review, and a tenant's listing is one Query.
pub const MAX_LIVE_KEYS: usize = 100;

/// `last_used_at` is written at most once per this many seconds per key (a conditional update
/// only when the read value is older), so a busy key does not cost a write per request.
pub const LAST_USED_GRANULARITY_SECS: i64 = 60;

/// The longest key accepted (the ids are at most 64 characters each, the secret 43).
const MAX_KEY_BYTES: usize = 300;

/// The parts of a presented key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedKey {
    pub tenant_id: TenantId,
    pub creator: UserId,
    pub key_id: ApiKeyId,
    /// SHA-256 (hex) of the whole key as presented: what is compared with the stored hash.
    pub hash: String,
}

/// Whether a bearer token is meant as an API key (and not an access token).
pub fn is_api_key(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// Splits a key into its public parts and hashes it. `None`: not a well-formed key.
pub fn parse(token: &str) -> Option<PresentedKey> {
    if token.len() > MAX_KEY_BYTES {
        return None;
    }
    let rest = token.strip_prefix(PREFIX)?;
    let mut parts = rest.split('.');
    let (t, u, k, secret) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || secret.len() != 43 {
        return None;
    }
    Some(PresentedKey {
        tenant_id: TenantId::parse(t).ok()?,
        creator: UserId::parse(u).ok()?,
        key_id: ApiKeyId::parse(k).ok()?,
        hash: hash(token),
    })
}

/// A new key for `tenant`, acting for `creator`: the key (shown once) and its hash (stored).
pub fn issue(tenant: &TenantId, creator: &UserId, key_id: &ApiKeyId) -> (String, String) {
    let key = format!(
        "{PREFIX}{tenant}.{creator}.{key_id}.{}",
        tokens::new_secret()
    );
    let h = hash(&key);
    (key, h)
}

/// What is stored instead of the key: lowercase hex of SHA-256 of the whole key.
pub fn hash(key: &str) -> String {
    tokens::hash_secret(key)
}

/// A stored key, as listed (never with its secret or hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub key_id: ApiKeyId,
    pub tenant_id: TenantId,
    pub name: String,
    pub role: Role,
    pub created_by: UserId,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// What authenticating with a key reads, in one request: the key with its stored hash, the
/// creator's current role (`None`: no longer a member) and whether the workspace is closed.
#[derive(Debug, Clone)]
pub struct KeyForAuth {
    pub key: ApiKey,
    pub secret_hash: String,
    pub creator_role: Option<Role>,
    pub tenant_closed: bool,
}

/// Why a presented key is refused (all answer the same 401; the reason goes to the log only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    WrongSecret,
    Revoked,
    Expired,
    CreatorGone,
    CreatorDemoted,
    TenantClosed,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown",
            Refusal::WrongSecret => "wrong_secret",
            Refusal::Revoked => "revoked",
            Refusal::Expired => "expired",
            Refusal::CreatorGone => "creator_removed",
            Refusal::CreatorDemoted => "creator_role_below_key",
            Refusal::TenantClosed => "tenant_closed",
        }
    }
}

/// Whether a presented key, as read, is usable at `now`: the key exists under the tenant and
/// creator it names, its hash matches in constant time, it is neither revoked nor expired, its
/// creator is still a member whose role covers the key's, and the workspace is not closed.
pub fn check(
    presented: &PresentedKey,
    found: Option<KeyForAuth>,
    now: OffsetDateTime,
) -> Result<ApiKey, Refusal> {
    let found = found.ok_or(Refusal::Unknown)?;
    // The hash first, in constant time: nothing about the key is told before it matches.
    if !tokens::constant_time_eq(&found.secret_hash, &presented.hash) {
        return Err(Refusal::WrongSecret);
    }
    if found.key.created_by != presented.creator || found.key.tenant_id != presented.tenant_id {
        return Err(Refusal::Unknown);
    }
    if found.key.revoked_at.is_some() {
        return Err(Refusal::Revoked);
    }
    if now >= found.key.expires_at {
        return Err(Refusal::Expired);
    }
    if found.tenant_closed {
        return Err(Refusal::TenantClosed);
    }
    match found.creator_role {
        None => Err(Refusal::CreatorGone),
        Some(r) if !role_within(found.key.role, r) => Err(Refusal::CreatorDemoted),
        Some(_) => Ok(found.key),
    }
}

/// Whether every permission of `key` is one of `holder`'s: a key's role is at most its
/// creator's (equal allowed).
pub const fn role_within(key: Role, holder: Role) -> bool {
    let mut i = 0;
    while i < Permission::ALL.len() {
        let p = Permission::ALL[i];
        if allows(key, p) && !allows(holder, p) {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether `last_used_at` should be written at `now` (at most once per
/// [`LAST_USED_GRANULARITY_SECS`]).
pub fn should_touch(last_used_at: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    last_used_at.is_none_or(|at| now - at >= Duration::seconds(LAST_USED_GRANULARITY_SECS))
}

/// The expiry of a key created at `now`: `expires_at` or `expires_in_days` (not both), by
/// default [`DEFAULT_TTL_DAYS`], never past [`MAX_TTL_DAYS`] nor in the past. `Err`: a message
/// for the field.
pub fn expiry(
    now: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
    expires_in_days: Option<i64>,
) -> Result<OffsetDateTime, &'static str> {
    let max = now + Duration::days(MAX_TTL_DAYS);
    match (expires_at, expires_in_days) {
        (Some(_), Some(_)) => Err("give expires_at or expires_in_days, not both"),
        (None, None) => Ok(now + Duration::days(DEFAULT_TTL_DAYS)),
        (None, Some(d)) if (1..=MAX_TTL_DAYS).contains(&d) => Ok(now + Duration::days(d)),
        (None, Some(_)) => Err("must be 1 to 365 days"),
        (Some(at), None) if at > now && at <= max => Ok(at),
        (Some(_), None) => Err("must be in the future and at most 365 days away"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-01 12:00 UTC);

    fn ids() -> (TenantId, UserId, ApiKeyId) {
        (
            TenantId::parse("t-acme").unwrap(),
            UserId::parse("u-owner").unwrap(),
            ApiKeyId::parse("ak-01").unwrap(),
        )
    }

    fn stored(role: Role) -> (String, KeyForAuth) {
        let (t, u, k) = ids();
        let (key, h) = issue(&t, &u, &k);
        (
            key,
            KeyForAuth {
                key: ApiKey {
                    key_id: k,
                    tenant_id: t,
                    name: "zapier".into(),
                    role,
                    created_by: u,
                    created_at: NOW - Duration::days(1),
                    expires_at: NOW + Duration::days(89),
                    last_used_at: None,
                    revoked_at: None,
                },
                secret_hash: h,
                creator_role: Some(Role::Owner),
                tenant_closed: false,
            },
        )
    }

    #[test]
    fn an_issued_key_parses_back_to_its_parts_and_hash() {
        let (t, u, k) = ids();
        let (key, h) = issue(&t, &u, &k);
        assert!(key.starts_with("lmk_live_t-acme.u-owner.ak-01."));
        assert!(is_api_key(&key));
        assert!(!key.contains(&h), "the stored hash is not the secret");
        let p = parse(&key).unwrap();
        assert_eq!(
            (&p.tenant_id, &p.creator, &p.key_id, &p.hash),
            (&t, &u, &k, &h)
        );
        let (other, _) = issue(&t, &u, &k);
        assert_ne!(other, key, "every key has its own secret");
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let (t, u, k) = ids();
        let (key, _) = issue(&t, &u, &k);
        for bad in [
            "lmk_live_".to_string(),
            key.replace("lmk_live_", "lmk_test_"),
            format!("{key}.x"),
            key[..key.len() - 1].to_string(),
            key.replace("t-acme", "T#ACME"),
            format!("{key}{}", "a".repeat(300)),
        ] {
            assert!(parse(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_live_key_passes() {
        let (key, found) = stored(Role::Member);
        let got = check(&parse(&key).unwrap(), Some(found), NOW).unwrap();
        assert_eq!(got.role, Role::Member);
    }

    #[test]
    fn every_reason_to_refuse() {
        let (key, found) = stored(Role::Admin);
        let p = parse(&key).unwrap();
        assert_eq!(check(&p, None, NOW).unwrap_err(), Refusal::Unknown);

        let mut tampered = key.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        let tp = parse(&tampered).unwrap();
        assert_eq!(
            check(&tp, Some(found.clone()), NOW).unwrap_err(),
            Refusal::WrongSecret
        );

        let mut f = found.clone();
        f.key.revoked_at = Some(NOW);
        assert_eq!(check(&p, Some(f), NOW).unwrap_err(), Refusal::Revoked);
        assert_eq!(
            check(&p, Some(found.clone()), found.key.expires_at).unwrap_err(),
            Refusal::Expired
        );
        let mut f = found.clone();
        f.tenant_closed = true;
        assert_eq!(check(&p, Some(f), NOW).unwrap_err(), Refusal::TenantClosed);
        let mut f = found.clone();
        f.creator_role = None;
        assert_eq!(check(&p, Some(f), NOW).unwrap_err(), Refusal::CreatorGone);
        let mut f = found;
        f.creator_role = Some(Role::Member);
        assert_eq!(
            check(&p, Some(f), NOW).unwrap_err(),
            Refusal::CreatorDemoted
        );
    }

    #[test]
    fn a_key_role_is_at_most_the_creators() {
        assert!(role_within(Role::Admin, Role::Owner));
        assert!(role_within(Role::Admin, Role::Admin));
        assert!(role_within(Role::Viewer, Role::Member));
        assert!(!role_within(Role::Owner, Role::Admin));
        assert!(!role_within(Role::Billing, Role::Admin));
        assert!(!role_within(Role::Member, Role::Viewer));
    }

    #[test]
    fn last_used_is_written_at_most_once_a_minute() {
        assert!(should_touch(None, NOW));
        assert!(!should_touch(Some(NOW - Duration::seconds(59)), NOW));
        assert!(should_touch(Some(NOW - Duration::seconds(60)), NOW));
    }

    #[test]
    fn expiry_defaults_and_bounds() {
        assert_eq!(expiry(NOW, None, None).unwrap(), NOW + Duration::days(90));
        assert_eq!(expiry(NOW, None, Some(7)).unwrap(), NOW + Duration::days(7));
        assert!(expiry(NOW, None, Some(0)).is_err());
        assert!(expiry(NOW, None, Some(366)).is_err());
        let at = NOW + Duration::days(365);
        assert_eq!(expiry(NOW, Some(at), None).unwrap(), at);
        assert!(expiry(NOW, Some(at + Duration::seconds(1)), None).is_err());
        assert!(expiry(NOW, Some(NOW), None).is_err());
        assert!(expiry(NOW, Some(at), Some(3)).is_err());
    }
}
