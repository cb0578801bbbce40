//! The `outbound` function (docs/outbound.md): the leads table's change stream, as events, to
//! the tenants' webhooks.
//!
//! Two event sources, one function:
//! - the DynamoDB Stream of the leads table (batches; a record that cannot be handled is named
//!   in the partial batch response, `batchItemFailures`, so the batch resumes from it): each
//!   record's events ([`shared_outbound::events::events_of`]) go to every endpoint of the tenant
//!   that wants them. A delivery is created once per endpoint and event (its key is the event
//!   id), then attempted at once while the batch is within its inline budget, or else queued
//!   due at once (a slow endpoint never holds the stream for long);
//! - the retry queue (SQS): a failed attempt is re-enqueued with the next wait of
//!   [`shared_outbound::retry`] (exponential, jittered; a wait longer than SQS's 15-minute
//!   delay hops through the queue), for 24 hours, after which the delivery is `failed` and the
//!   endpoint marked failing.
//!
//! Delivery is at least once (a receiver dedupes on the event id, header `webhook-id`); events
//! of one lead are sent in the order of the stream, but a retried event may arrive after a later
//! one (receivers order by `occurred_at`).

pub mod config;
pub mod deliver;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use serde_json::{json, Value};
use shared_core::clock::{rfc3339, Clock};
use shared_core::domain::TenantId;
use shared_mail::Mailer;
use shared_outbound::dynamo::{self as store, AttemptLog, Endpoint};
use shared_outbound::events::{events_of, Event, EventType};
use shared_outbound::notify;
use shared_outbound::retry::{self, After};
use shared_outbound::signing;
use shared_outbound::stream;

use crate::deliver::Deliverer;

pub struct App<M = shared_mail::WithUnsubscribe<shared_mail::SesMailer>> {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub tenants_table: String,
    pub ops_table: String,
    pub retry_queue_url: String,
    pub deliverer: Deliverer,
    pub clock: Arc<dyn Clock>,
    /// A number in [0, 1) for each retry's jitter (random in production; fixed in tests).
    pub jitter: Arc<dyn Fn() -> f64 + Send + Sync>,
    /// New-lead notifications: the platform's mailer (configuration set, suppression list,
    /// one-click unsubscribe headers).
    pub mailer: M,
    /// The web app's site: notifications link to the lead there.
    pub app_base_url: String,
    /// How long a stream batch may spend on first attempts ([`INLINE_BUDGET`] deployed): past
    /// it, the batch's other deliveries go to the retry queue at once, so a tenant's slow
    /// endpoint never holds the stream (and the other tenants' events) for long.
    pub inline_budget: Duration,
}

/// A stream batch's time for first attempts. Each attempt is bounded to 10 s, so a batch takes
/// at most this plus one attempt, whatever its size and its endpoints.
pub const INLINE_BUDGET: Duration = Duration::from_secs(5);

/// A retry, as queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub tenant: TenantId,
    pub webhook_id: String,
    pub event_id: String,
    /// Not to be attempted before (unix seconds).
    pub not_before: i64,
}

impl Retry {
    pub fn to_json(&self) -> Value {
        json!({
            "tenant_id": self.tenant.as_str(),
            "webhook_id": self.webhook_id,
            "event_id": self.event_id,
            "not_before": self.not_before,
        })
    }

    pub fn from_json(v: &Value) -> Option<Retry> {
        Some(Retry {
            tenant: TenantId::parse(v["tenant_id"].as_str()?).ok()?,
            webhook_id: v["webhook_id"].as_str()?.to_string(),
            event_id: v["event_id"].as_str()?.to_string(),
            not_before: v["not_before"].as_i64()?,
        })
    }
}

/// Handles one invocation: a stream batch or a batch of the retry queue. The answer is the
/// partial batch response (`batchItemFailures`).
pub async fn handle<M: Mailer>(app: &App<M>, event: &Value) -> anyhow::Result<Value> {
    let from_queue = event["Records"]
        .as_array()
        .and_then(|r| r.first())
        .and_then(|r| r["eventSource"].as_str())
        == Some("aws:sqs");
    if event["detail-type"].as_str() == Some("Scheduled Event") {
        let report = digests(app).await?;
        return Ok(json!({ "digests_sent": report }));
    }
    if from_queue {
        retries(app, event).await
    } else {
        stream_batch(app, event).await
    }
}

/// What a stream batch came to (the log line; tests read it too).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    pub records: usize,
    pub events: Vec<(String, String)>,
    pub delivered: usize,
    pub failed_attempts: usize,
    /// First attempts handed to the retry queue because the batch spent its inline budget.
    pub queued: usize,
}

async fn stream_batch<M: Mailer>(app: &App<M>, event: &Value) -> anyhow::Result<Value> {
    let (report, failure) = process_stream(app, event).await;
    tracing::info!(
        records = report.records,
        events = report.events.len(),
        delivered = report.delivered,
        failed_attempts = report.failed_attempts,
        queued = report.queued,
        "stream batch handled"
    );
    let failures: Vec<Value> = failure
        .into_iter()
        .map(|seq| json!({ "itemIdentifier": seq }))
        .collect();
    Ok(json!({ "batchItemFailures": failures }))
}

/// Handles a stream batch in order; stops at the first record that fails (for a reason of ours:
/// a table or queue call), returning its sequence number, so the stream resumes from it.
pub async fn process_stream<M: Mailer>(
    app: &App<M>,
    event: &Value,
) -> (BatchReport, Option<String>) {
    let mut report = BatchReport::default();
    let mut endpoints: HashMap<TenantId, Vec<Endpoint>> = HashMap::new();
    let started = std::time::Instant::now();
    for (seq, record) in stream::records(event) {
        report.records += 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                // Not a record of ours: retrying cannot fix it.
                tracing::error!(error = %e, "stream record skipped");
                continue;
            }
        };
        for e in events_of(&record) {
            report
                .events
                .push((e.id.clone(), e.kind.as_str().to_string()));
            if let Err(err) = fan_out(app, &e, &mut endpoints, &mut report, started).await {
                tracing::error!(error = %format!("{err:#}"), event_id = %e.id, "event not handled; the batch resumes here");
                return (report, seq);
            }
        }
    }
    (report, None)
}

async fn fan_out<M: Mailer>(
    app: &App<M>,
    e: &Event,
    cache: &mut HashMap<TenantId, Vec<Endpoint>>,
    report: &mut BatchReport,
    started: std::time::Instant,
) -> anyhow::Result<()> {
    if e.kind == EventType::SubmissionCreated {
        notify_submission(app, e).await?;
    }
    if !cache.contains_key(&e.tenant) {
        let eps = store::endpoints(&app.dynamo, &app.tenants_table, &e.tenant).await?;
        cache.insert(e.tenant.clone(), eps);
    }
    let body = e.payload().to_string();
    for ep in cache[&e.tenant].iter().filter(|ep| ep.wants(e.kind)) {
        let now = app.clock.now();
        let created = store::create_delivery(
            &app.dynamo,
            &app.ops_table,
            &e.tenant,
            &ep.id,
            &e.id,
            e.kind.as_str(),
            &body,
            &rfc3339(now),
            now.unix_timestamp(),
        )
        .await?;
        let (attempts, first) = if created {
            (0, now.unix_timestamp())
        } else {
            // Handed over again: attempt only if the first handling stopped before its attempt.
            match store::delivery(&app.dynamo, &app.ops_table, &e.tenant, &ep.id, &e.id).await? {
                Some(d) if d.attempts == 0 && d.state == "pending" => (0, d.first_attempt_at),
                _ => continue,
            }
        };
        if started.elapsed() >= app.inline_budget {
            // Attempted from the queue at once instead (as a retry that is due).
            let r = Retry {
                tenant: ep.tenant.clone(),
                webhook_id: ep.id.clone(),
                event_id: e.id.clone(),
                not_before: now.unix_timestamp(),
            };
            enqueue(app, &r, Duration::ZERO).await?;
            report.queued += 1;
            continue;
        }
        if attempt(app, ep, &e.id, e.kind.as_str(), &body, attempts, first).await? {
            report.delivered += 1;
        } else {
            report.failed_attempts += 1;
        }
    }
    Ok(())
}

/// One signed attempt, its retry scheduled (or the endpoint marked failing) and its log entry
/// written. True when delivered.
pub async fn attempt<M: Mailer>(
    app: &App<M>,
    ep: &Endpoint,
    event_id: &str,
    event_type: &str,
    body: &str,
    attempts_before: i64,
    first_attempt_at: i64,
) -> anyhow::Result<bool> {
    let now = app.clock.now();
    let t = now.unix_timestamp();
    let headers = [
        (
            signing::HEADER,
            signing::header(&ep.signing_secrets(t), t, body.as_bytes()),
        ),
        ("webhook-id", event_id.to_string()),
        ("webhook-event", event_type.to_string()),
    ];
    let out = app
        .deliverer
        .post(&ep.url, &headers, Bytes::from(body.to_string()))
        .await;
    let state = if out.delivered() {
        "delivered"
    } else {
        let failures = (attempts_before + 1).max(1) as u32;
        let elapsed = Duration::from_secs((t - first_attempt_at).max(0) as u64);
        match retry::after_failure(failures, elapsed, (app.jitter)()) {
            After::RetryIn(wait) => {
                enqueue(
                    app,
                    &Retry {
                        tenant: ep.tenant.clone(),
                        webhook_id: ep.id.clone(),
                        event_id: event_id.to_string(),
                        not_before: t + wait.as_secs() as i64,
                    },
                    wait,
                )
                .await?;
                "pending"
            }
            After::GiveUp => {
                if store::mark_failing(
                    &app.dynamo,
                    &app.tenants_table,
                    &ep.tenant,
                    &ep.id,
                    &rfc3339(now),
                )
                .await?
                {
                    tracing::warn!(tenant_id = %ep.tenant, webhook_id = %ep.id, "webhook endpoint marked failing after 24 hours of failed deliveries");
                    tell_owners_failing(app, ep).await;
                }
                "failed"
            }
        }
    };
    tracing::info!(
        tenant_id = %ep.tenant,
        webhook_id = %ep.id,
        event_id,
        status = out.status.unwrap_or(0),
        error = out.error.unwrap_or(""),
        latency_ms = out.latency_ms,
        state,
        "webhook attempt"
    );
    store::record_attempt(
        &app.dynamo,
        &app.ops_table,
        &ep.tenant,
        &ep.id,
        event_id,
        &AttemptLog {
            at: rfc3339(now),
            status: out.status,
            latency_ms: out.latency_ms,
            error: out.error.map(String::from),
            delivered: out.delivered(),
        },
        state,
    )
    .await?;
    Ok(out.delivered())
}

/// Queues a retry to be attempted after `wait` (in hops of at most 15 minutes).
pub async fn enqueue<M: Mailer>(app: &App<M>, r: &Retry, wait: Duration) -> anyhow::Result<()> {
    let delay = wait.min(retry::MAX_QUEUE_DELAY).as_secs() as i32;
    app.sqs
        .send_message()
        .queue_url(&app.retry_queue_url)
        .message_body(r.to_json().to_string())
        .delay_seconds(delay)
        .send()
        .await
        .context("SendMessage retry")?;
    Ok(())
}

async fn retries<M: Mailer>(app: &App<M>, event: &Value) -> anyhow::Result<Value> {
    let mut failures = vec![];
    for rec in event["Records"].as_array().into_iter().flatten() {
        let id = rec["messageId"].as_str().unwrap_or_default().to_string();
        let Some(r) = rec["body"]
            .as_str()
            .and_then(|b| serde_json::from_str::<Value>(b).ok())
            .as_ref()
            .and_then(Retry::from_json)
        else {
            tracing::error!(message_id = %id, "retry message skipped: not a retry");
            continue;
        };
        if let Err(e) = retry_one(app, &r).await {
            tracing::error!(error = %format!("{e:#}"), event_id = %r.event_id, "retry not handled; the queue hands it over again");
            failures.push(json!({ "itemIdentifier": id }));
        }
    }
    Ok(json!({ "batchItemFailures": failures }))
}

/// One queued retry: too early, it hops again; else the delivery is attempted if it is still
/// pending and its endpoint still wants it.
pub async fn retry_one<M: Mailer>(app: &App<M>, r: &Retry) -> anyhow::Result<()> {
    let now = app.clock.now().unix_timestamp();
    if now < r.not_before {
        return enqueue(app, r, Duration::from_secs((r.not_before - now) as u64)).await;
    }
    let Some(d) = store::delivery(
        &app.dynamo,
        &app.ops_table,
        &r.tenant,
        &r.webhook_id,
        &r.event_id,
    )
    .await?
    else {
        return Ok(());
    };
    if d.state != "pending" {
        return Ok(());
    }
    let Some(ep) =
        store::endpoint(&app.dynamo, &app.tenants_table, &r.tenant, &r.webhook_id).await?
    else {
        return Ok(());
    };
    let Some(kind) = EventType::parse(&d.event_type) else {
        return Ok(());
    };
    if !ep.wants(kind) {
        return Ok(());
    }
    let Some(body) = d.body.as_deref() else {
        return Ok(());
    };
    attempt(
        app,
        &ep,
        &d.event_id,
        &d.event_type,
        body,
        d.attempts,
        d.first_attempt_at,
    )
    .await?;
    Ok(())
}

/// A new submission's notification: at once to each recipient (recorded per event and
/// recipient once sent, so a record handed over again mails no one twice), or counted into the
/// form's digest.
async fn notify_submission<M: Mailer>(app: &App<M>, e: &Event) -> anyhow::Result<()> {
    let Some(form) = e.form_id.as_deref() else {
        return Ok(());
    };
    let st = notify::settings(&app.dynamo, &app.tenants_table, &e.tenant, form).await?;
    if !st.enabled {
        return Ok(());
    }
    let now = app.clock.now();
    if let Some(period) = notify::period(st.mode, now) {
        return notify::add_to_digest(
            &app.dynamo,
            &app.ops_table,
            &e.tenant,
            form,
            &period,
            &e.id,
            now.unix_timestamp(),
        )
        .await;
    }
    let members = notify::members(&app.dynamo, &app.tenants_table, &e.tenant).await?;
    let (subject, text) = if st.include_answers {
        notify::instant_text_with_answers(&app.app_base_url, form, e.lead.as_str(), &e.answers)
    } else {
        notify::instant_text(&app.app_base_url, form, e.lead.as_str())
    };
    for m in notify::recipients(&st, &members) {
        let (db, ops) = (&app.dynamo, app.ops_table.as_str());
        if notify::instant_sent(db, ops, &e.tenant, &e.id, &m.user_id).await? {
            continue;
        }
        let email = shared_mail::email(&m.email, &subject, &text);
        shared_mail::send(&app.mailer, &email).await?;
        notify::mark_instant_sent(db, ops, &e.tenant, &e.id, &m.user_id, now.unix_timestamp())
            .await?;
        tracing::info!(tenant_id = %e.tenant, user_id = %m.user_id, event_id = %e.id, "new-lead notification sent");
    }
    Ok(())
}

/// The scheduled run: the digests of the periods that ended (within the lookback) and are not
/// sent yet. Each recipient gets a digest once; an email that fails leaves the digest due for a
/// later run, and the run answers an error after trying the others (the schedule's retry, or the
/// next hour, sends the rest). The answer is how many emails were sent.
pub async fn digests<M: Mailer>(app: &App<M>) -> anyhow::Result<usize> {
    let now = app.clock.now();
    let mut sent = 0;
    let mut failed = 0;
    for period in notify::ended_periods(now) {
        for (tenant, form) in notify::due(&app.dynamo, &app.ops_table, &period).await? {
            match send_digest(app, &tenant, &form, &period).await {
                Ok(n) => sent += n,
                Err(e) => {
                    failed += 1;
                    tracing::error!(tenant_id = %tenant, form_id = %form, period = %period, error = %format!("{e:#}"), "digest not sent; left due for the next run");
                }
            }
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} digest(s) not sent ({sent} emails sent); left due for the next run"
        );
    }
    Ok(sent)
}

/// One form's digest of one period: leased, sent to each recipient still missing it, marked
/// sent when everyone has it.
async fn send_digest<M: Mailer>(
    app: &App<M>,
    tenant: &TenantId,
    form: &str,
    period: &str,
) -> anyhow::Result<usize> {
    let now = app.clock.now();
    let (db, ops) = (&app.dynamo, app.ops_table.as_str());
    let Some(lease) =
        notify::lease_digest(db, ops, tenant, form, period, now.unix_timestamp()).await?
    else {
        return Ok(0);
    };
    let st = notify::settings(db, &app.tenants_table, tenant, form).await?;
    let mut sent = 0;
    if lease.count > 0 && st.enabled {
        let members = notify::members(db, &app.tenants_table, tenant).await?;
        let (subject, text) = notify::digest_text(&app.app_base_url, form, lease.count, period);
        let mut failed = None;
        for m in notify::recipients(&st, &members) {
            if lease.sent_to.contains(&m.user_id) {
                continue;
            }
            let email = shared_mail::email(&m.email, &subject, &text);
            match shared_mail::send(&app.mailer, &email).await {
                Ok(()) => {
                    notify::digest_sent_to(db, ops, tenant, form, period, &m.user_id).await?;
                    sent += 1;
                }
                Err(e) => failed = Some(e.context(format!("digest to user {}", m.user_id))),
            }
        }
        if let Some(e) = failed {
            notify::release_digest(db, ops, tenant, form, period).await?;
            return Err(e);
        }
        tracing::info!(tenant_id = %tenant, form_id = %form, period = %period, count = lease.count, emails = sent, "digest sent");
    }
    notify::finish_digest(db, ops, tenant, form, period, &rfc3339(now)).await?;
    Ok(sent)
}

/// The owners learn that an endpoint was marked failing (once: only the call that marked it
/// sends). A failure to email is logged, never retried: the endpoint's status shows it too.
async fn tell_owners_failing<M: Mailer>(app: &App<M>, ep: &Endpoint) {
    let members = match notify::members(&app.dynamo, &app.tenants_table, &ep.tenant).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "owners not read; failing endpoint not emailed");
            return;
        }
    };
    let owners = notify::Settings::default_for("");
    let (subject, text) = notify::failing_text(&app.app_base_url, &ep.id);
    for m in notify::recipients(&owners, &members) {
        let _ =
            shared_mail::send(&app.mailer, &shared_mail::email(&m.email, &subject, &text)).await;
    }
}
