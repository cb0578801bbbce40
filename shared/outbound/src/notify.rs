//! New-lead notifications by email (docs/outbound.md, "Notifications"): per form, to chosen
//! members of the tenant (by default its owners), instant or as an hourly or daily digest.
//! Privacy first: an email says which form and how many new leads, and links to them; it never
//! carries the submitted answers or the person's contact details.
//!
//! A digest is counted from the stream without a scan: each `submission.created` adds its event
//! id to the form's digest item of the period (a string set: a retried record adds nothing), and
//! the period is registered on a due item (`DIGESTDUE#<period>`); the hourly run reads the due
//! items of the periods that ended within the lookback, leases each digest (a conditional write:
//! a run beside it leaves it alone), records each recipient it reached, and marks the digest sent
//! once everyone has it. An email that fails leaves the digest due: a later run sends it to the
//! recipients still missing, so a digest is neither lost to an SES failure nor sent twice to one
//! recipient by a retried run.
//!
//! | item | table | pk | sk |
//! |---|---|---|---|
//! | settings | tenants | `TENANT#<t>` | `NOTIFY#<formId>` |
//! | instant email sent | ops | `TENANT#<t>#NOTIFYSENT#<eventId>` | `NOTIFYSENT#<userId>` (TTL 2 days) |
//! | digest of a period | ops | `TENANT#<t>#DIGEST#<formId>` | `H#<YYYY-MM-DDTHH>` / `D#<YYYY-MM-DD>` (TTL 3 days) |
//! | periods due | ops | `DIGESTDUE#<period>` | `DIGESTDUE` (TTL 3 days) |

use std::collections::HashMap;

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use shared_core::domain::TenantId;
use shared_core::dynamo::attrs::{n, s, Item};
use shared_core::keys::{Key, PK, SK};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Instant,
    Hourly,
    Daily,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Instant => "instant",
            Mode::Hourly => "hourly",
            Mode::Daily => "daily",
        }
    }
    pub fn parse(s: &str) -> Option<Mode> {
        [Mode::Instant, Mode::Hourly, Mode::Daily]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// A form's notification settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub form_id: String,
    pub enabled: bool,
    pub mode: Mode,
    /// User ids of members; empty: the tenant's owners.
    pub recipients: Vec<String>,
    /// The instant email repeats the submitted answers (off unless the tenant turns it on for
    /// the form; every change is in the security log, and the Art. 15 facts name the team as
    /// recipients by email).
    pub include_answers: bool,
}

impl Settings {
    /// Without settings of its own, a form notifies the owners at once.
    pub fn default_for(form_id: &str) -> Settings {
        Settings {
            form_id: form_id.to_string(),
            enabled: true,
            mode: Mode::Instant,
            recipients: vec![],
            include_answers: false,
        }
    }
}

pub fn settings_key(t: &TenantId, form_id: &str) -> Key {
    Key {
        pk: format!("TENANT#{t}"),
        sk: format!("NOTIFY#{form_id}"),
    }
}

pub fn settings_item(t: &TenantId, st: &Settings, updated_at: &str) -> Item {
    let k = settings_key(t, &st.form_id);
    HashMap::from([
        (PK.to_string(), s(&k.pk)),
        (SK.to_string(), s(&k.sk)),
        ("form_id".into(), s(&st.form_id)),
        ("enabled".into(), AttributeValue::Bool(st.enabled)),
        ("mode".into(), s(st.mode.as_str())),
        (
            "recipients".into(),
            AttributeValue::L(st.recipients.iter().map(s).collect()),
        ),
        (
            "include_answers".into(),
            AttributeValue::Bool(st.include_answers),
        ),
        ("updated_at".into(), s(updated_at)),
    ])
}

pub fn settings_from_item(form_id: &str, it: &Item) -> Settings {
    Settings {
        form_id: form_id.to_string(),
        enabled: !matches!(it.get("enabled"), Some(AttributeValue::Bool(false))),
        mode: it
            .get("mode")
            .and_then(|v| v.as_s().ok())
            .and_then(|m| Mode::parse(m))
            .unwrap_or(Mode::Instant),
        recipients: match it.get("recipients") {
            Some(AttributeValue::L(l)) => l.iter().filter_map(|v| v.as_s().ok().cloned()).collect(),
            _ => vec![],
        },
        include_answers: matches!(it.get("include_answers"), Some(AttributeValue::Bool(true))),
    }
}

pub async fn settings(
    client: &aws_sdk_dynamodb::Client,
    tenants_table: &str,
    t: &TenantId,
    form_id: &str,
) -> anyhow::Result<Settings> {
    let k = settings_key(t, form_id);
    let out = client
        .get_item()
        .table_name(tenants_table)
        .key(PK, s(&k.pk))
        .key(SK, s(&k.sk))
        .send()
        .await
        .context("GetItem notification settings")?;
    Ok(out
        .item()
        .map(|it| settings_from_item(form_id, it))
        .unwrap_or_else(|| Settings::default_for(form_id)))
}

/// A member as notifications need it.
#[derive(Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub role: String,
    /// Verified and not unsubscribed (the one-click link every platform email carries).
    pub reachable: bool,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("user_id", &self.user_id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The tenant's members: one Query of its partition on `USER#`.
pub async fn members(
    client: &aws_sdk_dynamodb::Client,
    tenants_table: &str,
    t: &TenantId,
) -> anyhow::Result<Vec<Member>> {
    let q = client
        .query()
        .table_name(tenants_table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :u)")
        .expression_attribute_values(":pk", s(format!("TENANT#{t}")))
        .expression_attribute_values(":u", s("USER#"))
        .projection_expression("user_id, email, #r, email_verified, marketing_opt_out")
        .expression_attribute_names("#r", "role");
    let items = crate::dynamo::query_items(q, usize::MAX, "Query members").await?;
    Ok(items
        .iter()
        .filter_map(|it| {
            let text = |n: &str| it.get(n).and_then(|v| v.as_s().ok()).cloned();
            let flag = |n: &str| matches!(it.get(n), Some(AttributeValue::Bool(true)));
            Some(Member {
                user_id: text("user_id")?,
                email: text("email")?,
                role: text("role")?,
                reachable: flag("email_verified") && !flag("marketing_opt_out"),
            })
        })
        .collect())
}

/// Who a form's notification goes to: the chosen members, or the owners; only reachable ones.
pub fn recipients<'a>(st: &Settings, members: &'a [Member]) -> Vec<&'a Member> {
    members
        .iter()
        .filter(|m| {
            if st.recipients.is_empty() {
                m.role == "owner"
            } else {
                st.recipients.contains(&m.user_id)
            }
        })
        .filter(|m| m.reachable)
        .collect()
}

/// The period an event falls in for a digest mode (`H#2026-12-03T10`, `D#2026-12-03`).
pub fn period(mode: Mode, at: OffsetDateTime) -> Option<String> {
    let d = at.date();
    match mode {
        Mode::Instant => None,
        Mode::Hourly => Some(format!("H#{d}T{:02}", at.hour())),
        Mode::Daily => Some(format!("D#{d}")),
    }
}

/// How far back a run looks for digests not sent yet: an hourly digest whose email failed is
/// sent by a later run within a day, a daily one within two (their items live three days).
pub const HOURLY_LOOKBACK: i64 = 24;
pub const DAILY_LOOKBACK: i64 = 2;

/// The periods that ended by `now` and may still hold a digest to send, newest first: the last
/// [`HOURLY_LOOKBACK`] hours and the last [`DAILY_LOOKBACK`] days. A sent digest leaves its
/// period's due set, so a period with nothing left to send costs one read.
pub fn ended_periods(now: OffsetDateTime) -> Vec<String> {
    let hours = (1..=HOURLY_LOOKBACK)
        .map(|h| period(Mode::Hourly, now - time::Duration::hours(h)).expect("hourly"));
    let days = (1..=DAILY_LOOKBACK)
        .map(|d| period(Mode::Daily, now - time::Duration::days(d)).expect("daily"));
    hours.chain(days).collect()
}

const DIGEST_TTL_S: i64 = 3 * 86_400;

/// Counts `event_id` into the form's digest of `period` and registers the period as due.
/// Idempotent: a set of event ids, not a counter.
pub async fn add_to_digest(
    client: &aws_sdk_dynamodb::Client,
    ops_table: &str,
    t: &TenantId,
    form_id: &str,
    period: &str,
    event_id: &str,
    now_unix: i64,
) -> anyhow::Result<()> {
    client
        .update_item()
        .table_name(ops_table)
        .key(PK, s(format!("TENANT#{t}#DIGEST#{form_id}")))
        .key(SK, s(period))
        .update_expression("ADD events :e SET expires_at = :x")
        .expression_attribute_values(":e", AttributeValue::Ss(vec![event_id.to_string()]))
        .expression_attribute_values(":x", n(now_unix + DIGEST_TTL_S))
        .send()
        .await
        .context("UpdateItem digest")?;
    client
        .update_item()
        .table_name(ops_table)
        .key(PK, s(format!("DIGESTDUE#{period}")))
        .key(SK, s("DIGESTDUE"))
        .update_expression("ADD forms :f SET expires_at = :x")
        .expression_attribute_values(":f", AttributeValue::Ss(vec![format!("{t}|{form_id}")]))
        .expression_attribute_values(":x", n(now_unix + DIGEST_TTL_S))
        .send()
        .await
        .context("UpdateItem digest due")?;
    Ok(())
}

/// The (tenant, form) digests of a period.
pub async fn due(
    client: &aws_sdk_dynamodb::Client,
    ops_table: &str,
    period: &str,
) -> anyhow::Result<Vec<(TenantId, String)>> {
    let out = client
        .get_item()
        .table_name(ops_table)
        .key(PK, s(format!("DIGESTDUE#{period}")))
        .key(SK, s("DIGESTDUE"))
        .consistent_read(true)
        .send()
        .await
        .context("GetItem digest due")?;
    let Some(AttributeValue::Ss(forms)) = out.item().and_then(|it| it.get("forms")) else {
        return Ok(vec![]);
    };
    Ok(forms
        .iter()
        .filter_map(|f| {
            let (t, form) = f.split_once('|')?;
            Some((TenantId::parse(t).ok()?, form.to_string()))
        })
        .collect())
}

/// How long a run holds a digest it is sending: another run (a retry running beside it) leaves
/// the digest alone meanwhile.
pub const DIGEST_LEASE_S: i64 = 300;

/// A digest leased for sending: how many new submissions, and who has it already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestLease {
    pub count: usize,
    pub sent_to: std::collections::HashSet<String>,
}

fn digest_key(
    b: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    t: &TenantId,
    form_id: &str,
    period: &str,
) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    b.key(PK, s(format!("TENANT#{t}#DIGEST#{form_id}")))
        .key(SK, s(period))
}

/// Leases a digest for sending: its count and the recipients who have it, or None when it was
/// sent already or another run holds it. The lease is not a claim of the email: a run that
/// fails to send gives it back ([`release_digest`]) or lets it lapse, and a later run sends to
/// whoever is still missing (at least once; at most once per recipient unless a run dies between
/// SES's acceptance and [`digest_sent_to`]).
pub async fn lease_digest(
    client: &aws_sdk_dynamodb::Client,
    ops_table: &str,
    t: &TenantId,
    form_id: &str,
    period: &str,
    now_unix: i64,
) -> anyhow::Result<Option<DigestLease>> {
    let r = digest_key(
        client.update_item().table_name(ops_table),
        t,
        form_id,
        period,
    )
    .update_expression("SET lease_until = :until")
    .condition_expression(
        "attribute_exists(pk) AND attribute_not_exists(sent_at) \
             AND (attribute_not_exists(lease_until) OR lease_until < :now)",
    )
    .expression_attribute_values(":until", n(now_unix + DIGEST_LEASE_S))
    .expression_attribute_values(":now", n(now_unix))
    .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
    .send()
    .await;
    let Some(out) = shared_core::dynamo::unless_condition_failed(r, "UpdateItem digest lease")?
    else {
        return Ok(None);
    };
    let set = |name: &str| match out.attributes().and_then(|a| a.get(name)) {
        Some(AttributeValue::Ss(v)) => v.clone(),
        _ => vec![],
    };
    Ok(Some(DigestLease {
        count: set("events").len(),
        sent_to: set("sent_to").into_iter().collect(),
    }))
}

/// Records that `user_id` has the digest (a retried run does not mail them again).
pub async fn digest_sent_to(
    client: &aws_sdk_dynamodb::Client,
    ops_table: &str,
    t: &TenantId,
    form_id: &str,
    period: &str,
    user_id: &str,
) -> anyhow::Result<()> {
    digest_key(
        client.update_item().table_name(ops_table),
        t,
        form_id,
        period,
    )
    .update_expression("ADD sent_to :u")
    .expression_attribute_values(":u", AttributeValue::Ss(vec![user_id.to_string()]))
    .send()
    .await
    .context("UpdateItem digest sent_to")?;
    Ok(())
}

/// The digest is done (every recipient has it, or there was nothing to send): it is marked sent
/// and leaves its period's due set.
pub async fn finish_digest(
    client: &aws_sdk_dynamodb::Client,
    ops_table: &str,
    t: &TenantId,
    form_id: &str,
    period: &str,
    now_rfc3339: &str,
) -> anyhow::Result<()> {
    digest_key(
        client.update_item().table_name(ops_table),
        t,
        form_id,
        period,
    )
    .update_expression("SET sent_at = :at REMOVE lease_until")
    .expression_attribute_values(":at", s(now_rfc3339))
    .send()
    .await
    .context("UpdateItem digest sent")?;
    client
        .update_item()
        .table_name(ops_table)
        .key(PK, s(format!("DIGESTDUE#{period}")))
        .key(SK, s("DIGESTDUE"))
        .update_expression("DELETE forms :f")
        .expression_attribute_values(":f", AttributeValue::Ss(vec![format!("{t}|{form_id}")]))
        .send()
        .await
        .context("UpdateItem digest due done")?;
    Ok(())
}

/// Gives a lease back: an email failed, and the next run tries the recipients still missing.
pub async fn release_digest(
    client: &aws_sdk_dynamodb::Client,
    ops_table: &str,
    t: &TenantId,
    form_id: &str,
    period: &str,
) -> anyhow::Result<()> {
    digest_key(
        client.update_item().table_name(ops_table),
        t,
        form_id,
        period,
    )
    .update_expression("REMOVE lease_until")
    .send()
    .await
    .context("UpdateItem digest release")?;
    Ok(())
}

fn instant_key(t: &TenantId, event_id: &str, user_id: &str) -> Item {
    HashMap::from([
        (
            PK.to_string(),
            s(format!("TENANT#{t}#NOTIFYSENT#{event_id}")),
        ),
        (SK.to_string(), s(format!("NOTIFYSENT#{user_id}"))),
    ])
}

/// Whether the instant email of an event went to one member already. A stream record is handled
/// by one invocation at a time (a shard's batches run in order), so "not sent yet, send, record
/// it" needs no claim: a record handed over again finds the emails it sent, and an email whose
/// record was not written is sent again (at least once; twice only if a run stops between SES
/// accepting it and [`mark_instant_sent`]). A claim written before the email would lose it
/// whenever its write's answer was lost (the SDK's retry finds the claim and reads it as
/// another's) or the email then failed.
pub async fn instant_sent(
    client: &aws_sdk_dynamodb::Client,
    ops_table: &str,
    t: &TenantId,
    event_id: &str,
    user_id: &str,
) -> anyhow::Result<bool> {
    let out = client
        .get_item()
        .table_name(ops_table)
        .set_key(Some(instant_key(t, event_id, user_id)))
        .consistent_read(true)
        .send()
        .await
        .context("GetItem notification sent")?;
    Ok(out.item().is_some())
}

/// Records that the instant email of an event went to one member (kept 2 days: longer than a
/// stream record lives).
pub async fn mark_instant_sent(
    client: &aws_sdk_dynamodb::Client,
    ops_table: &str,
    t: &TenantId,
    event_id: &str,
    user_id: &str,
    now_unix: i64,
) -> anyhow::Result<()> {
    let mut item = instant_key(t, event_id, user_id);
    item.insert("expires_at".into(), n(now_unix + 2 * 86_400));
    client
        .put_item()
        .table_name(ops_table)
        .set_item(Some(item))
        .send()
        .await
        .context("PutItem notification sent")?;
    Ok(())
}

/// The instant email: the form, a link to the lead; no answers, no contact details.
pub fn instant_text(app_base_url: &str, form_id: &str, lead_id: &str) -> (String, String) {
    let base = app_base_url.trim_end_matches('/');
    (
        format!("New lead on your form {form_id}"),
        format!(
            "A new submission arrived on your form {form_id}.\n\n\
             Open it in your workspace: {base}/leads/{lead_id}\n\n\
             This email does not repeat what was submitted: it stays in your workspace.\n\n\
             You get this email as a recipient of the form's notifications; an owner or admin \
             changes who gets them, and how often, in the form's notification settings."
        ),
    )
}

/// The instant email with the answers, for a form whose settings turned them on: the answers
/// as submitted (names and values), after the link.
pub fn instant_text_with_answers(
    app_base_url: &str,
    form_id: &str,
    lead_id: &str,
    answers: &[(String, String)],
) -> (String, String) {
    let base = app_base_url.trim_end_matches('/');
    let mut lines = String::new();
    for (k, v) in answers {
        lines.push_str(&format!("{k}: {v}\n"));
    }
    (
        format!("New lead on your form {form_id}"),
        format!(
            "A new submission arrived on your form {form_id}.\n\n\
             Open it in your workspace: {base}/leads/{lead_id}\n\n\
             What was submitted (this form's notifications include the answers):\n{lines}\n\
             You get this email as a recipient of the form's notifications; an owner or admin \
             changes who gets them, how often, and whether they carry the answers, in the \
             form's notification settings."
        ),
    )
}

/// The digest email: the form, how many, a link; no answers, no contact details.
pub fn digest_text(
    app_base_url: &str,
    form_id: &str,
    count: usize,
    period: &str,
) -> (String, String) {
    let base = app_base_url.trim_end_matches('/');
    let (span, when) = match period.split_once('#') {
        Some(("H", at)) => ("hour", format!("{at}:00 UTC")),
        Some((_, day)) => ("day", day.to_string()),
        None => ("period", period.to_string()),
    };
    let leads = if count == 1 {
        "1 new submission".to_string()
    } else {
        format!("{count} new submissions")
    };
    (
        format!("{leads} on your form {form_id}"),
        format!(
            "{leads} arrived on your form {form_id} in the {span} of {when}.\n\n\
             See them in your workspace: {base}/leads?form={form_id}\n\n\
             This email does not repeat what was submitted: it stays in your workspace.\n\n\
             You get this digest as a recipient of the form's notifications; an owner or admin \
             changes who gets them, and how often, in the form's notification settings."
        ),
    )
}

/// The email to the owners when an endpoint is marked failing: its id, never its URL's secrets.
pub fn failing_text(app_base_url: &str, webhook_id: &str) -> (String, String) {
    let base = app_base_url.trim_end_matches('/');
    (
        "A webhook endpoint of your workspace is failing".to_string(),
        format!(
            "Deliveries to your webhook endpoint {webhook_id} have failed for 24 hours, so it \
             is marked failing and nothing more is sent to it.\n\n\
             Its delivery log shows each attempt's status: {base}/settings/webhooks/{webhook_id}\n\n\
             Once the endpoint answers again, enable it (PATCH /v1/webhooks/{webhook_id} with \
             {{\"enabled\": true}}) and replay the deliveries you need."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, role: &str, reachable: bool) -> Member {
        Member {
            user_id: id.into(),
            email: format!("{id}@example.com"),
            role: role.into(),
            reachable,
        }
    }

    #[test]
    fn recipients_default_to_the_owners_and_skip_the_unreachable() {
        let ms = vec![
            member("u1", "owner", true),
            member("u2", "admin", true),
            member("u3", "member", true),
            member("u4", "owner", false),
        ];
        let ids = |st: &Settings| -> Vec<String> {
            recipients(st, &ms)
                .iter()
                .map(|m| m.user_id.clone())
                .collect()
        };
        assert_eq!(ids(&Settings::default_for("f")), vec!["u1"]);
        let chosen = Settings {
            recipients: vec!["u3".into(), "u4".into(), "gone".into()],
            ..Settings::default_for("f")
        };
        assert!(
            !Settings::default_for("f").include_answers,
            "off by default"
        );
        assert_eq!(ids(&chosen), vec!["u3"]);
    }

    #[test]
    fn periods_and_the_ones_that_ended() {
        let at = time::macros::datetime!(2026-12-03 10:59:59 UTC);
        assert_eq!(period(Mode::Hourly, at).as_deref(), Some("H#2026-12-03T10"));
        assert_eq!(period(Mode::Daily, at).as_deref(), Some("D#2026-12-03"));
        assert_eq!(period(Mode::Instant, at), None);
        let run = time::macros::datetime!(2026-12-04 00:05:00 UTC);
        let ended = ended_periods(run);
        assert_eq!(ended.len(), 26);
        assert_eq!(
            ended[0], "H#2026-12-03T23",
            "the hour that just ended first"
        );
        assert_eq!(ended[23], "H#2026-12-03T00", "a day of hours");
        assert_eq!(&ended[24..], ["D#2026-12-03", "D#2026-12-02"]);
        assert!(
            !ended.contains(&"H#2026-12-04T00".to_string()),
            "not the current hour"
        );
    }

    #[test]
    fn emails_name_the_form_and_link_but_hold_no_answers() {
        let (subject, text) = instant_text("https://app.example.com/", "contact", "ld-1");
        assert_eq!(subject, "New lead on your form contact");
        assert!(text.contains("https://app.example.com/leads/ld-1"));
        let (subject, text) =
            digest_text("https://app.example.com", "contact", 3, "H#2026-12-03T10");
        assert_eq!(subject, "3 new submissions on your form contact");
        assert!(text.contains("hour of 2026-12-03T10:00 UTC"));
    }
}
