//! The environment variables the dsar-deadlines function reads, and nothing else.

use shared_core::config::{ConfigError, Env};
use shared_privacy::dsar::store::DsarTables;

pub const ALLOW_LIST: &[&str] = &[
    "PRIVACY_TABLE",
    "TENANTS_TABLE",
    "OPS_TABLE",
    "BLIND_INDEX_KEY_PARAMETER",
    "SENDER_EMAIL",
    // Every email goes through it, so SES reports bounces and complaints (docs/mail.md).
    "SES_CONFIGURATION_SET",
    "API_BASE_URL",
    "PRIVACY_OPERATOR_EMAIL",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub tables: DsarTables,
    pub blind_index_key_parameter: String,
    pub sender_email: String,
    pub ses_configuration_set: String,
    pub api_base_url: String,
    pub operator_email: String,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            tables: DsarTables {
                privacy: env.required("PRIVACY_TABLE")?,
                // The deadline check never reads leads.
                leads: String::new(),
                tenants: env.required("TENANTS_TABLE")?,
                ops: env.required("OPS_TABLE")?,
            },
            blind_index_key_parameter: env.required("BLIND_INDEX_KEY_PARAMETER")?,
            sender_email: env.required("SENDER_EMAIL")?,
            ses_configuration_set: env.required("SES_CONFIGURATION_SET")?,
            api_base_url: env.required("API_BASE_URL")?,
            operator_email: env.required("PRIVACY_OPERATOR_EMAIL")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_variable() {
        let env = Env::from_pairs([("PRIVACY_TABLE", "p")]);
        assert_eq!(
            Config::from_env(&env).unwrap_err().to_string(),
            "missing required environment variable TENANTS_TABLE"
        );
    }
}
