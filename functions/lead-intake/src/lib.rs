//! `POST /v1/forms/{formId}/submissions` and its CORS preflight.
//!
//! This module is HTTP only: it reads the request, hands a [`shared_leads::intake::IntakeRequest`] to
//! the intake use case, and renders the outcome as JSON (scripts) or as a redirect / small HTML
//! page (a plain HTML form, no JavaScript).

pub mod config;

use std::sync::Arc;

use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;
use shared_accounts::dynamo::{AccountStore, AccountTables};
use shared_core::blind_index::BlindIndexKey;
use shared_core::clock::{Clock, IdGenerator};
use shared_core::domain::{FormId, RawSubmission, RawValue};
use shared_core::error::AppError;
use shared_core::http::{
    add_cors, body_bytes, error_body, error_response, header_str, json_response, path_param,
    source_ip,
};
use shared_core::telemetry::metric;
use shared_leads::dynamo::DynamoIntakeStore;
use shared_leads::intake::{DiscardReason, FormPresentation, Intake, IntakeRequest, Outcome};
use shared_leads::ports::IntakeStore;
use shared_leads::quota_alerts::MailedQuotaAlerts;
use shared_mail::unsubscribe::UnsubscribeScope;
use shared_mail::{SesMailer, WithUnsubscribe};

pub const ROUTE: &str = "/v1/forms/{formId}/submissions";
/// The proof-of-work challenge the embed snippet fetches (issue 19).
pub const CHALLENGE_ROUTE: &str = "/v1/forms/{formId}/challenge";
/// Larger bodies are refused before parsing: a contact form never needs more.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const MAX_IDEMPOTENCY_KEY: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Json,
    UrlEncoded,
}

/// The intake as the function serves it: over `dynamo`, with the quota alerts mailed to the
/// tenant's owners through `mailer` (the platform mailer `main.rs` builds: its sender, its
/// configuration set and send-suppression list; one-click unsubscribe headers added here like
/// on every platform email). `main.rs` and the tests build it here, so both run the same wiring.
pub fn intake(
    config: &config::Config,
    dynamo: aws_sdk_dynamodb::Client,
    mailer: SesMailer,
    clock: impl Clock + 'static,
    ids: impl IdGenerator + 'static,
    key: BlindIndexKey,
) -> Intake<DynamoIntakeStore> {
    let alerts = MailedQuotaAlerts {
        // Used for `team` only (a Query on the tenants table).
        accounts: AccountStore::new(
            dynamo.clone(),
            AccountTables {
                tenants: config.tables.tenants.clone(),
                security_log: String::new(),
                ops: config.tables.ops.clone(),
            },
            0,
        ),
        mailer: WithUnsubscribe {
            inner: mailer,
            key: key.clone(),
            api_base_url: config.api_base_url.clone(),
            scope: UnsubscribeScope::Platform,
        },
        app_base_url: config.app_base_url.clone(),
    };
    Intake::new(
        DynamoIntakeStore::new(dynamo, config.tables.clone()),
        clock,
        ids,
        key,
        config.settings.clone(),
    )
    .with_alerts(Arc::new(alerts))
}

/// Handles one request. Never panics on input and never answers 5xx for bad input.
pub async fn handle<S: IntakeStore>(intake: &Intake<S>, req: Request) -> Response<Body> {
    let origin = header_str(req.headers(), "origin").map(str::to_string);
    let challenge_route = req
        .raw_http_path()
        .trim_end_matches('/')
        .ends_with("/challenge");
    let template = if challenge_route {
        CHALLENGE_ROUTE
    } else {
        ROUTE
    };
    let form_id = match path_param(&req, "formId", template).map(|raw| FormId::parse(&raw)) {
        Some(Ok(id)) => id,
        _ => return error_response(&AppError::NotFound("form_not_found")),
    };
    if challenge_route {
        let resp = match *req.method() {
            Method::GET => challenge(intake, &form_id, &req, origin.as_deref()).await,
            _ => error_response(&AppError::method_not_allowed(["GET"])),
        };
        tracing::info!(status = resp.status().as_u16(), method = %req.method(), "request completed");
        return resp;
    }
    let resp = match *req.method() {
        Method::OPTIONS => preflight(intake, &form_id, origin.as_deref()).await,
        Method::POST => submit(intake, form_id, &req, origin.as_deref()).await,
        _ => error_response(&AppError::method_not_allowed(["OPTIONS", "POST"])),
    };
    tracing::info!(status = resp.status().as_u16(), method = %req.method(), "request completed");
    resp
}

/// A proof-of-work challenge for the form (ALTCHA's JSON), readable by the form's own origins:
/// a CORS-simple `GET`, so no preflight. Never cached: each is single use. `?key=` (the
/// idempotency key the post will carry, as the embed snippet sends it) makes it good for that
/// key's post only, which then needs no single-use guard of its own (two write units less).
async fn challenge<S: IntakeStore>(
    intake: &Intake<S>,
    form_id: &FormId,
    req: &Request,
    origin: Option<&str>,
) -> Response<Body> {
    let key = match req
        .query_string_parameters_ref()
        .and_then(|q| q.first("key"))
    {
        None => None,
        Some(k) if valid_idempotency_key(k.as_bytes()) => Some(k.to_string()),
        Some(_) => return error_response(&invalid_idempotency_key()),
    };
    let (form, c) = match intake.challenge(form_id, key.as_deref()).await {
        Ok(x) => x,
        Err(e) => return error_response(&e),
    };
    let mut resp = json_response(200, &json!(c));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(origin) = origin.filter(|o| form.allowed_origins.iter().any(|a| a == o)) {
        add_cors(&mut resp, origin);
    }
    resp
}

async fn preflight<S: IntakeStore>(
    intake: &Intake<S>,
    form_id: &FormId,
    origin: Option<&str>,
) -> Response<Body> {
    let form = match intake.preflight(form_id).await {
        Ok(f) => f,
        Err(e) => return error_response(&e),
    };
    let Some(origin) = origin.filter(|o| form.allowed_origins.iter().any(|a| a == o)) else {
        return error_response(&AppError::Forbidden {
            code: "origin_not_allowed",
            message: "This form does not accept submissions from this website.",
        });
    };
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::NO_CONTENT;
    add_cors(&mut resp, origin);
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, accept, idempotency-key"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    resp
}

async fn submit<S: IntakeStore>(
    intake: &Intake<S>,
    form_id: FormId,
    req: &Request,
    origin: Option<&str>,
) -> Response<Body> {
    let headers = req.headers();
    let kind = match header_str(headers, "content-type")
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("application/json") => Some(BodyKind::Json),
        Some("application/x-www-form-urlencoded") => Some(BodyKind::UrlEncoded),
        _ => None,
    };
    let wants_json = kind == Some(BodyKind::Json)
        || header_str(headers, "accept").is_some_and(|a| a.contains("application/json"));
    let render = Render { wants_json, origin };

    let Some(kind) = kind else {
        return early_error(intake, &render, &form_id, &AppError::UnsupportedMediaType).await;
    };
    let raw = body_bytes(req);
    if raw.len() > MAX_BODY_BYTES {
        let e = AppError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        };
        return early_error(intake, &render, &form_id, &e).await;
    }
    let body = match kind {
        BodyKind::Json => RawSubmission::from_json(raw),
        BodyKind::UrlEncoded => RawSubmission::from_urlencoded(raw),
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => return early_error(intake, &render, &form_id, &e).await,
    };
    let idempotency_key = match idempotency_key(headers, &body) {
        Ok(k) => k,
        Err(e) => return early_error(intake, &render, &form_id, &e).await,
    };

    let ip = source_ip(req);
    let response = intake
        .submit(IntakeRequest {
            form_id,
            body,
            raw_body: raw,
            origin,
            source_ip: ip.as_deref(),
            user_agent: header_str(headers, "user-agent"),
            referer_header: header_str(headers, "referer"),
            idempotency_key: idempotency_key.as_deref(),
        })
        .await;
    record_metric(&response.result);
    match response.result {
        Ok(outcome) => render.success(&outcome, response.form.as_ref()),
        Err(e) => render.error(&e, response.form.as_ref()),
    }
}

fn invalid_idempotency_key() -> AppError {
    AppError::validation(
        "invalid_idempotency_key",
        "Idempotency-Key must be 1 to 255 visible ASCII characters.",
    )
}

/// 1 to [`MAX_IDEMPOTENCY_KEY`] visible ASCII characters.
fn valid_idempotency_key(k: &[u8]) -> bool {
    !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY && k.iter().all(|b| b.is_ascii_graphic())
}

/// The request's idempotency key: the `Idempotency-Key` header (scripts) or the body's
/// `_idempotency_key` field (the embed snippet: a header would make its request need a CORS
/// preflight). Either must be 1 to 255 visible ASCII characters, and both, when sent, the same.
fn idempotency_key(
    headers: &lambda_http::http::HeaderMap,
    body: &RawSubmission,
) -> Result<Option<String>, AppError> {
    let invalid = invalid_idempotency_key;
    // Read the raw bytes: a key that is not visible ASCII must be refused, not ignored.
    let valid = |k: &[u8]| -> Result<String, AppError> {
        if !valid_idempotency_key(k) {
            return Err(invalid());
        }
        String::from_utf8(k.to_vec()).map_err(|_| invalid())
    };
    let header = headers
        .get("idempotency-key")
        .map(|v| valid(v.as_bytes()))
        .transpose()?;
    let in_body = match body.idempotency_key() {
        None => None,
        Some(RawValue::Text(k)) => Some(valid(k.as_bytes())?),
        Some(RawValue::Bool(_)) => return Err(invalid()),
    };
    match (header, in_body) {
        (Some(h), Some(b)) if h != b => Err(AppError::validation(
            "invalid_idempotency_key",
            "The Idempotency-Key header and the body's _idempotency_key differ.",
        )),
        (h, b) => Ok(h.or(b)),
    }
}

/// Internal metrics (CloudWatch EMF) of a submission that reached the intake: accepted,
/// rejected (by error code) or discarded (spam or suppressed). The caller's answer does not
/// depend on them, so a suppressed person stays indistinguishable from an accepted one to the
/// caller; the operator's dashboard may tell them apart. Errors found before the intake (415,
/// 413, malformed bodies) are counted through [`early_rejection`].
fn record_metric(result: &Result<Outcome, AppError>) {
    const FUNCTION: (&str, &str) = ("Function", "lead-intake");
    match result {
        Ok(Outcome::Accepted { new_lead, .. }) => {
            let kind = if *new_lead {
                "new_lead"
            } else {
                "existing_lead"
            };
            metric(
                "SubmissionsAccepted",
                1.0,
                "Count",
                &[FUNCTION, ("Kind", kind)],
            );
        }
        Ok(Outcome::Replayed { .. }) => {
            metric(
                "SubmissionsAccepted",
                1.0,
                "Count",
                &[FUNCTION, ("Kind", "replayed")],
            );
        }
        Ok(Outcome::Discarded { reason, .. }) => {
            let outcome = match reason {
                DiscardReason::Honeypot => "spam",
                DiscardReason::Suppressed => "suppressed",
            };
            metric(
                "SubmissionsDiscarded",
                1.0,
                "Count",
                &[FUNCTION, ("Outcome", outcome)],
            );
        }
        Ok(Outcome::Quarantined { .. }) => {
            metric("SubmissionsQuarantined", 1.0, "Count", &[FUNCTION]);
        }
        // A server fault is not the submitter's rejection: the API's 5xx alarm covers it.
        Err(e) if e.status() >= 500 => {}
        Err(e) => early_rejection(e),
    }
}

fn early_rejection(e: &AppError) {
    metric(
        "SubmissionsRejected",
        1.0,
        "Count",
        &[("Function", "lead-intake"), ("Outcome", e.code())],
    );
}

/// An error found before the form was read. A browser script can only read the answer if it
/// carries CORS headers, so when the request comes from a browser the form is read for its
/// allowed origins (one read, on error paths only).
async fn early_error<S: IntakeStore>(
    intake: &Intake<S>,
    render: &Render<'_>,
    form_id: &FormId,
    err: &AppError,
) -> Response<Body> {
    early_rejection(err);
    let form = match render.origin {
        Some(_) => intake.preflight(form_id).await.ok(),
        None => None,
    };
    render.error(err, form.as_ref())
}

struct Render<'a> {
    wants_json: bool,
    origin: Option<&'a str>,
}

impl Render<'_> {
    fn cors(&self, resp: &mut Response<Body>, form: Option<&FormPresentation>) {
        if let (Some(origin), Some(form)) = (self.origin, form) {
            if form.allowed_origins.iter().any(|o| o == origin) {
                add_cors(resp, origin);
            }
        }
    }

    fn success(&self, outcome: &Outcome, form: Option<&FormPresentation>) -> Response<Body> {
        let (lead_id, submission_id) = outcome.ids();
        let mut resp = if self.wants_json {
            json_response(
                201,
                &json!({ "submission_id": submission_id.as_str(), "lead_id": lead_id.as_str() }),
            )
        } else {
            let mut r = Response::new(Body::Empty);
            *r.status_mut() = StatusCode::SEE_OTHER;
            if let Some(Ok(loc)) = form.map(|f| HeaderValue::from_str(&f.redirect_url)) {
                r.headers_mut().insert(header::LOCATION, loc);
            }
            r
        };
        if matches!(outcome, Outcome::Replayed { .. }) {
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        self.cors(&mut resp, form);
        resp
    }

    fn error(&self, err: &AppError, form: Option<&FormPresentation>) -> Response<Body> {
        let mut resp = error_response(err);
        if !self.wants_json {
            // A person posted a plain HTML form: show a page, not JSON.
            let html = error_page(err);
            *resp.body_mut() = Body::Text(html);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
        }
        self.cors(&mut resp, form);
        resp
    }
}

fn error_page(err: &AppError) -> String {
    let body = error_body(err);
    let mut items = String::new();
    if let Some(fields) = body["error"]["fields"].as_object() {
        for (k, v) in fields {
            items.push_str(&format!(
                "<li><strong>{}</strong> {}</li>",
                escape(k),
                escape(v.as_str().unwrap_or_default())
            ));
        }
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Form not sent</title></head>\
         <body><h1>Your message was not sent</h1><p>{}</p><ul>{}</ul>\
         <p><a href=\"javascript:history.back()\">Go back</a> and try again.</p></body></html>",
        escape(&err.public_message()),
        items
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
