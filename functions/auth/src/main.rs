//! Wiring only: read configuration, build clients once at init, serve requests.

use std::sync::Arc;

use auth::config::{Config, ALLOW_LIST};
use auth::App;
use shared_accounts::auth::jwt::{TokenSigner, VerifyingKeys};
use shared_accounts::dynamo::AccountStore;
use shared_core::clock::{SystemClock, UlidGenerator};
use shared_core::runtime::{self, Error};
use shared_mail::dynamo::MailGate;
use shared_mail::unsubscribe::UnsubscribeScope;
use shared_mail::{SendSuppression, SesMailer, WithUnsubscribe};

struct State {
    config: Config,
    sdk: shared_core::aws::SdkConfig,
}

impl State {
    /// The app, built on the first invocation: it needs the keys from SSM.
    async fn app(&self) -> anyhow::Result<App<WithUnsubscribe<SesMailer>>> {
        let ssm = shared_core::aws::ssm(&self.sdk);
        let c = &self.config;
        // One request for the three.
        let [key, signing, public] = shared_core::secrets::parameters(
            &ssm,
            [
                &c.blind_index_key_parameter,
                &c.jwt_signing_key_parameter,
                &c.jwt_public_keys_parameter,
            ],
        )
        .await?;
        let keys = shared_core::secrets::blind_index_key_from(&c.blind_index_key_parameter, &key)?;
        let signer = TokenSigner::from_json(&signing)?;
        let dynamodb = shared_core::aws::dynamodb(&self.sdk);
        let verifier = VerifyingKeys::from_json(&public)?;
        // Never issue tokens that the other functions would refuse.
        verifier.require_published(&signer)?;
        Ok(App {
            store: AccountStore::new(
                dynamodb.clone(),
                self.config.tables.clone(),
                self.config.settings.security_log_days,
            ),
            // Every email carries the one-click unsubscribe headers (docs/dsar.md).
            mailer: WithUnsubscribe {
                inner: SesMailer::platform(
                    shared_core::aws::sesv2(&self.sdk),
                    self.config.sender_email.clone(),
                    self.config.ses_configuration_set.clone(),
                    SendSuppression {
                        gate: MailGate::new(dynamodb.clone(), self.config.tables.ops.clone()),
                        key: keys.clone(),
                        clock: Arc::new(SystemClock),
                    },
                ),
                key: keys.clone(),
                api_base_url: self.config.api_base_url.clone(),
                scope: UnsubscribeScope::Platform,
            },
            keys,
            signer,
            verifier,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UlidGenerator),
            app_base_url: self.config.app_base_url.clone(),
            settings: self.config.settings.clone(),
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
    runtime::serve_http(State { config, sdk }, State::app, auth::handle).await
}
