//! In-memory implementations of the ports, with the same semantics as the DynamoDB adapters
//! (conditional writes, atomic commits). Compiled only for tests (`test-support` feature).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use crate::ports::{
    CommitError, FormAdmin, FormDayCount, IdempotencyRecord, IntakeLookup, IntakeSnapshot,
    IntakeStore, IntakeWrite, LeadWrite, NewLead, NewSubmission, QuarantineWrite,
    QuarantinedSubmission, UsageState,
};
use shared_billing::BillingState;
use shared_core::domain::{FormId, FormRecord, LeadId, TenantId, TenantRecord};

/// (tenant, form, minute window)
pub type RateKey = (TenantId, FormId, i64);
/// (form count, per-IP-hash counts)
pub type RateCounts = (u32, HashMap<String, u32>);

pub use shared_billing::memory::MemoryBillingStore;

#[derive(Debug, Default)]
pub struct MemoryState {
    pub tenants: HashMap<TenantId, TenantRecord>,
    pub forms: HashMap<FormId, FormRecord>,
    pub leads: HashMap<(TenantId, LeadId), (NewLead, u32)>,
    pub submissions: BTreeMap<(TenantId, LeadId, String), NewSubmission>,
    pub suppressed: HashSet<(TenantId, String)>,
    /// Route items: (tenant, address blind index) -> the lead the address leads to.
    pub routes: HashMap<(TenantId, String), LeadId>,
    pub rates: HashMap<RateKey, RateCounts>,
    pub idempotency: HashMap<(TenantId, FormId, String), IdempotencyRecord>,
    /// Tenants' billing states (absent: the free tier).
    pub billing: HashMap<TenantId, BillingState>,
    /// (tenant, `YYYY-MM`) -> submissions counted against the quota.
    pub usage: HashMap<(TenantId, String), u32>,
    /// (tenant, `YYYY-MM`, form) -> the form's day (`YYYY-MM-DD`) and its count that day.
    pub form_days: HashMap<(TenantId, String, FormId), (String, u32)>,
    /// (tenant, `YYYY-MM`) -> quota alerts (percent) marked sent, and when.
    pub alerts: HashMap<(TenantId, String), BTreeMap<u8, time::OffsetDateTime>>,
    /// (tenant, form, quarantine id) -> a quarantined submission.
    pub quarantine: BTreeMap<(TenantId, FormId, String), QuarantinedSubmission>,
    /// (tenant, challenge) of the proof-of-work challenges used.
    pub used_challenges: HashSet<(TenantId, String)>,
}

impl MemoryState {
    /// The usage counter of `month` as the DynamoDB item would show it, for `form`.
    pub fn usage_state(&self, tenant: &TenantId, month: &str, form: &FormId) -> UsageState {
        let k = (tenant.clone(), month.to_string());
        UsageState {
            month_count: self.usage.get(&k).copied().unwrap_or(0),
            form_day: self
                .form_days
                .get(&(tenant.clone(), month.to_string(), form.clone()))
                .map(|(day, count)| FormDayCount {
                    day: day.clone(),
                    count: *count,
                }),
            alerts_sent: self
                .alerts
                .get(&k)
                .map(|m| m.keys().copied().collect())
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    pub state: Mutex<MemoryState>,
    /// Counts calls, so tests can assert the request shape the DynamoDB adapter would have.
    pub calls: Mutex<Vec<&'static str>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, call: &'static str) {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
    }

    pub fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn suppress(&self, tenant: &TenantId, contact_bidx: &str) {
        self.lock()
            .suppressed
            .insert((tenant.clone(), contact_bidx.to_string()));
    }
}

/// A stored lead's routing key (`crate::routing`).
fn routing_key(lead: &NewLead) -> Option<crate::routing::RouteKey> {
    crate::routing::RouteKey::of(lead.email_bidx.as_deref(), lead.phone_bidx.as_deref())
}

impl IntakeStore for MemoryStore {
    async fn form_tenant(&self, form: &FormId) -> anyhow::Result<Option<TenantId>> {
        self.record("form_tenant");
        Ok(self.lock().forms.get(form).map(|f| f.tenant_id.clone()))
    }

    async fn form(&self, form: &FormId) -> anyhow::Result<Option<FormRecord>> {
        self.record("form");
        Ok(self.lock().forms.get(form).cloned())
    }

    async fn load(&self, l: &IntakeLookup) -> anyhow::Result<IntakeSnapshot> {
        self.record("load");
        let st = self.lock();
        let rate = st
            .rates
            .get(&(l.tenant.clone(), l.form_id.clone(), l.rate_window));
        Ok(IntakeSnapshot {
            form: st.forms.get(&l.form_id).cloned(),
            tenant: st.tenants.get(&l.tenant).cloned(),
            tenant_spam: Default::default(),
            lead_exists: l
                .lead_id
                .as_ref()
                .is_some_and(|id| st.leads.contains_key(&(l.tenant.clone(), id.clone()))),
            lead_owned_by_key: match (&l.lead_id, &l.route_key) {
                (Some(id), Some(k)) => st
                    .leads
                    .get(&(l.tenant.clone(), id.clone()))
                    .is_some_and(|(lead, _)| routing_key(lead).as_ref() == Some(k)),
                _ => false,
            },
            routed_lead: l
                .route_key
                .as_ref()
                .and_then(|k| st.routes.get(&(l.tenant.clone(), k.bidx.clone())).cloned()),
            suppressed: l
                .contact_bidx
                .iter()
                .any(|b| st.suppressed.contains(&(l.tenant.clone(), b.clone()))),
            rate_form_count: rate.map(|r| r.0).unwrap_or(0),
            rate_ip_count: match (rate, &l.ip_hash) {
                (Some(r), Some(h)) => r.1.get(h).copied().unwrap_or(0),
                _ => 0,
            },
            rate_expired: Vec::new(),
            idempotency: l.idempotency_key_hash.as_ref().and_then(|h| {
                st.idempotency
                    .get(&(l.tenant.clone(), l.form_id.clone(), h.clone()))
                    .cloned()
            }),
            billing: st.billing.get(&l.tenant).cloned(),
            usage: st.usage_state(&l.tenant, &l.usage_month, &l.form_id),
        })
    }

    async fn commit(&self, w: &IntakeWrite) -> Result<(), CommitError> {
        self.record("commit");
        let mut st = self.lock();
        let form = w.form_id.clone();
        // Check every condition first, then apply everything: all or nothing.
        if let Some(rec) = &w.idempotency {
            if let Some(old) =
                st.idempotency
                    .get(&(w.tenant.clone(), form.clone(), rec.key_hash.clone()))
            {
                if old.expires_at > w.received_at {
                    return Err(CommitError::IdempotencyKeyTaken);
                }
            }
        }
        let rate_key = (w.tenant.clone(), form.clone(), w.rate.window);
        if let Some((count, ips)) = st.rates.get(&rate_key) {
            let ip_count = w
                .rate
                .ip_hash
                .as_ref()
                .and_then(|h| ips.get(h))
                .copied()
                .unwrap_or(0);
            if *count >= w.rate.per_form_limit || ip_count >= w.rate.per_ip_limit {
                return Err(CommitError::RateLimited);
            }
        }
        let usage_key = (w.tenant.clone(), w.usage.month.clone());
        let day_key = (w.tenant.clone(), w.usage.month.clone(), form.clone());
        let usage = st.usage_state(&w.tenant, &w.usage.month, &form);
        let (lo, hi) = w.usage.expected;
        let in_range = (lo..=hi).contains(&usage.month_count);
        let day_ok = match (&w.usage.daily, &usage.form_day) {
            (None, _) => true,
            (Some(d), Some(stored)) if d.continues => stored.day == d.day && stored.count < d.cap,
            (Some(d), stored) if !d.continues => stored.as_ref().is_none_or(|s| s.day < d.day),
            _ => false,
        };
        if !in_range || !day_ok {
            return Err(CommitError::UsageMoved(usage));
        }
        if let Some(c) = &w.challenge {
            if st
                .used_challenges
                .contains(&(w.tenant.clone(), c.challenge.clone()))
            {
                return Err(CommitError::ChallengeUsed);
            }
        }
        if let Some(r) = &w.release {
            let q = st
                .quarantine
                .get(&(w.tenant.clone(), form.clone(), r.quarantine_id.clone()));
            if q.is_none_or(|q| q.released.is_some()) {
                return Err(CommitError::AlreadyReleased);
            }
        }
        if let Some(record) = &w.record {
            let lead_key = (w.tenant.clone(), record.lead.lead_id().clone());
            match &record.lead {
                LeadWrite::Create(_) if st.leads.contains_key(&lead_key) => {
                    return Err(CommitError::LeadAlreadyExists)
                }
                LeadWrite::Touch(_, key)
                    if !st
                        .leads
                        .get(&lead_key)
                        .is_some_and(|(lead, _)| routing_key(lead).as_ref() == Some(key)) =>
                {
                    return Err(CommitError::LeadMissing)
                }
                LeadWrite::Create(NewLead {
                    route: Some(key), ..
                }) if st
                    .routes
                    .contains_key(&(w.tenant.clone(), key.bidx.clone())) =>
                {
                    return Err(CommitError::Rerouted)
                }
                _ => {}
            }
            match &record.lead {
                LeadWrite::Create(new) => {
                    if let Some(key) = &new.route {
                        st.routes
                            .insert((w.tenant.clone(), key.bidx.clone()), new.lead_id.clone());
                    }
                    st.leads.insert(lead_key.clone(), (new.clone(), 1));
                }
                LeadWrite::Touch(..) => {
                    if let Some(entry) = st.leads.get_mut(&lead_key) {
                        entry.1 += 1;
                    }
                }
            }
            st.submissions.insert(
                (
                    lead_key.0,
                    lead_key.1,
                    record.submission.submission_id.as_str().to_string(),
                ),
                record.submission.clone(),
            );
        }
        if let Some(c) = &w.challenge {
            st.used_challenges
                .insert((w.tenant.clone(), c.challenge.clone()));
        }
        if let (Some(r), Some(record)) = (&w.release, &w.record) {
            let released = (
                record.lead.lead_id().clone(),
                record.submission.submission_id.clone(),
            );
            if let Some(q) =
                st.quarantine
                    .get_mut(&(w.tenant.clone(), form.clone(), r.quarantine_id.clone()))
            {
                // Its personal data moved to the lead: the record keeps what it became.
                q.fields.clear();
                q.consents.clear();
                q.technical = Default::default();
                q.released = Some(released);
            }
        }
        *st.usage.entry(usage_key.clone()).or_default() += 1;
        for p in &w.usage.alerts {
            st.alerts
                .entry(usage_key.clone())
                .or_default()
                .insert(*p, w.received_at);
        }
        if let Some(d) = &w.usage.daily {
            let entry = st.form_days.entry(day_key).or_insert((d.day.clone(), 0));
            if !d.continues {
                *entry = (d.day.clone(), 0);
            }
            entry.1 += 1;
        }
        let entry = st.rates.entry(rate_key).or_default();
        entry.0 += 1;
        if let Some(h) = &w.rate.ip_hash {
            *entry.1.entry(h.clone()).or_default() += 1;
        }
        if let Some(rec) = &w.idempotency {
            st.idempotency
                .insert((w.tenant.clone(), form, rec.key_hash.clone()), rec.clone());
        }
        Ok(())
    }

    async fn quarantine(&self, w: &QuarantineWrite) -> Result<(), CommitError> {
        self.record("quarantine");
        let mut st = self.lock();
        let form = w.record.form_id.clone();
        if let Some(rec) = &w.idempotency {
            if let Some(old) =
                st.idempotency
                    .get(&(w.tenant.clone(), form.clone(), rec.key_hash.clone()))
            {
                if old.expires_at > w.record.received_at {
                    return Err(CommitError::IdempotencyKeyTaken);
                }
            }
        }
        let rate_key = (w.tenant.clone(), form.clone(), w.rate.window);
        if let Some((count, ips)) = st.rates.get(&rate_key) {
            let ip_count = w
                .rate
                .ip_hash
                .as_ref()
                .and_then(|h| ips.get(h))
                .copied()
                .unwrap_or(0);
            if *count >= w.rate.per_form_limit || ip_count >= w.rate.per_ip_limit {
                return Err(CommitError::RateLimited);
            }
        }
        if let Some(c) = &w.challenge {
            if st
                .used_challenges
                .contains(&(w.tenant.clone(), c.challenge.clone()))
            {
                return Err(CommitError::ChallengeUsed);
            }
            st.used_challenges
                .insert((w.tenant.clone(), c.challenge.clone()));
        }
        let entry = st.rates.entry(rate_key).or_default();
        entry.0 += 1;
        if let Some(h) = &w.rate.ip_hash {
            *entry.1.entry(h.clone()).or_default() += 1;
        }
        if let Some(rec) = &w.idempotency {
            st.idempotency.insert(
                (w.tenant.clone(), form.clone(), rec.key_hash.clone()),
                rec.clone(),
            );
        }
        st.quarantine.insert(
            (w.tenant.clone(), form, w.record.quarantine_id.clone()),
            w.record.clone(),
        );
        Ok(())
    }

    async fn recent_quarantined(
        &self,
        tenant: &TenantId,
        form: &FormId,
        now: time::OffsetDateTime,
    ) -> anyhow::Result<u32> {
        self.record("recent_quarantined");
        let from = crate::spam::pressure_window(now) - crate::spam::PRESSURE_WINDOW_SECS;
        let st = self.lock();
        Ok(st
            .quarantine
            .iter()
            .filter(|((t, f, _), q)| {
                t == tenant && f == form && q.received_at.unix_timestamp() >= from
            })
            .count() as u32)
    }

    async fn quarantined(
        &self,
        tenant: &TenantId,
        form: &FormId,
        quarantine_id: &str,
        now: time::OffsetDateTime,
    ) -> anyhow::Result<Option<QuarantinedSubmission>> {
        self.record("quarantined");
        Ok(self
            .lock()
            .quarantine
            .get(&(tenant.clone(), form.clone(), quarantine_id.to_string()))
            .filter(|q| q.expires_at > now)
            .cloned())
    }

    async fn submission_exists(
        &self,
        tenant: &TenantId,
        lead: &LeadId,
        submission: &shared_core::domain::SubmissionId,
    ) -> anyhow::Result<bool> {
        self.record("submission_exists");
        Ok(self.lock().submissions.contains_key(&(
            tenant.clone(),
            lead.clone(),
            submission.as_str().to_string(),
        )))
    }

    async fn idempotency_record(
        &self,
        tenant: &TenantId,
        form: &FormId,
        key_hash: &str,
    ) -> anyhow::Result<Option<IdempotencyRecord>> {
        self.record("idempotency_record");
        Ok(self
            .lock()
            .idempotency
            .get(&(tenant.clone(), form.clone(), key_hash.to_string()))
            .cloned())
    }

    async fn claim_alerts(
        &self,
        tenant: &TenantId,
        month: &str,
        percents: &[u8],
        count_at_least: u32,
        at: time::OffsetDateTime,
    ) -> anyhow::Result<bool> {
        self.record("claim_alerts");
        let mut st = self.lock();
        let k = (tenant.clone(), month.to_string());
        let count = st.usage.get(&k).copied().unwrap_or(0);
        let marks = st.alerts.entry(k).or_default();
        if percents.is_empty()
            || count < count_at_least
            || percents.iter().any(|p| marks.contains_key(p))
        {
            return Ok(false);
        }
        for p in percents {
            marks.insert(*p, at);
        }
        Ok(true)
    }

    async fn release_alerts(
        &self,
        tenant: &TenantId,
        month: &str,
        percents: &[u8],
        at: time::OffsetDateTime,
    ) -> anyhow::Result<()> {
        self.record("release_alerts");
        let mut st = self.lock();
        if let Some(marks) = st.alerts.get_mut(&(tenant.clone(), month.to_string())) {
            for p in percents {
                if marks.get(p) == Some(&at) {
                    marks.remove(p);
                }
            }
        }
        Ok(())
    }
}

impl FormAdmin for MemoryStore {
    async fn put_tenant(&self, t: &TenantRecord) -> anyhow::Result<()> {
        self.lock().tenants.insert(t.tenant_id.clone(), t.clone());
        Ok(())
    }

    async fn put_form(&self, f: &FormRecord) -> anyhow::Result<()> {
        self.lock().forms.insert(f.form_id.clone(), f.clone());
        Ok(())
    }
}
