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
use shared_core::blind_index::BlindIndexKey;
use shared_core::clock::{FixedClock, UlidGenerator};
use shared_core::config::Env;
use shared_core::domain::{FormId, FormRecord, TenantId, TenantRecord, TenantStatus};
use shared_core::dynamo::Item;
use shared_leads::dynamo::DynamoIntakeStore;
use shared_leads::intake::{Intake, IntakeSettings};

pub const WEB_ORIGIN: &str = "http://127.0.0.1:8080";

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The command that starts the emulator: `MOTO_SERVER` (set by `make test`), else the project
/// venv's Python running `infra/scripts/moto_server.py` (moto_server with requests serialized,
/// see that file for why).
fn moto_command() -> String {
    if let Ok(cmd) = std::env::var("MOTO_SERVER") {
        return cmd;
    }
    let root = workspace_root();
    format!(
        "'{}' '{}'",
        root.join(".venv/bin/python").display(),
        root.join("infra/scripts/moto_server.py").display()
    )
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
    let moto = moto_command();
    // The emulator must not outlive this test process: a small shell watches our pid and stops
    // moto when we exit, however we exit.
    let script = format!(
        "{moto} -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
         while kill -0 {pid} 2>/dev/null; do sleep 1; done; kill $m 2>/dev/null",
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
    bail!("moto_server ({moto}) did not start on port {port}")
}

/// Short: stage names end up inside bucket names, which S3 caps at 63 characters.
fn unique_stage() -> String {
    let id = ulid::Ulid::new().to_string().to_lowercase();
    format!("t{}", &id[16..])
}

/// A test's isolated world: its own tables, blind-index key, tenant and form.
pub struct World {
    pub stage: String,
    /// The clients the functions under test use: the emulator's, or a fault proxy's
    /// ([`World::via`]).
    pub clients: LocalClients,
    /// Where the functions' clients point (`clients`' endpoint).
    pub endpoint: String,
    /// Clients straight to the emulator: what the test seeds and inspects with, never faulted.
    pub direct: LocalClients,
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
        let key = shared_core::secrets::blind_index_key(&clients.ssm, &param).await?;
        let tenant = TenantId::parse("tenant-a")?;
        let form = demo_form(&tenant, &FormId::parse("demo-contact")?, WEB_ORIGIN);
        let world = World {
            stage,
            direct: clients.clone(),
            endpoint: endpoint.to_string(),
            clients,
            template,
            env,
            key,
            tenant: tenant.clone(),
            form: form.clone(),
            clock: Arc::new(FixedClock::new(time::OffsetDateTime::now_utc())),
        };
        world
            .put_tenant(&tenant, TenantStatus::Active, &form)
            .await?;
        Ok(world)
    }

    /// This world (same tables, key, tenant, form, clock) with the functions' clients pointed at
    /// `endpoint` (a fault proxy in front of the emulator); seeding and inspection stay direct.
    pub fn via(&self, endpoint: &str) -> World {
        World {
            stage: self.stage.clone(),
            clients: LocalClients::new(endpoint),
            endpoint: endpoint.to_string(),
            direct: self.direct.clone(),
            template: self.template.clone(),
            env: self.env.clone(),
            key: self.key.clone(),
            tenant: self.tenant.clone(),
            form: self.form.clone(),
            clock: self.clock.clone(),
        }
    }

    /// An SES client straight to the emulator (seeding sender identities and secrets).
    fn direct_ses(&self) -> aws_sdk_sesv2::Client {
        infra::emulator::sesv2_client(emulator_endpoint())
    }

    pub async fn put_tenant(
        &self,
        tenant: &TenantId,
        status: TenantStatus,
        form: &FormRecord,
    ) -> anyhow::Result<()> {
        put_tenant_and_form(
            &self.direct,
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

    pub fn intake(&self, settings: Option<IntakeSettings>) -> Intake<DynamoIntakeStore> {
        self.intake_with_client(self.clients.dynamo.clone(), settings)
    }

    /// An intake whose store talks through `client` (a metered one, say) instead of the
    /// world's own client. Built as `main.rs` builds it (quota alerts through the emulator's
    /// SES; a test that expects them verifies the sender first, as `auth_app` does).
    pub fn intake_with_client(
        &self,
        client: aws_sdk_dynamodb::Client,
        settings: Option<IntakeSettings>,
    ) -> Intake<DynamoIntakeStore> {
        let mut config = self.intake_config();
        if let Some(s) = settings {
            config.settings = s;
        }
        lead_intake::intake(
            &config,
            client,
            self.platform_mailer("lead-intake")
                .expect("lead-intake's mailer from the template"),
            self.clock.clone(),
            UlidGenerator,
            self.key.clone(),
        )
    }

    /// A DynamoDB meter that knows this world's tables and their indexes, from the template.
    pub fn meter(&self) -> shared_core::metering::Meter {
        use shared_core::metering::{IndexSchema, Projection, TableSchema};
        let names = |keys: &[infra::template::KeyElement]| -> Vec<String> {
            keys.iter().map(|k| k.attribute_name.clone()).collect()
        };
        let tables = self
            .template
            .tables
            .iter()
            .map(|t| TableSchema {
                name: t.name.clone(),
                key_attributes: names(&t.key_schema),
                indexes: t
                    .global_secondary_indexes
                    .iter()
                    .map(|g| IndexSchema {
                        name: g.index_name.clone(),
                        key_attributes: names(&g.key_schema),
                        projection: match g.projection_type.as_str() {
                            "KEYS_ONLY" => Projection::KeysOnly,
                            "INCLUDE" => Projection::Include(g.non_key_attributes.clone()),
                            _ => Projection::All,
                        },
                    })
                    .collect(),
            })
            .collect();
        shared_core::metering::Meter::new(tables)
    }

    /// Every item of a table. Tests only: the code under test never scans.
    pub async fn scan(&self, logical_id: &str) -> Vec<Item> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .direct
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
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

// ---------------------------------------------------------------- auth

impl World {
    /// The auth function's app over this world's tables, the emulator's SES, and the world's
    /// clock; its configuration exactly as the template gives it.
    pub async fn auth_app(&self) -> anyhow::Result<auth::App<shared_mail::SesMailer>> {
        let env = local_function_env(&self.template, "auth", &self.endpoint)?;
        let config = auth::config::Config::from_env(&Env::from_pairs(env))?;
        let ses = infra::emulator::sesv2_client(&self.endpoint);
        infra::seed::ensure_secrets(&self.direct, &self.direct_ses(), &self.template).await?;
        let ssm = &self.direct.ssm;
        let signer = shared_accounts::auth::jwt::TokenSigner::from_json(
            &shared_core::secrets::parameter(ssm, &config.jwt_signing_key_parameter).await?,
        )?;
        let verifier = shared_accounts::auth::jwt::VerifyingKeys::from_json(
            &shared_core::secrets::parameter(ssm, &config.jwt_public_keys_parameter).await?,
        )?;
        verifier.require_published(&signer)?;
        Ok(auth::App {
            store: shared_accounts::dynamo::AccountStore::new(
                self.clients.dynamo.clone(),
                config.tables.clone(),
                config.settings.security_log_days,
            ),
            mailer: shared_mail::SesMailer::new(ses, config.sender_email.clone()),
            keys: self.key.clone(),
            signer,
            verifier,
            clock: self.clock.clone(),
            ids: Arc::new(UlidGenerator),
            app_base_url: config.app_base_url.clone(),
            settings: config.settings.clone(),
        })
    }

    /// auth's access-token private key, from the parameter the template names in auth's
    /// configuration (and no other function's): the tests mint tokens with it as auth would.
    pub async fn token_signer(&self) -> anyhow::Result<shared_accounts::auth::jwt::TokenSigner> {
        infra::seed::ensure_secrets(&self.direct, &self.direct_ses(), &self.template).await?;
        let env = local_function_env(&self.template, "auth", emulator_endpoint())?;
        let name = env
            .get("JWT_SIGNING_KEY_PARAMETER")
            .context("auth has no JWT_SIGNING_KEY_PARAMETER")?;
        shared_accounts::auth::jwt::TokenSigner::from_json(
            &shared_core::secrets::parameter(&self.direct.ssm, name).await?,
        )
    }

    /// The public keys `function` verifies access tokens with, as its configuration names them.
    pub async fn token_verifier(
        &self,
        function: &str,
    ) -> anyhow::Result<shared_accounts::auth::jwt::VerifyingKeys> {
        infra::seed::ensure_secrets(&self.direct, &self.direct_ses(), &self.template).await?;
        let env = local_function_env(&self.template, function, emulator_endpoint())?;
        let name = env
            .get("JWT_PUBLIC_KEYS_PARAMETER")
            .with_context(|| format!("{function} has no JWT_PUBLIC_KEYS_PARAMETER"))?;
        shared_accounts::auth::jwt::VerifyingKeys::from_json(
            &shared_core::secrets::parameter(&self.direct.ssm, name).await?,
        )
    }

    /// A password reset through the auth function, as its user does it: the request, the
    /// link read back from the emailed message, the confirmation. Panics unless each step works.
    pub async fn reset_password(&self, email: &str, new_password: &str) {
        let app = self.auth_app().await.expect("auth app");
        let body = serde_json::json!({ "email": email });
        let req = api_event("POST", "/v1/auth/password-reset", Some(&body), None);
        assert_eq!(auth::handle(&app, req).await.status(), 202);
        // moto builds its list of sent emails from live state and answers 500 now and then
        // while other tests write: ask again.
        let mut mails = Err(anyhow::anyhow!("not read"));
        for _ in 0..20 {
            mails = infra::emulator::sent_emails(emulator_endpoint());
            if mails.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mail = mails
            .expect("reading the emulator's emails")
            .into_iter()
            .rev()
            .find(|m| {
                m.subject == "Reset your password"
                    && m.to.iter().any(|t| t.eq_ignore_ascii_case(email))
            })
            .expect("the reset email");
        let token = infra::emulator::token_in(&mail.body).expect("a link in the reset email");
        let body = serde_json::json!({ "token": token, "new_password": new_password });
        let req = api_event("POST", "/v1/auth/password-reset/confirm", Some(&body), None);
        let resp = auth::handle(&app, req).await;
        assert_eq!(resp.status(), 200, "{}", response_json(&resp));
    }

    /// Makes an ended session live again, as if the change that ended it had committed and the
    /// function had stopped before its second step (ending the sessions) ran.
    pub async fn lose_revocation(&self, session: &shared_core::domain::SessionId) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let key = shared_core::keys::session(session);
        self.direct
            .dynamo
            .update_item()
            .table_name(self.table("TenantsTable"))
            .key("pk", AttributeValue::S(key.pk))
            .key("sk", AttributeValue::S(key.sk))
            .update_expression("REMOVE revoked_at")
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
            .expect("session revocation undone");
    }

    /// Emails the emulator accepted for `to`, oldest first.
    pub fn emails_to(&self, to: &str) -> Vec<infra::emulator::SentEmail> {
        infra::emulator::sent_emails(emulator_endpoint())
            .expect("reading the emulator's emails")
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to)))
            .collect()
    }
}

/// An API Gateway v2 event for the auth function.
pub fn api_event(
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    bearer: Option<&str>,
) -> Request {
    let mut e = fixture("auth/login.json");
    e["rawPath"] = serde_json::json!(path);
    e["requestContext"]["http"]["method"] = serde_json::json!(method);
    e["requestContext"]["http"]["path"] = serde_json::json!(path);
    e["routeKey"] = serde_json::json!(format!("{method} {path}"));
    e["pathParameters"] = serde_json::json!({});
    match body {
        Some(b) => e["body"] = serde_json::json!(b.to_string()),
        None => {
            e["body"] = serde_json::Value::Null;
            e["headers"]
                .as_object_mut()
                .expect("headers")
                .remove("content-type");
        }
    }
    if let Some(t) = bearer {
        e["headers"]["authorization"] = serde_json::json!(format!("Bearer {t}"));
    }
    request(&e)
}

// ---------------------------------------------------------------- billing

/// The billing function's app as `main.rs` builds it, over this world's tables, the emulator's
/// SES, and the world's clock; its configuration exactly as the template gives it. Seeds the
/// local plans and the local webhook secret (`whsec_local_dev`).
pub type BillingApp = billing_webhook::App<
    shared_billing::dynamo::DynamoBillingStore,
    shared_mail::SesMailer,
    shared_accounts::dynamo::AccountStore,
>;

impl World {
    pub async fn billing_app(&self) -> anyhow::Result<BillingApp> {
        self.billing_app_with_client(self.clients.dynamo.clone())
            .await
    }

    /// [`World::billing_app`] whose store talks through `client` (a metered one, say).
    pub async fn billing_app_with_client(
        &self,
        client: aws_sdk_dynamodb::Client,
    ) -> anyhow::Result<BillingApp> {
        let env = local_function_env(&self.template, "billing-webhook", &self.endpoint)?;
        let config = billing_webhook::config::Config::from_env(&Env::from_pairs(env))?;
        let ses = infra::emulator::sesv2_client(&self.endpoint);
        infra::seed::ensure_secrets(&self.direct, &self.direct_ses(), &self.template).await?;
        infra::seed::seed_plans(&self.direct, &self.template).await?;
        let ssm = &self.direct.ssm;
        let stripe = billing_webhook::stripe::Stripe::from_parameter(
            &shared_core::secrets::parameter(ssm, &config.stripe_secrets_parameter).await?,
            config.settings.tolerance_secs,
        )?;
        let verifier = self.token_verifier("billing-webhook").await?;
        Ok(billing_webhook::App {
            store: shared_billing::dynamo::DynamoBillingStore::new(
                client.clone(),
                config.tables.clone(),
            ),
            mailer: shared_mail::SesMailer::new(ses, config.sender_email.clone()),
            api_keys: Some(shared_accounts::api_keys::DynamoApiKeys::new(
                client.clone(),
                config.tenants_table.clone(),
            )),
            directory: shared_accounts::dynamo::AccountStore::new(
                client,
                shared_accounts::dynamo::AccountTables {
                    tenants: config.tenants_table.clone(),
                    security_log: String::new(),
                    ops: config.tables.ops.clone(),
                },
                0,
            ),
            stripe,
            verifier,
            clock: self.clock.clone(),
            settings: config.settings.clone(),
        })
    }
}

impl World {
    /// [`World::billing_app`] whose Stripe API client calls `api_base` (a stand-in) with the
    /// secret key of the stage's SSM parameter, as `main.rs` reads it, and these time limits.
    pub async fn billing_app_with_stripe_api(
        &self,
        api_base: &str,
        policy: billing_webhook::stripe::CallPolicy,
    ) -> anyhow::Result<BillingApp> {
        let mut app = self.billing_app().await?;
        let env = local_function_env(&self.template, "billing-webhook", &self.endpoint)?;
        let config = billing_webhook::config::Config::from_env(&Env::from_pairs(env))?;
        let key = billing_webhook::stripe::SecretKey::new(
            &shared_core::secrets::parameter(&self.direct.ssm, &config.stripe_secret_key_parameter)
                .await?,
        )?;
        app.stripe = app
            .stripe
            .clone()
            .with_api(billing_webhook::stripe::StripeApi::new(
                api_base, key, policy,
            )?);
        Ok(app)
    }
}

/// Serves `app` over plain HTTP on `listener`, as API Gateway would hand it requests: each
/// request becomes an HTTP API (v2) event. What a provider's webhooks reach in the tests.
pub fn serve_billing_over_http(listener: tokio::net::TcpListener, app: Arc<BillingApp>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let app = app.clone();
            tokio::spawn(async move {
                let mut raw = Vec::new();
                let mut buf = [0u8; 16 * 1024];
                let head_end = loop {
                    if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => raw.extend_from_slice(&buf[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
                let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
                let first: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
                let mut headers = serde_json::Map::new();
                for (k, v) in lines.filter_map(|l| l.split_once(':')) {
                    headers.insert(k.trim().to_ascii_lowercase(), serde_json::json!(v.trim()));
                }
                let length: usize = headers
                    .get("content-length")
                    .and_then(|v| v.as_str())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                while raw.len() < head_end + length {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => raw.extend_from_slice(&buf[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&raw[head_end..head_end + length]).to_string();
                let (method, target) = (
                    first.first().copied().unwrap_or("GET"),
                    first.get(1).copied().unwrap_or("/"),
                );
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let event = serde_json::json!({
                    "version": "2.0",
                    "routeKey": "$default",
                    "rawPath": path,
                    "rawQueryString": query,
                    "headers": headers,
                    "requestContext": {
                        "accountId": "123456789012", "apiId": "api", "domainName": "127.0.0.1",
                        "domainPrefix": "api",
                        "http": { "method": method, "path": path, "protocol": "HTTP/1.1",
                                  "sourceIp": "127.0.0.1", "userAgent": "test" },
                        "requestId": "req-over-http", "routeKey": "$default", "stage": "$default",
                        "time": "29/Nov/2026:12:00:00 +0000", "timeEpoch": 0
                    },
                    "body": body,
                    "isBase64Encoded": false
                });
                let resp = billing_webhook::handle(&app, request(&event)).await;
                let body: Vec<u8> = match resp.body() {
                    Body::Text(t) => t.clone().into_bytes(),
                    Body::Binary(b) => b.clone(),
                    _ => Vec::new(),
                };
                let head = format!(
                    "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    resp.status().as_u16(),
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(&body).await;
                let _ = conn.shutdown().await;
            });
        }
    });
}

/// Captures this thread's log lines while the guard lives (see `shared_core::telemetry::capture`).
pub fn capture_logs() -> (
    shared_core::telemetry::CapturedLogs,
    shared_core::telemetry::CaptureGuard,
) {
    shared_core::telemetry::capture()
}

// ---------------------------------------------------------------- bodies that are not UTF-8

/// Bodies that are not UTF-8, as a client may send them: lone invalid bytes, a truncated
/// sequence, an overlong encoding, an encoded UTF-16 surrogate, and invalid bytes inside
/// otherwise well-formed JSON and form text (where a parser that skips bad bytes would find
/// fields).
pub const NOT_UTF8_BODIES: &[&[u8]] = &[
    b"\xff\xfe\xfd",
    b"\xc0\xaf",
    b"{\"email\":\"ana\xff@example.com\",\"name\":\"Ana\"}",
    b"{\"email\":\"ana@example.com\",\"message\":\"\xe2\x82\"}",
    b"{\"name\":\"\xed\xa0\x80\"}",
    b"email=ana%40example.com&name=\xc3\x28",
    b"email=\xfe&refresh_token=\x80",
];

/// The content types a body is sent with: JSON and an HTML form post.
pub const BODY_CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/x-www-form-urlencoded",
    "application/json; charset=utf-8",
];

/// An API Gateway v2 event for `method` and `path` (path parameters left for the function to
/// match from the raw path, as the local router does), with an optional bearer token.
pub fn http_event(method: &str, path: &str, bearer: Option<&str>) -> serde_json::Value {
    let mut e = fixture("auth/login.json");
    e["rawPath"] = serde_json::json!(path);
    e["requestContext"]["http"]["method"] = serde_json::json!(method);
    e["requestContext"]["http"]["path"] = serde_json::json!(path);
    e["routeKey"] = serde_json::json!(format!("{method} {path}"));
    e["pathParameters"] = serde_json::json!({});
    let headers = e["headers"].as_object_mut().expect("headers");
    headers.remove("authorization");
    if let Some(t) = bearer {
        headers.insert(
            "authorization".into(),
            serde_json::json!(format!("Bearer {t}")),
        );
    }
    e
}

/// `event` as API Gateway delivers a body that is not text: `bytes` base64-encoded with
/// `isBase64Encoded: true`, under `content_type`.
pub fn with_base64_body(mut event: serde_json::Value, bytes: &[u8], content_type: &str) -> Request {
    use base64::Engine;
    event["body"] = serde_json::json!(base64::engine::general_purpose::STANDARD.encode(bytes));
    event["isBase64Encoded"] = serde_json::json!(true);
    event["headers"]["content-type"] = serde_json::json!(content_type);
    event["headers"]["content-length"] = serde_json::json!(bytes.len().to_string());
    let req = request(&event);
    assert!(
        matches!(req.body(), Body::Binary(b) if b == bytes),
        "lambda_http hands the handler the decoded bytes"
    );
    req
}

/// A route template with its `{parameters}` replaced: by `values` where given, else by an id
/// that names nothing.
pub fn concrete_path(template: &str, values: &[(&str, &str)]) -> String {
    template
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => values
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_string())
                    .unwrap_or_else(|| "id-nothing".to_string()),
                None => seg.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// Asserts that `resp` is a client error (4xx) answered in the JSON error shape
/// `{"error":{"code","message"}}`; `what` names the request in the failure message.
pub fn assert_json_client_error(resp: &Response<Body>, what: &str) {
    let status = resp.status().as_u16();
    let body = response_json(resp);
    assert!(
        (400..500).contains(&status),
        "{what}: answered {status}, not a 4xx: {body}"
    );
    assert!(
        header(resp, "content-type").is_some_and(|c| c.starts_with("application/json")),
        "{what}: {status} is not JSON: {:?}",
        resp.body()
    );
    assert!(
        body["error"]["code"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
            && body["error"]["message"].is_string(),
        "{what}: {status} without the error shape: {body}"
    );
}

/// An item as text, its maps' keys sorted at every depth (a map's order is not the item's).
fn canonical_item(item: &Item) -> String {
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    fn value(v: &Av) -> String {
        match v {
            Av::M(m) => map(m),
            Av::L(l) => format!("[{}]", l.iter().map(value).collect::<Vec<_>>().join(",")),
            other => format!("{other:?}"),
        }
    }
    fn map(m: &std::collections::HashMap<String, Av>) -> String {
        let sorted: std::collections::BTreeMap<_, _> = m.iter().collect();
        let parts: Vec<String> = sorted
            .iter()
            .map(|(k, v)| format!("{k:?}:{}", value(v)))
            .collect();
        format!("{{{}}}", parts.join(","))
    }
    map(item)
}

impl World {
    /// Every item of every table of this stage, as sorted debug strings: compare two snapshots
    /// to prove a request stored nothing.
    pub async fn snapshot(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut all = std::collections::BTreeMap::new();
        let logical: Vec<String> = self
            .template
            .tables
            .iter()
            .map(|t| t.logical_id.clone())
            .collect();
        for id in logical {
            let mut items: Vec<String> = self.scan(&id).await.iter().map(canonical_item).collect();
            items.sort();
            all.insert(id, items);
        }
        all
    }
}

// ---------------------------------------------------------------- what reaches the logs

/// The "no personal data in logs" check, which an empty capture cannot pass: first the capture
/// must hold every fragment of `must_hold` (what the calls under test must have logged: their
/// route, a message, an id they carry; at least one), then none of `must_not_hold` (the personal
/// data and secrets the calls handled; at least one). Returns the captured text.
pub fn assert_logs_hold_without(
    logs: &shared_core::telemetry::CapturedLogs,
    must_hold: &[&str],
    must_not_hold: &[&str],
) -> String {
    assert!(
        !must_hold.is_empty(),
        "name what the calls must have logged, or an empty capture would pass"
    );
    assert!(!must_not_hold.is_empty(), "name what must not be logged");
    let text = logs.text();
    assert!(!text.trim().is_empty(), "the capture caught no log line");
    for expected in must_hold {
        assert!(
            !expected.is_empty() && text.contains(expected),
            "the capture lacks {expected:?}, which the calls must log:\n{text}"
        );
    }
    for secret in must_not_hold {
        assert!(!secret.is_empty(), "an empty needle proves nothing");
        assert!(!text.contains(secret), "the logs hold {secret:?}:\n{text}");
    }
    text
}

// ---------------------------------------------------------------- races

/// Runs `futures` concurrently on this task, joined at once (each is polled before any
/// finishes), and returns their outputs in order.
pub async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.into_iter().map(|r| r.expect("completed")).collect()
}

/// Of the requests `meter` recorded (and forgets), the writes sent and the writes DynamoDB
/// refused (a failed condition: the request reached the store, so the read-side pre-check had
/// let it through and the condition itself said no).
pub fn writes_sent_and_refused(meter: &shared_core::metering::Meter) -> (usize, usize) {
    let writes: Vec<_> = meter
        .take()
        .into_iter()
        .filter(|r| {
            matches!(
                r.operation.as_str(),
                "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems"
            )
        })
        .collect();
    let refused = writes
        .iter()
        .filter(|r| !r.status.is_some_and(|s| (200..300).contains(&s)))
        .count();
    (writes.len(), refused)
}

// ---------------------------------------------------------------- outbound mail

impl World {
    /// The mailer `function`'s `main.rs` builds (`SesMailer::platform`): through the platform's
    /// configuration set, never to an address on the send-suppression list of this world's ops
    /// table; its sender and set exactly as the template gives them, the world's clock.
    pub fn platform_mailer(&self, function: &str) -> anyhow::Result<shared_mail::SesMailer> {
        let endpoint = self.endpoint.as_str();
        let env = local_function_env(&self.template, function, endpoint)?;
        let var = |name: &str| {
            env.get(name)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("{function} has no {name}"))
        };
        Ok(shared_mail::SesMailer::platform(
            infra::emulator::sesv2_client(endpoint),
            var("SENDER_EMAIL")?,
            var("SES_CONFIGURATION_SET")?,
            shared_mail::SendSuppression {
                gate: shared_mail::dynamo::MailGate::new(
                    self.clients.dynamo.clone(),
                    var("OPS_TABLE")?,
                ),
                key: self.key.clone(),
                clock: self.clock.clone(),
            },
        ))
    }
}

// ---------------------------------------------------------------- attachment-guard

impl World {
    /// The attachment-guard function's app over this world's table and bucket, its
    /// configuration exactly as the template gives it.
    pub fn attachment_guard(&self) -> attachment_guard::App {
        let env = local_function_env(&self.template, "attachment-guard", &self.endpoint)
            .expect("attachment-guard is in the template");
        let config = attachment_guard::config::Config::from_env(&Env::from_pairs(env))
            .expect("template env is a valid config");
        attachment_guard::App {
            dynamo: self.clients.dynamo.clone(),
            s3: self.clients.s3.clone(),
            leads_table: config.leads_table,
            attachments_bucket: config.attachments_bucket,
        }
    }

    /// The notification S3 sends when `key` is created in `bucket` (`events/attachment-guard/`),
    /// its key URL-encoded as S3 encodes it.
    pub fn object_created_event(&self, bucket: &str, key: &str) -> serde_json::Value {
        let mut e = fixture("attachment-guard/object-created.json");
        let record = &mut e["Records"][0]["s3"];
        record["bucket"]["name"] = serde_json::json!(bucket);
        record["bucket"]["arn"] = serde_json::json!(format!("arn:aws:s3:::{bucket}"));
        let encoded: Vec<String> = key
            .split('/')
            .map(|segment| form_urlencoded::byte_serialize(segment.as_bytes()).collect())
            .collect();
        let encoded = encoded.join("/");
        record["object"]["key"] = serde_json::json!(encoded);
        e
    }
}

// ---------------------------------------------------------------- team members and leads-api

/// A session opened at `now` as a login opens it (7 days idle, 30 days in all), its refresh
/// secret unknown to anyone: the tests that need a member act with an access token only.
pub fn live_session(
    sid: &shared_core::domain::SessionId,
    user: &shared_core::domain::UserId,
    tenant: &TenantId,
    now: time::OffsetDateTime,
) -> shared_accounts::Session {
    shared_accounts::Session {
        session_id: sid.clone(),
        user_id: user.clone(),
        tenant_id: tenant.clone(),
        refresh_hash: shared_accounts::auth::tokens::hash_secret(
            &shared_accounts::auth::tokens::new_secret(),
        ),
        previous_hashes: vec![],
        created_at: now,
        last_used_at: now,
        idle_expires_at: now + time::Duration::days(7),
        absolute_expires_at: now + time::Duration::days(30),
        revoked_at: None,
        ip: None,
        user_agent: None,
    }
}

impl World {
    /// A verified member of `tenant` with `role`, written straight to the tables (direct), with a
    /// live session opened under the user's credential epoch, as a login opens it, and an access
    /// token for it minted with auth's key.
    pub async fn member(
        &self,
        auth: &auth::App<shared_mail::SesMailer>,
        tenant: &TenantId,
        role: shared_accounts::auth::permissions::Role,
        who: &str,
    ) -> (shared_accounts::User, String) {
        use shared_core::clock::Clock;
        let now = self.clock.now();
        let user = shared_accounts::User {
            user_id: shared_core::domain::UserId::parse(&auth.new_id("us")).expect("a user id"),
            tenant_id: tenant.clone(),
            email: shared_core::domain::Email::parse(&format!("{who}.{}@example.com", self.stage))
                .expect("an address"),
            name: who.to_string(),
            phone: None,
            role,
            // Never used: members made here never log in with a password.
            password_hash: "unused".into(),
            email_verified: true,
            created_at: now,
            mfa: shared_accounts::Mfa::default(),
            last_login: None,
            policy: None,
        };
        self.put_direct("TenantsTable", shared_accounts::dynamo::user_item(&user))
            .await;
        let sid = shared_core::domain::SessionId::parse(&auth.new_id("se")).expect("a session id");
        let session = live_session(&sid, &user.user_id, tenant, now);
        let epoch = auth
            .store
            .user_with_epoch(tenant, &user.user_id)
            .await
            .expect("reading the user")
            .map_or(0, |(_, e)| e);
        let mut item = shared_accounts::dynamo::session_item(&session);
        item.insert("cred_epoch".into(), shared_core::dynamo::n(epoch));
        self.put_direct("TenantsTable", item).await;
        let token = auth.access_token(&user, &sid, epoch, now);
        (user, token)
    }

    /// Writes `item` to a table straight (never through a fault proxy).
    pub async fn put_direct(&self, logical_id: &str, item: Item) {
        self.direct
            .dynamo
            .put_item()
            .table_name(self.table(logical_id))
            .set_item(Some(item))
            .send()
            .await
            .expect("put item");
    }

    /// The leads-api function's app as `main.rs` builds it, over this world's clients (a fault
    /// proxy's, for a world made with [`World::via`]).
    pub async fn leads_app(&self) -> leads_api::App {
        let env =
            local_function_env(&self.template, "leads-api", &self.endpoint).expect("leads-api env");
        let config = leads_api::config::Config::from_env(&Env::from_pairs(env)).expect("config");
        let verifier = self.token_verifier("leads-api").await.expect("public keys");
        leads_api::App {
            store: shared_leads::dynamo::LeadsStore::new(
                self.clients.dynamo.clone(),
                config.tables.clone(),
            ),
            s3: self.clients.s3.clone(),
            attachments_bucket: config.attachments_bucket.clone(),
            keys: self.key.clone(),
            verifier,
            clock: self.clock.clone(),
            ids: Arc::new(UlidGenerator),
            api_base_url: config.api_base_url.clone(),
            intake: leads_api::release_intake(
                &config,
                self.clients.dynamo.clone(),
                self.clock.clone(),
                Arc::new(UlidGenerator),
                self.key.clone(),
            ),
        }
    }
}

// ---------------------------------------------------------------- policy versions

/// The privacy-policy and terms versions in force in the template (`PolicyVersion`,
/// `TermsVersion` defaults): what every sign-up and accepted invitation of the suites accepts.
/// `tests/auth.rs::signup_records_the_accepted_versions_and_refuses_others` checks they are the
/// configured ones.
pub const POLICY_VERSION: &str = "2026-12-01";
pub const TERMS_VERSION: &str = "2026-12-01";

/// The embed snippet's `GET …/challenge?key=…` (`events/lead-intake/challenge.json`) for `form`,
/// issued for the idempotency key `key` (none: a challenge good for any post).
pub fn challenge_event(form: &str, key: Option<&str>) -> serde_json::Value {
    let mut e = fixture("lead-intake/challenge.json");
    let path = format!("/v1/forms/{form}/challenge");
    e["rawPath"] = serde_json::json!(path);
    e["requestContext"]["http"]["path"] = serde_json::json!(path);
    e["pathParameters"]["formId"] = serde_json::json!(form);
    match key {
        Some(k) => {
            e["rawQueryString"] = serde_json::json!(format!("key={k}"));
            e["queryStringParameters"] = serde_json::json!({ "key": k });
        }
        None => {
            e["rawQueryString"] = serde_json::json!("");
            e.as_object_mut()
                .expect("an event object")
                .remove("queryStringParameters");
        }
    }
    e
}
