//! The platform's mail cannot be used as a relay, and an unverified sign-up cannot squat an
//! address (docs/mail.md, docs/security.md): each attack run against the emulator, the
//! concurrent ones as many handler calls joined at once.
//!
//! - sign-ups, resets, invitations and privacy-request filings aimed at one address send it at
//!   most 3 emails of a kind an hour, and answer exactly as usual;
//! - per client IP (IPv6 by /64) the public routes answer 429 past their limit; a tenant's
//!   invitations and filings on behalf are limited too;
//! - text a caller types reaches a third party only as a bounded, link-free name;
//! - an unverified sign-up loses its address to a later sign-up, an invitation, and retention;
//! - an address that bounced or complained is not mailed again.

use std::sync::{Arc, Mutex, OnceLock};

use integration_tests::*;
use lambda_http::Request;
use serde_json::{json, Value};
use shared_accounts::auth::jwt::{AccessClaims, TokenSigner, ACCESS_TOKEN_TTL_SECS, ISSUER};
use shared_accounts::auth::permissions::Role;
use shared_accounts::dynamo::{login_item, session_item, tenant_item, user_item, AccountStore};
use shared_accounts::{Mfa, Tenant, User};
use shared_core::clock::{rfc3339, Clock, UlidGenerator};
use shared_core::config::Env;
use shared_core::domain::{Email, SessionId, TenantId, TenantStatus, UserId};
use shared_core::dynamo::Item;
use shared_core::error::AppError;
use shared_core::keys;
use shared_core::retention::rule;
use shared_mail::SesMailer;
use shared_privacy::dsar::job::{DsarJob, JobDispatcher};
use shared_privacy::dsar::store::DsarStore;
use shared_privacy::inventory::{self, Table};
use time::macros::datetime;
use time::Duration;

type AuthApp = auth::App<SesMailer>;

const PASSWORD: &str = "Plum-Orbit-Kettle-42";
const NEW_PASSWORD: &str = "Quartz-Meadow-Lantern-77";

const VERIFY: &str = "Confirm your email address";
const SIGNUP_EXISTING: &str = "Someone tried to sign up with your email";
const RESET: &str = "Reset your password";
const INVITATION: &str = "You are invited to join a team";

// ---------------------------------------------------------------- calling the functions

struct Reply {
    status: u16,
    body: Value,
    retry_after: Option<String>,
}

/// An API Gateway v2 event from client address `ip`.
fn event(
    method: &str,
    path: &str,
    body: Option<&Value>,
    bearer: Option<&str>,
    ip: &str,
) -> Request {
    let mut e = http_event(method, path, bearer);
    e["requestContext"]["http"]["sourceIp"] = json!(ip);
    match body {
        Some(b) => e["body"] = json!(b.to_string()),
        None => {
            e["body"] = Value::Null;
            e["headers"]
                .as_object_mut()
                .expect("headers")
                .remove("content-type");
        }
    }
    request(&e)
}

fn reply(resp: lambda_http::Response<lambda_http::Body>) -> Reply {
    Reply {
        status: resp.status().as_u16(),
        body: response_json(&resp),
        retry_after: header(&resp, "retry-after").map(str::to_string),
    }
}

async fn auth_call(app: &AuthApp, req: Request) -> Reply {
    reply(auth::handle(app, req).await)
}

fn signup_body(email: &str, name: &str, business: &str) -> Value {
    json!({"email": email, "password": PASSWORD, "name": name, "business_name": business, "policy_version": POLICY_VERSION, "terms_version": TERMS_VERSION})
}

async fn signup(app: &AuthApp, email: &str, ip: impl Into<String>) -> Reply {
    let ip: String = ip.into();
    auth_call(
        app,
        event(
            "POST",
            "/v1/auth/signup",
            Some(&signup_body(email, "Sam", "Sam Co")),
            None,
            &ip,
        ),
    )
    .await
}

async fn reset(app: &AuthApp, email: &str, ip: impl Into<String>) -> Reply {
    let ip: String = ip.into();
    auth_call(
        app,
        event(
            "POST",
            "/v1/auth/password-reset",
            Some(&json!({ "email": email })),
            None,
            &ip,
        ),
    )
    .await
}

async fn post(app: &AuthApp, path: &str, body: Value, bearer: Option<&str>) -> Reply {
    auth_call(app, event("POST", path, Some(&body), bearer, "192.0.2.1")).await
}

/// A per-test address (the emulator keeps the emails of every test of the process).
fn address(w: &World, who: &str) -> String {
    format!("{who}.{}@example.com", w.stage)
}

fn subjects(w: &World, to: &str) -> Vec<String> {
    w.emails_to(to).into_iter().map(|m| m.subject).collect()
}

fn count(w: &World, to: &str, subject: &str) -> usize {
    subjects(w, to).iter().filter(|s| *s == subject).count()
}

fn latest(w: &World, to: &str) -> infra::emulator::SentEmail {
    w.emails_to(to)
        .pop()
        .unwrap_or_else(|| panic!("no email to {to}"))
}

fn token_of(mail: &infra::emulator::SentEmail) -> String {
    infra::emulator::token_in(&mail.body)
        .unwrap_or_else(|| panic!("no link in {:?}: {}", mail.subject, mail.body))
}

async fn world() -> (World, AuthApp) {
    let w = World::new().await.expect("test world");
    let app = w.auth_app().await.expect("auth app");
    (w, app)
}

fn stored_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| shared_accounts::auth::password::hash_password(PASSWORD).expect("hashing"))
}

async fn put(w: &World, table: &str, item: Item) {
    w.clients
        .dynamo
        .put_item()
        .table_name(w.table(table))
        .set_item(Some(item))
        .send()
        .await
        .expect("put item");
}

/// A verified owner of a new tenant, written straight to the tables.
async fn seed_owner(w: &World, who: &str) -> User {
    let tenant = TenantId::parse(&format!(
        "tn-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    ))
    .unwrap();
    let user = User {
        user_id: UserId::parse(&format!(
            "us-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        ))
        .unwrap(),
        tenant_id: tenant.clone(),
        email: Email::parse(&address(w, who)).unwrap(),
        name: who.to_string(),
        phone: None,
        role: Role::Owner,
        password_hash: stored_hash().to_string(),
        email_verified: true,
        created_at: w.clock.now(),
        mfa: Mfa::default(),
        last_login: None,
        policy: None,
    };
    put(w, "TenantsTable", user_item(&user)).await;
    put(
        w,
        "TenantsTable",
        login_item(&w.key.email(&user.email), &tenant, &user.user_id),
    )
    .await;
    put(
        w,
        "TenantsTable",
        tenant_item(&Tenant {
            tenant_id: tenant,
            business_name: format!("{who} Ltd"),
            status: TenantStatus::Active,
            owner_user_id: user.user_id.clone(),
            created_at: w.clock.now(),
            closed_at: None,
            erase_after: None,
        }),
    )
    .await;
    user
}

async fn access_token(app: &AuthApp, email: &str, password: &str) -> String {
    let r = post(
        app,
        "/v1/auth/login",
        json!({"email": email, "password": password}),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "login of {email}: {}", r.body);
    r.body["access_token"].as_str().unwrap().to_string()
}

async fn invite(app: &AuthApp, token: &str, email: &str) -> Reply {
    post(
        app,
        "/v1/team/invitations",
        json!({"email": email, "role": "viewer"}),
        Some(token),
    )
    .await
}

async fn get(w: &World, table: &str, key: &keys::Key) -> Option<Item> {
    w.clients
        .dynamo
        .get_item()
        .table_name(w.table(table))
        .key("pk", shared_core::dynamo::s(&key.pk))
        .key("sk", shared_core::dynamo::s(&key.sk))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
}

fn all_same(replies: &[Reply]) -> bool {
    replies
        .iter()
        .all(|r| (r.status, &r.body) == (replies[0].status, &replies[0].body))
}

// ---------------------------------------------------------------- per recipient

#[tokio::test]
async fn twenty_sign_ups_for_one_address_at_once_send_it_at_most_three_emails() {
    let (w, app) = world().await;
    let victim = address(&w, "signup-victim");
    // From twenty clients: the address's own limit is what holds, not a client's.
    let calls = (0..20)
        .map(|i| signup(&app, &victim, format!("198.51.100.{}", i + 1)))
        .collect();
    let replies = join_all(calls).await;
    assert_eq!(replies[0].status, 201, "{}", replies[0].body);
    assert!(all_same(&replies), "every sign-up answers the same");
    let sent = w.emails_to(&victim).len();
    assert!((1..=3).contains(&sent), "{sent} emails to one address");

    // The slots are taken for an hour from each send, not until the next clock hour.
    w.clock.advance(Duration::minutes(59));
    assert_eq!(signup(&app, &victim, "198.51.100.99").await.status, 201);
    assert_eq!(w.emails_to(&victim).len(), sent, "still within the hour");
    w.clock.advance(Duration::minutes(2));
    assert_eq!(signup(&app, &victim, "198.51.100.99").await.status, 201);
    assert_eq!(w.emails_to(&victim).len(), sent + 1, "an hour later");
}

#[tokio::test]
async fn twenty_resets_for_one_account_at_once_send_at_most_three_links() {
    let (w, app) = world().await;
    let owner = seed_owner(&w, "reset-victim").await;
    let to = owner.email.as_str().to_string();
    let calls = (0..20)
        .map(|i| reset(&app, &to, format!("198.51.100.{}", i + 1)))
        .collect();
    let replies = join_all(calls).await;
    assert_eq!(replies[0].status, 202, "{}", replies[0].body);
    assert!(all_same(&replies));
    let unknown = reset(&app, &address(&w, "nobody"), "198.51.100.77").await;
    assert_eq!(
        (unknown.status, &unknown.body),
        (202, &replies[0].body),
        "the limit answers like an unknown address"
    );
    let links = count(&w, &to, RESET);
    assert!((1..=3).contains(&links), "{links} reset emails");
    // Each link that went out works; none beyond them exists.
    let tokens: Vec<Item> = w
        .items_with_sk_prefix("TenantsTable", "TOKEN")
        .await
        .into_iter()
        .filter(|t| s(t, "kind") == Some("password_reset"))
        .collect();
    assert_eq!(tokens.len(), links, "a token only for a link sent");
}

#[tokio::test]
async fn ten_invitations_of_one_address_at_once_send_it_at_most_three() {
    let (w, app) = world().await;
    let owner = seed_owner(&w, "inviter").await;
    let token = access_token(&app, owner.email.as_str(), PASSWORD).await;
    let target = address(&w, "invited-victim");
    let calls = (0..10).map(|_| invite(&app, &token, &target)).collect();
    let replies = join_all(calls).await;
    assert_eq!(replies[0].status, 201, "{}", replies[0].body);
    assert!(replies.iter().all(|r| r.status == 201
        && r.body["status"] == replies[0].body["status"]
        && r.body["role"] == replies[0].body["role"]));
    let sent = w.emails_to(&target).len();
    assert!((1..=3).contains(&sent), "{sent} invitations to one address");
    // An address that has an account is told instead, within the same limit.
    let holder = seed_owner(&w, "holder").await;
    let calls = (0..10)
        .map(|_| invite(&app, &token, holder.email.as_str()))
        .collect();
    let replies = join_all(calls).await;
    assert!(replies.iter().all(|r| r.status == 201));
    let told = w.emails_to(holder.email.as_str()).len();
    assert!((1..=3).contains(&told), "{told} notices to one address");
}

// ---------------------------------------------------------------- per client and per tenant

#[tokio::test]
async fn sign_ups_and_resets_from_one_ipv6_slash_64_are_throttled_with_429() {
    let (w, app) = world().await;
    // Twenty-five clients of one /64 (one subscriber), each naming another address.
    let ip = |i: usize| format!("2001:db8:77:5::{:x}", i + 1);
    let calls = (0..25)
        .map(|i| {
            let to = address(&w, &format!("spray-{i}"));
            let app = &app;
            let ip = ip(i);
            async move { signup(app, &to, ip).await }
        })
        .collect();
    let replies = join_all(calls).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    let limited: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!(
        (created, limited.len()),
        (20, 5),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in &limited {
        assert_eq!(r.body["error"]["code"], "rate_limited");
        let wait: u64 = r.retry_after.as_deref().unwrap().parse().unwrap();
        assert!((1..=3600).contains(&wait), "Retry-After {wait}");
    }
    let mailed = (0..25)
        .filter(|i| !w.emails_to(&address(&w, &format!("spray-{i}"))).is_empty())
        .count();
    assert_eq!(mailed, 20, "no email for a refused sign-up");
    // Another subscriber is not limited by this one.
    assert_eq!(
        signup(&app, &address(&w, "neighbour"), "2001:db8:77:6::1")
            .await
            .status,
        201
    );

    // Resets: the same per client, whatever the addresses (known or not).
    let calls = (0..25)
        .map(|i| {
            let to = address(&w, &format!("reset-spray-{i}"));
            let app = &app;
            let ip = ip(i);
            async move { reset(app, &to, ip).await }
        })
        .collect();
    let replies = join_all(calls).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        (
            statuses.iter().filter(|s| **s == 202).count(),
            statuses.iter().filter(|s| **s == 429).count()
        ),
        (20, 5),
        "{statuses:?}"
    );
    // The client's address is only a keyed hash in the counters.
    for it in w.items_with_sk_prefix("OpsTable", "MAILRATE").await {
        assert!(!s(&it, "pk").unwrap().contains("2001:db8"), "{it:?}");
    }
}

#[tokio::test]
async fn a_tenant_sends_at_most_thirty_invitations_an_hour() {
    let (w, app) = world().await;
    let owner = seed_owner(&w, "bulk-inviter").await;
    let token = access_token(&app, owner.email.as_str(), PASSWORD).await;
    let targets: Vec<String> = (0..35).map(|i| address(&w, &format!("list-{i}"))).collect();
    let calls = targets.iter().map(|t| invite(&app, &token, t)).collect();
    let replies = join_all(calls).await;
    assert!(
        replies.iter().all(|r| r.status == 201),
        "the same answer: {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let sent: usize = targets.iter().map(|t| count(&w, t, INVITATION)).sum();
    assert_eq!(sent, 30, "invitations sent by one tenant in an hour");
    let limited = w
        .scan("SecurityLogTable")
        .await
        .into_iter()
        .filter(|e| s(e, "event") == Some("mail_limited_tenant"))
        .count();
    assert_eq!(limited, 5);
    w.clock.advance(Duration::hours(1));
    let token = access_token(&app, owner.email.as_str(), PASSWORD).await;
    let r = invite(&app, &token, &address(&w, "next-hour")).await;
    assert_eq!(r.status, 201);
    assert_eq!(count(&w, &address(&w, "next-hour"), INVITATION), 1);
}

// ---------------------------------------------------------------- no squatting

#[tokio::test]
async fn a_later_sign_up_wins_over_an_unverified_one() {
    let (w, app) = world().await;
    let victim = address(&w, "squatted");
    // The squatter signs up with the victim's address and a password of their own.
    let r = auth_call(
        &app,
        event(
            "POST",
            "/v1/auth/signup",
            Some(&json!({"email": victim, "password": "Squatter-Pass-123", "name": "Sq", "business_name": "Squat", "policy_version": POLICY_VERSION, "terms_version": TERMS_VERSION})),
            None,
            "198.51.100.1",
        ),
    )
    .await;
    assert_eq!(r.status, 201);
    let squatter_link = token_of(&latest(&w, &victim));
    // The victim signs up too: a verification link, not "you already have an account".
    let r = auth_call(
        &app,
        event(
            "POST",
            "/v1/auth/signup",
            Some(&signup_body(&victim, "Victor", "Victor Ltd")),
            None,
            "198.51.100.2",
        ),
    )
    .await;
    assert_eq!(r.status, 201);
    let mail = latest(&w, &victim);
    assert_eq!(mail.subject, VERIFY, "{:?}", subjects(&w, &victim));
    let r = post(
        &app,
        "/v1/auth/verify-email",
        json!({"token": token_of(&mail)}),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let access = access_token(&app, &victim, PASSWORD).await;
    let me = auth_call(
        &app,
        event("GET", "/v1/me", None, Some(&access), "198.51.100.2"),
    )
    .await;
    assert_eq!(me.body["business_name"], "Victor Ltd");
    // The squatter's link and password are worth nothing now.
    let r = post(
        &app,
        "/v1/auth/verify-email",
        json!({"token": squatter_link}),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (400, Some("invalid_token"))
    );
    let r = post(
        &app,
        "/v1/auth/login",
        json!({"email": victim, "password": "Squatter-Pass-123"}),
        None,
    )
    .await;
    assert_eq!(r.status, 401);
    // Verified, the address is claimed: a new sign-up only tells its holder.
    assert_eq!(signup(&app, &victim, "198.51.100.3").await.status, 201);
    assert_eq!(latest(&w, &victim).subject, SIGNUP_EXISTING);
}

#[tokio::test]
async fn an_invitation_wins_over_an_unverified_sign_up() {
    let (w, app) = world().await;
    let owner = seed_owner(&w, "team-owner").await;
    let token = access_token(&app, owner.email.as_str(), PASSWORD).await;
    let invitee = address(&w, "squatted-invitee");
    assert_eq!(signup(&app, &invitee, "198.51.100.1").await.status, 201);
    let squatter_link = token_of(&latest(&w, &invitee));
    let r = invite(&app, &token, &invitee).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mail = latest(&w, &invitee);
    assert_eq!(mail.subject, INVITATION, "{:?}", subjects(&w, &invitee));
    let r = post(
        &app,
        "/v1/auth/accept-invitation",
        json!({"token": token_of(&mail), "password": NEW_PASSWORD, "name": "Ivy", "policy_version": POLICY_VERSION, "terms_version": TERMS_VERSION}),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["tenant_id"], json!(owner.tenant_id.as_str()));
    access_token(&app, &invitee, NEW_PASSWORD).await;
    let r = post(
        &app,
        "/v1/auth/verify-email",
        json!({"token": squatter_link}),
        None,
    )
    .await;
    assert_eq!(
        r.status, 400,
        "the unverified sign-up lost the address: {}",
        r.body
    );
}

async fn login_entry(w: &World, to: &str) -> Option<Item> {
    let bidx = w.key.email(&Email::parse(to).unwrap());
    get(w, "TenantsTable", &keys::login(&bidx)).await
}

/// Retention, as `main.rs` builds it over this world.
fn retention_app(w: &World) -> retention_cleanup::App {
    let env =
        infra::local::local_function_env(&w.template, "retention-cleanup", emulator_endpoint())
            .unwrap();
    let mut config = retention_cleanup::config::Config::from_env(&Env::from_pairs(env)).unwrap();
    config.settings.catch_up_days = 3;
    retention_cleanup::App {
        dynamo: w.clients.dynamo.clone(),
        s3: w.clients.s3.clone(),
        tables: config.tables,
        buckets: config.buckets,
        key: w.key.clone(),
        clock: w.clock.clone(),
        ids: Arc::new(UlidGenerator),
        settings: config.settings,
    }
}

async fn retention_run(w: &World, app: &retention_cleanup::App, at: time::OffsetDateTime) -> Value {
    w.clock.set(at);
    let mut e = fixture("retention-cleanup/scheduled.json");
    e["time"] = json!(rfc3339(at));
    let report = retention_cleanup::handle(app, &e, retention_cleanup::Limits::default()).await;
    assert_eq!(report["status"], "completed", "{report:#}");
    report
}

#[tokio::test]
async fn retention_frees_an_address_whose_sign_up_was_not_verified_in_time() {
    let (w, app) = world().await;
    w.clock.set(datetime!(2026-03-01 12:00 UTC));
    let lapsed = address(&w, "never-verified");
    let kept = address(&w, "verified-in-time");
    for to in [&lapsed, &kept] {
        assert_eq!(signup(&app, to, "198.51.100.1").await.status, 201);
    }
    let link = token_of(&latest(&w, &kept));
    assert_eq!(
        post(&app, "/v1/auth/verify-email", json!({"token": link}), None)
            .await
            .status,
        200
    );
    let login = login_entry(&w, &lapsed)
        .await
        .expect("the sign-up's login item");
    let tenant = TenantId::parse(s(&login, "tenant_id").unwrap()).unwrap();
    let user = UserId::parse(s(&login, "user_id").unwrap()).unwrap();

    let retention = retention_app(&w);
    // The link lives 24 hours: the run of the next day keeps everything.
    let r = retention_run(&w, &retention, datetime!(2026-03-02 03:00 UTC)).await;
    assert_eq!(
        r["rules"][rule::UNVERIFIED_SIGNUP]["deleted"]
            .as_u64()
            .unwrap_or(0),
        0
    );
    assert!(get(&w, "TenantsTable", &keys::user(&tenant, &user))
        .await
        .is_some());
    let r = retention_run(&w, &retention, datetime!(2026-03-03 03:00 UTC)).await;
    assert_eq!(r["rules"][rule::UNVERIFIED_SIGNUP]["deleted"], 1, "{r:#}");
    for k in [keys::tenant(&tenant), keys::user(&tenant, &user)] {
        assert!(get(&w, "TenantsTable", &k).await.is_none(), "{k:?} left");
    }
    assert!(
        login_entry(&w, &lapsed).await.is_none(),
        "the login item is gone"
    );
    let kept_login = login_entry(&w, &kept)
        .await
        .expect("the verified account stays");
    let kept_tenant = TenantId::parse(s(&kept_login, "tenant_id").unwrap()).unwrap();
    assert!(get(&w, "TenantsTable", &keys::tenant(&kept_tenant))
        .await
        .is_some());
}

// ---------------------------------------------------------------- no text of the caller's

#[tokio::test]
async fn no_link_a_caller_types_reaches_a_third_party() {
    let (w, app) = world().await;
    let lure = "Claim your prize at https://evil.example/win or evil.example";
    let victim = address(&w, "link-victim");
    let r = auth_call(
        &app,
        event(
            "POST",
            "/v1/auth/signup",
            Some(&signup_body(&victim, lure, "evil.example Ltd")),
            None,
            "198.51.100.1",
        ),
    )
    .await;
    assert_eq!(r.status, 201);
    let owner = seed_owner(&w, "link-inviter").await;
    let token = access_token(&app, owner.email.as_str(), PASSWORD).await;
    let r = auth_call(
        &app,
        event(
            "PATCH",
            "/v1/me",
            Some(&json!({ "name": lure })),
            Some(&token),
            "192.0.2.1",
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let invitee = address(&w, "link-invitee");
    assert_eq!(invite(&app, &token, &invitee).await.status, 201);
    for to in [&victim, &invitee] {
        let mail = latest(&w, to);
        assert!(
            !mail.body.contains("evil"),
            "{}: {}",
            mail.subject,
            mail.body
        );
        assert!(mail.body.contains("[link removed]"), "{}", mail.body);
    }
}

// ---------------------------------------------------------------- SES bounces and complaints

fn mail_events_app(w: &World) -> mail_events::App {
    let env =
        infra::local::local_function_env(&w.template, "mail-events", emulator_endpoint()).unwrap();
    let config = mail_events::config::Config::from_env(&Env::from_pairs(env)).unwrap();
    mail_events::App {
        gate: shared_mail::dynamo::MailGate::new(w.clients.dynamo.clone(), config.ops_table),
        keys: w.key.clone(),
        clock: w.clock.clone(),
        settings: config.settings,
    }
}

fn feedback(sample: &str, to: &str, at: time::OffsetDateTime) -> Value {
    let mut e = fixture(&format!("mail-events/{sample}.json"));
    e["time"] = json!(rfc3339(at));
    let list = if sample == "complaint" {
        &mut e["detail"]["complaint"]["complainedRecipients"]
    } else {
        &mut e["detail"]["bounce"]["bouncedRecipients"]
    };
    list[0]["emailAddress"] = json!(to);
    e["detail"]["mail"]["destination"] = json!([to]);
    e
}

#[tokio::test]
async fn an_address_that_bounced_or_complained_is_not_mailed_again() {
    let (w, mut app) = world().await;
    app.mailer = w.platform_mailer("auth").unwrap();
    let events = mail_events_app(&w);
    let now = w.clock.now();
    let bounced = seed_owner(&w, "bounced").await;
    let complained = address(&w, "complained");
    let soft = address(&w, "soft-bounce");
    let ok = seed_owner(&w, "deliverable").await;

    let (logs, guard) = capture_logs();
    for (sample, to) in [
        ("bounce", bounced.email.as_str()),
        ("complaint", complained.as_str()),
        ("transient-bounce", soft.as_str()),
    ] {
        let report = mail_events::handle(&events, &feedback(sample, to, now))
            .await
            .unwrap();
        assert_ne!(report["status"], "failed", "{report}");
    }
    // Redelivered: nothing changes.
    mail_events::handle(&events, &feedback("bounce", bounced.email.as_str(), now))
        .await
        .unwrap();
    drop(guard);
    let bidx = w.key.email(&bounced.email);
    assert_logs_hold_without(
        &logs,
        &["address on the send-suppression list", &bidx],
        &[bounced.email.as_str(), &complained],
    );
    let listed = w.items_with_sk_prefix("OpsTable", "MAILSUPPRESS").await;
    assert_eq!(listed.len(), 2, "bounce and complaint, not the soft bounce");
    for it in &listed {
        assert!(
            !format!("{it:?}").contains('@'),
            "a blind index, never the address"
        );
        for name in it.keys() {
            assert!(
                inventory::declaration(Table::Ops, "MAILSUPPRESS", name).is_some(),
                "{name}"
            );
        }
    }

    // The platform's mailer skips them; the answers stay the same.
    let r = reset(&app, bounced.email.as_str(), "198.51.100.1").await;
    assert_eq!(r.status, 202);
    assert_eq!(signup(&app, &complained, "198.51.100.2").await.status, 201);
    assert!(w.emails_to(bounced.email.as_str()).is_empty());
    assert!(w.emails_to(&complained).is_empty());
    assert_eq!(signup(&app, &soft, "198.51.100.3").await.status, 201);
    assert_eq!(
        count(&w, &soft, VERIFY),
        1,
        "a soft bounce suppresses nothing"
    );
    assert_eq!(
        reset(&app, ok.email.as_str(), "198.51.100.4").await.status,
        202
    );
    assert_eq!(count(&w, ok.email.as_str(), RESET), 1);

    // The entry ends MailSuppressionDays (180) after the bounce.
    w.clock.advance(Duration::days(181));
    assert_eq!(
        reset(&app, bounced.email.as_str(), "198.51.100.5")
            .await
            .status,
        202
    );
    assert_eq!(count(&w, bounced.email.as_str(), RESET), 1);
}

// ---------------------------------------------------------------- privacy requests

#[derive(Clone, Default)]
struct Jobs(Arc<Mutex<Vec<DsarJob>>>);

impl JobDispatcher for Jobs {
    async fn dispatch(&self, job: &DsarJob) -> Result<(), AppError> {
        self.0.lock().unwrap().push(job.clone());
        Ok(())
    }
}

type DsarApp = dsar::App<SesMailer, Jobs>;

async fn dsar_world() -> (World, DsarApp, TokenSigner) {
    let w = World::new().await.expect("test world");
    let endpoint = emulator_endpoint();
    let env = infra::local::local_function_env(&w.template, "dsar", endpoint).unwrap();
    let config = dsar::config::Config::from_env(&Env::from_pairs(env)).unwrap();
    let ses = infra::emulator::sesv2_client(endpoint);
    infra::seed::ensure_secrets(&w.clients, &ses, &w.template)
        .await
        .unwrap();
    // auth's private key: the test mints tokens as auth would (dsar only verifies them).
    let signing = w.token_signer().await.unwrap();
    let verifier = w.token_verifier("dsar").await.unwrap();
    let app = dsar::App {
        store: DsarStore::new(w.clients.dynamo.clone(), config.tables.clone()),
        accounts: AccountStore::new(
            w.clients.dynamo.clone(),
            shared_accounts::dynamo::AccountTables {
                tenants: config.tables.tenants.clone(),
                security_log: String::new(),
                ops: config.tables.ops.clone(),
            },
            0,
        ),
        mailer: w.platform_mailer("dsar").unwrap(),
        dispatcher: Jobs::default(),
        keys: w.key.clone(),
        verifier,
        clock: w.clock.clone(),
        ids: Arc::new(UlidGenerator),
        links: config.links.clone(),
        downloads: dsar::downloads::Downloads {
            s3: w.clients.s3.clone(),
            exports_bucket: config.exports_bucket.clone(),
            attachments_bucket: config.attachments_bucket.clone(),
        },
        settings: config.settings.clone(),
    };
    (w, app, signing)
}

/// An admin of the world's tenant with a live session, and an access token for it.
async fn dsar_admin(w: &World, signing: &TokenSigner) -> String {
    let now = w.clock.now();
    let user = UserId::parse(&format!(
        "us-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    ))
    .unwrap();
    let sid = SessionId::parse(&format!(
        "se-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    ))
    .unwrap();
    put(
        w,
        "TenantsTable",
        user_item(&User {
            user_id: user.clone(),
            tenant_id: w.tenant.clone(),
            email: Email::parse(&address(w, "privacy-admin")).unwrap(),
            name: "Admin".into(),
            phone: None,
            role: Role::Admin,
            password_hash: "unused".into(),
            email_verified: true,
            created_at: now,
            mfa: Mfa::default(),
            last_login: None,
            policy: None,
        }),
    )
    .await;
    put(
        w,
        "TenantsTable",
        session_item(&shared_accounts::Session {
            session_id: sid.clone(),
            user_id: user.clone(),
            tenant_id: w.tenant.clone(),
            refresh_hash: "unused".into(),
            previous_hashes: vec![],
            created_at: now,
            last_used_at: now,
            idle_expires_at: now + Duration::days(7),
            absolute_expires_at: now + Duration::days(30),
            revoked_at: None,
            ip: None,
            user_agent: None,
        }),
    )
    .await;
    signing.issue(&AccessClaims {
        sub: user.to_string(),
        tid: w.tenant.to_string(),
        role: Role::Admin.as_str().to_string(),
        sid: sid.to_string(),
        iat: now.unix_timestamp(),
        exp: now.unix_timestamp() + ACCESS_TOKEN_TTL_SECS,
        iss: ISSUER.to_string(),
        typ: "access".to_string(),
        cep: 0,
    })
}

async fn on_behalf(app: &DsarApp, token: &str, body: Value) -> Reply {
    reply(
        dsar::handle(
            app,
            event(
                "POST",
                "/v1/privacy/requests/on-behalf",
                Some(&body),
                Some(token),
                "192.0.2.9",
            ),
        )
        .await,
    )
}

#[tokio::test]
async fn filings_on_behalf_are_limited_per_tenant_and_per_address() {
    let (w, app, signing) = dsar_world().await;
    let admin = dsar_admin(&w, &signing).await;
    // One address, ten filings at once (attested or not): at most three emails reach it.
    let victim = address(&w, "dsar-victim");
    let calls = (0..10)
        .map(|i| {
            let body = if i % 2 == 0 {
                json!({"type": "access", "email": victim})
            } else {
                json!({"type": "restriction", "email": victim, "identity_attested": "signed_document"})
            };
            on_behalf(&app, &admin, body)
        })
        .collect();
    let replies = join_all(calls).await;
    assert!(
        replies.iter().all(|r| r.status == 201),
        "{:?}",
        replies
            .iter()
            .map(|r| (r.status, r.body.clone()))
            .collect::<Vec<_>>()
    );
    let sent = w.emails_to(&victim).len();
    assert!((1..=3).contains(&sent), "{sent} emails to one address");

    // Many addresses, one tenant: 30 filings an hour (the ten above count), then 429.
    let targets: Vec<String> = (0..25)
        .map(|i| address(&w, &format!("dsar-list-{i}")))
        .collect();
    let calls = targets
        .iter()
        .map(|t| on_behalf(&app, &admin, json!({"type": "access", "email": t})))
        .collect();
    let replies = join_all(calls).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        (
            statuses.iter().filter(|s| **s == 201).count(),
            statuses.iter().filter(|s| **s == 429).count()
        ),
        (20, 5),
        "{statuses:?}"
    );
    let mailed = targets
        .iter()
        .filter(|t| !w.emails_to(t).is_empty())
        .count();
    assert_eq!(mailed, 20);
    for r in replies.iter().filter(|r| r.status == 429) {
        assert!(r.retry_after.is_some());
    }
}

#[tokio::test]
async fn a_controllers_reason_reaches_the_subject_without_links() {
    let (w, app, signing) = dsar_world().await;
    let admin = dsar_admin(&w, &signing).await;
    let subject = address(&w, "dsar-subject");
    let r = on_behalf(
        &app,
        &admin,
        json!({"type": "access", "email": subject, "identity_attested": "in_person"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["request_id"].as_str().unwrap().to_string();
    let deny = reply(
        dsar::handle(
            &app,
            event(
                "POST",
                &format!("/v1/privacy/requests/{id}/deny"),
                Some(&json!({"reason": "We hold nothing. Claim a refund at https://evil.example/r or evil.example"})),
                Some(&admin),
                "192.0.2.9",
            ),
        )
        .await,
    );
    assert_eq!(deny.status, 200, "{}", deny.body);
    let mail = w
        .emails_to(&subject)
        .into_iter()
        .find(|m| m.subject == "Your privacy request was refused")
        .expect("the refusal");
    assert!(mail.body.contains("We hold nothing."), "{}", mail.body);
    assert!(!mail.body.contains("evil"), "{}", mail.body);
}

// ---------------------------------------------------------------- policy-change notice

/// What the `policy-notice` command builds from auth's configuration: the platform's mailer
/// (configuration set, send-suppression list) with the one-click unsubscribe headers.
struct NoticeParts {
    mailer: shared_mail::WithUnsubscribe<SesMailer>,
    suppression: shared_mail::SendSuppression,
    gate: shared_mail::dynamo::MailGate,
    tenants: String,
    limits: shared_mail::outbound::MailLimits,
    notice: shared_accounts::policy::Notice,
}

fn notice_parts(w: &World, versions: shared_accounts::policy::PolicyVersions) -> NoticeParts {
    let env = infra::local::local_function_env(&w.template, "auth", &w.endpoint).unwrap();
    let env = Env::from_pairs(env);
    let gate = shared_mail::dynamo::MailGate::new(
        w.clients.dynamo.clone(),
        env.required("OPS_TABLE").unwrap(),
    );
    let suppression = shared_mail::SendSuppression {
        gate: gate.clone(),
        key: w.key.clone(),
        clock: w.clock.clone(),
    };
    NoticeParts {
        mailer: shared_mail::WithUnsubscribe {
            inner: w.platform_mailer("auth").unwrap(),
            key: w.key.clone(),
            api_base_url: env.required("API_BASE_URL").unwrap(),
            scope: shared_mail::unsubscribe::UnsubscribeScope::Platform,
        },
        suppression,
        gate,
        tenants: env.required("TENANTS_TABLE").unwrap(),
        limits: shared_mail::outbound::MailLimits::from_env(&env).unwrap(),
        notice: shared_accounts::policy::Notice {
            versions,
            link: "https://example.com/legal/privacy".into(),
            effective: "2027-02-01".into(),
        },
    }
}

async fn notify(w: &World, p: &NoticeParts) -> shared_accounts::policy::NoticeReport {
    shared_accounts::policy::notify_owners(
        &shared_accounts::policy::NoticeRun {
            dynamo: &w.clients.dynamo,
            tenants_table: &p.tenants,
            mailer: &p.mailer,
            suppression: &p.suppression,
            gate: &p.gate,
            per_recipient_per_hour: p.limits.per_recipient_per_hour,
            per_second: 50.0,
            clock: &*w.clock,
        },
        &p.notice,
    )
    .await
    .expect("the notice run")
}

#[tokio::test]
async fn the_policy_notice_reaches_each_owner_once_even_run_twice_at_once_and_skips_suppressed() {
    let (w, app) = world().await;
    const NOTICE: &str = shared_accounts::policy::NOTICE_SUBJECT;
    let versions = shared_accounts::policy::PolicyVersions {
        policy: "2027-02-01".into(),
        terms: "2027-02-01".into(),
    };
    // Owners of three workspaces; one of them on the send-suppression list (bounced).
    let mut owners = Vec::new();
    for (i, who) in ["own-a", "own-b", "own-bounced"].iter().enumerate() {
        let tenant = TenantId::parse(&format!("tenant-notice-{i}")).unwrap();
        owners.push(w.member(&app, &tenant, Role::Owner, who).await.0);
    }
    let bounced = owners.pop().unwrap();
    let p = notice_parts(&w, versions.clone());
    p.gate
        .suppress(
            &w.key.email(&bounced.email),
            shared_mail::dynamo::SuppressionReason::Bounce,
            w.clock.now(),
            w.clock.now() + Duration::days(180),
        )
        .await
        .unwrap();
    // Not owners, or not verified, or already accepting the new versions: not mailed.
    let (admin, _) = w.member(&app, &w.tenant, Role::Admin, "not-owner").await;
    let mut unverified = w
        .member(
            &app,
            &TenantId::parse("tenant-notice-u").unwrap(),
            Role::Owner,
            "own-unverified",
        )
        .await
        .0;
    unverified.email_verified = false;
    put(&w, "TenantsTable", user_item(&unverified)).await;
    let mut current = w
        .member(
            &app,
            &TenantId::parse("tenant-notice-c").unwrap(),
            Role::Owner,
            "own-current",
        )
        .await
        .0;
    current.policy = Some(shared_accounts::policy::PolicyAcceptance::both(
        &versions,
        w.clock.now(),
    ));
    put(&w, "TenantsTable", user_item(&current)).await;

    // Two runs at once (two operators, or a retry while the first still runs), then a third.
    let (r1, r2) = tokio::join!(notify(&w, &p), notify(&w, &p));
    assert_eq!(r1.sent + r2.sent, 2, "{r1:?} {r2:?}");
    assert_eq!(
        r1.suppressed + r2.suppressed,
        2,
        "each run skips the bounced owner"
    );
    let r3 = notify(&w, &p).await;
    assert_eq!(
        (
            r3.owners,
            r3.sent,
            r3.already_notified,
            r3.already_accepted,
            r3.suppressed
        ),
        (4, 0, 2, 1, 1),
        "{r3:?}"
    );
    for o in &owners {
        assert_eq!(count(&w, o.email.as_str(), NOTICE), 1, "exactly one notice");
        let mail = latest(&w, o.email.as_str());
        assert!(mail.body.contains("https://example.com/legal/privacy"));
        assert!(mail.body.contains("2027-02-01"));
    }
    for o in [&bounced, &admin, &unverified, &current] {
        assert_eq!(count(&w, o.email.as_str(), NOTICE), 0, "{}", o.name);
    }
    // Recorded per owner: which version, sent, when; every attribute declared.
    let items = w.items_with_sk_prefix("TenantsTable", "USER#").await;
    for o in &owners {
        let it = items
            .iter()
            .find(|it| it["user_id"].as_s().unwrap() == o.user_id.as_str())
            .unwrap();
        assert_eq!(
            it["policy_notice_version"].as_s().unwrap(),
            &versions.notice_label()
        );
        assert_eq!(it["policy_notice_state"].as_s().unwrap(), "sent");
        assert_eq!(
            it["policy_notice_at"].as_s().unwrap(),
            &rfc3339(w.clock.now())
        );
        for name in it.keys() {
            assert!(
                inventory::declaration(Table::Tenants, "USER#", name).is_some(),
                "{name}"
            );
        }
    }

    // A run that stopped between its claim and the email: a rerun does not mail again (it
    // cannot know whether SES took it) and names the owner for the operator.
    let tenant = TenantId::parse("tenant-notice-crash").unwrap();
    let (crashed, _) = w.member(&app, &tenant, Role::Owner, "own-crashed").await;
    let key = keys::user(&crashed.tenant_id, &crashed.user_id);
    w.clients
        .dynamo
        .update_item()
        .table_name(&p.tenants)
        .key("pk", shared_core::dynamo::s(key.pk))
        .key("sk", shared_core::dynamo::s(key.sk))
        .update_expression("SET policy_notice_version = :v, policy_notice_state = :s")
        .expression_attribute_values(":v", shared_core::dynamo::s(versions.notice_label()))
        .expression_attribute_values(":s", shared_core::dynamo::s("sending"))
        .send()
        .await
        .unwrap();
    let r4 = notify(&w, &p).await;
    assert_eq!((r4.sent, r4.unconfirmed), (0, 1), "{r4:?}");
    assert_eq!(
        r4.unconfirmed_user_ids,
        vec![crashed.user_id.as_str().to_string()]
    );
    assert_eq!(count(&w, crashed.email.as_str(), NOTICE), 0);

    // The next policy change is a new notice: each owner is mailed once more.
    let next = notice_parts(
        &w,
        shared_accounts::policy::PolicyVersions {
            policy: "2027-06-01".into(),
            terms: "2027-02-01".into(),
        },
    );
    let r5 = notify(&w, &next).await;
    assert_eq!(
        r5.sent, 4,
        "a, b, the crashed one and the one who accepted 2027-02-01: {r5:?}"
    );
    for o in &owners {
        assert_eq!(count(&w, o.email.as_str(), NOTICE), 2);
    }
}
