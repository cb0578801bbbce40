//! Where API keys are kept: the tenants table, under the tenant's partition
//! (`pk = TENANT#t, sk = APIKEY#<key id>`), so a key is only ever read with the tenant it names.
//! The item holds the key's name, role, creator, times and the SHA-256 of the key, never the key.
//!
//! [`ApiKeyStore`] is what [`crate::auth::caller::authenticate`] needs (the port); the DynamoDB
//! adapter is [`DynamoApiKeys`], which every function that authenticates holds.

use std::collections::HashMap;
use std::future::Future;

use anyhow::{anyhow, Context};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;
use time::OffsetDateTime;

use crate::auth::api_key::{ApiKey, KeyForAuth, PresentedKey, LAST_USED_GRANULARITY_SECS};
use crate::auth::permissions::Role;
use shared_core::domain::{ApiKeyId, TenantId, UserId};
use shared_core::dynamo::attrs::{get_n_opt, get_s, item, key_item, n, put, s, timestamp, Item};
use shared_core::keys::{self, Key};

/// What authenticating with an API key reads and writes.
pub trait ApiKeyStore: Send + Sync {
    /// The key the presented one names, its creator's current role and whether the workspace is
    /// closed: one strongly consistent read (a revocation is seen by the next request).
    fn for_auth(
        &self,
        presented: &PresentedKey,
    ) -> impl Future<Output = anyhow::Result<Option<KeyForAuth>>> + Send;

    /// Records a use at `now` unless one was recorded in the last
    /// [`LAST_USED_GRANULARITY_SECS`] (a conditional update; losing the race is fine).
    fn touch(
        &self,
        tenant: &TenantId,
        key: &ApiKeyId,
        now: OffsetDateTime,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Functions that accept no API keys (and tests of access tokens alone): every key is unknown.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoApiKeys;

impl ApiKeyStore for NoApiKeys {
    async fn for_auth(&self, _: &PresentedKey) -> anyhow::Result<Option<KeyForAuth>> {
        Ok(None)
    }
    async fn touch(&self, _: &TenantId, _: &ApiKeyId, _: OffsetDateTime) -> anyhow::Result<()> {
        Ok(())
    }
}

/// `None`: no keys (a function's unit tests with fakes).
impl<S: ApiKeyStore> ApiKeyStore for Option<S> {
    async fn for_auth(&self, presented: &PresentedKey) -> anyhow::Result<Option<KeyForAuth>> {
        match self {
            Some(s) => s.for_auth(presented).await,
            None => Ok(None),
        }
    }
    async fn touch(&self, t: &TenantId, k: &ApiKeyId, now: OffsetDateTime) -> anyhow::Result<()> {
        match self {
            Some(s) => s.touch(t, k, now).await,
            None => Ok(()),
        }
    }
}

impl<S: ApiKeyStore> ApiKeyStore for &S {
    fn for_auth(
        &self,
        presented: &PresentedKey,
    ) -> impl Future<Output = anyhow::Result<Option<KeyForAuth>>> + Send {
        (**self).for_auth(presented)
    }
    fn touch(
        &self,
        tenant: &TenantId,
        key: &ApiKeyId,
        now: OffsetDateTime,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        (**self).touch(tenant, key, now)
    }
}

/// The DynamoDB adapter: the tenants table.
#[derive(Debug, Clone)]
pub struct DynamoApiKeys {
    client: Client,
    tenants_table: String,
}

impl DynamoApiKeys {
    pub fn new(client: Client, tenants_table: impl Into<String>) -> Self {
        Self {
            client,
            tenants_table: tenants_table.into(),
        }
    }
}

/// The item of a key (its hash, never the key).
pub fn api_key_item(k: &ApiKey, secret_hash: &str) -> Item {
    let mut it = item(&keys::api_key(&k.tenant_id, &k.key_id));
    put(&mut it, "key_id", s(k.key_id.as_str()));
    put(&mut it, "tenant_id", s(k.tenant_id.as_str()));
    put(&mut it, "name", s(&k.name));
    put(&mut it, "role", s(k.role.as_str()));
    put(&mut it, "created_by", s(k.created_by.as_str()));
    put(&mut it, "created_at", timestamp(k.created_at));
    // Not `expires_at`: that name is the table's TTL attribute, and an expired key stays listed.
    put(&mut it, "valid_until", timestamp(k.expires_at));
    put(&mut it, "secret_hash", s(secret_hash));
    if let Some(at) = k.last_used_at {
        put(&mut it, "last_used_at", n(at.unix_timestamp()));
    }
    if let Some(at) = k.revoked_at {
        put(&mut it, "revoked_at", timestamp(at));
    }
    it
}

fn ts(it: &Item, name: &str) -> anyhow::Result<Option<OffsetDateTime>> {
    it.get(name)
        .and_then(|v| v.as_s().ok())
        .map(|raw| {
            OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("{name} is not RFC 3339"))
        })
        .transpose()
}

/// A key as listed, from its item.
pub fn api_key_from(it: &Item) -> anyhow::Result<ApiKey> {
    Ok(ApiKey {
        key_id: ApiKeyId::parse(get_s(it, "key_id")?)?,
        tenant_id: TenantId::parse(get_s(it, "tenant_id")?)?,
        name: get_s(it, "name")?.to_string(),
        role: Role::parse(get_s(it, "role")?).ok_or_else(|| anyhow!("unknown role"))?,
        created_by: UserId::parse(get_s(it, "created_by")?)?,
        created_at: ts(it, "created_at")?.ok_or_else(|| anyhow!("created_at missing"))?,
        expires_at: ts(it, "valid_until")?.ok_or_else(|| anyhow!("valid_until missing"))?,
        last_used_at: get_n_opt(it, "last_used_at")?
            .map(OffsetDateTime::from_unix_timestamp)
            .transpose()?,
        revoked_at: ts(it, "revoked_at")?,
    })
}

fn same_key(it: &Item, k: &Key) -> bool {
    it.get("pk").and_then(|v| v.as_s().ok()) == Some(&k.pk)
        && it.get("sk").and_then(|v| v.as_s().ok()) == Some(&k.sk)
}

impl ApiKeyStore for DynamoApiKeys {
    async fn for_auth(&self, p: &PresentedKey) -> anyhow::Result<Option<KeyForAuth>> {
        for_auth(&self.client, &self.tenants_table, p).await
    }

    async fn touch(
        &self,
        tenant: &TenantId,
        key: &ApiKeyId,
        now: OffsetDateTime,
    ) -> anyhow::Result<()> {
        touch(&self.client, &self.tenants_table, tenant, key, now).await
    }
}

/// The account store reads keys from its own tenants table (auth, dsar, webhooks hold one).
impl ApiKeyStore for crate::dynamo::AccountStore {
    async fn for_auth(&self, p: &PresentedKey) -> anyhow::Result<Option<KeyForAuth>> {
        for_auth(self.client(), &self.tables().tenants, p).await
    }

    async fn touch(
        &self,
        tenant: &TenantId,
        key: &ApiKeyId,
        now: OffsetDateTime,
    ) -> anyhow::Result<()> {
        touch(self.client(), &self.tables().tenants, tenant, key, now).await
    }
}

async fn for_auth(
    client: &Client,
    tenants_table: &str,
    p: &PresentedKey,
) -> anyhow::Result<Option<KeyForAuth>> {
    let key_key = keys::api_key(&p.tenant_id, &p.key_id);
    let user_key = keys::user(&p.tenant_id, &p.creator);
    let tenant_key = keys::tenant(&p.tenant_id);
    let mut pending = KeysAndAttributes::builder()
        .keys(key_item(&key_key))
        .keys(key_item(&user_key))
        .keys(key_item(&tenant_key))
        .consistent_read(true)
        .build()
        .context("keys")?;
    let mut items = Vec::new();
    // Unprocessed keys (throttling) are asked again, a few times.
    for _ in 0..4 {
        let out = client
            .batch_get_item()
            .request_items(tenants_table, pending)
            .send()
            .await
            .context("BatchGetItem API key, creator and tenant")?;
        items.extend(
            out.responses
                .unwrap_or_default()
                .remove(tenants_table)
                .unwrap_or_default(),
        );
        match out
            .unprocessed_keys
            .and_then(|mut u| u.remove(tenants_table))
        {
            Some(rest) if !rest.keys().is_empty() => pending = rest,
            _ => {
                let find = |k: &Key| items.iter().find(|it| same_key(it, k));
                let Some(key_it) = find(&key_key) else {
                    return Ok(None);
                };
                return Ok(Some(KeyForAuth {
                    key: api_key_from(key_it)?,
                    secret_hash: get_s(key_it, "secret_hash")?.to_string(),
                    creator_role: find(&user_key)
                        .and_then(|u| u.get("role"))
                        .and_then(|v| v.as_s().ok())
                        .and_then(|r| Role::parse(r)),
                    tenant_closed: find(&tenant_key)
                        .is_none_or(|t| get_s(t, "status").ok() == Some("closed")),
                }));
            }
        }
    }
    Err(anyhow!("BatchGetItem left keys unprocessed"))
}

async fn touch(
    client: &Client,
    tenants_table: &str,
    tenant: &TenantId,
    key: &ApiKeyId,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let r = client
        .update_item()
        .table_name(tenants_table)
        .set_key(Some(key_item(&keys::api_key(tenant, key))))
        .update_expression("SET last_used_at = :now")
        // A use recorded meanwhile (another request) wins: nothing to write.
        .condition_expression(
            "attribute_exists(pk) AND (attribute_not_exists(last_used_at) \
             OR last_used_at <= :cutoff)",
        )
        .expression_attribute_values(":now", n(now.unix_timestamp()))
        .expression_attribute_values(
            ":cutoff",
            n(now.unix_timestamp() - LAST_USED_GRANULARITY_SECS),
        )
        .send()
        .await;
    shared_core::dynamo::attrs::unless_condition_failed(r, "UpdateItem API key last_used_at")?;
    Ok(())
}

impl crate::dynamo::AccountStore {
    /// The tenant's API keys (revoked and expired ones too), oldest first.
    pub async fn api_keys(&self, t: &TenantId) -> anyhow::Result<Vec<ApiKey>> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client()
                .query()
                .table_name(&self.tables().tenants)
                .key_condition_expression("pk = :pk AND begins_with(sk, :s)")
                .expression_attribute_values(":pk", s(keys::tenant(t).pk))
                .expression_attribute_values(":s", s(keys::API_KEY_PREFIX))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("Query API keys")?;
            for it in page.items.unwrap_or_default() {
                out.push(api_key_from(&it)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by(|a, b| (a.created_at, &a.key_id).cmp(&(b.created_at, &b.key_id)));
        Ok(out)
    }

    /// One key of the tenant, read consistently.
    pub async fn api_key(&self, t: &TenantId, k: &ApiKeyId) -> anyhow::Result<Option<ApiKey>> {
        shared_core::dynamo::attrs::get_item(
            self.client(),
            &self.tables().tenants,
            &keys::api_key(t, k),
        )
        .await?
        .map(|it| api_key_from(&it))
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn an_item_holds_the_key_as_listed_and_its_hash_but_never_the_key() {
        let t = TenantId::parse("t-1").unwrap();
        let u = UserId::parse("u-1").unwrap();
        let id = ApiKeyId::parse("ak-1").unwrap();
        let (key, hash) = crate::auth::api_key::issue(&t, &u, &id);
        let mut k = ApiKey {
            key_id: id,
            tenant_id: t,
            name: "sync".into(),
            role: Role::Member,
            created_by: u,
            created_at: datetime!(2026-12-01 10:00 UTC),
            expires_at: datetime!(2027-03-01 10:00 UTC),
            last_used_at: None,
            revoked_at: None,
        };
        for (used, revoked) in [
            (None, None),
            (
                Some(datetime!(2026-12-02 10:00 UTC)),
                Some(datetime!(2026-12-03 10:00 UTC)),
            ),
        ] {
            k.last_used_at = used;
            k.revoked_at = revoked;
            let it = api_key_item(&k, &hash);
            assert_eq!(api_key_from(&it).unwrap(), k);
            assert_eq!(it["sk"].as_s().unwrap(), "APIKEY#ak-1");
            assert_eq!(it["pk"].as_s().unwrap(), "TENANT#t-1");
            assert!(
                !it.contains_key("expires_at"),
                "not the table's TTL attribute"
            );
            let secret = key.rsplit('.').next().unwrap();
            assert!(!format!("{it:?}").contains(secret));
        }
    }
}
