//! The lead workspace's store: leads, their notes, stage history and audit trail (leads table),
//! forms and the pipeline (tenants table), and the reads of the account data an authenticated
//! write needs (the caller's session, a team member).
//!
//! Costs, by design:
//! - a page of leads is one Query on `by_tenant` or `by_stage` with `Limit` = the page size and
//!   no filter (the form filter adds one, and then a page may come back short); the first stage
//!   has no `by_stage` entries (`keys::stage_partition`: a new lead writes one index entry
//!   less), so its page is read from `by_tenant` with a filter on `stage`, in Queries until the
//!   page is full, the list ends or [`FIRST_STAGE_READ_BUDGET`] pages' worth were read;
//! - a lead with everything under it is one Query on its partition;
//! - an edit is one `GetItem` (to know what changes) and one `TransactWriteItems` (the lead,
//!   conditioned on its version, plus its stage-history and audit items);
//! - a delete is one Query for the keys and `BatchWriteItem`s of 25, the lead item last, so a
//!   delete that fails half-way can simply be retried.
//!
//! Here: the store and the reads of leads. `writes`: edits, restriction, deletion;
//! `notes`, `forms`, `tenant` (session, team member, pipeline); `items`: item conversions.

mod forms;
mod items;
mod notes;
mod tenant;
mod writes;

pub use writes::LeadKeys;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_dynamodb::types::KeysAndAttributes;
use aws_sdk_dynamodb::Client;

use crate::{Lead, LeadDetail, LeadFilter, LeadSummary, Page, StartKey};
use items::{
    audit_from, lead_from, note_from, stage_change_from, start_key_item, start_key_of,
    submission_from, summary_from,
};
use shared_core::clock::rfc3339;
use shared_core::domain::{LeadId, TenantId};
use shared_core::dynamo::attrs::{get_s, s, Item};
use shared_core::keys::{self, Key, PK, SK};

#[derive(Debug, Clone)]
pub struct LeadsTables {
    pub tenants: String,
    pub leads: String,
}

#[derive(Debug, Clone)]
pub struct LeadsStore {
    client: Client,
    tables: LeadsTables,
}

/// GSIs of the leads table this store queries (names from template.yaml).
const BY_TENANT: &str = "by_tenant";
const BY_STAGE: &str = "by_stage";
const BY_EMAIL: &str = "by_email_bidx";
/// GSI of the tenants table listing a tenant's forms (and a user's sessions).
const GSI1: &str = "gsi1";

/// The attributes a list row shows: what `by_tenant` and `by_stage` project, so the email
/// lookup (whose index projects keys only) reads the same from the table.
const SUMMARY_ATTRIBUTES: [&str; 11] = [
    "lead_id",
    "email",
    "phone",
    "name",
    "company",
    "stage",
    "source_form_id",
    "owner_user_id",
    "restricted",
    "marketing_opt_out",
    "created_at",
];

/// A key condition's upper bound on `created_sk`: sorts after every `<time>#<leadId>` of that
/// second (ids are `[a-z0-9_-]`, all below `~`).
const AFTER_ANY_ID: &str = "#~";

/// How many pages' worth of `by_tenant` entries one page of the first stage reads at most
/// before it answers short, with a cursor (the first stage's leads are the newest, as a rule,
/// so a page is usually filled by the first Query).
pub const FIRST_STAGE_READ_BUDGET: usize = 10;

/// Retries of a batch write's unprocessed items, with exponential backoff from 25 ms.
const BATCH_ATTEMPTS: u32 = 8;

/// The lead partitions (`TENANT#<t>#LEAD#<l>`) whose current email is this blind index, in
/// every tenant: every page of a Query of the KEYS_ONLY `by_email_bidx` index (never a scan).
/// Returns them with the items the Query read (`ScannedCount`).
pub async fn lead_pks_by_email(
    client: &Client,
    leads_table: &str,
    email_bidx: &str,
) -> anyhow::Result<(Vec<String>, u64)> {
    let (found, scanned) = lead_pks_holding(client, leads_table, email_bidx).await?;
    let pks = found
        .into_iter()
        .filter(|l| l.current)
        .map(|l| l.pk)
        .collect();
    Ok((pks, scanned))
}

/// A lead partition holding data of an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadHolding {
    pub pk: String,
    /// The lead's current email is the address (else: a former one, and the lead holds the
    /// submissions it made).
    pub current: bool,
}

/// Every lead partition holding data of one email address, in every tenant: leads whose email
/// it is now, and leads whose email it was (their `FORMER#` item, written by the edit that
/// changed it, carries the index), so a data-subject request finds the submissions the address
/// made on a lead that has another address now. Sorted, each partition once.
pub async fn lead_pks_holding(
    client: &Client,
    leads_table: &str,
    email_bidx: &str,
) -> anyhow::Result<(Vec<LeadHolding>, u64)> {
    let mut found: std::collections::BTreeMap<String, bool> = Default::default();
    let mut scanned = 0;
    let mut start = None;
    loop {
        let out = client
            .query()
            .table_name(leads_table)
            .index_name(BY_EMAIL)
            .key_condition_expression("email_bidx = :b")
            .expression_attribute_values(":b", s(email_bidx))
            .set_exclusive_start_key(start)
            .send()
            .await
            .context("Query by_email_bidx")?;
        scanned += out.scanned_count as u64;
        for it in out.items.unwrap_or_default() {
            let pk = it.get(PK).and_then(|v| v.as_s().ok());
            let sk = it.get(SK).and_then(|v| v.as_s().ok());
            match (pk, sk.map(String::as_str)) {
                (Some(pk), Some("LEAD")) => {
                    found.insert(pk.clone(), true);
                }
                (Some(pk), Some(sk)) if sk.starts_with(keys::FORMER_ADDRESS_PREFIX) => {
                    found.entry(pk.clone()).or_insert(false);
                }
                _ => {}
            }
        }
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    let holdings = found
        .into_iter()
        .map(|(pk, current)| LeadHolding { pk, current })
        .collect();
    Ok((holdings, scanned))
}

impl LeadsStore {
    pub fn new(client: Client, tables: LeadsTables) -> Self {
        Self { client, tables }
    }

    pub fn tables(&self) -> &LeadsTables {
        &self.tables
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn get(&self, table: &str, key: &Key) -> anyhow::Result<Option<Item>> {
        shared_core::dynamo::attrs::get_item(&self.client, table, key).await
    }

    // ------------------------------------------------------------ leads

    /// One page of the tenant's leads, newest first: one Query reading at most `limit` index
    /// entries (the form filter is applied to those, so a page may come back short).
    pub async fn list_leads(
        &self,
        tenant: &TenantId,
        filter: &LeadFilter,
        limit: usize,
        start: Option<StartKey>,
    ) -> anyhow::Result<Page<LeadSummary>> {
        let limit = limit.clamp(1, 1000);
        let (index, partition, stage_filter) = match &filter.stage {
            Some(stage) => match keys::stage_partition(tenant, stage) {
                Some(p) => (BY_STAGE, ("stage_pk", p), None),
                None => (
                    BY_TENANT,
                    ("tenant_pk", keys::leads_of_tenant(tenant)),
                    Some(stage.as_str()),
                ),
            },
            None => (
                BY_TENANT,
                ("tenant_pk", keys::leads_of_tenant(tenant)),
                None,
            ),
        };
        let mut condition = "#p = :p".to_string();
        let mut q = self
            .client
            .query()
            .table_name(&self.tables.leads)
            .index_name(index)
            .expression_attribute_names("#p", partition.0)
            .expression_attribute_values(":p", s(partition.1))
            .scan_index_forward(false);
        let from = filter.created_from.map(rfc3339);
        let to = filter
            .created_to
            .map(|t| format!("{}{AFTER_ANY_ID}", rfc3339(t)));
        match (from, to) {
            (Some(a), Some(b)) => {
                condition.push_str(" AND created_sk BETWEEN :a AND :b");
                q = q
                    .expression_attribute_values(":a", s(a))
                    .expression_attribute_values(":b", s(b));
            }
            (Some(a), None) => {
                condition.push_str(" AND created_sk >= :a");
                q = q.expression_attribute_values(":a", s(a));
            }
            (None, Some(b)) => {
                condition.push_str(" AND created_sk <= :b");
                q = q.expression_attribute_values(":b", s(b));
            }
            (None, None) => {}
        }
        let mut filters = Vec::new();
        if let Some(form) = &filter.form {
            filters.push("source_form_id = :f");
            q = q.expression_attribute_values(":f", s(form.as_str()));
        }
        if let Some(stage) = stage_filter {
            filters.push("#stage = :stage");
            q = q
                .expression_attribute_names("#stage", "stage")
                .expression_attribute_values(":stage", s(stage));
        }
        if !filters.is_empty() {
            q = q.filter_expression(filters.join(" AND "));
        }
        let q = q.key_condition_expression(condition);

        // One Query, except for the first stage: Queries of the entries still missing (so a
        // page never holds more than `limit`) until it is full, within the read budget.
        let budget = if stage_filter.is_some() {
            limit.saturating_mul(FIRST_STAGE_READ_BUDGET)
        } else {
            limit
        };
        let mut items = Vec::new();
        let mut read = 0;
        let mut start = start.map(start_key_item);
        loop {
            let want = (limit - items.len()).min(budget - read).max(1);
            let out = q
                .clone()
                .limit(want as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("Query leads")?;
            read += out.scanned_count.max(0) as usize;
            for it in out.items.unwrap_or_default() {
                items.push(summary_from(&it)?);
            }
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() || stage_filter.is_none() || items.len() >= limit || read >= budget {
                break;
            }
        }
        Ok(Page {
            items,
            next: start.map(start_key_of),
        })
    }

    /// The tenant's leads with this email blind index (usually one): the index holds every
    /// tenant's, only this tenant's are kept, then read from the table.
    pub async fn leads_by_email(
        &self,
        tenant: &TenantId,
        email_bidx: &str,
    ) -> anyhow::Result<Vec<LeadSummary>> {
        let prefix = format!("{}#LEAD#", keys::leads_of_tenant(tenant));
        let (pks, _) = lead_pks_by_email(&self.client, &self.tables.leads, email_bidx).await?;
        let lead_keys: Vec<Item> = pks
            .into_iter()
            .filter(|pk| pk.starts_with(&prefix))
            .map(|pk| HashMap::from([(PK.to_string(), s(pk)), (SK.to_string(), s("LEAD"))]))
            .collect();
        let mut found = Vec::with_capacity(lead_keys.len());
        for chunk in lead_keys.chunks(100) {
            let names: Vec<String> = (0..SUMMARY_ATTRIBUTES.len())
                .map(|i| format!("#a{i}"))
                .collect();
            let mut ka = KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .projection_expression(names.join(", "));
            for (name, attr) in names.iter().zip(SUMMARY_ATTRIBUTES) {
                ka = ka.expression_attribute_names(name, attr);
            }
            let mut request =
                HashMap::from([(self.tables.leads.clone(), ka.build().context("keys")?)]);
            for attempt in 0..BATCH_ATTEMPTS {
                let out = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(request))
                    .send()
                    .await
                    .context("BatchGetItem leads")?;
                for it in out
                    .responses
                    .unwrap_or_default()
                    .remove(&self.tables.leads)
                    .unwrap_or_default()
                {
                    found.push(summary_from(&it)?);
                }
                match out.unprocessed_keys {
                    Some(rest) if !rest.is_empty() => {
                        request = rest;
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    _ => break,
                }
            }
        }
        found.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(b.lead_id.cmp(&a.lead_id))
        });
        Ok(found)
    }

    /// The lead item (consistent read).
    pub async fn lead(&self, tenant: &TenantId, lead: &LeadId) -> anyhow::Result<Option<Lead>> {
        self.get(&self.tables.leads, &keys::lead(tenant, lead))
            .await?
            .map(|it| lead_from(&it))
            .transpose()
    }

    /// The lead with everything under it, in one Query on its partition (more only when the
    /// partition is over 1 MB). Lists are oldest first.
    pub async fn lead_detail(
        &self,
        tenant: &TenantId,
        lead: &LeadId,
    ) -> anyhow::Result<Option<LeadDetail>> {
        let mut found: Option<Lead> = None;
        let mut submissions = Vec::new();
        let mut notes = Vec::new();
        let mut stage_history = Vec::new();
        let mut audit = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.leads)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(keys::lead_partition(tenant, lead)))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("Query lead partition")?;
            for it in out.items.unwrap_or_default() {
                let sk = get_s(&it, SK)?;
                if sk == "LEAD" {
                    found = Some(lead_from(&it)?);
                } else if sk.starts_with(keys::SUBMISSION_PREFIX) {
                    submissions.push(submission_from(&it)?);
                } else if sk.starts_with(keys::NOTE_PREFIX) {
                    notes.push(note_from(&it)?);
                } else if sk.starts_with(keys::STAGE_CHANGE_PREFIX) {
                    stage_history.push(stage_change_from(&it)?);
                } else if sk.starts_with(keys::AUDIT_PREFIX) {
                    audit.push(audit_from(&it)?);
                }
                // Other items under a lead (attachment records) have their own routes.
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(found.map(|lead| LeadDetail {
            consent_history: LeadDetail::consent_events(&submissions),
            lead,
            submissions,
            notes,
            stage_history,
            audit,
        }))
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((25u64 << attempt.min(6)).min(2000))
}
