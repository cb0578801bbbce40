//! The `mail-events` function: SES's bounces and complaints, consumed (docs/mail.md).
//!
//! Every platform email goes through the configuration set `lead-platform-<stage>-mail`, whose
//! event destination puts hard bounces and complaints on the default event bus; an EventBridge
//! rule hands them here. Each recipient that bounced for good (`bounceType` `Permanent`) or
//! complained goes on the platform's send-suppression list, as the blind index of the address
//! (never the address), for `MAIL_SUPPRESSION_DAYS`; every platform mailer checks that list
//! before sending (`shared_mail::SesMailer::platform`). Transient bounces, and complaints whose
//! feedback says "not spam", change nothing.
//!
//! A redelivered event writes nothing new (the list's end only moves later). An event whose
//! shape is not SES's fails the invocation: it is retried, then lands in the failure queue,
//! which alarms.

pub mod config;

use std::sync::Arc;

use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use shared_core::blind_index::BlindIndexKey;
use shared_core::clock::Clock;
use shared_core::domain::Email;
use shared_mail::dynamo::{MailGate, SuppressionReason};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::config::Settings;

pub struct App {
    pub gate: MailGate,
    pub keys: BlindIndexKey,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
}

/// What an event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    /// These recipients must not be mailed again.
    Suppress {
        reason: SuppressionReason,
        recipients: Vec<String>,
        /// When SES reported it (the event's time).
        at: Option<OffsetDateTime>,
    },
    /// Nothing to do, and why (a transient bounce, a "not spam" complaint, another event).
    Ignore(&'static str),
}

/// Reads an EventBridge event of SES.
pub fn parse(event: &Value) -> anyhow::Result<Feedback> {
    if event["source"].as_str() != Some("aws.ses") {
        return Ok(Feedback::Ignore("not_ses"));
    }
    let detail = &event["detail"];
    let at = event["time"]
        .as_str()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
    let (reason, list, field) = match event["detail-type"].as_str() {
        Some("Email Bounced") => {
            let bounce = &detail["bounce"];
            match bounce["bounceType"].as_str() {
                Some("Permanent") => {}
                Some("Transient" | "Undetermined") => return Ok(Feedback::Ignore("not_permanent")),
                _ => bail!("a bounce without its bounceType"),
            }
            (
                SuppressionReason::Bounce,
                &bounce["bouncedRecipients"],
                "bounce",
            )
        }
        Some("Email Complaint Received") => {
            let complaint = &detail["complaint"];
            if complaint["complaintFeedbackType"].as_str() == Some("not-spam") {
                return Ok(Feedback::Ignore("not_spam"));
            }
            (
                SuppressionReason::Complaint,
                &complaint["complainedRecipients"],
                "complaint",
            )
        }
        _ => return Ok(Feedback::Ignore("other_event")),
    };
    let recipients: Vec<String> = list
        .as_array()
        .ok_or_else(|| anyhow!("a {field} without its recipients"))?
        .iter()
        .filter_map(|r| r["emailAddress"].as_str().map(str::to_string))
        .collect();
    if recipients.is_empty() {
        bail!("a {field} naming no recipient");
    }
    Ok(Feedback::Suppress {
        reason,
        recipients,
        at,
    })
}

/// The address inside what SES reports (`Ana <ana@example.com>` or a bare address).
fn address(raw: &str) -> &str {
    match (raw.rfind('<'), raw.rfind('>')) {
        (Some(a), Some(b)) if a < b => &raw[a + 1..b],
        _ => raw.trim(),
    }
}

/// Handles one event: a report of counts, never an address.
pub async fn handle(app: &App, event: &Value) -> anyhow::Result<Value> {
    let (reason, recipients, at) = match parse(event)? {
        Feedback::Ignore(why) => {
            tracing::info!(why, "mail event ignored");
            return Ok(json!({ "status": "ignored", "why": why }));
        }
        Feedback::Suppress {
            reason,
            recipients,
            at,
        } => (reason, recipients, at),
    };
    let at = at.unwrap_or_else(|| app.clock.now());
    let until = at + Duration::days(app.settings.suppression_days);
    let mut suppressed = 0;
    let mut unreadable = 0;
    for raw in &recipients {
        let Ok(email) = Email::parse(address(raw)) else {
            unreadable += 1;
            continue;
        };
        let bidx = app.keys.email(&email);
        app.gate.suppress(&bidx, reason, at, until).await?;
        tracing::info!(email_bidx = %bidx, reason = reason.as_str(), "address on the send-suppression list");
        suppressed += 1;
    }
    if unreadable > 0 {
        tracing::warn!(
            unreadable,
            "recipients that are not an address were skipped"
        );
    }
    shared_core::telemetry::metric(
        "EmailAddressesSuppressed",
        suppressed as f64,
        "Count",
        &[("Reason", reason.as_str())],
    );
    Ok(json!({
        "status": "suppressed",
        "reason": reason.as_str(),
        "recipients": suppressed,
        "unreadable": unreadable,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Value {
        let path = format!(
            "{}/../../events/mail-events/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn hard_bounces_and_complaints_suppress_their_recipients() {
        match parse(&sample("bounce")).unwrap() {
            Feedback::Suppress {
                reason,
                recipients,
                at,
            } => {
                assert_eq!(reason, SuppressionReason::Bounce);
                assert_eq!(recipients, ["no-such-user@example.com"]);
                assert!(at.is_some());
            }
            other => panic!("{other:?}"),
        }
        match parse(&sample("complaint")).unwrap() {
            Feedback::Suppress {
                reason, recipients, ..
            } => {
                assert_eq!(reason, SuppressionReason::Complaint);
                assert_eq!(recipients, ["annoyed@example.com"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn transient_bounces_and_other_events_change_nothing() {
        assert_eq!(
            parse(&sample("transient-bounce")).unwrap(),
            Feedback::Ignore("not_permanent")
        );
        let mut e = sample("complaint");
        e["detail"]["complaint"]["complaintFeedbackType"] = json!("not-spam");
        assert_eq!(parse(&e).unwrap(), Feedback::Ignore("not_spam"));
        let mut e = sample("bounce");
        e["detail-type"] = json!("Email Delivered");
        assert_eq!(parse(&e).unwrap(), Feedback::Ignore("other_event"));
        e["source"] = json!("aws.s3");
        assert_eq!(parse(&e).unwrap(), Feedback::Ignore("not_ses"));
    }

    #[test]
    fn an_event_not_shaped_like_ses_fails_so_it_is_retried_then_queued() {
        let mut e = sample("bounce");
        e["detail"]["bounce"]["bouncedRecipients"] = json!([]);
        assert!(parse(&e).is_err());
        let mut e = sample("complaint");
        e["detail"]["complaint"] = json!({});
        assert!(parse(&e).is_err());
        let mut e = sample("bounce");
        e["detail"]["bounce"]["bounceType"] = Value::Null;
        assert!(parse(&e).is_err());
    }

    #[test]
    fn addresses_are_read_with_or_without_a_display_name() {
        assert_eq!(address("Ana <ana@example.com>"), "ana@example.com");
        assert_eq!(address(" ana@example.com "), "ana@example.com");
    }
}
