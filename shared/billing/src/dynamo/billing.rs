//! The billing store: the billing table (subscription state, invoices, payments, refunds, received
//! events, customer links, counters), the plans table, and the usage counters of the ops table.
//!
//! An event costs one `BatchGetItem` (event record, customer link, state, plan) and one
//! `TransactWriteItems` (the event record, put only if absent, with its effects); a redelivery
//! stops after the read.

use std::collections::HashMap;

use anyhow::{anyhow, Context};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;

pub use super::billing_items::{
    billing_state_from_item, billing_state_to_item, invoice_views, plan_from_item,
    plan_price_from_item, plan_price_to_item, plan_to_item,
};
use super::billing_items::{event_item, invoice_item, n_u32, payment_item, refund_item, tenant_of};
use crate::ports::{
    BillingOverview, BillingStore, CheckoutSnapshot, CustomerLink, Effect, EventCommitError,
    EventLookup, EventSnapshot, EventWrite, StateGuard,
};
use crate::{BillingInterval, BillingState, InvoiceView, Plan, PlanPrice};
use shared_core::domain::TenantId;
use shared_core::dynamo::attrs::{get_s, item, key_item, n, put, s, timestamp, Item};
use shared_core::keys::{self, Key, PK, SK};

#[derive(Debug, Clone)]
pub struct BillingTables {
    pub billing: String,
    pub plans: String,
    /// Usage counters (written by lead intake, read by the billing view).
    pub ops: String,
}

#[derive(Debug, Clone)]
pub struct DynamoBillingStore {
    client: Client,
    tables: BillingTables,
}

impl DynamoBillingStore {
    pub fn new(client: Client, tables: BillingTables) -> Self {
        Self { client, tables }
    }
}

// ------------------------------------------------------------------ reads

fn keys_and_attributes(keys: &[Key]) -> anyhow::Result<KeysAndAttributes> {
    KeysAndAttributes::builder()
        .set_keys(Some(keys.iter().map(key_item).collect()))
        .consistent_read(true)
        .build()
        .context("keys and attributes")
}

fn find<'a>(items: Option<&'a Vec<Item>>, k: &Key) -> Option<&'a Item> {
    items?.iter().find(|it| {
        it.get(PK).and_then(|v| v.as_s().ok()) == Some(&k.pk)
            && it.get(SK).and_then(|v| v.as_s().ok()) == Some(&k.sk)
    })
}

async fn batch_get(
    client: &Client,
    mut request: HashMap<String, KeysAndAttributes>,
) -> anyhow::Result<HashMap<String, Vec<Item>>> {
    let mut found: HashMap<String, Vec<Item>> = HashMap::new();
    for attempt in 0..5u32 {
        let out = client
            .batch_get_item()
            .set_request_items(Some(request))
            .send()
            .await
            .context("BatchGetItem")?;
        for (table, items) in out.responses.unwrap_or_default() {
            found.entry(table).or_default().extend(items);
        }
        match out.unprocessed_keys {
            Some(rest) if !rest.is_empty() => {
                request = rest;
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
            }
            _ => return Ok(found),
        }
    }
    Err(anyhow!("BatchGetItem left keys unprocessed after retries"))
}

/// A tenant's billing state, for readers outside the billing function (seats in auth).
pub async fn read_billing_state(
    client: &Client,
    billing_table: &str,
    tenant: &TenantId,
) -> anyhow::Result<Option<BillingState>> {
    let out = client
        .get_item()
        .table_name(billing_table)
        .set_key(Some(key_item(&keys::subscription_state(tenant))))
        .consistent_read(true)
        .send()
        .await
        .context("GetItem billing state")?;
    out.item.map(|it| billing_state_from_item(&it)).transpose()
}

/// Writes a plan (seeding; later the platform's admin tooling).
pub async fn put_plan(client: &Client, plans_table: &str, plan: &Plan) -> anyhow::Result<()> {
    client
        .put_item()
        .table_name(plans_table)
        .set_item(Some(plan_to_item(plan)))
        .send()
        .await
        .context("PutItem plan")?;
    Ok(())
}

/// Writes the price that sells a plan per interval (seeding; later the admin tooling).
pub async fn put_plan_price(
    client: &Client,
    plans_table: &str,
    price: &PlanPrice,
) -> anyhow::Result<()> {
    client
        .put_item()
        .table_name(plans_table)
        .set_item(Some(plan_price_to_item(price)))
        .send()
        .await
        .context("PutItem plan price")?;
    Ok(())
}

// ------------------------------------------------------------------ writes

fn put_write(
    table: &str,
    it: Item,
    condition: Option<&str>,
    values: Vec<(&str, AttributeValue)>,
) -> anyhow::Result<TransactWriteItem> {
    let mut b = Put::builder()
        .table_name(table)
        .set_item(Some(it))
        .set_condition_expression(condition.map(str::to_string));
    for (k, v) in values {
        b = b.expression_attribute_values(k, v);
    }
    Ok(TransactWriteItem::builder()
        .put(b.build().context("put")?)
        .build())
}

fn update_write(
    table: &str,
    key: &Key,
    update: &str,
    condition: Option<&str>,
    values: Vec<(&str, AttributeValue)>,
) -> anyhow::Result<TransactWriteItem> {
    let mut b = Update::builder()
        .table_name(table)
        .set_key(Some(key_item(key)))
        .update_expression(update)
        .set_condition_expression(condition.map(str::to_string));
    for (k, v) in values {
        b = b.expression_attribute_values(k, v);
    }
    Ok(TransactWriteItem::builder()
        .update(b.build().context("update")?)
        .build())
}

/// Writes a record's attributes in place: `SET` of every attribute the record carries, `REMOVE`
/// of the optional ones it owns and no longer has. Anything else on the item (a legal hold, a
/// restriction and its time: attributes other writers own) survives, which a `Put` replacing
/// the whole item would drop. Works for a new item too (an update creates it).
fn upsert_write(
    table: &str,
    mut it: Item,
    owned_optional: &[&str],
    condition: Option<&str>,
    values: Vec<(&str, AttributeValue)>,
) -> anyhow::Result<TransactWriteItem> {
    let key = Key {
        pk: get_s(&it, "pk")?.to_string(),
        sk: get_s(&it, "sk")?.to_string(),
    };
    it.remove("pk");
    it.remove("sk");
    let mut names: Vec<(String, String)> = Vec::new();
    let mut vals: Vec<(String, AttributeValue)> = Vec::new();
    let mut set = Vec::new();
    // Sorted, so the expression is the same for the same record (readable in a trace).
    let mut attrs: Vec<(String, AttributeValue)> = it.into_iter().collect();
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (name, value)) in attrs.iter().enumerate() {
        set.push(format!("#u{i} = :u{i}"));
        names.push((format!("#u{i}"), name.clone()));
        vals.push((format!(":u{i}"), value.clone()));
    }
    let remove: Vec<String> = owned_optional
        .iter()
        .filter(|o| !attrs.iter().any(|(n, _)| n == *o))
        .enumerate()
        .map(|(i, name)| {
            names.push((format!("#r{i}"), name.to_string()));
            format!("#r{i}")
        })
        .collect();
    let mut expression = format!("SET {}", set.join(", "));
    if !remove.is_empty() {
        expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
    }
    let mut b = Update::builder()
        .table_name(table)
        .set_key(Some(key_item(&key)))
        .update_expression(expression)
        .set_condition_expression(condition.map(str::to_string));
    for (k, v) in names {
        b = b.expression_attribute_names(k, v);
    }
    for (k, v) in vals {
        b = b.expression_attribute_values(k, v);
    }
    for (k, v) in values {
        b = b.expression_attribute_values(k, v);
    }
    Ok(TransactWriteItem::builder()
        .update(b.build().context("update")?)
        .build())
}

/// The optional attributes each record owns: a newer event that no longer has one removes it.
const INVOICE_OPTIONAL: &[&str] = &[
    "number",
    "due_at",
    "paid_at",
    "period_start",
    "period_end",
    "hosted_invoice_url",
    "subscription_id",
    "customer_id",
    "billing_reason",
    "payment_status",
    "next_payment_attempt",
];
const REFUND_OPTIONAL: &[&str] = &["invoice_id", "payment_intent_id"];
const SUBSCRIPTION_OPTIONAL: &[&str] = &[
    "provider",
    "customer_id",
    "subscription_id",
    "price_id",
    "plan",
    "monthly_submissions",
    "seats",
    "forms",
    "status",
    "status_since",
    "current_period_end",
    "cancel_at",
    "canceled_at",
    "ended_at",
    "trial_end",
    "last_event_created",
    "last_event_id",
    "updated_at",
];

/// Newer-or-equal events replace a record; an older one fails the condition (stale).
const NOT_NEWER: &str = "attribute_not_exists(pk) OR last_event_created <= :c";

impl DynamoBillingStore {
    fn effect_write(&self, e: &Effect) -> anyhow::Result<TransactWriteItem> {
        let t = &self.tables.billing;
        match e {
            Effect::LinkCustomer {
                provider,
                customer_id,
                tenant,
                at,
            } => {
                let mut it = item(&keys::billing_customer(provider, customer_id));
                put(&mut it, "provider", s(provider));
                put(&mut it, "customer_id", s(customer_id.as_str()));
                put(&mut it, "tenant_id", s(tenant.as_str()));
                put(&mut it, "linked_at", timestamp(*at));
                put_write(
                    t,
                    it,
                    Some("attribute_not_exists(pk) OR tenant_id = :t"),
                    vec![(":t", s(tenant.as_str()))],
                )
            }
            Effect::SetCustomer {
                tenant,
                provider,
                customer_id,
                at,
            } => update_write(
                t,
                &keys::subscription_state(tenant),
                "SET tenant_id = :t, provider = :p, customer_id = :c, updated_at = :at",
                None,
                vec![
                    (":t", s(tenant.as_str())),
                    (":p", s(provider)),
                    (":c", s(customer_id.as_str())),
                    (":at", timestamp(*at)),
                ],
            ),
            Effect::CustomerDeleted {
                provider,
                customer_id,
                at,
            } => update_write(
                t,
                &keys::billing_customer(provider, customer_id),
                "SET deleted_at = :at",
                Some("attribute_exists(pk)"),
                vec![(":at", timestamp(*at))],
            ),
            Effect::Subscription {
                tenant,
                state,
                guard,
            } => {
                let it = billing_state_to_item(tenant, state);
                match guard {
                    StateGuard::NoSubscription => upsert_write(
                        t,
                        it,
                        SUBSCRIPTION_OPTIONAL,
                        Some("attribute_not_exists(subscription_id)"),
                        vec![],
                    ),
                    StateGuard::Same {
                        subscription_id,
                        created,
                    } => upsert_write(
                        t,
                        it,
                        SUBSCRIPTION_OPTIONAL,
                        Some("subscription_id = :sub AND last_event_created <= :c"),
                        vec![(":sub", s(subscription_id.as_str())), (":c", n(*created))],
                    ),
                    StateGuard::Replace {
                        subscription_id,
                        last_event_created: Some(c),
                    } => upsert_write(
                        t,
                        it,
                        SUBSCRIPTION_OPTIONAL,
                        Some("subscription_id = :sub AND last_event_created = :c"),
                        vec![(":sub", s(subscription_id.as_str())), (":c", n(*c))],
                    ),
                    StateGuard::Replace {
                        subscription_id,
                        last_event_created: None,
                    } => upsert_write(
                        t,
                        it,
                        SUBSCRIPTION_OPTIONAL,
                        Some("subscription_id = :sub AND attribute_not_exists(last_event_created)"),
                        vec![(":sub", s(subscription_id.as_str()))],
                    ),
                }
            }
            Effect::Invoice { tenant, invoice } => upsert_write(
                t,
                invoice_item(tenant, invoice),
                INVOICE_OPTIONAL,
                Some(NOT_NEWER),
                vec![(":c", n(invoice.last_event_created))],
            ),
            // One record per event; the event record already makes it unique.
            Effect::Payment { tenant, payment } => {
                put_write(t, payment_item(tenant, payment), None, vec![])
            }
            Effect::Refund { tenant, refund } => upsert_write(
                t,
                refund_item(tenant, refund),
                REFUND_OPTIONAL,
                Some(NOT_NEWER),
                vec![(":c", n(refund.last_event_created))],
            ),
            Effect::CountEventType {
                provider,
                event_type,
                at,
            } => update_write(
                t,
                &keys::billing_event_type_counter(provider, event_type),
                "ADD n :one SET provider = :p, event_type = :ty, last_seen_at = :at",
                None,
                vec![
                    (":one", n(1)),
                    (":p", s(provider)),
                    (":ty", s(event_type)),
                    (":at", timestamp(*at)),
                ],
            ),
        }
    }
}

impl BillingStore for DynamoBillingStore {
    async fn load(&self, l: &EventLookup) -> anyhow::Result<EventSnapshot> {
        let event_key = keys::billing_event(&l.provider, &l.event_id);
        let customer_key = l
            .customer_id
            .as_ref()
            .map(|c| keys::billing_customer(&l.provider, c));
        let state_key = l
            .tenant
            .as_ref()
            .filter(|_| l.want_state)
            .map(keys::subscription_state);
        let plan_key = l
            .price_id
            .as_ref()
            .map(|p| keys::plan_by_price(&l.provider, p));

        let mut billing_keys = vec![event_key.clone()];
        billing_keys.extend(customer_key.clone());
        billing_keys.extend(state_key.clone());
        let mut req = HashMap::new();
        req.insert(
            self.tables.billing.clone(),
            keys_and_attributes(&billing_keys)?,
        );
        if let Some(k) = &plan_key {
            req.insert(
                self.tables.plans.clone(),
                keys_and_attributes(std::slice::from_ref(k))?,
            );
        }
        let found = batch_get(&self.client, req).await?;
        let billing = found.get(&self.tables.billing);

        let customer = customer_key
            .as_ref()
            .and_then(|k| find(billing, k))
            .map(|it| -> anyhow::Result<_> {
                Ok(CustomerLink {
                    tenant: tenant_of(it)?,
                    deleted: it.contains_key("deleted_at"),
                    erased: it.contains_key("tenant_erased_at"),
                })
            })
            .transpose()?;
        Ok(EventSnapshot {
            already_recorded: find(billing, &event_key).is_some(),
            customer,
            state: state_key
                .as_ref()
                .and_then(|k| find(billing, k))
                .map(billing_state_from_item)
                .transpose()?,
            plan: plan_key
                .as_ref()
                .and_then(|k| find(found.get(&self.tables.plans), k))
                .map(plan_from_item)
                .transpose()?,
        })
    }

    async fn billing_state(&self, tenant: &TenantId) -> anyhow::Result<Option<BillingState>> {
        read_billing_state(&self.client, &self.tables.billing, tenant).await
    }

    async fn checkout_lookup(
        &self,
        tenant: &TenantId,
        provider: &str,
        plan: &str,
        interval: BillingInterval,
    ) -> anyhow::Result<CheckoutSnapshot> {
        let state_key = keys::subscription_state(tenant);
        let price_key = keys::plan_price(plan, provider, interval.as_str());
        let mut req = HashMap::new();
        req.insert(
            self.tables.billing.clone(),
            keys_and_attributes(std::slice::from_ref(&state_key))?,
        );
        req.insert(
            self.tables.plans.clone(),
            keys_and_attributes(std::slice::from_ref(&price_key))?,
        );
        let found = batch_get(&self.client, req).await?;
        Ok(CheckoutSnapshot {
            state: find(found.get(&self.tables.billing), &state_key)
                .map(billing_state_from_item)
                .transpose()?,
            price: find(found.get(&self.tables.plans), &price_key)
                .map(plan_price_from_item)
                .transpose()?,
        })
    }

    async fn commit(&self, w: &EventWrite) -> Result<(), EventCommitError> {
        let mut items = Vec::with_capacity(1 + w.effects.len());
        items.push(put_write(
            &self.tables.billing,
            event_item(&w.record),
            Some("attribute_not_exists(pk)"),
            vec![],
        )?);
        for e in &w.effects {
            items.push(self.effect_write(e)?);
        }
        let err = match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) => e.into_service_error(),
        };
        match err {
            TransactWriteItemsError::TransactionCanceledException(tc) => {
                let reasons = tc.cancellation_reasons();
                let failed: Vec<usize> = reasons
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
                    .map(|(i, _)| i)
                    .collect();
                // The event record first: a redelivery that lost the race changes nothing.
                match failed.first() {
                    Some(0) => Err(EventCommitError::AlreadyRecorded),
                    Some(i) => Err(EventCommitError::EffectCondition(i - 1)),
                    None if reasons.is_empty()
                        || reasons
                            .iter()
                            .any(|r| r.code() == Some("TransactionConflict")) =>
                    {
                        Err(EventCommitError::Conflict)
                    }
                    None => Err(EventCommitError::Store(anyhow!(
                        "transaction cancelled: {:?}",
                        reasons.iter().map(|r| r.code()).collect::<Vec<_>>()
                    ))),
                }
            }
            TransactWriteItemsError::TransactionInProgressException(_) => {
                Err(EventCommitError::Conflict)
            }
            other => Err(EventCommitError::Store(
                anyhow::Error::new(other).context("TransactWriteItems"),
            )),
        }
    }

    async fn overview(&self, tenant: &TenantId, month: &str) -> anyhow::Result<BillingOverview> {
        let state_key = keys::subscription_state(tenant);
        let usage_key = keys::usage_month(tenant, month);
        let mut req = HashMap::new();
        req.insert(
            self.tables.billing.clone(),
            keys_and_attributes(std::slice::from_ref(&state_key))?,
        );
        req.insert(
            self.tables.ops.clone(),
            keys_and_attributes(std::slice::from_ref(&usage_key))?,
        );
        let found = batch_get(&self.client, req).await?;
        Ok(BillingOverview {
            state: find(found.get(&self.tables.billing), &state_key)
                .map(billing_state_from_item)
                .transpose()?,
            submissions_this_month: find(found.get(&self.tables.ops), &usage_key)
                .map(|it| n_u32(it, "n"))
                .transpose()?
                .unwrap_or(0),
        })
    }

    async fn invoices(&self, tenant: &TenantId) -> anyhow::Result<Vec<InvoiceView>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.tables.billing)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(keys::billing_partition(tenant)))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("Query billing records")?;
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        invoice_views(&items)
    }
}
