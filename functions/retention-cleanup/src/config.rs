//! The environment variables the retention function reads, and nothing else.
//!
//! Retention periods are applied where the data is written (each writer puts the item in the
//! expiry bucket of the day its period ends: docs/retention.md); the two periods this function
//! also checks before it deletes come from the same template parameters as the writers', so a
//! period raised after the fact is honoured for data already written.

use shared_core::config::{ConfigError, Env};

pub const ALLOW_LIST: &[&str] = &[
    "TENANTS_TABLE",
    "LEADS_TABLE",
    "SECURITY_LOG_TABLE",
    "PRIVACY_TABLE",
    "OPS_TABLE",
    "BILLING_TABLE",
    "ATTACHMENTS_BUCKET",
    "EXPORTS_BUCKET",
    "BLIND_INDEX_KEY_PARAMETER",
    "SECURITY_LOG_RETENTION_DAYS",
    "RETENTION_ALLOW_EVENT_TIME_SKEW",
    "RETENTION_CATCH_UP_DAYS",
    "RETENTION_REPORT_DAYS",
    "RETENTION_SAFETY_MARGIN_SECS",
];

#[derive(Debug, Clone)]
pub struct Tables {
    pub tenants: String,
    pub leads: String,
    pub security_log: String,
    pub privacy: String,
    pub ops: String,
    pub billing: String,
}

#[derive(Debug, Clone)]
pub struct Buckets {
    pub attachments: String,
    pub exports: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Accept a scheduled event whose `time` is more than an hour from the clock (local stacks:
    /// a run dated in the future; never in production).
    pub allow_event_time_skew: bool,
    /// Security events are kept this long (the auth function writes them with the same period).
    pub security_log_days: i64,
    /// Days swept back from today by the very first run (no checkpoint yet).
    pub catch_up_days: u32,
    /// How long run reports are kept in the ops table.
    pub report_days: i64,
    /// A run stops this long before Lambda's deadline and checkpoints.
    pub safety_margin_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            allow_event_time_skew: false,
            security_log_days: 180,
            catch_up_days: 30,
            report_days: 400,
            safety_margin_secs: 60,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub tables: Tables,
    pub buckets: Buckets,
    /// SSM SecureString of the blind-index key: a closed tenant's login-index items are keyed by
    /// the email's blind index.
    pub blind_index_key_parameter: String,
    pub settings: Settings,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Settings::default();
        let settings = Settings {
            allow_event_time_skew: env
                .parse_or("RETENTION_ALLOW_EVENT_TIME_SKEW", d.allow_event_time_skew)?,
            security_log_days: env.parse_or("SECURITY_LOG_RETENTION_DAYS", d.security_log_days)?,
            catch_up_days: env.parse_or("RETENTION_CATCH_UP_DAYS", d.catch_up_days)?,
            report_days: env.parse_or("RETENTION_REPORT_DAYS", d.report_days)?,
            safety_margin_secs: env
                .parse_or("RETENTION_SAFETY_MARGIN_SECS", d.safety_margin_secs)?,
        };
        if !(1..=3650).contains(&settings.security_log_days) {
            return Err(ConfigError::Invalid {
                name: "SECURITY_LOG_RETENTION_DAYS",
                reason: "must be 1 to 3650 days".into(),
            });
        }
        if settings.catch_up_days > 3650 {
            return Err(ConfigError::Invalid {
                name: "RETENTION_CATCH_UP_DAYS",
                reason: "must be at most 3650 days".into(),
            });
        }
        if !(1..=3650).contains(&settings.report_days) {
            return Err(ConfigError::Invalid {
                name: "RETENTION_REPORT_DAYS",
                reason: "must be 1 to 3650 days".into(),
            });
        }
        if settings.safety_margin_secs > 600 {
            return Err(ConfigError::Invalid {
                name: "RETENTION_SAFETY_MARGIN_SECS",
                reason: "must be at most 600 seconds".into(),
            });
        }
        Ok(Self {
            tables: Tables {
                tenants: env.required("TENANTS_TABLE")?,
                leads: env.required("LEADS_TABLE")?,
                security_log: env.required("SECURITY_LOG_TABLE")?,
                privacy: env.required("PRIVACY_TABLE")?,
                ops: env.required("OPS_TABLE")?,
                billing: env.required("BILLING_TABLE")?,
            },
            buckets: Buckets {
                attachments: env.required("ATTACHMENTS_BUCKET")?,
                exports: env.required("EXPORTS_BUCKET")?,
            },
            blind_index_key_parameter: env.required("BLIND_INDEX_KEY_PARAMETER")?,
            settings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("TENANTS_TABLE", "t"),
            ("LEADS_TABLE", "l"),
            ("SECURITY_LOG_TABLE", "s"),
            ("PRIVACY_TABLE", "p"),
            ("OPS_TABLE", "o"),
            ("BILLING_TABLE", "b"),
            ("ATTACHMENTS_BUCKET", "a"),
            ("EXPORTS_BUCKET", "e"),
            ("BLIND_INDEX_KEY_PARAMETER", "/k"),
        ]
    }

    #[test]
    fn defaults_refuse_skewed_event_times() {
        let c = Config::from_env(&Env::from_pairs(base())).unwrap();
        assert!(!c.settings.allow_event_time_skew);
        assert_eq!(c.settings.security_log_days, 180);
    }

    #[test]
    fn bad_values_are_named() {
        let mut v = base();
        v.push(("SECURITY_LOG_RETENTION_DAYS", "0"));
        let e = Config::from_env(&Env::from_pairs(v)).unwrap_err();
        assert!(e.to_string().contains("SECURITY_LOG_RETENTION_DAYS"));
        let mut v = base();
        v.push(("RETENTION_ALLOW_EVENT_TIME_SKEW", "maybe"));
        assert!(Config::from_env(&Env::from_pairs(v)).is_err());
        let v: Vec<_> = base()
            .into_iter()
            .filter(|(k, _)| *k != "OPS_TABLE")
            .collect();
        assert_eq!(
            Config::from_env(&Env::from_pairs(v)).unwrap_err(),
            ConfigError::Missing("OPS_TABLE")
        );
    }
}
