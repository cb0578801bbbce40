//! Wiring only: configuration, clients once at init, one run per S3 notification.

use attachment_guard::config::{Config, ALLOW_LIST};
use attachment_guard::App;
use shared_core::runtime::{self, Error};

struct State {
    config: Config,
    sdk: shared_core::aws::SdkConfig,
}

impl State {
    async fn app(&self) -> anyhow::Result<App> {
        Ok(App {
            dynamo: shared_core::aws::dynamodb(&self.sdk),
            s3: shared_core::s3::client(&self.sdk),
            leads_table: self.config.leads_table.clone(),
            attachments_bucket: self.config.attachments_bucket.clone(),
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
        |_, app, event| async move {
            let report = attachment_guard::handle(app, &event.payload).await?;
            Ok(serde_json::to_value(report)?)
        },
    )
    .await
}
