//! The DynamoDB adapter of lead transfers. Item <-> domain conversion happens here.
//!
//! Cost shape:
//! - attachment upload: one `TransactWriteItems` (the lead must exist and not be restricted, and
//!   the record is written, atomically); a refusal costs one more `GetItem` to say why.
//! - import: per chunk of 25 rows, one `BatchGetItem` (the leads and the suppression entries of
//!   the chunk), one `BatchWriteItem` for the new leads, one `UpdateItem` per existing lead that
//!   gets a blank filled.
//! - export: one `Query` per page of the `by_tenant` index; each lead is read once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{anyhow, Context};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, KeysAndAttributes, Put, PutRequest, TransactWriteItem,
    WriteRequest,
};
use aws_sdk_dynamodb::Client;
use time::OffsetDateTime;

use super::model::{
    AttachmentRecord, ExistingLead, ExportLead, ExportRecord, ImportRecord, ImportReport,
    ImportTarget, ImportedLead,
};
use crate::dynamo::new_lead_item;
use crate::dynamo::routing::{self, RouteKey};
use shared_core::domain::{AttachmentId, ImportId};
use shared_core::domain::{LeadId, TenantId, UserId};
use shared_core::dynamo::{key_item, n, s, timestamp, unless_condition_failed, Item};
use shared_core::keys::{self, Key, PK, SK};

/// The `by_tenant` index of the leads table (template.yaml).
pub const BY_TENANT_INDEX: &str = "by_tenant";
/// DynamoDB's limits: 25 writes per `BatchWriteItem`, 100 keys per `BatchGetItem`.
pub const BATCH_WRITE_MAX: usize = 25;
pub const BATCH_GET_MAX: usize = 100;
/// Retries of unprocessed batch items (throttling), with exponential backoff from 25 ms.
const BATCH_ATTEMPTS: u32 = 8;

#[derive(Debug, Clone)]
pub struct TransfersTables {
    /// Sessions (the live-session check of writes).
    pub tenants: String,
    pub leads: String,
    /// The suppression list.
    pub privacy: String,
}

#[derive(Debug, Clone)]
pub struct TransfersStore {
    client: Client,
    tables: TransfersTables,
}

/// Why an attachment record was not written.
#[derive(Debug, thiserror::Error)]
pub enum AttachmentRefused {
    #[error("no such lead")]
    LeadMissing,
    #[error("the lead is restricted")]
    LeadRestricted,
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// Where the next page of an export starts: DynamoDB's `LastEvaluatedKey`, opaque.
#[derive(Debug, Clone)]
pub struct PageCursor(Item);

/// One page of a tenant's leads, restricted leads left out.
#[derive(Debug, Clone)]
pub struct LeadsPage {
    pub leads: Vec<ExportLead>,
    pub next: Option<PageCursor>,
    /// Items DynamoDB read for the page (`ScannedCount`), restricted ones included.
    pub scanned: u64,
}

fn str_of<'a>(it: &'a Item, name: &str) -> Option<&'a str> {
    it.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn req_str<'a>(it: &'a Item, name: &str) -> anyhow::Result<&'a str> {
    str_of(it, name).ok_or_else(|| anyhow!("attribute {name} missing or not a string"))
}

fn parse_ts(raw: &str) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .context("timestamp is not RFC 3339")
}

fn is_true(it: &Item, name: &str) -> bool {
    matches!(it.get(name), Some(AttributeValue::Bool(true)))
}

/// A lead that is not restricted (restricted leads are read-only).
const LEAD_WRITABLE: &str =
    "attribute_exists(pk) AND (attribute_not_exists(restricted) OR restricted = :no)";

impl TransfersStore {
    pub fn new(client: Client, tables: TransfersTables) -> Self {
        Self { client, tables }
    }

    /// Whether the caller may write: a live session and a token under the user's current
    /// credential epoch ([`shared_accounts::dynamo::require_live_for_write`]).
    pub async fn require_live_for_write(
        &self,
        caller: &shared_accounts::auth::caller::Caller,
        now: time::OffsetDateTime,
    ) -> Result<(), shared_core::error::AppError> {
        shared_accounts::dynamo::require_live_for_write(
            &self.client,
            &self.tables.tenants,
            caller,
            now,
        )
        .await
    }

    /// API keys, read from the tenants table by the caller extractor.
    pub fn api_keys(&self) -> shared_accounts::api_keys::DynamoApiKeys {
        shared_accounts::api_keys::DynamoApiKeys::new(
            self.client.clone(),
            self.tables.tenants.clone(),
        )
    }

    /// Whether a lead of the tenant exists, and whether it is restricted.
    pub async fn lead(&self, t: &TenantId, l: &LeadId) -> anyhow::Result<Option<ExistingLead>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.leads)
            .set_key(Some(key_item(&keys::lead(t, l))))
            .projection_expression("pk, restricted")
            .consistent_read(true)
            .send()
            .await
            .context("GetItem lead")?;
        Ok(out.item.map(|it| ExistingLead {
            restricted: is_true(&it, "restricted"),
            ..ExistingLead::default()
        }))
    }

    // ---------------------------------------------------------------- attachments

    /// Writes an attachment record, if its lead exists in the tenant and is not restricted.
    pub async fn add_attachment(
        &self,
        t: &TenantId,
        rec: &AttachmentRecord,
    ) -> Result<(), AttachmentRefused> {
        let check = ConditionCheck::builder()
            .table_name(&self.tables.leads)
            .set_key(Some(key_item(&keys::lead(t, &rec.lead_id))))
            .condition_expression(LEAD_WRITABLE)
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .build()
            .context("lead condition")?;
        let put = Put::builder()
            .table_name(&self.tables.leads)
            .set_item(Some(attachment_item(t, rec)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .context("attachment put")?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = e.into_service_error();
                if e.code() != Some("TransactionCanceledException") {
                    return Err(anyhow::Error::new(e)
                        .context("TransactWriteItems attachment")
                        .into());
                }
                // Say why: no lead (or another tenant's), or a restricted one.
                match self.lead(t, &rec.lead_id).await? {
                    None => Err(AttachmentRefused::LeadMissing),
                    Some(l) if l.restricted => Err(AttachmentRefused::LeadRestricted),
                    Some(_) => Err(anyhow!("attachment transaction cancelled: {e}").into()),
                }
            }
        }
    }

    /// A lead's attachments, oldest first, `limit` at a time after the attachment `after`.
    /// Returns the page and the id to continue after, when there may be more.
    pub async fn attachments(
        &self,
        t: &TenantId,
        l: &LeadId,
        after: Option<&AttachmentId>,
        limit: i32,
    ) -> anyhow::Result<(Vec<AttachmentRecord>, Option<AttachmentId>)> {
        let start = after.map(|a| key_item(&keys::attachment(t, l, a)));
        let out = self
            .client
            .query()
            .table_name(&self.tables.leads)
            .key_condition_expression("pk = :pk AND begins_with(sk, :att)")
            .expression_attribute_values(":pk", s(keys::lead(t, l).pk))
            .expression_attribute_values(":att", s(keys::ATTACHMENT_PREFIX))
            .set_exclusive_start_key(start)
            .limit(limit)
            .send()
            .await
            .context("Query attachments")?;
        let items = out
            .items
            .unwrap_or_default()
            .iter()
            .map(attachment_from_item)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let more = out.last_evaluated_key.is_some_and(|k| !k.is_empty());
        let next = if more {
            items.last().map(|a| a.attachment_id.clone())
        } else {
            None
        };
        Ok((items, next))
    }

    pub async fn attachment(
        &self,
        t: &TenantId,
        l: &LeadId,
        a: &AttachmentId,
    ) -> anyhow::Result<Option<AttachmentRecord>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.leads)
            .set_key(Some(key_item(&keys::attachment(t, l, a))))
            .send()
            .await
            .context("GetItem attachment")?;
        out.item.as_ref().map(attachment_from_item).transpose()
    }

    // ---------------------------------------------------------------- imports

    /// Claims an import: writes its record as running unless it exists. A run that stopped
    /// (a timeout) before `stale_before` may be claimed again; the rows it wrote then count as
    /// duplicates. Returns the claim's id, or `None` when the import ran (or is running).
    pub async fn claim_import(
        &self,
        t: &TenantId,
        rec: &ImportRecord,
        stale_before: OffsetDateTime,
    ) -> anyhow::Result<Option<String>> {
        let mut it = key_item(&keys::import_record(t, &rec.import_id));
        it.insert("tenant_id".into(), s(t.as_str()));
        it.insert("import_id".into(), s(rec.import_id.as_str()));
        it.insert("status".into(), s("running"));
        it.insert("legal_basis".into(), s(rec.legal_basis.as_str()));
        it.insert("source".into(), s(&rec.source));
        it.insert("created_by".into(), s(rec.created_by.as_str()));
        it.insert("created_at".into(), timestamp(rec.created_at));
        it.insert("started_at".into(), timestamp(rec.created_at));
        // This claim's own id: a claim the SDK sent again after a lost answer finds its own
        // record and goes on, instead of refusing its own import as "exists".
        let claim = ulid::Ulid::new().to_string();
        it.insert("claim".into(), s(&claim));
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.leads)
            .set_item(Some(it))
            .condition_expression(
                "attribute_not_exists(pk) OR (#status = :running AND started_at < :stale) OR claim = :claim",
            )
            .expression_attribute_values(":claim", s(&claim))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", s("running"))
            .expression_attribute_values(":stale", timestamp(stale_before))
            .send()
            .await;
        Ok(unless_condition_failed(result, "PutItem import record")?.map(|_| claim))
    }

    /// Gives up a claim whose run failed (a passing AWS failure, answered 503): the record goes,
    /// so the request sent again claims the import and runs it; the rows the failed run wrote
    /// then count as duplicates.
    pub async fn release_import(
        &self,
        t: &TenantId,
        import_id: &ImportId,
        claim: &str,
    ) -> anyhow::Result<()> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.leads)
            .set_key(Some(key_item(&keys::import_record(t, import_id))))
            .condition_expression("claim = :claim AND #status = :running")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":claim", s(claim))
            .expression_attribute_values(":running", s("running"))
            .send()
            .await;
        unless_condition_failed(result, "DeleteItem import record")?;
        Ok(())
    }

    /// Where each row's address leads (by its derived lead id) and the suppressed blind indexes
    /// among `bidx`: one `BatchGetItem` (at most 100 keys together) of the derived leads, the
    /// addresses' route items and the suppression entries, and a second only for addresses
    /// whose route names another lead (an edited lead's new address).
    pub async fn import_lookup(
        &self,
        t: &TenantId,
        leads: &[(LeadId, Option<RouteKey>)],
        bidx: &[String],
    ) -> anyhow::Result<(HashMap<LeadId, ImportTarget>, HashSet<String>)> {
        anyhow::ensure!(
            2 * leads.len() + bidx.len() <= BATCH_GET_MAX,
            "import lookup of more than {BATCH_GET_MAX} keys"
        );
        let mut lead_keys: Vec<Item> = leads
            .iter()
            .map(|(l, _)| key_item(&keys::lead(t, l)))
            .collect();
        lead_keys.extend(
            leads
                .iter()
                .filter_map(|(_, k)| k.as_ref())
                .map(|k| key_item(&keys::lead_route(t, &k.bidx))),
        );
        let (found, suppressed) = self.import_batch(lead_keys, t, bidx).await?;
        let by_key = |k: &Key| {
            found.iter().find(|it| {
                it.get(PK).and_then(|v| v.as_s().ok()) == Some(&k.pk)
                    && it.get(SK).and_then(|v| v.as_s().ok()) == Some(&k.sk)
            })
        };
        let mut targets = HashMap::new();
        let mut routed: Vec<(LeadId, LeadId)> = Vec::new();
        for (derived, key) in leads {
            let route = key
                .as_ref()
                .and_then(|k| by_key(&keys::lead_route(t, &k.bidx)))
                .map(routing::routed_lead)
                .transpose()?;
            let lead = by_key(&keys::lead(t, derived));
            let owned = match (lead, key) {
                (Some(it), Some(k)) => routing::key_of_item(it).as_ref() == Some(k),
                _ => false,
            };
            let target = match routing::decide(route.as_ref(), derived, lead.is_some(), owned) {
                routing::Routed::Existing(id) if id == *derived => {
                    ImportTarget::Existing(id, existing_lead(lead.context("derived lead")?))
                }
                routing::Routed::Existing(id) => {
                    routed.push((derived.clone(), id));
                    continue;
                }
                routing::Routed::NewAtDerived => ImportTarget::New,
                routing::Routed::NewRouted => ImportTarget::NewRouted,
            };
            targets.insert(derived.clone(), target);
        }
        if !routed.is_empty() {
            let keys_: Vec<Item> = routed
                .iter()
                .map(|(_, id)| key_item(&keys::lead(t, id)))
                .collect();
            let (found, _) = self.import_batch(keys_, t, &[]).await?;
            for (derived, id) in routed {
                let k = keys::lead(t, &id);
                let lead = found
                    .iter()
                    .find(|it| it.get(PK).and_then(|v| v.as_s().ok()) == Some(&k.pk));
                let target = match lead {
                    Some(it) => ImportTarget::Existing(id, existing_lead(it)),
                    // The route names a lead deleted meanwhile: a new lead, routed.
                    None => ImportTarget::NewRouted,
                };
                targets.insert(derived, target);
            }
        }
        Ok((targets, suppressed))
    }

    async fn import_batch(
        &self,
        lead_keys: Vec<Item>,
        t: &TenantId,
        bidx: &[String],
    ) -> anyhow::Result<(Vec<Item>, HashSet<String>)> {
        let mut request = HashMap::new();
        if !lead_keys.is_empty() {
            request.insert(
                self.tables.leads.clone(),
                KeysAndAttributes::builder()
                    .set_keys(Some(lead_keys))
                    .projection_expression(
                        "pk, sk, lead_id, restricted, #name, company, phone, email_bidx, phone_bidx",
                    )
                    .expression_attribute_names("#name", "name")
                    .consistent_read(true)
                    .build()
                    .context("lead keys")?,
            );
        }
        if !bidx.is_empty() {
            request.insert(
                self.tables.privacy.clone(),
                KeysAndAttributes::builder()
                    .set_keys(Some(
                        bidx.iter()
                            .map(|b| key_item(&keys::suppression(t, b)))
                            .collect(),
                    ))
                    .projection_expression("sk")
                    .consistent_read(true)
                    .build()
                    .context("suppression keys")?,
            );
        }
        let mut found = Vec::new();
        let mut suppressed = HashSet::new();
        if request.is_empty() {
            return Ok((found, suppressed));
        }
        for attempt in 0..BATCH_ATTEMPTS {
            let out = self
                .client
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .context("BatchGetItem import lookup")?;
            let mut responses = out.responses.unwrap_or_default();
            found.extend(responses.remove(&self.tables.leads).unwrap_or_default());
            for it in responses.remove(&self.tables.privacy).unwrap_or_default() {
                suppressed.insert(req_str(&it, SK)?.to_string());
            }
            match out.unprocessed_keys {
                Some(rest) if !rest.is_empty() => {
                    request = rest;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                _ => return Ok((found, suppressed)),
            }
        }
        Err(anyhow!("BatchGetItem left keys unprocessed after retries"))
    }

    /// Writes new leads of an import, 25 per `BatchWriteItem`, retrying unprocessed items.
    /// Each lead has the item shape of a lead from a form, plus the import's legal basis and id.
    pub async fn put_imported_leads(
        &self,
        t: &TenantId,
        import: &ImportRecord,
        leads: &[ImportedLead],
    ) -> anyhow::Result<()> {
        for chunk in leads.chunks(BATCH_WRITE_MAX) {
            let put = |item: Item| -> anyhow::Result<WriteRequest> {
                Ok(WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item))
                            .build()
                            .context("put request")?,
                    )
                    .build())
            };
            let mut writes = Vec::with_capacity(chunk.len());
            for l in chunk {
                writes.push(put(imported_lead_item(t, l, import))?);
            }
            // Routes after their leads (a batch has no order guarantee, so a separate batch):
            // a route never names a lead not yet written.
            let routes = chunk
                .iter()
                .filter_map(|l| {
                    l.route
                        .as_ref()
                        .map(|k| put(routing::route_item(t, k, &l.lead_id, import.created_at)))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            self.batch_write(writes).await?;
            if !routes.is_empty() {
                self.batch_write(routes).await?;
            }
        }
        Ok(())
    }

    async fn batch_write(&self, writes: Vec<WriteRequest>) -> anyhow::Result<()> {
        let mut request = HashMap::from([(self.tables.leads.clone(), writes)]);
        for attempt in 0..BATCH_ATTEMPTS {
            let out = self
                .client
                .batch_write_item()
                .set_request_items(Some(request))
                .send()
                .await
                .context("BatchWriteItem leads")?;
            match out.unprocessed_items {
                Some(rest) if rest.values().any(|v| !v.is_empty()) => {
                    request = rest;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                _ => return Ok(()),
            }
        }
        Err(anyhow!(
            "BatchWriteItem left items unprocessed after retries"
        ))
    }

    /// Fills the contact fields an existing lead lacks from an import row; never overwrites,
    /// never touches a restricted or held lead. Returns whether anything was filled.
    pub async fn fill_blanks(
        &self,
        t: &TenantId,
        lead: &LeadId,
        row: &ImportedLead,
        existing: ExistingLead,
        import_id: &ImportId,
        now: OffsetDateTime,
    ) -> anyhow::Result<bool> {
        let c = &row.contact;
        let mut fills: Vec<(&str, AttributeValue)> = Vec::new();
        if let (false, Some(v)) = (existing.has_name, &c.name) {
            fills.push(("name", s(v)));
        }
        if let (false, Some(v)) = (existing.has_company, &c.company) {
            fills.push(("company", s(v)));
        }
        if let (false, Some(p), Some(b)) = (existing.has_phone, &c.phone, &row.phone_bidx) {
            fills.push(("phone", s(p.as_str())));
            fills.push(("phone_bidx", s(b)));
        }
        if fills.is_empty() || existing.restricted {
            return Ok(false);
        }
        let mut set = vec![
            "updated_at = :now".to_string(),
            "last_import_id = :imp".to_string(),
        ];
        // A held lead is not edited either (legal hold: nothing changes until it is cleared).
        let mut condition = vec![
            LEAD_WRITABLE.to_string(),
            "(attribute_not_exists(legal_hold) OR legal_hold = :no)".to_string(),
        ];
        let mut upd = self
            .client
            .update_item()
            .table_name(&self.tables.leads)
            .set_key(Some(key_item(&keys::lead(t, lead))))
            .expression_attribute_values(":now", timestamp(now))
            .expression_attribute_values(":imp", s(import_id.as_str()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":no", AttributeValue::Bool(false));
        // Only while the lead is still the row's address's (an edit may have moved it since).
        if let Some(k) = row.route_key() {
            let owns = routing::owns(&k);
            condition.push(owns.expression);
            for (k, v) in owns.names {
                upd = upd.expression_attribute_names(k, v);
            }
            for (k, v) in owns.values {
                upd = upd.expression_attribute_values(k, v);
            }
        }
        for (i, (name, value)) in fills.into_iter().enumerate() {
            set.push(format!("#f{i} = :f{i}"));
            condition.push(format!("attribute_not_exists(#f{i})"));
            upd = upd
                .expression_attribute_names(format!("#f{i}"), name)
                .expression_attribute_values(format!(":f{i}"), value);
        }
        let result = upd
            .update_expression(format!("SET {} ADD version :one", set.join(", ")))
            .condition_expression(condition.join(" AND "))
            .send()
            .await;
        // `false`: restricted, held, deleted or filled meanwhile: nothing to do.
        Ok(unless_condition_failed(result, "UpdateItem lead fill")?.is_some())
    }

    /// Marks an import done, with its report (counts, row numbers and rule messages: no values).
    pub async fn finish_import(
        &self,
        t: &TenantId,
        import_id: &ImportId,
        report: &ImportReport,
        now: OffsetDateTime,
    ) -> anyhow::Result<()> {
        self.client
            .update_item()
            .table_name(&self.tables.leads)
            .set_key(Some(key_item(&keys::import_record(t, import_id))))
            .update_expression("SET #status = :done, finished_at = :now, report = :report")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", s("completed"))
            .expression_attribute_values(":now", timestamp(now))
            .expression_attribute_values(
                ":report",
                s(serde_json::to_string(report).context("report JSON")?),
            )
            .send()
            .await
            .context("UpdateItem import record")?;
        Ok(())
    }

    // ---------------------------------------------------------------- exports

    /// One page of the tenant's leads from the `by_tenant` index, restricted leads filtered out
    /// by DynamoDB (they are still read, and counted in `scanned`).
    pub async fn leads_page(
        &self,
        t: &TenantId,
        cursor: Option<PageCursor>,
        limit: i32,
    ) -> anyhow::Result<LeadsPage> {
        let out = self
            .client
            .query()
            .table_name(&self.tables.leads)
            .index_name(BY_TENANT_INDEX)
            .key_condition_expression("tenant_pk = :t")
            .filter_expression("attribute_not_exists(restricted) OR restricted = :no")
            .projection_expression(
                "lead_id, email, phone, #name, company, stage, owner_user_id, source_form_id, created_at",
            )
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":t", s(keys::leads_of_tenant(t)))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .set_exclusive_start_key(cursor.map(|c| c.0))
            .limit(limit)
            .send()
            .await
            .context("Query by_tenant")?;
        let owned = |it: &Item, name: &str| str_of(it, name).map(str::to_string);
        let leads = out
            .items
            .unwrap_or_default()
            .iter()
            .map(|it| {
                Ok(ExportLead {
                    id: req_str(it, "lead_id")?.to_string(),
                    email: owned(it, "email"),
                    phone: owned(it, "phone"),
                    name: owned(it, "name"),
                    company: owned(it, "company"),
                    stage: owned(it, "stage"),
                    owner_user_id: owned(it, "owner_user_id"),
                    source_form_id: owned(it, "source_form_id"),
                    created_at: owned(it, "created_at"),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(LeadsPage {
            leads,
            next: out
                .last_evaluated_key
                .filter(|k| !k.is_empty())
                .map(PageCursor),
            scanned: u64::try_from(out.scanned_count).unwrap_or(0),
        })
    }

    /// Whether an export's record is stored (after a put the SDK gave up on).
    pub async fn export_record_exists(
        &self,
        t: &TenantId,
        export_id: &super::ExportId,
    ) -> anyhow::Result<bool> {
        Ok(shared_core::dynamo::get_item(
            &self.client,
            &self.tables.leads,
            &keys::export_record(t, export_id),
        )
        .await?
        .is_some())
    }

    pub async fn put_export_record(&self, t: &TenantId, rec: &ExportRecord) -> anyhow::Result<()> {
        let mut it = key_item(&keys::export_record(t, &rec.export_id));
        it.insert("tenant_id".into(), s(t.as_str()));
        it.insert("export_id".into(), s(rec.export_id.as_str()));
        it.insert("format".into(), s(rec.format));
        it.insert("count".into(), n(rec.count));
        it.insert("object_key".into(), s(&rec.object_key));
        it.insert("created_by".into(), s(rec.created_by.as_str()));
        it.insert("created_at".into(), timestamp(rec.created_at));
        it.insert("object_expires_at".into(), timestamp(rec.expires_at));
        // Retention deletes the record and its object once the object's 7 days are over.
        it.insert(
            "exp_bucket".into(),
            s(shared_core::retention::expiry_bucket_at(
                shared_core::retention::rule::EXPORT,
                rec.expires_at,
                &keys::export_record(t, &rec.export_id),
            )),
        );
        self.client
            .put_item()
            .table_name(&self.tables.leads)
            .set_item(Some(it))
            .send()
            .await
            .context("PutItem export record")?;
        Ok(())
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(25u64 << attempt.min(6))
}

fn attachment_item(t: &TenantId, a: &AttachmentRecord) -> Item {
    let mut it = key_item(&keys::attachment(t, &a.lead_id, &a.attachment_id));
    it.insert("tenant_id".into(), s(t.as_str()));
    it.insert("lead_id".into(), s(a.lead_id.as_str()));
    it.insert("attachment_id".into(), s(a.attachment_id.as_str()));
    it.insert("filename".into(), s(&a.filename));
    it.insert("content_type".into(), s(&a.content_type));
    it.insert("size".into(), n(a.size));
    it.insert("uploaded_by".into(), s(a.uploaded_by.as_str()));
    it.insert("created_at".into(), timestamp(a.created_at));
    it.insert(
        "object_key".into(),
        s(keys::attachment_object(t, &a.lead_id, &a.attachment_id)),
    );
    it
}

fn attachment_from_item(it: &Item) -> anyhow::Result<AttachmentRecord> {
    Ok(AttachmentRecord {
        attachment_id: AttachmentId::parse(req_str(it, "attachment_id")?)?,
        lead_id: LeadId::parse(req_str(it, "lead_id")?)?,
        filename: req_str(it, "filename")?.to_string(),
        content_type: req_str(it, "content_type")?.to_string(),
        size: it
            .get("size")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("attribute size missing"))?,
        uploaded_by: UserId::parse(req_str(it, "uploaded_by")?)?,
        created_at: parse_ts(req_str(it, "created_at")?)?,
    })
}

/// A lead from an import: the shape of a lead from a form ([`new_lead_item`]), with the
/// import's legal basis and id instead of a source form and submissions.
/// What an import needs of a lead item it may fill.
fn existing_lead(it: &Item) -> ExistingLead {
    ExistingLead {
        restricted: is_true(it, "restricted"),
        has_name: it.contains_key("name"),
        has_company: it.contains_key("company"),
        has_phone: it.contains_key("phone"),
    }
}

pub fn imported_lead_item(t: &TenantId, l: &ImportedLead, import: &ImportRecord) -> Item {
    let mut it = new_lead_item(
        t,
        &l.lead_id,
        &l.contact,
        (l.email_bidx.as_deref(), l.phone_bidx.as_deref()),
        &l.stage,
        import.created_at,
    );
    it.insert("legal_basis".into(), s(import.legal_basis.as_str()));
    it.insert("source_import_id".into(), s(import.import_id.as_str()));
    it.insert("submission_count".into(), n(0));
    it
}
