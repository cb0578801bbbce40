//! The outbound channel's records (docs/data-model.md, "outbound"):
//!
//! | item | table | pk | sk |
//! |---|---|---|---|
//! | webhook endpoint | tenants | `TENANT#<tenantId>` | `WEBHOOK#<webhookId>` |
//! | delivery (log entry, with its body) | ops | `TENANT#<tenantId>#WEBHOOK#<webhookId>#DELIVERY` | `<eventId>` |
//!
//! A delivery's key is its event's id, so a stream record handed over twice creates one delivery
//! (a conditional put); a delivery and its body expire after 7 days (TTL `expires_at`).
//! The keys are built here, next to the only code that reads them, from a `TenantId`.

use std::collections::HashMap;

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use shared_core::domain::TenantId;
use shared_core::dynamo::attrs::{get_n_opt, get_s, n, s, Item};
use shared_core::keys::{Key, PK, SK};

use crate::events::EventType;

/// How long a delivery and its body are kept.
pub const DELIVERY_TTL_DAYS: i64 = 7;

pub fn webhook_key(t: &TenantId, webhook_id: &str) -> Key {
    Key {
        pk: format!("TENANT#{t}"),
        sk: format!("WEBHOOK#{webhook_id}"),
    }
}

/// The tenant's count of endpoints (attribute `n`), changed in the same transaction as each
/// endpoint created or deleted, so the limit holds however many requests race.
pub fn webhook_count_key(t: &TenantId) -> Key {
    Key {
        pk: format!("TENANT#{t}"),
        sk: "WEBHOOKCOUNT".into(),
    }
}

pub fn webhooks_prefix() -> &'static str {
    "WEBHOOK#"
}

pub fn deliveries_partition(t: &TenantId, webhook_id: &str) -> String {
    format!("TENANT#{t}#WEBHOOK#{webhook_id}#DELIVERY")
}

pub fn delivery_key(t: &TenantId, webhook_id: &str, event_id: &str) -> Key {
    Key {
        pk: deliveries_partition(t, webhook_id),
        sk: event_id.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointStatus {
    Active,
    /// Deliveries failed for 24 hours: nothing is sent until the endpoint is enabled again.
    Failing,
}

/// A registered endpoint, secrets included (never shown after creation).
#[derive(Clone, PartialEq)]
pub struct Endpoint {
    pub tenant: TenantId,
    pub id: String,
    pub url: String,
    pub event_types: Vec<EventType>,
    pub enabled: bool,
    pub status: EndpointStatus,
    pub secret: String,
    /// The secret before the last rotation, signing too until `previous_until` (unix seconds).
    pub previous_secret: Option<(String, i64)>,
    pub created_at: String,
    pub updated_at: String,
    pub failing_since: Option<String>,
    /// Incremented by every change through the API: a write is conditioned on the value read.
    pub rev: i64,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("tenant", &self.tenant)
            .field("id", &self.id)
            .field("event_types", &self.event_types)
            .field("enabled", &self.enabled)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Whether an event of `kind` is sent to it now.
    pub fn wants(&self, kind: EventType) -> bool {
        self.enabled && self.status == EndpointStatus::Active && self.event_types.contains(&kind)
    }

    /// The secrets that sign a delivery at `now`: the current one, and the previous one during
    /// its overlap window.
    pub fn signing_secrets(&self, now: i64) -> Vec<&[u8]> {
        let mut out = vec![self.secret.as_bytes()];
        if let Some((prev, until)) = &self.previous_secret {
            if now < *until {
                out.push(prev.as_bytes());
            }
        }
        out
    }

    pub fn to_item(&self) -> Item {
        let k = webhook_key(&self.tenant, &self.id);
        let mut it: Item = HashMap::from([
            (PK.to_string(), s(&k.pk)),
            (SK.to_string(), s(&k.sk)),
            ("webhook_id".into(), s(&self.id)),
            ("url".into(), s(&self.url)),
            (
                "event_types".into(),
                AttributeValue::L(self.event_types.iter().map(|e| s(e.as_str())).collect()),
            ),
            ("enabled".into(), AttributeValue::Bool(self.enabled)),
            (
                "status".into(),
                s(match self.status {
                    EndpointStatus::Active => "active",
                    EndpointStatus::Failing => "failing",
                }),
            ),
            ("secret".into(), s(&self.secret)),
            ("created_at".into(), s(&self.created_at)),
            ("updated_at".into(), s(&self.updated_at)),
            ("rev".into(), n(self.rev)),
        ]);
        if let Some((prev, until)) = &self.previous_secret {
            it.insert("previous_secret".into(), s(prev));
            it.insert("previous_until".into(), n(until));
        }
        if let Some(f) = &self.failing_since {
            it.insert("failing_since".into(), s(f));
        }
        it
    }

    pub fn from_item(tenant: &TenantId, it: &Item) -> anyhow::Result<Endpoint> {
        let event_types = match it.get("event_types") {
            Some(AttributeValue::L(l)) => l
                .iter()
                .filter_map(|v| v.as_s().ok())
                .filter_map(|v| EventType::parse(v))
                .collect(),
            _ => vec![],
        };
        let previous_secret = match (it.get("previous_secret"), get_n_opt(it, "previous_until")?) {
            (Some(AttributeValue::S(p)), Some(until)) => Some((p.clone(), until)),
            _ => None,
        };
        Ok(Endpoint {
            tenant: tenant.clone(),
            id: get_s(it, "webhook_id")?.to_string(),
            url: get_s(it, "url")?.to_string(),
            event_types,
            enabled: matches!(it.get("enabled"), Some(AttributeValue::Bool(true))),
            status: if get_s(it, "status").ok() == Some("failing") {
                EndpointStatus::Failing
            } else {
                EndpointStatus::Active
            },
            secret: get_s(it, "secret")?.to_string(),
            previous_secret,
            created_at: get_s(it, "created_at")?.to_string(),
            updated_at: get_s(it, "updated_at")?.to_string(),
            failing_since: get_s(it, "failing_since").ok().map(String::from),
            rev: get_n_opt(it, "rev")?.unwrap_or(0),
        })
    }
}

/// A tenant's endpoints: one Query of the tenant's partition on `WEBHOOK#` (never a scan).
pub async fn endpoints(
    client: &aws_sdk_dynamodb::Client,
    tenants_table: &str,
    t: &TenantId,
) -> anyhow::Result<Vec<Endpoint>> {
    let q = client
        .query()
        .table_name(tenants_table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
        .expression_attribute_values(":pk", s(format!("TENANT#{t}")))
        .expression_attribute_values(":p", s(webhooks_prefix()))
        .consistent_read(true);
    let mut out = query_items(q, usize::MAX, "Query webhooks")
        .await?
        .iter()
        .map(|it| Endpoint::from_item(t, it))
        .collect::<anyhow::Result<Vec<_>>>()?;
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The items of a query, page after page, at most `max` of them.
pub async fn query_items(
    q: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    max: usize,
    what: &'static str,
) -> anyhow::Result<Vec<Item>> {
    let mut pages = q.into_paginator().items().send();
    let mut out = vec![];
    while out.len() < max {
        match pages.next().await {
            Some(it) => out.push(it.context(what)?),
            None => break,
        }
    }
    Ok(out)
}

/// One endpoint of the tenant, or None (another tenant's id does not exist here).
pub async fn endpoint(
    client: &aws_sdk_dynamodb::Client,
    tenants_table: &str,
    t: &TenantId,
    id: &str,
) -> anyhow::Result<Option<Endpoint>> {
    let k = webhook_key(t, id);
    let out = client
        .get_item()
        .table_name(tenants_table)
        .key(PK, s(&k.pk))
        .key(SK, s(&k.sk))
        .consistent_read(true)
        .send()
        .await
        .context("GetItem webhook")?;
    out.item().map(|it| Endpoint::from_item(t, it)).transpose()
}

/// One attempt's outcome, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptLog {
    pub at: String,
    /// The HTTP status, or None when no answer came (refused address, connection, timeout).
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// A short reason, never a body: `refused_address`, `connect`, `timeout`, `http_status`.
    pub error: Option<String>,
    pub delivered: bool,
}

/// A delivery as the log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub event_id: String,
    pub event_type: String,
    pub created_at: String,
    pub first_attempt_at: i64,
    pub attempts: i64,
    /// `pending` (retries scheduled), `delivered`, `failed` (gave up after 24 hours).
    pub state: String,
    pub last_status: Option<i64>,
    pub last_latency_ms: Option<i64>,
    pub last_attempt_at: Option<String>,
    pub last_error: Option<String>,
    pub body: Option<String>,
}

impl Delivery {
    pub fn from_item(it: &Item) -> anyhow::Result<Delivery> {
        Ok(Delivery {
            event_id: get_s(it, SK)?.to_string(),
            event_type: get_s(it, "event_type")?.to_string(),
            created_at: get_s(it, "created_at")?.to_string(),
            first_attempt_at: get_n_opt(it, "first_attempt_at")?.unwrap_or(0),
            attempts: get_n_opt(it, "attempts")?.unwrap_or(0),
            state: get_s(it, "state")?.to_string(),
            last_status: get_n_opt(it, "last_status")?,
            last_latency_ms: get_n_opt(it, "last_latency_ms")?,
            last_attempt_at: get_s(it, "last_attempt_at").ok().map(String::from),
            last_error: get_s(it, "last_error").ok().map(String::from),
            body: get_s(it, "body").ok().map(String::from),
        })
    }
}

/// Creates the delivery of `event_id` to an endpoint; false when it exists already (the record
/// was handed over again: its first handling delivers or retries it).
#[allow(clippy::too_many_arguments)]
pub async fn create_delivery(
    client: &aws_sdk_dynamodb::Client,
    ops_table: &str,
    t: &TenantId,
    webhook_id: &str,
    event_id: &str,
    event_type: &str,
    body: &str,
    now_rfc3339: &str,
    now_unix: i64,
) -> anyhow::Result<bool> {
    let k = delivery_key(t, webhook_id, event_id);
    let put = client
        .put_item()
        .table_name(ops_table)
        .item(PK, s(&k.pk))
        .item(SK, s(&k.sk))
        .item("event_type", s(event_type))
        .item("body", s(body))
        .item("created_at", s(now_rfc3339))
        .item("first_attempt_at", n(now_unix))
        .item("attempts", n(0))
        .item("state", s("pending"))
        .item("expires_at", n(now_unix + DELIVERY_TTL_DAYS * 86_400))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    Ok(shared_core::dynamo::unless_condition_failed(put, "PutItem delivery")?.is_some())
}

pub async fn delivery(
    client: &aws_sdk_dynamodb::Client,
    ops_table: &str,
    t: &TenantId,
    webhook_id: &str,
    event_id: &str,
) -> anyhow::Result<Option<Delivery>> {
    let k = delivery_key(t, webhook_id, event_id);
    let out = client
        .get_item()
        .table_name(ops_table)
        .key(PK, s(&k.pk))
        .key(SK, s(&k.sk))
        .consistent_read(true)
        .send()
        .await
        .context("GetItem delivery")?;
    out.item().map(Delivery::from_item).transpose()
}

/// An endpoint's deliveries of the last 7 days, newest first (one Query of its partition).
pub async fn deliveries(
    client: &aws_sdk_dynamodb::Client,
    ops_table: &str,
    t: &TenantId,
    webhook_id: &str,
) -> anyhow::Result<Vec<Delivery>> {
    let q = client
        .query()
        .table_name(ops_table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s(deliveries_partition(t, webhook_id)));
    let mut out = query_items(q, 1000, "Query deliveries")
        .await?
        .iter()
        .map(Delivery::from_item)
        .collect::<anyhow::Result<Vec<_>>>()?;
    out.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then(b.event_id.cmp(&a.event_id))
    });
    Ok(out)
}

/// Records an attempt: its outcome, and the delivery's state after it.
pub async fn record_attempt(
    client: &aws_sdk_dynamodb::Client,
    ops_table: &str,
    t: &TenantId,
    webhook_id: &str,
    event_id: &str,
    a: &AttemptLog,
    state: &str,
) -> anyhow::Result<()> {
    let k = delivery_key(t, webhook_id, event_id);
    let mut set = vec![
        "attempts = attempts + :one",
        "#state = :state",
        "last_attempt_at = :at",
        "last_latency_ms = :lat",
    ];
    let mut remove = vec![];
    let mut req = client
        .update_item()
        .table_name(ops_table)
        .key(PK, s(&k.pk))
        .key(SK, s(&k.sk))
        .expression_attribute_names("#state", "state")
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":state", s(state))
        .expression_attribute_values(":at", s(&a.at))
        .expression_attribute_values(":lat", n(a.latency_ms));
    match a.status {
        Some(code) => {
            set.push("last_status = :status");
            req = req.expression_attribute_values(":status", n(code));
        }
        None => remove.push("last_status"),
    }
    match &a.error {
        Some(e) => {
            set.push("last_error = :err");
            req = req.expression_attribute_values(":err", s(e));
        }
        None => remove.push("last_error"),
    }
    let mut expr = format!("SET {}", set.join(", "));
    if !remove.is_empty() {
        expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
    }
    req.update_expression(expr)
        .condition_expression("attribute_exists(pk)")
        .send()
        .await
        .context("UpdateItem delivery attempt")?;
    Ok(())
}

/// Marks a delivery for another round of attempts (a replay): pending again, its 24 hours
/// counted from now.
pub async fn restart_delivery(
    client: &aws_sdk_dynamodb::Client,
    ops_table: &str,
    t: &TenantId,
    webhook_id: &str,
    event_id: &str,
    now_unix: i64,
) -> anyhow::Result<bool> {
    let k = delivery_key(t, webhook_id, event_id);
    let r = client
        .update_item()
        .table_name(ops_table)
        .key(PK, s(&k.pk))
        .key(SK, s(&k.sk))
        .update_expression("SET #state = :p, first_attempt_at = :now")
        .expression_attribute_names("#state", "state")
        .expression_attribute_values(":p", s("pending"))
        .expression_attribute_values(":now", n(now_unix))
        .condition_expression("attribute_exists(pk)")
        .send()
        .await;
    Ok(shared_core::dynamo::unless_condition_failed(r, "UpdateItem delivery replay")?.is_some())
}

/// Marks an endpoint failing (deliveries failed for 24 hours); true when this call did it
/// (the owner is told once).
pub async fn mark_failing(
    client: &aws_sdk_dynamodb::Client,
    tenants_table: &str,
    t: &TenantId,
    webhook_id: &str,
    now_rfc3339: &str,
) -> anyhow::Result<bool> {
    let k = webhook_key(t, webhook_id);
    let r = client
        .update_item()
        .table_name(tenants_table)
        .key(PK, s(&k.pk))
        .key(SK, s(&k.sk))
        .update_expression("SET #status = :f, failing_since = :at, updated_at = :at")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":f", s("failing"))
        .expression_attribute_values(":at", s(now_rfc3339))
        .condition_expression("attribute_exists(pk) AND #status <> :f")
        .send()
        .await;
    Ok(shared_core::dynamo::unless_condition_failed(r, "UpdateItem webhook failing")?.is_some())
}
