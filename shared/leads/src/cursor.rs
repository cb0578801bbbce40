//! List cursors: `base64url(payload).base64url(signature)`, where the payload is the tenant, the
//! list it belongs to (its scope: which index, which filters) and the Query's `LastEvaluatedKey`,
//! and the signature an HMAC of it under the platform's keyed-hash key, bound to the caller's
//! tenant ([`BlindIndexKey::cursor`]).
//!
//! A cursor is therefore opaque and unforgeable: a client cannot edit the key in it to start
//! reading another tenant's partition, a cursor issued to one tenant is refused in another (its
//! signature is checked under the caller's tenant, and its tenant field compared too), and a
//! cursor of one list cannot be replayed against a list with other filters (which DynamoDB would
//! refuse as a start key outside the key condition). Refusals are `400 invalid_cursor`.
//!
//! Resuming from a key (not an offset) is what keeps pagination over a changing list exact: leads
//! created after the first page sort before the cursor and do not shift later pages.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::StartKey;
use shared_core::blind_index::BlindIndexKey;
use shared_core::domain::TenantId;
use shared_core::error::AppError;

/// Longer cursors are refused before any decoding.
const MAX_CURSOR_LEN: usize = 2048;

#[derive(Serialize, Deserialize)]
struct Payload {
    /// Tenant.
    t: String,
    /// Scope: the list and its filters.
    s: String,
    /// The start key.
    k: StartKey,
}

pub fn encode(key: &BlindIndexKey, tenant: &TenantId, scope: &str, start: &StartKey) -> String {
    let payload = serde_json::to_string(&Payload {
        t: tenant.to_string(),
        s: scope.to_string(),
        k: start.clone(),
    })
    .expect("a map of strings serializes");
    let sig = key.cursor(tenant, &payload);
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload.as_bytes()),
        URL_SAFE_NO_PAD.encode(sig.as_bytes())
    )
}

pub fn invalid() -> AppError {
    AppError::validation(
        "invalid_cursor",
        "The cursor is not one this list handed out; start again without it.",
    )
}

/// The start key of a cursor handed out by [`encode`] to this tenant for this scope.
pub fn decode(
    key: &BlindIndexKey,
    tenant: &TenantId,
    scope: &str,
    cursor: &str,
) -> Result<StartKey, AppError> {
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(invalid());
    }
    let (payload_b64, sig_b64) = cursor.split_once('.').ok_or_else(invalid)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).map_err(|_| invalid())?;
    let expected = key.cursor(tenant, &payload);
    if !bool::from(expected.as_bytes().ct_eq(&sig)) {
        return Err(invalid());
    }
    let p: Payload = serde_json::from_str(&payload).map_err(|_| invalid())?;
    if p.t != tenant.as_str() || p.s != scope {
        return Err(invalid());
    }
    Ok(p.k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn key(b: u8) -> BlindIndexKey {
        BlindIndexKey::new(vec![b; 32]).unwrap()
    }

    fn start() -> StartKey {
        StartKey(BTreeMap::from([
            ("pk".to_string(), "TENANT#a#LEAD#ld-1".to_string()),
            ("sk".to_string(), "LEAD".to_string()),
        ]))
    }

    #[test]
    fn round_trip() {
        let a = TenantId::parse("a").unwrap();
        let c = encode(&key(1), &a, "leads", &start());
        assert_eq!(decode(&key(1), &a, "leads", &c).unwrap(), start());
    }

    #[test]
    fn another_tenant_scope_key_or_edit_is_refused() {
        let a = TenantId::parse("a").unwrap();
        let b = TenantId::parse("b").unwrap();
        let c = encode(&key(1), &a, "leads", &start());
        for (k, t, scope, cursor) in [
            (key(1), &b, "leads", c.clone()),
            (key(1), &a, "leads:stage=won", c.clone()),
            (key(2), &a, "leads", c.clone()),
            (key(1), &a, "leads", format!("x{c}")),
            (key(1), &a, "leads", "garbage".to_string()),
            (key(1), &a, "leads", "a.b.c".to_string()),
            (key(1), &a, "leads", "x".repeat(3000)),
        ] {
            assert_eq!(
                decode(&k, t, scope, &cursor).unwrap_err().code(),
                "invalid_cursor"
            );
        }
        // A payload re-signed by nobody: swap in another tenant's partition, keep the signature.
        let (_, sig) = c.split_once('.').unwrap();
        let forged = serde_json::json!({"t": "a", "s": "leads", "k": {"pk": "TENANT#b#LEAD#x", "sk": "LEAD"}});
        let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(forged.to_string()));
        assert!(decode(&key(1), &a, "leads", &forged).is_err());
    }
}
