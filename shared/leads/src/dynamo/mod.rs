//! The DynamoDB adapters of the lead workspace: intake's one-transaction commit, forms, leads
//! (lists, edits, notes, stages) and the routing of an address to its lead.

mod forms;
mod intake;
mod leads;
mod quarantine;
pub use quarantine::{
    quarantined_of_subject, subject_of as quarantine_subject, tenant_of_quarantine_pk,
    SUBJECT_INDEX,
};
pub mod routing;

pub use forms::{put_tenant_spam_lists, tenant_spam_lists, DynamoFormAdmin};
pub use intake::{new_lead_item, DynamoIntakeStore, IntakeTables};
pub use leads::{
    lead_pks_by_email, lead_pks_holding, LeadHolding, LeadKeys, LeadsStore, LeadsTables,
};
