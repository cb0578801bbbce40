//! `cargo run --release -p bench --bin export_memory`: an export's peak memory and the items it
//! reads, for 5,000 and 50,000 leads, side by side.
//!
//! Leads are seeded with `BatchWriteItem` into an emulated world (tests/support's `World`: moto,
//! tables from template.yaml) in the shape lead intake writes, then exported through the
//! function's own code path (`lead_transfers::exports::export_leads`: Query pages of the
//! `by_tenant` index → serializer → 5 MiB multipart parts). Measured:
//! - peak heap: a counting global allocator in this binary (bytes live at the high-water mark
//!   during the export, minus those live before it), and the process's peak resident set
//!   (`VmHWM`, reset before each export through `/proc/self/clear_refs`);
//! - items read: the sum of the Query responses' `ScannedCount`, and the Query requests sent
//!   (counted on the wire by the DynamoDB meter).
//!
//! Goal (issue 4): peak < 64 MiB, items read = leads (each read once).
//!
//! Wall time is printed but is the emulator's, not DynamoDB's (moto answers a Query in time
//! proportional to the whole partition).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context};
use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};
use bench::memory::{self, Counting, MIB};

use integration_tests::{emulator_endpoint, World};
use lead_transfers::config::{Config, Settings};
use lead_transfers::export_writer::ExportFormat;
use shared_core::clock::{Clock, UlidGenerator};
use shared_core::config::Env;
use shared_core::domain::{ContactDetails, Email, Phone, TenantId, UserId};
use shared_leads::transfers::{ExportId, TransfersStore};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SIZES: [usize; 2] = [5_000, 50_000];

/// `n` leads of `tenant`, as lead intake writes them (realistic contact details, ~350 bytes).
async fn seed(w: &World, table: &str, tenant: &TenantId, n: usize) -> anyhow::Result<()> {
    let now = w.clock.now();
    // Items are built by each writer, 25 at a time: the seeding's memory stays small too.
    let item = move |w: &World, i: usize| -> anyhow::Result<WriteRequest> {
        let email = Email::parse(&format!("person.{i:06}@example-company-{}.com", i % 97))
            .map_err(anyhow::Error::msg)?;
        let phone = Phone::parse(&format!("+40 7{:08}", i)).map_err(anyhow::Error::msg)?;
        let (eb, pb) = (w.key.email(&email), w.key.phone(&phone));
        let id = w.key.lead_id(tenant, &eb);
        let contact = ContactDetails {
            email: Some(email),
            phone: Some(phone),
            name: Some(format!("Firstname{i} Lastname-Of-Person{i}")),
            company: Some(format!("Company Number {} SRL", i % 1000)),
        };
        let mut it = shared_leads::dynamo::new_lead_item(
            tenant,
            &id,
            &contact,
            (Some(&eb), Some(&pb)),
            "new",
            now - time::Duration::seconds(i as i64),
        );
        it.insert(
            "source_form_id".into(),
            AttributeValue::S("demo-contact".into()),
        );
        it.insert("submission_count".into(), AttributeValue::N("1".into()));
        bench::seed::put(it)
    };
    let batches = (0..n)
        .step_by(25)
        .map(|start| {
            (start..(start + 25).min(n))
                .map(|i| item(w, i))
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    bench::seed::write_batches(&w.clients.dynamo, table, batches).await
}

struct Figures {
    leads: usize,
    format: &'static str,
    count: u64,
    scanned: u64,
    queries: usize,
    pages: u64,
    parts: usize,
    bytes: u64,
    peak_heap: usize,
    peak_rss_kib: Option<u64>,
    secs: f64,
}

/// An import at its limits: a file of `import_max_rows` rows just within `import_max_bytes`,
/// read into memory as the function reads it from S3 and parsed (`csv_import::parse`, which
/// keeps every row until the import ends). Returns the peak heap (bytes) and the file's size.
fn import_parse_peak() -> anyhow::Result<(usize, usize, usize)> {
    let limits = Settings::default();
    let baseline = memory::start();
    let mut csv = String::from("email,name,phone,company,stage\n");
    let mut rows = 0;
    // Long but ordinary rows: the most rows the row limit allows, as close to the size limit as
    // they get.
    let per_row = limits.import_max_bytes as usize / limits.import_max_rows;
    for i in 0..limits.import_max_rows {
        let mut row = format!(
            "firstname.lastname.{i}@example-company-domain.com,Firstname Lastname {i},+40 721 {:06},",
            i % 1_000_000
        );
        let company = format!("Company {i} Logistics and Consulting Services Group SRL");
        row.push_str(&company[..company.len().min(per_row.saturating_sub(row.len() + 8))]);
        row.push_str(",new\n");
        if csv.len() + row.len() > limits.import_max_bytes as usize {
            break;
        }
        csv.push_str(&row);
        rows += 1;
    }
    let bytes = csv.into_bytes();
    let size = bytes.len();
    let parsed = lead_transfers::csv_import::parse(&bytes, limits.import_max_rows)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    ensure!(
        parsed.rows.len() == rows,
        "parsed {} of {rows} rows",
        parsed.rows.len()
    );
    let peak = memory::peak_heap_since(baseline);
    drop(parsed);
    Ok((peak, size, rows))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (import_peak, import_bytes, import_rows) = import_parse_peak()?;
    println!(
        "import at its limits: {import_rows} rows, {:.1} MiB file, peak heap {:.1} MiB (file + parsed rows)\n",
        import_bytes as f64 / MIB,
        import_peak as f64 / MIB
    );
    let mut w = World::new()
        .await
        .context("test world (moto_server from .venv)")?;
    w.clients.dynamo = bench::seed::patient(&w.clients.dynamo);
    let env = infra::local::local_function_env(&w.template, "lead-transfers", emulator_endpoint())?;
    let config = Config::from_env(&Env::from_pairs(env))?;
    let verifier = w.token_verifier("lead-transfers").await?;
    let meter = w.meter();
    let app = lead_transfers::App {
        store: TransfersStore::new(meter.instrument(&w.clients.dynamo), config.tables.clone()),
        s3: w.clients.s3.clone(),
        buckets: config.buckets.clone(),
        keys: w.key.clone(),
        verifier,
        clock: w.clock.clone(),
        ids: Arc::new(UlidGenerator),
        settings: Settings::default(),
    };
    let user = UserId::parse("us-bench")?;

    println!("export memory benchmark (lead-transfers; emulated DynamoDB and S3)\n");
    let mut figures = Vec::new();
    for n in SIZES {
        let tenant = TenantId::parse(&format!("bench-{n}"))?;
        let started = Instant::now();
        seed(&w, &config.tables.leads, &tenant, n).await?;
        println!(
            "seeded {n} leads in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        for format in [ExportFormat::Csv, ExportFormat::Json] {
            let id = ExportId::parse(&format!("ex-bench-{n}-{}", format.as_str()))?;
            meter.reset();
            let baseline = memory::start();
            let started = Instant::now();
            let outcome = lead_transfers::exports::export_leads(
                &app,
                &tenant,
                &user,
                &id,
                format,
                app.clock.now(),
            )
            .await?;
            let secs = started.elapsed().as_secs_f64();
            let peak_heap = memory::peak_heap_since(baseline);
            let peak_rss_kib = memory::vm_kib("VmHWM:");
            let queries = meter
                .take()
                .iter()
                .filter(|r| r.operation == "Query")
                .count();
            let head = w
                .clients
                .s3
                .head_object()
                .bucket(&config.buckets.exports)
                .key(&outcome.object_key)
                .send()
                .await?;
            ensure!(
                head.content_length == Some(outcome.bytes as i64),
                "object size {:?} != {}",
                head.content_length,
                outcome.bytes
            );
            ensure!(
                outcome.count == n as u64,
                "exported {} of {n}",
                outcome.count
            );
            figures.push(Figures {
                leads: n,
                format: format.as_str(),
                count: outcome.count,
                scanned: outcome.scanned,
                queries,
                pages: outcome.pages,
                parts: outcome.parts,
                bytes: outcome.bytes,
                peak_heap,
                peak_rss_kib,
                secs,
            });
        }
    }

    println!();
    println!(
        "{:>7} {:>6} {:>8} {:>10} {:>8} {:>6} {:>10} {:>15} {:>14} {:>9}",
        "leads",
        "format",
        "exported",
        "items read",
        "queries",
        "parts",
        "file MiB",
        "peak heap MiB",
        "peak RSS MiB",
        "emu s"
    );
    for f in &figures {
        println!(
            "{:>7} {:>6} {:>8} {:>10} {:>8} {:>6} {:>10.1} {:>15.1} {:>14} {:>9.1}",
            f.leads,
            f.format,
            f.count,
            f.scanned,
            f.queries,
            f.parts,
            f.bytes as f64 / MIB,
            f.peak_heap as f64 / MIB,
            f.peak_rss_kib
                .map(|k| format!("{:.1}", k as f64 / 1024.0))
                .unwrap_or_else(|| "n/a".into()),
            f.secs,
        );
        let _ = f.pages;
    }
    println!();
    let ok = figures
        .iter()
        .all(|f| f.peak_heap < 64 << 20 && f.scanned == f.leads as u64);
    println!(
        "goal: peak heap < 64 MiB and items read = leads: {}",
        if ok { "met" } else { "NOT met" }
    );
    ensure!(ok, "goal not met");
    let export_peak = figures.iter().map(|f| f.peak_heap).max().unwrap_or(0);
    bench::figures::store(
        "transfers_memory",
        serde_json::json!({
            "export_peak_heap_mib": (export_peak as f64 / MIB * 10.0).round() / 10.0,
            "export_leads": SIZES.iter().max(),
            "import_peak_heap_mib": (import_peak as f64 / MIB * 10.0).round() / 10.0,
            "import_rows": import_rows,
            "import_file_mib": (import_bytes as f64 / MIB * 10.0).round() / 10.0,
        }),
    )
}
