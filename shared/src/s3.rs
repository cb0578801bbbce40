//! S3: the client, and deleting every object under a prefix (a lead's attachments when the lead
//! is deleted).
//!
//! The attachments bucket is versioned: a delete leaves a delete marker and the bucket's
//! lifecycle rule (`expire-erased-versions`, template.yaml) removes the previous versions after
//! 7 days, which is when the bytes are gone for good.

use anyhow::{anyhow, bail, Context};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

/// DeleteObjects takes at most 1000 keys, and ListObjectsV2 returns at most 1000.
const PAGE: i32 = 1000;

/// An S3 client from the shared SDK config. Against an emulator (`AWS_ENDPOINT_URL` set) it
/// addresses buckets by path: `<bucket>.127.0.0.1` would not resolve.
pub fn client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Deletes every object whose key starts with `prefix` (one ListObjectsV2 and one
/// DeleteObjects per 1000 keys) and returns how many were deleted. The prefix must name a
/// folder (end with `/`), so a mistake can never empty a bucket or reach a sibling
/// (`tenants/t/leads/l1` would match `l10`).
pub async fn delete_prefix(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> anyhow::Result<usize> {
    if prefix.is_empty() || !prefix.ends_with('/') || prefix == "/" {
        bail!("refusing to delete under prefix {prefix:?}: it must be a folder ending in '/'");
    }
    let mut deleted = 0;
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(PAGE)
            .set_continuation_token(token.take())
            .send()
            .await
            .context("ListObjectsV2")?;
        let objects = page
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .context("object identifier")?;
        if !objects.is_empty() {
            let count = objects.len();
            let out = client
                .delete_objects()
                .bucket(bucket)
                .delete(
                    Delete::builder()
                        .set_objects(Some(objects))
                        .quiet(true)
                        .build()
                        .context("delete request")?,
                )
                .send()
                .await
                .context("DeleteObjects")?;
            if !out.errors().is_empty() {
                // Codes only: keys name tenants and leads, and the caller retries the whole delete.
                let codes: Vec<&str> = out.errors().iter().filter_map(|e| e.code()).collect();
                return Err(anyhow!(
                    "DeleteObjects failed for {} of {count} objects: {codes:?}",
                    out.errors().len()
                ));
            }
            deleted += count;
        }
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => return Ok(deleted),
        }
    }
}
