//! S3 for lead transfers: presigned uploads and downloads, capped reads, and the multipart
//! sink exports stream into.
//!
//! Objects are encrypted with SSE-KMS: the buckets default to it (template.yaml), and every
//! write here (presigned or not) also asks for it, so an upload through a presigned URL must
//! send `x-amz-server-side-encryption: aws:kms` (it is signed) and cannot opt out.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use aws_sdk_s3::Client;
use time::OffsetDateTime;

/// A presigned request handed to a client: where, how, which headers it must send exactly as
/// given (they are part of the signature), and until when.
#[derive(Debug, Clone)]
pub struct Presigned {
    pub url: String,
    pub method: String,
    pub headers: BTreeMap<String, String>,
    pub expires_at: OffsetDateTime,
}

impl Presigned {
    fn from(req: PresignedRequest, expires_at: OffsetDateTime) -> Self {
        Self {
            url: req.uri().to_string(),
            method: req.method().to_string(),
            headers: req
                .headers()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect(),
            expires_at,
        }
    }

    /// The `upload_*` fields of an API response.
    pub fn upload_json(&self) -> serde_json::Value {
        serde_json::json!({
            "upload_url": self.url,
            "upload_method": self.method,
            "upload_headers": self.headers,
            "expires_at": crate::rfc3339(self.expires_at),
        })
    }
}

fn presigning(
    now: OffsetDateTime,
    secs: u64,
) -> anyhow::Result<(PresigningConfig, OffsetDateTime)> {
    // SigV4 dates are whole seconds: so is the expiry the client is told.
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let config = PresigningConfig::builder()
        .start_time(SystemTime::from(now))
        .expires_in(Duration::from_secs(secs))
        .build()
        .context("presigning config")?;
    Ok((config, now + time::Duration::seconds(secs as i64)))
}

/// A presigned PUT for exactly `size` bytes of `content_type`: Content-Type, Content-Length and
/// the encryption header are signed, so an upload of another type or length is refused by S3.
pub async fn presign_put(
    s3: &Client,
    bucket: &str,
    key: &str,
    content_type: &str,
    size: u64,
    now: OffsetDateTime,
    secs: u64,
) -> anyhow::Result<Presigned> {
    let (config, expires_at) = presigning(now, secs)?;
    let req = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .content_length(i64::try_from(size).context("size")?)
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .presigned(config)
        .await
        .context("presigning PutObject")?;
    Ok(Presigned::from(req, expires_at))
}

/// A presigned GET that makes browsers download (never render) the object.
pub async fn presign_get(
    s3: &Client,
    bucket: &str,
    key: &str,
    content_disposition: &str,
    content_type: &str,
    now: OffsetDateTime,
    secs: u64,
) -> anyhow::Result<Presigned> {
    let (config, expires_at) = presigning(now, secs)?;
    let req = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .response_content_disposition(content_disposition)
        .response_content_type(content_type)
        .presigned(config)
        .await
        .context("presigning GetObject")?;
    Ok(Presigned::from(req, expires_at))
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266): an ASCII fallback without quotes
/// or backslashes, and the exact name percent-encoded.
pub fn attachment_disposition(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

fn is_not_found<E: ProvideErrorMetadata>(e: &E) -> bool {
    matches!(e.code(), Some("NoSuchKey" | "NotFound" | "404"))
}

/// The size of an object, or `None` when there is none (yet).
pub async fn object_size(s3: &Client, bucket: &str, key: &str) -> anyhow::Result<Option<u64>> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(out) => Ok(Some(out.content_length.unwrap_or(0).max(0) as u64)),
        Err(e) => {
            let e = e.into_service_error();
            if e.is_not_found() || is_not_found(&e) {
                Ok(None)
            } else {
                Err(anyhow::Error::new(e).context("HeadObject"))
            }
        }
    }
}

/// The whole object when it exists, refused when it is over `max` bytes.
pub async fn read_capped(
    s3: &Client,
    bucket: &str,
    key: &str,
    max: u64,
) -> anyhow::Result<Option<Vec<u8>>> {
    let out = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => out,
        Err(e) => {
            let e = e.into_service_error();
            if e.is_no_such_key() || is_not_found(&e) {
                return Ok(None);
            }
            return Err(anyhow::Error::new(e).context("GetObject"));
        }
    };
    if out.content_length.unwrap_or(0) as u64 > max {
        bail!("object is larger than {max} bytes");
    }
    let bytes = out
        .body
        .collect()
        .await
        .context("reading object")?
        .into_bytes();
    if bytes.len() as u64 > max {
        bail!("object is larger than {max} bytes");
    }
    Ok(Some(bytes.to_vec()))
}

pub async fn delete(s3: &Client, bucket: &str, key: &str) -> anyhow::Result<()> {
    s3.delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .context("DeleteObject")?;
    Ok(())
}

/// Where an export streams to. Parts are uploaded as they fill; an export that fits in one part
/// is a single `PutObject` instead (no multipart upload at all). Memory: the part being sent.
pub struct ObjectSink<'a> {
    s3: &'a Client,
    bucket: &'a str,
    key: &'a str,
    content_type: &'a str,
    content_disposition: String,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
}

impl<'a> ObjectSink<'a> {
    pub fn new(
        s3: &'a Client,
        bucket: &'a str,
        key: &'a str,
        content_type: &'a str,
        content_disposition: String,
    ) -> Self {
        Self {
            s3,
            bucket,
            key,
            content_type,
            content_disposition,
            upload_id: None,
            parts: Vec::new(),
        }
    }

    /// Parts sent so far.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// Sends one part (at least 5 MiB: S3's minimum for all parts but the last).
    pub async fn put_part(&mut self, bytes: Vec<u8>) -> anyhow::Result<()> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let out = self
                    .s3
                    .create_multipart_upload()
                    .bucket(self.bucket)
                    .key(self.key)
                    .content_type(self.content_type)
                    .content_disposition(&self.content_disposition)
                    .server_side_encryption(ServerSideEncryption::AwsKms)
                    .send()
                    .await
                    .context("CreateMultipartUpload")?;
                let id = out.upload_id.context("no upload id")?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = i32::try_from(self.parts.len() + 1).context("too many parts")?;
        let out = self
            .s3
            .upload_part()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .with_context(|| format!("UploadPart {number}"))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag)
                .build(),
        );
        Ok(())
    }

    /// Sends what is left and makes the object visible.
    pub async fn finish(mut self, last: Vec<u8>) -> anyhow::Result<()> {
        let Some(upload_id) = self.upload_id.clone() else {
            self.s3
                .put_object()
                .bucket(self.bucket)
                .key(self.key)
                .content_type(self.content_type)
                .content_disposition(&self.content_disposition)
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .body(ByteStream::from(last))
                .send()
                .await
                .context("PutObject")?;
            return Ok(());
        };
        if !last.is_empty() {
            self.put_part(last).await?;
        }
        self.s3
            .complete_multipart_upload()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build(),
            )
            .send()
            .await
            .context("CompleteMultipartUpload")?;
        Ok(())
    }

    /// Drops the parts sent so far (best effort: the bucket's lifecycle rule aborts incomplete
    /// uploads after a day anyway).
    pub async fn abort(self) {
        if let Some(id) = &self.upload_id {
            if let Err(e) = self
                .s3
                .abort_multipart_upload()
                .bucket(self.bucket)
                .key(self.key)
                .upload_id(id)
                .send()
                .await
            {
                tracing::warn!(error = %e, "aborting the multipart upload failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_keeps_quotes_and_non_ascii_out_of_the_plain_name() {
        assert_eq!(
            attachment_disposition("Ofertă \"final\".pdf"),
            "attachment; filename=\"Ofert_ _final_.pdf\"; filename*=UTF-8''Ofert%C4%83%20%22final%22.pdf"
        );
    }
}
