//! The environment variables the auth function reads, and nothing else.

use shared_accounts::dynamo::AccountTables;
use shared_accounts::policy::PolicyVersions;
use shared_billing::BillingPolicy;
use shared_core::config::{ConfigError, Env};
use shared_mail::outbound::MailLimits;

pub const ALLOW_LIST: &[&str] = &[
    "TENANTS_TABLE",
    "SECURITY_LOG_TABLE",
    "OPS_TABLE",
    "BLIND_INDEX_KEY_PARAMETER",
    // The access-token private key: auth is the only function whose configuration names it.
    "JWT_SIGNING_KEY_PARAMETER",
    "JWT_PUBLIC_KEYS_PARAMETER",
    "SENDER_EMAIL",
    // Every email goes through it, so SES reports bounces and complaints (docs/mail.md).
    "SES_CONFIGURATION_SET",
    // Outbound-mail limits (shared_mail::outbound::MailLimits::ENV; docs/mail.md).
    "MAIL_LIMIT_PER_ADDRESS_PER_HOUR",
    "MAIL_LIMIT_PUBLIC_PER_IP_PER_HOUR",
    "MAIL_LIMIT_TEAM_PER_IP_PER_HOUR",
    "MAIL_LIMIT_PER_TENANT_PER_HOUR",
    "APP_BASE_URL",
    // The one-click unsubscribe link every email carries (the dsar function serves it).
    "API_BASE_URL",
    "CLOSURE_GRACE_DAYS",
    "SECURITY_LOG_RETENTION_DAYS",
    // Seats (see `seats.rs`): the plan is read from the billing table.
    "BILLING_TABLE",
    "FREE_TIER_SEATS",
    "SUBSCRIPTION_GRACE_DAYS",
    // The privacy-policy and terms versions in force (shared_accounts::policy::ENV): a sign-up must
    // accept them, a user who accepted older ones is asked again.
    "POLICY_VERSION",
    "TERMS_VERSION",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub tables: AccountTables,
    pub blind_index_key_parameter: String,
    /// SSM SecureString holding the Ed25519 private key that signs access tokens (auth only).
    pub jwt_signing_key_parameter: String,
    /// SSM parameter listing the public keys tokens are verified with, by key id.
    pub jwt_public_keys_parameter: String,
    pub sender_email: String,
    pub ses_configuration_set: String,
    /// Links in emails point here.
    pub app_base_url: String,
    /// The API's base URL: the one-click unsubscribe link of every email (`docs/dsar.md`).
    pub api_base_url: String,
    pub settings: Settings,
}

/// Lifetimes and limits. Defaults follow OWASP ASVS level 2 and the privacy requirements.
#[derive(Debug, Clone)]
pub struct Settings {
    pub refresh_idle_days: i64,
    pub refresh_absolute_days: i64,
    pub verify_email_hours: i64,
    pub password_reset_minutes: i64,
    pub invitation_days: i64,
    pub closure_grace_days: i64,
    pub security_log_days: i64,
    /// Where the tenant's plan is read for the seat limit (`None`: no limit, tests only).
    pub billing_table: Option<String>,
    /// Free-tier seats and the grace of a canceled subscription.
    pub billing: BillingPolicy,
    /// How many emails sign-up, reset and invitations may send, per address, client and tenant.
    pub mail: MailLimits,
    /// The privacy-policy and terms versions a sign-up accepts and users re-accept.
    pub policy: PolicyVersions,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            refresh_idle_days: 7,
            refresh_absolute_days: 30,
            verify_email_hours: 24,
            password_reset_minutes: 60,
            invitation_days: 7,
            closure_grace_days: 30,
            security_log_days: 180,
            billing_table: None,
            billing: BillingPolicy::default(),
            mail: MailLimits::default(),
            // Replaced by the configured versions in `Config::from_env` (both are required).
            policy: PolicyVersions {
                policy: "unset".into(),
                terms: "unset".into(),
            },
        }
    }
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Settings::default();
        let settings = Settings {
            closure_grace_days: env.parse_or("CLOSURE_GRACE_DAYS", d.closure_grace_days)?,
            security_log_days: env.parse_or("SECURITY_LOG_RETENTION_DAYS", d.security_log_days)?,
            billing_table: Some(env.required("BILLING_TABLE")?),
            billing: BillingPolicy::from_env(env)?,
            mail: MailLimits::from_env(env)?,
            policy: PolicyVersions::from_env(env)?,
            ..d
        };
        let security_log_days = settings.security_log_days;
        Ok(Self {
            tables: AccountTables {
                tenants: env.required("TENANTS_TABLE")?,
                security_log: env.required("SECURITY_LOG_TABLE")?,
                ops: env.required("OPS_TABLE")?,
            },
            blind_index_key_parameter: env.required("BLIND_INDEX_KEY_PARAMETER")?,
            jwt_signing_key_parameter: env.required("JWT_SIGNING_KEY_PARAMETER")?,
            jwt_public_keys_parameter: env.required("JWT_PUBLIC_KEYS_PARAMETER")?,
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
            settings: Settings {
                security_log_days,
                ..settings
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
    fn the_policy_versions_are_read() {
        for name in shared_accounts::policy::ENV {
            assert!(ALLOW_LIST.contains(&name), "{name}");
        }
    }
}
