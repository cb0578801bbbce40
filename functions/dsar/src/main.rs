//! Wiring only: read configuration, build clients once at init, serve requests.

use std::sync::Arc;

use dsar::config::{Config, ALLOW_LIST};
use dsar::App;
use shared_accounts::dynamo::{AccountStore, AccountTables};
use shared_core::clock::{SystemClock, UlidGenerator};
use shared_core::runtime::{self, Error};
use shared_mail::dynamo::MailGate;
use shared_mail::unsubscribe::UnsubscribeScope;
use shared_mail::{SendSuppression, SesMailer, WithUnsubscribe};
use shared_privacy::dsar::dispatch::{lambda_client, LambdaDispatcher};
use shared_privacy::dsar::store::DsarStore;

type DsarApp = App<WithUnsubscribe<SesMailer>, LambdaDispatcher>;

/// What init builds: the configuration and every client (building a client is cheap; its
/// first use over the network happens in the first invocation anyway).
struct State {
    config: Config,
    ssm: shared_core::aws::SsmClient,
    dynamo: aws_sdk_dynamodb::Client,
    ses: aws_sdk_sesv2::Client,
    s3: aws_sdk_s3::Client,
    lambda: aws_sdk_lambda::Client,
}

impl State {
    fn new(config: Config, sdk: &shared_core::aws::SdkConfig) -> State {
        State {
            ssm: shared_core::aws::ssm(sdk),
            dynamo: shared_core::aws::dynamodb(sdk),
            ses: shared_core::aws::sesv2(sdk),
            s3: shared_core::s3::client(sdk),
            lambda: lambda_client(sdk, config.lambda_endpoint.as_deref()),
            config,
        }
    }

    /// The app, built on the first invocation: it needs the keys from SSM, and the first
    /// invocation reads nothing else before them.
    async fn app(&self) -> anyhow::Result<DsarApp> {
        let c = &self.config;
        let (keys, verifier) = shared_accounts::auth::jwt::read_api_keys(
            &self.ssm,
            &c.blind_index_key_parameter,
            &c.jwt_public_keys_parameter,
        )
        .await?;
        let dynamo = self.dynamo.clone();
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
                    self.ses.clone(),
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
            dispatcher: LambdaDispatcher::new(self.lambda.clone(), &c.worker_function),
            keys,
            verifier,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UlidGenerator),
            links: c.links.clone(),
            downloads: dsar::downloads::Downloads {
                s3: self.s3.clone(),
                exports_bucket: c.exports_bucket.clone(),
                attachments_bucket: c.attachments_bucket.clone(),
            },
            settings: c.settings.clone(),
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
    runtime::serve_http(State::new(config, &sdk), State::app, dsar::handle).await
}
