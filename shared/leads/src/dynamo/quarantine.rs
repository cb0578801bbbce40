//! Quarantined submissions in the ops table (TTL `expires_at`: 30 days): one item each under
//! its form (`TENANT#<t>#QUARANTINE#<form>`, `Q#<id>`), with the guard items of used
//! proof-of-work challenges (`TENANT#<t>#POW#<challenge>`, expiring with the challenge).

use std::collections::BTreeMap;

use anyhow::{anyhow, Context};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use time::OffsetDateTime;

use super::intake::{
    idempotency_to_item, put_posted, rate_form_attr, rate_ip_attr, DynamoIntakeStore,
};
use crate::ports::{CommitError, QuarantineWrite, QuarantinedSubmission, UsedChallenge};
use crate::spam;
use crate::{Page, StartKey};
use shared_core::domain::{ConsentRecord, FormId, LeadId, SubmissionId, TechnicalData, TenantId};
use shared_core::dynamo::attrs::{
    epoch, get_n_opt, get_s, item, key_item, n, put, put_opt, s, timestamp, Item,
};
use shared_core::keys::{self, PK, SK};
use shared_core::retention;

/// The attributes holding the visitor's data: removed when the submission is released (they
/// moved to the lead).
pub(crate) const PERSONAL: [&str; 9] = [
    "fields",
    "consents",
    "ip",
    "user_agent",
    "referrer",
    "page_url",
    "email_bidx",
    "phone_bidx",
    "subject_bidx",
];

/// The ops table's index of quarantined submissions by the subject they are of
/// (`subject_bidx`, keys only; range `pk`, so a query is bounded to one tenant's quarantine):
/// a data-subject request finds them without a scan (template.yaml).
pub const SUBJECT_INDEX: &str = "by_subject";

/// Whose a quarantined submission is, for data-subject requests: the posted email's blind
/// index, or the phone's when no email was posted (the rule of a lead's submissions: a phone
/// next to an address may be anyone's, docs/privacy.md).
pub fn subject_of(email_bidx: Option<&str>, phone_bidx: Option<&str>) -> Option<String> {
    email_bidx.or(phone_bidx).map(str::to_string)
}

pub(crate) fn challenge_put(
    table: &str,
    tenant: &TenantId,
    c: &UsedChallenge,
) -> anyhow::Result<TransactWriteItem> {
    let mut it = item(&keys::used_challenge(tenant, &c.challenge));
    put(&mut it, "expires_at", epoch(c.expires_at));
    Ok(TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(it))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .context("challenge guard put")?,
        )
        .build())
}

/// Marks a quarantined submission released to `lead`/`submission`, once, removing the
/// visitor's data it held.
pub(crate) fn release_update(
    table: &str,
    tenant: &TenantId,
    form: &FormId,
    quarantine_id: &str,
    lead: &LeadId,
    submission: &SubmissionId,
    at: OffsetDateTime,
) -> anyhow::Result<TransactWriteItem> {
    let mut u = Update::builder()
        .table_name(table)
        .set_key(Some(key_item(&keys::quarantine(
            tenant,
            form,
            quarantine_id,
        ))))
        .condition_expression("attribute_exists(pk) AND attribute_not_exists(released_at)")
        .expression_attribute_values(":at", timestamp(at))
        .expression_attribute_values(":lead", s(lead.as_str()))
        .expression_attribute_values(":sub", s(submission.as_str()));
    let mut remove = Vec::new();
    for (i, name) in PERSONAL.iter().enumerate() {
        let alias = format!("#p{i}");
        remove.push(alias.clone());
        u = u.expression_attribute_names(alias, *name);
    }
    Ok(TransactWriteItem::builder()
        .update(
            u.update_expression(format!(
                "SET released_at = :at, lead_id = :lead, submission_id = :sub REMOVE {}",
                remove.join(", ")
            ))
            .build()
            .context("release update")?,
        )
        .build())
}

pub(crate) fn quarantine_to_item(tenant: &TenantId, q: &QuarantinedSubmission) -> Item {
    let mut it = item(&keys::quarantine(tenant, &q.form_id, &q.quarantine_id));
    put(&mut it, "tenant_id", s(tenant.as_str()));
    put(&mut it, "form_id", s(q.form_id.as_str()));
    put(&mut it, "quarantine_id", s(&q.quarantine_id));
    put(&mut it, "received_at", timestamp(q.received_at));
    put_posted(&mut it, &q.fields, &q.consents, &q.technical);
    put_opt(&mut it, "email_bidx", q.email_bidx.clone());
    put_opt(&mut it, "phone_bidx", q.phone_bidx.clone());
    put_opt(
        &mut it,
        "subject_bidx",
        subject_of(q.email_bidx.as_deref(), q.phone_bidx.as_deref()),
    );
    // Swept by the retention run of the day after its end (rule `quarantine`): TTL alone may
    // lag up to 48 hours past the 30 days the policy states.
    let key = keys::quarantine(tenant, &q.form_id, &q.quarantine_id);
    put(
        &mut it,
        "exp_bucket",
        s(retention::expiry_bucket_at(
            retention::rule::QUARANTINE,
            q.expires_at,
            &key,
        )),
    );
    put(&mut it, "score", n(q.score));
    put(
        &mut it,
        "reasons",
        AttributeValue::L(q.reasons.iter().map(s).collect()),
    );
    put(&mut it, "expires_at", epoch(q.expires_at));
    it
}

fn time_of(it: &Item, name: &str) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::parse(
        get_s(it, name)?,
        &time::format_description::well_known::Rfc3339,
    )
    .with_context(|| format!("{name} is not a timestamp"))
}

pub(crate) fn quarantine_from_item(it: &Item) -> anyhow::Result<QuarantinedSubmission> {
    let opt = |name: &str| it.get(name).and_then(|v| v.as_s().ok()).cloned();
    let fields: BTreeMap<String, String> = it
        .get("fields")
        .and_then(|v| v.as_m().ok())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
                .collect()
        })
        .unwrap_or_default();
    let consents = it
        .get("consents")
        .and_then(|v| v.as_l().ok())
        .map(|l| {
            l.iter()
                .filter_map(|c| c.as_m().ok())
                .filter_map(|m| {
                    Some(ConsentRecord {
                        key: m.get("key")?.as_s().ok()?.clone(),
                        version: m.get("version")?.as_s().ok()?.clone(),
                        granted: *m.get("granted")?.as_bool().ok()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let released = match (opt("lead_id"), opt("submission_id")) {
        (Some(l), Some(sb)) => Some((LeadId::parse(&l)?, SubmissionId::parse(&sb)?)),
        _ => None,
    };
    Ok(QuarantinedSubmission {
        quarantine_id: get_s(it, "quarantine_id")?.to_string(),
        form_id: FormId::parse(get_s(it, "form_id")?)?,
        received_at: time_of(it, "received_at")?,
        fields,
        consents,
        technical: TechnicalData {
            ip: opt("ip"),
            user_agent: opt("user_agent"),
            referrer: opt("referrer"),
            page_url: opt("page_url"),
        },
        email_bidx: opt("email_bidx"),
        phone_bidx: opt("phone_bidx"),
        score: get_n_opt(it, "score")?
            .unwrap_or(0)
            .clamp(0, i64::from(u32::MAX)) as u32,
        reasons: it
            .get("reasons")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
            .unwrap_or_default(),
        expires_at: OffsetDateTime::from_unix_timestamp(get_n_opt(it, "expires_at")?.unwrap_or(0))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        released,
    })
}

impl DynamoIntakeStore {
    /// The record, the challenge's guard and the idempotency record, in one transaction.
    pub(crate) async fn put_quarantined(&self, w: &QuarantineWrite) -> Result<(), CommitError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Part {
            Record,
            Challenge,
            Idempotency,
            /// The usage counter item: the minute's rate counts only.
            Rate,
            /// The form's count of quarantined posts in this pressure window.
            Pressure,
        }
        let ops = &self.tables().ops;
        let mut parts = vec![(
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(ops)
                        .set_item(Some(quarantine_to_item(&w.tenant, &w.record)))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .context("quarantine put")?,
                )
                .build(),
            Part::Record,
        )];
        if let Some(c) = &w.challenge {
            parts.push((challenge_put(ops, &w.tenant, c)?, Part::Challenge));
        }
        if let Some(rec) = &w.idempotency {
            parts.push((
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(ops)
                            .set_item(Some(idempotency_to_item(&w.tenant, &w.record.form_id, rec)))
                            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
                            .expression_attribute_values(":now", epoch(w.record.received_at))
                            .build()
                            .context("idempotency put")?,
                    )
                    .build(),
                Part::Idempotency,
            ));
        }
        // The minute's counts grow only below their limits, as intake's own increment does;
        // the month's count `n` (the quota's) is not touched.
        let r = &w.rate;
        let mut add = vec!["#rf :one".to_string()];
        let mut condition = "(attribute_not_exists(#rf) OR #rf < :flimit)".to_string();
        let mut upd = Update::builder()
            .table_name(ops)
            .set_key(Some(key_item(&keys::usage_month(
                &w.tenant,
                &w.usage_month,
            ))))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":exp", epoch(w.usage_expires_at))
            .expression_attribute_names("#rf", rate_form_attr(r.window, &w.record.form_id))
            .expression_attribute_values(":flimit", n(r.per_form_limit));
        if let Some(h) = &r.ip_hash {
            add.push("#ri :one".into());
            condition.push_str(" AND (attribute_not_exists(#ri) OR #ri < :iplimit)");
            upd = upd
                .expression_attribute_names("#ri", rate_ip_attr(r.window, &w.record.form_id, h))
                .expression_attribute_values(":iplimit", n(r.per_ip_limit));
        }
        parts.push((
            TransactWriteItem::builder()
                .update(
                    upd.update_expression(format!("ADD {} SET expires_at = :exp", add.join(", ")))
                        .condition_expression(condition)
                        .build()
                        .context("rate update")?,
                )
                .build(),
            Part::Rate,
        ));
        // The form's pressure window: counted here, in the same transaction (no request
        // more), read by the challenge route to raise the difficulty under attack. Expires by
        // TTL once no challenge looks at it any more.
        let window = spam::pressure_window(w.record.received_at);
        parts.push((
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(ops)
                        .set_key(Some(key_item(&keys::spam_pressure(
                            &w.tenant,
                            &w.record.form_id,
                            window,
                        ))))
                        .update_expression("ADD #n :one SET expires_at = :exp")
                        .expression_attribute_names("#n", "n")
                        .expression_attribute_values(":one", n(1))
                        .expression_attribute_values(
                            ":exp",
                            n(window + 3 * spam::PRESSURE_WINDOW_SECS),
                        )
                        .build()
                        .context("pressure update")?,
                )
                .build(),
            Part::Pressure,
        ));
        let kinds: Vec<Part> = parts.iter().map(|(_, k)| *k).collect();
        let result = self
            .client()
            .transact_write_items()
            .set_transact_items(Some(parts.into_iter().map(|(i, _)| i).collect()))
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(()),
            Err(e) => e.into_service_error(),
        };
        match err {
            TransactWriteItemsError::TransactionCanceledException(tc) => {
                let reasons = tc.cancellation_reasons();
                let failed = |part: Part| {
                    reasons
                        .iter()
                        .zip(&kinds)
                        .any(|(r, k)| *k == part && r.code() == Some("ConditionalCheckFailed"))
                };
                if failed(Part::Idempotency) {
                    return Err(CommitError::IdempotencyKeyTaken);
                }
                if failed(Part::Rate) {
                    return Err(CommitError::RateLimited);
                }
                if failed(Part::Challenge) {
                    return Err(CommitError::ChallengeUsed);
                }
                if reasons
                    .iter()
                    .any(|r| r.code() == Some("TransactionConflict"))
                    || reasons.is_empty()
                {
                    return Err(CommitError::Conflict);
                }
                Err(CommitError::Store(anyhow!(
                    "quarantine transaction cancelled: {:?}",
                    reasons.iter().map(|r| r.code()).collect::<Vec<_>>()
                )))
            }
            TransactWriteItemsError::TransactionInProgressException(_) => {
                Err(CommitError::Conflict)
            }
            other => Err(CommitError::Store(
                anyhow::Error::new(other).context("TransactWriteItems quarantine"),
            )),
        }
    }

    pub(crate) async fn get_quarantined(
        &self,
        tenant: &TenantId,
        form: &FormId,
        quarantine_id: &str,
        now: OffsetDateTime,
    ) -> anyhow::Result<Option<QuarantinedSubmission>> {
        let out = self
            .client()
            .get_item()
            .table_name(&self.tables().ops)
            .set_key(Some(key_item(&keys::quarantine(
                tenant,
                form,
                quarantine_id,
            ))))
            .consistent_read(true)
            .send()
            .await
            .context("GetItem quarantined")?;
        // TTL deletes lazily: an expired record is gone for us.
        out.item
            .map(|it| quarantine_from_item(&it))
            .transpose()
            .map(|q| q.filter(|q| q.expires_at > now))
    }

    /// The form's quarantined posts in the current pressure window and the one before: one
    /// Query of at most two small items (eventually consistent: a challenge may lag a post).
    pub(crate) async fn recent_quarantined_count(
        &self,
        tenant: &TenantId,
        form: &FormId,
        now: OffsetDateTime,
    ) -> anyhow::Result<u32> {
        let from = spam::pressure_window(now) - spam::PRESSURE_WINDOW_SECS;
        let out = self
            .client()
            .query()
            .table_name(&self.tables().ops)
            .key_condition_expression("#pk = :pk AND #sk >= :from")
            .filter_expression("expires_at > :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(keys::spam_pressure_partition(tenant, form)))
            .expression_attribute_values(":from", s(keys::spam_pressure_sort_key(from)))
            .expression_attribute_values(":now", epoch(now))
            .send()
            .await
            .context("Query spam pressure")?;
        let mut total: u64 = 0;
        for it in out.items() {
            total += get_n_opt(it, "n")?.unwrap_or(0).max(0) as u64;
        }
        Ok(u32::try_from(total).unwrap_or(u32::MAX))
    }

    /// A form's quarantined submissions not yet released, oldest first, a page at a time.
    pub async fn quarantine_page(
        &self,
        tenant: &TenantId,
        form: &FormId,
        limit: usize,
        start: Option<StartKey>,
        now: OffsetDateTime,
    ) -> anyhow::Result<Page<QuarantinedSubmission>> {
        let mut q = self
            .client()
            .query()
            .table_name(&self.tables().ops)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :q)")
            .filter_expression("attribute_not_exists(released_at) AND expires_at > :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(keys::quarantine_partition(tenant, form)))
            .expression_attribute_values(":q", s("Q#"))
            .expression_attribute_values(":now", epoch(now))
            .limit(limit.clamp(1, 100) as i32);
        if let Some(start) = start {
            q = q.set_exclusive_start_key(Some(
                start.0.into_iter().map(|(name, v)| (name, s(v))).collect(),
            ));
        }
        let out = q.send().await.context("Query quarantine")?;
        let items = out
            .items()
            .iter()
            .map(quarantine_from_item)
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Page {
            items,
            next: out.last_evaluated_key().map(|k| {
                StartKey(
                    k.iter()
                        .filter_map(|(name, v)| v.as_s().ok().map(|v| (name.clone(), v.clone())))
                        .collect(),
                )
            }),
        })
    }

    /// Deletes a quarantined submission of the tenant's form; `false` when there is none.
    pub async fn delete_quarantined(
        &self,
        tenant: &TenantId,
        form: &FormId,
        quarantine_id: &str,
    ) -> anyhow::Result<bool> {
        let result = self
            .client()
            .delete_item()
            .table_name(&self.tables().ops)
            .set_key(Some(key_item(&keys::quarantine(
                tenant,
                form,
                quarantine_id,
            ))))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match e.into_service_error() {
                e if e.is_conditional_check_failed_exception() => Ok(false),
                e => Err(anyhow::Error::new(e).context("DeleteItem quarantined")),
            },
        }
    }
}

/// The keys of the quarantined submissions of one subject (the blind index of their email, or
/// of their phone for phone-only posts: [`subject_of`]) in `tenant`'s quarantine, or in every
/// tenant's (`None`: routing a request that names no tenant), through [`SUBJECT_INDEX`]: one
/// Query per page on the subject, never a scan, whatever the number of leads or forms. Returns
/// the keys and the items the index read.
pub async fn quarantined_of_subject(
    client: &aws_sdk_dynamodb::Client,
    ops_table: &str,
    tenant: Option<&TenantId>,
    subject_bidx: &str,
) -> anyhow::Result<(Vec<keys::Key>, u64)> {
    let mut found = Vec::new();
    let mut scanned = 0;
    let mut start = None;
    loop {
        let mut q = client
            .query()
            .table_name(ops_table)
            .index_name(SUBJECT_INDEX)
            .expression_attribute_values(":b", s(subject_bidx))
            .set_exclusive_start_key(start);
        q = match tenant {
            Some(t) => q
                .key_condition_expression("subject_bidx = :b AND begins_with(#pk, :t)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":t", s(keys::quarantine_of_tenant(t))),
            None => q.key_condition_expression("subject_bidx = :b"),
        };
        let out = q.send().await.context("Query by_subject")?;
        scanned += out.scanned_count as u64;
        for it in out.items.unwrap_or_default() {
            if let (Ok(pk), Ok(sk)) = (get_s(&it, PK), get_s(&it, SK)) {
                found.push(keys::Key {
                    pk: pk.to_string(),
                    sk: sk.to_string(),
                });
            }
        }
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    found.sort_by(|a, b| (&a.pk, &a.sk).cmp(&(&b.pk, &b.sk)));
    found.dedup();
    Ok((found, scanned))
}

/// The tenant a quarantine partition (`TENANT#<t>#QUARANTINE#<form>`) belongs to.
pub fn tenant_of_quarantine_pk(pk: &str) -> Option<TenantId> {
    let rest = pk.strip_prefix("TENANT#")?;
    let (t, form) = rest.split_once("#QUARANTINE#")?;
    if form.is_empty() {
        return None;
    }
    TenantId::parse(t).ok()
}
