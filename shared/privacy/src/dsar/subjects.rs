//! The reads of a data-subject request's execution, over every table that holds the subject's
//! data. Every read is a `GetItem` or a `Query` on a key the subject leads to (the email's blind
//! index, a lead's partition, a user's id): never a `Scan`, so the cost follows the subject, not
//! the size of the tables. [`SubjectStore::items_read`] sums the Query responses'
//! `ScannedCount` (plus the items got), for the benchmark.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use shared_core::domain::{LeadId, TenantId, UserId};
use shared_core::dynamo::{s, Item};
use shared_core::keys::{self, Key, PK, SK};
use shared_leads::dynamo::lead_pks_holding;

#[derive(Debug, Clone)]
pub struct SubjectTables {
    pub tenants: String,
    pub leads: String,
    pub privacy: String,
    pub ops: String,
    pub security_log: String,
    pub billing: String,
}

#[derive(Debug, Clone)]
pub struct SubjectStore {
    client: Client,
    tables: SubjectTables,
    items_read: Arc<AtomicU64>,
}

const GSI1: &str = "gsi1";

impl SubjectStore {
    pub fn new(client: Client, tables: SubjectTables) -> Self {
        Self {
            client,
            tables,
            items_read: Arc::default(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn tables(&self) -> &SubjectTables {
        &self.tables
    }

    /// Items read so far (Query `ScannedCount` plus items got).
    pub fn items_read(&self) -> u64 {
        self.items_read.load(Ordering::Relaxed)
    }

    fn count(&self, n: u64) {
        self.items_read.fetch_add(n, Ordering::Relaxed);
    }

    pub async fn get(&self, table: &str, key: &Key) -> anyhow::Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key_map(key)))
            .consistent_read(true)
            .send()
            .await
            .context("GetItem")?;
        if out.item.is_some() {
            self.count(1);
        }
        Ok(out.item)
    }

    /// The tenant's leads holding data of this email blind index: the `by_email_bidx` index
    /// (keys only) holds every tenant's leads whose email it is, and the former-address items of
    /// leads whose email it was; the tenant's are kept by their key prefix.
    pub async fn lead_ids(
        &self,
        tenant: &TenantId,
        email_bidx: &str,
    ) -> anyhow::Result<Vec<LeadId>> {
        let prefix = format!("{}#LEAD#", keys::leads_of_tenant(tenant));
        let (holdings, scanned) =
            lead_pks_holding(&self.client, &self.tables.leads, email_bidx).await?;
        self.count(scanned);
        let mut ids = Vec::new();
        for pk in holdings.into_iter().map(|h| h.pk) {
            if let Some(id) = pk.strip_prefix(&prefix) {
                ids.push(LeadId::parse(id).context("lead id in a key")?);
            }
        }
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        ids.dedup();
        Ok(ids)
    }

    /// The tenant's leads of a phone, for a request that identifies its subject by phone: the
    /// lead the phone's route item names, and its derived lead (`keys.lead_id`: the lead the
    /// phone's first phone-only submission created, even if an email was added to it since).
    /// Two `GetItem`s in the tenant's own keys: another tenant's lead of the same phone is never
    /// read. What under them is the subject's is decided item by item (`is_subjects`): the
    /// submissions made with this phone and no email, and the lead's own record while the
    /// phone is its routing key.
    pub async fn lead_ids_by_phone(
        &self,
        tenant: &TenantId,
        phone_bidx: &str,
        keys_: &shared_core::blind_index::BlindIndexKey,
    ) -> anyhow::Result<Vec<LeadId>> {
        let (ids, read) =
            phone_lead_ids(&self.client, &self.tables.leads, tenant, phone_bidx, keys_).await?;
        self.count(read);
        Ok(ids)
    }

    /// The tenant's quarantined submissions of this subject (ops table): the `by_subject`
    /// index (keys only, bounded to the tenant's quarantine by its range key), then each record
    /// got. A record TTL removed meanwhile is not found.
    pub async fn quarantined(
        &self,
        tenant: &TenantId,
        subject_bidx: &str,
    ) -> anyhow::Result<Vec<Item>> {
        let (found, scanned) = shared_leads::dynamo::quarantined_of_subject(
            &self.client,
            &self.tables.ops,
            Some(tenant),
            subject_bidx,
        )
        .await?;
        self.count(scanned);
        let mut items = Vec::with_capacity(found.len());
        for key in &found {
            if let Some(it) = self.get(&self.tables.ops, key).await? {
                items.push(it);
            }
        }
        Ok(items)
    }

    /// Every item of one partition (consistent reads), optionally filtered.
    pub async fn partition(
        &self,
        table: &str,
        pk: &str,
        filter: Option<(&str, Vec<(&str, AttributeValue)>)>,
    ) -> anyhow::Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start);
            if let Some((expr, values)) = &filter {
                q = q.filter_expression(*expr);
                for (k, v) in values {
                    q = q.expression_attribute_values(*k, v.clone());
                }
            }
            let out = q.send().await.context("Query partition")?;
            self.count(out.scanned_count as u64);
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// One page (at most 1 MB) of a partition, and where the next starts; exports stream a
    /// lead's partition page by page so memory stays one page whatever its size.
    pub async fn partition_page(
        &self,
        table: &str,
        pk: &str,
        start: Option<HashMap<String, AttributeValue>>,
    ) -> anyhow::Result<(Vec<Item>, Option<HashMap<String, AttributeValue>>)> {
        let out = self
            .client
            .query()
            .table_name(table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .context("Query partition page")?;
        self.count(out.scanned_count as u64);
        let next = out.last_evaluated_key.filter(|k| !k.is_empty());
        Ok((out.items.unwrap_or_default(), next))
    }

    /// Every item under a lead: the lead, its submissions (consent records and technical data),
    /// notes, stage history, audit trail and attachment records.
    pub async fn lead_items(&self, tenant: &TenantId, lead: &LeadId) -> anyhow::Result<Vec<Item>> {
        self.partition(
            &self.tables.leads,
            &keys::lead_partition(tenant, lead),
            None,
        )
        .await
    }

    /// A user's sessions, through `gsi1` (`USER#<userId>`).
    pub async fn sessions(&self, user: &UserId) -> anyhow::Result<Vec<Item>> {
        let gsi_pk = keys::sessions_of_user(user);
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.tenants)
                .index_name(GSI1)
                .key_condition_expression("gsi1pk = :u AND begins_with(gsi1sk, :p)")
                .expression_attribute_values(":u", s(&gsi_pk))
                .expression_attribute_values(":p", s("SESSION#"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("Query sessions")?;
            self.count(out.scanned_count as u64);
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// The security events about a user: the tenant's security-log partition (180 days deep:
    /// retention bounds it), filtered on the user as subject or actor. A Query, not a Scan: it
    /// reads the tenant's log, never another tenant's.
    pub async fn security_events(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> anyhow::Result<Vec<Item>> {
        let pk = keys::security_log_of_tenant(tenant);
        self.partition(
            &self.tables.security_log,
            &pk,
            Some((
                "user_id = :u OR actor_user_id = :u",
                vec![(":u", s(user.as_str()))],
            )),
        )
        .await
    }

    /// A tenant's billing items (subscription state, invoices, payments, refunds).
    pub async fn billing_items(&self, tenant: &TenantId) -> anyhow::Result<Vec<Item>> {
        self.partition(&self.tables.billing, &keys::billing_partition(tenant), None)
            .await
    }
}

/// Whose an item under a lead is, for a request by the subject of the email blind index
/// `subject` (docs/privacy.md, "A lead with two addresses"): a submission is the subject's
/// when it was made from the subject's address (its own `from_email_bidx`; a submission stored
/// before submissions carried it is the lead's current subject's); a former-address item is
/// its address's; everything else under the lead (the lead's contact record, notes, stage
/// history, audit trail, files) is the subject's whose email the lead has now (`lead_owner`).
///
/// A subject identified by a phone (a request a tenant filed by phone, docs/dsar.md) owns the
/// submissions made with that phone and no email: a submission that carries an email is that
/// email's subject's, since anyone can type a phone number into a form next to their address.
/// An email's and a phone's blind indexes never collide (separate keyed domains, and an address
/// is never a phone number), so one rule serves both kinds of subject.
pub fn is_subjects(subject: &str, lead_owner: Option<&str>, it: &Item) -> bool {
    let sk = str_attr(it, SK).unwrap_or_default();
    if sk.starts_with(keys::SUBMISSION_PREFIX) {
        let own_email = str_attr(it, "from_email_bidx");
        let own_phone = str_attr(it, "from_phone_bidx");
        match (own_email, own_phone) {
            (Some(e), _) => e == subject,
            (None, Some(p)) => p == subject,
            (None, None) => lead_owner == Some(subject),
        }
    } else if sk.starts_with(keys::FORMER_ADDRESS_PREFIX) {
        str_attr(it, "email_bidx") == Some(subject)
    } else {
        lead_owner == Some(subject)
    }
}

/// Whose a lead's own record is: the subject of its routing key, its email's blind index, or
/// its phone's when it has no email (a phone-only lead). `None`: an erasure removed its contact.
pub fn lead_owner(lead_item: Option<&Item>) -> Option<&str> {
    let it = lead_item?;
    str_attr(it, "email_bidx").or_else(|| str_attr(it, "phone_bidx"))
}

/// [`SubjectStore::lead_ids_by_phone`], for any holder of the leads table (the controller's
/// view of a request shows the same leads the worker acts on). Returns the ids and items read.
pub async fn phone_lead_ids(
    client: &Client,
    leads_table: &str,
    tenant: &TenantId,
    phone_bidx: &str,
    keys_: &shared_core::blind_index::BlindIndexKey,
) -> anyhow::Result<(Vec<LeadId>, u64)> {
    let get = |k: Key| async move {
        client
            .get_item()
            .table_name(leads_table)
            .set_key(Some(key_map(&k)))
            .consistent_read(true)
            .send()
            .await
            .context("GetItem")
            .map(|o| o.item)
    };
    let mut ids = Vec::new();
    let mut read = 0;
    if let Some(it) = get(keys::lead_route(tenant, phone_bidx)).await? {
        read += 1;
        ids.push(shared_leads::dynamo::routing::routed_lead(&it)?);
    }
    let derived = keys_.lead_id(tenant, phone_bidx);
    if get(keys::lead(tenant, &derived)).await?.is_some() {
        read += 1;
        ids.push(derived);
    }
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ids.dedup();
    Ok((ids, read))
}

pub fn key_map(k: &Key) -> HashMap<String, AttributeValue> {
    HashMap::from([(PK.to_string(), s(&k.pk)), (SK.to_string(), s(&k.sk))])
}

/// The primary key of a stored item.
pub fn item_key(it: &Item) -> Option<HashMap<String, AttributeValue>> {
    Some(HashMap::from([
        (PK.to_string(), it.get(PK)?.clone()),
        (SK.to_string(), it.get(SK)?.clone()),
    ]))
}

pub fn str_attr<'a>(it: &'a Item, name: &str) -> Option<&'a str> {
    it.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

pub fn is_true(it: &Item, name: &str) -> bool {
    matches!(it.get(name), Some(AttributeValue::Bool(true)))
}
