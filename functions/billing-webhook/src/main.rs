//! Wiring only: read configuration, build clients once at init, serve requests.

use std::sync::Arc;

use billing_webhook::config::{Config, ALLOW_LIST};
use billing_webhook::stripe::Stripe;
use billing_webhook::App;
use lambda_http::{service_fn, Error, Request};
use shared::auth::jwt::SigningKeys;
use shared::clock::SystemClock;
use shared::config::Env;
use shared::dynamo::{AccountStore, AccountTables, DynamoBillingStore};
use shared::mail::SesMailer;
use shared::telemetry;
use tokio::sync::OnceCell;
use tracing::Instrument;

type Live = App<DynamoBillingStore, SesMailer, AccountStore>;

struct State {
    config: Config,
    sdk: shared::aws::SdkConfig,
    /// Built on the first invocation: it needs the webhook secrets and signing keys from SSM.
    app: OnceCell<Live>,
}

impl State {
    async fn app(&self) -> anyhow::Result<&Live> {
        self.app
            .get_or_try_init(|| async {
                let ssm = shared::aws::ssm(&self.sdk);
                let c = &self.config;
                let stripe = Stripe::from_parameter(
                    &shared::secrets::parameter(&ssm, &c.stripe_secrets_parameter).await?,
                    c.settings.tolerance_secs,
                )?;
                let signing = SigningKeys::from_json(
                    &shared::secrets::parameter(&ssm, &c.jwt_signing_keys_parameter).await?,
                )?;
                let dynamo = shared::aws::dynamodb(&self.sdk);
                Ok(App {
                    store: DynamoBillingStore::new(dynamo.clone(), c.tables.clone()),
                    mailer: SesMailer::new(shared::aws::sesv2(&self.sdk), c.sender_email.clone()),
                    // Used for `team` only (a Query on the tenants table). This function writes
                    // no security events and its role has no access to that table.
                    directory: AccountStore::new(
                        dynamo,
                        AccountTables {
                            tenants: c.tenants_table.clone(),
                            security_log: String::new(),
                            ops: c.tables.ops.clone(),
                        },
                        0,
                    ),
                    stripe,
                    signing,
                    clock: Arc::new(SystemClock),
                    settings: c.settings.clone(),
                })
            })
            .await
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env(&Env::from_process(ALLOW_LIST)).inspect_err(|e| {
        tracing::error!(error = %e, "configuration invalid");
    })?;
    let sdk = shared::aws::load_config().await;
    let state = Arc::new(State {
        config,
        sdk,
        app: OnceCell::new(),
    });

    lambda_http::run(service_fn(move |req: Request| {
        let state = state.clone();
        async move {
            let span = telemetry::request_span(&shared::http::request_id(&req));
            async move {
                match state.app().await {
                    Ok(app) => Ok::<_, Error>(billing_webhook::handle(app, req).await),
                    Err(e) => Ok(shared::http::error_response(
                        &shared::error::AppError::Internal(e),
                    )),
                }
            }
            .instrument(span)
            .await
        }
    }))
    .await
}
