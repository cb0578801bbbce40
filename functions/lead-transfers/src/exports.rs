//! `POST /v1/exports`: the tenant's leads as CSV or JSON, streamed to S3, answered with a
//! presigned download link (15 minutes). The file is deleted by the bucket after 7 days.
//!
//! Bounded memory: leads are read a page at a time from the `by_tenant` index (each item once;
//! restricted leads are filtered out by DynamoDB), serialized into a part buffer, and the buffer
//! goes to S3 as one multipart part each time it reaches 5 MiB. Nothing ever holds all the leads:
//! memory is one page plus one part, for 5,000 leads or 5 million.

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared_core::domain::{TenantId, UserId};
use shared_core::error::{AppError, FieldErrors};
use shared_core::keys;
use shared_leads::transfers::{ExportId, ExportRecord};
use time::OffsetDateTime;

use crate::export_writer::{ExportFormat, LeadWriter};
use crate::s3::{self, ObjectSink};
use crate::{created, json_body, rfc3339, App, Ctx};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewExport {
    format: Option<String>,
}

/// What an export did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOutcome {
    pub export_id: ExportId,
    pub object_key: String,
    /// Leads written to the file.
    pub count: u64,
    /// Items DynamoDB read (`ScannedCount`): the leads, restricted ones included.
    pub scanned: u64,
    pub pages: u64,
    pub parts: usize,
    pub bytes: u64,
}

pub async fn run(app: &App, ctx: &Ctx, req: &Request) -> Result<Response<Body>, AppError> {
    let body: NewExport = json_body(req)?;
    let format = match body.format.as_deref() {
        Some(f) => ExportFormat::parse(f),
        None => None,
    }
    .ok_or_else(|| {
        let mut f = FieldErrors::new();
        f.insert("format".into(), "must be csv or json".into());
        AppError::invalid_fields(f)
    })?;
    let t = &ctx.caller.tenant_id;
    let export_id = ExportId::parse(&app.new_id("ex")).map_err(anyhow::Error::new)?;
    let outcome = export_leads(app, t, &ctx.caller.user_id, &export_id, format, ctx.now).await?;
    let link = s3::presign_get(
        &app.s3,
        &app.buckets.exports,
        &outcome.object_key,
        &download_disposition(&export_id, format),
        format.content_type(),
        app.clock.now(),
        app.settings.export_download_secs,
    )
    .await?;
    Ok(created(json!({
        "id": export_id.as_str(),
        "format": format.as_str(),
        "count": outcome.count,
        "download_url": link.url,
        "expires_at": rfc3339(link.expires_at),
        "file_expires_at": rfc3339(ctx.now + time::Duration::days(app.settings.export_expiry_days)),
    })))
}

fn download_disposition(id: &ExportId, format: ExportFormat) -> String {
    s3::attachment_disposition(&format!("leads-{id}.{}", format.as_str()))
}

/// Streams the tenant's leads into `exports/<tenant>/<id>.<format>` and records the export.
pub async fn export_leads(
    app: &App,
    t: &TenantId,
    by: &UserId,
    export_id: &ExportId,
    format: ExportFormat,
    now: OffsetDateTime,
) -> anyhow::Result<ExportOutcome> {
    let object_key = keys::export_object(t, export_id, format.as_str());
    let disposition = download_disposition(export_id, format);
    let mut sink = ObjectSink::new(
        &app.s3,
        &app.buckets.exports,
        &object_key,
        format.content_type(),
        disposition,
    );
    match stream(app, t, format, &mut sink).await {
        Ok((writer, scanned, pages)) => {
            let (last, count, bytes) = writer.finish();
            // A single PutObject counts as one part.
            let parts = (sink.parts() + usize::from(!last.is_empty())).max(1);
            sink.finish(last).await?;
            let recorded = app
                .store
                .put_export_record(
                    t,
                    &ExportRecord {
                        export_id: export_id.clone(),
                        format: format.as_str(),
                        count,
                        object_key: object_key.clone(),
                        created_by: by.clone(),
                        created_at: now,
                        expires_at: now + time::Duration::days(app.settings.export_expiry_days),
                    },
                )
                .await;
            // The SDK gave up, but the record may have landed with its answer lost: then the
            // export is done. A 503 would make the client export again, a second file.
            if let Err(e) = recorded {
                shared_core::aws::landed_despite(e, || {
                    app.store.export_record_exists(t, export_id)
                })
                .await?;
            }
            tracing::info!(export_id = %export_id, count, scanned, pages, parts, "export completed");
            Ok(ExportOutcome {
                export_id: export_id.clone(),
                object_key,
                count,
                scanned,
                pages,
                parts,
                bytes,
            })
        }
        Err(e) => {
            sink.abort().await;
            Err(e)
        }
    }
}

/// Pages → serializer → parts. Returns the writer holding the tail, and what was read.
async fn stream(
    app: &App,
    t: &TenantId,
    format: ExportFormat,
    sink: &mut ObjectSink<'_>,
) -> anyhow::Result<(LeadWriter, u64, u64)> {
    let part = app.settings.export_part_bytes;
    // Room for a part and the page that tips it over, so the buffer never reallocates.
    let capacity = part + part / 4;
    let mut writer = LeadWriter::new(format, capacity);
    let mut cursor = None;
    let (mut scanned, mut pages) = (0u64, 0u64);
    loop {
        let page = app
            .store
            .leads_page(t, cursor.take(), app.settings.export_page_size)
            .await?;
        pages += 1;
        scanned += page.scanned;
        for lead in &page.leads {
            writer.write(lead)?;
        }
        let next = page.next;
        if let Some(bytes) = writer.take_part(part) {
            sink.put_part(bytes).await?;
            writer.reserve(capacity);
        }
        match next {
            Some(c) => cursor = Some(c),
            None => return Ok((writer, scanned, pages)),
        }
    }
}
