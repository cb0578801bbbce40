//! Legal holds: the held item's own `legal_hold` attribute (BOOL) and, written in the same
//! transaction, an entry in the holds registry (ops table, partition
//! [`keys::LEGAL_HOLDS_PARTITION`]). Retention reads the registry once per run (one Query of a
//! handful of items) instead of reading the held items' owners item by item; the attribute stays
//! the source of truth wherever the item is read or deleted anyway (docs/retention.md).

use anyhow::Context;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use time::OffsetDateTime;

use shared_core::dynamo::attrs::{key_item, s, timestamp, Item};
use shared_core::keys::{self, Key};

/// What is held: a tenant record (tenants table), a lead (leads table, its `LEAD` item), or a
/// billing record (billing table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HoldKind {
    Tenant,
    Lead,
    Billing,
}

impl HoldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldKind::Tenant => "tenant",
            HoldKind::Lead => "lead",
            HoldKind::Billing => "billing",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "tenant" => Some(HoldKind::Tenant),
            "lead" => Some(HoldKind::Lead),
            "billing" => Some(HoldKind::Billing),
            _ => None,
        }
    }
}

/// One registry entry: the kind and the key of the held item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldItem {
    pub kind: HoldKind,
    pub key: Key,
}

/// The registry item of a hold (ids and keys only, never personal data).
pub fn registry_item(held: &HeldItem, at: OffsetDateTime) -> Item {
    let mut it = key_item(&keys::legal_hold_entry(held.kind.as_str(), &held.key));
    it.insert("kind".into(), s(held.kind.as_str()));
    it.insert("item_pk".into(), s(&held.key.pk));
    it.insert("item_sk".into(), s(&held.key.sk));
    it.insert("set_at".into(), timestamp(at));
    it
}

/// A registry item read back (`None`: not an entry of this registry).
pub fn held_item_of(item: &Item) -> Option<HeldItem> {
    let str_of = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
    Some(HeldItem {
        kind: HoldKind::parse(str_of("kind")?)?,
        key: Key {
            pk: str_of("item_pk")?.clone(),
            sk: str_of("item_sk")?.clone(),
        },
    })
}

/// Sets (`hold`) or clears a legal hold: the item's `legal_hold` attribute and its registry
/// entry in one transaction, so neither is ever written without the other. Idempotent (setting
/// a set hold or clearing a clear one changes nothing). `Ok(false)`: the item does not exist,
/// or is a lead being deleted (nothing written).
pub async fn set_legal_hold(
    dynamo: &aws_sdk_dynamodb::Client,
    held_table: &str,
    ops_table: &str,
    held: &HeldItem,
    hold: bool,
    at: OffsetDateTime,
) -> anyhow::Result<bool> {
    let update = Update::builder()
        .table_name(held_table)
        .set_key(Some(key_item(&held.key)))
        // A lead claimed for deletion (`deleting_at`, `LeadsStore::claim_for_deletion`) is
        // going: a hold racing the delete loses, as it would had it come a moment later.
        .condition_expression("attribute_exists(pk) AND attribute_not_exists(deleting_at)");
    let update = if hold {
        update
            .update_expression("SET legal_hold = :h")
            .expression_attribute_values(":h", AttributeValue::Bool(true))
    } else {
        update.update_expression("REMOVE legal_hold")
    };
    let registry = if hold {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(ops_table)
                    .set_item(Some(registry_item(held, at)))
                    .build()
                    .context("registry put")?,
            )
            .build()
    } else {
        TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(ops_table)
                    .set_key(Some(key_item(&keys::legal_hold_entry(
                        held.kind.as_str(),
                        &held.key,
                    ))))
                    .build()
                    .context("registry delete")?,
            )
            .build()
    };
    let res = dynamo
        .transact_write_items()
        .transact_items(
            TransactWriteItem::builder()
                .update(update.build().context("hold update")?)
                .build(),
        )
        .transact_items(registry)
        .send()
        .await;
    match res {
        Ok(_) => Ok(true),
        Err(e) => {
            use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
            let e = e.into_service_error();
            // The only condition is the held item's existence (and not being deleted).
            let missing = match &e {
                TransactWriteItemsError::TransactionCanceledException(c) => c
                    .cancellation_reasons()
                    .iter()
                    .any(|r| r.code() == Some("ConditionalCheckFailed")),
                _ => false,
            };
            if missing {
                Ok(false)
            } else {
                Err(anyhow::Error::new(e).context("TransactWriteItems legal hold"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_registry_item_reads_back_as_the_held_item() {
        let held = HeldItem {
            kind: HoldKind::Billing,
            key: Key {
                pk: "TENANT#acme".into(),
                sk: "INVOICE#in_1".into(),
            },
        };
        let it = registry_item(&held, datetime!(2026-11-30 01:00 UTC));
        assert_eq!(held_item_of(&it), Some(held));
        assert_eq!(
            it["sk"].as_s().unwrap(),
            "HOLD#billing#TENANT#acme#INVOICE#in_1"
        );
        let mut bad = it.clone();
        bad.insert("kind".into(), s("other"));
        assert_eq!(held_item_of(&bad), None);
    }
}
