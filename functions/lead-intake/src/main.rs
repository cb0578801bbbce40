//! Wiring only: read configuration, build clients once at init, serve requests.

use std::sync::Arc;

use lambda_http::{service_fn, Error, Request};
use lead_intake::config::{Config, ALLOW_LIST};
use shared::clock::{SystemClock, UlidGenerator};
use shared::config::Env;
use shared::dynamo::DynamoIntakeStore;
use shared::intake::Intake;
use shared::telemetry;
use tokio::sync::OnceCell;
use tracing::Instrument;

type App = Intake<DynamoIntakeStore, SystemClock, UlidGenerator>;

struct State {
    config: Config,
    store: DynamoIntakeStore,
    ssm: shared::aws::SsmClient,
    /// Built on the first invocation: it needs the blind-index key from SSM, and fetching it
    /// there keeps the cold start (init) to building clients only.
    app: OnceCell<App>,
}

impl State {
    async fn app(&self) -> anyhow::Result<&App> {
        self.app
            .get_or_try_init(|| async {
                let key = shared::secrets::blind_index_key(
                    &self.ssm,
                    &self.config.blind_index_key_parameter,
                )
                .await?;
                Ok(Intake::new(
                    self.store.clone(),
                    SystemClock,
                    UlidGenerator,
                    key,
                    self.config.settings.clone(),
                ))
            })
            .await
    }
}

fn main() -> Result<(), Error> {
    // Before any thread exists: it may set an environment variable (see its docs).
    shared::aws::prefer_system_ca_bundle();
    // One invocation at a time per container, on a fraction of a vCPU at 256 MB: a
    // single-threaded runtime does the same work without starting (and waking) worker threads,
    // which shortens the cold start.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env(&Env::from_process(ALLOW_LIST)).inspect_err(|e| {
        tracing::error!(error = %e, "configuration invalid");
    })?;
    let sdk = shared::aws::load_config().await;
    let state = Arc::new(State {
        store: DynamoIntakeStore::new(shared::aws::dynamodb(&sdk), config.tables.clone()),
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
                    Ok(app) => Ok::<_, Error>(lead_intake::handle(app, req).await),
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
