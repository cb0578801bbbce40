//! Wiring only: read configuration, build clients once at init, handle stream and queue batches.
// The handler's future (stream batch, delivery, SDK calls) nests deeper than the default limit.
#![recursion_limit = "256"]

use std::sync::Arc;

use outbound::config::{Config, ALLOW_LIST};
use outbound::deliver::{system_resolver, Deliverer};
use outbound::App;
use shared_core::clock::SystemClock;
use shared_core::runtime::{self, Error};
use shared_mail::dynamo::MailGate;
use shared_mail::unsubscribe::UnsubscribeScope;
use shared_mail::{SendSuppression, SesMailer, WithUnsubscribe};

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
        let dynamo = shared_core::aws::dynamodb(&self.sdk);
        Ok(App {
            mailer: WithUnsubscribe {
                inner: SesMailer::platform(
                    shared_core::aws::sesv2(&self.sdk),
                    &c.sender_email,
                    &c.ses_configuration_set,
                    SendSuppression {
                        gate: MailGate::new(dynamo.clone(), c.ops_table.clone()),
                        key: keys.clone(),
                        clock: Arc::new(SystemClock),
                    },
                ),
                key: keys,
                api_base_url: c.api_base_url.clone(),
                scope: UnsubscribeScope::Platform,
            },
            app_base_url: c.app_base_url.clone(),
            dynamo,
            sqs: aws_sdk_sqs::Client::new(&self.sdk),
            tenants_table: c.tenants_table.clone(),
            ops_table: c.ops_table.clone(),
            retry_queue_url: c.retry_queue_url.clone(),
            deliverer: Deliverer::new(c.local.clone(), system_resolver())?,
            clock: Arc::new(SystemClock),
            jitter: Arc::new(rand::random::<f64>),
            inline_budget: outbound::INLINE_BUDGET,
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
        |_, app, event| async move { Ok(outbound::handle(app, &event.payload).await?) },
    )
    .await
}
