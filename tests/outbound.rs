//! The outbound channel (docs/outbound.md) against the emulator: the leads table's change stream
//! read through the Streams API (as Lambda's mapping reads it), its events, signed deliveries to
//! a local sink, retries, and the refusal of private addresses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use integration_tests::*;
use serde_json::{json, Value};
use shared_accounts::auth::permissions::Role;
use shared_core::clock::{rfc3339, Clock};
use shared_core::config::Env;
use shared_core::domain::TenantId;
use shared_outbound::dynamo::{self as store, Endpoint, EndpointStatus};
use shared_outbound::events::EventType;
use shared_privacy::inventory::{self, Table};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------- a local webhook receiver

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// A small HTTP/1.1 receiver on loopback: records every request and answers `status` (with a
/// `Location` when it is a redirect).
#[derive(Clone)]
struct Sink {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<Mutex<u16>>,
    /// How long it takes to answer (a slow receiver).
    delay: Arc<Mutex<std::time::Duration>>,
}

impl Sink {
    async fn start() -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = Sink {
            port,
            got: Arc::default(),
            status: Arc::new(Mutex::new(200)),
            delay: Arc::default(),
        };
        let s = sink.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let mut lines = head.split("\r\n");
                    let path = lines
                        .next()
                        .and_then(|l| l.split(' ').nth(1))
                        .unwrap_or("")
                        .to_string();
                    let headers: HashMap<String, String> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    let len: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let body = buf[head_end..].to_vec();
                    s.got.lock().unwrap().push(Received {
                        path,
                        headers,
                        body,
                    });
                    let delay = *s.delay.lock().unwrap();
                    tokio::time::sleep(delay).await;
                    let status = *s.status.lock().unwrap();
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nlocation: http://169.254.169.254/latest/meta-data/\r\nconnection: close\r\n\r\nok"
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                });
            }
        });
        sink
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    fn answer(&self, status: u16) {
        *self.status.lock().unwrap() = status;
    }

    fn answer_after(&self, delay: std::time::Duration) {
        *self.delay.lock().unwrap() = delay;
    }
}

// ---------------------------------------------------------------- the function under test

struct Outbound {
    w: World,
    app: outbound::App<shared_mail::WithUnsubscribe<shared_mail::SesMailer>>,
    stream: infra::streams::StreamReader,
    queue_url: String,
}

/// Names resolved by the tests' resolver (anything else: not found).
fn resolver(names: &[(&str, &str)]) -> outbound::deliver::ResolveFn {
    let names: HashMap<String, Vec<SocketAddr>> = names
        .iter()
        .map(|(n, a)| (n.to_string(), vec![a.parse().unwrap()]))
        .collect();
    Arc::new(move |host: String, port: u16| {
        let found = names.get(&host).cloned();
        Box::pin(async move {
            match found {
                Some(addrs) => Ok(addrs
                    .into_iter()
                    .map(|mut a| {
                        a.set_port(port);
                        a
                    })
                    .collect()),
                None => match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => Ok(vec![SocketAddr::new(ip, port)]),
                    Err(_) => Err(std::io::Error::other("no such name")),
                },
            }
        })
    })
}

async fn outbound(sink: &Sink, names: &[(&str, &str)]) -> Outbound {
    let w = World::new().await.unwrap();
    infra::bootstrap::create_queues(&w.template, &w.direct.sqs)
        .await
        .unwrap();
    // The sender identity (notifications), as `make dev` seeds it.
    infra::seed::ensure_secrets(
        &w.direct,
        &infra::emulator::sesv2_client(emulator_endpoint()),
        &w.template,
    )
    .await
    .unwrap();
    let env = infra::local::local_function_env(&w.template, "outbound", &w.endpoint).unwrap();
    let mut config = outbound::config::Config::from_env(&Env::from_pairs(env)).unwrap();
    // The test's sink, as `make dev` allows its own (WebhookLoopbackPorts).
    config.local.loopback_http_ports = vec![sink.port];
    let app = outbound::App {
        dynamo: w.clients.dynamo.clone(),
        sqs: w.clients.sqs.clone(),
        tenants_table: config.tenants_table.clone(),
        ops_table: config.ops_table.clone(),
        retry_queue_url: config.retry_queue_url.clone(),
        deliverer: outbound::deliver::Deliverer::new(config.local.clone(), resolver(names))
            .unwrap(),
        clock: w.clock.clone(),
        jitter: Arc::new(|| 0.5),
        mailer: shared_mail::WithUnsubscribe {
            inner: w.platform_mailer("outbound").unwrap(),
            key: w.key.clone(),
            api_base_url: config.api_base_url.clone(),
            scope: shared_mail::unsubscribe::UnsubscribeScope::Platform,
        },
        app_base_url: config.app_base_url.clone(),
        inline_budget: outbound::INLINE_BUDGET,
    };
    let stream = infra::streams::StreamReader::open(
        w.direct.streams.clone(),
        &w.direct.dynamo,
        &w.table("LeadsTable"),
    )
    .await
    .unwrap();
    Outbound {
        queue_url: config.retry_queue_url,
        w,
        app,
        stream,
    }
}

impl Outbound {
    /// Reads the stream's new records and hands them to the function as one batch.
    async fn run_stream(&mut self) -> (outbound::BatchReport, Vec<Value>) {
        let records = self.stream.poll(1000).await.unwrap();
        let event = json!({ "Records": records });
        let (report, failure) = outbound::process_stream(&self.app, &event).await;
        assert_eq!(failure, None, "{report:?}");
        (report, records)
    }

    async fn register(&self, url: &str, secret: &str, types: &[EventType]) -> Endpoint {
        let now = rfc3339(self.w.clock.now());
        let ep = Endpoint {
            tenant: self.w.tenant.clone(),
            id: format!("wh-{}", ulid::Ulid::new().to_string().to_lowercase()),
            url: url.to_string(),
            event_types: types.to_vec(),
            enabled: true,
            status: EndpointStatus::Active,
            secret: secret.to_string(),
            previous_secret: None,
            created_at: now.clone(),
            updated_at: now,
            failing_since: None,
            rev: 0,
        };
        self.w.put_direct("TenantsTable", ep.to_item()).await;
        ep
    }

    async fn submit(&self, email: &str) -> Value {
        let intake = self.w.intake(None);
        let resp = lead_intake::handle(
            &intake,
            request(&json_submission(&json!({
                "email": email, "name": "Ana", "message": "a private answer",
                "consent_marketing": true
            }))),
        )
        .await;
        assert_eq!(resp.status(), 201);
        response_json(&resp)
    }

    async fn delivery(&self, ep: &Endpoint, event_id: &str) -> store::Delivery {
        store::delivery(
            &self.w.direct.dynamo,
            &self.app.ops_table,
            &self.w.tenant,
            &ep.id,
            event_id,
        )
        .await
        .unwrap()
        .expect("a delivery")
    }

    async fn queued(&self) -> (i64, i64) {
        let a = self
            .w
            .direct
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let get = |n: &str| {
            a.attributes()
                .and_then(|m| m.get(&aws_sdk_sqs::types::QueueAttributeName::from(n)))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (
            get("ApproximateNumberOfMessages"),
            get("ApproximateNumberOfMessagesDelayed"),
        )
    }
}

fn kinds(r: &outbound::BatchReport) -> Vec<&str> {
    r.events.iter().map(|(_, k)| k.as_str()).collect()
}

// ---------------------------------------------------------------- the change stream

#[tokio::test]
async fn the_stream_gives_each_change_its_event_with_a_stable_id() {
    let sink = Sink::start().await;
    let mut o = outbound(&sink, &[]).await;
    let ep = o
        .register(&sink.url(), "whsec_stream", &EventType::ALL)
        .await;

    let submitted = o.submit("stream-a@example.com").await;
    let (report, records) = o.run_stream().await;
    assert_eq!(
        kinds(&report),
        vec!["lead.created", "submission.created"],
        "{report:?}"
    );
    assert_eq!(report.delivered, 2);
    let got = sink.received();
    let bodies: Vec<Value> = got
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let sub = bodies
        .iter()
        .find(|b| b["type"] == "submission.created")
        .expect("submission.created delivered");
    assert_eq!(sub["data"]["submission_id"], submitted["submission_id"]);
    assert_eq!(sub["data"]["lead_id"], submitted["lead_id"]);
    assert_eq!(sub["tenant_id"], json!(o.w.tenant.as_str()));
    assert_eq!(sub["form_id"], json!("demo-contact"));
    for r in &got {
        let text = String::from_utf8_lossy(&r.body);
        assert!(
            !text.contains("a private answer") && !text.contains("stream-a@"),
            "{text}"
        );
        assert_eq!(
            r.headers["webhook-id"],
            serde_json::from_slice::<Value>(&r.body).unwrap()["id"]
        );
    }

    // The same records handed over again (a retried batch): the same ids, nothing sent twice.
    let (again, _) = {
        let event = json!({ "Records": records });
        outbound::process_stream(&o.app, &event).await
    };
    assert_eq!(again.events, report.events);
    assert_eq!(
        sink.received().len(),
        2,
        "a redelivered record sends nothing again"
    );

    // A second submission of the same person: one submission.created, no lead event (the
    // lead's counters changed, not its stage or owner).
    o.submit("stream-a@example.com").await;
    let (report, _) = o.run_stream().await;
    assert_eq!(kinds(&report), vec!["submission.created"], "{report:?}");

    // The workspace moves the lead and deletes it.
    let auth = o.w.auth_app().await.unwrap();
    let (_, token) =
        o.w.member(&auth, &o.w.tenant, Role::Owner, "stream-owner")
            .await;
    let leads = o.w.leads_app().await;
    let lead_path = format!("/v1/leads/{}", submitted["lead_id"].as_str().unwrap());
    let current = leads_api::handle(&leads, api_event("GET", &lead_path, None, Some(&token))).await;
    let version = response_json(&current)["version"].clone();
    let resp = leads_api::handle(
        &leads,
        api_event(
            "PATCH",
            &lead_path,
            Some(&json!({"version": version, "stage": "contacted"})),
            Some(&token),
        ),
    )
    .await;
    assert_eq!(resp.status(), 200, "{:?}", response_json(&resp));
    let (report, _) = o.run_stream().await;
    assert!(kinds(&report).contains(&"lead.updated"), "{report:?}");
    let updated = sink
        .received()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .find(|b| b["type"] == "lead.updated")
        .expect("lead.updated delivered");
    assert_eq!(
        updated["data"]["changes"]["stage"],
        json!({"from": "new", "to": "contacted"})
    );
    let resp = leads_api::handle(&leads, api_event("DELETE", &lead_path, None, Some(&token))).await;
    assert_eq!(resp.status(), 204, "{:?}", response_json(&resp));
    let (report, _) = o.run_stream().await;
    assert!(kinds(&report).contains(&"lead.deleted"), "{report:?}");
    assert!(!kinds(&report).contains(&"lead.erased"));
    let _ = ep;
}

// ---------------------------------------------------------------- signatures

/// Verifies a delivery as a receiver would, with Python's standard library (not this project's
/// code): HMAC-SHA256 over "<t>.<body>" compared with each v1 of the header.
fn python_verifies(secret: &str, header: &str, body: &[u8]) -> bool {
    let dir = std::env::temp_dir().join(format!("outbound-verify-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("body"), body).unwrap();
    let script = r#"
import hmac, hashlib, sys
secret, header, path = sys.argv[1], sys.argv[2], sys.argv[3]
body = open(path, "rb").read()
parts = dict(p.split("=", 1) for p in header.split(",") if p.startswith("t="))
t = parts["t"]
sigs = [p.split("=", 1)[1] for p in header.split(",") if p.startswith("v1=")]
expected = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
sys.exit(0 if any(hmac.compare_digest(expected, s) for s in sigs) else 1)
"#;
    let python = workspace_root().join(".venv/bin/python");
    let status = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(secret)
        .arg(header)
        .arg(dir.join("body"))
        .status()
        .expect("python runs");
    let _ = std::fs::remove_dir_all(&dir);
    status.success()
}

#[tokio::test]
async fn deliveries_are_signed_so_a_receiver_in_another_language_verifies_them() {
    let sink = Sink::start().await;
    let mut o = outbound(&sink, &[]).await;
    let mut ep = o
        .register(
            &sink.url(),
            "whsec_python_check",
            &[EventType::SubmissionCreated],
        )
        .await;
    o.submit("signed@example.com").await;
    let (report, _) = o.run_stream().await;
    assert_eq!(report.delivered, 1, "{report:?}");
    let got = sink.received();
    assert_eq!(got.len(), 1, "only the subscribed type");
    let r = &got[0];
    assert_eq!(r.path, "/hook");
    assert_eq!(r.headers["content-type"], "application/json");
    let sig = &r.headers["webhook-signature"];
    assert!(sig.starts_with("t="), "{sig}");
    assert!(python_verifies("whsec_python_check", sig, &r.body));
    assert!(!python_verifies("whsec_other", sig, &r.body));
    let mut tampered = r.body.clone();
    tampered.push(b' ');
    assert!(!python_verifies("whsec_python_check", sig, &tampered));

    // A rotation's overlap window: both secrets sign.
    let now = o.w.clock.now().unix_timestamp();
    ep.previous_secret = Some(("whsec_python_check".into(), now + 3600));
    ep.secret = "whsec_rotated".into();
    o.w.put_direct("TenantsTable", ep.to_item()).await;
    o.submit("signed-2@example.com").await;
    o.run_stream().await;
    let r = sink.received().pop().unwrap();
    let sig = &r.headers["webhook-signature"];
    assert!(python_verifies("whsec_rotated", sig, &r.body));
    assert!(python_verifies("whsec_python_check", sig, &r.body));
}

// ---------------------------------------------------------------- retries

#[tokio::test]
async fn a_failing_endpoint_is_retried_with_backoff_for_a_day_then_marked_failing() {
    let sink = Sink::start().await;
    let mut o = outbound(&sink, &[]).await;
    let ep = o
        .register(&sink.url(), "whsec_retry", &[EventType::SubmissionCreated])
        .await;
    let auth = o.w.auth_app().await.unwrap();
    let (owner, _) =
        o.w.member(&auth, &o.w.tenant, Role::Owner, "retry-owner")
            .await;
    sink.answer(500);
    o.submit("retry@example.com").await;
    let (report, _) = o.run_stream().await;
    assert_eq!((report.delivered, report.failed_attempts), (0, 1));
    let event_id = report
        .events
        .iter()
        .find(|(_, k)| k == "submission.created")
        .unwrap()
        .0
        .clone();
    let d = o.delivery(&ep, &event_id).await;
    assert_eq!(
        (d.state.as_str(), d.attempts, d.last_status),
        ("pending", 1, Some(500))
    );
    // The retry waits in the queue (delayed), not in a sleeping function.
    assert_eq!(o.queued().await, (0, 1));

    // Too early: the retry hops through the queue again and nothing is sent.
    let first = outbound::Retry {
        tenant: o.w.tenant.clone(),
        webhook_id: ep.id.clone(),
        event_id: event_id.clone(),
        not_before: o.w.clock.now().unix_timestamp() + 45,
    };
    outbound::retry_one(&o.app, &first).await.unwrap();
    assert_eq!(sink.received().len(), 1);
    assert_eq!(o.queued().await.1, 2);

    // Attempts go on, each wait longer, until a day has passed: then the delivery has failed
    // and the endpoint is marked failing (nothing more is sent to it).
    let mut attempts = 1;
    let mut waits = vec![];
    let start = o.w.clock.now();
    while o.delivery(&ep, &event_id).await.state == "pending" {
        let wait = shared_outbound::retry::wait_after(attempts, 0.5);
        waits.push(wait);
        o.w.clock
            .advance(time::Duration::seconds(wait.as_secs() as i64));
        outbound::retry_one(
            &o.app,
            &outbound::Retry {
                not_before: o.w.clock.now().unix_timestamp(),
                ..first.clone()
            },
        )
        .await
        .unwrap();
        attempts += 1;
        assert!(attempts < 40);
    }
    assert!(o.w.clock.now() - start >= time::Duration::hours(24));
    assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
    let d = o.delivery(&ep, &event_id).await;
    assert_eq!(d.state, "failed");
    assert_eq!(d.attempts as u32, attempts);
    assert_eq!(sink.received().len() as u32, attempts);
    let stored = store::endpoint(
        &o.w.direct.dynamo,
        &o.app.tenants_table,
        &o.w.tenant,
        &ep.id,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(stored.status, EndpointStatus::Failing);
    // The owner is told, once (the new-lead email of the submission is the other one).
    let told: Vec<_> =
        o.w.emails_to(owner.email.as_str())
            .into_iter()
            .filter(|m| m.subject == "A webhook endpoint of your workspace is failing")
            .collect();
    assert_eq!(told.len(), 1);
    assert!(told[0].body.contains(&ep.id));
    sink.answer(200);
    o.submit("retry-2@example.com").await;
    o.run_stream().await;
    assert_eq!(
        sink.received().len() as u32,
        attempts,
        "a failing endpoint gets nothing"
    );
}

// ---------------------------------------------------------------- server-side request forgery

#[tokio::test]
async fn a_slow_endpoint_holds_the_stream_no_longer_than_the_inline_budget() {
    let sink = Sink::start().await;
    let mut o = outbound(&sink, &[]).await;
    o.app.inline_budget = std::time::Duration::from_secs(1);
    o.register(&sink.url(), "slow-secret", &[EventType::SubmissionCreated])
        .await;
    for i in 0..5 {
        o.submit(&format!("slow{i}@example.com")).await;
    }
    // Each attempt takes 0.7 s: attempts start only while the batch is under its 1 s budget,
    // so at most two run in the batch and the rest go to the retry queue at once.
    sink.answer_after(std::time::Duration::from_millis(700));
    let started = std::time::Instant::now();
    let (report, _) = o.run_stream().await;
    let held = started.elapsed();
    assert_eq!(report.delivered + report.queued, 5, "{report:?}");
    assert!(report.queued >= 3, "{report:?}");
    assert_eq!(report.failed_attempts, 0);
    assert!(
        held < std::time::Duration::from_secs(5),
        "five attempts one after another would hold it 3.5 s; it held {held:?}"
    );
    assert_eq!(
        o.queued().await,
        (report.queued as i64, 0),
        "due at once, not delayed"
    );

    // The queue's batch attempts them (as the mapping hands it over): each event once.
    sink.answer_after(std::time::Duration::ZERO);
    let messages =
        o.w.direct
            .sqs
            .receive_message()
            .queue_url(&o.queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
    let records: Vec<Value> = messages
        .messages()
        .iter()
        .map(|m| json!({"eventSource": "aws:sqs", "messageId": m.message_id(), "body": m.body()}))
        .collect();
    assert_eq!(records.len(), report.queued);
    let answer = outbound::handle(&o.app, &json!({ "Records": records }))
        .await
        .unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]));
    let mut ids: Vec<String> = sink
        .received()
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "every event delivered");
    assert_eq!(sink.received().len(), 5, "and each once");
}

#[tokio::test]
async fn deliveries_never_reach_private_loopback_or_metadata_addresses() {
    let sink = Sink::start().await;
    // A name that resolves to a private address (set up after registration: rebinding), and
    // one that resolves to the sink's loopback address.
    let mut o = outbound(
        &sink,
        &[
            ("hooks.rebind.example", "10.0.0.5:0"),
            ("sink.example", "127.0.0.1:0"),
        ],
    )
    .await;
    let urls = [
        "https://hooks.rebind.example/in".to_string(),
        "https://169.254.169.254/latest/meta-data/".to_string(),
        "https://[fd00:ec2::254]/".to_string(),
        // The sink's own port, but by name and over https: loopback is allowed only as the
        // local stage's literal http sink.
        format!("https://sink.example:{}/hook", sink.port),
        // Loopback on a port the stage does not allow.
        format!("http://127.0.0.1:{}/hook", sink.port + 1),
    ];
    let mut eps = vec![];
    for u in &urls {
        eps.push(
            o.register(u, "whsec_ssrf", &[EventType::SubmissionCreated])
                .await,
        );
    }
    o.submit("ssrf@example.com").await;
    let (report, _) = o.run_stream().await;
    assert_eq!(report.delivered, 0, "{report:?}");
    let event_id = report
        .events
        .iter()
        .find(|(_, k)| k == "submission.created")
        .unwrap()
        .0
        .clone();
    for (ep, u) in eps.iter().zip(&urls) {
        let d = o.delivery(ep, &event_id).await;
        assert!(
            matches!(
                d.last_error.as_deref(),
                Some("refused_address" | "refused_url")
            ),
            "{u}: {d:?}"
        );
        assert_eq!(d.last_status, None, "{u}: never connected");
    }
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let sink = Sink::start().await;
    let mut o = outbound(&sink, &[]).await;
    let ep = o
        .register(
            &sink.url(),
            "whsec_redirect",
            &[EventType::SubmissionCreated],
        )
        .await;
    sink.answer(302);
    o.submit("redirect@example.com").await;
    let (report, _) = o.run_stream().await;
    assert_eq!(report.delivered, 0);
    let event_id = report
        .events
        .iter()
        .find(|(_, k)| k == "submission.created")
        .unwrap()
        .0
        .clone();
    let d = o.delivery(&ep, &event_id).await;
    assert_eq!(
        (d.last_status, d.last_error.as_deref()),
        (Some(302), Some("http_status"))
    );
    assert_eq!(
        sink.received().len(),
        1,
        "the Location (the metadata address) is not requested"
    );
}

#[test]
fn the_sample_events_are_the_events_their_readme_names() {
    let kinds_of = |file: &str| -> Vec<&'static str> {
        shared_outbound::stream::records(&fixture(file))
            .into_iter()
            .flat_map(|(_, r)| shared_outbound::events::events_of(&r.unwrap()))
            .map(|e| e.kind.as_str())
            .collect()
    };
    assert_eq!(
        kinds_of("outbound/stream-new-lead.json"),
        vec!["lead.created", "submission.created"]
    );
    assert_eq!(
        kinds_of("outbound/stream-stage-change.json"),
        vec!["lead.updated"]
    );
    let retry = &fixture("outbound/retry.json")["Records"][0]["body"];
    let body: Value = serde_json::from_str(retry.as_str().unwrap()).unwrap();
    assert!(outbound::Retry::from_json(&body).is_some());
}

// ---------------------------------------------------------------- the webhooks API

impl Outbound {
    async fn webhooks_app(&self, sink: &Sink, names: &[(&str, &str)]) -> webhooks::App {
        let env = infra::local::local_function_env(&self.w.template, "webhooks", &self.w.endpoint)
            .unwrap();
        let mut config = webhooks::config::Config::from_env(&Env::from_pairs(env)).unwrap();
        config.local.loopback_http_ports = vec![sink.port];
        webhooks::App {
            dynamo: self.w.clients.dynamo.clone(),
            sqs: self.w.clients.sqs.clone(),
            tenants_table: config.tenants_table,
            ops_table: config.ops_table,
            retry_queue_url: config.retry_queue_url,
            local: config.local,
            resolve: resolver(names),
            verifier: self.w.token_verifier("webhooks").await.unwrap(),
            accounts: shared_accounts::dynamo::AccountStore::new(
                self.w.clients.dynamo.clone(),
                shared_accounts::dynamo::AccountTables {
                    tenants: self.w.table("TenantsTable"),
                    security_log: config.security_log_table.clone(),
                    ops: self.w.table("OpsTable"),
                },
                config.security_log_retention_days,
            ),
            clock: self.w.clock.clone(),
            ids: Arc::new(shared_core::clock::UlidGenerator),
        }
    }
}

async fn call(
    app: &webhooks::App,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: &str,
) -> (u16, Value) {
    let resp = webhooks::handle(app, api_event(method, path, body.as_ref(), Some(token))).await;
    (resp.status().as_u16(), response_json(&resp))
}

#[tokio::test]
async fn endpoints_are_managed_by_owners_and_admins_of_their_own_tenant_only() {
    let sink = Sink::start().await;
    let o = outbound(&sink, &[]).await;
    let api = o.webhooks_app(&sink, &[]).await;
    let auth = o.w.auth_app().await.unwrap();
    let (_, owner) =
        o.w.member(&auth, &o.w.tenant, Role::Owner, "wh-owner")
            .await;
    let (_, admin) =
        o.w.member(&auth, &o.w.tenant, Role::Admin, "wh-admin")
            .await;
    let (_, member) =
        o.w.member(&auth, &o.w.tenant, Role::Member, "wh-member")
            .await;
    let other_tenant = TenantId::parse("tenant-other").unwrap();
    let (_, stranger) =
        o.w.member(&auth, &other_tenant, Role::Owner, "wh-stranger")
            .await;

    let (status, created) = call(
        &api,
        "POST",
        "/v1/webhooks",
        Some(json!({"url": sink.url(), "event_types": ["lead.erased", "submission.created", "lead.erased"]})),
        &owner,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 49,
        "{secret}"
    );
    assert_eq!(
        created["event_types"],
        json!(["submission.created", "lead.erased"])
    );
    assert_eq!(
        (created["enabled"].clone(), created["status"].clone()),
        (json!(true), json!("active"))
    );

    // The secret is shown once: never in a list or a read.
    let (status, list) = call(&api, "GET", "/v1/webhooks", None, &admin).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(&secret));
    let (status, one) = call(&api, "GET", &format!("/v1/webhooks/{id}"), None, &owner).await;
    assert_eq!(status, 200);
    assert!(one.get("secret").is_none());

    // Members (and every role below admin) cannot read or change endpoints.
    for (method, path) in [
        ("GET", "/v1/webhooks".to_string()),
        ("GET", format!("/v1/webhooks/{id}")),
        ("DELETE", format!("/v1/webhooks/{id}")),
    ] {
        let (status, body) = call(&api, method, &path, None, &member).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}"
        );
    }

    // Another tenant's owner: the id does not exist for them, and their list is empty.
    let (status, list) = call(&api, "GET", "/v1/webhooks", None, &stranger).await;
    assert_eq!((status, list["items"].as_array().unwrap().len()), (200, 0));
    for (method, path, body) in [
        ("GET", format!("/v1/webhooks/{id}"), None),
        (
            "PATCH",
            format!("/v1/webhooks/{id}"),
            Some(json!({"enabled": false})),
        ),
        ("DELETE", format!("/v1/webhooks/{id}"), None),
        ("POST", format!("/v1/webhooks/{id}/rotate-secret"), None),
        ("GET", format!("/v1/webhooks/{id}/deliveries"), None),
        (
            "POST",
            format!("/v1/webhooks/{id}/deliveries/evt_00000000000000000000000000000000/replay"),
            None,
        ),
    ] {
        let (status, body) = call(&api, method, &path, body, &stranger).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("webhook_not_found")),
            "{method} {path}"
        );
    }
    let (_, still) = call(&api, "GET", &format!("/v1/webhooks/{id}"), None, &owner).await;
    assert_eq!(
        still["enabled"],
        json!(true),
        "the stranger changed nothing"
    );

    // Rotation: a new secret, shown once; the old one signs until the overlap ends.
    o.w.clock.advance(time::Duration::seconds(1));
    let (status, rotated) = call(
        &api,
        "POST",
        &format!("/v1/webhooks/{id}/rotate-secret"),
        Some(json!({"overlap_hours": 2})),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert!(rotated["previous_secret_valid_until"].is_string());
    let stored = store::endpoint(&o.w.direct.dynamo, &o.app.tenants_table, &o.w.tenant, &id)
        .await
        .unwrap()
        .unwrap();
    let now = o.w.clock.now().unix_timestamp();
    assert_eq!(
        stored.signing_secrets(now),
        vec![new_secret.as_bytes(), secret.as_bytes()]
    );
    assert_eq!(
        stored.signing_secrets(now + 2 * 3600),
        vec![new_secret.as_bytes()]
    );

    // Disable, then delete.
    o.w.clock.advance(time::Duration::seconds(1));
    let (status, patched) = call(
        &api,
        "PATCH",
        &format!("/v1/webhooks/{id}"),
        Some(json!({"enabled": false})),
        &owner,
    )
    .await;
    assert_eq!((status, patched["enabled"].clone()), (200, json!(false)));
    let (status, _) = call(&api, "DELETE", &format!("/v1/webhooks/{id}"), None, &owner).await;
    assert_eq!(status, 204);
    let (status, _) = call(&api, "GET", &format!("/v1/webhooks/{id}"), None, &owner).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_endpoint_limit_holds_when_registrations_and_deletions_race() {
    let sink = Sink::start().await;
    let o = outbound(&sink, &[]).await;
    let api = o.webhooks_app(&sink, &[]).await;
    let auth = o.w.auth_app().await.unwrap();
    let (_, owner) =
        o.w.member(&auth, &o.w.tenant, Role::Owner, "wh-race-owner")
            .await;
    let body = json!({"url": sink.url(), "event_types": ["lead.created"]});
    // Three registered one by one, then fifteen at once for the seven places left.
    for _ in 0..3 {
        let (status, e) = call(&api, "POST", "/v1/webhooks", Some(body.clone()), &owner).await;
        assert_eq!(status, 201, "{e}");
    }
    let answers = join_all(
        (0..15)
            .map(|_| call(&api, "POST", "/v1/webhooks", Some(body.clone()), &owner))
            .collect(),
    )
    .await;
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s != 201).collect();
    assert_eq!(created, webhooks::MAX_ENDPOINTS - 3, "{answers:?}");
    assert!(
        refused
            .iter()
            .all(|(s, e)| *s == 409 && e["error"]["code"] == "webhook_limit_reached"),
        "{refused:?}"
    );
    let (_, listed) = call(&api, "GET", "/v1/webhooks", None, &owner).await;
    let ids: Vec<String> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), webhooks::MAX_ENDPOINTS);
    // One endpoint deleted by three racing requests frees one place, not three.
    let path = format!("/v1/webhooks/{}", ids[0]);
    let deletes = join_all(
        (0..3)
            .map(|_| call(&api, "DELETE", &path, None, &owner))
            .collect(),
    )
    .await;
    let mut statuses: Vec<u16> = deletes.iter().map(|(s, _)| *s).collect();
    statuses.sort();
    assert_eq!(statuses, [204, 404, 404], "{deletes:?}");
    let again = join_all(
        (0..3)
            .map(|_| call(&api, "POST", "/v1/webhooks", Some(body.clone()), &owner))
            .collect(),
    )
    .await;
    let mut statuses: Vec<u16> = again.iter().map(|(s, _)| *s).collect();
    statuses.sort();
    assert_eq!(statuses, [201, 409, 409], "{again:?}");
    assert_declared(&o.w, "TenantsTable", Table::Tenants, "WEBHOOK").await;
}

/// Every attribute of `table`'s items whose sort key starts with `sk_prefix` is declared in the
/// data inventory.
async fn assert_declared(w: &World, table: &str, t: Table, sk_prefix: &str) {
    let items = w.items_with_sk_prefix(table, sk_prefix).await;
    assert!(!items.is_empty(), "no {sk_prefix} item in {table}");
    for it in items {
        let sk = it["sk"].as_s().unwrap().to_string();
        for name in it.keys() {
            assert!(
                inventory::declaration(t, &sk, name).is_some(),
                "{table} {sk} {name} is not in the data inventory"
            );
        }
    }
}

#[tokio::test]
async fn registration_refuses_what_is_not_a_public_https_endpoint() {
    let sink = Sink::start().await;
    let o = outbound(&sink, &[]).await;
    let api = o
        .webhooks_app(
            &sink,
            &[
                ("hooks.example.com", "93.184.216.34:0"),
                ("internal.example.com", "10.0.0.5:0"),
                ("meta.example.com", "169.254.169.254:0"),
                ("v6.example.com", "[fd00:ec2::254]:0"),
            ],
        )
        .await;
    let auth = o.w.auth_app().await.unwrap();
    let (_, owner) =
        o.w.member(&auth, &o.w.tenant, Role::Owner, "reg-owner")
            .await;
    let post = |url: &str| json!({"url": url, "event_types": ["submission.created"]});
    for (url, code) in [
        ("http://hooks.example.com/in", "invalid_fields"),
        ("https://user:pw@hooks.example.com/in", "invalid_fields"),
        ("https://127.0.0.1/in", "invalid_fields"),
        (
            "https://169.254.169.254/latest/meta-data/",
            "invalid_fields",
        ),
        ("https://localhost/in", "invalid_fields"),
        ("https://internal.example.com/in", "webhook_url_forbidden"),
        ("https://meta.example.com/in", "webhook_url_forbidden"),
        ("https://v6.example.com/in", "webhook_url_forbidden"),
        ("https://nowhere.example.com/in", "webhook_url_unresolvable"),
        (
            &format!("http://127.0.0.1:{}/in", sink.port + 1),
            "invalid_fields",
        ),
    ] {
        let (status, body) = call(&api, "POST", "/v1/webhooks", Some(post(url)), &owner).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{url}: {body}"
        );
    }
    for bad in [
        json!({"url": "https://hooks.example.com/in", "event_types": []}),
        json!({"url": "https://hooks.example.com/in", "event_types": ["lead.exploded"]}),
        json!({"url": "https://hooks.example.com/in"}),
        json!({"url": "https://hooks.example.com/in", "event_types": ["lead.created"], "secret": "mine"}),
    ] {
        let (status, body) = call(&api, "POST", "/v1/webhooks", Some(bad.clone()), &owner).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = call(
        &api,
        "POST",
        "/v1/webhooks",
        Some(post("https://hooks.example.com/in")),
        &owner,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap();
    // An explicit null is not "absent" (the document's fields are not nullable).
    for (method, path, body) in [
        (
            "PATCH",
            format!("/v1/webhooks/{id}"),
            json!({"enabled": false, "url": null}),
        ),
        (
            "POST",
            format!("/v1/webhooks/{id}/rotate-secret"),
            json!({"overlap_hours": null}),
        ),
        (
            "POST",
            "/v1/webhooks".to_string(),
            json!({"url": "https://hooks.example.com/in", "event_types": ["lead.created"], "enabled": null}),
        ),
    ] {
        let (status, body) = call(&api, method, &path, Some(body), &owner).await;
        assert_eq!(status, 400, "{method} {path}: {body}");
    }
    // A change of URL is checked the same way.
    let (status, body) = call(
        &api,
        "PATCH",
        &format!("/v1/webhooks/{id}"),
        Some(json!({"url": "https://internal.example.com/x"})),
        &owner,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("webhook_url_forbidden"))
    );
}

#[tokio::test]
async fn a_failed_delivery_is_logged_and_a_replay_delivers_it() {
    let sink = Sink::start().await;
    let mut o = outbound(&sink, &[]).await;
    let api = o.webhooks_app(&sink, &[]).await;
    let auth = o.w.auth_app().await.unwrap();
    let (_, owner) =
        o.w.member(&auth, &o.w.tenant, Role::Owner, "replay-owner")
            .await;
    let (_, created) = call(
        &api,
        "POST",
        "/v1/webhooks",
        Some(json!({"url": sink.url(), "event_types": ["submission.created"]})),
        &owner,
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    let secret = created["secret"].as_str().unwrap().to_string();

    sink.answer(503);
    o.submit("replay@example.com").await;
    o.run_stream().await;
    let (status, log) = call(
        &api,
        "GET",
        &format!("/v1/webhooks/{id}/deliveries"),
        None,
        &owner,
    )
    .await;
    assert_eq!(status, 200);
    let d = &log["items"][0];
    assert_eq!(
        (
            d["state"].clone(),
            d["attempts"].clone(),
            d["last_status"].clone()
        ),
        (json!("pending"), json!(1), json!(503)),
        "{log}"
    );
    assert!(d["last_latency_ms"].is_number());
    assert!(
        !log.to_string().contains("replay@"),
        "the log holds no personal data"
    );
    let event_id = d["id"].as_str().unwrap().to_string();

    // Drain the scheduled (delayed) retry: the replay below is what delivers.
    o.app
        .sqs
        .purge_queue()
        .queue_url(&o.queue_url)
        .send()
        .await
        .unwrap();
    sink.answer(200);
    let (status, replayed) = call(
        &api,
        "POST",
        &format!("/v1/webhooks/{id}/deliveries/{event_id}/replay"),
        None,
        &owner,
    )
    .await;
    assert_eq!(
        (status, replayed["state"].clone()),
        (202, json!("pending")),
        "{replayed}"
    );
    // The outbound function takes it from the queue, as Lambda's SQS mapping hands it over.
    let msgs = o
        .app
        .sqs
        .receive_message()
        .queue_url(&o.queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let records: Vec<Value> = msgs
        .messages()
        .iter()
        .map(|m| json!({"messageId": m.message_id(), "body": m.body(), "eventSource": "aws:sqs"}))
        .collect();
    assert_eq!(records.len(), 1);
    let answer = outbound::handle(&o.app, &json!({ "Records": records }))
        .await
        .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let got = sink.received();
    let last = got.last().unwrap();
    assert_eq!(
        last.headers["webhook-id"], event_id,
        "the same event id again"
    );
    assert!(python_verifies(
        &secret,
        &last.headers["webhook-signature"],
        &last.body
    ));
    let (_, log) = call(
        &api,
        "GET",
        &format!("/v1/webhooks/{id}/deliveries"),
        None,
        &owner,
    )
    .await;
    assert_eq!(
        (
            log["items"][0]["state"].clone(),
            log["items"][0]["attempts"].clone()
        ),
        (json!("delivered"), json!(2))
    );
    // An unknown delivery id: 404.
    let (status, body) = call(
        &api,
        "POST",
        &format!("/v1/webhooks/{id}/deliveries/evt_0123456789abcdef0123456789abcdef/replay"),
        None,
        &owner,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("delivery_not_found"))
    );
}

// ---------------------------------------------------------------- data-subject requests

mod dsar_jobs {
    use super::*;
    use shared_core::error::AppError;
    use shared_mail::SesMailer;
    use shared_privacy::dsar::checkpoint::CheckpointStore;
    use shared_privacy::dsar::export::Exports;
    use shared_privacy::dsar::job::{
        DsarJob, JobDispatcher, JobKind, JobOutcome, JobScope, JobSubject, RequestProgress,
    };
    use shared_privacy::dsar::subjects::SubjectStore;
    use shared_privacy::dsar::worker::{Unlimited, Worker};

    /// The request lifecycle around the worker, as no-ops: only the job's effect on the leads
    /// table matters here.
    #[derive(Clone, Default)]
    struct Quiet;

    impl RequestProgress for Quiet {
        async fn started(&self, _: &DsarJob) -> Result<(), AppError> {
            Ok(())
        }
        async fn completed(&self, _: &DsarJob, _: &JobOutcome) -> Result<(), AppError> {
            Ok(())
        }
        async fn failed(&self, _: &DsarJob, reason: &str) -> Result<(), AppError> {
            panic!("job failed: {reason}")
        }
        async fn subject(&self, _: &str) -> Result<Option<JobSubject>, AppError> {
            Ok(None)
        }
    }

    impl JobDispatcher for Quiet {
        async fn dispatch(&self, _: &DsarJob) -> Result<(), AppError> {
            Ok(())
        }
    }

    async fn run(w: &World, kind: JobKind, email: &str) -> String {
        let endpoint = emulator_endpoint();
        let env = infra::local::local_function_env(&w.template, "dsar-worker", endpoint).unwrap();
        let config = dsar_worker::config::Config::from_env(&Env::from_pairs(env)).unwrap();
        let ses = infra::emulator::sesv2_client(endpoint);
        infra::seed::ensure_secrets(&w.clients, &ses, &w.template)
            .await
            .unwrap();
        let worker: Worker<Quiet, Quiet, SesMailer> = Worker {
            store: SubjectStore::new(w.clients.dynamo.clone(), config.tables.clone()),
            checkpoints: CheckpointStore::new(
                w.clients.dynamo.clone(),
                config.tables.ops.clone(),
                30,
            ),
            exports: Exports {
                s3: w.clients.s3.clone(),
                bucket: config.exports_bucket.clone(),
                part_bytes: 5 * 1024 * 1024,
            },
            attachments_bucket: config.attachments_bucket.clone(),
            mailer: SesMailer::new(ses, config.sender_email.clone()),
            progress: Quiet,
            dispatcher: Quiet,
            keys: w.key.clone(),
            clock: w.clock.clone(),
            ids: Arc::new(shared_core::clock::UlidGenerator),
            settings: config.settings.clone(),
        };
        let job = DsarJob {
            request_id: format!("dsr_{}", ulid::Ulid::new().to_string().to_lowercase()),
            scope: JobScope::Tenant {
                tenant_id: w.tenant.clone(),
            },
            kind,
            subject_email: email.to_string(),
        };
        worker.run(&job, &Unlimited).await.unwrap();
        job.request_id
    }

    #[tokio::test]
    async fn an_erasure_and_a_withdrawal_reach_the_tenants_connected_systems() {
        let sink = Sink::start().await;
        let mut o = outbound(&sink, &[]).await;
        let ep = o
            .register(
                &sink.url(),
                "whsec_dsar",
                &[
                    EventType::LeadErased,
                    EventType::ConsentWithdrawn,
                    EventType::LeadDeleted,
                ],
            )
            .await;
        let ana = "ana.outbound@example.com";
        let lead = o.submit(ana).await["lead_id"].as_str().unwrap().to_string();
        o.run_stream().await;
        assert!(sink.received().is_empty(), "not subscribed to creations");

        run(&o.w, JobKind::ConsentWithdrawal, ana).await;
        let (report, _) = o.run_stream().await;
        assert!(kinds(&report).contains(&"consent.withdrawn"), "{report:?}");

        let request = run(
            &o.w,
            JobKind::Erasure {
                suppress_phone: false,
            },
            ana,
        )
        .await;
        let (report, _) = o.run_stream().await;
        assert!(kinds(&report).contains(&"lead.erased"), "{report:?}");
        assert!(!kinds(&report).contains(&"lead.deleted"), "{report:?}");
        let bodies: Vec<Value> = sink
            .received()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        let types: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
        assert_eq!(types, vec!["consent.withdrawn", "lead.erased"]);
        let erased = &bodies[1];
        assert_eq!(erased["data"]["lead_id"], json!(lead));
        let text = erased.to_string();
        assert!(!text.contains(ana) && !text.contains(&request), "{text}");
        // The erasure certificate names the endpoint told (its id and host, not its URL).
        let cert =
            o.w.direct
                .s3
                .get_object()
                .bucket(o.w.template.bucket_name("ExportsBucket").unwrap())
                .key(format!("dsar/certificates/{request}.json"))
                .send()
                .await
                .unwrap();
        let cert: Value =
            serde_json::from_slice(&cert.body.collect().await.unwrap().into_bytes()).unwrap();
        let told = &cert["connected_systems_notified"];
        assert_eq!(told["event"], json!("lead.erased"));
        assert_eq!(told["endpoints"][0]["webhook_id"], json!(ep.id), "{cert}");
        assert!(!told.to_string().contains("/hook"), "{told}");
    }
}

// ---------------------------------------------------------------- notifications

#[tokio::test]
async fn a_new_lead_is_told_to_the_owner_once_without_the_answers() {
    let sink = Sink::start().await;
    let mut o = outbound(&sink, &[]).await;
    let auth = o.w.auth_app().await.unwrap();
    let (owner, _) =
        o.w.member(&auth, &o.w.tenant, Role::Owner, "notify-owner")
            .await;
    let (member, _) =
        o.w.member(&auth, &o.w.tenant, Role::Member, "notify-member")
            .await;
    let submitted = o.submit("notify-lead@example.com").await;
    let (_, records) = o.run_stream().await;
    let mails = o.w.emails_to(owner.email.as_str());
    assert_eq!(mails.len(), 1, "the owner, by default");
    assert_eq!(mails[0].subject, "New lead on your form demo-contact");
    assert!(mails[0]
        .body
        .contains(submitted["lead_id"].as_str().unwrap()));
    assert!(!mails[0].body.contains("a private answer") && !mails[0].body.contains("notify-lead@"));
    assert!(
        o.w.emails_to(member.email.as_str()).is_empty(),
        "members only when chosen"
    );
    // The batch handed over again: no second email.
    outbound::process_stream(&o.app, &json!({ "Records": records })).await;
    assert_eq!(o.w.emails_to(owner.email.as_str()).len(), 1);
    // Every platform email carries the one-click unsubscribe headers.
    let headers = o
        .app
        .mailer
        .headers_for(&shared_mail::email(owner.email.as_str(), "s", "t"));
    assert!(headers
        .iter()
        .any(|(n, v)| n == "List-Unsubscribe-Post" && v == "List-Unsubscribe=One-Click"));
    assert!(headers
        .iter()
        .any(|(n, v)| n == "List-Unsubscribe" && v.contains("/v1/privacy/unsubscribe?t=")));
}

#[tokio::test]
async fn a_digest_counts_the_period_and_is_sent_once_even_when_the_run_is_retried() {
    let sink = Sink::start().await;
    let mut o = outbound(&sink, &[]).await;
    let auth = o.w.auth_app().await.unwrap();
    let (owner, _) =
        o.w.member(&auth, &o.w.tenant, Role::Owner, "digest-owner")
            .await;
    let (admin, _) =
        o.w.member(&auth, &o.w.tenant, Role::Admin, "digest-admin")
            .await;
    // Set through the API: an hourly digest to the admin.
    let api = o.webhooks_app(&sink, &[]).await;
    let (_, owner_token) =
        o.w.member(&auth, &o.w.tenant, Role::Owner, "digest-owner-2")
            .await;
    let (_, member_token) =
        o.w.member(&auth, &o.w.tenant, Role::Member, "digest-member")
            .await;
    let (_, stranger) =
        o.w.member(
            &auth,
            &TenantId::parse("tenant-other").unwrap(),
            Role::Owner,
            "digest-stranger",
        )
        .await;
    let path = "/v1/forms/demo-contact/notifications";
    let (status, current) = call(&api, "GET", path, None, &owner_token).await;
    assert_eq!(
        (
            status,
            current["mode"].clone(),
            current["recipients"].clone()
        ),
        (200, json!("instant"), json!([])),
        "the default"
    );
    let body = json!({"enabled": true, "mode": "hourly", "recipients": [admin.user_id.as_str()]});
    let (status, _) = call(&api, "PUT", path, Some(body.clone()), &member_token).await;
    assert_eq!(status, 403);
    let (status, err) = call(&api, "PUT", path, Some(body.clone()), &stranger).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("form_not_found")),
        "another tenant's form"
    );
    let (status, err) = call(
        &api,
        "PUT",
        path,
        Some(json!({"enabled": true, "mode": "hourly", "recipients": ["us-nobody"]})),
        &owner_token,
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("invalid_fields"))
    );
    let (status, set) = call(&api, "PUT", path, Some(body), &owner_token).await;
    assert_eq!(
        (status, set["mode"].clone()),
        (200, json!("hourly")),
        "{set}"
    );
    o.w.clock.set(time::macros::datetime!(2026-12-03 10:20 UTC));
    for who in ["d1@example.com", "d2@example.com", "d1@example.com"] {
        o.submit(who).await;
    }
    let (_, records) = o.run_stream().await;
    // A retried batch counts nothing twice.
    outbound::process_stream(&o.app, &json!({ "Records": records })).await;
    assert!(
        o.w.emails_to(admin.email.as_str()).is_empty(),
        "nothing at once in digest mode"
    );
    // During the hour: nothing due yet.
    assert_eq!(outbound::digests(&o.app).await.unwrap(), 0);
    o.w.clock.set(time::macros::datetime!(2026-12-03 11:05 UTC));
    assert_eq!(outbound::digests(&o.app).await.unwrap(), 1);
    assert_eq!(
        outbound::digests(&o.app).await.unwrap(),
        0,
        "a retried run sends nothing again"
    );
    let mails = o.w.emails_to(admin.email.as_str());
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].subject,
        "3 new submissions on your form demo-contact"
    );
    assert!(!mails[0].body.contains("d1@") && !mails[0].body.contains("a private answer"));
    assert!(
        o.w.emails_to(owner.email.as_str()).is_empty(),
        "the chosen recipients only"
    );
    // A deleted form (kept as proof, gone for its workspace) has no settings to read or set.
    o.w.direct
        .dynamo
        .update_item()
        .table_name(o.w.table("TenantsTable"))
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("FORM#demo-contact".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("FORM".into()),
        )
        .update_expression("SET deleted_at = :at")
        .expression_attribute_values(
            ":at",
            aws_sdk_dynamodb::types::AttributeValue::S("2026-12-03T12:00:00Z".into()),
        )
        .send()
        .await
        .unwrap();
    // (A token minted at the test's clock, which moved.)
    let (_, late_owner) =
        o.w.member(&auth, &o.w.tenant, Role::Owner, "digest-owner-3")
            .await;
    let (status, _) = call(&api, "GET", path, None, &late_owner).await;
    assert_eq!(status, 404);
}

/// Fails every email to the addresses in `failing` (as an SES outage would) and sends the others
/// through `inner`.
struct Flaky<M> {
    inner: M,
    failing: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl<M: shared_mail::Mailer> shared_mail::Mailer for Flaky<M> {
    async fn send(&self, email: &shared_mail::OutgoingEmail) -> anyhow::Result<()> {
        if self.failing.lock().unwrap().contains(&email.to) {
            anyhow::bail!("ServiceUnavailable: SES is down (test)");
        }
        self.inner.send(email).await
    }
}

#[tokio::test]
async fn a_digest_whose_email_fails_is_sent_by_a_later_run_once_to_each_recipient() {
    let sink = Sink::start().await;
    let mut o = outbound(&sink, &[]).await;
    let auth = o.w.auth_app().await.unwrap();
    let (owner, owner_token) =
        o.w.member(&auth, &o.w.tenant, Role::Owner, "flaky-owner")
            .await;
    let (admin, _) =
        o.w.member(&auth, &o.w.tenant, Role::Admin, "flaky-admin")
            .await;
    let api = o.webhooks_app(&sink, &[]).await;
    let body = json!({"enabled": true, "mode": "hourly",
        "recipients": [owner.user_id.as_str(), admin.user_id.as_str()]});
    let (status, set) = call(
        &api,
        "PUT",
        "/v1/forms/demo-contact/notifications",
        Some(body),
        &owner_token,
    )
    .await;
    assert_eq!(status, 200, "{set}");
    o.w.clock.set(time::macros::datetime!(2026-12-03 10:20 UTC));
    o.submit("f1@example.com").await;
    o.submit("f2@example.com").await;
    o.run_stream().await;

    let Outbound { w, app, .. } = o;
    let failing = Arc::new(Mutex::new(std::collections::HashSet::from([admin
        .email
        .as_str()
        .to_string()])));
    let app = outbound::App {
        mailer: Flaky {
            inner: app.mailer,
            failing: failing.clone(),
        },
        dynamo: app.dynamo,
        sqs: app.sqs,
        tenants_table: app.tenants_table,
        ops_table: app.ops_table,
        retry_queue_url: app.retry_queue_url,
        deliverer: app.deliverer,
        clock: app.clock,
        jitter: app.jitter,
        app_base_url: app.app_base_url,
        inline_budget: app.inline_budget,
    };
    let mails = |who: &str| w.emails_to(who).len();

    // The hour ended; SES refuses the admin's email. Two runs at once (a retry beside the
    // scheduled one): the owner gets the digest once, the admin's stays due.
    w.clock.set(time::macros::datetime!(2026-12-03 11:05 UTC));
    let (a, b) = tokio::join!(outbound::digests(&app), outbound::digests(&app));
    assert!(
        a.is_err() || b.is_err(),
        "a failed email fails the run: {a:?} {b:?}"
    );
    assert_eq!(mails(owner.email.as_str()), 1);
    assert_eq!(mails(admin.email.as_str()), 0);

    // SES is back; the next hour's runs (two at once again) send the admin the 10:00 digest,
    // and the owner nothing more.
    failing.lock().unwrap().clear();
    w.clock.set(time::macros::datetime!(2026-12-03 12:05 UTC));
    let (a, b) = tokio::join!(outbound::digests(&app), outbound::digests(&app));
    assert_eq!(a.unwrap() + b.unwrap(), 1, "one email: the admin's");
    let admin_mails = w.emails_to(admin.email.as_str());
    assert_eq!(admin_mails.len(), 1, "the digest was not lost");
    assert_eq!(
        admin_mails[0].subject,
        "2 new submissions on your form demo-contact"
    );
    assert_eq!(mails(owner.email.as_str()), 1, "nobody gets it twice");
    // Done: later runs send nothing.
    w.clock.set(time::macros::datetime!(2026-12-03 13:05 UTC));
    assert_eq!(outbound::digests(&app).await.unwrap(), 0);
    assert_eq!(mails(admin.email.as_str()) + mails(owner.email.as_str()), 2);
    assert_declared(&w, "OpsTable", Table::Ops, "H#").await;
}

// ---------------------------------------------------------------- under injected faults

/// The stream and the retry queue handled as Lambda's mappings hand them over, with the
/// function's DynamoDB, SQS and SES calls through the fault proxy (35% faulted, every kind, the
/// answer lost after the call applied included; `OUTBOUND_FAULT_RATE` and `OUTBOUND_FAULT_SEED`
/// explore others): a batch that names a failed record is handed
/// over again from that record, a queue message that fails is received again. In the end every
/// event reached the endpoint (at least once), every delivery is `delivered`, and the owner was
/// told of every new lead (at least once); nothing is lost.
#[tokio::test]
async fn under_injected_faults_every_event_is_delivered_and_every_lead_told() {
    let sink = Sink::start().await;
    let mut o = outbound(&sink, &[]).await;
    let auth = o.w.auth_app().await.unwrap();
    let (owner, _) =
        o.w.member(&auth, &o.w.tenant, Role::Owner, "faults-owner")
            .await;
    let ep = o
        .register(
            &sink.url(),
            "faults-secret",
            &[EventType::SubmissionCreated, EventType::LeadCreated],
        )
        .await;
    let mut leads = vec![];
    for i in 0..6 {
        leads.push(
            o.submit(&format!("faults{i}@example.com")).await["lead_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let records = o.stream.poll(1000).await.unwrap();
    let expected: Vec<String> = records
        .iter()
        .flat_map(|r| {
            shared_outbound::stream::records(&json!({ "Records": [r] }))
                .into_iter()
                .filter_map(|(_, rec)| rec.ok())
                .flat_map(|rec| shared_outbound::events::events_of(&rec))
                .filter(|e| {
                    matches!(
                        e.kind,
                        EventType::SubmissionCreated | EventType::LeadCreated
                    )
                })
                .map(|e| e.id)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        expected.len(),
        12,
        "a lead.created and a submission.created per lead"
    );

    let proxy = infra::faults::FaultProxy::start(
        emulator_endpoint(),
        0,
        infra::faults::FaultPlan {
            rate: std::env::var("OUTBOUND_FAULT_RATE")
                .ok()
                .and_then(|r| r.parse().ok())
                .unwrap_or(0.35),
            seed: std::env::var("OUTBOUND_FAULT_SEED")
                .ok()
                .and_then(|r| r.parse().ok())
                .unwrap_or(3),
            hang: std::time::Duration::from_millis(2_500),
            ..infra::faults::FaultPlan::default()
        },
    )
    .await
    .unwrap();
    let via = o.w.via(proxy.endpoint());
    let env = infra::local::local_function_env(&via.template, "outbound", &via.endpoint).unwrap();
    let api_base_url = env["API_BASE_URL"].clone();
    let app = outbound::App {
        dynamo: via.clients.dynamo.clone(),
        sqs: via.clients.sqs.clone(),
        mailer: shared_mail::WithUnsubscribe {
            inner: via.platform_mailer("outbound").unwrap(),
            key: via.key.clone(),
            api_base_url,
            scope: shared_mail::unsubscribe::UnsubscribeScope::Platform,
        },
        tenants_table: o.app.tenants_table.clone(),
        ops_table: o.app.ops_table.clone(),
        retry_queue_url: o.app.retry_queue_url.clone(),
        deliverer: outbound::deliver::Deliverer::new(
            shared_outbound::address::LocalSinks {
                loopback_http_ports: vec![sink.port],
            },
            resolver(&[]),
        )
        .unwrap(),
        clock: o.w.clock.clone(),
        jitter: Arc::new(|| 0.5),
        app_base_url: o.app.app_base_url.clone(),
        inline_budget: outbound::INLINE_BUDGET,
    };

    // The stream mapping: the batch again from the record that failed, until none fails.
    let mut from = 0;
    let mut handovers = 0;
    loop {
        handovers += 1;
        assert!(handovers < 60, "the stream never got through");
        let (_, failed) =
            outbound::process_stream(&app, &json!({ "Records": &records[from..] })).await;
        let Some(seq) = failed else { break };
        from = records
            .iter()
            .position(|r| r["dynamodb"]["SequenceNumber"].as_str() == Some(seq.as_str()))
            .expect("the failed record is one of the batch");
    }
    // The queue mapping: what the batch queued (a failed attempt's retry), until it is empty;
    // the clock moves past every retry's wait.
    let mut rounds = 0;
    loop {
        o.w.clock.advance(time::Duration::hours(1));
        let got =
            o.w.direct
                .sqs
                .receive_message()
                .queue_url(&o.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
        if got.messages().is_empty() {
            let (visible, delayed) = o.queued().await;
            if visible + delayed == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            continue;
        }
        rounds += 1;
        assert!(rounds < 60, "the retry queue never drained");
        for m in got.messages() {
            let event = json!({"Records": [
                {"eventSource": "aws:sqs", "messageId": m.message_id(), "body": m.body()}
            ]});
            let answer = outbound::handle(&app, &event).await.unwrap();
            let receipt = m.receipt_handle().unwrap();
            let queue = o.w.direct.sqs.clone();
            if answer["batchItemFailures"] == json!([]) {
                queue
                    .delete_message()
                    .queue_url(&o.queue_url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .unwrap();
            } else {
                // Received again (as after its visibility timeout).
                queue
                    .change_message_visibility()
                    .queue_url(&o.queue_url)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
    let stats = proxy.stats();

    let received: Vec<String> = sink
        .received()
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    for id in &expected {
        assert!(
            received.contains(id),
            "event {id} never reached the endpoint"
        );
        assert_eq!(o.delivery(&ep, id).await.state, "delivered", "{id}");
    }
    let mails = o.w.emails_to(owner.email.as_str());
    for lead in &leads {
        assert!(
            mails.iter().any(|m| m.body.contains(lead.as_str())),
            "the owner was never told of {lead}"
        );
    }
    println!(
        "faults[outbound]: {} stream handovers, {rounds} queue rounds; {} deliveries for {} events, {} emails for {} leads; proxy: {stats}",
        handovers,
        received.len(),
        expected.len(),
        mails.len(),
        leads.len()
    );
    assert!(stats.total_injected() > 0);
}

// ---------------------------------------------------------------- the local stack's poller

/// A stand-in for `cargo lambda watch`'s Invoke API serving `outbound`: each invocation runs the
/// function's handler on the event, as the local stack does.
async fn invoke_api(
    app: Arc<outbound::App<shared_mail::WithUnsubscribe<shared_mail::SesMailer>>>,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let app = app.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                let (head_end, len) = loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                        assert!(
                            head.starts_with("post /2015-03-31/functions/outbound/invocations"),
                            "{head}"
                        );
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let event: Value = serde_json::from_slice(&buf[head_end..]).unwrap();
                let answer = outbound::handle(&app, &event).await.unwrap().to_string();
                let out = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = conn.write_all(out.as_bytes()).await;
            });
        }
    });
    base
}

#[tokio::test]
async fn the_local_poller_carries_a_submission_from_the_stream_to_a_signed_delivery() {
    let sink = Sink::start().await;
    let o = outbound(&sink, &[]).await;
    let ep = o
        .register(&sink.url(), "whsec_local", &[EventType::SubmissionCreated])
        .await;
    let api = o.webhooks_app(&sink, &[]).await;
    let auth = o.w.auth_app().await.unwrap();
    let (_, owner) =
        o.w.member(&auth, &o.w.tenant, Role::Owner, "poller-owner")
            .await;
    let Outbound {
        w, app, queue_url, ..
    } = o;
    let ops_table = app.ops_table.clone();
    let base = invoke_api(Arc::new(app)).await;
    let poller = tokio::spawn(infra::outbound_local::run_poller(
        w.direct.clone(),
        w.template.clone(),
        base,
    ));

    let started = std::time::Instant::now();
    let resp = lead_intake::handle(
        &w.intake(None),
        request(&json_submission(
            &json!({"email": "poller@example.com", "name": "P", "message": "m"}),
        )),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let deadline = started + std::time::Duration::from_secs(20);
    while sink.received().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let latency = started.elapsed();
    let got = sink.received();
    assert_eq!(got.len(), 1, "delivered through the poller within 20 s");
    println!(
        "stream-to-delivery latency (local poller): {} ms",
        latency.as_millis()
    );
    assert!(python_verifies(
        "whsec_local",
        &got[0].headers["webhook-signature"],
        &got[0].body
    ));

    // A replay goes through the retry queue, which the poller reads too.
    let event_id = got[0].headers["webhook-id"].clone();
    // The sink answered before the function recorded the attempt: wait for the record.
    let mut d = None;
    for _ in 0..100 {
        d = store::delivery(&w.direct.dynamo, &ops_table, &w.tenant, &ep.id, &event_id)
            .await
            .unwrap();
        if d.as_ref().is_some_and(|d| d.state == "delivered") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(d.expect("the delivery").state, "delivered");
    let resp = webhooks::handle(
        &api,
        api_event(
            "POST",
            &format!("/v1/webhooks/{}/deliveries/{event_id}/replay", ep.id),
            None,
            Some(&owner),
        ),
    )
    .await;
    assert_eq!(resp.status(), 202);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while sink.received().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(sink.received().len(), 2, "the replay, from the queue");
    assert_eq!(sink.received()[1].headers["webhook-id"], event_id);
    // The handled message was deleted from the queue.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let left = w
        .direct
        .sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    assert_eq!(
        left.attributes()
            .and_then(
                |a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            )
            .map(String::as_str),
        Some("0")
    );
    poller.abort();
}

#[tokio::test]
async fn answers_reach_the_mailbox_only_once_turned_on_and_the_change_is_logged() {
    let sink = Sink::start().await;
    let mut o = outbound(&sink, &[]).await;
    let api = o.webhooks_app(&sink, &[]).await;
    let auth = o.w.auth_app().await.unwrap();
    let (owner, token) =
        o.w.member(&auth, &o.w.tenant, Role::Owner, "answers-owner")
            .await;
    let path = "/v1/forms/demo-contact/notifications";
    let (status, set) = call(
        &api,
        "PUT",
        path,
        Some(json!({"enabled": true, "mode": "instant", "include_answers": true})),
        &token,
    )
    .await;
    assert_eq!(
        (status, set["include_answers"].clone()),
        (200, json!(true)),
        "{set}"
    );
    let logged: Vec<_> =
        o.w.scan("SecurityLogTable")
            .await
            .into_iter()
            .filter(|it| s(it, "event") == Some("notifications.answers_on"))
            .collect();
    assert_eq!(logged.len(), 1);
    assert_eq!(s(&logged[0], "actor_user_id"), Some(owner.user_id.as_str()));
    assert_eq!(s(&logged[0], "detail"), Some("form demo-contact"));
    o.submit("answers@example.com").await;
    o.run_stream().await;
    let mails = o.w.emails_to(owner.email.as_str());
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].body.contains("message: a private answer"),
        "{}",
        mails[0].body
    );
    // Setting the same value again logs nothing; turning it off does.
    call(
        &api,
        "PUT",
        path,
        Some(json!({"enabled": true, "mode": "instant", "include_answers": true})),
        &token,
    )
    .await;
    call(
        &api,
        "PUT",
        path,
        Some(json!({"enabled": true, "mode": "instant"})),
        &token,
    )
    .await;
    let events: Vec<String> =
        o.w.scan("SecurityLogTable")
            .await
            .iter()
            .filter_map(|it| s(it, "event").map(String::from))
            .filter(|e| e.starts_with("notifications."))
            .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.contains(&"notifications.answers_off".to_string()));
}
