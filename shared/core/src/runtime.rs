//! The Lambda wiring every function's `main.rs` shares, so a `main.rs` keeps only what is its
//! own: which clients, which secrets, which app.
//!
//! - [`init`]: JSON logs, the configuration from the function's allow-list (a bad one is logged
//!   and fails the cold start), and the SDK config.
//! - [`serve_http`] (API Gateway) and [`serve_events`] (EventBridge, async invokes): build the
//!   app on the first invocation (it needs secrets from SSM; fetching them there keeps the cold
//!   start to building clients), keep it for the container's life, and run every invocation in
//!   a [`telemetry::request_span`] with Lambda's request id.
//!
//! The state and the app live as long as the process, so they are leaked once at start: the
//! handlers get `&'static` references and no `Arc` is cloned per request.

use std::future::Future;

use lambda_http::lambda_runtime::{self, LambdaEvent};
use lambda_http::{service_fn, Body, Request, Response};
use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::Instrument;

use crate::aws::SdkConfig;
use crate::config::{ConfigError, Env};
use crate::error::AppError;
use crate::{http, telemetry};

pub use lambda_http::Error;

/// Runs a function's `main` on a single-threaded runtime. Lambda hands a container one
/// invocation at a time, on a fraction of a vCPU at 128 MB: the same work runs without starting
/// (and waking) worker threads, which shortens the cold start. Concurrent I/O of one invocation
/// (`join!`, spawned tasks) still overlaps; a function that needs a second core for CPU work
/// (auth's password hash beside its reads) keeps the multi-threaded runtime.
pub fn single_threaded(main: impl Future<Output = Result<(), Error>>) -> Result<(), Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(main)
}

/// Starts the logs, reads the configuration from the variables in `allow_list` only, and loads
/// the SDK config. An invalid configuration is logged (names, never values) and fails the init.
///
/// `budget` bounds every AWS call of the function ([`crate::aws::Budget`]): `Request` for a
/// function a caller waits on, `Job` for one fed by events.
pub async fn init<C>(
    budget: crate::aws::Budget,
    allow_list: &[&'static str],
    from_env: impl FnOnce(&Env) -> Result<C, ConfigError>,
) -> Result<(C, SdkConfig), Error> {
    telemetry::init();
    let config = from_env(&Env::from_process(allow_list)).inspect_err(|e| {
        tracing::error!(error = %e, "configuration invalid");
    })?;
    Ok((config, crate::aws::load_config(budget).await))
}

/// What the handlers share: the state built at init, and the app built from it on first use.
struct Function<S, A, B> {
    state: S,
    build: B,
    app: OnceCell<A>,
}

impl<S, A, B, BF> Function<S, A, B>
where
    S: Sync + 'static,
    B: Fn(&'static S) -> BF,
    BF: Future<Output = anyhow::Result<A>>,
{
    fn leak(state: S, build: B) -> &'static Self {
        Box::leak(Box::new(Function {
            state,
            build,
            app: OnceCell::new(),
        }))
    }

    /// The app, built by the first invocation that needs it; a failed build is retried by the
    /// next invocation.
    async fn app(&'static self) -> anyhow::Result<&'static A> {
        self.app.get_or_try_init(|| (self.build)(&self.state)).await
    }
}

/// Serves API Gateway requests: `build` makes the app from `state` on the first request,
/// `handle` answers each request. An app that cannot be built answers a 500 without internals
/// (the cause is logged with the request id) and is tried again on the next request.
pub async fn serve_http<S, A, B, BF, H, HF>(state: S, build: B, handle: H) -> Result<(), Error>
where
    S: Send + Sync + 'static,
    A: Send + Sync + 'static,
    B: Fn(&'static S) -> BF + Send + Sync + 'static,
    BF: Future<Output = anyhow::Result<A>> + Send,
    H: Fn(&'static A, Request) -> HF + Send + Sync + 'static,
    HF: Future<Output = Response<Body>> + Send,
{
    let function = Function::leak(state, build);
    let handle = &*Box::leak(Box::new(handle));
    lambda_http::run(service_fn(move |req: Request| {
        let span = telemetry::request_span(&http::request_id(&req));
        async move {
            match function.app().await {
                Ok(app) => Ok::<_, Error>(handle(app, req).await),
                Err(e) => Ok(http::error_response(&AppError::Internal(e))),
            }
        }
        .instrument(span)
    }))
    .await
}

/// Serves events (a schedule, an async invoke): `build` makes the app from `state` on the first
/// event, `handle` runs each event with the state (its configuration) and the app. An app that
/// cannot be built fails the invocation with a message free of internals (the cause is logged
/// with the request id), so Lambda's retry policy applies.
pub async fn serve_events<S, A, B, BF, H, HF>(state: S, build: B, handle: H) -> Result<(), Error>
where
    S: Send + Sync + 'static,
    A: Send + Sync + 'static,
    B: Fn(&'static S) -> BF + Send + Sync + 'static,
    BF: Future<Output = anyhow::Result<A>> + Send,
    H: Fn(&'static S, &'static A, LambdaEvent<Value>) -> HF + Send + Sync + 'static,
    HF: Future<Output = Result<Value, Error>> + Send,
{
    let function = Function::leak(state, build);
    let handle = &*Box::leak(Box::new(handle));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let span = telemetry::request_span(&event.context.request_id);
        async move {
            let app = function.app().await.map_err(|e| {
                tracing::error!(error = %format!("{e:#}"), "function init failed");
                Error::from("function init failed")
            })?;
            handle(&function.state, app, event).await
        }
        .instrument(span)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// The state counts builds; the first build fails (a transient SSM error, say).
    struct Counting {
        builds: AtomicUsize,
    }

    impl Counting {
        async fn build(&self) -> anyhow::Result<usize> {
            match self.builds.fetch_add(1, Ordering::SeqCst) {
                0 => anyhow::bail!("parameter store unavailable"),
                n => Ok(n),
            }
        }
    }

    #[tokio::test]
    async fn a_failed_build_is_retried_and_a_built_app_is_kept() {
        let function = Function::leak(
            Counting {
                builds: AtomicUsize::new(0),
            },
            Counting::build,
        );
        assert!(function.app().await.is_err());
        assert_eq!(*function.app().await.unwrap(), 1);
        assert_eq!(*function.app().await.unwrap(), 1);
        assert_eq!(function.state.builds.load(Ordering::SeqCst), 2);
    }
}
