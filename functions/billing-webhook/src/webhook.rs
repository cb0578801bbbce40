//! A provider's webhook: verify, read, decide, commit once, notify.
//!
//! - **Exactly once.** The event's record is put only if its id is new, in the same transaction
//!   as its effects; a redelivery (even a concurrent one) finds the record and answers 200
//!   without effect.
//! - **In order, per object.** A subscription's state, an invoice and a charge's refunds carry
//!   the `created` of the newest event applied to them; an older event is recorded as `stale`
//!   and changes nothing.
//! - **Tenant.** Named by the event (checkout reference, metadata), else by the remembered
//!   customer link. An invoice or subscription event of a customer not linked yet is answered
//!   `409 customer_not_linked` with nothing stored, so the provider retries it once the
//!   checkout that links it has arrived (events are not delivered in order).
//!
//! Cost: one `BatchGetItem` (event record, customer link, subscription state, plan) and one
//! `TransactWriteItems`; a redelivery stops after the read. A subscription event whose tenant
//! comes from the customer link reads the state with one more `GetItem`.

use std::time::Duration as StdDuration;

use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared_billing::ports::{
    BillingStore, Effect, EventCommitError, EventLookup, EventOutcome, EventWrite,
};
use shared_core::domain::TenantId;
use shared_core::error::AppError;
use shared_core::http::body_bytes;
use shared_mail::Mailer;
use time::OffsetDateTime;

use crate::decide::{resolve, Ctx, Decision, Resolution};
use crate::notices::{self, Notice};
use crate::provider::{EventKind, PaymentProvider, ProviderEvent};
use crate::{App, Directory};

/// Provider events are JSON documents of a few KiB; an invoice with many lines stays far below.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

const MAX_ATTEMPTS: usize = 4;

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Seen before: nothing done.
    Duplicate,
    Recorded(EventOutcome),
}

impl Received {
    pub fn as_str(self) -> &'static str {
        match self {
            Received::Duplicate => "duplicate",
            Received::Recorded(o) => o.as_str(),
        }
    }
}

/// `POST /v1/billing/webhooks/<provider>`.
pub async fn receive<S, M, D, P>(
    app: &App<S, M, D>,
    provider: &P,
    req: &Request,
) -> Result<Response<Body>, AppError>
where
    S: BillingStore,
    M: Mailer,
    D: Directory,
    P: PaymentProvider,
{
    let raw = body_bytes(req);
    if raw.len() > MAX_BODY_BYTES {
        return Err(AppError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let now = app.clock.now();
    provider.verify(req.headers(), raw, now)?;
    let event = provider.parse(raw)?;
    let span = tracing::Span::current();
    span.record("event_id", event.id.as_str());
    span.record("event_type", event.event_type.as_str());
    let received = process(app, provider.name(), &event, now).await?;
    tracing::info!(outcome = received.as_str(), "billing event handled");
    // Internal metrics (CloudWatch EMF): processed events by outcome, redeliveries apart.
    let (name, outcome) = match received {
        Received::Duplicate => ("WebhookDuplicates", None),
        Received::Recorded(o) => ("WebhooksProcessed", Some(o.as_str())),
    };
    let mut dims = vec![("Function", "billing-webhook")];
    dims.extend(outcome.map(|o| ("Outcome", o)));
    shared_core::telemetry::metric(name, 1.0, "Count", &dims);
    Ok(shared_core::http::json_response(
        200,
        &json!({ "received": true, "outcome": received.as_str() }),
    ))
}

/// Decides and commits one verified event.
pub async fn process<S, M, D>(
    app: &App<S, M, D>,
    provider: &str,
    ev: &ProviderEvent,
    now: OffsetDateTime,
) -> Result<Received, AppError>
where
    S: BillingStore,
    M: Mailer,
    D: Directory,
{
    let named = ev.kind.named_tenant().cloned();
    let subscription = match &ev.kind {
        EventKind::Subscription { subscription, .. } => Some(subscription),
        _ => None,
    };
    let lookup = EventLookup {
        provider: provider.to_string(),
        event_id: ev.id.clone(),
        customer_id: ev.kind.customer_id().cloned(),
        tenant: named.clone(),
        want_state: subscription.is_some(),
        price_id: subscription.and_then(|s| s.price_id.clone()),
    };
    for attempt in 1..=MAX_ATTEMPTS {
        let snap = app.store.load(&lookup).await?;
        if snap.already_recorded {
            return Ok(Received::Duplicate);
        }
        let resolution = resolve(named.as_ref(), snap.customer.as_ref());
        let state = match (&resolution, subscription.is_some()) {
            (Resolution::Tenant(t), true) if named.as_ref() == Some(t) => snap.state.clone(),
            (Resolution::Tenant(t), true) => app.store.billing_state(t).await?,
            _ => None,
        };
        let ctx = Ctx {
            provider,
            ev,
            now,
            link: snap.customer.as_ref(),
            state: state.as_ref(),
            plan: snap.plan.as_ref(),
        };
        let decision = ctx.decide(resolution)?;
        match commit(app, &ctx, decision).await? {
            Committed::Done(outcome, tenant, notice) => {
                if let Some(t) = &tenant {
                    tracing::Span::current().record("tenant_id", t.as_str());
                }
                if let Some(n) = notice {
                    notices::send(app, &n).await;
                }
                return Ok(Received::Recorded(outcome));
            }
            Committed::Duplicate => return Ok(Received::Duplicate),
            Committed::Reread => backoff(attempt).await,
        }
    }
    Err(AppError::Internal(anyhow::anyhow!(
        "billing state kept changing over {MAX_ATTEMPTS} attempts"
    )))
}

async fn backoff(attempt: usize) {
    tokio::time::sleep(StdDuration::from_millis(15 * attempt as u64)).await;
}

enum Committed {
    Done(EventOutcome, Option<TenantId>, Option<Notice>),
    Duplicate,
    /// The subscription state changed since it was read: decide again.
    Reread,
}

async fn commit<S, M, D>(
    app: &App<S, M, D>,
    ctx: &Ctx<'_>,
    mut d: Decision,
) -> Result<Committed, AppError>
where
    S: BillingStore,
    M: Mailer,
    D: Directory,
{
    for attempt in 1..=MAX_ATTEMPTS {
        let write = EventWrite {
            record: ctx.record(
                d.outcome,
                d.tenant.clone(),
                app.settings.event_retention_days,
            ),
            effects: d.effects.clone(),
        };
        match app.store.commit(&write).await {
            Ok(()) => return Ok(Committed::Done(d.outcome, d.tenant, d.notice)),
            Err(EventCommitError::AlreadyRecorded) => return Ok(Committed::Duplicate),
            Err(EventCommitError::EffectCondition(i)) => match d.effects.get(i) {
                Some(Effect::Subscription { .. }) => return Ok(Committed::Reread),
                Some(Effect::Invoice { .. } | Effect::Refund { .. }) => {
                    // A newer event of the same invoice or charge was applied meanwhile.
                    d.effects
                        .retain(|e| matches!(e, Effect::LinkCustomer { .. }));
                    d.outcome = EventOutcome::Stale;
                    d.notice = None;
                }
                Some(Effect::LinkCustomer { .. }) => {
                    tracing::error!(
                        "customer linked to another tenant meanwhile; event not applied"
                    );
                    d = Decision::record_only(EventOutcome::CustomerConflict, d.tenant);
                }
                Some(Effect::CustomerDeleted { .. }) => {
                    d = Decision::record_only(EventOutcome::Unlinked, d.tenant);
                }
                _ => {
                    return Err(AppError::Internal(anyhow::anyhow!(
                        "unconditional billing effect {i} failed its condition"
                    )))
                }
            },
            Err(EventCommitError::Conflict) => backoff(attempt).await,
            Err(EventCommitError::Store(e)) => return Err(AppError::Internal(e)),
        }
    }
    Err(AppError::Internal(anyhow::anyhow!(
        "billing event not committed after {MAX_ATTEMPTS} attempts"
    )))
}
