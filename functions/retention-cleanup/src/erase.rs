//! A closed tenant past its grace period: the whole workspace erased. And a sign-up whose
//! address was not verified in time ([`unverified_signup`]): its user, tenant and login item.
//!
//! Erased: every lead partition (lead, submissions with their consents and technical data,
//! notes, stage history, audit trail, attachment records) and the attachments' objects; the
//! transfer log (import and export records) and the tenant's uploads and exports in S3; forms;
//! the pipeline, users, their login-index items and sessions; the suppression list (it protects
//! people from re-import into this workspace, which no longer exists); and last the tenant
//! record, so an interrupted erasure is found again in its bucket and finishes next time.
//!
//! Billing ([`billing`]): the subscription state is deleted, the provider customer's link
//! closed (restricted, kept to its legal end), the accounting documents restricted.
//!
//! Kept: billing records (their own legal end, rule `billing`), security events (180 days, rule
//! `security-log`), data-subject request records (24 months, rule `dsar-record`), ops counters
//! (TTL within 40 days, no personal data), one-time tokens (rule `token`: they expire in days).
//! A lead under legal hold is kept with everything under it, and then so is the tenant record,
//! carried to the next day's bucket, so the hold is reported daily and the lead erased once it
//! is lifted. A tenant under legal hold keeps everything.

use anyhow::{anyhow, Context};
use aws_sdk_dynamodb::types::AttributeValue;
use shared_billing::model::ProviderId;
use shared_core::domain::{Email, TenantId};
use shared_core::dynamo::unless_condition_failed;
use shared_core::keys::{self, Key};
use shared_core::retention::{self, rule, sweep_day};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::store::{bool_attr, key_item, key_of, str_attr, QuerySpec};
use crate::{Progress, Run};

const RULE: &str = rule::TENANT_ERASE;

/// Erases the tenant of the tenant record `key` (in the tenants table) if it is due.
pub async fn tenant(r: &mut Run<'_>, tenants: &str, key: &Key) -> anyhow::Result<Progress> {
    let Some(t) = key
        .pk
        .strip_prefix("TENANT#")
        .and_then(|t| TenantId::parse(t).ok())
        .filter(|_| key.sk == "TENANT")
    else {
        r.unbucket(tenants, key).await?;
        return Ok(Progress::Done);
    };
    let Some(record) = r.get(tenants, key).await? else {
        return Ok(Progress::Done);
    };
    let closed = str_attr(&record, "status") == Some("closed");
    let erase_after_raw = str_attr(&record, "erase_after").map(str::to_string);
    let erase_after = erase_after_raw
        .as_deref()
        .and_then(|e| OffsetDateTime::parse(e, &Rfc3339).ok());
    let (true, Some(erase_after), Some(erase_after_raw)) = (closed, erase_after, erase_after_raw)
    else {
        // Reactivated (or never closed): not ours to erase; out of the index.
        r.unbucket(tenants, key).await?;
        r.report.rule(RULE).deferred += 1;
        return Ok(Progress::Done);
    };
    let due_day = sweep_day(erase_after);
    if due_day > r.day {
        let bucket = retention::expiry_bucket_for(RULE, due_day, key);
        r.rebucket(tenants, key, "exp_bucket", bucket).await?;
        r.report.rule(RULE).deferred += 1;
        return Ok(Progress::Done);
    }
    if bool_attr(&record, "legal_hold") {
        r.report.held(RULE, "tenant", t.to_string());
        let bucket = retention::expiry_bucket_for(RULE, r.next_day(), key);
        r.rebucket(tenants, key, "exp_bucket", bucket).await?;
        return Ok(Progress::Done);
    }

    r.held_leads = 0;
    r.lead_objects = 0;
    if leads(r, &t).await.context("leads")? == Progress::OutOfBudget {
        return Ok(Progress::OutOfBudget);
    }
    let held_leads = r.held_leads;
    let leads_table = r.app.tables.leads.clone();
    let privacy = r.app.tables.privacy.clone();
    for (table, pk) in [
        (leads_table.as_str(), keys::transfers_of_tenant(&t)),
        (privacy.as_str(), format!("TENANT#{t}#SUPPRESSION")),
    ] {
        if partition(r, table, &pk, |_| true)
            .await
            .context("partition")?
            == Progress::OutOfBudget
        {
            return Ok(Progress::OutOfBudget);
        }
    }
    if forms(r, &t).await.context("forms")? == Progress::OutOfBudget {
        return Ok(Progress::OutOfBudget);
    }
    if users(r, &t).await.context("users")? == Progress::OutOfBudget {
        return Ok(Progress::OutOfBudget);
    }
    let exports = r.app.buckets.exports.clone();
    let mut objects = r
        .delete_prefix(&exports, &keys::tenant_exports_prefix(&t))
        .await?;
    objects += r
        .delete_prefix(&exports, &keys::tenant_imports_prefix(&t))
        .await?;
    if held_leads > 0 {
        // The held leads' objects stay under the tenant's prefix (each other lead's were
        // deleted with it); the tenant record stays so the hold is reported and ends.
        r.report.rule(RULE).objects += objects;
        let bucket = retention::expiry_bucket_for(RULE, r.next_day(), key);
        r.rebucket(tenants, key, "exp_bucket", bucket).await?;
        return Ok(Progress::Done);
    }
    let attachments = r.app.buckets.attachments.clone();
    let rest = r
        .delete_prefix(&attachments, &keys::tenant_objects_prefix(&t))
        .await?;
    // A dry run deleted nothing: the leads' objects it counted are still under the prefix.
    objects += if r.dry_run {
        rest.saturating_sub(r.lead_objects)
    } else {
        rest
    };
    r.report.rule(RULE).objects += objects;
    billing(r, &t).await.context("billing")?;

    if !r.dry_run {
        // Only the record as read: a hold set or a reactivation meanwhile wins.
        let res = r
            .app
            .dynamo
            .delete_item()
            .table_name(tenants)
            .set_key(Some(key_item(key)))
            .condition_expression(
                "#st = :closed AND erase_after = :ea AND \
                 (attribute_not_exists(legal_hold) OR legal_hold = :no)",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":closed", AttributeValue::S("closed".into()))
            .expression_attribute_values(":ea", AttributeValue::S(erase_after_raw))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .send()
            .await;
        if unless_condition_failed(res, "DeleteItem tenant")?.is_none() {
            // Changed meanwhile: the next run reads it again.
            return Ok(Progress::Done);
        }
    }
    let c = r.report.rule(RULE);
    c.deleted += 1;
    Ok(Progress::Done)
}

/// The erased tenant's billing: the accounting documents (invoices, payment attempts, refunds)
/// stay until their legal end (rule `billing`), restricted to storage (`restricted`,
/// `restricted_at`); the subscription state (plan, status, provider ids: not an accounting
/// document) is deleted; the provider customer's link is closed: marked `tenant_erased_at` and
/// restricted, kept only to file a document the provider still sends for that customer (a
/// refund, a final invoice) under the erased tenant, until the legal end of a document of
/// today (`retain_until`, then deleted by rule `billing`). A record under legal hold is left as
/// it is. Every step can be repeated.
async fn billing(r: &mut Run<'_>, t: &TenantId) -> anyhow::Result<()> {
    let table = r.app.tables.billing.clone();
    let spec = QuerySpec {
        table: &table,
        index: None,
        condition: "pk = :p",
        names: vec![],
        values: vec![(":p", AttributeValue::S(keys::billing_partition(t)))],
        projection: Some("pk, sk, provider, customer_id, legal_hold"),
    };
    let at = r.report.run_at.clone();
    let mut links = Vec::new();
    let mut start = None;
    loop {
        let (items, next) = r.query(&spec, start).await?;
        for it in &items {
            let Some(key) = key_of(it) else { continue };
            if bool_attr(it, "legal_hold") {
                continue;
            }
            if key.sk == "SUBSCRIPTION" {
                if let (Some(p), Some(c)) = (
                    str_attr(it, "provider"),
                    str_attr(it, "customer_id").and_then(ProviderId::parse),
                ) {
                    links.push(keys::billing_customer(p, &c));
                }
                if !r.dry_run {
                    let res = r
                        .app
                        .dynamo
                        .delete_item()
                        .table_name(&table)
                        .set_key(Some(key_item(&key)))
                        .condition_expression(
                            "attribute_not_exists(legal_hold) OR legal_hold = :no",
                        )
                        .expression_attribute_values(":no", AttributeValue::Bool(false))
                        .send()
                        .await;
                    unless_condition_failed(res, "DeleteItem subscription state")?;
                }
                r.report.rule(RULE).workspace_items += 1;
            } else if ["INVOICE#", "PAYMENT#", "REFUND#"]
                .iter()
                .any(|p| key.sk.starts_with(p))
                && !r.dry_run
            {
                let res = r
                    .app
                    .dynamo
                    .update_item()
                    .table_name(&table)
                    .set_key(Some(key_item(&key)))
                    .update_expression(
                        "SET restricted = :t, restricted_at = if_not_exists(restricted_at, :at)",
                    )
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(":t", AttributeValue::Bool(true))
                    .expression_attribute_values(":at", AttributeValue::S(at.clone()))
                    .send()
                    .await;
                unless_condition_failed(res, "UpdateItem restrict billing record")?;
            }
        }
        match next {
            Some(k) => start = Some(k),
            None => break,
        }
    }
    if r.dry_run {
        return Ok(());
    }
    let retain_until = retention::billing_retain_until(r.day);
    for k in links {
        let bucket = retention::expiry_bucket_for(rule::BILLING, retain_until, &k);
        let res = r
            .app
            .dynamo
            .update_item()
            .table_name(&table)
            .set_key(Some(key_item(&k)))
            .update_expression(
                "SET tenant_erased_at = if_not_exists(tenant_erased_at, :at), restricted = :t, \
                 restricted_at = if_not_exists(restricted_at, :at), retain_until = :ru, \
                 exp_bucket = :b",
            )
            // Only the erased tenant's own link.
            .condition_expression("tenant_id = :tid")
            .expression_attribute_values(":at", AttributeValue::S(at.clone()))
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":ru", AttributeValue::S(retain_until.to_string()))
            .expression_attribute_values(":b", AttributeValue::S(bucket))
            .expression_attribute_values(":tid", AttributeValue::S(t.as_str().to_string()))
            .send()
            .await;
        unless_condition_failed(res, "UpdateItem close customer link")?;
    }
    Ok(())
}

/// Every lead of the tenant, found through `by_tenant` (sparse: lead items only).
async fn leads(r: &mut Run<'_>, t: &TenantId) -> anyhow::Result<Progress> {
    let leads_table = r.app.tables.leads.clone();
    let spec = QuerySpec {
        table: &leads_table,
        index: Some("by_tenant"),
        condition: "tenant_pk = :t",
        names: vec![],
        values: vec![(":t", AttributeValue::S(keys::leads_of_tenant(t)))],
        projection: Some("pk"),
    };
    let mut start = None;
    loop {
        if r.out_of_budget() {
            return Ok(Progress::OutOfBudget);
        }
        let (items, next) = r.query(&spec, start).await?;
        for pk in items.iter().filter_map(|it| str_attr(it, "pk")) {
            if r.out_of_budget() {
                return Ok(Progress::OutOfBudget);
            }
            if lead(r, t, pk).await? == Progress::OutOfBudget {
                return Ok(Progress::OutOfBudget);
            }
        }
        match next {
            Some(k) => start = Some(k),
            None => return Ok(Progress::Done),
        }
    }
}

/// One lead's partition (and its attachments' objects), unless the lead is under legal hold.
async fn lead(r: &mut Run<'_>, t: &TenantId, pk: &str) -> anyhow::Result<Progress> {
    let leads_table = r.app.tables.leads.clone();
    let spec = QuerySpec {
        table: &leads_table,
        index: None,
        condition: "pk = :p",
        names: vec![],
        values: vec![(":p", AttributeValue::S(pk.to_string()))],
        projection: Some("pk, sk, legal_hold, email_bidx, phone_bidx"),
    };
    let mut all = Vec::new();
    let mut is_held = false;
    let mut route = None;
    let mut start = None;
    loop {
        let (items, next) = r.query(&spec, start).await?;
        for it in &items {
            if str_attr(it, "sk") == Some("LEAD") {
                is_held |= bool_attr(it, "legal_hold");
                // The route item of the lead's address (outside its partition) goes with it.
                route = shared_leads::dynamo::routing::key_of_item(it)
                    .map(|k| keys::lead_route(t, &k.bidx));
            }
        }
        all.extend(items.iter().filter_map(key_of));
        match next {
            Some(k) => start = Some(k),
            None => break,
        }
    }
    let lead_id = pk
        .split_once("#LEAD#")
        .map(|(_, l)| l.to_string())
        .ok_or_else(|| anyhow!("a lead key without its lead id"))?;
    if is_held {
        r.report.held(RULE, "lead", format!("{t}/{lead_id}"));
        r.held_leads += 1;
        return Ok(Progress::Done);
    }
    if all
        .iter()
        .any(|k| k.sk.starts_with(keys::ATTACHMENT_PREFIX))
    {
        let lead = shared_core::domain::LeadId::parse(&lead_id)?;
        let attachments = r.app.buckets.attachments.clone();
        let n = r
            .delete_prefix(&attachments, &keys::lead_objects_prefix(t, &lead))
            .await?;
        r.report.rule(RULE).objects += n;
        r.lead_objects += n;
    }
    // The route first (a retry still finds the lead through by_tenant), the lead item last.
    all.sort_by_key(|k| k.sk == "LEAD");
    // (The route, usually absent, is not counted as a workspace item.)
    let routes = route.iter().count() as u64;
    let mut keys_to_delete: Vec<_> = route.into_iter().collect();
    keys_to_delete.extend(all);
    let n = r.delete(&leads_table, keys_to_delete).await?;
    r.report.rule(RULE).workspace_items += n.saturating_sub(routes);
    Ok(Progress::Done)
}

/// Deletes the items of one partition that `include` selects.
async fn partition(
    r: &mut Run<'_>,
    table: &str,
    pk: &str,
    include: impl Fn(&Key) -> bool,
) -> anyhow::Result<Progress> {
    let spec = QuerySpec {
        table,
        index: None,
        condition: "pk = :p",
        names: vec![],
        values: vec![(":p", AttributeValue::S(pk.to_string()))],
        projection: Some("pk, sk"),
    };
    delete_found(r, &spec, include).await
}

/// Forms are keyed by their public id; `gsi1` lists a tenant's.
async fn forms(r: &mut Run<'_>, t: &TenantId) -> anyhow::Result<Progress> {
    let tenants = r.app.tables.tenants.clone();
    let spec = QuerySpec {
        table: &tenants,
        index: Some("gsi1"),
        condition: "gsi1pk = :t AND begins_with(gsi1sk, :f)",
        names: vec![],
        values: vec![
            (":t", AttributeValue::S(keys::forms_of_tenant(t))),
            (":f", AttributeValue::S(keys::FORM_PREFIX.into())),
        ],
        projection: Some("pk, sk"),
    };
    delete_found(r, &spec, |_| true).await
}

/// The tenant's partition of the tenants table but its record (users, pipeline, ...), each
/// user's sessions (`gsi1` `USER#<id>`) and login-index item (by the email's blind index; only
/// when it still names this tenant).
async fn users(r: &mut Run<'_>, t: &TenantId) -> anyhow::Result<Progress> {
    let tenants = r.app.tables.tenants.clone();
    let spec = QuerySpec {
        table: &tenants,
        index: None,
        condition: "pk = :p",
        names: vec![],
        values: vec![(":p", AttributeValue::S(keys::tenant(t).pk))],
        projection: Some("pk, sk, email, user_id"),
    };
    let mut start = None;
    loop {
        if r.out_of_budget() {
            return Ok(Progress::OutOfBudget);
        }
        let (items, next) = r.query(&spec, start).await?;
        let mut keys = Vec::new();
        for it in &items {
            let Some(key) = key_of(it) else { continue };
            if key.sk == "TENANT" {
                continue;
            }
            if key.sk.starts_with("USER#") {
                if let Some(u) = str_attr(it, "user_id") {
                    if sessions(r, u).await? == Progress::OutOfBudget {
                        return Ok(Progress::OutOfBudget);
                    }
                }
                if let Some(email) = str_attr(it, "email").and_then(|e| Email::parse(e).ok()) {
                    login(r, t, &r.app.key.email(&email)).await?;
                }
            }
            keys.push(key);
        }
        let n = r.delete(&tenants, keys).await?;
        r.report.rule(RULE).workspace_items += n;
        match next {
            Some(k) => start = Some(k),
            None => return Ok(Progress::Done),
        }
    }
}

async fn sessions(r: &mut Run<'_>, user_id: &str) -> anyhow::Result<Progress> {
    let tenants = r.app.tables.tenants.clone();
    let spec = QuerySpec {
        table: &tenants,
        index: Some("gsi1"),
        condition: "gsi1pk = :u AND begins_with(gsi1sk, :s)",
        names: vec![],
        values: vec![
            (":u", AttributeValue::S(format!("USER#{user_id}"))),
            (":s", AttributeValue::S("SESSION#".into())),
        ],
        projection: Some("pk, sk"),
    };
    delete_found(r, &spec, |_| true).await
}

async fn login(r: &mut Run<'_>, t: &TenantId, email_bidx: &str) -> anyhow::Result<()> {
    let key = keys::login(email_bidx);
    if r.dry_run {
        if r.get(&r.app.tables.tenants.clone(), &key).await?.is_some() {
            r.report.rule(RULE).workspace_items += 1;
        }
        return Ok(());
    }
    let res = r
        .app
        .dynamo
        .delete_item()
        .table_name(&r.app.tables.tenants)
        .set_key(Some(key_item(&key)))
        .condition_expression("tenant_id = :t")
        .expression_attribute_values(":t", AttributeValue::S(t.to_string()))
        .send()
        .await;
    // None: absent, or the email now belongs to an account of another tenant: not ours.
    if unless_condition_failed(res, "DeleteItem login")?.is_some() {
        r.report.rule(RULE).workspace_items += 1;
    }
    Ok(())
}

/// Deletes the items `spec` finds that `include` selects, a page at a time while the budget
/// lasts (from `spec.table`), counting them as workspace items.
async fn delete_found(
    r: &mut Run<'_>,
    spec: &QuerySpec<'_>,
    include: impl Fn(&Key) -> bool,
) -> anyhow::Result<Progress> {
    let mut start = None;
    loop {
        if r.out_of_budget() {
            return Ok(Progress::OutOfBudget);
        }
        let (items, next) = r.query(spec, start).await?;
        let keys: Vec<Key> = items
            .iter()
            .filter_map(key_of)
            .filter(|k| include(k))
            .collect();
        let n = r.delete(spec.table, keys).await?;
        r.report.rule(RULE).workspace_items += n;
        match next {
            Some(k) => start = Some(k),
            None => return Ok(Progress::Done),
        }
    }
}

/// A sign-up whose address was not verified in time (rule `unverified-signup`, bucketed on its
/// user item): the login-index item if it still names this user as unverified, the tenant
/// record if this user owns it, and last the user item, on condition it is still unverified,
/// so an interrupted run finds it again in its bucket. A user verified since is kept, out of the
/// index. Its verification link expired with the window (the bucket's day is the first run
/// after it), and a verification racing this run fails on the tenant record being gone.
pub async fn unverified_signup(r: &mut Run<'_>, tenants: &str, key: &Key) -> anyhow::Result<()> {
    const RULE: &str = rule::UNVERIFIED_SIGNUP;
    let Some(user) = r.get(tenants, key).await? else {
        return Ok(());
    };
    let tenant = key
        .pk
        .strip_prefix("TENANT#")
        .and_then(|t| TenantId::parse(t).ok());
    let user_id = str_attr(&user, "user_id").map(str::to_string);
    let email = str_attr(&user, "email").and_then(|e| Email::parse(e).ok());
    let (Some(tenant), Some(user_id), Some(email), false) =
        (tenant, user_id, email, bool_attr(&user, "email_verified"))
    else {
        // Verified meanwhile (verification removes the bucket; a late read may still find it),
        // or not a sign-up's user: not ours.
        r.unbucket(tenants, key).await?;
        r.report.rule(RULE).deferred += 1;
        return Ok(());
    };
    if r.dry_run {
        r.report.rule(RULE).deleted += 1;
        return Ok(());
    }
    let login = keys::login(&r.app.key.email(&email));
    let res = r
        .app
        .dynamo
        .delete_item()
        .table_name(tenants)
        .set_key(Some(key_item(&login)))
        .condition_expression("user_id = :u AND attribute_exists(unverified)")
        .expression_attribute_values(":u", AttributeValue::S(user_id.clone()))
        .send()
        .await;
    // None: a later sign-up, an invitation or a verified account holds the address now.
    unless_condition_failed(res, "DeleteItem unverified login")?;
    let res = r
        .app
        .dynamo
        .delete_item()
        .table_name(tenants)
        .set_key(Some(key_item(&keys::tenant(&tenant))))
        .condition_expression("owner_user_id = :u")
        .expression_attribute_values(":u", AttributeValue::S(user_id.clone()))
        .send()
        .await;
    unless_condition_failed(res, "DeleteItem unverified tenant")?;
    let res = r
        .app
        .dynamo
        .delete_item()
        .table_name(tenants)
        .set_key(Some(key_item(key)))
        .condition_expression("email_verified = :no AND attribute_exists(exp_bucket)")
        .expression_attribute_values(":no", AttributeValue::Bool(false))
        .send()
        .await;
    if unless_condition_failed(res, "DeleteItem unverified user")?.is_some() {
        r.report.rule(RULE).deleted += 1;
    }
    Ok(())
}
