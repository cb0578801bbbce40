//! The execution of an approved data-subject request, in resumable steps.
//!
//! A run claims the request's checkpoint ([`super::checkpoint`]), plans the subject's targets
//! once (the tenant's leads found through the email's blind index; or the account's user found
//! through the login index), works through them from the checkpoint's cursor, and finishes
//! (closes exports, erases earlier exports, writes the certificate), then delivers (emails the
//! subject, reports the outcome). Before each target it asks its [`Budget`]; when time runs
//! short it saves the checkpoint, gives the lease up and dispatches itself again.
//!
//! Idempotency: a completed job is a no-op; every step can be repeated (deletes of deleted items
//! are harmless, updates set the same values, audit entries have deterministic keys); counts are
//! committed with the cursor, so a repeated target is never counted twice. Exports commit only
//! at part boundaries (see [`super::export`]), and a repeated target then rewrites the records
//! of the part that was not sent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde_json::json;

use super::checkpoint::{Checkpoint, CheckpointStore, Claim, Phase};
use super::export::{DocKind, Exports, Sink};
use super::job::{
    DsarJob, JobDispatcher, JobKind, JobOutcome, JobScope, JobSubject, RequestProgress,
};
use super::records::Undeclared;
use super::subjects::{str_attr, SubjectStore};
use super::tokens::DownloadBucket;
use shared_core::blind_index::BlindIndexKey;
use shared_core::clock::{rfc3339, Clock, IdGenerator};
use shared_core::domain::{Email, TenantId, UserId};
use shared_core::error::AppError;
use shared_core::keys;
use shared_mail::{escape_html, Mailer, OutgoingEmail};

/// Whether a run should stop and continue in a new invocation.
pub trait Budget: Send + Sync {
    fn exhausted(&self) -> bool;
}

/// The Lambda invocation's deadline, less a margin for saving and re-dispatching.
pub struct Deadline {
    pub at: SystemTime,
    pub margin: Duration,
}

impl Budget for Deadline {
    fn exhausted(&self) -> bool {
        SystemTime::now() + self.margin >= self.at
    }
}

/// Never runs out (tests, the benchmark).
pub struct Unlimited;

impl Budget for Unlimited {
    fn exhausted(&self) -> bool {
        false
    }
}

/// Allows this many targets, then runs out (tests of the resumption).
pub struct Steps(pub AtomicU32);

impl Steps {
    pub fn new(n: u32) -> Self {
        Self(AtomicU32::new(n))
    }
}

impl Budget for Steps {
    fn exhausted(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
    }
}

pub use super::job::Target;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Lifetime of the emailed download links.
    pub link_ttl: Duration,
    /// The public API's base URL: emailed links go to its download route
    /// (`/v1/privacy/downloads`), never straight to a presigned S3 URL.
    pub api_base_url: String,
    /// A run's lease on the checkpoint: just longer than the function's timeout (900 s), so
    /// a live run is never joined by a duplicate, and the retry Lambda sends a minute after a
    /// run was cut off finds the lease expired and resumes.
    pub lease_secs: i64,
    /// The AWS region the deployment runs in (`AWS_REGION`): the Art 15 facts name it, and
    /// the transfer mechanism it calls for.
    pub region: String,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            link_ttl: Duration::from_secs(72 * 3600),
            api_base_url: String::new(),
            lease_secs: 910,
            region: String::new(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub enum RunResult {
    Completed(JobOutcome),
    /// Time ran short: the checkpoint is saved and a continuation dispatched.
    Continued,
    /// The job was already completed (a duplicate or retried invocation).
    AlreadyCompleted,
    /// Another run holds the job.
    Busy,
    /// The job cannot be executed (reported as failed).
    Failed(String),
}

/// A job that cannot succeed by retrying (bad rectification value, undeclared attribute, ...).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

pub struct Worker<P, D, M> {
    pub store: SubjectStore,
    pub checkpoints: CheckpointStore,
    pub exports: Exports,
    pub attachments_bucket: String,
    pub mailer: M,
    pub progress: P,
    pub dispatcher: D,
    pub keys: BlindIndexKey,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub settings: WorkerSettings,
}

/// What a target produced: counts, and records kept.
#[derive(Debug, Default)]
pub(super) struct StepResult {
    pub counts: BTreeMap<String, u64>,
    pub kept: Vec<super::job::KeptRecord>,
}

impl StepResult {
    pub fn inc(&mut self, what: &str, by: u64) {
        if by > 0 {
            *self.counts.entry(what.to_string()).or_default() += by;
        }
    }
}

/// The subject as the job names it.
pub(super) struct Subject {
    /// `None` only for a restriction's lift that runs after its request closed.
    pub email: Option<Email>,
    /// Who the subject is: the email's blind index, or the phone's for a request a tenant
    /// filed by phone (then `email` is only where the answers go: the filing user's).
    pub bidx: String,
    pub by_phone: bool,
    /// When the job's first run began: the time of every record the job writes (audit
    /// entries, withdrawals), so a repeated step writes the same record again.
    pub at: String,
}

impl<P: RequestProgress, D: JobDispatcher, M: Mailer> Worker<P, D, M> {
    /// The subject's link to one object: the platform's download route with a signed token
    /// valid for `link_ttl` (see [`crate::dsar::tokens::DownloadToken`] for why never a
    /// presigned URL).
    pub(super) fn download_link(&self, job: &DsarJob, bucket: DownloadBucket, key: &str) -> String {
        let expires_at = (self.clock.now()
            + time::Duration::seconds(self.settings.link_ttl.as_secs() as i64))
        .unix_timestamp();
        crate::dsar::progress::Links {
            api_base_url: self.settings.api_base_url.clone(),
            operator_email: String::new(),
        }
        .download_url(&self.keys, &job.request_id, bucket, key, expires_at)
    }

    /// Re-applies a completed erasure to the data as it is now (after a point-in-time restore
    /// brought the subject back): the job's own plan and erasure steps, the same code as a run,
    /// without its checkpoint, certificate, emails or progress reports (the request is closed
    /// and was answered). Idempotent: what is gone is not found again. Returns what was removed.
    /// `dry_run`: plans only, and returns how many targets (leads, users) hold the subject.
    pub async fn reapply_erasure(
        &self,
        request_id: &str,
        scope: &JobScope,
        subject_bidx: &str,
        by_phone: bool,
        at: &str,
        dry_run: bool,
    ) -> anyhow::Result<BTreeMap<String, u64>> {
        let job = DsarJob {
            request_id: request_id.to_string(),
            scope: scope.clone(),
            kind: JobKind::Erasure {
                suppress_phone: false,
            },
            subject_email: String::new(),
        };
        let subject = Subject {
            email: None,
            bidx: subject_bidx.to_string(),
            by_phone,
            at: at.to_string(),
        };
        let targets = self.plan(&job, &subject).await?;
        let mut counts = BTreeMap::new();
        if dry_run {
            add(&mut counts, "target", targets.len() as u64);
            return Ok(counts);
        }
        for target in &targets {
            let r = self.step(&job, &subject, target, &mut [], &mut []).await?;
            for (k, v) in r.counts {
                add(&mut counts, &k, v);
            }
        }
        Ok(counts)
    }

    /// Runs (or continues) a job until it is done or the budget runs out. A job from an
    /// invocation payload names the request only: the subject's email and a rectification's
    /// corrections are read from the request record first.
    pub async fn run(&self, job: &DsarJob, budget: &dyn Budget) -> Result<RunResult, AppError> {
        let (job, subject) = match self.hydrate(job).await {
            Ok(h) => h,
            Err(reason) => {
                // A duplicate invocation of a job done (its request closed since) is a no-op.
                let phase = self
                    .checkpoints
                    .load(&job.checkpoint_id())
                    .await?
                    .map(|cp| cp.phase);
                if phase == Some(super::checkpoint::Phase::Completed) {
                    tracing::info!(request_id = %job.request_id, "job already completed");
                    return Ok(RunResult::AlreadyCompleted);
                }
                // Delivered and the request closed, but the run failed before it marked its
                // checkpoint (the invocation is retried): only that mark is left to make.
                if phase == Some(super::checkpoint::Phase::Deliver) {
                    return self.mark_completed(job).await;
                }
                tracing::error!(request_id = %job.request_id, %reason, "job failed");
                self.progress.failed(job, &reason).await?;
                return Ok(RunResult::Failed(reason));
            }
        };
        self.run_hydrated(&job, subject, budget).await
    }

    /// The job with what its payload leaves out, and the subject (`email`: `None` when the
    /// request closed before the job ran, which only a restriction's lift may: the subject was
    /// told before, by the lifecycle, and is not emailed again).
    async fn hydrate(&self, job: &DsarJob) -> Result<(DsarJob, Subject), String> {
        let subject_of = |email: Email| Subject {
            bidx: self.keys.email(&email),
            email: Some(email),
            by_phone: false,
            at: String::new(),
        };
        if !job.subject_email.is_empty() {
            let email = Email::parse(&job.subject_email)
                .map_err(|e| format!("subject email invalid: {e}"))?;
            let mut subject = subject_of(email);
            // A job handed over in process still names its subject by the record: a request
            // filed by phone is the phone's person's, whatever address the answers go to.
            if let Ok(Some(JobSubject {
                phone_bidx: Some(p),
                ..
            })) = self.progress.subject(&job.request_id).await
            {
                subject.bidx = p;
                subject.by_phone = true;
            }
            return Ok((job.clone(), subject));
        }
        let record = self
            .progress
            .subject(&job.request_id)
            .await
            .map_err(|_| "request record unreadable".to_string())?
            .ok_or_else(|| "request record not found".to_string())?;
        let mut job = job.clone();
        if let JobKind::Rectification { changes } = &mut job.kind {
            if changes.is_empty() {
                *changes = record.corrections.clone();
            }
        }
        let by_phone = |mut s: Subject| {
            if let Some(p) = &record.phone_bidx {
                s.bidx = p.clone();
                s.by_phone = true;
            }
            s
        };
        let subject = match record.email.clone() {
            Some(raw) => {
                let email =
                    Email::parse(&raw).map_err(|e| format!("subject email invalid: {e}"))?;
                job.subject_email = email.as_str().to_string();
                by_phone(subject_of(email))
            }
            None if job.kind == JobKind::LiftRestriction => by_phone(Subject {
                email: None,
                bidx: record.email_bidx.clone(),
                by_phone: false,
                at: String::new(),
            }),
            None => return Err("request closed".to_string()),
        };
        Ok((job, subject))
    }

    async fn run_hydrated(
        &self,
        job: &DsarJob,
        subject: Subject,
        budget: &dyn Budget,
    ) -> Result<RunResult, AppError> {
        let now = self.clock.now();
        let run_id = self.ids.new_id(now);
        let claimed = self
            .checkpoints
            .claim(&job.checkpoint_id(), &run_id, now, self.settings.lease_secs)
            .await;
        let claimed = match claimed {
            Ok(c) => c,
            Err(e) => {
                // The claim may have landed with its answer lost: give the lease up, or the
                // invocation's retry would find it held (by this dead run) and stop as busy.
                self.release_lease(job, &run_id).await;
                return Err(e.into());
            }
        };
        let cp = match claimed {
            Claim::Busy => {
                tracing::info!(request_id = %job.request_id, "job held by another run");
                return Ok(RunResult::Busy);
            }
            Claim::Completed(_) => {
                tracing::info!(request_id = %job.request_id, "job already completed");
                return Ok(RunResult::AlreadyCompleted);
            }
            Claim::Acquired(cp) => cp,
        };
        match self
            .execute(job, subject, cp.clone(), &run_id, budget)
            .await
        {
            Ok(r) => Ok(r),
            Err(e) if is_permanent(&e) => {
                let reason = e.to_string();
                tracing::error!(request_id = %job.request_id, %reason, "job failed");
                shared_core::telemetry::metric(
                    "DsarJobs",
                    1.0,
                    "Count",
                    &[
                        ("Function", "dsar-worker"),
                        ("Kind", kind_name(&job.kind)),
                        ("Outcome", "failed"),
                    ],
                );
                // The checkpoint stays where the job stopped: the controller's "approve again"
                // (after the cause is fixed) re-dispatches it, and it resumes from there.
                self.checkpoints
                    .release(&job.checkpoint_id(), &run_id)
                    .await?;
                self.progress.failed(job, &reason).await?;
                Ok(RunResult::Failed(reason))
            }
            Err(e) => {
                // Transient: the lease is given up so the invocation's retry resumes at once.
                self.release_lease(job, &run_id).await;
                Err(AppError::Internal(e))
            }
        }
    }

    /// Marks a delivered job's checkpoint completed (its targets cleared, as a completing run
    /// does), for a retried invocation that finds the request already closed.
    async fn mark_completed(&self, job: &DsarJob) -> Result<RunResult, AppError> {
        let now = self.clock.now();
        let run_id = self.ids.new_id(now);
        let claimed = self
            .checkpoints
            .claim(&job.checkpoint_id(), &run_id, now, self.settings.lease_secs)
            .await;
        let mut cp = match claimed {
            Ok(Claim::Acquired(cp)) => cp,
            Ok(Claim::Completed(_)) => return Ok(RunResult::AlreadyCompleted),
            Ok(Claim::Busy) => return Ok(RunResult::Busy),
            Err(e) => {
                self.release_lease(job, &run_id).await;
                return Err(e.into());
            }
        };
        cp.phase = Phase::Completed;
        cp.targets.clear();
        self.save(job, &run_id, &cp).await?;
        self.release_lease(job, &run_id).await;
        tracing::info!(request_id = %job.request_id, "delivered job marked completed");
        Ok(RunResult::AlreadyCompleted)
    }

    /// Gives up this run's lease after a failure, trying a few times: a lease left behind by a
    /// failed run makes the invocation's retries stop as busy until it expires.
    async fn release_lease(&self, job: &DsarJob, run_id: &str) {
        for attempt in 0..shared_core::aws::LANDED_READS {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            if self
                .checkpoints
                .release(&job.checkpoint_id(), run_id)
                .await
                .is_ok()
            {
                return;
            }
        }
        tracing::warn!(request_id = %job.request_id, "lease not released; it expires on its own");
    }

    async fn execute(
        &self,
        job: &DsarJob,
        mut subject: Subject,
        mut cp: Checkpoint,
        run_id: &str,
        budget: &dyn Budget,
    ) -> anyhow::Result<RunResult> {
        cp.runs += 1;
        if cp.phase == Phase::Plan {
            self.validate(job)?;
            self.progress.started(job).await?;
            cp.started_at = Some(rfc3339(self.clock.now()));
            cp.targets = self.plan(job, &subject).await?;
            for doc in docs(&job.kind) {
                let key = format!(
                    "{}{}/{}",
                    subject_prefix(&job.scope, &subject.bidx),
                    job.request_id,
                    doc.file_name()
                );
                cp.uploads.push(self.exports.begin(*doc, key).await?);
            }
            cp.phase = Phase::Work;
            self.save(job, run_id, &cp).await?;
        }
        subject.at = cp
            .started_at
            .clone()
            .unwrap_or_else(|| rfc3339(self.clock.now()));
        let mut header = json!({
            "request_id": job.request_id,
            "generated_at": cp.started_at,
        });
        if job.kind == JobKind::Access {
            header["facts"] = super::facts::facts(
                &job.scope,
                &super::facts::Deployment {
                    region: self.settings.region.clone(),
                },
            );
        }
        let mut sinks: Vec<Option<Sink>> = cp
            .uploads
            .iter()
            .map(|u| (!u.completed).then(|| Sink::resume(u.clone(), &header)))
            .collect();
        let mut pending = StepResult::default();
        let mut i = cp.cursor;
        while cp.phase == Phase::Work && i < cp.targets.len() {
            if budget.exhausted() {
                return self.continue_later(job, run_id, &cp).await;
            }
            let target = cp.targets[i].clone();
            let r = self
                .step(job, &subject, &target, &mut sinks, &mut cp.uploads)
                .await?;
            for (k, v) in r.counts {
                *pending.counts.entry(k).or_default() += v;
            }
            pending.kept.extend(r.kept);
            i += 1;
            // Commit when nothing written is waiting in memory: always for non-export jobs,
            // at part boundaries for exports.
            let unsent = target_doc(&target)
                .and_then(|d| sinks.get(d).and_then(Option::as_ref))
                .is_some_and(|s| !s.buf.is_empty());
            if !unsent {
                for (k, s) in sinks.iter().enumerate() {
                    if let Some(s) = s {
                        cp.uploads[k] = s.state.clone();
                    }
                }
                cp.add(&pending.counts);
                cp.kept.append(&mut pending.kept);
                pending = StepResult::default();
                cp.cursor = i;
                self.save(job, run_id, &cp).await?;
            }
        }
        if cp.phase == Phase::Work {
            if budget.exhausted() {
                return self.continue_later(job, run_id, &cp).await;
            }
            let outcome = self.finish(job, &subject, &mut cp).await?;
            cp.outcome = Some(outcome);
            cp.phase = Phase::Deliver;
            self.save(job, run_id, &cp).await?;
        }
        let outcome = cp.outcome.clone().unwrap_or_default();
        if cp.phase == Phase::Deliver {
            self.deliver(job, &subject, &outcome).await?;
            self.progress.completed(job, &outcome).await?;
            cp.phase = Phase::Completed;
            // What stays for duplicates to find is the outcome: the targets (lead and user ids)
            // go, so an erased subject's ids do not outlive the erasure here.
            cp.targets.clear();
            self.save(job, run_id, &cp).await?;
            self.checkpoints
                .release(&job.checkpoint_id(), run_id)
                .await?;
            tracing::info!(
                request_id = %job.request_id,
                kind = kind_name(&job.kind),
                runs = cp.runs,
                counts = ?outcome.counts,
                "job completed"
            );
            shared_core::telemetry::metric(
                "DsarJobs",
                1.0,
                "Count",
                &[
                    ("Function", "dsar-worker"),
                    ("Kind", kind_name(&job.kind)),
                    ("Outcome", "completed"),
                ],
            );
        }
        Ok(RunResult::Completed(outcome))
    }

    async fn save(&self, job: &DsarJob, run_id: &str, cp: &Checkpoint) -> anyhow::Result<()> {
        self.checkpoints
            .save(&job.checkpoint_id(), run_id, cp, self.clock.now())
            .await
    }

    async fn continue_later(
        &self,
        job: &DsarJob,
        run_id: &str,
        cp: &Checkpoint,
    ) -> anyhow::Result<RunResult> {
        self.save(job, run_id, cp).await?;
        self.checkpoints
            .release(&job.checkpoint_id(), run_id)
            .await?;
        self.dispatcher
            .dispatch(job)
            .await
            .map_err(|e| anyhow::anyhow!("dispatching the continuation: {e}"))?;
        tracing::info!(request_id = %job.request_id, cursor = cp.cursor, targets = cp.targets.len(), "job continues in a new invocation");
        shared_core::telemetry::metric(
            "DsarJobs",
            1.0,
            "Count",
            &[
                ("Function", "dsar-worker"),
                ("Kind", kind_name(&job.kind)),
                ("Outcome", "continued"),
            ],
        );
        Ok(RunResult::Continued)
    }

    /// Refuses, before anything is touched, what cannot be executed.
    fn validate(&self, job: &DsarJob) -> anyhow::Result<()> {
        if let JobKind::Rectification { changes } = &job.kind {
            if changes.is_empty() {
                return Err(Rejected("rectification names no field".into()).into());
            }
            let allowed: &[&str] = match job.scope {
                JobScope::Tenant { .. } => &["name", "company", "email", "phone"],
                // An account's email is its login: changed through the account's own
                // verified email change, not by a request.
                JobScope::Account => &["name", "phone"],
            };
            for (field, value) in changes {
                if !allowed.contains(&field.as_str()) {
                    return Err(
                        Rejected(format!("field {field:?} cannot be rectified here")).into(),
                    );
                }
                let check = match field.as_str() {
                    "email" => Email::parse(value).map(|_| ()),
                    "phone" => shared_core::domain::Phone::parse(value).map(|_| ()),
                    _ => shared_leads::contact_text(value).map(|_| ()),
                };
                check.map_err(|e| Rejected(format!("field {field:?} {e}")))?;
            }
        }
        Ok(())
    }

    async fn plan(&self, job: &DsarJob, subject: &Subject) -> anyhow::Result<Vec<Target>> {
        let docs = docs(&job.kind);
        let passes: Vec<Option<usize>> = if docs.is_empty() {
            vec![None]
        } else {
            (0..docs.len()).map(Some).collect()
        };
        let mut targets = Vec::new();
        match &job.scope {
            JobScope::Tenant { tenant_id } => {
                let leads = if subject.by_phone {
                    self.store
                        .lead_ids_by_phone(tenant_id, &subject.bidx, &self.keys)
                        .await?
                } else {
                    self.store.lead_ids(tenant_id, &subject.bidx).await?
                };
                for doc in passes {
                    targets.extend(leads.iter().map(|l| Target::Lead {
                        lead: l.to_string(),
                        doc,
                    }));
                    // What the spam defence kept apart holds the subject's answers too: an
                    // access shows it, an erasure removes it (docs/privacy.md).
                    if matches!(job.kind, JobKind::Access | JobKind::Erasure { .. }) {
                        targets.push(Target::Quarantine { doc });
                    }
                    if job.kind == JobKind::Access {
                        targets.push(Target::Suppression { doc });
                    }
                    if let Some(doc) = doc {
                        targets.push(Target::FinishDoc { doc });
                    }
                }
            }
            JobScope::Account if subject.by_phone => {
                return Err(
                    Rejected("account data is found by the login email only".into()).into(),
                );
            }
            JobScope::Account => {
                let login = self
                    .store
                    .get(&self.store.tables().tenants, &keys::login(&subject.bidx))
                    .await?;
                let account = login.as_ref().and_then(|it| {
                    Some((
                        TenantId::parse(str_attr(it, "tenant_id")?).ok()?,
                        UserId::parse(str_attr(it, "user_id")?).ok()?,
                    ))
                });
                let owner_of = match &account {
                    Some((t, u)) => self
                        .store
                        .get(&self.store.tables().tenants, &keys::tenant(t))
                        .await?
                        .filter(|it| str_attr(it, "owner_user_id") == Some(u.as_str()))
                        .map(|_| t.clone()),
                    None => None,
                };
                for doc in passes {
                    if let Some((t, u)) = &account {
                        targets.push(Target::User {
                            tenant: t.to_string(),
                            user: u.to_string(),
                            doc,
                        });
                        let billing = matches!(job.kind, JobKind::Access | JobKind::Erasure { .. });
                        if let (Some(owner_t), true) = (&owner_of, billing) {
                            targets.push(Target::Billing {
                                tenant: owner_t.to_string(),
                                doc,
                            });
                        }
                    }
                    if let Some(doc) = doc {
                        targets.push(Target::FinishDoc { doc });
                    }
                }
            }
        }
        Ok(targets)
    }

    /// Closes what the targets left open and builds the outcome.
    async fn finish(
        &self,
        job: &DsarJob,
        subject: &Subject,
        cp: &mut Checkpoint,
    ) -> anyhow::Result<JobOutcome> {
        let mut outcome = JobOutcome {
            counts: cp.counts.clone(),
            kept: cp.kept.clone(),
            export_keys: cp.uploads.iter().map(|u| u.key.clone()).collect(),
            certificate_key: None,
        };
        if matches!(job.kind, JobKind::Erasure { .. }) {
            let s3 = &self.exports.s3;
            let bucket = &self.exports.bucket;
            // Earlier access and portability exports of this subject (this scope).
            let prefix = subject_prefix(&job.scope, &subject.bidx);
            let n = shared_core::s3::delete_prefix(s3, bucket, &prefix).await?;
            add(&mut outcome.counts, "earlier_dsar_export_object", n as u64);
            // The tenant's bulk exports (7-day files that may list the subject): deleted
            // rather than rewritten; the team can export again.
            if let JobScope::Tenant { tenant_id } = &job.scope {
                let n =
                    shared_core::s3::delete_prefix(s3, bucket, &tenant_exports_prefix(tenant_id))
                        .await?;
                add(&mut outcome.counts, "tenant_bulk_export_object", n as u64);
            }
            // The tenant's connected systems told to erase too: its enabled endpoints that want
            // `lead.erased` (the stream delivers the event once the lead's removal is read; ids
            // and hosts only, never a URL's path or query).
            let mut notified = vec![];
            if let JobScope::Tenant { tenant_id } = &job.scope {
                if outcome.counts.get("lead").copied().unwrap_or(0) > 0 {
                    let endpoints = shared_outbound::dynamo::endpoints(
                        self.store.client(),
                        &self.store.tables().tenants,
                        tenant_id,
                    )
                    .await?;
                    for ep in endpoints
                        .iter()
                        .filter(|e| e.wants(shared_outbound::events::EventType::LeadErased))
                    {
                        let host = shared_outbound::address::parse_url(
                            &ep.url,
                            &shared_outbound::address::LocalSinks {
                                loopback_http_ports: vec![],
                            },
                        )
                        .map(|u| u.host)
                        .unwrap_or_else(|_| ep.url.split('/').nth(2).unwrap_or("").to_string());
                        notified.push(json!({ "webhook_id": ep.id, "host": host }));
                    }
                }
            }
            let key = format!("dsar/certificates/{}.json", job.request_id);
            let certificate = json!({
                "connected_systems_notified": {
                    "event": "lead.erased",
                    "endpoints": notified,
                    "note": "each endpoint receives a signed lead.erased event for every erased lead, retried for 24 hours",
                },
                "certificate": "erasure completed",
                "request_id": job.request_id,
                "scope": job.scope,
                "subject": subject_identity(subject),
                "started_at": cp.started_at,
                "completed_at": rfc3339(self.clock.now()),
                "erased": outcome.counts,
                "kept": outcome.kept,
                "suppression": match job.scope {
                    JobScope::Tenant { .. } if subject.by_phone => "a keyed hash of the phone the tenant attested is on the tenant's suppression list, so the person is not re-collected or re-imported by that phone",
                    JobScope::Tenant { .. } => "a keyed hash of the email (and phone) is on the tenant's suppression list, so the person is not re-collected or re-imported",
                    JobScope::Account => "none: the account is gone; a new sign-up would be a new account",
                },
            });
            self.exports
                .put_json(&key, serde_json::to_vec_pretty(&certificate)?)
                .await?;
            outcome.certificate_key = Some(key);
        }
        Ok(outcome)
    }

    async fn deliver(
        &self,
        job: &DsarJob,
        subject: &Subject,
        outcome: &JobOutcome,
    ) -> anyhow::Result<()> {
        let hours = self.settings.link_ttl.as_secs() / 3600;
        let mut links = Vec::new();
        for key in outcome
            .export_keys
            .iter()
            .chain(outcome.certificate_key.iter())
        {
            let name = key.rsplit('/').next().unwrap_or(key).to_string();
            links.push((name, self.download_link(job, DownloadBucket::Exports, key)));
        }
        let (subject_line, intro) = match &job.kind {
            JobKind::Access => ("Your data: access request completed", "The copy of your personal data, with the facts about its processing, is ready."),
            JobKind::Portability => ("Your data: portability request completed", "The data you provided is ready in JSON and CSV."),
            JobKind::Erasure { .. } => ("Your data: erasure completed", "Your personal data has been erased. The certificate lists what was erased, what was kept and why."),
            JobKind::Rectification { .. } => ("Your data: rectification completed", "The fields you named have been corrected everywhere they are stored."),
            JobKind::Restriction => ("Your data: restriction in place", "Processing of your data is restricted: it stays stored, and is excluded from marketing, edits and exports."),
            JobKind::LiftRestriction => ("Your data: restriction lifted", "The restriction of processing of your data has been lifted, as announced to you."),
            JobKind::Objection { .. } => ("Your data: objection recorded", "Your objection is recorded; marketing to you has stopped."),
            JobKind::ConsentWithdrawal => ("Your data: consent withdrawn", "Your consent is withdrawn and recorded; marketing to you has stopped. Processing before the withdrawal remains lawful."),
        };
        let mut text = format!("{intro}\n\nRequest: {}\n", job.request_id);
        let mut html = format!(
            "<p>{}</p><p>Request: {}</p>",
            escape_html(intro),
            escape_html(&job.request_id)
        );
        if !links.is_empty() {
            text.push_str(&format!(
                "\nDownload (the links expire in {hours} hours):\n"
            ));
            html.push_str(&format!(
                "<p>Download (the links expire in {hours} hours):</p><ul>"
            ));
            for (name, url) in &links {
                text.push_str(&format!("{name}: {url}\n"));
                html.push_str(&format!(
                    "<li><a href=\"{}\">{}</a></li>",
                    escape_html(url),
                    escape_html(name)
                ));
            }
            html.push_str("</ul>");
        }
        if !outcome.kept.is_empty() {
            text.push_str("\nKept, and why:\n");
            html.push_str("<p>Kept, and why:</p><ul>");
            for k in &outcome.kept {
                let until = k.retain_until.as_deref().unwrap_or("-");
                text.push_str(&format!(
                    "- {} ({}): {} (until {until})\n",
                    k.what, k.count, k.legal_basis
                ));
                html.push_str(&format!(
                    "<li>{} ({}): {} (until {})</li>",
                    escape_html(&k.what),
                    k.count,
                    escape_html(&k.legal_basis),
                    escape_html(until)
                ));
            }
            html.push_str("</ul>");
        }
        text.push_str(&format!("\n{}\n", super::facts::COMPLAINT));
        html.push_str(&format!("<p>{}</p>", escape_html(super::facts::COMPLAINT)));
        let Some(to) = &subject.email else {
            // A lift after its request closed: the subject was told before, by the lifecycle.
            return Ok(());
        };
        self.mailer
            .send(&OutgoingEmail {
                to: to.as_str().to_string(),
                subject: subject_line.to_string(),
                text,
                html,
                headers: vec![],
            })
            .await
            .context("emailing the subject")
    }
}

/// How an erasure certificate names its subject: a blind index, never the contact itself. The
/// replay after a restore (`infra`'s `replay-erasures`) reads it back.
fn subject_identity(subject: &Subject) -> serde_json::Value {
    if subject.by_phone {
        json!({ "phone_blind_index": subject.bidx })
    } else {
        json!({ "email_blind_index": subject.bidx })
    }
}

fn is_permanent(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Rejected>().is_some() || e.downcast_ref::<Undeclared>().is_some()
}

fn add(counts: &mut BTreeMap<String, u64>, k: &str, n: u64) {
    if n > 0 {
        *counts.entry(k.to_string()).or_default() += n;
    }
}

/// The export documents of a job kind.
fn docs(kind: &JobKind) -> &'static [DocKind] {
    match kind {
        JobKind::Access => &[DocKind::Access],
        JobKind::Portability => &[DocKind::ProvidedJson, DocKind::ProvidedCsv],
        _ => &[],
    }
}

fn target_doc(t: &Target) -> Option<usize> {
    match t {
        Target::Lead { doc, .. }
        | Target::Suppression { doc }
        | Target::Quarantine { doc }
        | Target::User { doc, .. }
        | Target::Billing { doc, .. } => *doc,
        Target::FinishDoc { doc } => Some(*doc),
    }
}

pub fn kind_name(k: &JobKind) -> &'static str {
    match k {
        JobKind::Access => "access",
        JobKind::Portability => "portability",
        JobKind::Erasure { .. } => "erasure",
        JobKind::Rectification { .. } => "rectification",
        JobKind::Restriction => "restriction",
        JobKind::LiftRestriction => "lift_restriction",
        JobKind::Objection { .. } => "objection",
        JobKind::ConsentWithdrawal => "consent_withdrawal",
    }
}

/// Where a subject's DSAR exports go in the exports bucket: under the scope and the email's
/// blind index (never the email), so an erasure finds every earlier export of the subject.
pub fn subject_prefix(scope: &JobScope, bidx: &str) -> String {
    match scope {
        JobScope::Tenant { tenant_id } => format!("dsar/tenants/{tenant_id}/{bidx}/"),
        JobScope::Account => format!("dsar/account/{bidx}/"),
    }
}

/// The tenant's bulk exports (lead-transfers), `exports/<tenant>/`.
pub fn tenant_exports_prefix(t: &TenantId) -> String {
    let any = keys::export_object(
        t,
        &shared_leads::transfers::ExportId::parse("x").expect("id"),
        "csv",
    );
    let cut = any.rfind('/').map_or(0, |i| i + 1);
    any[..cut].to_string()
}
