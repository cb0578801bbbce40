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

/// Reads several SecureString parameters in one request (`GetParameters`: a function's first
/// invocation waits for one round trip, not one per secret), their values in the order of
/// `names` (at most 10, SSM's limit). A name SSM does not know is an error naming it.
pub async fn parameters<const N: usize>(
    ssm: &aws_sdk_ssm::Client,
    names: [&str; N],
) -> anyhow::Result<[String; N]> {
    anyhow::ensure!(N <= 10, "GetParameters takes at most 10 names");
    let out = ssm
        .get_parameters()
        .set_names(Some(names.iter().map(|n| n.to_string()).collect()))
        .with_decryption(true)
        .send()
        .await
        .with_context(|| format!("reading SSM parameters {}", names.join(", ")))?;
    if let Some(missing) = out.invalid_parameters.as_ref().filter(|m| !m.is_empty()) {
        anyhow::bail!("SSM parameters not found: {}", missing.join(", "));
    }
    let found = out.parameters.unwrap_or_default();
    let values = names
        .iter()
        .map(|name| {
            found
                .iter()
                .find(|p| p.name.as_deref() == Some(*name))
                .and_then(|p| p.value.clone())
                .ok_or_else(|| anyhow!("SSM parameter {name} has no value"))
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    Ok(values
        .try_into()
        .expect("one value for each of the N names"))
}

/// Reads the blind-index key: a SecureString holding at least 32 random bytes, base64.
pub async fn blind_index_key(
    ssm: &aws_sdk_ssm::Client,
    parameter: &str,
) -> anyhow::Result<BlindIndexKey> {
    blind_index_key_from(parameter, &self::parameter(ssm, parameter).await?)
}

/// The blind-index key from the value of its parameter (named for the errors).
pub fn blind_index_key_from(parameter: &str, value: &str) -> anyhow::Result<BlindIndexKey> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .with_context(|| format!("SSM parameter {parameter} is not base64"))?;
    BlindIndexKey::new(bytes).map_err(|e| anyhow!("SSM parameter {parameter}: {e}"))
}
