//! Self-serve billing: `POST /v1/billing/checkout` (a hosted checkout of a plan) and
//! `POST /v1/billing/portal` (the hosted customer portal: plan changes, payment method,
//! invoices, cancellation). Owner and billing roles (`BillingManage`). The tenant comes from the
//! verified token only.
//!
//! Nothing is written here: the provider's webhooks, once the user has paid or changed something
//! on the hosted page, are what change the tenant's state ([`crate::webhook`]). So a provider
//! failure (`502 payment_provider_unavailable`) leaves everything as it was.
//!
//! **One session per user action.** Each call carries an idempotency key, and the provider
//! answers a repeat of a key with the session it made first. The key is a hash of everything the
//! session is made of (tenant, price, customer, return URLs) and of either the client's
//! `Idempotency-Key` header, or, without one, the current time window: 10 minutes for a checkout
//! (its session stays open for 24 hours), 30 seconds for the portal (its session expires within
//! minutes if not visited, and a replayed answer would be an expired URL). So a double click, or a
//! client retrying, makes one session; the same plan chosen again minutes later reopens the same,
//! still open, checkout; a changed choice is a new key, never a key reused with other parameters
//! (which the provider refuses). A client that sends its own key per click is exact; without it,
//! two clicks that straddle a window boundary make two sessions, of which at most one checkout
//! is paid for (the second is refused `409 subscription_exists` once the first is).

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use shared_accounts::auth::caller::Caller;
use shared_billing::ports::BillingStore;
use shared_billing::{valid_plan_name, BillingInterval, BillingState};
use shared_core::error::AppError;
use shared_mail::Mailer;
use time::OffsetDateTime;

use crate::provider::{CheckoutSessionRequest, PaymentProvider, PortalSessionRequest};
use crate::{App, Directory};

/// `{ "plan": "pro", "interval": "month" }` and nothing else.
pub const MAX_BODY_BYTES: usize = 1024;
/// Without a client key, checkouts in the same window share a session (open for 24 hours).
pub const CHECKOUT_WINDOW_SECS: i64 = 600;
/// Without a client key, portal calls in the same window share a session: short, as a portal
/// session expires minutes after it is made unless visited.
pub const PORTAL_WINDOW_SECS: i64 = 30;
const MAX_CLIENT_KEY: usize = 255;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckoutBody {
    plan: String,
    interval: String,
}

/// The client's `Idempotency-Key`: 1 to 255 visible ASCII characters, or absent.
fn client_key(req: &Request) -> Result<Option<&str>, AppError> {
    match req.headers().get("idempotency-key").map(|v| v.as_bytes()) {
        None => Ok(None),
        Some(k)
            if !k.is_empty()
                && k.len() <= MAX_CLIENT_KEY
                && k.iter().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(std::str::from_utf8(k).ok())
        }
        Some(_) => Err(AppError::validation(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters.",
        )),
    }
}

/// The provider idempotency key of a session made of `parts`, for the client's key or, without
/// one, `now`'s window of `window_secs`. Parts are length-prefixed, so no two lists hash alike.
pub fn idempotency_key(
    kind: &str,
    parts: &[&str],
    client_key: Option<&str>,
    now: OffsetDateTime,
    window_secs: i64,
) -> String {
    let mut h = Sha256::new();
    let window = (now.unix_timestamp().div_euclid(window_secs.max(1))).to_string();
    let scope = match client_key {
        Some(k) => ["client", k],
        None => ["window", window.as_str()],
    };
    for p in [kind].iter().chain(parts).chain(scope.iter()) {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("lp-{kind}-{hex}")
}

/// The tenant's provider customer, when it has one with this provider.
fn customer_of(state: Option<&BillingState>, provider: &str) -> Option<shared_billing::ProviderId> {
    state
        .filter(|s| s.provider.as_deref() == Some(provider))
        .and_then(|s| s.customer_id.clone())
}

/// `POST /v1/billing/checkout`.
pub async fn checkout<S, M, D, P>(
    app: &App<S, M, D>,
    provider: &P,
    caller: &Caller,
    req: &Request,
    now: OffsetDateTime,
) -> Result<Response<Body>, AppError>
where
    S: BillingStore,
    M: Mailer,
    D: Directory,
    P: PaymentProvider,
{
    let body: CheckoutBody = shared_core::http::json_body(req, MAX_BODY_BYTES)?;
    let client_key = client_key(req)?;
    let mut fields = shared_core::error::FieldErrors::new();
    if !valid_plan_name(&body.plan) {
        fields.insert(
            "plan".into(),
            "must be a plan name: 1 to 40 lowercase letters, digits, '_' or '-'".into(),
        );
    }
    let interval = BillingInterval::parse(&body.interval);
    if interval.is_none() {
        fields.insert("interval".into(), "must be month or year".into());
    }
    let Some(interval) = interval.filter(|_| fields.is_empty()) else {
        return Err(AppError::invalid_fields(fields));
    };
    let tenant = &caller.tenant_id;
    let snap = app
        .store
        .checkout_lookup(tenant, provider.name(), &body.plan, interval)
        .await?;
    let Some(price) = snap.price else {
        return Err(AppError::validation(
            "unknown_plan",
            "There is no such plan with this billing interval.",
        ));
    };
    if let Some(state) = snap
        .state
        .as_ref()
        .filter(|s| s.subscription_id.is_some() && s.status.is_some_and(|st| st.is_live()))
    {
        tracing::info!(
            status = state.status.map(|s| s.as_str()),
            "checkout refused: a subscription is live"
        );
        return Err(AppError::Conflict {
            code: "subscription_exists",
            message: "The account already has a subscription: change its plan or cancel it in the billing portal (POST /v1/billing/portal).",
        });
    }
    let customer = customer_of(snap.state.as_ref(), provider.name());
    let urls = &app.settings.return_urls;
    let idempotency_key = idempotency_key(
        "checkout",
        &[
            tenant.as_str(),
            price.price_id.as_str(),
            customer.as_ref().map_or("", |c| c.as_str()),
            &urls.checkout_success,
            &urls.checkout_cancel,
        ],
        client_key,
        now,
        CHECKOUT_WINDOW_SECS,
    );
    let session = provider
        .create_checkout_session(&CheckoutSessionRequest {
            tenant: tenant.clone(),
            price_id: price.price_id.clone(),
            customer,
            success_url: urls.checkout_success.clone(),
            cancel_url: urls.checkout_cancel.clone(),
            idempotency_key,
        })
        .await?;
    tracing::info!(
        session_id = session.id.as_str(),
        plan = body.plan.as_str(),
        interval = interval.as_str(),
        "checkout session created"
    );
    Ok(shared_core::http::json_response(
        200,
        &json!({ "url": session.url }),
    ))
}

/// `POST /v1/billing/portal`. The request body, if any, is not read.
pub async fn portal<S, M, D, P>(
    app: &App<S, M, D>,
    provider: &P,
    caller: &Caller,
    req: &Request,
    now: OffsetDateTime,
) -> Result<Response<Body>, AppError>
where
    S: BillingStore,
    M: Mailer,
    D: Directory,
    P: PaymentProvider,
{
    let client_key = client_key(req)?;
    let tenant = &caller.tenant_id;
    let state = app.store.billing_state(tenant).await?;
    let Some(customer) = customer_of(state.as_ref(), provider.name()) else {
        return Err(AppError::Conflict {
            code: "no_billing_account",
            message: "The account has no billing account yet: subscribe to a plan first (POST /v1/billing/checkout).",
        });
    };
    let return_url = app.settings.return_urls.portal_return.clone();
    let idempotency_key = idempotency_key(
        "portal",
        &[tenant.as_str(), customer.as_str(), &return_url],
        client_key,
        now,
        PORTAL_WINDOW_SECS,
    );
    let session = provider
        .create_portal_session(&PortalSessionRequest {
            customer,
            return_url,
            idempotency_key,
        })
        .await?;
    tracing::info!(session_id = session.id.as_str(), "portal session created");
    Ok(shared_core::http::json_response(
        200,
        &json!({ "url": session.url }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn one_key_per_window_or_client_key_and_per_session_contents() {
        let t = datetime!(2026-11-29 12:00:01 UTC);
        let k = |parts: &[&str], client: Option<&str>, at| {
            idempotency_key("checkout", parts, client, at, CHECKOUT_WINDOW_SECS)
        };
        let base = k(&["tenant-a", "price_pro"], None, t);
        assert!(base.starts_with("lp-checkout-") && base.len() == "lp-checkout-".len() + 32);
        // A double click: same window, same key.
        assert_eq!(
            base,
            k(
                &["tenant-a", "price_pro"],
                None,
                t + time::Duration::seconds(9)
            )
        );
        // The next window, another plan, another tenant: another key.
        assert_ne!(
            base,
            k(
                &["tenant-a", "price_pro"],
                None,
                t + time::Duration::minutes(10)
            )
        );
        assert_ne!(base, k(&["tenant-a", "price_starter"], None, t));
        assert_ne!(base, k(&["tenant-b", "price_pro"], None, t));
        // Parts cannot run into each other.
        assert_ne!(k(&["ab", "c"], None, t), k(&["a", "bc"], None, t));
        // A client key holds across windows, and is scoped to the session's contents.
        let c = k(&["tenant-a", "price_pro"], Some("click-1"), t);
        assert_eq!(
            c,
            k(
                &["tenant-a", "price_pro"],
                Some("click-1"),
                t + time::Duration::hours(1)
            )
        );
        assert_ne!(c, k(&["tenant-a", "price_pro"], Some("click-2"), t));
        assert_ne!(c, k(&["tenant-b", "price_pro"], Some("click-1"), t));
        assert_ne!(c, base);
        let portal = |at| {
            idempotency_key(
                "portal",
                &["tenant-a", "cus_1"],
                None,
                at,
                PORTAL_WINDOW_SECS,
            )
        };
        assert_ne!(base, portal(t));
        // A portal session expires within minutes: its window is short.
        assert_eq!(portal(t), portal(t + time::Duration::seconds(20)));
        assert_ne!(portal(t), portal(t + time::Duration::seconds(40)));
    }
}
