//! A fault-injecting proxy between the functions and the AWS emulator.
//!
//! Production runs over services that throttle, time out, answer 500/503 and drop connections,
//! sometimes *after* they applied a call (the answer is lost, the write is not). The emulator
//! never fails, so without this the code's answer to those cases is untested. The proxy sits on
//! a loopback port in front of the emulator and, for a configurable share of calls to the chosen
//! services, does one of:
//!
//! | kind | when | what the client sees |
//! |---|---|---|
//! | `throttle` | before | the service's own throttling error (DynamoDB `ProvisionedThroughputExceededException`, SSM `ThrottlingException`, S3 `503 SlowDown`, SES and Lambda `429 TooManyRequestsException`) |
//! | `error500` | before | `500` with the service's internal-error code |
//! | `error503` | before | `503` with the service's unavailable code |
//! | `timeout` | before | nothing for `hang`, then the connection closes (the client's attempt timeout fires first) |
//! | `drop` | before | the connection closes with no answer |
//! | `lost500` | after | the emulator applied the call; the client gets a `500` instead of its answer |
//! | `lost_drop` | after | the emulator applied the call; the connection closes with no answer |
//!
//! `lost500` and `lost_drop` are the cases that matter most: the SDK retries, and the retry meets
//! the state the first attempt already wrote.
//!
//! One behaviour of real DynamoDB the emulator lacks is added here, because without it the
//! "applied, answer lost" case would be harsher than production: `TransactWriteItems` is
//! idempotent per `ClientRequestToken` (the SDK fills one in per operation and keeps it across
//! its retries; DynamoDB answers a repeat of a succeeded transaction with success, without
//! applying it again, for 10 minutes). The proxy remembers the tokens of transactions the
//! emulator accepted and answers their repeats the same way.
//!
//! Which service a call is for comes from its SigV4 credential scope
//! (`Credential=AKID/date/region/<service>/aws4_request`, header or presigned query); calls
//! without one (the emulator's own `/moto-api/`) are never faulted. Faults are drawn from a
//! seeded generator, so a run's sequence of decisions is reproducible for a given order of calls.
//!
//! HTTP handling is deliberately small: one request per client connection (the answer says
//! `Connection: close`, so the SDK's pool opens a new one), the request body read by its
//! `Content-Length` (the SDK always sends one), and the emulator's answer passed through as
//! bytes, read to the end of a `Connection: close` exchange.

use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The services whose calls can be faulted, by SigV4 signing name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    DynamoDb,
    S3,
    Ses,
    Ssm,
    Lambda,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::DynamoDb,
        Service::S3,
        Service::Ses,
        Service::Ssm,
        Service::Lambda,
    ];

    fn from_signing_name(name: &str) -> Option<Service> {
        Some(match name {
            "dynamodb" => Service::DynamoDb,
            "s3" => Service::S3,
            "ses" | "email" => Service::Ses,
            "ssm" => Service::Ssm,
            "lambda" => Service::Lambda,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::DynamoDb => "dynamodb",
            Service::S3 => "s3",
            Service::Ses => "ses",
            Service::Ssm => "ssm",
            Service::Lambda => "lambda",
        }
    }
}

/// What the proxy does to one faulted call (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Throttle,
    Error500,
    Error503,
    Timeout,
    Drop,
    Lost500,
    LostDrop,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Throttle,
        Kind::Error500,
        Kind::Error503,
        Kind::Timeout,
        Kind::Drop,
        Kind::Lost500,
        Kind::LostDrop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Throttle => "throttle",
            Kind::Error500 => "error500",
            Kind::Error503 => "error503",
            Kind::Timeout => "timeout",
            Kind::Drop => "drop",
            Kind::Lost500 => "lost500",
            Kind::LostDrop => "lost_drop",
        }
    }

    /// Whether the emulator applied the call before the fault.
    pub fn after(self) -> bool {
        matches!(self, Kind::Lost500 | Kind::LostDrop)
    }
}

/// What to fault and how often: `LOCAL_FAULTS`' syntax is
/// `rate=0.2,seed=7,services=dynamodb+s3+ses+ssm+lambda,kinds=throttle+lost500,hang_ms=3000`
/// (every key optional; defaults: rate 0.2, seed 1, every service, every kind, hang 3 s).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    pub rate: f64,
    pub seed: u64,
    pub services: Vec<Service>,
    pub kinds: Vec<Kind>,
    pub hang: Duration,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            rate: 0.2,
            seed: 1,
            services: Service::ALL.to_vec(),
            kinds: Kind::ALL.to_vec(),
            hang: Duration::from_secs(3),
        }
    }
}

impl FaultPlan {
    pub fn parse(spec: &str) -> Result<FaultPlan> {
        let mut plan = FaultPlan::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .with_context(|| format!("fault setting `{part}` is not key=value"))?;
            match key.trim() {
                "rate" => {
                    let rate: f64 = value.parse().context("rate must be a number")?;
                    if !(0.0..=1.0).contains(&rate) {
                        bail!("rate must be between 0 and 1");
                    }
                    plan.rate = rate;
                }
                "seed" => plan.seed = value.parse().context("seed must be an integer")?,
                "hang_ms" => {
                    plan.hang = Duration::from_millis(value.parse().context("hang_ms: integer")?)
                }
                "services" => {
                    plan.services = value
                        .split('+')
                        .map(|s| {
                            Service::from_signing_name(s.trim())
                                .with_context(|| format!("unknown service `{s}`"))
                        })
                        .collect::<Result<_>>()?
                }
                "kinds" => {
                    plan.kinds = value
                        .split('+')
                        .map(|k| {
                            Kind::ALL
                                .into_iter()
                                .find(|kind| kind.name() == k.trim())
                                .with_context(|| format!("unknown fault kind `{k}`"))
                        })
                        .collect::<Result<_>>()?
                }
                other => bail!("unknown fault setting `{other}`"),
            }
        }
        if plan.services.is_empty() || plan.kinds.is_empty() {
            bail!("services and kinds must name at least one each");
        }
        Ok(plan)
    }
}

/// Counts of what passed through, for a run's report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultStats {
    /// Calls seen per service (faulted or not).
    pub calls: BTreeMap<&'static str, u64>,
    /// Faults injected per (service, kind).
    pub injected: BTreeMap<(&'static str, &'static str), u64>,
    /// Transaction repeats answered from a remembered `ClientRequestToken`.
    pub replayed_transactions: u64,
}

impl FaultStats {
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }
    pub fn total_injected(&self) -> u64 {
        self.injected.values().sum()
    }
}

impl std::fmt::Display for FaultStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} calls, {} faults injected",
            self.total_calls(),
            self.total_injected()
        )?;
        for ((service, kind), n) in &self.injected {
            write!(f, "; {service} {kind} {n}")?;
        }
        write!(
            f,
            "; {} transaction repeats answered by token",
            self.replayed_transactions
        )
    }
}

/// How long DynamoDB honours a transaction's `ClientRequestToken`.
const TOKEN_WINDOW: Duration = Duration::from_secs(600);

struct State {
    plan: Mutex<FaultPlan>,
    rng: Mutex<StdRng>,
    stats: Mutex<FaultStats>,
    /// ClientRequestToken → (when, the emulator's whole answer) of succeeded transactions.
    transactions: Mutex<HashMap<String, (Instant, Vec<u8>)>>,
    /// ClientRequestToken → a lock held while a transaction with it is at the emulator: a
    /// repeat sent while the first is still in flight (the SDK's attempt timed out) waits for
    /// it and gets its answer, as DynamoDB does not apply one token's transaction twice.
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A running proxy. Dropping the handle does not stop it (it lives as long as its runtime).
#[derive(Clone)]
pub struct FaultProxy {
    endpoint: String,
    state: Arc<State>,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:port` (0: any free port) in front of `upstream`
    /// (`http://host:port`).
    pub async fn start(upstream: &str, port: u16, plan: FaultPlan) -> Result<FaultProxy> {
        let upstream = upstream
            .strip_prefix("http://")
            .with_context(|| format!("upstream `{upstream}` must be http://host:port"))?
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("binding the fault proxy on port {port}"))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            rng: Mutex::new(StdRng::seed_from_u64(plan.seed)),
            plan: Mutex::new(plan),
            stats: Mutex::new(FaultStats::default()),
            transactions: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
        });
        let accept_state = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let state = accept_state.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    // A failed exchange only affects that one call, which the client sees as a
                    // dropped connection: exactly a fault it must survive anyway.
                    let _ = serve(client, &upstream, &state).await;
                });
            }
        });
        Ok(FaultProxy {
            endpoint: format!("http://{addr}"),
            state,
        })
    }

    /// `http://127.0.0.1:<port>`: what the clients use as their endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Changes the share of calls faulted from now on (0 turns the proxy into a plain relay).
    pub fn set_rate(&self, rate: f64) {
        lock(&self.state.plan).rate = rate.clamp(0.0, 1.0);
    }

    pub fn stats(&self) -> FaultStats {
        lock(&self.state.stats).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One parsed request: its raw bytes (head and body) and what the proxy needs from it.
struct Incoming {
    raw: Vec<u8>,
    service: Option<Service>,
    target: Option<String>,
    body_start: usize,
}

async fn serve(mut client: TcpStream, upstream: &str, state: &State) -> Result<()> {
    let Some(request) = read_request(&mut client).await? else {
        return Ok(());
    };
    let fault = decide(state, request.service);
    if let Some(kind) = fault {
        if !kind.after() {
            return inject_before(client, kind, request.service, state).await;
        }
    }
    let token = transaction_token(&request);
    let token_lock = token.as_ref().map(|t| {
        lock(&state.in_flight)
            .entry(t.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone()
    });
    let _in_flight = match &token_lock {
        Some(l) => Some(l.lock().await),
        None => None,
    };
    let remembered = token.as_ref().and_then(|t| {
        let mut seen = lock(&state.transactions);
        seen.retain(|_, (at, _)| at.elapsed() < TOKEN_WINDOW);
        lock(&state.in_flight).retain(|k, l| seen.contains_key(k) || Arc::strong_count(l) > 1);
        seen.get(t).map(|(_, answer)| answer.clone())
    });
    let answer = match remembered {
        Some(answer) => {
            lock(&state.stats).replayed_transactions += 1;
            answer
        }
        None => {
            let answer = forward(upstream, &request.raw).await?;
            if let Some(token) = token {
                if status_of(&answer) == Some(200) {
                    lock(&state.transactions).insert(token, (Instant::now(), answer.clone()));
                }
            }
            answer
        }
    };
    match fault {
        Some(Kind::Lost500) => {
            let service = request.service.unwrap_or(Service::DynamoDb);
            client.write_all(&error_response(service, 500)).await?;
        }
        Some(Kind::LostDrop) => {}
        _ => client.write_all(&answer).await?,
    }
    client.shutdown().await.ok();
    Ok(())
}

/// Reads one request: the head up to the blank line, then `Content-Length` bytes of body.
/// `None` when the client closed the connection before sending anything.
async fn read_request(client: &mut TcpStream) -> Result<Option<Incoming>> {
    let mut raw = Vec::with_capacity(4096);
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&raw, b"\r\n\r\n") {
            break i + 4;
        }
        let n = client.read(&mut buf).await?;
        if n == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            bail!("connection closed inside a request head");
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > 1 << 20 {
            bail!("request head over 1 MiB");
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        bail!("chunked request bodies are not supported by the fault proxy");
    }
    let length: usize = header("content-length")
        .map(|v| v.parse())
        .transpose()
        .context("bad Content-Length")?
        .unwrap_or(0);
    while raw.len() < head_end + length {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            bail!("connection closed inside a request body");
        }
        raw.extend_from_slice(&buf[..n]);
    }
    raw.truncate(head_end + length);
    let service = header("authorization")
        .and_then(|a| scope_service(&a))
        .or_else(|| {
            let target = request_line.split_whitespace().nth(1).unwrap_or_default();
            let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix("X-Amz-Credential="))
                .and_then(|c| scope_service(&c.replace("%2F", "/")))
        });
    let raw = with_connection_close(&raw[..head_end], &raw[head_end..]);
    let body_start = find(&raw, b"\r\n\r\n").map(|i| i + 4).unwrap_or(raw.len());
    Ok(Some(Incoming {
        raw,
        service,
        target: header("x-amz-target"),
        body_start,
    }))
}

/// The signing name in a SigV4 credential scope: `.../<date>/<region>/<service>/aws4_request`.
fn scope_service(text: &str) -> Option<Service> {
    let at = text.find("aws4_request")?;
    let before = text[..at].trim_end_matches('/');
    let name = before.rsplit('/').next()?;
    Service::from_signing_name(name)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The request again with `Connection: close` (and no other connection header), so the
/// emulator ends its answer by closing and the proxy can read it to the end.
fn with_connection_close(head: &[u8], body: &[u8]) -> Vec<u8> {
    let head = String::from_utf8_lossy(head);
    let mut out = String::with_capacity(head.len() + 32);
    for line in head.trim_end_matches("\r\n").split("\r\n") {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") || lower.starts_with("keep-alive:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut raw = out.into_bytes();
    raw.extend_from_slice(body);
    raw
}

fn transaction_token(request: &Incoming) -> Option<String> {
    if request.service != Some(Service::DynamoDb)
        || request.target.as_deref() != Some("DynamoDB_20120810.TransactWriteItems")
    {
        return None;
    }
    let body: serde_json::Value =
        serde_json::from_slice(&request.raw[request.body_start..]).ok()?;
    body.get("ClientRequestToken")?.as_str().map(str::to_string)
}

fn decide(state: &State, service: Option<Service>) -> Option<Kind> {
    let service = service?;
    let plan = lock(&state.plan).clone();
    lock(&state.stats)
        .calls
        .entry(service.name())
        .and_modify(|n| *n += 1)
        .or_insert(1);
    if !plan.services.contains(&service) || plan.rate <= 0.0 {
        return None;
    }
    let kind = {
        let mut rng = lock(&state.rng);
        if !rng.random_bool(plan.rate) {
            return None;
        }
        plan.kinds[rng.random_range(0..plan.kinds.len())]
    };
    *lock(&state.stats)
        .injected
        .entry((service.name(), kind.name()))
        .or_insert(0) += 1;
    Some(kind)
}

async fn inject_before(
    mut client: TcpStream,
    kind: Kind,
    service: Option<Service>,
    state: &State,
) -> Result<()> {
    let service = service.unwrap_or(Service::DynamoDb);
    match kind {
        Kind::Throttle => client.write_all(&throttle_response(service)).await?,
        Kind::Error500 => client.write_all(&error_response(service, 500)).await?,
        Kind::Error503 => client.write_all(&error_response(service, 503)).await?,
        Kind::Timeout => {
            let hang = lock(&state.plan).hang;
            tokio::time::sleep(hang).await;
        }
        Kind::Drop | Kind::Lost500 | Kind::LostDrop => {}
    }
    client.shutdown().await.ok();
    Ok(())
}

async fn forward(upstream: &str, raw: &[u8]) -> Result<Vec<u8>> {
    let mut conn = TcpStream::connect(upstream)
        .await
        .with_context(|| format!("connecting to the emulator at {upstream}"))?;
    conn.write_all(raw).await?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await?;
    if answer.is_empty() {
        bail!("the emulator closed without answering");
    }
    Ok(answer)
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let line_end = find(answer, b"\r\n")?;
    let line = std::str::from_utf8(&answer[..line_end]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn response(status: u16, reason: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    out.into_bytes()
}

const DYNAMO_JSON: &str = "application/x-amz-json-1.0";
const SSM_JSON: &str = "application/x-amz-json-1.1";

/// The service's own throttling answer, as the SDKs parse it.
fn throttle_response(service: Service) -> Vec<u8> {
    match service {
        Service::DynamoDb => response(
            400,
            "Bad Request",
            &[("Content-Type", DYNAMO_JSON)],
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded. (injected)"}"#,
        ),
        Service::Ssm => response(
            400,
            "Bad Request",
            &[("Content-Type", SSM_JSON)],
            r#"{"__type":"ThrottlingException","message":"Rate exceeded (injected)"}"#,
        ),
        Service::S3 => response(
            503,
            "Slow Down",
            &[("Content-Type", "application/xml")],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate. (injected)</Message></Error>",
        ),
        Service::Ses | Service::Lambda => response(
            429,
            "Too Many Requests",
            &[
                ("Content-Type", "application/json"),
                ("x-amzn-ErrorType", "TooManyRequestsException"),
            ],
            r#"{"message":"Rate exceeded (injected)"}"#,
        ),
    }
}

/// The service's own 500 or 503 answer.
fn error_response(service: Service, status: u16) -> Vec<u8> {
    let (reason, code) = match status {
        503 => ("Service Unavailable", "ServiceUnavailable"),
        _ => ("Internal Server Error", "InternalServerError"),
    };
    match service {
        Service::DynamoDb => response(
            status,
            reason,
            &[("Content-Type", DYNAMO_JSON)],
            &format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"(injected)"}}"#
            ),
        ),
        Service::Ssm => response(
            status,
            reason,
            &[("Content-Type", SSM_JSON)],
            &format!(r#"{{"__type":"{code}","message":"(injected)"}}"#),
        ),
        Service::S3 => {
            let code = if status == 503 {
                "ServiceUnavailable"
            } else {
                "InternalError"
            };
            response(
                status,
                reason,
                &[("Content-Type", "application/xml")],
                &format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>(injected)</Message></Error>"),
            )
        }
        Service::Ses | Service::Lambda => {
            let code = if status == 503 {
                "ServiceUnavailableException"
            } else {
                "InternalFailure"
            };
            response(
                status,
                reason,
                &[
                    ("Content-Type", "application/json"),
                    ("x-amzn-ErrorType", code),
                ],
                r#"{"message":"(injected)"}"#,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parse_and_refuse_what_they_cannot_do() {
        let plan =
            FaultPlan::parse("rate=0.25,seed=9,services=dynamodb+s3,kinds=lost500,hang_ms=50")
                .unwrap();
        assert_eq!(plan.rate, 0.25);
        assert_eq!(plan.seed, 9);
        assert_eq!(plan.services, vec![Service::DynamoDb, Service::S3]);
        assert_eq!(plan.kinds, vec![Kind::Lost500]);
        assert_eq!(plan.hang, Duration::from_millis(50));
        assert_eq!(FaultPlan::parse("").unwrap(), FaultPlan::default());
        for bad in [
            "rate=2",
            "rate=x",
            "services=sqs",
            "kinds=boom",
            "nope=1",
            "rate",
        ] {
            assert!(FaultPlan::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_service_comes_from_the_credential_scope() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKID/20261202/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=abc";
        assert_eq!(scope_service(auth), Some(Service::DynamoDb));
        assert_eq!(
            scope_service("AKID/20261202/us-east-1/ses/aws4_request"),
            Some(Service::Ses)
        );
        assert_eq!(
            scope_service("AKID/20261202/us-east-1/sqs/aws4_request"),
            None
        );
        assert_eq!(scope_service("no scope"), None);
    }

    #[test]
    fn the_request_goes_upstream_with_connection_close_only() {
        let raw = with_connection_close(
            b"POST / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\n\r\n",
            b"{}",
        );
        assert_eq!(
            String::from_utf8(raw).unwrap(),
            "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n{}"
        );
    }
}
