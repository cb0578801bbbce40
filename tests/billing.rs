//! Billing against the emulated AWS: Stripe events from `events/billing-webhook/`, signed at test
//! time with the world's clock and the local secret, through the real handler; the effects read
//! back from the tables, the emails from the emulator, and lead intake's quota end to end.

use base64::Engine;
use billing_webhook::stripe::{signature_header, Stripe};
use integration_tests::*;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use shared_accounts::auth::jwt::{AccessClaims, ACCESS_TOKEN_TTL_SECS, ISSUER};
use shared_accounts::auth::permissions::Role;
use shared_accounts::{Mfa, User};
use shared_core::domain::{Email, FormId, TenantId, TenantStatus, UserId};
use shared_core::dynamo::Item;
use shared_privacy::inventory::{self, Table};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

#[path = "billing/selfserve.rs"]
mod selfserve;

const SECRET: &str = infra::seed::LOCAL_STRIPE_WEBHOOK_SECRET;
/// The samples' reference time: every `created` in them is relative to it.
const T0: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);

async fn world() -> World {
    let w = World::new().await.expect("test world");
    w.clock.set(T0);
    w
}

async fn app(w: &World) -> BillingApp {
    w.billing_app().await.expect("billing app")
}

/// A sample Stripe event, about the world's tenant (`tenant-a`) instead of `demo-tenant`.
fn stripe_event(name: &str) -> String {
    let path = workspace_root().join(format!("events/billing-webhook/{name}.json"));
    std::fs::read_to_string(path)
        .expect("sample event")
        .replace("demo-tenant", "tenant-a")
}

fn edit(body: &str, f: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(body).unwrap();
    f(&mut v);
    v.to_string()
}

/// API Gateway's event for a delivery of `body` with this `Stripe-Signature` (none: no header).
fn delivery(body: &str, signature: Option<&str>, base64: bool) -> Request {
    let mut e = fixture("billing-webhook/webhook-request.json");
    if base64 {
        e["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
        e["isBase64Encoded"] = json!(true);
    } else {
        e["body"] = json!(body);
    }
    let headers = e["headers"].as_object_mut().unwrap();
    match signature {
        Some(s) => headers.insert("stripe-signature".into(), json!(s)),
        None => headers.remove("stripe-signature"),
    };
    request(&e)
}

fn now(w: &World) -> i64 {
    use shared_core::clock::Clock;
    w.clock.now().unix_timestamp()
}

fn signed(w: &World, body: &str) -> Request {
    delivery(
        body,
        Some(&signature_header(SECRET, now(w), body.as_bytes())),
        false,
    )
}

fn body_json(r: &Response<Body>) -> Value {
    response_json(r)
}

/// Delivers a signed event and returns the outcome the handler answered (200 expected).
async fn deliver(w: &World, app: &BillingApp, body: &str) -> String {
    let r = billing_webhook::handle(app, signed(w, body)).await;
    assert_eq!(r.status(), 200, "{}", body_json(&r));
    body_json(&r)["outcome"].as_str().unwrap().to_string()
}

async fn billing_items(w: &World, sk_prefix: &str) -> Vec<Item> {
    w.items_with_sk_prefix("BillingTable", sk_prefix).await
}

/// An access token as auth issues it (billing-webhook itself can only verify one).
async fn token(w: &World, tenant: &str, role: Role) -> String {
    let n = now(w);
    let signer = w.token_signer().await.expect("auth's signing key");
    signer.issue(&AccessClaims {
        sub: format!("us-{}", role.as_str()),
        tid: tenant.into(),
        role: role.as_str().into(),
        sid: "se-test".into(),
        cep: 0,
        iat: n,
        exp: n + ACCESS_TOKEN_TTL_SECS,
        iss: ISSUER.into(),
        typ: "access".into(),
    })
}

async fn put_user(w: &World, tenant: &TenantId, id: &str, role: Role, email: &str) {
    let user = User {
        user_id: UserId::parse(id).unwrap(),
        tenant_id: tenant.clone(),
        email: Email::parse(email).unwrap(),
        name: id.into(),
        phone: None,
        role,
        password_hash: "$argon2id$unused".into(),
        email_verified: true,
        created_at: T0,
        mfa: Mfa::default(),
        last_login: None,
        policy: None,
    };
    w.clients
        .dynamo
        .put_item()
        .table_name(w.table("TenantsTable"))
        .set_item(Some(shared_accounts::dynamo::user_item(&user)))
        .send()
        .await
        .unwrap();
}

// ------------------------------------------------------------------------------- signatures

#[tokio::test]
async fn signature_vectors() {
    let w = world().await;
    let mut app = app(&w).await;
    let body = stripe_event("product.created");
    let t = now(&w);
    let good = signature_header(SECRET, t, body.as_bytes());
    let good_v1 = good.split_once("v1=").unwrap().1.to_string();
    let wrong_v1 = signature_header("whsec_wrong", t, body.as_bytes())
        .split_once("v1=")
        .unwrap()
        .1
        .to_string();

    let refused: Vec<(&str, Request, &str)> = vec![
        (
            "wrong secret",
            delivery(
                &body,
                Some(&signature_header("whsec_wrong", t, body.as_bytes())),
                false,
            ),
            "invalid_signature",
        ),
        (
            "stale",
            delivery(
                &body,
                Some(&signature_header(SECRET, t - 301, body.as_bytes())),
                false,
            ),
            "stale_signature",
        ),
        (
            "tampered body",
            delivery(&body.replace("Pro plan", "Free plan"), Some(&good), false),
            "invalid_signature",
        ),
        (
            "missing header",
            delivery(&body, None, false),
            "invalid_signature",
        ),
        (
            "malformed header",
            delivery(&body, Some(&format!("v1={good_v1}")), false),
            "invalid_signature",
        ),
        (
            "malformed header",
            delivery(&body, Some("t=now,v1=abc"), false),
            "invalid_signature",
        ),
    ];
    for (what, req, code) in refused {
        let r = billing_webhook::handle(&app, req).await;
        assert_eq!(r.status(), 400, "{what}");
        assert_eq!(body_json(&r)["error"]["code"], code, "{what}");
    }
    assert!(w.scan("BillingTable").await.is_empty(), "nothing stored");

    // Accepted: a valid one, two v1 values (one matching), a base64-encoded body.
    let r = billing_webhook::handle(&app, delivery(&body, Some(&good), false)).await;
    assert_eq!(r.status(), 200, "valid: {}", body_json(&r));
    let body = edit(&body, |v| v["id"] = json!("evt_two_v1_values"));
    let good = signature_header(SECRET, t, body.as_bytes());
    let good_v1 = good.split_once("v1=").unwrap().1.to_string();
    let two = format!("t={t},v1={wrong_v1},v1={good_v1}");
    let r = billing_webhook::handle(&app, delivery(&body, Some(&two), false)).await;
    assert_eq!(r.status(), 200, "two v1 values");
    let other = edit(&body, |v| v["id"] = json!("evt_base64_body"));
    let sig = signature_header(SECRET, t, other.as_bytes());
    let r = billing_webhook::handle(&app, delivery(&other, Some(&sig), true)).await;
    assert_eq!(r.status(), 200, "base64 body: {}", body_json(&r));
    assert_eq!(body_json(&r)["outcome"], "ignored");

    // A rotation: the old and the new secret are both accepted.
    app.stripe = Stripe::new(vec!["whsec_old".into(), SECRET.into()], 300);
    for (id, secret) in [
        ("evt_rotated_old", "whsec_old"),
        ("evt_rotated_new", SECRET),
    ] {
        let b = edit(&body, |v| v["id"] = json!(id));
        let sig = signature_header(secret, t, b.as_bytes());
        let r = billing_webhook::handle(&app, delivery(&b, Some(&sig), false)).await;
        assert_eq!(r.status(), 200, "{secret}");
    }
}

// ------------------------------------------------------------------------------- exactly once

#[tokio::test]
async fn the_same_event_delivered_8_times_concurrently_applies_once() {
    let w = world().await;
    let app = app(&w).await;
    let body = stripe_event("invoice.paid");
    let responses = join_all(
        (0..8)
            .map(|_| billing_webhook::handle(&app, signed(&w, &body)))
            .collect(),
    )
    .await;
    let mut outcomes: Vec<String> = responses
        .iter()
        .map(|r| {
            assert_eq!(r.status(), 200, "{}", body_json(r));
            body_json(r)["outcome"].as_str().unwrap().to_string()
        })
        .collect();
    outcomes.sort();
    assert_eq!(outcomes[0], "applied");
    assert!(
        outcomes[1..].iter().all(|o| o == "duplicate"),
        "{outcomes:?}"
    );

    assert_eq!(billing_items(&w, "INVOICE#").await.len(), 1);
    assert_eq!(billing_items(&w, "PAYMENT#").await.len(), 1);
    let events = billing_items(&w, "EVENT").await;
    assert_eq!(events.len(), 1);
    assert_eq!(s(&events[0], "outcome"), Some("applied"));

    // A later redelivery: 200, nothing new.
    assert_eq!(deliver(&w, &app, &body).await, "duplicate");
    assert_eq!(billing_items(&w, "PAYMENT#").await.len(), 1);
}

#[tokio::test]
async fn out_of_order_subscription_updates_do_not_move_the_state_back() {
    let w = world().await;
    let app = app(&w).await;
    assert_eq!(
        deliver(&w, &app, &stripe_event("customer.subscription.updated")).await,
        "applied"
    );
    assert_eq!(
        deliver(&w, &app, &stripe_event("customer.subscription.created")).await,
        "stale"
    );
    let states = billing_items(&w, "SUBSCRIPTION").await;
    assert_eq!(states.len(), 1);
    assert_eq!(states[0]["cancel_at_period_end"].as_bool().unwrap(), &true);
    assert_eq!(
        s(&states[0], "last_event_id"),
        Some("evt_1RlocalSubUpdated01")
    );
    let stale = billing_items(&w, "EVENT").await;
    assert!(stale
        .iter()
        .any(|e| s(e, "event_id") == Some("evt_1RlocalSubCreated01")
            && s(e, "outcome") == Some("stale")));

    // A newer update still applies.
    let newer = edit(&stripe_event("customer.subscription.updated"), |v| {
        v["id"] = json!("evt_newer_update");
        v["created"] = json!(T0.unix_timestamp() + 3_600);
        v["data"]["object"]["cancel_at_period_end"] = json!(false);
    });
    assert_eq!(deliver(&w, &app, &newer).await, "applied");
    let states = billing_items(&w, "SUBSCRIPTION").await;
    assert_eq!(states[0]["cancel_at_period_end"].as_bool().unwrap(), &false);
}

// ------------------------------------------------------------------------------- effects

#[tokio::test]
async fn every_handled_type_has_its_effect() {
    let w = world().await;
    let app = app(&w).await;
    let get = |items: &Vec<Item>, name: &str| -> String {
        s(&items[0], name).unwrap_or_default().to_string()
    };

    assert_eq!(
        deliver(&w, &app, &stripe_event("checkout.session.completed")).await,
        "applied"
    );
    let links = billing_items(&w, "CUSTOMER").await;
    assert_eq!(get(&links, "tenant_id"), "tenant-a");
    assert_eq!(
        get(&billing_items(&w, "SUBSCRIPTION").await, "customer_id"),
        "cus_RlocalDemo0001"
    );

    assert_eq!(
        deliver(&w, &app, &stripe_event("customer.subscription.created")).await,
        "applied"
    );
    let st = billing_items(&w, "SUBSCRIPTION").await;
    assert_eq!(
        (get(&st, "status"), get(&st, "plan")),
        ("active".into(), "pro".into())
    );
    assert_eq!(st[0]["monthly_submissions"].as_n().unwrap(), "50000");

    assert_eq!(
        deliver(&w, &app, &stripe_event("customer.subscription.updated")).await,
        "applied"
    );
    assert_eq!(
        billing_items(&w, "SUBSCRIPTION").await[0]["cancel_at_period_end"]
            .as_bool()
            .unwrap(),
        &true
    );

    assert_eq!(
        deliver(&w, &app, &stripe_event("invoice.paid")).await,
        "applied"
    );
    let inv = billing_items(&w, "INVOICE#in_1RlocalDemo0001").await;
    assert_eq!(get(&inv, "status"), "paid");
    assert_eq!(get(&inv, "payment_status"), "succeeded");
    assert_eq!(get(&inv, "retain_until"), "2032-07-01");
    assert!(get(&inv, "hosted_invoice_url").starts_with("https://invoice.stripe.com/"));

    assert_eq!(
        deliver(&w, &app, &stripe_event("invoice.payment_failed")).await,
        "applied"
    );
    assert_eq!(
        deliver(&w, &app, &stripe_event("invoice.payment_action_required")).await,
        "applied"
    );
    let inv2 = billing_items(&w, "INVOICE#in_1RlocalDemo0002").await;
    assert_eq!(get(&inv2, "payment_status"), "action_required");
    let payments = billing_items(&w, "PAYMENT#in_1RlocalDemo0002").await;
    let mut outcomes: Vec<_> = payments.iter().filter_map(|p| s(p, "outcome")).collect();
    outcomes.sort();
    assert_eq!(outcomes, ["action_required", "failed"]);

    assert_eq!(
        deliver(&w, &app, &stripe_event("charge.refunded")).await,
        "applied"
    );
    let refunds = billing_items(&w, "REFUND#").await;
    assert_eq!(get(&refunds, "invoice_id"), "in_1RlocalDemo0001");
    assert_eq!(refunds[0]["amount_refunded"].as_n().unwrap(), "2900");

    assert_eq!(
        deliver(
            &w,
            &app,
            &stripe_event("customer.subscription.trial_will_end")
        )
        .await,
        "applied"
    );
    assert_eq!(
        get(&billing_items(&w, "SUBSCRIPTION").await, "status"),
        "trialing"
    );

    assert_eq!(
        deliver(&w, &app, &stripe_event("customer.subscription.deleted")).await,
        "applied"
    );
    let st = billing_items(&w, "SUBSCRIPTION").await;
    assert_eq!(get(&st, "status"), "canceled");
    assert!(!get(&st, "ended_at").is_empty());

    // Already linked: nothing to copy from the customer (its details stay with Stripe).
    assert_eq!(
        deliver(&w, &app, &stripe_event("customer.updated")).await,
        "ignored"
    );
    assert_eq!(
        deliver(&w, &app, &stripe_event("customer.deleted")).await,
        "applied"
    );
    assert!(!get(&billing_items(&w, "CUSTOMER").await, "deleted_at").is_empty());

    // The invoice view groups it all.
    let owner = token(&w, "tenant-a", Role::Owner).await;
    let r = billing_webhook::handle(
        &app,
        api_event("GET", "/v1/billing/invoices", None, Some(&owner)),
    )
    .await;
    let items = body_json(&r)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    let first = items
        .iter()
        .find(|i| i["invoice_id"] == "in_1RlocalDemo0001")
        .unwrap();
    assert_eq!(first["amount_refunded"], 2900);
    assert_eq!(first["payments"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn unknown_types_are_ignored_and_counted_per_type() {
    let w = world().await;
    let app = app(&w).await;
    let body = stripe_event("product.created");
    assert_eq!(deliver(&w, &app, &body).await, "ignored");
    let again = edit(&body, |v| v["id"] = json!("evt_second_product"));
    assert_eq!(deliver(&w, &app, &again).await, "ignored");
    assert_eq!(deliver(&w, &app, &again).await, "duplicate");
    let other = edit(&body, |v| {
        v["id"] = json!("evt_price_created");
        v["type"] = json!("price.created");
    });
    assert_eq!(deliver(&w, &app, &other).await, "ignored");

    let counters = billing_items(&w, "COUNTER").await;
    let count = |ty: &str| -> String {
        counters
            .iter()
            .find(|c| s(c, "event_type") == Some(ty))
            .map(|c| c["n"].as_n().unwrap().clone())
            .unwrap_or_default()
    };
    assert_eq!(count("product.created"), "2");
    assert_eq!(count("price.created"), "1");
}

// ------------------------------------------------------------------------------- entitlements

#[tokio::test]
async fn the_submission_quota_end_to_end_with_lead_intake() {
    let w = world().await;
    let app = app(&w).await;
    let mut settings = w.intake_config().settings;
    settings.billing.free_tier.monthly_submissions = 3;
    let intake = w.intake(Some(settings));
    let submit = |n: u32| {
        let mut e = json_submission(&json!({ "email": format!("quota{n}@example.com") }));
        e["requestContext"]["http"]["sourceIp"] = json!(format!("198.51.100.{n}"));
        request(&e)
    };

    for n in 1..=3 {
        assert_eq!(
            lead_intake::handle(&intake, submit(n)).await.status(),
            201,
            "#{n}"
        );
    }
    let r = lead_intake::handle(&intake, submit(4)).await;
    assert_eq!(r.status(), 402);
    assert_eq!(response_json(&r)["error"]["code"], "quota_exceeded");
    assert_eq!(w.items_with_sk_prefix("LeadsTable", "LEAD").await.len(), 3);

    // The tenant pays for `pro`: the quota rises at once.
    assert_eq!(
        deliver(&w, &app, &stripe_event("checkout.session.completed")).await,
        "applied"
    );
    assert_eq!(
        deliver(&w, &app, &stripe_event("customer.subscription.created")).await,
        "applied"
    );
    assert_eq!(lead_intake::handle(&intake, submit(4)).await.status(), 201);

    let owner = token(&w, "tenant-a", Role::Owner).await;
    let r = billing_webhook::handle(
        &app,
        api_event("GET", "/v1/billing/subscription", None, Some(&owner)),
    )
    .await;
    assert_eq!(r.status(), 200);
    let b = body_json(&r);
    assert_eq!(b["plan"], "pro");
    assert_eq!(b["status"], "active");
    assert_eq!(b["current_period_end"], "2026-12-29T12:00:00Z");
    assert_eq!(b["usage"]["month"], "2026-11");
    assert_eq!(
        b["usage"]["submissions"], 4,
        "the refused one did not count"
    );
    assert_eq!(b["usage"]["quota"], 50_000);
}

#[tokio::test]
async fn a_subscription_canceled_beyond_its_grace_stops_intake() {
    let w = world().await;
    let app = app(&w).await;
    let intake = w.intake(None);
    for name in [
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.deleted",
    ] {
        assert_eq!(
            deliver(&w, &app, &stripe_event(name)).await,
            "applied",
            "{name}"
        );
    }
    // The paid period ended at T0 + 30 days; the grace is 7 days.
    w.clock.set(T0 + Duration::days(36));
    let submit = || request(&fixture("lead-intake/submit-json.json"));
    assert_eq!(
        lead_intake::handle(&intake, submit()).await.status(),
        201,
        "in grace"
    );
    w.clock.set(T0 + Duration::days(38));
    let r = lead_intake::handle(&intake, submit()).await;
    assert_eq!(r.status(), 402);
    assert_eq!(response_json(&r)["error"]["code"], "subscription_inactive");

    let owner = token(&w, "tenant-a", Role::Owner).await;
    let r = billing_webhook::handle(
        &app,
        api_event("GET", "/v1/billing/subscription", None, Some(&owner)),
    )
    .await;
    let b = body_json(&r);
    assert_eq!(b["standing"], "inactive");
    assert_eq!(b["status"], "canceled");
    assert_eq!(b["usage"]["quota"], 0);
}

// ------------------------------------------------------------------------------- the view

#[tokio::test]
async fn the_billing_view_is_for_owner_admin_and_billing_and_per_tenant() {
    let w = world().await;
    let app = app(&w).await;
    let tenant_b = TenantId::parse("tenant-b").unwrap();
    let form_b =
        infra::seed::demo_form(&tenant_b, &FormId::parse("b-contact").unwrap(), WEB_ORIGIN);
    w.put_tenant(&tenant_b, TenantStatus::Active, &form_b)
        .await
        .unwrap();

    assert_eq!(
        deliver(&w, &app, &stripe_event("invoice.paid")).await,
        "applied"
    );
    let b_invoice = edit(&stripe_event("invoice.paid"), |v| {
        v["id"] = json!("evt_tenant_b_invoice");
        let o = &mut v["data"]["object"];
        o["id"] = json!("in_tenantB0001");
        o["customer"] = json!("cus_tenantB0001");
        o["subscription"] = json!("sub_tenantB0001");
        o["subscription_details"]["metadata"]["tenant_id"] = json!("tenant-b");
    });
    assert_eq!(deliver(&w, &app, &b_invoice).await, "applied");

    let ids = |r: &Response<Body>| -> Vec<String> {
        body_json(r)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["invoice_id"].as_str().unwrap().to_string())
            .collect()
    };
    for role in [Role::Owner, Role::Admin, Role::Billing] {
        let t = token(&w, "tenant-a", role).await;
        let r = billing_webhook::handle(
            &app,
            api_event("GET", "/v1/billing/invoices", None, Some(&t)),
        )
        .await;
        assert_eq!(r.status(), 200, "{role:?}");
        assert_eq!(
            ids(&r),
            ["in_1RlocalDemo0001"],
            "tenant A sees only its own"
        );
        let r = billing_webhook::handle(
            &app,
            api_event("GET", "/v1/billing/subscription", None, Some(&t)),
        )
        .await;
        assert_eq!(r.status(), 200, "{role:?}");
    }
    let t = token(&w, "tenant-b", Role::Billing).await;
    let r = billing_webhook::handle(
        &app,
        api_event("GET", "/v1/billing/invoices", None, Some(&t)),
    )
    .await;
    assert_eq!(ids(&r), ["in_tenantB0001"]);

    for role in [Role::Member, Role::Viewer] {
        let t = token(&w, "tenant-a", role).await;
        for path in ["/v1/billing/subscription", "/v1/billing/invoices"] {
            let r = billing_webhook::handle(&app, api_event("GET", path, None, Some(&t))).await;
            assert_eq!(r.status(), 403, "{role:?} {path}");
        }
    }
    let r =
        billing_webhook::handle(&app, api_event("GET", "/v1/billing/invoices", None, None)).await;
    assert_eq!(r.status(), 401);
}

// ------------------------------------------------------------------------------- emails

#[tokio::test]
async fn payment_failed_and_trial_ending_emails_reach_the_right_people() {
    let w = world().await;
    let app = app(&w).await;
    let tenant = w.tenant.clone();
    let owner = format!("owner.{}@example.com", w.stage);
    let billing = format!("billing.{}@example.com", w.stage);
    let member = format!("member.{}@example.com", w.stage);
    put_user(&w, &tenant, "us-owner", Role::Owner, &owner).await;
    put_user(&w, &tenant, "us-member", Role::Member, &member).await;

    // No billing contact yet: the owner hears about the failed payment.
    assert_eq!(
        deliver(&w, &app, &stripe_event("invoice.payment_failed")).await,
        "applied"
    );
    let mails = w.emails_to(&owner);
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].subject, "Your payment failed");
    assert!(mails[0].body.contains("29.00 EUR"), "{}", mails[0].body);
    assert!(mails[0].body.contains("https://invoice.stripe.com/"));
    // Dunning: the billing page that opens the portal, the grace period and what stops.
    let body = &mails[0].body;
    assert!(
        body.contains("Update the payment method in the billing portal")
            && body.contains("http://127.0.0.1:8080/billing.html"),
        "{body}"
    );
    assert!(
        body.contains("7 days later") && body.contains("your forms stop accepting submissions"),
        "{body}"
    );
    assert!(body.contains("limited to 3 members"), "{body}");
    // And the subscription view says so too.
    let t = token(&w, "tenant-a", Role::Billing).await;
    let view = response_json(
        &billing_webhook::handle(
            &app,
            api_event("GET", "/v1/billing/subscription", None, Some(&t)),
        )
        .await,
    );
    assert_eq!(
        view["payment_failing"], false,
        "an invoice failed, the state is not known yet"
    );
    assert_eq!(view["grace_days"], 7);

    put_user(&w, &tenant, "us-billing", Role::Billing, &billing).await;
    let again = edit(&stripe_event("invoice.payment_failed"), |v| {
        v["id"] = json!("evt_second_payment_failure");
        v["created"] = json!(T0.unix_timestamp() + 34 * 86_400);
        v["data"]["object"]["attempt_count"] = json!(2);
    });
    assert_eq!(deliver(&w, &app, &again).await, "applied");
    assert_eq!(w.emails_to(&billing).len(), 1, "the billing contact");
    assert_eq!(w.emails_to(&owner).len(), 1, "not the owner again");

    assert_eq!(
        deliver(
            &w,
            &app,
            &stripe_event("customer.subscription.trial_will_end")
        )
        .await,
        "applied"
    );
    let mails = w.emails_to(&owner);
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[1].subject, "Your trial ends soon");
    assert!(mails[1].body.contains("2026-12-13"));
    assert!(w.emails_to(&member).is_empty());

    // A redelivery sends nothing.
    assert_eq!(deliver(&w, &app, &again).await, "duplicate");
    assert_eq!(w.emails_to(&billing).len(), 1);
}

// ------------------------------------------------------------------------------- privacy

#[tokio::test]
async fn no_card_data_or_contact_details_are_stored() {
    let w = world().await;
    let app = app(&w).await;
    for name in [
        "checkout.session.completed",
        "invoice.paid",
        "charge.refunded",
        "customer.updated",
    ] {
        deliver(&w, &app, &stripe_event(name)).await;
    }
    let fixture_text = stripe_event("charge.refunded");
    assert!(fixture_text.contains("payment_method_details") && fixture_text.contains("4242"));

    let stored = format!("{:?}", w.scan("BillingTable").await);
    for forbidden in [
        "payment_method",
        "card",
        "last4",
        "4242",
        "fingerprint",
        "Xt5EWLLDS7FJjR1c",
        "exp_month",
        "2029",
        "visa",
        "billing_details",
        "owner@demo-co.example",
        "billing@demo-co.example",
        "Memorandumului",
        "receipt",
    ] {
        assert!(
            !stored.contains(forbidden),
            "billing table holds {forbidden:?}"
        );
    }
}

#[tokio::test]
async fn every_stored_billing_attribute_is_declared_in_the_data_inventory() {
    let w = world().await;
    let app = app(&w).await;
    for name in [
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.trial_will_end",
        "invoice.paid",
        "invoice.payment_failed",
        "invoice.payment_action_required",
        "charge.refunded",
        "customer.updated",
        "product.created",
        "customer.subscription.deleted",
        "customer.deleted",
    ] {
        deliver(&w, &app, &stripe_event(name)).await;
    }
    // And intake's usage counter.
    let intake = w.intake(None);
    assert_eq!(
        lead_intake::handle(&intake, request(&fixture("lead-intake/submit-json.json")))
            .await
            .status(),
        201
    );

    for (logical, table) in [
        ("BillingTable", Table::Billing),
        ("PlansTable", Table::Plans),
        ("OpsTable", Table::Ops),
    ] {
        let items = w.scan(logical).await;
        assert!(!items.is_empty(), "{logical} has items");
        for item in items {
            let sk = s(&item, "sk").unwrap_or_default().to_string();
            for name in item.keys() {
                assert!(
                    inventory::declaration(table, &sk, name).is_some(),
                    "{logical} item {sk:?} stores undeclared attribute {name:?}"
                );
            }
        }
    }
    // Billing records hold their legal retention date.
    for prefix in ["INVOICE#", "PAYMENT#", "REFUND#"] {
        for item in billing_items(&w, prefix).await {
            assert!(
                s(&item, "retain_until").is_some_and(|d| d.ends_with("-07-01")),
                "{prefix}"
            );
        }
    }
}

// ------------------------------------------------------------------------------- cost

/// DynamoDB requests and billed write units per event, through the real handler. Counts, not
/// timings: deterministic, so they are assertions. Goals: a duplicate in 1 request, a state
/// change in at most 3.
#[tokio::test]
async fn cost_per_event_duplicate_one_request_state_change_at_most_three() {
    let w = world().await;
    let meter = w.meter();
    let app = w
        .billing_app_with_client(meter.instrument(&w.clients.dynamo))
        .await
        .unwrap();
    deliver(&w, &app, &stripe_event("checkout.session.completed")).await;
    deliver(&w, &app, &stripe_event("customer.subscription.created")).await;

    let measure = |label: &'static str, body: String, want: &'static str| {
        let meter = meter.clone();
        let (w, app) = (&w, &app);
        async move {
            meter.reset();
            assert_eq!(deliver(w, app, &body).await, want, "{label}");
            let u = meter.usage(&w.clients.dynamo).await.expect("metering");
            eprintln!(
                "billing {label}: {} requests {:?}, WCU {} (transactional {}), RCU {}",
                u.requests(),
                u.operations,
                u.total_write_units(),
                u.transactional_write_units,
                u.read_units
            );
            u
        }
    };

    let change = stripe_event("customer.subscription.updated");
    let u = measure(
        "state change (subscription.updated)",
        change.clone(),
        "applied",
    )
    .await;
    assert_eq!(u.operations, ["BatchGetItem", "TransactWriteItems"]);
    assert_eq!(u.failed_requests, 0);

    let u = measure("duplicate", change, "duplicate").await;
    assert_eq!(
        u.operations,
        ["BatchGetItem"],
        "a duplicate costs one request"
    );
    assert_eq!(u.total_write_units(), 0);

    let u = measure(
        "invoice.paid (tenant from metadata)",
        stripe_event("invoice.paid"),
        "applied",
    )
    .await;
    assert_eq!(u.operations, ["BatchGetItem", "TransactWriteItems"]);

    let via_link = edit(&stripe_event("customer.subscription.updated"), |v| {
        v["id"] = json!("evt_update_without_metadata");
        v["created"] = json!(T0.unix_timestamp() + 7_200);
        v["data"]["object"]["metadata"] = json!({});
    });
    let u = measure(
        "state change, tenant from the customer link",
        via_link,
        "applied",
    )
    .await;
    assert_eq!(
        u.operations,
        ["BatchGetItem", "GetItem", "TransactWriteItems"]
    );
    assert!(u.requests() <= 3);
}

// ------------------------------------------------------------------------------- seats

#[tokio::test]
async fn invitations_beyond_the_plans_seats_are_402() {
    use shared_accounts::{Session, Tenant};
    use shared_core::domain::SessionId;

    let w = world().await;
    let billing = app(&w).await;
    let auth = w.auth_app().await.expect("auth app");
    let tenant = w.tenant.clone();
    let owner_id = UserId::parse("us-owner").unwrap();
    let put = |item: Item| {
        let (w, table) = (&w, w.table("TenantsTable"));
        async move {
            w.clients
                .dynamo
                .put_item()
                .table_name(table)
                .set_item(Some(item))
                .send()
                .await
                .unwrap();
        }
    };
    put(shared_accounts::dynamo::tenant_item(&Tenant {
        tenant_id: tenant.clone(),
        business_name: "Tenant A".into(),
        status: TenantStatus::Active,
        owner_user_id: owner_id.clone(),
        created_at: T0,
        closed_at: None,
        erase_after: None,
    }))
    .await;
    // The free tier has 3 seats: the owner and two members fill them.
    put_user(
        &w,
        &tenant,
        "us-owner",
        Role::Owner,
        &format!("owner.{}@example.com", w.stage),
    )
    .await;
    put_user(
        &w,
        &tenant,
        "us-m1",
        Role::Member,
        &format!("m1.{}@example.com", w.stage),
    )
    .await;
    put_user(
        &w,
        &tenant,
        "us-m2",
        Role::Member,
        &format!("m2.{}@example.com", w.stage),
    )
    .await;
    let sid = SessionId::parse("se-owner").unwrap();
    put(shared_accounts::dynamo::session_item(&Session {
        session_id: sid.clone(),
        user_id: owner_id.clone(),
        tenant_id: tenant.clone(),
        refresh_hash: "unused".into(),
        previous_hashes: vec![],
        created_at: T0,
        last_used_at: T0,
        idle_expires_at: T0 + Duration::days(1),
        absolute_expires_at: T0 + Duration::days(30),
        revoked_at: None,
        ip: None,
        user_agent: None,
    }))
    .await;
    let n = now(&w);
    let token = auth.signer.issue(&AccessClaims {
        sub: owner_id.to_string(),
        tid: tenant.to_string(),
        role: "owner".into(),
        sid: sid.to_string(),
        cep: 0,
        iat: n,
        exp: n + ACCESS_TOKEN_TTL_SECS,
        iss: ISSUER.into(),
        typ: "access".into(),
    });
    let invite = |who: &str| {
        api_event(
            "POST",
            "/v1/team/invitations",
            Some(&json!({ "email": format!("{who}.{}@example.com", w.stage), "role": "member" })),
            Some(&token),
        )
    };

    let r = auth::handle(&auth, invite("fourth")).await;
    assert_eq!(r.status(), 402, "{}", response_json(&r));
    assert_eq!(response_json(&r)["error"]["code"], "seat_limit_reached");

    // On `pro` (20 seats) the invitation goes out.
    assert_eq!(
        deliver(&w, &billing, &stripe_event("checkout.session.completed")).await,
        "applied"
    );
    assert_eq!(
        deliver(&w, &billing, &stripe_event("customer.subscription.created")).await,
        "applied"
    );
    let r = auth::handle(&auth, invite("fourth")).await;
    assert_eq!(r.status(), 201, "{}", response_json(&r));
}

/// A later event about a billing record updates the fields the event owns and nothing else: a
/// legal hold, and a restriction set by an erasure of the account, stay on the record.
#[tokio::test]
async fn later_events_keep_a_records_legal_hold_and_restriction() {
    use shared_core::dynamo::AttributeValue;
    use shared_privacy::legal_holds::{set_legal_hold, HeldItem, HoldKind};
    let w = world().await;
    let app = app(&w).await;
    deliver(&w, &app, &stripe_event("checkout.session.completed")).await;
    assert_eq!(
        deliver(&w, &app, &stripe_event("invoice.paid")).await,
        "applied"
    );
    assert_eq!(
        deliver(&w, &app, &stripe_event("charge.refunded")).await,
        "applied"
    );
    let table = w.table("BillingTable");
    let tenant = TenantId::parse("tenant-a").unwrap();
    let records = [
        billing_items(&w, "INVOICE#in_1RlocalDemo0001").await,
        billing_items(&w, "REFUND#").await,
    ];
    for items in &records {
        assert_eq!(items.len(), 1);
        let key = shared_core::keys::Key {
            pk: s(&items[0], "pk").unwrap().to_string(),
            sk: s(&items[0], "sk").unwrap().to_string(),
        };
        assert_eq!(s(&items[0], "tenant_id"), Some(tenant.as_str()));
        let held = HeldItem {
            kind: HoldKind::Billing,
            key: key.clone(),
        };
        assert!(set_legal_hold(
            &w.clients.dynamo,
            &table,
            &w.table("OpsTable"),
            &held,
            true,
            T0
        )
        .await
        .unwrap());
        // As an account erasure restricts the billing records it must keep.
        w.clients
            .dynamo
            .update_item()
            .table_name(&table)
            .key("pk", AttributeValue::S(key.pk.clone()))
            .key("sk", AttributeValue::S(key.sk.clone()))
            .update_expression("SET restricted = :t, restricted_at = :at")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":at", AttributeValue::S("2026-11-29T12:00:00Z".into()))
            .send()
            .await
            .unwrap();
    }

    // Newer events about both records: a second invoice.paid and a second refund.
    let invoice_again = edit(&stripe_event("invoice.paid"), |v| {
        v["id"] = json!("evt_1RlocalInvPaid0002");
        v["created"] = json!(v["created"].as_i64().unwrap() + 60);
        v["data"]["object"]["attempt_count"] = json!(2);
    });
    assert_eq!(deliver(&w, &app, &invoice_again).await, "applied");
    let refund_again = edit(&stripe_event("charge.refunded"), |v| {
        v["id"] = json!("evt_1RlocalChRefund02");
        v["created"] = json!(v["created"].as_i64().unwrap() + 60);
    });
    assert_eq!(deliver(&w, &app, &refund_again).await, "applied");

    let invoice = billing_items(&w, "INVOICE#in_1RlocalDemo0001").await;
    assert_eq!(
        invoice[0]["attempt_count"].as_n().unwrap(),
        "2",
        "the newer event was applied"
    );
    for items in [invoice, billing_items(&w, "REFUND#").await] {
        let it = &items[0];
        let sk = s(it, "sk").unwrap();
        assert_eq!(
            it.get("legal_hold"),
            Some(&AttributeValue::Bool(true)),
            "{sk}: hold kept"
        );
        assert_eq!(
            it.get("restricted"),
            Some(&AttributeValue::Bool(true)),
            "{sk}: restriction kept"
        );
        assert_eq!(s(it, "restricted_at"), Some("2026-11-29T12:00:00Z"), "{sk}");
    }
}

// ------------------------------------------------------------------------ bodies that are not UTF-8

/// A webhook body that is not UTF-8 (base64-encoded by API Gateway) is a 4xx JSON error,
/// unsigned or signed with the endpoint's secret (so that the parser, not only the signature
/// check, sees it), whatever the content type; nothing is stored.
#[tokio::test]
async fn bodies_that_are_not_utf8_are_4xx_signed_or_not_and_store_nothing() {
    let w = world().await;
    let app = app(&w).await;
    let before = w.snapshot().await;
    let mut calls = 0;
    for route in billing_webhook::ROUTES.iter().filter(|r| r.method != "GET") {
        for bytes in NOT_UTF8_BODIES {
            for ct in BODY_CONTENT_TYPES {
                for sign in [false, true] {
                    let mut e = fixture("billing-webhook/webhook-request.json");
                    e["rawPath"] = json!(route.path);
                    e["requestContext"]["http"]["path"] = json!(route.path);
                    let headers = e["headers"].as_object_mut().unwrap();
                    headers.remove("stripe-signature");
                    if sign {
                        headers.insert(
                            "stripe-signature".into(),
                            json!(signature_header(SECRET, now(&w), bytes)),
                        );
                    }
                    let resp = billing_webhook::handle(&app, with_base64_body(e, bytes, ct)).await;
                    assert_json_client_error(&resp, &format!("signed {sign} {ct} {bytes:?}"));
                    calls += 1;
                }
            }
        }
    }
    assert!(calls > 0);
    assert_eq!(w.snapshot().await, before, "nothing stored");
}

// ------------------------------------------------------------------------ conditions under races

/// Six events about one invoice (its payment failing, attempt after attempt) delivered at once,
/// newest first. Each reads the invoice before any writes, so it is the write's condition
/// (`last_event_created <= :c`) that must keep an older event from overwriting a newer one: the
/// invoice ends as the newest event left it, whatever order the writes landed in.
#[tokio::test]
async fn concurrent_events_of_one_invoice_leave_the_newest_state() {
    let w = world().await;
    let meter = w.meter();
    let app = w
        .billing_app_with_client(meter.instrument(&w.clients.dynamo))
        .await
        .expect("billing app");
    let base = stripe_event("invoice.payment_failed");
    let created: i64 = serde_json::from_str::<Value>(&base).unwrap()["created"]
        .as_i64()
        .unwrap();
    let bodies: Vec<String> = (0..6)
        .rev()
        .map(|i| {
            edit(&base, |v| {
                v["id"] = json!(format!("evt_invoice_race_{i}"));
                v["created"] = json!(created + 60 * i);
                v["data"]["object"]["attempt_count"] = json!(i + 1);
            })
        })
        .collect();
    let responses = join_all(
        bodies
            .iter()
            .map(|b| billing_webhook::handle(&app, signed(&w, b)))
            .collect(),
    )
    .await;
    let (sent, refused) = writes_sent_and_refused(&meter);
    for r in &responses {
        assert_eq!(r.status(), 200, "{}", body_json(r));
    }
    let invoices = billing_items(&w, "INVOICE#").await;
    assert_eq!(invoices.len(), 1);
    assert_eq!(
        invoices[0]["attempt_count"].as_n().map(String::as_str),
        Ok("6"),
        "the newest event's attempt"
    );
    assert_eq!(
        invoices[0]["last_event_created"].as_n().map(String::as_str),
        Ok((created + 300).to_string().as_str())
    );
    assert!(
        refused >= 1,
        "the ordering condition refused none of {sent} writes: the pre-check did all the work"
    );
}
