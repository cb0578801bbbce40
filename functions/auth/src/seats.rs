//! Seats: a tenant's plan limits its members (free tier: `FREE_TIER_SEATS`). An invitation is
//! refused with `402 seat_limit_reached` while the members already fill every seat. Pending
//! invitations are not counted (they are stored by the hash of their secret, not listable per
//! tenant); accepting one beyond the limit is possible, and the next invitation is refused.

use shared_billing::dynamo::read_billing_state;
use shared_billing::entitlements::seat_limit_reached;
use shared_core::domain::TenantId;
use shared_core::error::AppError;
use shared_mail::Mailer;
use time::OffsetDateTime;

use crate::App;

pub async fn ensure_seat_free<M: Mailer>(
    app: &App<M>,
    tenant: &TenantId,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let Some(table) = app.settings.billing_table.as_deref() else {
        return Ok(());
    };
    let state = read_billing_state(app.store.client(), table, tenant).await?;
    let limit = app.settings.billing.seat_limit(state.as_ref(), now);
    let members = app.store.team(tenant).await?.len();
    if members >= limit as usize {
        tracing::info!(members, limit, "invitation refused: no free seat");
        return Err(seat_limit_reached());
    }
    Ok(())
}
