//! The `billing-webhook` function: payment provider webhooks (Stripe), the tenant's subscription
//! state and billing records, the tenant's billing view, and the hosted checkout and customer
//! portal sessions a tenant pays and manages its subscription in. See `docs/billing.md`.
//!
//! Every route is declared once in [`ROUTES`] with the permission it needs (`None`: public, the
//! provider's signature is the authentication).

pub mod checkout;
pub mod config;
mod decide;
pub mod notices;
pub mod provider;
pub mod stripe;
pub mod view;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;

use lambda_http::{Body, Request, RequestExt, Response};
use shared_accounts::auth::caller::authenticate;
use shared_accounts::auth::jwt::VerifyingKeys;
use shared_accounts::auth::permissions::Permission;
use shared_accounts::dynamo::AccountStore;
use shared_accounts::User;
use shared_billing::ports::BillingStore;
use shared_core::clock::Clock;
use shared_core::domain::TenantId;
use shared_core::error::AppError;
use shared_core::http::error_response;
use shared_mail::Mailer;

use crate::config::Settings;
use crate::stripe::Stripe;

/// Who works for a tenant: the billing emails' recipients.
pub trait Directory: Send + Sync {
    fn team(&self, tenant: &TenantId) -> impl Future<Output = anyhow::Result<Vec<User>>> + Send;
}

impl Directory for AccountStore {
    async fn team(&self, tenant: &TenantId) -> anyhow::Result<Vec<User>> {
        AccountStore::team(self, tenant).await
    }
}

pub struct App<S, M, D> {
    pub store: S,
    pub mailer: M,
    pub directory: D,
    pub stripe: Stripe,
    pub verifier: VerifyingKeys,
    /// API keys, read from the tenants table (`None`: none accepted, in unit tests).
    pub api_keys: Option<shared_accounts::api_keys::DynamoApiKeys>,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
}

/// A route and the permission it needs (`None`: public, the signature is the authentication).
pub type Route = shared_core::http::Route<Option<Permission>>;

pub const ROUTES: &[Route] = &[
    shared_core::http::route(
        "stripe_webhook",
        "POST",
        "/v1/billing/webhooks/stripe",
        None,
    ),
    shared_core::http::route(
        "get_subscription",
        "GET",
        "/v1/billing/subscription",
        Some(Permission::BillingRead),
    ),
    shared_core::http::route(
        "list_invoices",
        "GET",
        "/v1/billing/invoices",
        Some(Permission::BillingRead),
    ),
    shared_core::http::route(
        "create_checkout",
        "POST",
        "/v1/billing/checkout",
        Some(Permission::BillingManage),
    ),
    shared_core::http::route(
        "create_portal",
        "POST",
        "/v1/billing/portal",
        Some(Permission::BillingManage),
    ),
];

fn find(method: &str, path: &str) -> Result<&'static Route, AppError> {
    Route::find(ROUTES, method, path).map(|(route, _)| route)
}

/// Handles one request: never panics on input, never 5xx for bad input.
pub async fn handle<S, M, D>(app: &App<S, M, D>, req: Request) -> Response<Body>
where
    S: BillingStore,
    M: Mailer,
    D: Directory,
{
    let span = tracing::info_span!(
        "billing",
        event_id = tracing::field::Empty,
        event_type = tracing::field::Empty,
        tenant_id = tracing::field::Empty
    );
    let resp = {
        use tracing::Instrument;
        match dispatch(app, &req).instrument(span).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        }
    };
    tracing::info!(status = resp.status().as_u16(), method = %req.method(), "request completed");
    resp
}

async fn dispatch<S, M, D>(app: &App<S, M, D>, req: &Request) -> Result<Response<Body>, AppError>
where
    S: BillingStore,
    M: Mailer,
    D: Directory,
{
    let route = find(req.method().as_str(), req.raw_http_path())?;
    let now = app.clock.now();
    let caller = match route.access {
        None => None,
        Some(p) => {
            let caller = authenticate(req.headers(), &app.verifier, &app.api_keys, now).await?;
            caller.require(p)?;
            tracing::Span::current().record("tenant_id", caller.tenant_id.as_str());
            Some(caller)
        }
    };
    match (route.name, caller.as_ref()) {
        ("stripe_webhook", _) => webhook::receive(app, &app.stripe, req).await,
        ("get_subscription", Some(c)) => view::subscription(app, c, now).await,
        ("list_invoices", Some(c)) => view::invoices(app, c).await,
        ("create_checkout", Some(c)) => checkout::checkout(app, &app.stripe, c, req, now).await,
        ("create_portal", Some(c)) => checkout::portal(app, &app.stripe, c, req, now).await,
        _ => Err(AppError::NotFound("route_not_found")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_found_by_method_and_path() {
        assert_eq!(
            find("POST", "/v1/billing/webhooks/stripe").unwrap().name,
            "stripe_webhook"
        );
        assert_eq!(
            find("GET", "/v1/billing/invoices/").unwrap().name,
            "list_invoices"
        );
        assert!(matches!(
            find("GET", "/v1/billing/webhooks/stripe"),
            Err(AppError::MethodNotAllowed { .. })
        ));
        assert_eq!(
            find("POST", "/v1/billing/checkout").unwrap().access,
            Some(Permission::BillingManage)
        );
        assert_eq!(
            find("POST", "/v1/billing/portal").unwrap().access,
            Some(Permission::BillingManage)
        );
        assert!(matches!(
            find("GET", "/v1/billing"),
            Err(AppError::NotFound(_))
        ));
    }
}
