//! The route table: every route of the function with the permission it needs. All are
//! authenticated; none is public.

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use shared_accounts::auth::permissions::Permission;
use shared_core::error::AppError;

use crate::{attachments, exports, imports, App, Ctx};

/// A route and the permission it needs.
pub type Route = shared_core::http::Route<Permission>;

use shared_core::http::route as r;

use Permission::*;

pub const ROUTES: &[Route] = &[
    r(
        "create_attachment",
        "POST",
        "/v1/leads/{leadId}/attachments",
        LeadsWrite,
    ),
    r(
        "list_attachments",
        "GET",
        "/v1/leads/{leadId}/attachments",
        LeadsRead,
    ),
    r(
        "download_attachment",
        "GET",
        "/v1/leads/{leadId}/attachments/{attachmentId}",
        LeadsRead,
    ),
    r(
        "create_import_upload",
        "POST",
        "/v1/imports/uploads",
        LeadsImport,
    ),
    r("run_import", "POST", "/v1/imports", LeadsImport),
    r("run_export", "POST", "/v1/exports", LeadsExport),
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
        "create_attachment" => attachments::create(app, ctx, req).await,
        "list_attachments" => attachments::list(app, ctx, req).await,
        "download_attachment" => attachments::download(app, ctx).await,
        "create_import_upload" => imports::create_upload(app, ctx, req).await,
        "run_import" => imports::run(app, ctx, req).await,
        "run_export" => exports::run(app, ctx, req).await,
        _ => Err(AppError::NotFound("route_not_found")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_with_their_parameters() {
        let (r, p) = find(&Method::GET, "/v1/leads/ld-1/attachments/at-2").unwrap();
        assert_eq!(r.name, "download_attachment");
        assert_eq!(p, ["ld-1", "at-2"]);
        let (r, _) = find(&Method::POST, "/v1/imports/uploads").unwrap();
        assert_eq!(r.access, LeadsImport);
        assert!(matches!(
            find(&Method::DELETE, "/v1/exports"),
            Err(AppError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            find(&Method::GET, "/v1/leads//attachments"),
            Err(AppError::NotFound(_))
        ));
    }
}
