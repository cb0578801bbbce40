//! Small helpers to build and read items.

use std::collections::HashMap;

use anyhow::{anyhow, Context};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::result::CreateUnhandledError;
use time::OffsetDateTime;

use crate::keys::{Key, PK, SK};

pub type Item = HashMap<String, AttributeValue>;

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn str_list(v: &[String]) -> AttributeValue {
    AttributeValue::L(v.iter().map(s).collect())
}

pub fn key_item(k: &Key) -> Item {
    HashMap::from([(PK.to_string(), s(&k.pk)), (SK.to_string(), s(&k.sk))])
}

/// Starts an item from its key; attributes are added with [`put`] and [`put_opt`].
pub fn item(k: &Key) -> Item {
    key_item(k)
}

pub fn put(item: &mut Item, name: &str, v: AttributeValue) {
    item.insert(name.to_string(), v);
}

pub fn put_opt(item: &mut Item, name: &str, v: Option<impl Into<String>>) {
    if let Some(v) = v {
        item.insert(name.to_string(), s(v));
    }
}

pub fn get_s<'a>(item: &'a Item, name: &str) -> anyhow::Result<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| anyhow!("attribute {name} missing or not a string"))
}

pub fn get_n_opt(item: &Item, name: &str) -> anyhow::Result<Option<i64>> {
    match item.get(name).and_then(|v| v.as_n().ok()) {
        None => Ok(None),
        Some(raw) => raw
            .parse()
            .map(Some)
            .with_context(|| format!("attribute {name} is not an integer")),
    }
}

pub fn get_bool(item: &Item, name: &str) -> anyhow::Result<bool> {
    item.get(name)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .ok_or_else(|| anyhow!("attribute {name} missing or not a boolean"))
}

pub fn epoch(t: OffsetDateTime) -> AttributeValue {
    n(t.unix_timestamp())
}

pub fn timestamp(t: OffsetDateTime) -> AttributeValue {
    s(crate::clock::rfc3339(t))
}

/// A strongly consistent GetItem of one key.
pub async fn get_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    k: &Key,
) -> anyhow::Result<Option<Item>> {
    Ok(client
        .get_item()
        .table_name(table)
        .set_key(Some(key_item(k)))
        .consistent_read(true)
        .send()
        .await
        .context("GetItem")?
        .item)
}

/// Puts a new item: `true` when this call wrote it, including when an earlier attempt of the
/// same call did and its answer was lost (the SDK sent the put again, and the item found is
/// exactly the one sent); `false` when another write holds the key.
///
/// Why: `attribute_not_exists(pk)` alone turns a lost answer into "already exists", so a
/// retried create failed (a 500 for a new request id) or a claim was taken from its own
/// claimant (a digest never sent).
pub async fn put_new_or_own(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    item: HashMap<String, AttributeValue>,
    what: &'static str,
) -> anyhow::Result<bool> {
    let key = Key {
        pk: item
            .get(PK)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| anyhow!("{what}: the item has no pk"))?,
        sk: item
            .get(SK)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| anyhow!("{what}: the item has no sk"))?,
    };
    let r = client
        .put_item()
        .table_name(table)
        .set_item(Some(item.clone()))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    if unless_condition_failed(r, what)?.is_some() {
        return Ok(true);
    }
    Ok(get_item(client, table, &key).await?.as_ref() == Some(&item))
}

/// The output of a conditional write, or `None` when its condition failed (nothing was
/// written: an idempotent retry, a state that moved on). Any other failure is an error with
/// `what` (the operation) as its context.
pub fn unless_condition_failed<O, E>(
    result: Result<O, SdkError<E>>,
    what: &'static str,
) -> anyhow::Result<Option<O>>
where
    E: ProvideErrorMetadata + CreateUnhandledError + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e) => {
            let e = e.into_service_error();
            if e.code() == Some("ConditionalCheckFailedException") {
                Ok(None)
            } else {
                Err(anyhow::Error::new(e).context(what))
            }
        }
    }
}
