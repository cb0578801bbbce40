//! Self-serve billing through the local Stripe stand-in (`infra/src/stripe_standin.rs`): the
//! checkout and portal routes, what they send on the wire, idempotency, a provider outage, and
//! the whole loop (upgrade, plan change, cancellation) with the stand-in's signed webhooks
//! reaching the real handler over HTTP.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use super::*;
use billing_webhook::stripe::CallPolicy;
use infra::stripe_standin::{http_request, Outage, StandinConfig, StripeStandin};
use shared_core::clock::rfc3339;

/// Short limits, so the outage tests take a second, not the production seven.
fn test_policy() -> CallPolicy {
    CallPolicy {
        connect_timeout: StdDuration::from_millis(500),
        attempt_timeout: StdDuration::from_millis(700),
        max_attempts: 3,
        deadline: StdDuration::from_secs(5),
        backoff: StdDuration::from_millis(20),
    }
}

/// A world, a stand-in whose webhooks reach the billing handler over HTTP, and that handler's
/// app calling the stand-in.
struct Loop {
    w: World,
    app: Arc<BillingApp>,
    standin: StripeStandin,
}

async fn setup() -> Loop {
    let w = world().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let webhook = format!(
        "http://{}/v1/billing/webhooks/stripe",
        listener.local_addr().unwrap()
    );
    let standin = StripeStandin::start(StandinConfig::local(&webhook), 0, w.clock.clone())
        .await
        .unwrap();
    let app = Arc::new(
        w.billing_app_with_stripe_api(standin.endpoint(), test_policy())
            .await
            .unwrap(),
    );
    serve_billing_over_http(listener, app.clone());
    Loop { w, app, standin }
}

impl Loop {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        role: Role,
        key: Option<&str>,
    ) -> Response<Body> {
        let t = token(&self.w, "tenant-a", role).await;
        let mut req = api_event(method, path, body, Some(&t));
        if let Some(k) = key {
            req.headers_mut()
                .insert("idempotency-key", k.parse().unwrap());
        }
        billing_webhook::handle(&self.app, req).await
    }

    async fn checkout(&self, plan: &str, interval: &str) -> Response<Body> {
        self.call(
            "POST",
            "/v1/billing/checkout",
            Some(&json!({ "plan": plan, "interval": interval })),
            Role::Owner,
            None,
        )
        .await
    }

    async fn portal(&self) -> Response<Body> {
        self.call("POST", "/v1/billing/portal", None, Role::Billing, None)
            .await
    }

    async fn subscription(&self) -> Value {
        let r = self
            .call("GET", "/v1/billing/subscription", None, Role::Owner, None)
            .await;
        assert_eq!(r.status(), 200);
        body_json(&r)
    }

    /// A click on a stand-in page's button, over HTTP, answered with the webhook deliveries it
    /// caused; every one must have been applied.
    async fn click(&self, url: &str, form: &str) -> Vec<Value> {
        let (status, _, body) = http_request(
            "POST",
            url,
            &[
                ("Accept", "application/json"),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            form.as_bytes(),
            StdDuration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        let deliveries = v["deliveries"].as_array().unwrap().clone();
        for d in &deliveries {
            assert_eq!(d["status"], 200, "{d}");
            assert_eq!(d["outcome"], "applied", "{d}");
        }
        deliveries
    }
}

fn sorted(mut items: Vec<Item>) -> Vec<Item> {
    items.sort_by_key(|it| {
        (
            s(it, "pk").map(str::to_string),
            s(it, "sk").map(str::to_string),
        )
    });
    items
}

fn url_of(r: &Response<Body>) -> String {
    assert_eq!(r.status(), 200, "{}", body_json(r));
    body_json(r)["url"].as_str().unwrap().to_string()
}

fn types(deliveries: &[Value]) -> Vec<&str> {
    deliveries
        .iter()
        .map(|d| d["event_type"].as_str().unwrap())
        .collect()
}

fn fields(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const SUCCESS: &str = "http://127.0.0.1:8080/billing.html?checkout=success";
const CANCEL: &str = "http://127.0.0.1:8080/billing.html?checkout=canceled";
const RETURN: &str = "http://127.0.0.1:8080/billing.html";

#[tokio::test]
async fn checkout_and_portal_requests_carry_exactly_the_required_fields_on_the_wire() {
    let l = setup().await;
    let url = url_of(&l.checkout("pro", "month").await);
    let calls = l.standin.calls();
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(
        (c.method.as_str(), c.path.as_str()),
        ("POST", "/v1/checkout/sessions")
    );
    assert!(c.authorized, "the secret key from SSM, as a bearer token");
    assert_eq!(c.stripe_version.as_deref(), Some("2024-06-20"));
    assert_eq!(
        c.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert!(c
        .idempotency_key
        .as_deref()
        .is_some_and(|k| k.starts_with("lp-checkout-")));
    assert_eq!(c.status, 200);
    // Exactly these fields, each once; no customer: the tenant has none yet.
    assert_eq!(c.form.len(), c.fields().len(), "no field twice");
    assert_eq!(
        c.fields(),
        fields(&[
            ("mode", "subscription"),
            ("line_items[0][price]", "price_pro_local"),
            ("line_items[0][quantity]", "1"),
            ("client_reference_id", "tenant-a"),
            ("subscription_data[metadata][tenant_id]", "tenant-a"),
            ("success_url", SUCCESS),
            ("cancel_url", CANCEL),
        ])
    );
    assert!(url.starts_with(&format!("{}/checkout/cs_test_", l.standin.endpoint())));

    // The yearly price of another plan comes from the plans table too.
    l.w.clock.advance(Duration::minutes(11));
    url_of(&l.checkout("starter", "year").await);
    assert_eq!(
        l.standin.calls()[1].fields()["line_items[0][price]"],
        "price_starter_yearly_local"
    );

    // Paid: the customer exists; the portal names it and the return URL, nothing else.
    let deliveries = l.click(&format!("{url}/complete"), "").await;
    assert_eq!(
        types(&deliveries),
        [
            "checkout.session.completed",
            "customer.subscription.created",
            "invoice.paid"
        ]
    );
    let customer = l.w.scan("BillingTable").await.into_iter().find_map(|it| {
        (s(&it, "sk") == Some("SUBSCRIPTION")).then(|| s(&it, "customer_id").unwrap().to_string())
    });
    let customer = customer.expect("the state names the customer");
    let portal = url_of(&l.portal().await);
    let p = l.standin.calls().pop().unwrap();
    assert_eq!(p.path, "/v1/billing_portal/sessions");
    assert!(p.authorized && p.idempotency_key.is_some());
    assert_eq!(
        p.fields(),
        fields(&[("customer", &customer), ("return_url", RETURN)])
    );
    // A double click on "Manage billing": one portal session. A minute later, a fresh one (a
    // portal session expires minutes after it is made: never replay an old one).
    assert_eq!(url_of(&l.portal().await), portal);
    l.w.clock.advance(Duration::minutes(1));
    assert_ne!(url_of(&l.portal().await), portal);
}

#[tokio::test]
async fn a_double_click_makes_one_checkout_session() {
    let l = setup().await;
    // Two clicks at once.
    let (a, b) = tokio::join!(l.checkout("pro", "month"), l.checkout("pro", "month"));
    let (a, b) = (url_of(&a), url_of(&b));
    assert_eq!(a, b);
    assert_eq!(l.standin.checkout_sessions(), 1);
    let keys: Vec<_> = l
        .standin
        .calls()
        .into_iter()
        .map(|c| c.idempotency_key)
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1]);
    // A third click minutes later (same window): the same, still open, checkout.
    l.w.clock.advance(Duration::minutes(3));
    assert_eq!(url_of(&l.checkout("pro", "month").await), a);
    assert_eq!(l.standin.checkout_sessions(), 1);
    // Another choice is another session.
    url_of(&l.checkout("starter", "month").await);
    assert_eq!(l.standin.checkout_sessions(), 2);

    // A client that sends its own key per click: one session per key, whatever the window.
    let yearly = json!({"plan": "pro", "interval": "year"});
    let with_key = |k: &'static str| {
        l.call(
            "POST",
            "/v1/billing/checkout",
            Some(&yearly),
            Role::Owner,
            Some(k),
        )
    };
    let first = url_of(&with_key("click-1").await);
    l.w.clock.advance(Duration::minutes(30));
    assert_eq!(url_of(&with_key("click-1").await), first);
    assert_ne!(url_of(&with_key("click-2").await), first);
    assert_eq!(l.standin.checkout_sessions(), 4);
    let r = l
        .call(
            "POST",
            "/v1/billing/checkout",
            Some(&json!({"plan": "pro", "interval": "year"})),
            Role::Owner,
            Some("two words"),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(body_json(&r)["error"]["code"], "invalid_idempotency_key");
}

#[tokio::test]
async fn a_provider_outage_answers_502_changes_nothing_and_leaks_nothing() {
    let l = setup().await;
    let before = sorted(l.w.scan("BillingTable").await);
    let (logs, _guard) = capture_logs();

    // Stripe answers 503: retried (same key each time), then 502.
    l.standin.set_outage(Outage::Status(503));
    let r = l.checkout("pro", "month").await;
    assert_eq!(r.status(), 502);
    let body = body_json(&r);
    assert_eq!(body["error"]["code"], "payment_provider_unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    for internal in ["503", "stand-in", "127.0.0.1", "api_error", "sk_test"] {
        assert!(!message.contains(internal), "{message}");
    }
    let calls = l.standin.calls();
    assert_eq!(calls.len(), 3, "three attempts");
    assert!(calls
        .iter()
        .all(|c| c.idempotency_key == calls[0].idempotency_key));

    // Stripe hangs: each attempt times out, 502 within the deadline.
    l.standin
        .set_outage(Outage::Hang(StdDuration::from_secs(30)));
    let started = std::time::Instant::now();
    let r = l.portal_or_checkout().await;
    assert_eq!(r.status(), 502);
    assert!(
        started.elapsed() < StdDuration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(l.standin.calls().len(), 6);

    // Nothing listens: 502.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let app =
        l.w.billing_app_with_stripe_api(&dead, test_policy())
            .await
            .unwrap();
    let t = token(&l.w, "tenant-a", Role::Owner).await;
    let r = billing_webhook::handle(
        &app,
        api_event(
            "POST",
            "/v1/billing/checkout",
            Some(&json!({"plan": "pro", "interval": "month"})),
            Some(&t),
        ),
    )
    .await;
    assert_eq!(r.status(), 502);
    assert_eq!(
        body_json(&r)["error"]["code"],
        "payment_provider_unavailable"
    );

    // Stripe refuses (a price the plans table has and Stripe does not): 502, not retried.
    l.standin.set_outage(Outage::None);
    shared_billing::dynamo::put_plan_price(
        &l.w.direct.dynamo,
        l.w.template.table_name("PlansTable").unwrap(),
        &shared_billing::PlanPrice {
            plan: "enterprise".into(),
            provider: "stripe".into(),
            interval: shared_billing::BillingInterval::Month,
            price_id: shared_billing::ProviderId::parse("price_enterprise_gone").unwrap(),
        },
    )
    .await
    .unwrap();
    let n = l.standin.calls().len();
    let r = l.checkout("enterprise", "month").await;
    assert_eq!(r.status(), 502);
    assert_eq!(l.standin.calls().len(), n + 1, "a refusal is not retried");
    assert_eq!(l.standin.calls()[n].status, 400);

    // Nothing was written, and the key never reached a log line.
    assert_eq!(sorted(l.w.scan("BillingTable").await), before);
    let logged = logs.text();
    assert!(!logged.contains(infra::seed::LOCAL_STRIPE_SECRET_KEY));
    assert!(logged.contains("payment provider call failed"));
}

impl Loop {
    /// A checkout for the outage tests (a portal would need a customer first).
    async fn portal_or_checkout(&self) -> Response<Body> {
        self.checkout("starter", "month").await
    }
}

#[tokio::test]
async fn only_owner_and_billing_start_a_checkout_or_open_the_portal_and_bad_input_is_4xx() {
    let l = setup().await;
    for role in [Role::Admin, Role::Member, Role::Viewer] {
        for path in ["/v1/billing/checkout", "/v1/billing/portal"] {
            let r = l
                .call(
                    "POST",
                    path,
                    Some(&json!({"plan": "pro", "interval": "month"})),
                    role,
                    None,
                )
                .await;
            assert_eq!(r.status(), 403, "{role:?} {path}");
        }
    }
    let r = billing_webhook::handle(
        &l.app,
        api_event("POST", "/v1/billing/checkout", Some(&json!({})), None),
    )
    .await;
    assert_eq!(r.status(), 401);
    for role in [Role::Owner, Role::Billing] {
        let r = l
            .call(
                "POST",
                "/v1/billing/checkout",
                Some(&json!({"plan": "pro", "interval": "month"})),
                role,
                None,
            )
            .await;
        assert_eq!(r.status(), 200, "{role:?}");
    }
    // No customer yet: nothing to manage.
    let r = l.portal().await;
    assert_eq!(r.status(), 409);
    assert_eq!(body_json(&r)["error"]["code"], "no_billing_account");

    for (body, code) in [
        (
            json!({"plan": "platinum", "interval": "month"}),
            "unknown_plan",
        ),
        (json!({"plan": "pro", "interval": "week"}), "invalid_fields"),
        (
            json!({"plan": "Pro#1", "interval": "month"}),
            "invalid_fields",
        ),
        (json!({"plan": "pro"}), "invalid_body"),
        (
            json!({"plan": "pro", "interval": "month", "price": "price_x"}),
            "invalid_body",
        ),
        (json!(["pro", "month"]), "invalid_body"),
    ] {
        let r = l
            .call(
                "POST",
                "/v1/billing/checkout",
                Some(&body),
                Role::Owner,
                None,
            )
            .await;
        assert_eq!(r.status(), 400, "{body}");
        assert_eq!(body_json(&r)["error"]["code"], code, "{body}");
    }
    // Only the two good checkouts reached Stripe.
    assert_eq!(l.standin.calls().len(), 2);
}

#[tokio::test]
async fn the_upgrade_loop_end_to_end_through_the_stand_in() {
    let l = setup().await;
    let free = l.subscription().await;
    assert_eq!(free["plan"], "free");
    assert_eq!(free["usage"]["quota"], 1000);

    // Upgrade to pro: pay on the checkout page; its three events are applied.
    let url = url_of(&l.checkout("pro", "month").await);
    let deliveries = l.click(&format!("{url}/complete"), "").await;
    assert_eq!(deliveries.len(), 3);
    let pro = l.subscription().await;
    assert_eq!(pro["plan"], "pro");
    assert_eq!(pro["status"], "active");
    assert_eq!(pro["standing"], "subscribed");
    assert_eq!(pro["usage"]["quota"], 50_000);
    assert_eq!(pro["entitlements"]["seats"], 20);
    assert_eq!(pro["cancel_at_period_end"], false);
    assert_eq!(
        pro["current_period_end"],
        rfc3339(T0 + Duration::days(30)).as_str()
    );
    // Lead intake takes the new quota too: it reads the same state.
    // A second checkout while subscribed: refused, the portal is the way.
    let r = l.checkout("starter", "month").await;
    assert_eq!(r.status(), 409);
    assert_eq!(body_json(&r)["error"]["code"], "subscription_exists");

    // Ten days on, downgrade to starter in the portal (a credit: no invoice).
    l.w.clock.advance(Duration::days(10));
    let portal = url_of(&l.portal().await);
    let d = l
        .click(&format!("{portal}/plan"), "price=price_starter_local")
        .await;
    assert_eq!(types(&d), ["customer.subscription.updated"]);
    let starter = l.subscription().await;
    assert_eq!(starter["plan"], "starter");
    assert_eq!(starter["usage"]["quota"], 5_000);

    // Five days on, back to pro: the rest of the period is charged at once (prorated).
    l.w.clock.advance(Duration::days(5));
    let portal = url_of(&l.portal().await);
    let d = l
        .click(&format!("{portal}/plan"), "price=price_pro_local")
        .await;
    assert_eq!(types(&d), ["customer.subscription.updated", "invoice.paid"]);
    let view = l.subscription().await;
    assert_eq!(view["plan"], "pro");
    assert_eq!(view["proration"]["amount_paid"], 1000);
    assert_eq!(view["proration"]["currency"], "eur");
    assert_eq!(
        starter["proration"],
        Value::Null,
        "a downgrade is a credit, not charged"
    );
    // (29.00 - 9.00) x 15 of 30 days remaining = 10.00 EUR.
    let t = token(&l.w, "tenant-a", Role::Billing).await;
    let invoices = body_json(
        &billing_webhook::handle(
            &l.app,
            api_event("GET", "/v1/billing/invoices", None, Some(&t)),
        )
        .await,
    );
    let amounts: Vec<i64> = invoices["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["amount_paid"].as_i64().unwrap())
        .collect();
    assert_eq!(
        amounts,
        [1000, 2900],
        "the proration, then the first invoice"
    );
    let reasons: Vec<&str> = invoices["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["billing_reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["subscription_update", "subscription_create"]);

    // Cancel at the period's end: still pro until then, and says so.
    l.w.clock.advance(Duration::days(1));
    let d = l.click(&format!("{portal}/cancel"), "").await;
    assert_eq!(types(&d), ["customer.subscription.updated"]);
    let canceling = l.subscription().await;
    assert_eq!(canceling["plan"], "pro");
    assert_eq!(canceling["cancel_at_period_end"], true);
    assert_eq!(canceling["cancel_at"], pro["current_period_end"]);
    // Changed their mind.
    l.w.clock.advance(Duration::hours(1));
    l.click(&format!("{portal}/resume"), "").await;
    assert_eq!(l.subscription().await["cancel_at_period_end"], false);

    // Cancel now: canceled, within its grace; then a new checkout reuses the customer.
    l.w.clock.advance(Duration::hours(1));
    let d = l.click(&format!("{portal}/cancel_now"), "").await;
    assert_eq!(types(&d), ["customer.subscription.deleted"]);
    let canceled = l.subscription().await;
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(
        canceled["standing"], "grace",
        "the paid period, then the grace"
    );
    l.w.clock.advance(Duration::minutes(1));
    let again = url_of(&l.checkout("starter", "year").await);
    let customer = &l.standin.calls().last().unwrap().fields()["customer"];
    assert!(customer.starts_with("cus_"));
    l.click(&format!("{again}/complete"), "").await;
    let starter = l.subscription().await;
    assert_eq!(starter["plan"], "starter");
    assert_eq!(starter["status"], "active");
}

#[tokio::test]
async fn a_failed_renewal_emails_the_billing_members_the_portal_link_and_the_grace() {
    let l = setup().await;
    let tenant = l.w.tenant.clone();
    let owner = format!("owner.{}@example.com", l.w.stage);
    let billing = format!("billing.{}@example.com", l.w.stage);
    put_user(&l.w, &tenant, "us-owner", Role::Owner, &owner).await;
    put_user(&l.w, &tenant, "us-billing", Role::Billing, &billing).await;
    let url = url_of(&l.checkout("pro", "month").await);
    l.click(&format!("{url}/complete"), "").await;

    // A month on, the renewal's payment fails: Stripe retries, the billing member is told.
    l.w.clock.advance(Duration::days(30));
    let renew = format!("{}/_standin/tenants/tenant-a/renew", l.standin.endpoint());
    let d = l.click(&renew, "outcome=fail").await;
    assert_eq!(
        types(&d),
        ["invoice.payment_failed", "customer.subscription.updated"]
    );
    assert!(
        l.w.emails_to(&owner).is_empty(),
        "the billing member, not the owner"
    );
    let mails = l.w.emails_to(&billing);
    assert_eq!(mails.len(), 1);
    let body = &mails[0].body;
    assert_eq!(mails[0].subject, "Your payment failed");
    for expected in [
        "29.00 EUR",
        "We will try again on 2027-01-01",
        RETURN,
        "Update the payment method in the billing portal",
        "7 days later",
        "your forms stop accepting submissions",
    ] {
        assert!(body.contains(expected), "{expected}: {body}");
    }
    let failing = l.subscription().await;
    assert_eq!(failing["status"], "past_due");
    assert_eq!(failing["payment_failing"], true);
    assert_eq!(
        failing["standing"], "subscribed",
        "the plan holds while Stripe retries"
    );
    assert_eq!(failing["usage"]["quota"], 50_000);
    assert_eq!(failing["grace_days"], 7);

    // The retries fail too: unpaid, and the grace runs from then.
    for _ in 0..3 {
        l.w.clock.advance(Duration::days(3));
        l.click(&renew, "outcome=fail").await;
    }
    assert_eq!(l.w.emails_to(&billing).len(), 4);
    let unpaid = l.subscription().await;
    assert_eq!(unpaid["status"], "unpaid");
    assert_eq!(unpaid["standing"], "grace");
    assert_eq!(
        unpaid["grace_until"],
        rfc3339(T0 + Duration::days(39) + Duration::days(7)).as_str()
    );

    // Paid at last (the portal's new card): active again, nothing failing.
    l.w.clock.advance(Duration::days(1));
    let d = l.click(&renew, "outcome=pay").await;
    assert_eq!(types(&d), ["invoice.paid", "customer.subscription.updated"]);
    let paid = l.subscription().await;
    assert_eq!(paid["status"], "active");
    assert_eq!(paid["payment_failing"], false);
    assert_eq!(paid["grace_until"], Value::Null);
}
