//! A subject's stored item, read through the data inventory: every attribute is looked up in
//! [`crate::inventory`] (category, description), and an attribute the inventory does not declare
//! fails the job loudly ([`Undeclared`]) instead of being silently left out of an access answer
//! or left behind by an erasure.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::inventory::{self, DataCategory, Kind, Table};
use shared_core::dynamo::Item;
use shared_core::keys::{PK, SK};

/// An attribute found on an item that the inventory does not declare. Names the table, the
/// item kind and the attribute (never a value): enough to fix the inventory or the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undeclared attribute {name:?} on a {table:?} item of kind {item:?}: declare it in shared/privacy/src/inventory.rs")]
pub struct Undeclared {
    pub table: Table,
    pub item: String,
    pub name: String,
}

/// One attribute with its declaration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeclaredValue {
    pub name: String,
    /// `None` for structural attributes (ids, timestamps, counters).
    pub category: Option<DataCategory>,
    /// A keyed hash rather than the value in clear.
    pub pseudonymous: bool,
    pub description: &'static str,
    pub value: Value,
}

/// One stored item of the subject.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectRecord {
    pub table: Table,
    /// `lead`, `submission`, `note`, ... (see [`record_kind`]).
    pub kind: &'static str,
    pub pk: String,
    pub sk: String,
    pub attributes: Vec<DeclaredValue>,
}

/// Item kinds by table and sort-key prefix, in the words the certificate and the export use.
pub fn record_kind(table: Table, sk: &str) -> &'static str {
    const KINDS: &[(Table, &str, &str)] = &[
        (Table::Leads, "LEAD", "lead"),
        (Table::Leads, "SUB#", "submission"),
        (Table::Leads, "NOTE#", "note"),
        (Table::Leads, "STAGE#", "stage_change"),
        (Table::Leads, "AUDIT#", "audit_entry"),
        (Table::Leads, "ATT#", "attachment_record"),
        (Table::Leads, "FORMER#", "former_address"),
        (Table::Tenants, "USER#", "user"),
        (Table::Tenants, "SESSION", "session"),
        (Table::Tenants, "LOGIN", "login_index"),
        (Table::Tenants, "TENANT", "tenant"),
        (Table::Billing, "SUBSCRIPTION", "subscription"),
        (Table::Billing, "INVOICE#", "invoice"),
        (Table::Billing, "PAYMENT#", "payment"),
        (Table::Billing, "REFUND#", "refund"),
        (Table::SecurityLog, "", "security_event"),
        (Table::Privacy, "", "suppression_entry"),
        (Table::Ops, "Q#", "quarantined_submission"),
    ];
    KINDS
        .iter()
        .find(|(t, prefix, _)| *t == table && sk.starts_with(prefix))
        .map(|(_, _, k)| *k)
        .unwrap_or("other")
}

/// Attributes that only key the item or an index: not shown in an access answer.
fn is_key_attribute(name: &str) -> bool {
    matches!(
        name,
        "pk" | "sk"
            | "gsi1pk"
            | "gsi1sk"
            | "tenant_pk"
            | "stage_pk"
            | "created_sk"
            | "tech_exp"
            | "exp_bucket"
    )
}

/// Reads an item through the inventory. Fails on the first undeclared attribute.
pub fn classify(table: Table, item: &Item) -> Result<SubjectRecord, Undeclared> {
    let pk = item
        .get(PK)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default();
    let sk = item
        .get(SK)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default();
    let kind = record_kind(table, &sk);
    // Sorted, so an export is stable whatever the order DynamoDB returns attributes in.
    let sorted: BTreeMap<&String, &AttributeValue> = item.iter().collect();
    let mut attributes = Vec::with_capacity(sorted.len());
    for (name, value) in sorted {
        let Some(decl) = inventory::declaration(table, &sk, name) else {
            return Err(Undeclared {
                table,
                item: kind.to_string(),
                name: name.clone(),
            });
        };
        let (category, pseudonymous) = match decl.kind {
            Kind::Personal(c) => (Some(c), false),
            Kind::Pseudonymous(c) => (Some(c), true),
            Kind::Structural => (None, false),
        };
        attributes.push(DeclaredValue {
            name: name.clone(),
            category,
            pseudonymous,
            description: decl.description,
            value: to_json(value),
        });
    }
    Ok(SubjectRecord {
        table,
        kind,
        pk,
        sk,
        attributes,
    })
}

impl SubjectRecord {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| &a.value)
    }

    /// The record as the access export writes it: personal attributes grouped by category
    /// (each with its description), other attributes (ids, timestamps) under `record`; keys
    /// of the table and its indexes left out.
    pub fn access_json(&self) -> Value {
        let mut by_category: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        let mut record = Map::new();
        for a in &self.attributes {
            if is_key_attribute(&a.name) {
                continue;
            }
            match a.category {
                Some(c) => {
                    let cat = serde_json::to_value(c)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    by_category.entry(cat).or_default().insert(
                        a.name.clone(),
                        json!({
                            "value": a.value,
                            "description": a.description,
                            "keyed_hash": a.pseudonymous,
                        }),
                    );
                }
                None => {
                    record.insert(a.name.clone(), a.value.clone());
                }
            }
        }
        json!({
            "kind": self.kind,
            "table": self.table,
            "categories": by_category,
            "record": record,
        })
    }
}

/// An attribute value as JSON: numbers stay their decimal text's number when they parse,
/// binary is base64.
pub fn to_json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => n
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| n.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(n.clone())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(l) => Value::Array(l.iter().map(to_json).collect()),
        AttributeValue::M(m) => {
            let sorted: BTreeMap<&String, &AttributeValue> = m.iter().collect();
            Value::Object(
                sorted
                    .into_iter()
                    .map(|(k, v)| (k.clone(), to_json(v)))
                    .collect(),
            )
        }
        AttributeValue::Ss(v) => json!(v),
        AttributeValue::Ns(v) => json!(v),
        AttributeValue::B(b) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
        }
        AttributeValue::Bs(v) => Value::Array(
            v.iter()
                .map(|b| {
                    Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared_core::dynamo::s;

    fn lead_item() -> Item {
        Item::from([
            ("pk".to_string(), s("TENANT#t#LEAD#l")),
            ("sk".to_string(), s("LEAD")),
            ("email".to_string(), s("ana@example.com")),
            ("email_bidx".to_string(), s("abcd")),
            ("version".to_string(), AttributeValue::N("3".into())),
        ])
    }

    #[test]
    fn declared_attributes_are_grouped_by_category() {
        let r = classify(Table::Leads, &lead_item()).unwrap();
        assert_eq!(r.kind, "lead");
        let j = r.access_json();
        assert_eq!(
            j["categories"]["crm_content"]["email"]["value"],
            "ana@example.com"
        );
        assert_eq!(
            j["categories"]["crm_content"]["email_bidx"]["keyed_hash"],
            true
        );
        assert_eq!(j["record"]["version"], 3);
        assert!(j["record"].get("pk").is_none());
    }

    #[test]
    fn an_undeclared_attribute_fails_loudly_naming_no_value() {
        let mut it = lead_item();
        it.insert("shoe_size".into(), s("44 secret"));
        let e = classify(Table::Leads, &it).unwrap_err();
        assert_eq!(e.name, "shoe_size");
        assert!(!e.to_string().contains("secret"));
    }
}
