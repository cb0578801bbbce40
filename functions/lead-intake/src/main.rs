//! Wiring only: read configuration, build clients once at init, serve requests.

use lead_intake::config::{Config, ALLOW_LIST};
use shared_core::clock::{SystemClock, UlidGenerator};
use std::sync::Arc;

use shared_core::runtime::{self, Error};
use shared_leads::dynamo::DynamoIntakeStore;
use shared_leads::intake::Intake;
use shared_mail::dynamo::MailGate;
use shared_mail::{SendSuppression, SesMailer};

type App = Intake<DynamoIntakeStore>;

struct State {
    config: Config,
    dynamo: aws_sdk_dynamodb::Client,
    ses: aws_sdk_sesv2::Client,
    ssm: shared_core::aws::SsmClient,
}

impl State {
    /// The app, built on the first invocation: it needs the blind-index key from SSM, and
    /// fetching it there keeps the cold start (init) to building clients only.
    async fn app(&self) -> anyhow::Result<App> {
        let key = shared_core::secrets::blind_index_key(
            &self.ssm,
            &self.config.blind_index_key_parameter,
        )
        .await?;
        let c = &self.config;
        // Through the configuration set, never to an address on the send-suppression list.
        let mailer = SesMailer::platform(
            self.ses.clone(),
            &c.sender_email,
            &c.ses_configuration_set,
            SendSuppression {
                gate: MailGate::new(self.dynamo.clone(), c.tables.ops.clone()),
                key: key.clone(),
                clock: Arc::new(SystemClock),
            },
        );
        Ok(lead_intake::intake(
            &self.config,
            self.dynamo.clone(),
            mailer,
            SystemClock,
            UlidGenerator,
            key,
        ))
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
        ses: shared_core::aws::sesv2(&sdk),
        ssm: shared_core::aws::ssm(&sdk),
        config,
    };
    runtime::serve_http(state, State::app, lead_intake::handle).await
}
