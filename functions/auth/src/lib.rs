//! The `auth` function: accounts, sessions, roles, MFA, team and account closure.
//!
//! Every route is declared once in [`routes::ROUTES`] with the permission it needs; the
//! dispatcher authenticates, checks that permission, and for writes checks that the session is
//! still live (logout, password change and role changes take effect for writes at once; reads
//! trust the access token for its 15 minutes). See `docs/auth.md`.

pub mod config;
pub mod emails;
pub mod limits;
pub mod routes;
pub mod seats;
pub mod throttle;

use std::sync::Arc;

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde::de::DeserializeOwned;
use shared_accounts::auth::caller::{authenticate, Caller};
use shared_accounts::auth::jwt::{TokenSigner, VerifyingKeys};
use shared_accounts::dynamo::AccountStore;
use shared_core::blind_index::BlindIndexKey;
use shared_core::clock::{Clock, IdGenerator};
use shared_core::error::AppError;
use shared_core::http::{error_response, header_str, source_ip};
use shared_mail::Mailer;
use time::OffsetDateTime;

use crate::config::Settings;

/// Request bodies of this API are small JSON objects.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// How long a re-entered password (`POST /v1/auth/step-up`) opens the routes of
/// [`routes::STEP_UP_ROUTES`] to its session: 5 minutes.
pub const STEP_UP_TTL_SECS: i64 = 300;

pub struct App<M> {
    pub store: AccountStore,
    pub mailer: M,
    pub keys: BlindIndexKey,
    /// The private key access tokens are signed with: auth is the only function that has one.
    pub signer: TokenSigner,
    /// The public keys tokens are verified with (every function has them).
    pub verifier: VerifyingKeys,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub app_base_url: String,
    pub settings: Settings,
}

/// What a handler knows about the request besides its body.
pub struct Ctx {
    pub now: OffsetDateTime,
    pub caller: Option<Caller>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Path parameters of the matched route, in order.
    pub params: Vec<String>,
}

impl Ctx {
    pub fn caller(&self) -> Result<&Caller, AppError> {
        self.caller.as_ref().ok_or(AppError::Unauthorized {
            code: "unauthorized",
            message: "A valid access token is required.",
        })
    }
}

impl<M: Mailer> App<M> {
    pub fn new_id(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.ids.new_id(self.clock.now()))
    }

    pub fn ip_hash(&self, ctx: &Ctx) -> Option<String> {
        ctx.ip.as_deref().map(|ip| self.keys.ip(ip))
    }

    pub fn link(&self, path: &str, token: &str) -> String {
        format!("{}{path}?token={token}", self.app_base_url)
    }
}

/// Handles one request: never panics on input, never 5xx for bad input.
pub async fn handle<M: Mailer>(app: &App<M>, req: Request) -> Response<Body> {
    let resp = match dispatch(app, &req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::info!(status = resp.status().as_u16(), method = %req.method(), "request completed");
    resp
}

async fn dispatch<M: Mailer>(app: &App<M>, req: &Request) -> Result<Response<Body>, AppError> {
    let path = lambda_http::RequestExt::raw_http_path(req);
    let (route, params) = routes::find(req.method(), path)?;
    tracing::Span::current().record("route", route.name);
    let now = app.clock.now();
    let caller = match route.access {
        None => None,
        Some(p) => {
            let caller = authenticate(req.headers(), &app.verifier, &app.store, now).await?;
            caller.require(p)?;
            if !routes::API_KEY_ROUTES.contains(&route.name) {
                caller.require_session()?;
            }
            tracing::Span::current().record("tenant_id", caller.tenant_id.as_str());
            if *req.method() != Method::GET {
                require_live_session(app, &caller, now).await?;
            }
            if routes::STEP_UP_ROUTES.contains(&route.name) {
                require_step_up(app, &caller, now).await?;
            }
            Some(caller)
        }
    };
    let ctx = Ctx {
        now,
        caller,
        ip: source_ip(req),
        user_agent: header_str(req.headers(), "user-agent").map(|s| s.chars().take(512).collect()),
        params,
    };
    routes::call(app, route.name, &ctx, req).await
}

/// Writes need a session that is still live and opened under the user's current credential
/// epoch: one read of the session and the user, so a logout, a password change or reset, or a
/// role change stops writes at once even while an access token is unexpired.
async fn require_live_session<M: Mailer>(
    app: &App<M>,
    caller: &Caller,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    app.store.require_live_for_write(caller, now).await
}

/// The routes of [`routes::STEP_UP_ROUTES`] need the caller's session to have re-entered the
/// password in the last [`STEP_UP_TTL_SECS`] (one consistent read of the session).
async fn require_step_up<M: Mailer>(
    app: &App<M>,
    caller: &Caller,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let at = app.store.step_up_at(caller.require_session()?).await?;
    if step_up_is_recent(at, now) {
        Ok(())
    } else {
        Err(AppError::Forbidden {
            code: "step_up_required",
            message: "Enter your password again first (POST /v1/auth/step-up): this change needs \
                      one entered in the last 5 minutes.",
        })
    }
}

/// Whether a step-up made `at` still counts at `now`.
pub fn step_up_is_recent(at: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    at.is_some_and(|at| at <= now && now - at < time::Duration::seconds(STEP_UP_TTL_SECS))
}

/// Parses a JSON body into `T` (unknown fields refused); see [`shared_core::http::json_body`].
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, AppError> {
    shared_core::http::json_body(req, MAX_BODY_BYTES)
}

pub fn created(body: serde_json::Value) -> Response<Body> {
    shared_core::http::json_response(201, &body)
}

pub fn ok(body: serde_json::Value) -> Response<Body> {
    shared_core::http::json_response(200, &body)
}

pub fn accepted(body: serde_json::Value) -> Response<Body> {
    shared_core::http::json_response(202, &body)
}

pub fn no_content() -> Response<Body> {
    let mut r = Response::new(Body::Empty);
    *r.status_mut() = lambda_http::http::StatusCode::NO_CONTENT;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use time::Duration;

    #[test]
    fn a_step_up_counts_for_five_minutes() {
        let at = datetime!(2026-12-01 12:00 UTC);
        assert!(step_up_is_recent(Some(at), at));
        assert!(step_up_is_recent(Some(at), at + Duration::seconds(299)));
        assert!(!step_up_is_recent(Some(at), at + Duration::seconds(300)));
        assert!(
            !step_up_is_recent(Some(at), at - Duration::seconds(1)),
            "not from the future"
        );
        assert!(!step_up_is_recent(None, at));
    }
}
