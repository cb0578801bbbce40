//! Batched deletes: the one implementation of BatchWriteItem deletes (retention, data-subject
//! erasure). Chunks of 25 keys (the API's maximum), `UnprocessedItems` retried with exponential
//! backoff and full jitter, a bounded number of attempts. Requests go through the normal SDK
//! client, so the metering interceptor (`crate::metering`) counts every one.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{bail, Context};
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use rand::Rng;

/// BatchWriteItem takes at most 25 requests.
pub const BATCH_WRITE_MAX: usize = 25;

/// Attempts per chunk (the first try plus retries of what DynamoDB left unprocessed).
const MAX_ATTEMPTS: u32 = 8;
/// First backoff; doubled per attempt, capped at [`MAX_BACKOFF`], with full jitter.
const BASE_BACKOFF: Duration = Duration::from_millis(25);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Deletes the items with the given primary keys (each map holds exactly the key attributes)
/// from `table`. Duplicate keys are sent once (BatchWriteItem rejects a batch that repeats a key).
/// Deleting an absent item is not an error, so a retried call is harmless. Returns the number of
/// distinct keys whose delete DynamoDB has processed (BatchWriteItem does not say whether the
/// item existed). Fails, naming no key, when a chunk is still unprocessed after the bounded
/// retries; chunks before it stay deleted and a later call finishes the rest.
pub async fn batch_delete(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<HashMap<String, AttributeValue>>,
) -> anyhow::Result<u64> {
    let keys = dedup(keys);
    let mut deleted = 0u64;
    for chunk in keys.chunks(BATCH_WRITE_MAX) {
        let mut pending: Vec<WriteRequest> = chunk
            .iter()
            .map(|k| {
                DeleteRequest::builder()
                    .set_key(Some(k.clone()))
                    .build()
                    .map(|d| WriteRequest::builder().delete_request(d).build())
            })
            .collect::<Result<_, _>>()
            .context("delete request")?;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let sent = pending.len() as u64;
            let out = client
                .batch_write_item()
                .request_items(table, std::mem::take(&mut pending))
                .send()
                .await
                .context("BatchWriteItem")?;
            pending = out
                .unprocessed_items()
                .and_then(|m| m.get(table))
                .cloned()
                .unwrap_or_default();
            deleted += sent - pending.len() as u64;
            if pending.is_empty() {
                break;
            }
            if attempt >= MAX_ATTEMPTS {
                bail!(
                    "BatchWriteItem left {} deletes unprocessed after {attempt} attempts",
                    pending.len()
                );
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
    Ok(deleted)
}

/// Full jitter: a uniform wait in [0, min(cap, base * 2^(attempt-1))].
fn backoff(attempt: u32) -> Duration {
    let ceiling = BASE_BACKOFF
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let ms = ceiling.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(0..=ms))
}

fn dedup(keys: Vec<HashMap<String, AttributeValue>>) -> Vec<HashMap<String, AttributeValue>> {
    let mut seen = HashSet::new();
    keys.into_iter()
        .filter(|k| {
            let mut parts: Vec<(String, String)> = k
                .iter()
                .map(|(name, v)| (name.clone(), format!("{v:?}")))
                .collect();
            parts.sort();
            seen.insert(parts)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(pk.into())),
            ("sk".to_string(), AttributeValue::S(sk.into())),
        ])
    }

    #[test]
    fn duplicate_keys_are_sent_once() {
        let out = dedup(vec![key("a", "1"), key("a", "2"), key("a", "1")]);
        assert_eq!(out, vec![key("a", "1"), key("a", "2")]);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..40 {
            let ceiling = BASE_BACKOFF
                .saturating_mul(1u32 << (attempt - 1).min(16))
                .min(MAX_BACKOFF);
            assert!(backoff(attempt) <= ceiling);
        }
        assert!(backoff(30) <= MAX_BACKOFF);
    }
}
