//! The payment provider port: verify a webhook's signature over the raw body, read the body as a
//! provider-neutral [`ProviderEvent`], and create the hosted sessions a tenant pays and manages
//! its subscription in (checkout, customer portal). Stripe is the one adapter
//! ([`crate::stripe`]); a second provider is another implementation and another route.

use std::future::Future;

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

/// A page the provider hosts (a checkout, a customer portal): where the user is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedSession {
    pub id: ProviderId,
    pub url: String,
}

/// A checkout of a subscription to one price, for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSessionRequest {
    /// The checkout's reference: the webhook links the customer to this tenant.
    pub tenant: TenantId,
    pub price_id: ProviderId,
    /// The tenant's provider customer, reused when it has one (else the provider creates one).
    pub customer: Option<ProviderId>,
    pub success_url: String,
    pub cancel_url: String,
    /// The same for every attempt of one user action (a double click, a client's retry, this
    /// function's own retries): the provider makes one session per key.
    pub idempotency_key: String,
}

/// A customer portal session: plan changes, payment method, invoices, cancellation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSessionRequest {
    pub customer: ProviderId,
    pub return_url: String,
    pub idempotency_key: String,
}

/// Why a call to the provider's API failed. None of it reaches the caller (they get `502
/// payment_provider_unavailable`); the logs get this, never the secret key or a response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderCallError {
    /// Unreachable, too slow, or answering 5xx/409/429 after the retries its idempotency keys
    /// make safe.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// It answered and refused the request (4xx): configuration or data on our side (an unknown
    /// price, a deleted customer, a wrong key).
    #[error("payment provider refused the request: HTTP {status} {code}")]
    Refused { status: u16, code: String },
    /// A 2xx answer without what a session has (id, URL).
    #[error("payment provider answer unreadable: {0}")]
    BadAnswer(&'static str),
    /// No API client (a webhook-only configuration, as in some tests).
    #[error("payment provider API not configured")]
    NotConfigured,
}

impl From<ProviderCallError> for AppError {
    fn from(e: ProviderCallError) -> Self {
        tracing::error!(error = %e, "payment provider call failed; answering 502");
        AppError::BadGateway {
            code: "payment_provider_unavailable",
            message: "The payment provider could not be reached or refused the request; nothing was changed. Try again in a moment.",
        }
    }
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

    /// A hosted checkout of a subscription (one per idempotency key).
    fn create_checkout_session(
        &self,
        request: &CheckoutSessionRequest,
    ) -> impl Future<Output = Result<HostedSession, ProviderCallError>> + Send;

    /// A hosted customer portal session (one per idempotency key).
    fn create_portal_session(
        &self,
        request: &PortalSessionRequest,
    ) -> impl Future<Output = Result<HostedSession, ProviderCallError>> + Send;
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
