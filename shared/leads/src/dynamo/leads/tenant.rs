//! What the workspace reads of the tenant's account data (the caller's session, a team
//! member) and the tenant's pipeline.

use std::collections::HashMap;

use anyhow::{anyhow, Context};
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::{LeadsStore, BY_STAGE};
use crate::{Pipeline, Stage};
use shared_core::domain::{TenantId, UserId};
use shared_core::dynamo::attrs::{get_s, item, key_item, put, s, timestamp};
use shared_core::keys::{self, PK};

impl LeadsStore {
    // ------------------------------------------------------------ account data (read only)

    /// Whether the caller may write: a live session and a token under the user's current
    /// credential epoch ([`shared_accounts::dynamo::require_live_for_write`]).
    pub async fn require_live_for_write(
        &self,
        caller: &shared_accounts::auth::caller::Caller,
        now: OffsetDateTime,
    ) -> Result<(), shared_core::error::AppError> {
        shared_accounts::dynamo::require_live_for_write(
            &self.client,
            &self.tables.tenants,
            caller,
            now,
        )
        .await
    }

    /// API keys, read from the tenants table by the caller extractor.
    pub fn api_keys(&self) -> shared_accounts::api_keys::DynamoApiKeys {
        shared_accounts::api_keys::DynamoApiKeys::new(
            self.client.clone(),
            self.tables.tenants.clone(),
        )
    }

    /// Whether `user` is a member of `tenant` (a lead's owner must be).
    pub async fn is_member(&self, tenant: &TenantId, user: &UserId) -> anyhow::Result<bool> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.tenants)
            .set_key(Some(key_item(&keys::user(tenant, user))))
            .projection_expression("#pk")
            .expression_attribute_names("#pk", PK)
            .consistent_read(true)
            .send()
            .await
            .context("GetItem member")?;
        Ok(out.item.is_some())
    }

    // ------------------------------------------------------------ pipeline

    /// The tenant's pipeline, or the default one when it never set its own.
    pub async fn pipeline(&self, tenant: &TenantId) -> anyhow::Result<Pipeline> {
        let Some(it) = self
            .get(&self.tables.tenants, &keys::pipeline(tenant))
            .await?
        else {
            return Ok(Pipeline::default_stages());
        };
        let stages = it
            .get("stages")
            .and_then(|v| v.as_l().ok())
            .ok_or_else(|| anyhow!("pipeline without stages"))?
            .iter()
            .map(|v| {
                let m = v.as_m().map_err(|_| anyhow!("stage is not a map"))?;
                Ok(Stage {
                    id: get_s(m, "id")?.to_string(),
                    name: get_s(m, "name")?.to_string(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Pipeline::from_stored(stages))
    }

    pub async fn put_pipeline(
        &self,
        tenant: &TenantId,
        pipeline: &Pipeline,
        now: OffsetDateTime,
    ) -> anyhow::Result<()> {
        let mut it = item(&keys::pipeline(tenant));
        let stages = pipeline
            .stages()
            .iter()
            .map(|st| {
                AttributeValue::M(HashMap::from([
                    ("id".to_string(), s(&st.id)),
                    ("name".to_string(), s(&st.name)),
                ]))
            })
            .collect();
        put(&mut it, "stages", AttributeValue::L(stages));
        put(&mut it, "updated_at", timestamp(now));
        self.client
            .put_item()
            .table_name(&self.tables.tenants)
            .set_item(Some(it))
            .send()
            .await
            .context("PutItem pipeline")?;
        Ok(())
    }

    /// Whether any lead of the tenant is in `stage` (one Query reading at most one key).
    pub async fn stage_in_use(&self, tenant: &TenantId, stage: &str) -> anyhow::Result<bool> {
        let Some(partition) = keys::stage_partition(tenant, stage) else {
            // The first stage has no `by_stage` entries, and a pipeline always keeps it
            // (`Pipeline::parse`), so this is never asked; answered all the same, from
            // `by_tenant`, page by page until a lead in it is found.
            let page = crate::LeadFilter {
                stage: Some(stage.to_string()),
                ..Default::default()
            };
            let mut start = None;
            loop {
                let found = self.list_leads(tenant, &page, 1, start).await?;
                if !found.items.is_empty() {
                    return Ok(true);
                }
                match found.next {
                    Some(next) => start = Some(next),
                    None => return Ok(false),
                }
            }
        };
        let out = self
            .client
            .query()
            .table_name(&self.tables.leads)
            .index_name(BY_STAGE)
            .key_condition_expression("stage_pk = :p")
            .expression_attribute_values(":p", s(partition))
            .projection_expression("#pk")
            .expression_attribute_names("#pk", PK)
            .limit(1)
            .send()
            .await
            .context("Query stage in use")?;
        Ok(out.count > 0)
    }
}
