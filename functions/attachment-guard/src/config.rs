//! The environment variables the attachment-guard function reads, and nothing else.

use shared_core::config::{ConfigError, Env};

pub const ALLOW_LIST: &[&str] = &["LEADS_TABLE", "ATTACHMENTS_BUCKET"];

#[derive(Debug, Clone)]
pub struct Config {
    pub leads_table: String,
    pub attachments_bucket: String,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            leads_table: env.required("LEADS_TABLE")?,
            attachments_bucket: env.required("ATTACHMENTS_BUCKET")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_variable() {
        let env = Env::from_pairs([("LEADS_TABLE", "l")]);
        let err = Config::from_env(&env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing required environment variable ATTACHMENTS_BUCKET"
        );
    }
}
