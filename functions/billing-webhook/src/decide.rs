//! What a verified event calls for: the tenant it concerns, its effects, the outcome to record,
//! and whom to tell. Pure: everything it reads was loaded before (see [`crate::webhook`]).

use shared_billing::ports::{CustomerLink, Effect, EventOutcome, EventRecord, StateGuard};
use shared_billing::{
    BillingState, InvoiceRecord, PaymentOutcome, PaymentRecord, Plan, RefundRecord,
};
use shared_core::domain::TenantId;
use shared_core::error::AppError;
use shared_core::retention::billing_retain_until_at;
use time::{Duration, OffsetDateTime};

use crate::notices::Notice;
use crate::provider::{EventKind, Invoice, ProviderEvent, Subscription, SubscriptionChange};

pub(crate) fn customer_not_linked() -> AppError {
    AppError::Conflict {
        code: "customer_not_linked",
        message: "The event's customer is not linked to an account yet; retry later.",
    }
}

pub(crate) enum Resolution {
    Tenant(TenantId),
    /// The event names a tenant other than its customer's.
    Conflict,
    Unknown,
}

pub(crate) fn resolve(named: Option<&TenantId>, link: Option<&CustomerLink>) -> Resolution {
    match (named, link) {
        (Some(n), Some(l)) if &l.tenant != n => Resolution::Conflict,
        (Some(n), _) => Resolution::Tenant(n.clone()),
        (None, Some(l)) => Resolution::Tenant(l.tenant.clone()),
        (None, None) => Resolution::Unknown,
    }
}

/// The writes an event calls for, what to record about it, and whom to tell.
pub(crate) struct Decision {
    pub(crate) outcome: EventOutcome,
    pub(crate) tenant: Option<TenantId>,
    pub(crate) effects: Vec<Effect>,
    pub(crate) notice: Option<Notice>,
}

impl Decision {
    pub(crate) fn record_only(outcome: EventOutcome, tenant: Option<TenantId>) -> Self {
        Self {
            outcome,
            tenant,
            effects: Vec::new(),
            notice: None,
        }
    }
}

/// Everything a decision reads.
pub(crate) struct Ctx<'a> {
    pub(crate) provider: &'a str,
    pub(crate) ev: &'a ProviderEvent,
    pub(crate) now: OffsetDateTime,
    pub(crate) link: Option<&'a CustomerLink>,
    pub(crate) state: Option<&'a BillingState>,
    pub(crate) plan: Option<&'a Plan>,
}

impl Ctx<'_> {
    fn created(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.ev.created).unwrap_or(self.now)
    }

    pub(crate) fn record(
        &self,
        outcome: EventOutcome,
        tenant: Option<TenantId>,
        retention_days: i64,
    ) -> EventRecord {
        EventRecord {
            provider: self.provider.to_string(),
            event_id: self.ev.id.clone(),
            event_type: self.ev.event_type.clone(),
            created: self.ev.created,
            received_at: self.now,
            outcome,
            tenant,
            object_id: self.ev.kind.object_id().cloned(),
            expires_at: self.now + Duration::days(retention_days),
        }
    }

    /// Remember the event's customer as the tenant's, when it is not yet.
    fn link_effect(&self, tenant: &TenantId) -> Option<Effect> {
        let customer = self.ev.kind.customer_id()?;
        if self.link.is_some() {
            return None;
        }
        Some(Effect::LinkCustomer {
            provider: self.provider.to_string(),
            customer_id: customer.clone(),
            tenant: tenant.clone(),
            at: self.now,
        })
    }

    pub(crate) fn decide(&self, resolution: Resolution) -> Result<Decision, AppError> {
        if let Resolution::Conflict = resolution {
            tracing::error!("event names another tenant than its customer's; not applied");
            return Ok(Decision::record_only(EventOutcome::CustomerConflict, None));
        }
        let tenant = match resolution {
            Resolution::Tenant(t) => Some(t),
            _ => None,
        };
        match &self.ev.kind {
            EventKind::Unhandled => Ok(Decision {
                outcome: EventOutcome::Ignored,
                tenant: None,
                effects: vec![Effect::CountEventType {
                    provider: self.provider.to_string(),
                    event_type: self.ev.event_type.clone(),
                    at: self.now,
                }],
                notice: None,
            }),
            EventKind::CheckoutCompleted(c) => {
                let Some(t) = tenant else {
                    return Ok(Decision::record_only(EventOutcome::Unlinked, None));
                };
                let Some(customer) = &c.customer else {
                    return Ok(Decision::record_only(EventOutcome::Ignored, Some(t)));
                };
                let mut effects: Vec<Effect> = self.link_effect(&t).into_iter().collect();
                effects.push(Effect::SetCustomer {
                    tenant: t.clone(),
                    provider: self.provider.to_string(),
                    customer_id: customer.clone(),
                    at: self.now,
                });
                Ok(Decision {
                    outcome: EventOutcome::Applied,
                    tenant: Some(t),
                    effects,
                    notice: None,
                })
            }
            EventKind::Subscription {
                change,
                subscription,
            } => {
                let t = tenant.ok_or_else(customer_not_linked)?;
                if self.link.is_some_and(|l| l.erased && l.tenant == t) {
                    // The workspace was erased after its closure: its subscription state went
                    // with it and is not written again (its documents still are: accounting).
                    tracing::warn!(tenant_id = %t, "subscription event of an erased workspace; not applied");
                    return Ok(Decision::record_only(EventOutcome::Ignored, Some(t)));
                }
                let mut effects: Vec<Effect> = self.link_effect(&t).into_iter().collect();
                let (state, guard) = match self.next_state(&t, subscription) {
                    Next::Apply(state, guard) => (*state, guard),
                    Next::Stale => {
                        return Ok(Decision {
                            outcome: EventOutcome::Stale,
                            tenant: Some(t),
                            effects,
                            notice: None,
                        })
                    }
                    Next::Superseded => {
                        return Ok(Decision {
                            outcome: EventOutcome::Superseded,
                            tenant: Some(t),
                            effects,
                            notice: None,
                        })
                    }
                };
                let notice = match change {
                    SubscriptionChange::TrialWillEnd => Some(Notice::TrialWillEnd {
                        tenant: t.clone(),
                        trial_end: subscription.trial_end,
                        plan: state.plan.clone(),
                    }),
                    _ => None,
                };
                effects.push(Effect::Subscription {
                    tenant: t.clone(),
                    state,
                    guard,
                });
                Ok(Decision {
                    outcome: EventOutcome::Applied,
                    tenant: Some(t),
                    effects,
                    notice,
                })
            }
            EventKind::InvoicePayment { outcome, invoice } => {
                let t = tenant.ok_or_else(customer_not_linked)?;
                let at = self.created();
                let mut effects: Vec<Effect> = self.link_effect(&t).into_iter().collect();
                effects.push(Effect::Invoice {
                    tenant: t.clone(),
                    invoice: InvoiceRecord {
                        invoice_id: invoice.id.clone(),
                        provider: self.provider.to_string(),
                        number: invoice.number.clone(),
                        status: invoice.status.clone(),
                        currency: invoice.currency.clone(),
                        amount_due: invoice.amount_due,
                        amount_paid: invoice.amount_paid,
                        amount_remaining: invoice.amount_remaining,
                        issued_at: invoice.created,
                        due_at: invoice.due_date,
                        paid_at: invoice.paid_at,
                        period_start: invoice.period_start,
                        period_end: invoice.period_end,
                        hosted_invoice_url: invoice.hosted_invoice_url.clone(),
                        subscription_id: invoice.subscription.clone(),
                        customer_id: invoice.customer.clone(),
                        billing_reason: invoice.billing_reason.clone(),
                        payment_status: Some(*outcome),
                        attempt_count: invoice.attempt_count,
                        next_payment_attempt: invoice.next_payment_attempt,
                        last_event_created: self.ev.created,
                        retain_until: billing_retain_until_at(invoice.created),
                    },
                });
                effects.push(Effect::Payment {
                    tenant: t.clone(),
                    payment: PaymentRecord {
                        invoice_id: invoice.id.clone(),
                        event_id: self.ev.id.clone(),
                        provider: self.provider.to_string(),
                        outcome: *outcome,
                        amount: match outcome {
                            PaymentOutcome::Succeeded => invoice.amount_paid,
                            _ => owed(invoice),
                        },
                        currency: invoice.currency.clone(),
                        at,
                        attempt_count: invoice.attempt_count,
                        payment_intent_id: invoice.payment_intent.clone(),
                        charge_id: invoice.charge.clone(),
                        retain_until: billing_retain_until_at(at),
                    },
                });
                let notice = (*outcome == PaymentOutcome::Failed).then(|| Notice::PaymentFailed {
                    tenant: t.clone(),
                    amount: owed(invoice),
                    currency: invoice.currency.clone(),
                    number: invoice.number.clone(),
                    hosted_invoice_url: invoice.hosted_invoice_url.clone(),
                    next_attempt: invoice.next_payment_attempt,
                });
                Ok(Decision {
                    outcome: EventOutcome::Applied,
                    tenant: Some(t),
                    effects,
                    notice,
                })
            }
            EventKind::ChargeRefunded(c) => {
                let Some(t) = tenant else {
                    return Ok(Decision::record_only(EventOutcome::Unlinked, None));
                };
                let at = self.created();
                Ok(Decision {
                    outcome: EventOutcome::Applied,
                    tenant: Some(t.clone()),
                    effects: vec![Effect::Refund {
                        tenant: t,
                        refund: RefundRecord {
                            charge_id: c.id.clone(),
                            invoice_id: c.invoice.clone(),
                            provider: self.provider.to_string(),
                            amount: c.amount,
                            amount_refunded: c.amount_refunded,
                            currency: c.currency.clone(),
                            fully_refunded: c.refunded,
                            refunded_at: at,
                            payment_intent_id: c.payment_intent.clone(),
                            last_event_created: self.ev.created,
                            retain_until: billing_retain_until_at(at),
                        },
                    }],
                    notice: None,
                })
            }
            EventKind::CustomerUpdated(_) => {
                let Some(t) = tenant else {
                    return Ok(Decision::record_only(EventOutcome::Unlinked, None));
                };
                // The customer's name, email and address stay with the provider; only a link
                // named in the metadata is new information here.
                match self.link_effect(&t) {
                    Some(link) => Ok(Decision {
                        outcome: EventOutcome::Applied,
                        tenant: Some(t),
                        effects: vec![link],
                        notice: None,
                    }),
                    None => Ok(Decision::record_only(EventOutcome::Ignored, Some(t))),
                }
            }
            EventKind::CustomerDeleted(c) => {
                if self.link.is_none() {
                    return Ok(Decision::record_only(EventOutcome::Unlinked, tenant));
                }
                Ok(Decision {
                    outcome: EventOutcome::Applied,
                    tenant,
                    effects: vec![Effect::CustomerDeleted {
                        provider: self.provider.to_string(),
                        customer_id: c.id.clone(),
                        at: self.now,
                    }],
                    notice: None,
                })
            }
        }
    }

    /// The tenant's next subscription state, or why the event changes nothing.
    fn next_state(&self, tenant: &TenantId, s: &Subscription) -> Next {
        let current = self.state;
        let last = current.and_then(|c| c.last_event_created);
        let guard = match current.and_then(|c| c.subscription_id.as_ref()) {
            None => StateGuard::NoSubscription,
            Some(id) if id == &s.id => {
                if last.is_some_and(|l| self.ev.created < l) {
                    return Next::Stale;
                }
                StateGuard::Same {
                    subscription_id: s.id.clone(),
                    created: self.ev.created,
                }
            }
            Some(other) => {
                // Another subscription: an old one ending, or a new one starting. The tenant
                // follows the live one; between two live ones, the newer event.
                let current_live = current
                    .and_then(|c| c.status)
                    .is_some_and(|st| st.is_live());
                if !s.status.is_live()
                    || (current_live && last.is_some_and(|l| self.ev.created <= l))
                {
                    return Next::Superseded;
                }
                StateGuard::Replace {
                    subscription_id: other.clone(),
                    last_event_created: last,
                }
            }
        };
        let same_status = current.is_some_and(|c| {
            c.subscription_id.as_ref() == Some(&s.id) && c.status == Some(s.status)
        });
        let status_since = if same_status {
            current.and_then(|c| c.status_since)
        } else {
            None
        }
        .or(Some(self.created()));
        if let (Some(price), None) = (&s.price_id, self.plan) {
            tracing::error!(
                price_id = price.as_str(),
                "no plan for this price; free-tier entitlements apply"
            );
        }
        let state = BillingState {
            tenant_id: Some(tenant.clone()),
            provider: Some(self.provider.to_string()),
            customer_id: s
                .customer
                .clone()
                .or_else(|| current.and_then(|c| c.customer_id.clone())),
            subscription_id: Some(s.id.clone()),
            price_id: s.price_id.clone(),
            plan: self.plan.map(|p| p.name.clone()),
            entitlements: self.plan.map(|p| p.entitlements),
            status: Some(s.status),
            status_since,
            current_period_end: s.current_period_end,
            cancel_at_period_end: s.cancel_at_period_end,
            cancel_at: s.cancel_at,
            canceled_at: s.canceled_at,
            ended_at: s.ended_at,
            trial_end: s.trial_end,
            last_event_created: Some(self.ev.created),
            last_event_id: Some(self.ev.id.as_str().to_string()),
            updated_at: Some(self.now),
        };
        Next::Apply(Box::new(state), guard)
    }
}

/// What is still owed on an invoice.
fn owed(invoice: &Invoice) -> i64 {
    if invoice.amount_remaining > 0 {
        invoice.amount_remaining
    } else {
        (invoice.amount_due - invoice.amount_paid).max(0)
    }
}

enum Next {
    Apply(Box<BillingState>, StateGuard),
    Stale,
    Superseded,
}
