//! The outbound-mail counters and the send-suppression list, in the ops table
//! (`crate::outbound`, docs/mail.md). Every count is one conditional write: concurrent requests
//! each win or lose it, none is lost.

use anyhow::Context;
use aws_sdk_dynamodb::Client;
use time::OffsetDateTime;

use crate::outbound::{HourWindow, MailKind, MailRoute, SLOT_SECS};
use shared_core::dynamo::attrs::{
    epoch, get_n_opt, key_item, n, s, timestamp, unless_condition_failed,
};
use shared_core::keys;

/// Why an address is on the send-suppression list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressionReason {
    /// A permanent bounce: the mailbox does not exist.
    Bounce,
    /// The recipient marked an email as spam.
    Complaint,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::Bounce => "bounce",
            SuppressionReason::Complaint => "complaint",
        }
    }
}

#[derive(Debug, Clone)]
pub struct MailGate {
    client: Client,
    /// The ops table.
    table: String,
}

impl MailGate {
    pub fn new(client: Client, ops_table: impl Into<String>) -> Self {
        Self {
            client,
            table: ops_table.into(),
        }
    }

    /// Claims one of `limit` send slots of `kind` for the address (email blind index): true when
    /// a slot whose last send is over an hour old (or never used) was taken for this send. Slots
    /// are tried in order, each with one conditional write, so concurrent sends each take a
    /// different slot or none: at most `limit` emails of a kind per address in any hour.
    pub async fn claim_recipient(
        &self,
        kind: MailKind,
        email_bidx: &str,
        limit: u32,
        now: OffsetDateTime,
    ) -> anyhow::Result<bool> {
        let key = keys::mail_recipient(kind.as_str(), email_bidx);
        let t = now.unix_timestamp();
        // The claim's own id: when the SDK sends a claim again because the first answer was
        // lost, the slot already holds this id and the claim is recognised as done, instead of
        // taking a second slot (or, at a limit of one, refusing the only email).
        let claim = ulid::Ulid::new().to_string();
        for slot in 0..limit {
            let res = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_item(&key)))
                .update_expression("SET #s = :now, #c = :claim, expires_at = :exp")
                .condition_expression("attribute_not_exists(#s) OR #s <= :free OR #c = :claim")
                .expression_attribute_names("#s", format!("slot_{slot}"))
                .expression_attribute_names("#c", format!("claim_{slot}"))
                .expression_attribute_values(":claim", s(claim.clone()))
                .expression_attribute_values(":now", n(t))
                .expression_attribute_values(":exp", n(t + SLOT_SECS))
                .expression_attribute_values(":free", n(t - SLOT_SECS))
                .send()
                .await;
            if unless_condition_failed(res, "UpdateItem mail slot")?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Counts one send of `route` in this hour's window of the client IP (hash): false when
    /// `limit` sends were counted already (nothing is counted then).
    pub async fn count_ip(
        &self,
        route: MailRoute,
        ip_hash: &str,
        limit: u32,
        now: OffsetDateTime,
    ) -> anyhow::Result<bool> {
        self.count(&format!("ip:{}", route.as_str()), ip_hash, limit, now)
            .await
    }

    /// The same per tenant.
    pub async fn count_tenant(
        &self,
        route: MailRoute,
        tenant: &shared_core::domain::TenantId,
        limit: u32,
        now: OffsetDateTime,
    ) -> anyhow::Result<bool> {
        self.count(
            &format!("tenant:{}", route.as_str()),
            tenant.as_str(),
            limit,
            now,
        )
        .await
    }

    async fn count(
        &self,
        scope: &str,
        subject: &str,
        limit: u32,
        now: OffsetDateTime,
    ) -> anyhow::Result<bool> {
        let w = HourWindow::at(now);
        let key = keys::mail_window(scope, subject, w.hour);
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .update_expression("ADD n :one SET expires_at = :exp")
            .condition_expression("attribute_not_exists(n) OR n < :limit")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":exp", n(w.expires_at))
            .expression_attribute_values(":limit", n(limit))
            .send()
            .await;
        Ok(unless_condition_failed(res, "UpdateItem mail window")?.is_some())
    }

    /// Whether the address (email blind index) is on the send-suppression list at `now`. An
    /// entry past its end is ignored (DynamoDB's TTL deletes lazily).
    pub async fn is_suppressed(
        &self,
        email_bidx: &str,
        now: OffsetDateTime,
    ) -> anyhow::Result<bool> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::send_suppression(email_bidx))))
            .projection_expression("expires_at")
            .send()
            .await
            .context("GetItem send suppression")?;
        Ok(match out.item {
            None => false,
            Some(it) => get_n_opt(&it, "expires_at")?.is_none_or(|end| end > now.unix_timestamp()),
        })
    }

    /// Puts the address on the send-suppression list until `until`; a later bounce or complaint
    /// moves the end further, an older one arriving late never brings it closer. Idempotent: a
    /// redelivered event changes nothing.
    pub async fn suppress(
        &self,
        email_bidx: &str,
        reason: SuppressionReason,
        at: OffsetDateTime,
        until: OffsetDateTime,
    ) -> anyhow::Result<()> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::send_suppression(email_bidx))))
            .update_expression("SET reason = :r, suppressed_at = :at, expires_at = :end")
            .condition_expression("attribute_not_exists(expires_at) OR expires_at < :end")
            .expression_attribute_values(":r", s(reason.as_str()))
            .expression_attribute_values(":at", timestamp(at))
            .expression_attribute_values(":end", epoch(until))
            .send()
            .await;
        unless_condition_failed(res, "UpdateItem send suppression")?;
        Ok(())
    }
}
