//! AWS SDK configuration, built once per container at init.
//!
//! `AWS_ENDPOINT_URL` (the SDK's standard variable) points every client at the local emulator in
//! development and tests; in Lambda it is unset and the SDK talks to the real regional endpoints.
//!
//! Cold start: Lambda hands a function everything the SDK needs in environment variables (the
//! region in `AWS_REGION`, the execution role's credentials in `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`). When they are all there, the config is built
//! from them directly instead of running `aws_config`'s default chains, which at init look for
//! profile files, build the profile, web-identity, ECS and IMDS credential providers, and read a
//! dozen optional settings from the environment and profiles, none of which Lambda uses
//! (`make bench` measures the difference). Without them (a developer's shell with an AWS
//! profile, say) the full default chain runs as before. On the Lambda path every client shares
//! one HTTP client that trusts Amazon's roots only ([`http_client`]).

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
pub use aws_config::SdkConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::SharedCredentialsProvider;
use std::time::Duration;

/// The SDK config of a function whose calls live within `budget`.
pub async fn load_config(budget: Budget) -> SdkConfig {
    let scale = timeout_scale(std::env::var(TIMEOUT_SCALE_VAR).ok().as_deref());
    let timeouts = scaled(budget.timeouts(), scale);
    match from_lambda_environment(|name| std::env::var(name).ok()) {
        Some(config) => config
            .into_builder()
            .retry_config(budget.retry())
            .timeout_config(timeouts)
            .build(),
        None => {
            aws_config::defaults(BehaviorVersion::latest())
                .retry_config(budget.retry())
                .timeout_config(timeouts)
                .load()
                .await
        }
    }
}

/// Multiplies every time limit of the [`Budget`]s (an integer 1-100; unset: 1). Only the local
/// stack sets it (`infra::local::emulator_env`, 10): its emulator applies one request at a time,
/// so under load one call waits seconds for the others. Never set in the template.
pub const TIMEOUT_SCALE_VAR: &str = "SDK_TIMEOUT_SCALE";

fn timeout_scale(raw: Option<&str>) -> u32 {
    raw.and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|n| (1..=100).contains(n))
        .unwrap_or(1)
}

fn scaled(t: TimeoutConfig, scale: u32) -> TimeoutConfig {
    let mut b = TimeoutConfig::builder();
    if let Some(d) = t.connect_timeout() {
        b = b.connect_timeout(d * scale);
    }
    if let Some(d) = t.operation_attempt_timeout() {
        b = b.operation_attempt_timeout(d * scale);
    }
    if let Some(d) = t.operation_timeout() {
        b = b.operation_timeout(d * scale);
    }
    b.build()
}

/// How much time and how many attempts one AWS call may take, chosen by who waits for it.
///
/// The SDK's defaults (3 attempts, backoff from 1 s up to 20 s, *no* read or operation timeout)
/// suit neither: a hung connection would hold a request past API Gateway's 30 s and the
/// function's own timeout, and a 1 s first backoff is most of a form post's patience.
///
/// | budget | who | attempts | backoff (full jitter) | connect | per attempt | whole call |
/// |---|---|---|---|---|---|---|
/// | [`Budget::Request`] | a caller waits (API Gateway, 30 s; intake's function timeout 10 s) | 3 | 20 ms → 1 s | 1 s | 2 s | 5 s |
/// | [`Budget::Job`] | nobody waits (DSAR worker, retention, deadlines, S3/SES events) | 6 | 100 ms → 5 s | 2 s | 10 s | 60 s |
///
/// S3 transfers bodies (exports, imports, certificates), so an S3 client gets longer limits on
/// top ([`crate::s3::client`]): 15 s per attempt, 25 s per call. DynamoDB answers in
/// milliseconds, so 2 s per attempt already means a lost connection; three attempts inside 5 s
/// leave a handler that makes two such calls in a row its answer well inside 30 s even while
/// throttled. A call that still fails is a transient failure ([`is_transient`]) and the
/// handler answers `503` with `Retry-After` ([`crate::http::error_response`]); an event
/// function fails the invocation and its source retries it.
///
/// Retries are the SDK's standard mode (a client-side token bucket stops retry storms when a
/// service is down). The SDK retries throttling errors, 5xx answers, timeouts and connection
/// errors; a retry of a write whose first answer was lost meets the state the first attempt
/// wrote, which is why every conditional write in this code base recognises its own earlier
/// success (and why `TransactWriteItems` carries a `ClientRequestToken`, which the SDK fills
/// in and DynamoDB honours for 10 minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Request,
    Job,
}

impl Budget {
    pub fn retry(self) -> RetryConfig {
        let (attempts, first, max) = match self {
            Budget::Request => (3, Duration::from_millis(20), Duration::from_secs(1)),
            Budget::Job => (6, Duration::from_millis(100), Duration::from_secs(5)),
        };
        RetryConfig::standard()
            .with_max_attempts(attempts)
            .with_initial_backoff(first)
            .with_max_backoff(max)
    }

    pub fn timeouts(self) -> TimeoutConfig {
        let (connect, attempt, call) = match self {
            Budget::Request => (1, 2, 5),
            Budget::Job => (2, 10, 60),
        };
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(connect))
            .operation_attempt_timeout(Duration::from_secs(attempt))
            .operation_timeout(Duration::from_secs(call))
            .build()
    }

    /// S3's limits: bodies take longer than DynamoDB's answers.
    pub fn s3_timeouts(self) -> TimeoutConfig {
        let (connect, attempt, call) = match self {
            Budget::Request => (1, 15, 25),
            Budget::Job => (2, 60, 300),
        };
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(connect))
            .operation_attempt_timeout(Duration::from_secs(attempt))
            .operation_timeout(Duration::from_secs(call))
            .build()
    }

    /// S3's limits for a config: its budget's, scaled as the config's own were.
    pub fn s3_timeouts_for(config: &SdkConfig) -> TimeoutConfig {
        let budget = Budget::of(config);
        let scale = config
            .timeout_config()
            .and_then(|t| t.operation_attempt_timeout())
            .zip(budget.timeouts().operation_attempt_timeout())
            .map(|(have, base)| (have.as_millis() / base.as_millis().max(1)).max(1) as u32)
            .unwrap_or(1);
        scaled(budget.s3_timeouts(), scale)
    }

    /// The budget a config was built with (by its attempt count), for the S3 client.
    pub fn of(config: &SdkConfig) -> Budget {
        match config.retry_config().map(|r| r.max_attempts()) {
            Some(n) if n > 3 => Budget::Job,
            _ => Budget::Request,
        }
    }
}

/// Error codes of a service being briefly unable to answer: throttling (the codes the SDK's
/// standard retry classifier treats as throttling), request timeouts, and the 5xx codes AWS
/// services send (`InternalServerError` for DynamoDB and SSM, `InternalError`/`SlowDown`/
/// `ServiceUnavailable` for S3, `InternalFailure` for the JSON protocols).
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "TransactionConflictException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalServerError",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ServiceException",
];

/// Cancellation reasons of a DynamoDB transaction that say "try again", not "your condition".
const TRANSIENT_CANCELLATIONS: &[&str] = &[
    "ThrottlingError",
    "TransactionConflict",
    "ProvisionedThroughputExceeded",
];

/// Whether `err` (anywhere in its chain) is an AWS call that failed for a reason that passes:
/// throttling, a 5xx, a timeout or a lost connection, after the SDK's own retries. Such a
/// failure is answered `503` with `Retry-After`: nothing is wrong with the request, and every
/// write the code makes is safe to send again.
pub fn is_transient(err: &anyhow::Error) -> bool {
    err.chain().any(transient_link)
}

/// For a write the SDK gave up on: its attempts may have landed with their answers lost
/// (DynamoDB applied the write, the connection dropped before the answer, the retries met
/// throttling). When `err` is such a transient failure and `landed` (a read of the write's own
/// effect: an item only this call creates, a hash only this call knows) finds it, the write
/// happened: `Ok(())`. Otherwise `Err(err)` as it was.
///
/// Why it matters: a caller answered 503 sends the request again. For a write that consumes
/// something (a one-time token, a refresh token) or creates something (a sign-up, a session),
/// the second request would fail or create a second one, while the first one's effect stands.
///
/// The read is tried up to [`LANDED_READS`] times, 50 ms apart: when the service is throttling,
/// the SDK's retry quota may be spent, and a single read would fail as the write did.
pub async fn landed_despite<F, Fut>(err: anyhow::Error, landed: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    if !is_transient(&err) {
        return Err(err);
    }
    for attempt in 0..LANDED_READS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match landed().await {
            Ok(true) => {
                tracing::warn!("a write the SDK gave up on had landed; carrying on");
                return Ok(());
            }
            Ok(false) => return Err(err),
            Err(_) => continue,
        }
    }
    Err(err)
}

/// How many times [`landed_despite`] reads a write's effect.
pub const LANDED_READS: usize = 3;

/// A failure that passes, reported without its provider's detail (which may quote personal
/// data): still answered 503 by [`crate::http::error_response`].
#[derive(Debug, thiserror::Error)]
#[error("{0}: a service was briefly unavailable")]
pub struct Unavailable(pub &'static str);

fn transient_link(e: &(dyn std::error::Error + 'static)) -> bool {
    if e.downcast_ref::<Unavailable>().is_some() {
        return true;
    }
    use aws_smithy_types::error::ErrorMetadata;
    if let Some(c) = e.downcast_ref::<aws_smithy_runtime_api::client::result::ConnectorError>() {
        return !c.is_user();
    }
    // `SdkError::TimeoutError`'s own text: its source (the runtime's timeout error) is private.
    if e.to_string() == "request has timed out" {
        return true;
    }
    let code_is_transient = |code: Option<&str>| code.is_some_and(|c| TRANSIENT_CODES.contains(&c));
    if let Some(meta) = e.downcast_ref::<ErrorMetadata>() {
        // An unparseable error answer has no code: a 5xx page from something in between.
        return meta.code().is_none() || code_is_transient(meta.code());
    }
    // Modeled errors whose very type says "briefly unavailable".
    macro_rules! modeled {
        ($($t:ty),* $(,)?) => {
            $(if e.downcast_ref::<$t>().is_some() {
                return true;
            })*
        };
    }
    use aws_sdk_dynamodb::types::error as ddb;
    if let Some(x) = e.downcast_ref::<ddb::TransactionCanceledException>() {
        let reasons: Vec<&str> = x
            .cancellation_reasons()
            .iter()
            .filter_map(|r| r.code())
            .filter(|c| *c != "None")
            .collect();
        return !reasons.is_empty() && reasons.iter().all(|c| TRANSIENT_CANCELLATIONS.contains(c));
    }
    modeled!(
        ddb::ProvisionedThroughputExceededException,
        ddb::RequestLimitExceeded,
        ddb::ThrottlingException,
        ddb::InternalServerError,
        ddb::TransactionInProgressException,
        ddb::TransactionConflictException,
        aws_sdk_ssm::types::error::InternalServerError,
        aws_sdk_sesv2::types::error::TooManyRequestsException,
    );
    #[cfg(feature = "lambda")]
    modeled!(
        aws_sdk_lambda::types::error::TooManyRequestsException,
        aws_sdk_lambda::types::error::ServiceException,
        aws_sdk_lambda::types::error::Ec2ThrottledException,
    );
    false
}

/// The config from the variables Lambda sets, or `None` when one it needs is missing.
///
/// Behaviour kept from the default chain: the region comes from `AWS_REGION` (else
/// `AWS_DEFAULT_REGION`); credentials are read from the environment variables on first use and
/// cached (the standard environment provider, the default chain's first link); `AWS_ENDPOINT_URL`
/// points every client at one endpoint (the local emulator). Timeouts, retries (standard, 3
/// attempts), the identity cache, the sleep and time sources are the SDK's defaults for this
/// behaviour version, as with `aws_config::load`. Not honoured on this path, because Lambda sets
/// none of them: service-specific `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_MAX_ATTEMPTS`,
/// `AWS_RETRY_MODE`, FIPS/dual-stack switches and profile files.
fn from_lambda_environment(var: impl Fn(&str) -> Option<String>) -> Option<SdkConfig> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let region = set("AWS_REGION").or_else(|| set("AWS_DEFAULT_REGION"))?;
    set("AWS_ACCESS_KEY_ID")?;
    set("AWS_SECRET_ACCESS_KEY")?;
    let credentials = aws_config::environment::EnvironmentVariableCredentialsProvider::new();
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials));
    if let Some(endpoint) = set("AWS_ENDPOINT_URL") {
        builder = builder.endpoint_url(endpoint);
    }
    if let Some(client) = http_client(&var) {
        builder = builder.http_client(client);
    }
    Some(builder.build())
}

/// The roots of Amazon Trust Services, AWS's own certificate authority: Amazon Root CA 1 to 4
/// and the Starfield Services Root G2 that cross-signs them (the set AWS tells clients that pin
/// to trust). Every AWS endpoint's certificate chains to one of them.
const AWS_ROOT_CAS: &str = include_str!("../data/aws-root-cas.pem");

/// The one HTTP client of every SDK client of a function, trusting [`AWS_ROOT_CAS`] only; `None`
/// when `SSL_CERT_FILE` or `SSL_CERT_DIR` is set (then the SDK's own client and the system's
/// roots, e.g. behind a TLS-inspecting proxy on a developer's machine).
///
/// Why: left to itself, every SDK client builds its own HTTP client, which loads the system's
/// root certificates when the client is built: it reads the CA bundle and then every file of
/// the certificate directory (about 150 files on Debian; the bundle again in its other formats
/// on Amazon Linux) and decodes all of it. That was the largest part of a function's cold start
/// (`make bench`: 2.7× a hello-world for leads-api, which builds three clients at init). A
/// function talks to AWS endpoints only, and their certificates chain to Amazon's roots: five
/// roots compiled in cost no file and almost no decoding, one client shares its connection
/// pool, and no other authority can vouch for an AWS endpoint. The emulator is plain HTTP.
pub fn http_client(
    var: impl Fn(&str) -> Option<String>,
) -> Option<aws_smithy_runtime_api::client::http::SharedHttpClient> {
    use aws_smithy_http_client::tls;
    if var("SSL_CERT_FILE").is_some() || var("SSL_CERT_DIR").is_some() {
        return None;
    }
    let context = tls::TlsContext::builder()
        .with_trust_store(
            tls::TrustStore::empty()
                .with_native_roots(false)
                .with_pem_certificate(AWS_ROOT_CAS.as_bytes()),
        )
        .build()
        .expect("a trust store of compiled-in certificates builds");
    Some(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(context)
            .build_https(),
    )
}

/// Clients inherit the config's [`Budget`] (retries and timeouts).
pub fn dynamodb(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

pub fn ssm(config: &SdkConfig) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(config)
}

pub use aws_sdk_ssm::Client as SsmClient;

pub fn sesv2(config: &SdkConfig) -> aws_sdk_sesv2::Client {
    aws_sdk_sesv2::Client::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const LAMBDA: &[(&str, &str)] = &[
        ("AWS_REGION", "eu-central-1"),
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "token"),
    ];

    #[test]
    fn lambda_environment_gives_region_credentials_and_no_endpoint_override() {
        let c = from_lambda_environment(env(LAMBDA)).expect("a config");
        assert_eq!(c.region().map(|r| r.as_ref()), Some("eu-central-1"));
        assert!(c.credentials_provider().is_some());
        assert_eq!(c.endpoint_url(), None);
        assert!(c.behavior_version().is_some());
    }

    #[test]
    fn every_client_shares_one_http_client_trusting_amazons_roots_unless_told_otherwise() {
        let c = from_lambda_environment(env(LAMBDA)).expect("a config");
        assert!(
            c.http_client().is_some(),
            "one HTTP client for every SDK client"
        );
        let mut pairs = LAMBDA.to_vec();
        pairs.push(("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"));
        let c = from_lambda_environment(env(&pairs)).expect("a config");
        assert!(
            c.http_client().is_none(),
            "the SDK's own, with the system's roots"
        );

        // Exactly the five roots of Amazon Trust Services, by their SHA-256 fingerprints as
        // Amazon publishes them (www.amazontrust.com/repository).
        use base64::Engine;
        use sha2::Digest;
        let fingerprints: Vec<String> = AWS_ROOT_CAS
            .split("-----END CERTIFICATE-----")
            .filter(|p| p.contains("-----BEGIN CERTIFICATE-----"))
            .map(|pem| {
                let b64: String = pem
                    .lines()
                    .filter(|l| !l.starts_with("-----") && !l.trim().is_empty())
                    .collect();
                let der = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .expect("base64");
                crate::blind_index::hex(&sha2::Sha256::digest(der))
            })
            .collect();
        assert_eq!(
            fingerprints,
            [
                // Amazon Root CA 1 to 4
                "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",
                "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4",
                "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",
                "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092",
                // Starfield Services Root Certificate Authority - G2
                "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5",
            ]
        );
    }

    #[test]
    fn endpoint_url_points_at_the_emulator() {
        let mut pairs = LAMBDA.to_vec();
        pairs.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"));
        let c = from_lambda_environment(env(&pairs)).expect("a config");
        assert_eq!(c.endpoint_url(), Some("http://127.0.0.1:4566"));
    }

    #[test]
    fn missing_region_or_credentials_falls_back_to_the_default_chain() {
        assert!(from_lambda_environment(env(&LAMBDA[1..])).is_none());
        assert!(from_lambda_environment(env(&[("AWS_REGION", "eu-central-1")])).is_none());
        let default_region = [
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ];
        assert!(from_lambda_environment(env(&default_region)).is_some());
    }

    /// A DynamoDB client against a one-shot local server that answers every connection with
    /// `answer` (`None`: closes without answering; `Some("")`: never answers), one attempt.
    async fn dynamo_against(answer: Option<&'static str>) -> aws_sdk_dynamodb::Client {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = conn.read(&mut buf).await;
                match answer {
                    None => drop(conn),
                    Some("") => tokio::time::sleep(Duration::from_secs(5)).await,
                    Some(a) => {
                        let _ = conn.write_all(a.as_bytes()).await;
                    }
                }
            }
        });
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "AKID", "secret", None, None, "test",
            ))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(300))
                    .build(),
            )
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    fn json_answer(status: &str, body: &'static str) -> &'static str {
        Box::leak(
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        )
    }

    async fn error_of(answer: Option<&'static str>) -> anyhow::Error {
        let client = dynamo_against(answer).await;
        let err = client
            .get_item()
            .table_name("t")
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("k".into()))
            .send()
            .await
            .expect_err("the call fails");
        anyhow::Error::new(err.into_service_error()).context("GetItem")
    }

    #[test]
    fn the_local_scale_multiplies_every_limit_and_only_a_sane_value_counts() {
        assert_eq!(timeout_scale(None), 1);
        assert_eq!(timeout_scale(Some("10")), 10);
        for bad in ["0", "101", "x", "-3", ""] {
            assert_eq!(timeout_scale(Some(bad)), 1, "{bad}");
        }
        let t = scaled(Budget::Request.timeouts(), 10);
        assert_eq!(t.operation_attempt_timeout(), Some(Duration::from_secs(20)));
        assert_eq!(t.operation_timeout(), Some(Duration::from_secs(50)));
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(10)));
    }

    #[tokio::test]
    async fn throttling_5xx_timeouts_and_lost_connections_are_transient_and_nothing_else() {
        let throttled = json_answer(
            "400 Bad Request",
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow"}"#,
        );
        let internal = json_answer(
            "500 Internal Server Error",
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"x"}"#,
        );
        let unmodeled = json_answer(
            "503 Service Unavailable",
            r#"{"__type":"ThrottlingException"}"#,
        );
        for (what, answer) in [
            ("throttled", Some(throttled)),
            ("500", Some(internal)),
            ("503 unmodeled", Some(unmodeled)),
            ("connection dropped", None),
            ("timed out", Some("")),
        ] {
            let err = error_of(answer).await;
            assert!(is_transient(&err), "{what}: {err:#}");
        }
        let refused = [
            json_answer(
                "400 Bad Request",
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"no table"}"#,
            ),
            json_answer(
                "400 Bad Request",
                r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"bad"}"#,
            ),
        ];
        for answer in refused {
            let err = error_of(Some(answer)).await;
            assert!(!is_transient(&err), "{err:#}");
        }
        assert!(!is_transient(&anyhow::anyhow!("a bug of ours")));
    }

    #[tokio::test]
    async fn a_write_that_landed_is_recognised_and_one_that_did_not_keeps_its_error() {
        let transient = error_of(None).await;
        assert!(landed_despite(transient, || async { Ok(true) })
            .await
            .is_ok());
        let transient = error_of(None).await;
        assert!(landed_despite(transient, || async { Ok(false) })
            .await
            .is_err());
        // A read that keeps failing is tried LANDED_READS times, then the error stands.
        let tries = std::sync::atomic::AtomicUsize::new(0);
        let transient = error_of(None).await;
        let out = landed_despite(transient, || async {
            tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(anyhow::anyhow!("read failed"))
        })
        .await;
        assert!(out.is_err());
        assert_eq!(
            tries.load(std::sync::atomic::Ordering::SeqCst),
            LANDED_READS
        );
        // Not transient: the effect is not even looked for.
        let looked = std::sync::atomic::AtomicBool::new(false);
        let out = landed_despite(anyhow::anyhow!("a bug"), || async {
            looked.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(true)
        })
        .await;
        assert!(out.is_err() && !looked.load(std::sync::atomic::Ordering::SeqCst));
    }
}
