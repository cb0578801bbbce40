//! What a change of the leads table means to a tenant's systems.
//!
//! | record | event |
//! |---|---|
//! | INSERT of a submission (`SUB#…`) | `submission.created` |
//! | INSERT of a lead (`LEAD`) | `lead.created` |
//! | MODIFY of a lead whose `stage` or `owner_user_id` changed | `lead.updated` |
//! | MODIFY of a lead whose `marketing_opt_out` turned true | `consent.withdrawn` |
//! | REMOVE of a lead marked by a data-subject erasure (`erasure_request_id`) | `lead.erased` |
//! | REMOVE of another lead (deleted through the API, retention) | `lead.deleted` |
//!
//! Every other record (notes, audit entries, routes, a new submission's counter update on its
//! lead) is no event. An event's id is derived from the change (the submission's id, the lead's
//! version, the erasure's request id, ...), never from the delivery, so a record the stream hands
//! over twice gives one id; receivers dedupe on it. Payloads carry identifiers and workflow
//! state, never the submitted answers or contact details: a receiver reads the lead through the
//! API (data minimisation; docs/outbound.md).

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use shared_core::domain::{LeadId, TenantId};

use crate::stream::{Change, Image, StreamRecord};

/// The attribute a data-subject erasure sets on the lead it removes (with `deleting_at`), so
/// the removal reads as `lead.erased`, not `lead.deleted`.
pub const ERASURE_MARK: &str = "erasure_request_id";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    SubmissionCreated,
    LeadCreated,
    LeadUpdated,
    LeadDeleted,
    LeadErased,
    ConsentWithdrawn,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::SubmissionCreated,
        EventType::LeadCreated,
        EventType::LeadUpdated,
        EventType::LeadDeleted,
        EventType::LeadErased,
        EventType::ConsentWithdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::SubmissionCreated => "submission.created",
            EventType::LeadCreated => "lead.created",
            EventType::LeadUpdated => "lead.updated",
            EventType::LeadDeleted => "lead.deleted",
            EventType::LeadErased => "lead.erased",
            EventType::ConsentWithdrawn => "consent.withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One event for one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `evt_` and 32 hex digits, derived from the change.
    pub id: String,
    pub kind: EventType,
    pub tenant: TenantId,
    pub lead: LeadId,
    pub form_id: Option<String>,
    /// When the change happened (the item's own time), RFC 3339.
    pub occurred_at: Option<String>,
    /// Type-specific fields (ids and workflow state only).
    pub data: Map<String, Value>,
    /// A submission's answers (name, text), for a notification whose form turned them on;
    /// never part of [`Event::payload`].
    pub answers: Vec<(String, String)>,
}

impl Event {
    /// The JSON body a webhook receives (schema: docs/openapi.yaml, `webhooks`).
    pub fn payload(&self) -> Value {
        let mut data = self.data.clone();
        data.insert("lead_id".into(), json!(self.lead.as_str()));
        json!({
            "id": self.id,
            "type": self.kind.as_str(),
            "tenant_id": self.tenant.as_str(),
            "form_id": self.form_id,
            "occurred_at": self.occurred_at,
            "data": data,
        })
    }
}

fn event_id(kind: EventType, tenant: &TenantId, lead: &LeadId, seed: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        "outbound-event-v1",
        kind.as_str(),
        tenant.as_str(),
        lead.as_str(),
        seed,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let mut id = String::from("evt_");
    for b in &digest[..16] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// `TENANT#<tenantId>#LEAD#<leadId>` read back; None for every other partition.
fn lead_partition(pk: &str) -> Option<(TenantId, LeadId)> {
    let rest = pk.strip_prefix("TENANT#")?;
    let (t, l) = rest.split_once("#LEAD#")?;
    Some((TenantId::parse(t).ok()?, LeadId::parse(l).ok()?))
}

fn text(img: Option<&Image>, name: &str) -> Option<String> {
    img.and_then(|i| i.s(name)).map(String::from)
}

/// A submission image's `fields` map, as (name, text) pairs in name order.
fn answers_of(img: Option<&Image>) -> Vec<(String, String)> {
    let Some(fields) = img
        .and_then(|i| i.0.get("fields"))
        .and_then(|f| f.get("M"))
        .and_then(Value::as_object)
    else {
        return vec![];
    };
    let mut out: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| {
            let text = v
                .get("S")
                .and_then(Value::as_str)
                .map(String::from)
                .or_else(|| v.get("N").and_then(Value::as_str).map(String::from))
                .or_else(|| {
                    v.get("BOOL")
                        .and_then(Value::as_bool)
                        .map(|b| b.to_string())
                })
                .unwrap_or_default();
            (k.clone(), text)
        })
        .collect();
    out.sort();
    out
}

/// The events of one record (none, one, or two: a lead can change stage and opt out in one write).
pub fn events_of(record: &StreamRecord) -> Vec<Event> {
    let (Some(pk), Some(sk)) = (record.pk(), record.sk()) else {
        return vec![];
    };
    let Some((tenant, lead)) = lead_partition(pk) else {
        return vec![];
    };
    let new = record.new_image.as_ref();
    let old = record.old_image.as_ref();
    let make = |kind: EventType,
                seed: &str,
                form: Option<String>,
                at: Option<String>,
                data: Map<String, Value>| Event {
        id: event_id(kind, &tenant, &lead, seed),
        kind,
        tenant: tenant.clone(),
        lead: lead.clone(),
        form_id: form,
        occurred_at: at,
        data,
        answers: vec![],
    };
    let mut out = vec![];
    if let Some(sub) = sk.strip_prefix("SUB#") {
        if record.change == Change::Insert {
            let mut data = Map::new();
            data.insert("submission_id".into(), json!(sub));
            let mut e = make(
                EventType::SubmissionCreated,
                sub,
                text(new, "form_id"),
                text(new, "received_at").or_else(|| text(new, "created_at")),
                data,
            );
            e.answers = answers_of(new);
            out.push(e);
        }
        return out;
    }
    if sk != "LEAD" {
        return out;
    }
    let form = text(new.or(old), "source_form_id");
    match record.change {
        Change::Insert => {
            let mut data = Map::new();
            data.insert("stage".into(), json!(text(new, "stage")));
            data.insert("owner_user_id".into(), json!(text(new, "owner_user_id")));
            let at = text(new, "created_at");
            let seed = at.clone().unwrap_or_else(|| record.sequence_number.clone());
            out.push(make(EventType::LeadCreated, &seed, form, at, data));
        }
        Change::Modify => {
            let mut changes = Map::new();
            for field in ["stage", "owner_user_id"] {
                let (before, after) = (text(old, field), text(new, field));
                if before != after {
                    changes.insert(field.into(), json!({"from": before, "to": after}));
                }
            }
            if !changes.is_empty() {
                let version = new.and_then(|n| n.n("version"));
                let seed = match version {
                    Some(v) => format!("version {v}"),
                    None => format!("record {}", record.sequence_number),
                };
                let mut data = Map::new();
                data.insert("stage".into(), json!(text(new, "stage")));
                data.insert("owner_user_id".into(), json!(text(new, "owner_user_id")));
                data.insert("changes".into(), Value::Object(changes));
                out.push(make(
                    EventType::LeadUpdated,
                    &seed,
                    form.clone(),
                    text(new, "updated_at"),
                    data,
                ));
            }
            let opted_out_before = old.is_some_and(|o| o.is_true("marketing_opt_out"));
            if new.is_some_and(|n| n.is_true("marketing_opt_out")) && !opted_out_before {
                let at = text(new, "marketing_opt_out_at");
                let seed = at.clone().unwrap_or_else(|| record.sequence_number.clone());
                let mut data = Map::new();
                data.insert("purposes".into(), json!(["marketing"]));
                out.push(make(EventType::ConsentWithdrawn, &seed, form, at, data));
            }
        }
        Change::Remove => {
            if let Some(request) = text(old, ERASURE_MARK) {
                // No personal data, not even the request's id: the erasure certificate names it.
                out.push(make(
                    EventType::LeadErased,
                    &request,
                    form,
                    text(old, "deleting_at"),
                    Map::new(),
                ));
            } else {
                let at = text(old, "deleting_at");
                let seed = at.clone().unwrap_or_else(|| record.sequence_number.clone());
                out.push(make(EventType::LeadDeleted, &seed, form, at, Map::new()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::StreamRecord;

    fn record(name: &str, sk: &str, seq: &str, new: Value, old: Value) -> StreamRecord {
        let mut d = json!({
            "Keys": {"pk": {"S": "TENANT#t1#LEAD#ld-1"}, "sk": {"S": sk}},
            "SequenceNumber": seq,
        });
        if !new.is_null() {
            d["NewImage"] = new;
        }
        if !old.is_null() {
            d["OldImage"] = old;
        }
        StreamRecord::from_json(&json!({"eventName": name, "dynamodb": d})).unwrap()
    }

    fn lead(stage: &str, owner: Option<&str>, version: i64, opt_out: bool) -> Value {
        let mut v = json!({
            "pk": {"S": "TENANT#t1#LEAD#ld-1"}, "sk": {"S": "LEAD"},
            "stage": {"S": stage}, "version": {"N": version.to_string()},
            "source_form_id": {"S": "contact"}, "email": {"S": "ana@example.com"},
            "created_at": {"S": "2026-01-01T00:00:00Z"}, "updated_at": {"S": "2026-01-02T00:00:00Z"},
            "marketing_opt_out": {"BOOL": opt_out}
        });
        if let Some(o) = owner {
            v["owner_user_id"] = json!({"S": o});
        }
        v
    }

    fn kinds(r: &StreamRecord) -> Vec<&'static str> {
        events_of(r).iter().map(|e| e.kind.as_str()).collect()
    }

    #[test]
    fn a_new_submission_and_a_new_lead() {
        let sub = record(
            "INSERT",
            "SUB#s-1",
            "1",
            json!({"form_id": {"S": "contact"}, "received_at": {"S": "2026-01-01T00:00:00Z"},
                   "fields": {"M": {"message": {"S": "secret answer"}}}}),
            Value::Null,
        );
        let e = &events_of(&sub)[0];
        assert_eq!(e.kind, EventType::SubmissionCreated);
        assert_eq!(e.tenant.as_str(), "t1");
        assert_eq!(e.form_id.as_deref(), Some("contact"));
        let body = e.payload().to_string();
        assert!(body.contains("\"submission_id\":\"s-1\""), "{body}");
        assert!(!body.contains("secret answer"), "no answers in a payload");
        assert_eq!(
            e.answers,
            vec![("message".to_string(), "secret answer".to_string())]
        );
        let l = record(
            "INSERT",
            "LEAD",
            "2",
            lead("new", None, 1, false),
            Value::Null,
        );
        let e = &events_of(&l)[0];
        assert_eq!(e.kind, EventType::LeadCreated);
        assert!(!e.payload().to_string().contains("ana@example.com"));
    }

    #[test]
    fn a_lead_update_is_an_event_only_for_stage_or_owner() {
        let counter_only = record(
            "MODIFY",
            "LEAD",
            "3",
            lead("new", None, 2, false),
            lead("new", None, 1, false),
        );
        assert!(kinds(&counter_only).is_empty());
        let moved = record(
            "MODIFY",
            "LEAD",
            "4",
            lead("won", Some("u-1"), 3, false),
            lead("new", None, 2, false),
        );
        let e = &events_of(&moved)[0];
        assert_eq!(e.kind, EventType::LeadUpdated);
        assert_eq!(
            e.data["changes"]["stage"],
            json!({"from": "new", "to": "won"})
        );
        assert_eq!(
            e.data["changes"]["owner_user_id"],
            json!({"from": null, "to": "u-1"})
        );
        let both = record(
            "MODIFY",
            "LEAD",
            "5",
            lead("lost", Some("u-1"), 4, true),
            lead("won", Some("u-1"), 3, false),
        );
        assert_eq!(kinds(&both), vec!["lead.updated", "consent.withdrawn"]);
        let again = record(
            "MODIFY",
            "LEAD",
            "6",
            lead("lost", Some("u-1"), 5, true),
            lead("lost", Some("u-1"), 4, true),
        );
        assert!(kinds(&again).is_empty(), "an opt-out is withdrawn once");
    }

    #[test]
    fn a_removal_is_an_erasure_only_when_a_request_marked_it() {
        let mut marked = lead("new", None, 2, false);
        marked["deleting_at"] = json!({"S": "2026-02-01T00:00:00Z"});
        let deleted = record("REMOVE", "LEAD", "7", Value::Null, marked.clone());
        assert_eq!(kinds(&deleted), vec!["lead.deleted"]);
        marked[ERASURE_MARK] = json!({"S": "dsar-1"});
        let erased = record("REMOVE", "LEAD", "8", Value::Null, marked);
        let e = &events_of(&erased)[0];
        assert_eq!(e.kind, EventType::LeadErased);
        assert!(!e.payload().to_string().contains("dsar-1"));
        assert!(!e.payload().to_string().contains("example.com"));
    }

    #[test]
    fn ids_are_stable_per_change_and_distinct_across_changes() {
        let a = record("INSERT", "SUB#s-1", "1", json!({}), Value::Null);
        let a_again = record("INSERT", "SUB#s-1", "99", json!({}), Value::Null);
        let b = record("INSERT", "SUB#s-2", "2", json!({}), Value::Null);
        let id = |r: &StreamRecord| events_of(r)[0].id.clone();
        assert_eq!(id(&a), id(&a_again), "the same submission seen twice");
        assert_ne!(id(&a), id(&b));
        assert!(id(&a).starts_with("evt_") && id(&a).len() == 36);
    }

    #[test]
    fn other_items_and_partitions_are_no_events() {
        for sk in ["NOTE#1", "AUDIT#x", "FORMER#b", "ROUTE"] {
            assert!(kinds(&record("INSERT", sk, "1", json!({}), Value::Null)).is_empty());
        }
        let other = StreamRecord::from_json(&json!({"eventName": "INSERT", "dynamodb": {
            "Keys": {"pk": {"S": "TENANT#t1#ROUTE#x"}, "sk": {"S": "ROUTE"}}, "SequenceNumber": "1"}}))
        .unwrap();
        assert!(events_of(&other).is_empty());
        let bad_tenant = StreamRecord::from_json(&json!({"eventName": "INSERT", "dynamodb": {
            "Keys": {"pk": {"S": "TENANT#T 1#LEAD#x"}, "sk": {"S": "LEAD"}}, "SequenceNumber": "1"}}))
        .unwrap();
        assert!(events_of(&bad_tenant).is_empty());
    }

    #[test]
    fn type_names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("lead.*"), None);
    }
}
