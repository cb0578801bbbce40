//! The DynamoDB adapter of the request lifecycle. Item <-> record conversion happens here.
//!
//! Items (privacy table; `docs/dsar.md`):
//! - the subject's request: `DSAR#<id>` / `REQUEST`;
//! - each controller's part: `TENANT#<t>#DSAR` (or `PLATFORM#DSAR`) / `PART#<id>`; while open it
//!   carries `queue_pk`/`due_sk` (GSI `by_queue`: the controller's queue, earliest due first) and
//!   `due_pk`/`due_sk` (GSI `by_due`: every open part of the platform by due date, 4 shards, for the
//!   daily deadline check). Both indexes are sparse: closing a part removes the attributes.
//! - closed records carry `exp_bucket` (rule `dsar-record`, 24 months after closure) so retention
//!   removes them through the `by_expiry` index.
//!
//! Every write is conditional on the state it moves from, so a retried step changes nothing
//! twice; the history is appended in the same write (`list_append`), never rewritten.

use std::collections::{BTreeSet, HashMap};

use anyhow::{anyhow, Context};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use time::{Date, OffsetDateTime};

use super::deadlines::{add_months, parse_ymd, ymd, Jurisdiction};
use super::model::{
    Attestation, Controller, ControllerPart, Details, HistoryEntry, RequestType, Status,
    SubjectRequest, Target,
};
use shared_core::domain::{TenantId, UserId};
use shared_core::dynamo::{get_item, key_item, n, s, unless_condition_failed, Item};
use shared_core::keys::{self, Key};
use shared_leads::dynamo::lead_pks_holding;
use shared_leads::StartKey;

/// GSIs of the privacy table (template.yaml).
pub const BY_QUEUE: &str = "by_queue";
pub const BY_DUE: &str = "by_due";
/// The leads table's blind-index GSI: every lead of one person across tenants.
pub const BY_EMAIL_BIDX: &str = "by_email_bidx";
/// The retention rule of request records, and how long they are kept after closure (CCPA
/// § 7101: 24 months).
pub const RECORD_RULE: &str = "dsar-record";
pub const RECORD_MONTHS: u32 = 24;

#[derive(Debug, Clone)]
pub struct DsarTables {
    /// Requests and their parts; one-click opt-out records.
    pub privacy: String,
    /// The `by_email_bidx` index (routing) and the leads' opt-out flag.
    pub leads: String,
    /// Forms (a form names its tenant), tenants, sessions, the login index, users.
    pub tenants: String,
    /// Rate-limit windows, digest markers.
    pub ops: String,
}

#[derive(Debug, Clone)]
pub struct DsarStore {
    client: Client,
    tables: DsarTables,
}

/// How a part's transition touches the queue and the parent request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// Stays open (in the queue, in the deadline digest).
    No,
    /// Answered: leaves the queue, its record's retention starts, the parent counts it closed.
    Full,
    /// Answered but kept on record as in force (a restriction until it is lifted): leaves the
    /// queue; the parent keeps the subject's email, as the subject must be told before a lift.
    LeaveQueue,
}

/// One transition of a part.
#[derive(Debug, Clone)]
pub struct PartChange {
    pub from: Vec<Status>,
    pub to: Status,
    pub entry: HistoryEntry,
    pub sets: Vec<(&'static str, AttributeValue)>,
    pub removes: Vec<&'static str>,
    pub closing: Closing,
    /// An extra condition (e.g. `attribute_not_exists(extended_at)`), ANDed.
    pub condition: Option<&'static str>,
}

impl PartChange {
    pub fn new(from: &[Status], to: Status, entry: HistoryEntry) -> Self {
        Self {
            from: from.to_vec(),
            to,
            entry,
            sets: Vec::new(),
            removes: Vec::new(),
            closing: Closing::No,
            condition: None,
        }
    }
    pub fn set(mut self, name: &'static str, v: AttributeValue) -> Self {
        self.sets.push((name, v));
        self
    }
    pub fn remove(mut self, name: &'static str) -> Self {
        self.removes.push(name);
        self
    }
    pub fn closing(mut self, c: Closing) -> Self {
        self.closing = c;
        self
    }
    pub fn condition(mut self, c: &'static str) -> Self {
        self.condition = Some(c);
        self
    }
}

/// The key of a controller's part.
pub fn part_key(c: &Controller, request_id: &str) -> Key {
    match c {
        Controller::Tenant(t) => keys::dsar_part(t, request_id),
        Controller::Platform => keys::dsar_platform_part(request_id),
    }
}

fn ts(t: OffsetDateTime) -> AttributeValue {
    s(shared_core::clock::rfc3339(t))
}

fn get<'a>(it: &'a Item, name: &str) -> Option<&'a str> {
    it.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn req<'a>(it: &'a Item, name: &str) -> anyhow::Result<&'a str> {
    get(it, name).ok_or_else(|| anyhow!("attribute {name} missing or not a string"))
}

fn parse_ts(raw: &str) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .context("timestamp is not RFC 3339")
}

fn opt_ts(it: &Item, name: &str) -> anyhow::Result<Option<OffsetDateTime>> {
    get(it, name).map(parse_ts).transpose()
}

fn date_of(it: &Item, name: &str) -> anyhow::Result<Date> {
    parse_ymd(req(it, name)?).ok_or_else(|| anyhow!("attribute {name} is not a date"))
}

fn num(it: &Item, name: &str) -> u32 {
    it.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .map(|v| v.clamp(0, u32::MAX as i64) as u32)
        .unwrap_or(0)
}

pub fn history_value(entries: &[HistoryEntry]) -> AttributeValue {
    AttributeValue::L(
        entries
            .iter()
            .map(|e| {
                AttributeValue::M(HashMap::from([
                    ("at".to_string(), ts(e.at)),
                    ("event".to_string(), s(&e.event)),
                    ("status".to_string(), s(e.status.as_str())),
                    ("actor".to_string(), s(&e.actor)),
                ]))
            })
            .collect(),
    )
}

fn history_of(it: &Item) -> anyhow::Result<Vec<HistoryEntry>> {
    let Some(AttributeValue::L(list)) = it.get("history") else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|v| {
            let m = v
                .as_m()
                .map_err(|_| anyhow!("history entry is not a map"))?;
            Ok(HistoryEntry {
                at: parse_ts(req(m, "at")?)?,
                event: req(m, "event")?.to_string(),
                status: Status::parse(req(m, "status")?)
                    .ok_or_else(|| anyhow!("history status unknown"))?,
                actor: req(m, "actor")?.to_string(),
            })
        })
        .collect()
}

/// The `exp_bucket` of a record closed at `closed`: retention removes it 24 months later.
pub fn record_expiry_bucket(k: &Key, closed: OffsetDateTime) -> String {
    let day = add_months(closed.date(), RECORD_MONTHS);
    keys::expiry_bucket(RECORD_RULE, day, keys::expiry_shard(&k.pk, &k.sk))
}

fn due_shard(request_id: &str, controller: &Controller) -> u32 {
    keys::expiry_shard(request_id, &controller.to_stored()) % keys::DSAR_DUE_SHARDS
}

// ---------------------------------------------------------------- items

pub fn request_item(r: &SubjectRequest, ttl_until: Option<OffsetDateTime>) -> Item {
    let k = keys::dsar_request(&r.request_id);
    let mut it = key_item(&k);
    let mut put = |name: &str, v: AttributeValue| {
        it.insert(name.to_string(), v);
    };
    put("request_id", s(&r.request_id));
    put("request_type", s(r.request_type.as_str()));
    put("target", s(r.target.to_stored()));
    put("jurisdiction", s(r.jurisdiction.as_str()));
    put("status", s(r.status.as_str()));
    if let Some(e) = &r.email {
        put("email", s(e));
    }
    put("email_bidx", s(&r.email_bidx));
    if let Some(p) = &r.subject_phone_bidx {
        put("subject_phone_bidx", s(p));
    }
    if let Some(d) = r.details.to_stored() {
        put("details", s(d));
    }
    if let Some(h) = &r.code_hash {
        put("code_hash", s(h));
    }
    put("attempts", n(r.attempts));
    if let Some(t) = r.code_expires_at {
        put("code_expires_at", ts(t));
    }
    put("filed_by", s(&r.filed_by));
    if let Some(a) = r.attestation {
        put("attestation", s(a.as_str()));
    }
    put("created_at", ts(r.created_at));
    if let Some(t) = r.verified_at {
        put("verified_at", ts(t));
    }
    if let Some(t) = r.closed_at {
        put("closed_at", ts(t));
    }
    put(
        "parts",
        AttributeValue::L(r.parts.iter().map(|c| s(c.to_stored())).collect()),
    );
    put("open_parts", n(r.open_parts));
    put("history", history_value(&r.history));
    if let Some(t) = ttl_until {
        put("expires_at", n(t.unix_timestamp()));
    }
    it
}

pub fn request_from_item(it: &Item) -> anyhow::Result<SubjectRequest> {
    let request_type =
        RequestType::parse(req(it, "request_type")?).ok_or_else(|| anyhow!("unknown type"))?;
    Ok(SubjectRequest {
        request_id: req(it, "request_id")?.to_string(),
        request_type,
        target: Target::from_stored(req(it, "target")?).ok_or_else(|| anyhow!("bad target"))?,
        jurisdiction: Jurisdiction::parse(req(it, "jurisdiction")?)
            .ok_or_else(|| anyhow!("bad jurisdiction"))?,
        status: Status::parse(req(it, "status")?).ok_or_else(|| anyhow!("bad status"))?,
        email: get(it, "email").map(str::to_string),
        email_bidx: req(it, "email_bidx")?.to_string(),
        subject_phone_bidx: get(it, "subject_phone_bidx").map(str::to_string),
        details: Details::from_stored(request_type, get(it, "details")),
        code_hash: get(it, "code_hash").map(str::to_string),
        attempts: num(it, "attempts"),
        code_expires_at: opt_ts(it, "code_expires_at")?,
        filed_by: req(it, "filed_by")?.to_string(),
        attestation: get(it, "attestation").and_then(Attestation::parse),
        created_at: parse_ts(req(it, "created_at")?)?,
        verified_at: opt_ts(it, "verified_at")?,
        closed_at: opt_ts(it, "closed_at")?,
        parts: match it.get("parts") {
            Some(AttributeValue::L(l)) => l
                .iter()
                .filter_map(|v| v.as_s().ok())
                .filter_map(|v| Controller::from_stored(v))
                .collect(),
            _ => Vec::new(),
        },
        open_parts: num(it, "open_parts"),
        history: history_of(it)?,
    })
}

pub fn part_item(p: &ControllerPart) -> Item {
    let k = part_key(&p.controller, &p.request_id);
    let mut it = key_item(&k);
    let mut put = |name: &str, v: AttributeValue| {
        it.insert(name.to_string(), v);
    };
    put("request_id", s(&p.request_id));
    put("controller", s(p.controller.to_stored()));
    if let Controller::Tenant(t) = &p.controller {
        put("tenant_id", s(t.as_str()));
    }
    put("request_type", s(p.request_type.as_str()));
    put("jurisdiction", s(p.jurisdiction.as_str()));
    put("status", s(p.status.as_str()));
    put("email_bidx", s(&p.email_bidx));
    put("received_at", ts(p.received_at));
    put("due", s(ymd(p.due)));
    put("extended_due_limit", s(ymd(p.extended_due_limit)));
    if let Some(d) = p.acknowledge_by {
        put("acknowledge_by", s(ymd(d)));
    }
    if let Some(t) = p.acknowledged_at {
        put("acknowledged_at", ts(t));
    }
    put("created_at", ts(p.created_at));
    put("history", history_value(&p.history));
    if p.is_open() {
        let sort = keys::dsar_due_sort(&ymd(p.due), &p.request_id);
        put("queue_pk", s(&k.pk));
        put("due_sk", s(sort));
        put(
            "due_pk",
            s(keys::dsar_due_partition(due_shard(
                &p.request_id,
                &p.controller,
            ))),
        );
    } else if let Some(closed) = p.closed_at {
        put("closed_at", ts(closed));
        put("exp_bucket", s(record_expiry_bucket(&k, closed)));
    }
    if let Some(r) = &p.denial_reason {
        put("denial_reason", s(r));
    }
    it
}

pub fn part_from_item(it: &Item) -> anyhow::Result<ControllerPart> {
    Ok(ControllerPart {
        request_id: req(it, "request_id")?.to_string(),
        controller: Controller::from_stored(req(it, "controller")?)
            .ok_or_else(|| anyhow!("bad controller"))?,
        request_type: RequestType::parse(req(it, "request_type")?)
            .ok_or_else(|| anyhow!("unknown type"))?,
        jurisdiction: Jurisdiction::parse(req(it, "jurisdiction")?)
            .ok_or_else(|| anyhow!("bad jurisdiction"))?,
        status: Status::parse(req(it, "status")?).ok_or_else(|| anyhow!("bad status"))?,
        email_bidx: req(it, "email_bidx")?.to_string(),
        received_at: parse_ts(req(it, "received_at")?)?,
        due: date_of(it, "due")?,
        extended_due_limit: date_of(it, "extended_due_limit")?,
        acknowledge_by: get(it, "acknowledge_by").and_then(parse_ymd),
        acknowledged_at: opt_ts(it, "acknowledged_at")?,
        extended_at: opt_ts(it, "extended_at")?,
        extension_reason: get(it, "extension_reason").map(str::to_string),
        denial_reason: get(it, "denial_reason").map(str::to_string),
        outcome: get(it, "outcome").map(str::to_string),
        failure: get(it, "failure").map(str::to_string),
        restriction_lifted_at: opt_ts(it, "restriction_lifted_at")?,
        compelling_grounds: get(it, "compelling_grounds").map(str::to_string),
        created_at: parse_ts(req(it, "created_at")?)?,
        closed_at: opt_ts(it, "closed_at")?,
        history: history_of(it)?,
    })
}

/// A page of a controller's requests.
#[derive(Debug, Clone)]
pub struct PartsPage {
    pub parts: Vec<ControllerPart>,
    pub next: Option<StartKey>,
}

/// An open part as the deadline check sees it (the `by_due` projection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueEntry {
    pub request_id: String,
    pub controller: Controller,
    pub request_type: RequestType,
    pub status: Status,
    pub due: Date,
}

fn start_key_of(k: Option<HashMap<String, AttributeValue>>) -> Option<StartKey> {
    let k = k.filter(|k| !k.is_empty())?;
    Some(StartKey(
        k.into_iter()
            .filter_map(|(name, v)| v.as_s().ok().map(|v| (name, v.clone())))
            .collect(),
    ))
}

fn start_item(k: Option<StartKey>) -> Option<HashMap<String, AttributeValue>> {
    k.map(|k| k.0.into_iter().map(|(name, v)| (name, s(v))).collect())
}

impl DsarStore {
    pub fn new(client: Client, tables: DsarTables) -> Self {
        Self { client, tables }
    }

    pub fn tables(&self) -> &DsarTables {
        &self.tables
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn get_item(&self, table: &str, k: &Key) -> anyhow::Result<Option<Item>> {
        get_item(&self.client, table, k).await
    }

    // ------------------------------------------------------------ rate limits

    /// Counts one filing against a window; `false` when the window already holds `limit`.
    pub async fn rate_hit(&self, k: &Key, limit: u32, expires_at: i64) -> anyhow::Result<bool> {
        let r = self
            .client
            .update_item()
            .table_name(&self.tables.ops)
            .set_key(Some(key_item(k)))
            .update_expression("ADD n :one SET expires_at = :exp")
            .condition_expression("attribute_not_exists(n) OR n < :limit")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":exp", n(expires_at))
            .expression_attribute_values(":limit", n(limit))
            .send()
            .await;
        Ok(unless_condition_failed(r, "UpdateItem rate window")?.is_some())
    }

    // ------------------------------------------------------------ tenants and forms

    /// The tenant a public form belongs to.
    pub async fn form_tenant(
        &self,
        form_id: &shared_core::domain::FormId,
    ) -> anyhow::Result<Option<TenantId>> {
        let it = self
            .get_item(&self.tables.tenants, &keys::form(form_id))
            .await?;
        it.map(|it| TenantId::parse(req(&it, "tenant_id")?).map_err(anyhow::Error::new))
            .transpose()
    }

    /// Whether a tenant exists (any status: a closed workspace still answers for its data).
    pub async fn tenant_exists(&self, t: &TenantId) -> anyhow::Result<bool> {
        Ok(self
            .get_item(&self.tables.tenants, &keys::tenant(t))
            .await?
            .is_some())
    }

    // ------------------------------------------------------------ requests

    /// Stores a new request (never overwrites one).
    pub async fn put_request(
        &self,
        r: &SubjectRequest,
        ttl_until: Option<OffsetDateTime>,
    ) -> anyhow::Result<()> {
        // The id is new: an item found under it is this put, landed by an earlier attempt whose
        // answer was lost.
        if !shared_core::dynamo::put_new_or_own(
            &self.client,
            &self.tables.privacy,
            request_item(r, ttl_until),
            "PutItem request",
        )
        .await?
        {
            anyhow::bail!("a request {} exists already", r.request_id);
        }
        Ok(())
    }

    pub async fn request(&self, id: &str) -> anyhow::Result<Option<SubjectRequest>> {
        self.get_item(&self.tables.privacy, &keys::dsar_request(id))
            .await?
            .map(|it| request_from_item(&it))
            .transpose()
    }

    /// Removes a request that was never confirmed, nor could be: its code email failed to go
    /// out (a filing answered 503 leaves nothing behind).
    pub async fn withdraw_unsent(&self, id: &str) -> anyhow::Result<()> {
        let r = self
            .client
            .delete_item()
            .table_name(&self.tables.privacy)
            .set_key(Some(key_item(&keys::dsar_request(id))))
            .condition_expression("#st = :unverified")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":unverified", s("identity_unverified"))
            .send()
            .await;
        unless_condition_failed(r, "DeleteItem unsent request")?;
        Ok(())
    }

    /// Spends one verification try: the request after it, or `None` when none is left (or the
    /// request is no longer waiting for its code).
    pub async fn spend_attempt(
        &self,
        id: &str,
        max: u32,
    ) -> anyhow::Result<Option<SubjectRequest>> {
        let r = self
            .client
            .update_item()
            .table_name(&self.tables.privacy)
            .set_key(Some(key_item(&keys::dsar_request(id))))
            .update_expression("ADD attempts :one")
            .condition_expression("#st = :unverified AND attempts < :max")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":unverified", s(Status::IdentityUnverified.as_str()))
            .expression_attribute_values(":max", n(max))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        unless_condition_failed(r, "UpdateItem attempt")?
            .and_then(|out| out.attributes)
            .map(|it| request_from_item(&it))
            .transpose()
    }

    /// A request whose verification failed for good: dead, its email and details removed (the
    /// TTL set at filing removes the rest).
    pub async fn kill_request(&self, id: &str, entry: &HistoryEntry) -> anyhow::Result<bool> {
        let r = self
            .client
            .update_item()
            .table_name(&self.tables.privacy)
            .set_key(Some(key_item(&keys::dsar_request(id))))
            .update_expression(
                "SET #st = :expired, closed_at = :now, history = list_append(history, :h) \
                 REMOVE email, details, code_hash",
            )
            .condition_expression("#st = :unverified")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":expired", s(Status::Expired.as_str()))
            .expression_attribute_values(":unverified", s(Status::IdentityUnverified.as_str()))
            .expression_attribute_values(":now", ts(entry.at))
            .expression_attribute_values(":h", history_value(std::slice::from_ref(entry)))
            .send()
            .await;
        Ok(unless_condition_failed(r, "UpdateItem expire request")?.is_some())
    }

    /// Every tenant holding a lead with this email blind index, or a quarantined submission
    /// of it: Queries of the KEYS_ONLY `by_email_bidx` index of the leads table and `by_subject`
    /// of the ops table (the keys name the tenant). Never a scan.
    pub async fn tenants_holding(&self, email_bidx: &str) -> anyhow::Result<Vec<TenantId>> {
        let mut out = BTreeSet::new();
        for pk in self.lead_pks_of(email_bidx).await? {
            if let Some(t) = tenant_of_lead_pk(&pk) {
                out.insert(t);
            }
        }
        let (quarantined, _) = shared_leads::dynamo::quarantined_of_subject(
            &self.client,
            &self.tables.ops,
            None,
            email_bidx,
        )
        .await?;
        out.extend(
            quarantined
                .iter()
                .filter_map(|k| shared_leads::dynamo::tenant_of_quarantine_pk(&k.pk)),
        );
        Ok(out.into_iter().collect())
    }

    /// The lead partitions holding data of one person across tenants (`TENANT#<t>#LEAD#<l>`):
    /// leads with the person's email now, and leads it was the email of (their submissions).
    pub async fn lead_pks_of(&self, email_bidx: &str) -> anyhow::Result<Vec<String>> {
        let (holdings, _) = lead_pks_holding(&self.client, &self.tables.leads, email_bidx).await?;
        Ok(holdings.into_iter().map(|h| h.pk).collect())
    }

    /// Stores a part if it is not there yet (a retried routing writes it once).
    pub async fn put_part(&self, p: &ControllerPart) -> anyhow::Result<()> {
        let r = self
            .client
            .put_item()
            .table_name(&self.tables.privacy)
            .set_item(Some(part_item(p)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        unless_condition_failed(r, "PutItem part")?;
        Ok(())
    }

    /// The request is verified and routed to `parts`, of which `open` are still open.
    pub async fn mark_verified(
        &self,
        id: &str,
        at: OffsetDateTime,
        parts: &[Controller],
        open: u32,
        entries: &[HistoryEntry],
    ) -> anyhow::Result<bool> {
        let r = self
            .client
            .update_item()
            .table_name(&self.tables.privacy)
            .set_key(Some(key_item(&keys::dsar_request(id))))
            .update_expression(
                "SET #st = :verified, verified_at = :at, parts = :parts, open_parts = :open, \
                 history = list_append(history, :h) REMOVE code_hash, code_expires_at, expires_at",
            )
            .condition_expression("#st = :unverified")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":verified", s(Status::Verified.as_str()))
            .expression_attribute_values(":unverified", s(Status::IdentityUnverified.as_str()))
            .expression_attribute_values(":at", ts(at))
            .expression_attribute_values(
                ":parts",
                AttributeValue::L(parts.iter().map(|c| s(c.to_stored())).collect()),
            )
            .expression_attribute_values(":open", n(open))
            .expression_attribute_values(":h", history_value(entries))
            .send()
            .await;
        Ok(unless_condition_failed(r, "UpdateItem verify")?.is_some())
    }

    /// Closes the subject's request once every part is closed: the email and the details go,
    /// the record's 24 months start. `false` when parts are still open (or it is closed).
    pub async fn close_request_if_done(
        &self,
        id: &str,
        entry: &HistoryEntry,
    ) -> anyhow::Result<bool> {
        let k = keys::dsar_request(id);
        let r = self
            .client
            .update_item()
            .table_name(&self.tables.privacy)
            .set_key(Some(key_item(&k)))
            .update_expression(
                "SET #st = :completed, closed_at = :now, exp_bucket = :exp, \
                 history = list_append(history, :h) REMOVE email, details",
            )
            .condition_expression("#st = :verified AND open_parts <= :zero")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":completed", s(Status::Completed.as_str()))
            .expression_attribute_values(":verified", s(Status::Verified.as_str()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":now", ts(entry.at))
            .expression_attribute_values(":exp", s(record_expiry_bucket(&k, entry.at)))
            .expression_attribute_values(":h", history_value(std::slice::from_ref(entry)))
            .send()
            .await;
        Ok(unless_condition_failed(r, "UpdateItem close request")?.is_some())
    }

    // ------------------------------------------------------------ parts

    pub async fn part(&self, c: &Controller, id: &str) -> anyhow::Result<Option<ControllerPart>> {
        self.get_item(&self.tables.privacy, &part_key(c, id))
            .await?
            .map(|it| part_from_item(&it))
            .transpose()
    }

    /// Applies a transition if the part is in one of `change.from` (and the extra condition
    /// holds); a closing one also counts the part closed on the subject's request, in the same
    /// transaction. `false` when the condition failed (nothing written).
    pub async fn transition(
        &self,
        c: &Controller,
        id: &str,
        change: &PartChange,
    ) -> anyhow::Result<bool> {
        let k = part_key(c, id);
        let mut sets = vec![
            "#st = :to".to_string(),
            "history = list_append(history, :h)".to_string(),
        ];
        let mut removes: Vec<String> = change.removes.iter().map(|r| r.to_string()).collect();
        let mut values: Vec<(String, AttributeValue)> = vec![
            (":to".into(), s(change.to.as_str())),
            (
                ":h".into(),
                history_value(std::slice::from_ref(&change.entry)),
            ),
        ];
        for (i, (name, v)) in change.sets.iter().enumerate() {
            sets.push(format!("{name} = :v{i}"));
            values.push((format!(":v{i}"), v.clone()));
        }
        if change.closing != Closing::No {
            sets.push("closed_at = :closed".into());
            values.push((":closed".into(), ts(change.entry.at)));
            removes.extend(["queue_pk", "due_pk", "due_sk"].map(String::from));
        }
        if change.closing == Closing::Full {
            sets.push("exp_bucket = :exp".into());
            values.push((":exp".into(), s(record_expiry_bucket(&k, change.entry.at))));
        }
        let mut update = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            update.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let froms: Vec<String> = (0..change.from.len()).map(|i| format!(":f{i}")).collect();
        for (i, f) in change.from.iter().enumerate() {
            values.push((format!(":f{i}"), s(f.as_str())));
        }
        let mut condition = format!("#st IN ({})", froms.join(", "));
        if let Some(extra) = change.condition {
            condition.push_str(&format!(" AND {extra}"));
        }
        let part_update = Update::builder()
            .table_name(&self.tables.privacy)
            .set_key(Some(key_item(&k)))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#st", "status")
            .set_expression_attribute_values(Some(values.into_iter().collect()))
            .build()
            .context("part update")?;
        let mut items = vec![TransactWriteItem::builder().update(part_update).build()];
        if change.closing == Closing::Full {
            items.push(self.parent_part_closed(id)?);
        }
        self.transact(items).await
    }

    fn parent_part_closed(&self, id: &str) -> anyhow::Result<TransactWriteItem> {
        let u = Update::builder()
            .table_name(&self.tables.privacy)
            .set_key(Some(key_item(&keys::dsar_request(id))))
            .update_expression("ADD open_parts :minus")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":minus", n(-1))
            .build()
            .context("parent update")?;
        Ok(TransactWriteItem::builder().update(u).build())
    }

    /// A restriction in force is lifted: the part's record starts its 24 months and the
    /// subject's request may close.
    pub async fn restriction_lifted(
        &self,
        c: &Controller,
        id: &str,
        entry: &HistoryEntry,
    ) -> anyhow::Result<bool> {
        let k = part_key(c, id);
        let u = Update::builder()
            .table_name(&self.tables.privacy)
            .set_key(Some(key_item(&k)))
            .update_expression(
                "SET restriction_lifted_at = :at, exp_bucket = :exp, \
                 history = list_append(history, :h)",
            )
            .condition_expression(
                "#st = :completed AND request_type = :restriction \
                 AND attribute_not_exists(restriction_lifted_at)",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":at", ts(entry.at))
            .expression_attribute_values(":exp", s(record_expiry_bucket(&k, entry.at)))
            .expression_attribute_values(":h", history_value(std::slice::from_ref(entry)))
            .expression_attribute_values(":completed", s(Status::Completed.as_str()))
            .expression_attribute_values(":restriction", s(RequestType::Restriction.as_str()))
            .build()
            .context("lift update")?;
        self.transact(vec![
            TransactWriteItem::builder().update(u).build(),
            self.parent_part_closed(id)?,
        ])
        .await
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> anyhow::Result<bool> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = e.into_service_error();
                // A failed condition (the part is no longer in a `from` status) is an answer,
                // not an error; anything else (throttling, a conflict) is.
                let condition = matches!(
                    &e,
                    TransactWriteItemsError::TransactionCanceledException(tc)
                        if tc
                            .cancellation_reasons()
                            .iter()
                            .any(|r| r.code() == Some("ConditionalCheckFailed"))
                );
                if condition {
                    Ok(false)
                } else {
                    Err(anyhow::Error::new(e).context("TransactWriteItems part"))
                }
            }
        }
    }

    /// A controller's requests: the open ones by due date (overdue first) from `by_queue`, or
    /// every one, newest first, from the controller's partition.
    pub async fn parts_of(
        &self,
        c: &Controller,
        open_only: bool,
        limit: i32,
        start: Option<StartKey>,
    ) -> anyhow::Result<PartsPage> {
        let pk = match c {
            Controller::Tenant(t) => keys::dsar_parts_of_tenant(t),
            Controller::Platform => keys::DSAR_PLATFORM_PARTS.to_string(),
        };
        let q = self
            .client
            .query()
            .table_name(&self.tables.privacy)
            .limit(limit)
            .set_exclusive_start_key(start_item(start));
        let q = if open_only {
            q.index_name(BY_QUEUE)
                .key_condition_expression("queue_pk = :pk")
                .expression_attribute_values(":pk", s(pk))
        } else {
            q.key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":p", s(keys::DSAR_PART_PREFIX))
                .scan_index_forward(false)
                .consistent_read(true)
        };
        let out = q.send().await.context("Query parts")?;
        let parts = out
            .items
            .unwrap_or_default()
            .iter()
            .map(part_from_item)
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(PartsPage {
            parts,
            next: start_key_of(out.last_evaluated_key),
        })
    }

    /// Open parts of every controller due on or before `until` (overdue included), from the
    /// `by_due` index: one Query per shard, reading only what is due. Never a scan.
    pub async fn due_until(&self, until: Date) -> anyhow::Result<Vec<DueEntry>> {
        // Sort keys are `<YYYY-MM-DD>#<id>`: every key of `until` sorts below `<until>#~`.
        let upper = format!("{}#~", ymd(until));
        let mut out = Vec::new();
        for shard in 0..keys::DSAR_DUE_SHARDS {
            let mut start = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.tables.privacy)
                    .index_name(BY_DUE)
                    .key_condition_expression("due_pk = :p AND due_sk < :u")
                    .expression_attribute_values(":p", s(keys::dsar_due_partition(shard)))
                    .expression_attribute_values(":u", s(&upper))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .context("Query by_due")?;
                for it in page.items.unwrap_or_default() {
                    out.push(DueEntry {
                        request_id: req(&it, "request_id")?.to_string(),
                        controller: Controller::from_stored(req(&it, "controller")?)
                            .ok_or_else(|| anyhow!("bad controller"))?,
                        request_type: RequestType::parse(req(&it, "request_type")?)
                            .ok_or_else(|| anyhow!("unknown type"))?,
                        status: Status::parse(req(&it, "status")?)
                            .ok_or_else(|| anyhow!("bad status"))?,
                        due: date_of(&it, "due")?,
                    });
                }
                match page.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
        }
        out.sort_by(|a, b| (a.due, &a.request_id).cmp(&(b.due, &b.request_id)));
        Ok(out)
    }

    // ------------------------------------------------------------ digests

    /// Claims the sending of one controller's digest of one day; `false` when already sent.
    pub async fn claim_digest(&self, k: &Key, expires_at: i64) -> anyhow::Result<bool> {
        let mut it = key_item(k);
        it.insert("expires_at".into(), n(expires_at));
        // This claim's own id: a claim the SDK sent again after a lost answer finds its own
        // marker and still sends the digest (without it the digest was never sent).
        it.insert("claim".into(), s(ulid::Ulid::new().to_string()));
        shared_core::dynamo::put_new_or_own(
            &self.client,
            &self.tables.ops,
            it,
            "PutItem digest marker",
        )
        .await
    }

    /// Releases a claim whose email could not be sent, so the next run sends it.
    pub async fn release_digest(&self, k: &Key) -> anyhow::Result<()> {
        self.client
            .delete_item()
            .table_name(&self.tables.ops)
            .set_key(Some(key_item(k)))
            .send()
            .await
            .context("DeleteItem digest marker")?;
        Ok(())
    }

    // ------------------------------------------------------------ one-click opt-out

    /// Records a one-click withdrawal as proof (time, source, purpose); a repeat keeps the first.
    pub async fn record_opt_out(
        &self,
        k: &Key,
        purpose: &str,
        at: OffsetDateTime,
    ) -> anyhow::Result<()> {
        let r = self
            .client
            .update_item()
            .table_name(&self.tables.privacy)
            .set_key(Some(key_item(k)))
            .update_expression(
                "SET withdrawn_at = if_not_exists(withdrawn_at, :at), #src = :src, \
                 purposes = list_append(if_not_exists(purposes, :empty), :p)",
            )
            .expression_attribute_names("#src", "source")
            .expression_attribute_values(":at", ts(at))
            .expression_attribute_values(":src", s("one-click email link"))
            .expression_attribute_values(":empty", AttributeValue::L(vec![]))
            .expression_attribute_values(
                ":p",
                AttributeValue::L(vec![AttributeValue::M(HashMap::from([
                    ("purpose".to_string(), s(purpose)),
                    ("at".to_string(), ts(at)),
                ]))]),
            )
            .send()
            .await;
        r.context("UpdateItem opt-out")?;
        Ok(())
    }

    /// Flags a lead as opted out of marketing (if it still exists); returns whether it did.
    /// Flags the lead opted out of marketing if its email is still the subject's (`Ok(false)`
    /// otherwise: a lead whose email was changed from the subject's belongs to someone else).
    pub async fn flag_lead_opt_out(
        &self,
        lead_pk: &str,
        subject_bidx: &str,
        at: OffsetDateTime,
    ) -> anyhow::Result<bool> {
        let k = Key {
            pk: lead_pk.to_string(),
            sk: "LEAD".to_string(),
        };
        self.flag_opt_out(&self.tables.leads, &k, Some(subject_bidx), at)
            .await
    }

    /// GDPR Art. 18(1)(d) and 21(1): an objection to legitimate-interest processing restricts
    /// the tenant's leads of the subject at once, while the tenant weighs compelling grounds.
    /// Each lead holding the subject's blind index (the same leads a restriction request
    /// restricts) gets `restricted` and adds the request to `restricted_for` (the objections
    /// that hold it), with an audit entry `lead.restricted` (no actor: the platform acted). A
    /// lead a restriction request restricted keeps that hold too (`restricted_by_request`, also
    /// set on a lead restricted before the marker existed: restricted, with neither hold).
    /// Repeating it changes nothing more. Returns the lead ids this objection holds.
    pub async fn restrict_for_objection(
        &self,
        tenant: &TenantId,
        subject_bidx: &str,
        request_id: &str,
        at: OffsetDateTime,
    ) -> anyhow::Result<Vec<String>> {
        let at = shared_core::clock::rfc3339(at);
        let mut restricted = Vec::new();
        for lead in self.tenant_leads_of(tenant, subject_bidx).await? {
            let k = keys::lead(tenant, &lead);
            let hold = |legacy: bool| {
                let u = self
                    .client
                    .update_item()
                    .table_name(&self.tables.leads)
                    .set_key(Some(key_item(&k)))
                    .expression_attribute_values(":t", AttributeValue::Bool(true))
                    .expression_attribute_values(
                        ":ids",
                        AttributeValue::Ss(vec![request_id.into()]),
                    );
                if legacy {
                    // Restricted with neither hold recorded: a restriction request's, from
                    // before `restricted_by_request`; recorded so this objection never lifts it.
                    u.update_expression("SET restricted_by_request = :t ADD restricted_for :ids")
                        .condition_expression("attribute_exists(pk) AND restricted = :t")
                } else {
                    u.update_expression(
                        "SET restricted = :t, restricted_at = if_not_exists(restricted_at, :at) \
                         ADD restricted_for :ids",
                    )
                    .condition_expression(
                        "attribute_exists(pk) AND (attribute_not_exists(restricted) \
                         OR restricted = :f OR attribute_exists(restricted_for) \
                         OR attribute_exists(restricted_by_request))",
                    )
                    .expression_attribute_values(":f", AttributeValue::Bool(false))
                    .expression_attribute_values(":at", s(&at))
                }
            };
            let mut done =
                unless_condition_failed(hold(false).send().await, "UpdateItem objection hold")?
                    .is_some();
            if !done {
                done =
                    unless_condition_failed(hold(true).send().await, "UpdateItem objection hold")?
                        .is_some();
            }
            if done {
                self.lead_audit(tenant, &lead, request_id, "lead.restricted", &at)
                    .await?;
                restricted.push(lead.as_str().to_string());
            }
        }
        Ok(restricted)
    }

    /// The tenant recorded compelling legitimate grounds against the objection `request_id`:
    /// the objection's hold on each lead of the subject goes, and a lead no other objection and
    /// no restriction request holds is unrestricted, with an audit entry `lead.unrestricted`.
    /// Returns the lead ids unrestricted.
    pub async fn lift_objection_restriction(
        &self,
        tenant: &TenantId,
        subject_bidx: &str,
        request_id: &str,
        at: OffsetDateTime,
    ) -> anyhow::Result<Vec<String>> {
        let at = shared_core::clock::rfc3339(at);
        let mut lifted = Vec::new();
        for lead in self.tenant_leads_of(tenant, subject_bidx).await? {
            let k = keys::lead(tenant, &lead);
            // A set left empty disappears, so "no objection holds it" is its absence.
            let r = self
                .client
                .update_item()
                .table_name(&self.tables.leads)
                .set_key(Some(key_item(&k)))
                .update_expression("DELETE restricted_for :ids")
                .condition_expression("contains(restricted_for, :id)")
                .expression_attribute_values(":ids", AttributeValue::Ss(vec![request_id.into()]))
                .expression_attribute_values(":id", s(request_id))
                .send()
                .await;
            if unless_condition_failed(r, "UpdateItem objection hold")?.is_none() {
                continue;
            }
            let r = self
                .client
                .update_item()
                .table_name(&self.tables.leads)
                .set_key(Some(key_item(&k)))
                .update_expression("REMOVE restricted, restricted_at")
                .condition_expression(
                    "attribute_exists(pk) AND attribute_not_exists(restricted_for) \
                     AND attribute_not_exists(restricted_by_request)",
                )
                .send()
                .await;
            if unless_condition_failed(r, "UpdateItem objection lift")?.is_some() {
                self.lead_audit(tenant, &lead, request_id, "lead.unrestricted", &at)
                    .await?;
                lifted.push(lead.as_str().to_string());
            }
        }
        Ok(lifted)
    }

    /// The tenant's leads holding the subject's blind index (ids, sorted, once each).
    async fn tenant_leads_of(
        &self,
        tenant: &TenantId,
        subject_bidx: &str,
    ) -> anyhow::Result<Vec<shared_core::domain::LeadId>> {
        let prefix = format!("{}#LEAD#", keys::leads_of_tenant(tenant));
        let mut ids = Vec::new();
        for pk in self.lead_pks_of(subject_bidx).await? {
            if let Some(id) = pk.strip_prefix(&prefix) {
                ids.push(shared_core::domain::LeadId::parse(id).context("lead id in a key")?);
            }
        }
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        ids.dedup();
        Ok(ids)
    }

    /// A lead's audit entry in the workspace's shape (field `restricted`; no actor: the platform
    /// acted on a data-subject request), keyed by the time and the request: a repeated step
    /// rewrites the same entry. An UpdateItem: the function may only update the leads table.
    async fn lead_audit(
        &self,
        tenant: &TenantId,
        lead: &shared_core::domain::LeadId,
        request_id: &str,
        action: &str,
        at: &str,
    ) -> anyhow::Result<()> {
        // One entry per request and action: the restriction and its lift are two entries.
        let entry_id = format!("dsar-{request_id}-{}", action.trim_start_matches("lead."));
        let k = keys::lead_audit(tenant, lead, at, &entry_id);
        self.client
            .update_item()
            .table_name(&self.tables.leads)
            .set_key(Some(key_item(&k)))
            .update_expression("SET entry_id = :e, #a = :a, #f = :f, #at = :at")
            .expression_attribute_names("#a", "action")
            .expression_attribute_names("#f", "fields")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":e", s(&entry_id))
            .expression_attribute_values(":a", s(action))
            .expression_attribute_values(":f", AttributeValue::L(vec![s("restricted")]))
            .expression_attribute_values(":at", s(at))
            .send()
            .await
            .context("UpdateItem lead audit")?;
        Ok(())
    }

    /// A one-click withdrawal from a tenant's email, on the consent records of one lead's
    /// submissions: each (all of them for `Consent`, the marketing ones for `Marketing`) keeps
    /// what was given and gains the withdrawal's time and the source "one-click email link", as a
    /// withdrawal through a data-subject request does. One Query of the lead's submissions (their
    /// consents only), one UpdateItem per submission that changes; repeating it changes nothing.
    /// Returns the consent records withdrawn.
    pub async fn withdraw_lead_consents(
        &self,
        lead_pk: &str,
        subject_bidx: &str,
        subject_owns_lead: bool,
        purpose: crate::dsar::tokens::UnsubscribePurpose,
        at: OffsetDateTime,
    ) -> anyhow::Result<u64> {
        let lead_owner = subject_owns_lead.then_some(subject_bidx);
        use crate::dsar::tokens::UnsubscribePurpose;
        let only = match purpose {
            UnsubscribePurpose::Consent => None,
            UnsubscribePurpose::Marketing => Some("marketing"),
        };
        let at = shared_core::clock::rfc3339(at);
        let mut withdrawn = 0;
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.tables.leads)
                .key_condition_expression("pk = :pk AND begins_with(sk, :sub)")
                .expression_attribute_values(":pk", s(lead_pk))
                .expression_attribute_values(":sub", s("SUB#"))
                .projection_expression("pk, sk, consents, from_email_bidx, from_phone_bidx")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .context("Query lead submissions' consents")?;
            for it in page.items() {
                // Only the subject's own submissions (a lead may hold another address's).
                if !crate::dsar::subjects::is_subjects(subject_bidx, lead_owner, it) {
                    continue;
                }
                let Some(AttributeValue::L(consents)) = it.get("consents") else {
                    continue;
                };
                let (updated, changed) = crate::dsar::steps::withdrawn_consents(
                    consents,
                    only,
                    &at,
                    "one-click email link",
                );
                if changed == 0 {
                    continue;
                }
                self.client
                    .update_item()
                    .table_name(&self.tables.leads)
                    .key("pk", it["pk"].clone())
                    .key("sk", it["sk"].clone())
                    .update_expression("SET consents = :c")
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(":c", AttributeValue::L(updated))
                    .send()
                    .await
                    .context("UpdateItem consents")?;
                withdrawn += changed;
            }
            match page.last_evaluated_key() {
                Some(k) => start = Some(k.clone()),
                None => return Ok(withdrawn),
            }
        }
    }

    /// Flags an account user as opted out of the platform's marketing.
    pub async fn flag_user_opt_out(
        &self,
        t: &TenantId,
        u: &UserId,
        at: OffsetDateTime,
    ) -> anyhow::Result<bool> {
        self.flag_opt_out(&self.tables.tenants, &keys::user(t, u), None, at)
            .await
    }

    async fn flag_opt_out(
        &self,
        table: &str,
        k: &Key,
        email_bidx: Option<&str>,
        at: OffsetDateTime,
    ) -> anyhow::Result<bool> {
        let mut u = self
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(key_item(k)))
            .update_expression(
                "SET marketing_opt_out = :yes, marketing_opt_out_at = if_not_exists(marketing_opt_out_at, :at), \
                 marketing_opt_out_source = :src",
            )
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":at", ts(at))
            .expression_attribute_values(":src", s("one-click email link"));
        u = match email_bidx {
            Some(b) => u
                .condition_expression("attribute_exists(pk) AND email_bidx = :b")
                .expression_attribute_values(":b", s(b)),
            None => u.condition_expression("attribute_exists(pk)"),
        };
        let r = u.send().await;
        Ok(unless_condition_failed(r, "UpdateItem opt-out flag")?.is_some())
    }
}

/// The tenant of a lead partition key `TENANT#<t>#LEAD#<l>`.
pub fn tenant_of_lead_pk(pk: &str) -> Option<TenantId> {
    let rest = pk.strip_prefix("TENANT#")?;
    let (t, lead) = rest.split_once("#LEAD#")?;
    if lead.is_empty() {
        return None;
    }
    TenantId::parse(t).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn lead_keys_name_their_tenant() {
        assert_eq!(
            tenant_of_lead_pk("TENANT#tn-1#LEAD#ld-2").map(|t| t.to_string()),
            Some("tn-1".to_string())
        );
        assert_eq!(tenant_of_lead_pk("TENANT#tn-1#LEAD#"), None);
        assert_eq!(tenant_of_lead_pk("FORM#x"), None);
    }

    #[test]
    fn closed_records_expire_24_months_later() {
        let k = keys::dsar_request("r1");
        let b = record_expiry_bucket(&k, datetime!(2026-01-31 10:00 UTC));
        assert!(b.starts_with("EXP#dsar-record#2028-01-31#"), "{b}");
    }
}
