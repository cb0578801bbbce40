//! `policy-notice`: the operator's command that emails every verified account owner the notice
//! of a new privacy-policy / terms version (docs/deploy.md, "Notifying owners of a policy
//! change"; the logic is `shared_accounts::policy::notify_owners`).
//!
//! ```text
//! policy-notice --link https://example.com/legal/privacy --effective 2027-01-01 [--rate 5]
//! ```
//!
//! It reads the auth function's own configuration from the environment (the allow-list below:
//! tables, blind-index key parameter, sender, configuration set, the versions in force), so it
//! mails exactly as auth does: through the platform's configuration set, never to an address on
//! the send-suppression list, with one-click unsubscribe headers, within the per-address limit.
//! Each owner is claimed on their user item before the email and marked sent after it: run it
//! again (after a crash, or by mistake twice at once) and nobody is mailed twice. It prints the
//! counts as JSON, and exits 2 when some owners are left to a later run (failed or limited).

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use shared_accounts::policy::{notify_owners, Notice, NoticeRun, PolicyVersions};
use shared_core::clock::SystemClock;
use shared_core::config::Env;
use shared_mail::dynamo::MailGate;
use shared_mail::outbound::MailLimits;
use shared_mail::unsubscribe::UnsubscribeScope;
use shared_mail::{SendSuppression, SesMailer, WithUnsubscribe};

const ALLOW_LIST: &[&str] = &[
    "TENANTS_TABLE",
    "OPS_TABLE",
    "BLIND_INDEX_KEY_PARAMETER",
    "SENDER_EMAIL",
    "SES_CONFIGURATION_SET",
    "API_BASE_URL",
    "POLICY_VERSION",
    "TERMS_VERSION",
    "MAIL_LIMIT_PER_ADDRESS_PER_HOUR",
];

const USAGE: &str = "usage: policy-notice --link URL --effective YYYY-MM-DD [--rate PER_SECOND]
  Emails every verified account owner, once, that the privacy policy and terms change to the
  versions POLICY_VERSION and TERMS_VERSION (the auth function's configuration, read from the
  environment with the rest of it: TENANTS_TABLE, OPS_TABLE, BLIND_INDEX_KEY_PARAMETER,
  SENDER_EMAIL, SES_CONFIGURATION_SET, API_BASE_URL, MAIL_LIMIT_PER_ADDRESS_PER_HOUR).
  --link       where the new versions are posted (https://)
  --effective  the date they take effect
  --rate       emails per second at most (default 1; keep it under the SES account's rate)";

#[tokio::main]
async fn main() {
    match run(std::env::args().skip(1).collect()).await {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("policy-notice: {err:#}");
            std::process::exit(1);
        }
    }
}

async fn run(argv: Vec<String>) -> Result<i32> {
    let mut link = None;
    let mut effective = None;
    let mut rate = 1.0f64;
    let mut args = argv.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--link" => link = Some(value()?),
            "--effective" => effective = Some(value()?),
            "--rate" => {
                rate = value()?.parse().context("--rate takes a number")?;
                if !(rate > 0.0 && rate <= 1000.0) {
                    bail!("--rate takes a number above 0, at most 1000");
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let (Some(link), Some(effective)) = (link, effective) else {
        bail!("{USAGE}");
    };
    let env = Env::from_process(ALLOW_LIST);
    let versions = PolicyVersions::from_env(&env)?;
    let limits = MailLimits::from_env(&env)?;
    let notice = Notice {
        versions,
        link,
        effective,
    };
    notice.validate()?;

    let sdk = shared_core::aws::load_config(shared_core::aws::Budget::Job).await;
    let dynamo = shared_core::aws::dynamodb(&sdk);
    let ssm = shared_core::aws::ssm(&sdk);
    let key =
        shared_core::secrets::blind_index_key(&ssm, &env.required("BLIND_INDEX_KEY_PARAMETER")?)
            .await?;
    let ops = env.required("OPS_TABLE")?;
    let gate = MailGate::new(dynamo.clone(), ops);
    let suppression = SendSuppression {
        gate: gate.clone(),
        key: key.clone(),
        clock: Arc::new(SystemClock),
    };
    let mailer = WithUnsubscribe {
        inner: SesMailer::platform(
            shared_core::aws::sesv2(&sdk),
            env.required("SENDER_EMAIL")?,
            env.required("SES_CONFIGURATION_SET")?,
            suppression.clone(),
        ),
        key,
        api_base_url: env
            .required("API_BASE_URL")?
            .trim_end_matches('/')
            .to_string(),
        scope: UnsubscribeScope::Platform,
    };
    let tenants = env.required("TENANTS_TABLE")?;
    let report = notify_owners(
        &NoticeRun {
            dynamo: &dynamo,
            tenants_table: &tenants,
            mailer: &mailer,
            suppression: &suppression,
            gate: &gate,
            per_recipient_per_hour: limits.per_recipient_per_hour,
            per_second: rate,
            clock: &SystemClock,
        },
        &notice,
    )
    .await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.failed > 0 || report.limited > 0 {
        2
    } else {
        0
    })
}
