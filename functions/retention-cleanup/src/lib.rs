//! Scheduled retention cleanup: every retention rule of the privacy requirements, enforced once a
//! day from the expiry indexes (docs/retention.md).
//!
//! A run is dated by its scheduled event (`time`). It takes a lease (one run at a time), sweeps
//! every rule's expiry buckets of the days since the last completed run, day by day, rule by
//! rule, shard by shard, and saves where it got to: when its time budget runs out (Lambda's 15
//! minutes), or a step fails, the next run continues from that checkpoint. Every step is
//! idempotent (a delete of a deleted item is harmless), so a repeated or interrupted step only
//! costs time. Nothing is found by a scan: the cost follows what expires, not what is stored.

pub mod config;
mod erase;
pub mod event;
mod holds;
pub mod report;
mod rules;
mod state;
mod store;

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use shared_core::blind_index::BlindIndexKey;
use shared_core::clock::{rfc3339, Clock, IdGenerator};
use shared_core::keys;
use shared_core::retention::{self, rule};
use time::{Date, Duration};

use crate::config::{Buckets, Settings, Tables};
use crate::report::Report;
use crate::state::Cursor;

/// The function's dependencies, built once per container.
pub struct App {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub tables: Tables,
    pub buckets: Buckets,
    /// Finds a closed tenant's login-index items (keyed by the email's blind index).
    pub key: BlindIndexKey,
    /// The wall clock: checks the event's time and times the lease. The run's "now" is the
    /// event's time, not this clock.
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub settings: Settings,
}

/// How much a run may do before it checkpoints.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Stop before this instant (Lambda's deadline minus the safety margin).
    pub deadline: Option<Instant>,
    /// Stop after this many Query pages (tests: an interrupted run).
    pub max_pages: Option<u64>,
}

/// One run in progress.
pub struct Run<'a> {
    pub(crate) app: &'a App,
    /// The UTC day of the run's now (the scheduled event's time): buckets of this day and
    /// before are due.
    pub(crate) day: Date,
    pub(crate) dry_run: bool,
    limits: Limits,
    pages: u64,
    /// Leads under legal hold met while erasing the current tenant.
    pub(crate) held_leads: u64,
    /// Objects of its leads counted while erasing the current tenant.
    pub(crate) lead_objects: u64,
    /// The legal-holds registry, read once on first use (`holds.rs`).
    pub(crate) holds: Option<holds::Holds>,
    pub(crate) report: Report,
}

impl Run<'_> {
    pub(crate) fn out_of_budget(&self) -> bool {
        self.limits.max_pages.is_some_and(|m| self.pages >= m)
            || self.limits.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// The day after the run: where held items go, so the next run reports them again.
    pub(crate) fn next_day(&self) -> Date {
        self.day.next_day().unwrap_or(Date::MAX)
    }
}

/// Whether a step finished or stopped at the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    Done,
    OutOfBudget,
}

/// Handles one invocation: the report as JSON, or a refusal (`{"status":"refused","error":...}`)
/// for an event it will not run (no retry would help).
pub async fn handle(app: &App, event: &Value, limits: Limits) -> Value {
    let clock_now = app.clock.now();
    let request = match event::parse(event, clock_now, app.settings.allow_event_time_skew) {
        Ok(r) => r,
        Err(refusal) => {
            tracing::error!(code = refusal.code, "retention run refused");
            shared_core::telemetry::metric(
                "RetentionRuns",
                1.0,
                "Count",
                &[("Function", "retention-cleanup"), ("Status", "refused")],
            );
            return json!({
                "status": "refused",
                "error": {"code": refusal.code, "message": refusal.message}
            });
        }
    };
    let report = run(app, request, limits).await;
    serde_json::to_value(&report).unwrap_or(Value::Null)
}

/// Runs the sweep dated `request.at`.
pub async fn run(app: &App, request: event::RunRequest, limits: Limits) -> Report {
    let run_id = app.ids.new_id(app.clock.now());
    let mut r = Run {
        app,
        day: request.at.date(),
        dry_run: request.dry_run,
        limits,
        pages: 0,
        held_leads: 0,
        lead_objects: 0,
        holds: None,
        report: Report {
            run_id: run_id.clone(),
            run_at: rfc3339(request.at),
            run_day: request.at.date().to_string(),
            dry_run: request.dry_run,
            ..Report::default()
        },
    };
    let state = if r.dry_run {
        state::read(&r).await
    } else {
        state::acquire(&r, &run_id).await
    };
    let state = match state {
        Ok(Some(s)) => s,
        Ok(None) => {
            r.report.status = "busy";
            finish(&r).await;
            return r.report;
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "retention state unavailable");
            r.report.status = "partial";
            r.report.fail("state", r.report.run_day.clone(), "lease");
            finish(&r).await;
            return r.report;
        }
    };

    let clock_day = app.clock.now().date();
    let fresh_start = r.day.min(clock_day) - Duration::days(i64::from(app.settings.catch_up_days));
    let days = retention::days_to_sweep(state.done_through, r.day, fresh_start);
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        r.report.days = Some((first.to_string(), last.to_string()));
    }
    // A dry run reports what is due; it does not resume a real run's position.
    let resume = if r.dry_run { None } else { state.cursor };
    r.report.resumed_from = resume.map(|c| c.to_string());

    let mut checkpoint: Option<Cursor> = None;
    'days: for &day in &days {
        for (rule_index, &rule_name) in rule::ALL.iter().enumerate() {
            for shard in 0..rules::shards(rule_name) {
                let unit = Cursor {
                    day,
                    rule: rule_index,
                    shard,
                };
                if resume.is_some_and(|c| unit < c) {
                    continue;
                }
                match rules::sweep_unit(&mut r, rule_name, day, shard).await {
                    Ok(Progress::Done) => {}
                    Ok(Progress::OutOfBudget) => {
                        checkpoint = Some(checkpoint.map_or(unit, |c| c.min(unit)));
                        break 'days;
                    }
                    Err(e) => {
                        tracing::error!(
                            rule = rule_name,
                            day = %day,
                            shard,
                            error = %format!("{e:#}"),
                            "retention step failed"
                        );
                        r.report.fail(rule_name, day.to_string(), "sweep");
                        checkpoint.get_or_insert(unit);
                    }
                }
            }
        }
    }

    r.report.status = if checkpoint.is_some() {
        "partial"
    } else {
        "completed"
    };
    r.report.checkpoint = checkpoint.map(|c| c.to_string());
    if !r.dry_run {
        let done_through = match checkpoint {
            None => Some(state.done_through.map_or(r.day, |d| d.max(r.day))),
            Some(_) => state.done_through,
        };
        if let Err(e) = state::save_and_release(&r, &run_id, done_through, checkpoint).await {
            tracing::error!(error = %format!("{e:#}"), "retention checkpoint not saved");
            r.report
                .fail("state", r.report.run_day.clone(), "checkpoint");
            r.report.status = "partial";
        }
    }
    finish(&r).await;
    r.report
}

/// Logs the report (one structured JSON line: ids and counts only), stores it, emits metrics.
async fn finish(r: &Run<'_>) {
    let report = &r.report;
    let json = serde_json::to_string(report).unwrap_or_default();
    tracing::info!(report = %json, status = report.status, dry_run = report.dry_run, "retention run report");
    for (rule_name, counts) in &report.rules {
        shared_core::telemetry::metric(
            "RetentionDeleted",
            (counts.deleted + counts.workspace_items) as f64,
            "Count",
            &[("Function", "retention-cleanup"), ("Rule", rule_name)],
        );
        if counts.held > 0 {
            shared_core::telemetry::metric(
                "RetentionHeld",
                counts.held as f64,
                "Count",
                &[("Function", "retention-cleanup"), ("Rule", rule_name)],
            );
        }
    }
    shared_core::telemetry::metric(
        "RetentionFailures",
        report.failures.len() as f64,
        "Count",
        &[("Function", "retention-cleanup")],
    );
    shared_core::telemetry::metric(
        "RetentionRuns",
        1.0,
        "Count",
        &[("Function", "retention-cleanup"), ("Status", report.status)],
    );
    if let Err(e) = state::store_report(r, &json).await {
        tracing::error!(error = %format!("{e:#}"), "retention report not stored");
    }
}

/// The key of the ops-table item a report is stored under.
pub fn report_key(report: &Report) -> keys::Key {
    keys::retention_report(&report.run_at, &report.run_id)
}
