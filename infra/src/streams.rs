//! The local stack's reader of DynamoDB Streams (the emulator implements the Streams API): what
//! Lambda's event source mapping does in AWS, on one machine. It reads every shard of a table's
//! stream from its start (TRIM_HORIZON) and hands out the new records as the JSON records of a
//! Lambda stream event, so `devstack outbound` and the tests give the `outbound` function
//! exactly what AWS would.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use base64::Engine;
use serde_json::{json, Map, Value};

/// DynamoDB JSON of one attribute value (`{"S": "..."}`, ...), as Lambda's event carries it.
pub fn attribute_json(v: &AttributeValue) -> Value {
    let b64 = |b: &aws_smithy_types::Blob| {
        Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
    };
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Ss(l) => json!({ "SS": l }),
        AttributeValue::Ns(l) => json!({ "NS": l }),
        AttributeValue::Bs(l) => json!({ "BS": l.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": image_json(m) }),
        _ => json!({ "NULL": true }),
    }
}

pub fn image_json(m: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), attribute_json(v)))
            .collect::<Map<_, _>>(),
    )
}

/// A record as Lambda's DynamoDB event has it.
pub fn record_json(r: &aws_sdk_dynamodbstreams::types::Record, stream_arn: &str) -> Value {
    let d = r.dynamodb();
    let mut dynamodb = json!({
        "SequenceNumber": d.and_then(|d| d.sequence_number()),
        "Keys": d.and_then(|d| d.keys()).map(image_json),
        "StreamViewType": d.and_then(|d| d.stream_view_type()).map(|v| v.as_str()),
        "SizeBytes": d.and_then(|d| d.size_bytes()),
    });
    if let Some(i) = d.and_then(|d| d.new_image()) {
        dynamodb["NewImage"] = image_json(i);
    }
    if let Some(i) = d.and_then(|d| d.old_image()) {
        dynamodb["OldImage"] = image_json(i);
    }
    json!({
        "eventID": r.event_id(),
        "eventName": r.event_name().map(|n| n.as_str()),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": crate::template::LOCAL_REGION,
        "eventSourceARN": stream_arn,
        "dynamodb": dynamodb,
    })
}

/// Follows one table's stream: every shard, from its start, each record once.
pub struct StreamReader {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    /// Shard id → the iterator to read next from (None: the shard is closed and read).
    iterators: BTreeMap<String, Option<String>>,
}

impl StreamReader {
    /// The reader of `table`'s latest stream (the table must have one).
    pub async fn open(
        client: aws_sdk_dynamodbstreams::Client,
        dynamo: &aws_sdk_dynamodb::Client,
        table: &str,
    ) -> Result<StreamReader> {
        let d = dynamo
            .describe_table()
            .table_name(table)
            .send()
            .await
            .context("DescribeTable")?;
        let stream_arn = d
            .table()
            .and_then(|t| t.latest_stream_arn())
            .with_context(|| format!("table {table} has no stream"))?
            .to_string();
        Ok(StreamReader {
            client,
            stream_arn,
            iterators: BTreeMap::new(),
        })
    }

    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    /// The records written since the last call (at most `limit` per shard), in stream order
    /// per shard, as Lambda event records.
    pub async fn poll(&mut self, limit: i32) -> Result<Vec<Value>> {
        let desc = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .context("DescribeStream")?;
        let shards: Vec<String> = desc
            .stream_description()
            .map(|s| {
                s.shards()
                    .iter()
                    .filter_map(|sh| sh.shard_id().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for shard in shards {
            if self.iterators.contains_key(&shard) {
                continue;
            }
            let it = self
                .client
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(&shard)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .context("GetShardIterator")?;
            self.iterators
                .insert(shard, it.shard_iterator().map(String::from));
        }
        let mut out = vec![];
        for next in self.iterators.values_mut() {
            let Some(it) = next.clone() else { continue };
            let page = self
                .client
                .get_records()
                .shard_iterator(it)
                .limit(limit)
                .send()
                .await
                .context("GetRecords")?;
            out.extend(
                page.records()
                    .iter()
                    .map(|r| record_json(r, &self.stream_arn)),
            );
            *next = page.next_shard_iterator().map(String::from);
        }
        Ok(out)
    }
}
