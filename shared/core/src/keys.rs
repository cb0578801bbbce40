//! Every DynamoDB key of the platform, built here and nowhere else. Every builder of tenant data
//! takes a [`TenantId`], so a key of one tenant cannot be built from another tenant's context.
//! The access patterns these keys serve are documented in `docs/data-model.md`.

use crate::domain::ProviderId;
use crate::domain::{ApiKeyId, FormId, LeadId, SessionId, SubmissionId, TenantId, UserId};
use crate::domain::{AttachmentId, ExportId, ImportId};

pub const PK: &str = "pk";
pub const SK: &str = "sk";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    fn new(pk: String, sk: &str) -> Self {
        Self {
            pk,
            sk: sk.to_string(),
        }
    }
}

// ---- tenants table (account & profile; tenant configuration)

pub fn tenant(t: &TenantId) -> Key {
    Key::new(format!("TENANT#{t}"), "TENANT")
}

/// A form is found by its public id alone (the submission URL carries no tenant); the stored
/// record names its tenant.
pub fn form(f: &FormId) -> Key {
    Key::new(format!("FORM#{f}"), "FORM")
}

/// The GSI keys that list a tenant's forms.
pub fn form_by_tenant(t: &TenantId, f: &FormId) -> Key {
    Key::new(format!("TENANT#{t}"), &format!("FORM#{f}"))
}

/// A user of a tenant; a tenant's team is the Query `pk = TENANT#t, sk begins_with USER#`.
pub fn user(t: &TenantId, u: &UserId) -> Key {
    Key::new(format!("TENANT#{t}"), &format!("USER#{u}"))
}

/// Login index: the one account an email belongs to, keyed by the email's blind index (so an
/// email is unique platform-wide, enforced by a conditional put).
pub fn login(email_bidx: &str) -> Key {
    Key::new(format!("LOGIN#{email_bidx}"), "LOGIN")
}

/// A session, found by the id carried in its refresh token; the stored item names its tenant.
pub fn session(s: &SessionId) -> Key {
    Key::new(format!("SESSION#{s}"), "SESSION")
}

/// The GSI keys listing a user's sessions.
pub fn session_by_user(u: &UserId, s: &SessionId) -> Key {
    Key::new(format!("USER#{u}"), &format!("SESSION#{s}"))
}

/// The `gsi1` partition listing a user's sessions (see [`session_by_user`]).
pub fn sessions_of_user(u: &UserId) -> String {
    format!("USER#{u}")
}

/// An API key of a tenant, under the tenant's partition: a key is found only with the tenant it
/// names, so another tenant's key cannot be read from a tenant's context. A tenant's keys are
/// the Query `pk = TENANT#t, sk begins_with APIKEY#`.
pub fn api_key(t: &TenantId, k: &ApiKeyId) -> Key {
    Key::new(format!("TENANT#{t}"), &format!("{API_KEY_PREFIX}{k}"))
}

/// The sort-key prefix of a tenant's API keys.
pub const API_KEY_PREFIX: &str = "APIKEY#";

/// A one-time token (email verification, password reset, invitation) by the hash of its secret.
pub fn one_time_token(secret_hash: &str) -> Key {
    Key::new(format!("TOKEN#{secret_hash}"), "TOKEN")
}

// ---- security log table

/// A tenant's security events by time; events about no known tenant (a failed login for an
/// unknown email) go to the platform's own partition.
pub fn security_event(t: Option<&TenantId>, at_rfc3339: &str, event_id: &str) -> Key {
    let pk = match t {
        Some(t) => format!("TENANT#{t}#SECLOG"),
        None => "PLATFORM#SECLOG".to_string(),
    };
    Key::new(pk, &format!("{at_rfc3339}#{event_id}"))
}

/// A tenant's security-log partition (see [`security_event`]).
pub fn security_log_of_tenant(t: &TenantId) -> String {
    format!("TENANT#{t}#SECLOG")
}

// ---- leads table (customer CRM content)

fn lead_pk(t: &TenantId, l: &LeadId) -> String {
    format!("TENANT#{t}#LEAD#{l}")
}

pub fn lead(t: &TenantId, l: &LeadId) -> Key {
    Key::new(lead_pk(t, l), "LEAD")
}

/// Which lead an address leads to, when that is not the lead its blind index derives
/// (`BlindIndexKey::lead_id`): written when an edit moves a lead to an address, or when an
/// address whose derived lead moved away starts a new lead (`shared_leads::dynamo::routing`).
pub fn lead_route(t: &TenantId, contact_bidx: &str) -> Key {
    Key::new(format!("TENANT#{t}#ROUTE#{contact_bidx}"), "ROUTE")
}

/// Sort-key prefix of a lead's former addresses.
pub const FORMER_ADDRESS_PREFIX: &str = "FORMER#";

/// A former email address of a lead (its blind index only), kept under the lead so that the
/// submissions that address made stay findable by their subject (`by_email_bidx`) after the
/// lead's email was changed.
pub fn lead_former_address(t: &TenantId, l: &LeadId, email_bidx: &str) -> Key {
    Key::new(
        lead_pk(t, l),
        &format!("{FORMER_ADDRESS_PREFIX}{email_bidx}"),
    )
}

/// The `by_tenant` GSI partition of a tenant's leads (sort key: [`lead_created_sort`]).
pub fn leads_of_tenant(t: &TenantId) -> String {
    format!("TENANT#{t}")
}

/// The `by_stage` GSI partition of a tenant's leads in one pipeline stage.
pub fn leads_in_stage(t: &TenantId, stage: &str) -> String {
    format!("TENANT#{t}#STAGE#{stage}")
}

/// The `stage_pk` a lead in `stage` carries: none in the first stage. `by_stage` is sparse: a
/// new lead (every form submission's) writes no entry there, one index write less per new
/// lead; the first stage is listed from `by_tenant` with a filter on `stage` (projected there),
/// and it can never be removed from a pipeline, so no one asks whether it holds leads.
pub fn stage_partition(t: &TenantId, stage: &str) -> Option<String> {
    (stage != FIRST_STAGE).then(|| leads_in_stage(t, stage))
}

/// GSI sort key of a lead: creation time then id, so pages are stable and newest-first.
pub fn lead_created_sort(created_at_rfc3339: &str, l: &LeadId) -> String {
    format!("{created_at_rfc3339}#{l}")
}

/// The stage a new lead starts in.
pub const FIRST_STAGE: &str = "new";

/// Submissions sort under their lead by id (ULIDs: chronological).
pub fn submission(t: &TenantId, l: &LeadId, s: &SubmissionId) -> Key {
    Key::new(lead_pk(t, l), &format!("SUB#{s}"))
}

// Everything the lead workspace hangs off a lead sorts under its partition, so one Query reads
// the whole record and deleting the partition deletes all of it.

/// A lead's partition: the lead item, its submissions, notes, stage history and audit trail.
pub fn lead_partition(t: &TenantId, l: &LeadId) -> String {
    lead_pk(t, l)
}

/// Sort-key prefixes of the items under a lead.
pub const SUBMISSION_PREFIX: &str = "SUB#";
pub const NOTE_PREFIX: &str = "NOTE#";
pub const STAGE_CHANGE_PREFIX: &str = "STAGE#";
pub const AUDIT_PREFIX: &str = "AUDIT#";

/// A note on a lead; note ids are ULIDs, so notes sort by creation.
pub fn lead_note(t: &TenantId, l: &LeadId, note_id: &str) -> Key {
    Key::new(lead_pk(t, l), &format!("{NOTE_PREFIX}{note_id}"))
}

/// A move of a lead between pipeline stages, by time.
pub fn lead_stage_change(t: &TenantId, l: &LeadId, at_rfc3339: &str, change_id: &str) -> Key {
    Key::new(
        lead_pk(t, l),
        &format!("{STAGE_CHANGE_PREFIX}{at_rfc3339}#{change_id}"),
    )
}

/// An audit-trail entry of a lead (who changed which fields), by time.
pub fn lead_audit(t: &TenantId, l: &LeadId, at_rfc3339: &str, entry_id: &str) -> Key {
    Key::new(
        lead_pk(t, l),
        &format!("{AUDIT_PREFIX}{at_rfc3339}#{entry_id}"),
    )
}

/// The tenants-table item holding a tenant's pipeline (its ordered stages).
pub fn pipeline(t: &TenantId) -> Key {
    Key::new(format!("TENANT#{t}"), "PIPELINE")
}

/// The GSI partition (`gsi1pk`) listing a tenant's forms; sort keys begin with [`FORM_PREFIX`].
pub fn forms_of_tenant(t: &TenantId) -> String {
    format!("TENANT#{t}")
}

pub const FORM_PREFIX: &str = "FORM#";

/// GSI partition of submissions whose technical data expires on `day` (YYYY-MM-DD). Sharded so
/// one busy day does not make one hot partition; retention reads every shard of a day.
pub const TECH_EXPIRY_SHARDS: u32 = 8;
pub fn tech_expiry_partition(day: &str, shard: u32) -> String {
    format!("TECHEXP#{day}#{shard}")
}

// ---- expiry index (every table whose items are removed at a date)
//
// Items removed at a date carry `exp_bucket` = `EXP#<rule>#<YYYY-MM-DD>#<shard>`, indexed by the
// `by_expiry` GSI (HASH `exp_bucket`, RANGE `sk`, KEYS_ONLY). Retention reads, for each rule and
// each day up to its run's date, every shard of the day: the cost follows what expires, not what
// is stored. Rule names: `tenant-erase`, `tech-data`, `security-log`, `dsar-record`, `session`,
// `token`, `export`, `billing`, `unverified-signup`.

/// How many GSI partitions one rule's day is spread over (one busy day is not one hot partition).
pub const EXPIRY_SHARDS: u32 = 4;

/// The `by_expiry` GSI partition of the items of `rule` that expire on `day`, shard `shard`.
pub fn expiry_bucket(rule: &str, day: time::Date, shard: u32) -> String {
    let (y, m, d) = (day.year(), u8::from(day.month()), day.day());
    format!("EXP#{rule}#{y:04}-{m:02}-{d:02}#{shard}")
}

/// The shard of an item in [`expiry_bucket`]: a stable hash (FNV-1a) of its primary key, so a
/// rewrite of the same item lands in the same bucket.
pub fn expiry_shard(pk: &str, sk: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in pk.bytes().chain([0u8]).chain(sk.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % EXPIRY_SHARDS
}

// ---- privacy table (suppression list)

pub fn suppression(t: &TenantId, contact_bidx: &str) -> Key {
    Key::new(format!("TENANT#{t}#SUPPRESSION"), contact_bidx)
}

// ---- privacy table: data-subject requests (docs/dsar.md)

/// What a subject filed, found by its id alone (the subject holds no account).
pub fn dsar_request(request_id: &str) -> Key {
    Key::new(format!("DSAR#{request_id}"), "REQUEST")
}

/// Sort-key prefix of a controller's part of a request.
pub const DSAR_PART_PREFIX: &str = "PART#";

/// A tenant's part of a request: its queue is the partition, so a tenant reads only its own.
pub fn dsar_part(t: &TenantId, request_id: &str) -> Key {
    Key::new(
        dsar_parts_of_tenant(t),
        &format!("{DSAR_PART_PREFIX}{request_id}"),
    )
}

pub fn dsar_parts_of_tenant(t: &TenantId) -> String {
    format!("TENANT#{t}#DSAR")
}

/// The platform's part of a request (account data: the platform is the controller).
pub fn dsar_platform_part(request_id: &str) -> Key {
    Key::new(
        DSAR_PLATFORM_PARTS.to_string(),
        &format!("{DSAR_PART_PREFIX}{request_id}"),
    )
}

pub const DSAR_PLATFORM_PARTS: &str = "PLATFORM#DSAR";

/// `by_queue` / `by_due` GSI sort key of an open part: due date first, so a Query reads overdue
/// requests first.
pub fn dsar_due_sort(due_ymd: &str, request_id: &str) -> String {
    format!("{due_ymd}#{request_id}")
}

/// `by_due` GSI partitions of every open part of the platform (the daily deadline check reads
/// each shard up to a date); sharded so one partition does not take every write.
pub const DSAR_DUE_SHARDS: u32 = 4;
pub fn dsar_due_partition(shard: u32) -> String {
    format!("DSARDUE#{shard}")
}

/// A one-click consent withdrawal / marketing objection of a tenant's lead (proof: time, source).
pub fn marketing_opt_out(t: &TenantId, email_bidx: &str) -> Key {
    Key::new(
        format!("TENANT#{t}#OPTOUT"),
        &format!("OPTOUT#{email_bidx}"),
    )
}

/// The same for the platform's own emails (account holders and subjects without a tenant).
pub fn platform_marketing_opt_out(email_bidx: &str) -> Key {
    Key::new(
        "PLATFORM#OPTOUT".to_string(),
        &format!("OPTOUT#{email_bidx}"),
    )
}

// ---- ops table (rate limits, idempotency)
//
// Lead intake's per-minute rate counts are attributes of the tenant's usage counter item
// ([`usage_month`]), written in the same update as the month's count.

/// Failed-login throttle counters: per account (email blind index) and per client IP hash.
pub fn login_throttle_account(email_bidx: &str) -> Key {
    Key::new(format!("THROTTLE#ACCOUNT#{email_bidx}"), "THROTTLE")
}

pub fn login_throttle_account_ip(email_bidx: &str, ip_hash: &str) -> Key {
    Key::new(
        format!("THROTTLE#ACCOUNTIP#{email_bidx}#{ip_hash}"),
        "THROTTLE",
    )
}

pub fn login_throttle_ip(ip_hash: &str) -> Key {
    Key::new(format!("THROTTLE#IP#{ip_hash}"), "THROTTLE")
}

/// Failed step-ups (password re-entries) of one user, whatever the address.
pub fn step_up_throttle(t: &TenantId, u: &UserId) -> Key {
    Key::new(format!("THROTTLE#STEPUP#{t}#{u}"), "THROTTLE")
}

pub fn idempotency(t: &TenantId, f: &FormId, key_hash: &str) -> Key {
    Key::new(format!("TENANT#{t}#IDEM#{f}#{key_hash}"), "IDEM")
}

/// The retention run's state: its lease and its checkpoint (one item, so a run takes the lease
/// and reads where to start in one request, and saves its checkpoint and releases in one more).
pub fn retention_state() -> Key {
    Key::new("RETENTION".to_string(), "STATE")
}

/// The retention runs' reports, by time (Query `RETENTION#REPORTS`, newest last).
pub fn retention_report(at_rfc3339: &str, run_id: &str) -> Key {
    Key::new(
        "RETENTION#REPORTS".to_string(),
        &format!("REPORT#{at_rfc3339}#{run_id}"),
    )
}

/// The legal-holds registry (ops table, one partition): an entry per held tenant, lead or
/// billing record, written in one transaction with the item's `legal_hold` attribute
/// (`shared_privacy::legal_holds`), so retention reads every hold with one Query.
pub const LEGAL_HOLDS_PARTITION: &str = "LEGAL_HOLDS";
pub const LEGAL_HOLD_PREFIX: &str = "HOLD#";

/// The registry entry of a hold on the item `held` (its kind: `tenant`, `lead`, `billing`).
pub fn legal_hold_entry(kind: &str, held: &Key) -> Key {
    Key::new(
        LEGAL_HOLDS_PARTITION.to_string(),
        &format!("{LEGAL_HOLD_PREFIX}{kind}#{}#{}", held.pk, held.sk),
    )
}

/// Data-subject request filings per client IP hash in an hour window.
pub fn dsar_rate_ip(ip_hash: &str, hour: i64) -> Key {
    Key::new(format!("DSARRATE#IP#{ip_hash}#{hour}"), "DSARRATE")
}

/// Data-subject request filings per email blind index in an hour window.
pub fn dsar_rate_email(email_bidx: &str, hour: i64) -> Key {
    Key::new(format!("DSARRATE#EMAIL#{email_bidx}#{hour}"), "DSARRATE")
}

/// The send slots of one kind of email to one address (email blind index): each slot holds
/// the time of a send, and a send claims a slot only if that time is over an hour old, so at
/// most as many emails as slots reach the address in any hour (`shared_mail::outbound`).
pub fn mail_recipient(kind: &str, email_bidx: &str) -> Key {
    Key::new(format!("MAILTO#{kind}#{email_bidx}"), "MAILTO")
}

/// Emails sent by one route in one hour for one client IP hash or one tenant (`scope`:
/// `ip:<route>` or `tenant:<route>`; `subject`: the IP hash or the tenant id).
pub fn mail_window(scope: &str, subject: &str, hour: i64) -> Key {
    Key::new(format!("MAILRATE#{scope}#{subject}#{hour}"), "MAILRATE")
}

/// The platform's send-suppression list: an address (email blind index) that bounced for good
/// or complained is not mailed again (`shared_mail::SesMailer`, the `mail-events` function).
pub fn send_suppression(email_bidx: &str) -> Key {
    Key::new(format!("MAILSUPPRESS#{email_bidx}"), "MAILSUPPRESS")
}

/// Marks one controller's deadline digest of one day as sent (the daily run is idempotent).
/// `controller`: `tenant:<id>` or `platform`.
pub fn dsar_digest(day_ymd: &str, controller: &str) -> Key {
    Key::new(format!("DSARDIGEST#{day_ymd}#{controller}"), "DSARDIGEST")
}

// ---- billing table (billing & transactions)
//
// Provider-issued ids ([`ProviderId`]: letters, digits, `_`) never contain `#`. Lookups by a
// provider id alone (an event, a customer) carry the provider's name, so a second provider's ids
// cannot collide with the first's.

/// A received provider event: put only if absent, which makes its effect happen once.
pub fn billing_event(provider: &str, event_id: &ProviderId) -> Key {
    Key::new(format!("EVENT#{provider}#{event_id}"), "EVENT")
}

/// Which tenant a provider customer belongs to.
pub fn billing_customer(provider: &str, customer_id: &ProviderId) -> Key {
    Key::new(format!("CUSTOMER#{provider}#{customer_id}"), "CUSTOMER")
}

/// How many events of a type the platform does not handle were received.
pub fn billing_event_type_counter(provider: &str, event_type: &str) -> Key {
    Key::new(format!("EVENTTYPE#{provider}#{event_type}"), "COUNTER")
}

/// A tenant's billing items share one partition: its subscription state, invoices, payments and
/// refunds (the billing view reads them with one Query).
pub fn billing_partition(t: &TenantId) -> String {
    format!("TENANT#{t}")
}

/// The tenant's subscription state (one current subscription).
pub fn subscription_state(t: &TenantId) -> Key {
    Key::new(billing_partition(t), "SUBSCRIPTION")
}

pub fn invoice(t: &TenantId, invoice_id: &ProviderId) -> Key {
    Key::new(billing_partition(t), &format!("INVOICE#{invoice_id}"))
}

/// A payment attempt on an invoice, one per provider event reporting it.
pub fn invoice_payment(t: &TenantId, invoice_id: &ProviderId, event_id: &ProviderId) -> Key {
    Key::new(
        billing_partition(t),
        &format!("PAYMENT#{invoice_id}#{event_id}"),
    )
}

/// The refunds of a charge (its invoice is an attribute).
pub fn charge_refund(t: &TenantId, charge_id: &ProviderId) -> Key {
    Key::new(billing_partition(t), &format!("REFUND#{charge_id}"))
}

// ---- plans table (platform configuration)

/// A plan by the provider price that sells it.
pub fn plan_by_price(provider: &str, price_id: &ProviderId) -> Key {
    Key::new(format!("PRICE#{provider}#{price_id}"), "PLAN")
}

/// The provider price that sells `plan` per `interval` (`month`, `year`): what a checkout asks
/// the provider for. `plan` and `interval` are checked by the caller (lowercase letters, digits,
/// `_` and `-`).
pub fn plan_price(plan: &str, provider: &str, interval: &str) -> Key {
    Key::new(
        format!("PLAN#{plan}"),
        &format!("PRICE#{provider}#{interval}"),
    )
}

// ---- ops table: usage

/// The execution checkpoint of one job of a data-subject request (dsar-worker): phase, cursor,
/// counts. `job_id` is `DsarJob::checkpoint_id` (`<request id>#<scope>#<kind>`): request and
/// tenant ids are the platform's own, never chosen by a subject.
pub fn dsar_checkpoint(job_id: &str) -> Key {
    Key::new(format!("DSARJOB#{job_id}"), "CHECKPOINT")
}

/// A tenant's submissions in a calendar month (`YYYY-MM`, UTC), and the rate limits' counts of
/// the current minute (`crate::dynamo::intake`).
/// The partition of a form's quarantined submissions (ops table, TTL `expires_at`).
pub fn quarantine_partition(t: &TenantId, f: &FormId) -> String {
    format!("{}{f}", quarantine_of_tenant(t))
}

/// What every partition of a tenant's quarantine begins with (the range of the ops table's
/// `by_subject` index: a data-subject request reads one tenant's quarantine only).
pub fn quarantine_of_tenant(t: &TenantId) -> String {
    format!("TENANT#{t}#QUARANTINE#")
}

/// A quarantined submission: under its form, sorted by arrival (its id is a ULID).
pub fn quarantine(t: &TenantId, f: &FormId, quarantine_id: &str) -> Key {
    Key::new(quarantine_partition(t, f), &format!("Q#{quarantine_id}"))
}

/// A form's quarantined posts counted by window (ops table, TTL `expires_at`): what raises the
/// difficulty of its proof-of-work challenges while it is under attack.
pub fn spam_pressure_partition(t: &TenantId, f: &FormId) -> String {
    format!("TENANT#{t}#SPAMPRESSURE#{f}")
}

/// One window's count (`window_start`: unix seconds, zero-padded so the keys sort by time).
pub fn spam_pressure(t: &TenantId, f: &FormId, window_start: i64) -> Key {
    Key::new(
        spam_pressure_partition(t, f),
        &spam_pressure_sort_key(window_start),
    )
}

pub fn spam_pressure_sort_key(window_start: i64) -> String {
    format!("SPAMW#{:012}", window_start.max(0))
}

/// A used proof-of-work challenge (ops table, TTL `expires_at`): its single use.
pub fn used_challenge(t: &TenantId, challenge: &str) -> Key {
    Key::new(format!("TENANT#{t}#POW#{challenge}"), "POW")
}

pub fn usage_month(t: &TenantId, month: &str) -> Key {
    Key::new(format!("TENANT#{t}#USAGE#{month}"), "USAGE")
}

// ---- leads table: attachments, imports and exports (lead transfers)

/// An attachment's record sorts under its lead, so erasing the lead's partition erases it.
pub fn attachment(t: &TenantId, l: &LeadId, a: &AttachmentId) -> Key {
    Key::new(lead_pk(t, l), &format!("{ATTACHMENT_PREFIX}{a}"))
}

/// Sort-key prefix of a lead's attachment records.
pub const ATTACHMENT_PREFIX: &str = "ATT#";

/// A tenant's import and export records share one partition (the tenant's transfer log).
pub fn transfers_of_tenant(t: &TenantId) -> String {
    format!("TENANT#{t}#TRANSFERS")
}

pub fn import_record(t: &TenantId, i: &ImportId) -> Key {
    Key::new(transfers_of_tenant(t), &format!("IMPORT#{i}"))
}

pub fn export_record(t: &TenantId, e: &ExportId) -> Key {
    Key::new(transfers_of_tenant(t), &format!("EXPORT#{e}"))
}

// ---- S3 object keys: every object of a tenant is under a prefix that names the tenant

/// Every object of one lead (its attachments): deleting the lead deletes this prefix.
pub fn lead_objects_prefix(t: &TenantId, l: &LeadId) -> String {
    format!("tenants/{t}/leads/{l}/")
}

/// An attachment's object in the attachments bucket.
pub fn attachment_object(t: &TenantId, l: &LeadId, a: &AttachmentId) -> String {
    format!("{}{a}", lead_objects_prefix(t, l))
}

/// An uploaded CSV waiting to be imported, in the exports bucket (7-day expiry; deleted once
/// imported).
pub fn import_upload_object(t: &TenantId, i: &ImportId) -> String {
    format!("imports/{t}/{i}.csv")
}

/// A finished export in the exports bucket (7-day expiry). `extension`: `csv` or `json`.
pub fn export_object(t: &TenantId, e: &ExportId, extension: &str) -> String {
    format!("exports/{t}/{e}.{extension}")
}

/// Every object of a tenant in the attachments bucket (erased with the workspace).
pub fn tenant_objects_prefix(t: &TenantId) -> String {
    format!("tenants/{t}/")
}

/// Every export of a tenant in the exports bucket.
pub fn tenant_exports_prefix(t: &TenantId) -> String {
    format!("exports/{t}/")
}

/// Every CSV upload of a tenant awaiting import, in the exports bucket.
pub fn tenant_imports_prefix(t: &TenantId) -> String {
    format!("imports/{t}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_keys_cannot_collide_across_tenants() {
        let a = TenantId::parse("a").unwrap();
        let ab = TenantId::parse("a-b").unwrap();
        let l = LeadId::parse("b").unwrap();
        assert_ne!(lead(&a, &l), lead(&ab, &l));
        // ids cannot contain '#', so no tenant id can forge another's prefix
        assert!(TenantId::parse("a#LEAD").is_err());
    }

    #[test]
    fn expiry_bucket_format_and_shards_are_stable() {
        let day = time::Date::from_calendar_date(2026, time::Month::March, 5).unwrap();
        assert_eq!(expiry_bucket("session", day, 3), "EXP#session#2026-03-05#3");
        let a = expiry_shard("SESSION#x", "SESSION");
        assert_eq!(a, expiry_shard("SESSION#x", "SESSION"));
        assert!(a < EXPIRY_SHARDS);
        // the key parts are separated, so ("ab","c") and ("a","bc") need not share a shard
        let spread: std::collections::HashSet<u32> = (0..64)
            .map(|i| expiry_shard("TENANT#t#SECLOG", &format!("2026-01-01#{i}")))
            .collect();
        assert_eq!(spread.len() as u32, EXPIRY_SHARDS, "every shard is used");
    }
}
