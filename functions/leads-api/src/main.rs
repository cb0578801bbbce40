//! Wiring only: read configuration, build clients once at init, serve requests.

use std::sync::Arc;

use lambda_http::{service_fn, Error, Request};
use leads_api::config::{Config, ALLOW_LIST};
use leads_api::App;
use shared::auth::jwt::SigningKeys;
use shared::clock::{SystemClock, UlidGenerator};
use shared::config::Env;
use shared::dynamo::LeadsStore;
use shared::telemetry;
use tokio::sync::OnceCell;
use tracing::Instrument;

struct State {
    config: Config,
    store: LeadsStore,
    s3: aws_sdk_s3::Client,
    ssm: shared::aws::SsmClient,
    /// Built on the first invocation: it needs the keys from SSM, and fetching them there keeps
    /// the cold start (init) to building clients only.
    app: OnceCell<App>,
}

impl State {
    async fn app(&self) -> anyhow::Result<&App> {
        self.app
            .get_or_try_init(|| async {
                let keys = shared::secrets::blind_index_key(
                    &self.ssm,
                    &self.config.blind_index_key_parameter,
                )
                .await?;
                let signing = SigningKeys::from_json(
                    &shared::secrets::parameter(&self.ssm, &self.config.jwt_signing_keys_parameter)
                        .await?,
                )?;
                Ok(App {
                    store: self.store.clone(),
                    s3: self.s3.clone(),
                    attachments_bucket: self.config.attachments_bucket.clone(),
                    keys,
                    signing,
                    clock: Arc::new(SystemClock),
                    ids: Arc::new(UlidGenerator),
                    api_base_url: self.config.api_base_url.clone(),
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
        store: LeadsStore::new(shared::aws::dynamodb(&sdk), config.tables.clone()),
        s3: shared::s3::client(&sdk),
        ssm: shared::aws::ssm(&sdk),
        config,
        app: OnceCell::new(),
    });

    lambda_http::run(service_fn(move |req: Request| {
        let state = state.clone();
        async move {
            let span = telemetry::request_span(&shared::http::request_id(&req));
            async move {
                match state.app().await {
                    Ok(app) => Ok::<_, Error>(leads_api::handle(app, req).await),
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
