//! The payment provider port: verify a webhook's signature over the raw body, and read the body
//! as a provider-neutral [`ProviderEvent`]. Stripe is the one adapter ([`crate::stripe`]); a
//! second provider is another implementation and another route.

use lambda_http::http::HeaderMap;
use shared_billing::{PaymentOutcome, ProviderId, SubscriptionStatus};
use shared_core::domain::TenantId;
use shared_core::error::AppError;
use time::OffsetDateTime;

/// Why a webhook's signature was refused. All of them answer 400 and store nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no signature header")]
    Missing,
    #[error("the signature header is malformed")]
    Malformed,
    #[error("no signature matches")]
    Mismatch,
    /// Authentic, but its timestamp is outside the tolerance (a replay, or a badly skewed clock).
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
}

impl From<SignatureError> for AppError {
    fn from(e: SignatureError) -> Self {
        match e {
            SignatureError::Stale => AppError::validation(
                "stale_signature",
                "The signature's timestamp is outside the accepted tolerance.",
            ),
            _ => AppError::validation("invalid_signature", "The webhook signature is not valid."),
        }
    }
}

pub fn invalid_event(why: &str) -> AppError {
    AppError::validation("invalid_event", format!("The event cannot be read: {why}."))
}

pub trait PaymentProvider: Send + Sync {
    /// The provider's name in keys and records (`stripe`).
    fn name(&self) -> &'static str;

    /// Checks the signature the provider put on exactly these bytes, at `now`.
    fn verify(
        &self,
        headers: &HeaderMap,
        raw_body: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), SignatureError>;

    /// Reads a verified body. Card and bank details in the payload are never read.
    fn parse(&self, raw_body: &[u8]) -> Result<ProviderEvent, AppError>;
}

/// An event, whatever the provider.
#[derive(Debug, Clone)]
pub struct ProviderEvent {
    pub id: ProviderId,
    /// The provider's type name, e.g. `invoice.paid` (letters, digits, `.`, `_`).
    pub event_type: String,
    /// When the provider created the event (unix seconds): orders events of one object.
    pub created: i64,
    pub kind: EventKind,
}

#[derive(Debug, Clone)]
pub enum EventKind {
    CheckoutCompleted(Checkout),
    Subscription {
        change: SubscriptionChange,
        subscription: Box<Subscription>,
    },
    /// An invoice payment attempt (succeeded, failed, needs the customer's action).
    InvoicePayment {
        outcome: PaymentOutcome,
        invoice: Box<Invoice>,
    },
    ChargeRefunded(Charge),
    CustomerUpdated(Customer),
    CustomerDeleted(Customer),
    /// A type the platform does not act on (answered 200 and counted).
    Unhandled,
}

impl EventKind {
    /// The object the event is about.
    pub fn object_id(&self) -> Option<&ProviderId> {
        match self {
            EventKind::CheckoutCompleted(c) => Some(&c.session_id),
            EventKind::Subscription { subscription, .. } => Some(&subscription.id),
            EventKind::InvoicePayment { invoice, .. } => Some(&invoice.id),
            EventKind::ChargeRefunded(c) => Some(&c.id),
            EventKind::CustomerUpdated(c) | EventKind::CustomerDeleted(c) => Some(&c.id),
            EventKind::Unhandled => None,
        }
    }

    /// The provider customer the event concerns.
    pub fn customer_id(&self) -> Option<&ProviderId> {
        match self {
            EventKind::CheckoutCompleted(c) => c.customer.as_ref(),
            EventKind::Subscription { subscription, .. } => subscription.customer.as_ref(),
            EventKind::InvoicePayment { invoice, .. } => invoice.customer.as_ref(),
            EventKind::ChargeRefunded(c) => c.customer.as_ref(),
            EventKind::CustomerUpdated(c) | EventKind::CustomerDeleted(c) => Some(&c.id),
            EventKind::Unhandled => None,
        }
    }

    /// The tenant the event names itself (checkout reference, metadata).
    pub fn named_tenant(&self) -> Option<&TenantId> {
        match self {
            EventKind::CheckoutCompleted(c) => c.tenant.as_ref(),
            EventKind::Subscription { subscription, .. } => subscription.tenant.as_ref(),
            EventKind::InvoicePayment { invoice, .. } => invoice.tenant.as_ref(),
            EventKind::CustomerUpdated(c) | EventKind::CustomerDeleted(c) => c.tenant.as_ref(),
            EventKind::ChargeRefunded(_) | EventKind::Unhandled => None,
        }
    }
}

/// A completed checkout: how a tenant becomes a provider customer.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub session_id: ProviderId,
    /// The checkout's reference: the tenant id the platform put there when it created the
    /// session.
    pub tenant: Option<TenantId>,
    pub customer: Option<ProviderId>,
    pub subscription: Option<ProviderId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionChange {
    Created,
    Updated,
    Deleted,
    /// The trial ends in a few days (Stripe: three).
    TrialWillEnd,
}

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: ProviderId,
    pub customer: Option<ProviderId>,
    /// From the subscription's metadata (`tenant_id`).
    pub tenant: Option<TenantId>,
    pub status: SubscriptionStatus,
    pub price_id: Option<ProviderId>,
    pub current_period_end: Option<OffsetDateTime>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<OffsetDateTime>,
    pub canceled_at: Option<OffsetDateTime>,
    pub ended_at: Option<OffsetDateTime>,
    pub trial_end: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct Invoice {
    pub id: ProviderId,
    pub customer: Option<ProviderId>,
    /// From the invoice's subscription metadata, or its own.
    pub tenant: Option<TenantId>,
    pub subscription: Option<ProviderId>,
    pub number: Option<String>,
    pub status: String,
    pub currency: String,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub amount_remaining: i64,
    pub created: OffsetDateTime,
    pub due_date: Option<OffsetDateTime>,
    pub paid_at: Option<OffsetDateTime>,
    pub period_start: Option<OffsetDateTime>,
    pub period_end: Option<OffsetDateTime>,
    pub hosted_invoice_url: Option<String>,
    pub billing_reason: Option<String>,
    pub attempt_count: u32,
    pub next_payment_attempt: Option<OffsetDateTime>,
    pub payment_intent: Option<ProviderId>,
    pub charge: Option<ProviderId>,
}

#[derive(Debug, Clone)]
pub struct Charge {
    pub id: ProviderId,
    pub customer: Option<ProviderId>,
    pub invoice: Option<ProviderId>,
    pub payment_intent: Option<ProviderId>,
    pub amount: i64,
    pub amount_refunded: i64,
    pub currency: String,
    pub refunded: bool,
}

#[derive(Debug, Clone)]
pub struct Customer {
    pub id: ProviderId,
    /// From the customer's metadata (`tenant_id`).
    pub tenant: Option<TenantId>,
}
