//! The subject's side: file a request (no account), confirm it with the emailed code, follow it
//! through the signed status link.
//!
//! Nothing about the subject is looked up, disclosed or changed before the code is entered: a
//! filing stores the request and emails the code, whatever the address, so the `202` is the same
//! whether or not the platform knows the email (no enumeration). Routing to the controllers
//! happens at verification.

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared_core::domain::{Email, FormId, TenantId};
use shared_core::dynamo::s;
use shared_core::error::{AppError, FieldErrors};
use shared_core::keys;
use shared_mail::Mailer;
use shared_privacy::dsar::deadlines::{deadlines, ymd, Jurisdiction};
use shared_privacy::dsar::emails;
use shared_privacy::dsar::job::{DsarJob, JobDispatcher, JobKind};
use shared_privacy::dsar::model::{
    Actor, Attestation, Controller, ControllerPart, Details, HistoryEntry, RequestType, Status,
    SubjectRequest, Target,
};
use shared_privacy::dsar::progress::send;
use shared_privacy::dsar::store::{Closing, PartChange};
use shared_privacy::dsar::tokens;
use time::{Duration, OffsetDateTime};

use crate::{json, json_body, query_param, request_status, rfc3339, App, Ctx};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBody {
    #[serde(rename = "type")]
    pub request_type: String,
    pub email: String,
    #[serde(default)]
    pub form_id: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub details: Option<serde_json::Value>,
    #[serde(default)]
    pub jurisdiction: Option<String>,
}

/// A filing, validated.
pub struct Filing {
    pub request_type: RequestType,
    pub email: Email,
    pub details: Details,
    pub jurisdiction: Jurisdiction,
}

/// Validates type, email, details and jurisdiction; messages name fields, never values.
pub fn parse_filing(
    request_type: &str,
    email: &str,
    details: Option<&serde_json::Value>,
    jurisdiction: Option<&str>,
) -> Result<Filing, AppError> {
    let mut fields = FieldErrors::new();
    let t = RequestType::parse(request_type);
    if t.is_none() {
        fields.insert(
            "type".into(),
            "must be one of access, rectification, erasure, restriction, objection, portability, consent_withdrawal".into(),
        );
    }
    let e = Email::parse(email);
    if let Err(m) = &e {
        fields.insert("email".into(), (*m).to_string());
    }
    let j = match jurisdiction {
        None => Some(Jurisdiction::Gdpr),
        Some(raw) => Jurisdiction::parse(raw),
    };
    if j.is_none() {
        fields.insert("jurisdiction".into(), "must be gdpr or ccpa".into());
    }
    if !fields.is_empty() {
        return Err(AppError::invalid_fields(fields));
    }
    let (Some(t), Ok(e), Some(j)) = (t, e, j) else {
        return Err(AppError::validation("invalid_body", "The body is invalid."));
    };
    Ok(Filing {
        request_type: t,
        details: Details::parse(t, details)?,
        email: e,
        jurisdiction: j,
    })
}

/// `POST /v1/privacy/requests`: `202 {request_id}` and a code emailed to the address.
pub async fn file<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let body: FileBody = json_body(req)?;
    let filing = parse_filing(
        &body.request_type,
        &body.email,
        body.details.as_ref(),
        body.jurisdiction.as_deref(),
    )?;
    let named = [body.form_id.is_some(), body.tenant.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    let target_hint = match body.scope.as_deref() {
        None | Some("tenant") => None,
        Some("account") if named == 0 => Some(Target::Account),
        Some("account") => {
            return Err(AppError::validation(
                "invalid_scope",
                "scope \"account\" names no tenant: leave form_id and tenant out.",
            ))
        }
        Some(_) => {
            return Err(AppError::validation(
                "invalid_scope",
                "scope must be \"account\" or \"tenant\".",
            ))
        }
    };
    if named > 1 {
        return Err(AppError::validation(
            "invalid_target",
            "Name the tenant by form_id or by tenant, not both.",
        ));
    }
    let bidx = app.keys.email(&filing.email);
    rate_limit(app, ctx.now, req, &bidx).await?;
    let target = match (target_hint, body.form_id, body.tenant) {
        (Some(t), _, _) => t,
        (None, Some(form), _) => {
            let form = FormId::parse(&form).map_err(|_| AppError::NotFound("form_not_found"))?;
            Target::Tenant(
                app.store
                    .form_tenant(&form)
                    .await?
                    .ok_or(AppError::NotFound("form_not_found"))?,
            )
        }
        (None, None, Some(tenant)) => {
            // The tenant's public id is only a routing hint: the tenant decides, and the
            // subject learns nothing about it here.
            let t = TenantId::parse(&tenant).map_err(|_| AppError::NotFound("tenant_not_found"))?;
            if !app.store.tenant_exists(&t).await? {
                return Err(AppError::NotFound("tenant_not_found"));
            }
            Target::Tenant(t)
        }
        (None, None, None) => Target::AnyTenant,
    };
    let id = create_unverified(app, ctx.now, &filing, target, &Actor::Subject, &bidx).await?;
    Ok(request_status(202, &id, Status::IdentityUnverified))
}

/// Counts a filing per client IP (hash) and per email (blind index); 429 over either limit.
pub async fn rate_limit<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    now: OffsetDateTime,
    req: &Request,
    email_bidx: &str,
) -> Result<(), AppError> {
    let hour = now.unix_timestamp().div_euclid(3600);
    let expires = (hour + 2) * 3600;
    let retry = (hour + 1) * 3600 - now.unix_timestamp();
    let limited = AppError::RateLimited {
        retry_after_secs: retry.max(1) as u64,
    };
    if let Some(ip) = shared_core::http::source_ip(req) {
        let k = keys::dsar_rate_ip(&app.keys.ip(&ip), hour);
        if !app
            .store
            .rate_hit(&k, app.settings.rate_per_ip_per_hour, expires)
            .await?
        {
            return Err(limited);
        }
    }
    let k = keys::dsar_rate_email(email_bidx, hour);
    if !app
        .store
        .rate_hit(&k, app.settings.rate_per_email_per_hour, expires)
        .await?
    {
        return Err(limited);
    }
    Ok(())
}

/// Stores a new unverified request and emails its code. Every filing is a new request with its
/// own code: a duplicate never inherits another's verification.
pub async fn create_unverified<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    now: OffsetDateTime,
    filing: &Filing,
    target: Target,
    filed_by: &Actor,
    bidx: &str,
) -> Result<String, AppError> {
    let id = app.new_request_id(now);
    let code = tokens::new_code();
    let r = SubjectRequest {
        request_id: id.clone(),
        request_type: filing.request_type,
        target,
        jurisdiction: filing.jurisdiction,
        status: Status::IdentityUnverified,
        email: Some(filing.email.as_str().to_string()),
        email_bidx: bidx.to_string(),
        subject_phone_bidx: None,
        details: filing.details.clone(),
        code_hash: Some(tokens::code_hash(&app.keys, &id, &code)),
        attempts: 0,
        code_expires_at: Some(now + Duration::hours(app.settings.code_valid_hours)),
        filed_by: filed_by.to_stored(),
        attestation: None,
        created_at: now,
        verified_at: None,
        closed_at: None,
        parts: vec![],
        open_parts: 0,
        history: vec![HistoryEntry::new(
            now,
            "filed",
            Status::IdentityUnverified,
            filed_by,
        )],
    };
    app.store
        .put_request(
            &r,
            Some(now + Duration::days(app.settings.unverified_ttl_days)),
        )
        .await?;
    tracing::info!(request_id = %id, request_type = filing.request_type.as_str(), email_bidx = %bidx, "privacy request filed");
    shared_core::telemetry::metric(
        "DsarRequestsFiled",
        1.0,
        "Count",
        &[("Kind", filing.request_type.as_str())],
    );
    // Past the address's privacy-request emails of the hour the request is filed and answered
    // as always, without its code: it lapses unconfirmed.
    let delivered: Result<(), AppError> = async {
        if !app.may_mail(&filing.email, now).await? {
            return Ok(());
        }
        let url = app.links.status_url(&app.keys, &id);
        send(
            &app.mailer,
            &emails::verification_code(
                filing.email.as_str(),
                filing.request_type,
                &id,
                &code,
                app.settings.code_valid_hours,
                &url,
                *filed_by != Actor::Subject,
            ),
        )
        .await?;
        Ok(())
    }
    .await;
    if let Err(e) = delivered {
        // Without its code the request can never be confirmed: it goes, so the filing sent
        // again (after the 503) is the only one and no record of the address stays behind.
        if let Err(cleanup) = app.store.withdraw_unsent(&id).await {
            tracing::warn!(request_id = %id, error = %format!("{cleanup:#}"), "unsent request left to its expiry");
        }
        return Err(e);
    }
    Ok(id)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    code: String,
}

fn expired() -> AppError {
    AppError::Conflict {
        code: "request_expired",
        message: "This request can no longer be confirmed; file it again.",
    }
}

/// `POST /v1/privacy/requests/{id}/verify {code}`: 5 tries, then the request is dead.
pub async fn verify<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let id = ctx.request_id()?;
    let body: VerifyBody = json_body(req)?;
    let r = app
        .store
        .request(&id)
        .await?
        .ok_or(AppError::NotFound("request_not_found"))?;
    match r.status {
        Status::IdentityUnverified => {}
        Status::Expired => return Err(expired()),
        // Already confirmed: a retried confirmation answers the same.
        s => return Ok(request_status(200, &id, s)),
    }
    let idr = id.as_str();
    let kill = |event: &'static str| {
        let entry = HistoryEntry::new(ctx.now, event, Status::Expired, &Actor::Subject);
        async move {
            app.store.kill_request(idr, &entry).await?;
            tracing::info!(request_id = %idr, event, "privacy request dead");
            Ok::<_, AppError>(())
        }
    };
    if r.code_expires_at.is_some_and(|t| ctx.now > t) {
        kill("code_lapsed").await?;
        return Err(expired());
    }
    let Some(after) = app
        .store
        .spend_attempt(&id, app.settings.max_attempts)
        .await?
    else {
        kill("too_many_attempts").await?;
        return Err(expired());
    };
    let stored = after.code_hash.as_deref().unwrap_or("");
    if !tokens::code_matches(&app.keys, &id, &body.code, stored) {
        let left = app.settings.max_attempts.saturating_sub(after.attempts);
        tracing::info!(request_id = %id, left, "privacy request code wrong");
        if left == 0 {
            kill("too_many_attempts").await?;
            return Err(expired());
        }
        return Err(AppError::validation(
            "invalid_code",
            format!("The code is not right; {left} tries left."),
        ));
    }
    let status = route_verified(app, &after, ctx.now, &Actor::Subject, None, true).await?;
    Ok(request_status(200, &id, status))
}

/// The verified request is routed: one part per controller (each tenant holding the email, the
/// named tenant, or the platform for account data), the subject told it is received, the
/// platform's own part decided at once. Returns the request's status after it.
///
/// `announce`: whether the subject is told it is received (not when a controller filed it for
/// an address that had its privacy-request emails of the hour).
pub async fn route_verified<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    r: &SubjectRequest,
    now: OffsetDateTime,
    verified_by: &Actor,
    attestation: Option<Attestation>,
    announce: bool,
) -> Result<Status, AppError> {
    let controllers: Vec<Controller> = match &r.target {
        Target::Tenant(t) => vec![Controller::Tenant(t.clone())],
        Target::Account => vec![Controller::Platform],
        Target::AnyTenant => app
            .store
            .tenants_holding(&r.email_bidx)
            .await?
            .into_iter()
            .map(Controller::Tenant)
            .collect(),
    };
    let d = deadlines(r.jurisdiction, now.date());
    let verified = HistoryEntry::new(now, "verified", Status::Verified, verified_by);
    let mut parts = Vec::with_capacity(controllers.len());
    for c in &controllers {
        parts.push(ControllerPart {
            request_id: r.request_id.clone(),
            controller: c.clone(),
            request_type: r.request_type,
            jurisdiction: r.jurisdiction,
            status: Status::AwaitingController,
            email_bidx: r.email_bidx.clone(),
            received_at: now,
            due: d.due,
            extended_due_limit: d.extended_due,
            acknowledge_by: d.acknowledge_by,
            // The "received" email below is the acknowledgement.
            acknowledged_at: Some(now),
            extended_at: None,
            extension_reason: None,
            denial_reason: None,
            outcome: None,
            failure: None,
            restriction_lifted_at: None,
            compelling_grounds: None,
            created_at: now,
            closed_at: None,
            history: vec![
                verified.clone(),
                HistoryEntry::new(now, "routed", Status::AwaitingController, &Actor::Platform),
            ],
        });
    }
    for p in &parts {
        app.store.put_part(p).await?;
    }
    let mut entries = vec![verified];
    if let Some(a) = attestation {
        entries[0].event = format!("identity_attested:{}", a.as_str());
    }
    entries.push(HistoryEntry::new(
        now,
        &format!("routed:{}", controllers.len()),
        Status::Verified,
        &Actor::Platform,
    ));
    if !app
        .store
        .mark_verified(
            &r.request_id,
            now,
            &controllers,
            controllers.len() as u32,
            &entries,
        )
        .await?
    {
        // Confirmed concurrently by another call: its routing stands.
        return Ok(Status::Verified);
    }
    tracing::info!(request_id = %r.request_id, parts = controllers.len(), "privacy request verified and routed");
    let email = r.email.clone().unwrap_or_default();
    let url = app.links.status_url(&app.keys, &r.request_id);
    if announce {
        let _ = send(
            &app.mailer,
            &emails::received(&email, r.request_type, &r.request_id, Some(d.due), &url),
        )
        .await;
    }
    if controllers.contains(&Controller::Platform) {
        decide_account_part(app, r, now, &email).await?;
    }
    if applies_at_once(r) {
        // GDPR Art. 7(3) and 21(3): a withdrawal of consent, or an objection to direct
        // marketing, needs no controller's decision and cannot be refused or extended. Each
        // tenant's part is applied now; the tenant sees it in its queue, done, with the
        // legal ground in the history.
        for c in controllers.iter().filter(|c| **c != Controller::Platform) {
            approve_and_dispatch(app, r, c, now, &email, "applied_at_once").await?;
        }
    }
    if objects_to_legitimate_interest(r) {
        // GDPR Art. 18(1)(d) and 21(1): the tenant decides (compelling grounds, or the
        // objection upheld), but its leads of the subject are restricted now, while it weighs.
        for c in controllers.iter() {
            let Controller::Tenant(t) = c else { continue };
            let leads = app
                .store
                .restrict_for_objection(t, &r.email_bidx, &r.request_id, now)
                .await?;
            let entry = HistoryEntry::new(
                now,
                "restricted_pending_decision",
                Status::AwaitingController,
                &Actor::Platform,
            );
            let change = PartChange::new(
                &[Status::AwaitingController],
                Status::AwaitingController,
                entry,
            );
            app.store.transition(c, &r.request_id, &change).await?;
            tracing::info!(request_id = %r.request_id, tenant_id = %t, leads = leads.len(), "leads restricted pending the objection's decision");
        }
    }
    if controllers.is_empty() {
        // No tenant holds the email: the answer is that nothing is held.
        let _ = send(
            &app.mailer,
            &emails::completed(
                &email,
                r.request_type,
                &r.request_id,
                &Default::default(),
                &url,
            ),
        )
        .await;
    }
    close_if_done(app, &r.request_id, now).await?;
    Ok(Status::Verified)
}

/// The platform decides its own part at once: approved, except the erasure of a workspace
/// owner's account, which is done by closing the workspace (the owner's data and the tenant's
/// go together, after the closure's grace period), and is refused here with that reason.
async fn decide_account_part<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    r: &SubjectRequest,
    now: OffsetDateTime,
    email: &str,
) -> Result<(), AppError> {
    let c = Controller::Platform;
    let mut owner = false;
    if r.request_type == RequestType::Erasure {
        if let Some((t, u)) = app.accounts.login_owner(&r.email_bidx).await? {
            owner = app
                .accounts
                .user(&t, &u)
                .await?
                .is_some_and(|u| u.role == shared_accounts::auth::permissions::Role::Owner);
        }
    }
    if owner {
        let reason = "You own a workspace. Your account is erased by closing the workspace \
                      (Settings, Close workspace): the account and the workspace are then erased \
                      together at the end of the closure's grace period.";
        let entry = HistoryEntry::new(now, "denied", Status::Denied, &Actor::Platform);
        let change = PartChange::new(&[Status::AwaitingController], Status::Denied, entry)
            .set("denial_reason", s(reason))
            .closing(Closing::Full);
        if app.store.transition(&c, &r.request_id, &change).await? {
            let url = app.links.status_url(&app.keys, &r.request_id);
            let _ = send(
                &app.mailer,
                &emails::denied(email, r.request_type, &r.request_id, reason, &url),
            )
            .await;
        }
        return Ok(());
    }
    approve_and_dispatch(app, r, &c, now, email, "approved").await
}

/// Whether a request takes effect as soon as it is verified, without a controller's decision:
/// a consent withdrawal, and an objection to direct marketing.
pub fn applies_at_once(r: &SubjectRequest) -> bool {
    match r.request_type {
        RequestType::ConsentWithdrawal => true,
        RequestType::Objection => matches!(
            r.details.job_kind(r.request_type),
            JobKind::Objection {
                marketing_only: true
            }
        ),
        _ => false,
    }
}

/// Whether a request objects to processing based on legitimate interest (GDPR Art. 21(1)): the
/// tenant decides, and the subject's leads are restricted meanwhile.
pub fn objects_to_legitimate_interest(r: &SubjectRequest) -> bool {
    r.request_type == RequestType::Objection
        && r.details.job_kind(r.request_type)
            == JobKind::Objection {
                marketing_only: false,
            }
}

/// Approves a controller's part in the platform's name (`event` says on what ground) and hands
/// the job to the worker. A dispatch that fails leaves the part `failed`, to be approved again.
async fn approve_and_dispatch<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    r: &SubjectRequest,
    c: &Controller,
    now: OffsetDateTime,
    email: &str,
    event: &str,
) -> Result<(), AppError> {
    let entry = HistoryEntry::new(now, event, Status::Approved, &Actor::Platform);
    let change = PartChange::new(&[Status::AwaitingController], Status::Approved, entry);
    if app.store.transition(c, &r.request_id, &change).await? {
        let job = DsarJob {
            request_id: r.request_id.clone(),
            scope: c.job_scope(),
            kind: r.details.job_kind(r.request_type),
            subject_email: email.to_string(),
        };
        if let Err(e) = app.dispatcher.dispatch(&job).await {
            // Not fatal to the subject's confirmation: the part shows `failed` in the operator's
            // digest and is approved again from there.
            tracing::error!(request_id = %r.request_id, error = %e, "dispatch failed");
            let entry = HistoryEntry::new(now, "dispatch_failed", Status::Failed, &Actor::Platform);
            let change = PartChange::new(&[Status::Approved], Status::Failed, entry)
                .set("failure", s("dispatch failed"));
            app.store.transition(c, &r.request_id, &change).await?;
        }
    }
    Ok(())
}

pub async fn close_if_done<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    id: &str,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let entry = HistoryEntry::new(now, "closed", Status::Completed, &Actor::Platform);
    if app.store.close_request_if_done(id, &entry).await? {
        tracing::info!(request_id = %id, "privacy request closed");
    }
    Ok(())
}

/// What the subject sees of the request's progress: one status for all its parts.
pub fn overall_status(request: Status, parts: &[Status]) -> Status {
    if request != Status::Verified || parts.is_empty() {
        return request;
    }
    if parts.iter().all(|s| s.is_closed()) {
        return Status::Completed;
    }
    for s in [Status::InProgress, Status::Failed, Status::Approved] {
        if parts.contains(&s) {
            return Status::InProgress;
        }
    }
    Status::AwaitingController
}

/// `GET /v1/privacy/requests/{id}/status?token=`: status and due date, nothing personal.
pub async fn status<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let id = ctx.request_id()?;
    let token = query_param(req, "token").unwrap_or_default();
    if !tokens::status_token_matches(&app.keys, &id, &token) {
        return Err(AppError::NotFound("request_not_found"));
    }
    let r = app
        .store
        .request(&id)
        .await?
        .ok_or(AppError::NotFound("request_not_found"))?;
    let mut parts = Vec::new();
    for c in &r.parts {
        if let Some(p) = app.store.part(c, &id).await? {
            parts.push(p);
        }
    }
    let statuses: Vec<Status> = parts.iter().map(|p| p.status).collect();
    let due = parts.iter().filter(|p| p.is_open()).map(|p| p.due).min();
    let body = json!({
        "request_id": id,
        "type": r.request_type.as_str(),
        "status": overall_status(r.status, &statuses).as_str(),
        "filed_at": rfc3339(r.created_at),
        "verified_at": r.verified_at.map(rfc3339),
        "due_date": due.map(ymd),
        "closed_at": r.closed_at.map(rfc3339),
        "parts": parts.iter().map(|p| json!({
            "status": p.status.as_str(),
            "due_date": ymd(p.due),
            "extended": p.extended_at.is_some(),
        })).collect::<Vec<_>>(),
    });
    Ok(json(200, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_status_for_many_parts() {
        use Status::*;
        assert_eq!(overall_status(IdentityUnverified, &[]), IdentityUnverified);
        assert_eq!(
            overall_status(Verified, &[AwaitingController, Completed]),
            AwaitingController
        );
        assert_eq!(
            overall_status(Verified, &[InProgress, AwaitingController]),
            InProgress
        );
        assert_eq!(overall_status(Verified, &[Completed, Denied]), Completed);
        assert_eq!(overall_status(Completed, &[Completed]), Completed);
    }

    #[test]
    fn filings_are_validated_without_echoing_values() {
        let Err(err) = parse_filing("steal", "not-an-email", None, Some("mars")) else {
            panic!("invalid filing accepted");
        };
        let body = shared_core::http::error_body(&err).to_string();
        assert!(
            body.contains("\"type\"")
                && body.contains("\"email\"")
                && body.contains("jurisdiction")
        );
        assert!(
            !body.contains("steal") && !body.contains("not-an-email") && !body.contains("mars")
        );
        assert!(parse_filing("rectification", "a@b.co", None, None).is_err());
        let ok = parse_filing(
            "rectification",
            "a@b.co",
            Some(&json!({"name": "Ana"})),
            Some("ccpa"),
        )
        .unwrap();
        assert_eq!(ok.jurisdiction, Jurisdiction::Ccpa);
    }
}
