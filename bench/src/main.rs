//! `make bench` (`cargo run --release -p bench`): the figures the issue asks for, printed.
//!
//! 1. DynamoDB: requests and billed write units per submission, counted on the wire through
//!    the real handler against the emulator (moto) and billed by DynamoDB's item-size rules
//!    (`shared_core::metering`): never the emulator's wall time.
//! 2. The size of the stripped release `lead-intake` binary.
//! 3. Cold start: process start to the first poll of the Lambda Runtime API (a local stand-in),
//!    as a ratio to a minimal `lambda_http` hello-world (`src/bin/hello.rs`), built with the same
//!    profile and measured in the same run, interleaved.
//!
//! These print figures; they are not tests. The deterministic counts are asserted in
//! `tests/cost.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use integration_tests::{fixture, request, response_json, World};
use serde_json::{json, Value};
use shared_core::clock::FixedClock;
use shared_core::metering::{Meter, Usage};
use shared_leads::dynamo::DynamoIntakeStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

type Intake = shared_leads::intake::Intake<DynamoIntakeStore>;

/// DynamoDB on-demand list prices, us-east-1, as published in 2025 (after the November 2024
/// price cut): $0.625 per million write request units, $0.125 per million read request units.
/// Storage, backups and streams are not included.
const USD_PER_WRITE_UNIT: f64 = 0.625 / 1_000_000.0;
const USD_PER_READ_UNIT: f64 = 0.125 / 1_000_000.0;

/// Submissions per warm scenario (varied, realistic bodies).
const SUBMISSIONS: usize = 200;
/// Cold-container samples (a fresh form-tenant cache each).
const COLD_SAMPLES: usize = 20;
/// Cold-start runs per binary, alternating.
const COLD_START_RUNS: usize = 30;
/// 1M submissions a month is ~23 a minute: the emulated clock advances this much between
/// submissions, so per-minute rate-limit items hold what they would at that average rate.
const STEP_AT_1M_PER_MONTH: time::Duration = time::Duration::milliseconds(2_600);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo run --release -p bench -- cold` runs one section (dynamodb, size, cold); none: all.
    let only: Vec<String> = std::env::args().skip(1).collect();
    let run = |section: &str| only.is_empty() || only.iter().any(|a| a == section);
    let release = release_dir()?;
    if run("size") || run("cold") {
        build_release()?;
    }

    let started = Instant::now();
    println!("lead-intake benchmarks\n");
    if run("dynamodb") {
        dynamodb_cost().await?;
    }
    if run("size") {
        binary_size(&release)?;
    }
    if run("cold") {
        cold_start(&release).await?;
    }
    eprintln!(
        "\n(bench ran in {:.0} s, release build excluded)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Build

/// Where `cargo run --release -p bench` put this binary: the other release binaries are there.
fn release_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    Ok(exe
        .parent()
        .context("bench binary has a directory")?
        .to_path_buf())
}

/// Builds `lead-intake` on its own (so no bench-only feature, such as `shared/test-support`,
/// is unified into it) and then the hello-world baseline, both with the release profile.
fn build_release() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for args in [
        &["build", "--release", "-p", "lead-intake"][..],
        &["build", "--release", "-p", "bench", "--bin", "hello"][..],
    ] {
        eprintln!("$ cargo {}", args.join(" "));
        let status = Command::new(&cargo)
            .args(args)
            .current_dir(integration_tests::workspace_root())
            .status()
            .context("running cargo")?;
        ensure!(status.success(), "cargo {} failed", args.join(" "));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// DynamoDB cost

/// A deterministic generator (xorshift), so every run sends the same bodies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const FIRST: &[&str] = &[
    "Ana",
    "Ion",
    "Maria",
    "Andrei",
    "Elena",
    "Mihai",
    "Ioana",
    "Alexandru",
    "Cristina",
    "Gheorghe",
    "Sophie",
    "Lukas",
    "Chloé",
    "Mateusz",
    "Zoë",
    "Bogdan",
];
const LAST: &[&str] = &[
    "Pop",
    "Popescu",
    "Ionescu",
    "Dumitrescu",
    "Stanciu",
    "Constantinescu",
    "Müller",
    "Kowalski",
    "Dubois",
    "Ștefănescu",
    "Van der Berg",
    "Nistor",
];
const COMPANIES: &[&str] = &[
    "Pop SRL",
    "Acme Logistics",
    "Nordic Timber AB",
    "Dacia Parts SA",
    "Blue Harbor Consulting",
    "Ferme du Soleil",
    "Brandt & Söhne GmbH",
    "Tech Solutions Group",
];
const SENTENCES: &[&str] = &[
    "Please call me about pricing.",
    "We are a team of 25 people looking for a CRM that handles consent properly.",
    "Could you send me a quote for the annual plan?",
    "I saw your booth at the trade fair last week and would like a demo.",
    "Our current provider is shutting down at the end of the quarter, so we need to migrate about 4,000 contacts.",
    "Is there a discount for non-profit organisations?",
    "Best time to reach me is weekday mornings.",
    "Do you offer an integration with our accounting software?",
];
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
];
const PAGES: &[&str] = &[
    "http://127.0.0.1:8080/",
    "http://127.0.0.1:8080/contact",
    "http://127.0.0.1:8080/pricing?plan=annual&utm_source=newsletter&utm_medium=email&utm_campaign=spring",
];
const REFERRERS: &[&str] = &[
    "",
    "https://www.google.com/",
    "https://www.linkedin.com/",
    "https://news.example.org/articles/2025/03/choosing-a-crm-for-small-teams",
];

/// One person filling the demo form: the same person (by index) always has the same contact.
fn submission_event(rng: &mut Rng, person: usize, idempotency_key: Option<&str>) -> Value {
    let mut p = Rng(0x9E37_79B9_7F4A_7C15 ^ (person as u64 + 1).wrapping_mul(0x2545_F491));
    let first = p.pick(FIRST);
    let last = p.pick(LAST);
    let ascii = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_lowercase()
    };
    let mut body = json!({
        "email": format!("{}.{}{}@example.com", ascii(first), ascii(last), person),
        "name": format!("{first} {last}"),
    });
    if p.chance(70) {
        body["company"] = json!(p.pick(COMPANIES));
    }
    if p.chance(40) {
        body["phone"] = json!(format!(
            "+40 7{:02} {:03} {:03}",
            person % 100,
            person % 997,
            100 + person % 900
        ));
    }
    // What changes between one person's submissions: the message, the page, the consent.
    let sentences = 1 + rng.below(4);
    let message: Vec<&str> = (0..sentences).map(|_| rng.pick(SENTENCES)).collect();
    body["message"] = json!(message.join(" "));
    body["consent_marketing"] = json!(rng.chance(60));
    let page = rng.pick(PAGES);
    body["_page_url"] = json!(page);
    let referrer = rng.pick(REFERRERS);
    if !referrer.is_empty() {
        body["_referrer"] = json!(referrer);
    }
    let ua = rng.pick(USER_AGENTS);
    let ip = format!(
        "100.{}.{}.{}",
        64 + (person >> 16) % 64,
        (person >> 8) % 256,
        person % 256
    );

    let mut e = fixture("lead-intake/submit-json.json");
    let text = body.to_string();
    e["headers"]["content-length"] = json!(text.len().to_string());
    e["headers"]["user-agent"] = json!(ua);
    e["headers"]["referer"] = json!(page);
    if let Some(k) = idempotency_key {
        e["headers"]["idempotency-key"] = json!(k);
    }
    e["requestContext"]["http"]["userAgent"] = json!(ua);
    e["requestContext"]["http"]["sourceIp"] = json!(ip);
    e["body"] = json!(text);
    e
}

struct Bench {
    world: World,
    meter: Meter,
    metered: aws_sdk_dynamodb::Client,
}

impl Bench {
    fn intake(&self) -> Intake {
        self.world.intake_with_client(self.metered.clone(), None)
    }

    /// One submission through the handler; what it cost.
    async fn send(&self, intake: &Intake, event: &Value, status: u16) -> anyhow::Result<Usage> {
        self.meter.reset();
        let resp = lead_intake::handle(intake, request(event)).await;
        ensure!(
            resp.status() == status,
            "expected {status}, got {}: {}",
            resp.status(),
            response_json(&resp)
        );
        // Billed right after each submission: an update is billed on its item as it stands now.
        self.meter.usage(&self.world.clients.dynamo).await
    }
}

struct Row {
    name: String,
    usages: Vec<Usage>,
}

impl Row {
    fn mean(&self, f: impl Fn(&Usage) -> f64) -> f64 {
        self.usages.iter().map(&f).sum::<f64>() / self.usages.len().max(1) as f64
    }
    fn max(&self, f: impl Fn(&Usage) -> f64) -> f64 {
        self.usages.iter().map(f).fold(0.0, f64::max)
    }
    /// The requests sent, most common sequence first (`BatchGetItem+TransactWriteItems`).
    fn shapes(&self) -> String {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for u in &self.usages {
            *counts.entry(u.operations.join("+")).or_default() += 1;
        }
        let mut v: Vec<_> = counts.into_iter().collect();
        v.sort_by_key(|x| std::cmp::Reverse(x.1));
        v.iter()
            .map(|(k, n)| {
                let short = k
                    .replace("TransactWriteItems", "TxWrite")
                    .replace("BatchGetItem", "BatchGet");
                if v.len() == 1 {
                    short
                } else {
                    format!("{short} x{n}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
    fn usd_per_million(&self) -> f64 {
        1_000_000.0
            * self.mean(|u| {
                u.total_write_units() as f64 * USD_PER_WRITE_UNIT + u.read_units * USD_PER_READ_UNIT
            })
    }
}

async fn dynamodb_cost() -> anyhow::Result<()> {
    let world = World::new().await.context("starting the emulator world")?;
    let meter = world.meter();
    let metered = meter.instrument(&world.clients.dynamo);
    let b = Bench {
        world,
        meter,
        metered,
    };
    let clock = b.world.clock.clone();
    let mut rng = Rng(0x005E_ED0F_1EAD);
    let mut rows = Vec::new();
    let mut next_person = 0usize;
    let mut person = || {
        next_person += 1;
        next_person
    };

    // Cold containers: each sample is a fresh intake (empty form-tenant cache), first submission.
    let mut cold = Vec::new();
    for _ in 0..COLD_SAMPLES {
        let intake = b.intake();
        cold.push(
            b.send(&intake, &submission_event(&mut rng, person(), None), 201)
                .await?,
        );
        clock.advance(STEP_AT_1M_PER_MONTH);
    }

    // One warm container for the rest; its first submission warms the cache and is not counted.
    let intake = b.intake();
    b.send(&intake, &submission_event(&mut rng, person(), None), 201)
        .await?;

    let people: Vec<usize> = (0..SUBMISSIONS).map(|_| person()).collect();
    let mut new_lead = Vec::new();
    for &p in &people {
        clock.advance(STEP_AT_1M_PER_MONTH);
        new_lead.push(
            b.send(&intake, &submission_event(&mut rng, p, None), 201)
                .await?,
        );
    }
    let mut existing = Vec::new();
    for &p in &people {
        clock.advance(STEP_AT_1M_PER_MONTH);
        existing.push(
            b.send(&intake, &submission_event(&mut rng, p, None), 201)
                .await?,
        );
    }
    let mut keyed = Vec::new();
    let mut keyed_events = Vec::new();
    for i in 0..SUBMISSIONS {
        clock.advance(STEP_AT_1M_PER_MONTH);
        let key = format!("retry-{i:04}-{:08x}", rng.next() as u32);
        let e = submission_event(&mut rng, person(), Some(&key));
        keyed.push(b.send(&intake, &e, 201).await?);
        keyed_events.push(e);
    }
    let mut replayed = Vec::new();
    for e in keyed_events.iter().take(SUBMISSIONS / 4) {
        clock.advance(STEP_AT_1M_PER_MONTH);
        replayed.push(b.send(&intake, e, 201).await?);
    }
    let mut invalid = Vec::new();
    let mut honeypot = Vec::new();
    for i in 0..SUBMISSIONS / 10 {
        clock.advance(STEP_AT_1M_PER_MONTH);
        let mut e = submission_event(&mut rng, person(), None);
        let mut body: Value = serde_json::from_str(e["body"].as_str().unwrap_or("{}"))?;
        body["email"] = json!(format!("not-an-email-{i}"));
        e["body"] = json!(body.to_string());
        invalid.push(b.send(&intake, &e, 400).await?);
        let mut e = submission_event(&mut rng, person(), None);
        let mut body: Value = serde_json::from_str(e["body"].as_str().unwrap_or("{}"))?;
        body["_gotcha"] = json!("http://spam.example/");
        e["body"] = json!(body.to_string());
        honeypot.push(b.send(&intake, &e, 201).await?);
    }

    // A busy minute: the form's whole per-minute allowance (120) from as many distinct IPs. The
    // rate-limit window item holds one counter per IP, so it grows past 1 KB.
    let limit = b
        .world
        .intake_config()
        .settings
        .rate_limit_per_form_per_minute as usize;
    let now = clock_now(&clock);
    let next_minute = now + time::Duration::seconds(60 - now.unix_timestamp().rem_euclid(60) + 1);
    clock.set(next_minute);
    let mut busy = Vec::new();
    for _ in 0..limit {
        busy.push(
            b.send(&intake, &submission_event(&mut rng, person(), None), 201)
                .await?,
        );
        clock.advance(time::Duration::milliseconds(400));
    }

    rows.push(Row {
        name: "new lead (warm container)".into(),
        usages: new_lead,
    });
    rows.push(Row {
        name: "existing lead (warm)".into(),
        usages: existing,
    });
    rows.push(Row {
        name: "new lead + Idempotency-Key".into(),
        usages: keyed,
    });
    rows.push(Row {
        name: "cold container, new lead".into(),
        usages: cold,
    });
    rows.push(Row {
        name: "retry, same Idempotency-Key".into(),
        usages: replayed,
    });
    rows.push(Row {
        name: "rejected (invalid email)".into(),
        usages: invalid,
    });
    rows.push(Row {
        name: "honeypot (bot)".into(),
        usages: honeypot,
    });
    rows.push(Row {
        name: format!("busy minute ({limit} IPs/form/min)"),
        usages: busy,
    });

    println!(
        "DynamoDB per submission (counted on the wire; write units by DynamoDB's item-size rules)"
    );
    println!(
        "goal (issue): at most 2 requests and at most 6 transactional write units per accepted\n\
         submission; tests/cost.rs budgets 8 since the monthly usage counter joined the transaction\n"
    );
    println!(
        "{:<34} {:>4}  {:>8}  {:>13}  {:>9}  {:>8}  {:>10}  requests sent",
        "scenario", "n", "requests", "txn WCU (max)", "GSI WCU", "RCU", "$ per 1M"
    );
    for r in &rows {
        println!(
            "{:<34} {:>4}  {:>8.2}  {:>7.2} ({:>2})  {:>9.2}  {:>8.2}  {:>10.2}  {}",
            r.name,
            r.usages.len(),
            r.mean(|u| u.requests() as f64),
            r.mean(|u| u.transactional_write_units as f64),
            r.max(|u| u.transactional_write_units as f64),
            r.mean(|u| u.gsi_write_units as f64),
            r.mean(|u| u.read_units),
            r.usd_per_million(),
            r.shapes(),
        );
    }

    // Where the units go, for the most common case.
    let mut by_item: BTreeMap<String, (u64, u64, usize)> = BTreeMap::new();
    for u in &rows[0].usages {
        for w in &u.writes {
            // The item's kind, from its sort key's prefix (`LEAD`, `SUB#...`, `RATE`...).
            let sk = w
                .key
                .iter()
                .find(|(k, _)| k == "sk")
                .map_or("", |(_, v)| v.as_str());
            let kind = sk.split('#').next().unwrap_or(sk);
            let label = format!("{:?} {} {kind}", w.kind, short_table(&w.table));
            let e = by_item.entry(label).or_default();
            e.0 += w.item_bytes;
            e.1 += w.units;
            e.2 += 1;
        }
    }
    println!("\nnew lead, per item written (mean): ");
    for (label, (bytes, units, n)) in by_item {
        println!(
            "  {label:<22} {:>5.0} bytes  {:>4.2} WCU",
            bytes as f64 / n as f64,
            units as f64 / n as f64
        );
    }
    println!(
        "\nGSI writes are billed too (1x each, rounded up to 1 KB on the index entry: table keys +\n\
         index keys + projected attributes + 100 bytes), per submission:"
    );
    for r in &rows[..2] {
        let mut per_index: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for u in &r.usages {
            for w in &u.writes {
                for (index, bytes, _) in &w.index_writes {
                    let e = per_index.entry(index.as_str()).or_default();
                    e.0 += 1;
                    e.1 += bytes;
                }
            }
        }
        let list: Vec<String> = per_index
            .iter()
            .map(|(i, (n, bytes))| {
                format!(
                    "{i} {:.2} ({:.0} B)",
                    *n as f64 / r.usages.len() as f64,
                    *bytes as f64 / *n as f64
                )
            })
            .collect();
        println!("  {:<28} {}", r.name, list.join(", "));
    }

    let n = &rows[0];
    let e = &rows[1];
    println!(
        "\n1M submissions/month at list prices (on-demand, us-east-1: $0.625/M WRU, $0.125/M RRU):\n  \
         all new leads:      ${:.2} (${:.2} table writes + ${:.2} GSI writes + ${:.2} reads)\n  \
         all existing leads: ${:.2}",
        n.usd_per_million(),
        n.mean(|u| u.write_units as f64) * USD_PER_WRITE_UNIT * 1e6,
        n.mean(|u| u.gsi_write_units as f64) * USD_PER_WRITE_UNIT * 1e6,
        n.mean(|u| u.read_units) * USD_PER_READ_UNIT * 1e6,
        e.usd_per_million(),
    );
    println!("  (storage, PITR backups and the Lambda/API Gateway side are not included)\n");
    Ok(())
}

fn clock_now(clock: &FixedClock) -> time::OffsetDateTime {
    use shared_core::clock::Clock;
    clock.now()
}

fn short_table(name: &str) -> &str {
    name.rsplit('-').next().unwrap_or(name)
}

// ---------------------------------------------------------------------------------------------
// Binary size

fn binary_size(release: &Path) -> anyhow::Result<()> {
    let size = |name: &str| -> anyhow::Result<u64> {
        let p = release.join(name);
        Ok(std::fs::metadata(&p)
            .with_context(|| format!("{} (built by the bench)", p.display()))?
            .len())
    };
    let li = size("lead-intake")?;
    let hello = size("hello")?;
    println!(
        "Binary size (release profile, strip = \"symbols\"; host {} build)",
        std::env::consts::ARCH
    );
    println!(
        "  lead-intake bootstrap  {:>10} bytes  ({:.2} MiB)",
        li,
        li as f64 / 1048576.0
    );
    println!(
        "  hello-world baseline   {:>10} bytes  ({:.2} MiB)",
        hello,
        hello as f64 / 1048576.0
    );
    println!(
        "  (sam/cargo-lambda build the same profile for arm64 (Graviton); this is the host figure)\n"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Cold start

const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";

/// A stand-in for the Lambda Runtime API: reports when (and on which path) each connection's
/// first request arrives, then holds the connection open without answering, as the real API
/// does until an invocation comes.
async fn runtime_api() -> anyhow::Result<(u16, mpsc::UnboundedReceiver<(Instant, String)>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                    if head.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let at = Instant::now();
                let line = String::from_utf8_lossy(&head);
                let path = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let _ = tx.send((at, path.clone()));
                if path != NEXT_PATH {
                    // An init error report: answer it so the process can exit.
                    let _ = stream
                        .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}")
                        .await;
                }
                // Hold the connection until the process is killed.
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    Ok((port, rx))
}

/// The environment Lambda gives a function, plus the function's own.
fn lambda_env(
    port: u16,
    name: &str,
    function_env: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = function_env.clone();
    // Lambda does not set this: the measurement must not be spared the SDK's IMDS fallbacks.
    env.remove("AWS_EC2_METADATA_DISABLED");
    for (k, v) in [
        ("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}")),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "1".into()),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2025/01/01/[1]0123456789abcdef".into(),
        ),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "AKIDBENCHBENCHBENCH0".into()),
        (
            "AWS_SECRET_ACCESS_KEY",
            "bench-secret-bench-secret-bench-secret00".into(),
        ),
        ("AWS_SESSION_TOKEN", "bench-session-token".into()),
        ("LAMBDA_TASK_ROOT", "/var/task".into()),
        ("TZ", ":UTC".into()),
    ] {
        env.insert(k.to_string(), v);
    }
    env.into_iter().collect()
}

async fn one_cold_start(
    binary: &Path,
    env: &[(String, String)],
    polls: &mut mpsc::UnboundedReceiver<(Instant, String)>,
) -> anyhow::Result<Duration> {
    while polls.try_recv().is_ok() {}
    let mut cmd = tokio::process::Command::new(binary);
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("spawning {}", binary.display()))?;
    let first = tokio::time::timeout(Duration::from_secs(10), polls.recv()).await;
    let _ = child.kill().await;
    match first {
        Ok(Some((at, path))) if path == NEXT_PATH => Ok(at.duration_since(start)),
        Ok(Some((_, path))) => bail!("{} called {path} instead of polling", binary.display()),
        Ok(None) => bail!("runtime API stand-in stopped"),
        Err(_) => bail!("{} never polled the runtime API", binary.display()),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn cold_start(release: &Path) -> anyhow::Result<()> {
    let (port, mut polls) = runtime_api().await?;
    let template = infra::local::load_local_template("bench")?;
    // An endpoint nothing listens on: init must not make a network call.
    let li_env = infra::local::local_function_env(&template, "lead-intake", "http://127.0.0.1:9")?;
    let li = (
        release.join("lead-intake"),
        lambda_env(port, "lead-intake", &li_env),
    );
    let hello = (
        release.join("hello"),
        lambda_env(port, "hello", &BTreeMap::new()),
    );

    // One untimed run each: page cache warm for both, as it is for the rest.
    one_cold_start(&hello.0, &hello.1, &mut polls).await?;
    one_cold_start(&li.0, &li.1, &mut polls).await?;

    let (mut th, mut tl) = (Vec::new(), Vec::new());
    for i in 0..COLD_START_RUNS * 2 {
        // Alternate which goes first in each pair, so drift on this shared machine hits both.
        let hello_turn = (i % 2 == 0) == (i / 2 % 2 == 0);
        if hello_turn {
            th.push(one_cold_start(&hello.0, &hello.1, &mut polls).await?);
        } else {
            tl.push(one_cold_start(&li.0, &li.1, &mut polls).await?);
        }
    }
    th.sort();
    tl.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (mh, ml) = (percentile(&th, 0.5), percentile(&tl, 0.5));
    println!(
        "Cold start: process start -> first runtime-API poll (local stand-in; {} runs each, interleaved)",
        COLD_START_RUNS
    );
    println!("  {:<22} {:>9} {:>9} {:>9}", "", "median", "p90", "min");
    for (name, v) in [("hello-world baseline", &th), ("lead-intake", &tl)] {
        println!(
            "  {:<22} {:>6.2} ms {:>6.2} ms {:>6.2} ms",
            name,
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.9)),
            ms(v[0])
        );
    }
    println!(
        "  ratio of medians: {:.2}x  (goal: at most 2x)",
        ms(ml) / ms(mh)
    );
    Ok(())
}
