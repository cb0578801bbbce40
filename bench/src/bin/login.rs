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
use shared_accounts::dynamo::{login_item, user_item};
use shared_accounts::{Mfa, User};
use shared_core::domain::{Email, UserId};

const ROUNDS: usize = 12;
const PASSWORD: &str = "correct horse battery staple 42";

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
    let table = w.table("TenantsTable");
    for item in [
        shared_accounts::dynamo::tenant_item(&tenant),
        user_item(&user),
        login_item(&w.key.email(&email), &w.tenant, &user.user_id),
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

    // Warm both paths once (connection pool, the dummy hash's one-off setup).
    let _ = auth::handle(&app, api_event("POST", "/v1/auth/login", Some(&body), None)).await;
    password::verify_password(PASSWORD, &user.password_hash);

    let (mut logins, mut hashes) = (Vec::new(), Vec::new());
    let mut token = String::new();
    for _ in 0..ROUNDS {
        // Interleaved, so both see the same machine load.
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
    }
    let (login, hash) = (median(logins), median(hashes));

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
    Ok(())
}
