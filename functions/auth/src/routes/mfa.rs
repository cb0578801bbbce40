//! TOTP multi-factor authentication: set up, confirm (turns it on, returns recovery codes once),
//! disable (needs a code). Each needs a recent step-up (the password re-entered in the last
//! 5 minutes, checked by the dispatcher: `routes::STEP_UP_ROUTES`).

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared_accounts::auth::{recovery, totp};
use shared_accounts::dynamo::{StoreError, Write};
use shared_core::dynamo::{n, s, str_list, AttributeValue};
use shared_core::error::{AppError, FieldErrors};
use shared_core::keys;
use shared_mail::Mailer;

use super::account::current_user;
use crate::{json_body, ok, App, Ctx};

const ISSUER: &str = "Lead Platform";

fn invalid_code() -> AppError {
    let mut f = FieldErrors::new();
    f.insert("code".into(), "is not a valid code".into());
    AppError::invalid_fields(f)
}

pub async fn setup<M: Mailer>(app: &App<M>, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    let user = current_user(app, ctx).await?;
    if user.mfa.enabled {
        return Err(AppError::Conflict {
            code: "mfa_already_enabled",
            message: "Two-factor authentication is already on.",
        });
    }
    let secret = totp::encode_base32(&totp::new_secret());
    app.store
        .transact(vec![(
            app.store.tables().tenants.as_str(),
            Write::Update {
                key: keys::user(&user.tenant_id, &user.user_id),
                update: "SET totp_pending_secret = :s".into(),
                condition: Some("attribute_exists(pk)".into()),
                values: vec![(":s".into(), s(&secret))],
                names: vec![],
            },
        )])
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
    Ok(ok(json!({
        "secret": secret,
        "otpauth_uri": totp::otpauth_uri(ISSUER, user.email.as_str(), &secret),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: String,
}

pub async fn confirm<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: CodeBody = json_body(req)?;
    let user = current_user(app, ctx).await?;
    if user.mfa.enabled {
        return Err(AppError::Conflict {
            code: "mfa_already_enabled",
            message: "Two-factor authentication is already on.",
        });
    }
    let pending = user.mfa.pending_secret.clone().ok_or(AppError::Conflict {
        code: "mfa_not_set_up",
        message: "Start with POST /v1/auth/mfa/totp/setup.",
    })?;
    let secret = totp::decode_base32(&pending)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("stored TOTP secret is not base32")))?;
    let step = totp::verify(&secret, &body.code, ctx.now.unix_timestamp(), None)
        .ok_or_else(invalid_code)?;
    let (codes, hashes) = recovery::generate();
    let e = app.event("mfa_enabled", ctx);
    let t = app.store.tables().clone();
    app.store
        .transact(vec![
            (
                t.tenants.as_str(),
                Write::Update {
                    key: keys::user(&user.tenant_id, &user.user_id),
                    update: "SET mfa_enabled = :t, totp_secret = :s, totp_last_step = :step, recovery_hashes = :rh REMOVE totp_pending_secret ADD cred_epoch :one".into(),
                    condition: Some("totp_pending_secret = :s".into()),
                    values: vec![
                        (":one".into(), n(1)),
                        (":t".into(), AttributeValue::Bool(true)),
                        (":s".into(), s(&pending)),
                        (":step".into(), n(step)),
                        (":rh".into(), str_list(&hashes)),
                    ],
                    names: vec![],
                },
            ),
            (t.security_log.as_str(), Write::Put(app.store.event_item(&e, &app.ids.new_id(ctx.now)), None)),
        ])
        .await
        .map_err(|e| match e {
            StoreError::Condition => AppError::Conflict {
                code: "mfa_not_set_up",
                message: "The setup changed meanwhile; start again.",
            },
            StoreError::Other(e) => AppError::Internal(e),
        })?;
    let caller = ctx.caller()?;
    app.continue_after_epoch_bump(&user, caller.require_session()?, ctx.now)
        .await?;
    Ok(ok(json!({
        "mfa_enabled": true,
        "recovery_codes": codes,
        "message": "Store these recovery codes somewhere safe: they are shown only now."
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisableBody {
    code: String,
}

pub async fn disable<M: Mailer>(
    app: &App<M>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: DisableBody = json_body(req)?;
    let user = current_user(app, ctx).await?;
    if !user.mfa.enabled {
        return Err(AppError::Conflict {
            code: "mfa_not_enabled",
            message: "Two-factor authentication is off.",
        });
    }
    let secret = user
        .mfa
        .secret
        .as_deref()
        .and_then(totp::decode_base32)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("MFA on without a secret")))?;
    let valid = totp::verify(
        &secret,
        &body.code,
        ctx.now.unix_timestamp(),
        user.mfa.last_step,
    )
    .is_some()
        || recovery::find(&body.code, &user.mfa.recovery_hashes).is_some();
    if !valid {
        return Err(invalid_code());
    }
    let e = app.event("mfa_disabled", ctx);
    let t = app.store.tables().clone();
    app.store
        .transact(vec![
            (
                t.tenants.as_str(),
                Write::Update {
                    key: keys::user(&user.tenant_id, &user.user_id),
                    update: "SET mfa_enabled = :f REMOVE totp_secret, totp_last_step, recovery_hashes, totp_pending_secret ADD cred_epoch :one".into(),
                    condition: Some("attribute_exists(pk)".into()),
                    values: vec![(":f".into(), AttributeValue::Bool(false)), (":one".into(), n(1))],
                    names: vec![],
                },
            ),
            (t.security_log.as_str(), Write::Put(app.store.event_item(&e, &app.ids.new_id(ctx.now)), None)),
        ])
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
    let caller = ctx.caller()?;
    app.continue_after_epoch_bump(&user, caller.require_session()?, ctx.now)
        .await?;
    Ok(ok(json!({ "mfa_enabled": false })))
}
