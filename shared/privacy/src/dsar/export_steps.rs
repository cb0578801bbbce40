//! The export steps: a lead's partition streamed page by page into the access or portability
//! documents, what counts as "provided" data, and links to attachment files.

use serde_json::{json, Map, Value};

use super::export::{DocKind, Sink};
use super::job::{DsarJob, JobDispatcher, JobKind, RequestProgress};
use super::records::SubjectRecord;
use super::subjects::{is_subjects, lead_owner, str_attr};
use super::tokens::DownloadBucket;
use super::worker::{StepResult, Subject, Worker};
use crate::inventory::Table;
use shared_core::domain::{LeadId, TenantId};
use shared_core::keys;
use shared_mail::Mailer;

use super::steps::classify_all;

impl<P: RequestProgress, D: JobDispatcher, M: Mailer> Worker<P, D, M> {
    /// An access or portability export of one lead, page by page of its partition: each page
    /// is checked against the inventory, written, and sent as parts once 5 MiB are buffered.
    pub(super) async fn export_lead(
        &self,
        job: &DsarJob,
        subject: &Subject,
        t: &TenantId,
        lead: &LeadId,
        sink: &mut Sink,
        r: &mut StepResult,
    ) -> anyhow::Result<()> {
        let table = self.store.tables().leads.clone();
        let pk = keys::lead_partition(t, lead);
        // Whose the lead's own record is: the subject's whose email it has now. The export
        // holds that record only for them, and each submission only for the address it came
        // from (`is_subjects`).
        let lead_item = self.store.get(&table, &keys::lead(t, lead)).await?;
        let owner = lead_owner(lead_item.as_ref()).map(str::to_string);
        let mut start = None;
        loop {
            let (items, next) = self.store.partition_page(&table, &pk, start).await?;
            let records = classify_all(Table::Leads, &items)?;
            for (it, rec) in items.iter().zip(&records) {
                if !is_subjects(&subject.bidx, owner.as_deref(), it) {
                    continue;
                }
                if job.kind == JobKind::Access {
                    let mut v = rec.access_json();
                    if rec.kind == "attachment_record" {
                        if let Some(key) = str_attr(it, "object_key") {
                            v["download"] =
                                json!(self.download_link(job, DownloadBucket::Attachments, key));
                        }
                    }
                    sink.json_record(&v)?;
                    r.inc(rec.kind, 1);
                } else if let Some((record, id, at, fields)) = provided(rec) {
                    write_provided(sink, record, &id, &at, &fields)?;
                    // Counted once, in the JSON pass (the CSV holds the same records).
                    if sink.state.doc != DocKind::ProvidedCsv {
                        r.inc(record, 1);
                    }
                }
            }
            drop(items);
            self.exports.flush(sink, false).await?;
            match next {
                Some(k) => start = Some(k),
                None => return Ok(()),
            }
        }
    }
}

/// One provided record: a JSON object, or one CSV row per field.
pub(super) fn write_provided(
    sink: &mut Sink,
    record: &str,
    id: &str,
    at: &str,
    fields: &[(String, String)],
) -> anyhow::Result<()> {
    match sink.state.doc {
        DocKind::ProvidedCsv => {
            for (name, value) in fields {
                sink.csv_row(&[record, id, at, name, value]);
            }
            Ok(())
        }
        _ => sink.json_record(&json!({
            "record": record,
            "record_id": id,
            "at": at,
            "fields": fields
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<Map<String, Value>>(),
        })),
    }
}

/// What the subject provided in a record, for portability: `(record, id, at, fields)`.
type Provided = (&'static str, String, String, Vec<(String, String)>);

pub(super) fn provided(rec: &SubjectRecord) -> Option<Provided> {
    let text = |name: &str| rec.get(name).and_then(Value::as_str).map(str::to_string);
    let pick = |names: &[&str]| -> Vec<(String, String)> {
        names
            .iter()
            .filter_map(|n| text(n).map(|v| ((*n).to_string(), v)))
            .collect()
    };
    match rec.kind {
        "lead" => Some((
            "contact",
            text("lead_id")?,
            text("created_at").unwrap_or_default(),
            pick(&["email", "phone", "name", "company"]),
        )),
        "user" => Some((
            "profile",
            text("user_id")?,
            text("created_at").unwrap_or_default(),
            pick(&["email", "name", "phone"]),
        )),
        "submission" => {
            let mut fields: Vec<(String, String)> = rec
                .get("fields")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str().map_or_else(|| v.to_string(), str::to_string),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            for c in rec
                .get("consents")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let key = c["key"].as_str().unwrap_or_default();
                let state = if c["granted"] == json!(true) {
                    "granted"
                } else {
                    "not granted"
                };
                let version = c["version"].as_str().unwrap_or_default();
                let withdrawn = c["withdrawn_at"]
                    .as_str()
                    .map(|w| format!(", withdrawn {w}"))
                    .unwrap_or_default();
                fields.push((
                    format!("consent:{key}"),
                    format!("{state} (text version {version}{withdrawn})"),
                ));
            }
            Some((
                "submission",
                text("submission_id")?,
                text("received_at").unwrap_or_default(),
                fields,
            ))
        }
        _ => None,
    }
}
