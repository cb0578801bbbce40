//! The auth function against the emulator (DynamoDB, SSM, SESv2), through real API Gateway v2
//! events: every flow of issue 3, the emails read back from the emulator, the role matrix, tenant
//! isolation, throttling and what reaches the logs.
//!
//! Argon2 is the cost of these tests: accounts that are not under test are written straight to
//! the tables with one password hash computed once per process, and log in for real.

use std::sync::OnceLock;
use std::time::{Duration as StdDuration, Instant};

use integration_tests::*;
use lambda_http::Request;
use serde_json::{json, Value};
use shared_accounts::auth::jwt::{AccessClaims, TokenSigner, ACCESS_TOKEN_TTL_SECS, ISSUER};
use shared_accounts::auth::permissions::{allows, Role};
use shared_accounts::auth::{password, tokens, totp};
use shared_accounts::dynamo::{login_item, session_item, tenant_item, user_item, AccountStore};
use shared_accounts::{Mfa, Session, Tenant, User};
use shared_core::clock::Clock;
use shared_core::domain::{Email, FormId, SessionId, TenantId, TenantStatus, UserId};
use shared_core::dynamo::Item;
use shared_leads::ports::FormAdmin;
use time::Duration;

type App = auth::App<shared_mail::SesMailer>;

/// The password of every account these tests create (10+ characters, not a common one).
const PASSWORD: &str = "Plum-Orbit-Kettle-42";
const NEW_PASSWORD: &str = "Quartz-Meadow-Lantern-77";

async fn world() -> (World, App) {
    let w = World::new().await.expect("test world");
    let app = w.auth_app().await.expect("auth app");
    (w, app)
}

// ---------------------------------------------------------------- calling the function

/// What a call answered.
struct Reply {
    status: u16,
    body: Value,
    retry_after: Option<String>,
    elapsed: StdDuration,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
    fn field_error(&self, field: &str) -> bool {
        self.body["error"]["fields"][field].is_string()
    }
    fn str(&self, name: &str) -> String {
        self.body[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {}", self.body))
            .to_string()
    }
}

async fn send(app: &App, req: Request) -> Reply {
    let started = Instant::now();
    let resp = auth::handle(app, req).await;
    let elapsed = started.elapsed();
    Reply {
        status: resp.status().as_u16(),
        body: response_json(&resp),
        retry_after: header(&resp, "retry-after").map(str::to_string),
        elapsed,
    }
}

async fn call(
    app: &App,
    method: &str,
    path: &str,
    body: Option<Value>,
    bearer: Option<&str>,
) -> Reply {
    send(app, api_event(method, path, body.as_ref(), bearer)).await
}

/// The same request from another client address (API Gateway's `sourceIp`).
async fn call_from(app: &App, ip: &str, method: &str, path: &str, body: Value) -> Reply {
    let mut e = fixture("auth/login.json");
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["method"] = json!(method);
    e["requestContext"]["http"]["path"] = json!(path);
    e["requestContext"]["http"]["sourceIp"] = json!(ip);
    e["body"] = json!(body.to_string());
    send(app, request(&e)).await
}

async fn login(app: &App, email: &str, password: &str, totp_code: Option<&str>) -> Reply {
    let mut body = json!({"email": email, "password": password});
    if let Some(c) = totp_code {
        body["totp_code"] = json!(c);
    }
    call(app, "POST", "/v1/auth/login", Some(body), None).await
}

async fn refresh(app: &App, refresh_token: &str) -> Reply {
    call(
        app,
        "POST",
        "/v1/auth/refresh",
        Some(json!({"refresh_token": refresh_token})),
        None,
    )
    .await
}

/// A write any role may do: the probe for "is this session still live".
async fn patch_me(app: &App, access: &str) -> Reply {
    call(
        app,
        "PATCH",
        "/v1/me",
        Some(json!({"name": "Renamed"})),
        Some(access),
    )
    .await
}

/// `POST /v1/auth/step-up`: the password re-entered, for the routes that change how the
/// account is secured.
async fn step_up(app: &App, access: &str, password: &str) -> Reply {
    call(
        app,
        "POST",
        "/v1/auth/step-up",
        Some(json!({"password": password})),
        Some(access),
    )
    .await
}

async fn get_me(app: &App, access: &str) -> Reply {
    call(app, "GET", "/v1/me", None, Some(access)).await
}

fn session_of(refresh_token: &str) -> String {
    refresh_token.split('.').next().unwrap().to_string()
}

fn base64_decode(b64: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// An access token of the scheme Ed25519 replaced: HS256 under `secret`.
fn hs256_token(secret: &[u8], kid: &str, claims: &AccessClaims) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT", "kid": kid}).to_string()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

// ---------------------------------------------------------------- accounts

/// A per-test address (the emulator keeps the emails of every test of the process).
fn address(w: &World, who: &str) -> String {
    format!("{who}.{}@example.com", w.stage)
}

fn stored_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| password::hash_password(PASSWORD).expect("hashing"))
}

async fn put(w: &World, item: Item) {
    w.clients
        .dynamo
        .put_item()
        .table_name(w.table("TenantsTable"))
        .set_item(Some(item))
        .send()
        .await
        .expect("put item");
}

/// A verified user with [`PASSWORD`], written straight to the tables (no sign-up, no hashing).
async fn seed_user(w: &World, app: &App, tenant: &TenantId, role: Role, who: &str) -> User {
    let user = User {
        user_id: UserId::parse(&app.new_id("us")).unwrap(),
        tenant_id: tenant.clone(),
        email: Email::parse(&address(w, who)).unwrap(),
        name: who.to_string(),
        phone: None,
        role,
        password_hash: stored_hash().to_string(),
        email_verified: true,
        created_at: w.clock.now(),
        mfa: Mfa::default(),
        last_login: None,
        policy: None,
    };
    put(w, user_item(&user)).await;
    put(
        w,
        login_item(&app.keys.email(&user.email), tenant, &user.user_id),
    )
    .await;
    user
}

/// A new active tenant and its owner.
async fn seed_tenant(w: &World, app: &App, owner: &str) -> User {
    let tenant = TenantId::parse(&app.new_id("tn")).unwrap();
    let user = seed_user(w, app, &tenant, Role::Owner, owner).await;
    let t = Tenant {
        tenant_id: tenant,
        business_name: format!("{owner} Ltd"),
        status: TenantStatus::Active,
        owner_user_id: user.user_id.clone(),
        created_at: w.clock.now(),
        closed_at: None,
        erase_after: None,
    };
    put(w, tenant_item(&t)).await;
    user
}

/// A user logged in for real, with the tokens of that session.
struct Account {
    user: User,
    email: String,
    access: String,
    refresh: String,
}

async fn sign_in(app: &App, user: &User) -> Account {
    let email = user.email.as_str().to_string();
    let r = login(app, &email, PASSWORD, None).await;
    assert_eq!(r.status, 200, "login of {email}: {}", r.body);
    Account {
        user: user.clone(),
        email,
        access: r.str("access_token"),
        refresh: r.str("refresh_token"),
    }
}

async fn owner(w: &World, app: &App, who: &str) -> Account {
    let u = seed_tenant(w, app, who).await;
    sign_in(app, &u).await
}

async fn teammate(w: &World, app: &App, tenant: &TenantId, role: Role, who: &str) -> Account {
    let u = seed_user(w, app, tenant, role, who).await;
    sign_in(app, &u).await
}

/// A session written straight to the table and an access token for it (no password involved).
async fn minted_token(w: &World, app: &App, user: &User) -> String {
    let now = w.clock.now();
    let sid = SessionId::parse(&app.new_id("se")).unwrap();
    let session = Session {
        session_id: sid.clone(),
        user_id: user.user_id.clone(),
        tenant_id: user.tenant_id.clone(),
        refresh_hash: tokens::hash_secret(&tokens::new_secret()),
        previous_hashes: vec![],
        created_at: now,
        last_used_at: now,
        idle_expires_at: now + Duration::days(7),
        absolute_expires_at: now + Duration::days(30),
        revoked_at: None,
        ip: None,
        user_agent: None,
    };
    // Under the user's current credential epoch, as a real login opens it.
    let epoch = app
        .store
        .user_with_epoch(&user.tenant_id, &user.user_id)
        .await
        .unwrap()
        .map_or(0, |(_, e)| e);
    let mut item = session_item(&session);
    item.insert("cred_epoch".into(), shared_core::dynamo::n(epoch));
    put(w, item).await;
    app.access_token(user, &sid, epoch, now)
}

/// Emails the emulator accepted for `to`, oldest first. moto builds `/moto-api/data.json` from
/// live state, and answers 500 now and then while other tests write to it: ask again.
fn emails_to(to: &str) -> Vec<infra::emulator::SentEmail> {
    let mut attempt = 0;
    loop {
        match infra::emulator::sent_emails(emulator_endpoint()) {
            Ok(all) => {
                return all
                    .into_iter()
                    .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to)))
                    .collect()
            }
            Err(e) if attempt < 20 => {
                attempt += 1;
                eprintln!("reading the emulator's emails, attempt {attempt}: {e:#}");
                std::thread::sleep(StdDuration::from_millis(100));
            }
            Err(e) => panic!("reading the emulator's emails: {e:#}"),
        }
    }
}

fn latest_email(to: &str, subject: &str) -> infra::emulator::SentEmail {
    let mails = emails_to(to);
    mails
        .iter()
        .rev()
        .find(|m| m.subject == subject)
        .cloned()
        .unwrap_or_else(|| panic!("no email {subject:?} to {to}: {mails:?}"))
}

fn link_token(to: &str, subject: &str) -> String {
    let mail = latest_email(to, subject);
    infra::emulator::token_in(&mail.body).unwrap_or_else(|| panic!("no token in {}", mail.body))
}

async fn security_events(w: &World, event: &str) -> Vec<Item> {
    w.scan("SecurityLogTable")
        .await
        .into_iter()
        .filter(|it| s(it, "event") == Some(event))
        .collect()
}

// ---------------------------------------------------------------- 1. sign-up

#[tokio::test]
async fn signup_emails_a_single_use_verification_link_and_login_waits_for_it() {
    let (w, app) = world().await;
    let email = address(&w, "founder");
    let r = call(
        &app,
        "POST",
        "/v1/auth/signup",
        Some(json!({"email": email, "password": PASSWORD, "name": "Fran Founder", "business_name": "Acme", "policy_version": POLICY_VERSION, "terms_version": TERMS_VERSION})),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);

    let mail = latest_email(&email, "Confirm your email address");
    assert!(
        mail.body
            .contains(&format!("{}/verify-email?token=", app.app_base_url)),
        "{}",
        mail.body
    );
    let token = infra::emulator::token_in(&mail.body).unwrap();

    let r = login(&app, &email, PASSWORD, None).await;
    assert_eq!((r.status, r.code()), (403, "email_not_verified"));

    let r = call(
        &app,
        "POST",
        "/v1/auth/verify-email",
        Some(json!({"token": token})),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(
        &app,
        "POST",
        "/v1/auth/verify-email",
        Some(json!({"token": token})),
        None,
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "invalid_token"), "single use");

    let r = login(&app, &email, PASSWORD, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    let expires_in = r.body["expires_in"].as_i64().unwrap();
    assert!((1..=900).contains(&expires_in), "expires_in {expires_in}");
    assert!(!r.str("refresh_token").is_empty());
    let access = r.str("access_token");

    let me = get_me(&app, &access).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["email"], json!(email));
    assert_eq!(me.body["role"], "owner");
    assert_eq!(me.body["email_verified"], true);
    let tenant = me.str("tenant_id");
    let tenants: Vec<_> = w.items_with_sk_prefix("TenantsTable", "TENANT").await;
    assert!(tenants
        .iter()
        .any(|t| s(t, "tenant_id") == Some(tenant.as_str())));
}

#[tokio::test]
async fn signup_with_a_registered_email_answers_the_same_and_tells_the_owner() {
    let (w, app) = world().await;
    let email = address(&w, "taken");
    let signup = |email: String, business: &'static str| {
        let app = &app;
        async move {
            call(
                app,
                "POST",
                "/v1/auth/signup",
                Some(json!({"email": email, "password": PASSWORD, "name": "Tom", "business_name": business, "policy_version": POLICY_VERSION, "terms_version": TERMS_VERSION})),
                None,
            )
            .await
        }
    };
    let first = signup(email.clone(), "First Co").await;
    assert_eq!(first.status, 201);
    // Registered: the address is verified (an unverified sign-up holds no claim on it).
    let token = link_token(&email, "Confirm your email address");
    let r = call(
        &app,
        "POST",
        "/v1/auth/verify-email",
        Some(json!({"token": token})),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Another case of the same address is the same address.
    let second = signup(email.to_uppercase(), "Second Co").await;
    assert_eq!(second.status, 201);
    assert_eq!(first.body, second.body, "no account enumeration");

    let mails = emails_to(&email);
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(mails[1].subject, "Someone tried to sign up with your email");
    assert!(
        infra::emulator::token_in(&mails[1].body).is_none(),
        "no verification link for the attempt"
    );

    let tenants: Vec<_> = w
        .items_with_sk_prefix("TenantsTable", "TENANT")
        .await
        .into_iter()
        .filter(|t| s(t, "tenant_id").is_some_and(|id| id.starts_with("tn-")))
        .collect();
    assert_eq!(tenants.len(), 1, "no second tenant");
    assert_eq!(s(&tenants[0], "business_name"), Some("First Co"));
}

// ---------------------------------------------------------------- 3. refresh rotation

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_ends_the_session() {
    let (w, app) = world().await;
    let a = owner(&w, &app, "rotor").await;

    let r = refresh(&app, &a.refresh).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (access2, refresh2) = (r.str("access_token"), r.str("refresh_token"));
    assert_ne!(refresh2, a.refresh);
    assert_eq!(
        session_of(&refresh2),
        session_of(&a.refresh),
        "same session, new secret"
    );
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(patch_me(&app, &access2).await.status, 200);

    let r = refresh(&app, &a.refresh).await;
    assert_eq!((r.status, r.code()), (401, "refresh_token_reused"));
    let r = refresh(&app, &refresh2).await;
    assert_eq!(r.status, 401, "the whole session is revoked: {}", r.body);
    let r = patch_me(&app, &access2).await;
    assert_eq!((r.status, r.code()), (401, "session_ended"));

    let events = security_events(&w, "refresh_token_reused").await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        s(&events[0], "session_id"),
        Some(session_of(&a.refresh).as_str())
    );
    assert_eq!(s(&events[0], "user_id"), Some(a.user.user_id.as_str()));

    let r = refresh(&app, "garbage").await;
    assert_eq!((r.status, r.code()), (401, "invalid_refresh_token"));
}

// ---------------------------------------------------------------- 4. logout and sessions

#[tokio::test]
async fn logout_stops_writes_at_once_while_reads_trust_the_access_token_for_its_15_minutes() {
    let (w, app) = world().await;
    let a = owner(&w, &app, "leaver").await;

    let r = call(&app, "POST", "/v1/auth/logout", None, Some(&a.access)).await;
    assert_eq!(r.status, 204, "{}", r.body);

    let r = patch_me(&app, &a.access).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "session_ended"),
        "writes check the session"
    );
    let r = get_me(&app, &a.access).await;
    assert_eq!(
        r.status, 200,
        "reads trust the unexpired token (documented design)"
    );
    let r = refresh(&app, &a.refresh).await;
    assert_eq!(r.status, 401);

    w.clock.advance(Duration::seconds(ACCESS_TOKEN_TTL_SECS));
    let r = get_me(&app, &a.access).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "token_expired"),
        "and only until it expires"
    );
}

#[tokio::test]
async fn sessions_are_listed_ended_one_by_one_or_all_at_once() {
    let (w, app) = world().await;
    let a = owner(&w, &app, "multi").await;
    let user = a.user.clone();
    let b = sign_in(&app, &user).await;
    let c = sign_in(&app, &user).await;
    let stranger = teammate(&w, &app, &user.tenant_id, Role::Member, "stranger").await;

    let r = call(&app, "GET", "/v1/auth/sessions", None, Some(&a.access)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{}", r.body);
    let current: Vec<_> = items.iter().filter(|i| i["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], json!(session_of(&a.refresh)));
    assert!(!items
        .iter()
        .any(|i| i["id"] == json!(session_of(&stranger.refresh))));

    // Someone else's session, even in the same tenant, does not exist for this caller.
    let path = format!("/v1/auth/sessions/{}", session_of(&stranger.refresh));
    let r = call(&app, "DELETE", &path, None, Some(&a.access)).await;
    assert_eq!((r.status, r.code()), (404, "session_not_found"));
    assert_eq!(patch_me(&app, &stranger.access).await.status, 200);

    let path = format!("/v1/auth/sessions/{}", session_of(&b.refresh));
    let r = call(&app, "DELETE", &path, None, Some(&a.access)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(refresh(&app, &b.refresh).await.status, 401);
    let r = call(&app, "GET", "/v1/auth/sessions", None, Some(&a.access)).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);

    let r = call(&app, "POST", "/v1/auth/logout-all", None, Some(&a.access)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(refresh(&app, &a.refresh).await.status, 401);
    assert_eq!(refresh(&app, &c.refresh).await.status, 401);
    assert_eq!(patch_me(&app, &c.access).await.code(), "session_ended");
    // Only this user's sessions.
    assert_eq!(refresh(&app, &stranger.refresh).await.status, 200);
}

// ---------------------------------------------------------------- 5. password reset

#[tokio::test]
async fn password_reset_is_single_use_ends_every_session_and_never_reveals_accounts() {
    let (w, app) = world().await;
    let a = owner(&w, &app, "forgetful").await;
    let reset = |email: String| {
        let app = &app;
        async move {
            call(
                app,
                "POST",
                "/v1/auth/password-reset",
                Some(json!({"email": email})),
                None,
            )
            .await
        }
    };

    let unknown = reset(address(&w, "nobody")).await;
    let known = reset(a.email.clone()).await;
    assert_eq!(unknown.status, 202);
    assert_eq!(
        (known.status, &known.body),
        (202, &unknown.body),
        "same answer"
    );
    assert!(emails_to(&address(&w, "nobody")).is_empty());
    let token = link_token(&a.email, "Reset your password");

    let confirm = |token: String, pw: &'static str| {
        let app = &app;
        async move {
            call(
                app,
                "POST",
                "/v1/auth/password-reset/confirm",
                Some(json!({"token": token, "new_password": pw})),
                None,
            )
            .await
        }
    };
    let r = confirm(token.clone(), "1234567890").await;
    assert_eq!(r.status, 400);
    assert!(r.field_error("new_password"), "{}", r.body);
    let r = confirm(token.clone(), NEW_PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = confirm(token, "Another-Fine-Passw0rd").await;
    assert_eq!((r.status, r.code()), (400, "invalid_token"));

    assert_eq!(
        refresh(&app, &a.refresh).await.status,
        401,
        "sessions ended"
    );
    assert_eq!(patch_me(&app, &a.access).await.code(), "session_ended");
    let (copy, hash) = login_copy_and_user_hash(&w, &app, &a.email).await;
    assert_eq!(
        copy.as_deref(),
        Some(hash.as_str()),
        "the login index's copy follows"
    );
    assert_eq!(login(&app, &a.email, PASSWORD, None).await.status, 401);
    assert_eq!(login(&app, &a.email, NEW_PASSWORD, None).await.status, 200);
    latest_email(&a.email, "Your password was changed");
}

// ---------------------------------------------------------------- 6. change password

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_the_other_sessions() {
    let (w, app) = world().await;
    let a = owner(&w, &app, "changer").await;
    let other = sign_in(&app, &a.user).await;

    let r = call(
        &app,
        "POST",
        "/v1/me/password",
        Some(json!({"current_password": "Not-My-Password-1", "new_password": NEW_PASSWORD})),
        Some(&a.access),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.field_error("current_password"), "{}", r.body);

    let r = call(
        &app,
        "POST",
        "/v1/me/password",
        Some(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD})),
        Some(&a.access),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    assert_eq!(
        refresh(&app, &other.refresh).await.status,
        401,
        "the other session ended"
    );
    assert_eq!(patch_me(&app, &other.access).await.code(), "session_ended");
    // This session continues, but not the access token it held before the change: a copy of
    // it alone no longer writes; the refresh token gets one under the new credentials.
    let r = patch_me(&app, &a.access).await;
    assert_eq!((r.status, r.code()), (401, "token_expired"), "{}", r.body);
    let r = refresh(&app, &a.refresh).await;
    assert_eq!(r.status, 200, "this one continues: {}", r.body);
    assert_eq!(patch_me(&app, &r.str("access_token")).await.status, 200);
    latest_email(&a.email, "Your password was changed");
    let (copy, hash) = login_copy_and_user_hash(&w, &app, &a.email).await;
    assert_eq!(
        copy.as_deref(),
        Some(hash.as_str()),
        "the login index's copy follows"
    );
    assert_eq!(login(&app, &a.email, NEW_PASSWORD, None).await.status, 200);
}

// ---------------------------------------------------------------- 7. TOTP

/// A six-digit code that no time step near `now` produces.
fn wrong_code(secret: &[u8], now: i64) -> String {
    let near: Vec<String> = (-3..=3)
        .map(|k| totp::code_at(secret, now + 30 * k))
        .collect();
    (0..)
        .map(|i| format!("{:06}", 123_456 + i))
        .find(|c| !near.contains(c))
        .unwrap()
}

#[tokio::test]
async fn totp_turns_on_with_a_code_then_guards_login_against_replay() {
    let (w, app) = world().await;
    let a = owner(&w, &app, "totp").await;
    let now = || w.clock.now().unix_timestamp();

    assert_eq!(step_up(&app, &a.access, PASSWORD).await.status, 200);
    let r = call(
        &app,
        "POST",
        "/v1/auth/mfa/totp/setup",
        None,
        Some(&a.access),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let secret_b32 = r.str("secret");
    let uri = r.str("otpauth_uri");
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret_b32}")), "{uri}");
    let secret = totp::decode_base32(&secret_b32).unwrap();

    let confirm = |code: String| {
        let (app, access) = (&app, a.access.clone());
        async move {
            call(
                app,
                "POST",
                "/v1/auth/mfa/totp/confirm",
                Some(json!({"code": code})),
                Some(&access),
            )
            .await
        }
    };
    let r = confirm(wrong_code(&secret, now())).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = confirm(totp::code_at(&secret, now())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let recovery: Vec<String> = r.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(recovery.len(), 10);

    let r = login(&app, &a.email, PASSWORD, None).await;
    assert_eq!((r.status, r.code()), (401, "mfa_required"));

    w.clock.advance(Duration::seconds(30));
    let code = totp::code_at(&secret, now());
    let r = login(&app, &a.email, PASSWORD, Some(&code)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    w.clock.advance(Duration::seconds(10));
    let r = login(&app, &a.email, PASSWORD, Some(&code)).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "invalid_mfa_code"),
        "a code is accepted once"
    );

    let r = login(&app, &a.email, PASSWORD, Some(&recovery[0])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let access = r.str("access_token");
    let r = login(&app, &a.email, PASSWORD, Some(&recovery[0])).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "invalid_mfa_code"),
        "a recovery code works once"
    );

    let disable = |code: String| {
        let (app, access) = (&app, access.clone());
        async move {
            call(
                app,
                "DELETE",
                "/v1/auth/mfa/totp",
                Some(json!({"code": code})),
                Some(&access),
            )
            .await
        }
    };
    w.clock.advance(Duration::seconds(30));
    let r = step_up(&app, &access, "Not-My-Password-1").await;
    assert_eq!(r.status, 400);
    assert!(r.field_error("password"), "{}", r.body);
    let r = disable(totp::code_at(&secret, now())).await;
    assert_eq!((r.status, r.code()), (403, "step_up_required"));
    assert_eq!(step_up(&app, &access, PASSWORD).await.status, 200);
    let r = disable(wrong_code(&secret, now())).await;
    assert_eq!(r.status, 400);
    assert!(r.field_error("code"), "{}", r.body);
    let r = disable(totp::code_at(&secret, now())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["mfa_enabled"], false);

    assert_eq!(
        login(&app, &a.email, PASSWORD, None).await.status,
        200,
        "no code needed any more"
    );
    assert_eq!(security_events(&w, "mfa_enabled").await.len(), 1);
    assert_eq!(security_events(&w, "mfa_disabled").await.len(), 1);
}

/// Changing how the account is secured (TOTP setup, confirm, disable) needs the password
/// re-entered in the last 5 minutes by this session: a stolen access token alone can neither
/// enrol the thief's authenticator nor turn the second factor off.
#[tokio::test]
async fn changing_mfa_needs_the_password_re_entered_in_the_last_five_minutes() {
    let (w, app) = world().await;
    let a = owner(&w, &app, "step-up").await;
    let other = sign_in(&app, &a.user).await;
    let setup = |access: String| {
        let app = &app;
        async move { call(app, "POST", "/v1/auth/mfa/totp/setup", None, Some(&access)).await }
    };
    let confirm = |access: String, code: String| {
        let app = &app;
        async move {
            call(
                app,
                "POST",
                "/v1/auth/mfa/totp/confirm",
                Some(json!({"code": code})),
                Some(&access),
            )
            .await
        }
    };

    // An access token alone changes nothing.
    for r in [
        setup(a.access.clone()).await,
        confirm(a.access.clone(), "123456".into()).await,
        call(
            &app,
            "DELETE",
            "/v1/auth/mfa/totp",
            Some(json!({"code": "123456"})),
            Some(&a.access),
        )
        .await,
    ] {
        assert_eq!(
            (r.status, r.code()),
            (403, "step_up_required"),
            "{}",
            r.body
        );
    }
    // A wrong password is no step-up.
    let r = step_up(&app, &a.access, "Not-My-Password-1").await;
    assert_eq!(r.status, 400);
    assert!(r.field_error("password"), "{}", r.body);
    assert_eq!(setup(a.access.clone()).await.code(), "step_up_required");

    // The right one opens these routes to this session, and to no other, for 5 minutes.
    let r = step_up(&app, &a.access, PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let until = w.clock.now() + Duration::minutes(5);
    assert_eq!(
        r.str("step_up_expires_at"),
        shared_core::clock::rfc3339(until)
    );
    let r = setup(a.access.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let secret = totp::decode_base32(&r.str("secret")).unwrap();
    assert_eq!(
        setup(other.access.clone()).await.code(),
        "step_up_required",
        "per session"
    );
    w.clock.advance(Duration::minutes(5));
    let code = || totp::code_at(&secret, w.clock.now().unix_timestamp());
    let r = confirm(a.access.clone(), code()).await;
    assert_eq!((r.status, r.code()), (403, "step_up_required"), "expired");
    assert_eq!(step_up(&app, &a.access, PASSWORD).await.status, 200);
    let r = confirm(a.access.clone(), code()).await;
    assert_eq!(r.status, 200, "{}", r.body);

    assert_eq!(security_events(&w, "step_up").await.len(), 2);
    assert_eq!(security_events(&w, "step_up_failed").await.len(), 1);
    // An ended session cannot step up (the MFA change ended the other one).
    let r = step_up(&app, &other.access, PASSWORD).await;
    assert_eq!((r.status, r.code()), (401, "session_ended"), "{}", r.body);
}

/// Guessing the password through step-up with a stolen access token: 20 guesses sent at once
/// are 20 counted attempts of which at most 5 are checked, the rest wait; the real user's login
/// is not locked by them.
#[tokio::test]
async fn twenty_concurrent_wrong_step_ups_are_all_counted_and_mostly_refused() {
    let (w, app) = world().await;
    let a = owner(&w, &app, "step-up-guess").await;
    let guesses = (0..20).map(|i| {
        let (app, access) = (&app, a.access.clone());
        async move { step_up(app, &access, &format!("Wrong-Guess-Number-{i}")).await }
    });
    let replies = join_all(guesses.collect()).await;
    let checked = replies.iter().filter(|r| r.status == 400).count();
    let throttled = replies.iter().filter(|r| r.status == 429).count();
    let free = auth::throttle::ACCOUNT_IP.free as usize;
    assert!(
        (1..=free).contains(&checked),
        "{checked} guesses were checked; at most {free} may be"
    );
    assert_eq!(checked + throttled, 20, "every other guess waits");
    let key = shared_core::keys::step_up_throttle(&a.user.tenant_id, &a.user.user_id);
    let counter = ops_item(&w, &key).await.expect("the counter is stored");
    assert_eq!(
        n_attr(&counter, "failures"),
        Some(20),
        "every guess counted"
    );
    // The right password waits too; the login is not the step-up's to lock.
    assert_eq!(step_up(&app, &a.access, PASSWORD).await.status, 429);
    assert_eq!(login(&app, &a.email, PASSWORD, None).await.status, 200);
}

// ---------------------------------------------------------------- 8. throttling

#[tokio::test]
async fn failed_logins_are_throttled_per_client_without_locking_the_real_user_out() {
    let (w, app) = world().await;
    let a = seed_tenant(&w, &app, "target").await;
    let email = a.email.as_str().to_string();
    let attacker = "198.51.100.66";
    let attempt = |ip: &'static str, password: &'static str| {
        let (app, email) = (&app, email.clone());
        async move {
            call_from(
                app,
                ip,
                "POST",
                "/v1/auth/login",
                json!({"email": email, "password": password}),
            )
            .await
        }
    };

    for i in 1..=5 {
        let r = attempt(attacker, "Wrong-Guess-Number-1").await;
        assert_eq!(
            (r.status, r.code()),
            (401, "invalid_credentials"),
            "attempt {i}"
        );
    }
    let r = attempt(attacker, PASSWORD).await;
    assert_eq!(r.status, 429, "even the right password waits: {}", r.body);
    let wait: i64 = r
        .retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(wait >= 1, "{wait}");
    assert_eq!(security_events(&w, "login_throttled").await.len(), 1);

    // The real user, elsewhere, is not locked out.
    let r = attempt("203.0.113.99", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Waits grow with more failures.
    w.clock.advance(Duration::seconds(wait + 1));
    let r = attempt(attacker, "Wrong-Guess-Number-2").await;
    assert_eq!(r.status, 401);
    let r = attempt(attacker, PASSWORD).await;
    assert_eq!(r.status, 429);
    let longer: i64 = r.retry_after.as_deref().unwrap().parse().unwrap();
    assert!(longer > wait, "{longer} > {wait}");

    w.clock.advance(Duration::seconds(longer + 1));
    let r = attempt(attacker, PASSWORD).await;
    assert_eq!(r.status, 200, "after the wait: {}", r.body);
}

#[tokio::test]
async fn an_unknown_email_gets_the_same_answer_and_the_same_argon2_work_as_a_wrong_password() {
    let (w, app) = world().await;
    let a = seed_tenant(&w, &app, "known").await;

    // One argon2 verification at the configured cost, the fastest of three.
    let one_hash = (0..3)
        .map(|_| {
            let t = Instant::now();
            assert!(!password::verify_password(
                "Wrong-Guess-Number-1",
                stored_hash()
            ));
            t.elapsed()
        })
        .min()
        .unwrap();

    let wrong = login(&app, a.email.as_str(), "Wrong-Guess-Number-1", None).await;
    let unknown = login(&app, &address(&w, "ghost"), "Wrong-Guess-Number-1", None).await;
    assert_eq!((wrong.status, wrong.code()), (401, "invalid_credentials"));
    assert_eq!(
        (unknown.status, unknown.code()),
        (wrong.status, wrong.code())
    );
    assert_eq!(unknown.body, wrong.body);
    // Both ran a full argon2 verification (no strict ratio: the machine is shared).
    for (what, r) in [("wrong password", &wrong), ("unknown email", &unknown)] {
        assert!(
            r.elapsed >= one_hash / 2 && r.elapsed >= StdDuration::from_millis(3),
            "{what} took {:?}, one argon2 verification {one_hash:?}",
            r.elapsed
        );
    }
}

/// The login index's copy of the password hash, and the hash of the user it names, as stored.
async fn login_copy_and_user_hash(w: &World, app: &App, email: &str) -> (Option<String>, String) {
    let bidx = app.keys.email(&Email::parse(email).unwrap());
    let get = |key: shared_core::keys::Key| async move {
        w.clients
            .dynamo
            .get_item()
            .table_name(w.table("TenantsTable"))
            .key("pk", shared_core::dynamo::s(&key.pk))
            .key("sk", shared_core::dynamo::s(&key.sk))
            .consistent_read(true)
            .send()
            .await
            .expect("get item")
            .item
            .expect("the item")
    };
    let login = get(shared_core::keys::login(&bidx)).await;
    let tenant = TenantId::parse(s(&login, "tenant_id").unwrap()).unwrap();
    let user = UserId::parse(s(&login, "user_id").unwrap()).unwrap();
    let user = get(shared_core::keys::user(&tenant, &user)).await;
    (
        s(&login, "password_hash").map(str::to_string),
        s(&user, "password_hash").unwrap().to_string(),
    )
}

/// Another auth app over `w`, its DynamoDB requests counted on the wire.
async fn metered(w: &World) -> (App, shared_core::metering::Meter) {
    let meter = w.meter();
    let app = w.auth_app().await.expect("auth app");
    let metered = auth::App {
        store: AccountStore::new(
            meter.instrument(&w.clients.dynamo),
            app.store.tables().clone(),
            app.settings.security_log_days,
        ),
        ..app
    };
    (metered, meter)
}

#[tokio::test]
async fn a_login_checks_the_hash_from_the_login_index_and_writes_once() {
    let (w, app) = world().await;
    let a = seed_tenant(&w, &app, "oneread").await;
    let email = a.email.as_str().to_string();
    // The first login finds an item from before the copy: it works and leaves the copy.
    assert_eq!(login_copy_and_user_hash(&w, &app, &email).await.0, None);
    assert_eq!(login(&app, &email, PASSWORD, None).await.status, 200);
    let (copy, hash) = login_copy_and_user_hash(&w, &app, &email).await;
    assert_eq!(
        copy.as_deref(),
        Some(hash.as_str()),
        "the login left the copy"
    );

    // From then on: one read (the login index with the throttle counters), the counts (one
    // atomic ADD per counter) and the user read while the hash runs, one write.
    let (metered, meter) = metered(&w).await;
    meter.reset();
    assert_eq!(login(&metered, &email, PASSWORD, None).await.status, 200);
    let ops = meter.usage(&w.clients.dynamo).await.unwrap().operations;
    let count = |op: &str| ops.iter().filter(|o| *o == op).count();
    assert_eq!(
        ops.first().map(String::as_str),
        Some("BatchGetItem"),
        "{ops:?}"
    );
    assert_eq!(
        ops.last().map(String::as_str),
        Some("TransactWriteItems"),
        "{ops:?}"
    );
    assert_eq!(
        (
            count("GetItem"),
            count("UpdateItem"),
            count("TransactWriteItems"),
            ops.len()
        ),
        (1, 3, 1, 6),
        "the counts are given back inside the login's write: {ops:?}"
    );
    // Given back: the next wrong password of this address is still the account's first.
    let wrong = login(&app, &email, "Wrong-Guess-Number-1", None).await;
    assert_eq!(wrong.code(), "invalid_credentials");
    let bidx = app.keys.email(&Email::parse(&email).unwrap());
    let ip = app.keys.ip("203.0.113.20");
    for key in [
        shared_core::keys::login_throttle_account(&bidx),
        shared_core::keys::login_throttle_ip(&ip),
    ] {
        let item = ops_item(&w, &key).await.expect("a counter");
        assert_eq!(n_attr(&item, "failures"), Some(1), "{key:?}");
    }
}

#[tokio::test]
async fn a_functions_secrets_are_read_in_one_request_in_the_order_asked() {
    let (w, _app) = world().await;
    let env = infra::local::local_function_env(&w.template, "auth", &w.endpoint).unwrap();
    let names = [
        env["JWT_PUBLIC_KEYS_PARAMETER"].as_str(),
        env["BLIND_INDEX_KEY_PARAMETER"].as_str(),
        env["JWT_SIGNING_KEY_PARAMETER"].as_str(),
    ];
    let together = shared_core::secrets::parameters(&w.direct.ssm, names)
        .await
        .unwrap();
    for (name, value) in names.iter().zip(&together) {
        assert_eq!(
            value,
            &shared_core::secrets::parameter(&w.direct.ssm, name)
                .await
                .unwrap(),
            "{name}"
        );
    }
    let key = shared_core::secrets::blind_index_key_from(names[1], &together[1]).unwrap();
    assert_eq!(
        key.email(&Email::parse("ana@example.com").unwrap()),
        w.key.email(&Email::parse("ana@example.com").unwrap())
    );
    let missing = format!("/lead-platform/{}/no-such-parameter", w.stage);
    let err = shared_core::secrets::parameters(&w.direct.ssm, [names[0], missing.as_str()])
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains(&missing), "{err:#}");
}

#[tokio::test]
async fn a_copy_of_the_hash_that_is_not_the_users_is_never_trusted() {
    let (w, app) = world().await;
    let a = seed_tenant(&w, &app, "stale").await;
    let email = a.email.as_str().to_string();
    // The login index holds the hash of an old password (a write that changed the user's hash
    // without refreshing the copy).
    const OLD: &str = "Old-Password-Number-9";
    let old_hash = password::hash_password(OLD).unwrap();
    let mut item = login_item(&app.keys.email(&a.email), &a.tenant_id, &a.user_id);
    item.insert("password_hash".into(), shared_core::dynamo::s(&old_hash));
    put(&w, item).await;

    let r = login(&app, &email, OLD, None).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "invalid_credentials"),
        "{}",
        r.body
    );
    let r = login(&app, &email, PASSWORD, None).await;
    assert_eq!(r.status, 200, "the user's hash counts: {}", r.body);
    let (copy, hash) = login_copy_and_user_hash(&w, &app, &email).await;
    assert_eq!(
        copy.as_deref(),
        Some(hash.as_str()),
        "and the login refreshed the copy"
    );
    assert_eq!(
        login(&app, &email, OLD, None).await.code(),
        "invalid_credentials"
    );
}

// ---------------------------------------------------------------- 9. team

#[tokio::test]
async fn team_invitations_roles_and_removal() {
    let (w, app) = world().await;
    // Two members: the free tier's seats leave room for one invitation.
    let boss = owner(&w, &app, "boss").await;
    let tenant = boss.user.tenant_id.clone();
    let admin = teammate(&w, &app, &tenant, Role::Admin, "admin").await;
    let invitee = address(&w, "newbie");
    let invite = |access: String, role: &'static str| {
        let (app, invitee) = (&app, invitee.clone());
        async move {
            call(
                app,
                "POST",
                "/v1/team/invitations",
                Some(json!({"email": invitee, "role": role})),
                Some(&access),
            )
            .await
        }
    };

    for role in ["owner", "admin"] {
        let r = invite(admin.access.clone(), role).await;
        assert_eq!(
            (r.status, r.code()),
            (403, "role_not_assignable"),
            "admin inviting {role}"
        );
    }
    let r = invite(boss.access.clone(), "owner").await;
    assert_eq!(
        (r.status, r.code()),
        (403, "role_not_assignable"),
        "no second owner"
    );
    assert!(emails_to(&invitee).is_empty());

    let r = invite(boss.access.clone(), "member").await;
    assert_eq!(r.status, 201, "{}", r.body);
    let token = link_token(&invitee, "You are invited to join a team");
    // The open invitation holds the invited address sealed with the link's secret, never in
    // clear: no item of any table carries it before the invitee accepts.
    for table in ["TenantsTable", "SecurityLogTable", "OpsTable"] {
        for it in w.scan(table).await {
            let raw = format!("{it:?}").to_lowercase();
            assert!(
                !raw.contains(&invitee.to_lowercase()),
                "{table}: the invited address in clear: {it:?}"
            );
        }
    }
    let r = call(
        &app,
        "POST",
        "/v1/auth/accept-invitation",
        Some(json!({"token": token, "password": NEW_PASSWORD, "name": "New Bie", "policy_version": POLICY_VERSION, "terms_version": TERMS_VERSION})),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let newbie_id = r.str("id");
    let r = call(
        &app,
        "POST",
        "/v1/auth/accept-invitation",
        Some(json!({"token": token, "password": NEW_PASSWORD, "name": "Again", "policy_version": POLICY_VERSION, "terms_version": TERMS_VERSION})),
        None,
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "invalid_token"), "single use");

    let (copy, hash) = login_copy_and_user_hash(&w, &app, &invitee).await;
    assert_eq!(
        copy.as_deref(),
        Some(hash.as_str()),
        "joining writes the copy"
    );
    let r = login(&app, &invitee, NEW_PASSWORD, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (newbie_access, newbie_refresh) = (r.str("access_token"), r.str("refresh_token"));

    // Roles without the team-invite permission are refused before anything else is looked at.
    for role in [Role::Member, Role::Viewer, Role::Billing] {
        let who = teammate(&w, &app, &tenant, role, &format!("team-{}", role.as_str())).await;
        let r = invite(who.access.clone(), "member").await;
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{role:?}");
    }
    let me = get_me(&app, &newbie_access).await;
    assert_eq!(
        (me.body["role"].as_str(), me.body["tenant_id"].as_str()),
        (Some("member"), Some(tenant.as_str()))
    );
    // Joining, the invited person accepted the versions in force: recorded as such.
    assert_eq!(me.body["policy"]["accepted_policy_version"], POLICY_VERSION);
    assert_eq!(me.body["policy"]["reacceptance_due"], false);
    let joined = user_item_of(&w, &invitee).await.expect("the new member");
    let history = joined["policy_acceptances"]
        .as_l()
        .expect("the acceptance history");
    assert_eq!(
        history[0].as_m().unwrap()["via"].as_s().unwrap(),
        "invitation"
    );

    let r = call(&app, "GET", "/v1/team", None, Some(&boss.access)).await;
    assert_eq!(r.status, 200);
    let emails: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["email"].as_str())
        .collect();
    assert!(
        emails.contains(&boss.email.as_str()) && emails.contains(&invitee.as_str()),
        "{emails:?}"
    );

    let path = format!("/v1/team/{newbie_id}");
    let r = call(
        &app,
        "PATCH",
        &path,
        Some(json!({"role": "viewer"})),
        Some(&boss.access),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["role"], "viewer");
    assert_eq!(
        refresh(&app, &newbie_refresh).await.status,
        401,
        "the old role's session ended"
    );
    assert_eq!(patch_me(&app, &newbie_access).await.code(), "session_ended");
    assert_eq!(security_events(&w, "role_changed").await.len(), 1);

    // An admin cannot demote the owner, nor anyone promote to owner.
    let owner_path = format!("/v1/team/{}", boss.user.user_id);
    let r = call(
        &app,
        "PATCH",
        &owner_path,
        Some(json!({"role": "viewer"})),
        Some(&admin.access),
    )
    .await;
    assert_eq!((r.status, r.code()), (403, "role_not_assignable"));
    let r = call(
        &app,
        "PATCH",
        &path,
        Some(json!({"role": "owner"})),
        Some(&boss.access),
    )
    .await;
    assert_eq!((r.status, r.code()), (403, "role_not_assignable"));

    let r = call(&app, "DELETE", &path, None, Some(&boss.access)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = login(&app, &invitee, NEW_PASSWORD, None).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "invalid_credentials"),
        "removed members cannot log in"
    );
    let r = call(&app, "GET", "/v1/team", None, Some(&boss.access)).await;
    assert!(!r.body.to_string().contains(&invitee));

    let self_path = format!("/v1/team/{}", boss.user.user_id);
    let r = call(
        &app,
        "PATCH",
        &self_path,
        Some(json!({"role": "admin"})),
        Some(&boss.access),
    )
    .await;
    assert_eq!((r.status, r.code()), (409, "cannot_change_self"));
    let r = call(&app, "DELETE", &self_path, None, Some(&boss.access)).await;
    assert_eq!((r.status, r.code()), (409, "cannot_change_self"));
}

// ---------------------------------------------------------------- 10. tenant isolation

#[tokio::test]
async fn tenant_a_can_never_act_on_tenant_b() {
    let (w, app) = world().await;
    let a_owner = seed_tenant(&w, &app, "a-owner").await;
    let a_admin = teammate(&w, &app, &a_owner.tenant_id, Role::Admin, "a-admin").await;
    let b_owner = seed_tenant(&w, &app, "b-owner").await;
    let b_member = teammate(&w, &app, &b_owner.tenant_id, Role::Member, "b-member").await;

    let b_path = format!("/v1/team/{}", b_member.user.user_id);
    let r = call(
        &app,
        "PATCH",
        &b_path,
        Some(json!({"role": "viewer"})),
        Some(&a_admin.access),
    )
    .await;
    assert_eq!((r.status, r.code()), (404, "user_not_found"));
    let r = call(&app, "DELETE", &b_path, None, Some(&a_admin.access)).await;
    assert_eq!((r.status, r.code()), (404, "user_not_found"));
    let r = call(&app, "GET", "/v1/team", None, Some(&a_admin.access)).await;
    assert_eq!(r.status, 200);
    assert!(
        !r.body.to_string().contains(b_member.email.as_str()),
        "{}",
        r.body
    );
    assert!(!r.body.to_string().contains(b_member.user.user_id.as_str()));

    let b_session = format!("/v1/auth/sessions/{}", session_of(&b_member.refresh));
    let r = call(&app, "DELETE", &b_session, None, Some(&a_admin.access)).await;
    assert_eq!((r.status, r.code()), (404, "session_not_found"));
    let r = get_me(&app, &b_member.access).await;
    assert_eq!(
        (r.status, r.body["role"].as_str()),
        (200, Some("member")),
        "B untouched"
    );
    assert_eq!(patch_me(&app, &b_member.access).await.status, 200);
}

#[tokio::test]
async fn forged_tampered_and_expired_tokens_are_401_without_any_database_call() {
    let (w, mut app) = world().await;
    let a = owner(&w, &app, "holder").await;
    let b = seed_tenant(&w, &app, "other").await;
    let meter = w.meter();
    app.store = AccountStore::new(
        meter.instrument(&w.clients.dynamo),
        app.store.tables().clone(),
        app.settings.security_log_days,
    );

    let now = w.clock.now().unix_timestamp();
    let claims = AccessClaims {
        sub: a.user.user_id.to_string(),
        tid: a.user.tenant_id.to_string(),
        role: "owner".into(),
        sid: session_of(&a.refresh),
        cep: 0,
        iat: now,
        exp: now + ACCESS_TOKEN_TTL_SECS,
        iss: ISSUER.into(),
        typ: "access".into(),
    };
    // Signed by a key that is not auth's, under auth's key id: what any other function could
    // do if it held a signing key.
    let other_key = TokenSigner::from_json(&format!(
        r#"{{"kid":"{}","private_key":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="}}"#,
        app.signer.kid()
    ))
    .unwrap();
    let forged = other_key.issue(&claims);
    // A's signature over a payload naming tenant B.
    let b_payload = app.signer.issue(&AccessClaims {
        tid: b.tenant_id.to_string(),
        ..claims.clone()
    });
    let parts: Vec<&str> = a.access.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b_payload.split('.').nth(1).unwrap(),
        parts[2]
    );
    // Signed under a key id that is not published (a retired key, or one made up).
    let unknown_kid = TokenSigner::generate("k-unlisted")
        .and_then(|k| TokenSigner::from_json(&k.private_json))
        .unwrap()
        .issue(&claims);
    // The scheme this replaced: HS256 under a shared secret (the old local keys file's shape),
    // and under auth's own public key taken as the HMAC secret (algorithm confusion).
    let public_key = base64_decode(&app.signer.public_key());
    let old_scheme = hs256_token(&[7u8; 32], app.signer.kid(), &claims);
    let confused = hs256_token(&public_key, app.signer.kid(), &claims);
    meter.reset();
    for (what, token) in [
        ("forged by a key that is not auth's", forged.as_str()),
        ("unknown kid", &unknown_kid),
        ("HS256 (the old scheme)", &old_scheme),
        ("HS256 keyed with the public key", &confused),
        ("tampered tid", &tampered),
        ("garbage", "not.a.token"),
    ] {
        for (method, body) in [("GET", None), ("PATCH", Some(json!({"name": "x"})))] {
            let r = call(&app, method, "/v1/me", body, Some(token)).await;
            assert_eq!(
                (r.status, r.code()),
                (401, "unauthorized"),
                "{what} {method}"
            );
        }
    }
    let r = call(&app, "PATCH", "/v1/me", Some(json!({"name": "x"})), None).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"), "no token");

    w.clock.advance(Duration::minutes(16));
    for (method, body) in [("GET", None), ("PATCH", Some(json!({"name": "x"})))] {
        let r = call(&app, method, "/v1/me", body, Some(&a.access)).await;
        assert_eq!((r.status, r.code()), (401, "token_expired"), "{method}");
    }
    let recorded = meter.take();
    assert!(
        recorded.is_empty(),
        "refused tokens cost DynamoDB calls: {recorded:?}"
    );

    // The meter does see the requests of a valid token.
    let fresh = minted_token(&w, &app, &a.user).await;
    meter.reset();
    assert_eq!(patch_me(&app, &fresh).await.status, 200);
    assert!(!meter.take().is_empty());
}

/// The key id in a token's header.
fn kid_of(token: &str) -> String {
    use base64::Engine;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn put_parameter(w: &World, name: &str, value: &str) {
    w.clients
        .ssm
        .put_parameter()
        .name(name)
        .value(value)
        .overwrite(true)
        .send()
        .await
        .expect("put parameter");
}

/// Rotation by key id through the real parameters: the new public key is published beside the
/// old one, auth switches its private key, tokens of the previous key id verify (in auth and in a
/// function that only verifies) while it is listed, and not once it is dropped.
#[tokio::test]
async fn tokens_of_the_previous_key_verify_while_it_is_listed() {
    let (w, app) = world().await;
    let a = owner(&w, &app, "rotation").await;
    let env = infra::local::local_function_env(&w.template, "auth", emulator_endpoint()).unwrap();
    let (signing, public) = (
        env["JWT_SIGNING_KEY_PARAMETER"].clone(),
        env["JWT_PUBLIC_KEYS_PARAMETER"].clone(),
    );
    let old_kid = app.signer.kid().to_string();
    assert_eq!(kid_of(&a.access), old_kid);
    let next = TokenSigner::generate("k-next").unwrap();

    // 1. Publish the next key beside the current one; 2. auth signs with it.
    let both = json!({"keys": {&old_kid: app.signer.public_key(), "k-next": next.public_key}});
    put_parameter(&w, &public, &both.to_string()).await;
    put_parameter(&w, &signing, &next.private_json).await;
    let rotated = w
        .auth_app()
        .await
        .expect("auth starts with the published next key");
    let b = sign_in(&rotated, &a.user).await;
    assert_eq!(kid_of(&b.access), "k-next");
    let leads_api = w.token_verifier("leads-api").await.unwrap();
    let now = w.clock.now().unix_timestamp();
    for token in [&a.access, &b.access] {
        assert_eq!(patch_me(&rotated, token).await.status, 200);
        assert!(leads_api.verify(token, now).is_ok());
    }

    // 3. Once the old key is dropped, its tokens are refused everywhere.
    let next_only = json!({"keys": {"k-next": next.public_key}});
    put_parameter(&w, &public, &next_only.to_string()).await;
    let after = w.auth_app().await.unwrap();
    for r in [
        patch_me(&after, &a.access).await,
        get_me(&after, &a.access).await,
    ] {
        assert_eq!((r.status, r.code()), (401, "unauthorized"), "{}", r.body);
    }
    assert_eq!(patch_me(&after, &b.access).await.status, 200);
    assert!(w
        .token_verifier("leads-api")
        .await
        .unwrap()
        .verify(&a.access, now)
        .is_err());

    // auth does not start with a private key whose public key is not published: it would
    // issue tokens that every other function refuses.
    let rogue = TokenSigner::generate("k-rogue").unwrap();
    put_parameter(&w, &signing, &rogue.private_json).await;
    let err = format!(
        "{:#}",
        w.auth_app().await.err().expect("auth refuses to start")
    );
    assert!(err.contains("not listed"), "{err}");
    assert!(!err.contains(&rogue.private_json), "{err}");
}

/// No function but auth can sign: no other configuration reads a private key's parameter,
/// whatever its environment holds (the template gives it to none: `stack_hardening.rs`).
#[test]
fn no_function_but_auth_is_configured_with_the_signing_key() {
    const PRIVATE: &str = "JWT_SIGNING_KEY_PARAMETER";
    assert!(auth::config::ALLOW_LIST.contains(&PRIVATE));
    for (function, allow_list) in [
        ("leads-api", leads_api::config::ALLOW_LIST),
        ("lead-transfers", lead_transfers::config::ALLOW_LIST),
        ("dsar", dsar::config::ALLOW_LIST),
        ("billing-webhook", billing_webhook::config::ALLOW_LIST),
        ("lead-intake", lead_intake::config::ALLOW_LIST),
        ("dsar-worker", dsar_worker::config::ALLOW_LIST),
        ("dsar-deadlines", dsar_deadlines::config::ALLOW_LIST),
        ("retention-cleanup", retention_cleanup::config::ALLOW_LIST),
    ] {
        assert!(!allow_list.contains(&PRIVATE), "{function} reads {PRIVATE}");
        assert!(
            !allow_list.iter().any(|v| v.contains("SIGNING")),
            "{function}: {allow_list:?}"
        );
    }
}

// ---------------------------------------------------------------- 11. the role matrix

/// A concrete path for a route template (path parameters name nothing that exists).
fn concrete(path: &str) -> String {
    path.replace("{sessionId}", "se-nobody")
        .replace("{userId}", "us-nobody")
        .replace("{apiKeyId}", "ak-nobody")
}

fn body_for(method: &str) -> Option<Value> {
    (method != "GET").then(|| json!({}))
}

#[tokio::test]
async fn every_route_answers_403_exactly_when_the_role_lacks_its_permission() {
    let (w, app) = world().await;
    let first = seed_tenant(&w, &app, "matrix-owner").await;
    let tenant = first.tenant_id.clone();
    let mut users = vec![first];
    for role in Role::ALL.into_iter().filter(|r| *r != Role::Owner) {
        users.push(
            seed_user(
                &w,
                &app,
                &tenant,
                role,
                &format!("matrix-{}", role.as_str()),
            )
            .await,
        );
    }
    // Tokens from real logins carry the role.
    for u in &users {
        let a = sign_in(&app, u).await;
        assert_eq!(
            get_me(&app, &a.access).await.body["role"],
            json!(u.role.as_str())
        );
    }

    let mut cells = 0;
    for route in auth::routes::ROUTES {
        let path = concrete(route.path);
        let Some(permission) = route.access else {
            let r = call(&app, route.method, &path, body_for(route.method), None).await;
            assert!(
                r.status != 401 && r.status < 500,
                "public {} {}: {} {}",
                route.method,
                path,
                r.status,
                r.body
            );
            continue;
        };
        let r = call(&app, route.method, &path, body_for(route.method), None).await;
        assert_eq!(
            (r.status, r.code()),
            (401, "unauthorized"),
            "{} {} without a token",
            route.method,
            path
        );

        for role in Role::ALL {
            let user = users.iter().find(|u| u.role == role).unwrap();
            // A fresh session per call: a logout earlier in the walk must not hide an answer.
            let token = minted_token(&w, &app, user).await;
            let r = call(
                &app,
                route.method,
                &path,
                body_for(route.method),
                Some(&token),
            )
            .await;
            let forbidden = r.status == 403 && r.code() == "forbidden";
            let at = format!(
                "{:?} on {} {}: {} {}",
                role, route.method, path, r.status, r.body
            );
            if allows(role, permission) {
                assert!(
                    !forbidden && r.status != 401 && r.status < 500,
                    "allowed, yet {at}"
                );
            } else {
                assert!(forbidden, "not allowed, yet {at}");
            }
            cells += 1;
        }
    }
    let protected = auth::routes::ROUTES
        .iter()
        .filter(|r| r.access.is_some())
        .count();
    assert_eq!(cells, protected * Role::ALL.len());
}

// ---------------------------------------------------------------- 12. account closure

fn submission_to(form: &FormId) -> Request {
    let mut e = json_submission(&json!({"email": "lead.person@example.com", "message": "hello"}));
    e["rawPath"] = json!(format!("/v1/forms/{form}/submissions"));
    e["pathParameters"]["formId"] = json!(form.as_str());
    request(&e)
}

#[tokio::test]
async fn closing_the_account_stops_intake_at_once_and_can_be_undone_within_the_grace_period() {
    let (w, app) = world().await;
    let boss = owner(&w, &app, "closer").await;
    let tenant = boss.user.tenant_id.clone();
    let admin = teammate(&w, &app, &tenant, Role::Admin, "closer-admin").await;
    let form_id = FormId::parse(&format!("form-{}", w.stage)).unwrap();
    let admin_store = shared_leads::dynamo::DynamoFormAdmin::new(
        w.clients.dynamo.clone(),
        w.table("TenantsTable"),
    );
    admin_store
        .put_form(&infra::seed::demo_form(&tenant, &form_id, WEB_ORIGIN))
        .await
        .unwrap();
    let intake = w.intake(None);
    let r = lead_intake::handle(&intake, submission_to(&form_id)).await;
    assert_eq!(r.status(), 201, "{}", response_json(&r));

    let close = |access: String, password: &'static str| {
        let app = &app;
        async move {
            call(
                app,
                "DELETE",
                "/v1/tenant",
                Some(json!({"password": password})),
                Some(&access),
            )
            .await
        }
    };
    let r = close(admin.access.clone(), PASSWORD).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let r = close(boss.access.clone(), "Not-My-Password-1").await;
    assert_eq!(r.status, 400);
    assert!(r.field_error("password"), "{}", r.body);

    let r = close(boss.access.clone(), PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let expected = shared_core::clock::rfc3339(w.clock.now() + Duration::days(30));
    assert_eq!(r.str("erase_after"), expected);
    let r = lead_intake::handle(&intake, submission_to(&form_id)).await;
    assert_eq!(r.status(), 403);
    assert_eq!(response_json(&r)["error"]["code"], "tenant_inactive");

    let r = call(
        &app,
        "POST",
        "/v1/tenant/reactivate",
        None,
        Some(&boss.access),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = lead_intake::handle(&intake, submission_to(&form_id)).await;
    assert_eq!(r.status(), 201, "accepting again: {}", response_json(&r));

    assert_eq!(close(boss.access.clone(), PASSWORD).await.status, 200);
    w.clock.advance(Duration::days(31));
    let late = sign_in(&app, &boss.user).await;
    let r = call(
        &app,
        "POST",
        "/v1/tenant/reactivate",
        None,
        Some(&late.access),
    )
    .await;
    assert_eq!((r.status, r.code()), (409, "not_reactivatable"));
    assert_eq!(security_events(&w, "tenant_closed").await.len(), 2);
}

// ---------------------------------------------------------------- 13. logs

#[tokio::test]
async fn no_email_password_token_or_totp_secret_reaches_the_logs() {
    let (w, app) = world().await;
    let (logs, _capture) = capture_logs();
    let email = address(&w, "secretive");
    let mut secrets: Vec<String> = vec![email.clone(), PASSWORD.into(), NEW_PASSWORD.into()];

    let r = call(
        &app,
        "POST",
        "/v1/auth/signup",
        Some(json!({"email": email, "password": PASSWORD, "name": "Sam Secret", "business_name": "Hush", "policy_version": POLICY_VERSION, "terms_version": TERMS_VERSION})),
        None,
    )
    .await;
    assert_eq!(r.status, 201);
    let verify = link_token(&email, "Confirm your email address");
    assert_eq!(
        call(
            &app,
            "POST",
            "/v1/auth/verify-email",
            Some(json!({"token": verify})),
            None
        )
        .await
        .status,
        200
    );
    assert_eq!(
        login(&app, &email, "Wrong-Guess-Number-1", None)
            .await
            .status,
        401
    );
    assert_eq!(
        login(&app, &address(&w, "unknown-person"), PASSWORD, None)
            .await
            .status,
        401
    );
    let r = login(&app, &email, PASSWORD, None).await;
    assert_eq!(r.status, 200);
    let (access, refresh1) = (r.str("access_token"), r.str("refresh_token"));
    let r = refresh(&app, &refresh1).await;
    assert_eq!(r.status, 200);
    let (access2, refresh2) = (r.str("access_token"), r.str("refresh_token"));
    assert_eq!(step_up(&app, &access2, PASSWORD).await.status, 200);
    let r = call(
        &app,
        "POST",
        "/v1/auth/mfa/totp/setup",
        None,
        Some(&access2),
    )
    .await;
    assert_eq!(r.status, 200);
    let totp_secret = r.str("secret");
    assert_eq!(
        refresh(&app, &refresh1).await.code(),
        "refresh_token_reused"
    );

    let r = call(
        &app,
        "POST",
        "/v1/auth/password-reset",
        Some(json!({"email": email})),
        None,
    )
    .await;
    assert_eq!(r.status, 202);
    let reset = link_token(&email, "Reset your password");
    let r = call(
        &app,
        "POST",
        "/v1/auth/password-reset/confirm",
        Some(json!({"token": reset, "new_password": NEW_PASSWORD})),
        None,
    )
    .await;
    assert_eq!(r.status, 200);

    // The refresh tokens' secret halves on their own, too (their session ids are fine to log).
    for t in [&refresh1, &refresh2] {
        secrets.push(t.split_once('.').unwrap().1.to_string());
    }
    secrets.extend([
        verify,
        access,
        refresh1,
        access2,
        refresh2,
        totp_secret,
        reset,
    ]);
    secrets.push(email.split('@').next().unwrap().to_string());
    // The client's address and browser are personal data too (the fixture's).
    secrets.extend(["203.0.113.20".to_string(), "DemoBrowser".to_string()]);
    // The capture must hold what these calls log (their completions and the reuse of a
    // rotated refresh token) before the absence of secrets in it means anything.
    let needles: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let text = assert_logs_hold_without(
        &logs,
        &[
            "request completed",
            "\"status\":201",
            "\"status\":202",
            "refresh_token_reused",
        ],
        &needles,
    );
    assert!(
        text.lines().count() >= 10,
        "expected log lines, got:\n{text}"
    );
}

/// Fails like SES in its sandbox, whose message quotes the recipient.
struct SandboxMailer;

impl shared_mail::Mailer for SandboxMailer {
    async fn send(&self, email: &shared_mail::OutgoingEmail) -> anyhow::Result<()> {
        anyhow::bail!(
            "MessageRejected: Email address is not verified. The following identities failed \
             the check in region EU-WEST-1: {}",
            email.to
        )
    }
}

fn with_mailer<M: shared_mail::Mailer>(app: App, mailer: M) -> auth::App<M> {
    auth::App {
        store: app.store,
        mailer,
        keys: app.keys,
        signer: app.signer,
        verifier: app.verifier,
        clock: app.clock,
        ids: app.ids,
        app_base_url: app.app_base_url,
        settings: app.settings,
    }
}

#[tokio::test]
async fn an_email_that_cannot_be_sent_is_logged_without_its_recipient() {
    let (w, app) = world().await;
    let app = with_mailer(app, SandboxMailer);
    let (logs, _capture) = capture_logs();
    let email = address(&w, "unreachable");
    let body = json!({"email": email, "password": PASSWORD, "name": "Una", "business_name": "Una Co", "policy_version": POLICY_VERSION, "terms_version": TERMS_VERSION});
    let resp = auth::handle(
        &app,
        api_event("POST", "/v1/auth/signup", Some(&body), None),
    )
    .await;
    assert_eq!(
        resp.status(),
        201,
        "the account exists; the user can ask for another email"
    );
    let body = json!({"email": email});
    let resp = auth::handle(
        &app,
        api_event("POST", "/v1/auth/password-reset", Some(&body), None),
    )
    .await;
    assert_eq!(resp.status(), 202);

    // The cause is still logged, without the recipient SES quoted in it.
    let text = assert_logs_hold_without(
        &logs,
        &["email not sent", "MessageRejected"],
        &[&email, &email.to_lowercase()],
    );
    assert_eq!(text.matches("email not sent").count(), 2, "{text}");
}

// ---------------------------------------------------------------- protocol

#[tokio::test]
async fn bad_requests_get_400_415_404_and_405() {
    let (_w, app) = world().await;

    let r = call(
        &app,
        "POST",
        "/v1/auth/login",
        Some(json!({"email": "a@example.com", "password": PASSWORD, "remember_me": true})),
        None,
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "invalid_body"));
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("remember_me"),
        "{}",
        r.body
    );

    let mut e = fixture("auth/login.json");
    e["headers"]["content-type"] = json!("text/plain");
    let r = send(&app, request(&e)).await;
    assert_eq!(r.status, 415);

    let r = call(&app, "POST", "/v1/auth/nowhere", Some(json!({})), None).await;
    assert_eq!(r.status, 404);
    let r = call(&app, "GET", "/v1/auth/login", None, None).await;
    assert_eq!(r.status, 405);
    let r = call(&app, "PUT", "/v1/me", Some(json!({})), None).await;
    assert_eq!(r.status, 405);
}

// ---------------------------------------------------------------- bodies that are not UTF-8

/// Every route, public or behind a token, answers a body that is not UTF-8 (base64-encoded by
/// API Gateway) with a 4xx JSON error, whatever the content type, and stores nothing.
#[tokio::test]
async fn bodies_that_are_not_utf8_are_4xx_on_every_route_and_store_nothing() {
    let (w, app) = world().await;
    let owner = seed_tenant(&w, &app, "utf8-owner").await;
    let token = minted_token(&w, &app, &owner).await;
    let user_id = owner.user_id.to_string();
    let before = w.snapshot().await;
    // Routes that read no body (a body there is ignored, as API Gateway would pass it).
    let bodyless = [
        "logout",
        "logout_all",
        "end_session",
        "totp_setup",
        "remove_member",
        "reactivate_tenant",
    ];
    for name in bodyless {
        assert!(
            auth::routes::ROUTES.iter().any(|r| r.name == name),
            "{name}"
        );
    }
    let mut calls = 0;
    for route in auth::routes::ROUTES
        .iter()
        .filter(|r| r.method != "GET" && !bodyless.contains(&r.name))
    {
        let path = concrete_path(
            route.path,
            &[("userId", &user_id), ("sessionId", "se-nobody")],
        );
        for bytes in NOT_UTF8_BODIES {
            for ct in BODY_CONTENT_TYPES {
                let e = http_event(route.method, &path, Some(&token));
                let resp = auth::handle(&app, with_base64_body(e, bytes, ct)).await;
                assert_json_client_error(&resp, &format!("{} {path} {ct} {bytes:?}", route.method));
                calls += 1;
            }
        }
    }
    assert!(calls > 0);
    assert_eq!(w.snapshot().await, before, "nothing stored");
}

// ---------------------------------------------------------------- conditions under races

/// Six refreshes with one refresh token at once. Each reads the session while the token is
/// current, so the pre-check lets all six through: the rotation's condition (`refresh_hash =
/// :old`) must let exactly one rotate. The others are refused (401), and the session holds the
/// winner's new token, which refreshes again.
#[tokio::test]
async fn concurrent_refreshes_with_one_token_rotate_exactly_once() {
    let (w, mut app) = world().await;
    let meter = w.meter();
    app.store = AccountStore::new(
        meter.instrument(&w.clients.dynamo),
        app.store.tables().clone(),
        app.settings.security_log_days,
    );
    let owner = seed_tenant(&w, &app, "race-refresher").await;
    let now = w.clock.now();
    let sid = SessionId::parse(&app.new_id("se")).unwrap();
    let secret = tokens::new_secret();
    put(
        &w,
        session_item(&Session {
            session_id: sid.clone(),
            user_id: owner.user_id.clone(),
            tenant_id: owner.tenant_id.clone(),
            refresh_hash: tokens::hash_secret(&secret),
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
    let token = tokens::refresh_token(&sid, &secret);
    meter.reset();

    let replies = join_all((0..6).map(|_| refresh(&app, &token)).collect()).await;
    let (sent, refused) = writes_sent_and_refused(&meter);

    let winners: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        winners.len(),
        1,
        "{:?}",
        replies
            .iter()
            .map(|r| (r.status, r.code()))
            .collect::<Vec<_>>()
    );
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 401, "{}", r.body);
        assert!(
            ["invalid_refresh_token", "refresh_token_reused"].contains(&r.code()),
            "{}",
            r.body
        );
    }
    assert!(
        refused >= 1,
        "the rotation's condition refused none of {sent} writes: the pre-check did all the work"
    );
    // Unless a late loser saw the old token as reused (and ended the session), the winner's
    // token is the session's current one.
    let reused = replies.iter().any(|r| r.code() == "refresh_token_reused");
    let next = refresh(&app, &winners[0].str("refresh_token")).await;
    assert_eq!(next.status, if reused { 401 } else { 200 }, "{}", next.body);
}

// ---------------------------------------------------------------- the data inventory

/// Every attribute the auth function writes to the tenants, security-log and ops tables is
/// declared in the data inventory, after flows that write each kind of item (each call's
/// status asserted, so the scan sees what they created).
#[tokio::test]
async fn every_attribute_auth_writes_is_declared_in_the_data_inventory() {
    use shared_privacy::inventory::{self, Table};
    let (w, app) = world().await;
    let email = address(&w, "inventory-signup");
    let r = call(
        &app,
        "POST",
        "/v1/auth/signup",
        Some(json!({"email": email, "password": PASSWORD, "name": "Inv Entory", "business_name": "Inventory Ltd", "policy_version": POLICY_VERSION, "terms_version": TERMS_VERSION})),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let verify = link_token(&email, "Confirm your email address");
    let r = call(
        &app,
        "POST",
        "/v1/auth/verify-email",
        Some(json!({"token": verify})),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let a = sign_in(&app, &seed_tenant(&w, &app, "inventory-owner").await).await;
    let r = refresh(&app, &a.refresh).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let access = r.str("access_token");
    assert_eq!(patch_me(&app, &access).await.status, 200);
    assert_eq!(step_up(&app, &access, PASSWORD).await.status, 200);
    let r = call(&app, "POST", "/v1/auth/mfa/totp/setup", None, Some(&access)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(
        &app,
        "POST",
        "/v1/team/invitations",
        Some(json!({"email": address(&w, "inventory-invitee"), "role": "member"})),
        Some(&access),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = call(
        &app,
        "POST",
        "/v1/auth/password-reset",
        Some(json!({"email": a.email})),
        None,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = login(&app, &a.email, "Wrong-Password-123", None).await;
    assert_eq!(r.status, 401, "{}", r.body);

    for (logical, table) in [
        ("TenantsTable", Table::Tenants),
        ("SecurityLogTable", Table::SecurityLog),
        ("OpsTable", Table::Ops),
    ] {
        let items = w.scan(logical).await;
        assert!(!items.is_empty(), "{logical} holds what the flows wrote");
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
}

// ---------------------------------------------------------------- 13. attacks run concurrently

/// An item of the ops table (throttle counters), read consistently.
async fn ops_item(w: &World, key: &shared_core::keys::Key) -> Option<Item> {
    w.clients
        .dynamo
        .get_item()
        .table_name(w.table("OpsTable"))
        .key("pk", shared_core::dynamo::s(&key.pk))
        .key("sk", shared_core::dynamo::s(&key.sk))
        .consistent_read(true)
        .send()
        .await
        .expect("get ops item")
        .item
}

fn n_attr(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

#[tokio::test]
async fn fifty_concurrent_wrong_logins_from_one_address_cost_fifty_failures() {
    let (w, app) = world().await;
    let a = seed_tenant(&w, &app, "burst").await;
    let email = a.email.as_str().to_string();
    let attacker = "198.51.100.77";
    let attempts = (0..50).map(|i| {
        let (app, email) = (&app, email.clone());
        async move {
            call_from(
                app,
                attacker,
                "POST",
                "/v1/auth/login",
                json!({"email": email, "password": format!("Wrong-Guess-Number-{i}")}),
            )
            .await
        }
    });
    let replies = join_all(attempts.collect()).await;
    let unauthorized = replies
        .iter()
        .filter(|r| (r.status, r.code()) == (401, "invalid_credentials"))
        .count();
    let throttled = replies.iter().filter(|r| r.status == 429).count();
    let free = auth::throttle::ACCOUNT_IP.free as usize;
    assert!(
        (1..=free).contains(&unauthorized),
        "{unauthorized} guesses were checked; at most {free} may be"
    );
    assert_eq!(unauthorized + throttled, 50, "every other guess waits");
    assert!(replies.iter().filter(|r| r.status == 429).all(|r| r
        .retry_after
        .as_deref()
        .is_some_and(|s| s.parse::<i64>().unwrap() >= 1)));

    let key = shared_core::keys::login_throttle_account_ip(
        &app.keys.email(&a.email),
        &app.keys.ip(attacker),
    );
    let counter = ops_item(&w, &key).await.expect("the counter is stored");
    assert_eq!(
        n_attr(&counter, "failures"),
        Some(50),
        "every guess counted"
    );

    // The right password from that address waits too; from elsewhere it works.
    let r = call_from(
        &app,
        attacker,
        "POST",
        "/v1/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.body);
    let r = call_from(
        &app,
        "203.0.113.5",
        "POST",
        "/v1/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A verified user with TOTP on (secret, recovery codes) written straight to the tables.
async fn seed_mfa_user(w: &World, app: &App, who: &str) -> (User, Vec<u8>, Vec<String>) {
    let owner = seed_tenant(w, app, who).await;
    let secret = totp::new_secret();
    let (codes, hashes) = shared_accounts::auth::recovery::generate();
    let mut user = owner.clone();
    user.mfa = Mfa {
        enabled: true,
        secret: Some(totp::encode_base32(&secret)),
        pending_secret: None,
        last_step: None,
        recovery_hashes: hashes,
        ..Mfa::default()
    };
    put(w, user_item(&user)).await;
    (user, secret, codes)
}

/// Logins with the right password and `code`, each from its own address (so the per-address
/// throttles stay out of the way), all joined at once.
async fn concurrent_mfa_logins(app: &App, email: &str, codes: Vec<String>) -> Vec<Reply> {
    let attempts = codes.into_iter().enumerate().map(|(i, code)| {
        let email = email.to_string();
        async move {
            call_from(
                app,
                &format!("198.51.100.{}", 100 + i),
                "POST",
                "/v1/auth/login",
                json!({"email": email, "password": PASSWORD, "totp_code": code}),
            )
            .await
        }
    });
    join_all(attempts.collect()).await
}

#[tokio::test]
async fn one_recovery_code_sent_twenty_times_at_once_opens_one_session() {
    let (w, app) = world().await;
    let (user, _, codes) = seed_mfa_user(&w, &app, "recovery-race").await;
    let replies =
        concurrent_mfa_logins(&app, user.email.as_str(), vec![codes[0].clone(); 20]).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        replies
            .iter()
            .map(|r| (r.status, r.code().to_string()))
            .collect::<Vec<_>>()
    );
    // The others: the code was used, or (past the cap of tries in flight) not even checked.
    let refused: Vec<_> = replies
        .iter()
        .filter(|r| r.status != 200)
        .map(|r| (r.status, r.code()))
        .collect();
    assert!(
        refused
            .iter()
            .all(|c| *c == (401, "invalid_mfa_code") || *c == (403, "mfa_locked")),
        "{refused:?}"
    );
    assert!(
        refused.contains(&(401, "invalid_mfa_code")),
        "the code was checked more than once: {refused:?}"
    );
    let stored = app
        .store
        .user(&user.tenant_id, &user.user_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.mfa.recovery_hashes.len(),
        9,
        "exactly one code consumed"
    );
    // (19 failed second factors in a row may lock the account on the way: the cap at work.)
}

#[tokio::test]
async fn one_totp_code_sent_twenty_times_at_once_opens_one_session() {
    let (w, app) = world().await;
    let (user, secret, _) = seed_mfa_user(&w, &app, "totp-race").await;
    let code = totp::code_at(&secret, w.clock.now().unix_timestamp());
    let replies = concurrent_mfa_logins(&app, user.email.as_str(), vec![code; 20]).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        replies
            .iter()
            .map(|r| (r.status, r.code().to_string()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn ten_failed_second_factors_lock_the_account_until_a_password_reset() {
    let (w, app) = world().await;
    let (user, secret, codes) = seed_mfa_user(&w, &app, "mfa-cap").await;
    let email = user.email.as_str().to_string();
    let now = w.clock.now().unix_timestamp();
    let bad = wrong_code(&secret, now);

    // 15 wrong second factors at once: at most 10 are checked, then the account is locked.
    let replies = concurrent_mfa_logins(&app, &email, vec![bad.clone(); 15]).await;
    let checked = replies
        .iter()
        .filter(|r| (r.status, r.code()) == (401, "invalid_mfa_code"))
        .count();
    let locked = replies
        .iter()
        .filter(|r| (r.status, r.code()) == (403, "mfa_locked"))
        .count();
    assert_eq!(
        (checked, locked),
        (10, 5),
        "{:?}",
        replies
            .iter()
            .map(|r| (r.status, r.code().to_string()))
            .collect::<Vec<_>>()
    );

    // Locked: even the right password and the right code (or a recovery code) are refused.
    w.clock.advance(Duration::seconds(30));
    let good = totp::code_at(&secret, w.clock.now().unix_timestamp());
    let r = call_from(
        &app,
        "203.0.113.50",
        "POST",
        "/v1/auth/login",
        json!({"email": email, "password": PASSWORD, "totp_code": good}),
    )
    .await;
    assert_eq!((r.status, r.code()), (403, "mfa_locked"), "{}", r.body);
    let r = call_from(
        &app,
        "203.0.113.51",
        "POST",
        "/v1/auth/login",
        json!({"email": email, "password": PASSWORD, "totp_code": codes[0]}),
    )
    .await;
    assert_eq!((r.status, r.code()), (403, "mfa_locked"), "{}", r.body);
    // A wrong password still answers as a wrong password (nothing learnt without it).
    let r = call_from(
        &app,
        "203.0.113.52",
        "POST",
        "/v1/auth/login",
        json!({"email": email, "password": "Wrong-Guess-Number-1"}),
    )
    .await;
    assert_eq!((r.status, r.code()), (401, "invalid_credentials"));

    let locks: Vec<_> = emails_to(&email)
        .into_iter()
        .filter(|m| m.subject == "Your account is locked")
        .collect();
    assert_eq!(locks.len(), 1, "emailed once, on the first lock");
    assert!(
        locks[0].body.contains("/reset-password"),
        "{}",
        locks[0].body
    );
    assert_eq!(security_events(&w, "mfa_locked").await.len(), 1);

    // A password reset unlocks.
    let r = call(
        &app,
        "POST",
        "/v1/auth/password-reset",
        Some(json!({"email": email})),
        None,
    )
    .await;
    assert_eq!(r.status, 202);
    let token = link_token(&email, "Reset your password");
    let r = call(
        &app,
        "POST",
        "/v1/auth/password-reset/confirm",
        Some(json!({"token": token, "new_password": NEW_PASSWORD})),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    w.clock.advance(Duration::seconds(30));
    let good = totp::code_at(&secret, w.clock.now().unix_timestamp());
    let r = call_from(
        &app,
        "203.0.113.53",
        "POST",
        "/v1/auth/login",
        json!({"email": email, "password": NEW_PASSWORD, "totp_code": good}),
    )
    .await;
    assert_eq!(r.status, 200, "unlocked by the reset: {}", r.body);
}

/// Every role against every role, through both routes that give roles (an invitation and a role
/// change): a role is given only when the giver holds every permission it carries, and a refusal
/// is `403 role_not_assignable` (or `403 forbidden` for roles that cannot manage a team at all).
#[tokio::test]
async fn no_route_lets_a_role_give_a_permission_it_lacks() {
    let (w, app) = world().await;
    let boss = seed_tenant(&w, &app, "matrix-boss").await;
    let tenant = boss.tenant_id.clone();
    let holds_all = |actor: Role, target: Role| {
        shared_accounts::auth::permissions::Permission::ALL
            .into_iter()
            .all(|p| !allows(target, p) || allows(actor, p))
    };
    let mut checked = 0;
    for actor in Role::ALL {
        let who = if actor == Role::Owner {
            boss.clone()
        } else {
            seed_user(
                &w,
                &app,
                &tenant,
                actor,
                &format!("actor-{}", actor.as_str()),
            )
            .await
        };
        let token = minted_token(&w, &app, &who).await;
        for target in Role::ALL {
            // A member the actor may manage (a viewer), to change to `target`.
            let member = seed_user(
                &w,
                &app,
                &tenant,
                Role::Viewer,
                &format!("m-{}-{}", actor.as_str(), target.as_str()),
            )
            .await;
            let invite = call(
                &app,
                "POST",
                "/v1/team/invitations",
                Some(json!({"email": address(&w, &format!("inv-{}-{}", actor.as_str(), target.as_str())), "role": target.as_str()})),
                Some(&token),
            )
            .await;
            let change = call(
                &app,
                "PATCH",
                &format!("/v1/team/{}", member.user_id),
                Some(json!({"role": target.as_str()})),
                Some(&token),
            )
            .await;
            for (route, r, granted) in [
                ("invite", &invite, [201, 402].contains(&invite.status)),
                ("change", &change, change.status == 200),
            ] {
                if granted {
                    assert!(
                        holds_all(actor, target),
                        "{route}: {actor:?} gave {target:?}, a role with permissions it lacks"
                    );
                } else {
                    assert_eq!(r.status, 403, "{route} {actor:?} -> {target:?}: {}", r.body);
                    let expected = if allows(
                        actor,
                        shared_accounts::auth::permissions::Permission::TeamInvite,
                    ) {
                        "role_not_assignable"
                    } else {
                        "forbidden"
                    };
                    assert_eq!(r.code(), expected, "{route} {actor:?} -> {target:?}");
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * 5 * 5);
}

#[tokio::test]
async fn an_invitation_answers_the_same_for_a_registered_address_and_not_while_the_tenant_is_closed(
) {
    let (w, app) = world().await;
    let boss = seed_tenant(&w, &app, "inviter").await;
    let token = minted_token(&w, &app, &boss).await;
    let elsewhere = seed_tenant(&w, &app, "has-account").await;
    let invite = |email: String| {
        let (app, token) = (&app, token.clone());
        async move {
            call(
                app,
                "POST",
                "/v1/team/invitations",
                Some(json!({"email": email, "role": "viewer"})),
                Some(&token),
            )
            .await
        }
    };
    let fresh = address(&w, "fresh-invitee");
    let new_one = invite(fresh.clone()).await;
    let registered = invite(elsewhere.email.as_str().to_string()).await;
    assert_eq!(new_one.status, 201, "{}", new_one.body);
    assert_eq!(
        (registered.status, &registered.body),
        (new_one.status, &new_one.body),
        "no account enumeration"
    );
    // The holder is told instead, with no link that could join them to the team.
    let told = latest_email(elsewhere.email.as_str(), "Someone invited you to a team");
    assert!(
        infra::emulator::token_in(&told.body).is_none(),
        "{}",
        told.body
    );
    assert!(emails_to(elsewhere.email.as_str())
        .iter()
        .all(|m| m.subject != "You are invited to join a team"));
    let invitation = link_token(&fresh, "You are invited to join a team");

    // Closed: no invitation goes out, and none sent before is accepted.
    let r = call(
        &app,
        "DELETE",
        "/v1/tenant",
        Some(json!({"password": PASSWORD})),
        Some(&token),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = invite(address(&w, "after-closure")).await;
    assert_eq!((r.status, r.code()), (409, "tenant_closed"), "{}", r.body);
    assert!(emails_to(&address(&w, "after-closure")).is_empty());
    let r = call(
        &app,
        "POST",
        "/v1/auth/accept-invitation",
        Some(json!({"token": invitation, "password": NEW_PASSWORD, "name": "Late", "policy_version": POLICY_VERSION, "terms_version": TERMS_VERSION})),
        None,
    )
    .await;
    assert_eq!((r.status, r.code()), (409, "tenant_closed"), "{}", r.body);
    assert_eq!(
        login(&app, &fresh, NEW_PASSWORD, None).await.status,
        401,
        "no account made"
    );

    // Reactivated: the same invitation works again.
    let r = call(&app, "POST", "/v1/tenant/reactivate", None, Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(
        &app,
        "POST",
        "/v1/auth/accept-invitation",
        Some(json!({"token": invitation, "password": NEW_PASSWORD, "name": "Late", "policy_version": POLICY_VERSION, "terms_version": TERMS_VERSION})),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn a_reset_or_a_password_change_kills_every_other_reset_link() {
    let (w, app) = world().await;
    let a = seed_tenant(&w, &app, "two-links").await;
    let email = a.email.as_str().to_string();
    let ask = || {
        call(
            &app,
            "POST",
            "/v1/auth/password-reset",
            Some(json!({"email": email})),
            None,
        )
    };
    let confirm = |token: String, pw: &'static str| {
        let app = &app;
        async move {
            call(
                app,
                "POST",
                "/v1/auth/password-reset/confirm",
                Some(json!({"token": token, "new_password": pw})),
                None,
            )
            .await
        }
    };
    assert_eq!(ask().await.status, 202);
    let first = link_token(&email, "Reset your password");
    assert_eq!(ask().await.status, 202);
    let second = link_token(&email, "Reset your password");
    assert_ne!(first, second);
    assert_eq!(confirm(second, NEW_PASSWORD).await.status, 200);
    let r = confirm(first, "Another-Fine-Passw0rd").await;
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_token"),
        "the older link died with the reset"
    );

    // A password change kills an outstanding link too.
    assert_eq!(ask().await.status, 202);
    let pending = link_token(&email, "Reset your password");
    let me = login(&app, &email, NEW_PASSWORD, None).await;
    assert_eq!(me.status, 200, "{}", me.body);
    let r = call(
        &app,
        "POST",
        "/v1/me/password",
        Some(json!({"current_password": NEW_PASSWORD, "new_password": PASSWORD})),
        Some(&me.str("access_token")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = confirm(pending, "Another-Fine-Passw0rd").await;
    assert_eq!((r.status, r.code()), (400, "invalid_token"));
}

/// A login racing a password reset, on two threads at once, many times with the login started a
/// little earlier or later each round: whatever the interleaving, a session that login opened
/// with the old password can neither refresh nor write once the reset is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opened_in_a_race_with_a_password_reset_does_not_outlive_it() {
    let (w, app) = world().await;
    let app = std::sync::Arc::new(app);
    let a = seed_tenant(&w, &app, "racer").await;
    let email = a.email.as_str().to_string();
    let mut survivors = Vec::new();
    let mut logged_in = 0;
    for round in 0..16u64 {
        // An hour apart: an address receives at most 3 reset emails an hour (docs/mail.md).
        w.clock.advance(Duration::hours(1));
        let (pw, next) = if round % 2 == 0 {
            (PASSWORD, NEW_PASSWORD)
        } else {
            (NEW_PASSWORD, PASSWORD)
        };
        let r = call(
            &app,
            "POST",
            "/v1/auth/password-reset",
            Some(json!({"email": email})),
            None,
        )
        .await;
        assert_eq!(r.status, 202);
        let token = link_token(&email, "Reset your password");
        let (app1, app2, email1) = (app.clone(), app.clone(), email.clone());
        let login_task = tokio::spawn(async move {
            tokio::time::sleep(StdDuration::from_millis(round * 5)).await;
            call_from(
                &app1,
                &format!("203.0.113.{}", 10 + round),
                "POST",
                "/v1/auth/login",
                json!({"email": email1, "password": pw}),
            )
            .await
        });
        let reset_task = tokio::spawn(async move {
            tokio::time::sleep(StdDuration::from_millis(30)).await;
            call(
                &app2,
                "POST",
                "/v1/auth/password-reset/confirm",
                Some(json!({"token": token, "new_password": next})),
                None,
            )
            .await
        });
        let (l, reset) = (login_task.await.unwrap(), reset_task.await.unwrap());
        assert_eq!(reset.status, 200, "round {round}: {}", reset.body);
        if l.status != 200 {
            assert_eq!(l.status, 401, "round {round}: {}", l.body);
            continue;
        }
        logged_in += 1;
        let refreshed = refresh(&app, &l.str("refresh_token")).await;
        let wrote = patch_me(&app, &l.str("access_token")).await;
        if refreshed.status != 401 || wrote.status != 401 {
            survivors.push((round, refreshed.status, wrote.status));
        }
    }
    assert!(
        survivors.is_empty(),
        "sessions outlived the reset (round, refresh, write): {survivors:?}; {logged_in} logins won their race"
    );
}

/// An IPv6 subscriber holds a whole /64: guesses from six addresses of one /64 are one client's.
#[tokio::test]
async fn guesses_from_one_ipv6_slash_64_share_one_throttle() {
    let (w, app) = world().await;
    let a = seed_tenant(&w, &app, "v6-target").await;
    let email = a.email.as_str().to_string();
    for i in 1..=5 {
        let r = call_from(
            &app,
            &format!("2001:db8:77:1::{i:x}"),
            "POST",
            "/v1/auth/login",
            json!({"email": email, "password": "Wrong-Guess-Number-1"}),
        )
        .await;
        assert_eq!(
            (r.status, r.code()),
            (401, "invalid_credentials"),
            "guess {i}"
        );
    }
    let r = call_from(
        &app,
        "2001:db8:77:1:ffff:1:2:3",
        "POST",
        "/v1/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        r.status, 429,
        "another address of the /64 waits too: {}",
        r.body
    );
    // The next /64 is another client; so is the IPv4-mapped form of another address.
    let r = call_from(
        &app,
        "2001:db8:77:2::1",
        "POST",
        "/v1/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Writes compare the session's credential epoch with the user's, so a session that a change of
/// credentials did not get to end (its revocation lost, or never found) still cannot write.
#[tokio::test]
async fn a_session_behind_the_users_credential_epoch_can_neither_write_nor_refresh() {
    let (w, app) = world().await;
    let a = owner(&w, &app, "stale-epoch").await;
    assert_eq!(patch_me(&app, &a.access).await.status, 200);
    // A credential change whose session revocation never happened.
    app.store
        .bump_epoch(&a.user.tenant_id, &a.user.user_id)
        .await
        .unwrap();
    let r = patch_me(&app, &a.access).await;
    assert_eq!((r.status, r.code()), (401, "session_ended"), "{}", r.body);
    let r = refresh(&app, &a.refresh).await;
    assert_eq!(r.status, 401, "{}", r.body);
    // A new login is under the new epoch and writes.
    let b = sign_in(&app, &a.user).await;
    assert_eq!(patch_me(&app, &b.access).await.status, 200);
}

/// Sets or clears a user's restriction as the dsar-worker does (`restricted`, `restricted_at`;
/// a lift removes both).
async fn set_restricted(w: &World, user: &User, on: bool) {
    use aws_sdk_dynamodb::types::AttributeValue;
    let k = shared_core::keys::user(&user.tenant_id, &user.user_id);
    let req = w
        .clients
        .dynamo
        .update_item()
        .table_name(w.table("TenantsTable"))
        .key("pk", AttributeValue::S(k.pk))
        .key("sk", AttributeValue::S(k.sk));
    let req = if on {
        req.update_expression("SET restricted = :t, restricted_at = :at")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":at", AttributeValue::S("2026-01-01T00:00:00Z".into()))
    } else {
        req.update_expression("REMOVE restricted, restricted_at")
    };
    req.send().await.unwrap();
}

/// GDPR Art. 18 on account data: a user who obtained the restriction of their account data
/// keeps it as it is: their profile cannot be edited, and neither can an owner or admin change
/// their role or remove them, until the restriction is lifted (`409 account_restricted`,
/// nothing changed). They still sign in, read their data and use their own rights.
#[tokio::test]
async fn a_restricted_account_is_read_only_until_the_restriction_is_lifted() {
    let (w, app) = world().await;
    let boss = owner(&w, &app, "boss").await;
    let tenant = boss.user.tenant_id.clone();
    let member = teammate(&w, &app, &tenant, Role::Member, "restricted").await;
    set_restricted(&w, &member.user, true).await;
    let store = AccountStore::new(w.clients.dynamo.clone(), app.store.tables().clone(), 180);
    let name_of = || async {
        store
            .user(&tenant, &member.user.user_id)
            .await
            .unwrap()
            .expect("the user")
            .name
    };
    let before = name_of().await;

    let r = call(
        &app,
        "PATCH",
        "/v1/me",
        Some(json!({"name": "Changed Name"})),
        Some(&member.access),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (409, "account_restricted"),
        "{}",
        r.body
    );
    let path = format!("/v1/team/{}", member.user.user_id);
    let r = call(
        &app,
        "PATCH",
        &path,
        Some(json!({"role": "viewer"})),
        Some(&boss.access),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (409, "account_restricted"),
        "{}",
        r.body
    );
    let r = call(&app, "DELETE", &path, None, Some(&boss.access)).await;
    assert_eq!(
        (r.status, r.code()),
        (409, "account_restricted"),
        "{}",
        r.body
    );
    let kept = store
        .user(&tenant, &member.user.user_id)
        .await
        .unwrap()
        .expect("still a member");
    assert_eq!((kept.name, kept.role), (before.clone(), Role::Member));
    // Their own use and rights go on: sign in, read the profile.
    let again = sign_in(&app, &member.user).await;
    let me = get_me(&app, &again.access).await;
    assert_eq!(me.status, 200);

    // Lifted: the profile is theirs to change again.
    set_restricted(&w, &member.user, false).await;
    let r = call(
        &app,
        "PATCH",
        "/v1/me",
        Some(json!({"name": "Changed Name"})),
        Some(&again.access),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(name_of().await, "Changed Name");
}

// ---------------------------------------------------------------- policy versions

/// The user item of the account `email` signed up, read straight from the table.
async fn user_item_of(w: &World, email: &str) -> Option<Item> {
    w.items_with_sk_prefix("TenantsTable", "USER#")
        .await
        .into_iter()
        .find(|it| s(it, "email").is_some_and(|e| e.eq_ignore_ascii_case(email)))
}

#[tokio::test]
async fn signup_records_the_accepted_versions_and_refuses_others() {
    let (w, app) = world().await;
    assert_eq!(
        (
            app.settings.policy.policy.as_str(),
            app.settings.policy.terms.as_str()
        ),
        (POLICY_VERSION, TERMS_VERSION),
        "the suites accept the versions the template puts in force"
    );
    let r = call(&app, "GET", "/v1/auth/policy-versions", None, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"policy_version": POLICY_VERSION, "terms_version": TERMS_VERSION})
    );

    // Without a statement of acceptance, or accepting another version: refused, nothing kept.
    let email = address(&w, "accepting");
    let body = |p: &str, t: &str| {
        json!({"email": email, "password": PASSWORD, "name": "Ada", "business_name": "Ada Ltd",
               "policy_version": p, "terms_version": t})
    };
    let r = call(
        &app,
        "POST",
        "/v1/auth/signup",
        Some(json!({"email": email, "password": PASSWORD, "name": "Ada", "business_name": "Ada Ltd"})),
        None,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    for (p, t) in [("2020-01-01", TERMS_VERSION), (POLICY_VERSION, "0")] {
        let r = call(&app, "POST", "/v1/auth/signup", Some(body(p, t)), None).await;
        assert_eq!(
            (r.status, r.code()),
            (409, "policy_version_outdated"),
            "{}",
            r.body
        );
    }
    assert!(user_item_of(&w, &email).await.is_none(), "nothing stored");
    assert!(emails_to(&email).is_empty(), "nothing sent");

    // Accepting the versions in force: recorded on the user, with the time and how.
    let r = call(
        &app,
        "POST",
        "/v1/auth/signup",
        Some(body(POLICY_VERSION, TERMS_VERSION)),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let user = user_item_of(&w, &email).await.expect("the user");
    let now = shared_core::clock::rfc3339(w.clock.now());
    assert_eq!(s(&user, "policy_version"), Some(POLICY_VERSION));
    assert_eq!(s(&user, "terms_version"), Some(TERMS_VERSION));
    assert_eq!(s(&user, "policy_accepted_at"), Some(now.as_str()));
    assert_eq!(s(&user, "terms_accepted_at"), Some(now.as_str()));
    let history = user["policy_acceptances"]
        .as_l()
        .expect("the acceptance history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].as_m().unwrap()["via"].as_s().unwrap(), "signup");

    // The account view shows it, nothing due.
    let verify = link_token(&email, "Confirm your email address");
    let r = call(
        &app,
        "POST",
        "/v1/auth/verify-email",
        Some(json!({"token": verify})),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let access = login(&app, &email, PASSWORD, None)
        .await
        .str("access_token");
    let me = get_me(&app, &access).await;
    assert_eq!(
        me.body["policy"],
        json!({
            "accepted_policy_version": POLICY_VERSION,
            "policy_accepted_at": now,
            "accepted_terms_version": TERMS_VERSION,
            "terms_accepted_at": now,
            "current_policy_version": POLICY_VERSION,
            "current_terms_version": TERMS_VERSION,
            "reacceptance_due": false,
        })
    );
}

#[tokio::test]
async fn a_user_re_accepts_the_versions_in_force_and_only_those() {
    let (w, app) = world().await;
    // A member written before versions were recorded: asked to accept.
    let a = teammate(
        &w,
        &app,
        &owner(&w, &app, "reaccept-owner").await.user.tenant_id,
        Role::Viewer,
        "reaccepting",
    )
    .await;
    let (user, access) = (a.user, a.access);
    let me = get_me(&app, &access).await;
    assert_eq!(me.body["policy"]["reacceptance_due"], true, "{}", me.body);
    assert_eq!(me.body["policy"]["accepted_policy_version"], Value::Null);

    async fn accept(app: &App, access: &str, p: &str, t: &str) -> Reply {
        let body = json!({"policy_version": p, "terms_version": t});
        call(
            app,
            "POST",
            "/v1/me/policy-acceptance",
            Some(body),
            Some(access),
        )
        .await
    }
    let r = accept(&app, &access, "1999", TERMS_VERSION).await;
    assert_eq!(
        (r.status, r.code()),
        (409, "policy_version_outdated"),
        "{}",
        r.body
    );
    let r = call(
        &app,
        "POST",
        "/v1/me/policy-acceptance",
        Some(json!({"policy_version": POLICY_VERSION})),
        Some(&access),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let stored = || async {
        w.items_with_sk_prefix("TenantsTable", "USER#")
            .await
            .into_iter()
            .find(|it| s(it, "user_id") == Some(user.user_id.as_str()))
            .expect("the user")
    };
    assert!(
        !stored().await.contains_key("policy_version"),
        "nothing recorded"
    );

    let r = accept(&app, &access, POLICY_VERSION, TERMS_VERSION).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["reacceptance_due"], false, "{}", r.body);
    assert_eq!(r.body["accepted_policy_version"], POLICY_VERSION);
    // Sent again (a retry): the same answer, one acceptance on record.
    let r = accept(&app, &access, POLICY_VERSION, TERMS_VERSION).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let it = stored().await;
    assert_eq!(it["policy_acceptances"].as_l().unwrap().len(), 1);

    // The policy changes (a new deploy): due again; the old version is refused now.
    let mut next = w.auth_app().await.expect("auth app");
    next.settings.policy.policy = "2027-02-01".into();
    let me = get_me(&next, &access).await;
    assert_eq!(me.body["policy"]["reacceptance_due"], true, "{}", me.body);
    assert_eq!(me.body["policy"]["current_policy_version"], "2027-02-01");
    let r = accept(&next, &access, POLICY_VERSION, TERMS_VERSION).await;
    assert_eq!((r.status, r.code()), (409, "policy_version_outdated"));
    let r = accept(&next, &access, "2027-02-01", TERMS_VERSION).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["reacceptance_due"], false);
    let it = stored().await;
    assert_eq!(s(&it, "policy_version"), Some("2027-02-01"));
    let history = it["policy_acceptances"].as_l().unwrap();
    assert_eq!(history.len(), 2, "both acceptances kept as proof");
    assert_eq!(
        history[1].as_m().unwrap()["via"].as_s().unwrap(),
        "reacceptance"
    );
}

/// Tests and `make dev` start at once against one emulator: callers racing to create the local
/// secrets (token keys, the Stripe secrets) all succeed, each parameter keeps one value, and
/// the functions start on them. Before, a caller that lost the race (or whose own request was
/// sent again after a lost answer) failed with ParameterAlreadyExists.
#[tokio::test]
async fn callers_racing_to_create_the_local_secrets_all_succeed() {
    let w = World::new().await.expect("test world");
    let ses = infra::emulator::sesv2_client(&w.endpoint);
    let raced = join_all(
        (0..8)
            .map(|_| infra::seed::ensure_secrets(&w.direct, &ses, &w.template))
            .collect(),
    )
    .await;
    for r in &raced {
        r.as_ref().expect("every racing caller succeeds");
    }
    let auth = w.auth_app().await.expect("auth starts on the raced keys");
    // The public keys publish the stored private key (what auth's init requires).
    auth.verifier
        .require_published(&auth.signer)
        .expect("the signing key is published");
}
