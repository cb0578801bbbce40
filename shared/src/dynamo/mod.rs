//! DynamoDB adapters of the ports. Item <-> domain conversion lives here; the domain never sees
//! an `AttributeValue`.

mod accounts;
mod attrs;
pub mod batch;
mod billing;
mod billing_items;
mod forms;
mod intake;
mod leads;
pub mod legal_holds;
mod outbound;
pub mod routing;

pub use accounts::{
    epoch_of, login_item, require_live_for_write, session_item, tenant_item, token_item,
    unverified_login_item, user_item, AccountStore, AccountTables, LoginEntry, Reservation,
    StoreError, Throttle, Write, LOGIN_CLAIMABLE, UNVERIFIED,
};
pub use attrs::{
    epoch, get_item, key_item, n, put_new_or_own, s, str_list, timestamp, unless_condition_failed,
    Item,
};
pub use aws_sdk_dynamodb::types::AttributeValue;
pub use batch::batch_delete;
pub use billing::{
    billing_state_from_item, billing_state_to_item, put_plan, read_billing_state, BillingTables,
    DynamoBillingStore,
};
pub use forms::DynamoFormAdmin;
pub use intake::{new_lead_item, DynamoIntakeStore, IntakeTables};
pub use leads::{
    lead_pks_by_email, lead_pks_holding, LeadHolding, LeadKeys, LeadsStore, LeadsTables,
};
pub use outbound::{MailGate, SuppressionReason};
