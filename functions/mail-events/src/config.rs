//! The environment variables the mail-events function reads, and nothing else.

use shared_core::config::{ConfigError, Env};

pub const ALLOW_LIST: &[&str] = &[
    "OPS_TABLE",
    // The list holds keyed hashes of the addresses, never an address.
    "BLIND_INDEX_KEY_PARAMETER",
    "MAIL_SUPPRESSION_DAYS",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub ops_table: String,
    pub blind_index_key_parameter: String,
    pub settings: Settings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long an address stays on the send-suppression list after its last bounce or
    /// complaint.
    pub suppression_days: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            suppression_days: 180,
        }
    }
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Settings::default();
        Ok(Self {
            ops_table: env.required("OPS_TABLE")?,
            blind_index_key_parameter: env.required("BLIND_INDEX_KEY_PARAMETER")?,
            settings: Settings {
                suppression_days: env.parse_or("MAIL_SUPPRESSION_DAYS", d.suppression_days)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_variable_and_defaults_the_period() {
        let env = Env::from_pairs([("OPS_TABLE", "ops")]);
        assert_eq!(
            Config::from_env(&env).unwrap_err().to_string(),
            "missing required environment variable BLIND_INDEX_KEY_PARAMETER"
        );
        let env = Env::from_pairs([("OPS_TABLE", "ops"), ("BLIND_INDEX_KEY_PARAMETER", "/k")]);
        assert_eq!(
            Config::from_env(&env).unwrap().settings.suppression_days,
            180
        );
    }
}
