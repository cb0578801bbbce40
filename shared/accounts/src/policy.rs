//! Which privacy-policy and terms version each user accepted, and the notice of a policy change
//! to every account owner (docs/privacy.md, "Policy versions").
//!
//! The current versions are the deployment's configuration (`POLICY_VERSION`, `TERMS_VERSION`;
//! template parameters `PolicyVersion`, `TermsVersion`). A sign-up states the versions it
//! accepted and must name the current ones; an existing user re-accepts the same way
//! (`POST /v1/me/policy-acceptance`). The user item keeps the accepted versions with their times
//! and a list of every acceptance (proof of what was agreed to, and when).
//!
//! [`notify_owners`] mails every verified account owner once per version pair: a conditional
//! claim on the owner's user item (`policy_notice_version`, state `sending`) before the email,
//! `sent` after it, so a second run, concurrent or after a crash, sends nothing twice.

use std::time::Duration;

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use shared_core::config::{ConfigError, Env};
use shared_core::domain::Email;
use shared_core::dynamo::{s, timestamp, unless_condition_failed, Item};
use shared_mail::dynamo::MailGate;
use shared_mail::outbound::{name_for_mail, MailKind};
use shared_mail::{render, Mailer, OutgoingEmail, SendSuppression};

/// The environment variables [`PolicyVersions::from_env`] reads.
pub const ENV: [&str; 2] = ["POLICY_VERSION", "TERMS_VERSION"];

/// The longest version label.
pub const MAX_VERSION_LEN: usize = 64;

/// The versions of the privacy policy and the terms in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersions {
    pub policy: String,
    pub terms: String,
}

/// Whether `v` is a version label: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn is_version_label(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_VERSION_LEN
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl PolicyVersions {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let read = |name: &'static str| {
            let v = env.required(name)?;
            if is_version_label(&v) {
                Ok(v)
            } else {
                Err(ConfigError::Invalid {
                    name,
                    reason: "1 to 64 letters, digits, dots, dashes or underscores".into(),
                })
            }
        };
        Ok(Self {
            policy: read("POLICY_VERSION")?,
            terms: read("TERMS_VERSION")?,
        })
    }

    /// The label a notice of these versions is recorded under on each owner.
    pub fn notice_label(&self) -> String {
        format!("policy {} / terms {}", self.policy, self.terms)
    }
}

/// What a user accepted, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyAcceptance {
    pub policy_version: String,
    pub policy_accepted_at: OffsetDateTime,
    pub terms_version: String,
    pub terms_accepted_at: OffsetDateTime,
}

impl PolicyAcceptance {
    pub fn both(v: &PolicyVersions, at: OffsetDateTime) -> Self {
        Self {
            policy_version: v.policy.clone(),
            policy_accepted_at: at,
            terms_version: v.terms.clone(),
            terms_accepted_at: at,
        }
    }
}

/// Whether a user who accepted `accepted` must accept `current` again (a user who never
/// accepted, one created before versions were recorded, must).
pub fn reacceptance_due(accepted: Option<&PolicyAcceptance>, current: &PolicyVersions) -> bool {
    accepted.is_none_or(|a| a.policy_version != current.policy || a.terms_version != current.terms)
}

/// The user-item update that records an acceptance of `v` at `at` (`SET` clauses and values;
/// the caller adds its condition): the current versions and times, and one more entry in
/// `policy_acceptances` (`{policy_version, terms_version, at, via}`).
pub fn acceptance_update(
    v: &PolicyVersions,
    at: OffsetDateTime,
    via: &str,
) -> (String, Vec<(String, AttributeValue)>) {
    let entry = AttributeValue::M(
        [
            ("policy_version".to_string(), s(&v.policy)),
            ("terms_version".to_string(), s(&v.terms)),
            ("at".to_string(), timestamp(at)),
            ("via".to_string(), s(via)),
        ]
        .into_iter()
        .collect(),
    );
    (
        "policy_version = :pv, policy_accepted_at = :pat, terms_version = :tv, \
         terms_accepted_at = :pat, policy_acceptances = \
         list_append(if_not_exists(policy_acceptances, :empty), :entry)"
            .to_string(),
        vec![
            (":pv".into(), s(&v.policy)),
            (":tv".into(), s(&v.terms)),
            (":pat".into(), timestamp(at)),
            (":empty".into(), AttributeValue::L(vec![])),
            (":entry".into(), AttributeValue::L(vec![entry])),
        ],
    )
}

/// The attributes a new user item gets for an acceptance at sign-up or invitation.
pub fn acceptance_attributes(a: &PolicyAcceptance, via: &str) -> Item {
    let v = PolicyVersions {
        policy: a.policy_version.clone(),
        terms: a.terms_version.clone(),
    };
    let entry = AttributeValue::M(
        [
            ("policy_version".to_string(), s(&v.policy)),
            ("terms_version".to_string(), s(&v.terms)),
            ("at".to_string(), timestamp(a.policy_accepted_at)),
            ("via".to_string(), s(via)),
        ]
        .into_iter()
        .collect(),
    );
    [
        ("policy_version".to_string(), s(&a.policy_version)),
        (
            "policy_accepted_at".to_string(),
            timestamp(a.policy_accepted_at),
        ),
        ("terms_version".to_string(), s(&a.terms_version)),
        (
            "terms_accepted_at".to_string(),
            timestamp(a.terms_accepted_at),
        ),
        (
            "policy_acceptances".to_string(),
            AttributeValue::L(vec![entry]),
        ),
    ]
    .into_iter()
    .collect()
}

// ---------------------------------------------------------------- the notice to every owner

/// What the notice says and where it points: the operator's, never text a user typed.
#[derive(Debug, Clone)]
pub struct Notice {
    pub versions: PolicyVersions,
    /// Where the updated policy is posted (`https://...`).
    pub link: String,
    /// When the new versions take effect (`YYYY-MM-DD`).
    pub effective: String,
}

pub const NOTICE_SUBJECT: &str = "We are updating our Privacy Policy and Terms";

const NOTICE_TEXT: &str = "Hello {{name}},

We are updating our Privacy Policy (version {{policy_version}}) and Terms of Service (version \
{{terms_version}}). The new versions take effect on {{effective}}.

Read them here: {{link}}

You are receiving this service notice because you own an account on the platform. The next time \
you sign in you will be asked to accept the new versions.
";

const NOTICE_HTML: &str = "<p>Hello {{name}},</p>
<p>We are updating our Privacy Policy (version {{policy_version}}) and Terms of Service (version \
{{terms_version}}). The new versions take effect on {{effective}}.</p>
<p><a href=\"{{link}}\">Read the new versions</a></p>
<p>You are receiving this service notice because you own an account on the platform. The next \
time you sign in you will be asked to accept the new versions.</p>
";

impl Notice {
    /// Checks the operator's input: https link, a date.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.link.starts_with("https://") || self.link.starts_with("http://127.0.0.1"),
            "the link must be an https:// URL"
        );
        anyhow::ensure!(
            !self
                .link
                .chars()
                .any(|c| c.is_whitespace() || c.is_control()),
            "the link holds spaces or control characters"
        );
        time::Date::parse(
            &self.effective,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .context("the effective date must be YYYY-MM-DD")?;
        Ok(())
    }

    /// The email to one owner. Their name is text they typed: a bounded, link-free name.
    pub fn email(&self, to: &str, name: &str) -> OutgoingEmail {
        let name = name_for_mail(name);
        let vars: [(&str, &str); 5] = [
            ("name", &name),
            ("policy_version", &self.versions.policy),
            ("terms_version", &self.versions.terms),
            ("effective", &self.effective),
            ("link", &self.link),
        ];
        OutgoingEmail {
            to: to.to_string(),
            subject: NOTICE_SUBJECT.to_string(),
            text: render(NOTICE_TEXT, &vars, false),
            html: render(NOTICE_HTML, &vars, true),
            headers: vec![],
        }
    }
}

/// The counts of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct NoticeReport {
    /// Verified account owners seen.
    pub owners: u64,
    pub sent: u64,
    /// Sent by an earlier (or a concurrent) run.
    pub already_notified: u64,
    /// Owners who accepted these versions already (signed up or re-accepted since).
    pub already_accepted: u64,
    /// On the send-suppression list (bounced for good or complained): not mailed.
    pub suppressed: u64,
    /// Past the per-address limit of these emails in the hour: not mailed; a later run sends.
    pub limited: u64,
    /// Claimed by a run that did not confirm the send (it stopped between the claim and SES's
    /// answer, or is running now): not sent again, listed for the operator.
    pub unconfirmed: u64,
    /// SES refused: the claim was released, a later run sends.
    pub failed: u64,
    /// The user ids of `unconfirmed` (ids only).
    pub unconfirmed_user_ids: Vec<String>,
}

/// Where and how a run reads owners and records notices.
pub struct NoticeRun<'a, M> {
    pub dynamo: &'a aws_sdk_dynamodb::Client,
    pub tenants_table: &'a str,
    pub mailer: &'a M,
    pub suppression: &'a SendSuppression,
    pub gate: &'a MailGate,
    pub per_recipient_per_hour: u32,
    /// Emails per second at most (SES's sending rate is per second).
    pub per_second: f64,
    pub clock: &'a dyn shared_core::clock::Clock,
}

/// A verified owner's user item, as the scan returns it.
struct Owner {
    key: Item,
    user_id: String,
    email: String,
    name: String,
    notice_version: Option<String>,
    notice_state: Option<String>,
    accepted: Option<(String, String)>,
}

fn owner_from(it: &Item) -> Option<Owner> {
    let get = |n: &str| it.get(n).and_then(|v| v.as_s().ok()).cloned();
    Some(Owner {
        key: [
            ("pk".to_string(), it.get("pk")?.clone()),
            ("sk".to_string(), it.get("sk")?.clone()),
        ]
        .into_iter()
        .collect(),
        user_id: get("user_id")?,
        email: get("email")?,
        name: get("name").unwrap_or_default(),
        notice_version: get("policy_notice_version"),
        notice_state: get("policy_notice_state"),
        accepted: get("policy_version").zip(get("terms_version")),
    })
}

/// Mails every verified account owner the notice once (see the module's documentation).
pub async fn notify_owners<M: Mailer>(
    run: &NoticeRun<'_, M>,
    notice: &Notice,
) -> anyhow::Result<NoticeReport> {
    notice.validate()?;
    let label = notice.versions.notice_label();
    let mut report = NoticeReport::default();
    let interval = Duration::from_secs_f64(1.0 / run.per_second.max(0.001));
    let mut next_send = tokio::time::Instant::now();
    let mut start_key: Option<Item> = None;
    loop {
        // An operator's run over the whole table, page by page (the functions never scan).
        let page = run
            .dynamo
            .scan()
            .table_name(run.tenants_table)
            .filter_expression("begins_with(sk, :user) AND #role = :owner AND email_verified = :t")
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":user", s("USER#"))
            .expression_attribute_values(":owner", s("owner"))
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .set_exclusive_start_key(start_key.take())
            .consistent_read(true)
            .send()
            .await
            .context("Scan owners")?;
        for it in page.items() {
            let Some(owner) = owner_from(it) else {
                continue;
            };
            report.owners += 1;
            if owner.notice_version.as_deref() == Some(label.as_str()) {
                if owner.notice_state.as_deref() == Some("sent") {
                    report.already_notified += 1;
                } else {
                    report.unconfirmed += 1;
                    report.unconfirmed_user_ids.push(owner.user_id.clone());
                }
                continue;
            }
            if owner.accepted.as_ref()
                == Some(&(
                    notice.versions.policy.clone(),
                    notice.versions.terms.clone(),
                ))
            {
                report.already_accepted += 1;
                continue;
            }
            tokio::time::sleep_until(next_send).await;
            next_send = tokio::time::Instant::now() + interval;
            notify_one(run, notice, &label, &owner, &mut report).await?;
        }
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start_key = Some(k.clone()),
            _ => break,
        }
    }
    tracing::info!(
        owners = report.owners,
        sent = report.sent,
        already_notified = report.already_notified,
        already_accepted = report.already_accepted,
        suppressed = report.suppressed,
        limited = report.limited,
        unconfirmed = report.unconfirmed,
        failed = report.failed,
        "policy notice run"
    );
    Ok(report)
}

async fn notify_one<M: Mailer>(
    run: &NoticeRun<'_, M>,
    notice: &Notice,
    label: &str,
    owner: &Owner,
    report: &mut NoticeReport,
) -> anyhow::Result<()> {
    let Ok(email) = Email::parse(&owner.email) else {
        return Ok(());
    };
    if run.suppression.holds(email.as_str()).await.is_some() {
        report.suppressed += 1;
        return Ok(());
    }
    let now = run.clock.now();
    // The claim: only one run (this one, a concurrent one, a later one) gets to send.
    let claim = run
        .dynamo
        .update_item()
        .table_name(run.tenants_table)
        .set_key(Some(owner.key.clone()))
        .update_expression(
            "SET policy_notice_version = :v, policy_notice_state = :sending, \
             policy_notice_at = :now",
        )
        .condition_expression(
            "attribute_exists(pk) AND (attribute_not_exists(policy_notice_version) \
             OR policy_notice_version <> :v)",
        )
        .expression_attribute_values(":v", s(label))
        .expression_attribute_values(":sending", s("sending"))
        .expression_attribute_values(":now", timestamp(now))
        .send()
        .await;
    if unless_condition_failed(claim, "UpdateItem policy notice claim")?.is_none() {
        report.already_notified += 1;
        return Ok(());
    }
    let bidx = run.suppression.key.email(&email);
    if !run
        .gate
        .claim_recipient(
            MailKind::PolicyNotice,
            &bidx,
            run.per_recipient_per_hour,
            now,
        )
        .await?
    {
        release(run, owner, label).await?;
        report.limited += 1;
        return Ok(());
    }
    match run
        .mailer
        .send(&notice.email(email.as_str(), &owner.name))
        .await
    {
        Ok(()) => {
            run.dynamo
                .update_item()
                .table_name(run.tenants_table)
                .set_key(Some(owner.key.clone()))
                .update_expression("SET policy_notice_state = :sent, policy_notice_at = :now")
                .condition_expression("policy_notice_version = :v")
                .expression_attribute_values(":v", s(label))
                .expression_attribute_values(":sent", s("sent"))
                .expression_attribute_values(":now", timestamp(run.clock.now()))
                .send()
                .await
                .context("UpdateItem policy notice sent")?;
            report.sent += 1;
        }
        Err(e) => {
            // Ids only: the provider's message may quote the address.
            let retryable = shared_core::aws::is_transient(&e);
            tracing::warn!(user_id = %owner.user_id, retryable, "policy notice not sent: SES refused");
            release(run, owner, label).await?;
            report.failed += 1;
        }
    }
    Ok(())
}

/// Gives a claim back when the email certainly did not go out, so a later run sends it.
async fn release<M: Mailer>(
    run: &NoticeRun<'_, M>,
    owner: &Owner,
    label: &str,
) -> anyhow::Result<()> {
    let res = run
        .dynamo
        .update_item()
        .table_name(run.tenants_table)
        .set_key(Some(owner.key.clone()))
        .update_expression("REMOVE policy_notice_version, policy_notice_state, policy_notice_at")
        .condition_expression("policy_notice_version = :v AND policy_notice_state = :sending")
        .expression_attribute_values(":v", s(label))
        .expression_attribute_values(":sending", s("sending"))
        .send()
        .await;
    unless_condition_failed(res, "UpdateItem policy notice release")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn v(p: &str, t: &str) -> PolicyVersions {
        PolicyVersions {
            policy: p.into(),
            terms: t.into(),
        }
    }

    #[test]
    fn versions_come_from_the_environment_and_must_be_labels() {
        let env = Env::from_pairs([("POLICY_VERSION", "2026-12"), ("TERMS_VERSION", "3.1")]);
        assert_eq!(PolicyVersions::from_env(&env).unwrap(), v("2026-12", "3.1"));
        let env = Env::from_pairs([("POLICY_VERSION", "2026-12")]);
        assert_eq!(
            PolicyVersions::from_env(&env),
            Err(ConfigError::Missing("TERMS_VERSION"))
        );
        let env = Env::from_pairs([("POLICY_VERSION", "v 2"), ("TERMS_VERSION", "1")]);
        assert!(matches!(
            PolicyVersions::from_env(&env),
            Err(ConfigError::Invalid {
                name: "POLICY_VERSION",
                ..
            })
        ));
        assert!(!is_version_label(&"1".repeat(65)));
        assert!(is_version_label("2026-12-01_a.1"));
    }

    #[test]
    fn reacceptance_is_due_when_either_version_moved_or_none_was_recorded() {
        let at = datetime!(2026-12-01 12:00 UTC);
        let accepted = PolicyAcceptance::both(&v("1", "1"), at);
        assert!(!reacceptance_due(Some(&accepted), &v("1", "1")));
        assert!(reacceptance_due(Some(&accepted), &v("2", "1")));
        assert!(reacceptance_due(Some(&accepted), &v("1", "2")));
        assert!(reacceptance_due(None, &v("1", "1")));
    }

    #[test]
    fn the_notice_carries_no_link_someone_typed_and_refuses_a_bad_link_or_date() {
        let notice = Notice {
            versions: v("2026-12", "2026-12"),
            link: "https://example.com/legal/privacy".into(),
            effective: "2027-01-01".into(),
        };
        notice.validate().unwrap();
        let e = notice.email("a@example.com", "Win at https://evil.example now");
        for body in [&e.text, &e.html] {
            assert!(!body.contains("evil.example"), "{body}");
            assert!(body.contains("https://example.com/legal/privacy"));
            assert!(body.contains("2027-01-01") && body.contains("2026-12"));
        }
        let mut bad = notice.clone();
        bad.link = "javascript:alert(1)".into();
        assert!(bad.validate().is_err());
        let mut bad = notice.clone();
        bad.effective = "soon".into();
        assert!(bad.validate().is_err());
    }
}
