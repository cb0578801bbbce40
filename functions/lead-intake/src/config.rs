//! The environment variables this function reads, and nothing else.

use shared_billing::BillingPolicy;
use shared_core::config::{ConfigError, Env};
use shared_leads::dynamo::IntakeTables;
use shared_leads::intake::IntakeSettings;

pub const ALLOW_LIST: &[&str] = &[
    "TENANTS_TABLE",
    "LEADS_TABLE",
    "PRIVACY_TABLE",
    "OPS_TABLE",
    "BILLING_TABLE",
    "BLIND_INDEX_KEY_PARAMETER",
    "RATE_LIMIT_PER_IP_PER_MINUTE",
    "RATE_LIMIT_PER_FORM_PER_MINUTE",
    "TECHNICAL_DATA_RETENTION_DAYS",
    "IDEMPOTENCY_TTL_HOURS",
    "FREE_TIER_MONTHLY_SUBMISSIONS",
    "SUBSCRIPTION_GRACE_DAYS",
    "SENDER_EMAIL",
    "SES_CONFIGURATION_SET",
    "APP_BASE_URL",
    "API_BASE_URL",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub tables: IntakeTables,
    /// SSM SecureString holding the blind-index key.
    pub blind_index_key_parameter: String,
    pub settings: IntakeSettings,
    /// Quota alerts to the owners: the sender, the web app (its billing page) and the API
    /// (the emails' one-click unsubscribe link).
    pub sender_email: String,
    /// The configuration set every platform email goes through (bounces and complaints).
    pub ses_configuration_set: String,
    pub app_base_url: String,
    pub api_base_url: String,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let defaults = IntakeSettings::default();
        let settings = IntakeSettings {
            rate_limit_per_ip_per_minute: env.parse_or(
                "RATE_LIMIT_PER_IP_PER_MINUTE",
                defaults.rate_limit_per_ip_per_minute,
            )?,
            rate_limit_per_form_per_minute: env.parse_or(
                "RATE_LIMIT_PER_FORM_PER_MINUTE",
                defaults.rate_limit_per_form_per_minute,
            )?,
            technical_data_retention_days: env.parse_or(
                "TECHNICAL_DATA_RETENTION_DAYS",
                defaults.technical_data_retention_days,
            )?,
            idempotency_ttl: time::Duration::hours(env.parse_or("IDEMPOTENCY_TTL_HOURS", 24i64)?),
            billing: BillingPolicy::from_env(env)?,
        };
        if settings.rate_limit_per_ip_per_minute == 0
            || settings.rate_limit_per_form_per_minute == 0
        {
            return Err(ConfigError::Invalid {
                name: "RATE_LIMIT_PER_IP_PER_MINUTE",
                reason: "rate limits must be at least 1".into(),
            });
        }
        Ok(Self {
            tables: IntakeTables {
                tenants: env.required("TENANTS_TABLE")?,
                leads: env.required("LEADS_TABLE")?,
                privacy: env.required("PRIVACY_TABLE")?,
                ops: env.required("OPS_TABLE")?,
                billing: env.required("BILLING_TABLE")?,
            },
            blind_index_key_parameter: env.required("BLIND_INDEX_KEY_PARAMETER")?,
            settings,
            sender_email: env.required("SENDER_EMAIL")?,
            ses_configuration_set: env.required("SES_CONFIGURATION_SET")?,
            app_base_url: env
                .required("APP_BASE_URL")?
                .trim_end_matches('/')
                .to_string(),
            api_base_url: env
                .required("API_BASE_URL")?
                .trim_end_matches('/')
                .to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_variable() {
        let env = Env::from_pairs([("TENANTS_TABLE", "t"), ("LEADS_TABLE", "l")]);
        let err = Config::from_env(&env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing required environment variable PRIVACY_TABLE"
        );
    }

    #[test]
    fn defaults_and_overrides() {
        let env = Env::from_pairs([
            ("TENANTS_TABLE", "t"),
            ("LEADS_TABLE", "l"),
            ("PRIVACY_TABLE", "p"),
            ("OPS_TABLE", "o"),
            ("BILLING_TABLE", "b"),
            ("BLIND_INDEX_KEY_PARAMETER", "/k"),
            ("RATE_LIMIT_PER_IP_PER_MINUTE", "1000"),
            ("FREE_TIER_MONTHLY_SUBMISSIONS", "1000"),
            ("SENDER_EMAIL", "no-reply@example.com"),
            ("SES_CONFIGURATION_SET", "lead-platform-test-mail"),
            ("APP_BASE_URL", "https://app.example.com/"),
            ("API_BASE_URL", "https://api.example.com"),
        ]);
        let c = Config::from_env(&env).unwrap();
        assert_eq!(c.settings.rate_limit_per_ip_per_minute, 1000);
        assert_eq!(c.settings.rate_limit_per_form_per_minute, 120);
        assert_eq!(c.settings.technical_data_retention_days, 90);
        assert_eq!(c.settings.billing.free_tier.monthly_submissions, 1000);
        assert_eq!(c.settings.billing.grace, time::Duration::days(7));
        assert_eq!(c.app_base_url, "https://app.example.com");
        assert_eq!(c.sender_email, "no-reply@example.com");
    }
}
