//! Login, token refresh with rotation and reuse detection, logout, and the session list.

use lambda_http::http::{header, HeaderValue};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared_accounts::auth::jwt::{AccessClaims, ACCESS_TOKEN_TTL_SECS, ISSUER};
use shared_accounts::auth::{password, recovery, tokens, totp};
use shared_accounts::dynamo::{session_item, LoginAccount, StoreError, Write, LOGIN_PASSWORD_HASH};
use shared_accounts::{SecurityEvent, Session, User};
use shared_core::clock::rfc3339;
use shared_core::domain::{Email, SessionId};
use shared_core::dynamo::{s, str_list, timestamp};
use shared_core::error::AppError;
use shared_core::keys;
use shared_mail::Mailer;
use time::{Duration, OffsetDateTime};

use crate::throttle;
use crate::{emails, json_body, no_content, ok, App, Ctx};

/// How many rotated-away refresh hashes a session remembers for reuse detection.
const REMEMBERED_REFRESH_HASHES: usize = 20;

fn invalid_credentials() -> AppError {
    AppError::Unauthorized {
        code: "invalid_credentials",
        message: "The email or password is incorrect.",
    }
}

fn invalid_refresh() -> AppError {
    AppError::Unauthorized {
        code: "invalid_refresh_token",
        message: "The refresh token is invalid or expired; log in again.",
    }
}

impl<M: Mailer> App<M> {
    /// Appends a security event; a failure is logged, not fatal (the action already happened).
    pub async fn log_event(&self, e: SecurityEvent) {
        let id = self.ids.new_id(e.at);
        tracing::info!(
            event = e.event,
            event_id = %id,
            tenant_id = e.tenant_id.as_ref().map(|t| t.as_str()),
            user_id = e.user_id.as_ref().map(|u| u.as_str()),
            session_id = e.session_id.as_ref().map(|x| x.as_str()),
            "security event"
        );
        if let Err(err) = self.store.log_event(&e, &id).await {
            tracing::error!(error = %format!("{err:#}"), event = e.event, "security event not stored");
        }
    }

    pub fn event(&self, name: &'static str, ctx: &Ctx) -> SecurityEvent {
        let mut e = SecurityEvent::new(name, ctx.now);
        e.ip_hash = self.ip_hash(ctx);
        if let Some(c) = &ctx.caller {
            e.tenant_id = Some(c.tenant_id.clone());
            e.user_id = Some(c.user_id.clone());
            e.actor_user_id = Some(c.user_id.clone());
            e.session_id = c.session_id().cloned();
            e.api_key_id = c.api_key_id().cloned();
        }
        e
    }

    /// An access token for `user`'s session `sid`, under the credential epoch `epoch` the user
    /// was read with (writes refuse it once the user's epoch has moved on).
    pub fn access_token(
        &self,
        user: &User,
        sid: &SessionId,
        epoch: i64,
        now: OffsetDateTime,
    ) -> String {
        self.signer.issue(&AccessClaims {
            sub: user.user_id.to_string(),
            tid: user.tenant_id.to_string(),
            role: user.role.as_str().to_string(),
            sid: sid.to_string(),
            cep: epoch,
            iat: now.unix_timestamp(),
            exp: now.unix_timestamp() + ACCESS_TOKEN_TTL_SECS,
            iss: ISSUER.to_string(),
            typ: "access".to_string(),
        })
    }

    pub fn token_pair(
        &self,
        user: &User,
        sid: &SessionId,
        epoch: i64,
        secret: &str,
        now: OffsetDateTime,
    ) -> serde_json::Value {
        json!({
            "access_token": self.access_token(user, sid, epoch, now),
            "refresh_token": tokens::refresh_token(sid, secret),
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_TTL_SECS,
        })
    }

    /// Revokes every live session of a user but `keep`, after a change that bumped the user's
    /// credential epoch. Returns how many ended. The sessions are found from the list the login
    /// transaction keeps on the user item (read consistently, so a session opened in a race
    /// with the change is found) and from the index (sessions opened before that list existed);
    /// `known`: ids read before the user item was deleted (removal).
    pub async fn end_sessions_of(
        &self,
        tenant: &shared_core::domain::TenantId,
        user: &shared_core::domain::UserId,
        keep: Option<&SessionId>,
        known: Vec<SessionId>,
        now: OffsetDateTime,
    ) -> Result<usize, AppError> {
        let mut ids = known;
        ids.extend(self.store.live_session_ids(tenant, user).await?);
        ids.extend(
            self.store
                .sessions_of(user)
                .await?
                .into_iter()
                .filter(|s| s.revoked_at.is_none())
                .map(|s| s.session_id),
        );
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        ids.dedup();
        ids.retain(|s| Some(s) != keep);
        let ended = self.store.revoke_sessions(ids.clone(), now).await?;
        if let Err(err) = self.store.forget_sessions(tenant, user, &ids).await {
            tracing::warn!(error = %format!("{err:#}"), "ended sessions not forgotten");
        }
        Ok(ended)
    }
}

impl<M: Mailer> App<M> {
    /// After a change of the caller's own credentials that bumped the epoch (password change,
    /// MFA on or off): every other session ends, the caller's continues under the new epoch.
    pub async fn continue_after_epoch_bump(
        &self,
        user: &User,
        current: &SessionId,
        now: OffsetDateTime,
    ) -> Result<(), AppError> {
        if let Some((_, epoch)) = self
            .store
            .user_with_epoch(&user.tenant_id, &user.user_id)
            .await?
        {
            self.store.adopt_epoch(current, epoch).await?;
        }
        self.end_sessions_of(&user.tenant_id, &user.user_id, Some(current), vec![], now)
            .await?;
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
    #[serde(default)]
    totp_code: Option<String>,
}

pub async fn login<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: LoginBody = json_body(req)?;
    if body.password.len() > 512 {
        return Err(invalid_credentials());
    }
    let Ok(email) = Email::parse(&body.email) else {
        password::verify_against_dummy(&body.password);
        return Err(invalid_credentials());
    };
    let email_bidx = app.keys.email(&email);
    let ip_hash = app.ip_hash(ctx);
    let counters = throttle::counters_for(&email_bidx, ip_hash.as_deref());
    let counter_keys: Vec<_> = counters.iter().map(|c| c.key.clone()).collect();
    let (account, throttles) = app.store.login_account(&email_bidx, &counter_keys).await?;
    let now = ctx.now.unix_timestamp();

    // The attempt is counted (and maybe refused) before the password check's answer is used.
    // When the counters just read say it will be admitted, the hash runs while it is counted
    // (and while the user is read), so a login waits for the hash, not for the hash after the
    // counts: a refused attempt's result is never looked at. Otherwise (a lock, a window past
    // its free allowance) the count comes first and the hash runs only if admitted, so a
    // throttled guesser costs no hash.
    let (reserved, checked) = if throttle::admits(&counters, &throttles, now) {
        // Boxed: both futures side by side would make every caller's future (and stack) large.
        let (reserved, checked) = tokio::join!(
            Box::pin(reserve(app, ctx, &counters, &throttles)),
            Box::pin(check_password(app, account.as_ref(), &body.password))
        );
        (reserved?, Some(checked?))
    } else {
        (reserve(app, ctx, &counters, &throttles).await?, None)
    };
    let reserved = match reserved {
        Ok(r) => r,
        Err(wait) => {
            let mut e = app.event("login_throttled", ctx);
            e.email_hash = Some(email_bidx.clone());
            if let Some(a) = &account {
                e.tenant_id = Some(a.tenant_id.clone());
                e.user_id = Some(a.user_id.clone());
            }
            app.log_event(e).await;
            return Err(AppError::RateLimited {
                retry_after_secs: wait.max(1) as u64,
            });
        }
    };
    let checked = match checked {
        Some(c) => c,
        None => Box::pin(check_password(app, account.as_ref(), &body.password)).await?,
    };

    let Some((mut user, epoch)) = checked.user else {
        // The same work (one hash) and the same answer as a wrong password: no account
        // enumeration.
        record_failure(app, ctx, &reserved).await?;
        let mut e = app.event("login_failed", ctx);
        e.email_hash = Some(email_bidx);
        app.log_event(e).await;
        return Err(invalid_credentials());
    };
    if !checked.verified {
        record_failure(app, ctx, &reserved).await?;
        let mut e = app.event("login_failed", ctx);
        e.tenant_id = Some(user.tenant_id.clone());
        e.user_id = Some(user.user_id.clone());
        app.log_event(e).await;
        return Err(invalid_credentials());
    }
    // The password is right: whatever follows, this was not a guess that failed.
    let password_ok = |full_success: bool| give_back(app, ctx, &reserved, full_success);
    if !user.email_verified {
        password_ok(false).await;
        return Err(AppError::Forbidden {
            code: "email_not_verified",
            message: "Confirm your email address first: follow the link we emailed you.",
        });
    }

    let mut mfa_update = None;
    if user.mfa.enabled {
        if user.mfa.locked_at.is_some() {
            password_ok(false).await;
            return Err(mfa_locked());
        }
        let Some(code) = body.totp_code.as_deref().filter(|c| !c.trim().is_empty()) else {
            password_ok(false).await;
            return Err(AppError::Unauthorized {
                code: "mfa_required",
                message: "Enter the code from your authenticator app (or a recovery code).",
            });
        };
        // The try is counted before the code is checked: N codes sent at once are N tries, and
        // past the cap none is checked.
        let Some(try_rank) = app
            .store
            .reserve_mfa_try(
                &user.tenant_id,
                &user.user_id,
                user.mfa.failures_window_ends,
                ctx.now,
                throttle::MFA_FAILURE_CAP,
                Duration::seconds(throttle::MFA_WINDOW_SECS),
            )
            .await?
        else {
            password_ok(false).await;
            return Err(mfa_locked());
        };
        let secret = user
            .mfa
            .secret
            .as_deref()
            .and_then(totp::decode_base32)
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("MFA on without a secret")))?;
        if let Some(step) = totp::verify(&secret, code, now, user.mfa.last_step) {
            user.mfa.last_step = Some(step);
            mfa_update = Some(MfaUpdate::Step(step));
        } else if let Some(i) = recovery::find(code, &user.mfa.recovery_hashes) {
            let before = user.mfa.recovery_hashes.clone();
            user.mfa.recovery_hashes.remove(i);
            mfa_update = Some(MfaUpdate::Recovery {
                before,
                after: user.mfa.recovery_hashes.clone(),
            });
        } else {
            record_failure(app, ctx, &reserved).await?;
            let mut e = app.event("login_failed_mfa", ctx);
            e.tenant_id = Some(user.tenant_id.clone());
            e.user_id = Some(user.user_id.clone());
            app.log_event(e).await;
            if try_rank >= throttle::MFA_FAILURE_CAP {
                lock_after_failed_second_factors(app, ctx, &user).await?;
            }
            return Err(invalid_mfa_code());
        }
    }

    let (session, secret) = new_session(app, &user, ctx);
    let mut event = app.event("login_succeeded", ctx);
    event.tenant_id = Some(user.tenant_id.clone());
    event.user_id = Some(user.user_id.clone());
    event.session_id = Some(session.session_id.clone());

    // The login's IP and user agent are technical data: each login puts the user item in the
    // bucket of the day they go (90 days on), so retention removes them unless a later login
    // moved it. Only a verified user logs in, so the bucket is never an unverified sign-up's.
    let mut update = String::from("SET last_login_at = :at, exp_bucket = :lmb");
    let mut values = vec![
        (":at".to_string(), timestamp(ctx.now)),
        (
            ":lmb".to_string(),
            s(shared_core::retention::login_metadata_bucket(
                ctx.now,
                &keys::user(&user.tenant_id, &user.user_id),
            )),
        ),
    ];
    let mut remove = Vec::new();
    for (attr, placeholder, value) in [
        ("last_login_ip", ":ip", ctx.ip.clone()),
        ("last_login_ua", ":ua", ctx.user_agent.clone()),
    ] {
        match value {
            Some(v) => {
                update.push_str(&format!(", {attr} = {placeholder}"));
                values.push((placeholder.to_string(), s(v)));
            }
            None => remove.push(attr),
        }
    }
    match &mfa_update {
        Some(MfaUpdate::Step(step)) => {
            update.push_str(", totp_last_step = :step");
            values.push((":step".into(), shared_core::dynamo::n(*step)));
        }
        Some(MfaUpdate::Recovery { before, after }) => {
            update.push_str(", recovery_hashes = :rh");
            values.push((":rh".into(), str_list(after)));
            values.push((":rh_before".into(), str_list(before)));
        }
        None => {}
    }
    if mfa_update.is_some() {
        // A second factor passed: the count of failed ones starts again.
        remove.extend(["mfa_failures", "mfa_window_ends"]);
    }
    if !remove.is_empty() {
        update.push_str(&format!(" REMOVE {}", remove.join(", ")));
    }
    // The session joins the user's list in the same write, so a change that ends sessions
    // finds it without an index.
    update.push_str(" ADD live_sessions :sid");
    values.push((
        ":sid".into(),
        shared_core::dynamo::AttributeValue::Ss(vec![session.session_id.to_string()]),
    ));
    values.push((":ep".into(), shared_core::dynamo::n(epoch)));
    let tables = app.store.tables().clone();
    let event_item = app.store.event_item(&event, &app.ids.new_id(ctx.now));
    let mfa_condition = match &mfa_update {
        // A TOTP code is accepted once: the step must still be newer than the stored one.
        Some(MfaUpdate::Step(_)) => {
            "attribute_not_exists(totp_last_step) OR totp_last_step < :step"
        }
        // A recovery code is consumed once: the list must still hold it as it was read, so of
        // logins racing with one code exactly one removes it.
        Some(MfaUpdate::Recovery { .. }) => "recovery_hashes = :rh_before",
        None => "attribute_exists(pk)",
    };
    // The credentials checked are still the user's: a password reset (or any change that bumps
    // the epoch) committed since the user was read makes this login fail instead of opening a
    // session that would outlive it.
    let condition = Some(format!(
        "({mfa_condition}) AND (attribute_not_exists(cred_epoch) OR cred_epoch = :ep)"
    ));
    let mut session_it = session_item(&session);
    session_it.insert("cred_epoch".into(), shared_core::dynamo::n(epoch));
    let mut writes = vec![
        (
            tables.tenants.as_str(),
            Write::Put(session_it, Some("attribute_not_exists(pk)")),
        ),
        (
            tables.tenants.as_str(),
            Write::Update {
                key: keys::user(&user.tenant_id, &user.user_id),
                update,
                condition,
                values,
                names: vec![],
            },
        ),
        (tables.security_log.as_str(), Write::Put(event_item, None)),
    ];
    if let Some(c) = counters.iter().find(|c| c.cleared_by_success) {
        // This client proved it knows the password: its own counter for the account resets,
        // in the same round trip.
        writes.push((tables.ops.as_str(), Write::Delete(c.key.clone(), None)));
    }
    // The other counts are given back in the same round trip too (a count whose lock this
    // attempt claimed is given back after, see `give_back`). This attempt's own count is still
    // there (its window runs 15 minutes; nothing else takes a count back but its own attempt),
    // so the condition holds.
    for c in reserved.iter().filter(|c| folded_give_back(c)) {
        writes.push((
            tables.ops.as_str(),
            throttle::give_back_write(&c.counter.key),
        ));
    }
    if checked.copy_stale {
        // The login index's copy of the hash was missing (an item from before the copy) or
        // not the user's: the user's, as read under the epoch the condition above holds.
        writes.push((
            tables.tenants.as_str(),
            Write::Update {
                key: keys::login(&email_bidx),
                update: format!("SET {LOGIN_PASSWORD_HASH} = :ph"),
                condition: Some("tenant_id = :tn AND user_id = :us".into()),
                values: vec![
                    (":ph".into(), s(&user.password_hash)),
                    (":tn".into(), s(user.tenant_id.as_str())),
                    (":us".into(), s(user.user_id.as_str())),
                ],
                names: vec![],
            },
        ));
    }
    match app.store.transact(writes).await {
        Ok(()) => {}
        Err(StoreError::Condition) if mfa_update.is_some() => return Err(invalid_mfa_code()),
        Err(StoreError::Condition) => return Err(invalid_credentials()),
        // Landed with its answer lost: the session exists exactly when the transaction did.
        // A 503 would make the client log in again and leave this session open beside the
        // next one.
        Err(StoreError::Other(e)) => {
            shared_core::aws::landed_despite(e, || async {
                Ok(app
                    .store
                    .session_with_epoch(&session.session_id)
                    .await?
                    .is_some())
            })
            .await?
        }
    }
    password_ok(true).await;

    let seen_before = user
        .last_login
        .as_ref()
        .is_none_or(|l| l.user_agent == ctx.user_agent);
    if !seen_before {
        let when = rfc3339(ctx.now);
        let device = ctx
            .user_agent
            .clone()
            .unwrap_or_else(|| "unknown browser".into());
        let link = format!("{}/reset-password", app.app_base_url);
        emails::send(
            &app.mailer,
            user.email.as_str(),
            &emails::NEW_SIGN_IN,
            &[
                ("name", &user.name),
                ("when", &when),
                ("device", &device),
                ("link", &link),
            ],
        )
        .await;
    }
    Ok(ok(app.token_pair(
        &user,
        &session.session_id,
        epoch,
        &secret,
        ctx.now,
    )))
}

enum MfaUpdate {
    Step(i64),
    Recovery {
        before: Vec<String>,
        after: Vec<String>,
    },
}

fn invalid_mfa_code() -> AppError {
    AppError::Unauthorized {
        code: "invalid_mfa_code",
        message: "The code is not valid.",
    }
}

fn mfa_locked() -> AppError {
    AppError::Forbidden {
        code: "mfa_locked",
        message: "Too many wrong codes: sign-in is locked. Reset your password to unlock it.",
    }
}

/// The try that reached the cap failed: login is locked until a password reset. The user is
/// emailed once, by the call that set the lock.
async fn lock_after_failed_second_factors<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    user: &User,
) -> Result<(), AppError> {
    if !app
        .store
        .lock_mfa(
            &user.tenant_id,
            &user.user_id,
            ctx.now,
            throttle::MFA_FAILURE_CAP,
        )
        .await?
    {
        return Ok(());
    }
    let mut e = app.event("mfa_locked", ctx);
    e.tenant_id = Some(user.tenant_id.clone());
    e.user_id = Some(user.user_id.clone());
    app.log_event(e).await;
    let when = rfc3339(ctx.now);
    let link = format!("{}/reset-password", app.app_base_url);
    emails::send(
        &app.mailer,
        user.email.as_str(),
        &emails::MFA_LOCKED,
        &[("name", &user.name), ("when", &when), ("link", &link)],
    )
    .await;
    Ok(())
}

/// An attempt counted and admitted by one counter; `claimed`: the lock it took to be checked.
pub(crate) struct Counted<'a> {
    counter: &'a throttle::Counter,
    rank: u32,
    claimed: Option<i64>,
}

/// Counts this attempt on every counter, most specific first, and decides. `Err(wait)`: refused
/// (a lock is on, or the attempt raced past the free allowance), with the seconds to wait.
async fn reserve<'a, M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    counters: &'a [throttle::Counter],
    throttles: &[shared_accounts::dynamo::Throttle],
) -> Result<Result<Vec<Counted<'a>>, i64>, AppError> {
    use throttle::Decision;
    let now = ctx.now.unix_timestamp();
    let window = Duration::seconds(throttle::WINDOW_SECS);
    let mut counted = Vec::with_capacity(counters.len());
    for (c, t) in counters.iter().zip(throttles) {
        if t.window_ends != 0 && t.window_ends <= now {
            app.store.reset_ended_window(&c.key, ctx.now).await?;
        }
        let r = app.store.reserve_attempt(&c.key, ctx.now, window).await?;
        let claimed = match throttle::decide(c.rule, r.rank, r.locked_until, now) {
            Decision::Check => None,
            Decision::Refuse { wait } => return Ok(Err(wait)),
            Decision::Claim { until } => {
                if !app.store.claim_ended_lock(&c.key, ctx.now, until).await? {
                    return Ok(Err(until - now));
                }
                Some(until)
            }
            Decision::LockAndRefuse { until } => {
                app.store.raise_lock(&c.key, until).await?;
                return Ok(Err(until - now));
            }
        };
        counted.push(Counted {
            counter: c,
            rank: r.rank,
            claimed,
        });
    }
    Ok(Ok(counted))
}

/// A checked attempt failed: each counter locks for the wait its rank earns.
async fn record_failure<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    counted: &[Counted<'_>],
) -> Result<(), AppError> {
    let now = ctx.now.unix_timestamp();
    for c in counted {
        let delay = throttle::delay_after(c.counter.rule, c.rank);
        if delay > 0 {
            app.store.raise_lock(&c.counter.key, now + delay).await?;
        }
    }
    Ok(())
}

/// The password was right: the counts are given back (the counter a full success clears is
/// deleted with the login instead). Best effort: a count kept only errs on the safe side.
async fn give_back<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    counted: &[Counted<'_>],
    full_success: bool,
) {
    for c in counted {
        // A full success cleared or gave back the others in its own transaction.
        if full_success && (c.counter.cleared_by_success || folded_give_back(c)) {
            continue;
        }
        if let Err(err) = app
            .store
            .give_back_attempt(&c.counter.key, c.claimed, ctx.now)
            .await
        {
            tracing::warn!(error = %format!("{err:#}"), "login attempt not given back");
        }
    }
}

/// A count a successful login gives back inside its own transaction: one this attempt added
/// without claiming a lock (a claimed lock is lifted only if unchanged, which a transaction
/// could not tell from a failure of the login itself).
fn folded_give_back(c: &Counted<'_>) -> bool {
    !c.counter.cleared_by_success && c.claimed.is_none()
}

/// A login's password check: the user read, and whether the password is theirs.
struct Checked {
    /// The user and its credential epoch; `None`: no such account (the dummy hash ran).
    user: Option<(User, i64)>,
    verified: bool,
    /// The login index's copy of the hash is missing or not the user's: the login refreshes it.
    copy_stale: bool,
}

/// Reads the user the login index names and verifies the password: against the login index's
/// copy of the hash while the user item is read, then, should the copy not be the user's hash,
/// against the user's (the user item is what counts). An unknown account costs the dummy hash:
/// the same work as a wrong password.
async fn check_password<M: Mailer>(
    app: &App<M>,
    account: Option<&LoginAccount>,
    password: &str,
) -> Result<Checked, AppError> {
    let Some(account) = account else {
        verify(password, None).await;
        return Ok(Checked {
            user: None,
            verified: false,
            copy_stale: false,
        });
    };
    let (user, early) = match &account.password_hash {
        Some(copy) => {
            let (user, verified) = tokio::join!(
                app.store
                    .user_with_epoch(&account.tenant_id, &account.user_id),
                verify(password, Some(copy.clone()))
            );
            (user?, Some((copy, verified)))
        }
        None => (
            app.store
                .user_with_epoch(&account.tenant_id, &account.user_id)
                .await?,
            None,
        ),
    };
    let Some((user, epoch)) = user else {
        if early.is_none() {
            verify(password, None).await;
        }
        return Ok(Checked {
            user: None,
            verified: false,
            copy_stale: false,
        });
    };
    let verified = match early {
        Some((copy, verified)) if *copy == user.password_hash => verified,
        _ => verify(password, Some(user.password_hash.clone())).await,
    };
    let copy_stale = account.password_hash.as_deref() != Some(user.password_hash.as_str());
    Ok(Checked {
        user: Some((user, epoch)),
        verified,
        copy_stale,
    })
}

/// One argon2id verification, on a blocking thread so the requests of the same login proceed
/// meanwhile; `None`: against the dummy hash (never a match).
async fn verify(password: &str, phc: Option<String>) -> bool {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => password::verify_password(&password, &phc),
        None => {
            password::verify_against_dummy(&password);
            false
        }
    })
    .await
    .unwrap_or(false)
}

pub fn new_session<M: Mailer>(app: &App<M>, user: &User, ctx: &Ctx) -> (Session, String) {
    let secret = tokens::new_secret();
    let sid = SessionId::parse(&app.new_id("se")).expect("generated ids are valid");
    let idle = ctx.now + Duration::days(app.settings.refresh_idle_days);
    let absolute = ctx.now + Duration::days(app.settings.refresh_absolute_days);
    (
        Session {
            session_id: sid,
            user_id: user.user_id.clone(),
            tenant_id: user.tenant_id.clone(),
            refresh_hash: tokens::hash_secret(&secret),
            previous_hashes: vec![],
            created_at: ctx.now,
            last_used_at: ctx.now,
            idle_expires_at: idle.min(absolute),
            absolute_expires_at: absolute,
            revoked_at: None,
            ip: ctx.ip.clone(),
            user_agent: ctx.user_agent.clone(),
        },
        secret,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

pub async fn refresh<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: RefreshBody = json_body(req)?;
    let (sid, secret) =
        tokens::parse_refresh_token(&body.refresh_token).ok_or_else(invalid_refresh)?;
    let (session, session_epoch) = app
        .store
        .session_with_epoch(&sid)
        .await?
        .ok_or_else(invalid_refresh)?;
    let presented = tokens::hash_secret(&secret);

    if !tokens::constant_time_eq(&presented, &session.refresh_hash) {
        if session
            .previous_hashes
            .iter()
            .any(|h| tokens::constant_time_eq(h, &presented))
        {
            // A rotated-away token came back: it was stolen or replayed. End the session.
            app.store
                .revoke_sessions([session.session_id.clone()], ctx.now)
                .await?;
            let mut e = app.event("refresh_token_reused", ctx);
            e.tenant_id = Some(session.tenant_id.clone());
            e.user_id = Some(session.user_id.clone());
            e.session_id = Some(session.session_id.clone());
            app.log_event(e).await;
            return Err(AppError::Unauthorized {
                code: "refresh_token_reused",
                message: "This refresh token was already used; the session has been ended.",
            });
        }
        return Err(invalid_refresh());
    }
    if !session.is_live(ctx.now) {
        return Err(invalid_refresh());
    }
    let (user, user_epoch) = app
        .store
        .user_with_epoch(&session.tenant_id, &session.user_id)
        .await?
        .ok_or_else(invalid_refresh)?;
    if session_epoch != user_epoch {
        // Opened under credentials that have changed since (a reset, a role change, ...): the
        // session ends, whether or not the change found it.
        app.store
            .revoke_sessions([session.session_id.clone()], ctx.now)
            .await?;
        return Err(invalid_refresh());
    }

    let new_secret = tokens::new_secret();
    let mut previous = session.previous_hashes.clone();
    previous.push(session.refresh_hash.clone());
    let skip = previous.len().saturating_sub(REMEMBERED_REFRESH_HASHES);
    let previous: Vec<String> = previous.into_iter().skip(skip).collect();
    let idle =
        (ctx.now + Duration::days(app.settings.refresh_idle_days)).min(session.absolute_expires_at);
    let new_hash = tokens::hash_secret(&new_secret);
    let rotated = app
        .store
        .update(
            &app.store.tables().tenants,
            &keys::session(&sid),
            "SET refresh_hash = :new, previous_hashes = :prev, last_used_at = :now, idle_expires_at = :idle",
            // Two refreshes racing with one token: only the first rotates. `refresh_hash = :new`
            // is this very rotation already applied: the SDK sent it again because the first
            // answer was lost (`:new` hashes a secret only this call knows).
            Some("(refresh_hash = :old OR refresh_hash = :new) AND attribute_not_exists(revoked_at)"),
            vec![
                (":new", s(&new_hash)),
                (":prev", str_list(&previous)),
                (":now", timestamp(ctx.now)),
                (":idle", timestamp(idle)),
                (":old", s(&session.refresh_hash)),
            ],
        )
        .await;
    let updated = match rotated {
        Ok(updated) => updated.is_some(),
        // Landed with its answer lost: the session holds our hash. Answering 503 instead would
        // send the client back with the old token, which is by then a reused one.
        Err(err) => {
            shared_core::aws::landed_despite(err, || async {
                Ok(app
                    .store
                    .session_with_epoch(&sid)
                    .await?
                    .is_some_and(|(stored, _)| stored.refresh_hash == new_hash))
            })
            .await?;
            true
        }
    };
    if !updated {
        return Err(invalid_refresh());
    }
    Ok(ok(app.token_pair(
        &user,
        &sid,
        user_epoch,
        &new_secret,
        ctx.now,
    )))
}

pub async fn logout<M: Mailer>(app: &App<M>, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    let caller = ctx.caller()?;
    app.store
        .revoke_sessions([caller.require_session()?.clone()], ctx.now)
        .await?;
    app.log_event(app.event("logout", ctx)).await;
    Ok(no_content())
}

pub async fn logout_all<M: Mailer>(app: &App<M>, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    let caller = ctx.caller()?;
    app.store
        .bump_epoch(&caller.tenant_id, &caller.user_id)
        .await?;
    let ended = app
        .end_sessions_of(&caller.tenant_id, &caller.user_id, None, vec![], ctx.now)
        .await?;
    let mut e = app.event("logout_all", ctx);
    e.detail = Some(format!("sessions={ended}"));
    app.log_event(e).await;
    Ok(no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepUpBody {
    password: String,
}

/// `POST /v1/auth/step-up {password}`: the caller re-enters the password, which opens the routes
/// of [`super::STEP_UP_ROUTES`] to this session for [`crate::STEP_UP_TTL_SECS`]. Every attempt
/// is counted before argon2 runs, on the user's step-up counter
/// ([`throttle::step_up_counters`]), with the login throttles' rules and atomicity.
pub async fn step_up<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: StepUpBody = json_body(req)?;
    let caller = ctx.caller()?;
    let user = super::account::current_user(app, ctx).await?;
    let counters = throttle::step_up_counters(&caller.tenant_id, &caller.user_id);
    let counter_keys: Vec<_> = counters.iter().map(|c| c.key.clone()).collect();
    let email_bidx = app.keys.email(&user.email);
    let (_, throttles) = app.store.login_lookup(&email_bidx, &counter_keys).await?;
    let reserved = match reserve(app, ctx, &counters, &throttles).await? {
        Ok(r) => r,
        Err(wait) => {
            app.log_event(app.event("step_up_throttled", ctx)).await;
            return Err(AppError::RateLimited {
                retry_after_secs: wait.max(1) as u64,
            });
        }
    };
    if body.password.len() > 512 || !password::verify_password(&body.password, &user.password_hash)
    {
        record_failure(app, ctx, &reserved).await?;
        app.log_event(app.event("step_up_failed", ctx)).await;
        let mut f = shared_core::error::FieldErrors::new();
        f.insert("password".into(), "is not your current password".into());
        return Err(AppError::invalid_fields(f));
    }
    give_back(app, ctx, &reserved, false).await;
    if !app
        .store
        .mark_step_up(caller.require_session()?, ctx.now)
        .await?
    {
        return Err(AppError::Unauthorized {
            code: "session_ended",
            message: "This session has ended; log in again.",
        });
    }
    app.log_event(app.event("step_up", ctx)).await;
    let until = ctx.now + Duration::seconds(crate::STEP_UP_TTL_SECS);
    Ok(ok(json!({ "step_up_expires_at": rfc3339(until) })))
}

pub async fn list<M: Mailer>(app: &App<M>, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    let caller = ctx.caller()?;
    let sessions = app.store.sessions_of(&caller.user_id).await?;
    let items: Vec<_> = sessions
        .iter()
        .filter(|s| s.is_live(ctx.now))
        .map(|s| {
            json!({
                "id": s.session_id.as_str(),
                "created_at": rfc3339(s.created_at),
                "last_used_at": rfc3339(s.last_used_at),
                "expires_at": rfc3339(s.idle_expires_at.min(s.absolute_expires_at)),
                "ip": s.ip,
                "user_agent": s.user_agent,
                "current": caller.session_id() == Some(&s.session_id),
            })
        })
        .collect();
    let mut resp = ok(json!({ "items": items, "next_cursor": null }));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

pub async fn end<M: Mailer>(app: &App<M>, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    let caller = ctx.caller()?;
    let sid = ctx
        .params
        .first()
        .and_then(|p| SessionId::parse(p).ok())
        .ok_or(AppError::NotFound("session_not_found"))?;
    match app.store.session(&sid).await? {
        // Another user's session is "not found", never "forbidden": ids are not confirmed.
        Some(s) if s.user_id == caller.user_id && s.tenant_id == caller.tenant_id => {
            app.store.revoke_sessions([sid.clone()], ctx.now).await?;
            let mut e = app.event("session_revoked", ctx);
            e.session_id = Some(sid);
            app.log_event(e).await;
            Ok(no_content())
        }
        _ => Err(AppError::NotFound("session_not_found")),
    }
}
