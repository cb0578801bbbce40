//! The route table: every route of the function with the permission it needs. There is no
//! public route: every one authenticates.

mod forms;
mod leads;
mod notes;
mod pipeline;
mod quarantine;
mod spam_settings;

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use shared_accounts::auth::permissions::Permission;
use shared_core::error::AppError;

use crate::{App, Ctx};

/// A route and the permission it needs.
pub type Route = shared_core::http::Route<Permission>;

use shared_core::http::route as r;

use Permission::*;

pub const ROUTES: &[Route] = &[
    r("list_forms", "GET", "/v1/forms", FormsRead),
    r("create_form", "POST", "/v1/forms", FormsWrite),
    r("get_form", "GET", "/v1/forms/{formId}", FormsRead),
    r("patch_form", "PATCH", "/v1/forms/{formId}", FormsWrite),
    r("delete_form", "DELETE", "/v1/forms/{formId}", FormsWrite),
    // A form's quarantine holds submissions (personal data): the leads' permissions.
    r(
        "list_quarantine",
        "GET",
        "/v1/forms/{formId}/quarantine",
        LeadsRead,
    ),
    r(
        "release_quarantined",
        "POST",
        "/v1/forms/{formId}/quarantine/{quarantineId}/release",
        LeadsWrite,
    ),
    r(
        "delete_quarantined",
        "DELETE",
        "/v1/forms/{formId}/quarantine/{quarantineId}",
        LeadsDelete,
    ),
    r("list_leads", "GET", "/v1/leads", LeadsRead),
    r("get_lead", "GET", "/v1/leads/{leadId}", LeadsRead),
    r("patch_lead", "PATCH", "/v1/leads/{leadId}", LeadsWrite),
    r("delete_lead", "DELETE", "/v1/leads/{leadId}", LeadsDelete),
    r("list_notes", "GET", "/v1/leads/{leadId}/notes", LeadsRead),
    r("add_note", "POST", "/v1/leads/{leadId}/notes", LeadsWrite),
    r(
        "delete_note",
        "DELETE",
        "/v1/leads/{leadId}/notes/{noteId}",
        LeadsWrite,
    ),
    // The tenant's spam blocklists, for every form: configuration, like a form's own lists.
    r("get_spam_settings", "GET", "/v1/spam-settings", FormsRead),
    r("put_spam_settings", "PUT", "/v1/spam-settings", FormsWrite),
    r("get_pipeline", "GET", "/v1/pipeline", LeadsRead),
    // The pipeline is workspace configuration, like forms: owners and admins.
    r("put_pipeline", "PUT", "/v1/pipeline", FormsWrite),
];

/// The route matching a method and path, with its path parameters in order.
pub fn find(method: &Method, path: &str) -> Result<(&'static Route, Vec<String>), AppError> {
    shared_core::http::match_route(ROUTES, method.as_str(), path, |r| (r.method, r.path))
}

pub async fn call(
    app: &App,
    name: &str,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    match name {
        "list_forms" => forms::list(app, ctx).await,
        "create_form" => forms::create(app, ctx, req).await,
        "get_form" => forms::get(app, ctx).await,
        "patch_form" => forms::patch(app, ctx, req).await,
        "delete_form" => forms::delete(app, ctx).await,
        "list_quarantine" => quarantine::list(app, ctx).await,
        "release_quarantined" => quarantine::release(app, ctx).await,
        "delete_quarantined" => quarantine::delete(app, ctx).await,
        "list_leads" => leads::list(app, ctx).await,
        "get_lead" => leads::get(app, ctx).await,
        "patch_lead" => leads::patch(app, ctx, req).await,
        "delete_lead" => leads::delete(app, ctx).await,
        "list_notes" => notes::list(app, ctx).await,
        "add_note" => notes::add(app, ctx, req).await,
        "delete_note" => notes::delete(app, ctx).await,
        "get_spam_settings" => spam_settings::get(app, ctx).await,
        "put_spam_settings" => spam_settings::put(app, ctx, req).await,
        "get_pipeline" => pipeline::get(app, ctx).await,
        "put_pipeline" => pipeline::put(app, ctx, req).await,
        _ => Err(AppError::NotFound("route_not_found")),
    }
}

/// Path parameter `i` as an id; anything that is not a well-formed id cannot exist (404).
fn param<T>(
    ctx: &Ctx,
    i: usize,
    parse: impl Fn(&str) -> Option<T>,
    not_found: &'static str,
) -> Result<T, AppError> {
    ctx.params
        .get(i)
        .and_then(|raw| parse(raw))
        .ok_or(AppError::NotFound(not_found))
}
