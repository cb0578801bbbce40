//! The daily deadline check of data-subject requests: every open part due within 7 days or
//! overdue, found through the privacy table's `by_due` index (one Query per shard, reading only
//! what is due: never a scan), grouped by controller; each tenant's owners and admins get one
//! digest (request ids, types, statuses and dates: no subject data), the platform's own requests
//! go to the operator address.
//!
//! Idempotent per day: a controller's digest of a day is claimed in the ops table before it is
//! sent (a conditional put), and released if the email could not be sent, so a retried or
//! repeated run sends each digest once.

pub mod config;

use std::collections::BTreeMap;
use std::sync::Arc;

use shared_accounts::dynamo::AccountStore;
use shared_core::clock::Clock;
use shared_core::keys;
use shared_mail::Mailer;
use shared_privacy::dsar::deadlines::ymd;
use shared_privacy::dsar::emails::{self, DigestLine};
use shared_privacy::dsar::model::Controller;
use shared_privacy::dsar::progress::{controller_recipients, send};
use shared_privacy::dsar::store::DsarStore;
use shared_privacy::dsar::store::DueEntry;
use time::Duration;

pub struct App<M: Mailer> {
    pub store: DsarStore,
    /// A tenant's team (its owners and admins).
    pub accounts: AccountStore,
    pub mailer: M,
    pub clock: Arc<dyn Clock>,
    pub operator_email: String,
    /// How far ahead a request counts as due soon.
    pub window_days: i64,
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub requests: usize,
    pub overdue: usize,
    pub digests_sent: usize,
    pub digests_already_sent: usize,
    pub digests_failed: usize,
}

pub async fn run<M: Mailer>(app: &App<M>) -> anyhow::Result<Report> {
    let now = app.clock.now();
    let today = now.date();
    let due = app
        .store
        .due_until(today + Duration::days(app.window_days))
        .await?;
    let mut by_controller: BTreeMap<String, (Controller, Vec<DueEntry>)> = BTreeMap::new();
    for e in due {
        by_controller
            .entry(e.controller.to_stored())
            .or_insert_with(|| (e.controller.clone(), Vec::new()))
            .1
            .push(e);
    }
    let mut report = Report::default();
    let day = ymd(today);
    for (stored, (controller, entries)) in by_controller {
        report.requests += entries.len();
        let lines: Vec<DigestLine> = entries
            .iter()
            .map(|e| DigestLine {
                request_id: e.request_id.clone(),
                request_type: e.request_type,
                status: e.status.as_str(),
                due: e.due,
                overdue: e.due < today,
            })
            .collect();
        report.overdue += lines.iter().filter(|l| l.overdue).count();
        let marker = keys::dsar_digest(&day, &stored);
        let expires = (now + Duration::days(3)).unix_timestamp();
        if !app.store.claim_digest(&marker, expires).await? {
            report.digests_already_sent += 1;
            continue;
        }
        let recipients =
            controller_recipients(&app.accounts, &controller, &app.operator_email).await?;
        let mut ok = true;
        for to in &recipients {
            ok &= send(&app.mailer, &emails::digest(to, today, &lines))
                .await
                .is_ok();
        }
        if ok {
            report.digests_sent += 1;
            tracing::info!(controller = %stored, requests = lines.len(), "deadline digest sent");
        } else {
            app.store.release_digest(&marker).await?;
            report.digests_failed += 1;
        }
    }
    shared_core::telemetry::metric("DsarRequestsOverdue", report.overdue as f64, "Count", &[]);
    shared_core::telemetry::metric(
        "DsarRequestsDueSoon",
        (report.requests - report.overdue) as f64,
        "Count",
        &[],
    );
    tracing::info!(
        requests = report.requests,
        overdue = report.overdue,
        sent = report.digests_sent,
        "deadline check done"
    );
    Ok(report)
}
