//! The `dsar` function: the lifecycle of a data-subject request (`docs/dsar.md`).
//!
//! - [`subject`]: filing (no account), verification by an emailed code, the signed status link;
//! - [`controller`]: a tenant's owners and admins: the queue, decisions, extensions, filing on a
//!   subject's behalf, lifting a restriction;
//! - [`unsubscribe`]: the one-click withdrawal link every platform email carries;
//! - [`downloads`]: the download links emailed to subjects (signed, expiring, redirected).
//!
//! Every route is declared once in [`ROUTES`] with who may call it. Authenticated routes take
//! the tenant from the verified access token only; a tenant's requests are a partition keyed by
//! its `TenantId`, so another tenant's request is simply not found (404). Bad input is a 4xx
//! JSON error, never a 5xx; logs carry ids and hashes, never an address.

pub mod config;
pub mod controller;
pub mod downloads;
pub mod limits;
pub mod subject;
pub mod unsubscribe;

use std::sync::Arc;

use lambda_http::http::Method;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use shared_accounts::auth::caller::{authenticate, Caller};
use shared_accounts::auth::jwt::VerifyingKeys;
use shared_accounts::auth::permissions::Permission;
use shared_accounts::dynamo::AccountStore;
use shared_core::blind_index::BlindIndexKey;
use shared_core::clock::{Clock, IdGenerator};
use shared_core::error::AppError;
use shared_core::http::error_response;
use shared_mail::Mailer;
use shared_privacy::dsar::job::JobDispatcher;
use shared_privacy::dsar::progress::Links;
use shared_privacy::dsar::store::DsarStore;
use time::OffsetDateTime;

pub use config::Settings;

/// Request bodies are small JSON objects.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub struct App<M: Mailer, D: JobDispatcher> {
    pub store: DsarStore,
    /// Sessions (live-session check of writes), the login index and users (account-data
    /// requests, opt-outs), a tenant's team (alerts).
    pub accounts: AccountStore,
    pub mailer: M,
    pub dispatcher: D,
    pub keys: BlindIndexKey,
    pub verifier: VerifyingKeys,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub links: Links,
    pub settings: Settings,
    pub downloads: downloads::Downloads,
}

impl<M: Mailer, D: JobDispatcher> App<M, D> {
    pub fn new_request_id(&self, now: OffsetDateTime) -> String {
        format!("dsr-{}", self.ids.new_id(now))
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The data subject or anyone: no account.
    Public,
    Authenticated(Permission),
}

/// A route and who may call it.
pub type Route = shared_core::http::Route<Access>;

use shared_core::http::route as r;

const READ: Access = Access::Authenticated(Permission::PrivacyRequestsRead);
const DECIDE: Access = Access::Authenticated(Permission::PrivacyRequestsDecide);

/// Every route of the function (template.yaml and docs/openapi.yaml list the same).
pub const ROUTES: &[Route] = &[
    r("file", "POST", "/v1/privacy/requests", Access::Public),
    r("list", "GET", "/v1/privacy/requests", READ),
    r(
        "on_behalf",
        "POST",
        "/v1/privacy/requests/on-behalf",
        DECIDE,
    ),
    r("get", "GET", "/v1/privacy/requests/{requestId}", READ),
    r(
        "verify",
        "POST",
        "/v1/privacy/requests/{requestId}/verify",
        Access::Public,
    ),
    r(
        "status",
        "GET",
        "/v1/privacy/requests/{requestId}/status",
        Access::Public,
    ),
    r(
        "approve",
        "POST",
        "/v1/privacy/requests/{requestId}/approve",
        DECIDE,
    ),
    r(
        "deny",
        "POST",
        "/v1/privacy/requests/{requestId}/deny",
        DECIDE,
    ),
    r(
        "extend",
        "POST",
        "/v1/privacy/requests/{requestId}/extend",
        DECIDE,
    ),
    r(
        "lift_restriction",
        "POST",
        "/v1/privacy/requests/{requestId}/lift-restriction",
        DECIDE,
    ),
    r(
        "compelling_grounds",
        "POST",
        "/v1/privacy/requests/{requestId}/compelling-grounds",
        DECIDE,
    ),
    r("download", "GET", "/v1/privacy/downloads", Access::Public),
    r(
        "unsubscribe_view",
        "GET",
        "/v1/privacy/unsubscribe",
        Access::Public,
    ),
    r(
        "unsubscribe",
        "POST",
        "/v1/privacy/unsubscribe",
        Access::Public,
    ),
];

pub fn find_route(method: &Method, path: &str) -> Result<(&'static Route, Vec<String>), AppError> {
    shared_core::http::match_route(ROUTES, method.as_str(), path, |r| (r.method, r.path))
}

/// What a handler knows besides the body.
pub struct Ctx {
    pub now: OffsetDateTime,
    /// `None` on public routes.
    pub caller: Option<Caller>,
    pub params: Vec<String>,
}

impl Ctx {
    pub fn caller(&self) -> Result<&Caller, AppError> {
        self.caller.as_ref().ok_or(AppError::Unauthorized {
            code: "unauthorized",
            message: "A valid access token is required.",
        })
    }

    /// The request id of the path, validated (ids are `dsr-` + a lowercase ULID).
    pub fn request_id(&self) -> Result<String, AppError> {
        let raw = self.params.first().map(String::as_str).unwrap_or("");
        let ok = raw.len() <= 64
            && raw.starts_with("dsr-")
            && raw[4..]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok && raw.len() > 4 {
            Ok(raw.to_string())
        } else {
            Err(AppError::NotFound("request_not_found"))
        }
    }
}

/// Handles one request: never panics on input, never 5xx for bad input.
pub async fn handle<M: Mailer, D: JobDispatcher>(app: &App<M, D>, req: Request) -> Response<Body> {
    let resp = match dispatch(app, &req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::info!(status = resp.status().as_u16(), method = %req.method(), "request completed");
    resp
}

async fn dispatch<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let (route, params) = find_route(req.method(), req.raw_http_path())?;
    tracing::Span::current().record("route", route.name);
    let now = app.clock.now();
    let caller = match route.access {
        Access::Public => None,
        Access::Authenticated(p) => {
            let caller = authenticate(req.headers(), &app.verifier, &app.accounts, now).await?;
            caller.require(p)?;
            tracing::Span::current().record("tenant_id", caller.tenant_id.as_str());
            if *req.method() != Method::GET {
                // Live, and opened under the user's current credential epoch.
                app.accounts.require_live_for_write(&caller, now).await?;
            }
            Some(caller)
        }
    };
    let ctx = Ctx {
        now,
        caller,
        params,
    };
    match route.name {
        "file" => subject::file(app, &ctx, req).await,
        "verify" => subject::verify(app, &ctx, req).await,
        "status" => subject::status(app, &ctx, req).await,
        "list" => controller::list(app, &ctx, req).await,
        "get" => controller::get(app, &ctx).await,
        "approve" => controller::approve(app, &ctx, req).await,
        "deny" => controller::deny(app, &ctx, req).await,
        "extend" => controller::extend(app, &ctx, req).await,
        "on_behalf" => controller::on_behalf(app, &ctx, req).await,
        "lift_restriction" => controller::lift_restriction(app, &ctx).await,
        "compelling_grounds" => controller::compelling_grounds(app, &ctx, req).await,
        "download" => {
            downloads::download(&app.downloads, &app.keys, query_param(req, "t"), now).await
        }
        "unsubscribe_view" => unsubscribe::view(app, req).await,
        "unsubscribe" => unsubscribe::withdraw(app, &ctx, req).await,
        _ => Err(AppError::NotFound("route_not_found")),
    }
}

/// Parses a JSON body into `T` (unknown fields refused); see [`shared_core::http::json_body`].
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, AppError> {
    shared_core::http::json_body(req, MAX_BODY_BYTES)
}

pub use shared_core::http::query_param;

pub fn json(status: u16, body: serde_json::Value) -> Response<Body> {
    shared_core::http::json_response(status, &body)
}

/// The answer of a request's lifecycle step: its id and the status it is in now.
pub fn request_status(
    code: u16,
    id: &str,
    status: shared_privacy::dsar::model::Status,
) -> Response<Body> {
    json(
        code,
        serde_json::json!({ "request_id": id, "status": status.as_str() }),
    )
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    shared_core::clock::rfc3339(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_with_their_parameters() {
        let (r, p) = find_route(&Method::POST, "/v1/privacy/requests/dsr-1/verify").unwrap();
        assert_eq!((r.name, p), ("verify", vec!["dsr-1".to_string()]));
        let (r, _) = find_route(&Method::POST, "/v1/privacy/requests/on-behalf").unwrap();
        assert_eq!(r.name, "on_behalf");
        let (r, _) = find_route(&Method::GET, "/v1/privacy/requests/dsr-2").unwrap();
        assert_eq!((r.name, r.access), ("get", READ));
        assert!(matches!(
            find_route(&Method::DELETE, "/v1/privacy/unsubscribe"),
            Err(AppError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            find_route(&Method::GET, "/v1/privacy/nothing"),
            Err(AppError::NotFound(_))
        ));
    }

    #[test]
    fn decisions_need_the_decide_permission() {
        for r in ROUTES {
            if [
                "approve",
                "deny",
                "extend",
                "on_behalf",
                "lift_restriction",
                "compelling_grounds",
            ]
            .contains(&r.name)
            {
                assert_eq!(r.access, DECIDE, "{}", r.name);
            }
        }
    }
}
