//! Every public flow under injected faults (issue 14): the functions' AWS clients talk to the
//! emulator through the fault proxy (`infra::faults`), which fails a share of DynamoDB, S3, SES
//! and SSM calls with throttling errors, 500/503, timeouts and dropped connections, before the
//! emulator applied the call or after (the answer lost). The SDK retries as in Lambda (the
//! request budget: 3 attempts); what still fails must reach the caller as `503` with
//! `Retry-After`, never a 500, and the caller (as a browser, Stripe or a client would) sends the
//! same request again.
//!
//! Each test then compares the store with a fault-free run of the same calls in a second world:
//! the same items, by shape (table, key pattern, attribute names), the same counts, each
//! acknowledged write exactly once, and nothing half-written.

use integration_tests::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

use infra::faults::{FaultPlan, FaultProxy, FaultStats};
use shared_core::dynamo::Item;
use shared_leads::intake::IntakeSettings;

/// 20% of calls faulted, every kind; a hang outlasts the request budget's 2 s attempt timeout.
fn plan(seed: u64) -> FaultPlan {
    FaultPlan {
        rate: 0.2,
        seed,
        hang: Duration::from_millis(2_500),
        ..FaultPlan::default()
    }
}

/// The proxy for one test; `FAULTS` (the `LOCAL_FAULTS` syntax, e.g. `seed=3,kinds=lost500`)
/// overrides the plan to reproduce or explore a run.
async fn proxy(seed: u64) -> FaultProxy {
    let plan = match std::env::var("FAULTS") {
        Ok(spec) => {
            let mut p = FaultPlan::parse(&format!("seed={seed},hang_ms=2500,{spec}"))
                .expect("FAULTS parses");
            p.hang = p.hang.min(Duration::from_secs(10));
            p
        }
        Err(_) => plan(seed),
    };
    FaultProxy::start(emulator_endpoint(), 0, plan)
        .await
        .expect("fault proxy starts")
}

/// What a caller saw over its attempts.
#[derive(Debug, Default, Clone)]
struct Outcome {
    status: u16,
    body: serde_json::Value,
    /// 503s answered before the final status.
    unavailable: usize,
}

/// Sends the request `make` builds until it is answered with something other than `503`; every
/// `503` must carry `Retry-After` and the JSON error body, and no answer may be a 500.
async fn until_answered<F, Fut>(what: &str, make: F) -> Outcome
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = lambda_http::Response<lambda_http::Body>>,
{
    until_answered_waiting(what, None, make).await
}

/// [`until_answered`] that also waits out a `429` on `clock` (as a client honours its
/// `Retry-After`): throttles count attempts, and an attempt the SDK sent twice because its
/// answer was lost counts twice, so under lost answers a throttle refuses a little early (it
/// fails closed). The caller then waits and is served.
async fn until_answered_waiting<F, Fut>(
    what: &str,
    clock: Option<&shared_core::clock::FixedClock>,
    make: F,
) -> Outcome
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = lambda_http::Response<lambda_http::Body>>,
{
    let mut unavailable = 0;
    let (logs, _guard) = capture_logs();
    for _ in 0..30 {
        let resp = make().await;
        let status = resp.status().as_u16();
        if status == 500 {
            let text = logs.text();
            let cause: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("internal error"))
                .collect();
            panic!(
                "{what}: a 500 under faults: {}\n{}",
                response_json(&resp),
                cause.join("\n")
            );
        }
        if let (429, Some(clock)) = (status, clock) {
            let wait: i64 = header(&resp, "retry-after")
                .and_then(|v| v.parse().ok())
                .expect("a 429 with Retry-After");
            assert!(wait <= 3600, "{what}: told to wait {wait} s");
            clock.advance(time::Duration::seconds(wait));
            unavailable += 1;
            continue;
        }
        if status == 503 {
            assert!(
                header(&resp, "retry-after").is_some_and(|v| v.parse::<u64>().is_ok()),
                "{what}: a 503 without Retry-After"
            );
            assert_eq!(
                response_json(&resp)["error"]["code"],
                "service_unavailable",
                "{what}"
            );
            unavailable += 1;
            continue;
        }
        return Outcome {
            status,
            body: response_json(&resp),
            unavailable,
        };
    }
    panic!("{what}: still 503 after 30 attempts");
}

/// An item's shape: its table, its keys with every variable part replaced by `*`
/// (`TENANT#*#LEAD#*`), and its attribute names.
fn shape(table: &str, item: &Item) -> String {
    let pattern = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .map(|v| {
                v.split('#')
                    .map(|part| {
                        let literal = !part.is_empty()
                            && part.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                            && part.len() < 20;
                        if literal {
                            part
                        } else {
                            "*"
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("#")
            })
            .unwrap_or_default()
    };
    // Attribute names can carry a keyed hash (a rate window's `ri_<minute>_<hash>` counters);
    // each world has its own key, so the hash part is a wildcard too. A per-minute count
    // (`rf_<minute>_<form>`) is named by the minute it ran in: the two runs may straddle a
    // minute, so the minute is a wildcard and one name stands for any number of minutes.
    let mut names: Vec<String> = item
        .keys()
        .map(|name| {
            name.split('_')
                .map(|part| {
                    if part.len() >= 12 && part.chars().all(|c| c.is_ascii_hexdigit()) {
                        "*"
                    } else if !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()) {
                        "<minute>"
                    } else {
                        part
                    }
                })
                .collect::<Vec<_>>()
                .join("_")
        })
        .collect();
    names.sort_unstable();
    names.dedup_by(|a, b| a == b && a.contains("_<minute>"));
    // A security-log entry's kind is part of its shape.
    let event = item
        .get("event")
        .and_then(|v| v.as_s().ok())
        .map(|e| format!(" event={e}"))
        .unwrap_or_default();
    format!(
        "{table} {} {}{event} [{}]",
        pattern("pk"),
        pattern("sk"),
        names.join(",")
    )
}

/// Items that count attempts, not effects: rate windows (`RATE`, `DSARRATE`), the per-address mail
/// slots (`MAILTO`), records of throttled logins and retention runs' reports. A request sent again after a 503 is another attempt and counts again, by
/// design: they limit how often someone may try. They are left out of the comparison.
fn counts_attempts(item: &Item) -> bool {
    let attr = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    };
    matches!(attr("sk"), Some("RATE" | "MAILTO" | "DSARRATE"))
        // Each retention run keeps its own report: a run stopped by a failure and the run that
        // continues it are two reports.
        || attr("pk") == Some("RETENTION#REPORTS")
        // The security log's record of a throttled attempt: the throttle over-counts under
        // lost answers (it fails closed), and the refused attempt is recorded as it happened.
        || attr("event") == Some("login_throttled")
}

/// How many items of each shape the world's tables hold.
async fn shapes(w: &World) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let tables: Vec<String> = w
        .template
        .tables
        .iter()
        .map(|t| t.logical_id.clone())
        .collect();
    for table in tables {
        for item in w
            .scan(&table)
            .await
            .into_iter()
            .filter(|i| !counts_attempts(i))
        {
            *out.entry(shape(&table, &item)).or_insert(0) += 1;
        }
    }
    out
}

fn assert_same_store(faulted: &BTreeMap<String, usize>, clean: &BTreeMap<String, usize>) {
    let keys: std::collections::BTreeSet<&String> = faulted.keys().chain(clean.keys()).collect();
    let diff: Vec<String> = keys
        .into_iter()
        .filter(|k| faulted.get(*k) != clean.get(*k))
        .map(|k| {
            format!(
                "{k}: faulted {} clean {}",
                faulted.get(k).copied().unwrap_or(0),
                clean.get(k).copied().unwrap_or(0)
            )
        })
        .collect();
    assert!(
        diff.is_empty(),
        "the faulted run's store differs from the clean run's:\n{}",
        diff.join("\n")
    );
}

fn report(flow: &str, stats: &FaultStats, outcomes: &[Outcome]) {
    let unavailable: usize = outcomes.iter().map(|o| o.unavailable).sum();
    println!(
        "faults[{flow}]: {} requests, {unavailable} answered 503 first (then retried), 0 answered 500; proxy: {stats}",
        outcomes.len()
    );
    assert!(
        stats.total_injected() > 0,
        "{flow}: the proxy injected nothing, so this proved nothing"
    );
}

// ---------------------------------------------------------------- submissions

/// Form posts: 40 people (30 new, 10 returning), each post with its idempotency key as the
/// embed snippet sends it, eight at a time.
fn submissions() -> Vec<(serde_json::Value, String, String)> {
    (0..40)
        .map(|i| {
            let person = if i < 30 { i } else { i - 30 };
            let body = json!({
                "email": format!("person{person}@example.com"),
                "name": format!("Person {person}"),
                "message": format!("Message number {i}."),
                "consent_marketing": i % 2 == 0,
            });
            (body, format!("198.51.100.{}", i % 200), format!("post-{i}"))
        })
        .collect()
}

async fn submit_all(w: &World) -> Vec<Outcome> {
    let settings = IntakeSettings {
        rate_limit_per_ip_per_minute: 1000,
        rate_limit_per_form_per_minute: 1000,
        ..w.intake_config().settings
    };
    let intake = w.intake(Some(settings));
    let mut outcomes = Vec::new();
    for chunk in submissions().chunks(8) {
        let futures = chunk.iter().map(|(body, ip, key)| {
            let intake = &intake;
            async move {
                until_answered(key, || {
                    let mut e = json_submission(body);
                    e["requestContext"]["http"]["sourceIp"] = json!(ip);
                    e["headers"]["idempotency-key"] = json!(key);
                    lead_intake::handle(intake, request(&e))
                })
                .await
            }
        });
        outcomes.extend(join_all(futures.collect()).await);
    }
    outcomes
}

#[tokio::test]
async fn every_acknowledged_submission_is_stored_exactly_once_under_faults() {
    let clean = World::new().await.expect("clean world");
    let clean_outcomes = submit_all(&clean).await;
    assert!(clean_outcomes
        .iter()
        .all(|o| o.status == 201 || o.status == 200));

    let w = World::new().await.expect("world");
    let proxy = proxy(14).await;
    let outcomes = submit_all(&w.via(proxy.endpoint())).await;
    let stats = proxy.stats();
    for o in &outcomes {
        assert!(o.status == 201 || o.status == 200, "{o:?}");
    }
    // Each acknowledged submission exists once, under the lead it was acknowledged with.
    let subs = w.items_with_sk_prefix("LeadsTable", "SUB#").await;
    for o in &outcomes {
        let id = o.body["submission_id"].as_str().expect("a submission id");
        let found: Vec<_> = subs
            .iter()
            .filter(|s| s.get("submission_id").and_then(|v| v.as_s().ok()) == Some(&id.to_string()))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "submission {id} stored {} times",
            found.len()
        );
    }
    assert_eq!(subs.len(), 40);
    assert_eq!(w.items_with_sk_prefix("LeadsTable", "LEAD").await.len(), 30);
    assert_same_store(&shapes(&w).await, &shapes(&clean).await);
    report("submissions", &stats, &outcomes);
}

// ---------------------------------------------------------------- accounts

/// An auth request from `who`'s own address: each person signs up from their own device (the
/// throttles count per address too, and a retried attempt counts again).
fn auth_request(
    who: &str,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> lambda_http::Request {
    let mut e = fixture("auth/login.json");
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["method"] = json!(method);
    e["requestContext"]["http"]["path"] = json!(path);
    e["routeKey"] = json!(format!("{method} {path}"));
    e["pathParameters"] = json!({});
    e["body"] = json!(body.to_string());
    let n = who.bytes().map(u32::from).sum::<u32>() % 250;
    e["requestContext"]["http"]["sourceIp"] = json!(format!("192.0.2.{n}"));
    request(&e)
}

/// Reads the newest link token emailed to `to` with `subject` (the emulator's outbox, direct).
fn emailed_token(to: &str, subject: &str) -> String {
    for _ in 0..20 {
        if let Ok(all) = infra::emulator::sent_emails(emulator_endpoint()) {
            if let Some(mail) = all
                .iter()
                .rev()
                .find(|m| m.subject == subject && m.to.iter().any(|t| t.eq_ignore_ascii_case(to)))
            {
                return infra::emulator::token_in(&mail.body).expect("a link in the email");
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no {subject:?} email to {to}");
}

const PASSWORD: &str = "Correct-Horse-Battery-9";

/// One person's first day: sign up, confirm the address, log in, refresh three times, end with
/// a working access token. Every step is sent again while it is answered 503.
async fn first_day(w: &World, app: &auth::App<shared_mail::SesMailer>, who: &str) -> Vec<Outcome> {
    let email = format!("{who}.{}@example.com", w.stage);
    let mut seen = Vec::new();
    let signup = until_answered("signup", || {
        auth::handle(
            app,
            auth_request(
                who,
                "POST",
                "/v1/auth/signup",
                json!({"email": email, "password": PASSWORD, "name": who, "business_name": format!("{who} Ltd"), "policy_version": POLICY_VERSION, "terms_version": TERMS_VERSION}),
            ),
        )
    })
    .await;
    assert_eq!(signup.status, 201, "{signup:?}");
    seen.push(signup);
    let token = emailed_token(&email, "Confirm your email address");
    let verify = until_answered("verify", || {
        auth::handle(
            app,
            auth_request(
                who,
                "POST",
                "/v1/auth/verify-email",
                json!({"token": token}),
            ),
        )
    })
    .await;
    assert_eq!(verify.status, 200, "{verify:?}");
    seen.push(verify);
    let login = until_answered_waiting("login", Some(&w.clock), || {
        auth::handle(
            app,
            auth_request(
                who,
                "POST",
                "/v1/auth/login",
                json!({"email": email, "password": PASSWORD}),
            ),
        )
    })
    .await;
    assert_eq!(login.status, 200, "{login:?}");
    let mut refresh = login.body["refresh_token"].as_str().unwrap().to_string();
    seen.push(login);
    for _ in 0..3 {
        let r = until_answered("refresh", || {
            auth::handle(
                app,
                auth_request(
                    who,
                    "POST",
                    "/v1/auth/refresh",
                    json!({"refresh_token": refresh}),
                ),
            )
        })
        .await;
        assert_eq!(
            r.status, 200,
            "a refresh retried after a lost answer: {r:?}"
        );
        refresh = r.body["refresh_token"].as_str().unwrap().to_string();
        let access = r.body["access_token"].as_str().unwrap().to_string();
        seen.push(r);
        let me = until_answered("me", || {
            auth::handle(app, api_event("GET", "/v1/me", None, Some(&access)))
        })
        .await;
        assert_eq!(me.status, 200, "{me:?}");
        seen.push(me);
    }
    seen
}

async fn first_days(w: &World) -> Vec<Outcome> {
    let app = w.auth_app().await.expect("auth app");
    let people = ["ana", "bo", "cy", "di"];
    let runs = join_all(people.iter().map(|who| first_day(w, &app, who)).collect()).await;
    runs.into_iter().flatten().collect()
}

#[tokio::test]
async fn sign_up_verify_login_and_refresh_end_the_same_under_faults() {
    let clean = World::new().await.expect("clean world");
    first_days(&clean).await;

    let w = World::new().await.expect("world");
    let proxy = proxy(12).await;
    let outcomes = first_days(&w.via(proxy.endpoint())).await;
    let stats = proxy.stats();
    assert_same_store(&shapes(&w).await, &shapes(&clean).await);
    report("accounts", &stats, &outcomes);
}

// ---------------------------------------------------------------- billing webhooks

const STRIPE_SECRET: &str = infra::seed::LOCAL_STRIPE_WEBHOOK_SECRET;
const BILLING_T0: time::OffsetDateTime = time::macros::datetime!(2026-11-29 12:00 UTC);

fn stripe_event(name: &str) -> String {
    let path = workspace_root().join(format!("events/billing-webhook/{name}.json"));
    std::fs::read_to_string(path)
        .expect("sample event")
        .replace("demo-tenant", "tenant-a")
}

/// The events of a subscription's life, each delivered as Stripe does: again while it is not
/// answered 2xx, and once more after (Stripe delivers at least once).
async fn subscription_life(w: &World) -> Vec<Outcome> {
    w.clock.set(BILLING_T0);
    let app = w.billing_app().await.expect("billing app");
    let mut seen = Vec::new();
    for name in [
        "checkout.session.completed",
        "customer.subscription.created",
        "invoice.paid",
        "customer.subscription.updated",
        "charge.refunded",
        "customer.subscription.deleted",
    ] {
        let body = stripe_event(name);
        for _ in 0..2 {
            let o = until_answered(name, || {
                let mut e = fixture("billing-webhook/webhook-request.json");
                e["body"] = json!(body);
                let signature = billing_webhook::stripe::signature_header(
                    STRIPE_SECRET,
                    BILLING_T0.unix_timestamp(),
                    body.as_bytes(),
                );
                e["headers"]["stripe-signature"] = json!(signature);
                billing_webhook::handle(&app, request(&e))
            })
            .await;
            assert_eq!(o.status, 200, "{name}: {o:?}");
            seen.push(o);
        }
    }
    seen
}

/// The subscription's state and the invoices' fields that matter, for an exact comparison.
async fn billing_state(w: &World) -> Vec<String> {
    let mut out: Vec<String> = w
        .scan("BillingTable")
        .await
        .iter()
        .map(|it| {
            let mut fields: Vec<String> = [
                "sk",
                "status",
                "plan",
                "amount_paid",
                "amount_refunded",
                "customer_id",
            ]
            .iter()
            .filter_map(|n| {
                it.get(*n).map(|v| {
                    format!(
                        "{n}={}",
                        v.as_s().or_else(|_| v.as_n()).cloned().unwrap_or_default()
                    )
                })
            })
            .collect();
            fields.sort();
            fields.join(" ")
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn webhook_deliveries_retried_after_lost_answers_have_one_effect() {
    let clean = World::new().await.expect("clean world");
    subscription_life(&clean).await;

    let w = World::new().await.expect("world");
    let proxy = proxy(21).await;
    let outcomes = subscription_life(&w.via(proxy.endpoint())).await;
    let stats = proxy.stats();
    assert_same_store(&shapes(&w).await, &shapes(&clean).await);
    assert_eq!(billing_state(&w).await, billing_state(&clean).await);
    report("billing webhooks", &stats, &outcomes);
}

// ---------------------------------------------------------------- lead edits and notes

fn leads_event(
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
    token: &str,
) -> lambda_http::Request {
    let mut e = http_event(method, path, Some(token));
    if let Some(b) = body {
        e["body"] = json!(b.to_string());
        e["headers"]["content-type"] = json!("application/json");
    }
    request(&e)
}

/// Six people submit (straight, no faults); then the owner, through `app`, moves each lead to
/// `contacted` with a new name and adds a note, each request sent again while answered 503.
async fn edit_leads(direct: &World, app: &leads_api::App) -> Vec<Outcome> {
    let auth = direct.auth_app().await.expect("auth app");
    let (_, token) = direct
        .member(
            &auth,
            &direct.tenant,
            shared_accounts::auth::permissions::Role::Owner,
            "owner",
        )
        .await;
    let intake = direct.intake(None);
    let mut leads = Vec::new();
    for i in 0..6 {
        let mut e = json_submission(
            &json!({"email": format!("lead{i}@example.com"), "name": format!("Lead {i}")}),
        );
        e["requestContext"]["http"]["sourceIp"] = json!(format!("203.0.113.{i}"));
        let resp = lead_intake::handle(&intake, request(&e)).await;
        assert_eq!(resp.status(), 201);
        leads.push(
            response_json(&resp)["lead_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let mut seen = Vec::new();
    for (i, lead) in leads.iter().enumerate() {
        let path = format!("/v1/leads/{lead}");
        let read = until_answered("get lead", || {
            leads_api::handle(app, leads_event("GET", &path, None, &token))
        })
        .await;
        assert_eq!(read.status, 200, "{read:?}");
        let version = read.body["version"].as_i64().expect("a version");
        let edit =
            json!({"version": version, "stage": "contacted", "name": format!("Lead {i} (called)")});
        let patched = until_answered("patch lead", || {
            leads_api::handle(app, leads_event("PATCH", &path, Some(edit.clone()), &token))
        })
        .await;
        assert_eq!(
            patched.status, 200,
            "an edit retried after a lost answer: {patched:?}"
        );
        seen.push(patched);
        let notes = format!("/v1/leads/{lead}/notes");
        let note = json!({"text": format!("Called lead {i}; call back Monday.")});
        let added = until_answered("add note", || {
            leads_api::handle(app, leads_event("POST", &notes, Some(note.clone()), &token))
        })
        .await;
        assert!(matches!(added.status, 200 | 201), "{added:?}");
        seen.push(added);
    }
    seen
}

/// Each lead's name, stage, version and number of notes.
async fn lead_state(w: &World) -> Vec<String> {
    let items = w.scan("LeadsTable").await;
    let mut out: Vec<String> = items
        .iter()
        .filter(|it| s(it, "sk").is_some_and(|sk| sk.starts_with("LEAD")))
        .map(|lead| {
            let pk = s(lead, "pk").unwrap_or_default();
            let notes = items
                .iter()
                .filter(|it| {
                    s(it, "pk") == Some(pk) && s(it, "sk").is_some_and(|sk| sk.starts_with("NOTE"))
                })
                .count();
            format!(
                "{} {} v{} notes={notes}",
                s(lead, "name").unwrap_or_default(),
                s(lead, "stage").unwrap_or_default(),
                lead.get("version")
                    .and_then(|v| v.as_n().ok())
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn lead_edits_and_notes_retried_after_lost_answers_have_one_effect() {
    let clean = World::new().await.expect("clean world");
    edit_leads(&clean, &clean.leads_app().await).await;

    let w = World::new().await.expect("world");
    let proxy = proxy(33).await;
    let outcomes = edit_leads(&w, &w.via(proxy.endpoint()).leads_app().await).await;
    let stats = proxy.stats();
    assert_eq!(lead_state(&w).await, lead_state(&clean).await);
    assert_same_store(&shapes(&w).await, &shapes(&clean).await);
    report("lead edits and notes", &stats, &outcomes);
}

// ---------------------------------------------------------------- retention runs

fn retention_app(w: &World) -> retention_cleanup::App {
    let env = infra::local::local_function_env(&w.template, "retention-cleanup", &w.endpoint)
        .expect("function env");
    let mut config =
        retention_cleanup::config::Config::from_env(&shared_core::config::Env::from_pairs(env))
            .expect("template env is valid");
    config.settings.catch_up_days = 2;
    retention_cleanup::App {
        dynamo: w.clients.dynamo.clone(),
        s3: w.clients.s3.clone(),
        tables: config.tables,
        buckets: config.buckets,
        key: w.key.clone(),
        clock: w.clock.clone(),
        ids: std::sync::Arc::new(shared_core::clock::UlidGenerator),
        settings: config.settings,
    }
}

/// Ten submissions on 2026-01-10 (straight), then the daily run of 2026-04-11 through `app`,
/// which removes their technical data (kept 90 days). A run that stops on a failure reports
/// `partial` and the next run continues from its checkpoint: the scheduler runs it again until
/// it completes. Returns each run's status.
async fn technical_data_expires(direct: &World, app: &retention_cleanup::App) -> Vec<String> {
    use time::macros::datetime;
    direct.clock.set(datetime!(2026-01-10 10:00 UTC));
    let intake = direct.intake(None);
    for i in 0..10 {
        let mut e =
            json_submission(&json!({"email": format!("old{i}@example.com"), "name": "Old Lead"}));
        e["requestContext"]["http"]["sourceIp"] = json!(format!("203.0.113.{}", 50 + i));
        assert_eq!(
            lead_intake::handle(&intake, request(&e)).await.status(),
            201
        );
    }
    let mut at = datetime!(2026-04-11 03:00 UTC);
    let mut statuses = Vec::new();
    let (logs, _guard) = capture_logs();
    for _ in 0..20 {
        direct.clock.set(at);
        let mut event = fixture("retention-cleanup/scheduled.json");
        event["time"] = json!(shared_core::clock::rfc3339(at));
        let report =
            retention_cleanup::handle(app, &event, retention_cleanup::Limits::default()).await;
        let status = report["status"].as_str().unwrap_or_default().to_string();
        statuses.push(status.clone());
        if status == "completed" {
            return statuses;
        }
        assert!(matches!(status.as_str(), "partial" | "busy"), "{report:#}");
        if std::env::var("FAULTS_DEBUG").is_ok() {
            for line in logs.text().lines().filter(|l| l.contains("step failed")) {
                eprintln!("PARTIAL {line}");
            }
        }
        // The scheduler's next attempt, a little later (a lease held by a stopped run expires).
        at += time::Duration::minutes(20);
    }
    panic!("the run never completed: {statuses:?}");
}

async fn with_technical_data(w: &World) -> usize {
    w.items_with_sk_prefix("LeadsTable", "SUB#")
        .await
        .iter()
        .filter(|it| it.contains_key("ip") || it.contains_key("user_agent"))
        .count()
}

#[tokio::test]
async fn a_retention_run_under_faults_ends_where_a_clean_run_ends() {
    let clean = World::new().await.expect("clean world");
    technical_data_expires(&clean, &retention_app(&clean)).await;

    let w = World::new().await.expect("world");
    let proxy = proxy(41).await;
    let statuses = technical_data_expires(&w, &retention_app(&w.via(proxy.endpoint()))).await;
    let stats = proxy.stats();
    assert_eq!(with_technical_data(&clean).await, 0);
    assert_eq!(
        with_technical_data(&w).await,
        0,
        "every submission lost its technical data"
    );
    assert_same_store(&shapes(&w).await, &shapes(&clean).await);
    println!(
        "faults[retention]: {} runs until completed ({statuses:?}); proxy: {stats}",
        statuses.len()
    );
    assert!(stats.total_injected() > 0);
}

// ---------------------------------------------------------------- data-subject requests

/// Records the jobs the dsar function dispatches (Lambda's asynchronous invoke, which queues
/// and retries on its own, is not what is tested here).
#[derive(Clone, Default)]
struct Jobs(std::sync::Arc<std::sync::Mutex<Vec<shared_privacy::dsar::job::DsarJob>>>);

impl shared_privacy::dsar::job::JobDispatcher for Jobs {
    async fn dispatch(
        &self,
        job: &shared_privacy::dsar::job::DsarJob,
    ) -> Result<(), shared_core::error::AppError> {
        self.0.lock().unwrap().push(job.clone());
        Ok(())
    }
}

type Mail = shared_mail::WithUnsubscribe<shared_mail::SesMailer>;

fn platform_mail(w: &World, function: &str) -> Mail {
    let env = infra::local::local_function_env(&w.template, function, &w.endpoint).unwrap();
    shared_mail::WithUnsubscribe {
        inner: w.platform_mailer(function).expect("the platform mailer"),
        key: w.key.clone(),
        api_base_url: env["API_BASE_URL"].clone(),
        scope: shared_mail::unsubscribe::UnsubscribeScope::Platform,
    }
}

/// The dsar function's app and the worker as their `main.rs` build them, over `w`'s clients.
async fn dsar_apps(
    w: &World,
    jobs: &Jobs,
) -> (
    dsar::App<Mail, Jobs>,
    shared_privacy::dsar::worker::Worker<
        shared_privacy::dsar::progress::Progress<Mail>,
        Jobs,
        Mail,
    >,
) {
    use shared_accounts::dynamo::{AccountStore, AccountTables};
    use shared_privacy::dsar::store::{DsarStore, DsarTables};
    let env = infra::local::local_function_env(&w.template, "dsar", &w.endpoint).unwrap();
    let c = dsar::config::Config::from_env(&shared_core::config::Env::from_pairs(env)).unwrap();
    let accounts = |security_log: String, ops: String, tenants: String| {
        AccountStore::new(
            w.clients.dynamo.clone(),
            AccountTables {
                tenants,
                security_log,
                ops,
            },
            0,
        )
    };
    let app = dsar::App {
        store: DsarStore::new(w.clients.dynamo.clone(), c.tables.clone()),
        accounts: accounts(
            String::new(),
            c.tables.ops.clone(),
            c.tables.tenants.clone(),
        ),
        mailer: platform_mail(w, "dsar"),
        dispatcher: jobs.clone(),
        keys: w.key.clone(),
        verifier: w.token_verifier("dsar").await.unwrap(),
        clock: w.clock.clone(),
        ids: std::sync::Arc::new(shared_core::clock::UlidGenerator),
        links: c.links.clone(),
        downloads: dsar::downloads::Downloads {
            s3: w.clients.s3.clone(),
            exports_bucket: c.exports_bucket.clone(),
            attachments_bucket: c.attachments_bucket.clone(),
        },
        settings: c.settings.clone(),
    };
    let env = infra::local::local_function_env(&w.template, "dsar-worker", &w.endpoint).unwrap();
    let wc =
        dsar_worker::config::Config::from_env(&shared_core::config::Env::from_pairs(env)).unwrap();
    let t = &wc.tables;
    let mail = platform_mail(w, "dsar-worker");
    let worker = shared_privacy::dsar::worker::Worker {
        store: shared_privacy::dsar::subjects::SubjectStore::new(
            w.clients.dynamo.clone(),
            t.clone(),
        ),
        checkpoints: shared_privacy::dsar::checkpoint::CheckpointStore::new(
            w.clients.dynamo.clone(),
            t.ops.clone(),
            30,
        ),
        exports: shared_privacy::dsar::export::Exports {
            s3: w.clients.s3.clone(),
            bucket: wc.exports_bucket.clone(),
            part_bytes: 5 * 1024 * 1024,
        },
        attachments_bucket: wc.attachments_bucket.clone(),
        mailer: mail.clone(),
        progress: shared_privacy::dsar::progress::Progress {
            store: DsarStore::new(
                w.clients.dynamo.clone(),
                DsarTables {
                    privacy: t.privacy.clone(),
                    leads: t.leads.clone(),
                    tenants: t.tenants.clone(),
                    ops: t.ops.clone(),
                },
            ),
            accounts: accounts(t.security_log.clone(), t.ops.clone(), t.tenants.clone()),
            mailer: mail,
            key: w.key.clone(),
            clock: w.clock.clone(),
            links: shared_privacy::dsar::progress::Links {
                api_base_url: wc.api_base_url.clone(),
                operator_email: wc.operator_email.clone(),
            },
        },
        dispatcher: jobs.clone(),
        keys: w.key.clone(),
        clock: w.clock.clone(),
        ids: std::sync::Arc::new(shared_core::clock::UlidGenerator),
        settings: wc.settings.clone(),
    };
    (app, worker)
}

fn dsar_event(
    path: &str,
    body: Option<serde_json::Value>,
    bearer: Option<&str>,
) -> lambda_http::Request {
    let method = if body.is_some() || path.ends_with("/approve") {
        "POST"
    } else {
        "GET"
    };
    api_event(method, path, body.as_ref(), bearer)
}

/// The six-digit code of the latest code email for `request_id` to `to`.
fn dsar_code(to: &str, request_id: &str) -> String {
    for _ in 0..20 {
        if let Ok(all) = infra::emulator::sent_emails(emulator_endpoint()) {
            if let Some(m) = all.iter().rev().find(|m| {
                m.to.iter().any(|t| t.eq_ignore_ascii_case(to))
                    && m.subject.contains("Confirm")
                    && m.body.contains(request_id)
            }) {
                let at = m.body.find("enter this code: ").expect("a code") + 17;
                return m.body[at..at + 6].to_string();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no code email for {request_id}");
}

/// Three people submit (straight); two of them file an erasure, confirm it with the emailed
/// code, the owner approves, and the worker erases: every step through `via` (the functions'
/// clients), each request sent again while answered 503, each job run again while it fails
/// (as Lambda retries an asynchronous invocation).
async fn erasures(direct: &World, via: &World) -> Vec<Outcome> {
    let auth = direct.auth_app().await.expect("auth app");
    let intake = direct.intake(None);
    let people: Vec<String> = (0..3)
        .map(|i| format!("subject{i}.{}@example.com", direct.stage))
        .collect();
    for (i, email) in people.iter().enumerate() {
        let mut e =
            json_submission(&json!({"email": email, "name": "Sam Subject", "message": "hello"}));
        e["requestContext"]["http"]["sourceIp"] = json!(format!("203.0.113.{}", 100 + i));
        assert_eq!(
            lead_intake::handle(&intake, request(&e)).await.status(),
            201
        );
    }
    let jobs = Jobs::default();
    let (app, worker) = dsar_apps(via, &jobs).await;
    let mut seen = Vec::new();
    for email in &people[..2] {
        // Filings are limited per address per hour and a filing sent again after a 503 counts
        // again (the limit fails closed): the subject may be told to wait.
        let filed = until_answered_waiting("file", Some(&via.clock), || {
            dsar::handle(
                &app,
                dsar_event(
                    "/v1/privacy/requests",
                    Some(json!({"type": "erasure", "email": email, "form_id": direct.form.form_id.as_str()})),
                    None,
                ),
            )
        })
        .await;
        assert_eq!(filed.status, 202, "{filed:?}");
        let id = filed.body["request_id"].as_str().unwrap().to_string();
        seen.push(filed);
        let code = dsar_code(email, &id);
        let verified = until_answered("verify", || {
            dsar::handle(
                &app,
                dsar_event(
                    &format!("/v1/privacy/requests/{id}/verify"),
                    Some(json!({"code": code})),
                    None,
                ),
            )
        })
        .await;
        assert_eq!(verified.status, 200, "{verified:?}");
        seen.push(verified);
        // A fresh session: waiting out a filing limit may outlast an access token.
        let (_, owner) = direct
            .member(
                &auth,
                &direct.tenant,
                shared_accounts::auth::permissions::Role::Owner,
                "dpo",
            )
            .await;
        let approved = until_answered("approve", || {
            dsar::handle(
                &app,
                dsar_event(
                    &format!("/v1/privacy/requests/{id}/approve"),
                    None,
                    Some(&owner),
                ),
            )
        })
        .await;
        assert_eq!(approved.status, 200, "{approved:?}");
        seen.push(approved);
    }
    let dispatched: Vec<_> = jobs.0.lock().unwrap().clone();
    let mut ids: Vec<&str> = dispatched.iter().map(|j| j.request_id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 2, "one job per approved request: {ids:?}");
    for job in &dispatched {
        let payload = serde_json::to_value(job).unwrap();
        let mut done = false;
        for _ in 0..10 {
            match dsar_worker::handle(
                &worker,
                payload.clone(),
                &shared_privacy::dsar::worker::Unlimited,
            )
            .await
            {
                Ok(v)
                    if matches!(
                        v["status"].as_str(),
                        Some("completed" | "already_completed")
                    ) =>
                {
                    done = true;
                    break;
                }
                Ok(v) => panic!("the job ended {v}"),
                Err(_) => continue, // Lambda retries a failed asynchronous invocation
            }
        }
        assert!(done, "the job never completed");
    }
    seen
}

/// What the erasures leave: the leads' emails, and every request's status.
async fn dsar_state(w: &World) -> Vec<String> {
    let mut out: Vec<String> = w
        .items_with_sk_prefix("LeadsTable", "LEAD")
        .await
        .iter()
        .map(|l| {
            format!(
                "lead {}",
                s(l, "email")
                    .unwrap_or("-")
                    .split('.')
                    .next()
                    .unwrap_or_default()
            )
        })
        .collect();
    for r in w.scan("PrivacyTable").await {
        if let Some(status) = s(&r, "status") {
            out.push(format!(
                "{} {status}",
                s(&r, "sk")
                    .unwrap_or_default()
                    .split('#')
                    .next()
                    .unwrap_or_default()
            ));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn data_subject_erasures_under_faults_end_where_a_clean_run_ends() {
    let clean = World::new().await.expect("clean world");
    erasures(&clean, &clean).await;

    let w = World::new().await.expect("world");
    let proxy = proxy(55).await;
    let outcomes = erasures(&w, &w.via(proxy.endpoint())).await;
    let stats = proxy.stats();
    assert_eq!(dsar_state(&w).await, dsar_state(&clean).await);
    assert_same_store(&shapes(&w).await, &shapes(&clean).await);
    report("data-subject erasures", &stats, &outcomes);
}

// ---------------------------------------------------------------- imports and exports

fn transfers_app(
    w: &World,
    verifier: shared_accounts::auth::jwt::VerifyingKeys,
) -> lead_transfers::App {
    let env = infra::local::local_function_env(&w.template, "lead-transfers", &w.endpoint).unwrap();
    let config =
        lead_transfers::config::Config::from_env(&shared_core::config::Env::from_pairs(env))
            .unwrap();
    lead_transfers::App {
        store: shared_leads::transfers::TransfersStore::new(
            w.clients.dynamo.clone(),
            config.tables.clone(),
        ),
        s3: w.clients.s3.clone(),
        buckets: config.buckets.clone(),
        keys: w.key.clone(),
        verifier,
        clock: w.clock.clone(),
        ids: std::sync::Arc::new(shared_core::clock::UlidGenerator),
        settings: lead_transfers::config::Settings::default(),
    }
}

/// Three times, an admin imports a CSV of 12 people (its upload slot through `app`, the file
/// put straight into the bucket where the slot's URL points), then exports the tenant's leads:
/// each request sent again while answered 503.
async fn import_then_export(direct: &World, app: &lead_transfers::App) -> Vec<Outcome> {
    let auth = direct.auth_app().await.expect("auth app");
    let (_, admin) = direct
        .member(
            &auth,
            &direct.tenant,
            shared_accounts::auth::permissions::Role::Admin,
            "admin",
        )
        .await;
    let mut csv = String::from("Email,Name,Company\r\n");
    for i in 0..12 {
        csv.push_str(&format!("imported{i}@example.com,Imported {i},Co {i}\r\n"));
    }
    let call = |method: &'static str, path: &'static str, body: serde_json::Value| {
        let admin = admin.clone();
        async move {
            until_answered(path, || {
                let mut e = http_event(method, path, Some(&admin));
                e["body"] = json!(body.to_string());
                e["headers"]["content-type"] = json!("application/json");
                lead_transfers::handle(app, request(&e))
            })
            .await
        }
    };
    let mut seen = Vec::new();
    for round in 0..3 {
        let csv = csv.replace("imported", &format!("r{round}.imported"));
        let slot = call("POST", "/v1/imports/uploads", json!({"size": csv.len()})).await;
        assert_eq!(slot.status, 201, "{slot:?}");
        let id = slot.body["id"].as_str().unwrap().to_string();
        let url = slot.body["upload_url"].as_str().unwrap();
        let path = url.split_once("://").unwrap().1.split_once('/').unwrap().1;
        let path = path.split('?').next().unwrap();
        let (bucket, key) = path.split_once('/').unwrap();
        direct
            .direct
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("text/csv")
            .body(csv.clone().into_bytes().into())
            .send()
            .await
            .expect("the CSV in the upload slot");
        seen.push(slot);
        let import = call(
        "POST",
        "/v1/imports",
        json!({"upload_id": id, "legal_basis": "legitimate_interest", "source": "Trade fair 2026"}),
    )
    .await;
        assert!(matches!(import.status, 200 | 201), "{import:?}");
        // A run that failed half-way wrote some rows; the run of the request sent again counts
        // them as duplicates (docs/lead-transfers.md). Nobody is imported twice: the store
        // comparison says so.
        let n = |k: &str| import.body[k].as_u64().unwrap_or(0);
        assert_eq!(n("imported") + n("duplicates"), 12, "{import:?}");
        seen.push(import);
        let export = call("POST", "/v1/exports", json!({"format": "csv"})).await;
        assert_eq!(export.status, 201, "{export:?}");
        seen.push(export);
    }
    seen
}

#[tokio::test]
async fn an_import_and_an_export_under_faults_end_where_a_clean_run_ends() {
    let clean = World::new().await.expect("clean world");
    let verifier = clean.token_verifier("lead-transfers").await.unwrap();
    import_then_export(&clean, &transfers_app(&clean, verifier)).await;

    let w = World::new().await.expect("world");
    let proxy = proxy(66).await;
    let via = w.via(proxy.endpoint());
    let verifier = w.token_verifier("lead-transfers").await.unwrap();
    let outcomes = import_then_export(&w, &transfers_app(&via, verifier)).await;
    let stats = proxy.stats();
    assert_eq!(lead_state(&w).await, lead_state(&clean).await);
    assert_same_store(&shapes(&w).await, &shapes(&clean).await);
    report("import and export", &stats, &outcomes);
}
