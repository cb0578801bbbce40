//! The query string: parsed once, strictly (an unknown or repeated parameter is a 400, not
//! silently ignored), and the paging parameters every list shares.

use std::collections::BTreeMap;

use lambda_http::{Request, RequestExt};
use shared_core::domain::TenantId;
use shared_core::error::{AppError, FieldErrors};
use shared_leads::{cursor, StartKey, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

use crate::App;

#[derive(Debug, Default)]
pub struct Query(BTreeMap<String, String>);

fn invalid(fields: FieldErrors) -> AppError {
    AppError::Validation {
        code: "invalid_query",
        message: "One or more query parameters are invalid.".into(),
        fields,
    }
}

fn one(name: &str, message: &str) -> AppError {
    let mut f = FieldErrors::new();
    f.insert(name.chars().take(64).collect(), message.into());
    invalid(f)
}

impl Query {
    /// From the raw query string (what API Gateway received), else from the parsed parameters.
    pub fn from_request(req: &Request) -> Result<Self, AppError> {
        let mut map = BTreeMap::new();
        match req.uri().query().filter(|q| !q.is_empty()) {
            Some(raw) => {
                for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
                    if map.insert(k.to_string(), v.to_string()).is_some() {
                        return Err(one(&k, "is given more than once"));
                    }
                }
            }
            None => {
                let params = req.query_string_parameters_ref();
                for (k, v) in params.iter().flat_map(|p| p.iter()) {
                    if map.insert(k.to_string(), v.to_string()).is_some() {
                        return Err(one(k, "is given more than once"));
                    }
                }
            }
        }
        Ok(Self(map))
    }

    /// Refuses parameters the operation does not take.
    pub fn allow(&self, names: &[&str]) -> Result<(), AppError> {
        let unknown: FieldErrors = self
            .0
            .keys()
            .filter(|k| !names.contains(&k.as_str()))
            .take(10)
            .map(|k| {
                (
                    k.chars().take(64).collect(),
                    "is not a parameter of this operation".to_string(),
                )
            })
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(invalid(unknown))
        }
    }

    /// A parameter's value; an empty value counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `limit`: 1 to 100, default 50.
    pub fn limit(&self) -> Result<usize, AppError> {
        match self.get("limit") {
            None => Ok(DEFAULT_PAGE_SIZE),
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                .ok_or_else(|| one("limit", "must be a whole number from 1 to 100")),
        }
    }

    /// The start key of `cursor`, checked against the caller's tenant and the list's scope.
    pub fn start(
        &self,
        app: &App,
        tenant: &TenantId,
        scope: &str,
    ) -> Result<Option<StartKey>, AppError> {
        self.get("cursor")
            .map(|c| cursor::decode(&app.keys, tenant, scope, c))
            .transpose()
    }

    pub fn field_error(name: &str, message: &str) -> AppError {
        one(name, message)
    }
}

/// The cursor to hand out for the next page.
pub fn next_cursor(
    app: &App,
    tenant: &TenantId,
    scope: &str,
    next: Option<StartKey>,
) -> Option<String> {
    next.map(|k| cursor::encode(&app.keys, tenant, scope, &k))
}
