//! The account-scope steps (the platform's own data: the user, its login index, sessions,
//! security events, and the billing records of the tenant it owns).

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;

use super::export::{DocKind, Sink};
use super::export_steps::{provided, write_provided};
use super::facts::{BILLING_KEPT_BASIS, LEGAL_HOLD_BASIS};
use super::job::{DsarJob, JobDispatcher, JobKind, KeptRecord, RequestProgress};
use super::records::{classify, SubjectRecord};
use super::steps::classify_all;
use super::subjects::{is_true, item_key, str_attr};
use super::worker::{StepResult, Subject, Worker};
use crate::inventory::Table;
use shared_core::clock::rfc3339;
use shared_core::domain::{Phone, TenantId, UserId};
use shared_core::dynamo::{batch_delete, s, Item};
use shared_core::keys::{self, PK, SK};
use shared_mail::Mailer;

/// Values an access answer withholds (Art 15(4): the rights of others, here the security of
/// the account): secrets, not information about the person.
const WITHHELD: &[&str] = &[
    "password_hash",
    "totp_secret",
    "totp_pending_secret",
    "recovery_hashes",
    "refresh_hash",
    "previous_hashes",
];

impl<P: RequestProgress, D: JobDispatcher, M: Mailer> Worker<P, D, M> {
    pub(super) async fn user_step(
        &self,
        job: &DsarJob,
        subject: &Subject,
        t: &TenantId,
        u: &UserId,
        sink: Option<&mut Sink>,
        r: &mut StepResult,
    ) -> anyhow::Result<()> {
        let tables = self.store.tables().clone();
        let client = self.store.client();
        let user_key = keys::user(t, u);
        let Some(user) = self.store.get(&tables.tenants, &user_key).await? else {
            return Ok(());
        };
        let user_rec = classify(Table::Tenants, &user)?;
        let at = subject.at.clone();
        match &job.kind {
            JobKind::Access => {
                let sink = sink.context("access without a document")?;
                let mut items: Vec<(Table, Item)> = vec![(Table::Tenants, user.clone())];
                if let Some(l) = self
                    .store
                    .get(&tables.tenants, &keys::login(&subject.bidx))
                    .await?
                {
                    items.push((Table::Tenants, l));
                }
                if let Some(tr) = self.store.get(&tables.tenants, &keys::tenant(t)).await? {
                    if str_attr(&tr, "owner_user_id") == Some(u.as_str()) {
                        items.push((Table::Tenants, tr));
                    }
                }
                for it in self.store.sessions(u).await? {
                    items.push((Table::Tenants, it));
                }
                for it in self.store.security_events(t, u).await? {
                    items.push((Table::SecurityLog, it));
                }
                for (table, it) in &items {
                    let rec = classify(*table, it)?;
                    let mut v = rec.access_json();
                    for cat in v["categories"]
                        .as_object_mut()
                        .into_iter()
                        .flat_map(|m| m.values_mut())
                    {
                        for name in WITHHELD {
                            if let Some(a) = cat.get_mut(*name) {
                                a["value"] = json!("withheld: a security secret, not information about you (Art 15(4))");
                            }
                        }
                    }
                    if let Some(rec_obj) = v["record"].as_object_mut() {
                        for name in WITHHELD {
                            if rec_obj.contains_key(*name) {
                                rec_obj.insert((*name).to_string(), json!("withheld (Art 15(4))"));
                            }
                        }
                    }
                    sink.json_record(&v)?;
                    r.inc(rec.kind, 1);
                }
            }
            JobKind::Portability => {
                let sink = sink.context("portability without a document")?;
                if let Some((record, id, at, fields)) = provided(&user_rec) {
                    write_provided(sink, record, &id, &at, &fields)?;
                    if sink.state.doc != DocKind::ProvidedCsv {
                        r.inc(record, 1);
                    }
                }
            }
            JobKind::Erasure { .. } => {
                if is_true(&user, "legal_hold") {
                    r.kept.push(KeptRecord {
                        what: "account under legal hold".into(),
                        count: 1,
                        legal_basis: LEGAL_HOLD_BASIS.into(),
                        retain_until: None,
                    });
                    return Ok(());
                }
                let sessions = self.store.sessions(u).await?;
                classify_all(Table::Tenants, &sessions)?;
                let n = batch_delete(
                    client,
                    &tables.tenants,
                    sessions.iter().filter_map(item_key).collect(),
                )
                .await?;
                r.inc("session", n);
                let events = self.store.security_events(t, u).await?;
                classify_all(Table::SecurityLog, &events)?;
                let n = batch_delete(
                    client,
                    &tables.security_log,
                    events.iter().filter_map(item_key).collect(),
                )
                .await?;
                r.inc("security_event", n);
                // The user before the login index: a run cut off in between still finds the
                // account through the login index and finishes.
                batch_delete(
                    client,
                    &tables.tenants,
                    vec![super::subjects::key_map(&user_key)],
                )
                .await?;
                r.inc("user", 1);
                let login = keys::login(&subject.bidx);
                if self.store.get(&tables.tenants, &login).await?.is_some() {
                    batch_delete(
                        client,
                        &tables.tenants,
                        vec![super::subjects::key_map(&login)],
                    )
                    .await?;
                    r.inc("login_index", 1);
                }
                if let Some(tr) = self.store.get(&tables.tenants, &keys::tenant(t)).await? {
                    if str_attr(&tr, "owner_user_id") == Some(u.as_str()) {
                        r.kept.push(KeptRecord {
                            what: "the workspace record of the tenant you own (business name)".into(),
                            count: 1,
                            legal_basis: "the tenant's contract (Art 6(1)(b)); closing the account erases the workspace after the grace period".into(),
                            retain_until: None,
                        });
                    }
                }
            }
            JobKind::Rectification { changes } => {
                let mut u_req = client
                    .update_item()
                    .table_name(&tables.tenants)
                    .key(PK, s(&user_key.pk))
                    .key(SK, s(&user_key.sk))
                    .condition_expression("attribute_exists(pk)");
                let mut sets = Vec::new();
                for (field, value) in changes {
                    let value = match field.as_str() {
                        "phone" => Phone::parse(value)
                            .map_err(|e| anyhow::anyhow!(e))?
                            .as_str()
                            .to_string(),
                        _ => shared_leads::contact_text(value).map_err(|e| anyhow::anyhow!(e))?,
                    };
                    sets.push(format!("#{field} = :{field}"));
                    u_req = u_req
                        .expression_attribute_names(format!("#{field}"), field)
                        .expression_attribute_values(format!(":{field}"), s(value));
                }
                u_req
                    .update_expression(format!("SET {}", sets.join(", ")))
                    .send()
                    .await
                    .context("UpdateItem user rectification")?;
                r.inc("user", 1);
            }
            JobKind::Restriction | JobKind::LiftRestriction => {
                let req = client
                    .update_item()
                    .table_name(&tables.tenants)
                    .key(PK, s(&user_key.pk))
                    .key(SK, s(&user_key.sk))
                    .condition_expression("attribute_exists(pk)");
                let req = if job.kind == JobKind::Restriction {
                    req.update_expression(
                        "SET restricted = :t, restricted_at = if_not_exists(restricted_at, :at)",
                    )
                    .expression_attribute_values(":t", AttributeValue::Bool(true))
                    .expression_attribute_values(":at", s(&at))
                } else {
                    req.update_expression("REMOVE restricted, restricted_at")
                };
                req.send().await.context("UpdateItem user restriction")?;
                r.inc("user", 1);
            }
            // The platform holds no marketing consent of its account users and sends them
            // service and transactional email only; an objection or a withdrawal is recorded on
            // the user as the one-click link records it (`marketing_opt_out`, its time and
            // source: any product or marketing email must check it), and an objection to
            // legitimate-interest processing with its time (`objection_at`).
            JobKind::Objection { .. } | JobKind::ConsentWithdrawal => {
                let mut expr = "SET marketing_opt_out = :t, \
                     marketing_opt_out_at = if_not_exists(marketing_opt_out_at, :at), \
                     marketing_opt_out_source = if_not_exists(marketing_opt_out_source, :src)"
                    .to_string();
                if job.kind
                    == (JobKind::Objection {
                        marketing_only: false,
                    })
                {
                    expr.push_str(", objection_at = if_not_exists(objection_at, :at)");
                }
                client
                    .update_item()
                    .table_name(&tables.tenants)
                    .key(PK, s(&user_key.pk))
                    .key(SK, s(&user_key.sk))
                    .condition_expression("attribute_exists(pk)")
                    .update_expression(expr)
                    .expression_attribute_values(":t", AttributeValue::Bool(true))
                    .expression_attribute_values(":at", s(&at))
                    .expression_attribute_values(
                        ":src",
                        s(format!(
                            "data-subject request {} ({})",
                            job.request_id,
                            super::worker::kind_name(&job.kind)
                        )),
                    )
                    .send()
                    .await
                    .context("UpdateItem user objection")?;
                r.inc("user_opted_out", 1);
            }
        }
        Ok(())
    }

    /// Billing records of the tenant the erased user was the billing contact of: kept for their
    /// legal period, restricted to storage, named in the answer.
    pub(super) async fn restrict_billing(
        &self,
        items: &[Item],
        records: &[SubjectRecord],
        r: &mut StepResult,
    ) -> anyhow::Result<()> {
        let at = rfc3339(self.clock.now());
        let mut count = 0u64;
        let mut until: Option<String> = None;
        for (it, rec) in items.iter().zip(records) {
            if !matches!(rec.kind, "invoice" | "payment" | "refund") {
                continue;
            }
            self.store
                .client()
                .update_item()
                .table_name(&self.store.tables().billing)
                .set_key(item_key(it))
                .update_expression(
                    "SET restricted = :t, restricted_at = if_not_exists(restricted_at, :at)",
                )
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .expression_attribute_values(":at", s(&at))
                .send()
                .await
                .context("UpdateItem billing restriction")?;
            count += 1;
            if let Some(u) = str_attr(it, "retain_until") {
                if until.as_deref().is_none_or(|cur| u > cur) {
                    until = Some(u.to_string());
                }
            }
        }
        if count > 0 {
            r.inc("billing_record_restricted", count);
            r.kept.push(KeptRecord {
                what: "billing records (invoices, payments, refunds) of the subscription you were the billing contact of".into(),
                count,
                legal_basis: BILLING_KEPT_BASIS.into(),
                retain_until: until,
            });
        }
        Ok(())
    }
}
