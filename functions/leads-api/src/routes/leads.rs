//! Leads: list (filters, signed cursors), read with everything under the lead, edit with
//! optimistic concurrency, delete with every item and object.

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared_core::domain::{Email, FormId, LeadId, Phone, UserId};
use shared_core::error::{AppError, FieldErrors};
use shared_core::http::header_str;
use shared_core::keys;
use shared_leads::forms::nullable;
use shared_leads::{
    actions, contact_text, held, restricted, AuditEntry, Change, Lead, LeadEdit, LeadFilter,
    RouteMove, StageChange,
};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

use super::param;
use crate::query::{next_cursor, Query};
use crate::{json_body, list as list_response, no_content, ok, with_etag, App, Ctx};

fn not_found() -> AppError {
    AppError::NotFound("lead_not_found")
}

pub(super) fn lead_id(ctx: &Ctx) -> Result<LeadId, AppError> {
    param(ctx, 0, |raw| LeadId::parse(raw).ok(), "lead_not_found")
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, AppError> {
    serde_json::to_value(v).map_err(|e| AppError::Internal(e.into()))
}

// ---------------------------------------------------------------- list

/// `2026-11-01T09:30:00Z` (any RFC 3339 offset, `+` sent as `%2B`) or a day, `2026-11-01`
/// (from its first second, or to its last, UTC).
fn parse_time(raw: &str, end_of_day: bool) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(raw, &Rfc3339) {
        return (1970..=9999).contains(&t.year()).then_some(t);
    }
    let day = time::Date::parse(raw, format_description!("[year]-[month]-[day]")).ok()?;
    let t = if end_of_day {
        day.with_hms(23, 59, 59).ok()?
    } else {
        day.midnight()
    };
    Some(t.assume_utc())
}

fn filter(q: &Query) -> Result<LeadFilter, AppError> {
    let mut errors = FieldErrors::new();
    let stage = q.get("stage").map(str::to_string);
    if stage.as_deref().is_some_and(|s| !shared_leads::is_slug(s)) {
        errors.insert("stage".into(), "is not a stage id".into());
    }
    let form = match q.get("form").map(FormId::parse) {
        Some(Err(_)) => {
            errors.insert("form".into(), "is not a form id".into());
            None
        }
        other => other.and_then(Result::ok),
    };
    let mut time = |name: &str, end: bool| match q.get(name).map(|raw| parse_time(raw, end)) {
        Some(None) => {
            errors.insert(
                name.into(),
                "must be an RFC 3339 time (2026-11-01T09:30:00Z) or a day (2026-11-01)".into(),
            );
            None
        }
        other => other.flatten(),
    };
    let created_from = time("created_from", false);
    let created_to = time("created_to", true);
    if let (Some(a), Some(b)) = (created_from, created_to) {
        if a > b {
            errors.insert("created_to".into(), "is before created_from".into());
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation {
            code: "invalid_query",
            message: "One or more query parameters are invalid.".into(),
            fields: errors,
        });
    }
    Ok(LeadFilter {
        stage,
        form,
        created_from,
        created_to,
    })
}

pub async fn list(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    let q = &ctx.query;
    q.allow(&[
        "limit",
        "cursor",
        "stage",
        "form",
        "created_from",
        "created_to",
        "email",
    ])?;
    let tenant = &ctx.caller.tenant_id;
    let limit = q.limit()?;
    let filter = filter(q)?;

    if let Some(raw) = q.get("email") {
        // Exact email: the blind index finds the (few) leads, the other filters apply to them.
        // One page holds them all; there is no cursor.
        let email = Email::parse(raw)
            .map_err(|_| Query::field_error("email", "is not an email address"))?;
        if q.get("cursor").is_some() {
            return Err(shared_leads::cursor::invalid());
        }
        let found = app
            .store
            .leads_by_email(tenant, &app.keys.email(&email))
            .await?;
        let items = found
            .iter()
            .filter(|l| filter.matches(l))
            .take(limit)
            .map(to_json)
            .collect::<Result<_, _>>()?;
        return Ok(list_response(items, None));
    }

    let scope = filter.scope();
    let start = q.start(app, tenant, &scope)?;
    let page = app.store.list_leads(tenant, &filter, limit, start).await?;
    let items = page.items.iter().map(to_json).collect::<Result<_, _>>()?;
    Ok(list_response(
        items,
        next_cursor(app, tenant, &scope, page.next),
    ))
}

// ---------------------------------------------------------------- read

pub async fn get(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    ctx.query.allow(&[])?;
    let detail = app
        .store
        .lead_detail(&ctx.caller.tenant_id, &lead_id(ctx)?)
        .await?
        .ok_or_else(not_found)?;
    let version = detail.lead.version;
    Ok(with_etag(ok(to_json(&detail)?), version))
}

// ---------------------------------------------------------------- edit

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    /// The version the edit was made on (or `If-Match`).
    #[serde(default)]
    version: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    company: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    phone: Option<Option<String>>,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    owner_user_id: Option<Option<String>>,
}

/// `If-Match: "3"` (or `W/"3"`, or `3`).
fn if_match(req: &Request) -> Result<Option<i64>, AppError> {
    let Some(raw) = header_str(req.headers(), "if-match") else {
        return Ok(None);
    };
    raw.trim_start_matches("W/")
        .trim_matches('"')
        .parse::<i64>()
        .map(Some)
        .map_err(|_| {
            AppError::validation(
                "invalid_if_match",
                "If-Match must carry the lead's version as its ETag gave it, e.g. \"3\".",
            )
        })
}

fn field(name: &str, message: &str) -> AppError {
    let mut f = FieldErrors::new();
    f.insert(name.into(), message.into());
    AppError::invalid_fields(f)
}

/// Only a real change counts: `Some` when `new` differs from `current`.
fn changed<T: PartialEq>(current: Option<T>, new: Option<T>) -> Change<T> {
    (current != new).then_some(new)
}

pub async fn patch(app: &App, ctx: &Ctx, req: &Request) -> Result<Response<Body>, AppError> {
    ctx.query.allow(&[])?;
    let id = lead_id(ctx)?;
    let tenant = &ctx.caller.tenant_id;
    let body: PatchBody = json_body(req)?;
    let version = match (body.version, if_match(req)?) {
        (Some(a), Some(b)) if a != b => {
            return Err(AppError::validation(
                "version_mismatch",
                "The body's version and If-Match name different versions.",
            ))
        }
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => {
            return Err(AppError::validation(
                "version_required",
                "Name the version you edited: `version` in the body or an If-Match header.",
            ))
        }
    };

    // Validate the body before any read.
    let mut errors = FieldErrors::new();
    let mut text = |name: &str, v: Option<Option<String>>| -> Change<String> {
        match v? {
            None => Some(None),
            Some(raw) => match contact_text(&raw) {
                Ok(t) => Some(Some(t)),
                Err(m) => {
                    errors.insert(name.into(), m.into());
                    None
                }
            },
        }
    };
    let name = text("name", body.name);
    let company = text("company", body.company);
    let email: Change<Email> = match body.email {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => Email::parse(&raw)
            .map_err(|m| errors.insert("email".into(), m.into()))
            .ok()
            .map(Some),
    };
    let phone: Change<Phone> = match body.phone {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => Phone::parse(&raw)
            .map_err(|m| errors.insert("phone".into(), m.into()))
            .ok()
            .map(Some),
    };
    let stage = body.stage.map(|s| s.trim().to_string());
    if stage.as_deref().is_some_and(|s| !shared_leads::is_slug(s)) {
        errors.insert("stage".into(), "is not a stage id".into());
    }
    let owner: Change<UserId> = match body.owner_user_id {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => UserId::parse(&raw)
            .map_err(|_| errors.insert("owner_user_id".into(), "is not a user id".into()))
            .ok()
            .map(Some),
    };
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors));
    }

    let current = app.store.lead(tenant, &id).await?.ok_or_else(not_found)?;
    let cur = &current.summary;
    if current.legal_hold {
        return Err(held());
    }
    if cur.restricted {
        return Err(restricted());
    }
    // One version behind, an edit whose every change is already the lead's state is this very
    // edit sent again (its answer was lost, or it was answered 503 after it landed), or another
    // member's identical change: either way the caller's intended state holds, so it is
    // answered as done, without a write. Any other stale version is a conflict.
    let resent = current.version == version + 1;
    if current.version != version && !resent {
        return Err(shared_leads::EditError::VersionConflict.into());
    }

    // Keep only real changes, and check those that need the tenant's data.
    let name = name.and_then(|v| changed(cur.name.clone(), v));
    let company = company.and_then(|v| changed(cur.company.clone(), v));
    // A new email or phone gets its blind index (dedupe, suppression, data-subject requests).
    let email = email.and_then(|v| {
        changed(
            cur.email.clone(),
            v.as_ref().map(|e| e.as_str().to_string()),
        )
        .map(|_| {
            v.map(|e| {
                let bidx = app.keys.email(&e);
                (e, bidx)
            })
        })
    });
    let phone = phone.and_then(|v| {
        changed(
            cur.phone.clone(),
            v.as_ref().map(|p| p.as_str().to_string()),
        )
        .map(|_| {
            v.map(|p| {
                let bidx = app.keys.phone(&p);
                (p, bidx)
            })
        })
    });
    let stage = stage.filter(|s| *s != cur.stage);
    if let Some(s) = &stage {
        if !app.store.pipeline(tenant).await?.contains(s) {
            return Err(field("stage", "is not a stage of your pipeline"));
        }
    }
    let owner = owner.and_then(|v| {
        changed(cur.owner_user_id.clone(), v.as_ref().map(|u| u.to_string())).map(|_| v)
    });
    if let Some(Some(u)) = &owner {
        if !app.store.is_member(tenant, u).await? {
            return Err(field("owner_user_id", "is not a member of your team"));
        }
    }

    let at = shared_core::clock::rfc3339(ctx.now);
    let actor = ctx.caller.user_id.to_string();
    let mut edit = LeadEdit {
        tenant: tenant.clone(),
        lead: id.clone(),
        expected_version: version,
        name,
        company,
        email,
        phone,
        owner,
        stage: stage.map(|to| StageChange {
            change_id: app.ids.new_id(ctx.now),
            from: cur.stage.clone(),
            to,
            actor_user_id: actor.clone(),
            at: at.clone(),
        }),
        audit: AuditEntry {
            entry_id: app.ids.new_id(ctx.now),
            action: actions::LEAD_UPDATED.into(),
            fields: vec![],
            actor_user_id: Some(actor),
            api_key_id: ctx.caller.api_key_id().map(|k| k.to_string()),
            at: at.clone(),
        },
        at: ctx.now,
        route_move: None,
    };
    // A new email (or, without one, phone) moves the address's route with the edit.
    let bidx_before = (
        cur.email
            .as_deref()
            .and_then(|e| Email::parse(e).ok())
            .map(|e| app.keys.email(&e)),
        cur.phone
            .as_deref()
            .and_then(|p| Phone::parse(p).ok())
            .map(|p| app.keys.phone(&p)),
    );
    let bidx_after = (
        match &edit.email {
            Some(v) => v.as_ref().map(|(_, b)| b.clone()),
            None => bidx_before.0.clone(),
        },
        match &edit.phone {
            Some(v) => v.as_ref().map(|(_, b)| b.clone()),
            None => bidx_before.1.clone(),
        },
    );
    edit.route_move = RouteMove::between(
        (bidx_before.0.as_deref(), bidx_before.1.as_deref()),
        (bidx_after.0.as_deref(), bidx_after.1.as_deref()),
        |b| app.keys.lead_id(tenant, b),
    );
    edit.audit.fields = edit.changed_fields();
    if resent && !edit.audit.fields.is_empty() {
        return Err(shared_leads::EditError::VersionConflict.into());
    }
    if edit.audit.fields.is_empty() {
        // Nothing changes: no write, no new version.
        return Ok(with_etag(ok(to_json(&current)?), current.version));
    }
    app.store.edit_lead(&edit).await?;
    tracing::info!(lead_id = %id, fields = ?edit.audit.fields, "lead updated");

    let updated = apply(current, &edit, at);
    let version = updated.version;
    Ok(with_etag(ok(to_json(&updated)?), version))
}

/// The lead as the edit left it (what a read would now return).
fn apply(mut lead: Lead, e: &LeadEdit, at: String) -> Lead {
    let s = &mut lead.summary;
    if let Some(v) = &e.name {
        s.name = v.clone();
    }
    if let Some(v) = &e.company {
        s.company = v.clone();
    }
    if let Some(v) = &e.email {
        s.email = v.as_ref().map(|(e, _)| e.as_str().to_string());
    }
    if let Some(v) = &e.phone {
        s.phone = v.as_ref().map(|(p, _)| p.as_str().to_string());
    }
    if let Some(v) = &e.owner {
        s.owner_user_id = v.as_ref().map(|u| u.to_string());
    }
    if let Some(sc) = &e.stage {
        s.stage = sc.to.clone();
    }
    lead.version += 1;
    lead.updated_at = Some(at);
    lead
}

// ---------------------------------------------------------------- delete

pub async fn delete(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    ctx.query.allow(&[])?;
    let id = lead_id(ctx)?;
    let tenant = &ctx.caller.tenant_id;
    let found = app
        .store
        .lead_keys(tenant, &id)
        .await?
        .ok_or_else(not_found)?;
    if found.held {
        return Err(held());
    }
    if found.restricted {
        // Restricted data stays stored (GDPR Art. 18) until the restriction is lifted.
        return Err(restricted());
    }
    // The decision is the conditional claim's, not the read's: a hold set since the Query
    // refuses the delete here, before anything is removed.
    app.store.claim_for_deletion(tenant, &id, ctx.now).await?;
    let item_keys = found.keys;
    // Objects first, items after, the lead item last: a failure at any step leaves the lead,
    // and repeating the request finishes the job.
    let objects = shared_core::s3::delete_prefix(
        &app.s3,
        &app.attachments_bucket,
        &keys::lead_objects_prefix(tenant, &id),
    )
    .await?;
    app.store
        .release_route(tenant, &id, found.route.as_ref())
        .await?;
    app.store.delete_lead_items(&item_keys).await?;
    tracing::info!(lead_id = %id, items = item_keys.len(), objects, "lead deleted");
    Ok(no_content())
}
