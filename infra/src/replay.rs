//! `devstack replay-erasures`: after a point-in-time restore, re-applies every erasure completed
//! since the restore point (`shared_privacy::dsar::replay`, through the DSAR worker's own steps). The
//! worker is built from the dsar-worker function's configuration (its table and bucket names and
//! blind-index key parameter): the template's for the emulator, the deployed function's
//! environment for AWS (docs/deploy.md, "Restoring a table").

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use shared_core::clock::{SystemClock, UlidGenerator};
use shared_core::error::AppError;
use shared_mail::MemoryMailer;
use shared_privacy::dsar::checkpoint::CheckpointStore;
use shared_privacy::dsar::export::Exports;
use shared_privacy::dsar::job::{DsarJob, JobDispatcher, JobOutcome, RequestProgress};
use shared_privacy::dsar::replay::{replay_erasures, ReplayReport, ReplaySources};
use shared_privacy::dsar::subjects::{SubjectStore, SubjectTables};
use shared_privacy::dsar::worker::{Worker, WorkerSettings};
use time::OffsetDateTime;

/// The replay reports nothing to request records: the requests are closed and were answered.
pub struct NoProgress;

impl RequestProgress for NoProgress {
    async fn started(&self, _: &DsarJob) -> Result<(), AppError> {
        Ok(())
    }
    async fn completed(&self, _: &DsarJob, _: &JobOutcome) -> Result<(), AppError> {
        Ok(())
    }
    async fn failed(&self, _: &DsarJob, _: &str) -> Result<(), AppError> {
        Ok(())
    }
}

/// A replay runs in one process, to its end: it never hands work on.
pub struct NoDispatch;

impl JobDispatcher for NoDispatch {
    async fn dispatch(&self, _: &DsarJob) -> Result<(), AppError> {
        Err(AppError::Internal(anyhow::anyhow!(
            "a replay does not dispatch jobs"
        )))
    }
}

fn var<'a>(env: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str> {
    env.get(name)
        .map(String::as_str)
        .with_context(|| format!("the dsar-worker configuration has no {name}"))
}

/// Runs the replay with the dsar-worker's configuration `env` (its environment variables).
/// `records_table`: the privacy table as it was before the restore (default: the live one).
pub async fn run(
    dynamo: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    ssm: &aws_sdk_ssm::Client,
    env: &BTreeMap<String, String>,
    since: OffsetDateTime,
    dry_run: bool,
    records_table: Option<&str>,
) -> Result<ReplayReport> {
    let tables = SubjectTables {
        tenants: var(env, "TENANTS_TABLE")?.to_string(),
        leads: var(env, "LEADS_TABLE")?.to_string(),
        privacy: var(env, "PRIVACY_TABLE")?.to_string(),
        ops: var(env, "OPS_TABLE")?.to_string(),
        security_log: var(env, "SECURITY_LOG_TABLE")?.to_string(),
        billing: var(env, "BILLING_TABLE")?.to_string(),
    };
    let keys =
        shared_core::secrets::blind_index_key(ssm, var(env, "BLIND_INDEX_KEY_PARAMETER")?).await?;
    let sources = ReplaySources {
        records_table: records_table.unwrap_or(&tables.privacy).to_string(),
    };
    let worker = Worker {
        store: SubjectStore::new(dynamo.clone(), tables.clone()),
        checkpoints: CheckpointStore::new(dynamo, tables.ops.clone(), 30),
        exports: Exports {
            s3,
            bucket: var(env, "EXPORTS_BUCKET")?.to_string(),
            part_bytes: 5 * 1024 * 1024,
        },
        attachments_bucket: var(env, "ATTACHMENTS_BUCKET")?.to_string(),
        mailer: MemoryMailer::default(),
        progress: NoProgress,
        dispatcher: NoDispatch,
        keys,
        clock: Arc::new(SystemClock),
        ids: Arc::new(UlidGenerator),
        settings: WorkerSettings::default(),
    };
    replay_erasures(&worker, &sources, since, dry_run).await
}

/// The report as the command prints it.
pub fn describe(r: &ReplayReport, dry_run: bool) -> String {
    let mut out = format!(
        "{}certificates read: {}\nerasure records read: {}\nsuppression entries read: {}\nsuppression entries restored: {}\nsubjects erased since the restore point: {}\nsubjects re-erased: {}\nitems removed: {}\n",
        if dry_run { "dry run: nothing changed\n" } else { "" },
        r.certificates_read,
        r.erasure_records_read,
        r.suppression_entries_read,
        r.suppression_entries_restored,
        r.subjects,
        r.subjects_re_erased,
        r.items_removed(),
    );
    for (k, v) in &r.removed {
        out.push_str(&format!("  {k}: {v}\n"));
    }
    out
}
