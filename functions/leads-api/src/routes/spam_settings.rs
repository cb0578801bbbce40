//! The tenant's own spam blocklists (issue 19: "per tenant blocklists"): email domains and
//! words that score every submission to any of the tenant's forms, on top of each form's own
//! lists (`spam.blocked_email_domains`, `spam.blocked_words`). Kept on the tenant's record,
//! which lead intake already reads with the form: a submission costs no request more.

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared_core::domain::TenantSpamLists;
use shared_core::error::{AppError, FieldErrors};
use shared_leads::dynamo::{put_tenant_spam_lists, tenant_spam_lists};
use shared_leads::spam::rules;

use crate::{json_body, ok, App, Ctx};

/// A replacement of both lists (each required: a `PUT` states the whole setting).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListsBody {
    blocked_email_domains: Vec<String>,
    blocked_words: Vec<String>,
}

fn to_json(l: &TenantSpamLists) -> serde_json::Value {
    json!({
        "blocked_email_domains": l.blocked_email_domains,
        "blocked_words": l.blocked_words,
    })
}

pub async fn get(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    ctx.query.allow(&[])?;
    let s = &app.store;
    let lists = tenant_spam_lists(s.client(), &s.tables().tenants, &ctx.caller.tenant_id).await?;
    Ok(ok(to_json(&lists)))
}

/// What a JSON Schema `pattern` ending in `$` matches before: the end, or a final line break
/// (ECMA and Python regexes alike), so a value may carry one.
fn before_final_newline(v: &str) -> &str {
    v.strip_suffix('\n').unwrap_or(v)
}

/// A domain exactly as docs/openapi.yaml states it (`^@?label(.label)+$`, at most 253
/// characters): no surrounding spaces, no empty label. `rules::domain_list` then normalises.
fn is_domain_as_documented(d: &str) -> bool {
    let core = before_final_newline(d);
    let bare = core.strip_prefix('@').unwrap_or(core);
    d.chars().count() <= 253
        && bare.split('.').count() >= 2
        && bare
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// A word exactly as documented: at most 50 characters as given (before spaces are folded),
/// no control character (a tab or a line break inside included, which folding would hide).
fn is_word_as_documented(w: &str) -> bool {
    w.chars().count() <= 50 && !before_final_newline(w).chars().any(char::is_control)
}

pub async fn put(app: &App, ctx: &Ctx, req: &Request) -> Result<Response<Body>, AppError> {
    ctx.query.allow(&[])?;
    let body: ListsBody = json_body(req)?;
    let mut errors = FieldErrors::new();
    if !body
        .blocked_email_domains
        .iter()
        .all(|d| is_domain_as_documented(d))
    {
        errors.insert(
            "blocked_email_domains".into(),
            "must list domain names such as example.com".into(),
        );
    }
    if !body.blocked_words.iter().all(|w| is_word_as_documented(w)) {
        errors.insert(
            "blocked_words".into(),
            "must list words of 1 to 50 characters".into(),
        );
    }
    let blocked_email_domains = rules::domain_list(&body.blocked_email_domains)
        .map_err(|m| {
            errors
                .entry("blocked_email_domains".into())
                .or_insert_with(|| m.into())
        })
        .unwrap_or_default();
    let blocked_words = rules::word_list(&body.blocked_words)
        .map_err(|m| {
            errors
                .entry("blocked_words".into())
                .or_insert_with(|| m.into())
        })
        .unwrap_or_default();
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors));
    }
    let lists = TenantSpamLists {
        blocked_email_domains,
        blocked_words,
    };
    let s = &app.store;
    let stored = put_tenant_spam_lists(
        s.client(),
        &s.tables().tenants,
        &ctx.caller.tenant_id,
        &lists,
        ctx.now,
    )
    .await?;
    if !stored {
        return Err(AppError::NotFound("tenant_not_found"));
    }
    tracing::info!(
        domains = lists.blocked_email_domains.len(),
        words = lists.blocked_words.len(),
        "tenant spam lists replaced"
    );
    Ok(ok(to_json(&lists)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_taken_exactly_as_the_documented_patterns_take_them() {
        for ok in ["example.com", "@example.com", "a-b.c-d.e", "example.com\n"] {
            assert!(is_domain_as_documented(ok), "{ok:?}");
        }
        for bad in [
            " example.com",
            "@@example.com",
            "a..b",
            "example",
            "example.com.",
            ".a.b",
            "a.b\n\n",
            "a.b\r\n",
        ] {
            assert!(!is_domain_as_documented(bad), "{bad:?}");
        }
        for ok in ["casino", "cheap  pills", "pills\n", "é"] {
            assert!(is_word_as_documented(ok), "{ok:?}");
        }
        let long = "a".repeat(51);
        for bad in ["tab\there", "a\nb", "x\r", long.as_str()] {
            assert!(!is_word_as_documented(bad), "{bad:?}");
        }
    }
}
