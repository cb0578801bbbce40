//! The environment variables the webhooks function reads, and nothing else.

use shared_core::config::{ConfigError, Env};
use shared_outbound::address::LocalSinks;

pub const ALLOW_LIST: &[&str] = &[
    "TENANTS_TABLE",
    "OPS_TABLE",
    "RETRY_QUEUE_URL",
    "JWT_PUBLIC_KEYS_PARAMETER",
    // Turning a form's answers-in-notifications on or off is a security event.
    "SECURITY_LOG_TABLE",
    "SECURITY_LOG_RETENTION_DAYS",
    // "none" in every deployed stage; `make dev` names its local sink's port.
    "WEBHOOK_LOOPBACK_PORTS",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub tenants_table: String,
    pub ops_table: String,
    /// Replays are queued here, as the outbound function's retries are.
    pub retry_queue_url: String,
    pub jwt_public_keys_parameter: String,
    pub security_log_table: String,
    pub security_log_retention_days: i64,
    pub local: LocalSinks,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            tenants_table: env.required("TENANTS_TABLE")?,
            ops_table: env.required("OPS_TABLE")?,
            retry_queue_url: env.required("RETRY_QUEUE_URL")?,
            jwt_public_keys_parameter: env.required("JWT_PUBLIC_KEYS_PARAMETER")?,
            security_log_table: env.required("SECURITY_LOG_TABLE")?,
            security_log_retention_days: env.parse_or("SECURITY_LOG_RETENTION_DAYS", 180)?,
            local: LocalSinks::from_env(env)?,
        })
    }
}
