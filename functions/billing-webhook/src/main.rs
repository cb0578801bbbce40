//! Wiring only: read configuration, build clients once at init, serve requests.

use std::sync::Arc;

use billing_webhook::config::{Config, ALLOW_LIST};
use billing_webhook::stripe::{CallPolicy, SecretKey, Stripe, StripeApi};
use billing_webhook::App;
use shared_accounts::auth::jwt::VerifyingKeys;
use shared_accounts::dynamo::{AccountStore, AccountTables};
use shared_billing::dynamo::DynamoBillingStore;
use shared_core::clock::SystemClock;
use shared_core::runtime::{self, Error};
use shared_mail::dynamo::MailGate;
use shared_mail::unsubscribe::UnsubscribeScope;
use shared_mail::{SendSuppression, SesMailer, WithUnsubscribe};

/// Every email carries the one-click unsubscribe headers (docs/dsar.md).
type Live = App<DynamoBillingStore, WithUnsubscribe<SesMailer>, AccountStore>;

struct State {
    config: Config,
    sdk: shared_core::aws::SdkConfig,
}

impl State {
    /// The app, built on the first invocation: it needs the webhook secrets and signing keys from SSM.
    async fn app(&self) -> anyhow::Result<Live> {
        let ssm = shared_core::aws::ssm(&self.sdk);
        let c = &self.config;
        // One request for the four.
        let [webhook, api_key, public, key] = shared_core::secrets::parameters(
            &ssm,
            [
                &c.stripe_secrets_parameter,
                &c.stripe_secret_key_parameter,
                &c.jwt_public_keys_parameter,
                &c.blind_index_key_parameter,
            ],
        )
        .await?;
        let stripe =
            Stripe::from_parameter(&webhook, c.settings.tolerance_secs)?.with_api(StripeApi::new(
                &c.stripe_api_base_url,
                SecretKey::new(&api_key)?,
                CallPolicy::default(),
            )?);
        let verifier = VerifyingKeys::from_json(&public)?;
        let keys = shared_core::secrets::blind_index_key_from(&c.blind_index_key_parameter, &key)?;
        let dynamo = shared_core::aws::dynamodb(&self.sdk);
        Ok(App {
            store: DynamoBillingStore::new(dynamo.clone(), c.tables.clone()),
            mailer: WithUnsubscribe {
                inner: SesMailer::platform(
                    shared_core::aws::sesv2(&self.sdk),
                    c.sender_email.clone(),
                    c.ses_configuration_set.clone(),
                    SendSuppression {
                        gate: MailGate::new(dynamo.clone(), c.tables.ops.clone()),
                        key: keys.clone(),
                        clock: Arc::new(SystemClock),
                    },
                ),
                key: keys,
                api_base_url: c.api_base_url.clone(),
                scope: UnsubscribeScope::Platform,
            },
            // Used for `team` only (a Query on the tenants table). This function writes
            // no security events and its role has no access to that table.
            api_keys: Some(shared_accounts::api_keys::DynamoApiKeys::new(
                dynamo.clone(),
                c.tenants_table.clone(),
            )),
            directory: AccountStore::new(
                dynamo,
                AccountTables {
                    tenants: c.tenants_table.clone(),
                    security_log: String::new(),
                    ops: c.tables.ops.clone(),
                },
                0,
            ),
            stripe,
            verifier,
            clock: Arc::new(SystemClock),
            settings: c.settings.clone(),
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, sdk) = runtime::init(
        shared_core::aws::Budget::Request,
        ALLOW_LIST,
        Config::from_env,
    )
    .await?;
    runtime::serve_http(State { config, sdk }, State::app, billing_webhook::handle).await
}
