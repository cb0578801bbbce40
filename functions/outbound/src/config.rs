//! The environment variables the outbound function reads, and nothing else.

use shared_core::config::{ConfigError, Env};
use shared_outbound::address::LocalSinks;

pub const ALLOW_LIST: &[&str] = &[
    "TENANTS_TABLE",
    "OPS_TABLE",
    "RETRY_QUEUE_URL",
    // Empty in every deployed stage; `make dev` and the tests name their local sink's port.
    "WEBHOOK_LOOPBACK_PORTS",
    // New-lead notifications: the sender, the configuration set, the send-suppression list's
    // key (and the unsubscribe links'), the app's site (links to leads) and the API's (the
    // unsubscribe link).
    "SENDER_EMAIL",
    "SES_CONFIGURATION_SET",
    "BLIND_INDEX_KEY_PARAMETER",
    "APP_BASE_URL",
    "API_BASE_URL",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub tenants_table: String,
    pub ops_table: String,
    pub retry_queue_url: String,
    pub local: LocalSinks,
    pub sender_email: String,
    pub ses_configuration_set: String,
    pub blind_index_key_parameter: String,
    pub app_base_url: String,
    pub api_base_url: String,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            tenants_table: env.required("TENANTS_TABLE")?,
            ops_table: env.required("OPS_TABLE")?,
            retry_queue_url: env.required("RETRY_QUEUE_URL")?,
            sender_email: env.required("SENDER_EMAIL")?,
            ses_configuration_set: env.required("SES_CONFIGURATION_SET")?,
            blind_index_key_parameter: env.required("BLIND_INDEX_KEY_PARAMETER")?,
            app_base_url: env.required("APP_BASE_URL")?,
            api_base_url: env.required("API_BASE_URL")?,
            local: LocalSinks::from_env(env)?,
        })
    }
}
