//! The `attachment-guard` function: an upload through a presigned URL lands after its lead was
//! deleted or erased. The URL was valid (5 minutes) and S3 cannot know the lead is gone, so the
//! object would outlive everything that pointed at it. S3 notifies this function of every object
//! created under `tenants/` in the attachments bucket; it keeps the object only when its
//! attachment record still exists and its lead is neither gone nor being deleted, and deletes it
//! otherwise.
//!
//! Why that is enough (docs/lead-transfers.md): deleting a lead (leads-api) and erasing it (the
//! DSAR worker) first mark it `deleting_at`, then delete the objects under its prefix, then its
//! items. An object that lands before the prefix is listed is deleted with it; one that lands
//! after is seen here with the mark (or without its lead) and deleted. The bucket is versioned:
//! the delete leaves a noncurrent version that the bucket's lifecycle rule
//! (`expire-erased-versions`, 7 days) removes, as for every deleted attachment.
//!
//! Logs hold ids only. A failure (DynamoDB or S3) fails the invocation: Lambda retries it twice,
//! then it lands in the failure queue (alarmed).

pub mod config;

use std::collections::HashMap;

use anyhow::{anyhow, Context};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared_core::domain::{LeadId, TenantId};
use shared_core::keys::{self, Key};
use shared_leads::transfers::AttachmentId;

pub struct App {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub leads_table: String,
    pub attachments_bucket: String,
}

/// What one notification did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Uploads of live leads' attachments.
    pub kept: u32,
    /// Uploads under a lead that is gone or being deleted, or without an attachment record.
    pub deleted: u32,
    /// Records that are not an attachment upload of this bucket (another event, another key).
    pub ignored: u32,
}

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "Records", default)]
    records: Vec<Record>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventSource", default)]
    source: String,
    #[serde(rename = "eventName", default)]
    name: String,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Bucket,
    object: Object,
}

#[derive(Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Deserialize)]
struct Object {
    /// URL-encoded, as S3 notifications send keys (a space is `+`).
    key: String,
}

/// An attachment upload's object key, `tenants/<tenant>/leads/<lead>/<attachment>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentObject {
    pub tenant: TenantId,
    pub lead: LeadId,
    pub attachment: AttachmentId,
}

impl AttachmentObject {
    /// The object a notification's (URL-encoded) key names, if it is an attachment's.
    pub fn from_event_key(encoded: &str) -> Option<Self> {
        let key = decode_key(encoded);
        let rest = key.strip_prefix("tenants/")?;
        let mut parts = rest.split('/');
        let (tenant, leads, lead, attachment) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if leads != "leads" || parts.next().is_some() {
            return None;
        }
        let object = Self {
            tenant: TenantId::parse(tenant).ok()?,
            lead: LeadId::parse(lead).ok()?,
            attachment: AttachmentId::parse(attachment).ok()?,
        };
        // Only the exact key the platform signs (no other spelling of it).
        (object.key() == key).then_some(object)
    }

    pub fn key(&self) -> String {
        keys::attachment_object(&self.tenant, &self.lead, &self.attachment)
    }
}

/// S3 event keys are URL-encoded like a form value.
fn decode_key(encoded: &str) -> String {
    form_urlencoded::parse(format!("k={encoded}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The lead and attachment items as read (key attributes, the deletion mark, the hold).
pub type Found = Option<HashMap<String, AttributeValue>>;

fn is_true(it: &HashMap<String, AttributeValue>, name: &str) -> bool {
    matches!(it.get(name), Some(AttributeValue::Bool(true)))
}

/// Whether an upload stays: its attachment record exists and either its lead exists and is not
/// being deleted, or the record is under legal hold (a hold keeps its file whatever happens to
/// the lead).
pub fn keep(lead: &Found, attachment: &Found) -> bool {
    let Some(attachment) = attachment else {
        return false;
    };
    if is_true(attachment, "legal_hold") {
        return true;
    }
    lead.as_ref()
        .is_some_and(|l| !l.contains_key("deleting_at"))
}

/// Handles one S3 notification (any number of records).
pub async fn handle(app: &App, payload: &Value) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let Ok(notification) = Notification::deserialize(payload) else {
        // Nothing to retry: not an S3 notification (S3's own s3:TestEvent has no records).
        tracing::warn!("not an S3 object notification; ignored");
        report.ignored += 1;
        return Ok(report);
    };
    for r in notification.records {
        let object = (r.source == "aws:s3"
            && r.name.starts_with("ObjectCreated:")
            && r.s3.bucket.name == app.attachments_bucket)
            .then(|| AttachmentObject::from_event_key(&r.s3.object.key))
            .flatten();
        let Some(object) = object else {
            tracing::info!("not an attachment upload; ignored");
            report.ignored += 1;
            continue;
        };
        let (lead, attachment) = read(app, &object).await?;
        let span = tracing::info_span!(
            "upload",
            tenant_id = %object.tenant,
            lead_id = %object.lead,
            attachment_id = %object.attachment
        );
        let _enter = span.enter();
        if keep(&lead, &attachment) {
            report.kept += 1;
            tracing::info!("attachment upload kept");
            continue;
        }
        app.s3
            .delete_object()
            .bucket(&app.attachments_bucket)
            .key(object.key())
            .send()
            .await
            .context("DeleteObject orphaned upload")?;
        report.deleted += 1;
        tracing::info!(
            lead_gone = lead.is_none(),
            record_gone = attachment.is_none(),
            "orphaned attachment upload deleted"
        );
    }
    Ok(report)
}

/// The lead and the attachment record, in one consistent `BatchGetItem`.
async fn read(app: &App, object: &AttachmentObject) -> anyhow::Result<(Found, Found)> {
    let lead_key = keys::lead(&object.tenant, &object.lead);
    let attachment_key = keys::attachment(&object.tenant, &object.lead, &object.attachment);
    let key_item = |k: &Key| {
        HashMap::from([
            (keys::PK.to_string(), AttributeValue::S(k.pk.clone())),
            (keys::SK.to_string(), AttributeValue::S(k.sk.clone())),
        ])
    };
    let mut request = Some(
        KeysAndAttributes::builder()
            .keys(key_item(&lead_key))
            .keys(key_item(&attachment_key))
            .consistent_read(true)
            .projection_expression("#pk, #sk, deleting_at, legal_hold")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::SK)
            .build()
            .context("keys and attributes")?,
    );
    let mut items = Vec::new();
    for attempt in 0..5u32 {
        let Some(keys) = request.take() else { break };
        let out = app
            .dynamo
            .batch_get_item()
            .request_items(&app.leads_table, keys)
            .send()
            .await
            .context("BatchGetItem lead and attachment")?;
        items.extend(
            out.responses
                .and_then(|mut r| r.remove(&app.leads_table))
                .unwrap_or_default(),
        );
        request = out
            .unprocessed_keys
            .and_then(|mut u| u.remove(&app.leads_table));
        if request.is_some() {
            tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
        }
    }
    if request.is_some() {
        return Err(anyhow!("BatchGetItem left keys unprocessed after retries"));
    }
    let find = |k: &Key| {
        items
            .iter()
            .find(|it| {
                it.get(keys::SK).and_then(|v| v.as_s().ok()) == Some(&k.sk)
                    && it.get(keys::PK).and_then(|v| v.as_s().ok()) == Some(&k.pk)
            })
            .cloned()
    };
    Ok((find(&lead_key), find(&attachment_key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Found {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn only_the_exact_keys_the_platform_signs_are_attachments() {
        let o = AttachmentObject::from_event_key("tenants/tenant-a/leads/ld-1/at-01j").unwrap();
        assert_eq!(
            (o.tenant.as_str(), o.lead.as_str(), o.attachment.as_str()),
            ("tenant-a", "ld-1", "at-01j")
        );
        assert_eq!(o.key(), "tenants/tenant-a/leads/ld-1/at-01j");
        // URL-encoded as S3 sends it.
        assert!(
            AttachmentObject::from_event_key("tenants%2Ftenant-a%2Fleads%2Fld-1%2Fat-1").is_some()
        );
        for other in [
            "tenants/tenant-a/leads/ld-1/",
            "tenants/tenant-a/leads/ld-1",
            "tenants/tenant-a/notes/ld-1/at-1",
            "tenants/tenant-a/leads/ld-1/at-1/x",
            "tenants/tenant-a/leads/ld-1/at+1",
            "tenants/Tenant A/leads/ld-1/at-1",
            "exports/tenant-a/ex-1.csv",
            "",
        ] {
            assert!(AttachmentObject::from_event_key(other).is_none(), "{other}");
        }
    }

    #[test]
    fn an_upload_stays_only_with_its_record_under_a_live_lead_or_a_hold() {
        let lead = item(&[("pk", AttributeValue::S("p".into()))]);
        let deleting = item(&[("deleting_at", AttributeValue::S("2026-11-29".into()))]);
        let record = item(&[("sk", AttributeValue::S("ATT#at-1".into()))]);
        let held = item(&[("legal_hold", AttributeValue::Bool(true))]);
        assert!(keep(&lead, &record));
        assert!(!keep(&None, &record), "lead deleted or erased");
        assert!(!keep(&deleting, &record), "lead being deleted");
        assert!(!keep(&lead, &None), "no attachment record");
        assert!(!keep(&None, &None));
        assert!(keep(&None, &held), "a held record keeps its file");
        assert!(keep(&deleting, &held));
    }
}
