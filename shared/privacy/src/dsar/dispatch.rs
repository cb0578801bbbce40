//! The Lambda adapter of [`JobDispatcher`]: an asynchronous invocation (`InvocationType`
//! `Event`) of the `dsar-worker` function with the job as its payload. Lambda queues the event
//! and answers 202 at once; the worker runs outside the API request, with its own timeout, and
//! Lambda retries it (twice) when it fails.
//!
//! Locally, `cargo lambda watch` serves Lambda's Invoke API on the API port
//! (`POST /2015-03-31/functions/<binary>/invocations`), so the endpoint is overridable
//! ([`lambda_client`]) and the function name is the binary's (`dsar-worker`). It runs the
//! invocation synchronously: the call returns when the worker has finished.

use super::job::{DsarJob, JobDispatcher};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use shared_core::error::AppError;

/// A Lambda client from the shared SDK config; `endpoint` overrides where Invoke goes (the
/// local `cargo lambda watch`), whatever `AWS_ENDPOINT_URL` says (the emulator of the other
/// services).
pub fn lambda_client(
    sdk: &aws_config::SdkConfig,
    endpoint: Option<&str>,
) -> aws_sdk_lambda::Client {
    let mut conf = aws_sdk_lambda::config::Builder::from(sdk);
    if let Some(url) = endpoint {
        conf = conf.endpoint_url(url);
    }
    aws_sdk_lambda::Client::from_conf(conf.build())
}

#[derive(Debug, Clone)]
pub struct LambdaDispatcher {
    client: aws_sdk_lambda::Client,
    function_name: String,
}

impl LambdaDispatcher {
    pub fn new(client: aws_sdk_lambda::Client, function_name: impl Into<String>) -> Self {
        Self {
            client,
            function_name: function_name.into(),
        }
    }
}

impl JobDispatcher for LambdaDispatcher {
    async fn dispatch(&self, job: &DsarJob) -> Result<(), AppError> {
        let payload = serde_json::to_vec(job)
            .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("job payload")))?;
        let out = self
            .client
            .invoke()
            .function_name(&self.function_name)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("Lambda Invoke")))?;
        // 202 from Lambda (queued); 200 from a local `cargo lambda watch`, which runs it.
        if !(200..300).contains(&out.status_code) {
            return Err(AppError::Internal(anyhow::anyhow!(
                "Lambda Invoke answered {}",
                out.status_code
            )));
        }
        if out.function_error.is_some() {
            // Only a synchronous (local) invocation reports this; the worker logged why.
            tracing::warn!(request_id = %job.request_id, "the worker invocation reported an error");
        }
        tracing::info!(request_id = %job.request_id, "dsar job dispatched");
        Ok(())
    }
}
