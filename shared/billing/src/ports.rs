//! The billing store port: what the billing webhook reads before it decides (one request), the
//! writes of one event (one transaction), and the tenant's billing view.

use std::future::Future;

use time::OffsetDateTime;

use super::model::{
    BillingInterval, BillingState, InvoiceRecord, InvoiceView, PaymentRecord, Plan, PlanPrice,
    ProviderId, RefundRecord,
};
use shared_core::domain::TenantId;

/// What the webhook reads before deciding, in one round trip.
#[derive(Debug, Clone)]
pub struct EventLookup {
    pub provider: String,
    pub event_id: ProviderId,
    /// The provider customer the event is about: its link to a tenant is read.
    pub customer_id: Option<ProviderId>,
    /// The tenant the event names itself (checkout reference, subscription metadata).
    pub tenant: Option<TenantId>,
    /// Read `tenant`'s billing state too (subscription events).
    pub want_state: bool,
    /// Read the plan of this price.
    pub price_id: Option<ProviderId>,
}

/// A provider customer remembered as a tenant's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerLink {
    pub tenant: TenantId,
    pub deleted: bool,
    /// The tenant's workspace was erased (retention closed the link: `tenant_erased_at`): its
    /// documents are still filed, its subscription state is not written again.
    pub erased: bool,
}

#[derive(Debug, Clone, Default)]
pub struct EventSnapshot {
    /// The event id was seen before: a redelivery.
    pub already_recorded: bool,
    pub customer: Option<CustomerLink>,
    /// The billing state of the lookup's tenant (when asked for and present).
    pub state: Option<BillingState>,
    pub plan: Option<Plan>,
}

/// What became of an event; stored with its record and answered to the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// Its effects were applied.
    Applied,
    /// Older than what is stored for its object: recorded, no effect.
    Stale,
    /// About a subscription the tenant no longer follows (an old one ending after a new one
    /// started): recorded, no effect.
    Superseded,
    /// A type without an effect (unknown types are also counted).
    Ignored,
    /// No tenant could be linked to it (a customer the platform does not know).
    Unlinked,
    /// The event names a tenant other than the one its customer is linked to: no effect, and an
    /// error is logged for an operator.
    CustomerConflict,
}

impl EventOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Stale => "stale",
            Self::Superseded => "superseded",
            Self::Ignored => "ignored",
            Self::Unlinked => "unlinked",
            Self::CustomerConflict => "customer_conflict",
        }
    }
}

/// The record of a received event: what makes its effect happen once.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub provider: String,
    pub event_id: ProviderId,
    pub event_type: String,
    /// The provider's `created` (unix seconds).
    pub created: i64,
    pub received_at: OffsetDateTime,
    pub outcome: EventOutcome,
    pub tenant: Option<TenantId>,
    /// The object the event is about (subscription, invoice, charge, customer, session).
    pub object_id: Option<ProviderId>,
    /// Kept while the provider may still redeliver the event (and a while longer).
    pub expires_at: OffsetDateTime,
}

/// The condition a subscription write holds on the stored state, so that it moves only forward
/// and never over a state it did not see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateGuard {
    /// The tenant follows no subscription yet.
    NoSubscription,
    /// The same subscription, whose newest applied event is not newer than this one.
    Same {
        subscription_id: ProviderId,
        created: i64,
    },
    /// Replacing the subscription followed so far, exactly as it was read.
    Replace {
        subscription_id: ProviderId,
        last_event_created: Option<i64>,
    },
}

#[derive(Debug, Clone)]
pub enum Effect {
    /// Remember that a provider customer is this tenant's (refused if it is another tenant's).
    LinkCustomer {
        provider: String,
        customer_id: ProviderId,
        tenant: TenantId,
        at: OffsetDateTime,
    },
    /// Note the customer on the tenant's billing state (checkout completed).
    SetCustomer {
        tenant: TenantId,
        provider: String,
        customer_id: ProviderId,
        at: OffsetDateTime,
    },
    CustomerDeleted {
        provider: String,
        customer_id: ProviderId,
        at: OffsetDateTime,
    },
    Subscription {
        tenant: TenantId,
        state: BillingState,
        guard: StateGuard,
    },
    /// Upsert an invoice, unless a newer event of it was applied.
    Invoice {
        tenant: TenantId,
        invoice: InvoiceRecord,
    },
    Payment {
        tenant: TenantId,
        payment: PaymentRecord,
    },
    /// Upsert a charge's refunds, unless a newer event of it was applied.
    Refund {
        tenant: TenantId,
        refund: RefundRecord,
    },
    /// Count an event type the platform does not handle.
    CountEventType {
        provider: String,
        event_type: String,
        at: OffsetDateTime,
    },
}

/// Every write of one event, applied atomically: the record (put only if the event id is new)
/// and its effects.
#[derive(Debug, Clone)]
pub struct EventWrite {
    pub record: EventRecord,
    pub effects: Vec<Effect>,
}

#[derive(Debug, thiserror::Error)]
pub enum EventCommitError {
    /// The event id was recorded meanwhile: a concurrent delivery won.
    #[error("the event is already recorded")]
    AlreadyRecorded,
    /// The condition of the effect at this index failed (stale, replaced, conflicting link).
    #[error("the condition of effect {0} failed")]
    EffectCondition(usize),
    /// Another transaction held one of the items; safe to retry.
    #[error("transaction conflict")]
    Conflict,
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// What a checkout reads before it asks the provider for a session, in one round trip.
#[derive(Debug, Clone, Default)]
pub struct CheckoutSnapshot {
    /// The tenant's billing state: its customer (reused) and whether a subscription is live.
    pub state: Option<BillingState>,
    /// The price that sells the plan per the interval; `None`: no such plan or interval.
    pub price: Option<PlanPrice>,
}

/// The tenant's billing state with this month's usage.
#[derive(Debug, Clone, Default)]
pub struct BillingOverview {
    pub state: Option<BillingState>,
    pub submissions_this_month: u32,
}

pub trait BillingStore: Send + Sync {
    fn load(
        &self,
        lookup: &EventLookup,
    ) -> impl Future<Output = anyhow::Result<EventSnapshot>> + Send;

    /// A tenant's billing state alone (when the tenant was learned from the customer link).
    fn billing_state(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = anyhow::Result<Option<BillingState>>> + Send;

    fn commit(
        &self,
        write: &EventWrite,
    ) -> impl Future<Output = Result<(), EventCommitError>> + Send;

    /// The tenant's billing state and its submissions in `month` (`YYYY-MM`), in one read.
    fn overview(
        &self,
        tenant: &TenantId,
        month: &str,
    ) -> impl Future<Output = anyhow::Result<BillingOverview>> + Send;

    /// The tenant's billing state and the price of `plan` per `interval` with `provider`, in one
    /// read (a checkout).
    fn checkout_lookup(
        &self,
        tenant: &TenantId,
        provider: &str,
        plan: &str,
        interval: BillingInterval,
    ) -> impl Future<Output = anyhow::Result<CheckoutSnapshot>> + Send;

    /// The tenant's invoices with their payments and refunds, newest first.
    fn invoices(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = anyhow::Result<Vec<InvoiceView>>> + Send;
}
