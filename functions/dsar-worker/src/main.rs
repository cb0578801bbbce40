//! Wiring only: read configuration, build clients once at init, run each job with Lambda's
//! deadline as the time budget.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dsar_worker::config::{Config, ALLOW_LIST};
use shared_accounts::dynamo::{AccountStore, AccountTables};
use shared_core::clock::{SystemClock, UlidGenerator};
use shared_core::runtime::{self, Error};
use shared_mail::dynamo::MailGate;
use shared_mail::unsubscribe::UnsubscribeScope;
use shared_mail::{SendSuppression, SesMailer, WithUnsubscribe};
use shared_privacy::dsar::checkpoint::CheckpointStore;
use shared_privacy::dsar::dispatch::{lambda_client, LambdaDispatcher};
use shared_privacy::dsar::export::Exports;
use shared_privacy::dsar::progress::{Links, Progress};
use shared_privacy::dsar::store::{DsarStore, DsarTables};
use shared_privacy::dsar::subjects::SubjectStore;
use shared_privacy::dsar::worker::{Deadline, Worker};

/// Every email carries the one-click unsubscribe headers (docs/dsar.md): the platform sends
/// these answers, so the link opts the recipient out of the platform's own emails.
type Mail = WithUnsubscribe<SesMailer>;
type App = Worker<Progress<Mail>, LambdaDispatcher, Mail>;

/// Checkpoints outlive the async invocation's retries and duplicates (6 hours) by far.
const CHECKPOINT_KEEP_DAYS: i64 = 30;

struct State {
    config: Config,
    sdk: shared_core::aws::SdkConfig,
}

impl State {
    /// The app, built on the first invocation: it needs the blind-index key from SSM.
    async fn app(&self) -> anyhow::Result<App> {
        let c = &self.config;
        let ssm = shared_core::aws::ssm(&self.sdk);
        let keys =
            shared_core::secrets::blind_index_key(&ssm, &c.blind_index_key_parameter).await?;
        let dynamo = shared_core::aws::dynamodb(&self.sdk);
        let s3 = shared_core::s3::client(&self.sdk);
        let mailer = WithUnsubscribe {
            inner: SesMailer::platform(
                shared_core::aws::sesv2(&self.sdk),
                c.sender_email.clone(),
                c.ses_configuration_set.clone(),
                SendSuppression {
                    gate: MailGate::new(dynamo.clone(), c.tables.ops.clone()),
                    key: keys.clone(),
                    clock: Arc::new(SystemClock),
                },
            ),
            key: keys.clone(),
            api_base_url: c.api_base_url.clone(),
            scope: UnsubscribeScope::Platform,
        };
        let progress = Progress {
            store: DsarStore::new(
                dynamo.clone(),
                DsarTables {
                    privacy: c.tables.privacy.clone(),
                    leads: c.tables.leads.clone(),
                    tenants: c.tables.tenants.clone(),
                    ops: c.tables.ops.clone(),
                },
            ),
            accounts: AccountStore::new(
                dynamo.clone(),
                AccountTables {
                    tenants: c.tables.tenants.clone(),
                    security_log: c.tables.security_log.clone(),
                    ops: c.tables.ops.clone(),
                },
                0,
            ),
            mailer: mailer.clone(),
            key: keys.clone(),
            clock: Arc::new(SystemClock),
            links: Links {
                api_base_url: c.api_base_url.clone(),
                operator_email: c.operator_email.clone(),
            },
        };
        Ok(Worker {
            store: SubjectStore::new(dynamo.clone(), c.tables.clone()),
            checkpoints: CheckpointStore::new(dynamo, c.tables.ops.clone(), CHECKPOINT_KEEP_DAYS),
            exports: Exports {
                s3,
                bucket: c.exports_bucket.clone(),
                part_bytes: 5 * 1024 * 1024,
            },
            attachments_bucket: c.attachments_bucket.clone(),
            mailer,
            progress,
            dispatcher: LambdaDispatcher::new(
                lambda_client(&self.sdk, c.lambda_endpoint.as_deref()),
                c.worker_function.clone(),
            ),
            keys,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UlidGenerator),
            settings: c.settings.clone(),
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
        |state, app, event| async move {
            let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(event.context.deadline);
            // Lambda always sets a deadline ahead. A local runtime may not (cargo-lambda's is
            // already past): taken literally the job would checkpoint at once and invoke itself
            // again, which a local runtime serving one invocation at a time never answers. Give
            // it Lambda's longest run instead.
            let deadline = if deadline > SystemTime::now() {
                deadline
            } else {
                tracing::warn!("no deadline ahead: bounding the run by Lambda's 15 minutes");
                SystemTime::now() + Duration::from_secs(900)
            };
            let budget = Deadline {
                at: deadline,
                margin: state.config.time_margin,
            };
            dsar_worker::handle(app, event.payload, &budget)
                .await
                .map_err(|e| Error::from(e.to_string()))
        },
    )
    .await
}
