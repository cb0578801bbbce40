//! Items of the lead workspace <-> its domain types.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::{
    AuditEntry, ConsentView, Lead, LeadSummary, Note, StageChange, StartKey, SubmissionView,
    TechnicalView,
};
use shared_core::domain::{ConsentRecord, LeadId, TenantId};
use shared_core::dynamo::attrs::{get_n_opt, get_s, item, put, put_opt, s, Item};
use shared_core::keys;

pub(super) fn start_key_item(k: StartKey) -> Item {
    k.0.into_iter().map(|(name, v)| (name, s(v))).collect()
}

pub(super) fn start_key_of(k: Item) -> StartKey {
    StartKey(
        k.into_iter()
            .filter_map(|(name, v)| v.as_s().ok().map(|v| (name, v.clone())))
            .collect::<BTreeMap<_, _>>(),
    )
}

pub(super) fn opt_s(it: &Item, name: &str) -> Option<String> {
    it.get(name).and_then(|v| v.as_s().ok()).cloned()
}

pub(super) fn is_restricted(it: &Item) -> bool {
    is_true(it, "restricted")
}

pub(super) fn is_held(it: &Item) -> bool {
    is_true(it, "legal_hold")
}

fn is_true(it: &Item, name: &str) -> bool {
    it.get(name)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(false)
}

pub(super) fn summary_from(it: &Item) -> anyhow::Result<LeadSummary> {
    Ok(LeadSummary {
        lead_id: get_s(it, "lead_id")?.to_string(),
        email: opt_s(it, "email"),
        phone: opt_s(it, "phone"),
        name: opt_s(it, "name"),
        company: opt_s(it, "company"),
        stage: opt_s(it, "stage").unwrap_or_else(|| keys::FIRST_STAGE.to_string()),
        owner_user_id: opt_s(it, "owner_user_id"),
        source_form_id: opt_s(it, "source_form_id"),
        restricted: is_restricted(it),
        marketing_opt_out: is_true(it, "marketing_opt_out"),
        created_at: get_s(it, "created_at")?.to_string(),
    })
}

pub(super) fn lead_from(it: &Item) -> anyhow::Result<Lead> {
    Ok(Lead {
        summary: summary_from(it)?,
        version: get_n_opt(it, "version")?.unwrap_or(1),
        updated_at: opt_s(it, "updated_at"),
        last_submission_at: opt_s(it, "last_submission_at"),
        submission_count: get_n_opt(it, "submission_count")?.unwrap_or(0),
        legal_hold: is_held(it),
    })
}

pub(super) fn submission_from(it: &Item) -> anyhow::Result<SubmissionView> {
    let answers = it
        .get("fields")
        .and_then(|v| v.as_m().ok())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
                .collect()
        })
        .unwrap_or_default();
    let consents = it
        .get("consents")
        .and_then(|v| v.as_l().ok())
        .map(|l| {
            l.iter()
                .filter_map(|c| {
                    let m = c.as_m().ok()?;
                    let text = |name: &str| m.get(name).and_then(|v| v.as_s().ok()).cloned();
                    Some(ConsentView {
                        given: ConsentRecord {
                            key: m.get("key")?.as_s().ok()?.clone(),
                            version: m.get("version")?.as_s().ok()?.clone(),
                            granted: *m.get("granted")?.as_bool().ok()?,
                        },
                        withdrawn_at: text("withdrawn_at"),
                        withdrawal_source: text("withdrawal_source"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let technical = TechnicalView {
        ip: opt_s(it, "ip"),
        user_agent: opt_s(it, "user_agent"),
        referrer: opt_s(it, "referrer"),
        page_url: opt_s(it, "page_url"),
    };
    let kept = technical.ip.is_some()
        || technical.user_agent.is_some()
        || technical.referrer.is_some()
        || technical.page_url.is_some();
    Ok(SubmissionView {
        submission_id: get_s(it, "submission_id")?.to_string(),
        form_id: get_s(it, "form_id")?.to_string(),
        received_at: get_s(it, "received_at")?.to_string(),
        answers,
        consents,
        technical: kept.then_some(technical),
    })
}

pub(super) fn note_item(tenant: &TenantId, lead: &LeadId, note: &Note) -> Item {
    let mut it = item(&keys::lead_note(tenant, lead, &note.note_id));
    put(&mut it, "tenant_id", s(tenant.as_str()));
    put(&mut it, "lead_id", s(lead.as_str()));
    put(&mut it, "note_id", s(&note.note_id));
    put(&mut it, "text", s(&note.text));
    put(&mut it, "author_user_id", s(&note.author_user_id));
    put(&mut it, "created_at", s(&note.created_at));
    it
}

pub(super) fn note_from(it: &Item) -> anyhow::Result<Note> {
    Ok(Note {
        note_id: get_s(it, "note_id")?.to_string(),
        text: get_s(it, "text")?.to_string(),
        author_user_id: get_s(it, "author_user_id")?.to_string(),
        created_at: get_s(it, "created_at")?.to_string(),
    })
}

pub(super) fn stage_change_item(tenant: &TenantId, lead: &LeadId, c: &StageChange) -> Item {
    let mut it = item(&keys::lead_stage_change(tenant, lead, &c.at, &c.change_id));
    put(&mut it, "change_id", s(&c.change_id));
    put(&mut it, "from_stage", s(&c.from));
    put(&mut it, "to_stage", s(&c.to));
    put(&mut it, "actor_user_id", s(&c.actor_user_id));
    put(&mut it, "at", s(&c.at));
    it
}

pub(super) fn stage_change_from(it: &Item) -> anyhow::Result<StageChange> {
    Ok(StageChange {
        change_id: get_s(it, "change_id")?.to_string(),
        from: get_s(it, "from_stage")?.to_string(),
        to: get_s(it, "to_stage")?.to_string(),
        actor_user_id: get_s(it, "actor_user_id")?.to_string(),
        at: get_s(it, "at")?.to_string(),
    })
}

pub(super) fn audit_item(tenant: &TenantId, lead: &LeadId, a: &AuditEntry) -> Item {
    let mut it = item(&keys::lead_audit(tenant, lead, &a.at, &a.entry_id));
    put(&mut it, "entry_id", s(&a.entry_id));
    put(&mut it, "action", s(&a.action));
    put(
        &mut it,
        "fields",
        AttributeValue::L(a.fields.iter().map(s).collect()),
    );
    put_opt(&mut it, "actor_user_id", a.actor_user_id.clone());
    put_opt(&mut it, "api_key_id", a.api_key_id.clone());
    put(&mut it, "at", s(&a.at));
    it
}

pub(super) fn audit_from(it: &Item) -> anyhow::Result<AuditEntry> {
    Ok(AuditEntry {
        entry_id: get_s(it, "entry_id")?.to_string(),
        action: get_s(it, "action")?.to_string(),
        fields: it
            .get("fields")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
            .unwrap_or_default(),
        actor_user_id: opt_s(it, "actor_user_id"),
        api_key_id: opt_s(it, "api_key_id"),
        at: get_s(it, "at")?.to_string(),
    })
}
