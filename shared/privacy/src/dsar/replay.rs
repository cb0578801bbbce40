//! Re-applying erasures after a point-in-time restore (docs/deploy.md, "Restoring a table").
//!
//! A DynamoDB point-in-time restore brings a table back as it was at the restore point: every
//! person erased since then is back in it. The erasures completed since are known from three
//! records that the restore does not rewind: the completion certificates in the exports bucket
//! (S3, kept 7 days), the completed erasure parts of the privacy table as it was *before* the
//! restore (kept 24 months; the operator restores into a new table and keeps the old one until
//! this has run), and that table's suppression list. Each erasure is re-applied through the
//! worker's own plan and steps ([`Worker::reapply_erasure`]), so it removes exactly what the
//! erasure removed; each suppression entry made since is put back. Running it twice is a no-op.
//!
//! The suppression list is re-applied as entries, never read as a list of subjects to erase: a
//! phone suppressed beside an email at the controller's choice is a second identifier of that
//! erasure, not a person whose own data was erased.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::job::{JobDispatcher, JobScope, RequestProgress};
use super::model::{RequestType, Status};
use super::store::{part_from_item, request_from_item};
use super::subjects::str_attr;
use super::worker::Worker;
use shared_core::dynamo::{s, Item};
use shared_core::keys::{self, PK, SK};
use shared_mail::Mailer;

/// Where the record of past erasures is read.
#[derive(Debug, Clone)]
pub struct ReplaySources {
    /// The privacy table holding the erasure parts and the suppression list as they were
    /// before the restore (the old table, when the privacy table itself was restored).
    pub records_table: String,
}

/// What a replay read and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    pub certificates_read: u64,
    pub erasure_records_read: u64,
    pub suppression_entries_read: u64,
    pub suppression_entries_restored: u64,
    /// Distinct subjects (scope and blind index) erased since the restore point.
    pub subjects: u64,
    /// Subjects of whom something was found again and removed (in a dry run: would be).
    pub subjects_re_erased: u64,
    /// Items and objects removed, by kind (in a dry run: the targets that hold a subject).
    pub removed: BTreeMap<String, u64>,
}

impl ReplayReport {
    pub fn items_removed(&self) -> u64 {
        self.removed.values().sum()
    }
}

/// One erasure to re-apply.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Erased {
    scope_key: String,
    bidx: String,
    by_phone: bool,
    request_id: String,
}

fn scope_key(scope: &JobScope) -> String {
    match scope {
        JobScope::Tenant { tenant_id } => format!("tenant:{tenant_id}"),
        JobScope::Account => "account".into(),
    }
}

fn scope_of(key: &str) -> anyhow::Result<JobScope> {
    match key.strip_prefix("tenant:") {
        Some(t) => Ok(JobScope::Tenant {
            tenant_id: shared_core::domain::TenantId::parse(t)?,
        }),
        None => Ok(JobScope::Account),
    }
}

/// Re-applies every erasure completed at or after `since`. `dry_run`: reads and plans, and
/// changes nothing.
pub async fn replay_erasures<P: RequestProgress, D: JobDispatcher, M: Mailer>(
    worker: &Worker<P, D, M>,
    sources: &ReplaySources,
    since: OffsetDateTime,
    dry_run: bool,
) -> anyhow::Result<ReplayReport> {
    let mut report = ReplayReport::default();
    let mut erased: BTreeSet<Erased> = BTreeSet::new();
    certificates(worker, since, &mut report, &mut erased).await?;
    records(worker, sources, since, &mut report, &mut erased).await?;
    suppressions(worker, sources, since, dry_run, &mut report).await?;
    // One subject erased twice (two requests) is re-erased once.
    let mut seen = BTreeSet::new();
    let at = shared_core::clock::rfc3339(worker.clock.now());
    for e in erased {
        if !seen.insert((e.scope_key.clone(), e.bidx.clone())) {
            continue;
        }
        report.subjects += 1;
        let scope = scope_of(&e.scope_key)?;
        let counts = worker
            .reapply_erasure(&e.request_id, &scope, &e.bidx, e.by_phone, &at, dry_run)
            .await
            .with_context(|| format!("re-applying the erasure of request {}", e.request_id))?;
        if counts.values().any(|n| *n > 0) {
            report.subjects_re_erased += 1;
        }
        for (k, v) in counts {
            *report.removed.entry(k).or_default() += v;
        }
    }
    Ok(report)
}

/// The certificates still in the exports bucket (`dsar/certificates/`), completed since.
async fn certificates<P: RequestProgress, D: JobDispatcher, M: Mailer>(
    worker: &Worker<P, D, M>,
    since: OffsetDateTime,
    report: &mut ReplayReport,
    erased: &mut BTreeSet<Erased>,
) -> anyhow::Result<()> {
    let s3 = &worker.exports.s3;
    let bucket = &worker.exports.bucket;
    let mut token = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix("dsar/certificates/")
            .set_continuation_token(token)
            .send()
            .await
            .context("ListObjectsV2 certificates")?;
        for o in out.contents() {
            let Some(key) = o.key() else { continue };
            let body = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .context("GetObject certificate")?
                .body
                .collect()
                .await
                .context("reading a certificate")?
                .into_bytes();
            let c: serde_json::Value = serde_json::from_slice(&body)
                .with_context(|| format!("certificate {key} is not JSON"))?;
            report.certificates_read += 1;
            let completed = c["completed_at"]
                .as_str()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                .with_context(|| format!("certificate {key} without completed_at"))?;
            if completed < since {
                continue;
            }
            let scope: JobScope = serde_json::from_value(c["scope"].clone())
                .with_context(|| format!("certificate {key}: scope"))?;
            let (bidx, by_phone) = match (
                c["subject"]["email_blind_index"].as_str(),
                c["subject"]["phone_blind_index"].as_str(),
            ) {
                (Some(e), _) => (e, false),
                (None, Some(p)) => (p, true),
                _ => anyhow::bail!("certificate {key} names no subject"),
            };
            erased.insert(Erased {
                scope_key: scope_key(&scope),
                bidx: bidx.to_string(),
                by_phone,
                request_id: c["request_id"].as_str().unwrap_or_default().to_string(),
            });
        }
        match out.next_continuation_token() {
            Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => return Ok(()),
        }
    }
}

/// Every item of the records table that `filter` keeps (a one-pass Scan: an operator's
/// recovery, run once after a restore, not a request path).
async fn scan(
    worker_client: &aws_sdk_dynamodb::Client,
    table: &str,
    filter: &str,
    values: &[(&str, AttributeValue)],
) -> anyhow::Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let mut q = worker_client
            .scan()
            .table_name(table)
            .filter_expression(filter)
            .consistent_read(true)
            .set_exclusive_start_key(start);
        for (k, v) in values {
            q = q.expression_attribute_values(*k, v.clone());
        }
        let out = q.send().await.context("Scan records table")?;
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(items),
        }
    }
}

/// The erasure parts completed since, in the records table (kept 24 months, so they cover a
/// restore point whose certificates have expired).
async fn records<P: RequestProgress, D: JobDispatcher, M: Mailer>(
    worker: &Worker<P, D, M>,
    sources: &ReplaySources,
    since: OffsetDateTime,
    report: &mut ReplayReport,
    erased: &mut BTreeSet<Erased>,
) -> anyhow::Result<()> {
    let client = worker.store.client();
    let parts = scan(
        client,
        &sources.records_table,
        "begins_with(sk, :part) AND request_type = :erasure",
        &[(":part", s("PART#")), (":erasure", s("erasure"))],
    )
    .await?;
    for it in parts {
        let p = part_from_item(&it)?;
        if p.request_type != RequestType::Erasure || p.status != Status::Completed {
            continue;
        }
        report.erasure_records_read += 1;
        // Completed when the worker reported it (the part's closure).
        if p.closed_at.is_none_or(|t| t < since) {
            continue;
        }
        let scope = p.controller.job_scope();
        let request = client
            .get_item()
            .table_name(&sources.records_table)
            .key(PK, s(keys::dsar_request(&p.request_id).pk))
            .key(SK, s(keys::dsar_request(&p.request_id).sk))
            .consistent_read(true)
            .send()
            .await
            .context("GetItem request")?
            .item;
        let phone = match request {
            Some(r) => request_from_item(&r)?.subject_phone_bidx,
            None => None,
        };
        let (bidx, by_phone) = match phone {
            Some(p) => (p, true),
            None => (p.email_bidx.clone(), false),
        };
        erased.insert(Erased {
            scope_key: scope_key(&scope),
            bidx,
            by_phone,
            request_id: p.request_id.clone(),
        });
    }
    Ok(())
}

/// The suppression entries made since, put back into the live privacy table when the restore
/// lost them (a conditional put: an entry present is left as it is).
async fn suppressions<P: RequestProgress, D: JobDispatcher, M: Mailer>(
    worker: &Worker<P, D, M>,
    sources: &ReplaySources,
    since: OffsetDateTime,
    dry_run: bool,
    report: &mut ReplayReport,
) -> anyhow::Result<()> {
    let client = worker.store.client();
    let live = &worker.store.tables().privacy;
    let entries = scan(
        client,
        &sources.records_table,
        "contains(pk, :sup)",
        &[(":sup", s("#SUPPRESSION"))],
    )
    .await?;
    for it in entries {
        report.suppression_entries_read += 1;
        let made =
            str_attr(&it, "created_at").and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
        if made.is_none_or(|t| t < since) {
            continue;
        }
        if dry_run {
            let present = client
                .get_item()
                .table_name(live)
                .key(PK, it[PK].clone())
                .key(SK, it[SK].clone())
                .consistent_read(true)
                .send()
                .await
                .context("GetItem suppression")?
                .item
                .is_some();
            report.suppression_entries_restored += u64::from(!present);
            continue;
        }
        let put = client
            .put_item()
            .table_name(live)
            .set_item(Some(it.clone()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => report.suppression_entries_restored += 1,
            Err(e) => {
                let e = e.into_service_error();
                if !e.is_conditional_check_failed_exception() {
                    return Err(anyhow::Error::new(e).context("PutItem suppression"));
                }
            }
        }
    }
    Ok(())
}
