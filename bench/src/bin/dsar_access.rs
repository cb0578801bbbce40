//! `cargo run --release -p bench --bin dsar_access`: what one data subject's access request
//! costs, in a leads table of 1,000 and of 100,000 leads, and the peak memory of an access export
//! of 50,000 records. (Not `--bin dsar`: that is the function's binary, which `make bench` runs.)
//!
//! Seeded with BatchWriteItem into an emulated world (tests/support's `World`), then executed
//! through the worker's own code path (`shared_privacy::dsar::worker::Worker`). Measured:
//! - DynamoDB requests by operation (on the wire, the DynamoDB meter) and items read (the sum of
//!   the Query responses' `ScannedCount` plus the items got, `SubjectStore::items_read`); the
//!   goal (issue 6): equal within 10% at both sizes, no Scan at all;
//! - peak heap during the export (a counting global allocator: bytes live at the high-water
//!   mark, minus those live before) and the peak resident set (`VmHWM`); goal < 64 MiB.
//!
//! Wall times are the emulator's, not DynamoDB's, and are not printed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{ensure, Context};
use aws_sdk_dynamodb::types::AttributeValue;
use bench::memory::{self, vm_kib, Counting, MIB};
use bench::seed;
use integration_tests::{emulator_endpoint, World};
use shared_core::clock::{Clock, UlidGenerator};
use shared_core::config::Env;
use shared_core::domain::{ContactDetails, Email, LeadId, TenantId};
use shared_core::error::AppError;
use shared_mail::MemoryMailer;
use shared_privacy::dsar::checkpoint::CheckpointStore;
use shared_privacy::dsar::export::Exports;
use shared_privacy::dsar::job::{
    DsarJob, JobDispatcher, JobKind, JobOutcome, JobScope, RequestProgress,
};
use shared_privacy::dsar::subjects::{SubjectStore, SubjectTables};
use shared_privacy::dsar::worker::{RunResult, Unlimited, Worker, WorkerSettings};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct NoProgress;

impl RequestProgress for NoProgress {
    async fn started(&self, _: &DsarJob) -> Result<(), AppError> {
        Ok(())
    }
    async fn completed(&self, _: &DsarJob, _: &JobOutcome) -> Result<(), AppError> {
        Ok(())
    }
    async fn failed(&self, _: &DsarJob, _: &str) -> Result<(), AppError> {
        Ok(())
    }
}

#[derive(Default)]
struct Dispatched(Mutex<usize>);

impl JobDispatcher for Dispatched {
    async fn dispatch(&self, _: &DsarJob) -> Result<(), AppError> {
        *self.0.lock().unwrap() += 1;
        Ok(())
    }
}

/// Writes `items` with BatchWriteItem, 25 a request, a few requests at a time.
async fn write_all(
    w: &World,
    table: &str,
    items: Vec<shared_core::dynamo::Item>,
) -> anyhow::Result<()> {
    let puts = items
        .into_iter()
        .map(seed::put)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let batches = puts.chunks(25).map(<[_]>::to_vec);
    seed::write_batches(&w.clients.dynamo, table, batches).await
}

/// Leads `from..to` of other people in `tenant`, as lead intake writes them.
fn filler(
    w: &World,
    tenant: &TenantId,
    from: usize,
    to: usize,
) -> anyhow::Result<Vec<shared_core::dynamo::Item>> {
    let now = w.clock.now();
    (from..to)
        .map(|i| {
            let email = Email::parse(&format!("person.{i:06}@example-company-{}.com", i % 97))
                .map_err(anyhow::Error::msg)?;
            let eb = w.key.email(&email);
            let id = w.key.lead_id(tenant, &eb);
            let contact = ContactDetails {
                email: Some(email),
                phone: None,
                name: Some(format!("Firstname{i} Lastname{i}")),
                company: Some(format!("Company {} SRL", i % 1000)),
            };
            Ok(shared_leads::dynamo::new_lead_item(
                tenant,
                &id,
                &contact,
                (Some(&eb), None),
                "new",
                now - time::Duration::seconds(i as i64),
            ))
        })
        .collect()
}

/// The subject's lead and `subs` submissions of it.
fn subject(
    w: &World,
    tenant: &TenantId,
    email: &str,
    subs: std::ops::Range<usize>,
) -> anyhow::Result<(LeadId, Vec<shared_core::dynamo::Item>)> {
    let e = Email::parse(email).map_err(anyhow::Error::msg)?;
    let eb = w.key.email(&e);
    let id = w.key.lead_id(tenant, &eb);
    let now = w.clock.now();
    let contact = ContactDetails {
        email: Some(e),
        phone: None,
        name: Some("Ana Subject".into()),
        company: None,
    };
    // The lead with the first range only; later ranges are its submissions alone.
    let mut items = Vec::new();
    if subs.start == 0 {
        items.push(shared_leads::dynamo::new_lead_item(
            tenant,
            &id,
            &contact,
            (Some(&eb), None),
            "new",
            now,
        ));
    }
    let s = |v: &str| AttributeValue::S(v.to_string());
    for i in subs {
        let sid = format!("01jsub{i:020}");
        let pk = shared_core::keys::lead_partition(tenant, &id);
        items.push(shared_core::dynamo::Item::from([
            ("pk".to_string(), s(&pk)),
            ("sk".to_string(), s(&format!("SUB#{sid}"))),
            ("tenant_id".to_string(), s(tenant.as_str())),
            ("lead_id".to_string(), s(id.as_str())),
            ("submission_id".to_string(), s(&sid)),
            ("form_id".to_string(), s("demo-contact")),
            ("received_at".to_string(), s("2026-11-01T10:00:00Z")),
            (
                "fields".to_string(),
                AttributeValue::M(
                    [
                        (
                            "message".to_string(),
                            s(&format!(
                                "Message number {i}: please call me back about the offer."
                            )),
                        ),
                        ("name".to_string(), s("Ana Subject")),
                    ]
                    .into(),
                ),
            ),
            (
                "consents".to_string(),
                AttributeValue::L(vec![AttributeValue::M(
                    [
                        ("key".to_string(), s("marketing")),
                        ("version".to_string(), s("2026-01")),
                        ("granted".to_string(), AttributeValue::Bool(true)),
                    ]
                    .into(),
                )]),
            ),
            ("ip".to_string(), s("203.0.113.10")),
            (
                "user_agent".to_string(),
                s("Mozilla/5.0 (X11; Linux x86_64) DemoBrowser/1.0"),
            ),
        ]));
    }
    Ok((id, items))
}

type BenchWorker = Worker<NoProgress, Dispatched, MemoryMailer>;

fn worker(
    w: &World,
    client: aws_sdk_dynamodb::Client,
    tables: &SubjectTables,
    buckets: (&str, &str),
) -> BenchWorker {
    Worker {
        store: SubjectStore::new(client.clone(), tables.clone()),
        checkpoints: CheckpointStore::new(client, tables.ops.clone(), 30),
        exports: Exports {
            s3: w.clients.s3.clone(),
            bucket: buckets.0.to_string(),
            part_bytes: 5 * 1024 * 1024,
        },
        attachments_bucket: buckets.1.to_string(),
        mailer: MemoryMailer::default(),
        progress: NoProgress,
        dispatcher: Dispatched::default(),
        keys: w.key.clone(),
        clock: w.clock.clone(),
        ids: Arc::new(UlidGenerator),
        settings: WorkerSettings::default(),
    }
}

fn access(tenant: &TenantId, email: &str) -> DsarJob {
    DsarJob {
        request_id: format!("dsr_{}", ulid::Ulid::new().to_string().to_lowercase()),
        scope: JobScope::Tenant {
            tenant_id: tenant.clone(),
        },
        kind: JobKind::Access,
        subject_email: email.to_string(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut w = World::new().await?;
    w.clients.dynamo = seed::patient(&w.clients.dynamo);
    let env = infra::local::local_function_env(&w.template, "dsar-worker", emulator_endpoint())?;
    let config = dsar_worker_config(&env)?;
    let leads_table = config.0.leads.clone();
    let buckets = (config.1.as_str(), config.2.as_str());
    let tenant = w.tenant.clone();
    let email = "ana.bench@example.com";
    let (_, items) = subject(&w, &tenant, email, 0..3)?;
    write_all(&w, &leads_table, items).await?;

    println!("DSAR access request of one subject (1 lead, 3 submissions), by leads in the table:");
    println!(
        "{:>9} | {:>8} | {:>10} | operations",
        "leads", "requests", "items read"
    );
    let mut seeded = 1;
    let mut reads = Vec::new();
    for size in [1_000usize, 100_000] {
        let more = filler(&w, &tenant, seeded, size)?;
        write_all(&w, &leads_table, more)
            .await
            .with_context(|| format!("seeding {size} leads"))?;
        seeded = size;
        let meter = w.meter();
        let client = meter.instrument(&w.clients.dynamo);
        let wk = worker(&w, client, &config.0, buckets);
        let out = wk.run(&access(&tenant, email), &Unlimited).await?;
        ensure!(
            matches!(out, RunResult::Completed(_)),
            "the access job did not complete: {out:?}"
        );
        let ops: Vec<String> = meter.take().into_iter().map(|r| r.operation).collect();
        ensure!(!ops.iter().any(|o| o == "Scan"), "a Scan was sent");
        let mut by_op: BTreeMap<&str, usize> = BTreeMap::new();
        for o in &ops {
            *by_op.entry(o.as_str()).or_default() += 1;
        }
        let read = wk.store.items_read();
        reads.push(read);
        println!("{size:>9} | {:>8} | {read:>10} | {by_op:?}", ops.len());
    }
    let (small, large) = (reads[0] as f64, reads[1] as f64);
    println!(
        "items read, 100,000 vs 1,000 leads: {:+.1}% (goal: within 10%); Scan requests: 0",
        (large - small) / small * 100.0
    );

    // Peak memory of an access export of 50,000 records (one lead with 49,999 submissions).
    let mem_tenant = TenantId::parse("tenant-mem")?;
    let big = "big.subject@example.com";
    // Seeded 2,000 at a time, so the seeding's own memory stays small before the measure.
    for start in (0..49_999).step_by(2_000) {
        let (_, items) = subject(&w, &mem_tenant, big, start..(start + 2_000).min(49_999))?;
        write_all(&w, &leads_table, items).await?;
    }
    let wk = worker(&w, w.clients.dynamo.clone(), &config.0, buckets);
    let rss_before = vm_kib("VmRSS:").unwrap_or_default();
    let before = memory::start();
    let out = wk.run(&access(&mem_tenant, big), &Unlimited).await?;
    let peak = memory::peak_heap_since(before);
    let RunResult::Completed(outcome) = out else {
        anyhow::bail!("the export did not complete: {out:?}");
    };
    let records: u64 = outcome.counts.values().sum();
    let head = w
        .clients
        .s3
        .head_object()
        .bucket(buckets.0)
        .key(&outcome.export_keys[0])
        .send()
        .await?;
    println!(
        "access export of {records} records ({:.1} MiB of JSON, {} items read): peak heap {:.1} MiB (goal < 64 MiB); peak RSS {:.1} MiB, {:.1} MiB before the export",
        head.content_length().unwrap_or_default() as f64 / MIB,
        wk.store.items_read(),
        peak as f64 / MIB,
        vm_kib("VmHWM:").unwrap_or_default() as f64 / 1024.0,
        rss_before as f64 / 1024.0,
    );
    let round1 = |x: f64| (x * 10.0).round() / 10.0;
    bench::figures::store(
        "dsar",
        serde_json::json!({
            "items_read_1k": reads[0],
            "items_read_100k": reads[1],
            "access_export_records": records,
            "access_export_peak_heap_mib": round1(peak as f64 / MIB),
        }),
    )
}

/// The worker's tables and buckets exactly as the template gives them.
fn dsar_worker_config(
    env: &BTreeMap<String, String>,
) -> anyhow::Result<(SubjectTables, String, String)> {
    let e = Env::from_pairs(env.clone());
    Ok((
        SubjectTables {
            tenants: e.required("TENANTS_TABLE")?,
            leads: e.required("LEADS_TABLE")?,
            privacy: e.required("PRIVACY_TABLE")?,
            ops: e.required("OPS_TABLE")?,
            security_log: e.required("SECURITY_LOG_TABLE")?,
            billing: e.required("BILLING_TABLE")?,
        },
        e.required("EXPORTS_BUCKET")?,
        e.required("ATTACHMENTS_BUCKET")?,
    ))
}
