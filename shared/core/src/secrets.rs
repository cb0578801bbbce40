//! Secrets come from SSM Parameter Store (SecureString), never from the template, the
//! environment or the repository. The environment only names the parameter.

use anyhow::{anyhow, Context};
use base64::Engine;

use crate::blind_index::BlindIndexKey;

/// Reads a SecureString parameter's value.
pub async fn parameter(ssm: &aws_sdk_ssm::Client, name: &str) -> anyhow::Result<String> {
    let out = ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .with_context(|| format!("reading SSM parameter {name}"))?;
    out.parameter
        .and_then(|p| p.value)
        .ok_or_else(|| anyhow!("SSM parameter {name} has no value"))
}

/// Reads the blind-index key: a SecureString holding at least 32 random bytes, base64.
pub async fn blind_index_key(
    ssm: &aws_sdk_ssm::Client,
    parameter: &str,
) -> anyhow::Result<BlindIndexKey> {
    let out = ssm
        .get_parameter()
        .name(parameter)
        .with_decryption(true)
        .send()
        .await
        .with_context(|| format!("reading SSM parameter {parameter}"))?;
    let value = out
        .parameter
        .and_then(|p| p.value)
        .ok_or_else(|| anyhow!("SSM parameter {parameter} has no value"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .with_context(|| format!("SSM parameter {parameter} is not base64"))?;
    BlindIndexKey::new(bytes).map_err(|e| anyhow!("SSM parameter {parameter}: {e}"))
}
