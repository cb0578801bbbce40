//! Seeding an emulated table with BatchWriteItem, a few requests at a time.

use anyhow::Context;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};

/// Concurrent BatchWriteItem requests while seeding.
pub const SEED_WRITERS: usize = 4;

/// A put of `item`, for a batch.
pub fn put(item: shared_core::dynamo::Item) -> anyhow::Result<WriteRequest> {
    Ok(WriteRequest::builder()
        .put_request(PutRequest::builder().set_item(Some(item)).build()?)
        .build())
}

/// Writes `batches` (25 requests at most each): [`SEED_WRITERS`] writers at once, batch `b` by
/// writer `b % SEED_WRITERS`, each resending what DynamoDB left unprocessed.
pub async fn write_batches(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    batches: impl IntoIterator<Item = Vec<WriteRequest>>,
) -> anyhow::Result<()> {
    let mut groups: Vec<Vec<Vec<WriteRequest>>> = vec![Vec::new(); SEED_WRITERS];
    for (b, batch) in batches.into_iter().enumerate() {
        groups[b % SEED_WRITERS].push(batch);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for group in groups {
        let client = client.clone();
        let table = table.to_string();
        tasks.spawn(async move {
            for mut batch in group {
                loop {
                    let out = client
                        .batch_write_item()
                        .request_items(&table, batch)
                        .send()
                        .await
                        .context("BatchWriteItem")?;
                    match out.unprocessed_items.and_then(|mut u| u.remove(&table)) {
                        Some(rest) if !rest.is_empty() => batch = rest,
                        _ => break,
                    }
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// `client` with no time limit on its calls. The emulator answers a `Query` over a large table
/// in seconds (it reads the whole table for an index query), past the 5 s a request-serving
/// function's calls may take (`shared_core::aws::Budget::Request`); the memory benchmarks measure
/// what the code holds, not how fast the emulator is.
pub fn patient(client: &aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        client
            .config()
            .to_builder()
            .timeout_config(aws_sdk_dynamodb::config::timeout::TimeoutConfig::disabled())
            .build(),
    )
}
