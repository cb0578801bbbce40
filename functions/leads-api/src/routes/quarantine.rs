//! A form's quarantine (issue 19): submissions the spam defence kept apart, with its reasons;
//! the tenant releases one (it becomes a lead as if accepted when it arrived) or deletes it.
//! Every key is built from the caller's tenant: another tenant's form or submission is a 404.

use lambda_http::{Body, Response};
use serde_json::{json, Value};
use shared_core::clock::rfc3339;
use shared_core::domain::FormId;
use shared_core::error::AppError;
use shared_leads::intake::Outcome;
use shared_leads::ports::QuarantinedSubmission;

use super::param;
use crate::query::next_cursor;
use crate::{list as list_response, no_content, ok, App, Ctx};

fn form_id(ctx: &Ctx) -> Result<FormId, AppError> {
    param(ctx, 0, |raw| FormId::parse(raw).ok(), "form_not_found")
}

/// `qr-` and a ULID (26 Crockford base-32 characters, as ids are generated).
fn quarantine_id(ctx: &Ctx) -> Result<String, AppError> {
    param(
        ctx,
        1,
        |raw| {
            let ok = raw.len() == 29
                && raw.starts_with("qr-")
                && raw[3..].bytes().all(|b| b.is_ascii_alphanumeric());
            ok.then(|| raw.to_string())
        },
        "quarantine_not_found",
    )
}

/// The form must be the caller's: another tenant's form id is unknown here.
async fn own_form(app: &App, ctx: &Ctx) -> Result<FormId, AppError> {
    let id = form_id(ctx)?;
    app.store
        .form(&ctx.caller.tenant_id, &id)
        .await?
        .ok_or(AppError::NotFound("form_not_found"))?;
    Ok(id)
}

fn item_json(q: &QuarantinedSubmission) -> Value {
    json!({
        "id": q.quarantine_id,
        "form_id": q.form_id.as_str(),
        "received_at": rfc3339(q.received_at),
        "expires_at": rfc3339(q.expires_at),
        "score": q.score,
        "reasons": q.reasons,
        "fields": q.fields,
        "consents": q.consents,
        "technical": {
            "ip": q.technical.ip,
            "user_agent": q.technical.user_agent,
            "referrer": q.technical.referrer,
            "page_url": q.technical.page_url,
        },
    })
}

pub async fn list(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    ctx.query.allow(&["limit", "cursor"])?;
    let tenant = &ctx.caller.tenant_id;
    let form = own_form(app, ctx).await?;
    // A cursor is good for one form's list only.
    let scope = format!("quarantine:{form}");
    let limit = ctx.query.limit()?;
    let start = ctx.query.start(app, tenant, &scope)?;
    let page = app
        .intake
        .store()
        .quarantine_page(tenant, &form, limit, start, ctx.now)
        .await?;
    Ok(list_response(
        page.items.iter().map(item_json).collect(),
        next_cursor(app, tenant, &scope, page.next),
    ))
}

pub async fn release(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    ctx.query.allow(&[])?;
    let form = own_form(app, ctx).await?;
    let qid = quarantine_id(ctx)?;
    let outcome = app
        .intake
        .release(&ctx.caller.tenant_id, &form, &qid)
        .await?;
    let (lead_id, submission_id) = outcome.ids();
    tracing::info!(form_id = %form, lead_id = %lead_id, "quarantined submission released");
    Ok(ok(json!({
        "lead_id": lead_id.as_str(),
        "submission_id": submission_id.as_str(),
        "new_lead": matches!(outcome, Outcome::Accepted { new_lead: true, .. }),
    })))
}

pub async fn delete(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    ctx.query.allow(&[])?;
    let form = own_form(app, ctx).await?;
    let qid = quarantine_id(ctx)?;
    if !app
        .intake
        .store()
        .delete_quarantined(&ctx.caller.tenant_id, &form, &qid)
        .await?
    {
        return Err(AppError::NotFound("quarantine_not_found"));
    }
    Ok(no_content())
}
