//! The `lead-transfers` function: files attached to leads, CSV imports and CSV/JSON exports.
//!
//! Every route is declared once in [`routes::ROUTES`] with the permission it needs. The
//! dispatcher authenticates the access token (the tenant comes from it, never from the request),
//! checks the permission, and for writes checks that the session is still live, as the auth
//! function does. Handlers never answer 5xx for bad input. See `docs/lead-transfers.md`.

pub mod attachment_rules;
pub mod attachments;
pub mod config;
pub mod csv_import;
pub mod export_writer;
pub mod exports;
pub mod imports;
pub mod routes;
pub mod s3;

use std::sync::Arc;

use lambda_http::http::Method;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use shared_accounts::auth::caller::{authenticate, Caller};
use shared_accounts::auth::jwt::VerifyingKeys;
use shared_core::blind_index::BlindIndexKey;
use shared_core::clock::{Clock, IdGenerator};
use shared_core::error::AppError;
use shared_core::http::error_response;
use shared_leads::transfers::TransfersStore;
use time::OffsetDateTime;

pub use config::{Buckets, Settings};

/// Request bodies of this API are small JSON objects (files go straight to S3).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub struct App {
    pub store: TransfersStore,
    pub s3: aws_sdk_s3::Client,
    pub buckets: Buckets,
    pub keys: BlindIndexKey,
    pub verifier: VerifyingKeys,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub settings: Settings,
}

impl App {
    pub fn new_id(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.ids.new_id(self.clock.now()))
    }
}

/// What a handler knows about the request besides its body.
pub struct Ctx {
    pub now: OffsetDateTime,
    pub caller: Caller,
    /// Path parameters of the matched route, in order.
    pub params: Vec<String>,
}

/// Handles one request: never panics on input, never 5xx for bad input.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let resp = match dispatch(app, &req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::info!(status = resp.status().as_u16(), method = %req.method(), "request completed");
    resp
}

async fn dispatch(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let path = req.raw_http_path();
    let (route, params) = routes::find(req.method(), path)?;
    let now = app.clock.now();
    let caller = authenticate(req.headers(), &app.verifier, &app.store.api_keys(), now).await?;
    caller.require(route.access)?;
    tracing::Span::current().record("tenant_id", caller.tenant_id.as_str());
    if *req.method() != Method::GET {
        require_live_session(app, &caller, now).await?;
    }
    let ctx = Ctx {
        now,
        caller,
        params,
    };
    routes::call(app, route.name, &ctx, req).await
}

/// Writes need a session that is still live, and a session and a token issued under the user's
/// current credential epoch (one read of the session and the user), so a logout, a password
/// reset or change or a role change stops imports, exports and uploads at once even while an
/// access token is unexpired.
async fn require_live_session(
    app: &App,
    caller: &Caller,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    app.store.require_live_for_write(caller, now).await
}

/// Parses a JSON body into `T` (unknown fields refused); see [`shared_core::http::json_body`].
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, AppError> {
    shared_core::http::json_body(req, MAX_BODY_BYTES)
}

pub use shared_core::http::query_param;

pub fn created(body: serde_json::Value) -> Response<Body> {
    shared_core::http::json_response(201, &body)
}

pub fn ok(body: serde_json::Value) -> Response<Body> {
    shared_core::http::json_response(200, &body)
}

/// RFC 3339, as every timestamp of the API.
pub fn rfc3339(t: OffsetDateTime) -> String {
    shared_core::clock::rfc3339(t)
}
