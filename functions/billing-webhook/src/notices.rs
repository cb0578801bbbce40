//! The emails billing events trigger. Templates live in `templates/` (text and HTML).
//!
//! - Payment failed (dunning): to the tenant's billing contacts (members with the `billing` role),
//!   or to the owner when it has none: the amount, the next retry, the billing page that opens the
//!   portal, and the grace period and what stops when it ends.
//! - Trial ending: to the owner.
//!
//! Sent after the event is committed, once (a redelivery is a duplicate and sends nothing). A
//! failure to send is logged, without the address, and does not fail the webhook: the provider
//! sends its own reminders too.

use shared_accounts::auth::permissions::Role;
use shared_accounts::User;
use shared_core::clock::rfc3339;
use shared_core::domain::TenantId;
use shared_mail::{render, Mailer, OutgoingEmail};
use time::OffsetDateTime;

use crate::{App, Directory};

#[derive(Debug, Clone)]
pub enum Notice {
    PaymentFailed {
        tenant: TenantId,
        amount: i64,
        currency: String,
        number: Option<String>,
        hosted_invoice_url: Option<String>,
        next_attempt: Option<OffsetDateTime>,
    },
    TrialWillEnd {
        tenant: TenantId,
        trial_end: Option<OffsetDateTime>,
        plan: Option<String>,
    },
}

struct Template {
    subject: &'static str,
    text: &'static str,
    html: &'static str,
}

macro_rules! template {
    ($name:literal, $subject:literal) => {
        Template {
            subject: $subject,
            text: include_str!(concat!("../templates/", $name, ".txt")),
            html: include_str!(concat!("../templates/", $name, ".html")),
        }
    };
}

const PAYMENT_FAILED: Template = template!("payment_failed", "Your payment failed");
const TRIAL_WILL_END: Template = template!("trial_will_end", "Your trial ends soon");

/// Currencies without a minor unit (ISO 4217 exponent 0) among those Stripe supports.
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// `2900, "eur"` -> `29.00 EUR`.
pub fn format_amount(minor: i64, currency: &str) -> String {
    let code = currency.to_ascii_uppercase();
    if ZERO_DECIMAL.contains(&currency) {
        return format!("{minor} {code}");
    }
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02} {code}", abs / 100, abs % 100)
}

fn day(t: OffsetDateTime) -> String {
    rfc3339(t).chars().take(10).collect()
}

/// The members an email about `notice` goes to.
fn recipients<'a>(notice: &Notice, team: &'a [User]) -> Vec<&'a User> {
    let with = |role: Role| -> Vec<&User> { team.iter().filter(|u| u.role == role).collect() };
    match notice {
        Notice::PaymentFailed { .. } => {
            let billing = with(Role::Billing);
            if billing.is_empty() {
                with(Role::Owner)
            } else {
                billing
            }
        }
        Notice::TrialWillEnd { .. } => with(Role::Owner),
    }
}

pub async fn send<S, M: Mailer, D: Directory>(app: &App<S, M, D>, notice: &Notice) {
    let tenant = match notice {
        Notice::PaymentFailed { tenant, .. } | Notice::TrialWillEnd { tenant, .. } => tenant,
    };
    let team = match app.directory.team(tenant).await {
        Ok(team) => team,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "billing email not sent: team not read");
            return;
        }
    };
    let billing_url = format!("{}/billing", app.settings.app_base_url);
    // The app's billing page, where "Manage billing" opens a portal session after sign-in: a
    // portal session's own URL expires within minutes and signs its holder in as the customer,
    // so one is never emailed.
    let portal_url = app.settings.return_urls.portal_return.clone();
    let policy = &app.settings.policy;
    let (template, vars): (&Template, Vec<(&str, String)>) = match notice {
        Notice::PaymentFailed {
            amount,
            currency,
            number,
            hosted_invoice_url,
            next_attempt,
            ..
        } => (
            &PAYMENT_FAILED,
            vec![
                ("amount", format_amount(*amount, currency)),
                (
                    "invoice_number",
                    number.clone().unwrap_or_else(|| "(draft)".into()),
                ),
                (
                    "retry_line",
                    match next_attempt {
                        Some(t) => format!("We will try again on {}.", day(*t)),
                        None => "We will not retry automatically.".into(),
                    },
                ),
                (
                    "invoice_url",
                    hosted_invoice_url
                        .clone()
                        .unwrap_or_else(|| portal_url.clone()),
                ),
                ("portal_url", portal_url.clone()),
                ("grace_days", policy.grace.whole_days().to_string()),
                ("free_seats", policy.free_tier.seats.to_string()),
            ],
        ),
        Notice::TrialWillEnd {
            trial_end, plan, ..
        } => (
            &TRIAL_WILL_END,
            vec![
                ("plan", plan.clone().unwrap_or_else(|| "current".into())),
                (
                    "trial_end",
                    trial_end.map(day).unwrap_or_else(|| "soon".into()),
                ),
                ("billing_url", billing_url.clone()),
            ],
        ),
    };
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for user in recipients(notice, &team) {
        let email = OutgoingEmail {
            to: user.email.as_str().to_string(),
            subject: template.subject.to_string(),
            text: render(template.text, &vars, false),
            html: render(template.html, &vars, true),
            headers: vec![],
        };
        match app.mailer.send(&email).await {
            Ok(()) => tracing::info!(
                user_id = user.user_id.as_str(),
                subject = template.subject,
                "billing email sent"
            ),
            // Only the outermost context: the provider's message could name the address.
            Err(e) => tracing::error!(
                error = %e,
                user_id = user.user_id.as_str(),
                subject = template.subject,
                "billing email not sent"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_in_major_units() {
        assert_eq!(format_amount(2900, "eur"), "29.00 EUR");
        assert_eq!(format_amount(5, "usd"), "0.05 USD");
        assert_eq!(format_amount(-1050, "ron"), "-10.50 RON");
        assert_eq!(format_amount(500, "jpy"), "500 JPY");
    }
}
