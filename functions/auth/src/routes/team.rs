//! The team: invitations (single-use emailed links), members and their roles.

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared_accounts::auth::permissions::{can_assign, Role};
use shared_accounts::auth::{password, tokens};
use shared_accounts::dynamo::{
    login_item_of, token_item, user_item, StoreError, Write, LOGIN_CLAIMABLE,
};
use shared_accounts::{Mfa, OneTimeToken, TokenKind, User};
use shared_core::clock::rfc3339;
use shared_core::domain::{Email, TenantStatus, UserId};
use shared_core::dynamo::s;
use shared_core::error::{AppError, FieldErrors};
use shared_core::keys;
use shared_mail::outbound::{MailKind, MailRoute};
use shared_mail::Mailer;
use time::Duration;

use super::account::{consume, current_user, live_token, new_password, text_field};
use crate::{created, emails, json_body, no_content, ok, App, Ctx};

/// What the invited address is sealed for on an invitation record (`shared_accounts::auth::tokens::seal`).
const INVITATION_EMAIL: &str = "invitation-email";

fn not_assignable() -> AppError {
    AppError::Forbidden {
        code: "role_not_assignable",
        message: "Your role cannot give or change this role.",
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    email: String,
    role: String,
}

pub async fn invite<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: InviteBody = json_body(req)?;
    let caller = ctx.caller()?;
    let mut errors = FieldErrors::new();
    let email = Email::parse(&body.email)
        .map_err(|m| errors.insert("email".into(), m.into()))
        .ok();
    let role = Role::parse(&body.role);
    if role.is_none() {
        errors.insert(
            "role".into(),
            "must be admin, member, viewer or billing".into(),
        );
    }
    let (Some(email), Some(role)) = (email, role) else {
        return Err(AppError::invalid_fields(errors));
    };
    if !can_assign(caller.role, role) {
        return Err(not_assignable());
    }
    let tenant = app.store.tenant(&caller.tenant_id).await?;
    if tenant
        .as_ref()
        .is_none_or(|t| t.status == TenantStatus::Closed)
    {
        return Err(tenant_closed());
    }
    crate::seats::ensure_seat_free(app, &caller.tenant_id, ctx.now).await?;
    let inviter = current_user(app, ctx).await?;
    let business = tenant.map(|t| t.business_name).unwrap_or_default();
    let expires_at = ctx.now + Duration::days(app.settings.invitation_days);
    let answer = created(json!({
        "status": "invited",
        "role": role.as_str(),
        "expires_at": rfc3339(expires_at),
    }));
    // Every invitation mails the address, whoever holds it: counted per client (429), per
    // tenant and per address (past those, the same answer and nothing sent or stored).
    app.limit_ip(ctx, MailRoute::Invitation).await?;
    if !app
        .tenant_may_mail(ctx, MailRoute::Invitation, &caller.tenant_id)
        .await?
        || !app.may_mail(ctx, MailKind::Invitation, &email).await?
    {
        return Ok(answer);
    }
    // A sign-up not verified yet holds no claim on the address: the invitation goes out.
    if app
        .store
        .login_entry(&app.keys.email(&email))
        .await?
        .is_some_and(|entry| !entry.unverified)
    {
        // The address has an account: answer exactly as for a new one (no account enumeration)
        // and tell its holder instead; no token, so nothing can join them to this team.
        let mut e = app.event("invitation_to_registered_address", ctx);
        e.email_hash = Some(app.keys.email(&email));
        app.log_event(e).await;
        emails::send(
            &app.mailer,
            email.as_str(),
            &emails::INVITATION_EXISTING,
            &[("inviter", &inviter.name), ("business_name", &business)],
        )
        .await;
        return Ok(answer);
    }
    let secret = tokens::new_secret();
    let token = OneTimeToken {
        secret_hash: tokens::hash_secret(&secret),
        kind: TokenKind::Invitation,
        tenant_id: caller.tenant_id.clone(),
        user_id: None,
        // The invited address, sealed with the link's secret: the record holds no address in
        // clear, and acceptance (which presents the secret) reads it back.
        email: None,
        email_sealed: Some(tokens::seal(&secret, INVITATION_EMAIL, email.as_str())),
        role: Some(role),
        invited_by: Some(caller.user_id.clone()),
        expires_at,
    };
    let mut e = app.event("invitation_sent", ctx);
    e.email_hash = Some(app.keys.email(&email));
    e.detail = Some(format!("role={}", role.as_str()));
    let t = app.store.tables().clone();
    app.store
        .transact(vec![
            (t.tenants.as_str(), Write::Put(token_item(&token), None)),
            (t.tenants.as_str(), tenant_still_open(&caller.tenant_id)),
            (
                t.security_log.as_str(),
                Write::Put(app.store.event_item(&e, &app.ids.new_id(ctx.now)), None),
            ),
        ])
        .await
        .map_err(|e| match e {
            StoreError::Condition => tenant_closed(),
            StoreError::Other(e) => AppError::Internal(e),
        })?;
    let link = app.link("/accept-invitation", &secret);
    emails::send(
        &app.mailer,
        email.as_str(),
        &emails::INVITATION,
        &[
            ("inviter", &inviter.name),
            ("business_name", &business),
            ("role", role.as_str()),
            ("link", &link),
        ],
    )
    .await;
    Ok(answer)
}

fn tenant_closed() -> AppError {
    AppError::Conflict {
        code: "tenant_closed",
        message: "This account is closed: reactivate it to invite or add members.",
    }
}

/// A write that changes nothing and fails unless the tenant is still open: in the transaction
/// that sends or accepts an invitation, so a closure racing it wins.
fn tenant_still_open(t: &shared_core::domain::TenantId) -> Write {
    Write::Update {
        key: keys::tenant(t),
        update: "SET #st = #st".into(),
        condition: Some("attribute_exists(pk) AND #st <> :closed".into()),
        values: vec![(":closed".into(), s("closed"))],
        names: vec![("#st".into(), "status".into())],
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptBody {
    token: String,
    password: String,
    name: String,
    /// The privacy-policy and terms versions the invited person was shown and accepted.
    policy_version: String,
    terms_version: String,
}

pub async fn accept_invitation<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: AcceptBody = json_body(req)?;
    let token = live_token(app, ctx, &body.token, TokenKind::Invitation).await?;
    let email = token.email.clone().or_else(|| {
        token
            .email_sealed
            .as_deref()
            .and_then(|sealed| tokens::open(&body.token, INVITATION_EMAIL, sealed))
            .and_then(|e| Email::parse(&e).ok())
    });
    let (Some(email), Some(role)) = (email, token.role) else {
        return Err(super::account::invalid_token());
    };
    let mut errors = FieldErrors::new();
    let name = text_field(&mut errors, "name", &body.name, 200);
    new_password(&mut errors, "password", &body.password, Some(&email));
    let (Some(name), true) = (name, errors.is_empty()) else {
        return Err(AppError::invalid_fields(errors));
    };
    let versions =
        super::account::require_current_versions(app, &body.policy_version, &body.terms_version)?;
    let tenant = app.store.tenant(&token.tenant_id).await?;
    if tenant.is_none_or(|t| t.status == TenantStatus::Closed) {
        return Err(tenant_closed());
    }
    let user = User {
        user_id: UserId::parse(&app.new_id("us")).map_err(|e| AppError::Internal(e.into()))?,
        tenant_id: token.tenant_id.clone(),
        email: email.clone(),
        name,
        phone: None,
        role,
        password_hash: password::hash_password(&body.password)?,
        // Following the emailed link proves the address.
        email_verified: true,
        created_at: ctx.now,
        mfa: Mfa::default(),
        last_login: None,
        policy: Some(shared_accounts::policy::PolicyAcceptance::both(
            &versions, ctx.now,
        )),
    };
    let mut e = app.event("invitation_accepted", ctx);
    e.tenant_id = Some(user.tenant_id.clone());
    e.user_id = Some(user.user_id.clone());
    e.actor_user_id = token.invited_by.clone();
    let mut user_it = user_item(&user);
    if let Some(a) = &user.policy {
        user_it.extend(shared_accounts::policy::acceptance_attributes(
            a,
            "invitation",
        ));
    }
    let t = app.store.tables().clone();
    app.store
        .transact(vec![
            (t.tenants.as_str(), consume(&token)),
            (t.tenants.as_str(), tenant_still_open(&token.tenant_id)),
            (
                t.tenants.as_str(),
                // Takes the address over from a sign-up not verified yet, never from an account.
                Write::Put(
                    login_item_of(&app.keys.email(&email), &user),
                    Some(LOGIN_CLAIMABLE),
                ),
            ),
            (
                t.tenants.as_str(),
                Write::Put(user_it, Some("attribute_not_exists(pk)")),
            ),
            (
                t.security_log.as_str(),
                Write::Put(app.store.event_item(&e, &app.ids.new_id(ctx.now)), None),
            ),
        ])
        .await
        .map_err(|err| match err {
            StoreError::Condition => AppError::Conflict {
                code: "invitation_unusable",
                message: "This invitation was used, or the address already has an account.",
            },
            StoreError::Other(e) => AppError::Internal(e),
        })?;
    Ok(created(json!({
        "id": user.user_id.as_str(),
        "tenant_id": user.tenant_id.as_str(),
        "role": role.as_str(),
    })))
}

fn member_json(u: &User) -> serde_json::Value {
    json!({
        "id": u.user_id.as_str(),
        "email": u.email.as_str(),
        "name": u.name,
        "role": u.role.as_str(),
        "mfa_enabled": u.mfa.enabled,
        "email_verified": u.email_verified,
        "created_at": rfc3339(u.created_at),
        "last_login_at": u.last_login.as_ref().map(|l| rfc3339(l.at)),
    })
}

pub async fn list<M: Mailer>(app: &App<M>, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    let caller = ctx.caller()?;
    let team = app.store.team(&caller.tenant_id).await?;
    let items: Vec<_> = team.iter().map(member_json).collect();
    Ok(ok(json!({ "items": items, "next_cursor": null })))
}

/// The member named in the path, in the caller's tenant (anything else is "not found").
async fn target<M: Mailer>(app: &App<M>, ctx: &Ctx) -> Result<User, AppError> {
    let caller = ctx.caller()?;
    let id = ctx
        .params
        .first()
        .and_then(|p| UserId::parse(p).ok())
        .ok_or(AppError::NotFound("user_not_found"))?;
    let user = app
        .store
        .user(&caller.tenant_id, &id)
        .await?
        .ok_or(AppError::NotFound("user_not_found"))?;
    if user.user_id == caller.user_id {
        return Err(AppError::Conflict {
            code: "cannot_change_self",
            message: "You cannot change or remove your own membership.",
        });
    }
    // The caller must be allowed to manage the member's current role as well as the new one.
    if !can_assign(caller.role, user.role) {
        return Err(not_assignable());
    }
    // A member who restricted their account data (GDPR Art. 18) keeps it as it is: neither
    // their role nor their membership changes until the restriction is lifted.
    if app
        .store
        .user_restricted(&user.tenant_id, &user.user_id)
        .await?
    {
        return Err(super::account::account_restricted());
    }
    Ok(user)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: String,
}

pub async fn change_role<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: RoleBody = json_body(req)?;
    let caller = ctx.caller()?;
    let role = Role::parse(&body.role).ok_or_else(|| {
        let mut f = FieldErrors::new();
        f.insert(
            "role".into(),
            "must be admin, member, viewer or billing".into(),
        );
        AppError::invalid_fields(f)
    })?;
    let user = target(app, ctx).await?;
    if !can_assign(caller.role, role) {
        return Err(not_assignable());
    }
    let mut e = app.event("role_changed", ctx);
    e.user_id = Some(user.user_id.clone());
    e.detail = Some(format!("{}->{}", user.role.as_str(), role.as_str()));
    let t = app.store.tables().clone();
    app.store
        .transact(vec![
            (
                t.tenants.as_str(),
                Write::Update {
                    key: keys::user(&user.tenant_id, &user.user_id),
                    update: "SET #r = :r ADD cred_epoch :one".into(),
                    condition: Some(
                        "attribute_exists(pk) AND attribute_not_exists(restricted)".into(),
                    ),
                    values: vec![
                        (":r".into(), s(role.as_str())),
                        (":one".into(), shared_core::dynamo::n(1)),
                    ],
                    names: vec![("#r".into(), "role".into())],
                },
            ),
            (
                t.security_log.as_str(),
                Write::Put(app.store.event_item(&e, &app.ids.new_id(ctx.now)), None),
            ),
        ])
        .await
        .map_err(|e| match e {
            // Restricted meanwhile (or gone): nothing changed.
            StoreError::Condition => super::account::account_restricted(),
            StoreError::Other(e) => AppError::Internal(e),
        })?;
    // The old role must not survive in a live session: the member logs in again.
    app.end_sessions_of(&user.tenant_id, &user.user_id, None, vec![], ctx.now)
        .await?;
    let mut updated = user;
    updated.role = role;
    Ok(ok(member_json(&updated)))
}

pub async fn remove<M: Mailer>(app: &App<M>, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    let user = target(app, ctx).await?;
    // Read before the user item goes: the sessions to end.
    let known = app
        .store
        .live_session_ids(&user.tenant_id, &user.user_id)
        .await?;
    let mut e = app.event("member_removed", ctx);
    e.user_id = Some(user.user_id.clone());
    let t = app.store.tables().clone();
    app.store
        .transact(vec![
            (
                t.tenants.as_str(),
                Write::Delete(
                    keys::user(&user.tenant_id, &user.user_id),
                    Some("attribute_not_exists(restricted)"),
                ),
            ),
            (
                t.tenants.as_str(),
                Write::Delete(keys::login(&app.keys.email(&user.email)), None),
            ),
            (
                t.security_log.as_str(),
                Write::Put(app.store.event_item(&e, &app.ids.new_id(ctx.now)), None),
            ),
        ])
        .await
        .map_err(|e| match e {
            // Restricted meanwhile (or gone): nothing changed.
            StoreError::Condition => super::account::account_restricted(),
            StoreError::Other(e) => AppError::Internal(e),
        })?;
    app.end_sessions_of(&user.tenant_id, &user.user_id, None, known, ctx.now)
        .await?;
    Ok(no_content())
}
