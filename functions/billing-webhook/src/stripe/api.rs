//! Stripe's API over HTTPS: form-encoded `POST`s with the secret key, an `Idempotency-Key` on
//! every call, timeouts, and retries only where the key makes them safe.
//!
//! - **Idempotent or not sent.** [`StripeApi::post_form`] takes the idempotency key as an
//!   argument: there is no way to send a `POST` without one. Stripe answers a repeat of a key
//!   with the first request's result (for 24 hours), so resending after a timeout or a lost
//!   answer makes no second session.
//! - **What is retried.** A connection failure, an attempt over its time limit, `409` (a
//!   concurrent request with the same key is still running), `429` and `5xx`, unless Stripe's
//!   `Stripe-Should-Retry` header says otherwise; at most [`CallPolicy::max_attempts`] attempts
//!   and never past [`CallPolicy::deadline`] (the function has 10 seconds in all). Any other
//!   `4xx` is final.
//! - **The secret key** is held in [`SecretKey`], whose `Debug` prints nothing of it, and sent as
//!   a header marked sensitive. Errors carry statuses and Stripe's error `code`, never a body.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use shared_billing::ProviderId;

use crate::provider::{HostedSession, ProviderCallError};

/// Stripe's API.
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";
/// The API version the calls and the webhook parser are written against (pin the webhook
/// endpoint to the same one: docs/billing.md).
pub const API_VERSION: &str = "2024-06-20";
/// A session answer is a few KiB.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Stripe's secret key (`sk_live_…`, `rk_live_…`). Prints as its length only.
#[derive(Clone)]
pub struct SecretKey(Arc<str>);

impl SecretKey {
    pub fn new(value: &str) -> anyhow::Result<Self> {
        let v = value.trim();
        anyhow::ensure!(
            !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic()),
            "the Stripe secret key parameter is empty or holds characters a key cannot have"
        );
        Ok(Self(v.into()))
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({} chars)", self.0.len())
    }
}

/// Time limits and retries of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallPolicy {
    pub connect_timeout: Duration,
    /// One attempt, from sending to the whole answer read.
    pub attempt_timeout: Duration,
    pub max_attempts: u32,
    /// No attempt starts that could end after this (from the call's start).
    pub deadline: Duration,
    /// Before the second attempt; doubled for each further one.
    pub backoff: Duration,
}

impl Default for CallPolicy {
    /// Stripe creates a session in well under a second; three attempts of up to 2.5 s, with the
    /// reads before them, fit the function's 10 seconds.
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_millis(2500),
            max_attempts: 3,
            deadline: Duration::from_secs(7),
            backoff: Duration::from_millis(200),
        }
    }
}

/// Whether `url` may be the API's base: HTTPS, or plain HTTP on the loopback interface only (the
/// local stand-in, `make dev` and tests).
pub fn valid_base_url(url: &str) -> bool {
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"];
    let ok_scheme = url.starts_with("https://")
        || loopback.iter().any(|p| {
            url.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
        });
    ok_scheme && !url.contains(['?', '#', ' ']) && url.len() <= 200
}

/// The API client: one per container, its connections reused across requests.
#[derive(Clone)]
pub struct StripeApi {
    base: String,
    key: SecretKey,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    policy: CallPolicy,
    /// Session URLs may be plain HTTP (only with a loopback base: the local stand-in).
    allow_http_urls: bool,
}

impl std::fmt::Debug for StripeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeApi")
            .field("base", &self.base)
            .field("key", &self.key)
            .field("policy", &self.policy)
            .finish()
    }
}

/// One attempt's result, before deciding whether to retry.
enum Attempt {
    Answer {
        status: StatusCode,
        should_retry: Option<bool>,
        body: Bytes,
    },
    /// No complete answer: not connected, or the connection failed or the time ran out.
    Failed(&'static str),
}

impl StripeApi {
    pub fn new(base_url: &str, key: SecretKey, policy: CallPolicy) -> anyhow::Result<Self> {
        let base = base_url.trim_end_matches('/').to_string();
        anyhow::ensure!(
            valid_base_url(&base),
            "the Stripe API base URL must be https:// (or http:// on the loopback interface)"
        );
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(policy.connect_timeout));
        http.set_nodelay(true);
        // `enforce_http(false)`: the connector below decides the scheme (TLS for https).
        http.enforce_http(false);
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .map_err(|e| anyhow::anyhow!("loading the system's root certificates: {e}"))?;
        let connector = if base.starts_with("https://") {
            builder.https_only().enable_http1().wrap_connector(http)
        } else {
            builder.https_or_http().enable_http1().wrap_connector(http)
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Self {
            allow_http_urls: base.starts_with("http://"),
            base,
            key,
            client,
            policy,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `POST <base><path>` with `form`, under `idempotency_key`; the answer's JSON.
    pub async fn post_form(
        &self,
        path: &str,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<Value, ProviderCallError> {
        let body: Bytes = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish()
            .into();
        let started = Instant::now();
        let p = self.policy;
        let mut last = ProviderCallError::Unavailable("no attempt made".into());
        for attempt in 1..=p.max_attempts.max(1) {
            let outcome = match tokio::time::timeout(
                p.attempt_timeout,
                self.send(path, body.clone(), idempotency_key),
            )
            .await
            {
                Ok(a) => a,
                Err(_) => Attempt::Failed("timed out"),
            };
            match outcome {
                Attempt::Answer { status, body, .. } if status.is_success() => {
                    return serde_json::from_slice(&body)
                        .map_err(|_| ProviderCallError::BadAnswer("not JSON"));
                }
                Attempt::Answer {
                    status,
                    should_retry,
                    body,
                } => {
                    let code = error_code(&body);
                    let transient = status == StatusCode::CONFLICT
                        || status == StatusCode::TOO_MANY_REQUESTS
                        || status.is_server_error();
                    tracing::warn!(
                        attempt,
                        status = status.as_u16(),
                        code = code.as_str(),
                        "stripe answered an error"
                    );
                    if !should_retry.unwrap_or(transient) {
                        return Err(if transient {
                            ProviderCallError::Unavailable(format!("HTTP {}", status.as_u16()))
                        } else {
                            ProviderCallError::Refused {
                                status: status.as_u16(),
                                code,
                            }
                        });
                    }
                    last =
                        ProviderCallError::Unavailable(format!("HTTP {} {code}", status.as_u16()));
                }
                Attempt::Failed(why) => {
                    tracing::warn!(attempt, why, "stripe call failed");
                    last = ProviderCallError::Unavailable(why.into());
                }
            }
            // Safe to send again: the same idempotency key makes the same one session.
            let wait = p.backoff * 2u32.saturating_pow(attempt - 1);
            if attempt >= p.max_attempts
                || started.elapsed() + wait + p.attempt_timeout > p.deadline
            {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        Err(last)
    }

    async fn send(&self, path: &str, body: Bytes, idempotency_key: &str) -> Attempt {
        let mut auth = match HeaderValue::from_str(&format!("Bearer {}", self.key.0)) {
            Ok(v) => v,
            Err(_) => return Attempt::Failed("secret key is not a header value"),
        };
        auth.set_sensitive(true);
        let key = match HeaderValue::from_str(idempotency_key) {
            Ok(v) => v,
            Err(_) => return Attempt::Failed("idempotency key is not a header value"),
        };
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", self.base))
            .header(AUTHORIZATION, auth)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("idempotency-key", key)
            .header("stripe-version", API_VERSION)
            .header(USER_AGENT, "lead-platform-billing/1")
            .body(Full::new(body));
        let request = match request {
            Ok(r) => r,
            Err(_) => return Attempt::Failed("request could not be built"),
        };
        let response = match self.client.request(request).await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Attempt::Failed("could not connect"),
            Err(_) => return Attempt::Failed("connection failed"),
        };
        let status = response.status();
        let should_retry = response
            .headers()
            .get("stripe-should-retry")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| match v {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            });
        match Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
        {
            Ok(body) => Attempt::Answer {
                status,
                should_retry,
                body: body.to_bytes(),
            },
            Err(_) => Attempt::Failed("answer cut short or too large"),
        }
    }

    /// Reads a created session (checkout or portal): its id and URL.
    pub fn session(&self, v: &Value) -> Result<HostedSession, ProviderCallError> {
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .and_then(ProviderId::parse)
            .ok_or(ProviderCallError::BadAnswer("no session id"))?;
        let url = v
            .get("url")
            .and_then(Value::as_str)
            .filter(|u| {
                u.len() <= 4096
                    && !u.chars().any(char::is_control)
                    && (u.starts_with("https://")
                        || (self.allow_http_urls && u.starts_with("http://")))
            })
            .ok_or(ProviderCallError::BadAnswer("no session URL"))?;
        Ok(HostedSession {
            id,
            url: url.to_string(),
        })
    }
}

/// Stripe's error `code` (else its `type`), if it looks like one: `[a-z0-9_]`, at most 64.
fn error_code(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let error = &v["error"];
    error["code"]
        .as_str()
        .or_else(|| error["type"].as_str())
        .filter(|c| {
            c.len() <= 64
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
        .unwrap_or("unknown")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_https_or_loopback_http() {
        for ok in [
            "https://api.stripe.com",
            "http://127.0.0.1:12111",
            "http://localhost:9",
            "http://[::1]:8",
        ] {
            assert!(valid_base_url(ok), "{ok}");
        }
        for bad in [
            "http://api.stripe.com",
            "http://127.0.0.1.evil.example",
            "ftp://x",
            "https://api.stripe.com?x=1",
            "",
        ] {
            assert!(!valid_base_url(bad), "{bad}");
        }
    }

    #[test]
    fn the_secret_key_never_prints() {
        let key = SecretKey::new(" sk_test_abcdef\n").unwrap();
        assert!(!format!("{key:?}").contains("sk_test"));
        assert!(SecretKey::new("  ").is_err());
        assert!(SecretKey::new("sk test").is_err());
    }

    #[test]
    fn error_codes_are_read_and_never_free_text() {
        assert_eq!(
            error_code(br#"{"error":{"code":"resource_missing","message":"No such price: 'x'"}}"#),
            "resource_missing"
        );
        assert_eq!(
            error_code(br#"{"error":{"type":"idempotency_error"}}"#),
            "idempotency_error"
        );
        assert_eq!(error_code(br#"{"error":{"code":"Has Spaces"}}"#), "unknown");
        assert_eq!(error_code(b"<html>"), "unknown");
    }
}
