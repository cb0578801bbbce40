//! Property tests of the shared parsers of input bytes: submission bodies (JSON and
//! urlencoded) and their validation against a form, emails, phones, lead-list cursors, access
//! tokens, refresh tokens, unsubscribe and status-link tokens.
//!
//! Properties: nothing panics on any input; a rejection is a client error (never an internal
//! one) that names the field at fault without repeating its value; whatever has a round trip
//! (encode/decode, sign/verify, format/parse) comes back unchanged; a tampered or foreign token
//! is refused. 256 cases per property keep the suite fast on a small machine.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use shared_accounts::auth::jwt::{
    AccessClaims, TokenSigner, VerifyingKeys, ACCESS_TOKEN_TTL_SECS, ISSUER,
};
use shared_accounts::auth::tokens;
use shared_core::blind_index::BlindIndexKey;
use shared_core::domain::{
    ConsentDef, Email, FieldDef, FieldKind, FormId, FormRecord, Phone, RawSubmission, SessionId,
    TenantId, DEFAULT_HONEYPOT,
};
use shared_core::error::AppError;
use shared_leads::{cursor, StartKey};
use shared_privacy::dsar::tokens::{
    code_hash, code_matches, status_token, status_token_matches, UnsubscribePurpose,
    UnsubscribeScope, UnsubscribeToken,
};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn key(b: u8) -> BlindIndexKey {
    BlindIndexKey::new(vec![b; 32]).unwrap()
}

/// Any text, weighted towards what parsers trip on: separators, quotes, escapes, control and
/// non-ASCII characters.
fn tricky_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>(),
            4 => prop::sample::select(vec![
                '&', '=', '%', '+', '"', '\\', '{', '}', '[', ']', ',', '.', '@', ' ', '\n',
                '\r', '\t', '\0', '#', ';', '\u{FEFF}', '\u{202E}', 'é', 'İ', 'ß', '\u{7f}',
            ]),
            2 => proptest::char::range('a', 'z'),
        ],
        0..max,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

/// A field name: mostly the form's, sometimes anything.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "email",
            "name",
            "company",
            "phone",
            "message",
            "budget",
            "consent_marketing",
            "consent_other",
            "_page_url",
            "_referrer",
            DEFAULT_HONEYPOT,
        ])
        .prop_map(str::to_string),
        tricky_text(80),
    ]
}

fn form() -> FormRecord {
    let mut fields = FormRecord::default_fields();
    fields.push(FieldDef {
        name: "phone".into(),
        kind: FieldKind::Phone,
        required: false,
        max_len: None,
    });
    fields.push(FieldDef {
        name: "budget".into(),
        kind: FieldKind::Text,
        required: false,
        max_len: Some(5),
    });
    FormRecord {
        form_id: FormId::parse("f").unwrap(),
        tenant_id: TenantId::parse("t").unwrap(),
        name: "Contact".into(),
        enabled: true,
        fields,
        consents: vec![ConsentDef {
            key: "marketing".into(),
            version: "2026-01".into(),
            text: "News".into(),
            required: false,
        }],
        allowed_origins: vec![],
        redirect_url: "https://example.com/thanks".into(),
        honeypot_field: DEFAULT_HONEYPOT.into(),
        daily_cap: None,
        spam: Default::default(),
    }
}

/// A body-level rejection has a code of its own; a field-level one names its fields.
fn assert_client_rejection(e: &AppError, allowed_codes: &[&str]) {
    assert!(e.status() >= 400 && e.status() < 500, "{e:?} is not a 4xx");
    assert!(
        allowed_codes.contains(&e.code()),
        "unexpected code {}",
        e.code()
    );
    if let AppError::Validation { code, fields, .. } = e {
        if *code == "invalid_fields" {
            assert!(!fields.is_empty(), "invalid_fields names no field");
        }
    }
}

fn fields_of(e: &AppError) -> BTreeMap<String, String> {
    match e {
        AppError::Validation { fields, .. } => fields.clone(),
        other => panic!("not a validation error: {other:?}"),
    }
}

/// Field names as the error map echoes them (cut at 64 characters).
fn echoed(name: &str) -> String {
    name.chars().take(64).collect()
}

/// A JSON value of any shape, nested a few levels.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::json!(f)),
        tricky_text(40).prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

// ------------------------------------------------------------------ submission bodies

proptest! {
    #![proptest_config(config())]

    /// Any bytes as a JSON body: parsed, or a 400 with its own code.
    #[test]
    fn json_bodies_of_any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = RawSubmission::from_json(&bytes) {
            assert_client_rejection(&e, &["invalid_json", "invalid_body", "invalid_fields"]);
        }
    }

    /// Any JSON document: an object of scalars is accepted as given; a nested value is refused
    /// naming exactly the fields that hold one; anything but an object is `invalid_body`.
    #[test]
    fn json_bodies_name_every_nested_field(doc in json_value()) {
        let raw = serde_json::to_vec(&doc).unwrap();
        match (&doc, RawSubmission::from_json(&raw)) {
            (serde_json::Value::Object(obj), result) => {
                let nested: BTreeSet<String> = obj
                    .iter()
                    .filter(|(_, v)| v.is_array() || v.is_object())
                    .map(|(k, _)| echoed(k))
                    .collect();
                match result {
                    Ok(parsed) => {
                        prop_assert!(nested.is_empty());
                        // Strings come back as they were sent.
                        let strings: Vec<(&str, &str)> = obj
                            .iter()
                            .filter_map(|(k, v)| v.as_str().map(|s| (k.as_str(), s)))
                            .collect();
                        if strings.len() == obj.len() {
                            prop_assert_eq!(parsed, RawSubmission::from_pairs(strings));
                        }
                    }
                    Err(e) => {
                        assert_client_rejection(&e, &["invalid_fields"]);
                        let named: BTreeSet<String> = fields_of(&e).into_keys().collect();
                        prop_assert_eq!(named, nested);
                    }
                }
            }
            (_, Err(e)) => prop_assert_eq!(e.code(), "invalid_body"),
            (_, Ok(_)) => prop_assert!(false, "a non-object body was accepted"),
        }
    }

    /// Any bytes as an HTML form post: parsed, or a 400 with its own code.
    #[test]
    fn urlencoded_bodies_of_any_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        match RawSubmission::from_urlencoded(&bytes) {
            Ok(_) => prop_assert!(std::str::from_utf8(&bytes).is_ok()),
            Err(e) => {
                assert_client_rejection(&e, &["invalid_body", "invalid_fields"]);
                if std::str::from_utf8(&bytes).is_err() {
                    prop_assert_eq!(e.code(), "invalid_body");
                }
            }
        }
    }

    /// Fields encoded as a browser encodes them (percent-encoding, `+` for spaces, any
    /// Unicode) come back exactly; a field given twice is refused naming that field.
    #[test]
    fn urlencoded_bodies_round_trip_and_name_duplicates(
        pairs in prop::collection::vec((field_name(), tricky_text(60)), 0..8),
    ) {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            ser.append_pair(k, v);
        }
        let body = ser.finish();
        let mut seen = BTreeSet::new();
        let dups: BTreeSet<String> = pairs
            .iter()
            .filter(|(k, _)| !seen.insert(k.clone()))
            .map(|(k, _)| echoed(k))
            .collect();
        match RawSubmission::from_urlencoded(body.as_bytes()) {
            Ok(parsed) => {
                prop_assert!(dups.is_empty());
                prop_assert_eq!(
                    parsed,
                    RawSubmission::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                );
            }
            Err(e) => {
                let named: BTreeSet<String> = fields_of(&e).into_keys().collect();
                prop_assert_eq!(named, dups);
            }
        }
    }

    /// Validation against a form: never panics; every rejection is per field, names a field
    /// that was sent or that the form requires, and never repeats the value sent.
    #[test]
    fn validation_names_the_field_never_the_value(
        pairs in prop::collection::btree_map(field_name(), tricky_text(300), 0..8),
    ) {
        // A marker makes "the value is not echoed" meaningful for short values too.
        let values: Vec<(String, String)> =
            pairs.iter().map(|(k, v)| (k.clone(), format!("zq{v}"))).collect();
        let raw = RawSubmission::from_pairs(values.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let f = form();
        if let Err(e) = raw.validate(&f) {
            assert_client_rejection(&e, &["invalid_fields"]);
            let body = shared_core::http::error_body(&e).to_string();
            for (k, message) in fields_of(&e) {
                let sent = values.iter().any(|(name, _)| echoed(name) == k);
                prop_assert!(
                    sent || f.field(&k).is_some_and(|d| d.required) || k == "email",
                    "error on {k:?}, which was neither sent nor required"
                );
                prop_assert!(!message.is_empty());
            }
            for (_, v) in &values {
                if v.trim().chars().count() > 3 {
                    prop_assert!(!body.contains(v.trim()), "the error repeats a value");
                }
            }
        }
    }
}

// ------------------------------------------------------------------ emails and phones

fn email_like() -> impl Strategy<Value = String> {
    prop_oneof![
        tricky_text(80),
        (
            tricky_text(20),
            tricky_text(20),
            prop::sample::select(vec!["com", "ro", "c", "123", ""])
        )
            .prop_map(|(l, d, t)| format!("{l}@{d}.{t}")),
        (
            "[A-Za-z0-9._%+'-]{1,30}",
            "[A-Za-z0-9-]{1,20}",
            "[A-Za-z]{2,6}"
        )
            .prop_map(|(l, d, t)| format!(" {l}@{d}.{t} ")),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Parsing is idempotent (the normalized form parses to itself) and its result is what
    /// the blind index relies on: trimmed, lowercase, one `@`, at most 254 bytes.
    #[test]
    fn emails_normalize_idempotently(raw in email_like()) {
        match Email::parse(&raw) {
            Ok(e) => {
                let s = e.as_str();
                prop_assert_eq!(Email::parse(s).map(|e| e.as_str().to_string()), Ok(s.to_string()));
                prop_assert_eq!(s, s.trim());
                prop_assert_eq!(s.to_lowercase(), s);
                prop_assert_eq!(s.matches('@').count(), 1);
                prop_assert!(s.len() <= Email::MAX_LEN);
                if raw.is_ascii() {
                    // However an ASCII address is cased, one person, one blind index.
                    let upper = Email::parse(&raw.to_ascii_uppercase()).expect("upper case");
                    prop_assert_eq!(key(1).email(&upper), key(1).email(&e));
                }
            }
            Err(m) => prop_assert!(!m.is_empty()),
        }
    }

    /// Any input: a number in E.164 (`+`, 8 to 15 digits, no leading 0) or a message; the
    /// normalized form parses to itself.
    #[test]
    fn phones_parse_to_e164_idempotently(raw in prop_oneof![
        tricky_text(40),
        "[+0]{0,2}[0-9 ().-]{0,24}",
    ]) {
        match Phone::parse(&raw) {
            Ok(p) => {
                let s = p.as_str();
                let digits = s.strip_prefix('+').expect("starts with +");
                prop_assert!((8..=15).contains(&digits.len()));
                prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()));
                prop_assert!(!digits.starts_with('0'));
                prop_assert_eq!(Phone::parse(s).map(|p| p.as_str().to_string()), Ok(s.to_string()));
            }
            Err(m) => prop_assert!(!m.is_empty()),
        }
    }

    /// A number written with the usual separators, or with 00 for +, parses to its digits.
    #[test]
    fn formatted_phones_parse_back(
        first in 1u8..=9,
        rest in prop::collection::vec(0u8..=9, 7..=14),
        seps in prop::collection::vec(prop::sample::select(vec!["", " ", "-", ".", "(", ")"]), 15),
        double_zero in any::<bool>(),
    ) {
        let digits: String = std::iter::once(first).chain(rest).map(|d| char::from(b'0' + d)).collect();
        let mut written = String::from(if double_zero { "00" } else { "+" });
        for (i, c) in digits.chars().enumerate() {
            written.push(c);
            written.push_str(seps[i]);
        }
        let p = Phone::parse(&written).expect("a formatted number");
        prop_assert_eq!(p.as_str(), format!("+{digits}"));
    }
}

// ------------------------------------------------------------------ cursors

fn start_key() -> impl Strategy<Value = StartKey> {
    prop::collection::btree_map(
        prop::sample::select(vec!["pk", "sk", "gsi1pk", "gsi1sk", "created"])
            .prop_map(str::to_string),
        tricky_text(60),
        1..4,
    )
    .prop_map(StartKey)
}

fn id_slug() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,20}"
}

proptest! {
    #![proptest_config(config())]

    /// A cursor handed out comes back as the key it was made from, for its tenant and list only.
    #[test]
    fn cursors_round_trip_for_their_tenant_and_list_only(
        t in id_slug(), other in id_slug(), scope in "[a-z:]{1,20}", start in start_key(),
    ) {
        let k = key(1);
        let tenant = TenantId::parse(&t).unwrap();
        let c = cursor::encode(&k, &tenant, &scope, &start);
        prop_assert_eq!(cursor::decode(&k, &tenant, &scope, &c).ok(), Some(start.clone()));
        prop_assert!(cursor::decode(&key(2), &tenant, &scope, &c).is_err(), "another key");
        if other != t {
            let o = TenantId::parse(&other).unwrap();
            prop_assert!(cursor::decode(&k, &o, &scope, &c).is_err(), "another tenant");
        }
        prop_assert!(cursor::decode(&k, &tenant, &format!("{scope}x"), &c).is_err(), "another list");
    }

    /// Any change to a cursor, or any string at all, is refused as `invalid_cursor` (400).
    #[test]
    fn tampered_or_arbitrary_cursors_are_400(
        start in start_key(), at in any::<prop::sample::Index>(), with in any::<char>(),
        junk in tricky_text(200),
    ) {
        let k = key(1);
        let tenant = TenantId::parse("t").unwrap();
        let c = cursor::encode(&k, &tenant, "leads", &start);
        let i = at.index(c.chars().count());
        let tampered: String = c
            .chars()
            .enumerate()
            .map(|(j, ch)| if j == i { with } else { ch })
            .collect();
        if tampered != c {
            let e = cursor::decode(&k, &tenant, "leads", &tampered).unwrap_err();
            prop_assert_eq!((e.status(), e.code()), (400, "invalid_cursor"));
        }
        if let Err(e) = cursor::decode(&k, &tenant, "leads", &junk) {
            prop_assert_eq!((e.status(), e.code()), (400, "invalid_cursor"));
        } else {
            prop_assert!(false, "an arbitrary string was taken for a cursor");
        }
    }
}

// ------------------------------------------------------------------ access and refresh tokens

const NOW: i64 = 1_780_000_000;

/// auth's private key number `b` under `kid`.
fn signer(kid: &str, b: u8) -> TokenSigner {
    use base64::Engine;
    let k = base64::engine::general_purpose::STANDARD.encode([b; 32]);
    TokenSigner::from_json(&format!(r#"{{"kid":"{kid}","private_key":"{k}"}}"#)).unwrap()
}

/// The public keys a function verifies with: those of `signer(kid, b)`.
fn verifying(kid: &str, b: u8) -> VerifyingKeys {
    let k = signer(kid, b).public_key();
    VerifyingKeys::from_json(&format!(r#"{{"keys":{{"{kid}":"{k}"}}}}"#)).unwrap()
}

fn claims() -> impl Strategy<Value = AccessClaims> {
    (
        tricky_text(40),
        tricky_text(40),
        tricky_text(20),
        tricky_text(40),
        -60i64..=0,
        1..=ACCESS_TOKEN_TTL_SECS,
        any::<i64>(),
    )
        .prop_map(|(sub, tid, role, sid, iat_offset, ttl, cep)| AccessClaims {
            sub,
            tid,
            role,
            sid,
            cep,
            iat: NOW + iat_offset,
            exp: NOW + ttl,
            iss: ISSUER.into(),
            typ: "access".into(),
        })
}

proptest! {
    #![proptest_config(config())]

    /// An issued token verifies to its claims, whatever they hold; under another key, after
    /// it expired, or with any character changed, it is refused.
    #[test]
    fn access_tokens_round_trip_and_refuse_tampering(
        c in claims(), at in any::<prop::sample::Index>(), with in any::<char>(),
    ) {
        let keys = verifying("k1", 1);
        let t = signer("k1", 1).issue(&c);
        prop_assert_eq!(keys.verify(&t, NOW).ok(), Some(c.clone()));
        prop_assert!(verifying("k1", 2).verify(&t, NOW).is_err(), "another key");
        prop_assert!(verifying("k2", 1).verify(&t, NOW).is_err(), "another key id");
        prop_assert!(keys.verify(&t, c.exp).is_err(), "expired");
        let i = at.index(t.chars().count());
        let tampered: String =
            t.chars().enumerate().map(|(j, ch)| if j == i { with } else { ch }).collect();
        if tampered != t {
            prop_assert!(keys.verify(&tampered, NOW).is_err(), "tampered at {i}");
        }
    }

    /// Any string, including three dot-separated base64 parts, is refused without a panic.
    #[test]
    fn arbitrary_access_tokens_are_refused(
        junk in prop_oneof![
            tricky_text(300),
            "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,60}",
        ],
    ) {
        prop_assert!(verifying("k1", 1).verify(&junk, NOW).is_err());
    }

    /// A refresh token made from a session id and a new secret splits back into them; any
    /// other string is refused or, when accepted, is one whose secret is 32 bytes.
    #[test]
    fn refresh_tokens_round_trip(sid in "[a-z0-9_-]{1,64}", junk in tricky_text(600)) {
        let sid = SessionId::parse(&sid).unwrap();
        let secret = tokens::new_secret();
        let t = tokens::refresh_token(&sid, &secret);
        prop_assert_eq!(tokens::parse_refresh_token(&t), Some((sid, secret.clone())));
        prop_assert_eq!(tokens::hash_secret(&secret).len(), 64);
        if let Some((_, s)) = tokens::parse_refresh_token(&junk) {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&s).unwrap();
            prop_assert_eq!(bytes.len(), 32);
        }
    }
}

// ------------------------------------------------------------------ DSAR links

fn scope() -> impl Strategy<Value = UnsubscribeScope> {
    prop_oneof![
        Just(UnsubscribeScope::Platform),
        id_slug().prop_map(|t| UnsubscribeScope::Tenant(TenantId::parse(&t).unwrap())),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// An unsubscribe link verifies to what was signed, under the signing key only; a changed
    /// character or an arbitrary string is refused.
    #[test]
    fn unsubscribe_tokens_round_trip_and_refuse_tampering(
        marketing in any::<bool>(), bidx in "[0-9a-f]{1,64}", s in scope(),
        at in any::<prop::sample::Index>(), with in any::<char>(), junk in tricky_text(600),
    ) {
        let token = UnsubscribeToken {
            purpose: if marketing { UnsubscribePurpose::Marketing } else { UnsubscribePurpose::Consent },
            subject_bidx: bidx,
            scope: s,
        };
        let k = key(1);
        let signed = token.sign(&k);
        prop_assert_eq!(UnsubscribeToken::verify(&k, &signed), Some(token));
        prop_assert_eq!(UnsubscribeToken::verify(&key(2), &signed), None);
        let i = at.index(signed.chars().count());
        let tampered: String =
            signed.chars().enumerate().map(|(j, ch)| if j == i { with } else { ch }).collect();
        if tampered != signed {
            prop_assert_eq!(UnsubscribeToken::verify(&k, &tampered), None);
        }
        prop_assert_eq!(UnsubscribeToken::verify(&k, &junk), None);
    }

    /// A status link opens its own request only; a verification code matches as typed (spaces
    /// and dashes ignored) and nothing else does.
    #[test]
    fn status_links_and_codes_match_their_request_only(
        id in id_slug(), other in id_slug(), code in "[0-9]{6}", junk in tricky_text(80),
    ) {
        let k = key(1);
        let token = status_token(&k, &id);
        prop_assert!(status_token_matches(&k, &id, &token));
        prop_assert!(!status_token_matches(&key(2), &id, &token));
        if other != id {
            prop_assert!(!status_token_matches(&k, &other, &token));
        }
        if junk != token {
            prop_assert!(!status_token_matches(&k, &id, &junk));
        }
        let stored = code_hash(&k, &id, &code);
        let typed = format!("{} {}-{}", &code[..2], &code[2..4], &code[4..]);
        prop_assert!(code_matches(&k, &id, &typed, &stored));
        if other != id {
            prop_assert!(!code_matches(&k, &other, &code, &stored));
        }
        let digits: String = junk.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if digits != code {
            prop_assert!(!code_matches(&k, &id, &junk, &stored));
        }
    }
}
