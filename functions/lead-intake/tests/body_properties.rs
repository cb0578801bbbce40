//! Property tests of the intake endpoint's body parsing, through the handler over the in-memory
//! store: any bytes, JSON documents of any shape (nesting, duplicates, escapes) and HTML form
//! posts (percent-encoding, `+`, duplicates), sent as JSON or as a form, base64 or not.
//!
//! Properties: never a panic nor a 5xx; a refusal is a 4xx JSON error with its code; a refusal
//! of fields names them; a refused submission stores nothing; an accepted one is stored once.

use std::sync::Arc;

use base64::Engine;
use lambda_http::Body;
use proptest::prelude::*;
use serde_json::{json, Value};
use shared_core::blind_index::BlindIndexKey;
use shared_core::clock::{FixedClock, SequentialIds};
use shared_core::domain::{FormId, FormRecord, TenantId, TenantRecord, TenantStatus};
use shared_leads::fakes::MemoryStore;
use shared_leads::intake::{Intake, IntakeSettings};
use shared_leads::ports::FormAdmin;
use time::macros::datetime;

const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/lead-intake/");

type App = Intake<MemoryStore>;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn app(rt: &tokio::runtime::Runtime) -> App {
    let tenant = TenantId::parse("demo-tenant").unwrap();
    let mut form = FormRecord {
        form_id: FormId::parse("demo-contact").unwrap(),
        tenant_id: tenant.clone(),
        name: "Demo".into(),
        enabled: true,
        fields: FormRecord::default_fields(),
        consents: vec![],
        allowed_origins: vec!["http://127.0.0.1:8080".into()],
        redirect_url: "http://127.0.0.1:8080/thanks.html".into(),
        honeypot_field: shared_core::domain::DEFAULT_HONEYPOT.into(),
        daily_cap: None,
        spam: Default::default(),
    };
    form.fields.push(shared_core::domain::FieldDef {
        name: "phone".into(),
        kind: shared_core::domain::FieldKind::Phone,
        required: false,
        max_len: None,
    });
    let store = MemoryStore::new();
    rt.block_on(async {
        store
            .put_tenant(&TenantRecord {
                tenant_id: tenant,
                status: TenantStatus::Active,
            })
            .await
            .unwrap();
        store.put_form(&form).await.unwrap();
    });
    let settings = IntakeSettings {
        rate_limit_per_ip_per_minute: u32::MAX,
        rate_limit_per_form_per_minute: u32::MAX,
        ..IntakeSettings::default()
    };
    Intake::new(
        store,
        Arc::new(FixedClock::new(datetime!(2026-11-29 12:00 UTC))),
        SequentialIds::default(),
        BlindIndexKey::new(vec![42; 32]).unwrap(),
        settings,
    )
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "email",
            "name",
            "company",
            "phone",
            "message",
            "_gotcha",
            "consent_marketing",
            "_page_url"
        ])
        .prop_map(str::to_string),
        any::<String>(),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9._+-]{1,12}@[a-z0-9-]{1,10}\\.[a-z]{2,4}",
        "\\+[1-9][0-9 ]{7,16}",
        "[%&=+ a-zA-Z0-9]{0,30}",
    ]
}

/// A body as a client could send it, and the content type it is sent under.
fn body() -> impl Strategy<Value = (Vec<u8>, &'static str)> {
    let json_doc = prop::collection::vec(
        (
            name(),
            prop_oneof![
                text().prop_map(Value::String),
                any::<bool>().prop_map(Value::Bool),
                any::<i32>().prop_map(|n| json!(n)),
                Just(Value::Null),
                Just(json!({"nested": {"deeper": [1, 2]}})),
                Just(json!(["a", "b"])),
            ],
        ),
        0..6,
    )
    .prop_map(|pairs| {
        // Written by hand so that a key may repeat, as a client may send it.
        let parts: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), v))
            .collect();
        format!("{{{}}}", parts.join(",")).into_bytes()
    });
    let form = prop::collection::vec((name(), text()), 0..6).prop_map(|pairs| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            s.append_pair(k, v);
        }
        s.finish().into_bytes()
    });
    let content_type = prop::sample::select(vec![
        "application/json",
        "application/json; charset=utf-8",
        "application/x-www-form-urlencoded",
        "text/plain",
    ]);
    (
        prop_oneof![
            json_doc,
            form,
            prop::collection::vec(any::<u8>(), 0..300),
            Just(b"[1,2]".to_vec()),
            Just(b"null".to_vec()),
        ],
        content_type,
    )
}

fn event(bytes: &[u8], content_type: &str, base64: bool) -> lambda_http::Request {
    let text = std::fs::read_to_string(format!("{EVENTS}submit-json.json")).unwrap();
    let mut e: Value = serde_json::from_str(&text).unwrap();
    e["headers"]["content-type"] = json!(content_type);
    e["headers"]
        .as_object_mut()
        .unwrap()
        .remove("content-length");
    match (base64, std::str::from_utf8(bytes)) {
        (false, Ok(s)) => e["body"] = json!(s),
        _ => {
            e["body"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
            e["isBase64Encoded"] = json!(true);
        }
    }
    lambda_http::request::from_str(&e.to_string()).unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_body_is_accepted_once_or_refused_with_a_4xx_naming_its_fields(
        (bytes, content_type) in body(),
        base64 in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let app = app(&rt);
        let resp = rt.block_on(lead_intake::handle(&app, event(&bytes, content_type, base64)));
        let status = resp.status().as_u16();
        let text = match resp.body() {
            Body::Text(t) => t.clone(),
            _ => String::new(),
        };
        let stored = app.store().lock().submissions.len();
        prop_assert!(status < 500, "answered {}: {}", status, text);
        if status >= 400 {
            let v: Value = serde_json::from_str(&text).expect("a JSON error");
            let code = v["error"]["code"].as_str().unwrap_or_default().to_string();
            prop_assert!(!code.is_empty(), "{}", text);
            if code == "invalid_fields" {
                let fields = v["error"]["fields"].as_object().expect("fields");
                prop_assert!(!fields.is_empty(), "{}", text);
            }
            prop_assert_eq!(stored, 0, "a refused submission stored something");
        } else {
            prop_assert_eq!(status, 201);
            prop_assert!(stored <= 1, "one submission, stored once");
        }
    }
}
