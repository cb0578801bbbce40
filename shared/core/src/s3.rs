//! S3: the client, deleting every object under a prefix (a lead's attachments when the lead
//! is deleted), and deleting objects by key, 1000 a call (retention's expired exports).
//!
//! The attachments bucket is versioned: a delete leaves a delete marker and the bucket's
//! lifecycle rule (`expire-erased-versions`, template.yaml) removes the previous versions after
//! 7 days, which is when the bytes are gone for good.

use anyhow::{anyhow, bail, Context};
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

/// DeleteObjects takes at most 1000 keys, and ListObjectsV2 returns at most 1000.
const PAGE: i32 = 1000;

/// An S3 client from the shared SDK config, with S3's longer time limits for the config's
/// [`crate::aws::Budget`]. Against an emulator (`AWS_ENDPOINT_URL` set) it addresses buckets by
/// path: `<bucket>.127.0.0.1` would not resolve.
pub fn client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .timeout_config(crate::aws::Budget::s3_timeouts_for(config))
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
    require_folder(prefix, "delete under")?;
    let mut deleted = 0;
    let mut token: Option<String> = None;
    loop {
        let page = list_page(client, bucket, prefix, token.take()).await?;
        let keys = page.contents().iter().filter_map(|o| o.key());
        deleted += delete_batch(client, bucket, keys).await?;
        match next_token(&page) {
            Some(t) => token = Some(t),
            None => return Ok(deleted),
        }
    }
}

/// Deletes the objects with the given keys (an absent key is not an error): one DeleteObjects
/// per 1000 keys. Returns how many keys were sent. Fails, naming codes only, when S3 reports an
/// error for some of them; a retry of the whole call is harmless.
pub async fn delete_keys(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    keys: &[String],
) -> anyhow::Result<usize> {
    let mut deleted = 0;
    for chunk in keys.chunks(PAGE as usize) {
        deleted += delete_batch(client, bucket, chunk).await?;
    }
    Ok(deleted)
}

/// How many objects are under `prefix` (a folder, as for [`delete_prefix`]): what a delete of
/// the prefix would remove. One ListObjectsV2 per 1000 keys.
pub async fn count_prefix(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> anyhow::Result<usize> {
    require_folder(prefix, "list")?;
    let mut count = 0;
    let mut token: Option<String> = None;
    loop {
        let page = list_page(client, bucket, prefix, token.take()).await?;
        count += page.contents().len();
        match next_token(&page) {
            Some(t) => token = Some(t),
            None => return Ok(count),
        }
    }
}

/// Refuses a prefix that does not name a folder (see [`delete_prefix`]).
fn require_folder(prefix: &str, action: &str) -> anyhow::Result<()> {
    if prefix.is_empty() || !prefix.ends_with('/') || prefix == "/" {
        bail!("refusing to {action} prefix {prefix:?}: it must be a folder ending in '/'");
    }
    Ok(())
}

/// One page (at most 1000 keys) of the objects under `prefix`.
async fn list_page(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    token: Option<String>,
) -> anyhow::Result<ListObjectsV2Output> {
    client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .max_keys(PAGE)
        .set_continuation_token(token)
        .send()
        .await
        .context("ListObjectsV2")
}

/// The token of the page after `page`, if there is one.
fn next_token(page: &ListObjectsV2Output) -> Option<String> {
    match page.next_continuation_token() {
        Some(t) if page.is_truncated() == Some(true) => Some(t.to_string()),
        _ => None,
    }
}

/// One DeleteObjects of at most 1000 keys (none: no call). Returns how many keys were sent.
async fn delete_batch(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    keys: impl IntoIterator<Item = impl Into<String>>,
) -> anyhow::Result<usize> {
    let objects = keys
        .into_iter()
        .map(|k| ObjectIdentifier::builder().key(k).build())
        .collect::<Result<Vec<_>, _>>()
        .context("object identifier")?;
    if objects.is_empty() {
        return Ok(0);
    }
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
    Ok(count)
}

/// A GET of one object, presigned for `expires` by this process's credentials. Only for links
/// used at once (a redirect): a presigned URL stops working when the credentials that signed it
/// expire, which for a Lambda role is hours, whatever `expires` says.
pub async fn presign_get(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    expires: std::time::Duration,
) -> anyhow::Result<String> {
    use anyhow::Context;
    let req = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(expires)
                .context("presign expiry")?,
        )
        .await
        .context("presign GetObject")?;
    Ok(req.uri().to_string())
}
