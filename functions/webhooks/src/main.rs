//! Wiring only: read configuration, build clients once at init, serve requests.

use std::sync::Arc;

use shared_accounts::auth::jwt::VerifyingKeys;
use shared_core::clock::{SystemClock, UlidGenerator};
use shared_core::runtime::{self, Error};
use webhooks::config::{Config, ALLOW_LIST};
use webhooks::App;

struct State {
    config: Config,
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    ssm: shared_core::aws::SsmClient,
}

impl State {
    async fn app(&self) -> anyhow::Result<App> {
        let c = &self.config;
        let verifier = VerifyingKeys::from_json(
            &shared_core::secrets::parameter(&self.ssm, &c.jwt_public_keys_parameter).await?,
        )?;
        Ok(App {
            dynamo: self.dynamo.clone(),
            sqs: self.sqs.clone(),
            tenants_table: c.tenants_table.clone(),
            ops_table: c.ops_table.clone(),
            retry_queue_url: c.retry_queue_url.clone(),
            local: c.local.clone(),
            resolve: shared_outbound::address::system_resolver(),
            verifier,
            accounts: shared_accounts::dynamo::AccountStore::new(
                self.dynamo.clone(),
                shared_accounts::dynamo::AccountTables {
                    tenants: c.tenants_table.clone(),
                    security_log: c.security_log_table.clone(),
                    ops: c.ops_table.clone(),
                },
                c.security_log_retention_days,
            ),
            clock: Arc::new(SystemClock),
            ids: Arc::new(UlidGenerator),
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
        dynamo: shared_core::aws::dynamodb(&sdk),
        sqs: aws_sdk_sqs::Client::new(&sdk),
        ssm: shared_core::aws::ssm(&sdk),
        config,
    };
    runtime::serve_http(state, State::app, webhooks::handle).await
}
