//! Form and tenant records in the tenants table.

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::ports::FormAdmin;
use shared_core::domain::{FormId, FormRecord, SpamSettings, TenantId, TenantRecord, TenantStatus};
use shared_core::dynamo::attrs::{get_bool, get_n_opt, get_s, item, n, put, s, Item};
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
