//! Lead transfers: files attached to leads, CSV imports and CSV/JSON exports of a tenant's leads.
//!
//! Map:
//! - the ids of attachments, imports and exports (slugs, safe in keys and paths) live in
//!   [`shared_core::domain`], because the key builders use them; re-exported here.
//! - [`model`]: what is stored about them, and the import report.
//! - [`store`]: the DynamoDB adapter: attachment records under their lead, import and export
//!   records in the tenant's transfer log, batched lead writes for imports, and the paged read of
//!   a tenant's leads that exports stream from.
//!
//! The HTTP routes, the attachment rules, the CSV parsing and the export serializers live in the
//! `lead-transfers` function; S3 object keys are built in [`shared_core::keys`].

pub mod model;
pub mod store;

pub use model::{
    AttachmentRecord, ExistingLead, ExportLead, ExportRecord, ImportRecord, ImportReport,
    ImportedLead, InvalidRow, LegalBasis,
};
pub use shared_core::domain::{AttachmentId, ExportId, ImportId, TransferIdError};
pub use store::{AttachmentRefused, LeadsPage, PageCursor, TransfersStore, TransfersTables};
