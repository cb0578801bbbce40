//! The account store: tenants, users, the login index, sessions, one-time tokens (tenants table),
//! security events (security-log table) and failed-login throttles (ops table).

use std::collections::HashMap;

use anyhow::{anyhow, Context};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, KeysAndAttributes, Put, ReturnValue, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use time::OffsetDateTime;

use crate::auth::permissions::Role;
use crate::{LoginMeta, Mfa, OneTimeToken, SecurityEvent, Session, Tenant, TokenKind, User};
use shared_core::domain::{Email, Phone, SessionId, TenantId, TenantStatus, UserId};
use shared_core::dynamo::attrs::{
    epoch, get_n_opt, get_s, item, key_item, n, put, put_opt, s, str_list, timestamp, Item,
};
use shared_core::keys::{self, Key};
use shared_core::retention;

#[derive(Debug, Clone)]
pub struct AccountTables {
    pub tenants: String,
    pub security_log: String,
    pub ops: String,
}

#[derive(Debug, Clone)]
pub struct AccountStore {
    client: Client,
    tables: AccountTables,
    /// How long security events are kept (TTL backstop; retention enforces it too).
    security_log_days: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition of the write failed (the email is taken, the token was used, the session was
    /// rotated meanwhile, ...). The caller knows which condition it set.
    #[error("condition failed")]
    Condition,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// A write in a transaction.
pub enum Write {
    Put(Item, Option<&'static str>),
    /// key, update expression, condition, values, names
    Update {
        key: Key,
        update: String,
        condition: Option<String>,
        values: Vec<(String, AttributeValue)>,
        names: Vec<(String, String)>,
    },
    Delete(Key, Option<&'static str>),
}

/// A login attempt counted against one throttle counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// The attempt's rank in the window (1-based).
    pub rank: u32,
    /// The counter's lock as the count was taken (Unix seconds), if one was ever set.
    pub locked_until: Option<i64>,
}

/// Throttle state of one key: failures in the current window and until when logins wait.
#[derive(Debug, Clone, Copy, Default)]
pub struct Throttle {
    pub failures: u32,
    /// Unix seconds until which logins wait.
    pub locked_until: i64,
    /// Unix seconds when the failure window ends (DynamoDB's TTL deletes lazily, so readers
    /// ignore a count whose window has ended).
    pub window_ends: i64,
}

/// The session attribute holding when its user last re-entered the password (step-up).
pub const STEP_UP_AT: &str = "step_up_at";

/// The user attribute listing the ids of the sessions the user opened.
pub const LIVE_SESSIONS: &str = "live_sessions";

/// The credential epoch of a user, session or token item (absent: 0).
pub fn epoch_of(it: &Item) -> anyhow::Result<i64> {
    Ok(get_n_opt(it, "cred_epoch")?.unwrap_or(0))
}

/// Whether a caller may write, for every function that serves writes (auth, dsar, leads-api,
/// lead-transfers): the caller's session is live and the caller's, and the session and the
/// access token were both issued under the user's current credential epoch. So a reset, a
/// password or role change, logout-all or an MFA change ends writes at once, even through a
/// session whose revocation was lost or an access token issued before it, and a removed user
/// (no item) cannot write. One consistent `BatchGetItem` of the session and the user
/// (`tenants_table`).
///
/// An API-key caller has no session: its key, its creator's membership and role and the
/// workspace were read consistently as the request was authenticated
/// ([`crate::api_keys::ApiKeyStore::for_auth`]), so a revoked key or a removed creator is
/// already refused there, and nothing more is read here.
pub async fn require_live_for_write(
    client: &Client,
    tenants_table: &str,
    caller: &crate::auth::caller::Caller,
    now: OffsetDateTime,
) -> Result<(), shared_core::error::AppError> {
    let crate::auth::caller::Via::Session {
        session_id,
        cred_epoch,
    } = &caller.via
    else {
        return Ok(());
    };
    let session_key = keys::session(session_id);
    let user_key = keys::user(&caller.tenant_id, &caller.user_id);
    let mut req = HashMap::new();
    req.insert(
        tenants_table.to_string(),
        KeysAndAttributes::builder()
            .keys(key_item(&session_key))
            .keys(key_item(&user_key))
            .consistent_read(true)
            .build()
            .context("keys")?,
    );
    let out = client
        .batch_get_item()
        .set_request_items(Some(req))
        .send()
        .await
        .context("BatchGetItem session and user")?;
    let items = out
        .responses
        .unwrap_or_default()
        .remove(tenants_table)
        .unwrap_or_default();
    let find = |k: &Key| {
        items.iter().find(|it| {
            it.get("pk").and_then(|v| v.as_s().ok()) == Some(&k.pk)
                && it.get("sk").and_then(|v| v.as_s().ok()) == Some(&k.sk)
        })
    };
    let session = find(&session_key).map(session_from).transpose()?;
    crate::auth::session::require_live(session.as_ref(), caller, now)?;
    let session_epoch = find(&session_key).map(epoch_of).transpose()?;
    let user_epoch = find(&user_key).map(epoch_of).transpose()?;
    crate::auth::session::require_current_epoch(session_epoch, user_epoch, *cred_epoch)
}

fn ts(it: &Item, name: &str) -> anyhow::Result<Option<OffsetDateTime>> {
    match it.get(name).and_then(|v| v.as_s().ok()) {
        None => Ok(None),
        Some(raw) => Ok(Some(
            OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("{name} is not RFC 3339"))?,
        )),
    }
}

fn req_ts(it: &Item, name: &str) -> anyhow::Result<OffsetDateTime> {
    ts(it, name)?.ok_or_else(|| anyhow!("{name} missing"))
}

fn list_s(it: &Item, name: &str) -> Vec<String> {
    it.get(name)
        .and_then(|v| v.as_l().ok())
        .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
        .unwrap_or_default()
}

fn status_str(st: TenantStatus) -> &'static str {
    match st {
        TenantStatus::Active => "active",
        TenantStatus::Suspended => "suspended",
        TenantStatus::Closed => "closed",
    }
}

pub fn tenant_item(t: &Tenant) -> Item {
    let mut it = item(&keys::tenant(&t.tenant_id));
    put(&mut it, "tenant_id", s(t.tenant_id.as_str()));
    put(&mut it, "status", s(status_str(t.status)));
    put(&mut it, "business_name", s(&t.business_name));
    put(&mut it, "owner_user_id", s(t.owner_user_id.as_str()));
    put(&mut it, "created_at", timestamp(t.created_at));
    if let Some(c) = t.closed_at {
        put(&mut it, "closed_at", timestamp(c));
    }
    if let Some(e) = t.erase_after {
        put(&mut it, "erase_after", timestamp(e));
    }
    it
}

fn tenant_from(it: &Item) -> anyhow::Result<Tenant> {
    let status = match get_s(it, "status")? {
        "active" => TenantStatus::Active,
        "suspended" => TenantStatus::Suspended,
        "closed" => TenantStatus::Closed,
        other => return Err(anyhow!("unknown tenant status {other}")),
    };
    Ok(Tenant {
        tenant_id: TenantId::parse(get_s(it, "tenant_id")?)?,
        business_name: get_s(it, "business_name").unwrap_or_default().to_string(),
        status,
        owner_user_id: UserId::parse(get_s(it, "owner_user_id")?)?,
        created_at: req_ts(it, "created_at")?,
        closed_at: ts(it, "closed_at")?,
        erase_after: ts(it, "erase_after")?,
    })
}

pub fn user_item(u: &User) -> Item {
    let mut it = item(&keys::user(&u.tenant_id, &u.user_id));
    put(&mut it, "tenant_id", s(u.tenant_id.as_str()));
    put(&mut it, "user_id", s(u.user_id.as_str()));
    put(&mut it, "email", s(u.email.as_str()));
    put(&mut it, "name", s(&u.name));
    put_opt(&mut it, "phone", u.phone.as_ref().map(|p| p.as_str()));
    put(&mut it, "role", s(u.role.as_str()));
    put(&mut it, "password_hash", s(&u.password_hash));
    put(
        &mut it,
        "email_verified",
        AttributeValue::Bool(u.email_verified),
    );
    put(&mut it, "created_at", timestamp(u.created_at));
    put(&mut it, "mfa_enabled", AttributeValue::Bool(u.mfa.enabled));
    put_opt(&mut it, "totp_secret", u.mfa.secret.clone());
    put_opt(&mut it, "totp_pending_secret", u.mfa.pending_secret.clone());
    if let Some(step) = u.mfa.last_step {
        put(&mut it, "totp_last_step", n(step));
    }
    if !u.mfa.recovery_hashes.is_empty() {
        put(&mut it, "recovery_hashes", str_list(&u.mfa.recovery_hashes));
    }
    if let Some(at) = u.mfa.locked_at {
        put(&mut it, "mfa_locked_at", timestamp(at));
    }
    if let Some(a) = &u.policy {
        put(&mut it, "policy_version", s(&a.policy_version));
        put(
            &mut it,
            "policy_accepted_at",
            timestamp(a.policy_accepted_at),
        );
        put(&mut it, "terms_version", s(&a.terms_version));
        put(&mut it, "terms_accepted_at", timestamp(a.terms_accepted_at));
    }
    it
}

fn user_from(it: &Item) -> anyhow::Result<User> {
    let last_login = ts(it, "last_login_at")?.map(|at| LoginMeta {
        at,
        ip: it.get("last_login_ip").and_then(|v| v.as_s().ok()).cloned(),
        user_agent: it.get("last_login_ua").and_then(|v| v.as_s().ok()).cloned(),
    });
    Ok(User {
        user_id: UserId::parse(get_s(it, "user_id")?)?,
        tenant_id: TenantId::parse(get_s(it, "tenant_id")?)?,
        email: Email::parse(get_s(it, "email")?).map_err(|e| anyhow!("stored email {e}"))?,
        name: get_s(it, "name").unwrap_or_default().to_string(),
        phone: it
            .get("phone")
            .and_then(|v| v.as_s().ok())
            .and_then(|p| Phone::parse(p).ok()),
        role: Role::parse(get_s(it, "role")?).ok_or_else(|| anyhow!("unknown role"))?,
        password_hash: get_s(it, "password_hash")?.to_string(),
        email_verified: it
            .get("email_verified")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        created_at: req_ts(it, "created_at")?,
        mfa: Mfa {
            enabled: it
                .get("mfa_enabled")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
            secret: it.get("totp_secret").and_then(|v| v.as_s().ok()).cloned(),
            pending_secret: it
                .get("totp_pending_secret")
                .and_then(|v| v.as_s().ok())
                .cloned(),
            last_step: get_n_opt(it, "totp_last_step")?,
            recovery_hashes: list_s(it, "recovery_hashes"),
            locked_at: ts(it, "mfa_locked_at")?,
            failures_window_ends: get_n_opt(it, "mfa_window_ends")?,
        },
        last_login,
        policy: match (
            it.get("policy_version").and_then(|v| v.as_s().ok()),
            ts(it, "policy_accepted_at")?,
            it.get("terms_version").and_then(|v| v.as_s().ok()),
            ts(it, "terms_accepted_at")?,
        ) {
            (Some(pv), Some(pat), Some(tv), Some(tat)) => Some(crate::policy::PolicyAcceptance {
                policy_version: pv.clone(),
                policy_accepted_at: pat,
                terms_version: tv.clone(),
                terms_accepted_at: tat,
            }),
            _ => None,
        },
    })
}

pub fn login_item(email_bidx: &str, tenant: &TenantId, user: &UserId) -> Item {
    let mut it = item(&keys::login(email_bidx));
    put(&mut it, "tenant_id", s(tenant.as_str()));
    put(&mut it, "user_id", s(user.as_str()));
    it
}

/// The login-index item of `user`, carrying a copy of the user's password hash
/// ([`LOGIN_PASSWORD_HASH`]): a login checks the password as soon as it has read this item.
pub fn login_item_of(email_bidx: &str, user: &User) -> Item {
    let mut it = login_item(email_bidx, &user.tenant_id, &user.user_id);
    put(&mut it, LOGIN_PASSWORD_HASH, s(&user.password_hash));
    it
}

/// The login-index attribute holding a copy of the user's password hash, so a login verifies
/// the password while the user item is still being read (one round trip less on the way to the
/// hash). The user item's hash stays the one that counts: a login compares the two and checks
/// again against the user's when they differ (an item written before the copy existed, or by a
/// write that did not refresh it); a successful login then refreshes the copy.
pub const LOGIN_PASSWORD_HASH: &str = "password_hash";

/// The login-index item of a sign-up not verified yet: it does not claim the address. A later
/// sign-up, an accepted invitation or the verification of another sign-up of the address takes
/// the item over; verifying this one removes `unverified`.
pub fn unverified_login_item(email_bidx: &str, tenant: &TenantId, user: &UserId) -> Item {
    let mut it = login_item(email_bidx, tenant, user);
    put(&mut it, UNVERIFIED, AttributeValue::Bool(true));
    it
}

/// The login-index attribute of a sign-up not verified yet.
pub const UNVERIFIED: &str = "unverified";

/// The condition of a write that claims an address's login-index item: none yet, or one of a
/// sign-up not verified yet.
pub const LOGIN_CLAIMABLE: &str = "attribute_not_exists(pk) OR attribute_exists(unverified)";

/// The account a login names, as its login-index item holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginAccount {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    /// The copy of the password hash ([`LOGIN_PASSWORD_HASH`]); `None` on an item written
    /// before the copy existed.
    pub password_hash: Option<String>,
}

/// Who an email's login-index item names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginEntry {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    /// A sign-up not verified yet: it holds no claim on the address.
    pub unverified: bool,
}

pub fn session_item(se: &Session) -> Item {
    let mut it = item(&keys::session(&se.session_id));
    let g = keys::session_by_user(&se.user_id, &se.session_id);
    put(&mut it, "gsi1pk", s(g.pk));
    put(&mut it, "gsi1sk", s(g.sk));
    put(&mut it, "session_id", s(se.session_id.as_str()));
    put(&mut it, "user_id", s(se.user_id.as_str()));
    put(&mut it, "tenant_id", s(se.tenant_id.as_str()));
    put(&mut it, "refresh_hash", s(&se.refresh_hash));
    put(&mut it, "previous_hashes", str_list(&se.previous_hashes));
    put(&mut it, "created_at", timestamp(se.created_at));
    put(&mut it, "last_used_at", timestamp(se.last_used_at));
    put(&mut it, "idle_expires_at", timestamp(se.idle_expires_at));
    put(
        &mut it,
        "absolute_expires_at",
        timestamp(se.absolute_expires_at),
    );
    put_opt(&mut it, "ip", se.ip.clone());
    put_opt(&mut it, "user_agent", se.user_agent.clone());
    // TTL backstop a day after the session can no longer be used.
    put(
        &mut it,
        "expires_at",
        epoch(se.absolute_expires_at + time::Duration::days(1)),
    );
    // Retention deletes it once it can no longer be used (docs/retention.md).
    put(
        &mut it,
        "exp_bucket",
        s(retention::expiry_bucket_at(
            retention::rule::SESSION,
            se.absolute_expires_at,
            &keys::session(&se.session_id),
        )),
    );
    it
}

fn session_from(it: &Item) -> anyhow::Result<Session> {
    Ok(Session {
        session_id: SessionId::parse(get_s(it, "session_id")?)?,
        user_id: UserId::parse(get_s(it, "user_id")?)?,
        tenant_id: TenantId::parse(get_s(it, "tenant_id")?)?,
        refresh_hash: get_s(it, "refresh_hash")?.to_string(),
        previous_hashes: list_s(it, "previous_hashes"),
        created_at: req_ts(it, "created_at")?,
        last_used_at: req_ts(it, "last_used_at")?,
        idle_expires_at: req_ts(it, "idle_expires_at")?,
        absolute_expires_at: req_ts(it, "absolute_expires_at")?,
        revoked_at: ts(it, "revoked_at")?,
        ip: it.get("ip").and_then(|v| v.as_s().ok()).cloned(),
        user_agent: it.get("user_agent").and_then(|v| v.as_s().ok()).cloned(),
    })
}

pub fn token_item(t: &OneTimeToken) -> Item {
    let mut it = item(&keys::one_time_token(&t.secret_hash));
    put(&mut it, "kind", s(t.kind.as_str()));
    put(&mut it, "tenant_id", s(t.tenant_id.as_str()));
    put_opt(&mut it, "user_id", t.user_id.as_ref().map(|u| u.as_str()));
    put_opt(&mut it, "email", t.email.as_ref().map(|e| e.as_str()));
    put_opt(&mut it, "email_sealed", t.email_sealed.as_deref());
    put_opt(&mut it, "role", t.role.map(|r| r.as_str()));
    put_opt(
        &mut it,
        "invited_by",
        t.invited_by.as_ref().map(|u| u.as_str()),
    );
    put(&mut it, "expires_at", epoch(t.expires_at));
    put(
        &mut it,
        "exp_bucket",
        s(retention::expiry_bucket_at(
            retention::rule::TOKEN,
            t.expires_at,
            &keys::one_time_token(&t.secret_hash),
        )),
    );
    it
}

fn token_from(it: &Item, secret_hash: &str) -> anyhow::Result<OneTimeToken> {
    Ok(OneTimeToken {
        secret_hash: secret_hash.to_string(),
        kind: TokenKind::parse(get_s(it, "kind")?).ok_or_else(|| anyhow!("unknown kind"))?,
        tenant_id: TenantId::parse(get_s(it, "tenant_id")?)?,
        user_id: it
            .get("user_id")
            .and_then(|v| v.as_s().ok())
            .map(|u| UserId::parse(u))
            .transpose()?,
        email: it
            .get("email")
            .and_then(|v| v.as_s().ok())
            .map(|e| Email::parse(e).map_err(|e| anyhow!("stored email {e}")))
            .transpose()?,
        email_sealed: it.get("email_sealed").and_then(|v| v.as_s().ok()).cloned(),
        role: it
            .get("role")
            .and_then(|v| v.as_s().ok())
            .and_then(|r| Role::parse(r)),
        invited_by: it
            .get("invited_by")
            .and_then(|v| v.as_s().ok())
            .map(|u| UserId::parse(u))
            .transpose()?,
        expires_at: OffsetDateTime::from_unix_timestamp(get_n_opt(it, "expires_at")?.unwrap_or(0))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
    })
}

impl AccountStore {
    pub fn new(client: Client, tables: AccountTables, security_log_days: i64) -> Self {
        Self {
            client,
            tables,
            security_log_days,
        }
    }

    pub fn tables(&self) -> &AccountTables {
        &self.tables
    }

    /// The client, for a function that reads another table alongside (auth: the billing state).
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn get(&self, table: &str, key: &Key) -> anyhow::Result<Option<Item>> {
        shared_core::dynamo::attrs::get_item(&self.client, table, key).await
    }

    pub async fn tenant(&self, t: &TenantId) -> anyhow::Result<Option<Tenant>> {
        self.get(&self.tables.tenants, &keys::tenant(t))
            .await?
            .map(|it| tenant_from(&it))
            .transpose()
    }

    /// Whether the user's account data is restricted on their request (GDPR Art. 18; the
    /// `restricted` flag the dsar-worker sets and a lift removes): kept, not changed by anyone
    /// until lifted. `false` for a user that does not exist.
    pub async fn user_restricted(&self, t: &TenantId, u: &UserId) -> anyhow::Result<bool> {
        Ok(self
            .get(&self.tables.tenants, &keys::user(t, u))
            .await?
            .is_some_and(|it| matches!(it.get("restricted"), Some(AttributeValue::Bool(true)))))
    }

    pub async fn user(&self, t: &TenantId, u: &UserId) -> anyhow::Result<Option<User>> {
        self.get(&self.tables.tenants, &keys::user(t, u))
            .await?
            .map(|it| user_from(&it))
            .transpose()
    }

    /// The account an email belongs to and the given failed-login throttles, in one read.
    pub async fn login_lookup(
        &self,
        email_bidx: &str,
        throttle_keys: &[Key],
    ) -> anyhow::Result<(Option<(TenantId, UserId)>, Vec<Throttle>)> {
        let (account, throttles) = self.login_account(email_bidx, throttle_keys).await?;
        Ok((account.map(|a| (a.tenant_id, a.user_id)), throttles))
    }

    /// The account an email belongs to, with the copy of its password hash, and the given
    /// failed-login throttles, in one read (consistent).
    pub async fn login_account(
        &self,
        email_bidx: &str,
        throttle_keys: &[Key],
    ) -> anyhow::Result<(Option<LoginAccount>, Vec<Throttle>)> {
        let login_key = keys::login(email_bidx);
        let mut req = HashMap::new();
        req.insert(
            self.tables.tenants.clone(),
            KeysAndAttributes::builder()
                .keys(key_item(&login_key))
                .consistent_read(true)
                .build()
                .context("keys")?,
        );
        if !throttle_keys.is_empty() {
            req.insert(
                self.tables.ops.clone(),
                KeysAndAttributes::builder()
                    .set_keys(Some(throttle_keys.iter().map(key_item).collect()))
                    .consistent_read(true)
                    .build()
                    .context("keys")?,
            );
        }
        let out = self
            .client
            .batch_get_item()
            .set_request_items(Some(req))
            .send()
            .await
            .context("BatchGetItem login")?;
        let responses = out.responses.unwrap_or_default();
        let find = |table: &str, k: &Key| -> Option<Item> {
            responses
                .get(table)?
                .iter()
                .find(|it| {
                    it.get("pk").and_then(|v| v.as_s().ok()) == Some(&k.pk)
                        && it.get("sk").and_then(|v| v.as_s().ok()) == Some(&k.sk)
                })
                .cloned()
        };
        let account = find(&self.tables.tenants, &login_key)
            .map(|it| -> anyhow::Result<_> {
                Ok(LoginAccount {
                    tenant_id: TenantId::parse(get_s(&it, "tenant_id")?)?,
                    user_id: UserId::parse(get_s(&it, "user_id")?)?,
                    password_hash: it
                        .get(LOGIN_PASSWORD_HASH)
                        .and_then(|v| v.as_s().ok())
                        .cloned(),
                })
            })
            .transpose()?;
        let mut throttles = Vec::with_capacity(throttle_keys.len());
        for k in throttle_keys {
            throttles.push(match find(&self.tables.ops, k) {
                None => Throttle::default(),
                Some(it) => Throttle {
                    failures: get_n_opt(&it, "failures")?
                        .unwrap_or(0)
                        .clamp(0, u32::MAX as i64) as u32,
                    locked_until: get_n_opt(&it, "locked_until")?.unwrap_or(0),
                    window_ends: get_n_opt(&it, "expires_at")?.unwrap_or(0),
                },
            });
        }
        Ok((account, throttles))
    }

    pub async fn login_owner(
        &self,
        email_bidx: &str,
    ) -> anyhow::Result<Option<(TenantId, UserId)>> {
        Ok(self.login_lookup(email_bidx, &[]).await?.0)
    }

    /// The login-index item of an email (consistent read), telling an unverified sign-up apart.
    pub async fn login_entry(&self, email_bidx: &str) -> anyhow::Result<Option<LoginEntry>> {
        self.get(&self.tables.tenants, &keys::login(email_bidx))
            .await?
            .map(|it| -> anyhow::Result<LoginEntry> {
                Ok(LoginEntry {
                    tenant_id: TenantId::parse(get_s(&it, "tenant_id")?)?,
                    user_id: UserId::parse(get_s(&it, "user_id")?)?,
                    unverified: it
                        .get(UNVERIFIED)
                        .and_then(|v| v.as_bool().ok())
                        .copied()
                        .unwrap_or(false),
                })
            })
            .transpose()
    }

    /// Counts one login attempt against a throttle counter, before any expensive check: one
    /// atomic `ADD`, so concurrent attempts each get their own rank and none is lost. Every
    /// attempt counts, refused ones too; the window (`expires_at`) restarts with each.
    pub async fn reserve_attempt(
        &self,
        key: &Key,
        now: OffsetDateTime,
        window: time::Duration,
    ) -> anyhow::Result<Reservation> {
        let it = self
            .update(
                &self.tables.ops,
                key,
                "ADD failures :one SET expires_at = :exp",
                None,
                vec![(":one", n(1)), (":exp", epoch(now + window))],
            )
            .await?
            .unwrap_or_default();
        Ok(Reservation {
            rank: get_n_opt(&it, "failures")?
                .unwrap_or(0)
                .clamp(0, u32::MAX as i64) as u32,
            locked_until: get_n_opt(&it, "locked_until")?,
        })
    }

    /// Takes an ended lock for one attempt past the free allowance, locking again until
    /// `locked_until`. Of attempts racing for it exactly one wins (true).
    pub async fn claim_ended_lock(
        &self,
        key: &Key,
        now: OffsetDateTime,
        locked_until: i64,
    ) -> anyhow::Result<bool> {
        Ok(self
            .update(
                &self.tables.ops,
                key,
                "SET locked_until = :lu",
                Some("attribute_exists(locked_until) AND locked_until <= :now"),
                vec![(":lu", n(locked_until)), (":now", n(now.unix_timestamp()))],
            )
            .await?
            .is_some())
    }

    /// Raises a counter's lock to `locked_until` (never lowers it: a lock of a slow attempt
    /// arriving late leaves a longer one in place).
    pub async fn raise_lock(&self, key: &Key, locked_until: i64) -> anyhow::Result<()> {
        self.update(
            &self.tables.ops,
            key,
            "SET locked_until = :lu",
            Some("attribute_exists(pk) AND (attribute_not_exists(locked_until) OR locked_until < :lu)"),
            vec![(":lu", n(locked_until))],
        )
        .await?;
        Ok(())
    }

    /// Gives a counted attempt back (the password was right); `claimed`: the lock this attempt
    /// took, lifted again unless another attempt changed it since.
    pub async fn give_back_attempt(
        &self,
        key: &Key,
        claimed: Option<i64>,
        now: OffsetDateTime,
    ) -> anyhow::Result<()> {
        match claimed {
            None => self.update(
                &self.tables.ops,
                key,
                "ADD failures :minus",
                Some("failures > :zero"),
                vec![(":minus", n(-1)), (":zero", n(0))],
            ),
            Some(lu) => self.update(
                &self.tables.ops,
                key,
                "ADD failures :minus SET locked_until = :now",
                Some("failures > :zero AND locked_until = :lu"),
                vec![
                    (":minus", n(-1)),
                    (":zero", n(0)),
                    (":lu", n(lu)),
                    (":now", n(now.unix_timestamp())),
                ],
            ),
        }
        .await?;
        Ok(())
    }

    /// Deletes a counter whose window has ended (DynamoDB's TTL deletes lazily). Conditional: a
    /// concurrent attempt that already started a new window keeps it.
    pub async fn reset_ended_window(&self, key: &Key, now: OffsetDateTime) -> anyhow::Result<()> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.tables.ops)
            .set_key(Some(key_item(key)))
            .condition_expression("expires_at <= :now")
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_conditional_check_failed_exception() {
                    Ok(())
                } else {
                    Err(anyhow::Error::new(e).context("DeleteItem throttle window"))
                }
            }
        }
    }

    /// Reserves one second-factor try of a user before the code is checked: one atomic `ADD`,
    /// refused (`None`) once `cap` tries of the window are taken or the account is locked. A
    /// window that has ended is cleared first. The count restarts at a successful login.
    pub async fn reserve_mfa_try(
        &self,
        t: &TenantId,
        u: &UserId,
        window_ends: Option<i64>,
        now: OffsetDateTime,
        cap: u32,
        window: time::Duration,
    ) -> anyhow::Result<Option<u32>> {
        let key = keys::user(t, u);
        if window_ends.is_some_and(|end| end <= now.unix_timestamp()) {
            self.update(
                &self.tables.tenants,
                &key,
                "REMOVE mfa_failures, mfa_window_ends",
                Some("mfa_window_ends <= :now"),
                vec![(":now", n(now.unix_timestamp()))],
            )
            .await?;
        }
        let out = self
            .update(
                &self.tables.tenants,
                &key,
                "ADD mfa_failures :one SET mfa_window_ends = if_not_exists(mfa_window_ends, :end)",
                Some(
                    "attribute_exists(pk) AND attribute_not_exists(mfa_locked_at) \
                     AND (attribute_not_exists(mfa_failures) OR mfa_failures < :cap)",
                ),
                vec![
                    (":one", n(1)),
                    (":end", n((now + window).unix_timestamp())),
                    (":cap", n(cap)),
                ],
            )
            .await?;
        out.map(|it| -> anyhow::Result<u32> {
            Ok(get_n_opt(&it, "mfa_failures")?
                .unwrap_or(0)
                .clamp(0, u32::MAX as i64) as u32)
        })
        .transpose()
    }

    /// Locks a user's login until a password reset, if `cap` failed tries still stand (a
    /// success since restarted the count). True for the one call that locked it (so the user
    /// is told once).
    pub async fn lock_mfa(
        &self,
        t: &TenantId,
        u: &UserId,
        now: OffsetDateTime,
        cap: u32,
    ) -> anyhow::Result<bool> {
        Ok(self
            .update(
                &self.tables.tenants,
                &keys::user(t, u),
                "SET mfa_locked_at = :now",
                Some(
                    "attribute_exists(pk) AND attribute_not_exists(mfa_locked_at) \
                     AND mfa_failures >= :cap",
                ),
                vec![(":now", timestamp(now)), (":cap", n(cap))],
            )
            .await?
            .is_some())
    }

    /// A user and their credential epoch (bumped by every change that must end sessions).
    pub async fn user_with_epoch(
        &self,
        t: &TenantId,
        u: &UserId,
    ) -> anyhow::Result<Option<(User, i64)>> {
        self.get(&self.tables.tenants, &keys::user(t, u))
            .await?
            .map(|it| Ok((user_from(&it)?, epoch_of(&it)?)))
            .transpose()
    }

    /// A session and the credential epoch it was opened under.
    pub async fn session_with_epoch(
        &self,
        sid: &SessionId,
    ) -> anyhow::Result<Option<(Session, i64)>> {
        self.get(&self.tables.tenants, &keys::session(sid))
            .await?
            .map(|it| Ok((session_from(&it)?, epoch_of(&it)?)))
            .transpose()
    }

    /// Whether a caller's session still allows writes: see [`require_live_for_write`].
    pub async fn require_live_for_write(
        &self,
        caller: &crate::auth::caller::Caller,
        now: OffsetDateTime,
    ) -> Result<(), shared_core::error::AppError> {
        require_live_for_write(&self.client, &self.tables.tenants, caller, now).await
    }

    /// The credential epoch a one-time token was issued under (0 if none was recorded).
    pub async fn token_epoch(&self, secret_hash: &str) -> anyhow::Result<Option<i64>> {
        self.get(&self.tables.tenants, &keys::one_time_token(secret_hash))
            .await?
            .map(|it| epoch_of(&it))
            .transpose()
    }

    /// The ids of the sessions a user opened (kept on the user item by the login transaction,
    /// read consistently: no index lag can hide one).
    pub async fn live_session_ids(
        &self,
        t: &TenantId,
        u: &UserId,
    ) -> anyhow::Result<Vec<SessionId>> {
        let Some(it) = self.get(&self.tables.tenants, &keys::user(t, u)).await? else {
            return Ok(vec![]);
        };
        Ok(it
            .get(LIVE_SESSIONS)
            .and_then(|v| v.as_ss().ok())
            .map(|ids| {
                ids.iter()
                    .filter_map(|i| SessionId::parse(i).ok())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Drops ended sessions from the user's list (best effort; a stale id only costs a no-op
    /// revocation later).
    pub async fn forget_sessions(
        &self,
        t: &TenantId,
        u: &UserId,
        ids: &[SessionId],
    ) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let set = AttributeValue::Ss(ids.iter().map(|i| i.to_string()).collect());
        self.update(
            &self.tables.tenants,
            &keys::user(t, u),
            "DELETE live_sessions :ids",
            Some("attribute_exists(pk)"),
            vec![(":ids", set)],
        )
        .await?;
        Ok(())
    }

    /// Bumps a user's credential epoch, returning the new one (None: no such user).
    pub async fn bump_epoch(&self, t: &TenantId, u: &UserId) -> anyhow::Result<Option<i64>> {
        self.update(
            &self.tables.tenants,
            &keys::user(t, u),
            "ADD cred_epoch :one",
            Some("attribute_exists(pk)"),
            vec![(":one", n(1))],
        )
        .await?
        .map(|it| epoch_of(&it))
        .transpose()
    }

    /// Moves a live session to the user's current epoch (the session that made the change
    /// continues).
    pub async fn adopt_epoch(&self, sid: &SessionId, epoch: i64) -> anyhow::Result<()> {
        self.update(
            &self.tables.tenants,
            &keys::session(sid),
            "SET cred_epoch = :e",
            Some("attribute_exists(pk) AND attribute_not_exists(revoked_at)"),
            vec![(":e", n(epoch))],
        )
        .await?;
        Ok(())
    }

    pub async fn clear_throttle(&self, key: &Key) -> anyhow::Result<()> {
        self.client
            .delete_item()
            .table_name(&self.tables.ops)
            .set_key(Some(key_item(key)))
            .send()
            .await
            .context("DeleteItem throttle")?;
        Ok(())
    }

    pub async fn session(&self, sid: &SessionId) -> anyhow::Result<Option<Session>> {
        self.get(&self.tables.tenants, &keys::session(sid))
            .await?
            .map(|it| session_from(&it))
            .transpose()
    }

    /// A user's sessions, newest first.
    pub async fn sessions_of(&self, u: &UserId) -> anyhow::Result<Vec<Session>> {
        let pk = format!("USER#{u}");
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.tables.tenants)
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :pk AND begins_with(gsi1sk, :s)")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":s", s("SESSION#"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("Query sessions")?;
            for it in page.items.unwrap_or_default() {
                out.push(session_from(&it)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by_key(|x| std::cmp::Reverse(x.created_at));
        Ok(out)
    }

    /// A tenant's users.
    pub async fn team(&self, t: &TenantId) -> anyhow::Result<Vec<User>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.tables.tenants)
                .key_condition_expression("pk = :pk AND begins_with(sk, :s)")
                .expression_attribute_values(":pk", s(keys::tenant(t).pk))
                .expression_attribute_values(":s", s("USER#"))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("Query team")?;
            for it in page.items.unwrap_or_default() {
                out.push(user_from(&it)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by_key(|x| x.created_at);
        Ok(out)
    }

    pub async fn token(&self, secret_hash: &str) -> anyhow::Result<Option<OneTimeToken>> {
        self.get(&self.tables.tenants, &keys::one_time_token(secret_hash))
            .await?
            .map(|it| token_from(&it, secret_hash))
            .transpose()
    }

    /// The security-log item of an event (written in a transaction or alone).
    pub fn event_item(&self, e: &SecurityEvent, event_id: &str) -> Item {
        let at = shared_core::clock::rfc3339(e.at);
        let mut it = item(&keys::security_event(e.tenant_id.as_ref(), &at, event_id));
        put(&mut it, "event", s(e.event));
        put(&mut it, "at", s(&at));
        put_opt(
            &mut it,
            "tenant_id",
            e.tenant_id.as_ref().map(|t| t.as_str()),
        );
        put_opt(&mut it, "user_id", e.user_id.as_ref().map(|u| u.as_str()));
        put_opt(
            &mut it,
            "actor_user_id",
            e.actor_user_id.as_ref().map(|u| u.as_str()),
        );
        put_opt(
            &mut it,
            "session_id",
            e.session_id.as_ref().map(|x| x.as_str()),
        );
        put_opt(
            &mut it,
            "api_key_id",
            e.api_key_id.as_ref().map(|k| k.as_str()),
        );
        put_opt(&mut it, "ip_hash", e.ip_hash.clone());
        put_opt(&mut it, "email_hash", e.email_hash.clone());
        put_opt(&mut it, "detail", e.detail.clone());
        put(
            &mut it,
            "expires_at",
            epoch(e.at + time::Duration::days(self.security_log_days)),
        );
        // Retention deletes it after the period (the TTL above is the backstop).
        let bucket = retention::expiry_bucket_at(
            retention::rule::SECURITY_LOG,
            e.at + time::Duration::days(self.security_log_days),
            &keys::security_event(e.tenant_id.as_ref(), &at, event_id),
        );
        put(&mut it, "exp_bucket", s(bucket));
        it
    }

    pub async fn log_event(&self, e: &SecurityEvent, event_id: &str) -> anyhow::Result<()> {
        self.client
            .put_item()
            .table_name(&self.tables.security_log)
            .set_item(Some(self.event_item(e, event_id)))
            .send()
            .await
            .context("PutItem security event")?;
        Ok(())
    }

    /// Applies writes atomically. `table` of each write: tenants unless listed otherwise.
    pub async fn transact(&self, writes: Vec<(&str, Write)>) -> Result<(), StoreError> {
        let mut items = Vec::with_capacity(writes.len());
        for (table, w) in writes {
            let twi = match w {
                Write::Put(item, cond) => TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(table)
                            .set_item(Some(item))
                            .set_condition_expression(cond.map(str::to_string))
                            .build()
                            .context("put")?,
                    )
                    .build(),
                Write::Update {
                    key,
                    update,
                    condition,
                    values,
                    names,
                } => {
                    let mut b = Update::builder()
                        .table_name(table)
                        .set_key(Some(key_item(&key)))
                        .update_expression(update)
                        .set_condition_expression(condition);
                    for (k, v) in values {
                        b = b.expression_attribute_values(k, v);
                    }
                    for (k, v) in names {
                        b = b.expression_attribute_names(k, v);
                    }
                    TransactWriteItem::builder()
                        .update(b.build().context("update")?)
                        .build()
                }
                Write::Delete(key, cond) => TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(table)
                            .set_key(Some(key_item(&key)))
                            .set_condition_expression(cond.map(str::to_string))
                            .build()
                            .context("delete")?,
                    )
                    .build(),
            };
            items.push(twi);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match e.into_service_error() {
                TransactWriteItemsError::TransactionCanceledException(tc)
                    if tc
                        .cancellation_reasons()
                        .iter()
                        .any(|r| r.code() == Some("ConditionalCheckFailed")) =>
                {
                    Err(StoreError::Condition)
                }
                other => Err(StoreError::Other(
                    anyhow::Error::new(other).context("TransactWriteItems"),
                )),
            },
        }
    }

    /// One conditional update, returning the item after it (None when the condition failed).
    pub async fn update(
        &self,
        table: &str,
        key: &Key,
        update: &str,
        condition: Option<&str>,
        values: Vec<(&str, AttributeValue)>,
    ) -> anyhow::Result<Option<Item>> {
        let mut b = self
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(key_item(key)))
            .update_expression(update)
            .set_condition_expression(condition.map(str::to_string))
            .return_values(ReturnValue::AllNew);
        for (k, v) in values {
            b = b.expression_attribute_values(k, v);
        }
        match b.send().await {
            Ok(out) => Ok(out.attributes),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_conditional_check_failed_exception() {
                    Ok(None)
                } else {
                    Err(anyhow::Error::new(e).context("UpdateItem"))
                }
            }
        }
    }

    /// Records on a live session that its user re-entered the password at `now` (step-up).
    /// `false`: the session is gone or ended.
    pub async fn mark_step_up(&self, sid: &SessionId, now: OffsetDateTime) -> anyhow::Result<bool> {
        Ok(self
            .update(
                &self.tables.tenants,
                &keys::session(sid),
                "SET step_up_at = :now",
                Some("attribute_exists(pk) AND attribute_not_exists(revoked_at)"),
                vec![(":now", timestamp(now))],
            )
            .await?
            .is_some())
    }

    /// When the user of a session last re-entered the password (step-up), read consistently.
    pub async fn step_up_at(&self, sid: &SessionId) -> anyhow::Result<Option<OffsetDateTime>> {
        match self.get(&self.tables.tenants, &keys::session(sid)).await? {
            Some(it) => ts(&it, STEP_UP_AT),
            None => Ok(None),
        }
    }

    /// Marks sessions revoked (idempotent: already revoked ones keep their first time).
    pub async fn revoke_sessions(
        &self,
        sessions: impl IntoIterator<Item = SessionId>,
        now: OffsetDateTime,
    ) -> anyhow::Result<usize> {
        let mut count = 0;
        for sid in sessions {
            let updated = self
                .update(
                    &self.tables.tenants,
                    &keys::session(&sid),
                    "SET revoked_at = :now",
                    Some("attribute_exists(pk) AND attribute_not_exists(revoked_at)"),
                    vec![(":now", timestamp(now))],
                )
                .await?;
            count += usize::from(updated.is_some());
        }
        Ok(count)
    }

    pub fn session_from_item(it: &Item) -> anyhow::Result<Session> {
        session_from(it)
    }

    pub fn user_from_item(it: &Item) -> anyhow::Result<User> {
        user_from(it)
    }
}
