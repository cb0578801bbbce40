//! What lead transfers store, as domain types (the store converts them to and from items).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use shared_core::domain::{AttachmentId, ExportId, ImportId};
use shared_core::domain::{ContactDetails, LeadId, UserId};

/// A file attached to a lead. The record is written when the upload URL is handed out; the
/// object exists once the client has used it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRecord {
    pub attachment_id: AttachmentId,
    pub lead_id: LeadId,
    /// As the uploader named it (checked: no path, no control or bidi characters).
    pub filename: String,
    pub content_type: String,
    /// Bytes; the upload URL is signed for exactly this length.
    pub size: u64,
    pub uploaded_by: UserId,
    pub created_at: OffsetDateTime,
}

/// The lawful basis (GDPR Art 6(1)) a tenant records for the leads of one import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    Consent,
    Contract,
    LegalObligation,
    VitalInterests,
    PublicTask,
    LegitimateInterest,
}

impl LegalBasis {
    pub const ALL: [LegalBasis; 6] = [
        LegalBasis::Consent,
        LegalBasis::Contract,
        LegalBasis::LegalObligation,
        LegalBasis::VitalInterests,
        LegalBasis::PublicTask,
        LegalBasis::LegitimateInterest,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            LegalBasis::Consent => "consent",
            LegalBasis::Contract => "contract",
            LegalBasis::LegalObligation => "legal_obligation",
            LegalBasis::VitalInterests => "vital_interests",
            LegalBasis::PublicTask => "public_task",
            LegalBasis::LegitimateInterest => "legitimate_interest",
        }
    }

    pub fn parse(s: &str) -> Option<LegalBasis> {
        LegalBasis::ALL.into_iter().find(|b| b.as_str() == s)
    }
}

/// Who started an import, on which basis, from which source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRecord {
    pub import_id: ImportId,
    pub legal_basis: LegalBasis,
    /// Where the tenant got the data (Art 14/15: the source must be named to the subject).
    pub source: String,
    pub created_by: UserId,
    pub created_at: OffsetDateTime,
}

/// One valid, deduplicated row of an import, ready to become a lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedLead {
    pub lead_id: LeadId,
    pub contact: ContactDetails,
    pub email_bidx: Option<String>,
    pub phone_bidx: Option<String>,
    pub stage: String,
    /// Put the address's route item to this lead too: its address's derived lead moved to
    /// another address, so this lead has a fresh id (`crate::routing`).
    pub route: Option<crate::routing::RouteKey>,
}

impl ImportedLead {
    pub fn route_key(&self) -> Option<crate::routing::RouteKey> {
        crate::routing::RouteKey::of(self.email_bidx.as_deref(), self.phone_bidx.as_deref())
    }
}

/// Where an import row's address leads (`TransfersStore::import_lookup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportTarget {
    /// An existing lead of the address (its derived one, or the one its route names).
    Existing(LeadId, ExistingLead),
    /// No lead, and the derived id is free.
    New,
    /// No lead, and the derived id is a lead that moved to another address.
    NewRouted,
}

/// What an import needs to know of a lead that already exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExistingLead {
    pub restricted: bool,
    pub has_name: bool,
    pub has_company: bool,
    pub has_phone: bool,
}

/// A rejected row: its number (the header is row 1, as a spreadsheet shows it) and one message
/// per field. Messages state the rule; they never repeat the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidRow {
    pub row: u64,
    pub errors: BTreeMap<String, String>,
}

/// The outcome of an import, row by row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Data rows in the file (the header not counted).
    pub rows_total: u64,
    /// New leads written.
    pub imported: u64,
    /// Existing leads whose empty contact fields the row filled.
    pub updated: u64,
    /// Rows that repeat an earlier row of the file, or match an existing lead with nothing to
    /// fill (or a restricted one, which is read-only).
    pub duplicates: u64,
    /// Rows of people on the tenant's suppression list (erased on request): skipped.
    pub suppressed: u64,
    /// Rows refused, all of them counted here ...
    pub invalid_count: u64,
    /// ... and the first [`ImportReport::MAX_INVALID_LISTED`] of them listed.
    pub invalid: Vec<InvalidRow>,
}

impl ImportReport {
    /// The report is stored in one item (400 KB at most): the list of invalid rows is capped.
    pub const MAX_INVALID_LISTED: usize = 1000;

    pub fn reject(&mut self, row: u64, errors: BTreeMap<String, String>) {
        self.invalid_count += 1;
        if self.invalid.len() < Self::MAX_INVALID_LISTED {
            self.invalid.push(InvalidRow { row, errors });
        }
    }
}

/// A lead as an export writes it: the fields of the `by_tenant` index projection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExportLead {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_form_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// Who exported what, when: kept as the record of a disclosure of the tenant's leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRecord {
    pub export_id: ExportId,
    /// `csv` or `json`.
    pub format: &'static str,
    pub count: u64,
    pub object_key: String,
    pub created_by: UserId,
    pub created_at: OffsetDateTime,
    /// When the bucket's lifecycle rule deletes the object.
    pub expires_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_bases_round_trip() {
        for b in LegalBasis::ALL {
            assert_eq!(LegalBasis::parse(b.as_str()), Some(b));
            assert_eq!(serde_json::to_value(b).unwrap(), b.as_str());
        }
        assert_eq!(LegalBasis::parse("because"), None);
        assert_eq!(LegalBasis::parse("Consent"), None);
    }

    #[test]
    fn the_invalid_list_is_capped_but_counted() {
        let mut r = ImportReport::default();
        for row in 0..(ImportReport::MAX_INVALID_LISTED as u64 + 5) {
            r.reject(row, BTreeMap::new());
        }
        assert_eq!(r.invalid.len(), ImportReport::MAX_INVALID_LISTED);
        assert_eq!(r.invalid_count, ImportReport::MAX_INVALID_LISTED as u64 + 5);
    }
}
