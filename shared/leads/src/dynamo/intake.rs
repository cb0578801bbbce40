//! The lead-intake store: one `BatchGetItem` to decide, one `TransactWriteItems` to commit.
//! Reads the tenant's billing state (billing table) and its monthly usage counter (ops table)
//! in the same `BatchGetItem`; the counter is incremented in the same transaction.
//!
//! The usage counter item (`TENANT#<t>#USAGE#<month>`) holds the month's count `n`, the day
//! count of each form with a daily cap (`form_day_<form>`: the day, `form_n_<form>`: the count;
//! two attributes per capped form, so the item stays small whatever the number of days), the
//! quota alerts marked sent (`alert_<percent>_at`) and the rate limits' counts of the current
//! minute: `rf_<minute>_<form>` per form, `ri_<minute>_<hash>` per form and client IP (the hash
//! of the form and the keyed IP hash). One item for both, so a submission's transaction writes
//! one counter item, not two (a transaction bills every item twice). The minute is in the
//! names, so a count of a past minute is never read as the current one; the next submission's
//! write removes the ones its read found.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, Context};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use aws_sdk_dynamodb::Client;

use super::forms::{form_from_item, tenant_from_item};
use crate::dynamo::{quarantine, routing};
use crate::ports::{
    CommitError, FormDayCount, IdempotencyRecord, IntakeLookup, IntakeSnapshot, IntakeStore,
    IntakeWrite, LeadWrite, NewLead, NewSubmission, QuarantineWrite, QuarantinedSubmission,
    UsageState,
};
use shared_billing::dynamo::billing_state_from_item;
use shared_core::domain::{FormId, LeadId, SubmissionId, TenantId};
use shared_core::dynamo::attrs::{
    epoch, get_n_opt, get_s, item, key_item, n, put, put_opt, s, timestamp, Item,
};
use shared_core::keys::{self, Key, PK, SK};

#[derive(Debug, Clone)]
pub struct IntakeTables {
    pub tenants: String,
    pub leads: String,
    pub privacy: String,
    pub ops: String,
    /// Read only: the tenant's billing state (plan, status) for the submission quota.
    pub billing: String,
}

#[derive(Debug, Clone)]
pub struct DynamoIntakeStore {
    client: Client,
    tables: IntakeTables,
}

impl DynamoIntakeStore {
    pub fn new(client: Client, tables: IntakeTables) -> Self {
        Self { client, tables }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn tables(&self) -> &IntakeTables {
        &self.tables
    }

    async fn batch_get(
        &self,
        mut request: HashMap<String, KeysAndAttributes>,
    ) -> anyhow::Result<HashMap<String, Vec<Item>>> {
        let mut found: HashMap<String, Vec<Item>> = HashMap::new();
        // UnprocessedKeys come back under throttling; retry them with a short backoff.
        for attempt in 0..5u32 {
            let out = self
                .client
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .context("BatchGetItem")?;
            for (table, items) in out.responses.unwrap_or_default() {
                found.entry(table).or_default().extend(items);
            }
            match out.unprocessed_keys {
                Some(rest) if !rest.is_empty() => {
                    request = rest;
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                }
                _ => return Ok(found),
            }
        }
        Err(anyhow!("BatchGetItem left keys unprocessed after retries"))
    }
}

fn keys_and_attributes(keys: &[Key]) -> anyhow::Result<KeysAndAttributes> {
    KeysAndAttributes::builder()
        .set_keys(Some(keys.iter().map(key_item).collect()))
        .consistent_read(true)
        .build()
        .context("keys and attributes")
}

fn find<'a>(items: Option<&'a Vec<Item>>, k: &Key) -> Option<&'a Item> {
    items?.iter().find(|it| {
        it.get(PK).and_then(|v| v.as_s().ok()) == Some(&k.pk)
            && it.get(SK).and_then(|v| v.as_s().ok()) == Some(&k.sk)
    })
}

/// Prefixes of the rate limits' counts on the usage counter item.
const RATE_FORM_PREFIX: &str = "rf_";
const RATE_IP_PREFIX: &str = "ri_";

/// The stale counts one write removes at most (the rest go with the next writes), so the update
/// expression stays small after a busy minute.
const MAX_EXPIRED_REMOVED: usize = 64;

/// A form's submissions in the minute `window`, on the usage counter item.
pub(crate) fn rate_form_attr(window: i64, form: &FormId) -> String {
    format!("{RATE_FORM_PREFIX}{window}_{form}")
}

/// One client IP's submissions to a form in the minute `window`, on the usage counter item: a
/// 64-bit FNV-1a of the form id and the (already keyed) IP hash keeps the name short.
pub(crate) fn rate_ip_attr(window: i64, form: &FormId, ip_hash: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in form.as_str().bytes().chain([0u8]).chain(ip_hash.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{RATE_IP_PREFIX}{window}_{h:016x}")
}

/// The minute a rate count attribute counts, if `name` is one.
fn rate_window_of(name: &str) -> Option<i64> {
    let rest = name
        .strip_prefix(RATE_FORM_PREFIX)
        .or_else(|| name.strip_prefix(RATE_IP_PREFIX))?;
    rest.split_once('_')?.0.parse().ok()
}

/// The rate counts of minutes before `window` on the item: they no longer count.
fn expired_rate_counts(it: Option<&Item>, window: i64) -> Vec<String> {
    let mut names: Vec<String> = it
        .into_iter()
        .flat_map(|it| it.keys())
        .filter(|name| rate_window_of(name).is_some_and(|w| w < window))
        .cloned()
        .collect();
    names.sort();
    names
}

/// Whether the item shows the form's or the IP's count of `window` at its limit.
fn rate_limit_reached(it: Option<&Item>, form: &FormId, r: &crate::ports::RateIncrement) -> bool {
    let Some(it) = it else {
        return false;
    };
    let count = |name: &str| get_n_opt(it, name).ok().flatten().unwrap_or(0);
    count(&rate_form_attr(r.window, form)) >= i64::from(r.per_form_limit)
        || r.ip_hash
            .as_ref()
            .is_some_and(|h| count(&rate_ip_attr(r.window, form, h)) >= i64::from(r.per_ip_limit))
}

/// The day a form's daily count counts (`YYYY-MM-DD`), on the usage counter item.
fn form_day_attr(form: &FormId) -> String {
    format!("form_day_{form}")
}

/// A form's count of that day, on the usage counter item.
fn form_count_attr(form: &FormId) -> String {
    format!("form_n_{form}")
}

/// A quota alert's mark on the usage counter item: when it was claimed.
fn alert_attr(percent: u8) -> String {
    format!("alert_{percent}_at")
}

fn count_of(it: &Item, name: &str) -> anyhow::Result<u32> {
    Ok(get_n_opt(it, name)?.unwrap_or(0).clamp(0, u32::MAX as i64) as u32)
}

/// The usage counter as stored (an absent item: nothing counted yet), for `form`.
fn usage_state(it: Option<&Item>, form: &FormId) -> anyhow::Result<UsageState> {
    let Some(it) = it else {
        return Ok(UsageState::default());
    };
    let form_day = match it.get(&form_day_attr(form)).and_then(|v| v.as_s().ok()) {
        Some(day) => Some(FormDayCount {
            day: day.clone(),
            count: count_of(it, &form_count_attr(form))?,
        }),
        None => None,
    };
    Ok(UsageState {
        month_count: count_of(it, "n")?,
        form_day,
        alerts_sent: crate::intake::QUOTA_ALERTS
            .into_iter()
            .filter(|p| it.contains_key(&alert_attr(*p)))
            .collect(),
    })
}

impl IntakeStore for DynamoIntakeStore {
    async fn form_tenant(&self, form: &FormId) -> anyhow::Result<Option<TenantId>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.tenants)
            .set_key(Some(key_item(&keys::form(form))))
            .projection_expression("tenant_id")
            .send()
            .await
            .context("GetItem form tenant")?;
        out.item
            .map(|it| Ok(TenantId::parse(get_s(&it, "tenant_id")?)?))
            .transpose()
    }

    async fn form(&self, form: &FormId) -> anyhow::Result<Option<shared_core::domain::FormRecord>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.tenants)
            .set_key(Some(key_item(&keys::form(form))))
            .send()
            .await
            .context("GetItem form")?;
        out.item.map(|it| form_from_item(&it)).transpose()
    }

    async fn load(&self, l: &IntakeLookup) -> anyhow::Result<IntakeSnapshot> {
        let form_key = keys::form(&l.form_id);
        let tenant_key = keys::tenant(&l.tenant);
        let lead_key = l.lead_id.as_ref().map(|id| keys::lead(&l.tenant, id));
        let route_key = l
            .route_key
            .as_ref()
            .map(|k| keys::lead_route(&l.tenant, &k.bidx));
        let sup_keys: Vec<Key> = l
            .contact_bidx
            .iter()
            .map(|b| keys::suppression(&l.tenant, b))
            .collect();
        let idem_key = l
            .idempotency_key_hash
            .as_ref()
            .map(|h| keys::idempotency(&l.tenant, &l.form_id, h));

        let mut req = HashMap::new();
        req.insert(
            self.tables.tenants.clone(),
            keys_and_attributes(&[form_key.clone(), tenant_key.clone()])?,
        );
        let lead_table_keys: Vec<&Key> = lead_key.iter().chain(route_key.iter()).collect();
        if !lead_table_keys.is_empty() {
            let mut ka = KeysAndAttributes::builder()
                .consistent_read(true)
                // Both key attributes: `find` matches a returned item on pk and sk, so with pk
                // alone an existing lead was never seen and every returning person paid a failed
                // transaction (Create refused) before the Touch one. The lead's routing key
                // (email/phone blind index) tells whether it is still this address's lead; the
                // route item's `lead_id` where the address leads instead.
                .projection_expression("#pk, #sk, #eb, #pb, #lid")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_names("#eb", "email_bidx")
                .expression_attribute_names("#pb", "phone_bidx")
                .expression_attribute_names("#lid", "lead_id");
            for k in lead_table_keys {
                ka = ka.keys(key_item(k));
            }
            req.insert(self.tables.leads.clone(), ka.build().context("lead keys")?);
        }
        if !sup_keys.is_empty() {
            req.insert(self.tables.privacy.clone(), keys_and_attributes(&sup_keys)?);
        }
        let usage_key = keys::usage_month(&l.tenant, &l.usage_month);
        let mut ops_keys = vec![usage_key.clone()];
        ops_keys.extend(idem_key.clone());
        req.insert(self.tables.ops.clone(), keys_and_attributes(&ops_keys)?);
        let billing_key = keys::subscription_state(&l.tenant);
        req.insert(
            self.tables.billing.clone(),
            keys_and_attributes(std::slice::from_ref(&billing_key))?,
        );

        let found = self.batch_get(req).await?;
        let tenants = found.get(&self.tables.tenants);
        let ops = found.get(&self.tables.ops);

        let form = find(tenants, &form_key).map(form_from_item).transpose()?;
        let tenant_item = find(tenants, &tenant_key);
        let tenant = tenant_item.map(tenant_from_item).transpose()?;
        let tenant_spam = tenant_item
            .map(super::forms::tenant_spam_from_item)
            .transpose()?
            .unwrap_or_default();
        let lead_item = lead_key
            .as_ref()
            .and_then(|k| find(found.get(&self.tables.leads), k));
        let lead_exists = lead_item.is_some();
        let lead_owned_by_key = match (lead_item, &l.route_key) {
            (Some(it), Some(k)) => routing::key_of_item(it).as_ref() == Some(k),
            _ => false,
        };
        let routed_lead = route_key
            .as_ref()
            .and_then(|k| find(found.get(&self.tables.leads), k))
            .map(routing::routed_lead)
            .transpose()?;
        let suppressed = sup_keys
            .iter()
            .any(|k| find(found.get(&self.tables.privacy), k).is_some());
        let counter = find(ops, &usage_key);
        let rate_form_count = counter
            .map(|it| get_n_opt(it, &rate_form_attr(l.rate_window, &l.form_id)))
            .transpose()?
            .flatten()
            .unwrap_or(0);
        let rate_ip_count = match (counter, &l.ip_hash) {
            (Some(it), Some(h)) => {
                get_n_opt(it, &rate_ip_attr(l.rate_window, &l.form_id, h))?.unwrap_or(0)
            }
            _ => 0,
        };
        let rate_expired = expired_rate_counts(counter, l.rate_window);
        let idempotency = idem_key
            .as_ref()
            .and_then(|k| find(ops, k))
            .map(|it| {
                idempotency_from_item(it, l.idempotency_key_hash.as_deref().unwrap_or_default())
            })
            .transpose()?;

        let billing = find(found.get(&self.tables.billing), &billing_key)
            .map(billing_state_from_item)
            .transpose()?;
        let usage = usage_state(counter, &l.form_id)?;

        Ok(IntakeSnapshot {
            form,
            tenant,
            tenant_spam,
            lead_exists,
            lead_owned_by_key,
            routed_lead,
            suppressed,
            rate_form_count: rate_form_count.clamp(0, u32::MAX as i64) as u32,
            rate_ip_count: rate_ip_count.clamp(0, u32::MAX as i64) as u32,
            rate_expired,
            idempotency,
            billing,
            usage,
        })
    }

    async fn commit(&self, w: &IntakeWrite) -> Result<(), CommitError> {
        #[derive(Clone, Copy)]
        enum Part {
            Lead,
            Route,
            Submission,
            /// The usage counter item: the month's count and the minute's rate counts.
            Usage,
            Idempotency,
            /// The used proof-of-work challenge's guard.
            Challenge,
            /// The quarantined submission this one releases.
            Release,
        }
        let mut parts: Vec<(TransactWriteItem, Part)> = Vec::with_capacity(7);

        if let Some(record) = &w.record {
            let lead_id = record.lead.lead_id();
            let sub = &record.submission;
            let lead_item = match &record.lead {
                LeadWrite::Create(new) => TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.tables.leads)
                            .set_item(Some(lead_to_item(&w.tenant, new, sub)))
                            .condition_expression("attribute_not_exists(pk)")
                            .build()
                            .context("lead put")?,
                    )
                    .build(),
                LeadWrite::Touch(id, key) => {
                    // Only while the lead is still this address's: an edit that moved it to
                    // another address since our read makes this fail, and intake reads again.
                    let owns = routing::owns(key);
                    let mut u = Update::builder()
                        .table_name(&self.tables.leads)
                        .set_key(Some(key_item(&keys::lead(&w.tenant, id))))
                        .update_expression(
                            "SET last_submission_at = :at, updated_at = :at ADD submission_count :one",
                        )
                        .condition_expression(format!(
                            "attribute_exists(pk) AND {}",
                            owns.expression
                        ))
                        .expression_attribute_values(":at", timestamp(sub.received_at))
                        .expression_attribute_values(":one", n(1));
                    for (k, v) in owns.names {
                        u = u.expression_attribute_names(k, v);
                    }
                    for (k, v) in owns.values {
                        u = u.expression_attribute_values(k, v);
                    }
                    TransactWriteItem::builder()
                        .update(u.build().context("lead update")?)
                        .build()
                }
            };
            parts.push((lead_item, Part::Lead));
            if let LeadWrite::Create(NewLead {
                route: Some(key), ..
            }) = &record.lead
            {
                parts.push((
                    TransactWriteItem::builder()
                        .put(
                            Put::builder()
                                .table_name(&self.tables.leads)
                                .set_item(Some(routing::route_item(
                                    &w.tenant,
                                    key,
                                    lead_id,
                                    w.received_at,
                                )))
                                .condition_expression("attribute_not_exists(pk)")
                                .build()
                                .context("route put")?,
                        )
                        .build(),
                    Part::Route,
                ));
            }
            parts.push((
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.tables.leads)
                            .set_item(Some(submission_to_item(&w.tenant, lead_id, sub)))
                            .condition_expression("attribute_not_exists(pk)")
                            .build()
                            .context("submission put")?,
                    )
                    .build(),
                Part::Submission,
            ));
        }

        // Exact under concurrency: the count only grows from the range intake expects, which
        // is below the quota (a quota of 0 never reaches the commit: intake refuses it from the
        // snapshot) and, when the increment crosses an alert threshold, that one count. A form
        // with a daily cap adds to its count of the day only below the cap, or starts a new
        // day. The minute's counts of the form and of the client IP grow only below their
        // limits. Any other state refuses, and returns the item as it is.
        let u = &w.usage;
        let r = &w.rate;
        let (lo, hi) = u.expected;
        let mut condition = if lo == 0 {
            "(attribute_not_exists(n) OR n <= :hi)".to_string()
        } else {
            "n BETWEEN :lo AND :hi".to_string()
        };
        let mut add = vec!["n :one".to_string(), "#rf :one".to_string()];
        let mut set = vec!["expires_at = :exp".to_string()];
        condition.push_str(" AND (attribute_not_exists(#rf) OR #rf < :flimit)");
        let mut upd = Update::builder()
            .table_name(&self.tables.ops)
            .set_key(Some(key_item(&keys::usage_month(&w.tenant, &u.month))))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":hi", n(hi))
            .expression_attribute_values(":exp", epoch(u.expires_at))
            .expression_attribute_names("#rf", rate_form_attr(r.window, &w.form_id))
            .expression_attribute_values(":flimit", n(r.per_form_limit))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(h) = &r.ip_hash {
            add.push("#ri :one".into());
            condition.push_str(" AND (attribute_not_exists(#ri) OR #ri < :iplimit)");
            upd = upd
                .expression_attribute_names("#ri", rate_ip_attr(r.window, &w.form_id, h))
                .expression_attribute_values(":iplimit", n(r.per_ip_limit));
        }
        // Only counts of earlier minutes: a count of this minute (or a later one, on a clock
        // ahead of ours) is still counting.
        let mut remove = Vec::new();
        for (i, name) in r
            .expired
            .iter()
            .filter(|name| rate_window_of(name).is_some_and(|x| x < r.window))
            .take(MAX_EXPIRED_REMOVED)
            .enumerate()
        {
            let alias = format!("#old{i}");
            remove.push(alias.clone());
            upd = upd.expression_attribute_names(alias, name);
        }
        if lo > 0 {
            upd = upd.expression_attribute_values(":lo", n(lo));
        }
        for p in &u.alerts {
            let name = format!("#alert{p}");
            set.push(format!("{name} = :marked"));
            upd = upd.expression_attribute_names(name, alert_attr(*p));
        }
        if !u.alerts.is_empty() {
            upd = upd.expression_attribute_values(":marked", timestamp(w.received_at));
        }
        if let Some(d) = &u.daily {
            upd = upd
                .expression_attribute_names("#fday", form_day_attr(&w.form_id))
                .expression_attribute_names("#fn", form_count_attr(&w.form_id))
                .expression_attribute_values(":today", s(&d.day));
            if d.continues {
                add.push("#fn :one".into());
                condition.push_str(" AND #fday = :today AND #fn < :cap");
                upd = upd.expression_attribute_values(":cap", n(d.cap));
            } else {
                set.push("#fday = :today".into());
                set.push("#fn = :one".into());
                // Day strings sort as dates; a day count is only started once per day.
                condition.push_str(" AND (attribute_not_exists(#fday) OR #fday < :today)");
            }
        }
        let mut expression = format!("ADD {} SET {}", add.join(", "), set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let upd = upd
            .update_expression(expression)
            .condition_expression(condition);
        parts.push((
            TransactWriteItem::builder()
                .update(upd.build().context("usage update")?)
                .build(),
            Part::Usage,
        ));

        if let Some(rec) = &w.idempotency {
            parts.push((
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.tables.ops)
                            .set_item(Some(idempotency_to_item(&w.tenant, &w.form_id, rec)))
                            // TTL deletes lazily: an expired record may still be there.
                            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
                            .expression_attribute_values(":now", epoch(w.received_at))
                            .build()
                            .context("idempotency put")?,
                    )
                    .build(),
                Part::Idempotency,
            ));
        }

        if let Some(c) = &w.challenge {
            parts.push((
                quarantine::challenge_put(&self.tables.ops, &w.tenant, c)?,
                Part::Challenge,
            ));
        }
        if let (Some(r), Some(record)) = (&w.release, &w.record) {
            parts.push((
                quarantine::release_update(
                    &self.tables.ops,
                    &w.tenant,
                    &w.form_id,
                    &r.quarantine_id,
                    record.lead.lead_id(),
                    &record.submission.submission_id,
                    w.received_at,
                )?,
                Part::Release,
            ));
        }

        let kinds: Vec<Part> = parts.iter().map(|(_, k)| *k).collect();
        let result = self
            .client
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
                let failed = |code: &str| {
                    reasons
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.code() == Some(code))
                        .map(|(i, _)| kinds.get(i).copied())
                        .collect::<Vec<_>>()
                };
                let conditional = failed("ConditionalCheckFailed");
                // Order matters: a retry replays the first response before anything else.
                if conditional
                    .iter()
                    .any(|k| matches!(k, Some(Part::Idempotency)))
                {
                    return Err(CommitError::IdempotencyKeyTaken);
                }
                // The submission's id is this request's own (a fresh ULID): when it is already
                // stored, this is the SDK sending the transaction again after it landed with
                // its answer lost. DynamoDB answers such a resend by its client request token;
                // an emulator applies it again, and its conditions meet the first attempt's own
                // items (the lead, the counter). All or nothing: the whole write is there.
                if conditional
                    .iter()
                    .any(|k| matches!(k, Some(Part::Submission)))
                {
                    return Ok(());
                }
                if conditional.iter().any(|k| matches!(k, Some(Part::Release))) {
                    return Err(CommitError::AlreadyReleased);
                }
                if conditional
                    .iter()
                    .any(|k| matches!(k, Some(Part::Challenge)))
                {
                    return Err(CommitError::ChallengeUsed);
                }
                let usage_at = kinds.iter().position(|k| matches!(k, Part::Usage));
                if let Some(reason) = usage_at
                    .and_then(|i| reasons.get(i))
                    .filter(|r| r.code() == Some("ConditionalCheckFailed"))
                {
                    // The rate limit first, as intake decides it: a refusal it shows is 429,
                    // whatever else moved.
                    if rate_limit_reached(reason.item(), &w.form_id, &w.rate) {
                        return Err(CommitError::RateLimited);
                    }
                    return Err(CommitError::UsageMoved(usage_state(
                        reason.item(),
                        &w.form_id,
                    )?));
                }
                if conditional.iter().any(|k| matches!(k, Some(Part::Lead))) {
                    return Err(match w.record.as_ref().map(|r| &r.lead) {
                        Some(LeadWrite::Create(_)) => CommitError::LeadAlreadyExists,
                        _ => CommitError::LeadMissing,
                    });
                }
                if conditional.iter().any(|k| matches!(k, Some(Part::Route))) {
                    return Err(CommitError::Rerouted);
                }
                if !failed("TransactionConflict").is_empty() || reasons.is_empty() {
                    return Err(CommitError::Conflict);
                }
                Err(CommitError::Store(anyhow!(
                    "transaction cancelled: {:?}",
                    reasons.iter().map(|r| r.code()).collect::<Vec<_>>()
                )))
            }
            TransactWriteItemsError::TransactionInProgressException(_) => {
                Err(CommitError::Conflict)
            }
            other => Err(CommitError::Store(
                anyhow::Error::new(other).context("TransactWriteItems"),
            )),
        }
    }

    async fn quarantine(&self, w: &QuarantineWrite) -> Result<(), CommitError> {
        self.put_quarantined(w).await
    }

    async fn quarantined(
        &self,
        tenant: &TenantId,
        form: &FormId,
        quarantine_id: &str,
        now: time::OffsetDateTime,
    ) -> anyhow::Result<Option<QuarantinedSubmission>> {
        self.get_quarantined(tenant, form, quarantine_id, now).await
    }

    async fn recent_quarantined(
        &self,
        tenant: &TenantId,
        form: &FormId,
        now: time::OffsetDateTime,
    ) -> anyhow::Result<u32> {
        self.recent_quarantined_count(tenant, form, now).await
    }

    async fn submission_exists(
        &self,
        tenant: &TenantId,
        lead: &LeadId,
        submission: &SubmissionId,
    ) -> anyhow::Result<bool> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.leads)
            .set_key(Some(key_item(&keys::submission(tenant, lead, submission))))
            .projection_expression("pk")
            .consistent_read(true)
            .send()
            .await
            .context("GetItem submission")?;
        Ok(out.item.is_some())
    }

    async fn idempotency_record(
        &self,
        tenant: &TenantId,
        form: &FormId,
        key_hash: &str,
    ) -> anyhow::Result<Option<IdempotencyRecord>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.ops)
            .set_key(Some(key_item(&keys::idempotency(tenant, form, key_hash))))
            .consistent_read(true)
            .send()
            .await
            .context("GetItem idempotency")?;
        out.item
            .map(|it| idempotency_from_item(&it, key_hash))
            .transpose()
    }

    async fn claim_alerts(
        &self,
        tenant: &TenantId,
        month: &str,
        percents: &[u8],
        count_at_least: u32,
        at: time::OffsetDateTime,
    ) -> anyhow::Result<bool> {
        if percents.is_empty() {
            return Ok(false);
        }
        let mut upd = self
            .client
            .update_item()
            .table_name(&self.tables.ops)
            .set_key(Some(key_item(&keys::usage_month(tenant, month))))
            .expression_attribute_values(":at", timestamp(at))
            .expression_attribute_values(":t", n(count_at_least));
        let mut set = Vec::new();
        let mut condition = vec!["n >= :t".to_string()];
        for p in percents {
            let name = format!("#alert{p}");
            set.push(format!("{name} = :at"));
            condition.push(format!("attribute_not_exists({name})"));
            upd = upd.expression_attribute_names(name, alert_attr(*p));
        }
        let result = upd
            .update_expression(format!("SET {}", set.join(", ")))
            .condition_expression(condition.join(" AND "))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match e.into_service_error() {
                e if e.is_conditional_check_failed_exception() => Ok(false),
                e => Err(anyhow::Error::new(e).context("UpdateItem quota alert claim")),
            },
        }
    }

    async fn release_alerts(
        &self,
        tenant: &TenantId,
        month: &str,
        percents: &[u8],
        at: time::OffsetDateTime,
    ) -> anyhow::Result<()> {
        for p in percents {
            let result = self
                .client
                .update_item()
                .table_name(&self.tables.ops)
                .set_key(Some(key_item(&keys::usage_month(tenant, month))))
                .update_expression("REMOVE #alert")
                .condition_expression("#alert = :at")
                .expression_attribute_names("#alert", alert_attr(*p))
                .expression_attribute_values(":at", timestamp(at))
                .send()
                .await;
            match result {
                Ok(_) => {}
                // Marked by someone else since: theirs to send.
                Err(e) => match e.into_service_error() {
                    e if e.is_conditional_check_failed_exception() => {}
                    e => {
                        return Err(anyhow::Error::new(e).context("UpdateItem quota alert release"))
                    }
                },
            }
        }
        Ok(())
    }
}

pub(crate) fn lead_to_item(tenant: &TenantId, l: &NewLead, sub: &NewSubmission) -> Item {
    let mut it = new_lead_item(
        tenant,
        &l.lead_id,
        &l.contact,
        (l.email_bidx.as_deref(), l.phone_bidx.as_deref()),
        keys::FIRST_STAGE,
        l.created_at,
    );
    put(&mut it, "source_form_id", s(l.source_form.as_str()));
    put(&mut it, "last_submission_at", timestamp(sub.received_at));
    put(&mut it, "submission_count", n(1));
    it
}

/// The attributes every new lead has however it arrived (a form submission, an import): its
/// contact details and blind indexes `(email, phone)`, its stage, the `by_tenant` index keys,
/// the `by_stage` one for a lead past the first stage ([`keys::stage_partition`]) and version 1.
/// Callers add how the lead came to be.
pub fn new_lead_item(
    tenant: &TenantId,
    lead_id: &LeadId,
    contact: &shared_core::domain::ContactDetails,
    (email_bidx, phone_bidx): (Option<&str>, Option<&str>),
    stage: &str,
    created_at: time::OffsetDateTime,
) -> Item {
    let mut it = item(&keys::lead(tenant, lead_id));
    put(&mut it, "tenant_id", s(tenant.as_str()));
    put(&mut it, "lead_id", s(lead_id.as_str()));
    put_opt(&mut it, "email", contact.email.as_ref().map(|e| e.as_str()));
    put_opt(&mut it, "phone", contact.phone.as_ref().map(|p| p.as_str()));
    put_opt(&mut it, "name", contact.name.clone());
    put_opt(&mut it, "company", contact.company.clone());
    put_opt(&mut it, "email_bidx", email_bidx);
    put_opt(&mut it, "phone_bidx", phone_bidx);
    put(&mut it, "created_at", timestamp(created_at));
    put(&mut it, "stage", s(stage));
    put(&mut it, "tenant_pk", s(keys::leads_of_tenant(tenant)));
    put_opt(&mut it, "stage_pk", keys::stage_partition(tenant, stage));
    put(
        &mut it,
        "created_sk",
        s(keys::lead_created_sort(
            &shared_core::clock::rfc3339(created_at),
            lead_id,
        )),
    );
    put(&mut it, "updated_at", timestamp(created_at));
    put(&mut it, "version", n(1));
    it
}

/// What a visitor posted, as a submission and a quarantined submission both store it: the
/// answers (`fields`), the consent records (`consents`: key, text version, granted) and the
/// technical data, one attribute each (`ip`, `user_agent`, `referrer`, `page_url`: retention
/// removes them attribute by attribute, and the data inventory declares each).
pub(crate) fn put_posted(
    it: &mut Item,
    fields: &std::collections::BTreeMap<String, String>,
    consents: &[shared_core::domain::ConsentRecord],
    t: &shared_core::domain::TechnicalData,
) {
    put(
        it,
        "fields",
        AttributeValue::M(fields.iter().map(|(k, v)| (k.clone(), s(v))).collect()),
    );
    put(
        it,
        "consents",
        AttributeValue::L(
            consents
                .iter()
                .map(|c| {
                    AttributeValue::M(HashMap::from([
                        ("key".to_string(), s(&c.key)),
                        ("version".to_string(), s(&c.version)),
                        ("granted".to_string(), AttributeValue::Bool(c.granted)),
                    ]))
                })
                .collect(),
        ),
    );
    put_opt(it, "ip", t.ip.clone());
    put_opt(it, "user_agent", t.user_agent.clone());
    put_opt(it, "referrer", t.referrer.clone());
    put_opt(it, "page_url", t.page_url.clone());
}

pub(crate) fn submission_to_item(tenant: &TenantId, lead: &LeadId, sub: &NewSubmission) -> Item {
    let mut it = item(&keys::submission(tenant, lead, &sub.submission_id));
    put(&mut it, "tenant_id", s(tenant.as_str()));
    put(&mut it, "lead_id", s(lead.as_str()));
    put(&mut it, "submission_id", s(sub.submission_id.as_str()));
    put(&mut it, "form_id", s(sub.form_id.as_str()));
    put(&mut it, "received_at", timestamp(sub.received_at));
    // Whose submission this is, by its own address (not the lead's, which can change).
    put_opt(&mut it, "from_email_bidx", sub.email_bidx.clone());
    put_opt(&mut it, "from_phone_bidx", sub.phone_bidx.clone());
    put_posted(&mut it, &sub.fields, &sub.consents, &sub.technical);
    let t = &sub.technical;
    if !t.is_empty() {
        let shard = sub
            .submission_id
            .as_str()
            .bytes()
            .fold(0u32, |acc, b| acc.wrapping_mul(31).wrapping_add(b as u32))
            % keys::TECH_EXPIRY_SHARDS;
        put(
            &mut it,
            "tech_exp",
            s(keys::tech_expiry_partition(
                &sub.technical_expires_on.to_string(),
                shard,
            )),
        );
    }
    it
}

pub(crate) fn idempotency_to_item(tenant: &TenantId, form: &FormId, r: &IdempotencyRecord) -> Item {
    let mut it = item(&keys::idempotency(tenant, form, &r.key_hash));
    put(&mut it, "body_hash", s(&r.body_hash));
    put(&mut it, "lead_id", s(r.lead_id.as_str()));
    put(&mut it, "submission_id", s(r.submission_id.as_str()));
    put(&mut it, "expires_at", epoch(r.expires_at));
    it
}

fn idempotency_from_item(it: &Item, key_hash: &str) -> anyhow::Result<IdempotencyRecord> {
    let expires = get_n_opt(it, "expires_at")?.unwrap_or(0);
    Ok(IdempotencyRecord {
        key_hash: key_hash.to_string(),
        body_hash: get_s(it, "body_hash")?.to_string(),
        lead_id: LeadId::parse(get_s(it, "lead_id")?)?,
        submission_id: SubmissionId::parse(get_s(it, "submission_id")?)?,
        expires_at: time::OffsetDateTime::from_unix_timestamp(expires)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    })
}
