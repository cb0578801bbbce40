//! The environment variables the dsar-worker function reads, and nothing else.

use std::time::Duration;

use shared_core::config::{ConfigError, Env};
use shared_privacy::dsar::subjects::SubjectTables;
use shared_privacy::dsar::worker::WorkerSettings;

pub const ALLOW_LIST: &[&str] = &[
    "TENANTS_TABLE",
    "LEADS_TABLE",
    "PRIVACY_TABLE",
    "OPS_TABLE",
    "SECURITY_LOG_TABLE",
    "BILLING_TABLE",
    "ATTACHMENTS_BUCKET",
    "EXPORTS_BUCKET",
    "BLIND_INDEX_KEY_PARAMETER",
    "SENDER_EMAIL",
    // Every email goes through it, so SES reports bounces and complaints (docs/mail.md).
    "SES_CONFIGURATION_SET",
    "API_BASE_URL",
    "PRIVACY_OPERATOR_EMAIL",
    "DSAR_WORKER_FUNCTION",
    "LAMBDA_ENDPOINT_URL",
    "DSAR_LINK_TTL_HOURS",
    "DSAR_TIME_MARGIN_SECS",
    // Set by Lambda to the deployment's region: the Art 15 facts name it (data location and
    // transfer mechanism).
    "AWS_REGION",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub tables: SubjectTables,
    pub attachments_bucket: String,
    /// Exports (`dsar/...`; the bucket expires objects after 7 days).
    pub exports_bucket: String,
    pub blind_index_key_parameter: String,
    pub sender_email: String,
    pub ses_configuration_set: String,
    pub api_base_url: String,
    pub operator_email: String,
    /// This function's own name, for its continuations (locally: the binary's name).
    pub worker_function: String,
    /// Where Lambda's Invoke API is, when not AWS's (the local `cargo lambda watch`).
    pub lambda_endpoint: Option<String>,
    pub settings: WorkerSettings,
    /// How long before the invocation's deadline a run stops and continues in a new one.
    pub time_margin: Duration,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let hours: u64 = env.parse_or("DSAR_LINK_TTL_HOURS", 72)?;
        // SigV4 presigned URLs live at most 7 days, and the exports bucket keeps objects 7 days.
        if hours == 0 || hours > 168 {
            return Err(ConfigError::Invalid {
                name: "DSAR_LINK_TTL_HOURS",
                reason: "must be 1..=168".into(),
            });
        }
        Ok(Self {
            tables: SubjectTables {
                tenants: env.required("TENANTS_TABLE")?,
                leads: env.required("LEADS_TABLE")?,
                privacy: env.required("PRIVACY_TABLE")?,
                ops: env.required("OPS_TABLE")?,
                security_log: env.required("SECURITY_LOG_TABLE")?,
                billing: env.required("BILLING_TABLE")?,
            },
            attachments_bucket: env.required("ATTACHMENTS_BUCKET")?,
            exports_bucket: env.required("EXPORTS_BUCKET")?,
            blind_index_key_parameter: env.required("BLIND_INDEX_KEY_PARAMETER")?,
            sender_email: env.required("SENDER_EMAIL")?,
            ses_configuration_set: env.required("SES_CONFIGURATION_SET")?,
            api_base_url: env.required("API_BASE_URL")?,
            operator_email: env.required("PRIVACY_OPERATOR_EMAIL")?,
            worker_function: env.required("DSAR_WORKER_FUNCTION")?,
            lambda_endpoint: env.optional("LAMBDA_ENDPOINT_URL"),
            settings: WorkerSettings {
                link_ttl: Duration::from_secs(hours * 3600),
                api_base_url: env.required("API_BASE_URL")?,
                region: env.required("AWS_REGION")?,
                ..WorkerSettings::default()
            },
            time_margin: Duration::from_secs(env.parse_or("DSAR_TIME_MARGIN_SECS", 60)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_variable_and_bounds_the_link_lifetime() {
        let env = Env::from_pairs([("TENANTS_TABLE", "t"), ("LEADS_TABLE", "l")]);
        assert_eq!(
            Config::from_env(&env).unwrap_err().to_string(),
            "missing required environment variable PRIVACY_TABLE"
        );
        let env = Env::from_pairs([("DSAR_LINK_TTL_HOURS", "500")]);
        assert!(matches!(
            Config::from_env(&env),
            Err(ConfigError::Invalid {
                name: "DSAR_LINK_TTL_HOURS",
                ..
            })
        ));
    }
}
