//! Wiring only: configuration, clients once at init, one run per scheduled event.

use std::sync::Arc;

use dsar_deadlines::config::{Config, ALLOW_LIST};
use dsar_deadlines::App;
use shared_accounts::dynamo::{AccountStore, AccountTables};
use shared_core::clock::SystemClock;
use shared_core::runtime::{self, Error};
use shared_mail::dynamo::MailGate;
use shared_mail::unsubscribe::UnsubscribeScope;
use shared_mail::{SendSuppression, SesMailer, WithUnsubscribe};
use shared_privacy::dsar::store::DsarStore;

struct State {
    config: Config,
    sdk: shared_core::aws::SdkConfig,
}

impl State {
    /// The app, built on the first run: it needs the blind-index key from SSM.
    async fn app(&self) -> anyhow::Result<App<WithUnsubscribe<SesMailer>>> {
        let c = &self.config;
        let ssm = shared_core::aws::ssm(&self.sdk);
        let keys =
            shared_core::secrets::blind_index_key(&ssm, &c.blind_index_key_parameter).await?;
        let dynamo = shared_core::aws::dynamodb(&self.sdk);
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
                    shared_core::aws::sesv2(&self.sdk),
                    &c.sender_email,
                    &c.ses_configuration_set,
                    SendSuppression {
                        gate: MailGate::new(dynamo, c.tables.ops.clone()),
                        key: keys.clone(),
                        clock: Arc::new(SystemClock),
                    },
                ),
                key: keys,
                api_base_url: c.api_base_url.clone(),
                scope: UnsubscribeScope::Platform,
            },
            clock: Arc::new(SystemClock),
            operator_email: c.operator_email.clone(),
            window_days: 7,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, sdk) =
        runtime::init(shared_core::aws::Budget::Job, ALLOW_LIST, Config::from_env).await?;
    runtime::serve_events(State { config, sdk }, State::app, |_, app, _| async move {
        let report = dsar_deadlines::run(app).await?;
        Ok(serde_json::to_value(report)?)
    })
    .await
}
