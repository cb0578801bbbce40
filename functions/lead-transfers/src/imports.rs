//! `POST /v1/imports/uploads` (a presigned PUT for the CSV) and `POST /v1/imports` (import it).
//!
//! An import is one synchronous run over one uploaded file:
//! 1. the file is read (at most 10 MiB) and checked whole: UTF-8, a valid header, at most
//!    `import_max_rows` rows; a refusal here writes nothing;
//! 2. the import record is claimed (`IMPORT#<id>`: an upload is imported once);
//! 3. rows are deduplicated within the file by the lead id the blind index derives (the same id
//!    a form submission of that person gets), then, 25 at a time, looked up: people on the
//!    suppression list are skipped; existing leads get only their blank contact fields filled
//!    (never overwritten; restricted leads are untouched); new leads are written with
//!    `BatchWriteItem`, carrying the batch's legal basis and the import id;
//! 4. the report is stored on the import record and returned; the uploaded file is deleted.

use std::collections::HashSet;

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared_core::domain::{LeadId, TenantId};
use shared_core::error::{AppError, FieldErrors};
use shared_core::keys;
use shared_leads::transfers::model::ImportTarget;
use shared_leads::transfers::store::BATCH_WRITE_MAX;
use shared_leads::transfers::{ImportId, ImportRecord, ImportReport, ImportedLead, LegalBasis};

use crate::csv_import::{self, Parsed};
use crate::{created, json_body, s3, App, Ctx};

pub const CSV_CONTENT_TYPE: &str = "text/csv";
pub const SOURCE_MAX_CHARS: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUpload {
    size: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewImport {
    upload_id: Option<String>,
    legal_basis: Option<String>,
    source: Option<String>,
}

pub async fn create_upload(
    app: &App,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: NewUpload = json_body(req)?;
    let max = app.settings.import_max_bytes;
    let size = match body.size {
        Some(n) if (1..=max).contains(&n) => n,
        Some(_) => return Err(field("size", format!("must be 1 to {max} bytes"))),
        None => return Err(field("size", "is required".into())),
    };
    let t = &ctx.caller.tenant_id;
    let id = ImportId::parse(&app.new_id("im")).map_err(anyhow::Error::new)?;
    let upload = s3::presign_put(
        &app.s3,
        &app.buckets.exports,
        &keys::import_upload_object(t, &id),
        CSV_CONTENT_TYPE,
        size,
        ctx.now,
        app.settings.import_upload_secs,
    )
    .await?;
    let mut out = json!({ "id": id.as_str(), "content_type": CSV_CONTENT_TYPE, "size": size });
    if let (Some(o), serde_json::Value::Object(u)) = (out.as_object_mut(), upload.upload_json()) {
        o.extend(u);
    }
    Ok(created(out))
}

fn field(name: &str, message: String) -> AppError {
    let mut f = FieldErrors::new();
    f.insert(name.into(), message);
    AppError::invalid_fields(f)
}

fn legal_bases() -> String {
    LegalBasis::ALL.map(LegalBasis::as_str).join(", ")
}

pub async fn run(app: &App, ctx: &Ctx, req: &Request) -> Result<Response<Body>, AppError> {
    let body: NewImport = json_body(req)?;
    let mut errors = FieldErrors::new();
    let upload_id = match body.upload_id.as_deref().map(ImportId::parse) {
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            errors.insert("upload_id".into(), "is not an upload id".into());
            None
        }
        None => {
            errors.insert("upload_id".into(), "is required".into());
            None
        }
    };
    let legal_basis = match body.legal_basis.as_deref().map(str::trim) {
        None | Some("") => {
            errors.insert(
                "legal_basis".into(),
                format!(
                    "is required: the lawful basis for processing these leads ({})",
                    legal_bases()
                ),
            );
            None
        }
        Some(raw) => {
            let b = LegalBasis::parse(raw);
            if b.is_none() {
                errors.insert(
                    "legal_basis".into(),
                    format!("must be one of {}", legal_bases()),
                );
            }
            b
        }
    };
    let source = match body.source.as_deref().map(str::trim) {
        None | Some("") => {
            errors.insert(
                "source".into(),
                "is required: where these contacts come from (it is told to the people concerned)"
                    .into(),
            );
            None
        }
        Some(s) if s.chars().count() > SOURCE_MAX_CHARS => {
            errors.insert(
                "source".into(),
                format!("is longer than {SOURCE_MAX_CHARS} characters"),
            );
            None
        }
        Some(s) if s.chars().any(char::is_control) => {
            errors.insert("source".into(), "contains control characters".into());
            None
        }
        Some(s) => Some(s.to_string()),
    };
    let (Some(import_id), Some(legal_basis), Some(source)) = (upload_id, legal_basis, source)
    else {
        return Err(AppError::invalid_fields(errors));
    };

    let t = &ctx.caller.tenant_id;
    // The key names the caller's tenant: another tenant's upload id finds nothing.
    let key = keys::import_upload_object(t, &import_id);
    let bytes = s3::read_capped(
        &app.s3,
        &app.buckets.exports,
        &key,
        app.settings.import_max_bytes,
    )
    .await?
    .ok_or(AppError::NotFound("upload_not_found"))?;
    let parsed = csv_import::parse(&bytes, app.settings.import_max_rows)?;
    drop(bytes);

    let record = ImportRecord {
        import_id,
        legal_basis,
        source,
        created_by: ctx.caller.user_id.clone(),
        created_at: ctx.now,
    };
    let stale = ctx.now - time::Duration::seconds(app.settings.import_stale_secs);
    let Some(claim) = app.store.claim_import(t, &record, stale).await? else {
        return Err(AppError::Conflict {
            code: "import_exists",
            message: "This upload has been imported already (or is being imported).",
        });
    };
    let ran = async {
        let report = import_rows(app, t, &record, parsed).await?;
        app.store
            .finish_import(t, &record.import_id, &report, app.clock.now())
            .await?;
        anyhow::Ok(report)
    }
    .await;
    let report = match ran {
        Ok(report) => report,
        Err(e) => {
            // Answered 503 when AWS was briefly unavailable: the claim goes, so the same
            // request sent again runs the import instead of meeting "import_exists".
            if let Err(release) = app.store.release_import(t, &record.import_id, &claim).await {
                tracing::warn!(error = %format!("{release:#}"), "import claim left to go stale");
            }
            return Err(e.into());
        }
    };
    if let Err(e) = s3::delete(&app.s3, &app.buckets.exports, &key).await {
        // The bucket's lifecycle deletes it within 7 days anyway.
        tracing::warn!(error = %format!("{e:#}"), "deleting the imported file failed");
    }
    tracing::info!(
        import_id = %record.import_id,
        rows = report.rows_total,
        imported = report.imported,
        updated = report.updated,
        duplicates = report.duplicates,
        suppressed = report.suppressed,
        invalid = report.invalid_count,
        "import completed"
    );
    let mut out = json!({
        "id": record.import_id.as_str(),
        "status": "completed",
        "legal_basis": record.legal_basis.as_str(),
        "created_at": crate::rfc3339(record.created_at),
    });
    if let (Some(o), Ok(serde_json::Value::Object(r))) =
        (out.as_object_mut(), serde_json::to_value(&report))
    {
        o.extend(r);
    }
    Ok(created(out))
}

/// Writes the valid rows of a parsed file and reports on every row.
pub async fn import_rows(
    app: &App,
    t: &TenantId,
    record: &ImportRecord,
    parsed: Parsed,
) -> anyhow::Result<ImportReport> {
    let mut report = ImportReport {
        rows_total: parsed.rows_total(),
        ..ImportReport::default()
    };
    for r in parsed.rejected {
        report.reject(r.row, r.errors);
    }
    report.invalid.sort_by_key(|r| r.row);

    // Dedupe within the file on the derived lead id: later rows of one person are duplicates.
    let mut seen = HashSet::new();
    let mut leads = Vec::with_capacity(parsed.rows.len());
    for row in parsed.rows {
        let email_bidx = row.contact.email.as_ref().map(|e| app.keys.email(e));
        let phone_bidx = row.contact.phone.as_ref().map(|p| app.keys.phone(p));
        let Some(contact_bidx) = email_bidx.as_deref().or(phone_bidx.as_deref()) else {
            continue; // cannot happen: a valid row has an email or a phone
        };
        let lead_id = app.keys.lead_id(t, contact_bidx);
        if !seen.insert(lead_id.clone()) {
            report.duplicates += 1;
            continue;
        }
        leads.push(ImportedLead {
            lead_id,
            contact: row.contact,
            email_bidx,
            phone_bidx,
            stage: row.stage,
            route: None,
        });
    }
    drop(seen);

    for chunk in leads.chunks(BATCH_WRITE_MAX) {
        let ids: Vec<_> = chunk
            .iter()
            .map(|l| (l.lead_id.clone(), l.route_key()))
            .collect();
        let bidx: Vec<String> = chunk
            .iter()
            .flat_map(|l| l.email_bidx.iter().chain(l.phone_bidx.iter()).cloned())
            .collect();
        let (targets, suppressed) = app.store.import_lookup(t, &ids, &bidx).await?;
        let mut new_leads = Vec::with_capacity(chunk.len());
        for lead in chunk {
            let is_suppressed = lead
                .email_bidx
                .iter()
                .chain(lead.phone_bidx.iter())
                .any(|b| suppressed.contains(b));
            if is_suppressed {
                report.suppressed += 1;
                continue;
            }
            match targets.get(&lead.lead_id) {
                Some(ImportTarget::Existing(id, found)) => {
                    let now = app.clock.now();
                    if app
                        .store
                        .fill_blanks(t, id, lead, *found, &record.import_id, now)
                        .await?
                    {
                        report.updated += 1;
                    } else {
                        report.duplicates += 1;
                    }
                }
                Some(ImportTarget::NewRouted) => {
                    // The address's derived lead now has another address: a lead of its own.
                    let now = app.clock.now();
                    let mut l = lead.clone();
                    l.lead_id = LeadId::parse(&format!("ld-{}", app.ids.new_id(now)))?;
                    l.route = l.route_key();
                    new_leads.push(l);
                }
                Some(ImportTarget::New) | None => new_leads.push(lead.clone()),
            }
        }
        app.store.put_imported_leads(t, record, &new_leads).await?;
        report.imported += new_leads.len() as u64;
    }
    Ok(report)
}
