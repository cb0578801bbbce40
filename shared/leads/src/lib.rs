//! The lead workspace: what a tenant's team does with its leads (the CRM side). Domain types
//! only; the DynamoDB adapter is [`crate::dynamo::LeadsStore`], the routes are the `leads-api`
//! function's.
//!
//! Map:
//! - this module: leads as read (a list row, the full record with its submissions, notes, consent
//!   history, stage history and audit trail), the edits a team makes, notes, the pipeline.
//! - [`forms`]: forms as the team manages them (fields, special categories, versioned consent
//!   texts, origins; [`urls`] checks the origins and the redirect); [`embed`]: the HTML snippet
//!   that puts a form on a website.
//! - [`cursor`]: the signed, tenant-bound cursors of every list.
//!
//! Read models hold contact data in clear and are only ever serialized into a response: they do
//! not implement `Debug`, so none can reach a log line through `{:?}`.

pub mod dynamo;
pub mod intake;
pub mod ports;
pub mod quota_alerts;
pub mod transfers;

#[cfg(any(test, feature = "test-support"))]
pub mod fakes;

pub mod cursor;
pub mod embed;
pub mod forms;
mod pipeline;
pub mod routing;
pub mod spam;
pub mod urls;

pub use pipeline::{Pipeline, Stage, StageInput};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use shared_core::clock::rfc3339;
use shared_core::domain::{ConsentRecord, Email, FormId, LeadId, Phone, TenantId, UserId};
use shared_core::error::{AppError, FieldErrors};

/// Page sizes of every list: `limit` defaults to 50 and may not exceed 100.
pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 100;

/// A note's text, in characters.
pub const MAX_NOTE_CHARS: usize = 5000;

/// Where a Query resumes: the `LastEvaluatedKey` of the previous page. Every key attribute of
/// the tables this workspace reads is a string.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StartKey(pub BTreeMap<String, String>);

/// One page of a list and where the next one starts (`None`: this was the last).
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<StartKey>,
}

// ---------------------------------------------------------------- listing

/// The filters of a lead list. Stage and creation range are served by the index's key
/// condition; the form is a filter on what the Query read (so it reads more than it returns).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeadFilter {
    pub stage: Option<String>,
    pub form: Option<FormId>,
    /// Inclusive bounds on the creation time (second precision, UTC).
    pub created_from: Option<OffsetDateTime>,
    pub created_to: Option<OffsetDateTime>,
}

impl LeadFilter {
    /// What a cursor of this list is bound to: a cursor is only valid with the same filters.
    pub fn scope(&self) -> String {
        format!(
            "leads|stage={}|form={}|from={}|to={}",
            self.stage.as_deref().unwrap_or(""),
            self.form.as_ref().map(FormId::as_str).unwrap_or(""),
            self.created_from.map(rfc3339).unwrap_or_default(),
            self.created_to.map(rfc3339).unwrap_or_default(),
        )
    }

    /// Whether a lead passes every filter (for leads found another way: by email).
    pub fn matches(&self, l: &LeadSummary) -> bool {
        self.stage.as_ref().is_none_or(|s| *s == l.stage)
            && self
                .form
                .as_ref()
                .is_none_or(|f| l.source_form_id.as_deref() == Some(f.as_str()))
            && self.created_from.is_none_or(|t| l.created_at >= rfc3339(t))
            && self.created_to.is_none_or(|t| l.created_at <= rfc3339(t))
    }
}

// ---------------------------------------------------------------- leads as read

/// A lead as a list shows it: what the `by_tenant` and `by_stage` indexes project.
#[derive(Clone, Serialize)]
pub struct LeadSummary {
    #[serde(rename = "id")]
    pub lead_id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub company: Option<String>,
    pub stage: String,
    pub owner_user_id: Option<String>,
    pub source_form_id: Option<String>,
    /// A data-subject restriction is in force: the lead is read-only.
    pub restricted: bool,
    /// The person withdrew marketing consent or objected to direct marketing (GDPR Art. 7(3),
    /// 21(3)): in force from the moment their request was verified, with no action of the team.
    pub marketing_opt_out: bool,
    pub created_at: String,
}

/// The lead item itself: the summary plus its bookkeeping.
#[derive(Clone, Serialize)]
pub struct Lead {
    #[serde(flatten)]
    pub summary: LeadSummary,
    /// Optimistic concurrency: an edit names the version it was made on.
    pub version: i64,
    pub updated_at: Option<String>,
    pub last_submission_at: Option<String>,
    pub submission_count: i64,
    /// A legal hold is in force: nothing of the lead may be edited, removed or erased until the
    /// operators clear it (adding notes and attachments stays possible).
    pub legal_hold: bool,
}

/// A submission as the team sees it: answers, consents, and the technical data while retention
/// still keeps it.
#[derive(Clone, Serialize)]
pub struct SubmissionView {
    #[serde(rename = "id")]
    pub submission_id: String,
    pub form_id: String,
    pub received_at: String,
    pub answers: BTreeMap<String, String>,
    pub consents: Vec<ConsentView>,
    /// `None` once retention removed it (default 90 days).
    pub technical: Option<TechnicalView>,
}

/// A consent of a submission as it stands now: what was given (kept as proof) and, once the
/// person withdrew it, when and how.
#[derive(Clone, Serialize)]
pub struct ConsentView {
    #[serde(flatten)]
    pub given: ConsentRecord,
    pub withdrawn_at: Option<String>,
    pub withdrawal_source: Option<String>,
}

#[derive(Clone, Serialize)]
pub struct TechnicalView {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub referrer: Option<String>,
    pub page_url: Option<String>,
}

/// One consent given or refused, from a submission: the proof of what the person agreed to,
/// under which version of the text (the text itself is on the form's consent history).
#[derive(Clone, Serialize)]
pub struct ConsentEvent {
    pub submission_id: String,
    pub form_id: String,
    pub at: String,
    pub key: String,
    pub version: String,
    pub granted: bool,
    /// When the person withdrew it, and how (`None`: in force as given).
    pub withdrawn_at: Option<String>,
    pub withdrawal_source: Option<String>,
}

/// A note a team member wrote on a lead (CRM content).
#[derive(Clone, Serialize)]
pub struct Note {
    #[serde(rename = "id")]
    pub note_id: String,
    pub text: String,
    pub author_user_id: String,
    pub created_at: String,
}

/// A move of a lead between pipeline stages: who, from, to, when.
#[derive(Clone, Serialize)]
pub struct StageChange {
    #[serde(rename = "id")]
    pub change_id: String,
    pub from: String,
    pub to: String,
    pub actor_user_id: String,
    pub at: String,
}

/// Who changed what on a lead. Holds the names of the fields changed, never their values, so
/// the trail is no second copy of the personal data.
#[derive(Clone, Serialize)]
pub struct AuditEntry {
    #[serde(rename = "id")]
    pub entry_id: String,
    pub action: String,
    pub fields: Vec<String>,
    /// `None` when the platform acted (a data-subject request), not a team member.
    pub actor_user_id: Option<String>,
    /// The API key the actor's request was made with (its public id, never the key), if one.
    pub api_key_id: Option<String>,
    pub at: String,
}

/// Audit actions.
pub mod actions {
    pub const LEAD_UPDATED: &str = "lead.updated";
    pub const NOTE_ADDED: &str = "note.added";
    pub const NOTE_DELETED: &str = "note.deleted";
    pub const LEAD_RESTRICTED: &str = "lead.restricted";
    pub const LEAD_UNRESTRICTED: &str = "lead.unrestricted";
}

/// Everything under a lead's partition, read with one Query.
#[derive(Clone, Serialize)]
pub struct LeadDetail {
    #[serde(flatten)]
    pub lead: Lead,
    pub submissions: Vec<SubmissionView>,
    pub notes: Vec<Note>,
    pub consent_history: Vec<ConsentEvent>,
    pub stage_history: Vec<StageChange>,
    pub audit: Vec<AuditEntry>,
}

impl LeadDetail {
    /// Consents of every submission, oldest first.
    pub fn consent_events(submissions: &[SubmissionView]) -> Vec<ConsentEvent> {
        submissions
            .iter()
            .flat_map(|s| {
                s.consents.iter().map(|c| ConsentEvent {
                    submission_id: s.submission_id.clone(),
                    form_id: s.form_id.clone(),
                    at: s.received_at.clone(),
                    key: c.given.key.clone(),
                    version: c.given.version.clone(),
                    granted: c.given.granted,
                    withdrawn_at: c.withdrawn_at.clone(),
                    withdrawal_source: c.withdrawal_source.clone(),
                })
            })
            .collect()
    }
}

// ---------------------------------------------------------------- edits

/// `Some(None)` clears a field, `Some(Some(v))` sets it, `None` leaves it.
pub type Change<T> = Option<Option<T>>;

/// An edit of a lead's contact fields, stage and owner, checked against the version it was made
/// on. Email and phone carry their new blind index.
pub struct LeadEdit {
    pub tenant: TenantId,
    pub lead: LeadId,
    pub expected_version: i64,
    pub name: Change<String>,
    pub company: Change<String>,
    pub email: Change<(Email, String)>,
    pub phone: Change<(Phone, String)>,
    pub owner: Change<UserId>,
    /// The new stage, with the change recorded in the stage history.
    pub stage: Option<StageChange>,
    pub audit: AuditEntry,
    pub at: OffsetDateTime,
    /// Set when the edit changes the lead's routing key (`routing`): the route moves in the
    /// edit's transaction.
    pub route_move: Option<RouteMove>,
}

/// A lead's routing key changing from `old` to `new`; `derived_of_new` is the lead id the new
/// address derives (checked not to be another lead of that address).
#[derive(Debug, Clone)]
pub struct RouteMove {
    pub old: Option<routing::RouteKey>,
    pub new: Option<routing::RouteKey>,
    pub derived_of_new: Option<LeadId>,
}

impl RouteMove {
    /// The move an edit makes, given the lead's contact indexes before and after it (`None`
    /// when its routing key stays the same).
    pub fn between(
        before: (Option<&str>, Option<&str>),
        after: (Option<&str>, Option<&str>),
        derive: impl Fn(&str) -> LeadId,
    ) -> Option<RouteMove> {
        let old = routing::RouteKey::of(before.0, before.1);
        let new = routing::RouteKey::of(after.0, after.1);
        (old != new).then(|| RouteMove {
            derived_of_new: new.as_ref().map(|k| derive(&k.bidx)),
            old,
            new,
        })
    }
}

impl LeadEdit {
    /// The names of the fields this edit changes, for the audit trail.
    pub fn changed_fields(&self) -> Vec<String> {
        let mut f = Vec::new();
        for (name, changed) in [
            ("name", self.name.is_some()),
            ("company", self.company.is_some()),
            ("email", self.email.is_some()),
            ("phone", self.phone.is_some()),
            ("stage", self.stage.is_some()),
            ("owner_user_id", self.owner.is_some()),
        ] {
            if changed {
                f.push(name.to_string());
            }
        }
        f
    }
}

/// Why an edit was not applied.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("the lead does not exist")]
    NotFound,
    #[error("the lead is restricted")]
    Restricted,
    #[error("the lead is under legal hold")]
    Held,
    /// Someone else changed the lead since the version the edit names.
    #[error("version conflict")]
    VersionConflict,
    #[error("the note does not exist")]
    NoteNotFound,
    /// The new email (or phone) already leads to another lead of the tenant.
    #[error("another lead has this address")]
    ContactInUse,
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl From<EditError> for AppError {
    fn from(e: EditError) -> Self {
        match e {
            EditError::NotFound => AppError::NotFound("lead_not_found"),
            EditError::Restricted => restricted(),
            EditError::Held => held(),
            EditError::VersionConflict => AppError::Conflict {
                code: "version_conflict",
                message:
                    "The lead changed since you read it; reload it and apply your change again.",
            },
            EditError::NoteNotFound => AppError::NotFound("note_not_found"),
            EditError::ContactInUse => AppError::Conflict {
                code: "contact_in_use",
                message: "Another lead already has this email or phone; edit or delete that lead instead.",
            },
            EditError::Store(e) => AppError::Internal(e),
        }
    }
}

/// The answer to a write on a restricted lead.
pub fn restricted() -> AppError {
    AppError::Conflict {
        code: "lead_restricted",
        message:
            "Processing of this lead is restricted on the data subject's request; it is read-only.",
    }
}

/// The answer to an edit, removal or erasure of a lead under legal hold.
pub fn held() -> AppError {
    AppError::Conflict {
        code: "legal_hold",
        message: "This lead is under legal hold; nothing of it can be changed or removed until the hold is cleared.",
    }
}

/// A free-text contact field (name, company): trimmed, 1..=200 characters, no control
/// characters. Messages never echo the value.
pub fn contact_text(raw: &str) -> Result<String, &'static str> {
    let t = raw.trim();
    if t.is_empty() {
        return Err("must not be empty (send null to clear it)");
    }
    if t.chars().count() > 200 {
        return Err("is longer than 200 characters");
    }
    if t.chars().any(char::is_control) {
        return Err("contains control characters");
    }
    Ok(t.to_string())
}

/// A note's text: trimmed, 1..=5000 characters; line breaks and tabs allowed.
pub fn note_text(raw: &str) -> Result<String, AppError> {
    let t = raw.trim();
    let problem = if t.is_empty() {
        Some("must not be empty")
    } else if t.chars().count() > MAX_NOTE_CHARS {
        Some("is longer than 5000 characters")
    } else if t
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        Some("contains control characters")
    } else {
        None
    };
    match problem {
        None => Ok(t.to_string()),
        Some(m) => {
            let mut f = FieldErrors::new();
            f.insert("text".into(), m.into());
            Err(AppError::invalid_fields(f))
        }
    }
}

/// A slug id from a path (`a-z`, `0-9`, `-`, `_`, at most 64): what every id of the platform is.
pub fn is_slug(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_and_contact_text_rules() {
        assert_eq!(note_text("  hi\nthere ").unwrap(), "hi\nthere");
        assert!(note_text("   ").is_err());
        assert!(note_text(&"x".repeat(5001)).is_err());
        assert!(note_text("bell\u{7}").is_err());
        assert_eq!(contact_text(" Ana ").unwrap(), "Ana");
        assert!(contact_text("").is_err());
        assert!(contact_text("a\nb").is_err());
    }
}
