//! The route table: every route of the function with the permission it needs (`None`: public).

mod account;
mod api_keys;
mod mfa;
mod session;
mod team;

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use shared_accounts::auth::permissions::Permission;
use shared_core::error::AppError;
use shared_mail::Mailer;

use crate::{App, Ctx};

/// A route and the permission it needs.
pub type Route = shared_core::http::Route<Option<Permission>>;

use shared_core::http::route as r;

use Permission::*;

pub const ROUTES: &[Route] = &[
    r("signup", "POST", "/v1/auth/signup", None),
    r("verify_email", "POST", "/v1/auth/verify-email", None),
    r("policy_versions", "GET", "/v1/auth/policy-versions", None),
    r("login", "POST", "/v1/auth/login", None),
    r("refresh", "POST", "/v1/auth/refresh", None),
    r("logout", "POST", "/v1/auth/logout", Some(SessionsManage)),
    r(
        "logout_all",
        "POST",
        "/v1/auth/logout-all",
        Some(SessionsManage),
    ),
    r(
        "list_sessions",
        "GET",
        "/v1/auth/sessions",
        Some(SessionsManage),
    ),
    r(
        "end_session",
        "DELETE",
        "/v1/auth/sessions/{sessionId}",
        Some(SessionsManage),
    ),
    r("step_up", "POST", "/v1/auth/step-up", Some(SessionsManage)),
    r("password_reset", "POST", "/v1/auth/password-reset", None),
    r(
        "password_reset_confirm",
        "POST",
        "/v1/auth/password-reset/confirm",
        None,
    ),
    r(
        "totp_setup",
        "POST",
        "/v1/auth/mfa/totp/setup",
        Some(MfaManage),
    ),
    r(
        "totp_confirm",
        "POST",
        "/v1/auth/mfa/totp/confirm",
        Some(MfaManage),
    ),
    r(
        "totp_disable",
        "DELETE",
        "/v1/auth/mfa/totp",
        Some(MfaManage),
    ),
    r(
        "accept_invitation",
        "POST",
        "/v1/auth/accept-invitation",
        None,
    ),
    r("get_me", "GET", "/v1/me", Some(ProfileRead)),
    r("patch_me", "PATCH", "/v1/me", Some(ProfileWrite)),
    r(
        "accept_policy",
        "POST",
        "/v1/me/policy-acceptance",
        Some(ProfileWrite),
    ),
    r(
        "change_password",
        "POST",
        "/v1/me/password",
        Some(ProfileWrite),
    ),
    r("invite", "POST", "/v1/team/invitations", Some(TeamInvite)),
    r("list_team", "GET", "/v1/team", Some(TeamRead)),
    r(
        "change_role",
        "PATCH",
        "/v1/team/{userId}",
        Some(TeamManage),
    ),
    r(
        "remove_member",
        "DELETE",
        "/v1/team/{userId}",
        Some(TeamManage),
    ),
    r("create_api_key", "POST", "/v1/api-keys", Some(TeamManage)),
    r("list_api_keys", "GET", "/v1/api-keys", Some(TeamManage)),
    r(
        "revoke_api_key",
        "DELETE",
        "/v1/api-keys/{apiKeyId}",
        Some(TeamManage),
    ),
    r("close_tenant", "DELETE", "/v1/tenant", Some(TenantClose)),
    r(
        "reactivate_tenant",
        "POST",
        "/v1/tenant/reactivate",
        Some(TenantClose),
    ),
];

/// Routes that change how the account is secured: besides an access token they need the
/// password re-entered in the last [`crate::STEP_UP_TTL_SECS`] (`POST /v1/auth/step-up`),
/// else `403 step_up_required`. So a stolen access token cannot enrol the thief's authenticator
/// or turn the second factor off, nor mint itself a long-lived API key. (No route changes the
/// email. API keys are created only at a login session, never with a key: [`API_KEY_ROUTES`].)
pub const STEP_UP_ROUTES: &[&str] = &[
    "totp_setup",
    "totp_confirm",
    "totp_disable",
    "create_api_key",
];

/// The routes of this function an API key may call (its role permitting). Every other
/// authenticated route here is about a person at a login session — their profile, password,
/// sessions, second factor, the team, the workspace, API keys themselves — and answers an API key
/// `403 api_key_not_allowed`, so a key can neither mint keys nor change who has access.
pub const API_KEY_ROUTES: &[&str] = &["list_team"];

/// The route matching a method and path, with its path parameters in order.
pub fn find(method: &Method, path: &str) -> Result<(&'static Route, Vec<String>), AppError> {
    shared_core::http::match_route(ROUTES, method.as_str(), path, |r| (r.method, r.path))
}

pub async fn call<M: Mailer>(
    app: &App<M>,
    name: &str,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    match name {
        "signup" => account::signup(app, ctx, req).await,
        "verify_email" => account::verify_email(app, ctx, req).await,
        "policy_versions" => account::policy_versions(app).await,
        "login" => session::login(app, ctx, req).await,
        "refresh" => session::refresh(app, ctx, req).await,
        "logout" => session::logout(app, ctx).await,
        "logout_all" => session::logout_all(app, ctx).await,
        "step_up" => session::step_up(app, ctx, req).await,
        "list_sessions" => session::list(app, ctx).await,
        "end_session" => session::end(app, ctx).await,
        "password_reset" => account::password_reset(app, ctx, req).await,
        "password_reset_confirm" => account::password_reset_confirm(app, ctx, req).await,
        "totp_setup" => mfa::setup(app, ctx).await,
        "totp_confirm" => mfa::confirm(app, ctx, req).await,
        "totp_disable" => mfa::disable(app, ctx, req).await,
        "accept_invitation" => team::accept_invitation(app, ctx, req).await,
        "get_me" => account::get_me(app, ctx).await,
        "patch_me" => account::patch_me(app, ctx, req).await,
        "change_password" => account::change_password(app, ctx, req).await,
        "accept_policy" => account::accept_policy(app, ctx, req).await,
        "invite" => team::invite(app, ctx, req).await,
        "list_team" => team::list(app, ctx).await,
        "change_role" => team::change_role(app, ctx, req).await,
        "remove_member" => team::remove(app, ctx).await,
        "create_api_key" => api_keys::create(app, ctx, req).await,
        "list_api_keys" => api_keys::list(app, ctx).await,
        "revoke_api_key" => api_keys::revoke(app, ctx).await,
        "close_tenant" => account::close_tenant(app, ctx, req).await,
        "reactivate_tenant" => account::reactivate_tenant(app, ctx).await,
        _ => Err(AppError::NotFound("route_not_found")),
    }
}
