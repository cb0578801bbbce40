//! Wiring only: read configuration, build clients once at init, serve requests.

use std::sync::Arc;

use auth::config::{Config, ALLOW_LIST};
use auth::App;
use lambda_http::{service_fn, Error, Request};
use shared::auth::jwt::SigningKeys;
use shared::clock::{SystemClock, UlidGenerator};
use shared::config::Env;
use shared::dynamo::AccountStore;
use shared::mail::SesMailer;
use shared::telemetry;
use tokio::sync::OnceCell;
use tracing::Instrument;

struct State {
    config: Config,
    sdk: shared::aws::SdkConfig,
    /// Built on the first invocation: it needs the keys from SSM.
    app: OnceCell<App<SesMailer>>,
}

impl State {
    async fn app(&self) -> anyhow::Result<&App<SesMailer>> {
        self.app
            .get_or_try_init(|| async {
                let ssm = shared::aws::ssm(&self.sdk);
                let keys =
                    shared::secrets::blind_index_key(&ssm, &self.config.blind_index_key_parameter)
                        .await?;
                let signing = SigningKeys::from_json(
                    &shared::secrets::parameter(&ssm, &self.config.jwt_signing_keys_parameter)
                        .await?,
                )?;
                Ok(App {
                    store: AccountStore::new(
                        shared::aws::dynamodb(&self.sdk),
                        self.config.tables.clone(),
                        self.config.settings.security_log_days,
                    ),
                    mailer: SesMailer::new(
                        shared::aws::sesv2(&self.sdk),
                        self.config.sender_email.clone(),
                    ),
                    keys,
                    signing,
                    clock: Arc::new(SystemClock),
                    ids: Arc::new(UlidGenerator),
                    app_base_url: self.config.app_base_url.clone(),
                    settings: self.config.settings.clone(),
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
    // Pay the dummy password hash's one-off setup now, not in a user's first failed login.
    tokio::task::spawn_blocking(|| shared::auth::password::verify_against_dummy("warm-up"));

    lambda_http::run(service_fn(move |req: Request| {
        let state = state.clone();
        async move {
            let span = telemetry::request_span(&shared::http::request_id(&req));
            async move {
                match state.app().await {
                    Ok(app) => Ok::<_, Error>(auth::handle(app, req).await),
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
