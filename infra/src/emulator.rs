//! What the local emulator offers beyond the AWS APIs: SES sender identities, and reading back
//! the emails it "sent" (moto keeps them; tests and `make dev` read them to follow links).

use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::template::LOCAL_REGION;

/// An SESv2 client for the emulator at `endpoint`, with test credentials and a request-serving
/// function's retries and timeouts.
pub fn sesv2_client(endpoint: &str) -> aws_sdk_sesv2::Client {
    let budget = shared_core::aws::Budget::Request;
    let conf = aws_sdk_sesv2::Config::builder()
        .behavior_version(aws_sdk_sesv2::config::BehaviorVersion::latest())
        .region(aws_sdk_sesv2::config::Region::new(LOCAL_REGION))
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
            crate::bootstrap::TEST_ACCESS_KEY_ID,
            crate::bootstrap::TEST_SECRET_ACCESS_KEY,
            None,
            None,
            "infra-local",
        ))
        .endpoint_url(endpoint)
        .retry_config(budget.retry())
        .timeout_config(budget.timeouts())
        .build();
    aws_sdk_sesv2::Client::from_conf(conf)
}

/// Registers the sender identity (the emulator, like SES, refuses unverified senders).
pub async fn ensure_sender_identity(
    ses: &aws_sdk_sesv2::Client,
    sender: &str,
) -> anyhow::Result<()> {
    match ses
        .create_email_identity()
        .email_identity(sender)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = e.into_service_error();
            if e.is_already_exists_exception() {
                Ok(())
            } else {
                Err(anyhow::Error::new(e).context("CreateEmailIdentity"))
            }
        }
    }
}

/// An email the emulator accepted.
#[derive(Debug, Clone)]
pub struct SentEmail {
    pub to: Vec<String>,
    pub subject: String,
    /// The HTML body (moto keeps one body).
    pub body: String,
}

/// Every email the emulator has accepted, oldest first.
pub fn sent_emails(endpoint: &str) -> anyhow::Result<Vec<SentEmail>> {
    // moto builds data.json from every backend's live objects, checking each attribute is JSON
    // before reading it again: a test writing the first item of a fresh table meanwhile makes
    // that second read unserializable and the answer a 500. A short retry rides it out.
    let mut attempt = 0;
    let data = loop {
        match http_get_json(endpoint, "/moto-api/data.json") {
            Ok(data) => break data,
            Err(_) if attempt < 8 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(50 * attempt));
            }
            Err(e) => return Err(e),
        }
    };
    let mut out = Vec::new();
    for m in data["ses"]["Message"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        out.push(SentEmail {
            to: m["destinations"]["ToAddresses"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            subject: m["subject"].as_str().unwrap_or_default().to_string(),
            body: m["body"].as_str().unwrap_or_default().to_string(),
        });
    }
    Ok(out)
}

/// A one-shot HTTP/1.0 GET against the emulator on loopback (no HTTP client dependency).
fn http_get_json(endpoint: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    let host = endpoint
        .strip_prefix("http://")
        .context("the emulator endpoint is plain http")?
        .trim_end_matches('/');
    let mut stream = TcpStream::connect(host).with_context(|| format!("connecting to {host}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("malformed HTTP response from the emulator");
    };
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!(
            "emulator answered {}",
            head.lines().next().unwrap_or_default()
        );
    }
    serde_json::from_str(body).context("emulator data is not JSON")
}

/// The value of `token=` in the last link of an email body.
pub fn token_in(body: &str) -> Option<String> {
    let start = body.rfind("token=")? + "token=".len();
    let token: String = body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!token.is_empty()).then_some(token)
}
