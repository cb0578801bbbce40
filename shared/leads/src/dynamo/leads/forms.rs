//! Forms in the tenants table, as the forms API manages them. The item is the one lead intake
//! reads ([`crate::dynamo::forms`] writes its common part), plus what only the API needs: the
//! special-category markers inside `fields`, the legal basis, the consent history, timestamps
//! and a version.
//!
//! Deleting a form retires it (`deleted_at`): intake refuses it (it is disabled), the API no
//! longer shows it, and the item stays so the consent texts past submissions were given under
//! remain as proof (they are erased with the tenant's workspace).

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;

use super::items::{start_key_item, start_key_of};
use super::{LeadsStore, GSI1};
use crate::dynamo::forms::{form_from_item, form_to_item};
use crate::forms::{ConsentVersion, FormDefinition, FormField};
use crate::{Page, StartKey};
use shared_core::domain::{FormId, TenantId};
use shared_core::dynamo::attrs::{get_n_opt, get_s, key_item, n, put, s, Item};
use shared_core::keys;

fn form_item(f: &FormDefinition) -> anyhow::Result<Item> {
    let mut it = form_to_item(&f.record())?;
    put(&mut it, "fields", s(serde_json::to_string(&f.fields)?));
    put(
        &mut it,
        "consent_history",
        s(serde_json::to_string(&f.consent_history)?),
    );
    if let Some(b) = &f.special_category_basis {
        put(&mut it, "special_category_basis", s(b));
    }
    if let Some(at) = &f.created_at {
        put(&mut it, "created_at", s(at));
    }
    if let Some(at) = &f.updated_at {
        put(&mut it, "updated_at", s(at));
    }
    put(&mut it, "version", n(f.version));
    Ok(it)
}

fn form_from(it: &Item) -> anyhow::Result<FormDefinition> {
    let r = form_from_item(it)?;
    let fields: Vec<FormField> =
        serde_json::from_str(get_s(it, "fields")?).context("form fields")?;
    let consent_history: Vec<ConsentVersion> = match it.get("consent_history") {
        Some(v) => serde_json::from_str(v.as_s().map_err(|_| anyhow::anyhow!("consent_history"))?)
            .context("consent history")?,
        None => vec![],
    };
    let opt = |name: &str| it.get(name).and_then(|v| v.as_s().ok()).cloned();
    Ok(FormDefinition {
        form_id: r.form_id,
        tenant_id: r.tenant_id,
        name: r.name,
        enabled: r.enabled,
        fields,
        consents: r.consents,
        consent_history,
        allowed_origins: r.allowed_origins,
        redirect_url: r.redirect_url,
        honeypot_field: r.honeypot_field,
        special_category_basis: opt("special_category_basis"),
        daily_cap: r.daily_cap,
        spam: r.spam,
        created_at: opt("created_at"),
        updated_at: opt("updated_at"),
        version: get_n_opt(it, "version")?.unwrap_or(0),
    })
}

fn is_retired(it: &Item) -> bool {
    it.contains_key("deleted_at")
}

impl LeadsStore {
    /// Stores a new form (its id is new: the put is conditioned on it).
    pub async fn create_form(&self, f: &FormDefinition) -> anyhow::Result<()> {
        // The id is new: an item found under it is this put, landed by an earlier attempt whose
        // answer was lost.
        if !shared_core::dynamo::put_new_or_own(
            &self.client,
            &self.tables.tenants,
            form_item(f)?,
            "PutItem form",
        )
        .await?
        {
            anyhow::bail!("a form {} exists already", f.form_id);
        }
        Ok(())
    }

    /// A form of this tenant (`None` for another tenant's, a retired or an unknown one).
    pub async fn form(
        &self,
        tenant: &TenantId,
        form: &FormId,
    ) -> anyhow::Result<Option<FormDefinition>> {
        let Some(it) = self.get(&self.tables.tenants, &keys::form(form)).await? else {
            return Ok(None);
        };
        if it
            .get("tenant_id")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            != Some(tenant.as_str())
            || is_retired(&it)
        {
            return Ok(None);
        }
        form_from(&it).map(Some)
    }

    /// A page of the tenant's forms, newest first.
    pub async fn forms(
        &self,
        tenant: &TenantId,
        limit: usize,
        start: Option<StartKey>,
    ) -> anyhow::Result<Page<FormDefinition>> {
        let out = self
            .client
            .query()
            .table_name(&self.tables.tenants)
            .index_name(GSI1)
            .key_condition_expression("gsi1pk = :p AND begins_with(gsi1sk, :f)")
            .filter_expression("attribute_not_exists(deleted_at)")
            .expression_attribute_values(":p", s(keys::forms_of_tenant(tenant)))
            .expression_attribute_values(":f", s(keys::FORM_PREFIX))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 1000) as i32)
            .set_exclusive_start_key(start.map(start_key_item))
            .send()
            .await
            .context("Query forms")?;
        Ok(Page {
            items: out
                .items
                .unwrap_or_default()
                .iter()
                .map(form_from)
                .collect::<anyhow::Result<_>>()?,
            next: out
                .last_evaluated_key
                .filter(|k| !k.is_empty())
                .map(start_key_of),
        })
    }

    /// Replaces a form edited from version `previous` (`f.version` is the next one). `Ok(false)`
    /// when it changed meanwhile, was retired, or is not this tenant's.
    pub async fn replace_form(&self, f: &FormDefinition, previous: i64) -> anyhow::Result<bool> {
        let version = if previous == 0 {
            "(attribute_not_exists(#v) OR #v = :old)"
        } else {
            "#v = :old"
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.tenants)
            .set_item(Some(form_item(f)?))
            .condition_expression(format!(
                "attribute_exists(pk) AND tenant_id = :t AND attribute_not_exists(deleted_at) AND {version}"
            ))
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":t", s(f.tenant_id.as_str()))
            .expression_attribute_values(":old", n(previous))
            .send()
            .await;
        Ok(shared_core::dynamo::unless_condition_failed(result, "PutItem form")?.is_some())
    }

    /// Retires a form of this tenant: disabled for intake, gone from the API, its consent texts
    /// kept. `Ok(false)` when there is no such form.
    pub async fn retire_form(
        &self,
        tenant: &TenantId,
        form: &FormId,
        now: time::OffsetDateTime,
    ) -> anyhow::Result<bool> {
        let at = shared_core::clock::rfc3339(now);
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.tenants)
            .set_key(Some(key_item(&keys::form(form))))
            .update_expression(
                "SET deleted_at = :now, updated_at = :now, #e = :false, #v = if_not_exists(#v, :zero) + :one",
            )
            .condition_expression(
                "attribute_exists(pk) AND tenant_id = :t AND attribute_not_exists(deleted_at)",
            )
            .expression_attribute_names("#v", "version")
            // Placeholders for every name: DynamoDB reserves many words.
            .expression_attribute_names("#e", "enabled")
            .expression_attribute_values(":now", s(at))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":t", s(tenant.as_str()))
            .send()
            .await;
        Ok(
            shared_core::dynamo::unless_condition_failed(result, "UpdateItem retire form")?
                .is_some(),
        )
    }
}
