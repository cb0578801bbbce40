//! The integration tests' world: an AWS emulator (moto_server) the tests start themselves on a
//! free port, and per test a fresh "stage" whose tables and buckets are created from
//! `template.yaml`, so tests run in parallel and never see each other's data (nor a running
//! `make dev`).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use infra::bootstrap::{create_tables_and_buckets, LocalClients};
use infra::local::{load_local_template, local_function_env};
use infra::seed::{demo_form, ensure_blind_index_key, put_tenant_and_form};
use infra::template::Template;
use lambda_http::{Body, Request, Response};
use shared::blind_index::BlindIndexKey;
use shared::clock::{FixedClock, UlidGenerator};
use shared::config::Env;
use shared::domain::{FormId, FormRecord, TenantId, TenantRecord, TenantStatus};
use shared::dynamo::{DynamoIntakeStore, Item};
use shared::intake::{Intake, IntakeSettings};

pub const WEB_ORIGIN: &str = "http://127.0.0.1:8080";

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The moto_server the project's virtualenv installed (`make test` exports `MOTO_SERVER`).
fn moto_binary() -> PathBuf {
    if let Ok(p) = std::env::var("MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("moto_server")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One emulator per test process, shared by its tests (each test has its own tables).
pub fn emulator_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| start_emulator().expect("moto_server starts (run `make test`)"))
}

fn start_emulator() -> anyhow::Result<String> {
    let port = free_port();
    let moto = moto_binary();
    // The emulator must not outlive this test process: a small shell watches our pid and stops
    // moto when we exit, however we exit.
    let script = format!(
        "'{moto}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
         while kill -0 {pid} 2>/dev/null; do sleep 1; done; kill $m 2>/dev/null",
        moto = moto.display(),
        pid = std::process::id()
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("spawning moto_server")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(format!("http://127.0.0.1:{port}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("moto_server ({}) did not start on port {port}", moto.display())
}

/// Short: stage names end up inside bucket names, which S3 caps at 63 characters.
fn unique_stage() -> String {
    let id = ulid::Ulid::new().to_string().to_lowercase();
    format!("t{}", &id[16..])
}

/// A test's isolated world: its own tables, blind-index key, tenant and form.
pub struct World {
    pub stage: String,
    pub clients: LocalClients,
    pub template: Template,
    pub env: std::collections::BTreeMap<String, String>,
    pub key: BlindIndexKey,
    pub tenant: TenantId,
    pub form: FormRecord,
    pub clock: Arc<FixedClock>,
}

impl World {
    pub async fn new() -> anyhow::Result<World> {
        let endpoint = emulator_endpoint();
        let stage = unique_stage();
        let template = load_local_template(&stage)?;
        let clients = LocalClients::new(endpoint);
        create_tables_and_buckets(&template, &clients.dynamo, &clients.s3).await?;
        let env = local_function_env(&template, "lead-intake", endpoint)?;
        let param = env["BLIND_INDEX_KEY_PARAMETER"].clone();
        ensure_blind_index_key(&clients.ssm, &param).await?;
        let key = shared::secrets::blind_index_key(&clients.ssm, &param).await?;
        let tenant = TenantId::parse("tenant-a")?;
        let form = demo_form(&tenant, &FormId::parse("demo-contact")?, WEB_ORIGIN);
        let world = World {
            stage,
            clients,
            template,
            env,
            key,
            tenant: tenant.clone(),
            form: form.clone(),
            clock: Arc::new(FixedClock::new(time::OffsetDateTime::now_utc())),
        };
        world.put_tenant(&tenant, TenantStatus::Active, &form).await?;
        Ok(world)
    }

    pub async fn put_tenant(
        &self,
        tenant: &TenantId,
        status: TenantStatus,
        form: &FormRecord,
    ) -> anyhow::Result<()> {
        put_tenant_and_form(
            &self.clients,
            &self.template,
            &TenantRecord {
                tenant_id: tenant.clone(),
                status,
            },
            form,
        )
        .await
    }

    pub fn table(&self, logical_id: &str) -> String {
        self.template
            .table_name(logical_id)
            .unwrap_or_else(|| panic!("no table {logical_id}"))
            .to_string()
    }

    /// The function's configuration exactly as the template (resolved for this stage) gives it.
    pub fn intake_config(&self) -> lead_intake::config::Config {
        lead_intake::config::Config::from_env(&Env::from_pairs(self.env.clone()))
            .expect("template env is a valid config")
    }

    pub fn intake(
        &self,
        settings: Option<IntakeSettings>,
    ) -> Intake<DynamoIntakeStore, Arc<FixedClock>, UlidGenerator> {
        let config = self.intake_config();
        Intake::new(
            DynamoIntakeStore::new(self.clients.dynamo.clone(), config.tables),
            self.clock.clone(),
            UlidGenerator,
            self.key.clone(),
            settings.unwrap_or(config.settings),
        )
    }

    /// Every item of a table. Tests only: the code under test never scans.
    pub async fn scan(&self, logical_id: &str) -> Vec<Item> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .clients
                .dynamo
                .scan()
                .table_name(self.table(logical_id))
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return items,
            }
        }
    }

    pub async fn items_with_sk_prefix(&self, logical_id: &str, prefix: &str) -> Vec<Item> {
        self.scan(logical_id)
            .await
            .into_iter()
            .filter(|it| {
                it.get("sk")
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|s| s.starts_with(prefix))
            })
            .collect()
    }
}

/// Reads a sample event of `events/` as JSON, for a test to adjust before use.
pub fn fixture(path: &str) -> serde_json::Value {
    let full = workspace_root().join("events").join(path);
    let text = std::fs::read_to_string(&full)
        .unwrap_or_else(|e| panic!("reading {}: {e}", full.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// Builds the `lambda_http` request API Gateway would hand the function.
pub fn request(event: &serde_json::Value) -> Request {
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event")
}

/// A JSON submission event with `body` and optional header overrides.
pub fn json_submission(body: &serde_json::Value) -> serde_json::Value {
    let mut e = fixture("lead-intake/submit-json.json");
    e["body"] = serde_json::Value::String(body.to_string());
    e
}

pub fn response_json(resp: &Response<Body>) -> serde_json::Value {
    match resp.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap_or(serde_json::Value::Null),
        Body::Binary(b) => serde_json::from_slice(b).unwrap_or(serde_json::Value::Null),
        _ => serde_json::Value::Null,
    }
}

pub fn header<'a>(resp: &'a Response<Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

pub fn s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}
