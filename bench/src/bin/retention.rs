//! Retention cost: DynamoDB requests and items read (the responses' ScannedCount) of one daily
//! run, counted on the wire by `shared::metering` (never the emulator's time: moto's own cost
//! grows with the table, real DynamoDB's does not).
//!
//! Two worlds, each seeded with BatchWriteItem: 1,000 expired security events among 1,000 live
//! ones, and 1,000 expired among `RETENTION_BENCH_LIVE` (default 100,000) live ones. Goals: items
//! read per item deleted ≤ 1.2; the large world within 1.2× of the small one (the cost follows
//! what expires, not what is stored; no Scan); write requests per item deleted ≤ 1/20.
//!
//! `cargo run --release -p bench --bin retention` (or `make bench`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use integration_tests::{emulator_endpoint, World};
use retention_cleanup::config::Config;
use retention_cleanup::{App, Limits};
use shared::accounts::SecurityEvent;
use shared::clock::{rfc3339, FixedClock, UlidGenerator};
use shared::config::Env;
use shared::domain::TenantId;
use shared::dynamo::{AccountStore, AccountTables};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const EXPIRED: usize = 1_000;
const RUN_AT: OffsetDateTime = datetime!(2026-11-30 03:00 UTC);

struct Figures {
    live: usize,
    deleted: u64,
    requests: usize,
    operations: BTreeMap<String, usize>,
    items_read: u64,
    write_requests: usize,
    seed_secs: f64,
}

async fn seed(w: &World, live: usize) -> anyhow::Result<f64> {
    let store = AccountStore::new(
        w.clients.dynamo.clone(),
        AccountTables {
            tenants: w.table("TenantsTable"),
            security_log: w.table("SecurityLogTable"),
            ops: w.table("OpsTable"),
        },
        180,
    );
    let tenants: Vec<TenantId> = (0..50)
        .map(|i| TenantId::parse(&format!("bench-{i}")))
        .collect::<Result<_, _>>()?;
    let event = |i: usize, at: OffsetDateTime| {
        let e = SecurityEvent {
            tenant_id: Some(tenants[i % tenants.len()].clone()),
            event: "login_succeeded",
            user_id: None,
            actor_user_id: None,
            session_id: None,
            ip_hash: Some(format!("{i:016x}")),
            email_hash: None,
            detail: None,
            at,
        };
        store.event_item(&e, &format!("ev{i:07}"))
    };
    let mut items = Vec::with_capacity(EXPIRED + live);
    // Expired: written 180 days and 4 hours before the run (03:00), so their period ended the
    // evening before and they are due on the run's day.
    let old = RUN_AT - Duration::days(180) - Duration::hours(4);
    for i in 0..EXPIRED {
        items.push(event(i, old + Duration::seconds(i as i64 % 3000)));
    }
    // Live: written over the 179 days before the run (their buckets are later days).
    for i in 0..live {
        let age = Duration::seconds((i as i64 * 15_461) % (179 * 86_400));
        items.push(event(EXPIRED + i, RUN_AT - age));
    }
    let table = w.table("SecurityLogTable");
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for chunk in items.chunks(25) {
        let requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|it| {
                PutRequest::builder()
                    .set_item(Some(it.clone()))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
            })
            .collect::<Result<_, _>>()?;
        let (client, table) = (w.clients.dynamo.clone(), table.clone());
        set.spawn(async move {
            let mut pending = requests;
            while !pending.is_empty() {
                let out = client
                    .batch_write_item()
                    .request_items(&table, pending)
                    .send()
                    .await?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&table))
                    .unwrap_or_default();
            }
            anyhow::Ok(())
        });
        while set.len() >= 8 {
            if let Some(r) = set.join_next().await {
                r??;
            }
        }
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn measure(live: usize) -> anyhow::Result<Figures> {
    let w = World::new().await?;
    let seed_secs = seed(&w, live).await?;
    let env =
        infra::local::local_function_env(&w.template, "retention-cleanup", emulator_endpoint())?;
    let mut config = Config::from_env(&Env::from_pairs(env))?;
    // The daily run: every earlier day is done, so it sweeps its own day only.
    config.settings.catch_up_days = 0;
    let meter = w.meter();
    let app = App {
        dynamo: meter.instrument(&w.clients.dynamo),
        s3: w.clients.s3.clone(),
        tables: config.tables,
        buckets: config.buckets,
        key: w.key.clone(),
        clock: Arc::new(FixedClock::new(RUN_AT)),
        ids: Arc::new(UlidGenerator),
        settings: config.settings,
    };
    let event = serde_json::json!({"time": rfc3339(RUN_AT), "detail": {}});
    // The run's log lines and metrics stay in memory (the figures are printed below).
    let (_logs, guard) = shared::telemetry::capture();
    let report = retention_cleanup::handle(&app, &event, Limits::default()).await;
    drop(guard);
    anyhow::ensure!(report["status"] == "completed", "run: {report}");
    let usage = meter.usage(&w.clients.dynamo).await?;
    let mut operations = BTreeMap::new();
    for op in &usage.operations {
        *operations.entry(op.clone()).or_insert(0) += 1;
    }
    let write_requests = ["BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem"]
        .iter()
        .map(|op| usage.count(op))
        .sum();
    let deleted = report["rules"]["security-log"]["deleted"]
        .as_u64()
        .unwrap_or(0);
    anyhow::ensure!(deleted == EXPIRED as u64, "deleted {deleted}: {report}");
    Ok(Figures {
        live,
        deleted,
        requests: usage.requests(),
        operations,
        items_read: usage.items_read,
        write_requests,
        seed_secs,
    })
}

fn print(f: &Figures) {
    println!(
        "  {:>6} expired among {:>7} live: {} requests {:?}, {} items read ({:.3} per deleted), \
         {} write requests ({:.4} per deleted); seeded in {:.0} s",
        f.deleted,
        f.live,
        f.requests,
        f.operations,
        f.items_read,
        f.items_read as f64 / f.deleted as f64,
        f.write_requests,
        f.write_requests as f64 / f.deleted as f64,
        f.seed_secs
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let live: usize = std::env::var("RETENTION_BENCH_LIVE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    println!("retention: one daily run (security-log rule), counted on the wire");
    let small = measure(EXPIRED).await?;
    print(&small);
    let large = measure(live).await?;
    print(&large);
    let per_deleted = large.items_read as f64 / large.deleted as f64;
    let read_ratio = large.items_read as f64 / small.items_read.max(1) as f64;
    let request_ratio = large.requests as f64 / small.requests.max(1) as f64;
    let writes = large.write_requests as f64 / large.deleted as f64;
    let scans = large.operations.get("Scan").copied().unwrap_or(0)
        + small.operations.get("Scan").copied().unwrap_or(0);
    let verdict = |ok: bool| if ok { "goal met" } else { "GOAL MISSED" };
    println!(
        "  items read per item deleted: {per_deleted:.3} (goal <= 1.2: {})",
        verdict(per_deleted <= 1.2)
    );
    println!(
        "  {live} live vs {EXPIRED} live: items read x{read_ratio:.3}, requests x{request_ratio:.3} \
         (goal <= 1.2: {}); Scan requests: {scans} ({})",
        verdict(read_ratio <= 1.2 && request_ratio <= 1.2),
        verdict(scans == 0)
    );
    println!(
        "  write requests per item deleted: {writes:.4} (goal <= 0.05: {})",
        verdict(writes <= 0.05)
    );
    Ok(())
}
