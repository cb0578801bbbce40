//! A local stand-in for Stripe: the part of its API the billing function calls, its hosted
//! Checkout and Customer Portal pages, and the signed webhooks those pages cause. `make dev` runs
//! it (`devstack stripe`, port `LOCAL_STRIPE_PORT`, 12111) and the billing function's
//! `STRIPE_API_BASE_URL` points at it; the tests start one per test.
//!
//! Why our own: `stripe-mock` (Stripe's) is stateless, answers fixtures, has no pages and sends
//! no webhooks; the upgrade loop needs all three. This is small and stateful, and strict where
//! Stripe is strict, so a request the real API would refuse is refused here too:
//!
//! - **API** (`Authorization: Bearer <secret key>`, form-encoded): `POST /v1/checkout/sessions`
//!   (subscription mode; a known price; an existing customer if one is named; unknown parameters
//!   refused as `parameter_unknown`) and `POST /v1/billing_portal/sessions` (an existing
//!   customer). `Idempotency-Key` as Stripe: a repeat of a key answers the first result, a key
//!   reused with other parameters is `400 idempotency_error`. Every call is recorded
//!   ([`StripeStandin::calls`], `GET /_standin/calls`) so tests check what went on the wire.
//! - **Checkout page** `GET /checkout/<session>`: "Pay" (`POST /checkout/<session>/complete`)
//!   creates the customer (unless reused), an active subscription and its paid first invoice,
//!   sends `checkout.session.completed`, `customer.subscription.created` and `invoice.paid` to
//!   the webhook URL, signed with the endpoint secret, and redirects to the session's
//!   `success_url`. Stripe sends more (`customer.created`, `invoice.created`, ...), which the
//!   webhook counts and ignores; these three are the ones with effects.
//! - **Portal page** `GET /portal/<session>`: switch to another price (`POST .../plan` with
//!   `price=<id>`, or `plan=<name>&interval=<month|year>`; prorated: the unused time
//!   of the old price credited, the rest of the period on the new one charged at once, an
//!   `invoice.paid` with `billing_reason` `subscription_update`), cancel at the period's end or
//!   now, or resume a scheduled cancellation: `customer.subscription.updated`, or `.deleted`.
//! - **Renewals** `POST /_standin/tenants/<tenant>/renew` (`outcome=pay`, the default, or
//!   `fail`): the tenant's subscription reaches the end of its period. Paid: a new period and
//!   `invoice.paid` (or, when it was set to cancel, `customer.subscription.deleted`). Failed: the
//!   new period's invoice stays open, `invoice.payment_failed` with the next retry and
//!   `customer.subscription.updated` to `past_due`; each further failure is the next retry, and
//!   the fourth leaves the subscription `unpaid` (no retry left). A paid renewal of a failing
//!   subscription pays its open invoice. The dunning loop, locally.
//! - **Outages** for tests ([`StripeStandin::set_outage`]): the API answers `503`, or hangs.
//!
//! Deliveries follow Stripe's rules where they matter here: each event is signed at delivery time
//! (`Stripe-Signature: t=..,v1=..`), and one answered other than 2xx is sent again (up to 3
//! rounds), as the webhook's `409 customer_not_linked` expects. A page `POST` asked for JSON
//! (`Accept: application/json`) answers the deliveries instead of redirecting (the command line,
//! the tests).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{json, Value};
use sha2::Sha256;
use shared_core::clock::Clock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::seed::LocalPrice;

/// The API version the stand-in's objects have the shape of (the billing function pins it too).
pub const API_VERSION: &str = "2024-06-20";
/// `make dev`'s port (stripe-mock's, by convention).
pub const DEFAULT_PORT: u16 = 12111;

/// What the stand-in needs to know.
#[derive(Debug, Clone)]
pub struct StandinConfig {
    /// The only key the API accepts.
    pub secret_key: String,
    /// Where events are posted (`.../v1/billing/webhooks/stripe`).
    pub webhook_url: String,
    /// The endpoint's signing secret (`whsec_...`).
    pub webhook_secret: String,
    /// The prices it sells.
    pub prices: Vec<LocalPrice>,
}

impl StandinConfig {
    /// The local stack's: [`crate::seed::LOCAL_STRIPE_SECRET_KEY`], the local webhook secret and
    /// [`crate::seed::LOCAL_PRICES`].
    pub fn local(webhook_url: &str) -> Self {
        Self {
            secret_key: crate::seed::LOCAL_STRIPE_SECRET_KEY.into(),
            webhook_url: webhook_url.into(),
            webhook_secret: crate::seed::LOCAL_STRIPE_WEBHOOK_SECRET.into(),
            prices: crate::seed::LOCAL_PRICES.to_vec(),
        }
    }
}

/// One API call as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    pub method: String,
    pub path: String,
    /// The bearer token was the secret key.
    pub authorized: bool,
    pub idempotency_key: Option<String>,
    pub stripe_version: Option<String>,
    pub content_type: Option<String>,
    /// The form's pairs, in order.
    pub form: Vec<(String, String)>,
    /// What the stand-in answered (0: nothing, an outage hung).
    pub status: u16,
}

impl ApiCall {
    /// The form as a map (each name once).
    pub fn fields(&self) -> BTreeMap<String, String> {
        self.form.iter().cloned().collect()
    }
}

/// One event sent to the webhook URL, and its answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    pub event_id: String,
    pub event_type: String,
    /// The last answer's status (0: no answer).
    pub status: u16,
    /// The webhook's `outcome` (`applied`, `duplicate`, ...), when it answered one.
    pub outcome: Option<String>,
    pub attempts: u32,
}

/// How the API misbehaves (tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outage {
    #[default]
    None,
    /// Every API call answers this status (an `api_error` body), nothing done.
    Status(u16),
    /// Every API call waits this long, then closes the connection unanswered.
    Hang(Duration),
}

#[derive(Default)]
struct State {
    seq: u64,
    customers: Vec<String>,
    checkouts: BTreeMap<String, Checkout>,
    portals: BTreeMap<String, Value>,
    subscriptions: BTreeMap<String, Value>,
    /// key -> (the request it was first used with, the status and answer)
    idempotency: HashMap<String, (String, u16, Value)>,
    /// subscription -> its unpaid renewal invoice (dunning)
    open_invoices: BTreeMap<String, Value>,
}

struct Checkout {
    session: Value,
    price: LocalPrice,
    subscription_metadata: Value,
}

struct Shared {
    config: StandinConfig,
    endpoint: String,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    calls: Mutex<Vec<ApiCall>>,
    outage: Mutex<Outage>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running stand-in (stops with the runtime that started it).
#[derive(Clone)]
pub struct StripeStandin {
    shared: Arc<Shared>,
}

impl StripeStandin {
    /// Listens on `127.0.0.1:port` (0: any free port).
    pub async fn start(config: StandinConfig, port: u16, clock: Arc<dyn Clock>) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("binding the Stripe stand-in on port {port}"))?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            config,
            endpoint,
            clock,
            state: Mutex::new(State::default()),
            calls: Mutex::new(Vec::new()),
            outage: Mutex::new(Outage::None),
        });
        let accept = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                let shared = accept.clone();
                tokio::spawn(async move {
                    let _ = serve(conn, &shared).await;
                });
            }
        });
        Ok(Self { shared })
    }

    /// `http://127.0.0.1:<port>`: the billing function's `STRIPE_API_BASE_URL`.
    pub fn endpoint(&self) -> &str {
        &self.shared.endpoint
    }

    /// Every API call so far, in arrival order.
    pub fn calls(&self) -> Vec<ApiCall> {
        lock(&self.shared.calls).clone()
    }

    pub fn set_outage(&self, outage: Outage) {
        *lock(&self.shared.outage) = outage;
    }

    /// How many checkout sessions exist.
    pub fn checkout_sessions(&self) -> usize {
        lock(&self.shared.state).checkouts.len()
    }

    /// A subscription as the stand-in holds it.
    pub fn subscription(&self, id: &str) -> Option<Value> {
        lock(&self.shared.state).subscriptions.get(id).cloned()
    }
}

// ---------------------------------------------------------------- HTTP

struct HttpRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }

    fn wants_json(&self) -> bool {
        self.header("accept")
            .is_some_and(|a| a.contains("application/json"))
    }
}

struct HttpResponse {
    status: u16,
    content_type: &'static str,
    location: Option<String>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn json(status: u16, v: &Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            location: None,
            body: v.to_string().into_bytes(),
        }
    }

    fn html(status: u16, body: String) -> Self {
        Self {
            status,
            content_type: "text/html; charset=utf-8",
            location: None,
            body: body.into_bytes(),
        }
    }

    fn redirect(to: &str) -> Self {
        Self {
            status: 303,
            content_type: "text/plain",
            location: Some(to.to_string()),
            body: Vec::new(),
        }
    }
}

/// Stripe's error shape.
fn stripe_error(status: u16, kind: &str, code: Option<&str>, message: &str) -> HttpResponse {
    let mut e = json!({ "type": kind, "message": message });
    if let Some(c) = code {
        e["code"] = json!(c);
    }
    HttpResponse::json(status, &json!({ "error": e }))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads one HTTP/1.1 message (request or response) up to its `Content-Length`, or to the end
/// of the connection when it has none. Returns the head's lines and the body.
async fn read_message(conn: &mut TcpStream, until_close: bool) -> Result<(Vec<String>, Vec<u8>)> {
    let mut raw = Vec::with_capacity(4096);
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&raw, b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            bail!("connection closed inside a message head");
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > 1 << 20 {
            bail!("message head over 1 MiB");
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let lines: Vec<String> = head
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let length = lines.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    let mut body = raw[head_end..].to_vec();
    match length {
        Some(len) => {
            while body.len() < len {
                let n = conn.read(&mut buf).await?;
                if n == 0 {
                    bail!("connection closed inside a body");
                }
                body.extend_from_slice(&buf[..n]);
            }
            body.truncate(len);
        }
        None if until_close => {
            conn.read_to_end(&mut body).await?;
        }
        None => body.clear(),
    }
    Ok((lines, body))
}

fn parse_request(lines: Vec<String>, body: Vec<u8>) -> Result<HttpRequest> {
    let mut first = lines.first().context("no request line")?.split_whitespace();
    let method = first.next().context("no method")?.to_string();
    let target = first.next().context("no target")?;
    let path = target.split('?').next().unwrap_or_default().to_string();
    let headers = lines
        .iter()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(HttpRequest {
        method,
        path,
        headers,
        body,
    })
}

async fn serve(mut conn: TcpStream, shared: &Arc<Shared>) -> Result<()> {
    let (lines, body) = read_message(&mut conn, false).await?;
    let req = parse_request(lines, body)?;
    let resp = if req.path.starts_with("/v1/") {
        let outage = *lock(&shared.outage);
        match outage {
            Outage::Hang(d) => {
                record(shared, &req, 0);
                tokio::time::sleep(d).await;
                return Ok(());
            }
            Outage::Status(status) => {
                record(shared, &req, status);
                stripe_error(
                    status,
                    "api_error",
                    None,
                    "The stand-in is simulating an outage.",
                )
            }
            Outage::None => {
                let resp = api(shared, &req);
                record(shared, &req, resp.status);
                resp
            }
        }
    } else {
        page(shared, &req).await
    };
    let reason = match resp.status {
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        409 => "Conflict",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.status,
        resp.content_type,
        resp.body.len()
    );
    if let Some(l) = &resp.location {
        head.push_str(&format!("Location: {l}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(&resp.body).await?;
    conn.shutdown().await.ok();
    Ok(())
}

fn record(shared: &Shared, req: &HttpRequest, status: u16) {
    let authorized = req.header("authorization")
        == Some(format!("Bearer {}", shared.config.secret_key).as_str());
    lock(&shared.calls).push(ApiCall {
        method: req.method.clone(),
        path: req.path.clone(),
        authorized,
        idempotency_key: req.header("idempotency-key").map(str::to_string),
        stripe_version: req.header("stripe-version").map(str::to_string),
        content_type: req.header("content-type").map(str::to_string),
        form: req.form(),
        status,
    });
}

/// A plain HTTP/1.1 request (`http://` only): the webhook deliveries, and the tests' and the
/// command line's clicks on the pages. Answers (status, headers, body).
pub async fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url} is not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let exchange = async {
        let mut conn = TcpStream::connect(authority)
            .await
            .with_context(|| format!("connecting to {authority}"))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        conn.write_all(head.as_bytes()).await?;
        conn.write_all(body).await?;
        let (lines, body) = read_message(&mut conn, true).await?;
        let status = lines
            .first()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .context("no status line")?;
        let headers = lines
            .iter()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        anyhow::Ok((status, headers, body))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .with_context(|| format!("{method} {url}: no answer within {timeout:?}"))?
}

// ---------------------------------------------------------------- the API

impl Shared {
    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    fn price(&self, id: &str) -> Option<LocalPrice> {
        self.config
            .prices
            .iter()
            .find(|p| p.price_id == id)
            .copied()
    }
}

/// A new object id: Stripe's prefix, a random part (ids never repeat across runs) and a count.
fn new_id(st: &mut State, prefix: &str) -> String {
    st.seq += 1;
    let r: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(10)
        .map(char::from)
        .collect();
    format!("{prefix}_{r}{:04}", st.seq)
}

fn api(shared: &Shared, req: &HttpRequest) -> HttpResponse {
    let authorized = req.header("authorization")
        == Some(format!("Bearer {}", shared.config.secret_key).as_str());
    if !authorized {
        return stripe_error(
            401,
            "invalid_request_error",
            None,
            "Invalid API Key provided.",
        );
    }
    if req.method != "POST" {
        return stripe_error(
            404,
            "invalid_request_error",
            None,
            "Unrecognized request URL.",
        );
    }
    let form = req.form();
    let mut st = lock(&shared.state);
    let key = req.header("idempotency-key").map(str::to_string);
    let fingerprint = format!("{} {}", req.path, String::from_utf8_lossy(&req.body));
    if let Some(k) = &key {
        if let Some((first, status, answer)) = st.idempotency.get(k) {
            if *first != fingerprint {
                return stripe_error(
                    400,
                    "idempotency_error",
                    Some("idempotency_key_in_use"),
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                );
            }
            return HttpResponse::json(*status, answer);
        }
    }
    let resp = match req.path.as_str() {
        "/v1/checkout/sessions" => create_checkout(shared, &mut st, &form),
        "/v1/billing_portal/sessions" => create_portal(shared, &mut st, &form),
        _ => Err(stripe_error(
            404,
            "invalid_request_error",
            None,
            "Unrecognized request URL.",
        )),
    };
    let (status, body) = match resp {
        Ok(v) => (200, v),
        Err(r) => {
            let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            (r.status, v)
        }
    };
    if let Some(k) = key {
        st.idempotency
            .insert(k, (fingerprint, status, body.clone()));
    }
    HttpResponse::json(status, &body)
}

fn invalid(param: &str, code: &str, message: &str) -> HttpResponse {
    let mut r = stripe_error(400, "invalid_request_error", Some(code), message);
    let mut v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    v["error"]["param"] = json!(param);
    r.body = v.to_string().into_bytes();
    r
}

fn create_checkout(
    shared: &Shared,
    st: &mut State,
    form: &[(String, String)],
) -> Result<Value, HttpResponse> {
    let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
    let mut subscription_metadata = serde_json::Map::new();
    for (k, v) in form {
        if let Some(name) = k
            .strip_prefix("subscription_data[metadata][")
            .and_then(|r| r.strip_suffix(']'))
        {
            subscription_metadata.insert(name.to_string(), json!(v));
            continue;
        }
        match k.as_str() {
            "mode"
            | "line_items[0][price]"
            | "line_items[0][quantity]"
            | "client_reference_id"
            | "customer"
            | "success_url"
            | "cancel_url" => {
                fields.insert(k, v);
            }
            other => {
                return Err(invalid(
                    other,
                    "parameter_unknown",
                    &format!("Received unknown parameter: {other}"),
                ))
            }
        }
    }
    if fields.get("mode") != Some(&"subscription") {
        return Err(invalid(
            "mode",
            "parameter_invalid",
            "The stand-in creates subscription-mode sessions only.",
        ));
    }
    let price_id = fields
        .get("line_items[0][price]")
        .copied()
        .unwrap_or_default();
    let Some(price) = shared.price(price_id) else {
        return Err(invalid(
            "line_items[0][price]",
            "resource_missing",
            "No such price.",
        ));
    };
    if fields.get("line_items[0][quantity]") != Some(&"1") {
        return Err(invalid(
            "line_items[0][quantity]",
            "parameter_invalid",
            "Quantity must be 1.",
        ));
    }
    let Some(success_url) = fields.get("success_url") else {
        return Err(invalid(
            "success_url",
            "parameter_missing",
            "Missing required param: success_url.",
        ));
    };
    let customer = fields.get("customer").map(|c| c.to_string());
    if let Some(c) = &customer {
        if !st.customers.contains(c) {
            return Err(invalid("customer", "resource_missing", "No such customer."));
        }
    }
    let id = new_id(st, "cs_test");
    let now = shared.now();
    let session = json!({
        "id": id,
        "object": "checkout.session",
        "mode": "subscription",
        "status": "open",
        "payment_status": "unpaid",
        "url": format!("{}/checkout/{id}", shared.endpoint),
        "client_reference_id": fields.get("client_reference_id"),
        "customer": customer,
        "success_url": success_url,
        "cancel_url": fields.get("cancel_url"),
        "currency": price.currency,
        "amount_total": price.unit_amount,
        "subscription": null,
        "invoice": null,
        "metadata": {},
        "livemode": false,
        "created": now,
        "expires_at": now + 24 * 3600,
    });
    st.checkouts.insert(
        id,
        Checkout {
            session: session.clone(),
            price,
            subscription_metadata: Value::Object(subscription_metadata),
        },
    );
    Ok(session)
}

fn create_portal(
    shared: &Shared,
    st: &mut State,
    form: &[(String, String)],
) -> Result<Value, HttpResponse> {
    let mut customer = None;
    let mut return_url = None;
    for (k, v) in form {
        match k.as_str() {
            "customer" => customer = Some(v.clone()),
            "return_url" => return_url = Some(v.clone()),
            other => {
                return Err(invalid(
                    other,
                    "parameter_unknown",
                    &format!("Received unknown parameter: {other}"),
                ))
            }
        }
    }
    let Some(customer) = customer.filter(|c| st.customers.contains(c)) else {
        return Err(invalid("customer", "resource_missing", "No such customer."));
    };
    let id = new_id(st, "bps");
    let session = json!({
        "id": id,
        "object": "billing_portal.session",
        "customer": customer,
        "return_url": return_url,
        "url": format!("{}/portal/{id}", shared.endpoint),
        "livemode": false,
        "created": shared.now(),
    });
    st.portals.insert(id, session.clone());
    Ok(session)
}

// ---------------------------------------------------------------- pages and their events

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02} {}",
        minor.abs() / 100,
        minor.abs() % 100,
        currency.to_uppercase()
    )
}

fn page_html(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}\
         form{{display:inline}}button{{margin:.25rem .25rem .25rem 0}}.note{{color:#666}}</style></head>\
         <body><p class=\"note\">Local Stripe stand-in (make dev): no real payment happens.</p><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    )
}

fn period_secs(p: &LocalPrice) -> i64 {
    match p.interval {
        shared_billing::BillingInterval::Month => 30 * 24 * 3600,
        shared_billing::BillingInterval::Year => 365 * 24 * 3600,
    }
}

fn price_json(p: &LocalPrice) -> Value {
    json!({
        "id": p.price_id,
        "object": "price",
        "currency": p.currency,
        "unit_amount": p.unit_amount,
        "lookup_key": p.plan,
        "nickname": format!("{} {}ly", p.plan, p.interval.as_str()),
        "recurring": { "interval": p.interval.as_str(), "interval_count": 1 },
        "type": "recurring",
    })
}

fn event(st: &mut State, now: i64, ty: &str, object: &Value, previous: Option<Value>) -> Value {
    let mut data = json!({ "object": object });
    if let Some(p) = previous {
        data["previous_attributes"] = p;
    }
    json!({
        "id": new_id(st, "evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": now,
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": ty,
        "data": data,
    })
}

#[allow(clippy::too_many_arguments)]
fn invoice(
    shared: &Shared,
    st: &mut State,
    now: i64,
    sub: &Value,
    price: &LocalPrice,
    amount: i64,
    reason: &str,
    period: (i64, i64),
) -> Value {
    let id = new_id(st, "in");
    let number = format!("STANDIN-{:04}", st.seq);
    json!({
        "id": id,
        "object": "invoice",
        "number": number,
        "status": "paid",
        "paid": true,
        "billing_reason": reason,
        "currency": price.currency,
        "amount_due": amount,
        "amount_paid": amount,
        "amount_remaining": 0,
        "attempt_count": 1,
        "next_payment_attempt": null,
        "created": now,
        "due_date": null,
        "customer": sub["customer"],
        "subscription": sub["id"],
        "subscription_details": { "metadata": sub["metadata"] },
        "charge": new_id(st, "ch"),
        "payment_intent": new_id(st, "pi"),
        "hosted_invoice_url": format!("{}/invoice/{id}", shared.endpoint),
        "lines": { "object": "list", "data": [{
            "object": "line_item",
            "amount": amount,
            "currency": price.currency,
            "proration": reason == "subscription_update",
            "period": { "start": period.0, "end": period.1 },
            "price": price_json(price),
        }]},
        "period_start": period.0,
        "period_end": period.1,
        "status_transitions": { "finalized_at": now, "paid_at": now },
        "livemode": false,
    })
}

/// Sends `events` in order, signed at delivery; those not answered 2xx again, up to 3 rounds.
async fn deliver(shared: &Shared, events: Vec<Value>) -> Vec<Delivery> {
    let mut out: Vec<Delivery> = events
        .iter()
        .map(|e| Delivery {
            event_id: e["id"].as_str().unwrap_or_default().into(),
            event_type: e["type"].as_str().unwrap_or_default().into(),
            status: 0,
            outcome: None,
            attempts: 0,
        })
        .collect();
    for round in 0..3 {
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for (e, d) in events.iter().zip(out.iter_mut()) {
            if (200..300).contains(&d.status) {
                continue;
            }
            let body = e.to_string();
            let t = shared.now();
            let signature = format!(
                "t={t},v1={}",
                sign(&shared.config.webhook_secret, t, body.as_bytes())
            );
            d.attempts += 1;
            match http_request(
                "POST",
                &shared.config.webhook_url,
                &[
                    ("Content-Type", "application/json; charset=utf-8"),
                    ("Stripe-Signature", &signature),
                    (
                        "User-Agent",
                        "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                    ),
                ],
                body.as_bytes(),
                // A function's first request locally may wait for its build and start.
                Duration::from_secs(300),
            )
            .await
            {
                Ok((status, _, answer)) => {
                    d.status = status;
                    d.outcome = serde_json::from_slice::<Value>(&answer)
                        .ok()
                        .and_then(|v| v["outcome"].as_str().map(str::to_string));
                }
                Err(e) => {
                    eprintln!("stripe stand-in: delivering {} failed: {e:#}", d.event_type);
                    d.status = 0;
                }
            }
        }
        if out.iter().all(|d| (200..300).contains(&d.status)) {
            break;
        }
    }
    for d in &out {
        println!(
            "stripe stand-in: {} {} -> {} {}",
            d.event_type,
            d.event_id,
            d.status,
            d.outcome.as_deref().unwrap_or("")
        );
    }
    out
}

/// `Stripe-Signature`'s `v1`: hex HMAC-SHA256 over `"<t>.<body>"` (written here again, not taken
/// from the billing function, so the tests check one implementation against another).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    m.update(format!("{t}.").as_bytes());
    m.update(body);
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

enum Action {
    Page(HttpResponse),
    Events { events: Vec<Value>, then: String },
}

async fn page(shared: &Arc<Shared>, req: &HttpRequest) -> HttpResponse {
    let parts: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let action = {
        let mut st = lock(&shared.state);
        match (req.method.as_str(), parts.as_slice()) {
            ("GET", ["checkout", id]) => Action::Page(checkout_page(&st, id)),
            ("POST", ["checkout", id, "complete"]) => complete_checkout(shared, &mut st, id),
            ("GET", ["portal", id]) => Action::Page(portal_page(shared, &st, id)),
            ("POST", ["portal", id, what]) => portal_action(shared, &mut st, id, what, &req.form()),
            ("GET", ["invoice", id]) => Action::Page(HttpResponse::html(
                200,
                page_html("Invoice", &format!("<p>Invoice {} (paid).</p>", esc(id))),
            )),
            ("POST", ["_standin", "tenants", tenant, "renew"]) => {
                let fail = req
                    .form()
                    .iter()
                    .any(|(k, v)| k == "outcome" && v == "fail");
                renew(shared, &mut st, tenant, fail)
            }
            ("GET", ["_standin", "calls"]) => {
                let calls: Vec<Value> = lock(&shared.calls)
                    .iter()
                    .map(|c| {
                        json!({
                            "method": c.method, "path": c.path, "authorized": c.authorized,
                            "idempotency_key": c.idempotency_key, "stripe_version": c.stripe_version,
                            "form": c.fields(), "status": c.status,
                        })
                    })
                    .collect();
                Action::Page(HttpResponse::json(200, &json!({ "calls": calls })))
            }
            _ => Action::Page(HttpResponse::html(404, page_html("Not found", ""))),
        }
    };
    match action {
        Action::Page(p) => p,
        Action::Events { events, then } => {
            let deliveries = deliver(shared, events).await;
            if req.wants_json() {
                HttpResponse::json(200, &json!({ "deliveries": deliveries, "next": then }))
            } else {
                HttpResponse::redirect(&then)
            }
        }
    }
}

fn checkout_page(st: &State, id: &str) -> HttpResponse {
    let Some(c) = st.checkouts.get(id) else {
        return HttpResponse::html(404, page_html("No such checkout", ""));
    };
    let s = &c.session;
    if s["status"] != "open" {
        return HttpResponse::html(
            409,
            page_html("This checkout is complete", "<p>It was paid already.</p>"),
        );
    }
    let body = format!(
        "<p>Subscribe <b>{}</b> to <b>{}</b>: {} per {}.</p>\
         <form method=\"post\" action=\"/checkout/{id}/complete\"><button>Pay (test card)</button></form>\
         <p><a href=\"{}\">Cancel and go back</a></p>",
        esc(s["client_reference_id"].as_str().unwrap_or("?")),
        esc(c.price.plan),
        money(c.price.unit_amount, c.price.currency),
        c.price.interval.as_str(),
        esc(s["cancel_url"].as_str().unwrap_or("/")),
        id = esc(id),
    );
    HttpResponse::html(200, page_html("Checkout", &body))
}

fn complete_checkout(shared: &Shared, st: &mut State, id: &str) -> Action {
    let Some(c) = st.checkouts.get(id) else {
        return Action::Page(HttpResponse::html(404, page_html("No such checkout", "")));
    };
    if c.session["status"] != "open" {
        return Action::Page(HttpResponse::html(
            409,
            page_html("This checkout is complete", "<p>It was paid already.</p>"),
        ));
    }
    let (price, metadata, mut session) =
        (c.price, c.subscription_metadata.clone(), c.session.clone());
    let now = shared.now();
    let customer = match session["customer"].as_str() {
        Some(c) => c.to_string(),
        None => {
            let c = new_id(st, "cus");
            st.customers.push(c.clone());
            c
        }
    };
    let sub_id = new_id(st, "sub");
    let end = now + period_secs(&price);
    let mut sub = json!({
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "status": "active",
        "metadata": metadata,
        "created": now,
        "start_date": now,
        "current_period_start": now,
        "current_period_end": end,
        "cancel_at_period_end": false,
        "cancel_at": null,
        "canceled_at": null,
        "ended_at": null,
        "trial_end": null,
        "items": { "object": "list", "data": [{
            "id": new_id(st, "si"),
            "object": "subscription_item",
            "price": price_json(&price),
            "quantity": 1,
            "current_period_start": now,
            "current_period_end": end,
        }]},
        "livemode": false,
    });
    let inv = invoice(
        shared,
        st,
        now,
        &sub,
        &price,
        price.unit_amount,
        "subscription_create",
        (now, end),
    );
    sub["latest_invoice"] = inv["id"].clone();
    session["status"] = json!("complete");
    session["payment_status"] = json!("paid");
    session["customer"] = json!(customer);
    session["subscription"] = json!(sub_id);
    session["invoice"] = inv["id"].clone();
    session["url"] = Value::Null;
    let then = session["success_url"].as_str().unwrap_or("/").to_string();
    if let Some(c) = st.checkouts.get_mut(id) {
        c.session = session.clone();
    }
    st.subscriptions.insert(sub_id, sub.clone());
    let events = vec![
        event(st, now, "checkout.session.completed", &session, None),
        event(st, now, "customer.subscription.created", &sub, None),
        event(st, now, "invoice.paid", &inv, None),
    ];
    Action::Events { events, then }
}

/// Stripe's default Smart Retries, simplified: a retry every 3 days, 4 attempts in all.
const RETRY_SECS: i64 = 3 * 24 * 3600;
const MAX_ATTEMPTS: i64 = 4;

fn renew(shared: &Shared, st: &mut State, tenant: &str, fail: bool) -> Action {
    let sub_id = st
        .subscriptions
        .values()
        .filter(|s| s["metadata"]["tenant_id"] == tenant && s["status"] != "canceled")
        .max_by_key(|s| s["created"].as_i64())
        .and_then(|s| s["id"].as_str().map(str::to_string));
    let Some(sub_id) = sub_id else {
        return Action::Page(HttpResponse::html(
            404,
            page_html("No live subscription for this tenant", ""),
        ));
    };
    let mut sub = st.subscriptions[&sub_id].clone();
    let Some(price) = sub["items"]["data"][0]["price"]["id"]
        .as_str()
        .and_then(|p| shared.price(p))
    else {
        return Action::Page(HttpResponse::html(400, page_html("Unknown price", "")));
    };
    let now = shared.now();
    let then = format!("{}/_standin/calls", shared.endpoint);
    let mut events = Vec::new();
    let open = st.open_invoices.get(&sub_id).cloned();
    if open.is_none() && sub["cancel_at_period_end"] == true {
        // The period ends and so does the subscription.
        sub["status"] = json!("canceled");
        sub["ended_at"] = sub["current_period_end"].clone();
        events.push(event(st, now, "customer.subscription.deleted", &sub, None));
        st.subscriptions.insert(sub_id, sub);
        return Action::Events { events, then };
    }
    let mut inv = match open {
        Some(inv) => inv,
        None => {
            // A new period, and its invoice.
            let start = sub["current_period_end"].as_i64().unwrap_or(now);
            let end = start + period_secs(&price);
            sub["current_period_start"] = json!(start);
            sub["current_period_end"] = json!(end);
            sub["items"]["data"][0]["current_period_start"] = json!(start);
            sub["items"]["data"][0]["current_period_end"] = json!(end);
            let mut inv = invoice(
                shared,
                st,
                now,
                &sub,
                &price,
                price.unit_amount,
                "subscription_cycle",
                (start, end),
            );
            inv["attempt_count"] = json!(0);
            sub["latest_invoice"] = inv["id"].clone();
            inv
        }
    };
    let attempts = inv["attempt_count"].as_i64().unwrap_or(0) + 1;
    inv["attempt_count"] = json!(attempts);
    let previous = json!({ "status": sub["status"].clone() });
    if fail {
        let last = attempts >= MAX_ATTEMPTS;
        inv["status"] = json!("open");
        inv["paid"] = json!(false);
        inv["amount_paid"] = json!(0);
        inv["amount_remaining"] = inv["amount_due"].clone();
        inv["status_transitions"]["paid_at"] = Value::Null;
        inv["next_payment_attempt"] = if last {
            Value::Null
        } else {
            json!(now + RETRY_SECS)
        };
        sub["status"] = json!(if last { "unpaid" } else { "past_due" });
        events.push(event(st, now, "invoice.payment_failed", &inv, None));
        st.open_invoices.insert(sub_id.clone(), inv);
    } else {
        inv["status"] = json!("paid");
        inv["paid"] = json!(true);
        inv["amount_paid"] = inv["amount_due"].clone();
        inv["amount_remaining"] = json!(0);
        inv["next_payment_attempt"] = Value::Null;
        inv["status_transitions"]["paid_at"] = json!(now);
        sub["status"] = json!("active");
        events.push(event(st, now, "invoice.paid", &inv, None));
        st.open_invoices.remove(&sub_id);
    }
    events.push(event(
        st,
        now,
        "customer.subscription.updated",
        &sub,
        Some(previous),
    ));
    st.subscriptions.insert(sub_id, sub);
    Action::Events { events, then }
}

/// The customer's subscription the portal manages: its newest one not yet ended.
fn current_subscription(st: &State, customer: &str) -> Option<String> {
    st.subscriptions
        .values()
        .filter(|s| s["customer"] == customer && s["status"] != "canceled")
        .max_by_key(|s| s["created"].as_i64())
        .and_then(|s| s["id"].as_str().map(str::to_string))
}

fn portal_page(shared: &Shared, st: &State, id: &str) -> HttpResponse {
    let Some(p) = st.portals.get(id) else {
        return HttpResponse::html(404, page_html("No such portal session", ""));
    };
    let back = esc(p["return_url"].as_str().unwrap_or("/"));
    let customer = p["customer"].as_str().unwrap_or_default();
    let Some(sub) = current_subscription(st, customer).and_then(|s| st.subscriptions.get(&s))
    else {
        return HttpResponse::html(
            200,
            page_html(
                "Billing",
                &format!("<p>No active subscription.</p><p><a href=\"{back}\">Return</a></p>"),
            ),
        );
    };
    let price_id = sub["items"]["data"][0]["price"]["id"]
        .as_str()
        .unwrap_or_default();
    let current = shared.price(price_id);
    let mut body = format!(
        "<p>Plan <b>{}</b> ({}), status <b>{}</b>, current period ends {}.{}</p>",
        esc(current.map_or("?", |p| p.plan)),
        current.map_or("?", |p| p.interval.as_str()),
        esc(sub["status"].as_str().unwrap_or("?")),
        time::OffsetDateTime::from_unix_timestamp(sub["current_period_end"].as_i64().unwrap_or(0))
            .map(shared_core::clock::rfc3339)
            .unwrap_or_default(),
        if sub["cancel_at_period_end"] == true {
            " <b>Cancels at the end of the period.</b>"
        } else {
            ""
        }
    );
    body.push_str("<h2>Change plan</h2>");
    for p in shared
        .config
        .prices
        .iter()
        .filter(|p| p.price_id != price_id)
    {
        body.push_str(&format!(
            "<form method=\"post\" action=\"/portal/{id}/plan\"><input type=\"hidden\" name=\"price\" value=\"{}\"><button>{} ({}ly, {})</button></form>",
            esc(p.price_id),
            esc(p.plan),
            p.interval.as_str(),
            money(p.unit_amount, p.currency),
            id = esc(id)
        ));
    }
    body.push_str("<h2>Cancel</h2>");
    if sub["cancel_at_period_end"] == true {
        body.push_str(&format!(
            "<form method=\"post\" action=\"/portal/{}/resume\"><button>Keep the subscription</button></form>",
            esc(id)
        ));
    } else {
        body.push_str(&format!(
            "<form method=\"post\" action=\"/portal/{}/cancel\"><button>Cancel at the end of the period</button></form>",
            esc(id)
        ));
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"/portal/{}/cancel_now\"><button>Cancel now</button></form><p><a href=\"{back}\">Return</a></p>",
        esc(id)
    ));
    HttpResponse::html(200, page_html("Billing", &body))
}

fn portal_action(
    shared: &Shared,
    st: &mut State,
    id: &str,
    what: &str,
    form: &[(String, String)],
) -> Action {
    let Some(portal) = st.portals.get(id).cloned() else {
        return Action::Page(HttpResponse::html(
            404,
            page_html("No such portal session", ""),
        ));
    };
    let customer = portal["customer"].as_str().unwrap_or_default();
    let Some(sub_id) = current_subscription(st, customer) else {
        return Action::Page(HttpResponse::html(
            409,
            page_html("No active subscription", ""),
        ));
    };
    let mut sub = st.subscriptions[&sub_id].clone();
    let now = shared.now();
    let then = format!("{}/portal/{id}", shared.endpoint);
    let mut events = Vec::new();
    match what {
        "plan" => {
            // `price=<id>` (the page's buttons), or `plan=<name>&interval=<month|year>` (the
            // command line).
            let field = |name: &str| {
                form.iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            let new_price = match field("price") {
                Some(id) => shared.price(id),
                None => field("plan").and_then(|plan| {
                    let interval = field("interval").unwrap_or("month");
                    shared
                        .config
                        .prices
                        .iter()
                        .find(|p| p.plan == plan && p.interval.as_str() == interval)
                        .copied()
                }),
            };
            let old_price = sub["items"]["data"][0]["price"]["id"]
                .as_str()
                .and_then(|p| shared.price(p));
            let (Some(new), Some(old)) = (new_price, old_price) else {
                return Action::Page(HttpResponse::html(400, page_html("No such price", "")));
            };
            if new.price_id == old.price_id {
                return Action::Page(HttpResponse::redirect(&then));
            }
            let (start, end) = (
                sub["current_period_start"].as_i64().unwrap_or(now),
                sub["current_period_end"].as_i64().unwrap_or(now),
            );
            let total = (end - start).max(1);
            let remaining = (end - now).clamp(0, total);
            // Stripe's proration: the unused time of the old price is credited; the same
            // interval keeps the period and charges the rest of it on the new price; another
            // interval starts a new period at once, charged in full.
            let credit = old.unit_amount * remaining / total;
            let (charge, period) = if new.interval == old.interval {
                (new.unit_amount * remaining / total, (start, end))
            } else {
                (new.unit_amount, (now, now + period_secs(&new)))
            };
            let previous = json!({ "items": sub["items"].clone() });
            sub["items"]["data"][0]["price"] = price_json(&new);
            sub["items"]["data"][0]["current_period_start"] = json!(period.0);
            sub["items"]["data"][0]["current_period_end"] = json!(period.1);
            sub["current_period_start"] = json!(period.0);
            sub["current_period_end"] = json!(period.1);
            events.push(event(
                st,
                now,
                "customer.subscription.updated",
                &sub,
                Some(previous),
            ));
            let amount = charge - credit;
            if amount > 0 {
                let inv = invoice(
                    shared,
                    st,
                    now,
                    &sub,
                    &new,
                    amount,
                    "subscription_update",
                    period,
                );
                sub["latest_invoice"] = inv["id"].clone();
                events.push(event(st, now, "invoice.paid", &inv, None));
            }
        }
        "cancel" => {
            sub["cancel_at_period_end"] = json!(true);
            sub["cancel_at"] = sub["current_period_end"].clone();
            sub["canceled_at"] = json!(now);
            events.push(event(
                st,
                now,
                "customer.subscription.updated",
                &sub,
                Some(json!({ "cancel_at_period_end": false, "cancel_at": null, "canceled_at": null })),
            ));
        }
        "resume" => {
            sub["cancel_at_period_end"] = json!(false);
            sub["cancel_at"] = Value::Null;
            sub["canceled_at"] = Value::Null;
            events.push(event(
                st,
                now,
                "customer.subscription.updated",
                &sub,
                Some(json!({ "cancel_at_period_end": true })),
            ));
        }
        "cancel_now" => {
            sub["status"] = json!("canceled");
            sub["cancel_at_period_end"] = json!(false);
            sub["canceled_at"] = json!(now);
            sub["ended_at"] = json!(now);
            events.push(event(st, now, "customer.subscription.deleted", &sub, None));
        }
        _ => return Action::Page(HttpResponse::html(404, page_html("Not found", ""))),
    }
    st.subscriptions.insert(sub_id, sub);
    Action::Events { events, then }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(
        s: &StripeStandin,
        path: &str,
        key: Option<&str>,
        auth: &str,
        form: &str,
    ) -> (u16, Value) {
        let auth = format!("Bearer {auth}");
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        if let Some(k) = key {
            headers.push(("Idempotency-Key", k));
        }
        let url = format!("{}{path}", s.endpoint());
        let (status, _, body) = http_request(
            "POST",
            &url,
            &headers,
            form.as_bytes(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn the_api_is_as_strict_as_stripes() {
        let clock = Arc::new(shared_core::clock::FixedClock::new(
            time::macros::datetime!(2026-11-29 12:00 UTC),
        ));
        let s = StripeStandin::start(StandinConfig::local("http://127.0.0.1:9/x"), 0, clock)
            .await
            .unwrap();
        let key = crate::seed::LOCAL_STRIPE_SECRET_KEY;
        let ok = "mode=subscription&line_items%5B0%5D%5Bprice%5D=price_pro_local\
                  &line_items%5B0%5D%5Bquantity%5D=1&success_url=http%3A%2F%2Fx%2Fok";
        let path = "/v1/checkout/sessions";
        assert_eq!(post(&s, path, None, "sk_test_other", ok).await.0, 401);
        let (status, first) = post(&s, path, Some("k1"), key, ok).await;
        assert_eq!(status, 200, "{first}");
        assert!(first["url"]
            .as_str()
            .unwrap()
            .contains("/checkout/cs_test_"));
        // A repeat of the key: the first answer; the key with other parameters: refused.
        assert_eq!(post(&s, path, Some("k1"), key, ok).await.1, first);
        let (status, e) = post(&s, path, Some("k1"), key, &format!("{ok}&customer=cus_x")).await;
        assert_eq!(
            (status, e["error"]["type"].as_str()),
            (400, Some("idempotency_error"))
        );
        assert_eq!(s.checkout_sessions(), 1);
        for (form, code) in [
            (
                format!("{ok}&automatic_tax%5Benabled%5D=true"),
                "parameter_unknown",
            ),
            (
                ok.replace("price_pro_local", "price_nope"),
                "resource_missing",
            ),
            (format!("{ok}&customer=cus_unknown"), "resource_missing"),
            (ok.replace("subscription", "payment"), "parameter_invalid"),
        ] {
            let (status, e) = post(&s, path, None, key, &form).await;
            assert_eq!(
                (status, e["error"]["code"].as_str()),
                (400, Some(code)),
                "{form}"
            );
        }
        let (status, e) = post(
            &s,
            "/v1/billing_portal/sessions",
            None,
            key,
            "customer=cus_x",
        )
        .await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (400, Some("resource_missing"))
        );
        s.set_outage(Outage::Status(503));
        assert_eq!(post(&s, path, Some("k2"), key, ok).await.0, 503);
        assert_eq!(s.calls().len(), 10);
    }

    #[test]
    fn signatures_match_stripes_documented_scheme() {
        // HMAC-SHA256("whsec_test", "1.{}") computed independently (openssl dgst -sha256 -hmac).
        assert_eq!(
            sign("whsec_test", 1, b"{}"),
            "7500d5d4be4b3ef07af1fe56f7d522d135cdaa7530de557e67cc1049c52de094"
        );
    }
}
