//! Wiring only: read configuration, build clients once at init, serve requests.

use std::sync::Arc;

use lead_transfers::config::{Config, Settings, ALLOW_LIST};
use lead_transfers::App;
use shared_core::clock::{SystemClock, UlidGenerator};
use shared_core::runtime::{self, Error};
use shared_leads::transfers::TransfersStore;

struct State {
    config: Config,
    sdk: shared_core::aws::SdkConfig,
}

impl State {
    /// The app, built on the first invocation: it needs the keys from SSM.
    async fn app(&self) -> anyhow::Result<App> {
        let ssm = shared_core::aws::ssm(&self.sdk);
        let c = &self.config;
        let (keys, verifier) = shared_accounts::auth::jwt::read_api_keys(
            &ssm,
            &c.blind_index_key_parameter,
            &c.jwt_public_keys_parameter,
        )
        .await?;
        Ok(App {
            store: TransfersStore::new(
                shared_core::aws::dynamodb(&self.sdk),
                self.config.tables.clone(),
            ),
            s3: shared_core::s3::client(&self.sdk),
            buckets: self.config.buckets.clone(),
            keys,
            verifier,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UlidGenerator),
            settings: Settings::default(),
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
    runtime::serve_http(State { config, sdk }, State::app, lead_transfers::handle).await
}
