//! Wiring only: read configuration, build clients once at init, serve requests.

use std::sync::Arc;

use dsar::config::{Config, ALLOW_LIST};
use dsar::App;
use shared::auth::jwt::VerifyingKeys;
use shared::clock::{SystemClock, UlidGenerator};
use shared::dsar::dispatch::{lambda_client, LambdaDispatcher};
use shared::dsar::store::DsarStore;
use shared::dsar::tokens::UnsubscribeScope;
use shared::dynamo::{AccountStore, AccountTables, MailGate};
use shared::mail::{SendSuppression, SesMailer, WithUnsubscribe};
use shared::runtime::{self, Error};

type DsarApp = App<WithUnsubscribe<SesMailer>, LambdaDispatcher>;

struct State {
    config: Config,
    sdk: shared::aws::SdkConfig,
}

impl State {
    /// The app, built on the first invocation: it needs the keys from SSM.
    async fn app(&self) -> anyhow::Result<DsarApp> {
        let c = &self.config;
        let ssm = shared::aws::ssm(&self.sdk);
        let keys = shared::secrets::blind_index_key(&ssm, &c.blind_index_key_parameter).await?;
        let verifier = VerifyingKeys::from_json(
            &shared::secrets::parameter(&ssm, &c.jwt_public_keys_parameter).await?,
        )?;
        let dynamo = shared::aws::dynamodb(&self.sdk);
        Ok(App {
            store: DsarStore::new(dynamo.clone(), c.tables.clone()),
            accounts: AccountStore::new(
                dynamo.clone(),
                AccountTables {
                    tenants: c.tables.tenants.clone(),
                    security_log: String::new(),
                    ops: c.tables.ops.clone(),
                },
                0,
            ),
            mailer: WithUnsubscribe {
                inner: SesMailer::platform(
                    shared::aws::sesv2(&self.sdk),
                    &c.sender_email,
                    &c.ses_configuration_set,
                    SendSuppression {
                        gate: MailGate::new(dynamo.clone(), c.tables.ops.clone()),
                        key: keys.clone(),
                        clock: Arc::new(SystemClock),
                    },
                ),
                key: keys.clone(),
                api_base_url: c.links.api_base_url.clone(),
                scope: UnsubscribeScope::Platform,
            },
            dispatcher: LambdaDispatcher::new(
                lambda_client(&self.sdk, c.lambda_endpoint.as_deref()),
                &c.worker_function,
            ),
            keys,
            verifier,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UlidGenerator),
            links: c.links.clone(),
            downloads: dsar::downloads::Downloads {
                s3: shared::s3::client(&self.sdk),
                exports_bucket: c.exports_bucket.clone(),
                attachments_bucket: c.attachments_bucket.clone(),
            },
            settings: c.settings.clone(),
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, sdk) =
        runtime::init(shared::aws::Budget::Request, ALLOW_LIST, Config::from_env).await?;
    runtime::serve_http(State { config, sdk }, State::app, dsar::handle).await
}
