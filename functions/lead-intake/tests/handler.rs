//! The HTTP handler end to end over the in-memory store: API Gateway HTTP API (v2) events from
//! `events/lead-intake/`, adjusted per test, in; status, headers and body out.

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use shared_core::blind_index::BlindIndexKey;
use shared_core::clock::{FixedClock, SequentialIds};
use shared_core::domain::{
    ConsentDef, FieldDef, FieldKind, FormId, FormRecord, TenantId, TenantRecord, TenantStatus,
    DEFAULT_HONEYPOT,
};
use shared_leads::fakes::MemoryStore;
use shared_leads::intake::{Intake, IntakeSettings};
use shared_leads::ports::FormAdmin;
use time::macros::datetime;

const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/lead-intake/");
const FORM: &str = "demo-contact";
const TENANT: &str = "demo-tenant";
const ORIGIN: &str = "http://127.0.0.1:8080";
const REDIRECT: &str = "http://127.0.0.1:8080/thanks.html";
const CONSENT_VERSION: &str = "2026-11-01";

// ---------------------------------------------------------------------------------------------
// The world: one active tenant with the demo contact form
// ---------------------------------------------------------------------------------------------

type App = Intake<MemoryStore>;

fn demo_form() -> FormRecord {
    let field = |name: &str, kind, required| FieldDef {
        name: name.into(),
        kind,
        required,
        max_len: None,
    };
    FormRecord {
        form_id: FormId::parse(FORM).unwrap(),
        tenant_id: TenantId::parse(TENANT).unwrap(),
        name: "Demo contact form".into(),
        enabled: true,
        fields: vec![
            field("email", FieldKind::Email, true),
            field("name", FieldKind::Text, false),
            field("company", FieldKind::Text, false),
            field("phone", FieldKind::Phone, false),
            field("message", FieldKind::LongText, false),
        ],
        consents: vec![ConsentDef {
            key: "marketing".into(),
            version: CONSENT_VERSION.into(),
            text: "Yes, send me occasional news about Demo Co.".into(),
            required: false,
        }],
        allowed_origins: vec![ORIGIN.into()],
        redirect_url: REDIRECT.into(),
        honeypot_field: DEFAULT_HONEYPOT.into(),
        daily_cap: None,
        spam: Default::default(),
    }
}

async fn app_with(form: FormRecord, tenant: Option<TenantStatus>, settings: IntakeSettings) -> App {
    let store = MemoryStore::new();
    if let Some(status) = tenant {
        store
            .put_tenant(&TenantRecord {
                tenant_id: form.tenant_id.clone(),
                status,
            })
            .await
            .unwrap();
    }
    store.put_form(&form).await.unwrap();
    Intake::new(
        store,
        Arc::new(FixedClock::new(datetime!(2026-11-29 12:00 UTC))),
        SequentialIds::default(),
        BlindIndexKey::new(vec![42; 32]).unwrap(),
        settings,
    )
}

async fn app() -> App {
    app_with(
        demo_form(),
        Some(TenantStatus::Active),
        IntakeSettings::default(),
    )
    .await
}

async fn send(app: &App, event: &Value) -> Response<Body> {
    let req: Request =
        lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway event");
    lead_intake::handle(app, req).await
}

fn submission_count(app: &App) -> usize {
    app.store().lock().submissions.len()
}

// ---------------------------------------------------------------------------------------------
// Events, from the fixtures
// ---------------------------------------------------------------------------------------------

fn fixture(name: &str) -> Value {
    let path = format!("{EVENTS}{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The JSON fixture (`accept: application/json`) with this body text.
fn json_raw(body: &str) -> Value {
    let mut ev = fixture("submit-json.json");
    ev["body"] = json!(body);
    without_header(ev, "content-length")
}

fn json_post(body: &Value) -> Value {
    json_raw(&body.to_string())
}

/// The plain HTML form fixture (urlencoded, base64, browser `accept`) with this body.
fn form_post(body: &str) -> Value {
    binary_body(fixture("submit-form.json"), body.as_bytes())
}

fn preflight() -> Value {
    fixture("preflight.json")
}

fn binary_body(mut ev: Value, bytes: &[u8]) -> Value {
    ev["body"] = json!(base64(bytes));
    ev["isBase64Encoded"] = json!(true);
    ev
}

fn with_header(mut ev: Value, name: &str, value: &str) -> Value {
    ev["headers"][name] = json!(value);
    ev
}

fn without_header(mut ev: Value, name: &str) -> Value {
    ev["headers"].as_object_mut().unwrap().remove(name);
    ev
}

fn with_method(mut ev: Value, method: &str) -> Value {
    ev["requestContext"]["http"]["method"] = json!(method);
    let route = format!("{method} /v1/forms/{{formId}}/submissions");
    ev["routeKey"] = json!(route);
    ev["requestContext"]["routeKey"] = json!(route);
    ev
}

fn with_form_id(mut ev: Value, form_id: &str) -> Value {
    ev["pathParameters"]["formId"] = json!(form_id);
    ev
}

fn with_source_ip(mut ev: Value, ip: &str) -> Value {
    ev["requestContext"]["http"]["sourceIp"] = json!(ip);
    ev
}

fn valid_json() -> Value {
    json!({
        "email": "ana.pop@example.com",
        "name": "Ana Pop",
        "message": "Please call me about pricing.",
        "consent_marketing": true,
    })
}

/// Standard base64, so tests can send arbitrary bytes the way API Gateway does.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Reading responses
// ---------------------------------------------------------------------------------------------

fn header_of<'a>(resp: &'a Response<Body>, name: &str) -> Option<&'a str> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("ASCII header"))
}

fn text_of(resp: &Response<Body>) -> String {
    String::from_utf8(resp.body().to_vec()).expect("UTF-8 body")
}

fn json_of(resp: &Response<Body>) -> Value {
    assert_eq!(header_of(resp, "content-type"), Some("application/json"));
    serde_json::from_slice(resp.body()).expect("a JSON body")
}

/// Asserts a JSON error response with this status and code; returns the `error` object.
#[track_caller]
fn assert_error(resp: &Response<Body>, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "body: {}", text_of(resp));
    let body = json_of(resp);
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "an error has a message: {body}"
    );
    body["error"].clone()
}

/// Asserts an HTML error page with this status.
#[track_caller]
fn assert_html_error(resp: &Response<Body>, status: u16) -> String {
    assert_eq!(resp.status().as_u16(), status, "body: {}", text_of(resp));
    assert_eq!(
        header_of(resp, "content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = text_of(resp);
    assert!(html.starts_with("<!doctype html>"), "{html}");
    html
}

#[track_caller]
fn assert_cors(resp: &Response<Body>) {
    assert_eq!(header_of(resp, "access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(header_of(resp, "vary"), Some("Origin"));
}

#[track_caller]
fn assert_no_cors(resp: &Response<Body>) {
    assert_eq!(header_of(resp, "access-control-allow-origin"), None);
}

#[test]
fn the_base64_helper_matches_the_fixture_encoding() {
    let ev = fixture("submit-form.json");
    let body = "email=ion.dobre%40example.com&name=Ion+Dobre&message=Hello%20from%20a%20plain%20form&consent_marketing=on&_gotcha=";
    assert_eq!(base64(body.as_bytes()), ev["body"].as_str().unwrap());
    assert_eq!(base64(b"a"), "YQ==");
    assert_eq!(base64(b"ab"), "YWI=");
}

// ---------------------------------------------------------------------------------------------
// 201 / 303: accepted
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_json_submission_is_created_and_answered_with_its_ids_and_cors() {
    let app = app().await;

    let resp = send(&app, &fixture("submit-json.json")).await;

    assert_eq!(resp.status(), 201);
    let body = json_of(&resp);
    let obj = body.as_object().unwrap();
    assert_eq!(
        obj.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["lead_id", "submission_id"]
    );
    assert!(body["lead_id"].as_str().unwrap().starts_with("ld-"));
    assert!(body["submission_id"].as_str().unwrap().starts_with("sb-"));
    assert_cors(&resp);
    assert_eq!(header_of(&resp, "cache-control"), Some("no-store"));
    assert_eq!(header_of(&resp, "idempotent-replayed"), None);
    assert_eq!(submission_count(&app), 1);
}

#[tokio::test]
async fn the_handler_records_the_request_context_as_technical_data() {
    let app = app().await;

    let resp = send(&app, &fixture("submit-json.json")).await;

    assert_eq!(resp.status(), 201);
    let st = app.store().lock();
    let sub = st.submissions.values().next().unwrap();
    assert_eq!(sub.technical.ip.as_deref(), Some("203.0.113.10"));
    assert_eq!(
        sub.technical.user_agent.as_deref(),
        Some("Mozilla/5.0 (X11; Linux x86_64) DemoBrowser/1.0")
    );
    assert_eq!(
        sub.technical.page_url.as_deref(),
        Some("http://127.0.0.1:8080/")
    );
    assert_eq!(sub.fields["company"], "Pop SRL");
    assert_eq!(sub.consents[0].version, CONSENT_VERSION);
    assert!(sub.consents[0].granted);
}

#[tokio::test]
async fn a_plain_form_post_is_redirected_to_the_thanks_page() {
    let app = app().await;

    let resp = send(&app, &fixture("submit-form.json")).await;

    assert_eq!(resp.status(), 303, "body: {}", text_of(&resp));
    assert_eq!(header_of(&resp, "location"), Some(REDIRECT));
    assert!(resp.body().is_empty());
    assert_eq!(submission_count(&app), 1);
    let st = app.store().lock();
    let sub = st.submissions.values().next().unwrap();
    assert_eq!(sub.fields["message"], "Hello from a plain form");
    assert!(sub.consents[0].granted, "consent_marketing=on");
}

#[tokio::test]
async fn a_plain_form_post_that_accepts_json_gets_201_json() {
    let app = app().await;
    let ev = with_header(fixture("submit-form.json"), "accept", "application/json");

    let resp = send(&app, &ev).await;

    assert_eq!(resp.status(), 201);
    let body = json_of(&resp);
    assert!(body["submission_id"].is_string() && body["lead_id"].is_string());
    assert_eq!(header_of(&resp, "location"), None);
    assert_cors(&resp);
}

#[tokio::test]
async fn a_server_to_server_post_without_origin_is_accepted_without_cors_headers() {
    let app = app().await;
    let ev = without_header(fixture("submit-json.json"), "origin");

    let resp = send(&app, &ev).await;

    assert_eq!(resp.status(), 201);
    assert_no_cors(&resp);
}

#[tokio::test]
async fn the_form_id_is_read_from_the_raw_path_when_path_parameters_are_missing() {
    let app = app().await;
    let mut ev = fixture("submit-json.json");
    ev.as_object_mut().unwrap().remove("pathParameters");

    let resp = send(&app, &ev).await;

    assert_eq!(resp.status(), 201, "body: {}", text_of(&resp));
}

#[tokio::test]
async fn a_filled_honeypot_looks_like_a_success_and_stores_nothing() {
    let app = app().await;
    let mut body = valid_json();
    body["_gotcha"] = json!("I am a bot");

    let resp = send(&app, &json_post(&body)).await;

    assert_eq!(resp.status(), 201);
    let body = json_of(&resp);
    assert!(body["lead_id"].is_string() && body["submission_id"].is_string());
    assert_cors(&resp);
    assert_eq!(submission_count(&app), 0);
}

// ---------------------------------------------------------------------------------------------
// 400: the body
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_fields_are_answered_400_with_a_message_per_field() {
    let app = app().await;
    let body = json!({ "email": "not-an-email", "phone": "0712", "shoe_size": "44" });

    let resp = send(&app, &json_post(&body)).await;

    let error = assert_error(&resp, 400, "invalid_fields");
    let fields = error["fields"].as_object().expect("fields");
    assert_eq!(
        fields.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["email", "phone", "shoe_size"]
    );
    assert!(fields.values().all(Value::is_string));
    assert!(
        !resp.body().windows(12).any(|w| w == b"not-an-email"),
        "values are not echoed"
    );
    assert_cors(&resp);
    assert_eq!(submission_count(&app), 0);
}

#[tokio::test]
async fn invalid_fields_of_a_plain_form_get_an_html_page_that_escapes_field_names() {
    let app = app().await;
    let ev = form_post("email=ana%40example.com&%3Cscript%3Ealert(1)%3C%2Fscript%3E=x");

    let resp = send(&app, &ev).await;

    let html = assert_html_error(&resp, 400);
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("is not a field of this form"));
    assert_eq!(submission_count(&app), 0);
}

#[tokio::test]
async fn invalid_json_is_answered_400_invalid_json() {
    let app = app().await;

    let resp = send(&app, &json_raw("{\"email\": \"ana@example.com\",")).await;

    assert_error(&resp, 400, "invalid_json");
}

#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_answered_400_invalid_body() {
    let app = app().await;

    for body in ["[]", "\"text\"", "42", "null", "true"] {
        let resp = send(&app, &json_raw(body)).await;
        assert_error(&resp, 400, "invalid_body");
    }
}

#[tokio::test]
async fn a_repeated_form_field_is_answered_400() {
    let app = app().await;
    let ev = with_header(
        form_post("email=a%40example.com&email=b%40example.com"),
        "accept",
        "application/json",
    );

    let resp = send(&app, &ev).await;

    let error = assert_error(&resp, 400, "invalid_fields");
    assert_eq!(error["fields"]["email"], "was given more than once");
}

#[tokio::test]
async fn a_form_body_that_is_not_utf8_is_answered_400() {
    let app = app().await;
    let ev = with_header(
        binary_body(fixture("submit-form.json"), b"email=\xff\xfe"),
        "accept",
        "application/json",
    );

    let resp = send(&app, &ev).await;

    assert_error(&resp, 400, "invalid_body");
}

// ---------------------------------------------------------------------------------------------
// 413 / 415
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_body_over_64_kib_is_answered_413() {
    let app = app().await;
    let limit = lead_intake::MAX_BODY_BYTES;
    assert_eq!(limit, 64 * 1024);
    // {"email":"a@b.co","message":"xxxx..."} padded to an exact size.
    let sized = |size: usize| {
        let head = r#"{"email":"a@b.co","message":""#;
        let tail = r#""}"#;
        format!("{head}{}{tail}", "x".repeat(size - head.len() - tail.len()))
    };

    let over = send(&app, &json_raw(&sized(limit + 1))).await;
    let at_limit = send(&app, &json_raw(&sized(limit))).await;

    assert_error(&over, 413, "payload_too_large");
    // Exactly at the limit is parsed (and then refused for the message's length).
    let error = assert_error(&at_limit, 400, "invalid_fields");
    assert!(error["fields"]["message"].is_string());
}

#[tokio::test]
async fn a_plain_form_body_over_64_kib_is_answered_413() {
    let app = app().await;
    let body = format!("email=a%40b.co&message={}", "x".repeat(70_000));
    let ev = with_header(form_post(&body), "accept", "application/json");

    let resp = send(&app, &ev).await;

    assert_error(&resp, 413, "payload_too_large");
}

#[tokio::test]
async fn text_plain_is_answered_415() {
    let app = app().await;
    let ev = with_header(fixture("submit-json.json"), "content-type", "text/plain");

    let resp = send(&app, &ev).await;

    assert_error(&resp, 415, "unsupported_media_type");
    assert_eq!(submission_count(&app), 0);
}

#[tokio::test]
async fn a_missing_content_type_is_answered_415() {
    let app = app().await;
    let ev = without_header(fixture("submit-json.json"), "content-type");

    let resp = send(&app, &ev).await;

    assert_error(&resp, 415, "unsupported_media_type");
}

#[tokio::test]
async fn content_type_parameters_and_case_are_accepted() {
    let app = app().await;

    for ct in ["application/json; charset=utf-8", "Application/JSON"] {
        let ev = with_header(json_post(&valid_json()), "content-type", ct);
        let resp = send(&app, &ev).await;
        assert_eq!(resp.status(), 201, "{ct}: {}", text_of(&resp));
    }
}

// ---------------------------------------------------------------------------------------------
// 404 / 405 / 403
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_form_is_answered_404() {
    let app = app().await;
    let ev = with_form_id(fixture("submit-json.json"), "no-such-form");

    let resp = send(&app, &ev).await;

    assert_error(&resp, 404, "form_not_found");
    assert_no_cors(&resp);
}

#[tokio::test]
async fn a_malformed_form_id_is_answered_404_without_a_lookup() {
    let app = app().await;
    let long = "x".repeat(65);

    for bad in [
        "Demo-Contact",
        "demo#contact",
        "demo contact",
        "",
        long.as_str(),
    ] {
        let ev = with_form_id(fixture("submit-json.json"), bad);
        let resp = send(&app, &ev).await;
        assert_error(&resp, 404, "form_not_found");
    }
    assert!(app.store().calls().is_empty(), "{:?}", app.store().calls());
}

#[tokio::test]
async fn get_is_answered_405() {
    let app = app().await;

    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let resp = send(&app, &with_method(fixture("submit-json.json"), method)).await;
        assert_error(&resp, 405, "method_not_allowed");
    }
    assert_eq!(submission_count(&app), 0);
}

#[tokio::test]
async fn a_disabled_form_is_answered_403_form_disabled() {
    let mut form = demo_form();
    form.enabled = false;
    let app = app_with(form, Some(TenantStatus::Active), IntakeSettings::default()).await;

    let resp = send(&app, &fixture("submit-json.json")).await;

    assert_error(&resp, 403, "form_disabled");
    assert_cors(&resp);
}

#[tokio::test]
async fn an_inactive_tenant_is_answered_403_tenant_inactive() {
    for status in [
        Some(TenantStatus::Suspended),
        Some(TenantStatus::Closed),
        None,
    ] {
        let app = app_with(demo_form(), status, IntakeSettings::default()).await;

        let resp = send(&app, &fixture("submit-json.json")).await;

        assert_error(&resp, 403, "tenant_inactive");
        assert_eq!(submission_count(&app), 0);
    }
}

#[tokio::test]
async fn an_origin_the_form_does_not_allow_is_answered_403_without_cors() {
    let app = app().await;
    let ev = with_header(
        fixture("submit-json.json"),
        "origin",
        "https://evil.example",
    );

    let resp = send(&app, &ev).await;

    assert_error(&resp, 403, "origin_not_allowed");
    assert_no_cors(&resp);
    assert_eq!(submission_count(&app), 0);
}

// ---------------------------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_replays_the_first_answer() {
    let app = app().await;
    let ev = with_header(fixture("submit-json.json"), "idempotency-key", "order-7f3a");

    let first = send(&app, &ev).await;
    let retry = send(&app, &ev).await;

    assert_eq!(first.status(), 201);
    assert_eq!(retry.status(), 201);
    assert_eq!(json_of(&first), json_of(&retry));
    assert_eq!(header_of(&first, "idempotent-replayed"), None);
    assert_eq!(header_of(&retry, "idempotent-replayed"), Some("true"));
    assert_cors(&retry);
    assert_eq!(submission_count(&app), 1);
}

#[tokio::test]
async fn a_replayed_plain_form_post_is_redirected_again() {
    let app = app().await;
    let ev = with_header(fixture("submit-form.json"), "idempotency-key", "form-1");

    let first = send(&app, &ev).await;
    let retry = send(&app, &ev).await;

    assert_eq!(first.status(), 303);
    assert_eq!(retry.status(), 303);
    assert_eq!(header_of(&retry, "location"), Some(REDIRECT));
    assert_eq!(header_of(&retry, "idempotent-replayed"), Some("true"));
}

#[tokio::test]
async fn an_idempotency_key_reused_with_another_body_is_answered_422() {
    let app = app().await;
    let first = with_header(json_post(&valid_json()), "idempotency-key", "k-1");
    let mut other = valid_json();
    other["message"] = json!("A different message");
    let second = with_header(json_post(&other), "idempotency-key", "k-1");

    assert_eq!(send(&app, &first).await.status(), 201);
    let resp = send(&app, &second).await;

    assert_error(&resp, 422, "idempotency_key_reused");
    assert_cors(&resp);
    assert_eq!(submission_count(&app), 1);
}

#[tokio::test]
async fn an_idempotency_key_too_long_or_with_invisible_characters_is_answered_400() {
    let app = app().await;
    let too_long = "k".repeat(256);

    for key in [too_long.as_str(), "has space", "tab\there"] {
        let ev = with_header(fixture("submit-json.json"), "idempotency-key", key);
        let resp = send(&app, &ev).await;
        assert_error(&resp, 400, "invalid_idempotency_key");
    }
    let at_limit = with_header(
        fixture("submit-json.json"),
        "idempotency-key",
        &"k".repeat(255),
    );
    assert_eq!(send(&app, &at_limit).await.status(), 201);
    assert_eq!(submission_count(&app), 1);
}

#[tokio::test]
async fn a_non_ascii_idempotency_key_is_answered_400() {
    let app = app().await;
    let ev = with_header(fixture("submit-json.json"), "idempotency-key", "clé-ü-1");

    let resp = send(&app, &ev).await;

    assert_error(&resp, 400, "invalid_idempotency_key");
    assert_eq!(submission_count(&app), 0);
}

/// What the embed snippet posts (`shared_leads::embed`): a CORS-simple request, so the browser
/// sends no preflight. URL-encoded like a plain form, but `Accept: application/json` asks for the
/// JSON answer, and the key a retry reuses is in the body.
fn embed_post(body: &str) -> Value {
    let mut ev = fixture("submit-embed.json");
    ev["body"] = json!(body);
    ev
}

#[tokio::test]
async fn the_embed_snippets_form_post_is_answered_json_and_its_retry_is_replayed() {
    let app = app().await;
    let ev = fixture("submit-embed.json");
    assert_eq!(
        ev["headers"]["content-type"],
        "application/x-www-form-urlencoded;charset=UTF-8"
    );

    let first = send(&app, &ev).await;
    let retry = send(&app, &ev).await;

    assert_eq!(first.status(), 201);
    assert_eq!(header_of(&first, "content-type"), Some("application/json"));
    let body = json_of(&first);
    assert!(body["submission_id"].as_str().unwrap().starts_with("sb-"));
    assert!(body["lead_id"].as_str().unwrap().starts_with("ld-"));
    assert_cors(&first);
    assert_eq!(retry.status(), 201);
    assert_eq!(json_of(&retry), body);
    assert_eq!(header_of(&retry, "idempotent-replayed"), Some("true"));
    assert_eq!(submission_count(&app), 1);
    // The key is the form machinery's: not stored among the answers.
    let stored = format!("{:?}", app.store().lock().submissions);
    assert!(!stored.contains("3f1c9a52"), "{stored}");

    // The same key with another body is refused, in JSON, like the header's.
    let other = embed_post(
        "email=maria.ionescu%40example.com&message=Another&_idempotency_key=3f1c9a52-7d4e-4b8a-9c0e-2a6f1d8b7e43",
    );
    let resp = send(&app, &other).await;
    assert_error(&resp, 422, "idempotency_key_reused");
    assert_cors(&resp);
    assert_eq!(submission_count(&app), 1);
}

#[tokio::test]
async fn a_form_post_without_accept_json_is_still_redirected_whatever_the_key() {
    let app = app().await;
    let ev = without_header(fixture("submit-embed.json"), "accept");

    let first = send(&app, &ev).await;
    let retry = send(&app, &ev).await;

    assert_eq!(first.status(), 303);
    assert_eq!(header_of(&first, "location"), Some(REDIRECT));
    assert_eq!(retry.status(), 303);
    assert_eq!(header_of(&retry, "idempotent-replayed"), Some("true"));
    assert_eq!(submission_count(&app), 1);
}

#[tokio::test]
async fn a_body_idempotency_key_is_checked_like_the_header() {
    let app = app().await;
    let too_long = "k".repeat(256);
    for key in [too_long.as_str(), "has space", "", "clé"] {
        let body = format!(
            "email=a%40example.com&_idempotency_key={}",
            key.replace(' ', "+").replace('é', "%C3%A9")
        );
        let resp = send(&app, &embed_post(&body)).await;
        assert_error(&resp, 400, "invalid_idempotency_key");
    }
    // In a JSON body: a string, like the header; no other type stands for one.
    for key in [json!(true), json!(12), json!(null), json!(["k"])] {
        let resp = send(
            &app,
            &json_post(&json!({"email": "a@example.com", "_idempotency_key": key})),
        )
        .await;
        assert_error(&resp, 400, "invalid_idempotency_key");
    }
    // Header and body: the same key, or refused.
    let both = |header: &str| {
        with_header(
            embed_post("email=a%40example.com&_idempotency_key=key-1"),
            "idempotency-key",
            header,
        )
    };
    assert_error(
        &send(&app, &both("key-2")).await,
        400,
        "invalid_idempotency_key",
    );
    assert_eq!(submission_count(&app), 0);
    assert_eq!(send(&app, &both("key-1")).await.status(), 201);
    let replayed = send(
        &app,
        &with_header(
            json_post(&json!({"email": "a@example.com"})),
            "idempotency-key",
            "key-1",
        ),
    )
    .await;
    // The key is the same whichever way it came; the body differs, so the retry is refused.
    assert_error(&replayed, 422, "idempotency_key_reused");
    assert_eq!(submission_count(&app), 1);
}

// ---------------------------------------------------------------------------------------------
// 429
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn too_many_submissions_from_one_address_are_answered_429_with_retry_after() {
    let settings = IntakeSettings {
        rate_limit_per_ip_per_minute: 1,
        ..IntakeSettings::default()
    };
    let app = app_with(demo_form(), Some(TenantStatus::Active), settings).await;
    let mut second = valid_json();
    second["email"] = json!("ion@example.com");

    assert_eq!(send(&app, &json_post(&valid_json())).await.status(), 201);
    let resp = send(&app, &json_post(&second)).await;

    assert_error(&resp, 429, "rate_limited");
    let retry_after: u64 = header_of(&resp, "retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_cors(&resp);
    // Another address is still welcome.
    let other_ip = with_source_ip(json_post(&second), "198.51.100.99");
    assert_eq!(send(&app, &other_ip).await.status(), 201);
}

// ---------------------------------------------------------------------------------------------
// CORS preflight
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_204_with_cors() {
    let app = app().await;

    let resp = send(&app, &preflight()).await;

    assert_eq!(resp.status(), 204);
    assert!(resp.body().is_empty());
    assert_cors(&resp);
    let methods = header_of(&resp, "access-control-allow-methods").unwrap();
    assert!(methods.split(',').any(|m| m.trim() == "POST"), "{methods}");
    let headers = header_of(&resp, "access-control-allow-headers")
        .unwrap()
        .to_lowercase();
    for h in ["content-type", "idempotency-key"] {
        assert!(headers.split(',').any(|x| x.trim() == h), "{headers}");
    }
    let max_age: u32 = header_of(&resp, "access-control-max-age")
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age > 0);
    assert_eq!(app.store().calls(), vec!["form"], "a preflight is one read");
}

#[tokio::test]
async fn a_preflight_from_another_origin_is_answered_403_without_cors() {
    let app = app().await;

    for ev in [
        with_header(preflight(), "origin", "https://evil.example"),
        without_header(preflight(), "origin"),
    ] {
        let resp = send(&app, &ev).await;
        assert_error(&resp, 403, "origin_not_allowed");
        assert_no_cors(&resp);
    }
}

#[tokio::test]
async fn a_preflight_for_an_unknown_form_is_answered_404() {
    let app = app().await;

    let resp = send(&app, &with_form_id(preflight(), "no-such-form")).await;

    assert_error(&resp, 404, "form_not_found");
    assert_no_cors(&resp);
}

#[tokio::test]
async fn a_preflight_for_a_disabled_form_is_answered_403() {
    let mut form = demo_form();
    form.enabled = false;
    let app = app_with(form, Some(TenantStatus::Active), IntakeSettings::default()).await;

    let resp = send(&app, &preflight()).await;

    assert_error(&resp, 403, "form_disabled");
}

// ---------------------------------------------------------------------------------------------
// Garbage in, never 5xx
// ---------------------------------------------------------------------------------------------

/// Deterministic pseudo-random bytes (xorshift), so a failure reproduces.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn garbage_events() -> Vec<(String, Value)> {
    let json_ev = || fixture("submit-json.json");
    let form_ev = || with_header(fixture("submit-form.json"), "accept", "application/json");
    let huge_name = "n".repeat(60_000);
    let deep_arrays = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(3_000), "}".repeat(3_000));
    let mut cases: Vec<(String, Value)> = vec![
        (
            "random bytes as JSON".into(),
            binary_body(json_ev(), &noise(4096, 1)),
        ),
        (
            "random bytes as a form".into(),
            binary_body(form_ev(), &noise(4096, 2)),
        ),
        (
            "random bytes over the limit".into(),
            binary_body(json_ev(), &noise(70_000, 3)),
        ),
        ("NUL bytes as JSON".into(), binary_body(json_ev(), &[0; 64])),
        (
            "NUL bytes as a form".into(),
            binary_body(form_ev(), &[0; 64]),
        ),
        ("empty JSON body".into(), json_raw("")),
        ("empty form body".into(), binary_body(form_ev(), b"")),
        (
            "huge JSON field name".into(),
            json_post(&json!({ huge_name.clone(): "x", "email": "a@b.co" })),
        ),
        (
            "huge form field name".into(),
            binary_body(
                form_ev(),
                format!("{huge_name}=x&email=a%40b.co").as_bytes(),
            ),
        ),
        (
            "huge field value".into(),
            json_post(&json!({ "email": "a@b.co", "name": "y".repeat(60_000) })),
        ),
        (
            "huge email".into(),
            json_post(&json!({ "email": format!("{}@example.com", "a".repeat(60_000)) })),
        ),
        ("deeply nested arrays".into(), json_raw(&deep_arrays)),
        ("deeply nested objects".into(), json_raw(&deep_objects)),
        (
            "nested field values".into(),
            json_post(&json!({ "email": { "a": [1, { "b": null }] }, "name": [] })),
        ),
        (
            "NUL inside values".into(),
            json_post(
                &json!({ "email": "a\u{0}@b.co", "name": "\u{0}\u{0}", "message": "x\u{0}y" }),
            ),
        ),
        (
            "NUL as a field name".into(),
            json_post(&json!({ "\u{0}": "x", "email": "a@b.co" })),
        ),
        (
            "NUL in a form".into(),
            binary_body(form_ev(), b"%00=%00&email=a%00%40b.co&name=%00"),
        ),
        (
            "control characters".into(),
            json_post(&json!({ "email": "a@b.co", "name": "\u{1b}[31m\u{7}" })),
        ),
        (
            "unicode everywhere".into(),
            json_post(
                &json!({ "email": "ü@bücher.de", "name": "👩‍💻\u{202e}", "consent_marketing": "✓" }),
            ),
        ),
        (
            "numbers out of range".into(),
            json_raw(r#"{"email":"a@b.co","name":1e999999,"message":-0}"#),
        ),
        (
            "duplicate JSON keys".into(),
            json_raw(r#"{"email":"a@b.co","email":"c@d.co"}"#),
        ),
        (
            "booleans for text".into(),
            json_post(&json!({ "email": true, "name": false, "_gotcha": false })),
        ),
        (
            "consent garbage".into(),
            json_post(
                &json!({ "email": "a@b.co", "consent_marketing": "maybe", "consent_": true, "consent_x": 1 }),
            ),
        ),
        (
            "machinery keys".into(),
            json_post(
                &json!({ "email": "a@b.co", "_page_url": "x".repeat(50_000), "_referrer": "\u{0}" }),
            ),
        ),
        (
            "form punctuation soup".into(),
            binary_body(form_ev(), b"&&&==&=&%%%&%zz=%&email=%40"),
        ),
        (
            "truncated UTF-8".into(),
            binary_body(json_ev(), b"{\"email\":\"\xe2\x82\"}"),
        ),
        (
            "UTF-16 JSON".into(),
            with_header(
                binary_body(json_ev(), b"\xff\xfe{\x00}\x00"),
                "content-type",
                "application/json; charset=utf-16",
            ),
        ),
        (
            "multipart".into(),
            with_header(json_ev(), "content-type", "multipart/form-data; boundary=x"),
        ),
        (
            "content-type soup".into(),
            with_header(json_ev(), "content-type", ";;;application/json;;"),
        ),
        (
            "origin null".into(),
            with_header(json_ev(), "origin", "null"),
        ),
        (
            "huge headers".into(),
            with_header(
                with_header(json_ev(), "referer", &"r".repeat(20_000)),
                "user-agent",
                &"u".repeat(20_000),
            ),
        ),
        (
            "non-ASCII user agent".into(),
            with_header(json_ev(), "user-agent", "Brôwser/1.0 ☃"),
        ),
        (
            "blank idempotency key".into(),
            with_header(json_ev(), "idempotency-key", "   "),
        ),
        (
            "punctuation idempotency key".into(),
            with_header(json_ev(), "idempotency-key", "\"'<>;{}%00"),
        ),
        (
            "long form id".into(),
            with_form_id(json_ev(), &"a".repeat(10_000)),
        ),
        (
            "form id with NUL".into(),
            with_form_id(json_ev(), "demo\u{0}contact"),
        ),
        ("HEAD".into(), with_method(json_ev(), "HEAD")),
        (
            "preflight with garbage origin".into(),
            with_header(preflight(), "origin", "💥"),
        ),
        (
            "preflight with a body".into(),
            binary_body(preflight(), &noise(1024, 4)),
        ),
    ];
    for seed in 10..20 {
        cases.push((
            format!("noise seed {seed}"),
            binary_body(json_ev(), &noise(512, seed)),
        ));
    }
    cases
}

#[tokio::test]
async fn no_garbage_input_is_ever_answered_5xx() {
    let app = app().await;

    for (name, ev) in garbage_events() {
        let resp = send(&app, &ev).await;
        let status = resp.status().as_u16();
        assert!(status < 500, "{name}: {status} {}", text_of(&resp));
        if status >= 400 {
            let ct = header_of(&resp, "content-type")
                .unwrap_or_default()
                .to_string();
            if ct.starts_with("text/html") {
                assert!(text_of(&resp).starts_with("<!doctype html>"), "{name}");
            } else {
                let body: Value = serde_json::from_slice(resp.body())
                    .unwrap_or_else(|e| panic!("{name}: error body is not JSON: {e}"));
                assert!(body["error"]["code"].is_string(), "{name}: {body}");
                assert!(body["error"]["message"].is_string(), "{name}: {body}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics (CloudWatch EMF lines, captured with the logs)
// ---------------------------------------------------------------------------------------------

/// The EMF metric lines captured, as (metric name, its dimensions without `_aws`).
fn metric_lines(text: &str) -> Vec<(String, Value)> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .map(|mut v| {
            let aws = v.as_object_mut().unwrap().remove("_aws").unwrap();
            let name = aws["CloudWatchMetrics"][0]["Metrics"][0]["Name"]
                .as_str()
                .unwrap()
                .to_string();
            assert_eq!(aws["CloudWatchMetrics"][0]["Namespace"], "LeadPlatform");
            v.as_object_mut().unwrap().remove(&name);
            (name, v)
        })
        .collect()
}

#[tokio::test]
async fn outcomes_are_counted_as_metrics_without_personal_data_or_a_visible_difference() {
    let app = app().await;
    let suppressed = shared_core::domain::Email::parse("erased.person@example.com").unwrap();
    let bidx = BlindIndexKey::new(vec![42; 32]).unwrap().email(&suppressed);
    app.store()
        .suppress(&TenantId::parse(TENANT).unwrap(), &bidx);
    let (logs, guard) = shared_core::telemetry::capture();

    let accepted = send(&app, &json_post(&valid_json())).await;
    let mut spam = valid_json();
    spam["_gotcha"] = json!("I am a bot");
    let spam = send(&app, &json_post(&spam)).await;
    let mut erased = valid_json();
    erased["email"] = json!("erased.person@example.com");
    erased["name"] = json!("Erased Person");
    let erased = send(&app, &json_post(&erased)).await;
    let invalid = send(&app, &json_post(&json!({ "email": "not-an-email" }))).await;
    let unsupported = send(
        &app,
        &with_header(json_post(&valid_json()), "content-type", "text/plain"),
    )
    .await;
    drop(guard);

    // To the caller, spam and a suppressed person look exactly like an acceptance.
    for resp in [&accepted, &spam, &erased] {
        assert_eq!(resp.status(), 201);
        let body = json_of(resp);
        let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["lead_id", "submission_id"]);
    }
    assert_eq!(invalid.status(), 400);
    assert_eq!(unsupported.status(), 415);

    let text = logs.text();
    let dims = |outcome: &str, key: &str| json!({ "Function": "lead-intake", key: outcome });
    assert_eq!(
        metric_lines(&text),
        [
            ("SubmissionsAccepted".to_string(), dims("new_lead", "Kind")),
            ("SubmissionsDiscarded".to_string(), dims("spam", "Outcome")),
            (
                "SubmissionsDiscarded".to_string(),
                dims("suppressed", "Outcome")
            ),
            (
                "SubmissionsRejected".to_string(),
                dims("invalid_fields", "Outcome")
            ),
            (
                "SubmissionsRejected".to_string(),
                dims("unsupported_media_type", "Outcome")
            ),
        ],
        "{text}"
    );
    for leaked in [
        "erased.person",
        "Erased Person",
        "ana.pop",
        "Ana Pop",
        "not-an-email",
    ] {
        assert!(!text.contains(leaked), "{leaked} leaked:\n{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// The proof-of-work challenge (issue 19)
// ---------------------------------------------------------------------------------------------

fn body_json(resp: &Response<Body>) -> Value {
    match resp.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        Body::Binary(b) => serde_json::from_slice(b).unwrap(),
        Body::Empty => Value::Null,
        _ => Value::Null,
    }
}

#[tokio::test]
async fn a_challenge_is_altcha_json_never_cached_and_readable_by_the_forms_origin_only() {
    let app = app().await;
    let resp = send(&app, &fixture("challenge.json")).await;
    assert_eq!(resp.status(), 200);
    let c = body_json(&resp);
    assert_eq!(c["algorithm"], json!("SHA-256"));
    assert_eq!(c["maxnumber"], json!(50_000));
    assert!(c["salt"].as_str().unwrap().contains("form=demo-contact"));
    assert_eq!(c["challenge"].as_str().unwrap().len(), 64);
    assert_eq!(c["signature"].as_str().unwrap().len(), 64);
    let h = resp.headers();
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["access-control-allow-origin"], ORIGIN);

    let mut other = fixture("challenge.json");
    other["headers"]["origin"] = json!("https://evil.example");
    let resp = send(&app, &other).await;
    assert_eq!(resp.status(), 200);
    assert!(!resp.headers().contains_key("access-control-allow-origin"));

    let mut post = fixture("challenge.json");
    post["requestContext"]["http"]["method"] = json!("POST");
    let resp = send(&app, &post).await;
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET");

    let mut missing = fixture("challenge.json");
    missing["rawPath"] = json!("/v1/forms/nope/challenge");
    missing["requestContext"]["http"]["path"] = json!("/v1/forms/nope/challenge");
    missing["pathParameters"]["formId"] = json!("nope");
    let resp = send(&app, &missing).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(body_json(&resp)["error"]["code"], json!("form_not_found"));
}
