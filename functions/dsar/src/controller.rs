//! The controller's side (a tenant's owners and admins): the queue, a request, the decisions
//! (approve, deny with reasons, extend once), filing on a subject's behalf, lifting a
//! restriction. The tenant is the caller's, from the access token: its parts are its own
//! partition, so another tenant's request id is simply not found.

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared_core::dynamo::s;
use shared_core::error::AppError;
use shared_core::keys;
use shared_leads::cursor;
use shared_mail::{Mailer, OutgoingEmail};
use shared_privacy::dsar::deadlines::{days_left, may_extend, ymd};
use shared_privacy::dsar::emails;
use shared_privacy::dsar::job::{DsarJob, JobDispatcher, JobKind};
use shared_privacy::dsar::model::{
    Actor, Attestation, Controller, ControllerPart, HistoryEntry, RequestType, Status,
    SubjectRequest, Target,
};
use shared_privacy::dsar::progress::send;
use shared_privacy::dsar::store::{tenant_of_lead_pk, Closing, PartChange};
use time::Duration;

use crate::subject::{
    close_if_done, create_unverified, objects_to_legitimate_interest, parse_filing, route_verified,
};
use crate::{json, json_body, query_param, request_status, rfc3339, App, Ctx};

const MAX_REASON_CHARS: usize = 1000;

fn not_found() -> AppError {
    AppError::NotFound("request_not_found")
}

fn wrong_state(message: &'static str) -> AppError {
    AppError::Conflict {
        code: "invalid_state",
        message,
    }
}

fn controller_of(ctx: &Ctx) -> Result<(Controller, Actor), AppError> {
    let c = ctx.caller()?;
    Ok((
        Controller::Tenant(c.tenant_id.clone()),
        Actor::User(c.user_id.clone()),
    ))
}

fn summary(p: &ControllerPart, today: time::Date) -> serde_json::Value {
    let left = days_left(p.due, today);
    json!({
        "request_id": p.request_id,
        "type": p.request_type.as_str(),
        "status": p.status.as_str(),
        "jurisdiction": p.jurisdiction.as_str(),
        "received_at": rfc3339(p.received_at),
        "due_date": ymd(p.due),
        "days_left": left,
        "overdue": p.is_open() && left < 0,
        "extended": p.extended_at.is_some(),
        "acknowledge_by": p.acknowledge_by.map(ymd),
        "closed_at": p.closed_at.map(rfc3339),
    })
}

/// `GET /v1/privacy/requests?status=open|all&limit=&cursor=`: open requests by due date
/// (overdue first), or all of them newest first.
pub async fn list<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let caller = ctx.caller()?;
    let open_only = match query_param(req, "status").as_deref() {
        None | Some("open") => true,
        Some("all") => false,
        Some(_) => {
            return Err(AppError::validation(
                "invalid_query",
                "status must be open or all.",
            ))
        }
    };
    let limit = match query_param(req, "limit") {
        None => app.settings.page_size,
        Some(raw) => raw
            .parse::<i32>()
            .ok()
            .filter(|n| (1..=app.settings.max_page_size).contains(n))
            .ok_or_else(|| {
                AppError::validation("invalid_query", "limit must be a number from 1 to 100.")
            })?,
    };
    let scope = if open_only { "dsar-open" } else { "dsar-all" };
    let start = query_param(req, "cursor")
        .map(|c| cursor::decode(&app.keys, &caller.tenant_id, scope, &c))
        .transpose()?;
    let c = Controller::Tenant(caller.tenant_id.clone());
    let page = app.store.parts_of(&c, open_only, limit, start).await?;
    let today = ctx.now.date();
    let next = page
        .next
        .map(|k| cursor::encode(&app.keys, &caller.tenant_id, scope, &k));
    Ok(json(
        200,
        json!({
            "requests": page.parts.iter().map(|p| summary(p, today)).collect::<Vec<_>>(),
            "next_cursor": next,
        }),
    ))
}

async fn load<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    c: &Controller,
    id: &str,
) -> Result<ControllerPart, AppError> {
    app.store.part(c, id).await?.ok_or_else(not_found)
}

async fn subject_request<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    id: &str,
) -> Result<SubjectRequest, AppError> {
    app.store
        .request(id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("part without its request")))
}

/// Tells the subject of a decision while the request still holds their email. Best effort: a
/// failed send (logged without the address) does not undo the decision.
async fn tell_subject<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    id: &str,
    email: impl FnOnce(&str, &str) -> OutgoingEmail,
) -> Result<(), AppError> {
    let r = subject_request(app, id).await?;
    if let Some(to) = &r.email {
        let url = app.links.status_url(&app.keys, id);
        let _ = send(&app.mailer, &email(to, &url)).await;
    }
    Ok(())
}

/// `GET /v1/privacy/requests/{id}`: the part, its history, and while it is open the subject's
/// email and the tenant's leads of that email (what the controller needs to decide).
pub async fn get<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    ctx: &Ctx,
) -> Result<Response<Body>, AppError> {
    let id = ctx.request_id()?;
    let (c, _) = controller_of(ctx)?;
    let p = load(app, &c, &id).await?;
    let r = subject_request(app, &id).await?;
    let mut body = summary(&p, ctx.now.date());
    let Controller::Tenant(tenant) = &c else {
        return Err(not_found());
    };
    let lead_ids: Vec<String> = if let (true, Some(phone)) = (p.is_open(), &r.subject_phone_bidx) {
        let (ids, _) = shared_privacy::dsar::subjects::phone_lead_ids(
            app.store.client(),
            &app.store.tables().leads,
            tenant,
            phone,
            &app.keys,
        )
        .await?;
        ids.into_iter().map(|l| l.to_string()).collect()
    } else if p.is_open() {
        app.store
            .lead_pks_of(&p.email_bidx)
            .await?
            .into_iter()
            .filter(|pk| tenant_of_lead_pk(pk).as_ref() == Some(tenant))
            .filter_map(|pk| pk.rsplit("#LEAD#").next().map(str::to_string))
            .collect()
    } else {
        Vec::new()
    };
    let corrections = match r.details.job_kind(r.request_type) {
        JobKind::Rectification { changes } if p.is_open() => json!(changes),
        _ => serde_json::Value::Null,
    };
    let extra = json!({
        // A request by phone has no subject email: its answers go to the filing user.
        "subject_email": if p.is_open() && r.subject_phone_bidx.is_none() { json!(r.email) } else { serde_json::Value::Null },
        "answers_to": if p.is_open() && r.subject_phone_bidx.is_some() { json!(r.email) } else { serde_json::Value::Null },
        "lead_ids": lead_ids,
        "corrections": corrections,
        "objection": match r.details.job_kind(r.request_type) {
            JobKind::Objection { marketing_only } => json!(if marketing_only { "marketing" } else { "legitimate_interest" }),
            _ => serde_json::Value::Null,
        },
        "filed_by": r.filed_by,
        "subject_identified_by": if r.subject_phone_bidx.is_some() { "phone" } else { "email" },
        "extension_reason": p.extension_reason,
        "denial_reason": p.denial_reason,
        "compelling_grounds": p.compelling_grounds,
        "extended_due_limit": ymd(p.extended_due_limit),
        "restriction_lifted_at": p.restriction_lifted_at.map(rfc3339),
        "outcome": p.outcome.as_deref().and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok()),
        "history": p.history.iter().map(|h| json!({
            "at": rfc3339(h.at), "event": h.event, "status": h.status.as_str(), "actor": h.actor,
        })).collect::<Vec<_>>(),
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    Ok(json(200, body))
}

fn job_of(r: &SubjectRequest, c: &Controller) -> Result<DsarJob, AppError> {
    let email = r
        .email
        .clone()
        .ok_or_else(|| wrong_state("This request is closed."))?;
    Ok(DsarJob {
        request_id: r.request_id.clone(),
        scope: c.job_scope(),
        kind: r.details.job_kind(r.request_type),
        subject_email: email,
    })
}

/// The controller's choices in an approval (an empty body chooses nothing).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    /// Erasure only: suppress the lead's phone as well as the proven email. Off by default: a
    /// phone typed into a form is not proven to be the subject's.
    #[serde(default)]
    suppress_phone: bool,
}

/// `POST …/{id}/approve` (optional body `{suppress_phone}`): the worker carries it out. A retry
/// of an approval that could not be handed over hands it over again (the worker is idempotent).
pub async fn approve<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let id = ctx.request_id()?;
    let (c, actor) = controller_of(ctx)?;
    let choices: ApproveBody = if shared_core::http::body_bytes(req).is_empty() {
        ApproveBody::default()
    } else {
        json_body(req)?
    };
    let p = load(app, &c, &id).await?;
    if choices.suppress_phone && p.request_type != RequestType::Erasure {
        return Err(AppError::validation(
            "invalid_body",
            "suppress_phone applies to erasure requests only.",
        ));
    }
    let entry = HistoryEntry::new(ctx.now, "approved", Status::Approved, &actor);
    let change = PartChange::new(
        &[Status::AwaitingController, Status::Failed],
        Status::Approved,
        entry,
    )
    .remove("failure");
    if !app.store.transition(&c, &id, &change).await? && p.status != Status::Approved {
        return Err(wrong_state(
            "Only a request awaiting a decision (or failed) can be approved.",
        ));
    }
    let r = subject_request(app, &id).await?;
    let mut job = job_of(&r, &c)?;
    if let JobKind::Erasure { suppress_phone } = &mut job.kind {
        *suppress_phone = choices.suppress_phone;
    }
    if objects_to_legitimate_interest(&r) {
        // The objection upheld: no compelling grounds, so the processing stops for good and
        // the subject's data is erased (GDPR Art. 17(1)(c)), as an approved erasure erases it
        // (the proven email suppressed, a held lead kept whole).
        job.kind = JobKind::Erasure {
            suppress_phone: false,
        };
    }
    app.dispatcher.dispatch(&job).await?;
    tracing::info!(request_id = %id, request_type = p.request_type.as_str(), suppress_phone = choices.suppress_phone, "privacy request approved");
    shared_core::telemetry::metric("DsarDecisions", 1.0, "Count", &[("Event", "approved")]);
    Ok(request_status(200, &id, Status::Approved))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: String,
}

fn reason_of(req: &Request) -> Result<String, AppError> {
    let body: ReasonBody = json_body(req)?;
    let reason = body.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(AppError::validation(
            "invalid_reason",
            "reason must be 1 to 1000 characters: the subject receives it.",
        ));
    }
    Ok(reason)
}

/// `POST …/{id}/deny {reason}`: the subject is told the reason and the right to complain.
pub async fn deny<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let id = ctx.request_id()?;
    let (c, actor) = controller_of(ctx)?;
    let reason = reason_of(req)?;
    let p = load(app, &c, &id).await?;
    if p.request_type == RequestType::Objection
        && objects_to_legitimate_interest(&subject_request(app, &id).await?)
    {
        return Err(AppError::Conflict {
            code: "compelling_grounds_required",
            message: "An objection to legitimate-interest processing is refused only by recording compelling legitimate grounds (POST .../compelling-grounds).",
        });
    }
    let entry = HistoryEntry::new(ctx.now, "denied", Status::Denied, &actor);
    let change = PartChange::new(
        &[Status::AwaitingController, Status::Failed],
        Status::Denied,
        entry,
    )
    .set("denial_reason", s(&reason))
    .closing(Closing::Full);
    if !app.store.transition(&c, &id, &change).await? {
        return Err(wrong_state(
            "Only a request awaiting a decision can be denied.",
        ));
    }
    tracing::info!(request_id = %id, "privacy request denied");
    shared_core::telemetry::metric("DsarDecisions", 1.0, "Count", &[("Event", "denied")]);
    tell_subject(app, &id, |to, url| {
        emails::denied(to, p.request_type, &id, &reason, url)
    })
    .await?;
    close_if_done(app, &id, ctx.now).await?;
    Ok(request_status(200, &id, Status::Denied))
}

/// `POST …/{id}/extend {reason}`: once, before the first period ends, to the legal limit; the
/// subject is told with the reason.
pub async fn extend<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let id = ctx.request_id()?;
    let (c, actor) = controller_of(ctx)?;
    let reason = reason_of(req)?;
    let p = load(app, &c, &id).await?;
    if p.extended_at.is_some() {
        return Err(AppError::Conflict {
            code: "already_extended",
            message: "A request can be extended once.",
        });
    }
    if !p.is_open() || p.status == Status::Completed {
        return Err(wrong_state("Only an open request can be extended."));
    }
    if crate::subject::applies_at_once(&subject_request(app, &id).await?) {
        return Err(AppError::Conflict {
            code: "applies_at_once",
            message: "A withdrawal of consent or an objection to direct marketing takes effect at once; it cannot be extended.",
        });
    }
    if !may_extend(p.due, ctx.now.date()) {
        return Err(AppError::Conflict {
            code: "extension_too_late",
            message: "An extension must be decided before the first period ends.",
        });
    }
    let new_due = p.extended_due_limit;
    let entry = HistoryEntry::new(ctx.now, "extended", p.status, &actor);
    let change = PartChange::new(&[p.status], p.status, entry)
        .set("extended_at", s(rfc3339(ctx.now)))
        .set("extension_reason", s(&reason))
        .set("due", s(ymd(new_due)))
        .set("due_sk", s(keys::dsar_due_sort(&ymd(new_due), &id)))
        .condition("attribute_not_exists(extended_at)");
    if !app.store.transition(&c, &id, &change).await? {
        return Err(AppError::Conflict {
            code: "already_extended",
            message: "A request can be extended once.",
        });
    }
    tracing::info!(request_id = %id, "privacy request extended");
    shared_core::telemetry::metric("DsarDecisions", 1.0, "Count", &[("Event", "extended")]);
    tell_subject(app, &id, |to, url| {
        emails::extended(to, p.request_type, &id, &reason, new_due, url)
    })
    .await?;
    Ok(json(
        200,
        json!({ "request_id": id, "status": p.status.as_str(), "due_date": ymd(new_due) }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OnBehalfBody {
    #[serde(rename = "type")]
    request_type: String,
    #[serde(default, deserialize_with = "shared_core::http::not_null")]
    email: Option<String>,
    /// A person the tenant knows by phone only (a phone-only form): the request finds the data
    /// by the phone's blind index. Needs `identity_attested` (no code can be sent to a phone);
    /// the answers go to the filing user's email, for the tenant to hand over.
    #[serde(default, deserialize_with = "shared_core::http::not_null")]
    phone: Option<String>,
    #[serde(default)]
    details: Option<serde_json::Value>,
    #[serde(default)]
    jurisdiction: Option<String>,
    /// How the controller verified the subject's identity, if it attests it. Without it (the
    /// default), the subject confirms with the emailed code like any filing.
    #[serde(default)]
    identity_attested: Option<String>,
}

/// The subject of a filing on behalf, and where the answers go.
struct OnBehalfSubject {
    /// The address the request record holds: the subject's, or for a request by phone the
    /// filing user's.
    email: String,
    /// The phone's blind index, for a request by phone.
    phone_bidx: Option<String>,
}

/// Validates who the filing on behalf is about: exactly one of `email` and `phone`; a phone
/// request needs an attested identity and is one the worker can answer by phone alone.
async fn on_behalf_subject<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    caller: &shared_accounts::auth::caller::Caller,
    body: &OnBehalfBody,
    attested: bool,
) -> Result<OnBehalfSubject, AppError> {
    match (&body.email, &body.phone) {
        (Some(e), None) => Ok(OnBehalfSubject {
            email: e.clone(),
            phone_bidx: None,
        }),
        (None, Some(raw)) => {
            let phone = shared_core::domain::Phone::parse(raw).map_err(|m| {
                let mut f = shared_core::error::FieldErrors::new();
                f.insert("phone".into(), m.to_string());
                AppError::invalid_fields(f)
            })?;
            if !attested {
                return Err(AppError::validation(
                    "attestation_required",
                    "A request by phone needs identity_attested: no code can be sent to a phone.",
                ));
            }
            // The objection to legitimate-interest processing restricts the subject's leads
            // by their email until the tenant decides; a person known by phone files it with
            // the tenant directly, which restricts or erases the lead itself.
            let legitimate_interest = body.request_type == "objection"
                && body
                    .details
                    .as_ref()
                    .and_then(|d| d.get("processing"))
                    .and_then(|v| v.as_str())
                    == Some("legitimate_interest");
            if legitimate_interest {
                return Err(AppError::validation(
                    "unsupported_for_phone",
                    "An objection to legitimate-interest processing cannot be filed by phone; restrict or erase the lead.",
                ));
            }
            let user = app
                .accounts
                .user(&caller.tenant_id, &caller.user_id)
                .await?
                .ok_or(AppError::Unauthorized {
                    code: "unauthorized",
                    message: "A valid access token is required.",
                })?;
            Ok(OnBehalfSubject {
                email: user.email.as_str().to_string(),
                phone_bidx: Some(app.keys.phone(&phone)),
            })
        }
        _ => Err(AppError::validation(
            "invalid_subject",
            "Name the person by exactly one of email and phone.",
        )),
    }
}

/// `POST /v1/privacy/requests/on-behalf`: a request the tenant received another way (phone,
/// letter). Still confirmed by the subject's code, unless the controller attests how it verified
/// the identity (recorded in the history, under the acting user).
pub async fn on_behalf<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let caller = ctx.caller()?;
    let body: OnBehalfBody = json_body(req)?;
    let subject = on_behalf_subject(app, caller, &body, body.identity_attested.is_some()).await?;
    let filing = parse_filing(
        &body.request_type,
        &subject.email,
        body.details.as_ref(),
        body.jurisdiction.as_deref(),
    )?;
    let attestation = body
        .identity_attested
        .as_deref()
        .map(|a| {
            Attestation::parse(a).ok_or_else(|| {
                AppError::validation(
                    "invalid_attestation",
                    "identity_attested must be in_person, signed_document or existing_relationship.",
                )
            })
        })
        .transpose()?;
    let actor = Actor::User(caller.user_id.clone());
    let target = Target::Tenant(caller.tenant_id.clone());
    let bidx = app.keys.email(&filing.email);
    // Every filing on behalf mails the address it names: counted per client and per tenant.
    app.limit_on_behalf(req, &caller.tenant_id, ctx.now).await?;
    let Some(a) = attestation else {
        let id = create_unverified(app, ctx.now, &filing, target, &actor, &bidx).await?;
        return Ok(request_status(201, &id, Status::IdentityUnverified));
    };
    let id = app.new_request_id(ctx.now);
    let r = SubjectRequest {
        request_id: id.clone(),
        request_type: filing.request_type,
        target,
        jurisdiction: filing.jurisdiction,
        status: Status::IdentityUnverified,
        email: Some(filing.email.as_str().to_string()),
        email_bidx: bidx,
        subject_phone_bidx: subject.phone_bidx.clone(),
        details: filing.details.clone(),
        code_hash: None,
        attempts: 0,
        code_expires_at: None,
        filed_by: actor.to_stored(),
        attestation: Some(a),
        created_at: ctx.now,
        verified_at: None,
        closed_at: None,
        parts: vec![],
        open_parts: 0,
        history: vec![HistoryEntry::new(
            ctx.now,
            "filed_on_behalf",
            Status::IdentityUnverified,
            &actor,
        )],
    };
    app.store
        .put_request(
            &r,
            Some(ctx.now + Duration::days(app.settings.unverified_ttl_days)),
        )
        .await?;
    // Past the address's privacy-request emails of the hour, the subject is not told now (the
    // request is filed and answered as always).
    let announce = app.may_mail(&filing.email, ctx.now).await?;
    let status = route_verified(app, &r, ctx.now, &actor, Some(a), announce).await?;
    tracing::info!(request_id = %id, attestation = a.as_str(), "privacy request filed on behalf");
    Ok(request_status(201, &id, status))
}

/// `POST …/{id}/lift-restriction`: the subject is told first; then the worker lifts it.
pub async fn lift_restriction<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    ctx: &Ctx,
) -> Result<Response<Body>, AppError> {
    let id = ctx.request_id()?;
    let (c, actor) = controller_of(ctx)?;
    let p = load(app, &c, &id).await?;
    if p.request_type != RequestType::Restriction
        || p.status != Status::Completed
        || p.restriction_lifted_at.is_some()
    {
        return Err(wrong_state("Only a restriction in force can be lifted."));
    }
    let r = subject_request(app, &id).await?;
    let to = r
        .email
        .clone()
        .ok_or_else(|| wrong_state("Only a restriction in force can be lifted."))?;
    // Told before it is lifted: if the email cannot be sent, nothing is lifted.
    let url = app.links.status_url(&app.keys, &id);
    send(&app.mailer, &emails::restriction_ending(&to, &id, &url)).await?;
    let job = DsarJob {
        request_id: id.clone(),
        scope: c.job_scope(),
        kind: JobKind::LiftRestriction,
        subject_email: to,
    };
    app.dispatcher.dispatch(&job).await?;
    let entry = HistoryEntry::new(ctx.now, "restriction_lifted", Status::Completed, &actor);
    app.store.restriction_lifted(&c, &id, &entry).await?;
    close_if_done(app, &id, ctx.now).await?;
    tracing::info!(request_id = %id, "privacy restriction lifted");
    Ok(json(
        200,
        json!({ "request_id": id, "status": Status::Completed.as_str(), "restriction_lifted_at": rfc3339(ctx.now) }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroundsBody {
    grounds: String,
}

/// `POST …/{id}/compelling-grounds {grounds}`: the tenant refuses an objection to
/// legitimate-interest processing (GDPR Art. 21(1)) by recording the compelling legitimate
/// grounds that override the subject's interests. The subject is told first, with the grounds
/// and the right to complain (Art. 18(3): before the restriction is lifted; if the email cannot
/// be sent, nothing changes); then the part closes `denied` with the grounds kept on it, and the
/// restriction this objection put on the subject's leads is lifted (audit `lead.unrestricted`).
pub async fn compelling_grounds<M: Mailer, D: JobDispatcher>(
    app: &App<M, D>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let id = ctx.request_id()?;
    let (c, actor) = controller_of(ctx)?;
    let body: GroundsBody = json_body(req)?;
    let grounds = body.grounds.trim().to_string();
    if grounds.is_empty() || grounds.chars().count() > MAX_REASON_CHARS {
        return Err(AppError::validation(
            "invalid_grounds",
            "grounds must be 1 to 1000 characters: the subject receives them.",
        ));
    }
    let p = load(app, &c, &id).await?;
    let r = subject_request(app, &id).await?;
    if !objects_to_legitimate_interest(&r) {
        return Err(wrong_state(
            "Compelling grounds answer an objection to legitimate-interest processing only.",
        ));
    }
    if p.status != Status::AwaitingController {
        return Err(wrong_state(
            "Only an objection awaiting a decision can be answered with compelling grounds.",
        ));
    }
    let Controller::Tenant(tenant) = &c else {
        return Err(not_found());
    };
    let to = r
        .email
        .clone()
        .ok_or_else(|| wrong_state("This request is closed."))?;
    let url = app.links.status_url(&app.keys, &id);
    send(
        &app.mailer,
        &emails::compelling_grounds(&to, &id, &grounds, &url),
    )
    .await?;
    let entry = HistoryEntry::new(ctx.now, "compelling_grounds", Status::Denied, &actor);
    let change = PartChange::new(&[Status::AwaitingController], Status::Denied, entry)
        .set("compelling_grounds", s(&grounds))
        .closing(Closing::Full);
    if !app.store.transition(&c, &id, &change).await? {
        return Err(wrong_state(
            "Only an objection awaiting a decision can be answered with compelling grounds.",
        ));
    }
    let lifted = app
        .store
        .lift_objection_restriction(tenant, &p.email_bidx, &id, ctx.now)
        .await?;
    close_if_done(app, &id, ctx.now).await?;
    tracing::info!(request_id = %id, leads = lifted.len(), "objection answered with compelling grounds");
    shared_core::telemetry::metric(
        "DsarDecisions",
        1.0,
        "Count",
        &[("Event", "compelling_grounds")],
    );
    Ok(json(
        200,
        json!({ "request_id": id, "status": Status::Denied.as_str(), "leads_unrestricted": lifted.len() }),
    ))
}
