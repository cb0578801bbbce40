//! The worker's reports applied to the request records ([`RequestProgress`]): `started` moves a
//! part to `in_progress`; `completed` stores the outcome, answers the subject and closes the
//! part (and the subject's request when it was the last open part); `failed` marks the part and
//! alerts the controller's owners and admins (the operator for account data).
//!
//! Every report is idempotent: a repeated report finds the part already moved and changes
//! nothing, sends nothing twice.

use std::sync::Arc;

use time::OffsetDateTime;

use super::emails;
use super::job::{DsarJob, JobKind, JobOutcome, JobSubject, RequestProgress};
use super::model::{Actor, Controller, HistoryEntry, RequestType, Status};
use super::store::{Closing, DsarStore, PartChange};
use super::tokens;
use shared_accounts::auth::permissions::Role;
use shared_accounts::dynamo::AccountStore;
use shared_core::blind_index::BlindIndexKey;
use shared_core::clock::Clock;
use shared_core::dynamo::s;
use shared_core::error::AppError;
use shared_mail::Mailer;

/// Where the lifecycle's links point and who hears about the platform's own requests.
#[derive(Debug, Clone)]
pub struct Links {
    /// The public API base URL (status links, unsubscribe links), no trailing slash.
    pub api_base_url: String,
    /// The operator address for account-data requests (the platform is their controller).
    pub operator_email: String,
}

impl Links {
    /// The platform's download route for one object of a request, valid until `expires_at`
    /// (unix seconds): see [`tokens::DownloadToken`].
    pub fn download_url(
        &self,
        key: &BlindIndexKey,
        request_id: &str,
        bucket: tokens::DownloadBucket,
        object_key: &str,
        expires_at: i64,
    ) -> String {
        let token = tokens::DownloadToken {
            request_id: request_id.to_string(),
            bucket,
            key: object_key.to_string(),
            expires_at,
        };
        format!(
            "{}/v1/privacy/downloads?t={}",
            self.api_base_url.trim_end_matches('/'),
            token.sign(key)
        )
    }

    pub fn status_url(&self, key: &BlindIndexKey, request_id: &str) -> String {
        format!(
            "{}/v1/privacy/requests/{request_id}/status?token={}",
            self.api_base_url.trim_end_matches('/'),
            tokens::status_token(key, request_id)
        )
    }
}

/// Sends an email, the address never logged: now `shared_mail::send`.
pub use shared_mail::send;

/// The addresses that hear about a controller's requests: a tenant's owners and admins, or the
/// operator for the platform's own.
pub async fn controller_recipients(
    accounts: &AccountStore,
    controller: &Controller,
    operator_email: &str,
) -> anyhow::Result<Vec<String>> {
    match controller {
        Controller::Platform => Ok(vec![operator_email.to_string()]),
        Controller::Tenant(t) => Ok(accounts
            .team(t)
            .await?
            .into_iter()
            .filter(|u| matches!(u.role, Role::Owner | Role::Admin))
            .map(|u| u.email.as_str().to_string())
            .collect()),
    }
}

/// The worker's reports, applied to the records.
pub struct Progress<M: Mailer> {
    pub store: DsarStore,
    pub accounts: AccountStore,
    pub mailer: M,
    pub key: BlindIndexKey,
    pub clock: Arc<dyn Clock>,
    pub links: Links,
}

/// Worker-reported failure reasons are stored short and only in ASCII words.
fn sanitize_reason(reason: &str) -> String {
    reason
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || " _-.:,()".contains(*c))
        .take(200)
        .collect()
}

impl<M: Mailer> Progress<M> {
    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    async fn status_of(&self, c: &Controller, id: &str) -> Result<Status, AppError> {
        Ok(self
            .store
            .part(c, id)
            .await?
            .ok_or(AppError::NotFound("request_not_found"))?
            .status)
    }

    /// Closes the subject's request when its last part closed.
    pub async fn close_if_done(&self, id: &str, at: OffsetDateTime) -> Result<(), AppError> {
        let entry = HistoryEntry::new(at, "closed", Status::Completed, &Actor::Platform);
        if self.store.close_request_if_done(id, &entry).await? {
            tracing::info!(request_id = %id, "privacy request closed");
        }
        Ok(())
    }
}

impl<M: Mailer> RequestProgress for Progress<M> {
    async fn subject(&self, request_id: &str) -> Result<Option<JobSubject>, AppError> {
        let Some(r) = self.store.request(request_id).await? else {
            return Ok(None);
        };
        let corrections = match r.details.job_kind(r.request_type) {
            JobKind::Rectification { changes } => changes,
            _ => Default::default(),
        };
        Ok(Some(JobSubject {
            email: r.email,
            email_bidx: r.email_bidx,
            phone_bidx: r.subject_phone_bidx,
            corrections,
        }))
    }

    async fn started(&self, job: &DsarJob) -> Result<(), AppError> {
        let c = Controller::of_scope(&job.scope);
        let entry = HistoryEntry::new(self.now(), "started", Status::InProgress, &Actor::Worker);
        let change = PartChange::new(
            &[Status::Approved, Status::Failed],
            Status::InProgress,
            entry,
        );
        if self.store.transition(&c, &job.request_id, &change).await? {
            tracing::info!(request_id = %job.request_id, "privacy request in progress");
            return Ok(());
        }
        match self.status_of(&c, &job.request_id).await? {
            Status::InProgress | Status::Completed => Ok(()),
            _ => Err(AppError::Conflict {
                code: "request_not_approved",
                message: "This request is not approved.",
            }),
        }
    }

    async fn completed(&self, job: &DsarJob, outcome: &JobOutcome) -> Result<(), AppError> {
        let c = Controller::of_scope(&job.scope);
        let now = self.now();
        let part = self
            .store
            .part(&c, &job.request_id)
            .await?
            .ok_or(AppError::NotFound("request_not_found"))?;
        let closing = if part.request_type == RequestType::Restriction {
            Closing::LeaveQueue
        } else {
            Closing::Full
        };
        let outcome_json = serde_json::to_string(outcome).map_err(anyhow::Error::new)?;
        let entry = HistoryEntry::new(now, "completed", Status::Completed, &Actor::Worker);
        let change = PartChange::new(
            &[Status::Approved, Status::InProgress, Status::Failed],
            Status::Completed,
            entry,
        )
        .set("outcome", s(outcome_json))
        .remove("failure")
        .closing(closing);
        if !self.store.transition(&c, &job.request_id, &change).await? {
            // Already completed: a repeated report changes nothing and emails nobody.
            return match part.status {
                Status::Completed => Ok(()),
                _ => Err(AppError::Conflict {
                    code: "request_not_approved",
                    message: "This request is not approved.",
                }),
            };
        }
        tracing::info!(request_id = %job.request_id, "privacy request completed");
        if let Some(r) = self.store.request(&job.request_id).await? {
            if let Some(to) = &r.email {
                let url = self.links.status_url(&self.key, &job.request_id);
                let _ = send(
                    &self.mailer,
                    &emails::completed(to, part.request_type, &job.request_id, outcome, &url),
                )
                .await;
            }
        }
        if closing == Closing::Full {
            self.close_if_done(&job.request_id, now).await?;
        }
        Ok(())
    }

    async fn failed(&self, job: &DsarJob, reason: &str) -> Result<(), AppError> {
        let c = Controller::of_scope(&job.scope);
        let entry = HistoryEntry::new(self.now(), "failed", Status::Failed, &Actor::Worker);
        let change = PartChange::new(
            &[Status::Approved, Status::InProgress],
            Status::Failed,
            entry,
        )
        .set("failure", s(sanitize_reason(reason)));
        if !self.store.transition(&c, &job.request_id, &change).await? {
            return Ok(());
        }
        tracing::warn!(request_id = %job.request_id, "privacy request failed");
        let t = self
            .store
            .part(&c, &job.request_id)
            .await?
            .map(|p| p.request_type)
            .unwrap_or(RequestType::Access);
        for to in controller_recipients(&self.accounts, &c, &self.links.operator_email).await? {
            let _ = send(&self.mailer, &emails::failed_alert(&to, &job.request_id, t)).await;
        }
        Ok(())
    }
}
