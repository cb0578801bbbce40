//! Sign-up, email verification, password reset, the caller's own profile, and account closure.

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared_accounts::auth::permissions::Role;
use shared_accounts::auth::{password, tokens};
use shared_accounts::dynamo::{
    tenant_item, token_item, unverified_login_item, user_item, StoreError, Write, LOGIN_CLAIMABLE,
    LOGIN_PASSWORD_HASH,
};
use shared_accounts::policy::{PolicyAcceptance, PolicyVersions};
use shared_accounts::{Mfa, OneTimeToken, Tenant, TokenKind, User};
use shared_core::clock::rfc3339;
use shared_core::domain::{Email, Phone, TenantId, TenantStatus, UserId};
use shared_core::dynamo::{s, timestamp, AttributeValue};
use shared_core::error::{AppError, FieldErrors};
use shared_core::keys;
use shared_mail::outbound::{MailKind, MailRoute};
use shared_mail::Mailer;
use time::Duration;

use crate::{accepted, created, emails, json_body, ok, App, Ctx};

pub(crate) fn invalid_token() -> AppError {
    AppError::validation("invalid_token", "This link is invalid, used or expired.")
}

pub(crate) fn text_field(
    errors: &mut FieldErrors,
    name: &str,
    value: &str,
    max: usize,
) -> Option<String> {
    let v = value.trim();
    if v.is_empty() {
        errors.insert(name.into(), "is required".into());
        None
    } else if v.chars().count() > max {
        errors.insert(name.into(), format!("is longer than {max} characters"));
        None
    } else if v.chars().any(char::is_control) {
        errors.insert(name.into(), "contains control characters".into());
        None
    } else {
        Some(v.to_string())
    }
}

/// Checks a new password against the policy, reporting it as a field error.
pub(crate) fn new_password(
    errors: &mut FieldErrors,
    field: &str,
    pw: &str,
    email: Option<&Email>,
) -> bool {
    match password::check_policy(pw, email.map(|e| e.as_str())) {
        Ok(()) => true,
        Err(msg) => {
            errors.insert(field.into(), msg.into());
            false
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignupBody {
    email: String,
    password: String,
    name: String,
    business_name: String,
    /// The privacy-policy and terms versions the person was shown and accepted.
    policy_version: String,
    terms_version: String,
}

/// Checks that a person accepted the versions in force: `409 policy_version_outdated` when
/// either is another one.
pub(crate) fn require_current_versions<M: Mailer>(
    app: &App<M>,
    policy_version: &str,
    terms_version: &str,
) -> Result<PolicyVersions, AppError> {
    let current = &app.settings.policy;
    if policy_version == current.policy && terms_version == current.terms {
        return Ok(current.clone());
    }
    Err(AppError::Conflict {
        code: "policy_version_outdated",
        message: "The versions accepted are not the privacy policy and terms in force \
                  (GET /v1/auth/policy-versions names them): show those and ask again.",
    })
}

pub async fn signup<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: SignupBody = json_body(req)?;
    let mut errors = FieldErrors::new();
    let email = match Email::parse(&body.email) {
        Ok(e) => Some(e),
        Err(m) => {
            errors.insert("email".into(), m.into());
            None
        }
    };
    new_password(&mut errors, "password", &body.password, email.as_ref());
    let name = text_field(&mut errors, "name", &body.name, 200);
    let business = text_field(&mut errors, "business_name", &body.business_name, 200);
    let (Some(email), Some(name), Some(business), true) =
        (email, name, business, errors.is_empty())
    else {
        return Err(AppError::invalid_fields(errors));
    };
    let versions = require_current_versions(app, &body.policy_version, &body.terms_version)?;

    // Counted before any work: per client (429 past the limit), then per address (past it the
    // answer is the same and nothing is created or sent).
    app.limit_ip(ctx, MailRoute::Signup).await?;
    let answer = created(json!({
        "status": "verification_email_sent",
        "message": "Check your inbox to confirm your email address."
    }));
    if !app.may_mail(ctx, MailKind::Signup, &email).await? {
        return Ok(answer);
    }

    let hash = password::hash_password(&body.password)?;
    let tenant_id = TenantId::parse(&app.new_id("tn")).map_err(|e| AppError::Internal(e.into()))?;
    let user_id = UserId::parse(&app.new_id("us")).map_err(|e| AppError::Internal(e.into()))?;
    let user = User {
        user_id: user_id.clone(),
        tenant_id: tenant_id.clone(),
        email: email.clone(),
        name: name.clone(),
        phone: None,
        role: Role::Owner,
        password_hash: hash,
        email_verified: false,
        created_at: ctx.now,
        mfa: Mfa::default(),
        last_login: None,
        policy: Some(PolicyAcceptance::both(&versions, ctx.now)),
    };
    let tenant = Tenant {
        tenant_id: tenant_id.clone(),
        business_name: business.clone(),
        status: TenantStatus::Active,
        owner_user_id: user_id.clone(),
        created_at: ctx.now,
        closed_at: None,
        erase_after: None,
    };
    let secret = tokens::new_secret();
    let token = OneTimeToken {
        secret_hash: tokens::hash_secret(&secret),
        kind: TokenKind::VerifyEmail,
        tenant_id: tenant_id.clone(),
        user_id: Some(user_id.clone()),
        email: None,
        email_sealed: None,
        role: None,
        invited_by: None,
        expires_at: ctx.now + Duration::hours(app.settings.verify_email_hours),
    };
    // Unverified, the sign-up holds no claim on the address: retention removes it once the
    // verification window is over (rule `unverified-signup`, bucketed on the user item), and a
    // later sign-up, an accepted invitation or the verification of another sign-up of the
    // address takes the login-index item over meanwhile.
    let mut user_it = user_item(&user);
    if let Some(a) = &user.policy {
        user_it.extend(shared_accounts::policy::acceptance_attributes(a, "signup"));
    }
    user_it.insert(
        "exp_bucket".into(),
        s(shared_core::retention::expiry_bucket_at(
            shared_core::retention::rule::UNVERIFIED_SIGNUP,
            token.expires_at,
            &keys::user(&tenant_id, &user_id),
        )),
    );
    let mut event = app.event("signup", ctx);
    event.tenant_id = Some(tenant_id.clone());
    event.user_id = Some(user_id.clone());
    let t = app.store.tables().clone();
    let result = app
        .store
        .transact(vec![
            (
                t.tenants.as_str(),
                Write::Put(
                    unverified_login_item(&app.keys.email(&email), &tenant_id, &user_id),
                    Some(LOGIN_CLAIMABLE),
                ),
            ),
            (
                t.tenants.as_str(),
                Write::Put(tenant_item(&tenant), Some("attribute_not_exists(pk)")),
            ),
            (
                t.tenants.as_str(),
                Write::Put(user_it, Some("attribute_not_exists(pk)")),
            ),
            (t.tenants.as_str(), Write::Put(token_item(&token), None)),
            (
                t.security_log.as_str(),
                Write::Put(app.store.event_item(&event, &app.ids.new_id(ctx.now)), None),
            ),
        ])
        .await;
    // Landed with its answer lost: the user item only this sign-up creates exists. Carry on
    // as for a success (the email goes out); a 503 would make the client sign up again and
    // leave a second, unverifiable workspace behind.
    let result = match result {
        Err(StoreError::Other(e)) => shared_core::aws::landed_despite(e, || async {
            Ok(app.store.user(&tenant_id, &user_id).await?.is_some())
        })
        .await
        .map_err(StoreError::Other),
        other => other,
    };
    match result {
        Ok(()) => {
            let link = app.link("/verify-email", &secret);
            emails::send(
                &app.mailer,
                email.as_str(),
                &emails::VERIFY_EMAIL,
                &[
                    ("name", &name),
                    ("business_name", &business),
                    ("link", &link),
                ],
            )
            .await;
        }
        Err(StoreError::Condition) => {
            // The email already has an account. Answer exactly as for a new one (no account
            // enumeration) and tell the address's owner instead.
            let link = format!("{}/login", app.app_base_url);
            emails::send(
                &app.mailer,
                email.as_str(),
                &emails::SIGNUP_EXISTING,
                &[("link", &link)],
            )
            .await;
        }
        Err(StoreError::Other(e)) => return Err(AppError::Internal(e)),
    }
    Ok(answer)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    token: String,
}

/// A live one-time token of `kind`, by its secret.
pub(crate) async fn live_token<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    secret: &str,
    kind: TokenKind,
) -> Result<OneTimeToken, AppError> {
    if secret.is_empty() || secret.len() > 256 {
        return Err(invalid_token());
    }
    match app.store.token(&tokens::hash_secret(secret)).await? {
        Some(t) if t.kind == kind && t.expires_at > ctx.now => Ok(t),
        _ => Err(invalid_token()),
    }
}

/// Deleting the token in the same transaction as its effect makes it single-use.
pub(crate) fn consume(t: &OneTimeToken) -> Write {
    Write::Delete(
        keys::one_time_token(&t.secret_hash),
        Some("attribute_exists(pk)"),
    )
}

/// A write that changes nothing and fails unless the tenant record exists.
fn tenant_exists(t: &TenantId) -> Write {
    Write::Update {
        key: keys::tenant(t),
        update: "SET #st = #st".into(),
        condition: Some("attribute_exists(pk)".into()),
        values: vec![],
        names: vec![("#st".into(), "status".into())],
    }
}

/// Makes the email's login-index item name this user for good: it may take over the item of a
/// sign-up not verified yet (receiving the emailed link proves the address), never the item of
/// another verified account. It carries the copy of the user's password hash (`password_hash`,
/// as the user item has it after the same transaction) that a login checks first.
pub(crate) fn claim_login(
    email_bidx: &str,
    tenant: &TenantId,
    user: &UserId,
    password_hash: &str,
) -> Write {
    Write::Update {
        key: keys::login(email_bidx),
        update: format!(
            "SET tenant_id = :tn, user_id = :us, {LOGIN_PASSWORD_HASH} = :ph REMOVE unverified"
        ),
        condition: Some(format!("{LOGIN_CLAIMABLE} OR user_id = :us")),
        values: vec![
            (":tn".into(), s(tenant.as_str())),
            (":us".into(), s(user.as_str())),
            (":ph".into(), s(password_hash)),
        ],
        names: vec![],
    }
}

/// Refreshes the login index's copy of the user's password hash, in the transaction that
/// changes the hash; the item must still name the user.
fn refresh_login_copy(email_bidx: &str, user: &User, password_hash: &str) -> Write {
    Write::Update {
        key: keys::login(email_bidx),
        update: format!("SET {LOGIN_PASSWORD_HASH} = :ph"),
        condition: Some("tenant_id = :tn AND user_id = :us".into()),
        values: vec![
            (":ph".into(), s(password_hash)),
            (":tn".into(), s(user.tenant_id.as_str())),
            (":us".into(), s(user.user_id.as_str())),
        ],
        names: vec![],
    }
}

pub async fn verify_email<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: TokenBody = json_body(req)?;
    let token = live_token(app, ctx, &body.token, TokenKind::VerifyEmail).await?;
    let user_id = token.user_id.clone().ok_or_else(invalid_token)?;
    let user = app
        .store
        .user(&token.tenant_id, &user_id)
        .await?
        .ok_or_else(invalid_token)?;
    let mut e = app.event("email_verified", ctx);
    e.tenant_id = Some(token.tenant_id.clone());
    e.user_id = Some(user_id.clone());
    let t = app.store.tables().clone();
    let verified = app
        .store
        .transact(vec![
            (t.tenants.as_str(), consume(&token)),
            (
                t.tenants.as_str(),
                Write::Update {
                    key: keys::user(&token.tenant_id, &user_id),
                    // Verified: out of the unverified sign-ups' retention.
                    update: "SET email_verified = :t REMOVE exp_bucket".into(),
                    condition: Some("attribute_exists(pk)".into()),
                    values: vec![(":t".into(), AttributeValue::Bool(true))],
                    names: vec![],
                },
            ),
            // The sign-up's workspace is still there (retention removes it with the user).
            (t.tenants.as_str(), tenant_exists(&token.tenant_id)),
            // The address is now this account's, unless another account holds it for good.
            (
                t.tenants.as_str(),
                claim_login(
                    &app.keys.email(&user.email),
                    &user.tenant_id,
                    &user.user_id,
                    &user.password_hash,
                ),
            ),
            (
                t.security_log.as_str(),
                Write::Put(app.store.event_item(&e, &app.ids.new_id(ctx.now)), None),
            ),
        ])
        .await;
    match verified {
        Ok(()) => {}
        Err(StoreError::Condition) => return Err(invalid_token()),
        // Landed with its answer lost: the token gone and the user verified is exactly this
        // transaction's effect. A 503 would send the user back with a link that no longer works.
        Err(StoreError::Other(e)) => {
            shared_core::aws::landed_despite(e, || async {
                let token_gone = app.store.token(&token.secret_hash).await?.is_none();
                Ok(token_gone
                    && app
                        .store
                        .user(&token.tenant_id, &user_id)
                        .await?
                        .is_some_and(|u| u.email_verified))
            })
            .await?
        }
    }
    Ok(ok(json!({ "status": "verified" })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    email: String,
}

pub async fn password_reset<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: ResetBody = json_body(req)?;
    let answer = accepted(json!({
        "status": "accepted",
        "message": "If an account uses this address, a reset link is on its way."
    }));
    app.limit_ip(ctx, MailRoute::PasswordReset).await?;
    let Ok(email) = Email::parse(&body.email) else {
        return Ok(answer);
    };
    let Some((tenant, user_id)) = app.store.login_owner(&app.keys.email(&email)).await? else {
        let mut e = app.event("password_reset_requested_unknown", ctx);
        e.email_hash = Some(app.keys.email(&email));
        app.log_event(e).await;
        return Ok(answer);
    };
    // Past the address's reset emails of the hour: the same answer, no link.
    if !app.may_mail(ctx, MailKind::PasswordReset, &email).await? {
        return Ok(answer);
    }
    let secret = tokens::new_secret();
    let token = OneTimeToken {
        secret_hash: tokens::hash_secret(&secret),
        kind: TokenKind::PasswordReset,
        tenant_id: tenant.clone(),
        user_id: Some(user_id.clone()),
        email: None,
        email_sealed: None,
        role: None,
        invited_by: None,
        expires_at: ctx.now + Duration::minutes(app.settings.password_reset_minutes),
    };
    // The link carries the credential epoch it was issued under: a reset or a password change
    // (which bump it) kills every other outstanding link.
    let epoch = match app.store.user_with_epoch(&tenant, &user_id).await? {
        Some((_, epoch)) => epoch,
        None => return Ok(answer),
    };
    let mut item = token_item(&token);
    item.insert("cred_epoch".into(), shared_core::dynamo::n(epoch));
    app.store
        .transact(vec![(
            app.store.tables().tenants.as_str(),
            Write::Put(item, None),
        )])
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
    let mut e = app.event("password_reset_requested", ctx);
    e.tenant_id = Some(tenant);
    e.user_id = Some(user_id);
    app.log_event(e).await;
    let link = app.link("/reset-password", &secret);
    emails::send(
        &app.mailer,
        email.as_str(),
        &emails::PASSWORD_RESET,
        &[("link", &link)],
    )
    .await;
    Ok(answer)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetConfirmBody {
    token: String,
    new_password: String,
}

pub async fn password_reset_confirm<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: ResetConfirmBody = json_body(req)?;
    let token = live_token(app, ctx, &body.token, TokenKind::PasswordReset).await?;
    let user_id = token.user_id.clone().ok_or_else(invalid_token)?;
    let user = app
        .store
        .user(&token.tenant_id, &user_id)
        .await?
        .ok_or_else(invalid_token)?;
    let mut errors = FieldErrors::new();
    if !new_password(
        &mut errors,
        "new_password",
        &body.new_password,
        Some(&user.email),
    ) {
        return Err(AppError::invalid_fields(errors));
    }
    let token_epoch = app
        .store
        .token_epoch(&token.secret_hash)
        .await?
        .ok_or_else(invalid_token)?;
    let hash = password::hash_password(&body.new_password)?;
    let mut e = app.event("password_reset", ctx);
    e.tenant_id = Some(user.tenant_id.clone());
    e.user_id = Some(user.user_id.clone());
    let t = app.store.tables().clone();
    app.store
        .transact(vec![
            (t.tenants.as_str(), consume(&token)),
            (
                t.tenants.as_str(),
                Write::Update {
                    key: keys::user(&user.tenant_id, &user.user_id),
                    // Receiving the link proves the address, too; and it unlocks a login locked
                    // by failed second factors. An unverified sign-up leaves its retention
                    // (`exp_bucket`); a verified user's bucket is its last login's (the day its
                    // IP and user agent go) and stays.
                    update: format!(
                        "SET password_hash = :h, email_verified = :t \
                         REMOVE mfa_locked_at, mfa_failures, mfa_window_ends{} \
                         ADD cred_epoch :one",
                        if user.email_verified {
                            ""
                        } else {
                            ", exp_bucket"
                        }
                    ),
                    // Issued under the current credentials: an older link died with the last
                    // reset or password change.
                    condition: Some(
                        "attribute_exists(pk) AND (attribute_not_exists(cred_epoch) \
                         OR cred_epoch = :tep)"
                            .into(),
                    ),
                    values: vec![
                        (":h".into(), s(&hash)),
                        (":t".into(), AttributeValue::Bool(true)),
                        (":one".into(), shared_core::dynamo::n(1)),
                        (":tep".into(), shared_core::dynamo::n(token_epoch)),
                    ],
                    names: vec![],
                },
            ),
            // The link proved the address: an unverified sign-up's claim becomes a real one.
            (
                t.tenants.as_str(),
                claim_login(
                    &app.keys.email(&user.email),
                    &user.tenant_id,
                    &user.user_id,
                    &hash,
                ),
            ),
            (
                t.security_log.as_str(),
                Write::Put(app.store.event_item(&e, &app.ids.new_id(ctx.now)), None),
            ),
        ])
        .await
        .map_err(|err| match err {
            StoreError::Condition => invalid_token(),
            StoreError::Other(e) => AppError::Internal(e),
        })?;
    app.end_sessions_of(&user.tenant_id, &user.user_id, None, vec![], ctx.now)
        .await?;
    notify_password_changed(app, ctx, &user).await;
    Ok(ok(json!({ "status": "password_reset" })))
}

pub(crate) async fn notify_password_changed<M: Mailer>(app: &App<M>, ctx: &Ctx, user: &User) {
    let when = rfc3339(ctx.now);
    let link = format!("{}/reset-password", app.app_base_url);
    emails::send(
        &app.mailer,
        user.email.as_str(),
        &emails::PASSWORD_CHANGED,
        &[("name", &user.name), ("when", &when), ("link", &link)],
    )
    .await;
}

pub(crate) async fn current_user<M: Mailer>(app: &App<M>, ctx: &Ctx) -> Result<User, AppError> {
    let c = ctx.caller()?;
    app.store
        .user(&c.tenant_id, &c.user_id)
        .await?
        .ok_or(AppError::Unauthorized {
            code: "session_ended",
            message: "This account no longer exists.",
        })
}

pub async fn get_me<M: Mailer>(app: &App<M>, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    let user = current_user(app, ctx).await?;
    let tenant = app.store.tenant(&user.tenant_id).await?;
    Ok(ok(json!({
        "id": user.user_id.as_str(),
        "email": user.email.as_str(),
        "name": user.name,
        "phone": user.phone.as_ref().map(|p| p.as_str()),
        "tenant_id": user.tenant_id.as_str(),
        "role": user.role.as_str(),
        "email_verified": user.email_verified,
        "mfa_enabled": user.mfa.enabled,
        "created_at": rfc3339(user.created_at),
        "last_login_at": user.last_login.as_ref().map(|l| rfc3339(l.at)),
        "business_name": tenant.as_ref().map(|t| t.business_name.clone()),
        "tenant_status": tenant.as_ref().map(|t| match t.status {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Closed => "closed",
        }),
        "policy": policy_json(app, &user),
    })))
}

/// `GET /v1/auth/policy-versions` (public): the versions a sign-up must accept.
pub async fn policy_versions<M: Mailer>(app: &App<M>) -> Result<Response<Body>, AppError> {
    let current = &app.settings.policy;
    Ok(ok(json!({
        "policy_version": current.policy,
        "terms_version": current.terms,
    })))
}

/// What the user accepted, what is in force, and whether they must accept again.
fn policy_json<M: Mailer>(app: &App<M>, user: &User) -> serde_json::Value {
    let current = &app.settings.policy;
    let a = user.policy.as_ref();
    json!({
        "accepted_policy_version": a.map(|a| a.policy_version.clone()),
        "policy_accepted_at": a.map(|a| rfc3339(a.policy_accepted_at)),
        "accepted_terms_version": a.map(|a| a.terms_version.clone()),
        "terms_accepted_at": a.map(|a| rfc3339(a.terms_accepted_at)),
        "current_policy_version": current.policy,
        "current_terms_version": current.terms,
        "reacceptance_due": shared_accounts::policy::reacceptance_due(a, current),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptanceBody {
    policy_version: String,
    terms_version: String,
}

/// `POST /v1/me/policy-acceptance`: the caller accepts the versions in force (and only those).
/// Accepting again what was accepted changes nothing. A restricted account may accept too: it
/// is the person's own declaration, not a change of the restricted data.
pub async fn accept_policy<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: AcceptanceBody = json_body(req)?;
    let c = ctx.caller()?;
    let versions = require_current_versions(app, &body.policy_version, &body.terms_version)?;
    let (sets, mut values) =
        shared_accounts::policy::acceptance_update(&versions, ctx.now, "reacceptance");
    values.push((":pv0".into(), s(&versions.policy)));
    values.push((":tv0".into(), s(&versions.terms)));
    let mut e = app.event("policy_accepted", ctx);
    e.detail = Some(format!(
        "policy {} terms {}",
        versions.policy, versions.terms
    ));
    let t = app.store.tables().clone();
    let result = app
        .store
        .transact(vec![
            (
                t.tenants.as_str(),
                Write::Update {
                    key: keys::user(&c.tenant_id, &c.user_id),
                    update: format!("SET {sets}"),
                    // Already accepted: nothing to record (a retry appends no second entry).
                    condition: Some(
                        "attribute_exists(pk) AND NOT (policy_version = :pv0 AND \
                         terms_version = :tv0)"
                            .into(),
                    ),
                    values,
                    names: vec![],
                },
            ),
            (
                t.security_log.as_str(),
                Write::Put(app.store.event_item(&e, &app.ids.new_id(ctx.now)), None),
            ),
        ])
        .await;
    match result {
        Ok(()) | Err(StoreError::Condition) => {}
        Err(StoreError::Other(e)) => return Err(AppError::Internal(e)),
    }
    let user = current_user(app, ctx).await?;
    Ok(ok(policy_json(app, &user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchMeBody {
    /// `null` is refused: a name cannot be removed.
    #[serde(default, deserialize_with = "double_option")]
    name: Option<Option<String>>,
    /// `null` removes the phone number.
    #[serde(default, deserialize_with = "double_option")]
    phone: Option<Option<String>>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The answer to a change of account data its subject had restricted (GDPR Art. 18).
pub(crate) fn account_restricted() -> AppError {
    AppError::Conflict {
        code: "account_restricted",
        message: "This account's data is restricted at its owner's request: it is kept as it is until the restriction is lifted.",
    }
}

pub async fn patch_me<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: PatchMeBody = json_body(req)?;
    let c = ctx.caller()?;
    let mut errors = FieldErrors::new();
    let mut sets = Vec::new();
    let mut removes = Vec::new();
    let mut values = Vec::new();
    match &body.name {
        Some(Some(name)) => {
            if let Some(n) = text_field(&mut errors, "name", name, 200) {
                sets.push("#n = :n");
                values.push((":n".to_string(), s(n)));
            }
        }
        Some(None) => {
            errors.insert("name".into(), "cannot be removed".into());
        }
        None => {}
    }
    match &body.phone {
        Some(Some(p)) => match Phone::parse(p) {
            Ok(p) => {
                sets.push("phone = :p");
                values.push((":p".to_string(), s(p.as_str())));
            }
            Err(m) => {
                errors.insert("phone".into(), m.into());
            }
        },
        Some(None) => removes.push("phone"),
        None => {}
    }
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors));
    }
    if sets.is_empty() && removes.is_empty() {
        return Err(AppError::validation(
            "invalid_body",
            "Nothing to change: send name and/or phone.",
        ));
    }
    let mut update = String::new();
    if !sets.is_empty() {
        update.push_str(&format!("SET {}", sets.join(", ")));
    }
    if !removes.is_empty() {
        update.push_str(&format!(" REMOVE {}", removes.join(", ")));
    }
    let names = if body.name.is_some() {
        vec![("#n".to_string(), "name".to_string())]
    } else {
        vec![]
    };
    let result = app
        .store
        .transact(vec![(
            app.store.tables().tenants.as_str(),
            Write::Update {
                key: keys::user(&c.tenant_id, &c.user_id),
                update,
                // Restricted account data is kept as it is until the restriction is lifted.
                condition: Some("attribute_exists(pk) AND attribute_not_exists(restricted)".into()),
                values,
                names,
            },
        )])
        .await;
    let result = match result {
        Err(StoreError::Condition)
            if app.store.user_restricted(&c.tenant_id, &c.user_id).await? =>
        {
            return Err(account_restricted());
        }
        other => other,
    };
    result.map_err(|e| match e {
        StoreError::Condition => AppError::NotFound("user_not_found"),
        StoreError::Other(e) => AppError::Internal(e),
    })?;
    get_me(app, ctx).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePasswordBody {
    current_password: String,
    new_password: String,
}

pub async fn change_password<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: ChangePasswordBody = json_body(req)?;
    let user = current_user(app, ctx).await?;
    let mut errors = FieldErrors::new();
    if body.current_password.len() > 512
        || !password::verify_password(&body.current_password, &user.password_hash)
    {
        errors.insert(
            "current_password".into(),
            "is not your current password".into(),
        );
        return Err(AppError::invalid_fields(errors));
    }
    if !new_password(
        &mut errors,
        "new_password",
        &body.new_password,
        Some(&user.email),
    ) {
        return Err(AppError::invalid_fields(errors));
    }
    let hash = password::hash_password(&body.new_password)?;
    let e = app.event("password_changed", ctx);
    let t = app.store.tables().clone();
    app.store
        .transact(vec![
            (
                t.tenants.as_str(),
                Write::Update {
                    key: keys::user(&user.tenant_id, &user.user_id),
                    update: "SET password_hash = :h ADD cred_epoch :one".into(),
                    condition: Some("attribute_exists(pk)".into()),
                    values: vec![
                        (":h".into(), s(&hash)),
                        (":one".into(), shared_core::dynamo::n(1)),
                    ],
                    names: vec![],
                },
            ),
            (
                t.tenants.as_str(),
                refresh_login_copy(&app.keys.email(&user.email), &user, &hash),
            ),
            (
                t.security_log.as_str(),
                Write::Put(app.store.event_item(&e, &app.ids.new_id(ctx.now)), None),
            ),
        ])
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
    let caller = ctx.caller()?;
    app.continue_after_epoch_bump(&user, caller.require_session()?, ctx.now)
        .await?;
    notify_password_changed(app, ctx, &user).await;
    Ok(ok(json!({ "status": "password_changed" })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    password: String,
}

pub async fn close_tenant<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: CloseBody = json_body(req)?;
    let user = current_user(app, ctx).await?;
    if body.password.len() > 512 || !password::verify_password(&body.password, &user.password_hash)
    {
        let mut errors = FieldErrors::new();
        errors.insert("password".into(), "is not your current password".into());
        return Err(AppError::invalid_fields(errors));
    }
    let erase_after = ctx.now + Duration::days(app.settings.closure_grace_days);
    let e = app.event("tenant_closed", ctx);
    let t = app.store.tables().clone();
    app.store
        .transact(vec![
            (
                t.tenants.as_str(),
                Write::Update {
                    key: keys::tenant(&user.tenant_id),
                    // exp_bucket: retention erases the workspace once the grace is over.
                    update: "SET #st = :closed, closed_at = :now, erase_after = :erase, \
                             exp_bucket = :bucket"
                        .into(),
                    condition: Some("#st = :active".into()),
                    values: vec![
                        (":closed".into(), s("closed")),
                        (":active".into(), s("active")),
                        (":now".into(), timestamp(ctx.now)),
                        (":erase".into(), timestamp(erase_after)),
                        (
                            ":bucket".into(),
                            s(shared_core::retention::expiry_bucket_at(
                                shared_core::retention::rule::TENANT_ERASE,
                                erase_after,
                                &keys::tenant(&user.tenant_id),
                            )),
                        ),
                    ],
                    names: vec![("#st".into(), "status".into())],
                },
            ),
            (
                t.security_log.as_str(),
                Write::Put(app.store.event_item(&e, &app.ids.new_id(ctx.now)), None),
            ),
        ])
        .await
        .map_err(|e| match e {
            StoreError::Condition => AppError::Conflict {
                code: "tenant_not_active",
                message: "This account is not active.",
            },
            StoreError::Other(e) => AppError::Internal(e),
        })?;
    Ok(ok(json!({
        "status": "closed",
        "erase_after": rfc3339(erase_after),
        "message": "Submissions stop now. Reactivate before erase_after to keep your data."
    })))
}

pub async fn reactivate_tenant<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
) -> Result<Response<Body>, AppError> {
    let c = ctx.caller()?;
    let e = app.event("tenant_reactivated", ctx);
    let t = app.store.tables().clone();
    app.store
        .transact(vec![
            (
                t.tenants.as_str(),
                Write::Update {
                    key: keys::tenant(&c.tenant_id),
                    update: "SET #st = :active REMOVE closed_at, erase_after, exp_bucket".into(),
                    condition: Some("#st = :closed AND erase_after > :now".into()),
                    values: vec![
                        (":closed".into(), s("closed")),
                        (":active".into(), s("active")),
                        (":now".into(), timestamp(ctx.now)),
                    ],
                    names: vec![("#st".into(), "status".into())],
                },
            ),
            (
                t.security_log.as_str(),
                Write::Put(app.store.event_item(&e, &app.ids.new_id(ctx.now)), None),
            ),
        ])
        .await
        .map_err(|e| match e {
            StoreError::Condition => AppError::Conflict {
                code: "not_reactivatable",
                message: "Only a closed account within its grace period can be reactivated.",
            },
            StoreError::Other(e) => AppError::Internal(e),
        })?;
    Ok(ok(json!({ "status": "active" })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_null_name_is_told_apart_from_an_absent_one() {
        // `null` must not read as "leave it": PATCH /v1/me answers it 400 (a name cannot be
        // removed), as docs/openapi.yaml says; an absent name changes nothing.
        let b: PatchMeBody = serde_json::from_str(r#"{"name": null, "phone": null}"#).unwrap();
        assert!(matches!(b.name, Some(None)));
        assert!(matches!(b.phone, Some(None)));
        let b: PatchMeBody = serde_json::from_str(r#"{"phone": "+40712345678"}"#).unwrap();
        assert!(b.name.is_none());
    }
}
