//! DynamoDB metering for tests and benchmarks (feature `test-support`): counts the requests a
//! client sends and computes the capacity DynamoDB would bill for them, from the request bodies
//! and DynamoDB's documented item-size rules. It never relies on an emulator's timings or on its
//! `ConsumedCapacity` (moto does not compute one faithfully).
//!
//! Use: [`Meter::instrument`] gives a copy of a client that records every request it sends;
//! [`Meter::usage`] then bills what was recorded, reading updated items back through an
//! *un-metered* client (an update is billed on the stored item's size, which its request does
//! not carry).
//!
//! Billing rules implemented (DynamoDB developer guide, "Item sizes and formats", "Read/write
//! capacity mode", "Managing capacity for transactions", "Global secondary indexes"):
//! - An item's size is the sum over its attributes of the name's UTF-8 length plus the value's
//!   size: S = UTF-8 bytes; N = 1 byte per two significant digits (aligned on the decimal
//!   point) + 1, + 1 when negative; B = raw bytes; BOOL and NULL = 1; L and M = 3 bytes of
//!   overhead + 1 byte per element + the elements (and, for M, their names); SS/NS/BS = the sum
//!   of their elements.
//! - A write is billed per item, rounded up to 1 KB (write request units); inside
//!   `TransactWriteItems` every unit counts twice.
//! - `UpdateItem` (and an `Update` in a transaction) is billed on the larger of the item before
//!   and after the update. The request only holds the key and an expression, so the item is read
//!   back after the write and its size used. Approximation: for the updates this project sends
//!   (counters incremented with `ADD`, timestamps replaced by same-length timestamps, a new
//!   per-IP counter added) the item never shrinks, so "after" is the larger of the two. A caller
//!   that wants each update billed on its own state calls [`Meter::usage`] after each operation
//!   (a later write to the same key would otherwise be read back instead).
//! - A `Put` is billed on the item sent. It would be billed on the larger of the replaced and the
//!   new item; this project's puts are conditioned on the item not existing (an expired
//!   idempotency record being the rare exception), so the new item is used.
//! - `Delete` (not sent by the code metered here) is billed 1 unit per item: the deleted item's
//!   size is not knowable after the fact.
//! - Every global secondary index whose key attributes the written item holds costs one more
//!   write, billed at 1x (index writes are not transactional) and rounded up to 1 KB on the
//!   index entry: the table's key attributes + the index's key attributes + the projected
//!   attributes + 100 bytes. An update writes to an index only when it touches an index key or
//!   a projected attribute (reported separately in [`Usage::gsi_write_units`]).
//! - Reads: 1 read unit per item per 4 KB for a strongly consistent read, half for an eventually
//!   consistent one, twice for a transactional one; a key with no item still costs the minimum.
//!   Approximation: items read are assumed to be under 4 KB (forms, tenants, counters and the
//!   lead key probe are all well under), so each key requested costs exactly one such unit.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeDeserializationInterceptorContextRef,
    BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use base64::Engine;
use serde_json::{Map, Value};

/// A global secondary index's projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    KeysOnly,
    Include(Vec<String>),
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSchema {
    pub name: String,
    pub key_attributes: Vec<String>,
    pub projection: Projection,
}

/// What the meter needs of a table: its name, key attributes and global secondary indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub name: String,
    pub key_attributes: Vec<String>,
    pub indexes: Vec<IndexSchema>,
}

/// One request as sent on the wire.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The operation, from the `x-amz-target` header (`TransactWriteItems`).
    pub operation: String,
    /// The JSON request body.
    pub body: Value,
    /// The HTTP status of the response, when one came back.
    pub status: Option<u16>,
    /// Items the response says were read: `ScannedCount` of a Query or Scan, the items returned
    /// by GetItem and BatchGetItem (what the read is billed on, whatever a filter kept).
    pub items_read: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Put,
    Update,
    Delete,
    ConditionCheck,
}

/// One billed item write.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemWrite {
    pub operation: String,
    pub kind: WriteKind,
    pub table: String,
    /// The item's key attributes that are strings, as `(name, value)` (what was written).
    pub key: Vec<(String, String)>,
    /// The item's size by DynamoDB's rules (for an update: the stored item after the write).
    pub item_bytes: u64,
    /// Write request units billed on the table (doubled inside a transaction).
    pub units: u64,
    /// `(index, entry bytes, units)` for each global secondary index written.
    pub index_writes: Vec<(String, u64, u64)>,
}

/// What a span of recorded requests costs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// The operations sent, in order (retries included: each is a billed request).
    pub operations: Vec<String>,
    /// Requests whose response was not a 2xx.
    pub failed_requests: usize,
    /// Write request units billed on tables, transactional units doubled.
    pub write_units: u64,
    /// The part of [`Usage::write_units`] written inside `TransactWriteItems`.
    pub transactional_write_units: u64,
    /// Write request units billed on global secondary indexes (1x, on the index entry's size).
    pub gsi_write_units: u64,
    /// Read request units.
    pub read_units: f64,
    /// Items read, from the responses ([`RecordedRequest::items_read`]).
    pub items_read: u64,
    pub writes: Vec<ItemWrite>,
}

impl Usage {
    pub fn requests(&self) -> usize {
        self.operations.len()
    }

    pub fn count(&self, operation: &str) -> usize {
        self.operations.iter().filter(|o| *o == operation).count()
    }

    /// Every write request unit: tables and indexes.
    pub fn total_write_units(&self) -> u64 {
        self.write_units + self.gsi_write_units
    }
}

/// Records the DynamoDB requests of the clients it instruments. Clones share one log.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    log: Arc<Mutex<Vec<RecordedRequest>>>,
    tables: Arc<Vec<TableSchema>>,
}

impl Meter {
    pub fn new(tables: Vec<TableSchema>) -> Self {
        Self {
            log: Arc::default(),
            tables: Arc::new(tables),
        }
    }

    /// The interceptor, to attach to a client config (`config::Builder::interceptor`).
    pub fn interceptor(&self) -> MeterInterceptor {
        MeterInterceptor {
            log: self.log.clone(),
        }
    }

    /// A copy of `client` (same endpoint, credentials, region) whose requests are recorded.
    pub fn instrument(&self, client: &Client) -> Client {
        let config = client
            .config()
            .to_builder()
            .interceptor(self.interceptor())
            .build();
        Client::from_conf(config)
    }

    /// Removes and returns the requests recorded so far.
    pub fn take(&self) -> Vec<RecordedRequest> {
        std::mem::take(&mut *lock(&self.log))
    }

    /// Forgets the requests recorded so far.
    pub fn reset(&self) {
        self.take();
    }

    /// Bills the requests recorded since the last call (and forgets them). `unmetered` must be a
    /// client of the same tables that this meter does not record: it reads updated items back.
    pub async fn usage(&self, unmetered: &Client) -> anyhow::Result<Usage> {
        let mut usage = Usage::default();
        for r in self.take() {
            usage.operations.push(r.operation.clone());
            usage.items_read += r.items_read;
            if r.status.is_some_and(|s| !(200..300).contains(&s)) {
                usage.failed_requests += 1;
            }
            // A failed conditional write is billed too, so every recorded request is billed.
            self.bill(&r, unmetered, &mut usage).await?;
        }
        Ok(usage)
    }

    async fn bill(
        &self,
        r: &RecordedRequest,
        unmetered: &Client,
        usage: &mut Usage,
    ) -> anyhow::Result<()> {
        let b = &r.body;
        let op = r.operation.as_str();
        match op {
            "GetItem" => usage.read_units += read_unit(b),
            "BatchGetItem" => {
                for ka in obj(&b["RequestItems"]).values() {
                    let keys = ka["Keys"].as_array().map_or(0, Vec::len);
                    usage.read_units += keys as f64 * read_unit(ka);
                }
            }
            "TransactGetItems" => {
                usage.read_units += 2.0 * b["TransactItems"].as_array().map_or(0, Vec::len) as f64
            }
            // Not sent by the code metered here: billed on the data scanned, which the request
            // does not tell; the minimum is counted.
            "Query" | "Scan" => usage.read_units += read_unit(b),
            "PutItem" | "UpdateItem" | "DeleteItem" => {
                let w = self.write(op, kind_of(op), b, 1, unmetered).await?;
                usage.add(w, false);
            }
            "TransactWriteItems" => {
                for t in b["TransactItems"].as_array().into_iter().flatten() {
                    let (kind, part) = match obj(t).iter().next() {
                        Some((k, v)) => (
                            match k.as_str() {
                                "Put" => WriteKind::Put,
                                "Update" => WriteKind::Update,
                                "Delete" => WriteKind::Delete,
                                _ => WriteKind::ConditionCheck,
                            },
                            v,
                        ),
                        None => continue,
                    };
                    let w = self.write(op, kind, part, 2, unmetered).await?;
                    usage.add(w, true);
                }
            }
            "BatchWriteItem" => {
                for (table, reqs) in obj(&b["RequestItems"]) {
                    for req in reqs.as_array().into_iter().flatten() {
                        let (kind, mut part) = if let Some(p) = req.get("PutRequest") {
                            (WriteKind::Put, p.clone())
                        } else if let Some(d) = req.get("DeleteRequest") {
                            (WriteKind::Delete, d.clone())
                        } else {
                            continue;
                        };
                        part["TableName"] = Value::String(table.clone());
                        let w = self.write(op, kind, &part, 1, unmetered).await?;
                        usage.add(w, false);
                    }
                }
            }
            // Control-plane calls (CreateTable, DescribeTable...) are not billed per request.
            _ => {}
        }
        Ok(())
    }

    /// Bills one item write. `part` holds `TableName` and `Item` (put) or `Key` (others).
    async fn write(
        &self,
        op: &str,
        kind: WriteKind,
        part: &Value,
        multiplier: u64,
        unmetered: &Client,
    ) -> anyhow::Result<ItemWrite> {
        let table = part["TableName"].as_str().unwrap_or_default().to_string();
        let schema = self.tables.iter().find(|t| t.name == table);
        let key = {
            let source = obj(if kind == WriteKind::Put {
                &part["Item"]
            } else {
                &part["Key"]
            });
            let names: Vec<&String> = match schema {
                Some(t) => t.key_attributes.iter().collect(),
                None => source.keys().collect(),
            };
            names
                .into_iter()
                .filter_map(|n| Some((n.clone(), source.get(n)?["S"].as_str()?.to_string())))
                .collect()
        };
        let mut index_writes = Vec::new();
        let item_bytes = match kind {
            WriteKind::Put => {
                let item = obj(&part["Item"]);
                if let Some(schema) = schema {
                    for idx in &schema.indexes {
                        if idx.key_attributes.iter().all(|k| item.contains_key(k)) {
                            let bytes = index_entry_bytes(schema, idx, item);
                            index_writes.push((idx.name.clone(), bytes, kb_units(bytes)));
                        }
                    }
                }
                json_item_size(item)
            }
            WriteKind::Update | WriteKind::ConditionCheck => {
                let stored = read_back(unmetered, &table, &part["Key"]).await?;
                let stored = stored.unwrap_or_default();
                let as_json: Map<String, Value> = stored
                    .iter()
                    .map(|(k, v)| (k.clone(), av_to_json(v)))
                    .collect();
                if let (WriteKind::Update, Some(schema)) = (kind, schema) {
                    let touched = touched_attributes(part);
                    for idx in &schema.indexes {
                        let projected: Vec<&String> = match &idx.projection {
                            Projection::KeysOnly => Vec::new(),
                            Projection::Include(a) => a.iter().collect(),
                            Projection::All => touched.iter().collect(),
                        };
                        let key_touched = idx.key_attributes.iter().any(|k| touched.contains(k));
                        let has_keys = idx.key_attributes.iter().all(|k| as_json.contains_key(k));
                        let projected_touched = projected.iter().any(|a| touched.contains(*a));
                        // A key attribute set (or removed) writes the index entry (a changed
                        // key would cost a delete too: not knowable from here, and not done by
                        // this project); a projected attribute changes the entry in place.
                        if key_touched || (projected_touched && has_keys) {
                            let bytes = index_entry_bytes(schema, idx, &as_json);
                            index_writes.push((idx.name.clone(), bytes, kb_units(bytes)));
                        }
                    }
                }
                if stored.is_empty() {
                    json_item_size(obj(&part["Key"]))
                } else {
                    stored
                        .iter()
                        .map(|(k, v)| k.len() as u64 + av_size(v))
                        .sum()
                }
            }
            // The deleted item is gone: its size is unknown, the minimum is billed.
            WriteKind::Delete => 0,
        };
        Ok(ItemWrite {
            operation: op.to_string(),
            kind,
            table,
            key,
            item_bytes,
            units: kb_units(item_bytes) * multiplier,
            index_writes,
        })
    }
}

impl Usage {
    fn add(&mut self, w: ItemWrite, transactional: bool) {
        self.write_units += w.units;
        if transactional {
            self.transactional_write_units += w.units;
        }
        self.gsi_write_units += w.index_writes.iter().map(|(_, _, u)| u).sum::<u64>();
        self.writes.push(w);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn kind_of(op: &str) -> WriteKind {
    match op {
        "PutItem" => WriteKind::Put,
        "UpdateItem" => WriteKind::Update,
        _ => WriteKind::Delete,
    }
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

fn obj(v: &Value) -> &Map<String, Value> {
    v.as_object().unwrap_or(&EMPTY)
}

fn read_unit(v: &Value) -> f64 {
    if v["ConsistentRead"].as_bool() == Some(true) {
        1.0
    } else {
        0.5
    }
}

/// Units of 1 KB, at least one (a write of any size bills one unit).
pub fn kb_units(bytes: u64) -> u64 {
    bytes.div_ceil(1024).max(1)
}

async fn read_back(
    client: &Client,
    table: &str,
    key: &Value,
) -> anyhow::Result<Option<HashMap<String, AttributeValue>>> {
    let key = obj(key)
        .iter()
        .map(|(k, v)| Ok((k.clone(), json_to_av(v)?)))
        .collect::<anyhow::Result<HashMap<_, _>>>()?;
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .context("metering: reading an updated item back")?;
    Ok(out.item)
}

fn index_entry_bytes(schema: &TableSchema, idx: &IndexSchema, item: &Map<String, Value>) -> u64 {
    const INDEX_ENTRY_OVERHEAD: u64 = 100;
    let attrs: BTreeSet<&str> = match &idx.projection {
        Projection::All => item.keys().map(String::as_str).collect(),
        Projection::KeysOnly | Projection::Include(_) => schema
            .key_attributes
            .iter()
            .chain(&idx.key_attributes)
            .chain(match &idx.projection {
                Projection::Include(a) => a.as_slice(),
                _ => &[],
            })
            .map(String::as_str)
            .collect(),
    };
    let size: u64 = attrs
        .into_iter()
        .filter_map(|a| item.get(a).map(|v| a.len() as u64 + json_value_size(v)))
        .sum();
    size + INDEX_ENTRY_OVERHEAD
}

/// The top-level attributes an update writes: from `UpdateExpression` (with
/// `ExpressionAttributeNames` resolved) or the legacy `AttributeUpdates`.
fn touched_attributes(part: &Value) -> BTreeSet<String> {
    let names = obj(&part["ExpressionAttributeNames"]);
    let resolve = |path: &str| -> String {
        let top = path
            .trim()
            .split(['.', '['])
            .next()
            .unwrap_or_default()
            .trim();
        match names.get(top).and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None => top.to_string(),
        }
    };
    let mut out: BTreeSet<String> = obj(&part["AttributeUpdates"]).keys().cloned().collect();
    let Some(expr) = part["UpdateExpression"].as_str() else {
        return out;
    };
    // Clause keywords are reserved words: an attribute with such a name must be written `#x`.
    let mut clauses: Vec<(String, String)> = Vec::new();
    for word in expr.split_whitespace() {
        let upper = word.to_ascii_uppercase();
        if matches!(upper.as_str(), "SET" | "REMOVE" | "ADD" | "DELETE") {
            clauses.push((upper, String::new()));
        } else if let Some((_, text)) = clauses.last_mut() {
            text.push_str(word);
            text.push(' ');
        }
    }
    for (keyword, text) in clauses {
        for action in split_top_level(&text) {
            let path = match keyword.as_str() {
                "SET" => action.split('=').next().unwrap_or_default(),
                "REMOVE" => action.as_str(),
                _ => action.split_whitespace().next().unwrap_or_default(),
            };
            let name = resolve(path);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Splits on the commas outside parentheses (`SET a = if_not_exists(a, :z), b = :b`).
fn split_top_level(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// An item's size in bytes, from its DynamoDB JSON (`{"name": {"S": "..."}}`).
pub fn json_item_size(item: &Map<String, Value>) -> u64 {
    item.iter()
        .map(|(name, v)| name.len() as u64 + json_value_size(v))
        .sum()
}

/// One attribute value's size, from its DynamoDB JSON (`{"S": "..."}`).
pub fn json_value_size(v: &Value) -> u64 {
    let Some((ty, val)) = v.as_object().and_then(|m| m.iter().next()) else {
        return 0;
    };
    let strings = || {
        val.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    };
    match ty.as_str() {
        "S" => val.as_str().map_or(0, |s| s.len() as u64),
        "N" => val.as_str().map_or(0, number_size),
        "B" => val.as_str().map_or(0, base64_len),
        "BOOL" | "NULL" => 1,
        "SS" => strings().map(|s| s.len() as u64).sum(),
        "NS" => strings().map(number_size).sum(),
        "BS" => strings().map(base64_len).sum(),
        "L" => {
            3 + val
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| 1 + json_value_size(e))
                .sum::<u64>()
        }
        "M" => {
            3 + obj(val)
                .iter()
                .map(|(k, e)| 1 + k.len() as u64 + json_value_size(e))
                .sum::<u64>()
        }
        _ => 0,
    }
}

/// One attribute value's size, as the SDK holds it (an item read back).
pub fn av_size(v: &AttributeValue) -> u64 {
    match v {
        AttributeValue::S(s) => s.len() as u64,
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len() as u64,
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(|s| s.len() as u64).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len() as u64).sum(),
        AttributeValue::L(l) => 3 + l.iter().map(|e| 1 + av_size(e)).sum::<u64>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() as u64 + av_size(e))
                .sum::<u64>()
        }
        _ => 0,
    }
}

fn base64_len(s: &str) -> u64 {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_or(s.len() as u64 * 3 / 4, |b| b.len() as u64)
}

/// A number's stored size: DynamoDB keeps up to 38 significant digits two to a byte (pairs
/// aligned on the decimal point, leading and trailing zeros dropped) plus one byte of exponent,
/// and one more byte for a negative number.
pub fn number_size(n: &str) -> u64 {
    let n = n.trim();
    let (negative, n) = match n.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, n.strip_prefix('+').unwrap_or(n)),
    };
    let (mantissa, exp) = match n.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().unwrap_or(0)),
        None => (n, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = format!("{int}{frac}");
    // The decimal point sits after `point` digits of `digits`.
    let mut point = int.len() as i64 + exp;
    let lead = digits.len() - digits.trim_start_matches('0').len();
    point -= lead as i64;
    let significant = digits.trim_start_matches('0').trim_end_matches('0');
    if significant.is_empty() {
        return 1;
    }
    let mut len = significant.len() as i64;
    if point.rem_euclid(2) == 1 {
        // A digit before an odd decimal position shares its byte with a leading zero.
        len += 1;
    }
    let bytes = (len + 1) / 2 + 1;
    bytes as u64 + u64::from(negative)
}

fn json_to_av(v: &Value) -> anyhow::Result<AttributeValue> {
    serde_json_to_av(v).with_context(|| format!("metering: unsupported key value {v}"))
}

fn serde_json_to_av(v: &Value) -> Option<AttributeValue> {
    let (ty, val) = v.as_object()?.iter().next()?;
    Some(match ty.as_str() {
        "S" => AttributeValue::S(val.as_str()?.to_string()),
        "N" => AttributeValue::N(val.as_str()?.to_string()),
        "B" => AttributeValue::B(aws_smithy_types::Blob::new(
            base64::engine::general_purpose::STANDARD
                .decode(val.as_str()?)
                .ok()?,
        )),
        _ => return None,
    })
}

fn av_to_json(v: &AttributeValue) -> Value {
    use serde_json::json;
    let b64 = |b: &aws_smithy_types::Blob| base64::engine::general_purpose::STANDARD.encode(b);
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(av_to_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({
            "M": m.iter().map(|(k, e)| (k.clone(), av_to_json(e))).collect::<Map<_, _>>()
        }),
        _ => Value::Null,
    }
}

/// The SDK interceptor: records each attempt's operation and JSON body just before it is sent,
/// and its response status.
#[derive(Debug, Clone)]
pub struct MeterInterceptor {
    log: Arc<Mutex<Vec<RecordedRequest>>>,
}

/// Which log entry the attempt in flight is, so its response status lands on it.
#[derive(Debug, Clone, Copy)]
struct Slot(usize);

impl Storable for Slot {
    type Storer = StoreReplace<Self>;
}

impl Intercept for MeterInterceptor {
    fn name(&self) -> &'static str {
        "DynamoDbMeter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = context.request();
        let operation = req
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("unknown")
            .to_string();
        let body = match req.body().bytes() {
            Some(b) if !b.is_empty() => serde_json::from_slice(b)?,
            _ => Value::Null,
        };
        let mut log = lock(&self.log);
        log.push(RecordedRequest {
            operation,
            body,
            status: None,
            items_read: 0,
        });
        cfg.interceptor_state().store_put(Slot(log.len() - 1));
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Slot(i)) = cfg.load::<Slot>().copied() {
            if let Some(r) = lock(&self.log).get_mut(i) {
                r.status = Some(context.response().status().as_u16());
            }
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Non-streaming responses are buffered by now, so the body can be read again.
        let Some(bytes) = context.response().body().bytes() else {
            return Ok(());
        };
        let Ok(body) = serde_json::from_slice::<Value>(bytes) else {
            return Ok(());
        };
        if let Some(Slot(i)) = cfg.load::<Slot>().copied() {
            if let Some(r) = lock(&self.log).get_mut(i) {
                r.items_read = items_read(&r.operation, &body);
            }
        }
        Ok(())
    }
}

/// Items a response says were read (see [`RecordedRequest::items_read`]).
pub fn items_read(operation: &str, response: &Value) -> u64 {
    match operation {
        "Query" | "Scan" => response["ScannedCount"].as_u64().unwrap_or(0),
        "GetItem" => u64::from(response.get("Item").is_some_and(|i| !i.is_null())),
        "BatchGetItem" => obj(&response["Responses"])
            .values()
            .map(|items| items.as_array().map_or(0, Vec::len) as u64)
            .sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_read_come_from_the_responses() {
        assert_eq!(
            items_read("Query", &json!({"Count": 2, "ScannedCount": 7})),
            7
        );
        assert_eq!(
            items_read("GetItem", &json!({"Item": {"pk": {"S": "a"}}})),
            1
        );
        assert_eq!(items_read("GetItem", &json!({})), 0);
        let batch = json!({"Responses": {"t1": [{}, {}], "t2": [{}]}, "UnprocessedKeys": {}});
        assert_eq!(items_read("BatchGetItem", &batch), 3);
        assert_eq!(
            items_read("BatchWriteItem", &json!({"UnprocessedItems": {}})),
            0
        );
    }

    #[test]
    fn number_sizes_follow_the_pair_aligned_rule() {
        assert_eq!(number_size("0"), 1);
        assert_eq!(number_size("1"), 2);
        assert_eq!(number_size("12"), 2);
        assert_eq!(number_size("123"), 3);
        assert_eq!(number_size("100"), 2);
        assert_eq!(number_size("1000"), 2);
        assert_eq!(number_size("1.5"), 3);
        assert_eq!(number_size("-1"), 3);
        assert_eq!(number_size("1795953600"), 5);
        assert_eq!(number_size("0.01"), 2);
        assert_eq!(number_size("1e3"), 2);
    }

    #[test]
    fn item_size_counts_names_values_and_container_overhead() {
        let item = json!({
            "pk": {"S": "abc"},                     // 2 + 3
            "n": {"N": "123"},                      // 1 + 3
            "ok": {"BOOL": true},                   // 2 + 1
            "l": {"L": [{"S": "x"}, {"NULL": true}]}, // 1 + 3 + (1+1) + (1+1)
            "m": {"M": {"k": {"S": "vv"}}},         // 1 + 3 + (1 + 1 + 2)
            "ss": {"SS": ["a", "bc"]},              // 2 + 3
        });
        assert_eq!(
            json_item_size(item.as_object().unwrap()),
            5 + 4 + 3 + 8 + 8 + 5
        );
    }

    #[test]
    fn touched_attributes_resolve_names_and_skip_values() {
        let part = json!({
            "UpdateExpression": "ADD n :one, #ip :one SET expires_at = if_not_exists(expires_at, :a), b.c = :x REMOVE d[1]",
            "ExpressionAttributeNames": {"#ip": "ip_abc"},
        });
        let t: Vec<String> = touched_attributes(&part).into_iter().collect();
        assert_eq!(t, ["b", "d", "expires_at", "ip_abc", "n"]);
    }

    #[test]
    fn units_round_up_to_a_kilobyte_with_a_minimum_of_one() {
        assert_eq!(kb_units(0), 1);
        assert_eq!(kb_units(1024), 1);
        assert_eq!(kb_units(1025), 2);
    }
}
