//! A stand-in for the Lambda Runtime API (`AWS_LAMBDA_RUNTIME_API`), enough for a function built
//! on `lambda_runtime` to start, take invocations and answer them: the benchmarks run the release
//! binaries under it as Lambda runs them, one process at a time.
//!
//! It speaks HTTP/1.1 with keep-alive (the runtime's client reuses its connection): `GET
//! .../invocation/next` is held until [`RuntimeApi::invoke`] hands out an event;
//! `POST .../invocation/{id}/response` and `.../{id}/error` complete it; `POST .../init/error`
//! reports a failed init. Every request is reported with the instant it arrived, so the caller
//! times what it wants from the outside (process start to first poll, event handed out to
//! response received).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Mutex};

pub const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";
const INVOCATION_PREFIX: &str = "/2018-06-01/runtime/invocation/";
const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";

/// What the function sent, with when it arrived.
#[derive(Debug)]
pub enum Report {
    /// A `GET .../next`: the function waits for an invocation.
    Poll(Instant),
    /// `POST .../{id}/response` (`error`: false) or `.../{id}/error` (true), with its body.
    Completed {
        at: Instant,
        request_id: String,
        error: bool,
        body: Vec<u8>,
    },
    /// `POST .../init/error`.
    InitError(Instant, Vec<u8>),
    /// A request this stand-in does not know.
    Unknown(Instant, String),
}

struct Invocation {
    request_id: String,
    payload: Vec<u8>,
    /// `Lambda-Runtime-Deadline-Ms`.
    deadline_ms: u128,
}

/// One stand-in, for one function process.
pub struct RuntimeApi {
    port: u16,
    /// What each invocation is given to finish in (the function's timeout).
    timeout: Duration,
    events: mpsc::UnboundedSender<Invocation>,
    reports: mpsc::UnboundedReceiver<Report>,
    next_id: u64,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RuntimeApi {
    /// A stand-in whose invocations each have `timeout` to finish (the function's `Timeout`).
    pub async fn start(timeout: Duration) -> anyhow::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (events_tx, events_rx) = mpsc::unbounded_channel::<Invocation>();
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let events_rx = Arc::new(Mutex::new(events_rx));
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                connections.spawn(serve(stream, events_rx.clone(), reports_tx.clone()));
            }
        });
        Ok(RuntimeApi {
            port,
            timeout,
            events: events_tx,
            reports: reports_rx,
            next_id: 0,
            task,
        })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits for the function's next poll; anything else it sends first is an error.
    pub async fn wait_poll(&mut self, timeout: Duration) -> anyhow::Result<Instant> {
        match tokio::time::timeout(timeout, self.reports.recv()).await {
            Ok(Some(Report::Poll(at))) => Ok(at),
            Ok(Some(Report::InitError(_, body))) => {
                bail!("init failed: {}", String::from_utf8_lossy(&body))
            }
            Ok(Some(other)) => bail!("expected a poll, got {other:?}"),
            Ok(None) => bail!("runtime API stand-in stopped"),
            Err(_) => bail!("no poll within {timeout:?}"),
        }
    }

    /// Hands `payload` to the waiting poll and returns how long the answer took (from the
    /// moment it was handed out) and the answer's body. An error answer is an error.
    pub async fn invoke(
        &mut self,
        payload: &serde_json::Value,
        timeout: Duration,
    ) -> anyhow::Result<(Duration, Vec<u8>)> {
        self.next_id += 1;
        let request_id = format!("bench-{:08}", self.next_id);
        let start = Instant::now();
        self.events
            .send(Invocation {
                request_id: request_id.clone(),
                payload: serde_json::to_vec(payload)?,
                deadline_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_millis()
                    + self.timeout.as_millis(),
            })
            .ok()
            .context("runtime API stand-in stopped")?;
        match tokio::time::timeout(timeout, self.reports.recv()).await {
            Ok(Some(Report::Completed {
                at,
                request_id: id,
                error,
                body,
            })) => {
                if id != request_id {
                    bail!("answer for {id}, expected {request_id}");
                }
                if error {
                    bail!("invocation failed: {}", String::from_utf8_lossy(&body));
                }
                Ok((at.duration_since(start), body))
            }
            Ok(Some(other)) => bail!("expected the answer of {request_id}, got {other:?}"),
            Ok(None) => bail!("runtime API stand-in stopped"),
            Err(_) => bail!("no answer to {request_id} within {timeout:?}"),
        }
    }
}

/// One connection: requests one after another (keep-alive).
async fn serve(
    stream: TcpStream,
    events: Arc<Mutex<mpsc::UnboundedReceiver<Invocation>>>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let Ok(Some((method, path, body))) = read_request(&mut read).await else {
            return;
        };
        let at = Instant::now();
        let answer: Vec<u8> = if method == "GET" && path == NEXT_PATH {
            let _ = reports.send(Report::Poll(at));
            // Held until an event comes (one process polls at a time).
            let next = events.lock().await.recv().await;
            let Some(inv) = next else { return };
            let deadline = inv.deadline_ms;
            let mut head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                 lambda-runtime-aws-request-id: {id}\r\n\
                 lambda-runtime-deadline-ms: {deadline}\r\n\
                 lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\n\
                 lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n\
                 content-length: {len}\r\n\r\n",
                id = inv.request_id,
                len = inv.payload.len()
            )
            .into_bytes();
            head.extend_from_slice(&inv.payload);
            head
        } else if method == "POST" && path == INIT_ERROR_PATH {
            let _ = reports.send(Report::InitError(at, body));
            accepted()
        } else if let Some(rest) = path
            .strip_prefix(INVOCATION_PREFIX)
            .filter(|_| method == "POST")
        {
            match rest.rsplit_once('/') {
                Some((id, kind @ ("response" | "error"))) => {
                    let _ = reports.send(Report::Completed {
                        at,
                        request_id: id.to_string(),
                        error: kind == "error",
                        body,
                    });
                    accepted()
                }
                _ => {
                    let _ = reports.send(Report::Unknown(at, path));
                    not_found()
                }
            }
        } else {
            let _ = reports.send(Report::Unknown(at, format!("{method} {path}")));
            not_found()
        };
        if write.write_all(&answer).await.is_err() {
            return;
        }
    }
}

fn accepted() -> Vec<u8> {
    b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 16\r\n\r\n{\"status\":\"OK\"}\n"
        .to_vec()
}

fn not_found() -> Vec<u8> {
    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec()
}

/// Reads one request: method, path and body (by `content-length` or chunked). `None`: the
/// connection closed between requests.
async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(
    read: &mut R,
) -> anyhow::Result<Option<(String, String, Vec<u8>)>> {
    let mut line = String::new();
    if read.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let (mut length, mut chunked) = (0usize, false);
    loop {
        let mut header = String::new();
        if read.read_line(&mut header).await? == 0 {
            bail!("connection closed in a request head");
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name == "content-length" {
                length = value.parse().context("content-length")?;
            } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            read.read_line(&mut size).await?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .context("chunk size")?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut t = String::new();
                    if read.read_line(&mut t).await? == 0 || t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            read.read_exact(&mut body[start..]).await?;
            let mut crlf = [0u8; 2];
            read.read_exact(&mut crlf).await?;
        }
    } else {
        body.resize(length, 0);
        read.read_exact(&mut body).await?;
    }
    Ok(Some((method, path, body)))
}
