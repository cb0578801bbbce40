//! The tenant's billing view: `GET /v1/billing/subscription` and `GET /v1/billing/invoices`
//! (owner, admin and billing roles). The tenant comes from the verified token only.

use lambda_http::{Body, Response};
use serde_json::{json, Value};
use shared_accounts::auth::caller::Caller;
use shared_billing::ports::BillingStore;
use shared_billing::{usage_month, InvoiceView, Standing, SubscriptionStatus};
use shared_core::clock::rfc3339;
use shared_core::error::AppError;
use shared_mail::Mailer;
use time::OffsetDateTime;

use crate::{App, Directory};

fn ts(t: Option<OffsetDateTime>) -> Value {
    t.map(|t| json!(rfc3339(t))).unwrap_or(Value::Null)
}

pub async fn subscription<S: BillingStore, M: Mailer, D: Directory>(
    app: &App<S, M, D>,
    caller: &Caller,
    now: OffsetDateTime,
) -> Result<Response<Body>, AppError> {
    let month = usage_month(now);
    let overview = app.store.overview(&caller.tenant_id, &month).await?;
    // A plan change in the running period was charged at once (the portal's "invoice prorations
    // immediately"): its invoice. One Query more, only for a tenant with a subscription.
    let proration = match overview
        .state
        .as_ref()
        .and_then(|s| s.subscription_id.as_ref())
    {
        Some(_) => app
            .store
            .invoices(&caller.tenant_id)
            .await?
            .into_iter()
            .find(|v| {
                v.invoice.billing_reason.as_deref() == Some("subscription_update")
                    && v.invoice.period_end.is_some_and(|end| end > now)
            })
            .map(|v| {
                let i = v.invoice;
                json!({
                    "invoice_id": i.invoice_id.as_str(),
                    "amount_due": i.amount_due,
                    "amount_paid": i.amount_paid,
                    "currency": i.currency,
                    "issued_at": rfc3339(i.issued_at),
                })
            }),
        None => None,
    };
    let policy = &app.settings.policy;
    let state = overview.state.as_ref();
    let standing = policy.standing(state, now);
    let entitlements = policy.entitlements(state, now);
    let quota = policy.submission_quota(state, now).unwrap_or(0);
    let used = overview.submissions_this_month;
    let subscribed = matches!(standing, Standing::Subscribed | Standing::Grace { .. });
    let body = json!({
        "plan": if subscribed { state.and_then(|s| s.plan.clone()).unwrap_or_else(|| "unknown".into()) } else { "free".into() },
        "status": state.and_then(|s| s.status).map(|s| s.as_str()),
        "standing": standing.as_str(),
        "grace_until": match standing { Standing::Grace { until } => json!(rfc3339(until)), _ => Value::Null },
        // Dunning: a payment failed and the provider is retrying (past_due), or gave up
        // (unpaid). The plan stops `grace_days` after it gave up (`grace_until`), or after the
        // paid period of a canceled subscription.
        "payment_failing": state.and_then(|s| s.status).is_some_and(|s| matches!(s, SubscriptionStatus::PastDue | SubscriptionStatus::Unpaid)),
        "grace_days": policy.grace.whole_days(),
        "current_period_end": ts(state.and_then(|s| s.current_period_end)),
        "cancel_at_period_end": state.is_some_and(|s| s.cancel_at_period_end),
        "cancel_at": ts(state.and_then(|s| s.cancel_at)),
        "canceled_at": ts(state.and_then(|s| s.canceled_at)),
        "trial_end": ts(state.and_then(|s| s.trial_end)),
        "provider": state.and_then(|s| s.provider.clone()),
        "proration": proration,
        "entitlements": entitlements,
        "usage": {
            "month": month,
            "submissions": used,
            "quota": quota,
            "remaining": quota.saturating_sub(used),
        },
    });
    Ok(shared_core::http::json_response(200, &body))
}

fn invoice_json(v: &InvoiceView) -> Value {
    let i = &v.invoice;
    json!({
        "invoice_id": i.invoice_id.as_str(),
        "provider": i.provider,
        "number": i.number,
        "status": i.status,
        "currency": i.currency,
        "amount_due": i.amount_due,
        "amount_paid": i.amount_paid,
        "amount_remaining": i.amount_remaining,
        "amount_refunded": v.amount_refunded(),
        "issued_at": rfc3339(i.issued_at),
        "due_at": ts(i.due_at),
        "paid_at": ts(i.paid_at),
        "period_start": ts(i.period_start),
        "period_end": ts(i.period_end),
        "hosted_invoice_url": i.hosted_invoice_url,
        "billing_reason": i.billing_reason,
        "payment_status": i.payment_status.map(|p| p.as_str()),
        "payments": v.payments.iter().map(|p| json!({
            "outcome": p.outcome.as_str(),
            "amount": p.amount,
            "currency": p.currency,
            "at": rfc3339(p.at),
            "attempt": p.attempt_count,
        })).collect::<Vec<_>>(),
        "refunds": v.refunds.iter().map(|r| json!({
            "charge_id": r.charge_id.as_str(),
            "amount_refunded": r.amount_refunded,
            "currency": r.currency,
            "fully_refunded": r.fully_refunded,
            "refunded_at": rfc3339(r.refunded_at),
        })).collect::<Vec<_>>(),
    })
}

pub async fn invoices<S: BillingStore, M: Mailer, D: Directory>(
    app: &App<S, M, D>,
    caller: &Caller,
) -> Result<Response<Body>, AppError> {
    let invoices = app.store.invoices(&caller.tenant_id).await?;
    let items: Vec<Value> = invoices.iter().map(invoice_json).collect();
    Ok(shared_core::http::json_response(
        200,
        &json!({ "items": items, "next_cursor": null }),
    ))
}
