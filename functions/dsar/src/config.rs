//! The environment variables the dsar function reads, and nothing else.

use shared_core::config::{ConfigError, Env};
use shared_mail::outbound::MailLimits;
use shared_privacy::dsar::progress::Links;
use shared_privacy::dsar::store::DsarTables;

pub const ALLOW_LIST: &[&str] = &[
    "PRIVACY_TABLE",
    "LEADS_TABLE",
    "TENANTS_TABLE",
    "OPS_TABLE",
    "BLIND_INDEX_KEY_PARAMETER",
    "JWT_PUBLIC_KEYS_PARAMETER",
    "SENDER_EMAIL",
    // Every email goes through it, so SES reports bounces and complaints (docs/mail.md).
    "SES_CONFIGURATION_SET",
    // Outbound-mail limits (shared_mail::outbound::MailLimits::ENV; docs/mail.md).
    "MAIL_LIMIT_PER_ADDRESS_PER_HOUR",
    "MAIL_LIMIT_PUBLIC_PER_IP_PER_HOUR",
    "MAIL_LIMIT_TEAM_PER_IP_PER_HOUR",
    "MAIL_LIMIT_PER_TENANT_PER_HOUR",
    "API_BASE_URL",
    "PRIVACY_OPERATOR_EMAIL",
    "DSAR_WORKER_FUNCTION",
    "LAMBDA_ENDPOINT_URL",
    "DSAR_RATE_PER_EMAIL_PER_HOUR",
    "DSAR_RATE_PER_IP_PER_HOUR",
    "EXPORTS_BUCKET",
    "ATTACHMENTS_BUCKET",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub tables: DsarTables,
    pub blind_index_key_parameter: String,
    /// SSM parameter listing the access-token public keys by key id: this function verifies
    /// tokens and cannot sign one (only auth reads the private key).
    pub jwt_public_keys_parameter: String,
    pub sender_email: String,
    pub ses_configuration_set: String,
    pub links: Links,
    /// Where the objects behind subjects' download links are (exports, certificates,
    /// attachments linked from an access export).
    pub exports_bucket: String,
    pub attachments_bucket: String,
    /// The worker function approved requests are handed to (asynchronous invocation).
    pub worker_function: String,
    /// Where Lambda Invoke goes locally (`cargo lambda watch`); unset in AWS.
    pub lambda_endpoint: Option<String>,
    pub settings: Settings,
}

/// Limits and lifetimes of the lifecycle.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long an emailed code can be entered.
    pub code_valid_hours: i64,
    /// Wrong codes before the request is dead and must be filed again.
    pub max_attempts: u32,
    /// An unverified (or dead) request is removed by TTL after this many days.
    pub unverified_ttl_days: i64,
    /// Filings per email (blind index) per hour, and per client IP (hash) per hour.
    pub rate_per_email_per_hour: u32,
    pub rate_per_ip_per_hour: u32,
    /// Queue page size: default and maximum.
    pub page_size: i32,
    pub max_page_size: i32,
    /// Emails per address, filings on behalf per client and per tenant (`shared_mail::outbound`).
    pub mail: MailLimits,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            code_valid_hours: 24,
            max_attempts: 5,
            unverified_ttl_days: 30,
            rate_per_email_per_hour: 3,
            rate_per_ip_per_hour: 20,
            page_size: 50,
            max_page_size: 100,
            mail: MailLimits::default(),
        }
    }
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Settings::default();
        Ok(Self {
            tables: DsarTables {
                privacy: env.required("PRIVACY_TABLE")?,
                leads: env.required("LEADS_TABLE")?,
                tenants: env.required("TENANTS_TABLE")?,
                ops: env.required("OPS_TABLE")?,
            },
            blind_index_key_parameter: env.required("BLIND_INDEX_KEY_PARAMETER")?,
            jwt_public_keys_parameter: env.required("JWT_PUBLIC_KEYS_PARAMETER")?,
            sender_email: env.required("SENDER_EMAIL")?,
            ses_configuration_set: env.required("SES_CONFIGURATION_SET")?,
            exports_bucket: env.required("EXPORTS_BUCKET")?,
            attachments_bucket: env.required("ATTACHMENTS_BUCKET")?,
            links: Links {
                api_base_url: env.required("API_BASE_URL")?,
                operator_email: env.required("PRIVACY_OPERATOR_EMAIL")?,
            },
            worker_function: env.required("DSAR_WORKER_FUNCTION")?,
            lambda_endpoint: env.optional("LAMBDA_ENDPOINT_URL"),
            settings: Settings {
                rate_per_email_per_hour: env
                    .parse_or("DSAR_RATE_PER_EMAIL_PER_HOUR", d.rate_per_email_per_hour)?,
                rate_per_ip_per_hour: env
                    .parse_or("DSAR_RATE_PER_IP_PER_HOUR", d.rate_per_ip_per_hour)?,
                mail: MailLimits::from_env(env)?,
                ..d
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mail_limits_are_read() {
        for name in shared_mail::outbound::MailLimits::ENV {
            assert!(ALLOW_LIST.contains(&name), "{name}");
        }
    }

    #[test]
    fn names_the_missing_variable() {
        let env = Env::from_pairs([("PRIVACY_TABLE", "p"), ("LEADS_TABLE", "l")]);
        assert_eq!(
            Config::from_env(&env).unwrap_err().to_string(),
            "missing required environment variable TENANTS_TABLE"
        );
    }
}
