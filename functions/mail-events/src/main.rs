//! Wiring only: read configuration, build clients once at init, handle SES's events.

use std::sync::Arc;

use mail_events::config::{Config, ALLOW_LIST};
use mail_events::App;
use shared_core::clock::SystemClock;
use shared_core::runtime::{self, Error};
use shared_mail::dynamo::MailGate;

struct State {
    config: Config,
    sdk: shared_core::aws::SdkConfig,
}

impl State {
    /// The app, built on the first event: it needs the blind-index key from SSM.
    async fn app(&self) -> anyhow::Result<App> {
        let c = &self.config;
        let ssm = shared_core::aws::ssm(&self.sdk);
        let keys =
            shared_core::secrets::blind_index_key(&ssm, &c.blind_index_key_parameter).await?;
        Ok(App {
            gate: MailGate::new(shared_core::aws::dynamodb(&self.sdk), c.ops_table.clone()),
            keys,
            clock: Arc::new(SystemClock),
            settings: c.settings,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, sdk) =
        runtime::init(shared_core::aws::Budget::Job, ALLOW_LIST, Config::from_env).await?;
    runtime::serve_events(
        State { config, sdk },
        State::app,
        |_, app, event| async move { Ok(mail_events::handle(app, &event.payload).await?) },
    )
    .await
}
