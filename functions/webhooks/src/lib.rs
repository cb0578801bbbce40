//! The `webhooks` function: a tenant's webhook endpoints (docs/outbound.md) — registration
//! (`https` only, never a private address), the signing secret (shown once, rotatable with an
//! overlap window in which both secrets sign), the delivery log and replays.
//!
//! Owners and admins only (`FormsWrite`: endpoints are workspace configuration, like forms and
//! the pipeline). Every key is built from the caller's tenant (from the access token), so
//! another tenant's endpoint ids do not exist here (404).
//!
//! Also a form's new-lead notification settings (`/v1/forms/{formId}/notifications`): who of the
//! members gets them (default: the owners), instant or as an hourly or daily digest.

pub mod config;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use shared_accounts::auth::caller::{authenticate, Caller};
use shared_accounts::auth::jwt::VerifyingKeys;
use shared_accounts::auth::permissions::Permission;
use shared_accounts::dynamo::{StoreError, Write};
use shared_core::clock::{rfc3339, Clock, IdGenerator};
use shared_core::dynamo::n;
use shared_core::error::AppError;
use shared_core::http::{error_response, json_response, route as r, Route as HttpRoute};
use shared_outbound::address::{self, LocalSinks, Refusal, ResolveFn};
use shared_outbound::dynamo::{self as store, Delivery, Endpoint, EndpointStatus};
use shared_outbound::events::EventType;
use shared_outbound::notify;
use time::OffsetDateTime;

pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Endpoints per tenant.
pub const MAX_ENDPOINTS: usize = 10;
/// How long the previous secret keeps signing after a rotation, by default and at most.
pub const DEFAULT_OVERLAP_HOURS: i64 = 24;
pub const MAX_OVERLAP_HOURS: i64 = 168;
/// Registration resolves the host: this long at most.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

pub struct App {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub tenants_table: String,
    pub ops_table: String,
    pub retry_queue_url: String,
    pub local: LocalSinks,
    pub resolve: ResolveFn,
    pub verifier: VerifyingKeys,
    /// The security log (a form's answers turned on or off in its notifications).
    pub accounts: shared_accounts::dynamo::AccountStore,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
}

type Route = HttpRoute<Permission>;

pub const ROUTES: &[Route] = &[
    r("list", "GET", "/v1/webhooks", Permission::FormsWrite),
    r("create", "POST", "/v1/webhooks", Permission::FormsWrite),
    r(
        "get",
        "GET",
        "/v1/webhooks/{webhookId}",
        Permission::FormsWrite,
    ),
    r(
        "patch",
        "PATCH",
        "/v1/webhooks/{webhookId}",
        Permission::FormsWrite,
    ),
    r(
        "delete",
        "DELETE",
        "/v1/webhooks/{webhookId}",
        Permission::FormsWrite,
    ),
    r(
        "rotate",
        "POST",
        "/v1/webhooks/{webhookId}/rotate-secret",
        Permission::FormsWrite,
    ),
    r(
        "deliveries",
        "GET",
        "/v1/webhooks/{webhookId}/deliveries",
        Permission::FormsWrite,
    ),
    r(
        "replay",
        "POST",
        "/v1/webhooks/{webhookId}/deliveries/{deliveryId}/replay",
        Permission::FormsWrite,
    ),
    r(
        "get_notifications",
        "GET",
        "/v1/forms/{formId}/notifications",
        Permission::FormsWrite,
    ),
    r(
        "put_notifications",
        "PUT",
        "/v1/forms/{formId}/notifications",
        Permission::FormsWrite,
    ),
];

struct Ctx {
    now: OffsetDateTime,
    caller: Caller,
    params: Vec<String>,
}

/// Handles one request: never panics on input, never 5xx for bad input.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let mut route_name = "";
    let mut tenant = String::new();
    let resp = match dispatch(app, &req, &mut route_name, &mut tenant).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::info!(
        status = resp.status().as_u16(),
        method = %req.method(),
        route = route_name,
        tenant_id = tenant.as_str(),
        "request completed"
    );
    resp
}

async fn dispatch(
    app: &App,
    req: &Request,
    route_name: &mut &'static str,
    tenant: &mut String,
) -> Result<Response<Body>, AppError> {
    let (route, params) =
        shared_core::http::match_route(ROUTES, req.method().as_str(), req.raw_http_path(), |r| {
            (r.method, r.path)
        })?;
    *route_name = route.name;
    let now = app.clock.now();
    let caller = authenticate(req.headers(), &app.verifier, &app.accounts, now).await?;
    *tenant = caller.tenant_id.to_string();
    caller.require(route.access)?;
    if *req.method() != Method::GET {
        shared_accounts::dynamo::require_live_for_write(
            &app.dynamo,
            &app.tenants_table,
            &caller,
            now,
        )
        .await?;
    }
    let ctx = Ctx {
        now,
        caller,
        params,
    };
    match route.name {
        "list" => list(app, &ctx).await,
        "create" => create(app, &ctx, req).await,
        "get" => get(app, &ctx).await,
        "patch" => patch(app, &ctx, req).await,
        "delete" => delete(app, &ctx).await,
        "rotate" => rotate(app, &ctx, req).await,
        "deliveries" => deliveries(app, &ctx).await,
        "replay" => replay(app, &ctx).await,
        "get_notifications" => get_notifications(app, &ctx).await,
        "put_notifications" => put_notifications(app, &ctx, req).await,
        _ => Err(AppError::NotFound("route_not_found")),
    }
}

fn json_body<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, AppError> {
    shared_core::http::json_body(req, MAX_BODY_BYTES)
}

/// A webhook id as this function makes them; anything else cannot exist.
fn webhook_id(ctx: &Ctx) -> Result<&str, AppError> {
    let id = ctx.params.first().map(String::as_str).unwrap_or("");
    let ok = id.len() <= 64
        && id.strip_prefix("wh-").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if ok {
        Ok(id)
    } else {
        Err(AppError::NotFound("webhook_not_found"))
    }
}

fn event_id(ctx: &Ctx) -> Result<&str, AppError> {
    let id = ctx.params.get(1).map(String::as_str).unwrap_or("");
    let ok = id
        .strip_prefix("evt_")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(id)
    } else {
        Err(AppError::NotFound("delivery_not_found"))
    }
}

fn view(e: &Endpoint) -> Value {
    let previous_until = e.previous_secret.as_ref().and_then(|(_, until)| {
        OffsetDateTime::from_unix_timestamp(*until)
            .ok()
            .map(rfc3339)
    });
    json!({
        "id": e.id,
        "url": e.url,
        "event_types": e.event_types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "enabled": e.enabled,
        "status": match e.status { EndpointStatus::Active => "active", EndpointStatus::Failing => "failing" },
        "failing_since": e.failing_since,
        "previous_secret_valid_until": previous_until,
        "created_at": e.created_at,
        "updated_at": e.updated_at,
    })
}

fn delivery_view(d: &Delivery) -> Value {
    json!({
        "id": d.event_id,
        "event_type": d.event_type,
        "created_at": d.created_at,
        "state": d.state,
        "attempts": d.attempts,
        "last_attempt_at": d.last_attempt_at,
        "last_status": d.last_status,
        "last_latency_ms": d.last_latency_ms,
        "last_error": d.last_error,
    })
}

/// A new signing secret: `whsec_` and 32 random bytes (base64url), shown once.
fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn invalid(field: &str, message: &str) -> AppError {
    let mut fields = shared_core::error::FieldErrors::new();
    fields.insert(field.to_string(), message.to_string());
    AppError::invalid_fields(fields)
}

fn event_types(raw: &[String]) -> Result<Vec<EventType>, AppError> {
    if raw.is_empty() || raw.len() > EventType::ALL.len() {
        return Err(invalid(
            "event_types",
            "between one and six event types are required",
        ));
    }
    let mut out = vec![];
    for t in raw {
        let Some(t) = EventType::parse(t) else {
            return Err(invalid("event_types", "an unknown event type"));
        };
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out.sort();
    Ok(out)
}

/// The URL's form, and every address its host resolves to now (delivery checks again).
async fn checked_url(app: &App, url: &str) -> Result<String, AppError> {
    match address::check(url, &app.local, &app.resolve, RESOLVE_TIMEOUT).await {
        Ok(_) => Ok(url.to_string()),
        Err(Refusal::Url(e)) => Err(invalid("url", e.message())),
        Err(Refusal::Unresolvable) => Err(AppError::validation(
            "webhook_url_unresolvable",
            "The URL's host name does not resolve.",
        )),
        Err(Refusal::Address) => Err(AppError::validation(
            "webhook_url_forbidden",
            "The URL's host resolves to a private, loopback, link-local or metadata address.",
        )),
    }
}

async fn list(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    let eps = store::endpoints(&app.dynamo, &app.tenants_table, &ctx.caller.tenant_id).await?;
    Ok(json_response(
        200,
        &json!({ "items": eps.iter().map(view).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: String,
    event_types: Vec<String>,
    #[serde(default, deserialize_with = "shared_core::http::not_null")]
    enabled: Option<bool>,
}

async fn create(app: &App, ctx: &Ctx, req: &Request) -> Result<Response<Body>, AppError> {
    let body: CreateBody = json_body(req)?;
    let types = event_types(&body.event_types)?;
    let url = checked_url(app, &body.url).await?;
    let t = &ctx.caller.tenant_id;
    let existing = store::endpoints(&app.dynamo, &app.tenants_table, t).await?;
    if existing.len() >= MAX_ENDPOINTS {
        return Err(limit_reached());
    }
    let now = rfc3339(ctx.now);
    let ep = Endpoint {
        tenant: t.clone(),
        id: format!("wh-{}", app.ids.new_id(ctx.now).to_ascii_lowercase()),
        url,
        event_types: types,
        enabled: body.enabled.unwrap_or(true),
        status: EndpointStatus::Active,
        secret: new_secret(),
        previous_secret: None,
        created_at: now.clone(),
        updated_at: now,
        failing_since: None,
        rev: 0,
    };
    // The count and the endpoint in one transaction: of requests racing for the last places,
    // only as many as fit are written. A tenant's first count starts from its endpoints as read.
    let writes = vec![
        (
            app.tenants_table.as_str(),
            Write::Update {
                key: store::webhook_count_key(t),
                update: "SET n = if_not_exists(n, :c) + :one".into(),
                condition: Some("attribute_not_exists(n) OR n < :max".into()),
                values: vec![
                    (":c".into(), n(existing.len() as i64)),
                    (":one".into(), n(1)),
                    (":max".into(), n(MAX_ENDPOINTS as i64)),
                ],
                names: vec![],
            },
        ),
        (
            app.tenants_table.as_str(),
            Write::Put(ep.to_item(), Some("attribute_not_exists(pk)")),
        ),
    ];
    match app.accounts.transact(writes).await {
        Ok(()) => {}
        Err(StoreError::Condition) => return Err(limit_reached()),
        Err(StoreError::Other(e)) => return Err(AppError::Internal(e.context("create webhook"))),
    }
    let mut v = view(&ep);
    // Shown once: it is never returned again.
    v["secret"] = json!(ep.secret);
    Ok(json_response(201, &v))
}

fn limit_reached() -> AppError {
    AppError::Conflict {
        code: "webhook_limit_reached",
        message: "A workspace has at most 10 webhook endpoints.",
    }
}

async fn load(app: &App, ctx: &Ctx) -> Result<Endpoint, AppError> {
    let id = webhook_id(ctx)?;
    store::endpoint(&app.dynamo, &app.tenants_table, &ctx.caller.tenant_id, id)
        .await?
        .ok_or(AppError::NotFound("webhook_not_found"))
}

async fn get(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    Ok(json_response(200, &view(&load(app, ctx).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default, deserialize_with = "shared_core::http::not_null")]
    url: Option<String>,
    #[serde(default, deserialize_with = "shared_core::http::not_null")]
    event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "shared_core::http::not_null")]
    enabled: Option<bool>,
}

/// Writes the endpoint back on the condition that it was not changed meanwhile.
async fn replace(app: &App, before: &Endpoint, after: &Endpoint) -> Result<(), AppError> {
    let r = app
        .dynamo
        .put_item()
        .table_name(&app.tenants_table)
        .set_item(Some(after.to_item()))
        .condition_expression("attribute_exists(pk) AND #rev = :r")
        .expression_attribute_names("#rev", "rev")
        .expression_attribute_values(":r", shared_core::dynamo::n(before.rev))
        .send()
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = e.into_service_error();
            if e.is_conditional_check_failed_exception() {
                Err(AppError::Conflict {
                    code: "webhook_changed",
                    message: "The endpoint changed meanwhile; read it and try again.",
                })
            } else {
                Err(AppError::Internal(
                    anyhow::Error::new(e).context("PutItem webhook"),
                ))
            }
        }
    }
}

async fn patch(app: &App, ctx: &Ctx, req: &Request) -> Result<Response<Body>, AppError> {
    let body: PatchBody = json_body(req)?;
    if body.url.is_none() && body.event_types.is_none() && body.enabled.is_none() {
        return Err(AppError::validation(
            "empty_patch",
            "Name at least one of url, event_types, enabled.",
        ));
    }
    let before = load(app, ctx).await?;
    let mut ep = before.clone();
    if let Some(types) = &body.event_types {
        ep.event_types = event_types(types)?;
    }
    if let Some(url) = &body.url {
        ep.url = checked_url(app, url).await?;
    }
    if let Some(enabled) = body.enabled {
        ep.enabled = enabled;
        if enabled {
            // Enabling again is the tenant's word that the endpoint works now.
            ep.status = EndpointStatus::Active;
            ep.failing_since = None;
        }
    }
    ep.updated_at = rfc3339(ctx.now);
    ep.rev = before.rev + 1;
    replace(app, &before, &ep).await?;
    Ok(json_response(200, &view(&ep)))
}

async fn delete(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    let id = webhook_id(ctx)?;
    let t = &ctx.caller.tenant_id;
    let existing = store::endpoints(&app.dynamo, &app.tenants_table, t).await?;
    if !existing.iter().any(|ep| ep.id == id) {
        return Err(AppError::NotFound("webhook_not_found"));
    }
    // The endpoint and the count in one transaction (see `create`); one already deleted by a
    // racing request is not counted down twice.
    let writes = vec![
        (
            app.tenants_table.as_str(),
            Write::Delete(store::webhook_key(t, id), Some("attribute_exists(pk)")),
        ),
        (
            app.tenants_table.as_str(),
            Write::Update {
                key: store::webhook_count_key(t),
                update: "SET n = if_not_exists(n, :c) - :one".into(),
                condition: None,
                values: vec![
                    (":c".into(), n(existing.len() as i64)),
                    (":one".into(), n(1)),
                ],
                names: vec![],
            },
        ),
    ];
    match app.accounts.transact(writes).await {
        Ok(()) => {}
        Err(StoreError::Condition) => return Err(AppError::NotFound("webhook_not_found")),
        Err(StoreError::Other(e)) => return Err(AppError::Internal(e.context("delete webhook"))),
    }
    let mut r = Response::new(Body::Empty);
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default, deserialize_with = "shared_core::http::not_null")]
    overlap_hours: Option<i64>,
}

async fn rotate(app: &App, ctx: &Ctx, req: &Request) -> Result<Response<Body>, AppError> {
    let body: RotateBody = match req.body() {
        Body::Empty => RotateBody::default(),
        Body::Text(t) if t.is_empty() => RotateBody::default(),
        _ => json_body(req)?,
    };
    let hours = body.overlap_hours.unwrap_or(DEFAULT_OVERLAP_HOURS);
    if !(0..=MAX_OVERLAP_HOURS).contains(&hours) {
        return Err(invalid("overlap_hours", "between 0 and 168 hours"));
    }
    let before = load(app, ctx).await?;
    let mut ep = before.clone();
    let until = ctx.now.unix_timestamp() + hours * 3600;
    ep.previous_secret = (hours > 0).then(|| (before.secret.clone(), until));
    ep.secret = new_secret();
    ep.updated_at = rfc3339(ctx.now);
    ep.rev = before.rev + 1;
    replace(app, &before, &ep).await?;
    let mut v = view(&ep);
    v["secret"] = json!(ep.secret);
    Ok(json_response(200, &v))
}

async fn deliveries(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    let ep = load(app, ctx).await?;
    let ds = store::deliveries(&app.dynamo, &app.ops_table, &ep.tenant, &ep.id).await?;
    Ok(json_response(
        200,
        &json!({ "items": ds.iter().take(100).map(delivery_view).collect::<Vec<_>>() }),
    ))
}

async fn replay(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    let ep = load(app, ctx).await?;
    let event = event_id(ctx)?;
    let found = store::restart_delivery(
        &app.dynamo,
        &app.ops_table,
        &ep.tenant,
        &ep.id,
        event,
        ctx.now.unix_timestamp(),
    )
    .await?;
    if !found {
        return Err(AppError::NotFound("delivery_not_found"));
    }
    // The outbound function attempts it from the queue, as any retry.
    let message = json!({
        "tenant_id": ep.tenant.as_str(),
        "webhook_id": ep.id,
        "event_id": event,
        "not_before": ctx.now.unix_timestamp(),
    });
    app.sqs
        .send_message()
        .queue_url(&app.retry_queue_url)
        .message_body(message.to_string())
        .send()
        .await
        .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("SendMessage replay")))?;
    let d = store::delivery(&app.dynamo, &app.ops_table, &ep.tenant, &ep.id, event)
        .await?
        .ok_or(AppError::NotFound("delivery_not_found"))?;
    Ok(json_response(202, &delivery_view(&d)))
}

// ---------------------------------------------------------------- notification settings

/// The caller's form (404 for another tenant's or an unknown one).
async fn own_form(app: &App, ctx: &Ctx) -> Result<String, AppError> {
    let raw = ctx.params.first().map(String::as_str).unwrap_or("");
    let form = shared_core::domain::FormId::parse(raw)
        .map_err(|_| AppError::NotFound("form_not_found"))?;
    let k = shared_core::keys::form(&form);
    let out = app
        .dynamo
        .get_item()
        .table_name(&app.tenants_table)
        .key("pk", shared_core::dynamo::s(&k.pk))
        .key("sk", shared_core::dynamo::s(&k.sk))
        .projection_expression("tenant_id, deleted_at")
        .send()
        .await
        .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("GetItem form")))?;
    let owner = out
        .item()
        .and_then(|it| it.get("tenant_id"))
        .and_then(|v| v.as_s().ok());
    // A deleted form is kept (its consent texts are proof) but is gone for its workspace.
    let deleted = out.item().is_some_and(|it| it.contains_key("deleted_at"));
    if !deleted && owner.map(String::as_str) == Some(ctx.caller.tenant_id.as_str()) {
        Ok(form.as_str().to_string())
    } else {
        Err(AppError::NotFound("form_not_found"))
    }
}

fn settings_view(st: &notify::Settings) -> Value {
    json!({
        "form_id": st.form_id,
        "enabled": st.enabled,
        "mode": st.mode.as_str(),
        "recipients": st.recipients,
        "include_answers": st.include_answers,
    })
}

async fn get_notifications(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    let form = own_form(app, ctx).await?;
    let st = notify::settings(
        &app.dynamo,
        &app.tenants_table,
        &ctx.caller.tenant_id,
        &form,
    )
    .await?;
    Ok(json_response(200, &settings_view(&st)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    enabled: bool,
    mode: String,
    #[serde(default)]
    recipients: Vec<String>,
    #[serde(default)]
    include_answers: bool,
}

async fn put_notifications(
    app: &App,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: SettingsBody = json_body(req)?;
    let form = own_form(app, ctx).await?;
    let Some(mode) = notify::Mode::parse(&body.mode) else {
        return Err(invalid("mode", "instant, hourly or daily"));
    };
    if body.recipients.len() > 20 {
        return Err(invalid("recipients", "at most 20 members"));
    }
    let t = &ctx.caller.tenant_id;
    let members = notify::members(&app.dynamo, &app.tenants_table, t).await?;
    let mut recipients: Vec<String> = vec![];
    for r in &body.recipients {
        if !members.iter().any(|m| &m.user_id == r) {
            return Err(invalid(
                "recipients",
                "every recipient must be a member of the team",
            ));
        }
        if !recipients.contains(r) {
            recipients.push(r.clone());
        }
    }
    let before = notify::settings(&app.dynamo, &app.tenants_table, t, &form).await?;
    let st = notify::Settings {
        form_id: form,
        enabled: body.enabled,
        mode,
        recipients,
        include_answers: body.include_answers,
    };
    if before.include_answers != st.include_answers {
        // Who sent a form's answers to the team's mailboxes, and when: in the security log.
        let mut e = shared_accounts::SecurityEvent::new(
            if st.include_answers {
                "notifications.answers_on"
            } else {
                "notifications.answers_off"
            },
            ctx.now,
        );
        e.tenant_id = Some(t.clone());
        e.actor_user_id = Some(ctx.caller.user_id.clone());
        e.session_id = ctx.caller.session_id().cloned();
        e.api_key_id = ctx.caller.api_key_id().cloned();
        e.detail = Some(format!("form {}", st.form_id));
        app.accounts
            .log_event(&e, &app.ids.new_id(ctx.now).to_ascii_lowercase())
            .await?;
    }
    app.dynamo
        .put_item()
        .table_name(&app.tenants_table)
        .set_item(Some(notify::settings_item(t, &st, &rfc3339(ctx.now))))
        .send()
        .await
        .map_err(|e| {
            AppError::Internal(anyhow::Error::new(e).context("PutItem notification settings"))
        })?;
    Ok(json_response(200, &settings_view(&st)))
}
