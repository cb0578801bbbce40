//! Notes on a lead: add, list (newest first), delete (by their author, or an owner or admin).

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared_accounts::auth::permissions::Role;
use shared_core::error::AppError;
use shared_leads::{actions, held, is_slug, note_text, restricted, AuditEntry, Note};

use super::leads::lead_id;
use super::param;
use crate::query::next_cursor;
use crate::{created, json_body, list as list_response, no_content, App, Ctx};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    text: String,
}

fn to_json(n: &Note) -> Result<serde_json::Value, AppError> {
    serde_json::to_value(n).map_err(|e| AppError::Internal(e.into()))
}

fn audit(app: &App, ctx: &Ctx, action: &str) -> AuditEntry {
    AuditEntry {
        entry_id: app.ids.new_id(ctx.now),
        action: action.into(),
        fields: vec!["notes".into()],
        actor_user_id: Some(ctx.caller.user_id.to_string()),
        api_key_id: ctx.caller.api_key_id().map(|k| k.to_string()),
        at: shared_core::clock::rfc3339(ctx.now),
    }
}

pub async fn list(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    ctx.query.allow(&["limit", "cursor"])?;
    let tenant = &ctx.caller.tenant_id;
    let lead = lead_id(ctx)?;
    if app.store.lead(tenant, &lead).await?.is_none() {
        return Err(AppError::NotFound("lead_not_found"));
    }
    let scope = format!("notes|{lead}");
    let limit = ctx.query.limit()?;
    let start = ctx.query.start(app, tenant, &scope)?;
    let page = app.store.notes(tenant, &lead, limit, start).await?;
    let items = page.items.iter().map(to_json).collect::<Result<_, _>>()?;
    Ok(list_response(
        items,
        next_cursor(app, tenant, &scope, page.next),
    ))
}

pub async fn add(app: &App, ctx: &Ctx, req: &Request) -> Result<Response<Body>, AppError> {
    ctx.query.allow(&[])?;
    let lead = lead_id(ctx)?;
    let body: NoteBody = json_body(req)?;
    let note = Note {
        note_id: app.new_id("nt", ctx.now),
        text: note_text(&body.text)?,
        author_user_id: ctx.caller.user_id.to_string(),
        created_at: shared_core::clock::rfc3339(ctx.now),
    };
    let added = app
        .store
        .add_note(
            &ctx.caller.tenant_id,
            &lead,
            &note,
            &audit(app, ctx, actions::NOTE_ADDED),
        )
        .await;
    match added {
        Ok(()) => {}
        // The SDK gave up, but an attempt may have landed with its answer lost: the note (its
        // id is this request's own) exists exactly when the transaction did. A 503 would make
        // the client add it again.
        Err(shared_leads::EditError::Store(e)) => {
            shared_core::aws::landed_despite(e, || async {
                Ok(app
                    .store
                    .note(&ctx.caller.tenant_id, &lead, &note.note_id)
                    .await?
                    .is_some())
            })
            .await?
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(lead_id = %lead, note_id = %note.note_id, "note added");
    Ok(created(to_json(&note)?))
}

pub async fn delete(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    ctx.query.allow(&[])?;
    let tenant = &ctx.caller.tenant_id;
    let lead = lead_id(ctx)?;
    let note_id = param(
        ctx,
        1,
        |raw| is_slug(raw).then(|| raw.to_string()),
        "note_not_found",
    )?;
    let Some(note) = app.store.note(tenant, &lead, &note_id).await? else {
        return Err(AppError::NotFound("note_not_found"));
    };
    let may = note.author_user_id == ctx.caller.user_id.as_str()
        || matches!(ctx.caller.role, Role::Owner | Role::Admin);
    if !may {
        return Err(AppError::Forbidden {
            code: "not_note_author",
            message: "Only the note's author, an owner or an admin may delete it.",
        });
    }
    match app.store.lead(tenant, &lead).await? {
        Some(l) if l.legal_hold => return Err(held()),
        Some(l) if l.summary.restricted => return Err(restricted()),
        _ => {}
    }
    app.store
        .delete_note(
            tenant,
            &lead,
            &note_id,
            &audit(app, ctx, actions::NOTE_DELETED),
        )
        .await?;
    tracing::info!(lead_id = %lead, note_id = %note_id, "note deleted");
    Ok(no_content())
}
