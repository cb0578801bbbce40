//! Domain types. Each one validates on construction: once you hold a value, it is valid.
//! Fields are private; read them through `as_str`/`AsRef`.

mod email;
mod form;
mod ids;
mod phone;
mod provider_id;
mod submission;
mod transfer_ids;

pub use email::Email;
pub use form::{
    ConsentDef, FieldDef, FieldKind, FormRecord, SpamSettings, TenantRecord, TenantSpamLists,
    TenantStatus, DEFAULT_HONEYPOT, MAX_DAILY_CAP,
};
pub use ids::{ApiKeyId, FormId, IdError, LeadId, SessionId, SubmissionId, TenantId, UserId};
pub use phone::Phone;
pub use provider_id::ProviderId;
pub use submission::{
    ConsentRecord, ContactDetails, RawSubmission, RawValue, TechnicalData, ValidSubmission,
};
pub use transfer_ids::{AttachmentId, ExportId, ImportId, TransferIdError};
