//! The outbound-mail limits of the routes that mail an address their caller gives: a privacy
//! request filed by anyone (its code), or by a controller on a subject's behalf
//! (`shared_mail::outbound`, docs/mail.md).
//!
//! Filing keeps its own limits per client IP and per address ([`crate::subject::rate_limit`],
//! `429`: they count filings, whatever the address). On top, every code or confirmation email
//! takes one of the address's send slots: past them the request is filed and answered as
//! always, and the email is just not sent. Filing on behalf counts per client IP and per
//! tenant (`429`: the tenant's own volume, whatever the addresses).

use lambda_http::Request;
use shared_core::domain::{Email, TenantId};
use shared_core::error::AppError;
use shared_mail::dynamo::MailGate;
use shared_mail::outbound::{HourWindow, MailKind, MailRoute};
use shared_mail::Mailer;
use shared_privacy::dsar::job::JobDispatcher;
use time::OffsetDateTime;

use crate::App;

impl<M: Mailer, D: JobDispatcher> App<M, D> {
    /// The counters, in the ops table.
    pub fn mail_gate(&self) -> MailGate {
        MailGate::new(
            self.accounts.client().clone(),
            self.accounts.tables().ops.clone(),
        )
    }

    /// Whether one more privacy-request email may go to `to` (a send slot is taken if so).
    pub async fn may_mail(&self, to: &Email, now: OffsetDateTime) -> Result<bool, AppError> {
        let bidx = self.keys.email(to);
        let ok = self
            .mail_gate()
            .claim_recipient(
                MailKind::PrivacyRequest,
                &bidx,
                self.settings.mail.per_recipient_per_hour,
                now,
            )
            .await?;
        if !ok {
            tracing::info!(email_bidx = %bidx, "privacy request email not sent: the address's limit of the hour");
        }
        Ok(ok)
    }

    /// Counts a filing on behalf per client IP and per tenant: `429` past either limit.
    pub async fn limit_on_behalf(
        &self,
        req: &Request,
        tenant: &TenantId,
        now: OffsetDateTime,
    ) -> Result<(), AppError> {
        let route = MailRoute::PrivacyOnBehalf;
        let limited = AppError::RateLimited {
            retry_after_secs: HourWindow::at(now).retry_after_secs,
        };
        let gate = self.mail_gate();
        if let Some(ip) = shared_core::http::source_ip(req) {
            let ip_hash = self.keys.ip(&ip);
            if !gate
                .count_ip(route, &ip_hash, self.settings.mail.per_ip(route), now)
                .await?
            {
                tracing::info!(ip_hash = %ip_hash, "filing on behalf refused: the client's limit of the hour");
                return Err(limited);
            }
        }
        if !gate
            .count_tenant(route, tenant, self.settings.mail.per_tenant_per_hour, now)
            .await?
        {
            tracing::info!(tenant_id = %tenant, "filing on behalf refused: the tenant's limit of the hour");
            return Err(limited);
        }
        Ok(())
    }
}
