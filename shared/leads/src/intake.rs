//! Lead intake: a web form's submission becomes a lead, atomically, with its consents and
//! technical data, or is refused with a precise reason.
//!
//! Cost shape (see `bench/`, `tests/cost.rs`): one `BatchGetItem` (form, tenant, lead, suppression
//! entries, idempotency record, billing state, this month's usage counter, which also holds the
//! minute's rate-limit counts) and one `TransactWriteItems` (lead, submission, usage counter,
//! idempotency record when a key is sent). The form's tenant is immutable and
//! cached per container, so only a container's first submission to a form pays one more read.
//!
//! The usage counter also carries what protects the quota: a form's daily cap (the form's count
//! of the day, two attributes of the same item, only for a form with a cap) and the quota alerts
//! (80 % and 100 %, emailed to the owners once a month). Neither adds a request: the counter is
//! read in the `BatchGetItem` and written in the transaction anyway. Its condition names the
//! range the count must be in, and a range holding a threshold's last count is that one count,
//! so exactly one submission of the month crosses each threshold, however many race; a refused
//! condition returns the counter as it is (`ALL_OLD`) and intake retries against it. Only the
//! submission crossing a threshold pays for the email (a team Query and a send).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use time::{Duration, OffsetDateTime, UtcOffset};

use crate::ports::{
    CommitError, DailyIncrement, IdempotencyRecord, IntakeLookup, IntakeSnapshot, IntakeStore,
    IntakeWrite, LeadWrite, NewLead, NewSubmission, QuarantineWrite, QuarantinedSubmission,
    RateIncrement, ReleaseMark, SubmissionRecord, UsageIncrement, UsageState, UsedChallenge,
    QUARANTINE_RETENTION_DAYS,
};
use crate::routing::{self, RouteKey, Routed};
use crate::spam::{self, pow, Assessment, Reason};
use shared_billing::{entitlements, usage_expires_at, usage_month, BillingPolicy};
use shared_core::blind_index::BlindIndexKey;
use shared_core::clock::{Clock, IdGenerator};
use shared_core::domain::{
    ContactDetails, Email, FormId, FormRecord, LeadId, Phone, RawSubmission, SubmissionId,
    TechnicalData, TenantId, TenantStatus, ValidSubmission,
};
use shared_core::error::AppError;

/// The shares of the monthly quota (percent) at which the tenant's owners are emailed, once
/// each per month.
pub const QUOTA_ALERTS: [u8; 2] = [80, 100];

/// The count at which `percent` of `quota` is reached (rounded up, at least 1).
pub fn alert_threshold(quota: u32, percent: u8) -> u32 {
    (u64::from(quota) * u64::from(percent)).div_ceil(100).max(1) as u32
}

/// What the owners are told: `used` of `quota` submissions in `month` (`YYYY-MM`, UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaAlert {
    pub tenant: TenantId,
    pub month: String,
    pub percent: u8,
    pub used: u32,
    pub quota: u32,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends a quota alert to the tenant's owners (see `crate::quota_alerts`). An error means no
/// owner was told: intake then removes the mark so a later submission tries again.
pub trait QuotaAlerts: Send + Sync {
    fn send<'a>(&'a self, alert: &'a QuotaAlert) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// The range of counts around `count` (below `quota`) whose increment crosses no alert
/// threshold, with no alert; or `count` alone, with the alerts its increment crosses.
fn usage_range(count: u32, quota: u32) -> ((u32, u32), Vec<u8>) {
    let crossing: Vec<u8> = QUOTA_ALERTS
        .into_iter()
        .filter(|p| alert_threshold(quota, *p) == count + 1)
        .collect();
    if !crossing.is_empty() {
        return ((count, count), crossing);
    }
    // The counts whose increment crosses a threshold bound the range on both sides.
    let edges = QUOTA_ALERTS.map(|p| alert_threshold(quota, p) - 1);
    let lo = edges
        .iter()
        .filter(|e| **e < count)
        .max()
        .map_or(0, |e| e + 1);
    let hi = edges
        .iter()
        .filter(|e| **e > count)
        .min()
        .map_or(quota.saturating_sub(1), |e| e - 1);
    ((lo, hi), vec![])
}

/// The calendar day (UTC) a form's daily count counts: `YYYY-MM-DD`.
pub fn usage_day(at: OffsetDateTime) -> String {
    let d = at.to_offset(UtcOffset::UTC).date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// A form's daily cap is reached: the visitor may retry from the next day (UTC).
fn daily_cap_reached(now: OffsetDateTime) -> AppError {
    let next_day = now.to_offset(UtcOffset::UTC).date().next_day();
    let secs = next_day
        .map(|d| (d.midnight().assume_utc() - now).whole_seconds())
        .unwrap_or(86_400);
    AppError::RateLimited {
        retry_after_secs: secs.max(1) as u64,
    }
}

/// What a submission leaves for the quota alerts, sent once its answer is decided.
#[derive(Default)]
struct AlertNote {
    tenant: Option<TenantId>,
    month: String,
    quota: u32,
    /// Count at the snapshot, and the alerts it shows due but not marked (a failed send, or a
    /// month counted before alerts existed).
    count: u32,
    due: Vec<u8>,
    /// Alerts the committed increment crossed (and marked at `received_at`), at which count.
    crossed: Vec<u8>,
    crossed_at: u32,
    received_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct IntakeSettings {
    pub rate_limit_per_ip_per_minute: u32,
    pub rate_limit_per_form_per_minute: u32,
    pub technical_data_retention_days: i64,
    pub idempotency_ttl: Duration,
    /// The free tier's quota and the grace of a canceled or unpaid subscription.
    pub billing: BillingPolicy,
}

impl Default for IntakeSettings {
    fn default() -> Self {
        Self {
            rate_limit_per_ip_per_minute: 10,
            rate_limit_per_form_per_minute: 120,
            technical_data_retention_days: 90,
            idempotency_ttl: Duration::hours(24),
            billing: BillingPolicy::default(),
        }
    }
}

/// A submission as the HTTP layer hands it over.
#[derive(Debug)]
pub struct IntakeRequest<'a> {
    pub form_id: FormId,
    pub body: RawSubmission,
    pub raw_body: &'a [u8],
    /// The browser's `Origin`, when there is one.
    pub origin: Option<&'a str>,
    pub source_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// The `Referer` header: for a form post, the page the form is on.
    pub referer_header: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted {
        lead_id: LeadId,
        submission_id: SubmissionId,
        new_lead: bool,
    },
    /// The same response as a first request under the same idempotency key.
    Replayed {
        lead_id: LeadId,
        submission_id: SubmissionId,
    },
    /// Answered like success, nothing stored: a bot filled the honeypot, or the person asked to
    /// be erased and is on the tenant's suppression list. The answer must not tell which.
    Discarded {
        lead_id: LeadId,
        submission_id: SubmissionId,
        reason: DiscardReason,
    },
    /// Answered like success, kept apart: the spam defence scored it at or above the form's
    /// threshold. Not a lead, not counted in the quota, nobody notified; the tenant reviews it.
    Quarantined {
        lead_id: LeadId,
        submission_id: SubmissionId,
        quarantine_id: String,
        reasons: Vec<Reason>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardReason {
    Honeypot,
    Suppressed,
}

impl Outcome {
    pub fn ids(&self) -> (&LeadId, &SubmissionId) {
        match self {
            Outcome::Accepted {
                lead_id,
                submission_id,
                ..
            }
            | Outcome::Replayed {
                lead_id,
                submission_id,
            }
            | Outcome::Discarded {
                lead_id,
                submission_id,
                ..
            }
            | Outcome::Quarantined {
                lead_id,
                submission_id,
                ..
            } => (lead_id, submission_id),
        }
    }
}

/// What the HTTP layer needs of the form even when the submission fails (CORS, redirect).
#[derive(Debug, Clone)]
pub struct FormPresentation {
    pub allowed_origins: Vec<String>,
    pub redirect_url: String,
}

impl From<&FormRecord> for FormPresentation {
    fn from(f: &FormRecord) -> Self {
        Self {
            allowed_origins: f.allowed_origins.clone(),
            redirect_url: f.redirect_url.clone(),
        }
    }
}

#[derive(Debug)]
pub struct IntakeResponse {
    pub form: Option<FormPresentation>,
    pub result: Result<Outcome, AppError>,
}

/// The intake use case: generic over its store (the port it does its work through), with the
/// clock and id generator as shared trait objects (docs/architecture.md, "Injecting
/// dependencies").
pub struct Intake<S> {
    store: S,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    key: BlindIndexKey,
    /// Signs and checks the proof-of-work challenges (derived from `key`).
    pow: pow::PowKey,
    settings: IntakeSettings,
    form_tenants: Mutex<HashMap<FormId, TenantId>>,
    /// Quota alerts to the owners; without them no alert is marked or sent.
    alerts: Option<Arc<dyn QuotaAlerts>>,
}

/// Commit attempts. Concurrent submissions to one tenant touch the same counters, and DynamoDB
/// cancels a transaction that overlaps another on an item: those retry with jittered backoff.
const MAX_ATTEMPTS: usize = 6;

/// Retries against a usage counter that moved. Each follows another submission's count (the
/// counter only grows, through at most five ranges, and a form's day starts once), so a
/// submission moves a few times at most, whatever the concurrency.
const MAX_USAGE_MOVES: usize = 16;

/// Reads of the lead's routing per submission: a second only when a concurrent write changed
/// what the first saw (or the validated address differs from the body's probable one).
const ROUTE_ROUNDS: usize = 3;

/// What the limits allowed, for the commit's conditions and its answers.
struct Limits {
    quota: u32,
    today: String,
    retry_after: u64,
}

/// A decided submission, as the commit loop needs it.
struct Plan<'a> {
    tenant: &'a TenantId,
    form: &'a FormRecord,
    contact: &'a ContactDetails,
    email_bidx: Option<String>,
    phone_bidx: Option<String>,
    key: Option<RouteKey>,
    probable_lead: Option<LeadId>,
    lead_id: LeadId,
    submission_id: SubmissionId,
    routed: Routed,
    new_lead: bool,
    suppressed: bool,
    limits: Limits,
    body_hash: String,
    now: OffsetDateTime,
}

enum Committed {
    Done(Outcome),
    /// The submission's proof-of-work challenge was used before: not a proof of anything.
    ChallengeUsed,
    /// Releasing: the quarantined submission was released meanwhile (or is gone).
    AlreadyReleased,
    /// The lead's routing changed between the read and the write: read and decide again.
    ReadAgain,
}

/// Step 1: whether the form takes this submission at all: from this website, while enabled,
/// for an active account.
fn admit(
    form: &FormRecord,
    tenant_status: Option<TenantStatus>,
    origin: Option<&str>,
) -> Result<(), AppError> {
    if let Some(origin) = origin {
        if !form.allows_origin(origin) {
            return Err(AppError::Forbidden {
                code: "origin_not_allowed",
                message: "This form does not accept submissions from this website.",
            });
        }
    }
    if !form.enabled {
        return Err(form_disabled());
    }
    match tenant_status {
        Some(TenantStatus::Active) => Ok(()),
        _ => Err(AppError::Forbidden {
            code: "tenant_inactive",
            message: "This form's account is not accepting submissions.",
        }),
    }
}

impl<S: IntakeStore> Intake<S> {
    pub fn new(
        store: S,
        clock: impl Clock + 'static,
        ids: impl IdGenerator + 'static,
        key: BlindIndexKey,
        settings: IntakeSettings,
    ) -> Self {
        Self {
            store,
            clock: Arc::new(clock),
            ids: Arc::new(ids),
            pow: pow::PowKey::from_platform_key(&key),
            key,
            settings,
            form_tenants: Mutex::new(HashMap::new()),
            alerts: None,
        }
    }

    /// Emails the owners at 80 % and 100 % of the monthly quota, once each per month.
    pub fn with_alerts(mut self, alerts: Arc<dyn QuotaAlerts>) -> Self {
        self.alerts = Some(alerts);
        self
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The form as a browser's CORS preflight needs it.
    pub async fn preflight(&self, form_id: &FormId) -> Result<FormPresentation, AppError> {
        match self.store.form(form_id).await? {
            Some(f) if f.enabled => Ok((&f).into()),
            Some(_) => Err(form_disabled()),
            None => Err(AppError::NotFound("form_not_found")),
        }
    }

    /// A proof-of-work challenge for the form's embed snippet, with the form's CORS origins.
    /// Issued for an enabled form only; its difficulty is the form's, raised while the form is
    /// under attack (many quarantined posts in the last minutes: [`spam::raised_max_number`]).
    /// Issued `for_key` (the post's idempotency key, as the embed snippet asks), it proves work
    /// for that key's post only, and the key's idempotency record is its single use: no guard
    /// item of its own in the submission's transaction.
    pub async fn challenge(
        &self,
        form_id: &FormId,
        for_key: Option<&str>,
    ) -> Result<(FormPresentation, pow::Challenge), AppError> {
        let form = match self.store.form(form_id).await? {
            Some(f) if f.enabled => f,
            Some(_) => return Err(form_disabled()),
            None => return Err(AppError::NotFound("form_not_found")),
        };
        // A form without the proof of work still gets a (trivial) challenge: it carries the
        // signed issue time the time trap reads.
        let now = self.clock.now();
        let max = if form.spam.pow {
            let recent = self
                .store
                .recent_quarantined(&form.tenant_id, form_id, now)
                .await?;
            let max = spam::raised_max_number(form.spam.pow_max_number, recent);
            if max > form.spam.pow_max_number {
                tracing::info!(
                    recent,
                    max,
                    "challenge difficulty raised: form under attack"
                );
            }
            max
        } else {
            1
        };
        let random = shared_core::blind_index::hex(&rand::random::<[u8; 12]>());
        let number = rand::random::<u64>() % (u64::from(max) + 1);
        let c = pow::issue(&self.pow, form_id, now, max, &random, number, for_key);
        Ok(((&form).into(), c))
    }

    /// Records what happened on the request's span (`telemetry::request_span`: form, tenant,
    /// lead and submission ids, outcome), so the one line the function writes when it answers
    /// carries them: a submission costs one log line and one metric line, nothing more.
    pub async fn submit(&self, req: IntakeRequest<'_>) -> IntakeResponse {
        let span = tracing::Span::current();
        span.record("form_id", req.form_id.as_str());
        let mut form = None;
        let mut note = AlertNote::default();
        let result = self.submit_inner(&req, &mut form, &mut note).await;
        self.notify(note).await;
        match &result {
            Ok(outcome) => {
                let (lead, sub) = outcome.ids();
                span.record("lead_id", lead.as_str());
                span.record("submission_id", sub.as_str());
                let label = match outcome {
                    Outcome::Accepted { new_lead: true, .. } => "accepted_new_lead",
                    Outcome::Accepted { .. } => "accepted_existing_lead",
                    Outcome::Replayed { .. } => "replayed",
                    Outcome::Discarded {
                        reason: DiscardReason::Honeypot,
                        ..
                    } => "spam_honeypot",
                    Outcome::Discarded {
                        reason: DiscardReason::Suppressed,
                        ..
                    } => "suppressed",
                    Outcome::Quarantined { .. } => "quarantined",
                };
                span.record("outcome", label);
            }
            Err(e) => {
                span.record("outcome", e.code());
                if let AppError::Internal(err) = e {
                    tracing::error!(error = %format!("{err:#}"), "submission failed");
                }
            }
        }
        IntakeResponse { form, result }
    }

    async fn tenant_of(&self, form_id: &FormId) -> Result<TenantId, AppError> {
        if let Some(t) = self.cache().get(form_id).cloned() {
            return Ok(t);
        }
        let tenant = self
            .store
            .form_tenant(form_id)
            .await?
            .ok_or(AppError::NotFound("form_not_found"))?;
        self.cache().insert(form_id.clone(), tenant.clone());
        Ok(tenant)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<FormId, TenantId>> {
        self.form_tenants.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn submit_inner(
        &self,
        req: &IntakeRequest<'_>,
        form_out: &mut Option<FormPresentation>,
        note: &mut AlertNote,
    ) -> Result<Outcome, AppError> {
        let now = self.clock.now();
        let tenant = self.tenant_of(&req.form_id).await?;
        tracing::Span::current().record("tenant_id", tenant.as_str());

        // The address the lead is looked up by: first the body's probable contact (known before
        // the form's rules validate it); if the validated contact differs, or the routing read
        // is overtaken by a concurrent write, the round is read again.
        let mut contact: (Option<String>, Option<String>) = (
            req.body.probable_email().map(|e| self.key.email(&e)),
            req.body.probable_phone().map(|p| self.key.phone(&p)),
        );
        let idem_hash = req
            .idempotency_key
            .map(|k| self.key.idempotency_key(&tenant, k));
        let window = now.unix_timestamp().div_euclid(60);
        let ip_hash = req.source_ip.map(|ip| self.key.ip(ip));
        let month = usage_month(now);

        let mut round = 0;
        'round: loop {
            round += 1;
            let (email_bidx, phone_bidx) = contact.clone();
            let route_key = RouteKey::of(email_bidx.as_deref(), phone_bidx.as_deref());
            let probable_lead = route_key
                .as_ref()
                .map(|k| self.key.lead_id(&tenant, &k.bidx));
            let mut snapshot = self
                .store
                .load(&IntakeLookup {
                    tenant: tenant.clone(),
                    form_id: req.form_id.clone(),
                    lead_id: probable_lead.clone(),
                    route_key: route_key.clone(),
                    contact_bidx: email_bidx
                        .iter()
                        .chain(phone_bidx.iter())
                        .cloned()
                        .collect(),
                    rate_window: window,
                    ip_hash: ip_hash.clone(),
                    idempotency_key_hash: idem_hash.clone(),
                    usage_month: month.clone(),
                })
                .await?;

            let Some(form) = snapshot.form.take() else {
                // The form was deleted since we cached its tenant.
                self.cache().remove(&req.form_id);
                return Err(AppError::NotFound("form_not_found"));
            };
            *form_out = Some((&form).into());

            admit(
                &form,
                snapshot.tenant.as_ref().map(|t| t.status),
                req.origin,
            )?;

            let body_hash = self.key.body(req.raw_body);
            // DynamoDB's TTL deletes lazily, so an expired record is ignored here.
            if let Some(record) = snapshot.idempotency.take().filter(|r| r.expires_at > now) {
                return replay(record, &body_hash);
            }

            if req.body.is_honeypot_filled(&form.honeypot_field) {
                // A bot: no write at all, not even a rate-limit count.
                let lead = snapshot.routed_lead.clone().or(probable_lead);
                return Ok(self.discarded(now, lead, DiscardReason::Honeypot));
            }

            let valid = req.body.validate(&form)?;

            let limits =
                self.check_limits(&snapshot, &form, &tenant, ip_hash.is_some(), now, note)?;

            // Recompute from the validated contact: the form's rules are the authority.
            let email_bidx = valid.contact.email.as_ref().map(|e| self.key.email(e));
            let phone_bidx = valid.contact.phone.as_ref().map(|p| self.key.phone(p));
            if (email_bidx.clone(), phone_bidx.clone()) != contact && round < ROUTE_ROUNDS {
                // The lookup was by another address than the validated one: read again by it.
                contact = (email_bidx, phone_bidx);
                continue 'round;
            }
            // The spam defence. A suppressed person's submission stays as it is: nothing of
            // it is stored, quarantined or not.
            let lead_hint = snapshot.routed_lead.clone().or(probable_lead.clone());
            let mut assessment = Assessment::default();
            if !snapshot.suppressed {
                assessment = self.assess(&form, &snapshot.tenant_spam, &valid, req, now);
                if assessment.quarantined(&form.spam) {
                    let q = Quarantine {
                        tenant: &tenant,
                        form: &form,
                        valid: &valid,
                        lead_hint,
                        idem_hash: idem_hash.clone(),
                        body_hash,
                        bidx: (email_bidx, phone_bidx),
                        rate: self.rate_increment(window, ip_hash.clone(), now),
                        retry_after: limits.retry_after,
                    };
                    return self.quarantine(q, req, now, assessment).await;
                }
            }
            let used_challenge = used_challenge(
                &assessment,
                idem_hash.as_ref(),
                now + self.settings.idempotency_ttl,
            );
            let quarantine_later = (email_bidx.clone(), phone_bidx.clone(), body_hash.clone());
            let quarantine_retry_after = limits.retry_after;

            let key = RouteKey::of(email_bidx.as_deref(), phone_bidx.as_deref());
            let (lead_id, routed) = self.decide_lead(
                &snapshot,
                key.as_ref(),
                route_key.as_ref(),
                probable_lead.as_ref(),
                now,
            )?;
            let submission_id = SubmissionId::parse(&format!("sb-{}", self.ids.new_id(now)))
                .map_err(|e| AppError::Internal(e.into()))?;

            let new_lead = !matches!((&routed, &key), (Routed::Existing(_), Some(_)));
            let record = if snapshot.suppressed {
                // Erased on request: nothing of the person is stored; the answer is a normal one.
                None
            } else {
                let mut submission =
                    self.new_submission(&form, &valid, submission_id.clone(), req, now);
                submission.email_bidx = email_bidx.clone();
                submission.phone_bidx = phone_bidx.clone();
                Some(SubmissionRecord {
                    lead: match (&routed, &key) {
                        (Routed::Existing(_), Some(k)) => {
                            LeadWrite::Touch(lead_id.clone(), k.clone())
                        }
                        _ => LeadWrite::Create(NewLead {
                            lead_id: lead_id.clone(),
                            contact: valid.contact.clone(),
                            email_bidx: email_bidx.clone(),
                            phone_bidx: phone_bidx.clone(),
                            source_form: form.form_id.clone(),
                            created_at: now,
                            route: match routed {
                                Routed::NewRouted => key.clone(),
                                _ => None,
                            },
                        }),
                    },
                    submission,
                })
            };
            let suppressed = record.is_none();
            let write = IntakeWrite {
                tenant: tenant.clone(),
                form_id: form.form_id.clone(),
                received_at: now,
                record,
                rate: RateIncrement {
                    window,
                    ip_hash: ip_hash.clone(),
                    per_ip_limit: self.settings.rate_limit_per_ip_per_minute,
                    per_form_limit: self.settings.rate_limit_per_form_per_minute,
                    expires_at: now + Duration::minutes(10),
                    expired: snapshot.rate_expired.clone(),
                },
                usage: self.usage_increment(&snapshot.usage, limits.quota, form.daily_cap, now),
                idempotency: idem_hash.clone().map(|key_hash| IdempotencyRecord {
                    key_hash,
                    body_hash: body_hash.clone(),
                    lead_id: lead_id.clone(),
                    submission_id: submission_id.clone(),
                    expires_at: now + self.settings.idempotency_ttl,
                }),
                challenge: used_challenge,
                release: None,
            };

            let plan = Plan {
                tenant: &tenant,
                form: &form,
                contact: &valid.contact,
                email_bidx,
                phone_bidx,
                key,
                probable_lead,
                lead_id,
                submission_id,
                routed,
                new_lead,
                suppressed,
                limits,
                body_hash,
                now,
            };
            match self.commit(plan, write, note).await? {
                Committed::Done(outcome) => return Ok(outcome),
                Committed::ChallengeUsed => {
                    // A replayed challenge proves nothing: kept apart for the tenant to judge.
                    assessment.add(Reason::PowReplayed, spam::SURE);
                    assessment.challenge = None;
                    let (email_bidx, phone_bidx, body_hash) = quarantine_later;
                    let q = Quarantine {
                        tenant: &tenant,
                        form: &form,
                        valid: &valid,
                        lead_hint,
                        idem_hash: idem_hash.clone(),
                        body_hash,
                        bidx: (email_bidx, phone_bidx),
                        rate: self.rate_increment(window, ip_hash.clone(), now),
                        retry_after: quarantine_retry_after,
                    };
                    return self.quarantine(q, req, now, assessment).await;
                }
                Committed::AlreadyReleased => {
                    return Err(AppError::Internal(anyhow::anyhow!(
                        "a submission's commit reported a release"
                    )))
                }
                Committed::ReadAgain if round < ROUTE_ROUNDS => continue 'round,
                Committed::ReadAgain => {
                    tracing::warn!(
                        rounds = ROUTE_ROUNDS,
                        "the lead kept changing; answering 503"
                    );
                    return Err(AppError::Unavailable {
                        retry_after_secs: shared_core::http::RETRY_AFTER_UNAVAILABLE_SECS,
                    });
                }
            }
        }
    }

    /// Step 2, after the form admitted the submission: the per-minute rate limits, the monthly
    /// quota and the form's daily cap, each as the read saw them (the commit's conditions make
    /// them exact). Notes the quota alerts due, whatever the answer.
    fn check_limits(
        &self,
        snapshot: &IntakeSnapshot,
        form: &FormRecord,
        tenant: &TenantId,
        has_ip: bool,
        now: OffsetDateTime,
        note: &mut AlertNote,
    ) -> Result<Limits, AppError> {
        // Rate limits apply before anything else is decided, so that being over a limit (429)
        // looks the same for a suppressed person as for anyone else.
        let retry_after = (60 - now.unix_timestamp().rem_euclid(60)).max(1) as u64;
        let limits = &self.settings;
        if snapshot.rate_form_count >= limits.rate_limit_per_form_per_minute
            || (has_ip && snapshot.rate_ip_count >= limits.rate_limit_per_ip_per_minute)
        {
            return Err(AppError::RateLimited {
                retry_after_secs: retry_after,
            });
        }

        // Entitlements, like the rate limit, before anything about the person is decided: a
        // suppressed person's submission counts and is refused like anyone else's. The quota is
        // enforced exactly by the commit's condition; this early answer only saves a write.
        let quota = limits
            .billing
            .submission_quota(snapshot.billing.as_ref(), now)?;
        let usage = &snapshot.usage;
        if self.alerts.is_some() {
            *note = AlertNote {
                tenant: Some(tenant.clone()),
                month: usage_month(now),
                quota,
                count: usage.month_count,
                due: QUOTA_ALERTS
                    .into_iter()
                    .filter(|p| {
                        usage.month_count >= alert_threshold(quota, *p)
                            && !usage.alerts_sent.contains(p)
                    })
                    .collect(),
                ..AlertNote::default()
            };
        }
        if usage.month_count >= quota {
            return Err(entitlements::quota_exceeded());
        }
        // The form's daily cap, like the quota: exact by the commit's condition.
        let today = usage_day(now);
        if let (Some(cap), Some(d)) = (form.daily_cap, &usage.form_day) {
            if d.day == today && d.count >= cap {
                return Err(daily_cap_reached(now));
            }
        }
        Ok(Limits {
            quota,
            today,
            retry_after,
        })
    }

    /// Step 3: which lead the submission goes to, from the routing read: the person's lead, a
    /// new one at the id derived from the address, or a new one with a fresh id and a route
    /// (the derived id belongs to a lead that moved to another address).
    fn decide_lead(
        &self,
        snapshot: &IntakeSnapshot,
        key: Option<&RouteKey>,
        route_key: Option<&RouteKey>,
        probable_lead: Option<&LeadId>,
        now: OffsetDateTime,
    ) -> Result<(LeadId, Routed), AppError> {
        let new_id = || {
            LeadId::parse(&format!("ld-{}", self.ids.new_id(now)))
                .map_err(|e| AppError::Internal(e.into()))
        };
        let decided = match (key, probable_lead) {
            (Some(k), Some(derived)) if route_key == Some(k) => {
                match routing::decide(
                    snapshot.routed_lead.as_ref(),
                    derived,
                    snapshot.lead_exists,
                    snapshot.lead_owned_by_key,
                ) {
                    Routed::Existing(id) => (id, Routed::Existing(LeadId::clone(derived))),
                    Routed::NewAtDerived => (derived.clone(), Routed::NewAtDerived),
                    Routed::NewRouted => (new_id()?, Routed::NewRouted),
                }
            }
            // No contact to deduplicate on (a form without email or phone): a lead of its own.
            // (Or the read was by another address after every round: a new lead, routed.)
            (Some(_), _) => (new_id()?, Routed::NewRouted),
            (None, _) => (new_id()?, Routed::NewAtDerived),
        };
        Ok(decided)
    }

    /// Step 4: the one conditional transaction, retried as its failures allow: a usage counter
    /// that moved is re-read from the refusal, a lead created or erased concurrently switches
    /// the write once, conflicts back off with jitter, an ambiguous store failure is resolved
    /// by whether the submission landed. `ReadAgain` when the lead's routing changed under us.
    async fn commit(
        &self,
        plan: Plan<'_>,
        mut write: IntakeWrite,
        note: &mut AlertNote,
    ) -> Result<Committed, AppError> {
        let Plan {
            tenant,
            form,
            contact,
            email_bidx,
            phone_bidx,
            key,
            probable_lead,
            lead_id,
            submission_id,
            routed,
            mut new_lead,
            suppressed,
            limits:
                Limits {
                    quota,
                    today,
                    retry_after,
                },
            body_hash,
            now,
        } = plan;
        // One switch between creating and attaching without a new read: the usual race (two
        // first submissions of one person) costs one more transaction, not a read too.
        let mut switched = false;
        let mut moves = 0;
        let mut attempt = 0;
        while attempt < MAX_ATTEMPTS {
            attempt += 1;
            let committed = self.store.commit(&write).await;
            if committed.is_ok() {
                note.crossed = write.usage.alerts.clone();
                note.crossed_at = write.usage.expected.1 + 1;
                note.received_at = Some(write.received_at);
            }
            match committed {
                Ok(()) if suppressed => {
                    return Ok(Committed::Done(Outcome::Discarded {
                        lead_id,
                        submission_id,
                        reason: DiscardReason::Suppressed,
                    }))
                }
                Ok(()) => {
                    return Ok(Committed::Done(Outcome::Accepted {
                        lead_id,
                        submission_id,
                        new_lead,
                    }))
                }
                Err(CommitError::UsageMoved(state)) => {
                    if state.month_count >= quota {
                        return Err(entitlements::quota_exceeded());
                    }
                    if let (Some(cap), Some(d)) = (form.daily_cap, &state.form_day) {
                        if d.day == today && d.count >= cap {
                            return Err(daily_cap_reached(now));
                        }
                    }
                    moves += 1;
                    if moves > MAX_USAGE_MOVES {
                        return Err(AppError::Internal(anyhow::anyhow!(
                            "the usage counter moved {moves} times"
                        )));
                    }
                    // Not a failed attempt: another submission counted first.
                    attempt -= 1;
                    write.usage = self.usage_increment(&state, quota, form.daily_cap, now);
                }
                Err(CommitError::LeadAlreadyExists)
                    if !switched && matches!(routed, Routed::NewAtDerived) && key.is_some() =>
                {
                    // Another submission of the same address created the lead first.
                    switched = true;
                    new_lead = false;
                    if let (Some(r), Some(k)) = (write.record.as_mut(), &key) {
                        r.lead = LeadWrite::Touch(lead_id.clone(), k.clone());
                    }
                }
                Err(CommitError::LeadMissing)
                    if !switched && probable_lead.as_ref() == Some(&lead_id) =>
                {
                    // The lead was erased between our read and our write: start a new one.
                    switched = true;
                    new_lead = true;
                    if let Some(r) = write.record.as_mut() {
                        r.lead = LeadWrite::Create(NewLead {
                            lead_id: lead_id.clone(),
                            contact: contact.clone(),
                            email_bidx: email_bidx.clone(),
                            phone_bidx: phone_bidx.clone(),
                            source_form: form.form_id.clone(),
                            created_at: now,
                            route: None,
                        });
                    }
                }
                // Another request created the lead, the lead was erased or moved to another
                // address, or the address gained a route, between our read and our write:
                // read again and decide again (bounded: a retry then answers 503).
                Err(
                    CommitError::LeadAlreadyExists
                    | CommitError::LeadMissing
                    | CommitError::Rerouted,
                ) => return Ok(Committed::ReadAgain),
                Err(CommitError::ChallengeUsed) => return Ok(Committed::ChallengeUsed),
                Err(CommitError::AlreadyReleased) => return Ok(Committed::AlreadyReleased),
                Err(CommitError::RateLimited) => {
                    return Err(AppError::RateLimited {
                        retry_after_secs: retry_after,
                    })
                }
                Err(CommitError::IdempotencyKeyTaken) => {
                    let key_hash = write
                        .idempotency
                        .as_ref()
                        .map(|r| r.key_hash.clone())
                        .unwrap_or_default();
                    let record = self
                        .store
                        .idempotency_record(tenant, &form.form_id, &key_hash)
                        .await?
                        .ok_or_else(|| {
                            AppError::Internal(anyhow::anyhow!(
                                "idempotency record vanished after a conflict"
                            ))
                        })?;
                    return replay(record, &body_hash).map(Committed::Done);
                }
                Err(CommitError::Conflict) if attempt < MAX_ATTEMPTS => {
                    // Full jitter on an exponential base, so racing retries spread out.
                    let cap = 10u64 << attempt.min(6);
                    let wait = rand::random::<u64>() % cap + 5;
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                }
                Err(CommitError::Conflict) => {
                    tracing::warn!(
                        attempts = MAX_ATTEMPTS,
                        "transaction conflicts persisted; answering 503"
                    );
                    return Err(AppError::Unavailable {
                        retry_after_secs: shared_core::http::RETRY_AFTER_UNAVAILABLE_SECS,
                    });
                }
                // The store gave up, but an attempt may have landed with its answer lost:
                // the submission exists exactly when the transaction did. Answering 503
                // then would make a form without an idempotency key post it again.
                Err(CommitError::Store(e)) => {
                    let tenant = &write.tenant;
                    shared_core::aws::landed_despite(e, || {
                        self.store
                            .submission_exists(tenant, &lead_id, &submission_id)
                    })
                    .await?;
                    if suppressed {
                        return Err(AppError::Unavailable {
                            retry_after_secs: shared_core::http::RETRY_AFTER_UNAVAILABLE_SECS,
                        });
                    }
                    note.crossed = write.usage.alerts.clone();
                    note.crossed_at = write.usage.expected.1 + 1;
                    note.received_at = Some(write.received_at);
                    return Ok(Committed::Done(Outcome::Accepted {
                        lead_id,
                        submission_id,
                        new_lead,
                    }));
                }
            }
        }
        tracing::warn!(
            attempts = MAX_ATTEMPTS,
            "submission not committed; answering 503"
        );
        Err(AppError::Unavailable {
            retry_after_secs: shared_core::http::RETRY_AFTER_UNAVAILABLE_SECS,
        })
    }

    /// The increment of the usage counter as `state` shows it (below the quota): the range its
    /// count must be in, the alerts crossing it marks, and the form's day count under its cap.
    fn usage_increment(
        &self,
        state: &UsageState,
        quota: u32,
        daily_cap: Option<u32>,
        now: OffsetDateTime,
    ) -> UsageIncrement {
        let (expected, alerts) = if self.alerts.is_some() {
            usage_range(state.month_count, quota)
        } else {
            ((0, quota.saturating_sub(1)), vec![])
        };
        let today = usage_day(now);
        UsageIncrement {
            month: usage_month(now),
            expected,
            alerts,
            daily: daily_cap.map(|cap| DailyIncrement {
                continues: state.form_day.as_ref().is_some_and(|d| d.day == today),
                day: today,
                cap,
            }),
            expires_at: usage_expires_at(now),
        }
    }

    /// Sends the alerts a submission crossed, or found due and claims; never fails the
    /// submission (its answer is decided).
    async fn notify(&self, note: AlertNote) {
        let (Some(alerts), Some(tenant)) = (&self.alerts, note.tenant.as_ref()) else {
            return;
        };
        if let (false, Some(at)) = (note.crossed.is_empty(), note.received_at) {
            self.send_alert(
                alerts.as_ref(),
                tenant,
                &note,
                &note.crossed,
                note.crossed_at,
                at,
            )
            .await;
        }
        let now = self.clock.now();
        if note.due.is_empty() {
            return;
        }
        let at_least = note
            .due
            .iter()
            .map(|p| alert_threshold(note.quota, *p))
            .max()
            .unwrap_or(note.quota);
        match self
            .store
            .claim_alerts(tenant, &note.month, &note.due, at_least, now)
            .await
        {
            Ok(true) => {
                self.send_alert(alerts.as_ref(), tenant, &note, &note.due, note.count, now)
                    .await
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = %format!("{e:#}"), "quota alert not claimed"),
        }
    }

    /// One email for the highest of `percents` (marked at `at`); the marks are removed again
    /// when it cannot be sent.
    async fn send_alert(
        &self,
        alerts: &dyn QuotaAlerts,
        tenant: &TenantId,
        note: &AlertNote,
        percents: &[u8],
        used: u32,
        at: OffsetDateTime,
    ) {
        let Some(percent) = percents.iter().max().copied() else {
            return;
        };
        let alert = QuotaAlert {
            tenant: tenant.clone(),
            month: note.month.clone(),
            percent,
            used,
            quota: note.quota,
        };
        match alerts.send(&alert).await {
            Ok(()) => tracing::info!(percent, "quota alert sent"),
            Err(e) => {
                // Only the outermost context: the provider's message could name the address.
                tracing::error!(error = %e, percent, "quota alert not sent");
                if let Err(e) = self
                    .store
                    .release_alerts(tenant, &note.month, percents, at)
                    .await
                {
                    tracing::error!(error = %format!("{e:#}"), "quota alert mark not released");
                }
            }
        }
    }

    /// The minute's rate-limit increment of a submission (past minutes' counts are left to the
    /// next accepted submission to remove).
    fn rate_increment(
        &self,
        window: i64,
        ip_hash: Option<String>,
        now: OffsetDateTime,
    ) -> RateIncrement {
        RateIncrement {
            window,
            ip_hash,
            per_ip_limit: self.settings.rate_limit_per_ip_per_minute,
            per_form_limit: self.settings.rate_limit_per_form_per_minute,
            expires_at: now + Duration::minutes(10),
            expired: vec![],
        }
    }

    /// The spam defence's layers over a validated submission.
    fn assess(
        &self,
        form: &FormRecord,
        tenant_spam: &shared_core::domain::TenantSpamLists,
        valid: &ValidSubmission,
        req: &IntakeRequest<'_>,
        now: OffsetDateTime,
    ) -> Assessment {
        let c = &valid.contact;
        let mut texts: Vec<&str> = valid.answers.values().map(String::as_str).collect();
        texts.extend(c.name.as_deref());
        texts.extend(c.company.as_deref());
        // The tenant's blocklists apply to every form, on top of the form's own.
        spam::assess(
            &self.pow,
            &tenant_spam.applied_to(&form.spam),
            &form.form_id,
            now,
            &spam::Submitted {
                pow: req.body.pow_solution(),
                idempotency_key: req.idempotency_key,
                email: c.email.as_ref().map(|e| e.as_str()),
                texts,
            },
        )
    }

    /// Keeps a submission apart: one transaction (the record, the challenge's guard, the
    /// idempotency record), no lead, no count. The answer looks like an accepted one.
    async fn quarantine(
        &self,
        q: Quarantine<'_>,
        req: &IntakeRequest<'_>,
        now: OffsetDateTime,
        mut assessment: Assessment,
    ) -> Result<Outcome, AppError> {
        let new_id = |prefix: &str| format!("{prefix}-{}", self.ids.new_id(now));
        let lead_id = match q.lead_hint {
            Some(l) => l,
            None => LeadId::parse(&new_id("ld")).map_err(|e| AppError::Internal(e.into()))?,
        };
        let submission_id =
            SubmissionId::parse(&new_id("sb")).map_err(|e| AppError::Internal(e.into()))?;
        let quarantine_id = new_id("qr");
        let sub = self.new_submission(q.form, q.valid, submission_id.clone(), req, now);
        for attempt in 1..=MAX_ATTEMPTS {
            let write = QuarantineWrite {
                tenant: q.tenant.clone(),
                record: QuarantinedSubmission {
                    quarantine_id: quarantine_id.clone(),
                    form_id: q.form.form_id.clone(),
                    received_at: now,
                    fields: sub.fields.clone(),
                    consents: sub.consents.clone(),
                    technical: sub.technical.clone(),
                    email_bidx: q.bidx.0.clone(),
                    phone_bidx: q.bidx.1.clone(),
                    score: assessment.score,
                    reasons: assessment
                        .reasons
                        .iter()
                        .map(|r| r.code().to_string())
                        .collect(),
                    expires_at: now + Duration::days(QUARANTINE_RETENTION_DAYS),
                    released: None,
                },
                challenge: used_challenge(
                    &assessment,
                    q.idem_hash.as_ref(),
                    now + self.settings.idempotency_ttl,
                ),
                idempotency: q.idem_hash.clone().map(|key_hash| IdempotencyRecord {
                    key_hash,
                    body_hash: q.body_hash.clone(),
                    lead_id: lead_id.clone(),
                    submission_id: submission_id.clone(),
                    expires_at: now + self.settings.idempotency_ttl,
                }),
                rate: q.rate.clone(),
                usage_month: usage_month(now),
                usage_expires_at: usage_expires_at(now),
            };
            match self.store.quarantine(&write).await {
                Ok(()) => {
                    return Ok(Outcome::Quarantined {
                        lead_id,
                        submission_id,
                        quarantine_id,
                        reasons: assessment.reasons,
                    })
                }
                Err(CommitError::ChallengeUsed) => {
                    assessment.add(Reason::PowReplayed, spam::SURE);
                    assessment.challenge = None;
                }
                Err(CommitError::IdempotencyKeyTaken) => {
                    let key_hash = q.idem_hash.clone().unwrap_or_default();
                    let record = self
                        .store
                        .idempotency_record(q.tenant, &q.form.form_id, &key_hash)
                        .await?
                        .ok_or_else(|| {
                            AppError::Internal(anyhow::anyhow!(
                                "idempotency record vanished after a conflict"
                            ))
                        })?;
                    return replay(record, &q.body_hash);
                }
                Err(CommitError::Conflict) if attempt < MAX_ATTEMPTS => {
                    let cap = 10u64 << attempt.min(6);
                    let wait = rand::random::<u64>() % cap + 5;
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                }
                Err(CommitError::Store(e)) => return Err(AppError::Internal(e)),
                // Over the minute's limit, like any submission from there: 429.
                Err(CommitError::RateLimited) => {
                    return Err(AppError::RateLimited {
                        retry_after_secs: q.retry_after,
                    })
                }
                Err(other) => {
                    tracing::warn!(error = %other, "quarantine not stored; answering 503");
                    break;
                }
            }
        }
        Err(AppError::Unavailable {
            retry_after_secs: shared_core::http::RETRY_AFTER_UNAVAILABLE_SECS,
        })
    }

    /// Releases a quarantined submission of the tenant's form: it becomes a lead as if it had
    /// been accepted when it arrived (its answers, consents and technical data, its time),
    /// counted against this month's quota and limits like a submission now. Idempotent: a
    /// released one answers the lead it became (`Replayed`).
    #[tracing::instrument(name = "release", skip_all, fields(form_id = %form_id, tenant_id = %tenant))]
    pub async fn release(
        &self,
        tenant: &TenantId,
        form_id: &FormId,
        quarantine_id: &str,
    ) -> Result<Outcome, AppError> {
        let mut note = AlertNote::default();
        let result = self
            .release_inner(tenant, form_id, quarantine_id, &mut note)
            .await;
        self.notify(note).await;
        result
    }

    async fn release_inner(
        &self,
        tenant: &TenantId,
        form_id: &FormId,
        quarantine_id: &str,
        note: &mut AlertNote,
    ) -> Result<Outcome, AppError> {
        let not_found = || AppError::NotFound("quarantine_not_found");
        let now = self.clock.now();
        for round in 1..=ROUTE_ROUNDS {
            let q = self
                .store
                .quarantined(tenant, form_id, quarantine_id, now)
                .await?
                .ok_or_else(not_found)?;
            if let Some((lead_id, submission_id)) = q.released.clone() {
                return Ok(Outcome::Replayed {
                    lead_id,
                    submission_id,
                });
            }
            let contact = ContactDetails {
                email: q.fields.get("email").and_then(|e| Email::parse(e).ok()),
                phone: q.fields.get("phone").and_then(|p| Phone::parse(p).ok()),
                name: q.fields.get("name").cloned(),
                company: q.fields.get("company").cloned(),
            };
            let email_bidx = contact.email.as_ref().map(|e| self.key.email(e));
            let phone_bidx = contact.phone.as_ref().map(|p| self.key.phone(p));
            let key = RouteKey::of(email_bidx.as_deref(), phone_bidx.as_deref());
            let probable_lead = key.as_ref().map(|k| self.key.lead_id(tenant, &k.bidx));
            let window = now.unix_timestamp().div_euclid(60);
            let mut snapshot = self
                .store
                .load(&IntakeLookup {
                    tenant: tenant.clone(),
                    form_id: form_id.clone(),
                    lead_id: probable_lead.clone(),
                    route_key: key.clone(),
                    contact_bidx: email_bidx
                        .iter()
                        .chain(phone_bidx.iter())
                        .cloned()
                        .collect(),
                    rate_window: window,
                    ip_hash: None,
                    idempotency_key_hash: None,
                    usage_month: usage_month(now),
                })
                .await?;
            let form = snapshot
                .form
                .take()
                .filter(|f| &f.tenant_id == tenant)
                .ok_or(AppError::NotFound("form_not_found"))?;
            if !matches!(
                snapshot.tenant.as_ref().map(|t| t.status),
                Some(TenantStatus::Active)
            ) {
                return Err(AppError::Forbidden {
                    code: "tenant_inactive",
                    message: "This account is not accepting submissions.",
                });
            }
            if snapshot.suppressed {
                return Err(AppError::Conflict {
                    code: "subject_suppressed",
                    message: "The person asked to be erased: their submission cannot become a lead. Delete it.",
                });
            }
            let limits = self.check_limits(&snapshot, &form, tenant, false, now, note)?;
            let (lead_id, routed) = self.decide_lead(
                &snapshot,
                key.as_ref(),
                key.as_ref(),
                probable_lead.as_ref(),
                now,
            )?;
            let submission_id = SubmissionId::parse(&format!("sb-{}", self.ids.new_id(now)))
                .map_err(|e| AppError::Internal(e.into()))?;
            let new_lead = !matches!((&routed, &key), (Routed::Existing(_), Some(_)));
            let submission = NewSubmission {
                submission_id: submission_id.clone(),
                form_id: form.form_id.clone(),
                received_at: q.received_at,
                fields: q.fields.clone(),
                consents: q.consents.clone(),
                technical: q.technical.clone(),
                technical_expires_on: (q.received_at
                    + Duration::days(self.settings.technical_data_retention_days))
                .date(),
                email_bidx: email_bidx.clone(),
                phone_bidx: phone_bidx.clone(),
            };
            let lead = match (&routed, &key) {
                (Routed::Existing(_), Some(k)) => LeadWrite::Touch(lead_id.clone(), k.clone()),
                _ => LeadWrite::Create(NewLead {
                    lead_id: lead_id.clone(),
                    contact: contact.clone(),
                    email_bidx: email_bidx.clone(),
                    phone_bidx: phone_bidx.clone(),
                    source_form: form.form_id.clone(),
                    created_at: q.received_at,
                    route: match routed {
                        Routed::NewRouted => key.clone(),
                        _ => None,
                    },
                }),
            };
            let write = IntakeWrite {
                tenant: tenant.clone(),
                form_id: form.form_id.clone(),
                received_at: now,
                record: Some(SubmissionRecord { lead, submission }),
                rate: RateIncrement {
                    window,
                    ip_hash: None,
                    per_ip_limit: self.settings.rate_limit_per_ip_per_minute,
                    per_form_limit: self.settings.rate_limit_per_form_per_minute,
                    expires_at: now + Duration::minutes(10),
                    expired: snapshot.rate_expired.clone(),
                },
                usage: self.usage_increment(&snapshot.usage, limits.quota, form.daily_cap, now),
                idempotency: None,
                challenge: None,
                release: Some(ReleaseMark {
                    quarantine_id: quarantine_id.to_string(),
                }),
            };
            let plan = Plan {
                tenant,
                form: &form,
                contact: &contact,
                email_bidx,
                phone_bidx,
                key: key.clone(),
                probable_lead,
                lead_id,
                submission_id,
                routed,
                new_lead,
                suppressed: false,
                limits,
                body_hash: String::new(),
                now,
            };
            match self.commit(plan, write, note).await? {
                Committed::Done(outcome) => return Ok(outcome),
                // Released by a concurrent request: answer what it became.
                Committed::AlreadyReleased => continue,
                Committed::ReadAgain if round < ROUTE_ROUNDS => continue,
                Committed::ReadAgain | Committed::ChallengeUsed => break,
            }
        }
        Err(AppError::Unavailable {
            retry_after_secs: shared_core::http::RETRY_AFTER_UNAVAILABLE_SECS,
        })
    }

    fn new_submission(
        &self,
        form: &FormRecord,
        valid: &ValidSubmission,
        submission_id: SubmissionId,
        req: &IntakeRequest<'_>,
        now: OffsetDateTime,
    ) -> NewSubmission {
        let mut fields: BTreeMap<String, String> = valid.answers.clone();
        let c = &valid.contact;
        for (k, v) in [
            ("email", c.email.as_ref().map(|e| e.as_str().to_string())),
            ("phone", c.phone.as_ref().map(|p| p.as_str().to_string())),
            ("name", c.name.clone()),
            ("company", c.company.clone()),
        ] {
            if let Some(v) = v {
                fields.insert(k.to_string(), v);
            }
        }
        // The page the form is on: what the script reported, else the browser's Referer.
        let page_url = valid
            .page_url
            .clone()
            .or_else(|| req.referer_header.map(|r| r.chars().take(1024).collect()));
        NewSubmission {
            submission_id,
            form_id: form.form_id.clone(),
            received_at: now,
            fields,
            consents: valid.consents.clone(),
            technical: TechnicalData::new(
                req.source_ip,
                req.user_agent,
                valid.referrer.clone(),
                page_url,
            ),
            technical_expires_on: (now
                + Duration::days(self.settings.technical_data_retention_days))
            .date(),
            email_bidx: None,
            phone_bidx: None,
        }
    }

    fn discarded(
        &self,
        now: OffsetDateTime,
        probable_lead: Option<LeadId>,
        reason: DiscardReason,
    ) -> Outcome {
        // The ids look exactly like a real answer's (a real lead of this person would have this
        // id), so the response does not reveal whether the person is suppressed.
        let lead_id = probable_lead.unwrap_or_else(|| {
            LeadId::parse(&format!("ld-{}", self.ids.new_id(now))).expect("valid id")
        });
        Outcome::Discarded {
            lead_id,
            submission_id: SubmissionId::parse(&format!("sb-{}", self.ids.new_id(now)))
                .expect("valid id"),
            reason,
        }
    }
}

/// What a quarantined submission is stored with, besides the request.
struct Quarantine<'a> {
    tenant: &'a TenantId,
    form: &'a FormRecord,
    valid: &'a ValidSubmission,
    /// The lead id the answer shows (as a real answer would: the person's lead, if known).
    lead_hint: Option<LeadId>,
    idem_hash: Option<String>,
    body_hash: String,
    bidx: (Option<String>, Option<String>),
    /// The minute's rate counts it adds to (not the month's: it is not counted in the quota).
    rate: RateIncrement,
    retry_after: u64,
}

fn form_disabled() -> AppError {
    AppError::Forbidden {
        code: "form_disabled",
        message: "This form is not accepting submissions.",
    }
}

/// The guard item marking the post's challenge used, if it needs one. A challenge issued for
/// the post's idempotency key (checked by [`spam::assess`]) is used once by the key's own
/// record, written in the same transaction under the condition that the key is new, as long as
/// the record outlives the challenge (`record_expires_at`): then it needs none.
fn used_challenge(
    assessment: &Assessment,
    idem_hash: Option<&String>,
    record_expires_at: OffsetDateTime,
) -> Option<UsedChallenge> {
    let v = assessment.challenge.as_ref()?;
    if v.bound.is_some() && idem_hash.is_some() && record_expires_at >= v.expires_at {
        return None;
    }
    Some(UsedChallenge {
        challenge: v.challenge.clone(),
        expires_at: v.expires_at,
    })
}

fn replay(record: IdempotencyRecord, body_hash: &str) -> Result<Outcome, AppError> {
    if record.body_hash != body_hash {
        return Err(AppError::Unprocessable {
            code: "idempotency_key_reused",
            message: "This Idempotency-Key was used with a different request body.",
        });
    }
    Ok(Outcome::Replayed {
        lead_id: record.lead_id,
        submission_id: record.submission_id,
    })
}

#[cfg(test)]
#[path = "intake_tests.rs"]
mod tests;
