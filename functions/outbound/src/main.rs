//! Wiring only: read configuration, build clients once at init, handle stream and queue batches.
// The handler's future (stream batch, delivery, SDK calls) nests deeper than the default limit.
#![recursion_limit = "256"]

use std::sync::Arc;

use outbound::config::{Config, ALLOW_LIST};
use outbound::deliver::{system_resolver, Deliverer};
use outbound::App;
use shared_core::clock::SystemClock;
use shared_core::runtime::{self, Error};

struct State {
    config: Config,
    sdk: shared_core::aws::SdkConfig,
}

impl State {
    async fn app(&self) -> anyhow::Result<App> {
        let c = &self.config;
        Ok(App {
            dynamo: shared_core::aws::dynamodb(&self.sdk),
            sqs: aws_sdk_sqs::Client::new(&self.sdk),
            tenants_table: c.tenants_table.clone(),
            ops_table: c.ops_table.clone(),
            retry_queue_url: c.retry_queue_url.clone(),
            deliverer: Deliverer::new(c.local.clone(), system_resolver())?,
            clock: Arc::new(SystemClock),
            jitter: Arc::new(rand::random::<f64>),
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
