//! The execution checkpoint of one job (ops table, `DSARJOB#<request id>#<scope>#<kind>` /
//! `CHECKPOINT`: a request is one job per controller part, and a restriction's lift is a job of
//! its own):
//! phase, cursor into the subject's targets, partial counts, open uploads. It holds ids and
//! counts only, never a personal value.
//!
//! A run holds a lease on it (`lease_id`, `lease_until`): a duplicate invocation that finds the
//! lease held by a live run stops at once; one that finds the job completed is a no-op. Every
//! save is conditioned on the lease, so a run that lost it (it ran past its lease) cannot
//! overwrite the progress of the run that took over.

use std::collections::BTreeMap;

use anyhow::Context;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValue;
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::export::UploadState;
use super::job::Target;
use super::job::{JobOutcome, KeptRecord};
use shared_core::dynamo::{n, s};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Nothing done yet: find the subject's targets.
    #[default]
    Plan,
    /// Working through the targets from `cursor`; after the last, the finish (erasure: earlier
    /// exports, the certificate) builds the outcome.
    Work,
    /// Outcome built: email the subject and report.
    Deliver,
    Completed,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub phase: Phase,
    /// What the job works through: the subject's leads, account, billing, export documents.
    pub targets: Vec<Target>,
    /// The next target to process.
    pub cursor: usize,
    /// Counts committed so far (only counts of fully processed targets).
    pub counts: BTreeMap<String, u64>,
    pub kept: Vec<KeptRecord>,
    /// Open multipart uploads of an export, with the parts already sent.
    pub uploads: Vec<UploadState>,
    pub outcome: Option<JobOutcome>,
    /// When the first run began (RFC 3339): the time of the job's audit entries, so a repeated
    /// step writes the same entry again instead of a second one.
    pub started_at: Option<String>,
    /// Invocations that worked on the job (continuations and retries).
    pub runs: u32,
}

impl Checkpoint {
    pub fn add(&mut self, counts: &BTreeMap<String, u64>) {
        for (k, v) in counts {
            *self.counts.entry(k.clone()).or_default() += v;
        }
    }
}

pub enum Claim {
    /// The lease is ours: go on from this checkpoint.
    Acquired(Checkpoint),
    /// The job is already completed: nothing to do.
    Completed(Checkpoint),
    /// Another run holds the lease.
    Busy,
}

#[derive(Debug, Clone)]
pub struct CheckpointStore {
    client: Client,
    table: String,
    /// How long the checkpoint item is kept after its last write (duplicates of an async
    /// invocation arrive within 6 hours; a completed job stays a no-op for this long).
    keep_days: i64,
}

fn key(request_id: &str) -> shared_core::keys::Key {
    shared_core::keys::dsar_checkpoint(request_id)
}

impl CheckpointStore {
    pub fn new(client: Client, ops_table: impl Into<String>, keep_days: i64) -> Self {
        Self {
            client,
            table: ops_table.into(),
            keep_days,
        }
    }

    /// Takes the lease for `lease_secs` unless a live run holds it.
    pub async fn claim(
        &self,
        request_id: &str,
        run_id: &str,
        now: OffsetDateTime,
        lease_secs: i64,
    ) -> anyhow::Result<Claim> {
        let k = key(request_id);
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&k.pk))
            .key("sk", s(&k.sk))
            .update_expression(
                "SET lease_id = :run, lease_until = :until, updated_at = :now, expires_at = :exp",
            )
            // `lease_id = :run`: this very claim, sent again by the SDK after its answer was
            // lost; without it the run would find itself holding the lease and stop as busy.
            .condition_expression(
                "attribute_not_exists(lease_until) OR lease_until < :epoch OR lease_id = :run",
            )
            .expression_attribute_values(":run", s(run_id))
            .expression_attribute_values(":until", n(now.unix_timestamp() + lease_secs))
            .expression_attribute_values(":epoch", n(now.unix_timestamp()))
            .expression_attribute_values(":now", s(shared_core::clock::rfc3339(now)))
            .expression_attribute_values(":exp", n(self.expiry(now)))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let attrs = match out {
            Ok(o) => o.attributes.unwrap_or_default(),
            Err(e) => match e.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(_) => {
                    // Held by a live run (a completed job gives its lease up, so this only
                    // finds one completed if it completed meanwhile).
                    return match self.load(request_id).await? {
                        Some(c) if c.phase == Phase::Completed => Ok(Claim::Completed(c)),
                        _ => Ok(Claim::Busy),
                    };
                }
                other => return Err(anyhow::Error::new(other).context("claim checkpoint")),
            },
        };
        let cp = match attrs.get("state").and_then(|v| v.as_s().ok()) {
            Some(raw) => serde_json::from_str(raw).context("checkpoint state")?,
            None => Checkpoint::default(),
        };
        if cp.phase == Phase::Completed {
            self.release(request_id, run_id).await?;
            return Ok(Claim::Completed(cp));
        }
        Ok(Claim::Acquired(cp))
    }

    pub async fn load(&self, request_id: &str) -> anyhow::Result<Option<Checkpoint>> {
        let k = key(request_id);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&k.pk))
            .key("sk", s(&k.sk))
            .consistent_read(true)
            .send()
            .await
            .context("GetItem checkpoint")?;
        match out
            .item
            .as_ref()
            .and_then(|i| i.get("state"))
            .and_then(|v| v.as_s().ok())
        {
            Some(raw) => Ok(Some(serde_json::from_str(raw).context("checkpoint state")?)),
            None => Ok(None),
        }
    }

    /// Saves progress, if the lease is still ours (an error otherwise: the run must stop).
    pub async fn save(
        &self,
        request_id: &str,
        run_id: &str,
        cp: &Checkpoint,
        now: OffsetDateTime,
    ) -> anyhow::Result<()> {
        let k = key(request_id);
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&k.pk))
            .key("sk", s(&k.sk))
            .update_expression("SET #state = :state, updated_at = :now, expires_at = :exp")
            .condition_expression("lease_id = :run")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", s(serde_json::to_string(cp)?))
            .expression_attribute_values(":run", s(run_id))
            .expression_attribute_values(":now", s(shared_core::clock::rfc3339(now)))
            .expression_attribute_values(":exp", n(self.expiry(now)))
            .send()
            .await
            .context("save checkpoint (lease lost?)")?;
        Ok(())
    }

    /// Gives the lease up (before a continuation is dispatched, and when completed).
    pub async fn release(&self, request_id: &str, run_id: &str) -> anyhow::Result<()> {
        let k = key(request_id);
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&k.pk))
            .key("sk", s(&k.sk))
            .update_expression("REMOVE lease_id, lease_until")
            .condition_expression("lease_id = :run")
            .expression_attribute_values(":run", s(run_id))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) => match e.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(_) => Ok(()),
                other => Err(anyhow::Error::new(other).context("release checkpoint")),
            },
        }
    }

    fn expiry(&self, now: OffsetDateTime) -> i64 {
        now.unix_timestamp() + self.keep_days * 86_400
    }
}
