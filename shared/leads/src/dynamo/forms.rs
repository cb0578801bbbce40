//! Form and tenant records in the tenants table.

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::ports::FormAdmin;
use shared_core::domain::{
    FormId, FormRecord, SpamSettings, TenantId, TenantRecord, TenantSpamLists, TenantStatus,
};
use shared_core::dynamo::attrs::{get_bool, get_n_opt, get_s, item, key_item, n, put, s, Item};
use shared_core::keys;

pub(crate) fn form_to_item(f: &FormRecord) -> anyhow::Result<Item> {
    let mut it = item(&keys::form(&f.form_id));
    let g = keys::form_by_tenant(&f.tenant_id, &f.form_id);
    put(&mut it, "gsi1pk", s(g.pk));
    put(&mut it, "gsi1sk", s(g.sk));
    put(&mut it, "tenant_id", s(f.tenant_id.as_str()));
    put(&mut it, "form_id", s(f.form_id.as_str()));
    put(&mut it, "name", s(&f.name));
    put(&mut it, "enabled", AttributeValue::Bool(f.enabled));
    put(&mut it, "fields", s(serde_json::to_string(&f.fields)?));
    put(&mut it, "consents", s(serde_json::to_string(&f.consents)?));
    put(
        &mut it,
        "allowed_origins",
        AttributeValue::L(f.allowed_origins.iter().map(s).collect()),
    );
    put(&mut it, "redirect_url", s(&f.redirect_url));
    put(&mut it, "honeypot_field", s(&f.honeypot_field));
    if let Some(cap) = f.daily_cap {
        put(&mut it, "daily_cap", n(cap));
    }
    // Only a form whose spam defence differs from the defaults carries it (a form written
    // before it existed reads as the defaults).
    if f.spam != SpamSettings::default() {
        put(&mut it, "spam", s(serde_json::to_string(&f.spam)?));
    }
    Ok(it)
}

pub(crate) fn form_from_item(it: &Item) -> anyhow::Result<FormRecord> {
    Ok(FormRecord {
        form_id: FormId::parse(get_s(it, "form_id")?)?,
        tenant_id: TenantId::parse(get_s(it, "tenant_id")?)?,
        name: get_s(it, "name")?.to_string(),
        enabled: get_bool(it, "enabled")?,
        fields: serde_json::from_str(get_s(it, "fields")?).context("form fields")?,
        consents: serde_json::from_str(get_s(it, "consents")?).context("form consents")?,
        allowed_origins: it
            .get("allowed_origins")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
            .unwrap_or_default(),
        redirect_url: get_s(it, "redirect_url")?.to_string(),
        honeypot_field: get_s(it, "honeypot_field")?.to_string(),
        daily_cap: get_n_opt(it, "daily_cap")?
            .map(u32::try_from)
            .transpose()
            .context("form daily cap")?,
        spam: match it.get("spam").and_then(|v| v.as_s().ok()) {
            Some(json) => serde_json::from_str(json).context("form spam settings")?,
            None => SpamSettings::default(),
        },
    })
}

pub(crate) fn tenant_to_item(t: &TenantRecord) -> anyhow::Result<Item> {
    let mut it = item(&keys::tenant(&t.tenant_id));
    put(&mut it, "tenant_id", s(t.tenant_id.as_str()));
    put(
        &mut it,
        "status",
        s(serde_json::to_value(t.status)?
            .as_str()
            .unwrap_or("active")
            .to_string()),
    );
    Ok(it)
}

pub(crate) fn tenant_from_item(it: &Item) -> anyhow::Result<TenantRecord> {
    let status: TenantStatus =
        serde_json::from_value(serde_json::Value::String(get_s(it, "status")?.to_string()))
            .context("tenant status")?;
    Ok(TenantRecord {
        tenant_id: TenantId::parse(get_s(it, "tenant_id")?)?,
        status,
    })
}

/// The tenant record's attribute holding the tenant's blocklists (JSON), absent while empty.
pub(crate) const TENANT_SPAM_ATTR: &str = "spam_lists";

/// The tenant's blocklists on its record (none: empty lists).
pub(crate) fn tenant_spam_from_item(it: &Item) -> anyhow::Result<TenantSpamLists> {
    match it.get(TENANT_SPAM_ATTR).and_then(|v| v.as_s().ok()) {
        Some(json) => serde_json::from_str(json).context("tenant spam lists"),
        None => Ok(TenantSpamLists::default()),
    }
}

/// Reads and replaces a tenant's blocklists on its record (`TENANT#<t>` / `TENANT`): one
/// attribute, updated in place, so the rest of the record (owned by auth) is never rewritten.
pub async fn tenant_spam_lists(
    client: &Client,
    tenants_table: &str,
    tenant: &TenantId,
) -> anyhow::Result<TenantSpamLists> {
    let out = client
        .get_item()
        .table_name(tenants_table)
        .set_key(Some(key_item(&keys::tenant(tenant))))
        .projection_expression("#l")
        .expression_attribute_names("#l", TENANT_SPAM_ATTR)
        .consistent_read(true)
        .send()
        .await
        .context("GetItem tenant spam lists")?;
    out.item
        .as_ref()
        .map(tenant_spam_from_item)
        .transpose()
        .map(Option::unwrap_or_default)
}

/// Replaces the tenant's blocklists (empty lists remove the attribute). `false`: no such tenant
/// record. Idempotent: a retry sets the same value.
pub async fn put_tenant_spam_lists(
    client: &Client,
    tenants_table: &str,
    tenant: &TenantId,
    lists: &TenantSpamLists,
    now: time::OffsetDateTime,
) -> anyhow::Result<bool> {
    let mut u = client
        .update_item()
        .table_name(tenants_table)
        .set_key(Some(key_item(&keys::tenant(tenant))))
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_names("#l", TENANT_SPAM_ATTR)
        .expression_attribute_names("#u", "spam_lists_updated_at")
        .expression_attribute_values(":now", shared_core::dynamo::attrs::timestamp(now));
    u = if *lists == TenantSpamLists::default() {
        u.update_expression("SET #u = :now REMOVE #l")
    } else {
        u.update_expression("SET #l = :l, #u = :now")
            .expression_attribute_values(":l", s(serde_json::to_string(lists)?))
    };
    let r = u.send().await;
    Ok(shared_core::dynamo::unless_condition_failed(r, "UpdateItem tenant spam lists")?.is_some())
}

#[derive(Debug, Clone)]
pub struct DynamoFormAdmin {
    client: Client,
    tenants_table: String,
}

impl DynamoFormAdmin {
    pub fn new(client: Client, tenants_table: impl Into<String>) -> Self {
        Self {
            client,
            tenants_table: tenants_table.into(),
        }
    }
}

impl FormAdmin for DynamoFormAdmin {
    async fn put_tenant(&self, t: &TenantRecord) -> anyhow::Result<()> {
        self.client
            .put_item()
            .table_name(&self.tenants_table)
            .set_item(Some(tenant_to_item(t)?))
            .send()
            .await
            .context("put tenant")?;
        Ok(())
    }

    async fn put_form(&self, f: &FormRecord) -> anyhow::Result<()> {
        self.client
            .put_item()
            .table_name(&self.tenants_table)
            .set_item(Some(form_to_item(f)?))
            .send()
            .await
            .context("put form")?;
        Ok(())
    }
}
