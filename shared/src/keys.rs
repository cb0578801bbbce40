//! Every DynamoDB key of the platform, built here and nowhere else. Every builder of tenant data
//! takes a [`TenantId`], so a key of one tenant cannot be built from another tenant's context.
//! The access patterns these keys serve are documented in `docs/data-model.md`.

use crate::domain::{FormId, LeadId, SessionId, SubmissionId, TenantId, UserId};

pub const PK: &str = "pk";
pub const SK: &str = "sk";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    fn new(pk: String, sk: &str) -> Self {
        Self {
            pk,
            sk: sk.to_string(),
        }
    }
}

// ---- tenants table (account & profile; tenant configuration)

pub fn tenant(t: &TenantId) -> Key {
    Key::new(format!("TENANT#{t}"), "TENANT")
}

/// A form is found by its public id alone (the submission URL carries no tenant); the stored
/// record names its tenant.
pub fn form(f: &FormId) -> Key {
    Key::new(format!("FORM#{f}"), "FORM")
}

/// The GSI keys that list a tenant's forms.
pub fn form_by_tenant(t: &TenantId, f: &FormId) -> Key {
    Key::new(format!("TENANT#{t}"), &format!("FORM#{f}"))
}

/// A user of a tenant; a tenant's team is the Query `pk = TENANT#t, sk begins_with USER#`.
pub fn user(t: &TenantId, u: &UserId) -> Key {
    Key::new(format!("TENANT#{t}"), &format!("USER#{u}"))
}

/// Login index: the one account an email belongs to, keyed by the email's blind index (so an
/// email is unique platform-wide, enforced by a conditional put).
pub fn login(email_bidx: &str) -> Key {
    Key::new(format!("LOGIN#{email_bidx}"), "LOGIN")
}

/// A session, found by the id carried in its refresh token; the stored item names its tenant.
pub fn session(s: &SessionId) -> Key {
    Key::new(format!("SESSION#{s}"), "SESSION")
}

/// The GSI keys listing a user's sessions.
pub fn session_by_user(u: &UserId, s: &SessionId) -> Key {
    Key::new(format!("USER#{u}"), &format!("SESSION#{s}"))
}

/// A one-time token (email verification, password reset, invitation) by the hash of its secret.
pub fn one_time_token(secret_hash: &str) -> Key {
    Key::new(format!("TOKEN#{secret_hash}"), "TOKEN")
}

// ---- security log table

/// A tenant's security events by time; events about no known tenant (a failed login for an
/// unknown email) go to the platform's own partition.
pub fn security_event(t: Option<&TenantId>, at_rfc3339: &str, event_id: &str) -> Key {
    let pk = match t {
        Some(t) => format!("TENANT#{t}#SECLOG"),
        None => "PLATFORM#SECLOG".to_string(),
    };
    Key::new(pk, &format!("{at_rfc3339}#{event_id}"))
}

// ---- leads table (customer CRM content)

fn lead_pk(t: &TenantId, l: &LeadId) -> String {
    format!("TENANT#{t}#LEAD#{l}")
}

pub fn lead(t: &TenantId, l: &LeadId) -> Key {
    Key::new(lead_pk(t, l), "LEAD")
}

/// Submissions sort under their lead by id (ULIDs: chronological).
pub fn submission(t: &TenantId, l: &LeadId, s: &SubmissionId) -> Key {
    Key::new(lead_pk(t, l), &format!("SUB#{s}"))
}

/// GSI partition of submissions whose technical data expires on `day` (YYYY-MM-DD). Sharded so
/// one busy day does not make one hot partition; retention reads every shard of a day.
pub const TECH_EXPIRY_SHARDS: u32 = 8;
pub fn tech_expiry_partition(day: &str, shard: u32) -> String {
    format!("TECHEXP#{day}#{shard}")
}

// ---- privacy table (suppression list)

pub fn suppression(t: &TenantId, contact_bidx: &str) -> Key {
    Key::new(format!("TENANT#{t}#SUPPRESSION"), contact_bidx)
}

// ---- ops table (rate limits, idempotency)

/// One counter per form per minute window; per-IP counts are attributes of it.
pub fn rate_window(t: &TenantId, f: &FormId, window: i64) -> Key {
    Key::new(format!("TENANT#{t}#RATE#{f}#{window}"), "RATE")
}

/// Failed-login throttle counters: per account (email blind index) and per client IP hash.
pub fn login_throttle_account(email_bidx: &str) -> Key {
    Key::new(format!("THROTTLE#ACCOUNT#{email_bidx}"), "THROTTLE")
}

pub fn login_throttle_ip(ip_hash: &str) -> Key {
    Key::new(format!("THROTTLE#IP#{ip_hash}"), "THROTTLE")
}

pub fn idempotency(t: &TenantId, f: &FormId, key_hash: &str) -> Key {
    Key::new(format!("TENANT#{t}#IDEM#{f}#{key_hash}"), "IDEM")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_keys_cannot_collide_across_tenants() {
        let a = TenantId::parse("a").unwrap();
        let ab = TenantId::parse("a-b").unwrap();
        let l = LeadId::parse("b").unwrap();
        assert_ne!(lead(&a, &l), lead(&ab, &l));
        // ids cannot contain '#', so no tenant id can forge another's prefix
        assert!(TenantId::parse("a#LEAD").is_err());
    }
}
