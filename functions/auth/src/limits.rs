//! The outbound-mail limits of the routes that mail an address their caller gives: sign-up,
//! password reset and invitations (`shared_mail::outbound`, docs/mail.md).
//!
//! A per-IP limit answers `429`: it counts the caller's own requests, whatever the addresses.
//! The per-address and per-tenant limits never change the answer: the route answers as always
//! and the email is just not sent, so a limit reveals nothing about whether an address has an
//! account.

use shared_core::domain::{Email, TenantId};
use shared_core::error::AppError;
use shared_mail::dynamo::MailGate;
use shared_mail::outbound::{HourWindow, MailKind, MailRoute};
use shared_mail::Mailer;

use crate::{App, Ctx};

impl<M: Mailer> App<M> {
    /// The counters, in the ops table.
    pub fn mail_gate(&self) -> MailGate {
        MailGate::new(self.store.client().clone(), self.store.tables().ops.clone())
    }

    /// Counts the request in its route's hour window of the client's IP (IPv6 by /64): `429`
    /// with the seconds to the window's end once the limit is reached. A request without a
    /// source IP (not through API Gateway) is not counted here.
    pub async fn limit_ip(&self, ctx: &Ctx, route: MailRoute) -> Result<(), AppError> {
        let Some(ip_hash) = self.ip_hash(ctx) else {
            return Ok(());
        };
        let limit = self.settings.mail.per_ip(route);
        if self
            .mail_gate()
            .count_ip(route, &ip_hash, limit, ctx.now)
            .await?
        {
            return Ok(());
        }
        let mut e = self.event("mail_limited_ip", ctx);
        e.detail = Some(route.as_str().to_string());
        self.log_event(e).await;
        Err(AppError::RateLimited {
            retry_after_secs: HourWindow::at(ctx.now).retry_after_secs,
        })
    }

    /// Whether the tenant may send one more email of `route` this hour (counted when it may).
    pub async fn tenant_may_mail(
        &self,
        ctx: &Ctx,
        route: MailRoute,
        tenant: &TenantId,
    ) -> Result<bool, AppError> {
        let ok = self
            .mail_gate()
            .count_tenant(
                route,
                tenant,
                self.settings.mail.per_tenant_per_hour,
                ctx.now,
            )
            .await?;
        if !ok {
            let mut e = self.event("mail_limited_tenant", ctx);
            e.tenant_id = Some(tenant.clone());
            e.detail = Some(route.as_str().to_string());
            self.log_event(e).await;
        }
        Ok(ok)
    }

    /// Whether one more email of `kind` may go to `to` (a send slot of the address is taken
    /// when it may): at most `per_recipient_per_hour` of a kind per address in any hour.
    pub async fn may_mail(&self, ctx: &Ctx, kind: MailKind, to: &Email) -> Result<bool, AppError> {
        let bidx = self.keys.email(to);
        let ok = self
            .mail_gate()
            .claim_recipient(
                kind,
                &bidx,
                self.settings.mail.per_recipient_per_hour,
                ctx.now,
            )
            .await?;
        if !ok {
            let mut e = self.event("mail_limited_recipient", ctx);
            e.email_hash = Some(bidx);
            e.detail = Some(kind.as_str().to_string());
            self.log_event(e).await;
        }
        Ok(ok)
    }
}
