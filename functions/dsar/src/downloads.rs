//! `GET /v1/privacy/downloads?t=`: the download links emailed to subjects (exports, completion
//! certificates, attachments linked from an access export).
//!
//! The email carries a signed token naming one object of one request and its expiry
//! (`shared_privacy::dsar::tokens::DownloadToken`, 72 hours by default); this route checks it and
//! answers with a redirect to a URL presigned at that moment for [`REDIRECT_TTL`]. A URL
//! presigned by a Lambda role stops working when the role's session credentials expire (hours),
//! whatever its `X-Amz-Expires` says, so nothing a subject keeps for days is a presigned URL.

use std::time::Duration;

use lambda_http::{Body, Response};
use shared_core::blind_index::BlindIndexKey;
use shared_core::error::AppError;
use shared_privacy::dsar::tokens::{DownloadBucket, DownloadRefused, DownloadToken};
use time::OffsetDateTime;

/// How long the redirect's presigned URL lives: enough to start the download, too short to be
/// worth keeping.
pub const REDIRECT_TTL: Duration = Duration::from_secs(60);

/// Where the objects are, and the client that presigns them (the function's own role:
/// `s3:GetObject` on `dsar/*` of the exports bucket and `tenants/*` of the attachments bucket).
#[derive(Clone)]
pub struct Downloads {
    pub s3: aws_sdk_s3::Client,
    pub exports_bucket: String,
    pub attachments_bucket: String,
}

/// The short-lived URL a valid download token opens, or why it opens nothing.
pub async fn resolve(
    d: &Downloads,
    keys: &BlindIndexKey,
    raw: &str,
    now: OffsetDateTime,
) -> Result<String, AppError> {
    let token = match DownloadToken::verify(keys, raw, now.unix_timestamp()) {
        Ok(t) => t,
        Err(DownloadRefused::Invalid) => {
            return Err(AppError::validation(
                "invalid_token",
                "This download link is not valid; use the link of the email.",
            ))
        }
        Err(DownloadRefused::Expired) => {
            return Err(AppError::Gone {
                code: "link_expired",
                message: "This download link has expired. Follow the status link of your request to ask for the data again.",
            })
        }
    };
    let bucket = match token.bucket {
        DownloadBucket::Exports => &d.exports_bucket,
        DownloadBucket::Attachments => &d.attachments_bucket,
    };
    let url = shared_core::s3::presign_get(&d.s3, bucket, &token.key, REDIRECT_TTL).await?;
    tracing::info!(request_id = %token.request_id, bucket = ?token.bucket, "download link opened");
    Ok(url)
}

/// The route: `302` to the object, never cached, never leaking the URL as a referrer.
pub async fn download(
    d: &Downloads,
    keys: &BlindIndexKey,
    token: Option<String>,
    now: OffsetDateTime,
) -> Result<Response<Body>, AppError> {
    let raw = token.ok_or_else(|| {
        AppError::validation(
            "invalid_token",
            "This download link is not valid; use the link of the email.",
        )
    })?;
    let url = resolve(d, keys, &raw, now).await?;
    Response::builder()
        .status(302)
        .header("location", url)
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .body(Body::Empty)
        .map_err(|e| AppError::Internal(e.into()))
}
