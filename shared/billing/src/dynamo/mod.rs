//! The DynamoDB adapter of the billing ports: subscription state, plans, and the billing records
//! (invoices, payments, refunds) kept for their legal retention.

mod billing;
mod billing_items;

pub use billing::{
    billing_state_from_item, billing_state_to_item, put_plan, put_plan_price, read_billing_state,
    BillingTables, DynamoBillingStore,
};
