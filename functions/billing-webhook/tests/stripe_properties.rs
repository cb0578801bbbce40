//! Property tests of what a Stripe delivery brings: the `Stripe-Signature` header and the event
//! body, alone and through the handler over the in-memory store.
//!
//! Properties: nothing panics; a header Stripe would send verifies exactly when its timestamp is
//! within the tolerance, and under no other secret or body; any body is read or refused as a 400
//! `invalid_event` that says which field it could not read; a delivery is never answered 5xx.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use billing_webhook::config::Settings;
use billing_webhook::provider::SignatureError;
use billing_webhook::stripe::parse::parse_event;
use billing_webhook::stripe::signature::{parse_header, verify};
use billing_webhook::stripe::{signature_header, Stripe};
use billing_webhook::{App, Directory};
use proptest::prelude::*;
use serde_json::{json, Value};
use shared_accounts::auth::jwt::{TokenSigner, VerifyingKeys};
use shared_accounts::User;
use shared_core::clock::FixedClock;
use shared_core::domain::TenantId;
use shared_leads::fakes::MemoryBillingStore;
use shared_mail::MemoryMailer;
use time::macros::datetime;
use time::OffsetDateTime;

const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/billing-webhook/");
const SECRET: &str = "whsec_local_dev";
const T0: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);
const TOLERANCE: i64 = 300;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Every sample event of `events/billing-webhook/` (the API Gateway fixtures aside).
fn samples() -> Vec<Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(EVENTS).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            if v["object"] == "event" {
                out.push(v);
            }
        }
    }
    assert!(out.len() >= 10, "the sample events");
    out
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
        "[a-z_]{1,12}".prop_map(Value::String),
        Just(json!({})),
        Just(json!([])),
    ]
}

/// Replaces (or removes) the value at the `n`-th path of `v`, depth first.
fn mutate(v: &mut Value, n: &mut usize, with: &Option<Value>) -> bool {
    let keys: Vec<String> = match v {
        Value::Object(m) => m.keys().cloned().collect(),
        _ => return false,
    };
    for k in keys {
        if *n == 0 {
            let m = v.as_object_mut().unwrap();
            match with {
                Some(x) => m.insert(k, x.clone()),
                None => m.remove(&k),
            };
            return true;
        }
        *n -= 1;
        if mutate(&mut v[&k], n, with) {
            return true;
        }
    }
    false
}

/// A sample event with up to three values replaced by anything or removed.
fn mutated_event() -> impl Strategy<Value = Vec<u8>> {
    let samples = samples();
    (
        prop::sample::select(samples),
        prop::collection::vec((0usize..80, prop::option::of(scalar())), 0..4),
    )
        .prop_map(|(mut event, edits)| {
            for (n, with) in edits {
                let mut n = n;
                mutate(&mut event, &mut n, &with);
            }
            serde_json::to_vec(&event).unwrap()
        })
}

fn assert_invalid_event(e: &shared_core::error::AppError) {
    assert_eq!((e.status(), e.code()), (400, "invalid_event"), "{e:?}");
    let msg = e.public_message();
    assert!(
        msg.starts_with("The event cannot be read: ") && msg.len() > 27,
        "the refusal says what could not be read: {msg}"
    );
}

// ------------------------------------------------------------------ the handler's world

struct NoTeam;

impl Directory for NoTeam {
    async fn team(&self, _tenant: &TenantId) -> anyhow::Result<Vec<User>> {
        Ok(vec![])
    }
}

fn app() -> App<MemoryBillingStore, MemoryMailer, NoTeam> {
    App {
        store: MemoryBillingStore::new(),
        mailer: MemoryMailer::default(),
        directory: NoTeam,
        stripe: Stripe::new(vec![SECRET.into()], TOLERANCE),
        api_keys: None,
        verifier: VerifyingKeys::from_json(&format!(
            r#"{{"keys":{{"k1":"{}"}}}}"#,
            TokenSigner::from_json(&format!(
                r#"{{"kid":"k1","private_key":"{}"}}"#,
                STANDARD.encode([9u8; 32])
            ))
            .unwrap()
            .public_key()
        ))
        .unwrap(),
        clock: Arc::new(FixedClock::new(T0)),
        settings: Settings::default(),
    }
}

fn delivery(body: &[u8], signature: &str) -> lambda_http::Request {
    let mut e: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{EVENTS}webhook-request.json")).unwrap(),
    )
    .unwrap();
    e["body"] = json!(STANDARD.encode(body));
    e["isBase64Encoded"] = json!(true);
    e["headers"]["stripe-signature"] = json!(signature);
    lambda_http::request::from_str(&e.to_string()).unwrap()
}

// ------------------------------------------------------------------ properties

proptest! {
    #![proptest_config(config())]

    /// Any header value: parsed into a positive timestamp and 1 to 16 signatures, or refused.
    #[test]
    fn any_signature_header_parses_or_is_malformed(
        raw in prop_oneof![
            any::<String>(),
            "(t=[0-9-]{0,12}|v1=[0-9a-fA-F]{0,66}|v0=[a-z]{0,4}|[a-z ]{0,3}=?[0-9]{0,3}),{0,2}(t=[0-9]{1,11}|v1=[0-9a-f]{64}|,){0,20}",
        ],
    ) {
        match parse_header(&raw) {
            Ok(h) => {
                prop_assert!(h.timestamp > 0);
                prop_assert!((1..=16).contains(&h.v1.len()));
            }
            Err(e) => prop_assert_eq!(e, SignatureError::Malformed),
        }
    }

    /// The header Stripe sends verifies within the tolerance and is stale outside it; under
    /// another secret or over another body it never matches; the right signature among others
    /// (a secret rotation) matches.
    #[test]
    fn stripe_signatures_verify_exactly_within_the_tolerance(
        body in prop::collection::vec(any::<u8>(), 0..300),
        skew in -1_000i64..1_000,
        other_secret in "whsec_[a-zA-Z0-9]{1,20}",
        flip in any::<prop::sample::Index>(),
    ) {
        let now = T0.unix_timestamp();
        let t = now + skew;
        let header = signature_header(SECRET, t, &body);
        let secrets = vec![SECRET.to_string()];
        let r = verify(Some(&header), &body, &secrets, now, TOLERANCE);
        if skew.abs() <= TOLERANCE {
            prop_assert_eq!(r, Ok(()));
        } else {
            prop_assert_eq!(r, Err(SignatureError::Stale));
        }
        if other_secret != SECRET {
            prop_assert_eq!(
                verify(Some(&header), &body, std::slice::from_ref(&other_secret), now, TOLERANCE),
                Err(SignatureError::Mismatch)
            );
            // During a rotation the header carries one signature per live secret.
            let v1 = |h: String| h.split_once(",v1=").unwrap().1.to_string();
            let rotated = format!(
                "t={now},v1={},v1={}",
                v1(signature_header(&other_secret, now, &body)),
                v1(signature_header(SECRET, now, &body))
            );
            prop_assert_eq!(verify(Some(&rotated), &body, &secrets, now, TOLERANCE), Ok(()));
        }
        let mut changed = body.clone();
        if changed.is_empty() {
            changed.push(b'x');
        } else {
            let i = flip.index(changed.len());
            changed[i] ^= 0x01;
        }
        prop_assert_eq!(
            verify(Some(&signature_header(SECRET, now, &body)), &changed, &secrets, now, TOLERANCE),
            Err(SignatureError::Mismatch)
        );
        prop_assert_eq!(verify(None, &body, &secrets, now, TOLERANCE), Err(SignatureError::Missing));
    }

    /// Any bytes as an event: read, or a 400 `invalid_event` saying what could not be read.
    #[test]
    fn any_event_body_is_read_or_refused_as_400(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..400),
            mutated_event(),
        ],
    ) {
        if let Err(e) = parse_event(&bytes) {
            assert_invalid_event(&e);
        }
    }

    /// A signed delivery of any body, through the handler over the in-memory store: never a
    /// 5xx, and every refusal is a JSON error with its code.
    #[test]
    fn signed_deliveries_of_any_event_are_never_5xx(body in mutated_event()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let app = app();
        let signature = signature_header(SECRET, T0.unix_timestamp(), &body);
        let resp = rt.block_on(billing_webhook::handle(&app, delivery(&body, &signature)));
        let status = resp.status().as_u16();
        prop_assert!(status < 500, "answered {}", status);
        if status >= 400 {
            let text = match resp.body() {
                lambda_http::Body::Text(t) => t.clone(),
                _ => String::new(),
            };
            let v: Value = serde_json::from_str(&text).unwrap();
            prop_assert!(v["error"]["code"].is_string(), "{}", text);
        }
    }
}
