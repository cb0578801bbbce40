//! Golden vectors: a fixed key and fixed inputs with their expected blind indexes, derived lead
//! ids, normalized emails and signed tokens, written as literals.
//!
//! Every stored lead is found through these values: a lead's id is derived from its email's
//! blind index, the suppression list of erased people holds blind indexes, and emailed links
//! carry signed tokens. A change of the hash construction or of the normalization would let an
//! erased person back in (their suppression entry no longer matches), split one person into two
//! leads, or break every link already sent. Such a change must fail here, not move the expected
//! values along with it: the literals below were computed once, independently of this code
//! (HMAC-SHA256 over `domain || (len_be32 || part)*`, truncated, in lowercase hex), and must only
//! change with a migration of the stored data.
//!
//! Plain ASCII addresses only: Unicode normalization vectors belong with that normalization.

use shared_core::blind_index::BlindIndexKey;
use shared_core::domain::{Email, Phone, TenantId};
use shared_privacy::dsar::tokens::{
    code_hash, code_matches, status_token, UnsubscribePurpose, UnsubscribeScope, UnsubscribeToken,
};

/// The vectors' key: the bytes 0, 1, …, 31.
fn key() -> BlindIndexKey {
    BlindIndexKey::new((0u8..32).collect()).expect("32 bytes")
}

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).expect("tenant id")
}

#[test]
fn emails_normalize_to_these_exact_strings() {
    for (raw, normalized) in [
        ("ana.pop@example.com", "ana.pop@example.com"),
        ("  Ana.Pop@Example.COM ", "ana.pop@example.com"),
        ("\tANA.POP@EXAMPLE.COM\n", "ana.pop@example.com"),
        ("O'Brien+News@Sub.Example.IE", "o'brien+news@sub.example.ie"),
        ("Bob@Example.com", "bob@example.com"),
    ] {
        assert_eq!(
            Email::parse(raw).expect(raw).as_str(),
            normalized,
            "{raw:?}"
        );
    }
}

#[test]
fn phones_normalize_to_these_exact_strings() {
    for (raw, normalized) in [
        ("+40712345678", "+40712345678"),
        ("+40 (712) 345-678", "+40712345678"),
        ("0040 712.345.678", "+40712345678"),
        ("+1 415 555 0123", "+14155550123"),
    ] {
        assert_eq!(
            Phone::parse(raw).expect(raw).as_str(),
            normalized,
            "{raw:?}"
        );
    }
}

#[test]
fn email_blind_indexes_are_these_literals() {
    let k = key();
    for (raw, bidx) in [
        ("ana.pop@example.com", "708ce41917a2b34b8d83cd6f806a95ea"),
        // The same person however they type it: one index.
        ("  Ana.Pop@Example.COM ", "708ce41917a2b34b8d83cd6f806a95ea"),
        (
            "O'Brien+News@Sub.Example.IE",
            "62f069609704ec99912159dce9e7f610",
        ),
        ("bob@example.com", "b18cd9bfadea822258637808da5868b5"),
    ] {
        assert_eq!(k.email(&Email::parse(raw).unwrap()), bidx, "{raw:?}");
    }
}

#[test]
fn phone_blind_indexes_are_these_literals() {
    let k = key();
    for (raw, bidx) in [
        ("+40712345678", "68d14e0ceca20a4bd81e8724b1da53de"),
        ("0040 (712) 345-678", "68d14e0ceca20a4bd81e8724b1da53de"),
        ("+14155550123", "3b5847c3156cc516a14df7e72f5c3ca8"),
    ] {
        assert_eq!(k.phone(&Phone::parse(raw).unwrap()), bidx, "{raw:?}");
    }
}

#[test]
fn lead_ids_derive_from_tenant_and_contact_index_as_these_literals() {
    let k = key();
    let ana = k.email(&Email::parse("Ana.Pop@Example.com").unwrap());
    let phone = k.phone(&Phone::parse("+40 712 345 678").unwrap());
    for (t, bidx, lead) in [
        ("tenant-a", ana.as_str(), "ld-6b63c0f36c7fdf4dd8e0e3028f"),
        // Another tenant: another lead for the same person (no cross-tenant linkage).
        ("tenant-b", ana.as_str(), "ld-cc5d2191960295757e5f2e53d9"),
        ("tenant-a", phone.as_str(), "ld-2483e18f8b2fd8bd0adbf2789b"),
    ] {
        let id = k.lead_id(&tenant(t), bidx);
        assert_eq!(id.as_str(), lead, "{t}");
        assert_eq!(
            shared_core::keys::lead(&tenant(t), &id).pk,
            format!("TENANT#{t}#LEAD#{lead}")
        );
    }
}

#[test]
fn other_keyed_hashes_are_these_literals() {
    let k = key();
    assert_eq!(k.ip("203.0.113.10"), "417062db52057208");
    assert_eq!(
        k.idempotency_key(&tenant("tenant-a"), "key-1"),
        "54ac67ce4c5fa77b4127de11dc83f462"
    );
    assert_eq!(
        k.body(br#"{"email":"ana.pop@example.com"}"#),
        "35a4ccaf05d568c4ca97efd60ea3db0a"
    );
}

#[test]
fn emailed_dsar_tokens_are_these_literals() {
    let k = key();
    // Links already sent must keep working: the status link and the stored code hash.
    assert_eq!(
        status_token(&k, "dsr-01"),
        "39a9ebd1bdbde44f50583ccdaf4d8d0f"
    );
    assert_eq!(
        code_hash(&k, "dsr-01", "123456"),
        "f62310fcec00794124e840f9f0040a8b"
    );
    assert!(code_matches(
        &k,
        "dsr-01",
        "123-456",
        "f62310fcec00794124e840f9f0040a8b"
    ));

    // An unsubscribe link in an old newsletter, for Ana at tenant-a.
    const LINK: &str = "eyJwIjoibWFya2V0aW5nIiwiYiI6IjcwOGNlNDE5MTdhMmIzNGI4ZDgzY2Q2ZjgwNmE5NWVhIiwicyI6InRlbmFudDp0ZW5hbnQtYSJ9.b51ef6c58e5832dfecfcc79c11ffd648";
    let token = UnsubscribeToken {
        purpose: UnsubscribePurpose::Marketing,
        subject_bidx: "708ce41917a2b34b8d83cd6f806a95ea".into(),
        scope: UnsubscribeScope::Tenant(tenant("tenant-a")),
    };
    assert_eq!(token.sign(&k), LINK);
    assert_eq!(UnsubscribeToken::verify(&k, LINK), Some(token));
}
