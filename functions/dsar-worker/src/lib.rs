//! The dsar-worker function: executes one approved data-subject request per invocation (or
//! part of one, continuing itself), see `shared_privacy::dsar::worker` and `docs/dsar-execution.md`.
//! The handler is an ordinary async function over the worker's ports, called by `main.rs` and
//! by the tests.

pub mod config;

use serde_json::{json, Value};
use shared_core::error::AppError;
use shared_mail::Mailer;
use shared_privacy::dsar::job::{DsarJob, JobDispatcher, RequestProgress};
use shared_privacy::dsar::worker::{Budget, RunResult, Worker};
use tracing::Instrument;

/// Runs the job in `payload`. A payload that is not a job is answered (not retried: it can never
/// succeed) and logged without its content; a transient failure is an error, so Lambda retries
/// the invocation (the checkpoint makes that safe).
pub async fn handle<P: RequestProgress, D: JobDispatcher, M: Mailer>(
    worker: &Worker<P, D, M>,
    payload: Value,
    budget: &dyn Budget,
) -> Result<Value, AppError> {
    let job: DsarJob = match serde_json::from_value(payload) {
        Ok(j) => j,
        Err(e) => {
            // The serde message names a field or a type, never the value.
            tracing::error!(error = %e.classify_name(), "invalid job payload");
            return Ok(json!({ "status": "rejected", "reason": "invalid job payload" }));
        }
    };
    let result = worker
        .run(&job, budget)
        .instrument(shared_core::telemetry::request_span(&job.request_id))
        .await;
    match result {
        Ok(RunResult::Completed(outcome)) => Ok(json!({
            "status": "completed",
            "request_id": job.request_id,
            "counts": outcome.counts,
            "certificate_key": outcome.certificate_key,
        })),
        Ok(RunResult::Continued) => {
            Ok(json!({"status": "continued", "request_id": job.request_id}))
        }
        Ok(RunResult::AlreadyCompleted) => {
            Ok(json!({"status": "already_completed", "request_id": job.request_id}))
        }
        Ok(RunResult::Busy) => Ok(json!({"status": "busy", "request_id": job.request_id})),
        Ok(RunResult::Failed(reason)) => {
            Ok(json!({"status": "failed", "request_id": job.request_id, "reason": reason}))
        }
        Err(e) => {
            tracing::error!(request_id = %job.request_id, error = %e, "job run failed; Lambda retries it");
            Err(e)
        }
    }
}

/// serde_json error kinds, without the message (which can quote input).
trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "eof",
        }
    }
}
