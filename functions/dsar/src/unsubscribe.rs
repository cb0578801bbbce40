//! One-click consent withdrawal and marketing objection (RFC 8058): every platform email carries
//! `List-Unsubscribe: <…/v1/privacy/unsubscribe?t=SIGNED>` and `List-Unsubscribe-Post:
//! List-Unsubscribe=One-Click`. `POST` records the withdrawal (no login: the signed token is the
//! proof the link came from the email); `GET` only shows what a `POST` would do, because mail
//! scanners prefetch links.
//!
//! What is recorded: a proof entry in the privacy table (time, source "one-click email link",
//! purpose) keyed by the recipient's blind index, and the `marketing_opt_out` flag on what the
//! scope names: the account user of that email (platform emails), or the tenant's leads of that
//! email (a tenant's emails), whose submissions' consent records then carry the withdrawal's time
//! and source, as after a consent-withdrawal request. Marketing sends check the flag. Processing before it stays lawful.

use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared_core::error::AppError;
use shared_core::keys;
use shared_mail::unsubscribe::{UnsubscribeScope, UnsubscribeToken};
use shared_mail::Mailer;
use shared_privacy::dsar::job::JobDispatcher;
use shared_privacy::dsar::store::tenant_of_lead_pk;

use crate::{json, query_param, App, Ctx};

fn token_of<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    req: &Request,
) -> Result<UnsubscribeToken, AppError> {
    query_param(req, "t")
        .and_then(|t| UnsubscribeToken::verify(&app.keys, &t))
        .ok_or_else(|| {
            AppError::validation(
                "invalid_token",
                "This unsubscribe link is not valid; use the link of the email.",
            )
        })
}

fn scope_kind(s: &UnsubscribeScope) -> &'static str {
    match s {
        UnsubscribeScope::Platform => "platform",
        UnsubscribeScope::Tenant(_) => "sender",
    }
}

/// `GET`: what the link does; changes nothing.
pub async fn view<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let t = token_of(app, req)?;
    Ok(json(
        200,
        json!({
            "purpose": t.purpose.as_str(),
            "scope": scope_kind(&t.scope),
            "changed": false,
            "confirm": "Send a POST to this same link to stop marketing emails and withdraw consent.",
        }),
    ))
}

/// `POST`: records the withdrawal. Repeating it changes nothing more.
pub async fn withdraw<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let t = token_of(app, req)?;
    let purpose = t.purpose.as_str();
    let mut flagged = 0u32;
    let mut consents = 0u64;
    match &t.scope {
        UnsubscribeScope::Platform => {
            app.store
                .record_opt_out(
                    &keys::platform_marketing_opt_out(&t.subject_bidx),
                    purpose,
                    ctx.now,
                )
                .await?;
            if let Some((tenant, user)) = app.accounts.login_owner(&t.subject_bidx).await? {
                if app.store.flag_user_opt_out(&tenant, &user, ctx.now).await? {
                    flagged += 1;
                }
            }
        }
        UnsubscribeScope::Tenant(tenant) => {
            app.store
                .record_opt_out(
                    &keys::marketing_opt_out(tenant, &t.subject_bidx),
                    purpose,
                    ctx.now,
                )
                .await?;
            for pk in app.store.lead_pks_of(&t.subject_bidx).await? {
                if tenant_of_lead_pk(&pk).as_ref() != Some(tenant) {
                    continue;
                }
                // The lead is flagged only while its email is the subject's; the consents of
                // the subject's own submissions are withdrawn wherever they are.
                let owns = app
                    .store
                    .flag_lead_opt_out(&pk, &t.subject_bidx, ctx.now)
                    .await?;
                if owns {
                    flagged += 1;
                }
                consents += app
                    .store
                    .withdraw_lead_consents(&pk, &t.subject_bidx, owns, t.purpose, ctx.now)
                    .await?;
            }
        }
    }
    tracing::info!(email_bidx = %t.subject_bidx, purpose, scope = scope_kind(&t.scope), flagged, consents, "one-click withdrawal recorded");
    Ok(json(
        200,
        json!({ "purpose": purpose, "scope": scope_kind(&t.scope), "changed": true }),
    ))
}
