//! Each rule's sweep of one expiry bucket (one day, one shard): what is in it, what is really
//! due, what is held, and the deletes.

use std::collections::BTreeSet;

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use shared_core::domain::TenantId;
use shared_core::keys::{self, Key};
use shared_core::retention::{self, parse_day, rule, sweep_day};
use shared_leads::transfers::ExportId;
use shared_privacy::inventory::{self, DataCategory, Table};
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime};

use crate::store::{bool_attr, key_item, key_of, str_attr, QuerySpec};
use crate::{erase, Progress, Run};

pub const EXPIRY_INDEX: &str = "by_expiry";
pub const TECH_INDEX: &str = "by_tech_expiry";

pub fn shards(rule_name: &str) -> u32 {
    if rule_name == rule::TECH_DATA {
        keys::TECH_EXPIRY_SHARDS
    } else {
        keys::EXPIRY_SHARDS
    }
}

fn table_of<'a>(r: &Run<'a>, rule_name: &str) -> &'a str {
    let t = &r.app.tables;
    match rule_name {
        rule::TENANT_ERASE
        | rule::SESSION
        | rule::TOKEN
        | rule::UNVERIFIED_SIGNUP
        | rule::LOGIN_META => &t.tenants,
        rule::SECURITY_LOG => &t.security_log,
        rule::DSAR_RECORD => &t.privacy,
        rule::TECH_DATA | rule::EXPORT => &t.leads,
        rule::QUARANTINE => &t.ops,
        _ => &t.billing,
    }
}

/// Sweeps one bucket, page by page, until it is done or the budget is spent.
pub async fn sweep_unit(
    r: &mut Run<'_>,
    rule_name: &'static str,
    day: Date,
    shard: u32,
) -> anyhow::Result<Progress> {
    let table = table_of(r, rule_name);
    let (index, attribute, bucket) = if rule_name == rule::TECH_DATA {
        let tech_day = retention::tech_data_index_day(day);
        (
            TECH_INDEX,
            "tech_exp",
            keys::tech_expiry_partition(&tech_day.to_string(), shard),
        )
    } else {
        (
            EXPIRY_INDEX,
            "exp_bucket",
            keys::expiry_bucket(rule_name, day, shard),
        )
    };
    let bucket_value = bucket.clone();
    let spec = QuerySpec {
        table,
        index: Some(index),
        condition: "#b = :b",
        names: vec![("#b", attribute)],
        values: vec![(":b", AttributeValue::S(bucket))],
        projection: None,
    };
    let mut start = None;
    loop {
        if r.out_of_budget() {
            return Ok(Progress::OutOfBudget);
        }
        let (items, next) = r.query(&spec, start).await?;
        let found: Vec<Key> = items.iter().filter_map(key_of).collect();
        r.report.rule(rule_name).found += found.len() as u64;
        let progress = match rule_name {
            rule::TENANT_ERASE => tenants(r, table, found).await?,
            rule::TECH_DATA => {
                tech_data(r, table, found, shard).await?;
                Progress::Done
            }
            rule::SECURITY_LOG => {
                security_log(r, table, found).await?;
                Progress::Done
            }
            rule::EXPORT => {
                exports(r, table, found).await?;
                Progress::Done
            }
            rule::BILLING => {
                billing(r, table, found).await?;
                Progress::Done
            }
            rule::LOGIN_META => {
                login_metadata(r, table, found, &bucket_value).await?;
                Progress::Done
            }
            rule::UNVERIFIED_SIGNUP => {
                for key in found {
                    erase::unverified_signup(r, table, &key)
                        .await
                        .context("unverified sign-up")?;
                }
                Progress::Done
            }
            // Sessions, one-time tokens, data-subject request records, quarantined submissions:
            // the bucket is the item's end (absolute session expiry, token expiry, request
            // closed + 24 months, arrival + 30 days).
            _ => {
                let n = r.delete(table, found).await?;
                r.report.rule(rule_name).deleted += n;
                Progress::Done
            }
        };
        if progress == Progress::OutOfBudget {
            return Ok(progress);
        }
        match next {
            Some(k) => start = Some(k),
            None => return Ok(Progress::Done),
        }
    }
}

async fn tenants(r: &mut Run<'_>, table: &str, found: Vec<Key>) -> anyhow::Result<Progress> {
    for key in found {
        if r.out_of_budget() {
            return Ok(Progress::OutOfBudget);
        }
        if erase::tenant(r, table, &key)
            .await
            .context("tenant erasure")?
            == Progress::OutOfBudget
        {
            return Ok(Progress::OutOfBudget);
        }
    }
    Ok(Progress::Done)
}

/// A security event's key holds its time (`<RFC 3339>#<event id>`): the period configured now is
/// checked without reading the item.
async fn security_log(r: &mut Run<'_>, table: &str, found: Vec<Key>) -> anyhow::Result<()> {
    let period = Duration::days(r.app.settings.security_log_days);
    let mut due = Vec::new();
    for key in found {
        let at = key
            .sk
            .split('#')
            .next()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
        match at.map(|at| sweep_day(at + period)) {
            Some(day) if day > r.day => {
                let bucket = retention::expiry_bucket_for(rule::SECURITY_LOG, day, &key);
                r.rebucket(table, &key, "exp_bucket", bucket).await?;
                r.report.rule(rule::SECURITY_LOG).deferred += 1;
            }
            _ => due.push(key),
        }
    }
    let n = r.delete(table, due).await?;
    r.report.rule(rule::SECURITY_LOG).deleted += n;
    Ok(())
}

/// An export record (`TENANT#<t>#TRANSFERS` / `EXPORT#<id>`) and its object. The object's key
/// follows from the record's (csv or json): deleting a key that is not there is harmless, so
/// nothing is read.
async fn exports(r: &mut Run<'_>, table: &str, found: Vec<Key>) -> anyhow::Result<()> {
    let mut objects = Vec::new();
    let mut records = Vec::new();
    for key in found {
        let tenant = key
            .pk
            .strip_prefix("TENANT#")
            .and_then(|p| p.strip_suffix("#TRANSFERS"))
            .and_then(|t| TenantId::parse(t).ok());
        let export = key
            .sk
            .strip_prefix("EXPORT#")
            .and_then(|e| ExportId::parse(e).ok());
        match (tenant, export) {
            (Some(t), Some(e)) => {
                for ext in ["csv", "json"] {
                    objects.push(keys::export_object(&t, &e, ext));
                }
                records.push(key);
            }
            // Not an export record's key: nothing of ours to delete; out of the index.
            _ => r.unbucket(table, &key).await?,
        }
    }
    let exports_bucket = r.app.buckets.exports.clone();
    r.delete_objects(&exports_bucket, &objects).await?;
    let n = r.delete(table, records).await?;
    let c = r.report.rule(rule::EXPORT);
    // One object per export (its csv or its json; DeleteObjects does not say which existed).
    c.objects += n;
    c.deleted += n;
    Ok(())
}

/// Billing records past their legal end (`retain_until`), unless under legal hold. No record is
/// read to be deleted: one registered as held (the registry, read once per run) is carried to
/// the next day; every other one is deleted on condition that its own attributes say it is due
/// and not held (`retain_until <= today`, no `legal_hold`), so a hold set after the registry was
/// read, or never registered, still wins. Only a record the condition refuses is read, to tell
/// why (held, not yet due, no `retain_until`). A dry run reads them all and deletes nothing.
async fn billing(r: &mut Run<'_>, table: &str, found: Vec<Key>) -> anyhow::Result<()> {
    if found.is_empty() {
        return Ok(());
    }
    if r.dry_run {
        let items = r
            .get_many(table, &found, "pk, sk, legal_hold, retain_until")
            .await?;
        for it in &items {
            let Some(key) = key_of(it) else { continue };
            if !billing_kept(r, table, &key, it).await? {
                r.report.rule(rule::BILLING).deleted += 1;
            }
        }
        return Ok(());
    }
    let (held, candidates): (Vec<Key>, Vec<Key>) = {
        let holds = r.holds().await?;
        found.into_iter().partition(|k| holds.billing(k))
    };
    for key in &held {
        billing_held(r, table, key).await?;
    }
    let today = r.day.to_string();
    for key in candidates {
        let res = r
            .app
            .dynamo
            .delete_item()
            .table_name(table)
            .set_key(Some(key_item(&key)))
            .condition_expression(
                "retain_until <= :today AND \
                 (attribute_not_exists(legal_hold) OR legal_hold = :no)",
            )
            .expression_attribute_values(":today", AttributeValue::S(today.clone()))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .send()
            .await;
        if shared_core::dynamo::unless_condition_failed(res, "DeleteItem billing")?.is_some() {
            r.report.rule(rule::BILLING).deleted += 1;
            continue;
        }
        // Refused: read it to tell why (absent: already gone, nothing to do).
        let Some(it) = r.get(table, &key).await? else {
            continue;
        };
        if !billing_kept(r, table, &key, &it).await? {
            // Due and not held by now (it changed meanwhile): the next run tries again.
            let bucket = retention::expiry_bucket_for(rule::BILLING, r.next_day(), &key);
            r.rebucket(table, &key, "exp_bucket", bucket).await?;
            r.report.rule(rule::BILLING).deferred += 1;
        }
    }
    Ok(())
}

/// Keeps a billing record that its attributes say must stay (held, not yet due, or without a
/// legal end), moving it to the right bucket; `false`: it is due.
async fn billing_kept(
    r: &mut Run<'_>,
    table: &str,
    key: &Key,
    it: &shared_core::dynamo::Item,
) -> anyhow::Result<bool> {
    if bool_attr(it, "legal_hold") {
        billing_held(r, table, key).await?;
        return Ok(true);
    }
    match str_attr(it, "retain_until").and_then(parse_day) {
        Some(until) if until > r.day => {
            let bucket = retention::expiry_bucket_for(rule::BILLING, until, key);
            r.rebucket(table, key, "exp_bucket", bucket).await?;
            r.report.rule(rule::BILLING).deferred += 1;
            Ok(true)
        }
        // No retain_until: kept (the legal end is unknown), out of the index; reported.
        None => {
            r.unbucket(table, key).await?;
            r.report
                .fail(rule::BILLING, r.day.to_string(), "no_retain_until");
            Ok(true)
        }
        Some(_) => Ok(false),
    }
}

/// A held billing record: reported and carried to the next day's bucket.
async fn billing_held(r: &mut Run<'_>, table: &str, key: &Key) -> anyhow::Result<()> {
    let id = format!(
        "{}/{}",
        key.pk.strip_prefix("TENANT#").unwrap_or(&key.pk),
        key.sk
    );
    r.report.held(rule::BILLING, "billing", id);
    let bucket = retention::expiry_bucket_for(rule::BILLING, r.next_day(), key);
    r.rebucket(table, key, "exp_bucket", bucket).await
}

/// The technical-data attributes of a submission, from the data inventory.
pub fn technical_attributes() -> Vec<&'static str> {
    inventory::personal_attributes(DataCategory::TechnicalUsage)
        .filter(|a| a.table == Table::Leads && a.item == keys::SUBMISSION_PREFIX)
        .map(|a| a.name)
        .collect()
}

/// Removes the technical data of submissions (the submission and its lead stay). A lead under
/// legal hold keeps its submissions' technical data (it is evidence); they are carried to the
/// next day's index partition and reported. The hold is known from the holds registry, read once
/// per run (the lead items are not read: the cost follows the submissions, not the leads).
async fn tech_data(
    r: &mut Run<'_>,
    table: &str,
    found: Vec<Key>,
    shard: u32,
) -> anyhow::Result<()> {
    if found.is_empty() {
        return Ok(());
    }
    // The leads' holds from the registry (read once per run), not a read of each lead.
    let held: BTreeSet<String> = {
        let holds = r.holds().await?;
        found
            .iter()
            .filter(|k| holds.lead(&k.pk))
            .map(|k| k.pk.clone())
            .collect()
    };
    let attributes = technical_attributes();
    let remove = attributes
        .iter()
        .enumerate()
        .map(|(i, _)| format!("#a{i}"))
        .chain(std::iter::once("tech_exp".to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    for key in found {
        if held.contains(&key.pk) {
            let id = key.pk.replacen("TENANT#", "", 1).replacen("#LEAD#", "/", 1);
            r.report.held(rule::TECH_DATA, "lead", id);
            // Swept again by the next run (the index names the last day kept).
            let partition = keys::tech_expiry_partition(&r.day.to_string(), shard);
            r.rebucket(table, &key, "tech_exp", partition).await?;
            continue;
        }
        if !r.dry_run {
            let mut req = r
                .app
                .dynamo
                .update_item()
                .table_name(table)
                .set_key(Some(key_item(&key)))
                .update_expression(format!("REMOVE {remove}"))
                .condition_expression("attribute_exists(pk)");
            for (i, name) in attributes.iter().enumerate() {
                req = req.expression_attribute_names(format!("#a{i}"), *name);
            }
            let res = req.send().await;
            shared_core::dynamo::unless_condition_failed(res, "UpdateItem remove technical data")?;
        }
        r.report.rule(rule::TECH_DATA).deleted += 1;
    }
    Ok(())
}

/// The technical data of a user's last login, from the data inventory.
pub fn login_technical_attributes() -> Vec<&'static str> {
    inventory::personal_attributes(DataCategory::TechnicalUsage)
        .filter(|a| a.table == Table::Tenants && a.item == "USER#")
        .map(|a| a.name)
        .collect()
}

/// Removes the IP address and user agent of a login 90 days old from its user item (the user
/// and the login's time stay), conditioned on the bucket the run read: a later login moved the
/// user to a later day and keeps its own.
async fn login_metadata(
    r: &mut Run<'_>,
    table: &str,
    found: Vec<Key>,
    bucket: &str,
) -> anyhow::Result<()> {
    let attributes = login_technical_attributes();
    let remove = attributes
        .iter()
        .enumerate()
        .map(|(i, _)| format!("#a{i}"))
        .chain(std::iter::once("exp_bucket".to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    for key in found {
        if r.dry_run {
            r.report.rule(rule::LOGIN_META).deleted += 1;
            continue;
        }
        let mut req = r
            .app
            .dynamo
            .update_item()
            .table_name(table)
            .set_key(Some(key_item(&key)))
            .update_expression(format!("REMOVE {remove}"))
            .condition_expression("exp_bucket = :b")
            .expression_attribute_values(":b", AttributeValue::S(bucket.to_string()));
        for (i, name) in attributes.iter().enumerate() {
            req = req.expression_attribute_names(format!("#a{i}"), *name);
        }
        let res = req.send().await;
        if shared_core::dynamo::unless_condition_failed(res, "UpdateItem remove login metadata")?
            .is_some()
        {
            r.report.rule(rule::LOGIN_META).deleted += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn technical_data_comes_from_the_inventory() {
        assert_eq!(
            technical_attributes(),
            ["ip", "user_agent", "referrer", "page_url"]
        );
    }

    #[test]
    fn login_technical_data_comes_from_the_inventory() {
        assert_eq!(
            login_technical_attributes(),
            ["last_login_ip", "last_login_ua"]
        );
    }

    #[test]
    fn every_rule_has_its_shards() {
        assert_eq!(shards(rule::TECH_DATA), 8);
        assert_eq!(shards(rule::SESSION), 4);
    }
}
