//! Quota alerts: the email a tenant's owners get when this month's submissions reach 80 % and
//! 100 % of the quota. Intake decides when (exactly once per threshold and month, see
//! [`crate::intake`]); this module says what and to whom.
//!
//! The email names counts, the month and the billing page; never a lead, a visitor or an
//! address. It goes through the function's mailer, which adds the platform's one-click
//! unsubscribe headers like every platform email ([`shared_mail::WithUnsubscribe`]).

use crate::intake::{BoxFuture, QuotaAlert, QuotaAlerts};
use shared_accounts::auth::permissions::Role;
use shared_accounts::dynamo::AccountStore;
use shared_mail::email;
use shared_mail::{Mailer, OutgoingEmail};

/// The email of `alert` to `to`; `billing_url` is where the plan is changed.
pub fn alert_email(to: &str, alert: &QuotaAlert, billing_url: &str) -> OutgoingEmail {
    let QuotaAlert {
        month,
        percent,
        used,
        quota,
        ..
    } = alert;
    let (subject, next) = if *percent >= 100 {
        (
            "Your forms have used this month's submission quota".to_string(),
            format!(
                "Further submissions are refused until the month ends (UTC). To receive them, \
                 change your plan: {billing_url}"
            ),
        )
    } else {
        (
            format!("You have used {percent}% of this month's form submissions"),
            format!(
                "Once the quota is used, further submissions are refused until the month ends \
                 (UTC). You can change your plan ({billing_url}), or set a daily cap on a form \
                 (`daily_cap`) so that one day's flood cannot use the whole month."
            ),
        )
    };
    email(
        to,
        &subject,
        &format!(
            "Your workspace's forms have received {used} of the {quota} submissions of your plan \
             in {month} ({percent}% of the quota).\n\n{next}\n\n\
             Owners of the workspace get this email once a month at 80% and at 100%."
        ),
    )
}

/// Emails the tenant's owners (team members with the owner role).
pub struct MailedQuotaAlerts<M> {
    pub accounts: AccountStore,
    pub mailer: M,
    pub app_base_url: String,
}

impl<M: Mailer> MailedQuotaAlerts<M> {
    async fn send_alert(&self, alert: &QuotaAlert) -> anyhow::Result<()> {
        let owners: Vec<_> = self
            .accounts
            .team(&alert.tenant)
            .await?
            .into_iter()
            .filter(|u| u.role == Role::Owner)
            .collect();
        if owners.is_empty() {
            // Nobody to tell, now or on a retry: not a failure to send.
            tracing::warn!(
                percent = alert.percent,
                "quota alert: the tenant has no owner"
            );
            return Ok(());
        }
        let billing_url = format!("{}/billing", self.app_base_url.trim_end_matches('/'));
        let mut sent = 0;
        for owner in &owners {
            let mail = alert_email(owner.email.as_str(), alert, &billing_url);
            // Logged without the address on failure.
            if shared_mail::send(&self.mailer, &mail).await.is_ok() {
                sent += 1;
                tracing::info!(user_id = %owner.user_id, percent = alert.percent, "quota alert emailed");
            }
        }
        // One owner told is the alert sent: sending again would repeat it to the others.
        if sent == 0 {
            anyhow::bail!("no owner could be emailed");
        }
        Ok(())
    }
}

impl<M: Mailer> QuotaAlerts for MailedQuotaAlerts<M> {
    fn send<'a>(&'a self, alert: &'a QuotaAlert) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(self.send_alert(alert))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared_core::domain::TenantId;

    fn alert(percent: u8, used: u32) -> QuotaAlert {
        QuotaAlert {
            tenant: TenantId::parse("acme").unwrap(),
            month: "2026-11".into(),
            percent,
            used,
            quota: 100,
        }
    }

    #[test]
    fn the_emails_say_how_much_is_used_and_what_happens_next() {
        let url = "https://app.example.com/billing";
        let e = alert_email("owner@example.com", &alert(80, 80), url);
        assert_eq!(e.to, "owner@example.com");
        assert_eq!(
            e.subject,
            "You have used 80% of this month's form submissions"
        );
        assert!(e.text.contains("80 of the 100 submissions"), "{}", e.text);
        assert!(e.text.contains("2026-11") && e.text.contains(url));
        assert!(e.text.contains("daily cap"));
        assert!(e.html.contains("80 of the 100 submissions"));

        let e = alert_email("owner@example.com", &alert(100, 100), url);
        assert_eq!(
            e.subject,
            "Your forms have used this month's submission quota"
        );
        assert!(e.text.contains("refused until the month ends"));
        assert!(!e.text.contains("acme"), "ids are not the owner's business");
    }
}
