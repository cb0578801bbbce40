//! Login cost: the login handler's time as a ratio to one argon2id verification at the configured
//! parameters, measured in the same run (goal ≤ 1.2×: the hash is the cost, nothing else is), and
//! the DynamoDB requests of a login and of an authenticated request, counted on the wire.
//!
//! `cargo run --release -p bench --bin login` (or `make bench`). The emulator's latency is
//! included in the handler's time, which makes the ratio an upper bound of what DynamoDB gives.

use std::time::{Duration, Instant};

use integration_tests::{api_event, response_json, World};
use serde_json::json;
use shared_accounts::auth::password;
use shared_accounts::auth::permissions::Role;
use shared_accounts::dynamo::{login_item_of, user_item, Write};
use shared_accounts::{Mfa, User};
use shared_core::domain::{Email, UserId};

const ROUNDS: usize = 12;
const PASSWORD: &str = "correct horse battery staple 42";

/// An argon2id PHC string of `password` at the smallest parameters argon2 allows.
fn cheap_hash(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(8, 1, 1, None).map_err(anyhow::Error::msg)?;
    let salt = SaltString::encode_b64(b"bench-cheap-salt").map_err(anyhow::Error::msg)?;
    Ok(
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .map_err(anyhow::Error::msg)?
            .to_string(),
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let w = World::new().await?;
    let app = w.auth_app().await?;
    let email = Email::parse("bench.login@example.com").map_err(anyhow::Error::msg)?;
    let user = User {
        user_id: UserId::parse("us-bench")?,
        tenant_id: w.tenant.clone(),
        email: email.clone(),
        name: "Bench".into(),
        phone: None,
        role: Role::Owner,
        password_hash: password::hash_password(PASSWORD)?,
        email_verified: true,
        created_at: time::OffsetDateTime::now_utc(),
        mfa: Mfa::default(),
        last_login: None,
        policy: None,
    };
    let tenant = shared_accounts::Tenant {
        tenant_id: w.tenant.clone(),
        business_name: "Bench Co".into(),
        status: shared_core::domain::TenantStatus::Active,
        owner_user_id: user.user_id.clone(),
        created_at: user.created_at,
        closed_at: None,
        erase_after: None,
    };
    // The same login without its cost: a user whose hash is argon2id at the smallest
    // parameters (8 KiB, one pass), microseconds to verify. What its login takes is what a login
    // takes besides the hash (the emulator's round trips, the handler's own work).
    let cheap_email = Email::parse("bench.cheap@example.com").map_err(anyhow::Error::msg)?;
    let cheap = User {
        user_id: UserId::parse("us-bench-cheap")?,
        email: cheap_email.clone(),
        password_hash: cheap_hash(PASSWORD)?,
        ..user.clone()
    };
    let table = w.table("TenantsTable");
    for item in [
        shared_accounts::dynamo::tenant_item(&tenant),
        user_item(&user),
        login_item_of(&w.key.email(&email), &user),
        user_item(&cheap),
        login_item_of(&w.key.email(&cheap_email), &cheap),
    ] {
        w.clients
            .dynamo
            .put_item()
            .table_name(&table)
            .set_item(Some(item))
            .send()
            .await?;
    }
    let body = json!({"email": email.as_str(), "password": PASSWORD});
    let cheap_body = json!({"email": cheap_email.as_str(), "password": PASSWORD});

    // Warm every path once (connection pool, the argon2 buffer).
    let _ = auth::handle(&app, api_event("POST", "/v1/auth/login", Some(&body), None)).await;
    let _ = auth::handle(
        &app,
        api_event("POST", "/v1/auth/login", Some(&cheap_body), None),
    )
    .await;
    password::verify_password(PASSWORD, &user.password_hash);

    let (mut logins, mut hashes, mut rests) = (Vec::new(), Vec::new(), Vec::new());
    let mut token = String::new();
    for _ in 0..ROUNDS {
        // Interleaved, so all see the same machine load.
        let t = Instant::now();
        assert!(password::verify_password(PASSWORD, &user.password_hash));
        hashes.push(t.elapsed());
        let t = Instant::now();
        let resp = auth::handle(&app, api_event("POST", "/v1/auth/login", Some(&body), None)).await;
        logins.push(t.elapsed());
        assert_eq!(resp.status(), 200, "{}", response_json(&resp));
        token = response_json(&resp)["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let t = Instant::now();
        let resp = auth::handle(
            &app,
            api_event("POST", "/v1/auth/login", Some(&cheap_body), None),
        )
        .await;
        rests.push(t.elapsed());
        assert_eq!(resp.status(), 200, "{}", response_json(&resp));
    }
    let (login, hash, rest) = (median(logins), median(hashes), median(rests));

    // The two requests a login waits for besides the hash, sent on their own: the read of the
    // login index with the throttle counters, and a transaction of the login's shape (the
    // session, the user's update, the security event, one counter deleted and two given back).
    let bidx = w.key.email(&email);
    let ip = w.key.ip("203.0.113.20");
    let counters: Vec<_> = auth::throttle::counters_for(&bidx, Some(&ip))
        .into_iter()
        .map(|c| c.key)
        .collect();
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let t = Instant::now();
        app.store.login_account(&bidx, &counters).await?;
        reads.push(t.elapsed());
        let now = time::OffsetDateTime::now_utc();
        for k in &counters {
            app.store
                .reserve_attempt(k, now, time::Duration::minutes(15))
                .await?;
        }
        let session = shared_accounts::Session {
            session_id: shared_core::domain::SessionId::parse(&format!("se-bench-{round}"))?,
            user_id: user.user_id.clone(),
            tenant_id: user.tenant_id.clone(),
            refresh_hash: "bench".into(),
            previous_hashes: vec![],
            created_at: now,
            last_used_at: now,
            idle_expires_at: now + time::Duration::days(7),
            absolute_expires_at: now + time::Duration::days(30),
            revoked_at: None,
            ip: None,
            user_agent: None,
        };
        let mut event = shared_accounts::SecurityEvent::new("login_succeeded", now);
        event.tenant_id = Some(user.tenant_id.clone());
        let tables = app.store.tables().clone();
        let give_back = auth::throttle::give_back_write;
        let batch = vec![
            (
                tables.tenants.as_str(),
                Write::Put(
                    shared_accounts::dynamo::session_item(&session),
                    Some("attribute_not_exists(pk)"),
                ),
            ),
            (
                tables.tenants.as_str(),
                Write::Update {
                    key: shared_core::keys::user(&user.tenant_id, &user.user_id),
                    update: "SET last_login_at = :at ADD live_sessions :sid".into(),
                    condition: Some("attribute_exists(pk)".into()),
                    values: vec![
                        (":at".into(), shared_core::dynamo::timestamp(now)),
                        (
                            ":sid".into(),
                            shared_core::dynamo::AttributeValue::Ss(vec![session
                                .session_id
                                .to_string()]),
                        ),
                    ],
                    names: vec![],
                },
            ),
            (
                tables.security_log.as_str(),
                Write::Put(
                    app.store.event_item(&event, &format!("bench-{round}")),
                    None,
                ),
            ),
            (
                tables.ops.as_str(),
                Write::Delete(counters[0].clone(), None),
            ),
            (tables.ops.as_str(), give_back(&counters[1])),
            (tables.ops.as_str(), give_back(&counters[2])),
        ];
        let t = Instant::now();
        app.store
            .transact(batch)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        writes.push(t.elapsed());
    }
    let (read, write) = (median(reads), median(writes));

    // Requests per login and per authenticated request, counted by the DynamoDB meter.
    let meter = w.meter();
    let metered = auth::App {
        store: shared_accounts::dynamo::AccountStore::new(
            meter.instrument(&w.clients.dynamo),
            app.store.tables().clone(),
            app.settings.security_log_days,
        ),
        ..app
    };
    meter.reset();
    let resp = auth::handle(
        &metered,
        api_event("POST", "/v1/auth/login", Some(&body), None),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let login_ops = meter.usage(&w.clients.dynamo).await?.operations;
    meter.reset();
    let resp = auth::handle(&metered, api_event("GET", "/v1/me", None, Some(&token))).await;
    assert_eq!(resp.status(), 200);
    let read_ops = meter.usage(&w.clients.dynamo).await?.operations;
    meter.reset();
    let patch = json!({"name": "Bench Two"});
    let resp = auth::handle(
        &metered,
        api_event("PATCH", "/v1/me", Some(&patch), Some(&token)),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let write_ops = meter.usage(&w.clients.dynamo).await?.operations;

    println!("login benchmark ({ROUNDS} rounds, medians, same run)");
    println!(
        "  argon2id verify (m=19 MiB, t=2, p=1): {:>8.1} ms",
        hash.as_secs_f64() * 1e3
    );
    println!(
        "  login handler (emulator included):     {:>8.1} ms",
        login.as_secs_f64() * 1e3
    );
    println!(
        "  ratio login / hash:                    {:>8.2}x   (goal <= 1.2x)",
        login.as_secs_f64() / hash.as_secs_f64()
    );
    println!(
        "  a login but its hash (cheapest argon2): {:>7.1} ms",
        rest.as_secs_f64() * 1e3
    );
    println!(
        "  its read and its write on their own:    {:>7.1} ms + {:.1} ms: (hash + both) / hash = {:.2}x",
        read.as_secs_f64() * 1e3,
        write.as_secs_f64() * 1e3,
        (hash + read + write).as_secs_f64() / hash.as_secs_f64()
    );
    println!(
        "  DynamoDB requests per login:           {} {:?}",
        login_ops.len(),
        login_ops
    );
    println!(
        "  per authenticated GET /v1/me:          {} {:?}",
        read_ops.len(),
        read_ops
    );
    println!(
        "  per authenticated PATCH /v1/me:        {} {:?}",
        write_ops.len(),
        write_ops
    );
    println!("  (authentication itself: 0 for a read, 1 session GetItem for a write)");
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    bench::figures::store(
        "login",
        serde_json::json!({
            "rounds": ROUNDS,
            "verify_ms": ms(hash),
            "login_ms": ms(login),
            "login_without_hash_ms": ms(rest),
            "read_ms": ms(read),
            "write_ms": ms(write),
            "login_requests": login_ops,
            "me_requests": read_ops,
            "patch_me_requests": write_ops,
        }),
    )
}
