//! AWS SDK configuration, built once per container at init.
//!
//! `AWS_ENDPOINT_URL` (the SDK's standard variable) points every client at the local emulator in
//! development and tests; in Lambda it is unset and the SDK talks to the real regional endpoints.

use aws_config::{BehaviorVersion, SdkConfig};

pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

pub fn dynamodb(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

pub fn ssm(config: &SdkConfig) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(config)
}

pub use aws_sdk_ssm::Client as SsmClient;

pub fn sesv2(config: &SdkConfig) -> aws_sdk_sesv2::Client {
    aws_sdk_sesv2::Client::new(config)
}
