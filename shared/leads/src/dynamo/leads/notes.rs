//! Notes on a lead.

use anyhow::Context;
use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};

use super::items::{audit_item, note_from, note_item, start_key_item, start_key_of};
use super::writes::LeadWrite;
use super::LeadsStore;
use crate::{AuditEntry, EditError, Note, Page, StartKey};
use shared_core::domain::{LeadId, TenantId};
use shared_core::dynamo::attrs::{key_item, s};
use shared_core::keys::{self, PK, SK};

impl LeadsStore {
    // ------------------------------------------------------------ notes

    /// Adds a note to a lead that exists and is not restricted, with its audit entry.
    pub async fn add_note(
        &self,
        tenant: &TenantId,
        lead: &LeadId,
        note: &Note,
        audit: &AuditEntry,
    ) -> Result<(), EditError> {
        let writes = vec![
            self.lead_writable(tenant, lead, LeadWrite::Addition)?,
            self.put_new(note_item(tenant, lead, note))?,
            self.put_new(audit_item(tenant, lead, audit))?,
        ];
        self.transact_on_lead(writes, tenant, lead).await
    }

    /// A page of a lead's notes, newest first (the caller knows the lead exists).
    pub async fn notes(
        &self,
        tenant: &TenantId,
        lead: &LeadId,
        limit: usize,
        start: Option<StartKey>,
    ) -> anyhow::Result<Page<Note>> {
        let out = self
            .client
            .query()
            .table_name(&self.tables.leads)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :p)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(keys::lead_partition(tenant, lead)))
            .expression_attribute_values(":p", s(keys::NOTE_PREFIX))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 1000) as i32)
            .set_exclusive_start_key(start.map(start_key_item))
            .send()
            .await
            .context("Query notes")?;
        Ok(Page {
            items: out
                .items
                .unwrap_or_default()
                .iter()
                .map(note_from)
                .collect::<anyhow::Result<_>>()?,
            next: out
                .last_evaluated_key
                .filter(|k| !k.is_empty())
                .map(start_key_of),
        })
    }

    pub async fn note(
        &self,
        tenant: &TenantId,
        lead: &LeadId,
        note_id: &str,
    ) -> anyhow::Result<Option<Note>> {
        self.get(&self.tables.leads, &keys::lead_note(tenant, lead, note_id))
            .await?
            .map(|it| note_from(&it))
            .transpose()
    }

    /// Deletes a note of a lead that is not restricted, with its audit entry.
    pub async fn delete_note(
        &self,
        tenant: &TenantId,
        lead: &LeadId,
        note_id: &str,
        audit: &AuditEntry,
    ) -> Result<(), EditError> {
        let delete = Delete::builder()
            .table_name(&self.tables.leads)
            .set_key(Some(key_item(&keys::lead_note(tenant, lead, note_id))))
            .condition_expression("attribute_exists(pk)")
            .build()
            .context("note delete")?;
        let writes = vec![
            self.lead_writable(tenant, lead, LeadWrite::Removal)?,
            TransactWriteItem::builder().delete(delete).build(),
            self.put_new(audit_item(tenant, lead, audit))?,
        ];
        match self.transact_on_lead(writes, tenant, lead).await {
            // The lead is there and writable, so it was the note that was gone.
            Err(EditError::VersionConflict) => Err(EditError::NoteNotFound),
            other => other,
        }
    }
}
