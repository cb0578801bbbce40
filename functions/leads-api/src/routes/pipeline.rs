//! The tenant's pipeline: its ordered stages.

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared_core::error::AppError;
use shared_leads::{Pipeline, StageInput};

use crate::{json_body, ok, App, Ctx};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineBody {
    stages: Vec<StageInput>,
}

fn to_json(p: &Pipeline) -> serde_json::Value {
    json!({ "stages": p.stages() })
}

pub async fn get(app: &App, ctx: &Ctx) -> Result<Response<Body>, AppError> {
    ctx.query.allow(&[])?;
    Ok(ok(to_json(
        &app.store.pipeline(&ctx.caller.tenant_id).await?,
    )))
}

/// Replaces the stages. A stage that still holds leads cannot be removed (the leads would sit in
/// a stage nobody can see or move them to); renaming keeps the id, so it is always allowed.
pub async fn put(app: &App, ctx: &Ctx, req: &Request) -> Result<Response<Body>, AppError> {
    ctx.query.allow(&[])?;
    let tenant = &ctx.caller.tenant_id;
    let body: PipelineBody = json_body(req)?;
    let next = Pipeline::parse(body.stages)?;
    let current = app.store.pipeline(tenant).await?;
    for removed in current.stages().iter().filter(|s| !next.contains(&s.id)) {
        if app.store.stage_in_use(tenant, &removed.id).await? {
            return Err(AppError::Conflict {
                code: "stage_in_use",
                message: "A stage you removed still holds leads; move them to another stage first.",
            });
        }
    }
    app.store.put_pipeline(tenant, &next, ctx.now).await?;
    tracing::info!(stages = next.stages().len(), "pipeline replaced");
    Ok(ok(to_json(&next)))
}
