//! The environment variables the leads-api function reads, and nothing else.

use shared_billing::BillingPolicy;
use shared_core::config::{ConfigError, Env};
use shared_leads::dynamo::{IntakeTables, LeadsTables};

pub const ALLOW_LIST: &[&str] = &[
    "TENANTS_TABLE",
    "LEADS_TABLE",
    "ATTACHMENTS_BUCKET",
    "BLIND_INDEX_KEY_PARAMETER",
    "JWT_PUBLIC_KEYS_PARAMETER",
    "API_BASE_URL",
    // Releasing a quarantined submission runs lead intake's decision and commit (issue 19).
    "PRIVACY_TABLE",
    "OPS_TABLE",
    "BILLING_TABLE",
    "FREE_TIER_MONTHLY_SUBMISSIONS",
    "SUBSCRIPTION_GRACE_DAYS",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub tables: LeadsTables,
    /// Where a lead's attachments are (deleted with the lead).
    pub attachments_bucket: String,
    /// SSM SecureString holding the blind-index key (email lookups, cursor signatures).
    pub blind_index_key_parameter: String,
    /// SSM parameter listing the access-token public keys by key id: this function verifies
    /// tokens and cannot sign one (only auth reads the private key).
    pub jwt_public_keys_parameter: String,
    /// Public base URL of the HTTP API: the forms' embed snippets post to it.
    pub api_base_url: String,
    /// What releasing a quarantined submission reads and writes, as lead intake does: the
    /// suppression list (privacy), the usage counter, idempotency and quarantine records (ops),
    /// the subscription state (billing) for the quota.
    pub intake_tables: IntakeTables,
    pub billing: BillingPolicy,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let api_base_url = env
            .required("API_BASE_URL")?
            .trim_end_matches('/')
            .to_string();
        let local = ["http://localhost", "http://127.0.0.1"]
            .iter()
            .any(|p| api_base_url.starts_with(p));
        if !(api_base_url.starts_with("https://") || local) {
            return Err(ConfigError::Invalid {
                name: "API_BASE_URL",
                reason: "must be an https URL (http only for localhost)".into(),
            });
        }
        Ok(Self {
            tables: LeadsTables {
                tenants: env.required("TENANTS_TABLE")?,
                leads: env.required("LEADS_TABLE")?,
            },
            attachments_bucket: env.required("ATTACHMENTS_BUCKET")?,
            blind_index_key_parameter: env.required("BLIND_INDEX_KEY_PARAMETER")?,
            jwt_public_keys_parameter: env.required("JWT_PUBLIC_KEYS_PARAMETER")?,
            intake_tables: IntakeTables {
                tenants: env.required("TENANTS_TABLE")?,
                leads: env.required("LEADS_TABLE")?,
                privacy: env.required("PRIVACY_TABLE")?,
                ops: env.required("OPS_TABLE")?,
                billing: env.required("BILLING_TABLE")?,
            },
            billing: BillingPolicy::from_env(env)?,
            api_base_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(api: &str) -> Env {
        Env::from_pairs([
            ("TENANTS_TABLE", "t"),
            ("LEADS_TABLE", "l"),
            ("ATTACHMENTS_BUCKET", "b"),
            ("BLIND_INDEX_KEY_PARAMETER", "/k"),
            ("JWT_PUBLIC_KEYS_PARAMETER", "/j"),
            ("API_BASE_URL", api),
            ("PRIVACY_TABLE", "p"),
            ("OPS_TABLE", "o"),
            ("BILLING_TABLE", "bl"),
        ])
    }

    #[test]
    fn reads_every_variable_and_trims_the_base_url() {
        let c = Config::from_env(&env("https://api.example.com/")).unwrap();
        assert_eq!(c.api_base_url, "https://api.example.com");
        assert_eq!(c.tables.leads, "l");
        assert_eq!(
            Config::from_env(&env("http://127.0.0.1:9000"))
                .unwrap()
                .api_base_url,
            "http://127.0.0.1:9000"
        );
    }

    #[test]
    fn refuses_plain_http_and_names_missing_variables() {
        assert!(Config::from_env(&env("http://api.example.com")).is_err());
        let err = Config::from_env(&Env::from_pairs([("TENANTS_TABLE", "t")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing required environment variable API_BASE_URL"
        );
    }
}
