//! Wiring only: read configuration, build clients once at init, serve requests.

use std::sync::Arc;

use leads_api::config::{Config, ALLOW_LIST};
use leads_api::App;
use shared_core::clock::{SystemClock, UlidGenerator};
use shared_core::runtime::{self, Error};
use shared_leads::dynamo::LeadsStore;

struct State {
    config: Config,
    store: LeadsStore,
    dynamo: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    ssm: shared_core::aws::SsmClient,
}

impl State {
    /// The app, built on the first invocation: it needs the keys from SSM, and fetching them
    /// there keeps the cold start (init) to building clients only.
    async fn app(&self) -> anyhow::Result<App> {
        let c = &self.config;
        let (keys, verifier) = shared_accounts::auth::jwt::read_api_keys(
            &self.ssm,
            &c.blind_index_key_parameter,
            &c.jwt_public_keys_parameter,
        )
        .await?;
        Ok(App {
            store: self.store.clone(),
            s3: self.s3.clone(),
            attachments_bucket: self.config.attachments_bucket.clone(),
            verifier,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UlidGenerator),
            api_base_url: self.config.api_base_url.clone(),
            intake: leads_api::release_intake(
                &self.config,
                self.dynamo.clone(),
                Arc::new(SystemClock),
                Arc::new(UlidGenerator),
                keys.clone(),
            ),
            keys,
        })
    }
}

fn main() -> Result<(), Error> {
    runtime::single_threaded(run())
}

async fn run() -> Result<(), Error> {
    let (config, sdk) = runtime::init(
        shared_core::aws::Budget::Request,
        ALLOW_LIST,
        Config::from_env,
    )
    .await?;
    let state = State {
        store: LeadsStore::new(shared_core::aws::dynamodb(&sdk), config.tables.clone()),
        dynamo: shared_core::aws::dynamodb(&sdk),
        s3: shared_core::s3::client(&sdk),
        ssm: shared_core::aws::ssm(&sdk),
        config,
    };
    runtime::serve_http(state, State::app, leads_api::handle).await
}
