//! The `leads-api` function: the lead workspace of a tenant's team — forms, leads, notes and the
//! pipeline. See `docs/leads-api.md`.
//!
//! Every route is declared once in [`routes::ROUTES`] with the permission it needs. The
//! dispatcher authenticates the access token or API key (the tenant comes from it and nothing
//! else), checks that permission, and for writes checks that the session is still live and that
//! the session and the token are under the user's current credential epoch (an API key has no
//! session: it was read consistently as it was authenticated). Handlers build
//! every key from the caller's tenant, so another tenant's ids simply do not exist (404).

pub mod config;
pub mod query;
pub mod routes;

use std::sync::Arc;

use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use shared_accounts::auth::caller::{authenticate, Caller};
use shared_accounts::auth::jwt::VerifyingKeys;
use shared_core::blind_index::BlindIndexKey;
use shared_core::clock::{Clock, IdGenerator};
use shared_core::error::AppError;
use shared_core::http::{error_response, json_response};
use shared_leads::dynamo::{DynamoIntakeStore, LeadsStore};
use shared_leads::intake::{Intake, IntakeSettings};
use time::OffsetDateTime;

use crate::query::Query;

/// Request bodies of this API are small JSON objects (a form definition is the largest).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub struct App {
    pub store: LeadsStore,
    pub s3: aws_sdk_s3::Client,
    pub attachments_bucket: String,
    /// Blind indexes (email lookups) and cursor signatures.
    pub keys: BlindIndexKey,
    pub verifier: VerifyingKeys,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    /// The HTTP API's public base URL, for the forms' embed snippets.
    pub api_base_url: String,
    /// Lead intake, for the forms' quarantines: listing, deleting and releasing (a release
    /// becomes a lead through intake's own decision and transaction).
    pub intake: Intake<DynamoIntakeStore>,
}

/// The intake a release goes through, over the same tables and the same billing policy as the
/// lead-intake function (its rate limits at their defaults: a release counts as one submission
/// of the form's minute, with no client IP).
pub fn release_intake(
    config: &config::Config,
    dynamo: aws_sdk_dynamodb::Client,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    key: BlindIndexKey,
) -> Intake<DynamoIntakeStore> {
    Intake::new(
        DynamoIntakeStore::new(dynamo, config.intake_tables.clone()),
        clock,
        ids,
        key,
        IntakeSettings {
            billing: config.billing.clone(),
            ..IntakeSettings::default()
        },
    )
}

impl App {
    /// A new id: `prefix-<ulid>` (ULIDs sort by creation).
    pub fn new_id(&self, prefix: &str, now: OffsetDateTime) -> String {
        format!("{prefix}-{}", self.ids.new_id(now))
    }
}

/// What a handler knows about the request besides its body.
pub struct Ctx {
    pub now: OffsetDateTime,
    pub caller: Caller,
    /// Path parameters of the matched route, in order.
    pub params: Vec<String>,
    pub query: Query,
}

/// What the completion log line says about a request: ids only.
#[derive(Default)]
struct Seen {
    route: &'static str,
    tenant: Option<String>,
    /// The API key the request was made with (its public id), if one.
    api_key: Option<String>,
}

/// Handles one request: never panics on input, never 5xx for bad input.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let mut seen = Seen::default();
    let resp = match dispatch(app, &req, &mut seen).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::info!(
        status = resp.status().as_u16(),
        method = %req.method(),
        route = seen.route,
        tenant_id = seen.tenant.as_deref().unwrap_or(""),
        api_key_id = seen.api_key.as_deref().unwrap_or(""),
        "request completed"
    );
    resp
}

async fn dispatch(app: &App, req: &Request, seen: &mut Seen) -> Result<Response<Body>, AppError> {
    let (route, params) = routes::find(req.method(), req.raw_http_path())?;
    seen.route = route.name;
    let now = app.clock.now();
    let caller = authenticate(req.headers(), &app.verifier, &app.store.api_keys(), now).await?;
    seen.tenant = Some(caller.tenant_id.to_string());
    seen.api_key = caller.api_key_id().map(|k| k.to_string());
    caller.require(route.access)?;
    if *req.method() != Method::GET {
        app.store.require_live_for_write(&caller, now).await?;
    }
    let ctx = Ctx {
        now,
        caller,
        params,
        query: Query::from_request(req)?,
    };
    routes::call(app, route.name, &ctx, req).await
}

/// Parses a JSON body into `T` (unknown fields refused); see [`shared_core::http::json_body`].
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, AppError> {
    shared_core::http::json_body(req, MAX_BODY_BYTES)
}

pub fn ok(body: serde_json::Value) -> Response<Body> {
    json_response(200, &body)
}

pub fn created(body: serde_json::Value) -> Response<Body> {
    json_response(201, &body)
}

pub fn no_content() -> Response<Body> {
    let mut r = Response::new(Body::Empty);
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// Adds `ETag: "<version>"`, which a client may send back as `If-Match`.
pub fn with_etag(mut resp: Response<Body>, version: i64) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// A list response: `{"items":[…],"next_cursor":"…"|null}`.
pub fn list(items: Vec<serde_json::Value>, next_cursor: Option<String>) -> Response<Body> {
    ok(serde_json::json!({ "items": items, "next_cursor": next_cursor }))
}
