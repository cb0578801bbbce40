//! Which lead an address leads to: identity kept apart from the (editable) address.
//!
//! A lead's id is derived from the address of its first submission (`BlindIndexKey::lead_id`),
//! so a first submission needs no lookup and two concurrent ones meet on one item. But the
//! address of a lead can change (an edit in the workspace, a data-subject rectification), and
//! then the derived id no longer says whose lead it is. The rule:
//!
//! - A lead's **routing key** is the blind index of its current email, or of its phone when it
//!   has no email ([`RouteKey::of`]).
//! - An address leads to the lead named by its **route item** ([`keys::lead_route`]) when there
//!   is one; otherwise to its derived lead, *if that lead's routing key is still this address*;
//!   otherwise to no lead (its derived lead moved to another address).
//! - An edit that changes a lead's routing key moves the route in the same transaction as the
//!   lead: the old address's route is deleted (and the address is kept under the lead as a
//!   *former address*, so its submissions stay findable by their subject), the new address's
//!   route is put, conditioned on the new address not leading to another lead already.
//! - Intake attaches a submission to a lead only on the condition that the lead's routing key is
//!   the submission's address (checked in the same transaction), so an edit racing a submission
//!   cannot send one person's submission to another person's lead.
//!
//! Each submission carries its own email and phone blind indexes, so a data-subject request
//! acts on exactly the submissions its subject made, whatever the lead's address says now.

use std::collections::HashMap;

use anyhow::Context;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use time::OffsetDateTime;

use shared_core::domain::{LeadId, TenantId};
use shared_core::dynamo::attrs::{key_item, s, timestamp, Item};
use shared_core::keys::{self, PK, SK};

pub use crate::routing::{decide, RouteBy, RouteKey, Routed};

/// The routing key of a stored lead item.
pub fn key_of_item(it: &Item) -> Option<RouteKey> {
    let get = |n: &str| it.get(n).and_then(|v| v.as_s().ok()).map(String::as_str);
    RouteKey::of(get("email_bidx"), get("phone_bidx"))
}

/// A condition (with its names and values, `#rk_*`/`:rk`) that holds when a lead item's
/// routing key is `key`. A conjunction without outer parentheses: join it with AND, or wrap it
/// once.
pub fn owns(key: &RouteKey) -> Condition {
    let mut c = Condition::default();
    c.names.insert("#rk_e".into(), "email_bidx".into());
    c.values.insert(":rk".into(), s(&key.bidx));
    c.expression = match key.by {
        RouteBy::Email => "#rk_e = :rk".into(),
        RouteBy::Phone => {
            c.names.insert("#rk_p".into(), "phone_bidx".into());
            // Unparenthesized: callers join it with AND, or wrap it once (`NOT (…)`); DynamoDB
            // refuses redundant parentheses.
            "#rk_p = :rk AND attribute_not_exists(#rk_e)".into()
        }
    };
    c
}

/// A condition expression with its attribute names and values.
#[derive(Debug, Clone, Default)]
pub struct Condition {
    pub expression: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

/// Whether an address change keeps the old email as a former address of the lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Former {
    Keep,
    Drop,
}

/// The route item of an address.
pub fn route_item(t: &TenantId, key: &RouteKey, lead: &LeadId, at: OffsetDateTime) -> Item {
    let k = keys::lead_route(t, &key.bidx);
    HashMap::from([
        (PK.to_string(), s(&k.pk)),
        (SK.to_string(), s(&k.sk)),
        ("tenant_id".to_string(), s(t.as_str())),
        ("lead_id".to_string(), s(lead.as_str())),
        ("updated_at".to_string(), timestamp(at)),
    ])
}

/// The lead an address's route item names.
pub fn routed_lead(it: &Item) -> anyhow::Result<LeadId> {
    let id = it
        .get("lead_id")
        .and_then(|v| v.as_s().ok())
        .context("route item without lead_id")?;
    Ok(LeadId::parse(id)?)
}

/// The writes that move a lead's routing from `old` to `new`, for the transaction of the edit
/// that changes its address, and the index range (within the returned writes) of the ones whose
/// failed condition means "the new address already leads to another lead".
///
/// `derived_of_new` is the lead id `new` derives; when it is another lead, the transaction
/// checks that lead does not belong to `new`. `Former::Keep` keeps the old email as a former
/// address of the lead (another person's submissions may be under it); a subject correcting
/// their own address (`Former::Drop`) re-indexes their submissions instead.
#[allow(clippy::too_many_arguments)]
pub fn move_writes(
    table: &str,
    t: &TenantId,
    lead: &LeadId,
    old: Option<&RouteKey>,
    new: Option<&RouteKey>,
    derived_of_new: Option<&LeadId>,
    former: Former,
    at: OffsetDateTime,
) -> anyhow::Result<(Vec<TransactWriteItem>, std::ops::Range<usize>)> {
    let mut writes = Vec::new();
    if old == new {
        return Ok((writes, 0..0));
    }
    if let Some(old) = old {
        // The old address leads nowhere now (unless its route names another lead).
        let k = keys::lead_route(t, &old.bidx);
        writes.push(
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(table)
                        .set_key(Some(key_item(&k)))
                        .condition_expression("attribute_not_exists(pk) OR lead_id = :l")
                        .expression_attribute_values(":l", s(lead.as_str()))
                        .build()
                        .context("route delete")?,
                )
                .build(),
        );
        if old.by == RouteBy::Email && former == Former::Keep {
            let k = keys::lead_former_address(t, lead, &old.bidx);
            let item = HashMap::from([
                (PK.to_string(), s(&k.pk)),
                (SK.to_string(), s(&k.sk)),
                ("tenant_id".to_string(), s(t.as_str())),
                ("lead_id".to_string(), s(lead.as_str())),
                // The `by_email_bidx` index's key: the address's subject finds this lead.
                ("email_bidx".to_string(), s(&old.bidx)),
                ("until".to_string(), timestamp(at)),
            ]);
            writes.push(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(table)
                            .set_item(Some(item))
                            .build()
                            .context("former address put")?,
                    )
                    .build(),
            );
        }
    }
    let start = writes.len();
    if let Some(new) = new {
        writes.push(
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(table)
                        .set_item(Some(route_item(t, new, lead, at)))
                        .condition_expression("attribute_not_exists(pk) OR lead_id = :l")
                        .expression_attribute_values(":l", s(lead.as_str()))
                        .build()
                        .context("route put")?,
                )
                .build(),
        );
        if let Some(derived) = derived_of_new.filter(|d| *d != lead) {
            let owns = owns(new);
            let mut check = ConditionCheck::builder()
                .table_name(table)
                .set_key(Some(key_item(&keys::lead(t, derived))))
                .condition_expression(format!(
                    "attribute_not_exists(pk) OR NOT ({})",
                    owns.expression
                ));
            for (k, v) in owns.names {
                check = check.expression_attribute_names(k, v);
            }
            for (k, v) in owns.values {
                check = check.expression_attribute_values(k, v);
            }
            writes.push(
                TransactWriteItem::builder()
                    .condition_check(check.build().context("derived lead check")?)
                    .build(),
            );
        }
    }
    let end = writes.len();
    Ok((writes, start..end))
}

/// Deletes the route of a lead that is being deleted (only if it still names this lead).
pub async fn release(
    client: &Client,
    table: &str,
    t: &TenantId,
    lead: &LeadId,
    key: Option<&RouteKey>,
) -> anyhow::Result<()> {
    let Some(key) = key else { return Ok(()) };
    let k = keys::lead_route(t, &key.bidx);
    let r = client
        .delete_item()
        .table_name(table)
        .set_key(Some(key_item(&k)))
        .condition_expression("lead_id = :l")
        .expression_attribute_values(":l", s(lead.as_str()))
        .send()
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) => match e.into_service_error() {
            DeleteItemError::ConditionalCheckFailedException(_) => Ok(()),
            other => Err(anyhow::Error::new(other).context("DeleteItem route")),
        },
    }
}
