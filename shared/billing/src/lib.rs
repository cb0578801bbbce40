//! Billing: plans and entitlements, a tenant's subscription state, and billing records
//! (invoices, payments, refunds), whatever the payment provider. The provider-specific part
//! (signatures, event shapes) lives in the `billing-webhook` function; see `docs/billing.md`.
//!
//! - [`model`]: the records, as stored.
//! - [`entitlements`]: what a tenant may do given its state (quota, seats), decided in one place.
//! - [`ports`]: the store the webhook and the billing view use.

pub mod dynamo;

pub mod entitlements;
pub mod model;
pub mod ports;

#[cfg(any(test, feature = "test-support"))]
pub mod memory;

pub use entitlements::{BillingPolicy, Standing};
pub use model::{
    usage_expires_at, usage_month, valid_plan_name, BillingInterval, BillingState, Entitlements,
    InvoiceRecord, InvoiceView, PaymentOutcome, PaymentRecord, Plan, PlanPrice, ProviderId,
    RefundRecord, SubscriptionStatus,
};
