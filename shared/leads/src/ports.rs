//! Storage ports: small capability traits. A handler asks only for the capability it uses, and
//! the function's IAM policy grants exactly the matching actions. Each port has a DynamoDB
//! adapter ([`crate::dynamo`]) and an in-memory one ([`crate::fakes`], tests only).

use std::collections::BTreeMap;
use std::future::Future;

use time::{Date, OffsetDateTime};

use crate::routing::RouteKey;
use shared_billing::BillingState;
use shared_core::domain::{
    ConsentRecord, ContactDetails, FormId, FormRecord, LeadId, SubmissionId, TechnicalData,
    TenantId, TenantRecord,
};

/// What lead intake reads before it decides, in one round trip.
#[derive(Debug, Clone)]
pub struct IntakeLookup {
    pub tenant: TenantId,
    pub form_id: FormId,
    /// The lead the submission's address derives, when the contact is known.
    pub lead_id: Option<LeadId>,
    /// The address's routing key (`crate::routing`): its route item is read too.
    pub route_key: Option<RouteKey>,
    /// Blind indexes of the contact (email, phone) to check against the suppression list.
    pub contact_bidx: Vec<String>,
    pub rate_window: i64,
    pub ip_hash: Option<String>,
    pub idempotency_key_hash: Option<String>,
    /// The calendar month (`YYYY-MM`, UTC) whose submission count is read.
    pub usage_month: String,
}

#[derive(Debug, Clone, Default)]
pub struct IntakeSnapshot {
    pub form: Option<FormRecord>,
    pub tenant: Option<TenantRecord>,
    /// The tenant's blocklists, read from its record (applied to every form).
    pub tenant_spam: shared_core::domain::TenantSpamLists,
    /// The derived lead exists...
    pub lead_exists: bool,
    /// ...and its routing key is still the submission's address (it was not moved away).
    pub lead_owned_by_key: bool,
    /// The lead the address's route item names, if it has one.
    pub routed_lead: Option<LeadId>,
    pub suppressed: bool,
    pub rate_form_count: u32,
    pub rate_ip_count: u32,
    /// Counts of past rate windows the store still holds (opaque to intake): the commit
    /// removes them ([`RateIncrement::expired`]).
    pub rate_expired: Vec<String>,
    pub idempotency: Option<IdempotencyRecord>,
    /// The tenant's billing state (none: the free tier).
    pub billing: Option<BillingState>,
    /// This month's usage counter: the quota's count, the form's day count, the alerts sent.
    pub usage: UsageState,
}

/// The tenant's usage counter of a month (one item, read in the snapshot and written in the
/// commit): what intake decides the quota, the form's daily cap and the quota alerts from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageState {
    /// Submissions counted against the quota this month.
    pub month_count: u32,
    /// The submitted form's count of one day; kept only while the form has a daily cap.
    pub form_day: Option<FormDayCount>,
    /// The quota alerts (percent of the quota) marked sent this month.
    pub alerts_sent: Vec<u8>,
}

/// A form's submissions on one day (`YYYY-MM-DD`, UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormDayCount {
    pub day: String,
    pub count: u32,
}

/// The response a first request produced under an `Idempotency-Key`, replayed to its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub key_hash: String,
    pub body_hash: String,
    pub lead_id: LeadId,
    pub submission_id: SubmissionId,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewLead {
    pub lead_id: LeadId,
    pub contact: ContactDetails,
    pub email_bidx: Option<String>,
    pub phone_bidx: Option<String>,
    pub source_form: FormId,
    pub created_at: OffsetDateTime,
    /// Also put the address's route item to this lead (conditioned on the address having
    /// none): a lead whose id is not the one its address derives.
    pub route: Option<RouteKey>,
}

#[derive(Debug, Clone)]
pub enum LeadWrite {
    /// A new lead; fails with [`CommitError::LeadAlreadyExists`] if another request created it.
    Create(NewLead),
    /// Attach to an existing lead, on the condition that its routing key is still this one;
    /// fails with [`CommitError::LeadMissing`] if it was deleted or moved to another address.
    Touch(LeadId, RouteKey),
}

impl LeadWrite {
    pub fn lead_id(&self) -> &LeadId {
        match self {
            LeadWrite::Create(l) => &l.lead_id,
            LeadWrite::Touch(id, _) => id,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewSubmission {
    pub submission_id: SubmissionId,
    pub form_id: FormId,
    pub received_at: OffsetDateTime,
    /// Everything the visitor answered, contact fields included, as validated.
    pub fields: BTreeMap<String, String>,
    pub consents: Vec<ConsentRecord>,
    pub technical: TechnicalData,
    /// The day the technical data is due for removal.
    pub technical_expires_on: Date,
    /// The submission's own contact blind indexes: a data-subject request acts on the
    /// submissions its subject made, whatever address the lead has now.
    pub email_bidx: Option<String>,
    pub phone_bidx: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RateIncrement {
    pub window: i64,
    pub ip_hash: Option<String>,
    pub per_ip_limit: u32,
    pub per_form_limit: u32,
    pub expires_at: OffsetDateTime,
    /// What the snapshot found of past windows ([`IntakeSnapshot::rate_expired`]), removed by
    /// this write: they no longer count.
    pub expired: Vec<String>,
}

/// The month's submission counter, incremented only while it holds what intake expects: a
/// count in `expected` (inclusive, always below the quota) and, for a form with a daily cap,
/// the form's day count below the cap. Any other state refuses the commit with
/// [`CommitError::UsageMoved`] and what the counter holds.
#[derive(Debug, Clone)]
pub struct UsageIncrement {
    pub month: String,
    pub expected: (u32, u32),
    /// Quota alerts (percent) this submission crosses: marked sent with the increment, at
    /// `received_at`. The expected range is then exactly one count, so one submission of the
    /// month crosses each threshold.
    pub alerts: Vec<u8>,
    pub daily: Option<DailyIncrement>,
    pub expires_at: OffsetDateTime,
}

/// A form's daily count: continued when the stored day is `day`, else started at 1.
#[derive(Debug, Clone)]
pub struct DailyIncrement {
    pub day: String,
    pub cap: u32,
    /// The stored count is of `day` (add to it) rather than of an earlier day (start over).
    pub continues: bool,
}

/// The lead and submission of an accepted submission.
#[derive(Debug, Clone)]
pub struct SubmissionRecord {
    pub lead: LeadWrite,
    pub submission: NewSubmission,
}

/// Every write of one submission, applied atomically or not at all. A submission of a
/// suppressed person has no `record` but still counts against the rate limit and the monthly
/// quota and is remembered under its idempotency key, so nothing in the answers tells it apart
/// from a stored one.
#[derive(Debug, Clone)]
pub struct IntakeWrite {
    pub tenant: TenantId,
    pub form_id: FormId,
    pub received_at: OffsetDateTime,
    pub record: Option<SubmissionRecord>,
    pub rate: RateIncrement,
    pub usage: UsageIncrement,
    pub idempotency: Option<IdempotencyRecord>,
    /// The solved proof-of-work challenge, marked used in the same transaction (single use).
    pub challenge: Option<UsedChallenge>,
    /// A release from the quarantine: the quarantined submission is marked released to this
    /// lead in the same transaction, once.
    pub release: Option<ReleaseMark>,
}

/// A proof-of-work challenge a submission used: its guard item is put on the condition that
/// none exists, and expires with the challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedChallenge {
    /// The challenge (hex of a SHA-256): unique per issued challenge.
    pub challenge: String,
    pub expires_at: OffsetDateTime,
}

/// Marks a quarantined submission released (see [`IntakeWrite::release`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseMark {
    pub quarantine_id: String,
}

/// A submission the spam defence kept apart: not a lead, not counted, nobody notified; the
/// tenant lists, releases or deletes it. Kept [`QUARANTINE_RETENTION_DAYS`] days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedSubmission {
    /// `qr-<ulid>`: sorts by arrival.
    pub quarantine_id: String,
    pub form_id: FormId,
    pub received_at: OffsetDateTime,
    /// Everything the visitor answered, contact fields included, as validated.
    pub fields: BTreeMap<String, String>,
    pub consents: Vec<ConsentRecord>,
    pub technical: TechnicalData,
    pub email_bidx: Option<String>,
    pub phone_bidx: Option<String>,
    pub score: u32,
    /// Reason codes (`crate::spam::Reason::code`).
    pub reasons: Vec<String>,
    pub expires_at: OffsetDateTime,
    /// Set once released: the lead and submission it became.
    pub released: Option<(LeadId, SubmissionId)>,
}

/// How long a quarantined submission is kept (the retention rule `quarantine`).
pub const QUARANTINE_RETENTION_DAYS: i64 = 30;

/// The writes of a quarantined submission, atomically: the record, the challenge's guard, the
/// idempotency record (a retry gets the same answer) and the minute's rate counts (a flood of
/// spam is limited like any other; the month's count, the quota's, is not touched).
#[derive(Debug, Clone)]
pub struct QuarantineWrite {
    pub tenant: TenantId,
    pub record: QuarantinedSubmission,
    pub rate: RateIncrement,
    /// The usage counter item the rate counts are on (`YYYY-MM`) and its expiry.
    pub usage_month: String,
    pub usage_expires_at: OffsetDateTime,
    pub challenge: Option<UsedChallenge>,
    pub idempotency: Option<IdempotencyRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("the lead already exists")]
    LeadAlreadyExists,
    #[error("the lead no longer exists, or no longer has this address")]
    LeadMissing,
    /// The address's route item appeared since the read: read again and decide again.
    #[error("the address now leads to another lead")]
    Rerouted,
    #[error("rate limit reached")]
    RateLimited,
    /// The usage counter was not in the state the increment expected (another submission
    /// counted meanwhile, the quota or the daily cap is reached): what it holds now.
    #[error("the usage counter moved")]
    UsageMoved(UsageState),
    #[error("the idempotency key is already used")]
    IdempotencyKeyTaken,
    /// The proof-of-work challenge was used by another submission.
    #[error("the challenge was already used")]
    ChallengeUsed,
    /// The quarantined submission is released already (or no longer exists).
    #[error("the quarantined submission was released already")]
    AlreadyReleased,
    /// Another transaction held one of the items; safe to retry.
    #[error("transaction conflict")]
    Conflict,
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// The lead-intake capability: read a form's tenant, read the decision inputs in one request,
/// commit every write in one transaction.
pub trait IntakeStore: Send + Sync {
    /// The tenant owning a form (immutable for a form's life, so callers may cache it).
    fn form_tenant(
        &self,
        form: &FormId,
    ) -> impl Future<Output = anyhow::Result<Option<TenantId>>> + Send;

    /// The current form record (for CORS preflight).
    fn form(
        &self,
        form: &FormId,
    ) -> impl Future<Output = anyhow::Result<Option<FormRecord>>> + Send;

    fn load(
        &self,
        lookup: &IntakeLookup,
    ) -> impl Future<Output = anyhow::Result<IntakeSnapshot>> + Send;

    fn commit(&self, write: &IntakeWrite) -> impl Future<Output = Result<(), CommitError>> + Send;

    /// Stores a quarantined submission (with its challenge guard and idempotency record).
    fn quarantine(
        &self,
        write: &QuarantineWrite,
    ) -> impl Future<Output = Result<(), CommitError>> + Send;

    /// How many of the form's posts were quarantined in the current pressure window and the
    /// one before (`crate::spam::PRESSURE_WINDOW_SECS`): the challenge's difficulty rises with it.
    fn recent_quarantined(
        &self,
        tenant: &TenantId,
        form: &FormId,
        now: OffsetDateTime,
    ) -> impl Future<Output = anyhow::Result<u32>> + Send;

    /// A quarantined submission of the tenant's form, released or not (expired ones: none).
    fn quarantined(
        &self,
        tenant: &TenantId,
        form: &FormId,
        quarantine_id: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = anyhow::Result<Option<QuarantinedSubmission>>> + Send;

    fn idempotency_record(
        &self,
        tenant: &TenantId,
        form: &FormId,
        key_hash: &str,
    ) -> impl Future<Output = anyhow::Result<Option<IdempotencyRecord>>> + Send;

    /// Whether the submission is stored: after a commit the store gave up on, it tells a
    /// transaction that landed (its answer lost) from one that did not.
    fn submission_exists(
        &self,
        tenant: &TenantId,
        lead: &LeadId,
        submission: &SubmissionId,
    ) -> impl Future<Output = anyhow::Result<bool>> + Send;

    /// Marks quota alerts (percent) sent at `at`, if none of them is marked yet and the month's
    /// count is at least `count_at_least`. `true` when this call marked them.
    fn claim_alerts(
        &self,
        tenant: &TenantId,
        month: &str,
        percents: &[u8],
        count_at_least: u32,
        at: OffsetDateTime,
    ) -> impl Future<Output = anyhow::Result<bool>> + Send;

    /// Removes the marks `claim_alerts` (or a crossing commit) set at `at`, after the email could
    /// not be sent, so a later submission sends it.
    fn release_alerts(
        &self,
        tenant: &TenantId,
        month: &str,
        percents: &[u8],
        at: OffsetDateTime,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Writes the platform's own configuration records: used by seeding and, later, the forms API.
pub trait FormAdmin: Send + Sync {
    fn put_tenant(&self, t: &TenantRecord) -> impl Future<Output = anyhow::Result<()>> + Send;
    fn put_form(&self, f: &FormRecord) -> impl Future<Output = anyhow::Result<()>> + Send;
}
