//! The environment variables the lead-transfers function reads, and nothing else.

use shared_core::config::{ConfigError, Env};
use shared_leads::transfers::TransfersTables;

pub const ALLOW_LIST: &[&str] = &[
    "TENANTS_TABLE",
    "LEADS_TABLE",
    "PRIVACY_TABLE",
    "ATTACHMENTS_BUCKET",
    "EXPORTS_BUCKET",
    "BLIND_INDEX_KEY_PARAMETER",
    "JWT_PUBLIC_KEYS_PARAMETER",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub tables: TransfersTables,
    pub buckets: Buckets,
    pub blind_index_key_parameter: String,
    /// SSM parameter listing the access-token public keys by key id: this function verifies
    /// tokens and cannot sign one (only auth reads the private key).
    pub jwt_public_keys_parameter: String,
}

#[derive(Debug, Clone)]
pub struct Buckets {
    /// Lead attachments, under `tenants/<tenant>/leads/<lead>/`.
    pub attachments: String,
    /// Exports (`exports/<tenant>/`) and CSV uploads awaiting import (`imports/<tenant>/`);
    /// the bucket deletes everything after 7 days.
    pub exports: String,
}

/// Limits and lifetimes. The presigned URLs' lifetimes are short on purpose: a leaked link is
/// useless minutes later.
#[derive(Debug, Clone)]
pub struct Settings {
    pub attachment_max_bytes: u64,
    pub attachment_upload_secs: u64,
    pub attachment_download_secs: u64,
    pub import_max_bytes: u64,
    pub import_upload_secs: u64,
    /// Rows per import: what one synchronous run writes well within the function's timeout.
    pub import_max_rows: usize,
    /// A run that stopped (timeout) may be claimed again after this long.
    pub import_stale_secs: i64,
    pub export_download_secs: u64,
    /// S3 multipart part size (S3's minimum, 5 MiB, for all parts but the last).
    pub export_part_bytes: usize,
    /// Leads per `Query` page of an export (DynamoDB also ends a page at 1 MB, about 3,000
    /// leads of the index projection).
    pub export_page_size: i32,
    /// The exports bucket's lifecycle rule (template.yaml).
    pub export_expiry_days: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            attachment_max_bytes: 10 * 1024 * 1024,
            attachment_upload_secs: 5 * 60,
            attachment_download_secs: 60,
            import_max_bytes: 10 * 1024 * 1024,
            import_upload_secs: 5 * 60,
            import_max_rows: 50_000,
            import_stale_secs: 15 * 60,
            export_download_secs: 15 * 60,
            export_part_bytes: 5 * 1024 * 1024,
            export_page_size: 2000,
            export_expiry_days: 7,
        }
    }
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            tables: TransfersTables {
                tenants: env.required("TENANTS_TABLE")?,
                leads: env.required("LEADS_TABLE")?,
                privacy: env.required("PRIVACY_TABLE")?,
            },
            buckets: Buckets {
                attachments: env.required("ATTACHMENTS_BUCKET")?,
                exports: env.required("EXPORTS_BUCKET")?,
            },
            blind_index_key_parameter: env.required("BLIND_INDEX_KEY_PARAMETER")?,
            jwt_public_keys_parameter: env.required("JWT_PUBLIC_KEYS_PARAMETER")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_variable() {
        let env = Env::from_pairs([("TENANTS_TABLE", "t"), ("LEADS_TABLE", "l")]);
        assert_eq!(
            Config::from_env(&env).unwrap_err().to_string(),
            "missing required environment variable PRIVACY_TABLE"
        );
    }
}
