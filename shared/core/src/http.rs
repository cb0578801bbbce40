//! HTTP helpers over `lambda_http`: the one place an [`AppError`] becomes a response, and small
//! readers for what API Gateway puts in the request context.

use lambda_http::http::{header, HeaderMap, HeaderValue, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

use crate::error::AppError;

pub const JSON: &str = "application/json";

/// `Retry-After` of a 503 for a dependency's passing failure: the SDK already retried with
/// backoff inside the request, so a second later is a fresh chance, not a storm.
pub const RETRY_AFTER_UNAVAILABLE_SECS: u64 = 1;

pub fn json_response(status: u16, body: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(Body::Text(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The JSON body of an error: `{"error":{"code","message"[,"fields"]}}`.
pub fn error_body(err: &AppError) -> serde_json::Value {
    let mut e = json!({ "code": err.code(), "message": err.public_message() });
    if let AppError::Validation { fields, .. } = err {
        if !fields.is_empty() {
            e["fields"] = json!(fields);
        }
    }
    json!({ "error": e })
}

/// Maps an error to its response. Internal errors are logged here (with the request id carried
/// by the current span) and answered without detail.
///
/// An internal error whose cause is an AWS call that failed for a passing reason (throttling, a
/// 5xx, a timeout, a lost connection: [`crate::aws::is_transient`]) is answered `503` with
/// `Retry-After` instead of `500`: the request was fine, every write is safe to repeat, and
/// the caller should send it again.
pub fn error_response(err: &AppError) -> Response<Body> {
    let unavailable;
    let err = match err {
        AppError::Internal(source) if crate::aws::is_transient(source) => {
            tracing::warn!(error = %format!("{source:#}"), "aws unavailable after retries; answering 503");
            unavailable = AppError::Unavailable {
                retry_after_secs: RETRY_AFTER_UNAVAILABLE_SECS,
            };
            &unavailable
        }
        AppError::Internal(source) => {
            tracing::error!(error = %format!("{source:#}"), "internal error");
            err
        }
        _ => err,
    };
    let mut resp = json_response(err.status(), &error_body(err));
    match err {
        AppError::RateLimited { retry_after_secs } | AppError::Unavailable { retry_after_secs } => {
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        // RFC 9110: a 405 names the methods the resource takes.
        AppError::MethodNotAllowed { allow } => {
            if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
        }
        _ => {}
    }
    resp
}

/// The request id API Gateway assigned (also the one in its access log), else Lambda's.
pub fn request_id(req: &Request) -> String {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() {
        if let Some(id) = &ctx.request_id {
            return id.clone();
        }
    }
    req.lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_else(|| "unknown".into())
}

/// The client address as API Gateway saw it (not a header a client could forge).
pub fn source_ip(req: &Request) -> Option<String> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone(),
        _ => None,
    }
}

pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A path parameter: from API Gateway's `pathParameters`, else matched from the raw path against
/// the route template (local emulators do not always fill `pathParameters`).
pub fn path_param(req: &Request, name: &str, template: &str) -> Option<String> {
    if let Some(v) = req.path_parameters_ref().and_then(|p| p.first(name)) {
        return Some(v.to_string());
    }
    let path = req.raw_http_path();
    let want = format!("{{{name}}}");
    let mut t = template.trim_matches('/').split('/');
    let mut p = path.trim_matches('/').split('/');
    let mut found = None;
    loop {
        match (t.next(), p.next()) {
            (None, None) => return found,
            (Some(ts), Some(ps)) if ts == want => found = Some(ps.to_string()),
            (Some(ts), Some(ps)) if ts.starts_with('{') || ts == ps => {}
            _ => return None,
        }
    }
}

/// One entry of a function's route table: its name (the `route` log field), method and path
/// template as `template.yaml` declares them (`/v1/leads/{leadId}`), and who may call it (`A`:
/// the function's access rule: a permission, an optional one for public routes, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<A> {
    pub name: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub access: A,
}

impl<A> Route<A> {
    /// The route of `routes` matching `method` and `path`, with its path parameters in order; a
    /// known path with another method is 405 with `Allow`, an unknown path 404. See
    /// [`match_route`].
    pub fn find<'r>(
        routes: &'r [Route<A>],
        method: &str,
        path: &str,
    ) -> Result<(&'r Route<A>, Vec<String>), AppError> {
        match_route(routes, method, path, |r| (r.method, r.path))
    }
}

/// A [`Route`], for `const` route tables.
pub const fn route<A: Copy>(
    name: &'static str,
    method: &'static str,
    path: &'static str,
    access: A,
) -> Route<A> {
    Route {
        name,
        method,
        path,
        access,
    }
}

/// The route of a function's route table matching `method` and `path`, with its path parameters
/// in order. `spec` gives a route's method and path template (`/v1/leads/{leadId}`). A known path
/// with another method is 405 naming the path's methods (the `Allow` header of
/// [`error_response`]), an unknown path 404. Every function's dispatcher uses this; the template
/// routes every other method of a documented path to its function (`ANY`), so production and
/// `make dev` answer the same 405.
pub fn match_route<'r, R>(
    routes: &'r [R],
    method: &str,
    path: &str,
    spec: impl for<'a> Fn(&'a R) -> (&'a str, &'a str),
) -> Result<(&'r R, Vec<String>), AppError> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    // Every route whose template matches, with its parameters and how many literal segments it
    // matched. As in API Gateway, the most specific templates win: `/v1/team/invitations` is that
    // path, never the member `invitations` of `/v1/team/{userId}`, so its `Allow` is its own.
    let mut matched: Vec<(&'r R, &str, Vec<String>, usize)> = Vec::new();
    for route in routes {
        let (route_method, template) = spec(route);
        let tpl: Vec<&str> = template.split('/').collect();
        if tpl.len() != segments.len() {
            continue;
        }
        let mut params = Vec::new();
        let mut literals = 0;
        let matches = tpl.iter().zip(&segments).all(|(t, s)| {
            if t.starts_with('{') {
                params.push((*s).to_string());
                !s.is_empty()
            } else {
                literals += 1;
                t == s
            }
        });
        if matches {
            matched.push((route, route_method, params, literals));
        }
    }
    let most_specific = matched.iter().map(|m| m.3).max().unwrap_or(0);
    let mut allow: Vec<&str> = Vec::new();
    for (route, route_method, params, literals) in matched {
        if literals < most_specific {
            continue;
        }
        if route_method == method {
            return Ok((route, params));
        }
        if !allow.contains(&route_method) {
            allow.push(route_method);
        }
    }
    if !allow.is_empty() {
        allow.sort_unstable();
        Err(AppError::method_not_allowed(allow))
    } else {
        Err(AppError::NotFound("route_not_found"))
    }
}

/// The body's bytes (API Gateway may have base64-decoded it for us; `lambda_http` does that).
pub fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(s) => s.as_bytes(),
        Body::Binary(b) => b.as_slice(),
        _ => &[],
    }
}

/// Parses a JSON body of at most `max_bytes` into `T` (a `Content-Type` other than JSON: 415;
/// larger: 413; not `T`: a 422 `invalid_body`). The message names a field or a type, never a
/// value: serde quotes values in some messages (an unknown variant, an invalid string), those
/// are answered with a generic sentence.
pub fn json_body<T: serde::de::DeserializeOwned>(
    req: &Request,
    max_bytes: usize,
) -> Result<T, AppError> {
    let ct = header_str(req.headers(), "content-type")
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    if ct.as_deref() != Some("application/json") {
        return Err(AppError::UnsupportedMediaType);
    }
    let raw = body_bytes(req);
    if raw.len() > max_bytes {
        return Err(AppError::PayloadTooLarge { limit: max_bytes });
    }
    // Every body of the API is a JSON object. serde would also read a struct from an array of
    // its fields in order (`[null, null]` is a form edit that changes nothing): refused.
    if let Some(first) = raw.iter().find(|b| !b.is_ascii_whitespace()) {
        if *first == b'[' {
            return Err(AppError::validation(
                "invalid_body",
                "The body must be a JSON object.",
            ));
        }
    }
    serde_json::from_slice(raw).map_err(|e| {
        let message = match e.classify() {
            serde_json::error::Category::Data => format!(
                "The body does not match this operation: {}",
                body_mismatch(&e)
            ),
            _ => "The body is not valid JSON.".to_string(),
        };
        AppError::validation("invalid_body", message)
    })
}

/// What serde says is wrong with a body, without any value from it.
fn body_mismatch(e: &serde_json::Error) -> String {
    // e.g. "unknown field `x`, expected one of ..." or "missing field `email` at line 1 ...".
    let msg = e.to_string();
    let cut = msg.find(" at line ").unwrap_or(msg.len());
    let what: String = msg[..cut]
        .split(", expected")
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| *c != '"' && *c != '`')
        .take(120)
        .collect();
    if what.starts_with("unknown variant") || what.starts_with("invalid") {
        "a field has a value this operation does not accept".to_string()
    } else {
        what
    }
}

/// A query-string parameter.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
        .map(str::to_string)
}

/// CORS headers for an allowed origin: only that origin is echoed, never `*`.
pub fn add_cors(resp: &mut Response<Body>, origin: &str) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// For `#[serde(default, deserialize_with = "not_null")]` on an optional field: absent is
/// `None`, a value is `Some`, and an explicit `null` is refused (the documents define the field
/// as a string, not as nullable, and "present but null" is not "absent").
pub fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(content_type: &str, body: &str) -> Request {
        let mut req = Request::new(Body::Text(body.to_string()));
        req.headers_mut()
            .insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        req
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Filing {
        email: String,
        kind: Kind,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Access,
    }

    fn body_error(body: &str) -> serde_json::Value {
        let e = json_body::<Filing>(&post("application/json", body), 1024).unwrap_err();
        error_body(&e)
    }

    #[test]
    fn json_body_parses_and_refuses_other_media_and_large_bodies() {
        let ok = r#"{"email":"a@example.com","kind":"access"}"#;
        let f: Filing = json_body(&post("application/json; charset=utf-8", ok), 1024).unwrap();
        assert_eq!(f.email, "a@example.com");
        assert!(matches!(
            json_body::<Filing>(&post("text/plain", ok), 1024),
            Err(AppError::UnsupportedMediaType)
        ));
        assert!(matches!(
            json_body::<Filing>(&post("application/json", ok), 8),
            Err(AppError::PayloadTooLarge { limit: 8 })
        ));
    }

    #[test]
    fn json_body_errors_name_fields_never_values() {
        let b = body_error(r#"{"email":"a@example.com","kind":"access","x":1}"#);
        assert_eq!(b["error"]["code"], "invalid_body");
        let msg = b["error"]["message"].as_str().unwrap();
        assert!(msg.contains("unknown field x"), "{msg}");
        let b = body_error(r#"{"email":"a@example.com"}"#);
        assert!(b.to_string().contains("missing field kind"), "{b}");
        for leaking in [
            r#"{"email":"a@example.com","kind":"jane@example.com"}"#,
            r#"{"email":7,"kind":"access"}"#,
            r#"{"email":"a@example.com","kind":"bob-secret-value"}"#,
        ] {
            let b = body_error(leaking).to_string();
            assert!(!b.contains("jane") && !b.contains("secret"), "{b}");
            assert!(b.contains("does not accept"), "{b}");
        }
        let b = body_error("{not json");
        assert_eq!(b["error"]["message"], "The body is not valid JSON.");
        // A struct from an array of its fields: serde takes it, the API does not.
        let b = body_error(r#" ["a@example.com", "access"]"#);
        assert_eq!(b["error"]["code"], "invalid_body");
        assert_eq!(b["error"]["message"], "The body must be a JSON object.");
    }

    #[test]
    fn error_body_shape() {
        let mut fields = crate::error::FieldErrors::new();
        fields.insert("email".into(), "is required".into());
        let b = error_body(&AppError::invalid_fields(fields));
        assert_eq!(b["error"]["code"], "invalid_fields");
        assert_eq!(b["error"]["fields"]["email"], "is required");
    }

    #[test]
    fn internal_errors_hide_detail() {
        let e = AppError::Internal(anyhow::anyhow!("table xyz exploded"));
        let b = error_body(&e);
        assert!(!b.to_string().contains("xyz"));
        assert_eq!(error_response(&e).status(), 500);
    }

    #[test]
    fn a_dependency_that_is_briefly_unavailable_is_503_with_retry_after() {
        let throttled = aws_smithy_types::error::ErrorMetadata::builder()
            .code("ThrottlingException")
            .message("Rate exceeded in table secret-table")
            .build();
        let e = AppError::Internal(anyhow::Error::new(throttled).context("PutItem"));
        let resp = error_response(&e);
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        let body = match resp.body() {
            Body::Text(t) => t.clone(),
            other => panic!("{other:?}"),
        };
        assert!(body.contains("service_unavailable") && !body.contains("secret-table"));
        // A condition that failed is no passing trouble: still 500 when unhandled.
        let refused = aws_smithy_types::error::ErrorMetadata::builder()
            .code("ConditionalCheckFailedException")
            .build();
        let e = AppError::Internal(anyhow::Error::new(refused));
        assert_eq!(error_response(&e).status(), 500);
    }

    #[test]
    fn routes_match_templates_and_tell_404_from_405() {
        let routes = [
            ("GET", "/v1/leads/{leadId}"),
            ("DELETE", "/v1/leads/{leadId}"),
        ];
        fn spec<'a>(r: &'a (&'static str, &'static str)) -> (&'a str, &'a str) {
            (r.0, r.1)
        }
        let (r, params) = match_route(&routes, "DELETE", "/v1/leads/ld-1", spec).unwrap();
        assert_eq!((r.0, params), ("DELETE", vec!["ld-1".to_string()]));
        assert_eq!(
            match_route(&routes, "PUT", "/v1/leads/x", spec)
                .unwrap_err()
                .status(),
            405
        );
        assert_eq!(
            match_route(&routes, "GET", "/v1/leads", spec)
                .unwrap_err()
                .status(),
            404
        );
        assert_eq!(
            match_route(&routes, "GET", "/v1/leads//", spec)
                .unwrap_err()
                .status(),
            404
        );
    }

    #[test]
    fn every_route_table_answers_405_with_allow_and_the_json_error_shape() {
        const ROUTES: &[Route<()>] = &[
            route("get", "GET", "/v1/leads/{leadId}", ()),
            route("patch", "PATCH", "/v1/leads/{leadId}", ()),
            route("delete", "DELETE", "/v1/leads/{leadId}", ()),
            route("list", "GET", "/v1/leads", ()),
        ];
        let (r, params) = Route::find(ROUTES, "PATCH", "/v1/leads/ld-1").unwrap();
        assert_eq!((r.name, params), ("patch", vec!["ld-1".to_string()]));
        for method in ["POST", "PUT", "OPTIONS", "HEAD", "TRACE"] {
            let err = Route::find(ROUTES, method, "/v1/leads/ld-1").unwrap_err();
            let resp = error_response(&err);
            assert_eq!(resp.status(), 405, "{method}");
            assert_eq!(
                resp.headers()[header::ALLOW],
                "DELETE, GET, PATCH",
                "{method}"
            );
            assert_eq!(resp.headers()[header::CONTENT_TYPE], JSON);
            let body: serde_json::Value = match resp.body() {
                Body::Text(t) => serde_json::from_str(t).unwrap(),
                other => panic!("{other:?}"),
            };
            assert_eq!(body["error"]["code"], "method_not_allowed");
            assert!(body["error"]["message"].is_string());
        }
        let err = Route::find(ROUTES, "DELETE", "/v1/leads").unwrap_err();
        assert_eq!(error_response(&err).headers()[header::ALLOW], "GET");
        // A literal path beside a parameter one is its own resource, with its own methods.
        const TEAM: &[Route<()>] = &[
            route("invite", "POST", "/v1/team/invitations", ()),
            route("change", "PATCH", "/v1/team/{userId}", ()),
            route("remove", "DELETE", "/v1/team/{userId}", ()),
        ];
        let err = Route::find(TEAM, "DELETE", "/v1/team/invitations").unwrap_err();
        assert_eq!(error_response(&err).headers()[header::ALLOW], "POST");
        let (r, params) = Route::find(TEAM, "DELETE", "/v1/team/us-1").unwrap();
        assert_eq!((r.name, params), ("remove", vec!["us-1".to_string()]));
        let err = Route::find(TEAM, "POST", "/v1/team/us-1").unwrap_err();
        assert_eq!(
            error_response(&err).headers()[header::ALLOW],
            "DELETE, PATCH"
        );
        // An unknown path stays 404, without Allow.
        let resp = error_response(&Route::find(ROUTES, "GET", "/v1/nothing").unwrap_err());
        assert_eq!(resp.status(), 404);
        assert!(resp.headers().get(header::ALLOW).is_none());
    }

    #[test]
    fn json_bodies_that_are_not_utf8_are_a_400_not_a_500() {
        // API Gateway delivers such a body base64-encoded; lambda_http decodes it to bytes.
        let mut req = Request::new(Body::Binary(vec![b'{', 0xff, 0xfe, b'}']));
        req.headers_mut()
            .insert(header::CONTENT_TYPE, JSON.parse().unwrap());
        let err = json_body::<serde_json::Value>(&req, 1024).unwrap_err();
        assert_eq!(err.status(), 400);
        assert_eq!(error_body(&err)["error"]["code"], "invalid_body");
    }

    #[test]
    fn rate_limit_sets_retry_after() {
        let r = error_response(&AppError::RateLimited {
            retry_after_secs: 7,
        });
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
    }
}
