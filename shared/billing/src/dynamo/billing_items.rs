//! Billing items <-> billing records: the attributes each item holds (declared in
//! `shared/privacy/src/inventory.rs`), and how a tenant's items group into its invoices.

use anyhow::{anyhow, Context};
use aws_sdk_dynamodb::types::AttributeValue;
use time::{Date, OffsetDateTime};

use crate::ports::EventRecord;
use crate::{
    BillingInterval, BillingState, Entitlements, InvoiceRecord, InvoiceView, PaymentOutcome,
    PaymentRecord, Plan, PlanPrice, ProviderId, RefundRecord, SubscriptionStatus,
};
use shared_core::domain::TenantId;
use shared_core::dynamo::attrs::{
    epoch, get_n_opt, get_s, item, n, put, put_opt, s, timestamp, Item,
};
use shared_core::keys::{self, SK};

// ------------------------------------------------------------------ attribute helpers

fn opt_s<'a>(it: &'a Item, name: &str) -> Option<&'a str> {
    it.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn opt_id(it: &Item, name: &str) -> Option<ProviderId> {
    opt_s(it, name).and_then(ProviderId::parse)
}

fn req_id(it: &Item, name: &str) -> anyhow::Result<ProviderId> {
    opt_id(it, name).ok_or_else(|| anyhow!("attribute {name} missing or not a provider id"))
}

fn opt_ts(it: &Item, name: &str) -> anyhow::Result<Option<OffsetDateTime>> {
    opt_s(it, name)
        .map(|raw| {
            OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("{name} is not RFC 3339"))
        })
        .transpose()
}

fn req_ts(it: &Item, name: &str) -> anyhow::Result<OffsetDateTime> {
    opt_ts(it, name)?.ok_or_else(|| anyhow!("{name} missing"))
}

fn put_ts(it: &mut Item, name: &str, t: Option<OffsetDateTime>) {
    if let Some(t) = t {
        put(it, name, timestamp(t));
    }
}

fn put_id(it: &mut Item, name: &str, id: Option<&ProviderId>) {
    put_opt(it, name, id.map(ProviderId::as_str));
}

fn date_s(d: Date) -> AttributeValue {
    s(d.to_string())
}

/// The expiry-index bucket of a billing record: retention deletes it on its `retain_until` day
/// (unless under legal hold; docs/retention.md).
fn put_retention_bucket(it: &mut Item, retain_until: Date) {
    let key = keys::Key {
        pk: opt_s(it, "pk").unwrap_or_default().to_string(),
        sk: opt_s(it, "sk").unwrap_or_default().to_string(),
    };
    let bucket = shared_core::retention::expiry_bucket_for(
        shared_core::retention::rule::BILLING,
        retain_until,
        &key,
    );
    put(it, "exp_bucket", s(bucket));
}

fn req_date(it: &Item, name: &str) -> anyhow::Result<Date> {
    let raw = get_s(it, name)?;
    Date::parse(
        raw,
        &time::macros::format_description!("[year]-[month]-[day]"),
    )
    .with_context(|| format!("{name} is not a date"))
}

pub(super) fn n_u32(it: &Item, name: &str) -> anyhow::Result<u32> {
    Ok(get_n_opt(it, name)?.unwrap_or(0).clamp(0, u32::MAX as i64) as u32)
}

fn req_n(it: &Item, name: &str) -> anyhow::Result<i64> {
    get_n_opt(it, name)?.ok_or_else(|| anyhow!("attribute {name} missing"))
}

pub(super) fn tenant_of(it: &Item) -> anyhow::Result<TenantId> {
    Ok(TenantId::parse(get_s(it, "tenant_id")?)?)
}

// ------------------------------------------------------------------ items

pub fn plan_to_item(p: &Plan) -> Item {
    let mut it = item(&keys::plan_by_price(&p.provider, &p.price_id));
    put(&mut it, "provider", s(&p.provider));
    put(&mut it, "price_id", s(p.price_id.as_str()));
    put(&mut it, "plan", s(&p.name));
    put(
        &mut it,
        "monthly_submissions",
        n(p.entitlements.monthly_submissions),
    );
    put(&mut it, "seats", n(p.entitlements.seats));
    put(&mut it, "forms", n(p.entitlements.forms));
    it
}

pub fn plan_price_to_item(p: &PlanPrice) -> Item {
    let mut it = item(&keys::plan_price(&p.plan, &p.provider, p.interval.as_str()));
    put(&mut it, "plan", s(&p.plan));
    put(&mut it, "provider", s(&p.provider));
    put(&mut it, "interval", s(p.interval.as_str()));
    put(&mut it, "price_id", s(p.price_id.as_str()));
    it
}

pub fn plan_price_from_item(it: &Item) -> anyhow::Result<PlanPrice> {
    Ok(PlanPrice {
        plan: get_s(it, "plan")?.to_string(),
        provider: get_s(it, "provider")?.to_string(),
        interval: BillingInterval::parse(get_s(it, "interval")?)
            .ok_or_else(|| anyhow!("interval is not month or year"))?,
        price_id: req_id(it, "price_id")?,
    })
}

fn entitlements_from(it: &Item) -> anyhow::Result<Option<Entitlements>> {
    if !it.contains_key("monthly_submissions") {
        return Ok(None);
    }
    Ok(Some(Entitlements {
        monthly_submissions: n_u32(it, "monthly_submissions")?,
        seats: n_u32(it, "seats")?,
        forms: n_u32(it, "forms")?,
    }))
}

pub fn plan_from_item(it: &Item) -> anyhow::Result<Plan> {
    Ok(Plan {
        provider: get_s(it, "provider")?.to_string(),
        price_id: req_id(it, "price_id")?,
        name: get_s(it, "plan")?.to_string(),
        entitlements: entitlements_from(it)?.ok_or_else(|| anyhow!("plan without entitlements"))?,
    })
}

pub fn billing_state_to_item(tenant: &TenantId, st: &BillingState) -> Item {
    let mut it = item(&keys::subscription_state(tenant));
    put(&mut it, "tenant_id", s(tenant.as_str()));
    put_opt(&mut it, "provider", st.provider.clone());
    put_id(&mut it, "customer_id", st.customer_id.as_ref());
    put_id(&mut it, "subscription_id", st.subscription_id.as_ref());
    put_id(&mut it, "price_id", st.price_id.as_ref());
    put_opt(&mut it, "plan", st.plan.clone());
    if let Some(e) = st.entitlements {
        put(&mut it, "monthly_submissions", n(e.monthly_submissions));
        put(&mut it, "seats", n(e.seats));
        put(&mut it, "forms", n(e.forms));
    }
    put_opt(&mut it, "status", st.status.map(SubscriptionStatus::as_str));
    put_ts(&mut it, "status_since", st.status_since);
    put_ts(&mut it, "current_period_end", st.current_period_end);
    put(
        &mut it,
        "cancel_at_period_end",
        AttributeValue::Bool(st.cancel_at_period_end),
    );
    put_ts(&mut it, "cancel_at", st.cancel_at);
    put_ts(&mut it, "canceled_at", st.canceled_at);
    put_ts(&mut it, "ended_at", st.ended_at);
    put_ts(&mut it, "trial_end", st.trial_end);
    if let Some(c) = st.last_event_created {
        put(&mut it, "last_event_created", n(c));
    }
    put_opt(&mut it, "last_event_id", st.last_event_id.clone());
    put_ts(&mut it, "updated_at", st.updated_at);
    it
}

pub fn billing_state_from_item(it: &Item) -> anyhow::Result<BillingState> {
    Ok(BillingState {
        tenant_id: opt_s(it, "tenant_id").and_then(|t| TenantId::parse(t).ok()),
        provider: opt_s(it, "provider").map(str::to_string),
        customer_id: opt_id(it, "customer_id"),
        subscription_id: opt_id(it, "subscription_id"),
        price_id: opt_id(it, "price_id"),
        plan: opt_s(it, "plan").map(str::to_string),
        entitlements: entitlements_from(it)?,
        status: opt_s(it, "status")
            .map(|x| SubscriptionStatus::parse(x).ok_or_else(|| anyhow!("unknown status {x}")))
            .transpose()?,
        status_since: opt_ts(it, "status_since")?,
        current_period_end: opt_ts(it, "current_period_end")?,
        cancel_at_period_end: it
            .get("cancel_at_period_end")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        cancel_at: opt_ts(it, "cancel_at")?,
        canceled_at: opt_ts(it, "canceled_at")?,
        ended_at: opt_ts(it, "ended_at")?,
        trial_end: opt_ts(it, "trial_end")?,
        last_event_created: get_n_opt(it, "last_event_created")?,
        last_event_id: opt_s(it, "last_event_id").map(str::to_string),
        updated_at: opt_ts(it, "updated_at")?,
    })
}

pub(super) fn event_item(r: &EventRecord) -> Item {
    let mut it = item(&keys::billing_event(&r.provider, &r.event_id));
    put(&mut it, "provider", s(&r.provider));
    put(&mut it, "event_id", s(r.event_id.as_str()));
    put(&mut it, "event_type", s(&r.event_type));
    put(&mut it, "created", n(r.created));
    put(&mut it, "received_at", timestamp(r.received_at));
    put(&mut it, "outcome", s(r.outcome.as_str()));
    put_opt(
        &mut it,
        "tenant_id",
        r.tenant.as_ref().map(TenantId::as_str),
    );
    put_id(&mut it, "object_id", r.object_id.as_ref());
    put(&mut it, "expires_at", epoch(r.expires_at));
    it
}

pub(super) fn invoice_item(tenant: &TenantId, i: &InvoiceRecord) -> Item {
    let mut it = item(&keys::invoice(tenant, &i.invoice_id));
    put(&mut it, "tenant_id", s(tenant.as_str()));
    put(&mut it, "provider", s(&i.provider));
    put(&mut it, "invoice_id", s(i.invoice_id.as_str()));
    put_opt(&mut it, "number", i.number.clone());
    put(&mut it, "status", s(&i.status));
    put(&mut it, "currency", s(&i.currency));
    put(&mut it, "amount_due", n(i.amount_due));
    put(&mut it, "amount_paid", n(i.amount_paid));
    put(&mut it, "amount_remaining", n(i.amount_remaining));
    put(&mut it, "issued_at", timestamp(i.issued_at));
    put_ts(&mut it, "due_at", i.due_at);
    put_ts(&mut it, "paid_at", i.paid_at);
    put_ts(&mut it, "period_start", i.period_start);
    put_ts(&mut it, "period_end", i.period_end);
    put_opt(&mut it, "hosted_invoice_url", i.hosted_invoice_url.clone());
    put_id(&mut it, "subscription_id", i.subscription_id.as_ref());
    put_id(&mut it, "customer_id", i.customer_id.as_ref());
    put_opt(&mut it, "billing_reason", i.billing_reason.clone());
    put_opt(
        &mut it,
        "payment_status",
        i.payment_status.map(PaymentOutcome::as_str),
    );
    put(&mut it, "attempt_count", n(i.attempt_count));
    put_ts(&mut it, "next_payment_attempt", i.next_payment_attempt);
    put(&mut it, "last_event_created", n(i.last_event_created));
    put(&mut it, "retain_until", date_s(i.retain_until));
    put_retention_bucket(&mut it, i.retain_until);
    it
}

fn invoice_from(it: &Item) -> anyhow::Result<InvoiceRecord> {
    Ok(InvoiceRecord {
        invoice_id: req_id(it, "invoice_id")?,
        provider: get_s(it, "provider")?.to_string(),
        number: opt_s(it, "number").map(str::to_string),
        status: get_s(it, "status")?.to_string(),
        currency: get_s(it, "currency")?.to_string(),
        amount_due: req_n(it, "amount_due")?,
        amount_paid: req_n(it, "amount_paid")?,
        amount_remaining: req_n(it, "amount_remaining")?,
        issued_at: req_ts(it, "issued_at")?,
        due_at: opt_ts(it, "due_at")?,
        paid_at: opt_ts(it, "paid_at")?,
        period_start: opt_ts(it, "period_start")?,
        period_end: opt_ts(it, "period_end")?,
        hosted_invoice_url: opt_s(it, "hosted_invoice_url").map(str::to_string),
        subscription_id: opt_id(it, "subscription_id"),
        customer_id: opt_id(it, "customer_id"),
        billing_reason: opt_s(it, "billing_reason").map(str::to_string),
        payment_status: opt_s(it, "payment_status").and_then(PaymentOutcome::parse),
        attempt_count: n_u32(it, "attempt_count")?,
        next_payment_attempt: opt_ts(it, "next_payment_attempt")?,
        last_event_created: req_n(it, "last_event_created")?,
        retain_until: req_date(it, "retain_until")?,
    })
}

pub(super) fn payment_item(tenant: &TenantId, p: &PaymentRecord) -> Item {
    let mut it = item(&keys::invoice_payment(tenant, &p.invoice_id, &p.event_id));
    put(&mut it, "tenant_id", s(tenant.as_str()));
    put(&mut it, "provider", s(&p.provider));
    put(&mut it, "invoice_id", s(p.invoice_id.as_str()));
    put(&mut it, "event_id", s(p.event_id.as_str()));
    put(&mut it, "outcome", s(p.outcome.as_str()));
    put(&mut it, "amount", n(p.amount));
    put(&mut it, "currency", s(&p.currency));
    put(&mut it, "at", timestamp(p.at));
    put(&mut it, "attempt_count", n(p.attempt_count));
    put_id(&mut it, "payment_intent_id", p.payment_intent_id.as_ref());
    put_id(&mut it, "charge_id", p.charge_id.as_ref());
    put(&mut it, "retain_until", date_s(p.retain_until));
    put_retention_bucket(&mut it, p.retain_until);
    it
}

fn payment_from(it: &Item) -> anyhow::Result<PaymentRecord> {
    Ok(PaymentRecord {
        invoice_id: req_id(it, "invoice_id")?,
        event_id: req_id(it, "event_id")?,
        provider: get_s(it, "provider")?.to_string(),
        outcome: PaymentOutcome::parse(get_s(it, "outcome")?)
            .ok_or_else(|| anyhow!("unknown payment outcome"))?,
        amount: req_n(it, "amount")?,
        currency: get_s(it, "currency")?.to_string(),
        at: req_ts(it, "at")?,
        attempt_count: n_u32(it, "attempt_count")?,
        payment_intent_id: opt_id(it, "payment_intent_id"),
        charge_id: opt_id(it, "charge_id"),
        retain_until: req_date(it, "retain_until")?,
    })
}

pub(super) fn refund_item(tenant: &TenantId, r: &RefundRecord) -> Item {
    let mut it = item(&keys::charge_refund(tenant, &r.charge_id));
    put(&mut it, "tenant_id", s(tenant.as_str()));
    put(&mut it, "provider", s(&r.provider));
    put(&mut it, "charge_id", s(r.charge_id.as_str()));
    put_id(&mut it, "invoice_id", r.invoice_id.as_ref());
    put(&mut it, "amount", n(r.amount));
    put(&mut it, "amount_refunded", n(r.amount_refunded));
    put(&mut it, "currency", s(&r.currency));
    put(
        &mut it,
        "fully_refunded",
        AttributeValue::Bool(r.fully_refunded),
    );
    put(&mut it, "refunded_at", timestamp(r.refunded_at));
    put_id(&mut it, "payment_intent_id", r.payment_intent_id.as_ref());
    put(&mut it, "last_event_created", n(r.last_event_created));
    put(&mut it, "retain_until", date_s(r.retain_until));
    put_retention_bucket(&mut it, r.retain_until);
    it
}

fn refund_from(it: &Item) -> anyhow::Result<RefundRecord> {
    Ok(RefundRecord {
        charge_id: req_id(it, "charge_id")?,
        invoice_id: opt_id(it, "invoice_id"),
        provider: get_s(it, "provider")?.to_string(),
        amount: req_n(it, "amount")?,
        amount_refunded: req_n(it, "amount_refunded")?,
        currency: get_s(it, "currency")?.to_string(),
        fully_refunded: it
            .get("fully_refunded")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        refunded_at: req_ts(it, "refunded_at")?,
        payment_intent_id: opt_id(it, "payment_intent_id"),
        last_event_created: req_n(it, "last_event_created")?,
        retain_until: req_date(it, "retain_until")?,
    })
}

/// Groups a tenant's billing items into invoices with their payments and refunds, newest first.
/// Refunds of charges without an invoice are not listed (the platform only charges invoices).
pub fn invoice_views(items: &[Item]) -> anyhow::Result<Vec<InvoiceView>> {
    let mut invoices: Vec<InvoiceView> = Vec::new();
    let mut payments = Vec::new();
    let mut refunds = Vec::new();
    for it in items {
        let sk = opt_s(it, SK).unwrap_or_default();
        if sk.starts_with("INVOICE#") {
            invoices.push(InvoiceView {
                invoice: invoice_from(it)?,
                payments: Vec::new(),
                refunds: Vec::new(),
            });
        } else if sk.starts_with("PAYMENT#") {
            payments.push(payment_from(it)?);
        } else if sk.starts_with("REFUND#") {
            refunds.push(refund_from(it)?);
        }
    }
    for p in payments {
        if let Some(v) = invoices
            .iter_mut()
            .find(|v| v.invoice.invoice_id == p.invoice_id)
        {
            v.payments.push(p);
        }
    }
    for r in refunds {
        let target = r.invoice_id.clone();
        if let Some(v) = invoices
            .iter_mut()
            .find(|v| Some(&v.invoice.invoice_id) == target.as_ref())
        {
            v.refunds.push(r);
        }
    }
    for v in &mut invoices {
        v.payments.sort_by_key(|p| p.at);
    }
    invoices.sort_by(|a, b| {
        b.invoice
            .issued_at
            .cmp(&a.invoice.issued_at)
            .then_with(|| b.invoice.invoice_id.cmp(&a.invoice.invoice_id))
    });
    Ok(invoices)
}
