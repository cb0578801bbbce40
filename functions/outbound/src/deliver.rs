//! One delivery attempt over HTTPS, safe against server-side request forgery: the host is
//! resolved here, every answer is checked ([`shared_outbound::address::pick_address`]), and the
//! connection goes to the checked address only (the connector's resolver is pinned to it, so a
//! second DNS answer cannot change where it goes). Redirects are not followed (a 3xx is a failed
//! attempt), the answer's body is read to at most 4 KiB and dropped, and the whole attempt is
//! bounded in time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request};
use hyper_rustls::ConfigBuilderExt;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use shared_outbound::address::{self, LocalSinks};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_ANSWER_BYTES: usize = 4096;

pub use shared_outbound::address::{system_resolver, ResolveFn, Resolved};

/// A resolver that answers every name with the one address already checked.
#[derive(Clone)]
struct Pinned(SocketAddr);

impl tower_service::Service<Name> for Pinned {
    type Response = std::iter::Once<SocketAddr>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Name) -> Self::Future {
        std::future::ready(Ok(std::iter::once(self.0)))
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// None when delivered (a 2xx); else a short reason.
    pub error: Option<&'static str>,
    /// The address connected to (for tests and the log line; never the body).
    pub address: Option<SocketAddr>,
}

impl Outcome {
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

#[derive(Clone)]
pub struct Deliverer {
    tls: rustls::ClientConfig,
    resolve: ResolveFn,
    local: LocalSinks,
}

impl Deliverer {
    pub fn new(local: LocalSinks, resolve: ResolveFn) -> anyhow::Result<Self> {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_native_roots()?
        .with_no_client_auth();
        Ok(Self {
            tls,
            resolve,
            local,
        })
    }

    pub fn local(&self) -> &LocalSinks {
        &self.local
    }

    /// POSTs `body` to `url` with the given headers (the signature among them).
    pub async fn post(&self, url: &str, headers: &[(&str, String)], body: Bytes) -> Outcome {
        let started = Instant::now();
        let fail =
            |error: &'static str, status: Option<u16>, address: Option<SocketAddr>| Outcome {
                status,
                latency_ms: started.elapsed().as_millis() as u64,
                error: Some(error),
                address,
            };
        let (endpoint, addr) =
            match address::check(url, &self.local, &self.resolve, CONNECT_TIMEOUT).await {
                Ok(ok) => ok,
                Err(address::Refusal::Url(_)) => return fail("refused_url", None, None),
                Err(address::Refusal::Unresolvable) => return fail("dns", None, None),
                Err(address::Refusal::Address) => return fail("refused_address", None, None),
            };
        let mut http = HttpConnector::new_with_resolver(Pinned(addr));
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        http.enforce_http(false);
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(self.tls.clone());
        let connector = if endpoint.https {
            builder.https_only().enable_http1().wrap_connector(http)
        } else {
            // Only a local stage's loopback sink (parse_url allowed it).
            builder.https_or_http().enable_http1().wrap_connector(http)
        };
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, "lead-platform-webhooks/1");
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let Ok(req) = req.body(Full::new(body)) else {
            return fail("request", None, Some(addr));
        };
        let attempt = async {
            let resp = match client.request(req).await {
                Ok(r) => r,
                Err(e) if e.is_connect() => return Err("connect"),
                Err(_) => return Err("connection"),
            };
            let status = resp.status().as_u16();
            // Read a little of the answer so the connection ends cleanly; never kept.
            let _ = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await;
            Ok(status)
        };
        match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await {
            Err(_) => fail("timeout", None, Some(addr)),
            Ok(Err(why)) => fail(why, None, Some(addr)),
            Ok(Ok(status)) if (200..300).contains(&status) => Outcome {
                status: Some(status),
                latency_ms: started.elapsed().as_millis() as u64,
                error: None,
                address: Some(addr),
            },
            // 3xx included: a redirect is not followed.
            Ok(Ok(status)) => fail("http_status", Some(status), Some(addr)),
        }
    }
}
