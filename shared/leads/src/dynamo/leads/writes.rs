//! The workspace's writes on a lead: edits (one transaction conditioned on the lead's
//! version), restriction, and the deletion of everything under a lead.

use anyhow::{anyhow, Context};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, DeleteRequest, Put, TransactWriteItem, Update, WriteRequest,
};
use time::OffsetDateTime;

use super::items::{audit_item, is_held, is_restricted, stage_change_item};
use super::{backoff, LeadsStore, BATCH_ATTEMPTS};
use crate::dynamo::routing;
use crate::{AuditEntry, EditError, LeadEdit};
use shared_core::domain::{LeadId, TenantId};
use shared_core::dynamo::attrs::{get_s, key_item, n, s, timestamp, Item};
use shared_core::keys::{self, Key, PK, SK};

impl LeadsStore {
    /// Applies an edit: the lead (if still at the expected version and not restricted), its
    /// stage-history item and its audit item, in one transaction.
    pub async fn edit_lead(&self, e: &LeadEdit) -> Result<(), EditError> {
        let mut set = vec![
            "#updated_at = :now".to_string(),
            "#version = #version + :one".to_string(),
        ];
        let mut remove: Vec<String> = Vec::new();
        let mut names: Vec<(String, String)> = vec![
            ("#updated_at".into(), "updated_at".into()),
            ("#version".into(), "version".into()),
            ("#restricted".into(), "restricted".into()),
            ("#hold".into(), "legal_hold".into()),
        ];
        let mut values: Vec<(String, AttributeValue)> = vec![
            (":now".into(), timestamp(e.at)),
            (":one".into(), n(1)),
            (":v".into(), n(e.expected_version)),
            (":true".into(), AttributeValue::Bool(true)),
        ];
        let mut change = |attr: &str, value: Option<String>| {
            names.push((format!("#{attr}"), attr.to_string()));
            match value {
                Some(v) => {
                    set.push(format!("#{attr} = :{attr}"));
                    values.push((format!(":{attr}"), s(v)));
                }
                None => remove.push(format!("#{attr}")),
            }
        };
        if let Some(v) = &e.name {
            change("name", v.clone());
        }
        if let Some(v) = &e.company {
            change("company", v.clone());
        }
        if let Some(v) = &e.email {
            change(
                "email",
                v.as_ref().map(|(email, _)| email.as_str().to_string()),
            );
            change("email_bidx", v.as_ref().map(|(_, bidx)| bidx.clone()));
        }
        if let Some(v) = &e.phone {
            change(
                "phone",
                v.as_ref().map(|(phone, _)| phone.as_str().to_string()),
            );
            change("phone_bidx", v.as_ref().map(|(_, bidx)| bidx.clone()));
        }
        if let Some(v) = &e.owner {
            change("owner_user_id", v.as_ref().map(|u| u.to_string()));
        }
        if let Some(sc) = &e.stage {
            change("stage", Some(sc.to.clone()));
            change("stage_pk", keys::stage_partition(&e.tenant, &sc.to));
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let mut update = Update::builder()
            .table_name(&self.tables.leads)
            .set_key(Some(key_item(&keys::lead(&e.tenant, &e.lead))))
            .update_expression(expression)
            .condition_expression(
                "attribute_exists(pk) AND #version = :v AND (attribute_not_exists(#restricted) OR #restricted <> :true) AND (attribute_not_exists(#hold) OR #hold <> :true)",
            );
        for (k, v) in names {
            update = update.expression_attribute_names(k, v);
        }
        for (k, v) in values {
            update = update.expression_attribute_values(k, v);
        }
        let mut writes = vec![TransactWriteItem::builder()
            .update(update.build().context("lead update")?)
            .build()];
        if let Some(sc) = &e.stage {
            writes.push(self.put_new(stage_change_item(&e.tenant, &e.lead, sc))?);
        }
        writes.push(self.put_new(audit_item(&e.tenant, &e.lead, &e.audit))?);
        let mut claims = 0..0;
        if let Some(m) = &e.route_move {
            let (moves, range) = routing::move_writes(
                &self.tables.leads,
                &e.tenant,
                &e.lead,
                m.old.as_ref(),
                m.new.as_ref(),
                m.derived_of_new.as_ref(),
                routing::Former::Keep,
                e.at,
            )?;
            claims = (range.start + writes.len())..(range.end + writes.len());
            writes.extend(moves);
        }
        match self.transact(writes).await {
            Err(TxError::Condition(i)) if claims.contains(&i) => Err(EditError::ContactInUse),
            r => self.explain_on_lead(r, &e.tenant, &e.lead).await,
        }
    }

    /// Every key under the lead's partition (the lead item last) and whether the lead is
    /// restricted or held; `None` when there is no lead.
    pub async fn lead_keys(
        &self,
        tenant: &TenantId,
        lead: &LeadId,
    ) -> anyhow::Result<Option<LeadKeys>> {
        let mut keys_found = Vec::new();
        let mut lead_item: Option<(Key, bool, bool, Option<routing::RouteKey>)> = None;
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.leads)
                .key_condition_expression("#pk = :pk")
                .projection_expression("#pk, #sk, #r, #h, #eb, #pb")
                .expression_attribute_names("#eb", "email_bidx")
                .expression_attribute_names("#pb", "phone_bidx")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_names("#r", "restricted")
                .expression_attribute_names("#h", "legal_hold")
                .expression_attribute_values(":pk", s(keys::lead_partition(tenant, lead)))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("Query lead keys")?;
            for it in out.items.unwrap_or_default() {
                let k = Key {
                    pk: get_s(&it, PK)?.to_string(),
                    sk: get_s(&it, SK)?.to_string(),
                };
                if k.sk == "LEAD" {
                    let route = routing::key_of_item(&it);
                    lead_item = Some((k, is_restricted(&it), is_held(&it), route));
                } else {
                    keys_found.push(k);
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(lead_item.map(|(k, restricted, held, route)| {
            // The lead item goes last: a delete that fails half-way leaves the lead, and a retry
            // of the request finds it and finishes.
            keys_found.push(k);
            LeadKeys {
                keys: keys_found,
                restricted,
                held,
                route,
            }
        }))
    }

    /// Claims a lead for deletion: one conditional write that marks the lead item
    /// `deleting_at`, refused when the lead is restricted or under legal hold at that moment.
    /// Setting a legal hold is itself conditioned on the mark's absence
    /// (`legal_holds::set_legal_hold`), so a hold and a delete racing each other cannot both
    /// win: either the hold is refused (the lead is going), or the delete is (the lead is held).
    pub async fn claim_for_deletion(
        &self,
        tenant: &TenantId,
        lead: &LeadId,
        now: OffsetDateTime,
    ) -> Result<(), EditError> {
        let update = Update::builder()
            .table_name(&self.tables.leads)
            .set_key(Some(key_item(&keys::lead(tenant, lead))))
            .update_expression("SET #d = :now")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(#r) OR #r <> :true) AND (attribute_not_exists(#h) OR #h <> :true)",
            )
            .expression_attribute_names("#d", "deleting_at")
            .expression_attribute_names("#r", "restricted")
            .expression_attribute_names("#h", "legal_hold")
            .expression_attribute_values(":now", timestamp(now))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .build()
            .context("delete claim")?;
        let writes = vec![TransactWriteItem::builder().update(update).build()];
        self.transact_on_lead(writes, tenant, lead).await
    }

    /// Deletes the route item that leads the lead's address to it (if it has one), so the
    /// address starts afresh; before the lead's items, so a retried delete still finds the lead.
    pub async fn release_route(
        &self,
        tenant: &TenantId,
        lead: &LeadId,
        route: Option<&routing::RouteKey>,
    ) -> anyhow::Result<()> {
        routing::release(&self.client, &self.tables.leads, tenant, lead, route).await
    }

    /// Deletes items of the leads table, 25 per `BatchWriteItem`, in order; unprocessed items
    /// are retried with exponential backoff.
    pub async fn delete_lead_items(&self, keys_to_delete: &[Key]) -> anyhow::Result<()> {
        for chunk in keys_to_delete.chunks(25) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|k| {
                    Ok(WriteRequest::builder()
                        .delete_request(
                            DeleteRequest::builder()
                                .set_key(Some(key_item(k)))
                                .build()
                                .context("delete request")?,
                        )
                        .build())
                })
                .collect::<anyhow::Result<_>>()?;
            let mut attempt = 0;
            while !pending.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.tables.leads, pending)
                    .send()
                    .await
                    .context("BatchWriteItem delete")?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.tables.leads))
                    .unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
                attempt += 1;
                if attempt >= BATCH_ATTEMPTS {
                    return Err(anyhow!(
                        "BatchWriteItem left {} items unprocessed after {attempt} attempts",
                        pending.len()
                    ));
                }
                tokio::time::sleep(backoff(attempt - 1)).await;
            }
        }
        Ok(())
    }

    /// Sets or lifts a data-subject restriction on a lead (for the data-subject-request
    /// function): a restricted lead stays stored and readable, and every edit, note and delete
    /// of the workspace answers `409 lead_restricted`. Recorded in the lead's audit trail.
    /// `Ok(false)` when there is no such lead.
    pub async fn set_restricted(
        &self,
        tenant: &TenantId,
        lead: &LeadId,
        restricted: bool,
        audit: &AuditEntry,
        now: OffsetDateTime,
    ) -> anyhow::Result<bool> {
        let mut update = Update::builder()
            .table_name(&self.tables.leads)
            .set_key(Some(key_item(&keys::lead(tenant, lead))))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#r", "restricted")
            .expression_attribute_names("#ra", "restricted_at");
        update = if restricted {
            update
                .update_expression("SET #r = :true, #ra = :now")
                .expression_attribute_values(":true", AttributeValue::Bool(true))
                .expression_attribute_values(":now", timestamp(now))
        } else {
            update.update_expression("REMOVE #r, #ra")
        };
        let writes = vec![
            TransactWriteItem::builder()
                .update(update.build().context("restrict update")?)
                .build(),
            self.put_new(audit_item(tenant, lead, audit))?,
        ];
        match self.transact(writes).await {
            Ok(()) => Ok(true),
            Err(TxError::Condition(0)) => Ok(false),
            Err(TxError::Condition(_) | TxError::Conflict) => {
                Err(anyhow!("restriction of a lead conflicted; retry"))
            }
            Err(TxError::Other(e)) => Err(e),
        }
    }

    // ------------------------------------------------------------ helpers

    pub(super) fn put_new(&self, it: Item) -> anyhow::Result<TransactWriteItem> {
        Ok(TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&self.tables.leads)
                    .set_item(Some(it))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .context("put")?,
            )
            .build())
    }

    /// A transaction check that the lead exists and is not restricted; for a write that
    /// removes something of the lead (`Removal`), also that it is not under legal hold.
    pub(super) fn lead_writable(
        &self,
        tenant: &TenantId,
        lead: &LeadId,
        write: LeadWrite,
    ) -> anyhow::Result<TransactWriteItem> {
        let mut check = ConditionCheck::builder()
            .table_name(&self.tables.leads)
            .set_key(Some(key_item(&keys::lead(tenant, lead))))
            .expression_attribute_names("#r", "restricted")
            .expression_attribute_values(":true", AttributeValue::Bool(true));
        check = match write {
            LeadWrite::Addition => check.condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(#r) OR #r <> :true)",
            ),
            LeadWrite::Removal => check
                .condition_expression(
                    "attribute_exists(pk) AND (attribute_not_exists(#r) OR #r <> :true) AND (attribute_not_exists(#h) OR #h <> :true)",
                )
                .expression_attribute_names("#h", "legal_hold"),
        };
        Ok(TransactWriteItem::builder()
            .condition_check(check.build().context("lead check")?)
            .build())
    }

    /// Runs a transaction whose first write is conditioned on the lead; when a condition fails,
    /// reads the lead to tell which (missing, restricted, or changed meanwhile).
    pub(super) async fn transact_on_lead(
        &self,
        writes: Vec<TransactWriteItem>,
        tenant: &TenantId,
        lead: &LeadId,
    ) -> Result<(), EditError> {
        let r = self.transact(writes).await;
        self.explain_on_lead(r, tenant, lead).await
    }

    /// A transaction's outcome on a lead, a failed condition told apart by reading the lead.
    async fn explain_on_lead(
        &self,
        r: Result<(), TxError>,
        tenant: &TenantId,
        lead: &LeadId,
    ) -> Result<(), EditError> {
        match r {
            Ok(()) => Ok(()),
            Err(TxError::Other(e)) => Err(EditError::Store(e)),
            Err(TxError::Condition(_) | TxError::Conflict) => {
                match self.lead(tenant, lead).await? {
                    None => Err(EditError::NotFound),
                    Some(l) if l.legal_hold => Err(EditError::Held),
                    Some(l) if l.summary.restricted => Err(EditError::Restricted),
                    Some(_) => Err(EditError::VersionConflict),
                }
            }
        }
    }

    pub(super) async fn transact(&self, writes: Vec<TransactWriteItem>) -> Result<(), TxError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match e.into_service_error() {
                TransactWriteItemsError::TransactionCanceledException(tc) => {
                    let reasons = tc.cancellation_reasons();
                    if let Some(i) = reasons
                        .iter()
                        .position(|r| r.code() == Some("ConditionalCheckFailed"))
                    {
                        Err(TxError::Condition(i))
                    } else {
                        Err(TxError::Conflict)
                    }
                }
                TransactWriteItemsError::TransactionInProgressException(_) => {
                    Err(TxError::Conflict)
                }
                other => Err(TxError::Other(
                    anyhow::Error::new(other).context("TransactWriteItems"),
                )),
            },
        }
    }
}

/// The keys under a lead (the lead item last) and the states that forbid removing them.
pub struct LeadKeys {
    pub keys: Vec<Key>,
    pub restricted: bool,
    pub held: bool,
    /// The lead's routing key: its route item goes with it.
    pub route: Option<routing::RouteKey>,
}

/// What a write does to a lead: a legal hold allows additions (a note, an attachment) and
/// refuses every edit or removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LeadWrite {
    Addition,
    Removal,
}

pub(super) enum TxError {
    /// The condition of the write at this index failed.
    Condition(usize),
    /// Another transaction held an item.
    Conflict,
    Other(anyhow::Error),
}
