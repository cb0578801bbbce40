//! The run's state in the ops table: a lease (one run at a time) and the checkpoint (every
//! bucket through `done_through` is swept; a partial run's `cursor` is where the next one
//! resumes), in one item: taking the lease reads the checkpoint, saving it releases the lease.

use std::fmt;

use anyhow::Context;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use shared_core::clock::rfc3339;
use shared_core::keys;
use shared_core::retention::{parse_day, rule};
use time::{Date, Duration};

use crate::store::{key_item, str_attr};
use crate::Run;

/// Longer than Lambda's 15-minute limit: a run that dies holding the lease cannot block the
/// next day's run, and a live run never outlives its lease.
pub const LEASE: Duration = Duration::minutes(16);

#[derive(Debug, Clone, Default)]
pub struct State {
    pub done_through: Option<Date>,
    pub cursor: Option<Cursor>,
}

/// A unit of work: one rule's bucket of one day and shard. Ordered as the run visits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub day: Date,
    /// Index in [`rule::ALL`].
    pub rule: usize,
    pub shard: u32,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = rule::ALL.get(self.rule).copied().unwrap_or("?");
        write!(f, "{}/{}/{}", self.day, name, self.shard)
    }
}

impl Cursor {
    pub fn parse(raw: &str) -> Option<Cursor> {
        let mut parts = raw.split('/');
        let day = parse_day(parts.next()?)?;
        let name = parts.next()?;
        let rule = rule::ALL.iter().position(|r| *r == name)?;
        let shard = parts.next()?.parse().ok()?;
        parts
            .next()
            .is_none()
            .then_some(Cursor { day, rule, shard })
    }
}

fn state_from(item: &shared_core::dynamo::Item) -> State {
    State {
        done_through: str_attr(item, "done_through").and_then(parse_day),
        cursor: str_attr(item, "cursor").and_then(Cursor::parse),
    }
}

/// The state without the lease (a dry run).
pub async fn read(r: &Run<'_>) -> anyhow::Result<Option<State>> {
    let out = r
        .app
        .dynamo
        .get_item()
        .table_name(&r.app.tables.ops)
        .set_key(Some(key_item(&keys::retention_state())))
        .consistent_read(true)
        .send()
        .await
        .context("GetItem retention state")?;
    Ok(Some(out.item.as_ref().map(state_from).unwrap_or_default()))
}

/// Takes the lease; `None` when another run holds it.
pub async fn acquire(r: &Run<'_>, run_id: &str) -> anyhow::Result<Option<State>> {
    let now = r.app.clock.now();
    let res = r
        .app
        .dynamo
        .update_item()
        .table_name(&r.app.tables.ops)
        .set_key(Some(key_item(&keys::retention_state())))
        .update_expression("SET lease_owner = :me, lease_until = :until")
        // `lease_owner = :me`: this very claim, sent again by the SDK after its answer was lost.
        .condition_expression(
            "attribute_not_exists(lease_owner) OR lease_until < :now OR lease_owner = :me",
        )
        .expression_attribute_values(":me", AttributeValue::S(run_id.to_string()))
        .expression_attribute_values(
            ":until",
            AttributeValue::N((now + LEASE).unix_timestamp().to_string()),
        )
        .expression_attribute_values(":now", AttributeValue::N(now.unix_timestamp().to_string()))
        .return_values(ReturnValue::AllNew)
        .send()
        .await;
    match res {
        Ok(out) => Ok(Some(
            out.attributes.as_ref().map(state_from).unwrap_or_default(),
        )),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(anyhow::Error::new(e).context("UpdateItem take lease")),
    }
}

/// Saves the checkpoint and releases the lease, if this run still holds it.
pub async fn save_and_release(
    r: &Run<'_>,
    run_id: &str,
    done_through: Option<Date>,
    cursor: Option<Cursor>,
) -> anyhow::Result<()> {
    let mut set = vec!["updated_at = :at"];
    let mut remove = vec!["lease_owner", "lease_until"];
    let mut req = r
        .app
        .dynamo
        .update_item()
        .table_name(&r.app.tables.ops)
        .set_key(Some(key_item(&keys::retention_state())))
        .condition_expression("lease_owner = :me")
        // CURSOR is a reserved word.
        .expression_attribute_names("#cursor", "cursor")
        .expression_attribute_values(":me", AttributeValue::S(run_id.to_string()))
        .expression_attribute_values(":at", AttributeValue::S(rfc3339(r.app.clock.now())));
    if let Some(d) = done_through {
        set.push("done_through = :d");
        req = req.expression_attribute_values(":d", AttributeValue::S(d.to_string()));
    }
    match cursor {
        Some(c) => {
            set.push("#cursor = :c");
            req = req.expression_attribute_values(":c", AttributeValue::S(c.to_string()));
        }
        None => remove.push("#cursor"),
    }
    let expr = format!("SET {} REMOVE {}", set.join(", "), remove.join(", "));
    req.update_expression(expr)
        .send()
        .await
        .context("UpdateItem save checkpoint and release lease")?;
    Ok(())
}

/// Stores the report (ids and counts only) in the ops table, kept `report_days`.
pub async fn store_report(r: &Run<'_>, json: &str) -> anyhow::Result<()> {
    let key = crate::report_key(&r.report);
    let mut item = key_item(&key);
    item.insert("report".into(), AttributeValue::S(json.to_string()));
    item.insert("status".into(), AttributeValue::S(r.report.status.into()));
    item.insert("dry_run".into(), AttributeValue::Bool(r.report.dry_run));
    let expires = r.app.clock.now() + Duration::days(r.app.settings.report_days);
    item.insert(
        "expires_at".into(),
        AttributeValue::N(expires.unix_timestamp().to_string()),
    );
    r.app
        .dynamo
        .put_item()
        .table_name(&r.app.tables.ops)
        .set_item(Some(item))
        .send()
        .await
        .context("PutItem retention report")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn cursors_round_trip_and_order_as_visited() {
        let a = Cursor {
            day: date!(2026 - 03 - 01),
            rule: 2,
            shard: 3,
        };
        assert_eq!(a.to_string(), "2026-03-01/security-log/3");
        assert_eq!(Cursor::parse(&a.to_string()), Some(a));
        let later_shard = Cursor { shard: 4, ..a };
        let later_rule = Cursor {
            rule: 3,
            shard: 0,
            ..a
        };
        let later_day = Cursor {
            day: date!(2026 - 03 - 02),
            rule: 0,
            shard: 0,
        };
        assert!(a < later_shard && later_shard < later_rule && later_rule < later_day);
        assert_eq!(Cursor::parse("2026-03-01/nope/1"), None);
        assert_eq!(Cursor::parse("2026-03-01/token/x"), None);
    }
}
