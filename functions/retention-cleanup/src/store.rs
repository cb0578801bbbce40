//! DynamoDB and S3 steps of a run, each counted (requests, items read) and each a no-op write in
//! a dry run.

use anyhow::Context;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use shared_core::dynamo::Item;
use shared_core::keys::{Key, PK, SK};

use crate::Run;

/// Items per Query page: bounds the memory of a page and the work between budget checks.
pub const PAGE: i32 = 250;

/// BatchGetItem takes at most 100 keys.
const BATCH_GET_MAX: usize = 100;

/// One Query: a partition of a table or of an index.
pub struct QuerySpec<'a> {
    pub table: &'a str,
    pub index: Option<&'a str>,
    pub condition: &'a str,
    pub names: Vec<(&'a str, &'a str)>,
    pub values: Vec<(&'a str, AttributeValue)>,
    pub projection: Option<&'a str>,
}

pub type Page = (Vec<Item>, Option<Item>);

impl Run<'_> {
    pub async fn query(&mut self, q: &QuerySpec<'_>, start: Option<Item>) -> anyhow::Result<Page> {
        let mut req = self
            .app
            .dynamo
            .query()
            .table_name(q.table)
            .set_index_name(q.index.map(str::to_string))
            .key_condition_expression(q.condition)
            .set_exclusive_start_key(start)
            .limit(PAGE);
        for (k, v) in &q.names {
            req = req.expression_attribute_names(*k, *v);
        }
        for (k, v) in &q.values {
            req = req.expression_attribute_values(*k, v.clone());
        }
        if let Some(p) = q.projection {
            req = req.projection_expression(p);
        }
        self.pages += 1;
        self.report.queries += 1;
        let out = req.send().await.context("Query")?;
        self.report.items_read += u64::try_from(out.scanned_count).unwrap_or(0);
        let next = out.last_evaluated_key.filter(|k| !k.is_empty());
        Ok((out.items.unwrap_or_default(), next))
    }

    /// Reads items by key (absent ones are left out), with only `projection`.
    pub async fn get_many(
        &mut self,
        table: &str,
        keys: &[Key],
        projection: &str,
    ) -> anyhow::Result<Vec<Item>> {
        let mut found = Vec::new();
        for chunk in keys.chunks(BATCH_GET_MAX) {
            let mut pending: Vec<Item> = chunk.iter().map(key_item).collect();
            let mut attempt = 0u32;
            while !pending.is_empty() {
                attempt += 1;
                let ka = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .projection_expression(projection)
                    .consistent_read(true)
                    .build()
                    .context("keys")?;
                let out = self
                    .app
                    .dynamo
                    .batch_get_item()
                    .request_items(table, ka)
                    .send()
                    .await
                    .context("BatchGetItem")?;
                let items = out
                    .responses
                    .and_then(|mut r| r.remove(table))
                    .unwrap_or_default();
                self.report.items_read += items.len() as u64;
                found.extend(items);
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                if !pending.is_empty() {
                    anyhow::ensure!(attempt < 8, "BatchGetItem left keys unprocessed");
                    tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
                }
            }
        }
        Ok(found)
    }

    pub async fn get(&mut self, table: &str, key: &Key) -> anyhow::Result<Option<Item>> {
        let out = self
            .app
            .dynamo
            .get_item()
            .table_name(table)
            .set_key(Some(key_item(key)))
            .consistent_read(true)
            .send()
            .await
            .context("GetItem")?;
        if out.item.is_some() {
            self.report.items_read += 1;
        }
        Ok(out.item)
    }

    /// Deletes the items (batched); in a dry run counts them. Returns the count.
    pub async fn delete(&mut self, table: &str, keys: Vec<Key>) -> anyhow::Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        if self.dry_run {
            return Ok(keys.len() as u64);
        }
        let items = keys.iter().map(key_item).collect();
        shared_core::dynamo::batch_delete(&self.app.dynamo, table, items).await
    }

    /// Moves an item to another expiry bucket (`attribute` = `exp_bucket` or `tech_exp`), if it
    /// still exists. Nothing in a dry run.
    pub async fn rebucket(
        &mut self,
        table: &str,
        key: &Key,
        attribute: &str,
        bucket: String,
    ) -> anyhow::Result<()> {
        if self.dry_run {
            return Ok(());
        }
        let res = self
            .app
            .dynamo
            .update_item()
            .table_name(table)
            .set_key(Some(key_item(key)))
            .update_expression("SET #b = :b")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#b", attribute)
            .expression_attribute_values(":b", AttributeValue::S(bucket))
            .send()
            .await;
        // The item gone is not a failure: someone (a concurrent erasure, an earlier attempt of
        // this run) already did the work.
        shared_core::dynamo::unless_condition_failed(res, "UpdateItem expiry bucket")?;
        Ok(())
    }

    /// Removes an item from the expiry index (the item stays).
    pub async fn unbucket(&mut self, table: &str, key: &Key) -> anyhow::Result<()> {
        if self.dry_run {
            return Ok(());
        }
        let res = self
            .app
            .dynamo
            .update_item()
            .table_name(table)
            .set_key(Some(key_item(key)))
            .update_expression("REMOVE exp_bucket")
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        shared_core::dynamo::unless_condition_failed(res, "UpdateItem remove bucket")?;
        Ok(())
    }

    pub async fn delete_objects(&mut self, bucket: &str, keys: &[String]) -> anyhow::Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        if self.dry_run {
            return Ok(keys.len() as u64);
        }
        Ok(shared_core::s3::delete_keys(&self.app.s3, bucket, keys).await? as u64)
    }

    pub async fn delete_prefix(&mut self, bucket: &str, prefix: &str) -> anyhow::Result<u64> {
        let n = if self.dry_run {
            shared_core::s3::count_prefix(&self.app.s3, bucket, prefix).await?
        } else {
            shared_core::s3::delete_prefix(&self.app.s3, bucket, prefix).await?
        };
        Ok(n as u64)
    }
}

pub use shared_core::dynamo::key_item;

pub fn str_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub fn bool_attr(item: &Item, name: &str) -> bool {
    item.get(name)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(false)
}

/// The primary key of an item read from a table or a KEYS_ONLY index.
pub fn key_of(item: &Item) -> Option<Key> {
    Some(Key {
        pk: str_attr(item, PK)?.to_string(),
        sk: str_attr(item, SK)?.to_string(),
    })
}
