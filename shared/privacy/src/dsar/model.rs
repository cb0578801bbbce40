//! The request records of the lifecycle: what the subject filed (one [`SubjectRequest`]) and
//! each controller's part of it (one [`ControllerPart`] per tenant holding the subject's data, or
//! the platform for account data). See `docs/dsar.md` for the lifecycle diagram.

use std::collections::BTreeMap;

use time::{Date, OffsetDateTime};

use super::deadlines::Jurisdiction;
use super::job::{JobKind, JobScope};
use shared_core::domain::{TenantId, UserId};
use shared_core::error::AppError;

/// The seven request types of the privacy policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestType {
    Access,
    Rectification,
    Erasure,
    Restriction,
    Objection,
    Portability,
    ConsentWithdrawal,
}

impl RequestType {
    pub const ALL: [RequestType; 7] = [
        Self::Access,
        Self::Rectification,
        Self::Erasure,
        Self::Restriction,
        Self::Objection,
        Self::Portability,
        Self::ConsentWithdrawal,
    ];

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Rectification => "rectification",
            Self::Erasure => "erasure",
            Self::Restriction => "restriction",
            Self::Objection => "objection",
            Self::Portability => "portability",
            Self::ConsentWithdrawal => "consent_withdrawal",
        }
    }

    /// Words for the emails to the subject.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Access => "access to your personal data",
            Self::Rectification => "correction of your personal data",
            Self::Erasure => "erasure of your personal data",
            Self::Restriction => "restriction of the processing of your personal data",
            Self::Objection => "objection to the processing of your personal data",
            Self::Portability => "a portable copy of your personal data",
            Self::ConsentWithdrawal => "withdrawal of your consent",
        }
    }
}

/// What the subject asked for beyond the type, validated for the type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Details {
    #[default]
    None,
    /// Rectification: field name → corrected value.
    Corrections(BTreeMap<String, String>),
    /// Objection: to direct marketing only (absolute), or to all legitimate-interest processing.
    Objection { marketing_only: bool },
}

/// Fields a rectification may correct (the lead's and the account's contact fields).
pub const RECTIFIABLE_FIELDS: [&str; 4] = ["name", "email", "phone", "company"];
const MAX_CORRECTION_LEN: usize = 500;

impl Details {
    /// Validates the `details` of a filed request for its type. Messages never echo values.
    pub fn parse(t: RequestType, raw: Option<&serde_json::Value>) -> Result<Self, AppError> {
        let bad = |m: &str| AppError::validation("invalid_details", m.to_string());
        match (t, raw) {
            (RequestType::Rectification, Some(serde_json::Value::Object(map))) => {
                let mut out = BTreeMap::new();
                for (k, v) in map {
                    if !RECTIFIABLE_FIELDS.contains(&k.as_str()) {
                        return Err(bad(
                            "details may correct only name, email, phone and company.",
                        ));
                    }
                    let v = v
                        .as_str()
                        .map(str::trim)
                        .filter(|v| !v.is_empty() && v.chars().count() <= MAX_CORRECTION_LEN)
                        .ok_or_else(|| {
                            bad("each correction is a non-empty string of at most 500 characters.")
                        })?;
                    out.insert(k.clone(), v.to_string());
                }
                if out.is_empty() {
                    return Err(bad("details must name at least one correction."));
                }
                Ok(Self::Corrections(out))
            }
            (RequestType::Rectification, _) => Err(bad(
                "a rectification needs details: an object of field corrections.",
            )),
            (RequestType::Objection, None) => Ok(Self::Objection {
                marketing_only: true,
            }),
            (RequestType::Objection, Some(serde_json::Value::Object(map))) => {
                match (map.len(), map.get("processing").and_then(|v| v.as_str())) {
                    (1, Some("marketing")) => Ok(Self::Objection {
                        marketing_only: true,
                    }),
                    (1, Some("legitimate_interest")) => Ok(Self::Objection {
                        marketing_only: false,
                    }),
                    _ => Err(bad(
                        "an objection's details are {\"processing\": \"marketing\" | \"legitimate_interest\"}.",
                    )),
                }
            }
            (_, None) | (_, Some(serde_json::Value::Null)) => Ok(Self::None),
            _ => Err(bad("this request type takes no details.")),
        }
    }

    /// Stored form (JSON), or `None` when there is nothing to store.
    pub fn to_stored(&self) -> Option<String> {
        match self {
            Self::None => None,
            Self::Corrections(m) => Some(serde_json::json!({ "corrections": m }).to_string()),
            Self::Objection { marketing_only } => {
                Some(serde_json::json!({ "marketing_only": marketing_only }).to_string())
            }
        }
    }

    pub fn from_stored(t: RequestType, raw: Option<&str>) -> Self {
        let v: Option<serde_json::Value> = raw.and_then(|r| serde_json::from_str(r).ok());
        match (t, v) {
            (RequestType::Rectification, Some(v)) => Self::Corrections(
                v.get("corrections")
                    .and_then(|c| serde_json::from_value(c.clone()).ok())
                    .unwrap_or_default(),
            ),
            (RequestType::Objection, v) => Self::Objection {
                marketing_only: v
                    .and_then(|v| v.get("marketing_only").and_then(|b| b.as_bool()))
                    .unwrap_or(true),
            },
            _ => Self::None,
        }
    }

    /// The worker's job kind for a request of type `t` with these details.
    pub fn job_kind(&self, t: RequestType) -> JobKind {
        match t {
            RequestType::Access => JobKind::Access,
            RequestType::Portability => JobKind::Portability,
            RequestType::Erasure => JobKind::Erasure {
                suppress_phone: false,
            },
            RequestType::Restriction => JobKind::Restriction,
            RequestType::ConsentWithdrawal => JobKind::ConsentWithdrawal,
            RequestType::Rectification => JobKind::Rectification {
                changes: match self {
                    Self::Corrections(m) => m.clone(),
                    _ => BTreeMap::new(),
                },
            },
            RequestType::Objection => JobKind::Objection {
                marketing_only: !matches!(
                    self,
                    Self::Objection {
                        marketing_only: false
                    }
                ),
            },
        }
    }
}

/// Statuses of a request and of its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Filed; the code emailed to the address has not been entered yet.
    IdentityUnverified,
    /// The code was entered (parent request: routed to its controllers).
    Verified,
    /// A controller's part waiting for its decision.
    AwaitingController,
    Approved,
    Denied,
    InProgress,
    Completed,
    Failed,
    /// Verification failed (too many wrong codes, or the code lapsed): re-file.
    Expired,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Self::IdentityUnverified,
        Self::Verified,
        Self::AwaitingController,
        Self::Approved,
        Self::Denied,
        Self::InProgress,
        Self::Completed,
        Self::Failed,
        Self::Expired,
    ];

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::IdentityUnverified => "identity_unverified",
            Self::Verified => "verified",
            Self::AwaitingController => "awaiting_controller",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    /// A part in one of these is answered: it leaves the queue and its record's clock starts.
    pub const fn is_closed(self) -> bool {
        matches!(self, Self::Completed | Self::Denied | Self::Expired)
    }
}

/// Who decides a part: the tenant (its lead data) or the platform (account data).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Controller {
    Tenant(TenantId),
    Platform,
}

impl Controller {
    /// Stored form: `tenant:<id>` or `platform`.
    pub fn to_stored(&self) -> String {
        match self {
            Self::Tenant(t) => format!("tenant:{t}"),
            Self::Platform => "platform".to_string(),
        }
    }

    pub fn from_stored(raw: &str) -> Option<Self> {
        match raw.strip_prefix("tenant:") {
            Some(t) => TenantId::parse(t).ok().map(Self::Tenant),
            None if raw == "platform" => Some(Self::Platform),
            None => None,
        }
    }

    pub fn job_scope(&self) -> JobScope {
        match self {
            Self::Tenant(t) => JobScope::Tenant {
                tenant_id: t.clone(),
            },
            Self::Platform => JobScope::Account,
        }
    }

    pub fn of_scope(scope: &JobScope) -> Self {
        match scope {
            JobScope::Tenant { tenant_id } => Self::Tenant(tenant_id.clone()),
            JobScope::Account => Self::Platform,
        }
    }
}

/// Who a subject's request is addressed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A named tenant (from a form id, a tenant id, or the controller filing on behalf).
    Tenant(TenantId),
    /// The platform's own account data.
    Account,
    /// No tenant named: every tenant holding the email (found through the blind index).
    AnyTenant,
}

impl Target {
    pub fn to_stored(&self) -> String {
        match self {
            Self::Tenant(t) => format!("tenant:{t}"),
            Self::Account => "account".to_string(),
            Self::AnyTenant => "any_tenant".to_string(),
        }
    }

    pub fn from_stored(raw: &str) -> Option<Self> {
        match raw {
            "account" => Some(Self::Account),
            "any_tenant" => Some(Self::AnyTenant),
            _ => raw
                .strip_prefix("tenant:")
                .and_then(|t| TenantId::parse(t).ok())
                .map(Self::Tenant),
        }
    }
}

/// Who did a step: ids only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Subject,
    User(UserId),
    Platform,
    Worker,
    Scheduler,
}

impl Actor {
    pub fn to_stored(&self) -> String {
        match self {
            Self::Subject => "subject".into(),
            Self::User(u) => format!("user:{u}"),
            Self::Platform => "platform".into(),
            Self::Worker => "worker".into(),
            Self::Scheduler => "scheduler".into(),
        }
    }
}

/// One step of the append-only history of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at: OffsetDateTime,
    /// What happened (`filed`, `code_failed`, `verified`, `routed`, `approved`, `denied`,
    /// `extended`, `dispatched`, `started`, `completed`, `failed`, `restriction_lift_notified`, ...).
    pub event: String,
    /// The status after the step.
    pub status: Status,
    /// `subject`, `user:<id>`, `platform`, `worker`, `scheduler`.
    pub actor: String,
}

impl HistoryEntry {
    pub fn new(at: OffsetDateTime, event: &str, status: Status, actor: &Actor) -> Self {
        Self {
            at,
            event: event.to_string(),
            status,
            actor: actor.to_stored(),
        }
    }
}

/// How a controller filing on a subject's behalf verified the subject's identity, when it
/// attests it (otherwise the subject confirms with the emailed code, the safe default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attestation {
    InPerson,
    SignedDocument,
    ExistingRelationship,
}

impl Attestation {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "in_person" => Some(Self::InPerson),
            "signed_document" => Some(Self::SignedDocument),
            "existing_relationship" => Some(Self::ExistingRelationship),
            _ => None,
        }
    }
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InPerson => "in_person",
            Self::SignedDocument => "signed_document",
            Self::ExistingRelationship => "existing_relationship",
        }
    }
}

/// What the subject filed: one record whatever the number of controllers. Holds the email in
/// clear only while open (the answers go to it); the blind index stays as the record's key to
/// the person.
#[derive(Debug, Clone)]
pub struct SubjectRequest {
    pub request_id: String,
    pub request_type: RequestType,
    pub target: Target,
    pub jurisdiction: Jurisdiction,
    pub status: Status,
    /// Lower-cased, while open; `None` once closed or dead.
    pub email: Option<String>,
    pub email_bidx: String,
    /// A request a tenant filed for a person it knows by phone only (attested identity): the
    /// subject is the person of this phone's blind index; `email` is then the filing user's
    /// address, where the answers go for the tenant to hand over.
    pub subject_phone_bidx: Option<String>,
    pub details: Details,
    /// Keyed hash of the 6-digit code, while unverified.
    pub code_hash: Option<String>,
    pub attempts: u32,
    pub code_expires_at: Option<OffsetDateTime>,
    /// `subject` or `user:<id>` (a controller filing on behalf).
    pub filed_by: String,
    pub attestation: Option<Attestation>,
    pub created_at: OffsetDateTime,
    pub verified_at: Option<OffsetDateTime>,
    pub closed_at: Option<OffsetDateTime>,
    /// The controllers it was routed to.
    pub parts: Vec<Controller>,
    /// Parts not yet closed (a restriction stays open while it is in force).
    pub open_parts: u32,
    pub history: Vec<HistoryEntry>,
}

/// One controller's part of a request: what it decides and answers for.
#[derive(Debug, Clone)]
pub struct ControllerPart {
    pub request_id: String,
    pub controller: Controller,
    pub request_type: RequestType,
    pub jurisdiction: Jurisdiction,
    pub status: Status,
    pub email_bidx: String,
    /// The verified request's receipt: the deadline clock's start.
    pub received_at: OffsetDateTime,
    pub due: Date,
    /// The latest date an extension may set (the legal limit).
    pub extended_due_limit: Date,
    pub acknowledge_by: Option<Date>,
    pub acknowledged_at: Option<OffsetDateTime>,
    pub extended_at: Option<OffsetDateTime>,
    pub extension_reason: Option<String>,
    pub denial_reason: Option<String>,
    /// The worker's outcome (JSON of `JobOutcome`), once completed.
    pub outcome: Option<String>,
    pub failure: Option<String>,
    pub restriction_lifted_at: Option<OffsetDateTime>,
    /// An objection to legitimate-interest processing the tenant refused: the compelling
    /// legitimate grounds it recorded (GDPR Art. 21(1)), as told to the subject.
    pub compelling_grounds: Option<String>,
    pub created_at: OffsetDateTime,
    pub closed_at: Option<OffsetDateTime>,
    pub history: Vec<HistoryEntry>,
}

impl ControllerPart {
    /// Still to be answered: in the controller's queue and the deadline digest.
    pub fn is_open(&self) -> bool {
        !self.status.is_closed()
    }
}
