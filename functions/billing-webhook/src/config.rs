//! The environment variables the billing function reads, and nothing else.

use shared_billing::dynamo::BillingTables;
use shared_billing::BillingPolicy;
use shared_core::config::{ConfigError, Env};

pub const ALLOW_LIST: &[&str] = &[
    "BILLING_TABLE",
    "PLANS_TABLE",
    "OPS_TABLE",
    "TENANTS_TABLE",
    "STRIPE_WEBHOOK_SECRETS_PARAMETER",
    "STRIPE_WEBHOOK_TOLERANCE_SECS",
    "JWT_PUBLIC_KEYS_PARAMETER",
    // Signs the one-click unsubscribe link every email carries (docs/dsar.md).
    "BLIND_INDEX_KEY_PARAMETER",
    "SENDER_EMAIL",
    // Every email goes through it, so SES reports bounces and complaints (docs/mail.md).
    "SES_CONFIGURATION_SET",
    "APP_BASE_URL",
    // The one-click unsubscribe link points at the API (the dsar function serves it).
    "API_BASE_URL",
    "FREE_TIER_MONTHLY_SUBMISSIONS",
    "FREE_TIER_SEATS",
    "SUBSCRIPTION_GRACE_DAYS",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub tables: BillingTables,
    /// Users (billing contacts, owner) for the emails; read only.
    pub tenants_table: String,
    /// SSM SecureString: the Stripe endpoint's signing secrets, comma- or newline-separated
    /// (two during a rotation).
    pub stripe_secrets_parameter: String,
    /// SSM parameter listing the access-token public keys by key id: this function verifies
    /// tokens and cannot sign one (only auth reads the private key).
    pub jwt_public_keys_parameter: String,
    pub blind_index_key_parameter: String,
    pub sender_email: String,
    pub ses_configuration_set: String,
    /// The API's base URL: the one-click unsubscribe link of every email.
    pub api_base_url: String,
    pub settings: Settings,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub policy: BillingPolicy,
    /// How old (or how far ahead) a signature's timestamp may be.
    pub tolerance_secs: i64,
    /// How long a received event id is remembered (Stripe redelivers for up to 3 days and lets
    /// an operator resend events up to 30 days old).
    pub event_retention_days: i64,
    /// Links in emails point here (`<base>/billing`).
    pub app_base_url: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            policy: BillingPolicy::default(),
            tolerance_secs: 300,
            event_retention_days: 90,
            app_base_url: "https://app.example.com".into(),
        }
    }
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Settings::default();
        let tolerance_secs: i64 =
            env.parse_or("STRIPE_WEBHOOK_TOLERANCE_SECS", d.tolerance_secs)?;
        if !(1..=3600).contains(&tolerance_secs) {
            return Err(ConfigError::Invalid {
                name: "STRIPE_WEBHOOK_TOLERANCE_SECS",
                reason: "must be 1 to 3600 seconds".into(),
            });
        }
        Ok(Self {
            tables: BillingTables {
                billing: env.required("BILLING_TABLE")?,
                plans: env.required("PLANS_TABLE")?,
                ops: env.required("OPS_TABLE")?,
            },
            tenants_table: env.required("TENANTS_TABLE")?,
            stripe_secrets_parameter: env.required("STRIPE_WEBHOOK_SECRETS_PARAMETER")?,
            jwt_public_keys_parameter: env.required("JWT_PUBLIC_KEYS_PARAMETER")?,
            blind_index_key_parameter: env.required("BLIND_INDEX_KEY_PARAMETER")?,
            sender_email: env.required("SENDER_EMAIL")?,
            ses_configuration_set: env.required("SES_CONFIGURATION_SET")?,
            api_base_url: env
                .required("API_BASE_URL")?
                .trim_end_matches('/')
                .to_string(),
            settings: Settings {
                policy: BillingPolicy::from_env(env)?,
                tolerance_secs,
                app_base_url: env
                    .required("APP_BASE_URL")?
                    .trim_end_matches('/')
                    .to_string(),
                ..d
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(extra: &[(&'static str, &'static str)]) -> Env {
        let mut pairs = vec![
            ("BILLING_TABLE", "b"),
            ("PLANS_TABLE", "p"),
            ("OPS_TABLE", "o"),
            ("TENANTS_TABLE", "t"),
            ("STRIPE_WEBHOOK_SECRETS_PARAMETER", "/s"),
            ("JWT_PUBLIC_KEYS_PARAMETER", "/j"),
            ("BLIND_INDEX_KEY_PARAMETER", "/b"),
            ("API_BASE_URL", "https://api.example.com"),
            ("SENDER_EMAIL", "no-reply@example.com"),
            ("SES_CONFIGURATION_SET", "lead-platform-test-mail"),
            ("APP_BASE_URL", "https://app.example.com/"),
        ];
        pairs.extend_from_slice(extra);
        Env::from_pairs(pairs)
    }

    #[test]
    fn defaults() {
        let c = Config::from_env(&env(&[])).unwrap();
        assert_eq!(c.settings.tolerance_secs, 300);
        assert_eq!(c.settings.policy.free_tier.monthly_submissions, 100);
        assert_eq!(c.settings.policy.free_tier.seats, 3);
        assert_eq!(c.settings.app_base_url, "https://app.example.com");
    }

    #[test]
    fn overrides_and_bounds() {
        let c = Config::from_env(&env(&[
            ("STRIPE_WEBHOOK_TOLERANCE_SECS", "60"),
            ("FREE_TIER_MONTHLY_SUBMISSIONS", "1000"),
        ]))
        .unwrap();
        assert_eq!(c.settings.tolerance_secs, 60);
        assert_eq!(c.settings.policy.free_tier.monthly_submissions, 1000);
        assert!(Config::from_env(&env(&[("STRIPE_WEBHOOK_TOLERANCE_SECS", "0")])).is_err());
        let err = Config::from_env(&Env::from_pairs([("BILLING_TABLE", "b")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing("PLANS_TABLE"));
    }
}
