//! Parameter values and environment for running the functions against a local emulator.

use crate::bootstrap::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};
use crate::template::{Template, LOCAL_REGION};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Stage of `make dev`.
pub const DEV_STAGE: &str = "dev";

/// SSM parameter holding the blind-index key of `stage` (the seed creates it locally).
pub fn blind_index_key_parameter(stage: &str) -> String {
    format!("/lead-platform/{stage}/blind-index-key")
}

/// Prefix of the production defaults of the template's SSM parameter names.
const PROD_PARAMETER_PREFIX: &str = "/lead-platform/prod/";

/// The free tier's monthly submission quota on a local stack: `make dev`, the e2e test and the
/// integration tests send many submissions to one demo tenant (tests that exercise the quota set
/// their own).
pub const LOCAL_FREE_TIER_MONTHLY_SUBMISSIONS: &str = "1000";

/// Where `make dev` serves the HTTP API (`cargo lambda watch`): forms' embed snippets post here.
pub const LOCAL_API_BASE_URL: &str = "http://127.0.0.1:9000";

/// Where `make dev` runs the stand-in for Stripe's API (`devstack stripe`; `LOCAL_STRIPE_PORT`).
pub const LOCAL_STRIPE_API_BASE_URL: &str = "http://127.0.0.1:12111";

/// Where `make dev` serves the demo pages (`LOCAL_WEB_PORT`): Checkout and the portal return to
/// its billing page.
pub const LOCAL_BILLING_RETURN_URL: &str = "http://127.0.0.1:8080/billing.html";

/// Template parameter overrides for a local `stage`: `Stage`, every SSM parameter name
/// (`*ParameterName`, default `/lead-platform/prod/...`) moved to `/lead-platform/<stage>/...`,
/// so stages (dev, one per test) never share resources or secrets, and the free tier's quota
/// raised to [`LOCAL_FREE_TIER_MONTHLY_SUBMISSIONS`], the API's base URL set to
/// [`LOCAL_API_BASE_URL`], Stripe's API to the local stand-in ([`LOCAL_STRIPE_API_BASE_URL`]) and
/// the billing return URL to the demo page ([`LOCAL_BILLING_RETURN_URL`]).
pub fn local_overrides(template_yaml: &str, stage: &str) -> Result<Vec<(String, String)>> {
    let defaults = Template::parse(template_yaml, &[])?.parameters;
    let has_free_tier = defaults.contains_key("FreeTierMonthlySubmissions");
    let has_api_base_url = defaults.contains_key("ApiBaseUrl");
    let has_retention_skew = defaults.contains_key("RetentionAllowEventTimeSkew");
    let has_stripe_api = defaults.contains_key("StripeApiBaseUrl");
    let has_billing_return = defaults.contains_key("BillingReturnUrl");
    let has_webhook_ports = defaults.contains_key("WebhookLoopbackPorts");
    let mut overrides = vec![("Stage".to_string(), stage.to_string())];
    for (name, default) in defaults {
        if let Some(rest) = default.strip_prefix(PROD_PARAMETER_PREFIX) {
            if name.ends_with("ParameterName") {
                overrides.push((name, format!("/lead-platform/{stage}/{rest}")));
            }
        }
    }
    if has_api_base_url {
        overrides.push(("ApiBaseUrl".to_string(), LOCAL_API_BASE_URL.to_string()));
    }
    if has_stripe_api {
        // Never Stripe itself from a local stack: the stand-in (infra/src/stripe_standin.rs).
        overrides.push((
            "StripeApiBaseUrl".to_string(),
            LOCAL_STRIPE_API_BASE_URL.to_string(),
        ));
    }
    if has_billing_return {
        overrides.push((
            "BillingReturnUrl".to_string(),
            LOCAL_BILLING_RETURN_URL.to_string(),
        ));
    }
    if has_webhook_ports {
        // The local webhook sink (`devstack outbound`): the one plain-HTTP loopback endpoint a
        // local stage delivers to (docs/outbound.md).
        overrides.push((
            "WebhookLoopbackPorts".to_string(),
            crate::outbound_local::DEFAULT_SINK_PORT.to_string(),
        ));
    }
    if has_retention_skew {
        // A local run of retention-cleanup may be dated in the future (docs/retention.md).
        overrides.push((
            "RetentionAllowEventTimeSkew".to_string(),
            "true".to_string(),
        ));
    }
    if has_free_tier {
        overrides.push((
            "FreeTierMonthlySubmissions".to_string(),
            LOCAL_FREE_TIER_MONTHLY_SUBMISSIONS.to_string(),
        ));
    }
    Ok(overrides)
}

/// [`Template::load`] of the workspace's template with [`local_overrides`] for `stage`.
pub fn load_local_template(stage: &str) -> Result<Template> {
    load_local_template_from(crate::template::default_template_path(), stage)
}

pub fn load_local_template_from(path: impl AsRef<Path>, stage: &str) -> Result<Template> {
    load_local_template_with(path, stage, &[])
}

/// [`load_local_template_from`] with the developer's own parameter values (`LOCAL_PARAMETERS`,
/// see [`parse_parameter_overrides`]) applied after the local ones, so they win. A name the
/// template does not declare fails, naming it.
pub fn load_local_template_with(
    path: impl AsRef<Path>,
    stage: &str,
    extra: &[(String, String)],
) -> Result<Template> {
    let path = path.as_ref();
    let yaml = std::fs::read_to_string(path)
        .with_context(|| format!("reading template {}", path.display()))?;
    let mut overrides = local_overrides(&yaml, stage)?;
    overrides.extend(extra.iter().cloned());
    let overrides: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Template::parse(&yaml, &overrides).with_context(|| format!("in template {}", path.display()))
}

/// The environment variable with template parameter overrides for the local stack.
pub const LOCAL_PARAMETERS_VAR: &str = "LOCAL_PARAMETERS";

/// Parses `LOCAL_PARAMETERS`: space-separated `Name=value` pairs, as `sam deploy
/// --parameter-overrides` takes them (`RateLimitPerIpPerMinute=100000 ...`). Values cannot hold
/// spaces. `Stage` is refused: the stage is `--stage`, and it names every local resource.
/// Whether a name exists is checked against the template when it is applied.
pub fn parse_parameter_overrides(spec: &str) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in spec.split_whitespace() {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("{LOCAL_PARAMETERS_VAR}: {pair:?} is not Name=value");
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("{LOCAL_PARAMETERS_VAR}: {name:?} is not a template parameter name");
        }
        if name == "Stage" {
            bail!("{LOCAL_PARAMETERS_VAR}: set the stage with --stage, not Stage=");
        }
        if out.iter().any(|(n, _)| n == name) {
            bail!("{LOCAL_PARAMETERS_VAR}: {name} is given twice");
        }
        out.push((name.to_string(), value.to_string()));
    }
    Ok(out)
}

/// Environment of a function run locally: its resolved template environment, plus the emulator
/// endpoint, region and test credentials (so the SDK never looks for real ones).
pub fn local_function_env(
    template: &Template,
    id_or_binary: &str,
    endpoint: &str,
) -> Result<BTreeMap<String, String>> {
    let mut env = template.function_env(id_or_binary)?;
    env.extend(emulator_env(endpoint));
    // The DSAR worker is invoked through Lambda's Invoke API, which `cargo lambda watch` serves
    // on the API port under the binary's name (the emulator has no Lambda).
    if env.contains_key(DSAR_WORKER_FUNCTION_VAR) {
        env.insert(
            DSAR_WORKER_FUNCTION_VAR.to_string(),
            "dsar-worker".to_string(),
        );
        env.insert(
            "LAMBDA_ENDPOINT_URL".to_string(),
            LOCAL_API_BASE_URL.to_string(),
        );
    }
    Ok(env)
}

/// One `KEY=VALUE` line of the env file `cargo lambda watch --env-file` reads (the
/// `env-file-reader` grammar): a value with whitespace, a quote, `#` or `=` (a URL with a query,
/// say) is quoted, else it would not parse. A value holding both quote characters, or a line
/// break, cannot be written.
pub fn env_file_line(key: &str, value: &str) -> Result<String> {
    if value.contains(['\n', '\r']) {
        bail!("variable {key} has a line break, which an env file cannot carry");
    }
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '\'' | '"' | '`' | '#' | '='));
    Ok(if plain {
        format!("{key}={value}")
    } else if !value.contains('\'') {
        format!("{key}='{value}'")
    } else if !value.contains('"') {
        format!("{key}=\"{value}\"")
    } else {
        bail!("variable {key} holds both quote characters, which an env file cannot carry")
    })
}

/// The variable naming the DSAR worker function (dsar, dsar-worker).
const DSAR_WORKER_FUNCTION_VAR: &str = "DSAR_WORKER_FUNCTION";

/// The variables that point an AWS SDK at the emulator.
pub fn emulator_env(endpoint: &str) -> BTreeMap<String, String> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", LOCAL_REGION),
        ("AWS_DEFAULT_REGION", LOCAL_REGION),
        ("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY),
        // No instance metadata service here: skip the SDK's attempts to reach one.
        ("AWS_EC2_METADATA_DISABLED", "true"),
        // The emulator applies one request at a time (moto_server.py): under load a call waits
        // for every other, seconds where DynamoDB takes milliseconds. Time limits x10 locally.
        (shared_core::aws::TIMEOUT_SCALE_VAR, "10"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_env_points_at_the_emulator_and_the_stage_key() {
        let t = load_local_template("dev").unwrap();
        let env = local_function_env(&t, "lead-intake", "http://127.0.0.1:4566").unwrap();
        assert_eq!(
            env["BLIND_INDEX_KEY_PARAMETER"],
            "/lead-platform/dev/blind-index-key"
        );
        assert_eq!(env["AWS_ENDPOINT_URL"], "http://127.0.0.1:4566");
        assert_eq!(env["AWS_ACCESS_KEY_ID"], "test");
        assert_eq!(env["LEADS_TABLE"], "lead-platform-dev-leads");
    }

    #[test]
    fn the_local_free_tier_receives_enough_submissions_to_try_things() {
        let t = load_local_template("dev").unwrap();
        assert_eq!(t.parameters["FreeTierMonthlySubmissions"], "1000");
        let env = local_function_env(&t, "lead-intake", "http://127.0.0.1:4566").unwrap();
        assert_eq!(env["FREE_TIER_MONTHLY_SUBMISSIONS"], "1000");
        let deployed = Template::load(crate::template::default_template_path(), &[]).unwrap();
        assert_eq!(deployed.parameters["FreeTierMonthlySubmissions"], "100");
    }

    #[test]
    fn local_retention_runs_may_be_dated_in_the_future_deployed_ones_not() {
        let t = load_local_template("dev").unwrap();
        let env = local_function_env(&t, "retention-cleanup", "http://127.0.0.1:4566").unwrap();
        assert_eq!(env["RETENTION_ALLOW_EVENT_TIME_SKEW"], "true");
        let deployed = Template::load(crate::template::default_template_path(), &[]).unwrap();
        assert_eq!(deployed.parameters["RetentionAllowEventTimeSkew"], "false");
    }

    #[test]
    fn embed_snippets_post_to_the_local_api() {
        let t = load_local_template("dev").unwrap();
        let env = local_function_env(&t, "leads-api", "http://127.0.0.1:4566").unwrap();
        assert_eq!(env["API_BASE_URL"], LOCAL_API_BASE_URL);
        let deployed = Template::load(crate::template::default_template_path(), &[]).unwrap();
        assert!(deployed.parameters["ApiBaseUrl"].starts_with("https://"));
    }

    #[test]
    fn local_billing_calls_the_stripe_stand_in_and_returns_to_the_demo_page() {
        let t = load_local_template("dev").unwrap();
        let env = local_function_env(&t, "billing-webhook", "http://127.0.0.1:4566").unwrap();
        assert_eq!(env["STRIPE_API_BASE_URL"], LOCAL_STRIPE_API_BASE_URL);
        assert_eq!(
            env["STRIPE_SECRET_KEY_PARAMETER"],
            "/lead-platform/dev/stripe-secret-key"
        );
        assert_eq!(
            env["CHECKOUT_SUCCESS_URL"],
            format!("{LOCAL_BILLING_RETURN_URL}?checkout=success")
        );
        assert_eq!(env["PORTAL_RETURN_URL"], LOCAL_BILLING_RETURN_URL);
        let deployed = Template::load(crate::template::default_template_path(), &[]).unwrap();
        let prod = deployed.function_env("billing-webhook").unwrap();
        assert_eq!(prod["STRIPE_API_BASE_URL"], "https://api.stripe.com");
        assert!(prod["CHECKOUT_CANCEL_URL"].starts_with("https://"));
    }

    #[test]
    fn env_file_lines_quote_what_the_env_file_grammar_cannot_hold_bare() {
        let line = |k, v| env_file_line(k, v).unwrap();
        assert_eq!(line("A", "http://x:1/p"), "A=http://x:1/p");
        assert_eq!(
            line("URL", "http://x/b.html?checkout=success"),
            "URL='http://x/b.html?checkout=success'"
        );
        assert_eq!(line("T", "a b#c"), "T='a b#c'");
        assert_eq!(line("Q", "it's"), "Q=\"it's\"");
        assert_eq!(line("E", ""), "E=''");
        assert!(env_file_line("N", "a\nb").is_err());
        assert!(env_file_line("B", "'\"").is_err());
    }

    #[test]
    fn the_dsar_worker_is_invoked_through_the_local_cargo_lambda() {
        let t = load_local_template("dev").unwrap();
        let env = local_function_env(&t, "dsar-worker", "http://127.0.0.1:4566").unwrap();
        assert_eq!(env["DSAR_WORKER_FUNCTION"], "dsar-worker");
        assert_eq!(env["LAMBDA_ENDPOINT_URL"], LOCAL_API_BASE_URL);
        let deployed = Template::load(crate::template::default_template_path(), &[]).unwrap();
        let prod = deployed.function_env("dsar-worker").unwrap();
        assert_eq!(
            prod["DSAR_WORKER_FUNCTION"],
            "lead-platform-prod-dsar-worker"
        );
        assert!(!prod.contains_key("LAMBDA_ENDPOINT_URL"));
    }

    #[test]
    fn local_parameters_parse_as_name_value_pairs() {
        let p = parse_parameter_overrides(
            "  RateLimitPerIpPerMinute=100000\tRateLimitPerFormPerMinute=5 ApiBaseUrl=http://x/?a=b ",
        )
        .unwrap();
        assert_eq!(
            p,
            vec![
                ("RateLimitPerIpPerMinute".to_string(), "100000".to_string()),
                ("RateLimitPerFormPerMinute".to_string(), "5".to_string()),
                ("ApiBaseUrl".to_string(), "http://x/?a=b".to_string()),
            ]
        );
        assert!(parse_parameter_overrides("").unwrap().is_empty());
        for (bad, says) in [
            ("RateLimitPerIpPerMinute", "is not Name=value"),
            ("=5", "is not a template parameter name"),
            ("Rate-Limit=5", "is not a template parameter name"),
            ("Stage=prod", "--stage"),
            ("A=1 A=2", "A is given twice"),
        ] {
            let err = parse_parameter_overrides(bad).unwrap_err().to_string();
            assert!(
                err.contains(says) && err.contains(LOCAL_PARAMETERS_VAR),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn local_parameters_reach_the_functions_env_and_win_over_local_defaults() {
        let path = crate::template::default_template_path();
        let extra = parse_parameter_overrides(
            "RateLimitPerIpPerMinute=100000 RateLimitPerFormPerMinute=100001 FreeTierMonthlySubmissions=7",
        )
        .unwrap();
        let t = load_local_template_with(&path, "dev", &extra).unwrap();
        let env = local_function_env(&t, "lead-intake", "http://127.0.0.1:4566").unwrap();
        assert_eq!(env["RATE_LIMIT_PER_IP_PER_MINUTE"], "100000");
        assert_eq!(env["RATE_LIMIT_PER_FORM_PER_MINUTE"], "100001");
        // The local default (1000) is overridden too.
        assert_eq!(env["FREE_TIER_MONTHLY_SUBMISSIONS"], "7");
        // Without overrides, the template's defaults.
        let t = load_local_template_with(&path, "dev", &[]).unwrap();
        let env = local_function_env(&t, "lead-intake", "http://127.0.0.1:4566").unwrap();
        assert_eq!(env["RATE_LIMIT_PER_IP_PER_MINUTE"], "10");
    }

    #[test]
    fn an_unknown_local_parameter_fails_naming_it() {
        let extra = parse_parameter_overrides("RateLimitPerIpPerMinut=100000").unwrap();
        let err = load_local_template_with(crate::template::default_template_path(), "dev", &extra)
            .unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("RateLimitPerIpPerMinut"), "{err}");
        assert!(err.contains("unknown parameter"), "{err}");
    }

    #[test]
    fn every_ssm_parameter_name_moves_to_the_stage() {
        let t = load_local_template("e2e").unwrap();
        assert_eq!(
            t.parameters["BlindIndexKeyParameterName"],
            blind_index_key_parameter("e2e")
        );
        for (name, value) in &t.parameters {
            assert!(
                !value.starts_with(PROD_PARAMETER_PREFIX),
                "{name} = {value}"
            );
        }
    }
}
