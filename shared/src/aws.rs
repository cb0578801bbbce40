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
//! profile, say) the full default chain runs as before.

pub use aws_config::SdkConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::SharedCredentialsProvider;

pub async fn load_config() -> SdkConfig {
    match from_lambda_environment(|name| std::env::var(name).ok()) {
        Some(config) => config,
        None => aws_config::defaults(BehaviorVersion::latest()).load().await,
    }
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
    Some(builder.build())
}

/// CA bundle files, in the order `openssl-probe` (which the SDK's TLS stack asks) tries them.
#[cfg(target_os = "linux")]
const CA_BUNDLE_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // Amazon Linux 2023 (Lambda), RHEL
    "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL 6
    "/etc/ssl/ca-bundle.pem",             // openSUSE
    "/etc/ssl/cert.pem",                  // Alpine
];

/// Makes the SDK trust the system's CA bundle file alone, unless `SSL_CERT_FILE` or
/// `SSL_CERT_DIR` already say where the roots are.
///
/// Why: building an SDK client loads the system's root certificates (the SDK does it at client
/// construction on purpose, so that the first request does not pay for it). Left to probe, it
/// reads the bundle file *and* then every file of the certificate directory (`/etc/ssl/certs`,
/// `/etc/pki/tls/certs`): on Debian the same roots again, one file each; on Amazon Linux the
/// bundle again in its other formats. Decoding that PEM is the largest part of this function's
/// init (`make bench`); the directory adds no root the bundle lacks (both are generated from one
/// store by `update-ca-certificates` / `update-ca-trust`), so reading the bundle alone trusts the
/// same authorities for about half the work. No bundle file found: nothing changes.
///
/// Call it first thing in `main`, before the async runtime or any other thread starts: it sets
/// an environment variable, which is only sound while the process has a single thread.
pub fn prefer_system_ca_bundle() {
    #[cfg(target_os = "linux")]
    {
        if std::env::var_os("SSL_CERT_FILE").is_some() || std::env::var_os("SSL_CERT_DIR").is_some()
        {
            return;
        }
        if let Some(file) = CA_BUNDLE_FILES
            .iter()
            .find(|f| std::path::Path::new(f).is_file())
        {
            std::env::set_var("SSL_CERT_FILE", file);
        }
    }
}

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
}
