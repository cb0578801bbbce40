//! Retention cost: DynamoDB requests and items read (the responses' ScannedCount) of one daily
//! run, counted on the wire by `shared_core::metering` (never the emulator's time: moto's own cost
//! grows with the table, real DynamoDB's does not).
//!
//! Two rules, each in two worlds seeded with BatchWriteItem:
//! - security-log: 1,000 expired security events among 1,000 live ones, and among
//!   `RETENTION_BENCH_LIVE` (default 100,000) live ones;
//! - tech-data: 1,000 submissions (each its own lead) whose technical data expires, among 1,000
//!   and among `RETENTION_BENCH_LIVE` live ones, with 5 leads under legal hold (registered the
//!   documented way: the lead's `legal_hold` and the holds registry);
//! - billing: 1,000 invoices at their legal end among 1,000 and among `RETENTION_BENCH_LIVE`
//!   later ones, 5 of the later ones under legal hold (registered likewise).
//!
//! Goals (issue 7): items read per item cleaned ≤ 1.2; the large world within 1.2× of the small
//! one (the cost follows what expires, not what is stored; no Scan); for deletes, write
//! requests per item deleted ≤ 1/20 for the batched deletes (security-log; technical data is an
//! attribute removal: one UpdateItem per submission, DynamoDB has no batched update; billing
//! records go by one conditional DeleteItem each, so a hold on the record always wins).
//!
//! `cargo run --release -p bench --bin retention` (or `make bench`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use integration_tests::{emulator_endpoint, World};
use retention_cleanup::config::Config;
use retention_cleanup::{App, Limits};
use shared_accounts::dynamo::{AccountStore, AccountTables};
use shared_accounts::SecurityEvent;
use shared_core::clock::{rfc3339, FixedClock, UlidGenerator};
use shared_core::config::Env;
use shared_core::domain::{LeadId, SubmissionId, TenantId};
use shared_core::dynamo::{s, Item};
use shared_core::keys;
use shared_core::retention::{self, rule};
use shared_privacy::legal_holds::{self, HeldItem, HoldKind};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const EXPIRED: usize = 1_000;
const RUN_AT: OffsetDateTime = datetime!(2026-11-30 03:00 UTC);
/// Leads under legal hold in the technical-data worlds (registry entries read by the run).
const HELD_LEADS: usize = 5;

struct Figures {
    rule: &'static str,
    live: usize,
    deleted: u64,
    requests: usize,
    operations: BTreeMap<String, usize>,
    items_read: u64,
    write_requests: usize,
    seed_secs: f64,
}

async fn seed_security_log(w: &World, live: usize) -> anyhow::Result<f64> {
    let store = AccountStore::new(
        w.clients.dynamo.clone(),
        AccountTables {
            tenants: w.table("TenantsTable"),
            security_log: w.table("SecurityLogTable"),
            ops: w.table("OpsTable"),
        },
        180,
    );
    let tenants = tenants()?;
    let event = |i: usize, at: OffsetDateTime| {
        let e = SecurityEvent {
            tenant_id: Some(tenants[i % tenants.len()].clone()),
            event: "login_succeeded",
            user_id: None,
            actor_user_id: None,
            session_id: None,
            api_key_id: None,
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
    write_all(w, "SecurityLogTable", items).await
}

fn tenants() -> anyhow::Result<Vec<TenantId>> {
    Ok((0..50)
        .map(|i| TenantId::parse(&format!("bench-{i}")))
        .collect::<Result<_, _>>()?)
}

/// `n` leads with one submission each, whose technical data is last kept on the day `day(i)`.
/// The shard is lead intake's (a hash of the submission id).
fn submissions(
    from: usize,
    n: usize,
    day: impl Fn(usize) -> time::Date,
) -> anyhow::Result<Vec<(keys::Key, Item, Item)>> {
    let tenants = tenants()?;
    let mut out = Vec::with_capacity(n);
    for i in from..from + n {
        let t = &tenants[i % tenants.len()];
        let lead = LeadId::parse(&format!("ld{i:07}"))?;
        let sub = SubmissionId::parse(&format!("sb{i:07}"))?;
        let lead_key = keys::lead(t, &lead);
        let mut lead_item = shared_core::dynamo::key_item(&lead_key);
        lead_item.insert("tenant_id".into(), s(t.as_str()));
        let mut sub_item = shared_core::dynamo::key_item(&keys::submission(t, &lead, &sub));
        sub_item.insert("tenant_id".into(), s(t.as_str()));
        sub_item.insert("ip".into(), s(format!("203.0.113.{}", i % 250)));
        sub_item.insert("user_agent".into(), s("Mozilla/5.0 (bench)"));
        sub_item.insert("referrer".into(), s("https://example.com/"));
        sub_item.insert("page_url".into(), s("https://example.com/contact"));
        let shard = sub
            .as_str()
            .bytes()
            .fold(0u32, |acc, b| acc.wrapping_mul(31).wrapping_add(b as u32))
            % keys::TECH_EXPIRY_SHARDS;
        sub_item.insert(
            "tech_exp".into(),
            s(keys::tech_expiry_partition(&day(i).to_string(), shard)),
        );
        out.push((lead_key, lead_item, sub_item));
    }
    Ok(out)
}

async fn seed_tech_data(w: &World, live: usize) -> anyhow::Result<f64> {
    let run_day = RUN_AT.date();
    // Expiring: last kept the day before the run, so removed by it.
    let expired = submissions(0, EXPIRED, |_| retention::tech_data_index_day(run_day))?;
    // Live: last kept on one of the next 89 days.
    let live_subs = submissions(EXPIRED, live, |i| run_day + Duration::days((i % 89) as i64))?;
    let held: Vec<keys::Key> = live_subs
        .iter()
        .take(HELD_LEADS)
        .map(|(k, _, _)| k.clone())
        .collect();
    let items = expired
        .into_iter()
        .chain(live_subs)
        .flat_map(|(_, lead, sub)| [lead, sub])
        .collect();
    let secs = write_all(w, "LeadsTable", items).await?;
    for key in held {
        let held = HeldItem {
            kind: HoldKind::Lead,
            key,
        };
        let leads = w.table("LeadsTable");
        let ops = w.table("OpsTable");
        anyhow::ensure!(
            legal_holds::set_legal_hold(&w.clients.dynamo, &leads, &ops, &held, true, RUN_AT)
                .await?,
            "held lead missing"
        );
    }
    Ok(secs)
}

/// `n` invoices (one partition per tenant) whose legal end (`retain_until`) is `day(i)`.
fn invoices(
    from: usize,
    n: usize,
    day: impl Fn(usize) -> time::Date,
) -> anyhow::Result<Vec<(keys::Key, Item)>> {
    let tenants = tenants()?;
    let mut out = Vec::with_capacity(n);
    for i in from..from + n {
        let t = &tenants[i % tenants.len()];
        let key = keys::Key {
            pk: keys::billing_partition(t),
            sk: format!("INVOICE#in_{i:07}"),
        };
        let mut it = shared_core::dynamo::key_item(&key);
        it.insert("tenant_id".into(), s(t.as_str()));
        it.insert("retain_until".into(), s(day(i).to_string()));
        it.insert(
            "exp_bucket".into(),
            s(retention::expiry_bucket_for(rule::BILLING, day(i), &key)),
        );
        out.push((key, it));
    }
    Ok(out)
}

async fn seed_billing(w: &World, live: usize) -> anyhow::Result<f64> {
    let run_day = RUN_AT.date();
    let expired = invoices(0, EXPIRED, |_| run_day)?;
    let live_items = invoices(EXPIRED, live, |i| {
        run_day + Duration::days(1 + (i % 1800) as i64)
    })?;
    let held: Vec<keys::Key> = live_items
        .iter()
        .take(HELD_LEADS)
        .map(|(k, _)| k.clone())
        .collect();
    let items = expired
        .into_iter()
        .chain(live_items)
        .map(|(_, it)| it)
        .collect();
    let secs = write_all(w, "BillingTable", items).await?;
    let (billing, ops) = (w.table("BillingTable"), w.table("OpsTable"));
    for key in held {
        let held = HeldItem {
            kind: HoldKind::Billing,
            key,
        };
        anyhow::ensure!(
            legal_holds::set_legal_hold(&w.clients.dynamo, &billing, &ops, &held, true, RUN_AT)
                .await?,
            "held record missing"
        );
    }
    Ok(secs)
}

/// Writes `items` to the table (BatchWriteItem, 8 at a time); the seconds it took.
async fn write_all(w: &World, logical_id: &str, items: Vec<Item>) -> anyhow::Result<f64> {
    let table = w.table(logical_id);
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

async fn measure(rule_name: &'static str, live: usize) -> anyhow::Result<Figures> {
    let w = World::new().await?;
    let seed_secs = match rule_name {
        rule::TECH_DATA => seed_tech_data(&w, live).await?,
        rule::BILLING => seed_billing(&w, live).await?,
        _ => seed_security_log(&w, live).await?,
    };
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
    let (_logs, guard) = shared_core::telemetry::capture();
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
    let deleted = report["rules"][rule_name]["deleted"].as_u64().unwrap_or(0);
    anyhow::ensure!(deleted == EXPIRED as u64, "deleted {deleted}: {report}");
    Ok(Figures {
        rule: rule_name,
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
        "  {:>12}: {:>6} cleaned among {:>7} live: {} requests ({:.3} per cleaned) {:?}, \
         {} items read ({:.3} per cleaned), {} write requests ({:.4} per cleaned); \
         seeded in {:.0} s",
        f.rule,
        f.deleted,
        f.live,
        f.requests,
        f.requests as f64 / f.deleted as f64,
        f.operations,
        f.items_read,
        f.items_read as f64 / f.deleted as f64,
        f.write_requests,
        f.write_requests as f64 / f.deleted as f64,
        f.seed_secs
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "goal met"
    } else {
        "GOAL MISSED"
    }
}

/// The goals of one rule from its small and large worlds.
fn judge(small: &Figures, large: &Figures, write_note: Option<&str>) {
    let per_deleted = large.items_read as f64 / large.deleted as f64;
    let read_ratio = large.items_read as f64 / small.items_read.max(1) as f64;
    let request_ratio = large.requests as f64 / small.requests.max(1) as f64;
    let writes = large.write_requests as f64 / large.deleted as f64;
    let scans = large.operations.get("Scan").copied().unwrap_or(0)
        + small.operations.get("Scan").copied().unwrap_or(0);
    println!(
        "  {}: items read per item cleaned: {per_deleted:.3} (goal <= 1.2: {})",
        large.rule,
        verdict(per_deleted <= 1.2)
    );
    println!(
        "  {}: {} live vs {} live: items read x{read_ratio:.3}, requests x{request_ratio:.3} \
         (goal <= 1.2: {}); Scan requests: {scans} ({})",
        large.rule,
        large.live,
        small.live,
        verdict(read_ratio <= 1.2 && request_ratio <= 1.2),
        verdict(scans == 0)
    );
    match write_note {
        None => println!(
            "  {}: write requests per item deleted: {writes:.4} (goal <= 0.05: {})",
            large.rule,
            verdict(writes <= 0.05)
        ),
        Some(note) => println!(
            "  {}: write requests per item cleaned: {writes:.4} ({note})",
            large.rule
        ),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let live: usize = std::env::var("RETENTION_BENCH_LIVE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    println!("retention: one daily run per world, counted on the wire");
    let mut figures = Vec::new();
    for rule_name in [rule::SECURITY_LOG, rule::TECH_DATA, rule::BILLING] {
        let small = measure(rule_name, EXPIRED).await?;
        print(&small);
        let large = measure(rule_name, live).await?;
        print(&large);
        figures.push((small, large));
    }
    for (small, large) in &figures {
        let write_note = match large.rule {
            rule::TECH_DATA => Some("an attribute removal: one UpdateItem each, no batched form"),
            rule::BILLING => Some(
                "one conditional DeleteItem each, so a hold set on the record is never missed; \
                 the same write units as a batch",
            ),
            _ => None,
        };
        judge(small, large, write_note);
    }
    Ok(())
}
