//! `POST|GET /v1/leads/{leadId}/attachments`, `GET /v1/leads/{leadId}/attachments/{attachmentId}`.
//!
//! Files never pass through the function: the client gets a presigned S3 PUT, signed for the
//! exact content type, length and encryption it declared (5 minutes), and downloads through a
//! presigned GET that forces a download (60 seconds). Objects live under the tenant and lead
//! prefix (`tenants/<tenant>/leads/<lead>/<attachment>`), which erasing the lead deletes.

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared_core::domain::LeadId;
use shared_core::error::AppError;
use shared_core::keys;
use shared_leads::transfers::{AttachmentId, AttachmentRecord, AttachmentRefused};

use crate::{attachment_rules, created, json_body, ok, query_param, rfc3339, s3, App, Ctx};

const DEFAULT_LIMIT: i32 = 50;
const MAX_LIMIT: i32 = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAttachment {
    filename: Option<String>,
    content_type: Option<String>,
    size: Option<u64>,
}

fn lead_param(ctx: &Ctx) -> Result<LeadId, AppError> {
    ctx.params
        .first()
        .and_then(|p| LeadId::parse(p).ok())
        .ok_or(AppError::NotFound("lead_not_found"))
}

fn attachment_json(a: &AttachmentRecord) -> serde_json::Value {
    json!({
        "id": a.attachment_id.as_str(),
        "lead_id": a.lead_id.as_str(),
        "filename": a.filename,
        "content_type": a.content_type,
        "size": a.size,
        "uploaded_by": a.uploaded_by.as_str(),
        "created_at": rfc3339(a.created_at),
    })
}

pub async fn create(app: &App, ctx: &Ctx, req: &Request) -> Result<Response<Body>, AppError> {
    let lead_id = lead_param(ctx)?;
    let body: NewAttachment = json_body(req)?;
    let allowed = attachment_rules::check(
        body.filename.as_deref(),
        body.content_type.as_deref(),
        body.size,
        app.settings.attachment_max_bytes,
    )
    .map_err(AppError::invalid_fields)?;
    let size = body.size.unwrap_or_default();
    let t = &ctx.caller.tenant_id;
    let attachment_id = AttachmentId::parse(&app.new_id("at")).map_err(anyhow::Error::new)?;
    // Signing is local (no request): sign first, so a record is only written for a usable URL.
    let upload = s3::presign_put(
        &app.s3,
        &app.buckets.attachments,
        &keys::attachment_object(t, &lead_id, &attachment_id),
        allowed.content_type,
        size,
        ctx.now,
        app.settings.attachment_upload_secs,
    )
    .await?;
    let record = AttachmentRecord {
        attachment_id,
        lead_id,
        filename: allowed.filename,
        content_type: allowed.content_type.to_string(),
        size,
        uploaded_by: ctx.caller.user_id.clone(),
        created_at: ctx.now,
    };
    app.store.add_attachment(t, &record).await.map_err(|e| match e {
        AttachmentRefused::LeadMissing => AppError::NotFound("lead_not_found"),
        AttachmentRefused::LeadRestricted => AppError::Conflict {
            code: "lead_restricted",
            message: "This lead is restricted (a data-subject request): it takes no new attachments.",
        },
        AttachmentRefused::Store(e) => AppError::Internal(e),
    })?;
    tracing::info!(attachment_id = %record.attachment_id, lead_id = %record.lead_id, "attachment upload signed");
    let mut out = attachment_json(&record);
    if let (Some(o), serde_json::Value::Object(u)) = (out.as_object_mut(), upload.upload_json()) {
        o.extend(u);
    }
    Ok(created(out))
}

pub async fn list(app: &App, ctx: &Ctx, req: &Request) -> Result<Response<Body>, AppError> {
    let lead_id = lead_param(ctx)?;
    let limit = match query_param(req, "limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<i32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                AppError::validation("invalid_limit", format!("limit must be 1 to {MAX_LIMIT}."))
            })?,
    };
    let after = query_param(req, "cursor")
        .map(|c| {
            AttachmentId::parse(&c)
                .map_err(|_| AppError::validation("invalid_cursor", "The cursor is not valid."))
        })
        .transpose()?;
    let t = &ctx.caller.tenant_id;
    if app.store.lead(t, &lead_id).await?.is_none() {
        return Err(AppError::NotFound("lead_not_found"));
    }
    let (items, next) = app
        .store
        .attachments(t, &lead_id, after.as_ref(), limit)
        .await?;
    Ok(ok(json!({
        "items": items.iter().map(attachment_json).collect::<Vec<_>>(),
        "next_cursor": next.map(|n| n.to_string()),
    })))
}

pub async fn download(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    let lead_id = lead_param(ctx)?;
    let attachment_id = ctx
        .params
        .get(1)
        .and_then(|p| AttachmentId::parse(p).ok())
        .ok_or(AppError::NotFound("attachment_not_found"))?;
    let t = &ctx.caller.tenant_id;
    let record = app
        .store
        .attachment(t, &lead_id, &attachment_id)
        .await?
        .ok_or(AppError::NotFound("attachment_not_found"))?;
    let key = keys::attachment_object(t, &lead_id, &attachment_id);
    match s3::object_size(&app.s3, &app.buckets.attachments, &key).await? {
        Some(n) if n == record.size => {}
        _ => {
            return Err(AppError::Conflict {
                code: "upload_pending",
                message: "The file has not been uploaded yet.",
            })
        }
    }
    let link = s3::presign_get(
        &app.s3,
        &app.buckets.attachments,
        &key,
        &s3::attachment_disposition(&record.filename),
        &record.content_type,
        ctx.now,
        app.settings.attachment_download_secs,
    )
    .await?;
    let mut out = attachment_json(&record);
    out["download_url"] = json!(link.url);
    out["expires_at"] = json!(rfc3339(link.expires_at));
    Ok(ok(out))
}
