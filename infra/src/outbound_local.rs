//! The outbound channel on one machine (`devstack outbound`, started by `make dev`):
//!
//! - a **stream poller**, the local stand-in for Lambda's event source mappings: it reads the
//!   leads table's DynamoDB Stream through the emulator's Streams API
//!   ([`crate::streams::StreamReader`]) and the retry queue (SQS), and hands the records to the
//!   `outbound` function through the local Invoke API (`cargo lambda watch`), as Lambda would:
//!   the stream's records as a DynamoDB event, the queue's messages as an SQS event (deleted
//!   unless the partial batch response names them), and every 5 minutes a scheduled event (the
//!   digests);
//! - a **webhook sink** on loopback (`http://127.0.0.1:12112/hook`, the local stage's one
//!   allowed plain-HTTP endpoint: `WebhookLoopbackPorts`), which keeps what it receives:
//!   `GET /_sink/deliveries` lists them (headers and bodies), `POST /_sink/status/<code>` makes
//!   it answer `<code>` from then on (try the retries and a replay), `POST /_sink/reset` forgets.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::streams::StreamReader;
use crate::template::Template;
use crate::LocalClients;

/// Where `make dev`'s webhook sink listens (`LOCAL_SINK_PORT`).
pub const DEFAULT_SINK_PORT: u16 = 12112;

#[derive(Default)]
struct SinkState {
    received: Vec<Value>,
    status: u16,
}

/// Starts the sink on `127.0.0.1:port`.
pub async fn start_sink(port: u16) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("binding the webhook sink to 127.0.0.1:{port}"))?;
    let state = Arc::new(Mutex::new(SinkState {
        received: vec![],
        status: 200,
    }));
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let _ = serve(conn, &state).await;
            });
        }
    });
    Ok(())
}

async fn serve(mut conn: TcpStream, state: &Arc<Mutex<SinkState>>) -> Result<()> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while raw.len() < head_end + len {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let body = &raw[head_end..];
    let mut parts = first.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, answer) = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        match (method, path) {
            ("GET", "/_sink/deliveries") => (200, json!({ "items": s.received }).to_string()),
            ("POST", "/_sink/reset") => {
                s.received.clear();
                s.status = 200;
                (200, "{}".to_string())
            }
            ("POST", p) if p.starts_with("/_sink/status/") => {
                match p.trim_start_matches("/_sink/status/").parse::<u16>() {
                    Ok(code) if (200..600).contains(&code) => {
                        s.status = code;
                        (200, json!({ "status": code }).to_string())
                    }
                    _ => (400, "{}".to_string()),
                }
            }
            ("POST", _) => {
                let header = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
                let answered = s.status;
                s.received.push(json!({
                    "received_at": shared_core::clock::rfc3339(time::OffsetDateTime::now_utc()),
                    "path": path,
                    "answered": answered,
                    "webhook_id": header("webhook-id"),
                    "webhook_event": header("webhook-event"),
                    "webhook_signature": header("webhook-signature"),
                    "body": String::from_utf8_lossy(body),
                }));
                println!(
                    "sink: {} {} -> {}",
                    header("webhook-event").unwrap_or_default(),
                    header("webhook-id").unwrap_or_default(),
                    s.status
                );
                (s.status, "{}".to_string())
            }
            _ => (404, "{}".to_string()),
        }
    };
    let out = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
    conn.write_all(out.as_bytes()).await?;
    Ok(())
}

/// Invokes `function` through the local Invoke API at `invoke_base` with `event`; its answer.
pub async fn invoke(invoke_base: &str, function: &str, event: &Value) -> Result<Value> {
    let url = format!(
        "{}/2015-03-31/functions/{function}/invocations",
        invoke_base.trim_end_matches('/')
    );
    let (status, _, body) = crate::stripe_standin::http_request(
        "POST",
        &url,
        &[("content-type", "application/json")],
        event.to_string().as_bytes(),
        Duration::from_secs(300),
    )
    .await?;
    anyhow::ensure!(
        (200..300).contains(&status),
        "invoking {function}: HTTP {status}"
    );
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The failed items a partial batch response names.
fn failed_items(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["itemIdentifier"].as_str().map(String::from))
        .collect()
}

/// Polls the leads table's stream and the retry queue for ever, invoking `outbound` with what
/// they hold (see the module's documentation).
pub async fn run_poller(
    clients: LocalClients,
    template: Template,
    invoke_base: String,
) -> Result<()> {
    let leads = template
        .table_name("LeadsTable")
        .context("no LeadsTable in the template")?
        .to_string();
    let queue = template
        .queues
        .iter()
        .find(|q| q.logical_id == "OutboundRetryQueue")
        .context("no OutboundRetryQueue in the template")?
        .clone();
    let mut stream = StreamReader::open(clients.streams.clone(), &clients.dynamo, &leads).await?;
    let mut pending: Vec<Value> = vec![];
    let mut last_schedule = Instant::now();
    loop {
        // The stream: new records after the ones a failed batch left (Lambda retries from the
        // failed record; here, at the next poll).
        match stream.poll(100).await {
            Ok(records) => pending.extend(records),
            Err(e) => eprintln!("outbound poller: reading the stream: {e:#}"),
        }
        if !pending.is_empty() {
            let started = Instant::now();
            match invoke(&invoke_base, "outbound", &json!({ "Records": pending })).await {
                Ok(answer) => {
                    let failed = failed_items(&answer);
                    let from = failed.first().and_then(|seq| {
                        pending
                            .iter()
                            .position(|r| r["dynamodb"]["SequenceNumber"].as_str() == Some(seq))
                    });
                    println!(
                        "outbound: {} stream records in {} ms{}",
                        pending.len(),
                        started.elapsed().as_millis(),
                        if from.is_some() {
                            " (a record failed: retried)"
                        } else {
                            ""
                        }
                    );
                    pending = match from {
                        Some(i) => pending.split_off(i),
                        None => vec![],
                    };
                }
                Err(e) => eprintln!("outbound poller: invoking outbound: {e:#} (retried)"),
            }
        }
        // The retry queue: messages whose delay has passed.
        match clients
            .sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .send()
            .await
        {
            Ok(out) if !out.messages().is_empty() => {
                let records: Vec<Value> = out
                    .messages()
                    .iter()
                    .map(|m| {
                        json!({
                            "messageId": m.message_id(),
                            "receiptHandle": m.receipt_handle(),
                            "body": m.body(),
                            "eventSource": "aws:sqs",
                            "eventSourceARN": format!("arn:aws:sqs:us-east-1:000000000000:{}", queue.name),
                        })
                    })
                    .collect();
                match invoke(&invoke_base, "outbound", &json!({ "Records": records })).await {
                    Ok(answer) => {
                        let failed = failed_items(&answer);
                        for m in out.messages() {
                            if failed.iter().any(|f| Some(f.as_str()) == m.message_id()) {
                                continue;
                            }
                            if let Some(h) = m.receipt_handle() {
                                let _ = clients
                                    .sqs
                                    .delete_message()
                                    .queue_url(&queue.url)
                                    .receipt_handle(h)
                                    .send()
                                    .await;
                            }
                        }
                        println!("outbound: {} retries", records.len());
                    }
                    Err(e) => eprintln!("outbound poller: invoking outbound: {e:#}"),
                }
            }
            Ok(_) => {}
            Err(e) => eprintln!("outbound poller: reading the retry queue: {e:#}"),
        }
        // The digests' schedule (hourly in AWS; every 5 minutes here: each digest is sent once).
        if last_schedule.elapsed() >= Duration::from_secs(300) {
            last_schedule = Instant::now();
            let event =
                json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
            if let Err(e) = invoke(&invoke_base, "outbound", &event).await {
                eprintln!("outbound poller: the digest run: {e:#}");
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
