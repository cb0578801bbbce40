//! The handler end to end over the in-memory store: the Stripe events of `events/billing-webhook/`
//! signed at test time with the injected clock, wrapped in the API Gateway v2 fixture.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use billing_webhook::config::Settings;
use billing_webhook::stripe::{signature_header, Stripe};
use billing_webhook::{App, Directory};
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use shared_accounts::auth::jwt::{
    AccessClaims, TokenSigner, VerifyingKeys, ACCESS_TOKEN_TTL_SECS, ISSUER,
};
use shared_accounts::auth::permissions::Role;
use shared_accounts::{Mfa, User};
use shared_billing::ports::EventOutcome;
use shared_billing::{Entitlements, Plan, ProviderId, SubscriptionStatus};
use shared_core::clock::FixedClock;
use shared_core::domain::{Email, TenantId, UserId};
use shared_leads::fakes::MemoryBillingStore;
use shared_mail::MemoryMailer;
use time::macros::datetime;
use time::OffsetDateTime;

const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/billing-webhook/");
const SECRET: &str = "whsec_local_dev";
const TENANT: &str = "demo-tenant";
const T0: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);

#[derive(Default)]
struct Team(Mutex<HashMap<TenantId, Vec<User>>>);

impl Directory for Team {
    async fn team(&self, tenant: &TenantId) -> anyhow::Result<Vec<User>> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .get(tenant)
            .cloned()
            .unwrap_or_default())
    }
}

type TestApp = App<MemoryBillingStore, MemoryMailer, Team>;

fn tenant() -> TenantId {
    TenantId::parse(TENANT).unwrap()
}

fn user(id: &str, role: Role, email: &str) -> User {
    User {
        user_id: UserId::parse(id).unwrap(),
        tenant_id: tenant(),
        email: Email::parse(email).unwrap(),
        name: id.into(),
        phone: None,
        role,
        password_hash: String::new(),
        email_verified: true,
        created_at: T0,
        mfa: Mfa::default(),
        last_login: None,
        policy: None,
    }
}

/// auth's key pair in these tests: it signs, billing-webhook only verifies.
fn signer() -> TokenSigner {
    TokenSigner::from_json(&format!(
        r#"{{"kid":"k1","private_key":"{}"}}"#,
        STANDARD.encode([9u8; 32])
    ))
    .unwrap()
}

fn verifier() -> VerifyingKeys {
    VerifyingKeys::from_json(&format!(
        r#"{{"keys":{{"k1":"{}"}}}}"#,
        signer().public_key()
    ))
    .unwrap()
}

struct World {
    app: TestApp,
    clock: Arc<FixedClock>,
}

fn world() -> World {
    let store = MemoryBillingStore::new();
    for (name, price, n) in [
        ("starter", "price_starter_local", 5_000),
        ("pro", "price_pro_local", 50_000),
    ] {
        store.add_plan(Plan {
            provider: "stripe".into(),
            price_id: ProviderId::parse(price).unwrap(),
            name: name.into(),
            entitlements: Entitlements {
                monthly_submissions: n,
                seats: 10,
                forms: 10,
            },
        });
    }
    let team = Team::default();
    team.0.lock().unwrap().insert(
        tenant(),
        vec![
            user("owner-1", Role::Owner, "owner@demo.example"),
            user("member-1", Role::Member, "member@demo.example"),
        ],
    );
    let clock = Arc::new(FixedClock::new(T0));
    World {
        app: App {
            store,
            mailer: MemoryMailer::default(),
            directory: team,
            stripe: Stripe::new(vec![SECRET.into()], 300),
            verifier: verifier(),
            api_keys: None,
            clock: clock.clone(),
            settings: Settings::default(),
        },
        clock,
    }
}

fn stripe_event(name: &str) -> String {
    std::fs::read_to_string(format!("{EVENTS}{name}.json")).unwrap()
}

fn with(body: &str, f: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(body).unwrap();
    f(&mut v);
    v.to_string()
}

/// The API Gateway event Stripe's delivery of `body` becomes, signed now.
fn delivery(w: &World, body: &str, signature: Option<String>) -> Request {
    let mut e: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{EVENTS}webhook-request.json")).unwrap(),
    )
    .unwrap();
    e["body"] = json!(body);
    let headers = e["headers"].as_object_mut().unwrap();
    match signature {
        Some(s) => headers.insert("stripe-signature".into(), json!(s)),
        None => headers.remove("stripe-signature"),
    };
    let _ = w;
    lambda_http::request::from_str(&e.to_string()).unwrap()
}

fn signed(w: &World, body: &str) -> Request {
    delivery(
        w,
        body,
        Some(signature_header(
            SECRET,
            w.clock.now().unix_timestamp(),
            body.as_bytes(),
        )),
    )
}

async fn deliver(w: &World, body: &str) -> Response<Body> {
    billing_webhook::handle(&w.app, signed(w, body)).await
}

fn json_of(r: &Response<Body>) -> Value {
    match r.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        _ => Value::Null,
    }
}

async fn outcome(w: &World, body: &str) -> String {
    let r = deliver(w, body).await;
    assert_eq!(r.status(), 200, "{}", json_of(&r));
    json_of(&r)["outcome"].as_str().unwrap().to_string()
}

use shared_core::clock::Clock;

fn get(w: &World, path: &str, role: Role) -> Request {
    let now = w.clock.now().unix_timestamp();
    let token = signer().issue(&AccessClaims {
        sub: "u-1".into(),
        tid: TENANT.into(),
        role: role.as_str().into(),
        sid: "s-1".into(),
        cep: 0,
        iat: now,
        exp: now + ACCESS_TOKEN_TTL_SECS,
        iss: ISSUER.into(),
        typ: "access".into(),
    });
    let mut e: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{EVENTS}get-subscription.json")).unwrap(),
    )
    .unwrap();
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    e["headers"]["authorization"] = json!(format!("Bearer {token}"));
    lambda_http::request::from_str(&e.to_string()).unwrap()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn checkout_then_subscription_puts_the_tenant_on_its_plan() {
    let w = world();
    assert_eq!(
        outcome(&w, &stripe_event("checkout.session.completed")).await,
        "applied"
    );
    assert_eq!(
        outcome(&w, &stripe_event("customer.subscription.created")).await,
        "applied"
    );

    let st = w.app.store.lock();
    let cus = ("stripe".to_string(), "cus_RlocalDemo0001".to_string());
    assert_eq!(st.customers[&cus].tenant, tenant());
    let s = &st.states[&tenant()];
    assert_eq!(s.status, Some(SubscriptionStatus::Active));
    assert_eq!(s.plan.as_deref(), Some("pro"));
    assert_eq!(s.entitlements.unwrap().monthly_submissions, 50_000);
    assert_eq!(
        s.customer_id.as_ref().unwrap().as_str(),
        "cus_RlocalDemo0001"
    );
    assert_eq!(
        s.current_period_end.unwrap().unix_timestamp(),
        1_795_953_600 + 30 * 86_400
    );
}

#[tokio::test]
async fn a_redelivery_is_answered_200_after_one_read() {
    let w = world();
    let body = stripe_event("invoice.paid");
    assert_eq!(outcome(&w, &body).await, "applied");
    let calls = w.app.store.calls().len();
    assert_eq!(outcome(&w, &body).await, "duplicate");
    assert_eq!(&w.app.store.calls()[calls..], ["load"]);
    assert_eq!(w.app.store.lock().payments.len(), 1);
}

#[tokio::test]
async fn out_of_order_subscription_events_never_move_the_state_back() {
    let w = world();
    // The cancellation request (created T0+600) arrives before the creation (T0-100).
    assert_eq!(
        outcome(&w, &stripe_event("customer.subscription.updated")).await,
        "applied"
    );
    assert_eq!(
        outcome(&w, &stripe_event("customer.subscription.created")).await,
        "stale"
    );
    let st = w.app.store.lock();
    let s = &st.states[&tenant()];
    assert!(s.cancel_at_period_end);
    assert_eq!(s.last_event_id.as_deref(), Some("evt_1RlocalSubUpdated01"));
    let rec = &st.events[&("stripe".to_string(), "evt_1RlocalSubCreated01".to_string())];
    assert_eq!(rec.outcome, EventOutcome::Stale);
}

#[tokio::test]
async fn an_old_subscription_ending_does_not_cancel_the_new_one() {
    let w = world();
    assert_eq!(
        outcome(&w, &stripe_event("customer.subscription.created")).await,
        "applied"
    );
    // A second subscription replaces a canceled one...
    let deleted = stripe_event("customer.subscription.deleted");
    assert_eq!(outcome(&w, &deleted).await, "applied");
    let second = with(&stripe_event("customer.subscription.created"), |v| {
        v["id"] = json!("evt_second_created");
        v["created"] = json!(1_795_953_600 + 40 * 86_400);
        v["data"]["object"]["id"] = json!("sub_second");
    });
    assert_eq!(outcome(&w, &second).await, "applied");
    // ...and a late event of the first one ending changes nothing.
    let late = with(&deleted, |v| {
        v["id"] = json!("evt_late_delete");
        v["created"] = json!(1_795_953_600 + 50 * 86_400);
    });
    assert_eq!(outcome(&w, &late).await, "superseded");
    let st = w.app.store.lock();
    let s = &st.states[&tenant()];
    assert_eq!(s.subscription_id.as_ref().unwrap().as_str(), "sub_second");
    assert_eq!(s.status, Some(SubscriptionStatus::Active));
}

#[tokio::test]
async fn an_invoice_of_an_unknown_customer_is_retried_later() {
    let w = world();
    let unlinked = with(&stripe_event("invoice.paid"), |v| {
        v["data"]["object"]["subscription_details"] = json!({"metadata": {}});
    });
    let r = deliver(&w, &unlinked).await;
    assert_eq!(r.status(), 409);
    assert_eq!(json_of(&r)["error"]["code"], "customer_not_linked");
    assert!(w.app.store.lock().events.is_empty(), "nothing stored");

    assert_eq!(
        outcome(&w, &stripe_event("checkout.session.completed")).await,
        "applied"
    );
    assert_eq!(outcome(&w, &unlinked).await, "applied");
    assert_eq!(w.app.store.lock().invoices.len(), 1);
}

#[tokio::test]
async fn invoices_move_forward_only() {
    let w = world();
    let failed = stripe_event("invoice.payment_failed");
    let action = stripe_event("invoice.payment_action_required");
    // Same invoice: the later event (action required) first, then the earlier failure.
    assert_eq!(outcome(&w, &action).await, "applied");
    assert_eq!(outcome(&w, &failed).await, "stale");
    let st = w.app.store.lock();
    let inv = st
        .invoices
        .values()
        .find(|i| i.invoice_id.as_str() == "in_1RlocalDemo0002")
        .unwrap();
    assert_eq!(
        inv.payment_status,
        Some(shared_billing::PaymentOutcome::ActionRequired)
    );
    drop(st);
    assert!(
        w.app.mailer.sent().is_empty(),
        "no payment-failed email for a stale event"
    );
}

#[tokio::test]
async fn payment_failed_emails_the_billing_contacts_else_the_owner() {
    let w = world();
    assert_eq!(
        outcome(&w, &stripe_event("invoice.payment_failed")).await,
        "applied"
    );
    let sent = w.app.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "owner@demo.example");
    assert!(sent[0].text.contains("29.00 EUR"), "{}", sent[0].text);
    assert!(sent[0].text.contains("LOCALDEMO-0002"));
    assert!(sent[0].text.contains("2027-01-02"), "next attempt date");

    w.app
        .directory
        .0
        .lock()
        .unwrap()
        .get_mut(&tenant())
        .unwrap()
        .push(user("billing-1", Role::Billing, "billing@demo.example"));
    let again = with(&stripe_event("invoice.payment_failed"), |v| {
        v["id"] = json!("evt_second_failure");
        v["created"] = json!(1_795_953_600 + 34 * 86_400);
    });
    assert_eq!(outcome(&w, &again).await, "applied");
    let sent = w.app.mailer.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].to, "billing@demo.example");
}

#[tokio::test]
async fn trial_ending_emails_the_owner() {
    let w = world();
    assert_eq!(
        outcome(&w, &stripe_event("customer.subscription.trial_will_end")).await,
        "applied"
    );
    let sent = w.app.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "owner@demo.example");
    assert!(sent[0].text.contains("2026-12-13"), "{}", sent[0].text);
    assert!(sent[0].text.contains("pro"));
    assert_eq!(
        w.app.store.lock().states[&tenant()].status,
        Some(SubscriptionStatus::Trialing)
    );
}

#[tokio::test]
async fn refunds_are_recorded_against_their_invoice() {
    let w = world();
    assert_eq!(
        outcome(&w, &stripe_event("checkout.session.completed")).await,
        "applied"
    );
    assert_eq!(outcome(&w, &stripe_event("invoice.paid")).await, "applied");
    assert_eq!(
        outcome(&w, &stripe_event("charge.refunded")).await,
        "applied"
    );
    let st = w.app.store.lock();
    let refund = st.refunds.values().next().unwrap();
    assert_eq!(
        refund.invoice_id.as_ref().unwrap().as_str(),
        "in_1RlocalDemo0001"
    );
    assert_eq!(refund.amount_refunded, 2900);
    assert!(refund.fully_refunded);
    assert_eq!(refund.retain_until, time::macros::date!(2032 - 07 - 01));
}

#[tokio::test]
async fn unknown_types_are_ignored_and_counted() {
    let w = world();
    let body = stripe_event("product.created");
    assert_eq!(outcome(&w, &body).await, "ignored");
    let other = with(&body, |v| v["id"] = json!("evt_another_product"));
    assert_eq!(outcome(&w, &other).await, "ignored");
    assert_eq!(
        outcome(&w, &other).await,
        "duplicate",
        "counted once per event"
    );
    let st = w.app.store.lock();
    assert_eq!(
        st.counters[&("stripe".to_string(), "product.created".to_string())],
        2
    );
}

#[tokio::test]
async fn an_event_naming_another_tenant_than_its_customers_has_no_effect() {
    let w = world();
    assert_eq!(
        outcome(&w, &stripe_event("checkout.session.completed")).await,
        "applied"
    );
    let hijack = with(&stripe_event("customer.subscription.created"), |v| {
        v["data"]["object"]["metadata"]["tenant_id"] = json!("tenant-b");
    });
    assert_eq!(outcome(&w, &hijack).await, "customer_conflict");
    let st = w.app.store.lock();
    assert!(!st
        .states
        .contains_key(&TenantId::parse("tenant-b").unwrap()));
    assert!(st.states[&tenant()].status.is_none(), "tenant A unchanged");
}

#[tokio::test]
async fn customers_are_linked_from_metadata_and_marked_deleted() {
    let w = world();
    assert_eq!(
        outcome(&w, &stripe_event("customer.updated")).await,
        "applied"
    );
    assert_eq!(
        outcome(&w, &stripe_event("customer.deleted")).await,
        "applied"
    );
    let st = w.app.store.lock();
    let link = &st.customers[&("stripe".to_string(), "cus_RlocalDemo0001".to_string())];
    assert_eq!(link.tenant, tenant());
    assert!(link.deleted);
}

#[tokio::test]
async fn bad_signatures_are_400_and_store_nothing() {
    let w = world();
    let body = stripe_event("invoice.paid");
    let now = w.clock.now().unix_timestamp();
    let cases = [
        (None, "invalid_signature"),
        (Some("t=1,v1=zz".to_string()), "invalid_signature"),
        (
            Some(signature_header("whsec_wrong", now, body.as_bytes())),
            "invalid_signature",
        ),
        (
            Some(signature_header(SECRET, now - 301, body.as_bytes())),
            "stale_signature",
        ),
    ];
    for (sig, code) in cases {
        let r = billing_webhook::handle(&w.app, delivery(&w, &body, sig)).await;
        assert_eq!(r.status(), 400);
        assert_eq!(json_of(&r)["error"]["code"], code);
    }
    let tampered = body.replace("2900", "1");
    let sig = signature_header(SECRET, now, body.as_bytes());
    let r = billing_webhook::handle(&w.app, delivery(&w, &tampered, Some(sig))).await;
    assert_eq!(r.status(), 400);
    assert!(w.app.store.calls().is_empty(), "not even a read");
}

#[tokio::test]
async fn a_signed_but_unreadable_body_is_400() {
    let w = world();
    for body in ["not json", r#"{"object":"event"}"#, r#"[1,2]"#] {
        let r = deliver(&w, body).await;
        assert_eq!(r.status(), 400, "{body}");
        assert_eq!(json_of(&r)["error"]["code"], "invalid_event");
    }
}

#[tokio::test]
async fn the_billing_view_is_for_owner_admin_and_billing() {
    let w = world();
    outcome(&w, &stripe_event("checkout.session.completed")).await;
    outcome(&w, &stripe_event("customer.subscription.created")).await;
    outcome(&w, &stripe_event("invoice.paid")).await;
    w.app
        .store
        .lock()
        .usage
        .insert((tenant(), "2026-11".into()), 42);

    for role in [Role::Owner, Role::Admin, Role::Billing] {
        let r = billing_webhook::handle(&w.app, get(&w, "/v1/billing/subscription", role)).await;
        assert_eq!(r.status(), 200, "{role:?}");
        let b = json_of(&r);
        assert_eq!(b["plan"], "pro");
        assert_eq!(b["status"], "active");
        assert_eq!(b["usage"]["submissions"], 42);
        assert_eq!(b["usage"]["quota"], 50_000);
        assert_eq!(b["current_period_end"], "2026-12-29T12:00:00Z");

        let r = billing_webhook::handle(&w.app, get(&w, "/v1/billing/invoices", role)).await;
        assert_eq!(r.status(), 200);
        let b = json_of(&r);
        assert_eq!(b["items"][0]["invoice_id"], "in_1RlocalDemo0001");
        assert_eq!(b["items"][0]["amount_paid"], 2900);
    }
    for role in [Role::Member, Role::Viewer] {
        for path in ["/v1/billing/subscription", "/v1/billing/invoices"] {
            let r = billing_webhook::handle(&w.app, get(&w, path, role)).await;
            assert_eq!(r.status(), 403, "{role:?} {path}");
        }
    }
}

#[tokio::test]
async fn a_tenant_without_subscription_sees_the_free_tier() {
    let w = world();
    let r = billing_webhook::handle(&w.app, get(&w, "/v1/billing/subscription", Role::Owner)).await;
    let b = json_of(&r);
    assert_eq!(b["plan"], "free");
    assert_eq!(b["standing"], "free");
    assert_eq!(b["usage"]["quota"], 100);
    assert_eq!(b["entitlements"]["seats"], 3);
}

#[tokio::test]
async fn logs_hold_ids_never_personal_or_card_data() {
    let w = world();
    let (logs, _guard) = shared_core::telemetry::capture();
    for name in [
        "checkout.session.completed",
        "invoice.payment_failed",
        "charge.refunded",
        "customer.updated",
    ] {
        outcome(&w, &stripe_event(name)).await;
    }
    assert_eq!(w.app.mailer.sent().len(), 1, "an email went out");
    let text = logs.text();
    assert!(text.contains("evt_1RlocalInvFailed01"), "{text}");
    assert!(text.contains("\"tenant_id\":\"demo-tenant\""), "{text}");
    for forbidden in [
        "owner@demo.example",
        "owner@demo-co.example",
        "billing@demo-co.example",
        "Demo Co",
        "Memorandumului",
        "4242",
        "Xt5EWLLDS7FJjR1c",
        "whsec_",
    ] {
        assert!(
            !text.contains(forbidden),
            "log leaks {forbidden:?}:\n{text}"
        );
    }
}

#[tokio::test]
async fn processed_events_and_redeliveries_are_counted_as_metrics() {
    let w = world();
    let body = stripe_event("checkout.session.completed");
    let (logs, guard) = shared_core::telemetry::capture();
    assert_eq!(outcome(&w, &body).await, "applied");
    assert_eq!(outcome(&w, &body).await, "duplicate");
    drop(guard);
    let metrics: Vec<(String, Value)> = logs
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            let name = v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"]
                .as_str()?
                .to_string();
            assert_eq!(v[&name], 1.0);
            Some((
                name,
                json!({ "Outcome": v["Outcome"], "Function": v["Function"] }),
            ))
        })
        .collect();
    assert_eq!(
        metrics,
        [
            (
                "WebhooksProcessed".to_string(),
                json!({ "Outcome": "applied", "Function": "billing-webhook" })
            ),
            (
                "WebhookDuplicates".to_string(),
                json!({ "Outcome": null, "Function": "billing-webhook" })
            ),
        ]
    );
}

/// Once retention erased the workspace and closed its customer link (`tenant_erased_at`), a
/// subscription event the provider still sends writes no subscription state again; an invoice
/// is still filed (an accounting document).
#[tokio::test]
async fn an_erased_workspaces_subscription_is_not_written_again_but_its_invoices_are_filed() {
    let w = world();
    assert_eq!(
        outcome(&w, &stripe_event("customer.subscription.created")).await,
        "applied"
    );
    {
        // What the erasure leaves: no state, the link closed.
        let mut st = w.app.store.lock();
        st.states.remove(&tenant());
        for link in st.customers.values_mut() {
            link.erased = true;
        }
    }
    assert_eq!(
        outcome(&w, &stripe_event("customer.subscription.updated")).await,
        "ignored"
    );
    assert!(!w.app.store.lock().states.contains_key(&tenant()));
    assert_eq!(outcome(&w, &stripe_event("invoice.paid")).await, "applied");
    assert_eq!(w.app.store.lock().payments.len(), 1);
}
