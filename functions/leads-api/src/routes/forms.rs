//! Forms: create, list, read, edit, retire. The response carries the embed snippet.

use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use shared_core::domain::FormId;
use shared_core::error::AppError;
use shared_leads::embed::{embed_html, submit_url};
use shared_leads::forms::{FormDefinition, FormInput};

use super::param;
use crate::query::next_cursor;
use crate::{created, json_body, list as list_response, no_content, ok, App, Ctx};

const SCOPE: &str = "forms";

fn not_found() -> AppError {
    AppError::NotFound("form_not_found")
}

fn form_id(ctx: &Ctx) -> Result<FormId, AppError> {
    param(ctx, 0, |raw| FormId::parse(raw).ok(), "form_not_found")
}

/// A form as the API shows it; `embed` adds the snippet (single-form answers only).
fn form_json(app: &App, f: &FormDefinition, embed: bool) -> Value {
    let fields: Vec<Value> = f
        .fields
        .iter()
        .map(|x| {
            json!({
                "name": x.def.name,
                "type": x.def.kind,
                "required": x.def.required,
                "max_len": x.def.max_len(),
                "special_category": x.special_category,
            })
        })
        .collect();
    let mut v = json!({
        "id": f.form_id.as_str(),
        "name": f.name,
        "enabled": f.enabled,
        "fields": fields,
        "consents": f.consents,
        "consent_history": f.consent_history,
        "allowed_origins": f.allowed_origins,
        "redirect_url": f.redirect_url,
        "honeypot_field": f.honeypot_field,
        "special_category_basis": f.special_category_basis,
        "daily_cap": f.daily_cap,
        "spam": f.spam,
        "created_at": f.created_at,
        "updated_at": f.updated_at,
        "submit_url": submit_url(&app.api_base_url, f),
    });
    if embed {
        v["embed_html"] = json!(embed_html(f, &app.api_base_url));
    }
    v
}

pub async fn list(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    ctx.query.allow(&["limit", "cursor"])?;
    let tenant = &ctx.caller.tenant_id;
    let limit = ctx.query.limit()?;
    let start = ctx.query.start(app, tenant, SCOPE)?;
    let page = app.store.forms(tenant, limit, start).await?;
    Ok(list_response(
        page.items
            .iter()
            .map(|f| form_json(app, f, false))
            .collect(),
        next_cursor(app, tenant, SCOPE, page.next),
    ))
}

pub async fn create(app: &App, ctx: &Ctx, req: &Request) -> Result<Response<Body>, AppError> {
    ctx.query.allow(&[])?;
    let input: FormInput = json_body(req)?;
    let id = FormId::parse(&app.new_id("fm", ctx.now))
        .map_err(|e| AppError::Internal(anyhow::anyhow!("generated form id: {e}")))?;
    let form = FormDefinition::create(input, ctx.caller.tenant_id.clone(), id, ctx.now)?;
    app.store.create_form(&form).await?;
    tracing::info!(form_id = %form.form_id, "form created");
    Ok(created(form_json(app, &form, true)))
}

pub async fn get(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    ctx.query.allow(&[])?;
    let form = app
        .store
        .form(&ctx.caller.tenant_id, &form_id(ctx)?)
        .await?
        .ok_or_else(not_found)?;
    Ok(ok(form_json(app, &form, true)))
}

pub async fn patch(app: &App, ctx: &Ctx, req: &Request) -> Result<Response<Body>, AppError> {
    ctx.query.allow(&[])?;
    let id = form_id(ctx)?;
    let tenant = &ctx.caller.tenant_id;
    let current = app.store.form(tenant, &id).await?.ok_or_else(not_found)?;
    let input: FormInput = json_body(req)?;
    let next = current.apply(input, ctx.now)?;
    if !app.store.replace_form(&next, current.version).await? {
        // Retired or edited by someone else since it was read.
        return match app.store.form(tenant, &id).await? {
            None => Err(not_found()),
            Some(_) => Err(AppError::Conflict {
                code: "version_conflict",
                message:
                    "The form changed while you edited it; reload it and apply your change again.",
            }),
        };
    }
    Ok(ok(form_json(app, &next, true)))
}

pub async fn delete(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    ctx.query.allow(&[])?;
    let id = form_id(ctx)?;
    if !app
        .store
        .retire_form(&ctx.caller.tenant_id, &id, ctx.now)
        .await?
    {
        return Err(not_found());
    }
    tracing::info!(form_id = %id, "form retired");
    Ok(no_content())
}
