//! Wiring only: read configuration, build clients once at init, run the sweep per scheduled
//! event, with Lambda's deadline as the time budget.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use retention_cleanup::config::{Config, ALLOW_LIST};
use retention_cleanup::{App, Limits};
use serde_json::Value;
use shared_core::clock::{SystemClock, UlidGenerator};
use shared_core::runtime::{self, Error};

struct State {
    config: Config,
    sdk: shared_core::aws::SdkConfig,
}

impl State {
    /// The app, built on the first invocation: it needs the blind-index key from SSM.
    async fn app(&self) -> anyhow::Result<App> {
        let c = &self.config;
        let ssm = shared_core::aws::ssm(&self.sdk);
        let key = shared_core::secrets::blind_index_key(&ssm, &c.blind_index_key_parameter).await?;
        Ok(App {
            dynamo: shared_core::aws::dynamodb(&self.sdk),
            s3: shared_core::s3::client(&self.sdk),
            tables: c.tables.clone(),
            buckets: c.buckets.clone(),
            key,
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
            let margin = Duration::from_secs(state.config.settings.safety_margin_secs);
            let deadline = event
                .context
                .deadline()
                .duration_since(SystemTime::now())
                .ok()
                // A short timeout (a local invoke's) keeps three quarters of itself.
                .map(|left| Instant::now() + left - margin.min(left / 4));
            // Lambda always sets a deadline ahead; a local runtime may not (cargo-lambda's is
            // already past): then the run is bounded by nothing but its work.
            if deadline.is_none() {
                tracing::warn!("no deadline ahead: the run is not time-bounded");
            }
            let limits = Limits {
                deadline,
                max_pages: None,
            };
            Ok::<Value, Error>(retention_cleanup::handle(app, &event.payload, limits).await)
        },
    )
    .await
}
