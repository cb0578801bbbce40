//! API keys of the tenant (`/v1/api-keys`): created by an owner or admin at a login session,
//! with a role at most the creator's, a name and an expiry; the key is answered once and only
//! its hash is kept; listed without it; revoked at once. See `docs/auth.md`, "API keys".

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use shared_accounts::api_keys::api_key_item;
use shared_accounts::auth::api_key::{self, ApiKey};
use shared_accounts::auth::permissions::Role;
use shared_accounts::dynamo::{StoreError, Write};
use shared_core::clock::rfc3339;
use shared_core::domain::{ApiKeyId, TenantId};
use shared_core::dynamo::timestamp;
use shared_core::error::{AppError, FieldErrors};
use shared_core::keys;
use shared_mail::Mailer;
use time::OffsetDateTime;

use super::account::text_field;
use crate::{created, json_body, no_content, ok, App, Ctx};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    role: String,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    expires_in_days: Option<i64>,
}

/// A key as the API shows it: never the key or its hash.
fn key_json(k: &ApiKey) -> Value {
    json!({
        "id": k.key_id.as_str(),
        "name": k.name,
        "prefix": api_key::PREFIX,
        "role": k.role.as_str(),
        "created_by": k.created_by.as_str(),
        "created_at": rfc3339(k.created_at),
        "expires_at": rfc3339(k.expires_at),
        "last_used_at": k.last_used_at.map(rfc3339),
        "revoked_at": k.revoked_at.map(rfc3339),
    })
}

fn not_found() -> AppError {
    AppError::NotFound("api_key_not_found")
}

pub async fn create<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: CreateBody = json_body(req)?;
    let caller = ctx.caller()?;
    let mut errors = FieldErrors::new();
    let name = text_field(&mut errors, "name", &body.name, 100);
    let role = Role::parse(&body.role);
    if role.is_none() {
        errors.insert(
            "role".into(),
            "must be owner, admin, member, viewer or billing".into(),
        );
    }
    let expires_at = match body
        .expires_at
        .as_deref()
        .map(|raw| OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339))
    {
        None => None,
        Some(Ok(at)) => Some(at),
        Some(Err(_)) => {
            errors.insert("expires_at".into(), "must be an RFC 3339 date-time".into());
            None
        }
    };
    let expiry = if errors.contains_key("expires_at") {
        None
    } else {
        match api_key::expiry(ctx.now, expires_at, body.expires_in_days) {
            Ok(at) => Some(at),
            Err(message) => {
                let field = if body.expires_at.is_some() && body.expires_in_days.is_none() {
                    "expires_at"
                } else {
                    "expires_in_days"
                };
                errors.insert(field.into(), message.into());
                None
            }
        }
    };
    let (Some(name), Some(role), Some(expires_at), true) = (name, role, expiry, errors.is_empty())
    else {
        return Err(AppError::invalid_fields(errors));
    };
    if !api_key::role_within(role, caller.role) {
        return Err(AppError::Forbidden {
            code: "api_key_role_too_high",
            message: "An API key's role can hold only permissions your own role has.",
        });
    }
    if live_keys(app, &caller.tenant_id, ctx.now).await? >= api_key::MAX_LIVE_KEYS {
        return Err(limit_reached());
    }
    let key_id = ApiKeyId::parse(&app.new_id("ak")).map_err(anyhow::Error::new)?;
    let (secret, hash) = api_key::issue(&caller.tenant_id, &caller.user_id, &key_id);
    let key = ApiKey {
        key_id,
        tenant_id: caller.tenant_id.clone(),
        name,
        role,
        created_by: caller.user_id.clone(),
        created_at: ctx.now,
        expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    let mut e = app.event("api_key_created", ctx);
    e.detail = Some(format!("{} role {}", key.key_id, role.as_str()));
    let t = app.store.tables().clone();
    app.store
        .transact(vec![
            (
                t.tenants.as_str(),
                Write::Put(api_key_item(&key, &hash), Some("attribute_not_exists(pk)")),
            ),
            (
                t.security_log.as_str(),
                Write::Put(app.store.event_item(&e, &app.ids.new_id(ctx.now)), None),
            ),
        ])
        .await
        .map_err(|e| match e {
            StoreError::Condition => AppError::Conflict {
                code: "api_key_exists",
                message: "Try again.",
            },
            StoreError::Other(e) => AppError::Internal(e),
        })?;
    // Creations racing for the last places all passed the count above: each counts again with
    // its own key written, and one that finds the workspace over the limit takes its key back
    // (never answered, so never used). Racing ones may all step back (each may try again); the
    // workspace never holds more than the limit.
    if live_keys(app, &caller.tenant_id, ctx.now).await? > api_key::MAX_LIVE_KEYS {
        let mut e = app.event("api_key_revoked", ctx);
        e.detail = Some(format!("{} over the limit", key.key_id));
        app.store
            .transact(vec![
                (
                    t.tenants.as_str(),
                    Write::Delete(keys::api_key(&caller.tenant_id, &key.key_id), None),
                ),
                (
                    t.security_log.as_str(),
                    Write::Put(app.store.event_item(&e, &app.ids.new_id(ctx.now)), None),
                ),
            ])
            .await
            .map_err(|e| match e {
                StoreError::Condition => AppError::Internal(anyhow::anyhow!("unconditional")),
                StoreError::Other(e) => AppError::Internal(e),
            })?;
        return Err(limit_reached());
    }
    let mut body = key_json(&key);
    body["key"] = Value::String(secret);
    Ok(created(body))
}

/// The workspace's keys neither revoked nor expired (one consistent Query of its partition).
async fn live_keys<M: Mailer>(
    app: &App<M>,
    tenant: &TenantId,
    now: OffsetDateTime,
) -> Result<usize, AppError> {
    Ok(app
        .store
        .api_keys(tenant)
        .await?
        .iter()
        .filter(|k| k.revoked_at.is_none() && k.expires_at > now)
        .count())
}

fn limit_reached() -> AppError {
    AppError::Conflict {
        code: "api_key_limit_reached",
        message: "The workspace has 100 live API keys: revoke one first.",
    }
}

pub async fn list<M: Mailer>(app: &App<M>, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    let caller = ctx.caller()?;
    let items: Vec<_> = app
        .store
        .api_keys(&caller.tenant_id)
        .await?
        .iter()
        .map(key_json)
        .collect();
    Ok(ok(json!({ "items": items, "next_cursor": null })))
}

/// Revokes a key of the caller's tenant (another tenant's is not found). Effective for the next
/// request: every use reads the key consistently. Revoking a revoked key changes nothing.
pub async fn revoke<M: Mailer>(app: &App<M>, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    let caller = ctx.caller()?;
    let key_id = ctx
        .params
        .first()
        .and_then(|p| ApiKeyId::parse(p).ok())
        .ok_or_else(not_found)?;
    let mut e = app.event("api_key_revoked", ctx);
    e.detail = Some(key_id.to_string());
    let t = app.store.tables().clone();
    let r = app
        .store
        .transact(vec![
            (
                t.tenants.as_str(),
                Write::Update {
                    key: keys::api_key(&caller.tenant_id, &key_id),
                    update: "SET revoked_at = :now, revoked_by = :by".into(),
                    condition: Some(
                        "attribute_exists(pk) AND attribute_not_exists(revoked_at)".into(),
                    ),
                    values: vec![
                        (":now".into(), timestamp(ctx.now)),
                        (
                            ":by".into(),
                            shared_core::dynamo::s(caller.user_id.as_str()),
                        ),
                    ],
                    names: vec![],
                },
            ),
            (
                t.security_log.as_str(),
                Write::Put(app.store.event_item(&e, &app.ids.new_id(ctx.now)), None),
            ),
        ])
        .await;
    match r {
        Ok(()) => Ok(no_content()),
        Err(StoreError::Condition) => match app.store.api_key(&caller.tenant_id, &key_id).await? {
            Some(k) if k.revoked_at.is_some() => Ok(no_content()),
            _ => Err(not_found()),
        },
        Err(StoreError::Other(e)) => Err(AppError::Internal(e)),
    }
}
