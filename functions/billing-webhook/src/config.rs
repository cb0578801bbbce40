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
    // Checkout and Customer Portal sessions: Stripe's API (the local stand-in in `make dev`) and
    // the SSM SecureString holding the secret key.
    "STRIPE_API_BASE_URL",
    "STRIPE_SECRET_KEY_PARAMETER",
    // Where Checkout sends the user back (paid, or given up), and the portal's way back.
    "CHECKOUT_SUCCESS_URL",
    "CHECKOUT_CANCEL_URL",
    "PORTAL_RETURN_URL",
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
    /// Stripe's API: `https://api.stripe.com`, or a loopback `http://` stand-in locally.
    pub stripe_api_base_url: String,
    /// SSM SecureString: Stripe's secret (or restricted) key, read once per container.
    pub stripe_secret_key_parameter: String,
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
    pub return_urls: ReturnUrls,
}

/// Where the provider's hosted pages send the user back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnUrls {
    /// After a completed checkout.
    pub checkout_success: String,
    /// After a checkout given up.
    pub checkout_cancel: String,
    /// The portal's "return" link.
    pub portal_return: String,
}

impl Default for ReturnUrls {
    fn default() -> Self {
        Self {
            checkout_success: "https://app.example.com/billing?checkout=success".into(),
            checkout_cancel: "https://app.example.com/billing?checkout=canceled".into(),
            portal_return: "https://app.example.com/billing".into(),
        }
    }
}

/// An absolute `https://` URL (or `http://` on the loopback interface, for local stacks) the
/// provider may send a browser to.
fn return_url(env: &Env, name: &'static str) -> Result<String, ConfigError> {
    let v = env.required(name)?;
    let loopback = v.starts_with("http://127.0.0.1") || v.starts_with("http://localhost");
    if !(v.starts_with("https://") || loopback) || v.len() > 2000 || v.contains(char::is_whitespace)
    {
        return Err(ConfigError::Invalid {
            name,
            reason: "must be an https:// URL (http:// only on the loopback interface)".into(),
        });
    }
    Ok(v)
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            policy: BillingPolicy::default(),
            tolerance_secs: 300,
            event_retention_days: 90,
            app_base_url: "https://app.example.com".into(),
            return_urls: ReturnUrls::default(),
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
            stripe_api_base_url: stripe_api_base_url(env)?,
            stripe_secret_key_parameter: env.required("STRIPE_SECRET_KEY_PARAMETER")?,
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
                return_urls: ReturnUrls {
                    checkout_success: return_url(env, "CHECKOUT_SUCCESS_URL")?,
                    checkout_cancel: return_url(env, "CHECKOUT_CANCEL_URL")?,
                    portal_return: return_url(env, "PORTAL_RETURN_URL")?,
                },
                ..d
            },
        })
    }
}

fn stripe_api_base_url(env: &Env) -> Result<String, ConfigError> {
    let v = env
        .optional("STRIPE_API_BASE_URL")
        .unwrap_or_else(|| crate::stripe::api::DEFAULT_BASE_URL.to_string());
    let v = v.trim_end_matches('/').to_string();
    if !crate::stripe::api::valid_base_url(&v) {
        return Err(ConfigError::Invalid {
            name: "STRIPE_API_BASE_URL",
            reason: "must be https:// (http:// only on the loopback interface)".into(),
        });
    }
    Ok(v)
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
            ("STRIPE_SECRET_KEY_PARAMETER", "/k"),
            (
                "CHECKOUT_SUCCESS_URL",
                "https://app.example.com/billing?checkout=success",
            ),
            (
                "CHECKOUT_CANCEL_URL",
                "https://app.example.com/billing?checkout=canceled",
            ),
            ("PORTAL_RETURN_URL", "https://app.example.com/billing"),
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
        assert_eq!(c.stripe_api_base_url, "https://api.stripe.com");
        assert_eq!(c.settings.return_urls, ReturnUrls::default());
    }

    #[test]
    fn the_api_and_the_return_urls_are_https_except_on_loopback() {
        let c = Config::from_env(&env(&[
            ("STRIPE_API_BASE_URL", "http://127.0.0.1:12111/"),
            ("CHECKOUT_SUCCESS_URL", "http://127.0.0.1:8080/billing.html"),
        ]))
        .unwrap();
        assert_eq!(c.stripe_api_base_url, "http://127.0.0.1:12111");
        for (name, value) in [
            ("STRIPE_API_BASE_URL", "http://api.stripe.com"),
            ("CHECKOUT_SUCCESS_URL", "http://app.example.com/billing"),
            ("CHECKOUT_CANCEL_URL", "javascript:alert(1)"),
            ("PORTAL_RETURN_URL", "https://app.example.com/a b"),
        ] {
            let err = Config::from_env(&env(&[(name, value)])).unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { name: n, .. } if n == name),
                "{name}: {err:?}"
            );
        }
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
