//! An in-memory [`BillingStore`] with the DynamoDB adapter's semantics (the event record put only
//! if absent, every effect's condition checked before anything is applied). Tests only.

use std::collections::HashMap;
use std::sync::Mutex;

use super::model::{
    BillingInterval, BillingState, InvoiceView, PaymentRecord, Plan, PlanPrice, RefundRecord,
};
use super::ports::{
    BillingOverview, BillingStore, CheckoutSnapshot, CustomerLink, Effect, EventCommitError,
    EventLookup, EventRecord, EventSnapshot, EventWrite, StateGuard,
};
use super::InvoiceRecord;
use shared_core::domain::TenantId;

/// (provider, provider id)
pub type ProviderKey = (String, String);

#[derive(Debug, Default)]
pub struct MemoryBillingState {
    pub events: HashMap<ProviderKey, EventRecord>,
    pub customers: HashMap<ProviderKey, CustomerLink>,
    pub states: HashMap<TenantId, BillingState>,
    pub invoices: HashMap<(TenantId, String), InvoiceRecord>,
    pub payments: Vec<(TenantId, PaymentRecord)>,
    pub refunds: HashMap<(TenantId, String), RefundRecord>,
    /// (provider, event type) -> count
    pub counters: HashMap<ProviderKey, u64>,
    pub plans: HashMap<ProviderKey, Plan>,
    /// (plan, provider, interval) -> price
    pub plan_prices: HashMap<(String, String, BillingInterval), PlanPrice>,
    /// (tenant, month) -> submissions
    pub usage: HashMap<(TenantId, String), u32>,
}

#[derive(Debug, Default)]
pub struct MemoryBillingStore {
    pub state: Mutex<MemoryBillingState>,
    pub calls: Mutex<Vec<&'static str>>,
}

impl MemoryBillingStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, MemoryBillingState> {
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

    pub fn add_plan_price(&self, price: PlanPrice) {
        self.lock().plan_prices.insert(
            (price.plan.clone(), price.provider.clone(), price.interval),
            price,
        );
    }

    pub fn add_plan(&self, plan: Plan) {
        self.lock().plans.insert(
            (plan.provider.clone(), plan.price_id.as_str().to_string()),
            plan,
        );
    }
}

fn pk(provider: &str, id: &impl AsRef<str>) -> ProviderKey {
    (provider.to_string(), id.as_ref().to_string())
}

fn holds(st: &MemoryBillingState, e: &Effect) -> bool {
    match e {
        Effect::LinkCustomer {
            provider,
            customer_id,
            tenant,
            ..
        } => st
            .customers
            .get(&pk(provider, customer_id))
            .is_none_or(|l| &l.tenant == tenant),
        Effect::CustomerDeleted {
            provider,
            customer_id,
            ..
        } => st.customers.contains_key(&pk(provider, customer_id)),
        Effect::Subscription { tenant, guard, .. } => {
            let cur = st.states.get(tenant);
            let sub = cur.and_then(|c| c.subscription_id.as_ref());
            let last = cur.and_then(|c| c.last_event_created);
            match guard {
                StateGuard::NoSubscription => sub.is_none(),
                StateGuard::Same {
                    subscription_id,
                    created,
                } => sub == Some(subscription_id) && last.is_some_and(|l| l <= *created),
                StateGuard::Replace {
                    subscription_id,
                    last_event_created,
                } => sub == Some(subscription_id) && last == *last_event_created,
            }
        }
        Effect::Invoice { tenant, invoice } => st
            .invoices
            .get(&(tenant.clone(), invoice.invoice_id.as_str().to_string()))
            .is_none_or(|old| old.last_event_created <= invoice.last_event_created),
        Effect::Refund { tenant, refund } => st
            .refunds
            .get(&(tenant.clone(), refund.charge_id.as_str().to_string()))
            .is_none_or(|old| old.last_event_created <= refund.last_event_created),
        Effect::SetCustomer { .. } | Effect::Payment { .. } | Effect::CountEventType { .. } => true,
    }
}

fn apply(st: &mut MemoryBillingState, e: &Effect) {
    match e {
        Effect::LinkCustomer {
            provider,
            customer_id,
            tenant,
            ..
        } => {
            st.customers.insert(
                pk(provider, customer_id),
                CustomerLink {
                    tenant: tenant.clone(),
                    deleted: false,
                    erased: false,
                },
            );
        }
        Effect::SetCustomer {
            tenant,
            provider,
            customer_id,
            at,
        } => {
            let s = st.states.entry(tenant.clone()).or_default();
            s.tenant_id = Some(tenant.clone());
            s.provider = Some(provider.clone());
            s.customer_id = Some(customer_id.clone());
            s.updated_at = Some(*at);
        }
        Effect::CustomerDeleted {
            provider,
            customer_id,
            ..
        } => {
            if let Some(l) = st.customers.get_mut(&pk(provider, customer_id)) {
                l.deleted = true;
            }
        }
        Effect::Subscription { tenant, state, .. } => {
            st.states.insert(tenant.clone(), state.clone());
        }
        Effect::Invoice { tenant, invoice } => {
            st.invoices.insert(
                (tenant.clone(), invoice.invoice_id.as_str().to_string()),
                invoice.clone(),
            );
        }
        Effect::Payment { tenant, payment } => st.payments.push((tenant.clone(), payment.clone())),
        Effect::Refund { tenant, refund } => {
            st.refunds.insert(
                (tenant.clone(), refund.charge_id.as_str().to_string()),
                refund.clone(),
            );
        }
        Effect::CountEventType {
            provider,
            event_type,
            ..
        } => *st.counters.entry(pk(provider, event_type)).or_default() += 1,
    }
}

impl BillingStore for MemoryBillingStore {
    async fn load(&self, l: &EventLookup) -> anyhow::Result<EventSnapshot> {
        self.record("load");
        let st = self.lock();
        Ok(EventSnapshot {
            already_recorded: st.events.contains_key(&pk(&l.provider, &l.event_id)),
            customer: l
                .customer_id
                .as_ref()
                .and_then(|c| st.customers.get(&pk(&l.provider, c)).cloned()),
            state: l
                .tenant
                .as_ref()
                .filter(|_| l.want_state)
                .and_then(|t| st.states.get(t).cloned()),
            plan: l
                .price_id
                .as_ref()
                .and_then(|p| st.plans.get(&pk(&l.provider, p)).cloned()),
        })
    }

    async fn billing_state(&self, tenant: &TenantId) -> anyhow::Result<Option<BillingState>> {
        self.record("billing_state");
        Ok(self.lock().states.get(tenant).cloned())
    }

    async fn commit(&self, w: &EventWrite) -> Result<(), EventCommitError> {
        self.record("commit");
        let mut st = self.lock();
        let r = &w.record;
        if st.events.contains_key(&pk(&r.provider, &r.event_id)) {
            return Err(EventCommitError::AlreadyRecorded);
        }
        if let Some(i) = w.effects.iter().position(|e| !holds(&st, e)) {
            return Err(EventCommitError::EffectCondition(i));
        }
        st.events.insert(pk(&r.provider, &r.event_id), r.clone());
        for e in &w.effects {
            apply(&mut st, e);
        }
        Ok(())
    }

    async fn overview(&self, tenant: &TenantId, month: &str) -> anyhow::Result<BillingOverview> {
        self.record("overview");
        let st = self.lock();
        Ok(BillingOverview {
            state: st.states.get(tenant).cloned(),
            submissions_this_month: st
                .usage
                .get(&(tenant.clone(), month.to_string()))
                .copied()
                .unwrap_or(0),
        })
    }

    async fn checkout_lookup(
        &self,
        tenant: &TenantId,
        provider: &str,
        plan: &str,
        interval: BillingInterval,
    ) -> anyhow::Result<CheckoutSnapshot> {
        self.record("checkout_lookup");
        let st = self.lock();
        Ok(CheckoutSnapshot {
            state: st.states.get(tenant).cloned(),
            price: st
                .plan_prices
                .get(&(plan.to_string(), provider.to_string(), interval))
                .cloned(),
        })
    }

    async fn invoices(&self, tenant: &TenantId) -> anyhow::Result<Vec<InvoiceView>> {
        self.record("invoices");
        let st = self.lock();
        let mut out: Vec<InvoiceView> = st
            .invoices
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|(_, inv)| InvoiceView {
                invoice: inv.clone(),
                payments: st
                    .payments
                    .iter()
                    .filter(|(t, p)| t == tenant && p.invoice_id == inv.invoice_id)
                    .map(|(_, p)| p.clone())
                    .collect(),
                refunds: st
                    .refunds
                    .iter()
                    .filter(|((t, _), r)| {
                        t == tenant && r.invoice_id.as_ref() == Some(&inv.invoice_id)
                    })
                    .map(|(_, r)| r.clone())
                    .collect(),
            })
            .collect();
        for v in &mut out {
            v.payments.sort_by_key(|p| p.at);
        }
        out.sort_by(|a, b| {
            b.invoice
                .issued_at
                .cmp(&a.invoice.issued_at)
                .then_with(|| b.invoice.invoice_id.cmp(&a.invoice.invoice_id))
        });
        Ok(out)
    }
}
