//! Every function's release binary, run as Lambda runs it, beside a hello-world `lambda_http`
//! function built with the same profile in the same run:
//!
//! - size of the binary;
//! - cold start: process start to its first poll of the Runtime API (a local stand-in,
//!   [`bench::runtime_api`]), with the function's configuration from the template and an AWS
//!   endpoint nothing listens on (init must not call the network);
//! - first invocation after the cold start and warm invocations after it, against the emulator
//!   (moto, tables and secrets as `make dev` creates them): a realistic request of each function
//!   ([`Scenarios`]), every answer checked (2xx, or the event function's success);
//! - peak resident set (`VmHWM` of the process) over those invocations.
//!
//! Runs interleave the binaries (a round visits each once, in a rotating order) so the machine's
//! drift hits all alike; figures are medians over runs, compared as ratios within the run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bench::runtime_api::RuntimeApi;
use integration_tests::{http_event, World};
use serde_json::{json, Value};
use shared_accounts::auth::permissions::Role;
use shared_accounts::dynamo::AccountStore;
use shared_core::clock::UlidGenerator;
use shared_core::config::Env;
use shared_core::error::AppError;
use shared_privacy::dsar::job::{DsarJob, JobDispatcher};
use shared_privacy::dsar::store::DsarStore;

/// The baseline's name in every table.
pub const HELLO: &str = "hello-world";

/// One binary to measure.
#[derive(Debug, Clone)]
pub struct Target {
    /// The function's binary name (`lead-intake`), or [`HELLO`].
    pub name: String,
    pub binary: PathBuf,
    /// `MemorySize` in the template (the baseline: 128).
    pub memory_mb: u32,
    /// `Timeout` in the template (the baseline: 10 s): each invocation's deadline.
    pub timeout: Duration,
}

/// The functions of `functions/*` (their package names), sorted.
pub fn function_names() -> anyhow::Result<Vec<String>> {
    let dir = integration_tests::workspace_root().join("functions");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry?.path();
        if path.join("Cargo.toml").is_file() {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .context("function directory name")?;
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Builds each function on its own (features unified only within the package, as cargo-lambda
/// builds one function) and the baseline, with the release profile.
pub fn build(functions: &[String]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut builds: Vec<Vec<&str>> = functions
        .iter()
        .map(|f| vec!["build", "--release", "-p", f.as_str()])
        .collect();
    builds.push(vec!["build", "--release", "-p", "bench", "--bin", "hello"]);
    for args in builds {
        eprintln!("$ cargo {}", args.join(" "));
        let status = std::process::Command::new(&cargo)
            .args(&args)
            .current_dir(integration_tests::workspace_root())
            .status()
            .context("running cargo")?;
        ensure!(status.success(), "cargo {} failed", args.join(" "));
    }
    Ok(())
}

pub fn targets(release: &Path, functions: &[String]) -> anyhow::Result<Vec<Target>> {
    let template = infra::template::Template::load(infra::template::default_template_path(), &[])?;
    let mut out = vec![Target {
        name: HELLO.into(),
        binary: release.join("hello"),
        memory_mb: 128,
        timeout: Duration::from_secs(10),
    }];
    for f in functions {
        let function = template
            .function(f)
            .with_context(|| format!("{f} is not a function of template.yaml"))?;
        out.push(Target {
            name: f.clone(),
            binary: release.join(f),
            memory_mb: function.memory_mb,
            timeout: Duration::from_secs(function.timeout_s.into()),
        });
    }
    Ok(out)
}

pub fn size(t: &Target) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(&t.binary)
        .with_context(|| format!("{} (built by the bench)", t.binary.display()))?
        .len())
}

/// The environment Lambda gives a function, over the function's own (`function_env`).
fn lambda_env(
    api: &str,
    t: &Target,
    function_env: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut env = function_env.clone();
    // Lambda does not set this: the measurement must not be spared the SDK's IMDS fallbacks.
    env.remove("AWS_EC2_METADATA_DISABLED");
    for (k, v) in [
        ("AWS_LAMBDA_RUNTIME_API", api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", t.name.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", t.memory_mb.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2025/01/01/[$LATEST]0123456789abcdef".into(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", t.name),
        ),
        ("LAMBDA_TASK_ROOT", "/var/task".into()),
        ("TZ", ":UTC".into()),
    ] {
        env.insert(k.to_string(), v);
    }
    // What Lambda sets and the function's environment (the emulator's) may already hold.
    for (k, v) in [
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDBENCHBENCHBENCH0"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "bench-secret-bench-secret-bench-secret00",
        ),
        ("AWS_SESSION_TOKEN", "bench-session-token"),
    ] {
        env.entry(k.to_string()).or_insert_with(|| v.to_string());
    }
    // BENCH_RUST_LOG: the functions' log filter instead of the template's (looking into a
    // figure; the logged bytes per invocation then mean nothing).
    if let Ok(filter) = std::env::var("BENCH_RUST_LOG") {
        env.insert("RUST_LOG".into(), filter);
    }
    env.into_iter().collect()
}

/// A running function process under its own Runtime API stand-in.
struct Process {
    child: tokio::process::Child,
    api: RuntimeApi,
    started: Instant,
    log: PathBuf,
}

impl Process {
    async fn start(t: &Target, function_env: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let api = RuntimeApi::start(t.timeout).await?;
        let env = lambda_env(&api.address(), t, function_env);
        let log = log_path(&t.name)?;
        let out = std::fs::File::create(&log)?;
        let mut cmd = tokio::process::Command::new(&t.binary);
        cmd.env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true);
        let started = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", t.binary.display()))?;
        Ok(Process {
            child,
            api,
            started,
            log,
        })
    }

    /// Peak resident set so far, KiB (`VmHWM` of `/proc/<pid>/status`).
    fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let pid = self.child.id().context("process has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .context("VmHWM in /proc/<pid>/status")
    }

    /// CPU time of every thread so far (`/proc/<pid>/task/*/schedstat`, nanoseconds on a CPU).
    fn cpu(&self) -> anyhow::Result<Duration> {
        let pid = self.child.id().context("process has exited")?;
        let mut ns = 0u64;
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let stat = std::fs::read_to_string(task?.path().join("schedstat")).unwrap_or_default();
            ns += stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        Ok(Duration::from_nanos(ns))
    }

    /// Bytes the function has logged so far (stdout and stderr).
    fn logged(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// An error with the tail of the process's output.
    fn fail(&self, e: anyhow::Error) -> anyhow::Error {
        let out = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = out.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        e.context(format!(
            "output ({}):\n{}",
            self.log.display(),
            tail.join("\n")
        ))
    }
}

fn log_path(name: &str) -> anyhow::Result<PathBuf> {
    let dir = integration_tests::workspace_root().join("target/bench-logs");
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(format!("{name}.log")))
}

const POLL_TIMEOUT: Duration = Duration::from_secs(20);
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);

/// `rounds` cold starts of each target, interleaved: process start → first poll. Sample `r` of
/// every target comes from round `r`.
pub async fn cold_starts(
    targets: &[Target],
    rounds: usize,
) -> anyhow::Result<BTreeMap<String, Vec<Duration>>> {
    let template = infra::local::load_local_template("bench")?;
    let mut envs = BTreeMap::new();
    for t in targets {
        // An endpoint nothing listens on: init must not make a network call.
        let env = if t.name == HELLO {
            BTreeMap::new()
        } else {
            infra::local::local_function_env(&template, &t.name, "http://127.0.0.1:9")?
        };
        envs.insert(t.name.clone(), env);
    }
    let mut out: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    // One untimed start each: the page cache holds every binary, as it does for the rest.
    for round in 0..=rounds {
        for i in 0..targets.len() {
            let t = &targets[(i + round) % targets.len()];
            let mut p = Process::start(t, &envs[&t.name]).await?;
            let polled = p.api.wait_poll(POLL_TIMEOUT).await;
            let polled = match polled {
                Ok(at) => at,
                Err(e) => return Err(p.fail(e.context(format!("{} cold start", t.name)))),
            };
            let took = polled.duration_since(p.started);
            p.stop().await;
            if round > 0 {
                out.entry(t.name.clone()).or_default().push(took);
            }
        }
    }
    Ok(out)
}

/// One target's invocations over the runs.
#[derive(Debug, Default, Clone)]
pub struct Invocations {
    /// The first invocation of each run (right after the cold start).
    pub first: Vec<Duration>,
    /// Every warm invocation (the ones after the first), over all runs.
    pub warm: Vec<Duration>,
    /// Peak resident set of each run's process, KiB.
    pub peak_rss_kib: Vec<u64>,
    /// CPU time of each warm invocation (all threads, from handing out the event to the answer).
    pub cpu_warm: Vec<Duration>,
    /// Bytes logged by each warm invocation.
    pub log_bytes_warm: Vec<u64>,
    /// Each process's first invocation over the median of its warm ones.
    pub first_over_warm: Vec<f64>,
}

/// `runs` processes of each target (interleaved), each answering a first invocation and then
/// `warm` more, against the emulator.
pub async fn invocations(
    targets: &[Target],
    scenarios: &mut Scenarios,
    runs: usize,
    warm: usize,
) -> anyhow::Result<BTreeMap<String, Invocations>> {
    let mut out: BTreeMap<String, Invocations> = BTreeMap::new();
    for run in 0..runs {
        for i in 0..targets.len() {
            let t = &targets[(i + run) % targets.len()];
            let events = scenarios.events(&t.name, 1 + warm).await?;
            let env = scenarios.env(&t.name)?;
            let mut p = Process::start(t, &env).await?;
            let result: anyhow::Result<()> = async {
                let entry = out.entry(t.name.clone()).or_default();
                for (n, event) in events.iter().enumerate() {
                    p.api.wait_poll(POLL_TIMEOUT).await?;
                    let (cpu, logged) = (p.cpu()?, p.logged());
                    let (took, body) = p.api.invoke(event, INVOKE_TIMEOUT).await?;
                    let (cpu, logged) = (p.cpu()?.saturating_sub(cpu), p.logged() - logged);
                    scenarios
                        .check(&t.name, &body)
                        .with_context(|| format!("{} invocation {}", t.name, n + 1))?;
                    if n == 0 {
                        entry.first.push(took);
                    } else {
                        entry.warm.push(took);
                        entry.cpu_warm.push(cpu);
                        entry.log_bytes_warm.push(logged);
                    }
                }
                // Once the last answer is in, the process is idle: its peak is final.
                entry.peak_rss_kib.push(p.peak_rss_kib()?);
                let n = entry.warm.len();
                let this_warm = bench::stats::median(&entry.warm[n - warm..]);
                let this_first = entry.first[entry.first.len() - 1];
                entry
                    .first_over_warm
                    .push(this_first.as_secs_f64() / this_warm.as_secs_f64());
                Ok(())
            }
            .await;
            if let Err(e) = result {
                return Err(p.fail(e));
            }
            p.stop().await;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Scenarios: what each function is asked, against one emulated world.

/// Records the jobs the privacy-request lifecycle hands to the worker.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<DsarJob>>>);

impl JobDispatcher for Recorder {
    async fn dispatch(&self, job: &DsarJob) -> Result<(), AppError> {
        self.0.lock().expect("recorder").push(job.clone());
        Ok(())
    }
}

/// The emulated world the functions run against, and the requests they are sent.
pub struct Scenarios {
    w: World,
    owner_token: String,
    lead_ids: Vec<String>,
    login_email: String,
    /// The lifecycle in process, to file and approve the requests whose jobs the worker runs.
    dsar: dsar::App<shared_mail::SesMailer, Recorder>,
    jobs: Recorder,
    counter: u64,
}

/// The bench user's password (hashed once at setup).
const PASSWORD: &str = "correct horse battery staple 42";
const LEADS: usize = 100;

impl Scenarios {
    /// A world as `make dev` makes one (tables, keys, secrets, sender identity, plans), a tenant
    /// with a form, an owner who logs in with a password, a member's access token, and
    /// [`LEADS`] leads submitted through the intake.
    pub async fn setup() -> anyhow::Result<Scenarios> {
        let w = World::new().await?;
        let auth = w.auth_app().await?;
        infra::seed::seed_plans(&w.direct, &w.template).await?;

        // The owner who logs in.
        let email = shared_core::domain::Email::parse("bench.owner@example.com")
            .map_err(anyhow::Error::msg)?;
        let user = shared_accounts::User {
            user_id: shared_core::domain::UserId::parse("us-bench-owner")?,
            tenant_id: w.tenant.clone(),
            email: email.clone(),
            name: "Bench Owner".into(),
            phone: None,
            role: Role::Owner,
            password_hash: shared_accounts::auth::password::hash_password(PASSWORD)?,
            email_verified: true,
            created_at: time::OffsetDateTime::now_utc(),
            mfa: shared_accounts::Mfa::default(),
            last_login: None,
            policy: None,
        };
        w.put_direct("TenantsTable", shared_accounts::dynamo::user_item(&user))
            .await;
        w.put_direct(
            "TenantsTable",
            shared_accounts::dynamo::login_item(&w.key.email(&email), &w.tenant, &user.user_id),
        )
        .await;
        let (_, owner_token) = w.member(&auth, &w.tenant, Role::Owner, "bench").await;

        // Leads to list and export, submitted as the intake takes them.
        let intake = w.intake(None);
        let mut lead_ids = Vec::new();
        // The in-process intake's logs and metrics are not the measured functions': kept aside.
        let (_logs, _quiet) = shared_core::telemetry::capture();
        for i in 0..LEADS {
            w.clock.advance(time::Duration::seconds(3));
            let mut e = integration_tests::json_submission(&json!({
                "email": format!("lead{i}@example.com"),
                "name": format!("Lead {i}"),
                "company": "Acme Logistics",
                "message": "We are a team of 25 people looking for a CRM that handles consent properly.",
            }));
            // As many visitors: the per-address limit stays out of the way.
            e["requestContext"]["http"]["sourceIp"] = json!(format!("192.0.2.{}", i % 250));
            let resp = lead_intake::handle(&intake, integration_tests::request(&e)).await;
            ensure!(resp.status() == 201, "seeding a lead: {}", resp.status());
            let v = integration_tests::response_json(&resp);
            lead_ids.push(v["lead_id"].as_str().unwrap_or_default().to_string());
        }
        drop(_quiet);
        let env = infra::local::local_function_env(&w.template, "dsar", &w.endpoint)?;
        let config = dsar::config::Config::from_env(&Env::from_pairs(env))?;
        let jobs = Recorder::default();
        let dsar = dsar::App {
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
            mailer: shared_mail::SesMailer::new(
                infra::emulator::sesv2_client(&w.endpoint),
                config.sender_email.clone(),
            ),
            dispatcher: jobs.clone(),
            keys: w.key.clone(),
            verifier: w.token_verifier("dsar").await?,
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
        Ok(Scenarios {
            w,
            owner_token,
            lead_ids,
            login_email: email.as_str().to_string(),
            dsar,
            jobs,
            counter: 0,
        })
    }

    /// One read of a function's secrets against the emulator (`GetParameters` of the blind-index
    /// key and the token keys, as a function's first invocation sends it): median of `n`.
    pub async fn secrets_read(&self, n: usize) -> anyhow::Result<Duration> {
        let env = self.env("dsar")?;
        let names = [
            env["BLIND_INDEX_KEY_PARAMETER"].as_str(),
            env["JWT_PUBLIC_KEYS_PARAMETER"].as_str(),
        ];
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            shared_core::secrets::parameters(&self.w.direct.ssm, names).await?;
            times.push(t.elapsed());
        }
        Ok(bench::stats::median(&times))
    }

    /// The function's environment: the template's, resolved for this world, pointed at the
    /// emulator.
    pub fn env(&self, name: &str) -> anyhow::Result<BTreeMap<String, String>> {
        if name == HELLO {
            return Ok(BTreeMap::new());
        }
        infra::local::local_function_env(&self.w.template, name, &self.w.endpoint)
    }

    fn unique(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// `n` invocations for `name`: each a realistic request of the function, fresh where the
    /// function would refuse a repeat (a new person submitting, a new signature).
    pub async fn events(&mut self, name: &str, n: usize) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let u = self.unique();
            out.push(self.event(name, u).await?);
        }
        Ok(out)
    }

    async fn event(&mut self, name: &str, u: u64) -> anyhow::Result<Value> {
        let token = self.owner_token.clone();
        Ok(match name {
            // Any API request: the baseline answers "hello".
            HELLO => api("GET", "/", None, None),
            // A new person submits the demo form (JSON, as a script posts it).
            "lead-intake" => {
                let mut e = integration_tests::json_submission(&json!({
                    "email": format!("person{u}.{}@example.com", std::process::id()),
                    "name": "Ana Pop",
                    "company": "Pop SRL",
                    "message": "Please call me about pricing.",
                    "consent_marketing": true,
                }));
                e["requestContext"]["http"]["sourceIp"] = json!(format!("198.51.100.{}", u % 250));
                e
            }
            // A login with the right password.
            "auth" => api(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"email": self.login_email, "password": PASSWORD})),
            ),
            // The first page of the tenant's leads.
            "leads-api" => api("GET", "/v1/leads", Some(&token), None),
            // A CSV export of the tenant's leads (written to S3 before the answer).
            "lead-transfers" => api(
                "POST",
                "/v1/exports",
                Some(&token),
                Some(json!({"format": "csv"})),
            ),
            // The controller's queue of privacy requests.
            "dsar" => api("GET", "/v1/privacy/requests", Some(&token), None),
            // A signed webhook delivery: the subscription of this world's tenant changed.
            "billing-webhook" => self.webhook(u)?,
            // An upload S3 reports that no attachment record claims: removed.
            "attachment-guard" => self.upload(u).await?,
            // The daily run of the deadlines digest.
            "dsar-deadlines" => scheduled("DsarDeadlinesDaily"),
            // The access job of a lead's request, filed by the tenant and approved.
            "dsar-worker" => {
                let (_logs, _quiet) = shared_core::telemetry::capture();
                self.access_job(u).await?
            }
            // SES reports a permanent bounce.
            "mail-events" => json!({
                "version": "0",
                "id": format!("bench-{u}"),
                "detail-type": "Email Bounced",
                "source": "aws.ses",
                "account": "123456789012",
                "time": shared_core::clock::rfc3339(time::OffsetDateTime::now_utc()),
                "region": "us-east-1",
                "resources": [],
                "detail": {
                    "eventType": "Bounce",
                    "bounce": {
                        "bounceType": "Permanent",
                        "bounceSubType": "General",
                        "bouncedRecipients": [{"emailAddress": format!("gone{u}@example.com")}],
                        "timestamp": shared_core::clock::rfc3339(time::OffsetDateTime::now_utc()),
                        "feedbackId": format!("bench-feedback-{u}"),
                    },
                    "mail": {"messageId": format!("bench-message-{u}")},
                },
            }),
            // The daily retention run.
            "retention-cleanup" => scheduled("RetentionCleanupFunctionDaily"),
            // The change stream's batch of a new person's submission: its lead and submission
            // become events (the owner's instant notification is sent; no endpoint registered).
            "outbound" => {
                let text = integration_tests::fixture("outbound/stream-new-lead.json")
                    .to_string()
                    .replace("demo-tenant", self.w.tenant.as_str())
                    .replace("ld-sample", &format!("ld-bench{u:08}"))
                    .replace("sb-sample", &format!("sb-bench{u:08}"))
                    .replace(
                        "c4ca4238a0b923820dcc509a6f75849b",
                        &format!("bench-lead-{u}"),
                    )
                    .replace(
                        "c81e728d9d4c2f636f067f89cc14862c",
                        &format!("bench-sub-{u}"),
                    );
                serde_json::from_str(&text)?
            }
            // The tenant's webhook endpoints.
            "webhooks" => api("GET", "/v1/webhooks", Some(&token), None),
            other => bail!("no scenario for function {other}: add one in bench/src/functions.rs"),
        })
    }

    fn webhook(&self, u: u64) -> anyhow::Result<Value> {
        let mut event: Value =
            integration_tests::fixture("billing-webhook/customer.subscription.updated.json");
        event["id"] = json!(format!("evt_bench{u:016}"));
        event["created"] = json!(time::OffsetDateTime::now_utc().unix_timestamp());
        if let Some(meta) = event.pointer_mut("/data/object/metadata") {
            meta["tenant_id"] = json!(self.w.tenant.as_str());
        }
        let body = event.to_string();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut e = integration_tests::fixture("billing-webhook/webhook-request.json");
        e["body"] = json!(body);
        e["headers"]["stripe-signature"] = json!(billing_webhook::stripe::signature_header(
            infra::seed::LOCAL_STRIPE_WEBHOOK_SECRET,
            now,
            body.as_bytes(),
        ));
        Ok(e)
    }

    /// Files an access request for a seeded lead on its behalf (identity attested), approves
    /// it, and returns the job the lifecycle hands to the worker.
    async fn access_job(&self, u: u64) -> anyhow::Result<Value> {
        let subject = format!("lead{}@example.com", u as usize % LEADS);
        let call = |method: &str, path: &str, body: Option<Value>| {
            let req = integration_tests::request(&api(method, path, Some(&self.owner_token), body));
            async move {
                let resp = dsar::handle(&self.dsar, req).await;
                (
                    resp.status().as_u16(),
                    integration_tests::response_json(&resp),
                )
            }
        };
        let (status, filed) = call(
            "POST",
            "/v1/privacy/requests/on-behalf",
            Some(
                json!({"type": "access", "email": subject, "identity_attested": "signed_document"}),
            ),
        )
        .await;
        ensure!(status == 201, "filing a request: {status} {filed}");
        let id = filed["request_id"].as_str().context("request id")?;
        let (status, approved) =
            call("POST", &format!("/v1/privacy/requests/{id}/approve"), None).await;
        ensure!(status == 200, "approving a request: {status} {approved}");
        let job = self
            .jobs
            .0
            .lock()
            .expect("recorder")
            .iter()
            .rev()
            .find(|j| j.request_id == id)
            .cloned()
            .context("the approved request's job")?;
        Ok(serde_json::to_value(job)?)
    }

    async fn upload(&self, u: u64) -> anyhow::Result<Value> {
        let bucket = self
            .w
            .template
            .bucket_name("AttachmentsBucket")
            .context("no AttachmentsBucket")?
            .to_string();
        let lead =
            shared_core::domain::LeadId::parse(&self.lead_ids[u as usize % self.lead_ids.len()])?;
        let attachment = shared_leads::transfers::AttachmentId::parse(&format!("at-bench-{u}"))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let key = shared_core::keys::attachment_object(&self.w.tenant, &lead, &attachment);
        self.w
            .direct
            .s3
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .body(b"%PDF-1.4 bench".to_vec().into())
            .send()
            .await
            .context("uploading an object")?;
        Ok(self.w.object_created_event(&bucket, &key))
    }

    /// Whether an answer is the function's success.
    pub fn check(&self, name: &str, body: &[u8]) -> anyhow::Result<()> {
        let v: Value = serde_json::from_slice(body).context("an answer that is not JSON")?;
        match v.get("statusCode").and_then(Value::as_u64) {
            Some(code) => ensure!(
                (200..300).contains(&code),
                "{name} answered {code}: {}",
                v.get("body").and_then(Value::as_str).unwrap_or_default()
            ),
            None => {
                if name == "dsar-worker" {
                    ensure!(v["status"] == "completed", "{name} answered {v}");
                }
                if name == "outbound" {
                    ensure!(
                        v["batchItemFailures"].as_array().is_some_and(Vec::is_empty),
                        "{name} answered {v}"
                    );
                }
            }
        }
        Ok(())
    }
}

/// An API Gateway v2 request, with `body` as JSON or none.
fn api(method: &str, path: &str, bearer: Option<&str>, body: Option<Value>) -> Value {
    let mut e = http_event(method, path, bearer);
    match body {
        Some(b) => {
            e["headers"]["content-type"] = json!("application/json");
            e["body"] = json!(b.to_string());
        }
        None => {
            e["body"] = Value::Null;
            if let Some(h) = e["headers"].as_object_mut() {
                h.remove("content-type");
            }
        }
    }
    e
}

/// An EventBridge schedule's event, now.
fn scheduled(rule: &str) -> Value {
    json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": shared_core::clock::rfc3339(time::OffsetDateTime::now_utc()),
        "region": "us-east-1",
        "resources": [format!("arn:aws:events:us-east-1:123456789012:rule/{rule}")],
        "detail": {},
    })
}
