//! What each target does for each request type: here the dispatch and the tenant's lead steps
//! (erasure, rectification, restriction, objection and withdrawal); `export_steps` streams a
//! lead into the export documents, `account_steps` handles the platform's account data. Every
//! item read passes through the inventory ([`super::records::classify`]): an undeclared
//! attribute stops the job before anything of that target is written, exported or deleted.

use std::collections::HashMap;

use anyhow::Context;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem, Update};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::export::{Sink, UploadState};
use super::facts::LEGAL_HOLD_BASIS;
use super::job::{DsarJob, JobDispatcher, JobKind, JobScope, KeptRecord, RequestProgress};
use super::records::{classify, SubjectRecord};
use super::subjects::{is_subjects, is_true, item_key, lead_owner, str_attr};
use super::worker::{kind_name, StepResult, Subject, Target, Worker};
use crate::inventory::Table;
use shared_core::domain::{Email, LeadId, Phone, TenantId, UserId};
use shared_core::dynamo::{batch_delete, s, Item};
use shared_core::keys::{self, PK, SK};
use shared_leads::dynamo::routing;
use shared_mail::Mailer;

impl<P: RequestProgress, D: JobDispatcher, M: Mailer> Worker<P, D, M> {
    pub(super) async fn step(
        &self,
        job: &DsarJob,
        subject: &Subject,
        target: &Target,
        sinks: &mut [Option<Sink>],
        uploads: &mut [UploadState],
    ) -> anyhow::Result<StepResult> {
        let mut r = StepResult::default();
        match target {
            Target::FinishDoc { doc } => {
                if let Some(sink) = sinks.get_mut(*doc).and_then(Option::take) {
                    let mut state = sink.state.clone();
                    self.exports.finish(sink).await?;
                    state.completed = true;
                    uploads[*doc] = state;
                }
            }
            Target::Lead { lead, doc } => {
                let JobScope::Tenant { tenant_id } = &job.scope else {
                    anyhow::bail!("a lead target in an account job");
                };
                let lead = LeadId::parse(lead).context("lead id")?;
                if matches!(job.kind, JobKind::Access | JobKind::Portability) {
                    let sink = doc
                        .and_then(|d| sinks.get_mut(d).and_then(Option::as_mut))
                        .context("an export target without its document")?;
                    self.export_lead(job, subject, tenant_id, &lead, sink, &mut r)
                        .await?;
                    return Ok(r);
                }
                let items = self.store.lead_items(tenant_id, &lead).await?;
                let records = classify_all(Table::Leads, &items)?;
                let sink = doc.and_then(|d| sinks.get_mut(d).and_then(Option::as_mut));
                self.lead_step(
                    job, subject, tenant_id, &lead, &items, &records, sink, &mut r,
                )
                .await?;
            }
            Target::Suppression { doc } => {
                let JobScope::Tenant { tenant_id } = &job.scope else {
                    return Ok(r);
                };
                let key = keys::suppression(tenant_id, &subject.bidx);
                if let Some(it) = self.store.get(&self.store.tables().privacy, &key).await? {
                    let rec = classify(Table::Privacy, &it)?;
                    export_records(sinks, *doc, &[rec], &mut r)?;
                }
            }
            Target::Quarantine { doc } => {
                let JobScope::Tenant { tenant_id } = &job.scope else {
                    return Ok(r);
                };
                let items = self.store.quarantined(tenant_id, &subject.bidx).await?;
                let records = classify_all(Table::Ops, &items)?;
                match &job.kind {
                    JobKind::Access => export_records(sinks, *doc, &records, &mut r)?,
                    JobKind::Erasure { .. } => {
                        // The suppression entry first, as for a lead: a person known to the
                        // tenant only by what the spam defence kept is not re-collected either
                        // (the certificate says so), and a run cut off after the deletes has
                        // not left them erased but collectable.
                        if !items.is_empty() {
                            self.suppress(tenant_id, &subject.bidx, &subject.at).await?;
                        }
                        let keys: Vec<_> = items.iter().filter_map(item_key).collect();
                        let n = batch_delete(self.store.client(), &self.store.tables().ops, keys)
                            .await
                            .context("deleting quarantined submissions")?;
                        r.inc("quarantined_submission", n);
                    }
                    _ => {}
                }
            }
            Target::User { tenant, user, doc } => {
                let t = TenantId::parse(tenant).context("tenant id")?;
                let u = UserId::parse(user).context("user id")?;
                let sink = doc.and_then(|d| sinks.get_mut(d).and_then(Option::as_mut));
                self.user_step(job, subject, &t, &u, sink, &mut r).await?;
            }
            Target::Billing { tenant, doc } => {
                let t = TenantId::parse(tenant).context("tenant id")?;
                let items = self.store.billing_items(&t).await?;
                let records = classify_all(Table::Billing, &items)?;
                match &job.kind {
                    JobKind::Access => export_records(sinks, *doc, &records, &mut r)?,
                    JobKind::Erasure { .. } => {
                        self.restrict_billing(&items, &records, &mut r).await?
                    }
                    _ => {}
                }
            }
        }
        Ok(r)
    }

    /// Puts a keyed hash on the tenant's suppression list, once (a repeated step finds it).
    async fn suppress(&self, t: &TenantId, hash: &str, at: &str) -> anyhow::Result<()> {
        let k = keys::suppression(t, hash);
        self.store
            .client()
            .put_item()
            .table_name(&self.store.tables().privacy)
            .item(PK, s(&k.pk))
            .item(SK, s(&k.sk))
            .item("created_at", s(at))
            .item("reason", s("erasure"))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map(|_| ())
            .or_else(|e| match e.into_service_error() {
                aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_) => Ok(()),
                other => Err(anyhow::Error::new(other).context("PutItem suppression")),
            })
    }

    #[allow(clippy::too_many_arguments)]
    async fn lead_step(
        &self,
        job: &DsarJob,
        subject: &Subject,
        t: &TenantId,
        lead: &LeadId,
        items: &[Item],
        records: &[SubjectRecord],
        sink: Option<&mut Sink>,
        r: &mut StepResult,
    ) -> anyhow::Result<()> {
        let leads = &self.store.tables().leads;
        let client = self.store.client();
        let at = subject.at.clone();
        let _ = sink;
        match &job.kind {
            JobKind::Access | JobKind::Portability => {
                anyhow::bail!("exports stream the lead through export_lead")
            }
            JobKind::Erasure { suppress_phone } => {
                // The suppression entries first: a run cut off after the deletes must not leave
                // a person erased but importable. The email is what the subject proved; the
                // lead's phone was typed into a form by anyone and may be someone else's, so it
                // is suppressed only when the controller chose so in the approval.
                // A request a tenant filed by phone (attested identity) suppresses that phone:
                // it is the identifier the controller verified, and the only one the request
                // names; the lead's email (if any) is another subject's and is never suppressed.
                let lead_item = items.iter().find(|it| str_attr(it, SK) == Some("LEAD"));
                let mut hashes = vec![subject.bidx.clone()];
                let lead_is_subjects = !subject.by_phone
                    && lead_item
                        .and_then(|it| str_attr(it, "email_bidx"))
                        .is_some_and(|b| b == subject.bidx);
                if *suppress_phone && lead_is_subjects {
                    if let Some(p) = lead_item.and_then(|it| str_attr(it, "phone_bidx")) {
                        hashes.push(p.to_string());
                    }
                }
                for h in hashes {
                    self.suppress(t, &h, &at).await?;
                }
                // A lead under legal hold is kept whole: the hold is on the lead, and its
                // submissions, notes and files are what the hold preserves.
                if lead_item.is_some_and(|it| is_true(it, "legal_hold")) {
                    r.kept.push(KeptRecord {
                        what: "a lead under legal hold, with everything under it".into(),
                        count: items.len() as u64,
                        legal_basis: LEGAL_HOLD_BASIS.into(),
                        retain_until: None,
                    });
                    return Ok(());
                }
                let owner = lead_owner(lead_item);
                let owns_lead = owner == Some(subject.bidx.as_str());
                let mut held = 0u64;
                let mut keys_to_delete = Vec::new();
                let mut lead_key = None;
                let mut held_objects = Vec::new();
                // Submissions another address made stay (the lead once had, or now has, another
                // person's address): erasure removes exactly this subject's data.
                let mut others_remain = false;
                let mut other_former = Vec::new();
                for (it, rec) in items.iter().zip(records) {
                    if rec.kind == "lead" {
                        // The subject's lead, or a lead whose contact an earlier erasure
                        // removed (then it goes with the last submissions it holds).
                        if owns_lead || owner.is_none() {
                            lead_key = Some(item_key(it).context("item key")?);
                        }
                        continue;
                    }
                    if !is_subjects(&subject.bidx, owner, it) {
                        others_remain |= rec.kind == "submission";
                        if rec.kind == "former_address" {
                            other_former.push(item_key(it).context("item key")?);
                        }
                        continue;
                    }
                    if is_true(it, "legal_hold") {
                        held += 1;
                        if let Some(k) = str_attr(it, "object_key") {
                            held_objects.push(k.to_string());
                        }
                        continue;
                    }
                    keys_to_delete.push(item_key(it).context("item key")?);
                    r.inc(rec.kind, 1);
                }
                // Marked as being deleted first, as a delete through the API claims it: an
                // upload through a link issued before (valid 5 minutes) that lands from now on
                // is deleted on arrival by attachment-guard, which keeps nothing under a marked
                // or missing lead; one that landed before is listed below.
                if let Some(k) = lead_item.and_then(item_key) {
                    // A lead this erasure removes also names the request, so the leads table's
                    // change stream reads its removal as `lead.erased` and the tenant's connected
                    // systems are told to erase too (docs/outbound.md).
                    let removes_lead = lead_key.is_some() && !others_remain;
                    let mut mark = client
                        .update_item()
                        .table_name(leads)
                        .set_key(Some(k))
                        .update_expression(if removes_lead {
                            "SET deleting_at = :at, erasure_request_id = :rid"
                        } else {
                            "SET deleting_at = :at"
                        })
                        .condition_expression("attribute_exists(pk)")
                        .expression_attribute_values(":at", s(&at));
                    if removes_lead {
                        mark = mark.expression_attribute_values(":rid", s(&job.request_id));
                    }
                    let marked = mark.send().await;
                    if let Err(e) = marked {
                        let e = e.into_service_error();
                        // Gone meanwhile: nothing to mark.
                        if !e.is_conditional_check_failed_exception() {
                            return Err(anyhow::Error::new(e).context("UpdateItem deleting_at"));
                        }
                    }
                }
                // Objects first, the lead item last: a run cut off half-way finds the lead
                // again through the blind index and finishes. The files are the lead's, so its
                // current subject's.
                let prefix = keys::lead_objects_prefix(t, lead);
                if !owns_lead {
                    // Nothing of the lead's own record is this subject's.
                } else if held_objects.is_empty() {
                    let n = shared_core::s3::delete_prefix(
                        &self.exports.s3,
                        &self.attachments_bucket,
                        &prefix,
                    )
                    .await?;
                    r.inc("attachment_object", n as u64);
                } else {
                    for it in items.iter().filter(|it| !is_true(it, "legal_hold")) {
                        if let Some(k) = str_attr(it, "object_key") {
                            self.exports
                                .s3
                                .delete_object()
                                .bucket(&self.attachments_bucket)
                                .key(k)
                                .send()
                                .await
                                .context("DeleteObject")?;
                            r.inc("attachment_object", 1);
                        }
                    }
                }
                if owns_lead {
                    // The address no longer leads here.
                    let route = lead_item.and_then(routing::key_of_item);
                    routing::release(client, leads, t, lead, route.as_ref()).await?;
                }
                if owns_lead && others_remain {
                    // Other people's submissions stay under the lead: the lead item stays as
                    // their holder, without this subject's contact details.
                    batch_delete(client, leads, keys_to_delete).await?;
                    let lk = keys::lead(t, lead);
                    client
                        .update_item()
                        .table_name(leads)
                        .key(PK, s(&lk.pk))
                        .key(SK, s(&lk.sk))
                        .update_expression(
                            "REMOVE email, email_bidx, phone, phone_bidx, #n, company, owner_user_id",
                        )
                        .expression_attribute_names("#n", "name")
                        .condition_expression("attribute_exists(pk)")
                        .send()
                        .await
                        .context("UpdateItem lead contact erased")?;
                    r.inc("lead_contact", 1);
                    keys_to_delete = Vec::new();
                    lead_key = None;
                } else if lead_key.is_some() && !others_remain {
                    r.inc("lead", 1);
                    // The whole partition goes: other addresses' former-address items too.
                    keys_to_delete.extend(other_former);
                } else {
                    lead_key = None;
                }
                keys_to_delete.extend(lead_key);
                batch_delete(client, leads, keys_to_delete).await?;
                if held > 0 {
                    r.kept.push(KeptRecord {
                        what: "lead items under legal hold".into(),
                        count: held,
                        legal_basis: LEGAL_HOLD_BASIS.into(),
                        retain_until: None,
                    });
                }
            }
            JobKind::Rectification { changes } => {
                // The lead's own record is rectified only when it is the subject's (its email
                // is theirs now); the answers, in the subject's own submissions.
                let lead_item = items.iter().find(|it| str_attr(it, SK) == Some("LEAD"));
                let owner = lead_owner(lead_item);
                let owns_lead = owner == Some(subject.bidx.as_str());
                let mut new_email_bidx = None;
                let mut new_phone_bidx = None;
                let lk = keys::lead(t, lead);
                let mut expr = vec![
                    "#updated_at = :at".to_string(),
                    "#version = #version + :one".to_string(),
                ];
                let mut names = HashMap::from([
                    ("#updated_at".to_string(), "updated_at".to_string()),
                    ("#version".to_string(), "version".to_string()),
                ]);
                let mut values = HashMap::from([
                    (":at".to_string(), s(&at)),
                    (":one".to_string(), AttributeValue::N("1".into())),
                ]);
                let mut after_email =
                    lead_item.and_then(|it| str_attr(it, "email_bidx").map(str::to_string));
                let mut after_phone =
                    lead_item.and_then(|it| str_attr(it, "phone_bidx").map(str::to_string));
                for (field, value) in changes {
                    let (value, bidx) = match field.as_str() {
                        "email" => {
                            let e = Email::parse(value).map_err(|e| anyhow::anyhow!(e))?;
                            let b = self.keys.email(&e);
                            after_email = Some(b.clone());
                            new_email_bidx = Some(b.clone());
                            (e.as_str().to_string(), Some(("email_bidx", b)))
                        }
                        "phone" => {
                            let p = Phone::parse(value).map_err(|e| anyhow::anyhow!(e))?;
                            let b = self.keys.phone(&p);
                            after_phone = Some(b.clone());
                            new_phone_bidx = Some(b.clone());
                            (p.as_str().to_string(), Some(("phone_bidx", b)))
                        }
                        _ => (
                            shared_leads::contact_text(value).map_err(|e| anyhow::anyhow!(e))?,
                            None,
                        ),
                    };
                    expr.push(format!("#{field} = :{field}"));
                    names.insert(format!("#{field}"), field.clone());
                    values.insert(format!(":{field}"), s(value));
                    if let Some((attr, b)) = bidx {
                        expr.push(format!("#{attr} = :{attr}"));
                        names.insert(format!("#{attr}"), attr.to_string());
                        values.insert(format!(":{attr}"), s(b));
                    }
                }
                if owns_lead {
                    let update = Update::builder()
                        .table_name(leads)
                        .key(PK, s(&lk.pk))
                        .key(SK, s(&lk.sk))
                        .update_expression(format!("SET {}", expr.join(", ")))
                        .condition_expression("attribute_exists(pk)")
                        .set_expression_attribute_names(Some(names))
                        .set_expression_attribute_values(Some(values))
                        .build()
                        .context("rectification update")?;
                    let mut writes = vec![TransactWriteItem::builder().update(update).build()];
                    // A corrected address moves its route with the lead, in one transaction.
                    let before = lead_item.and_then(routing::key_of_item);
                    let after =
                        routing::RouteKey::of(after_email.as_deref(), after_phone.as_deref());
                    let derived = after.as_ref().map(|k| self.keys.lead_id(t, &k.bidx));
                    let (moves, claims) = routing::move_writes(
                        leads,
                        t,
                        lead,
                        before.as_ref(),
                        after.as_ref(),
                        derived.as_ref(),
                        routing::Former::Drop,
                        OffsetDateTime::parse(&at, &Rfc3339).context("job time")?,
                    )?;
                    let offset = writes.len();
                    writes.extend(moves);
                    match client
                        .transact_write_items()
                        .set_transact_items(Some(writes))
                        .send()
                        .await
                    {
                        Ok(_) => {}
                        Err(e) => {
                            let e = e.into_service_error();
                            if let TransactWriteItemsError::TransactionCanceledException(tc) = &e {
                                let taken =
                                    tc.cancellation_reasons().iter().enumerate().any(|(i, r)| {
                                        r.code() == Some("ConditionalCheckFailed")
                                            && i >= offset + claims.start
                                            && i < offset + claims.end
                                    });
                                if taken {
                                    anyhow::bail!(
                                        "the corrected address is another lead's in this tenant: the controller merges or deletes one of them first"
                                    );
                                }
                            }
                            return Err(anyhow::Error::new(e).context("rectification transaction"));
                        }
                    }
                    r.inc("lead", 1);
                }
                // The same answers in the subject's own submissions' stored fields (and, for a
                // corrected email, the index that says whose they are).
                for (it, rec) in items.iter().zip(records) {
                    if rec.kind != "submission" || !is_subjects(&subject.bidx, owner, it) {
                        continue;
                    }
                    // A subject known by phone whose phone is corrected: their phone-only
                    // submissions follow the new phone, so the next request by it finds them.
                    if let (true, Some(b)) = (subject.by_phone, &new_phone_bidx) {
                        if !it.contains_key("from_email_bidx") && it.contains_key("from_phone_bidx")
                        {
                            client
                                .update_item()
                                .table_name(leads)
                                .set_key(item_key(it))
                                .update_expression("SET from_phone_bidx = :b")
                                .expression_attribute_values(":b", s(b))
                                .send()
                                .await
                                .context("UpdateItem submission phone")?;
                        }
                    }
                    if let Some(b) = new_email_bidx.as_ref().filter(|_| !subject.by_phone) {
                        if it.contains_key("from_email_bidx") {
                            client
                                .update_item()
                                .table_name(leads)
                                .set_key(item_key(it))
                                .update_expression("SET from_email_bidx = :b")
                                .expression_attribute_values(":b", s(b))
                                .send()
                                .await
                                .context("UpdateItem submission address")?;
                        }
                    }
                    let Some(AttributeValue::M(fields)) = it.get("fields") else {
                        continue;
                    };
                    for (field, value) in changes {
                        if fields
                            .get(field)
                            .is_some_and(|v| v.as_s().ok() != Some(value))
                        {
                            client
                                .update_item()
                                .table_name(leads)
                                .set_key(item_key(it))
                                .update_expression("SET #f.#k = :v")
                                .expression_attribute_names("#f", "fields")
                                .expression_attribute_names("#k", field)
                                .expression_attribute_values(":v", s(value))
                                .send()
                                .await
                                .context("UpdateItem submission answer")?;
                            r.inc("submission_answer", 1);
                        }
                    }
                }
                let fields: Vec<String> = changes.keys().cloned().collect();
                self.audit(job, t, lead, "lead.rectified", &fields, &at)
                    .await?;
            }
            JobKind::Restriction | JobKind::LiftRestriction => {
                let lk = keys::lead(t, lead);
                let u = client
                    .update_item()
                    .table_name(leads)
                    .key(PK, s(&lk.pk))
                    .key(SK, s(&lk.sk))
                    .condition_expression("attribute_exists(pk)");
                // Two holds can restrict a lead: this request's (`restricted_by_request`) and
                // objections awaiting the tenant (`restricted_for`); it is unrestricted only
                // when neither holds it.
                let action = if job.kind == JobKind::Restriction {
                    u.update_expression(
                        "SET restricted = :t, restricted_at = if_not_exists(restricted_at, :at), \
                         restricted_by_request = :t",
                    )
                    .expression_attribute_values(":t", AttributeValue::Bool(true))
                    .expression_attribute_values(":at", s(&at))
                    .send()
                    .await
                    .context("UpdateItem restriction")?;
                    shared_leads::actions::LEAD_RESTRICTED
                } else {
                    u.update_expression("REMOVE restricted_by_request")
                        .send()
                        .await
                        .context("UpdateItem restriction hold")?;
                    let lifted = client
                        .update_item()
                        .table_name(leads)
                        .key(PK, s(&lk.pk))
                        .key(SK, s(&lk.sk))
                        .update_expression("REMOVE restricted, restricted_at")
                        .condition_expression(
                            "attribute_exists(pk) AND attribute_not_exists(restricted_for)",
                        )
                        .send()
                        .await;
                    // Refused: an objection still holds the lead until the tenant decides.
                    shared_core::dynamo::unless_condition_failed(
                        lifted,
                        "UpdateItem lift restriction",
                    )?;
                    shared_leads::actions::LEAD_UNRESTRICTED
                };
                r.inc("lead", 1);
                self.audit(job, t, lead, action, &["restricted".to_string()], &at)
                    .await?;
            }
            JobKind::Objection { marketing_only } => {
                // An objection stops marketing (its consents withdrawn, the lead opted out); an
                // objection to legitimate-interest processing leaves consent-based processing
                // to consent (the subject withdraws it separately) and is recorded
                // (`objection_at`). An approved one is carried out as an erasure
                // (functions/dsar, `approve`); the lead is restricted from verification.
                let only = Some("marketing");
                self.withdraw(
                    job,
                    subject,
                    t,
                    lead,
                    items,
                    records,
                    only,
                    !marketing_only,
                    &at,
                    r,
                )
                .await?;
            }
            JobKind::ConsentWithdrawal => {
                self.withdraw(job, subject, t, lead, items, records, None, false, &at, r)
                    .await?;
            }
        }
        Ok(())
    }
}

/// A submission's consent records after a withdrawal: each granted record that `only_keys_with`
/// selects (every one when `None`) keeps what was given and gains the withdrawal's time and
/// source; records already withdrawn keep their first withdrawal. Returns the list and how many
/// records changed (0: nothing to write).
pub(crate) fn withdrawn_consents(
    consents: &[AttributeValue],
    only_keys_with: Option<&str>,
    at: &str,
    source: &str,
) -> (Vec<AttributeValue>, u64) {
    let mut changed = 0u64;
    let updated = consents
        .iter()
        .map(|c| {
            let Ok(m) = c.as_m() else { return c.clone() };
            let granted = matches!(m.get("granted"), Some(AttributeValue::Bool(true)));
            let key = m.get("key").and_then(|v| v.as_s().ok()).map_or("", |v| v);
            let applies = only_keys_with.is_none_or(|w| key.contains(w));
            if granted && applies && !m.contains_key("withdrawn_at") {
                let mut m = m.clone();
                m.insert("withdrawn_at".into(), s(at));
                m.insert("withdrawal_source".into(), s(source));
                changed += 1;
                AttributeValue::M(m)
            } else {
                c.clone()
            }
        })
        .collect();
    (updated, changed)
}

impl<P: RequestProgress, D: JobDispatcher, M: Mailer> Worker<P, D, M> {
    /// Consent withdrawal and objection: the consent records of the subject's submissions keep
    /// what was given and gain the withdrawal's time and source (processing before stays
    /// lawful); the lead is opted out of marketing at once.
    #[allow(clippy::too_many_arguments)]
    async fn withdraw(
        &self,
        job: &DsarJob,
        subject: &Subject,
        t: &TenantId,
        lead: &LeadId,
        items: &[Item],
        records: &[SubjectRecord],
        only_keys_with: Option<&str>,
        objection_to_all: bool,
        at: &str,
        r: &mut StepResult,
    ) -> anyhow::Result<()> {
        let client = self.store.client();
        let leads = &self.store.tables().leads;
        let source = format!(
            "data-subject request {} ({})",
            job.request_id,
            kind_name(&job.kind)
        );
        let owner = lead_owner(items.iter().find(|it| str_attr(it, SK) == Some("LEAD")));
        for (it, rec) in items.iter().zip(records) {
            // The subject's own consents: a lead may hold another address's submissions.
            if rec.kind != "submission" || !is_subjects(&subject.bidx, owner, it) {
                continue;
            }
            let Some(AttributeValue::L(consents)) = it.get("consents") else {
                continue;
            };
            let (updated, changed) = withdrawn_consents(consents, only_keys_with, at, &source);
            if changed > 0 {
                client
                    .update_item()
                    .table_name(leads)
                    .set_key(item_key(it))
                    .update_expression("SET consents = :c")
                    .expression_attribute_values(":c", AttributeValue::L(updated))
                    .send()
                    .await
                    .context("UpdateItem consents")?;
                r.inc("consent_record", changed);
            }
        }
        if owner != Some(subject.bidx.as_str()) {
            // The lead is someone else's now: its opt-out is not this subject's to set.
            return Ok(());
        }
        let lk = keys::lead(t, lead);
        let mut expr = "SET marketing_opt_out = :t, marketing_opt_out_at = if_not_exists(marketing_opt_out_at, :at), marketing_opt_out_source = if_not_exists(marketing_opt_out_source, :src)".to_string();
        if objection_to_all {
            expr.push_str(", objection_at = if_not_exists(objection_at, :at)");
        }
        client
            .update_item()
            .table_name(leads)
            .key(PK, s(&lk.pk))
            .key(SK, s(&lk.sk))
            .update_expression(expr)
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":at", s(at))
            .expression_attribute_values(":src", s(&source))
            .return_values(ReturnValue::None)
            .send()
            .await
            .context("UpdateItem opt-out")?;
        r.inc("lead_opted_out", 1);
        let action = if job.kind == JobKind::ConsentWithdrawal {
            "lead.consent_withdrawn"
        } else {
            "lead.objection"
        };
        self.audit(
            job,
            t,
            lead,
            action,
            &["consents".to_string(), "marketing_opt_out".to_string()],
            at,
        )
        .await
    }

    /// The lead's audit trail, in the workspace's item shape; the platform acted (no actor).
    /// Keyed by the job's start time and request id, so a repeated step rewrites one entry.
    async fn audit(
        &self,
        job: &DsarJob,
        t: &TenantId,
        lead: &LeadId,
        action: &str,
        fields: &[String],
        at: &str,
    ) -> anyhow::Result<()> {
        let entry_id = format!("dsar-{}", job.request_id);
        let k = keys::lead_audit(t, lead, at, &entry_id);
        self.store
            .client()
            .put_item()
            .table_name(&self.store.tables().leads)
            .item(PK, s(&k.pk))
            .item(SK, s(&k.sk))
            .item("entry_id", s(&entry_id))
            .item("action", s(action))
            .item("fields", AttributeValue::L(fields.iter().map(s).collect()))
            .item("at", s(at))
            .send()
            .await
            .context("PutItem audit")?;
        Ok(())
    }
}

/// Every item through the inventory; the first undeclared attribute fails the step.
/// Writes `records` to the access document `doc` (when the request has one), each counted by
/// its kind.
fn export_records(
    sinks: &mut [Option<Sink>],
    doc: Option<usize>,
    records: &[SubjectRecord],
    r: &mut StepResult,
) -> anyhow::Result<()> {
    if let Some(sink) = doc.and_then(|d| sinks.get_mut(d).and_then(Option::as_mut)) {
        for rec in records {
            sink.json_record(&rec.access_json())?;
            r.inc(rec.kind, 1);
        }
    }
    Ok(())
}

pub(super) fn classify_all(table: Table, items: &[Item]) -> anyhow::Result<Vec<SubjectRecord>> {
    items
        .iter()
        .map(|it| classify(table, it).map_err(anyhow::Error::new))
        .collect()
}
