//! The one error type every handler returns. [`crate::http::error_response`] is the only place
//! that turns it into a status code and a body; internal detail is logged there, never returned.

use std::collections::BTreeMap;

/// Per-field validation messages, keyed by field name. Messages describe the rule that failed
/// and never echo the submitted value (it may be personal data).
pub type FieldErrors = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed or its fields break the form's rules (400).
    #[error("validation failed: {message}")]
    Validation {
        code: &'static str,
        message: String,
        fields: FieldErrors,
    },
    /// No valid credentials: missing, malformed, expired or revoked (401).
    #[error("unauthorized: {code}")]
    Unauthorized {
        code: &'static str,
        message: &'static str,
    },
    #[error("payload too large")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// Refused until the account pays: a spent quota, an inactive subscription, no free seat
    /// (402), with a stable code.
    #[error("payment required: {code}")]
    PaymentRequired {
        code: &'static str,
        message: &'static str,
    },
    /// Refused by a rule about the caller or the resource state (403), with a stable code.
    #[error("forbidden: {code}")]
    Forbidden {
        code: &'static str,
        message: &'static str,
    },
    #[error("conflict: {code}")]
    Conflict {
        code: &'static str,
        message: &'static str,
    },
    /// The request is well-formed but cannot be processed as sent (422).
    #[error("unprocessable: {code}")]
    Unprocessable {
        code: &'static str,
        message: &'static str,
    },
    /// What the caller asks for existed and is gone for good (410): an expired link.
    #[error("gone: {code}")]
    Gone {
        code: &'static str,
        message: &'static str,
    },
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// A known path with a method it does not take (405); `allow` lists the path's methods
    /// (the `Allow` header).
    #[error("method not allowed")]
    MethodNotAllowed { allow: Vec<String> },
    /// A service we depend on is briefly unable to answer (throttled, a 5xx, a timeout) after
    /// the SDK's own retries, or a race kept moving under a bounded number of re-reads (503 with
    /// `Retry-After`). Nothing was half-written: the caller sends the same request again.
    #[error("unavailable")]
    Unavailable { retry_after_secs: u64 },
    /// An outside service the request needed (the payment provider) failed, refused or did not
    /// answer in time, after the retries that were safe (502). Nothing was changed here; the
    /// provider's own answer is logged, never returned.
    #[error("bad gateway: {code}")]
    BadGateway {
        code: &'static str,
        message: &'static str,
    },
    /// Anything we did not expect. The source chain is logged with the request id; the caller
    /// only learns that something went wrong on our side.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn validation(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Validation {
            code,
            message: message.into(),
            fields: FieldErrors::new(),
        }
    }

    /// 405 for a path whose methods are `allow`.
    pub fn method_not_allowed<S: AsRef<str>>(allow: impl IntoIterator<Item = S>) -> Self {
        AppError::MethodNotAllowed {
            allow: allow.into_iter().map(|m| m.as_ref().to_string()).collect(),
        }
    }

    pub fn invalid_fields(fields: FieldErrors) -> Self {
        AppError::Validation {
            code: "invalid_fields",
            message: "One or more fields are invalid.".into(),
            fields,
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            AppError::Validation { .. } => 400,
            AppError::Unauthorized { .. } => 401,
            AppError::PaymentRequired { .. } => 402,
            AppError::Forbidden { .. } => 403,
            AppError::NotFound(_) => 404,
            AppError::MethodNotAllowed { .. } => 405,
            AppError::Conflict { .. } => 409,
            AppError::Gone { .. } => 410,
            AppError::PayloadTooLarge { .. } => 413,
            AppError::UnsupportedMediaType => 415,
            AppError::Unprocessable { .. } => 422,
            AppError::RateLimited { .. } => 429,
            AppError::Internal(_) => 500,
            AppError::BadGateway { .. } => 502,
            AppError::Unavailable { .. } => 503,
        }
    }

    /// Stable machine-readable code for the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Validation { code, .. } => code,
            AppError::Forbidden { code, .. } => code,
            AppError::PaymentRequired { code, .. } => code,
            AppError::Unauthorized { code, .. } => code,
            AppError::Conflict { code, .. } => code,
            AppError::Unprocessable { code, .. } => code,
            AppError::Gone { code, .. } => code,
            AppError::BadGateway { code, .. } => code,
            AppError::NotFound(what) => what,
            AppError::MethodNotAllowed { .. } => "method_not_allowed",
            AppError::PayloadTooLarge { .. } => "payload_too_large",
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::Internal(_) => "internal_error",
            AppError::Unavailable { .. } => "service_unavailable",
        }
    }

    /// Human-readable message safe to show to the caller.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Validation { message, .. } => message.clone(),
            AppError::Forbidden { message, .. }
            | AppError::PaymentRequired { message, .. }
            | AppError::Unauthorized { message, .. }
            | AppError::Conflict { message, .. }
            | AppError::Unprocessable { message, .. }
            | AppError::Gone { message, .. }
            | AppError::BadGateway { message, .. } => (*message).to_string(),
            AppError::NotFound(_) => "The requested resource does not exist.".into(),
            AppError::MethodNotAllowed { .. } => "This method is not allowed here.".into(),
            AppError::PayloadTooLarge { limit } => {
                format!("The request body is larger than {limit} bytes.")
            }
            AppError::UnsupportedMediaType => {
                "Send application/json or application/x-www-form-urlencoded.".into()
            }
            AppError::RateLimited { retry_after_secs } => {
                format!("Too many requests; retry in {retry_after_secs} seconds.")
            }
            AppError::Internal(_) => "Something went wrong on our side; please retry.".into(),
            AppError::Unavailable { retry_after_secs } => format!(
                "The service is briefly unavailable; send the same request again in {retry_after_secs} seconds."
            ),
        }
    }
}
