//! What an approved data-subject request asks the worker to do, and how the worker reports back.
//!
//! The request lifecycle (`dsar` function) owns the request record; the worker (`dsar-worker`)
//! owns the execution and its checkpoint. They meet here: the lifecycle hands a [`DsarJob`] to a
//! [`JobDispatcher`]; the worker reports through [`RequestProgress`], which the lifecycle's
//! store implements (status `in_progress`, then `completed` with the [`JobOutcome`], or `failed`).

use std::collections::BTreeMap;
use std::future::Future;

use serde::{Deserialize, Serialize};

use shared_core::domain::TenantId;
use shared_core::error::AppError;

/// Whose data the request is about: a tenant's lead data (the tenant is the controller and has
/// approved), or the platform's own account data (the platform is the controller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum JobScope {
    Tenant {
        #[serde(with = "tenant_id_field")]
        tenant_id: TenantId,
    },
    Account,
}

/// The seven request types, with what each needs to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobKind {
    /// Every personal attribute in every category, plus the Art 15 facts (JSON).
    Access,
    /// The data the subject provided, JSON and CSV.
    Portability,
    /// Everything erased but what law requires to keep (billing), which is restricted, and what
    /// a legal hold keeps; a hashed suppression entry of the email the subject proved (and of
    /// the lead's phone only when the controller chose so: `suppress_phone`, because an
    /// unverified phone may be someone else's); a completion certificate.
    Erasure {
        #[serde(default)]
        suppress_phone: bool,
    },
    /// The named fields corrected everywhere they are stored, with an audit trail.
    /// Keys are field names (`name`, `email`, `phone`, `company`, ...), values the corrections.
    /// Never in the invocation payload (a payload that fails every retry rests in the failure
    /// queue): the worker reads them from the open request ([`RequestProgress::subject`]).
    Rectification {
        #[serde(skip_serializing, default)]
        changes: BTreeMap<String, String>,
    },
    /// Flag the records read-only, excluded from marketing and exports.
    Restriction,
    /// Lift a restriction (the subject has been told before, by the lifecycle).
    LiftRestriction,
    /// To direct marketing (`marketing_only`: absolute) or to all legitimate-interest processing.
    Objection { marketing_only: bool },
    /// Withdraw consent: the consent records are updated, marketing stops at once.
    ConsentWithdrawal,
}

/// One approved request, as the worker needs it. Serialized as the worker's invocation payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DsarJob {
    pub request_id: String,
    #[serde(flatten)]
    pub scope: JobScope,
    pub kind: JobKind,
    /// The subject's email, as verified (lower-cased). The worker finds the subject's records
    /// through its blind index and sends the answer to it; never logged. Never in the
    /// invocation payload, which carries ids only (a payload that fails every retry rests in
    /// the failure queue for 14 days): the worker reads the email from the request record
    /// ([`RequestProgress::subject`]); empty until then.
    #[serde(skip_serializing, default)]
    pub subject_email: String,
}

impl DsarJob {
    /// The job's own checkpoint id: one request is several jobs (a part per controller; a
    /// restriction and later its lift), and each must run, so the checkpoint of one completed
    /// never makes another a no-op. `<request id>#<scope>#<kind>`; ids only.
    pub fn checkpoint_id(&self) -> String {
        let scope = match &self.scope {
            JobScope::Tenant { tenant_id } => format!("tenant:{tenant_id}"),
            JobScope::Account => "account".to_string(),
        };
        format!(
            "{}#{scope}#{}",
            self.request_id,
            super::worker::kind_name(&self.kind)
        )
    }
}

/// What the worker reads of the request record when its payload names only the request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobSubject {
    /// The verified email, while the request is open (removed when it closes).
    pub email: Option<String>,
    /// The email's blind index, kept for the record's life.
    pub email_bidx: String,
    /// A request a tenant filed by phone (attested identity): the subject is the person of
    /// this phone's blind index, and `email` is where the answers go (the filing user's).
    pub phone_bidx: Option<String>,
    /// A rectification's corrections (empty for other types), while the request is open.
    pub corrections: BTreeMap<String, String>,
}

/// What the worker did, for the request record, the answer to the subject and the certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOutcome {
    /// Items and objects touched, by kind (`lead`, `submission`, `note`, `attachment`, ...).
    pub counts: BTreeMap<String, u64>,
    /// What was kept and why (billing records: legal basis).
    pub kept: Vec<KeptRecord>,
    /// S3 keys of the delivered export (access, portability), in the exports bucket.
    pub export_keys: Vec<String>,
    /// S3 key of the completion certificate (erasure), in the exports bucket.
    pub certificate_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptRecord {
    pub what: String,
    pub count: u64,
    pub legal_basis: String,
    pub retain_until: Option<String>,
}

/// Hands an approved request to the worker (in production: an asynchronous Lambda invocation).
pub trait JobDispatcher: Send + Sync {
    fn dispatch(&self, job: &DsarJob) -> impl Future<Output = Result<(), AppError>> + Send;
}

/// The worker's reports on a request; the request store implements it.
pub trait RequestProgress: Send + Sync {
    fn started(&self, job: &DsarJob) -> impl Future<Output = Result<(), AppError>> + Send;
    fn completed(
        &self,
        job: &DsarJob,
        outcome: &JobOutcome,
    ) -> impl Future<Output = Result<(), AppError>> + Send;
    fn failed(
        &self,
        job: &DsarJob,
        reason: &str,
    ) -> impl Future<Output = Result<(), AppError>> + Send;
    /// The subject of the request, from its record (`None`: no such request). The lifecycle's
    /// store implements it; fakes that hand the worker complete jobs need not.
    fn subject(
        &self,
        request_id: &str,
    ) -> impl Future<Output = Result<Option<JobSubject>, AppError>> + Send {
        let _ = request_id;
        async { Ok(None) }
    }
}

/// The job payload is our own (the lifecycle writes it, the worker reads it), so a tenant id in
/// it is as trusted as a stored record's; still parsed, never taken as a raw string.
mod tenant_id_field {
    use serde::{Deserialize, Deserializer, Serializer};

    use shared_core::domain::TenantId;

    pub fn serialize<S: Serializer>(t: &TenantId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TenantId, D::Error> {
        let raw = String::deserialize(d)?;
        TenantId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// One unit of work of a job. `doc`: which export document it writes (exports only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Target {
    Lead {
        lead: String,
        doc: Option<usize>,
    },
    Suppression {
        doc: Option<usize>,
    },
    /// The subject's quarantined submissions in the tenant (spam defence, ops table).
    Quarantine {
        doc: Option<usize>,
    },
    User {
        tenant: String,
        user: String,
        doc: Option<usize>,
    },
    Billing {
        tenant: String,
        doc: Option<usize>,
    },
    /// Close export document `doc` (its last part, CompleteMultipartUpload).
    FinishDoc {
        doc: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_round_trips_as_its_invocation_payload() {
        let job = DsarJob {
            request_id: "dsr_01".into(),
            scope: JobScope::Tenant {
                tenant_id: TenantId::parse("t1").unwrap(),
            },
            kind: JobKind::Rectification {
                changes: BTreeMap::from([("name".to_string(), "Ana".to_string())]),
            },
            subject_email: "ana@example.com".into(),
        };
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["scope"], "tenant");
        assert_eq!(json["tenant_id"], "t1");
        assert_eq!(json["kind"]["type"], "rectification");
        // Ids only: neither the subject's email nor a correction value travels.
        let raw = json.to_string();
        assert!(
            !raw.contains("ana@example.com") && !raw.contains("Ana"),
            "{raw}"
        );
        let back: DsarJob = serde_json::from_value(json).unwrap();
        assert_eq!(back.request_id, job.request_id);
        assert_eq!(back.scope, job.scope);
        assert_eq!(back.subject_email, "");
        assert_eq!(
            back.kind,
            JobKind::Rectification {
                changes: BTreeMap::new()
            }
        );
        let bad = serde_json::json!({"request_id":"x","scope":"tenant","tenant_id":"T#1",
            "kind":{"type":"access"},"subject_email":"a@b.c"});
        assert!(serde_json::from_value::<DsarJob>(bad).is_err());
    }
}
