//! Keyed hashes (HMAC-SHA256 under a secret key kept in SSM) that let us find a person's records
//! without storing anything searchable in clear: the email's blind index finds every lead of one
//! person across tenants for a data-subject request, without a scan; an IP's hash keys the rate
//! limiter without storing the IP.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

use crate::domain::{Email, LeadId, Phone, TenantId};

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct BlindIndexKey(Vec<u8>);

impl BlindIndexKey {
    pub const MIN_LEN: usize = 32;

    pub fn new(bytes: Vec<u8>) -> Result<Self, &'static str> {
        if bytes.len() < Self::MIN_LEN {
            return Err("the blind-index key must be at least 32 bytes");
        }
        Ok(Self(bytes))
    }

    fn mac(&self, domain: &str, parts: &[&str]) -> [u8; 32] {
        // The domain tag keeps hashes of different kinds from ever colliding; the length
        // prefixes keep ("ab","c") and ("a","bc") apart.
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(domain.as_bytes());
        for p in parts {
            mac.update(&(p.len() as u32).to_be_bytes());
            mac.update(p.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    /// The email's blind index (tenant-independent, so a data-subject request finds the person
    /// in every tenant). 128 bits, hex.
    pub fn email(&self, email: &Email) -> String {
        hex(&self.mac("email", &[email.as_str()])[..16])
    }

    pub fn phone(&self, phone: &Phone) -> String {
        hex(&self.mac("phone", &[phone.as_str()])[..16])
    }

    /// A lead's id, derived from the tenant and the contact's blind index: two submissions of one
    /// person to one tenant land on one lead without a read-then-write race, and ids differ
    /// between tenants.
    pub fn lead_id(&self, tenant: &TenantId, contact_bidx: &str) -> LeadId {
        let h = hex(&self.mac("lead", &[tenant.as_str(), contact_bidx])[..13]);
        LeadId::parse(&format!("ld-{h}")).expect("hex is a valid id")
    }

    /// A client IP's hash, for rate limiting: of its [`crate::client_ip::rate_limit_subject`],
    /// so one IPv6 /64 is one key and an IPv4-mapped address is its IPv4 one.
    pub fn ip(&self, ip: &str) -> String {
        hex(&self.mac("ip", &[&crate::client_ip::rate_limit_subject(ip)])[..8])
    }

    /// An idempotency key's hash (the key is client-chosen and may hold anything).
    pub fn idempotency_key(&self, tenant: &TenantId, key: &str) -> String {
        hex(&self.mac("idem-key", &[tenant.as_str(), key])[..16])
    }

    /// A request body's fingerprint, to tell a retry from a different request under one key.
    pub fn body(&self, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"body");
        mac.update(body);
        hex(&mac.finalize().into_bytes()[..16])
    }

    /// The signature of a list cursor handed to `tenant` (see `shared_leads::cursor`): a client
    /// cannot forge or alter a cursor, nor replay one in another tenant. 128 bits, hex.
    pub fn cursor(&self, tenant: &TenantId, payload: &str) -> String {
        hex(&self.mac("cursor", &[tenant.as_str(), payload])[..16])
    }

    /// Data-subject requests' keyed tags (`shared_privacy::dsar::tokens`): a verification code's hash
    /// bound to its request, the signature of a status link or of a one-click unsubscribe link.
    /// The `dsar:` domain prefix keeps them apart from every other hash here. 128 bits, hex.
    pub fn dsar_tag(&self, purpose: &str, parts: &[&str]) -> String {
        hex(&self.mac(&format!("dsar:{purpose}"), parts)[..16])
    }
}

impl BlindIndexKey {
    /// A key of its own for another use of the platform key (the spam defence's challenge
    /// signatures): a keyed hash under a `derive:` domain, so it reveals nothing of this key
    /// and collides with no hash above.
    pub fn derived_key(&self, purpose: &str) -> [u8; 32] {
        self.mac(&format!("derive:{purpose}"), &[])
    }
}

impl fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlindIndexKey(<secret>)")
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> BlindIndexKey {
        BlindIndexKey::new(vec![b; 32]).unwrap()
    }

    #[test]
    fn ip_hashes_aggregate_an_ipv6_slash_64_and_keep_ipv4_apart() {
        let k = BlindIndexKey::new(vec![7; 32]).unwrap();
        assert_eq!(k.ip("2001:db8:1:2::1"), k.ip("2001:db8:1:2:aaaa::9"));
        assert_ne!(k.ip("2001:db8:1:2::1"), k.ip("2001:db8:1:3::1"));
        assert_eq!(k.ip("::ffff:198.51.100.7"), k.ip("198.51.100.7"));
        assert_ne!(k.ip("198.51.100.7"), k.ip("198.51.100.8"));
        assert_eq!(k.ip("garbage"), k.ip("garbage"));
    }

    #[test]
    fn same_person_same_index_any_case() {
        let a = Email::parse("Ana@Example.com").unwrap();
        let b = Email::parse("ana@example.com").unwrap();
        assert_eq!(key(1).email(&a), key(1).email(&b));
        assert_ne!(key(1).email(&a), key(2).email(&a), "the key matters");
    }

    #[test]
    fn lead_ids_differ_per_tenant() {
        let k = key(1);
        let t1 = TenantId::parse("t1").unwrap();
        let t2 = TenantId::parse("t2").unwrap();
        assert_ne!(k.lead_id(&t1, "abc"), k.lead_id(&t2, "abc"));
        assert_eq!(k.lead_id(&t1, "abc"), k.lead_id(&t1, "abc"));
    }

    #[test]
    fn short_keys_are_refused_and_debug_is_redacted() {
        assert!(BlindIndexKey::new(vec![0; 16]).is_err());
        assert!(!format!("{:?}", key(7)).contains('7'));
    }
}
