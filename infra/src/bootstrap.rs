//! Creates the template's tables and buckets in a local emulator (moto_server), idempotently, so
//! `make dev` can be run again over a running emulator and every test can make its own stage.
//!
//! Only what changes behaviour is created: keys, indexes, TTL. Encryption, point-in-time recovery
//! and deletion protection are production safeguards the emulator has no use for (deletion
//! protection would even stop tests from cleaning up).

use crate::template::{KeyElement, KeyType, Table, Template, LOCAL_REGION};
use anyhow::{Context, Result};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType as SdkKeyType, Projection, ProjectionType, ScalarAttributeType, StreamSpecification,
    StreamViewType, TimeToLiveSpecification, TimeToLiveStatus,
};

/// Credentials the emulator accepts (it accepts any); never real ones.
pub const TEST_ACCESS_KEY_ID: &str = "test";
pub const TEST_SECRET_ACCESS_KEY: &str = "test";

/// SDK clients pointed at a local emulator.
#[derive(Debug, Clone)]
pub struct LocalClients {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
}

impl LocalClients {
    /// Clients for the emulator at `endpoint` (e.g. `http://127.0.0.1:4566`), with static test
    /// credentials and region us-east-1. Nothing is read from the environment or `~/.aws`, so a
    /// developer's real AWS profile can never be used by accident. Retries and timeouts are a
    /// request-serving function's ([`shared_core::aws::Budget::Request`]), so tests that build
    /// functions over these clients see production's limits (and the fault proxy's faults
    /// are retried as in Lambda).
    pub fn new(endpoint: &str) -> LocalClients {
        let budget = shared_core::aws::Budget::Request;
        let credentials = aws_sdk_dynamodb::config::Credentials::new(
            TEST_ACCESS_KEY_ID,
            TEST_SECRET_ACCESS_KEY,
            None,
            None,
            "infra-local",
        );
        let region = aws_sdk_dynamodb::config::Region::new(LOCAL_REGION);
        let behavior = aws_sdk_dynamodb::config::BehaviorVersion::latest();

        let dynamo = aws_sdk_dynamodb::Config::builder()
            .behavior_version(behavior)
            .region(region.clone())
            .credentials_provider(credentials.clone())
            .endpoint_url(endpoint)
            .retry_config(budget.retry())
            .timeout_config(budget.timeouts())
            .build();
        // Path-style: virtual-host addressing would need `<bucket>.127.0.0.1` to resolve.
        let s3 = aws_sdk_s3::Config::builder()
            .behavior_version(behavior)
            .region(region.clone())
            .credentials_provider(credentials.clone())
            .endpoint_url(endpoint)
            .force_path_style(true)
            .retry_config(budget.retry())
            .timeout_config(budget.s3_timeouts())
            .build();
        let ssm = aws_sdk_ssm::Config::builder()
            .behavior_version(behavior)
            .region(region.clone())
            .credentials_provider(credentials.clone())
            .endpoint_url(endpoint)
            .retry_config(budget.retry())
            .timeout_config(budget.timeouts())
            .build();
        let sqs = aws_sdk_sqs::Config::builder()
            .behavior_version(behavior)
            .region(region.clone())
            .credentials_provider(credentials.clone())
            .endpoint_url(endpoint)
            .retry_config(budget.retry())
            .timeout_config(budget.timeouts())
            .build();
        let streams = aws_sdk_dynamodbstreams::Config::builder()
            .behavior_version(behavior)
            .region(region)
            .credentials_provider(credentials)
            .endpoint_url(endpoint)
            .retry_config(budget.retry())
            .timeout_config(budget.timeouts())
            .build();
        LocalClients {
            dynamo: aws_sdk_dynamodb::Client::from_conf(dynamo),
            s3: aws_sdk_s3::Client::from_conf(s3),
            ssm: aws_sdk_ssm::Client::from_conf(ssm),
            sqs: aws_sdk_sqs::Client::from_conf(sqs),
            streams: aws_sdk_dynamodbstreams::Client::from_conf(streams),
        }
    }
}

/// [`LocalClients::new`] as a tuple.
pub fn aws_clients(
    endpoint: &str,
) -> (
    aws_sdk_dynamodb::Client,
    aws_sdk_s3::Client,
    aws_sdk_ssm::Client,
) {
    let c = LocalClients::new(endpoint);
    (c.dynamo, c.s3, c.ssm)
}

/// Creates every table (on-demand, with its GSIs and TTL) and every bucket of `template`.
/// Running it again over existing ones changes nothing.
pub async fn create_tables_and_buckets(
    template: &Template,
    dynamo: &aws_sdk_dynamodb::Client,
    s3: &aws_sdk_s3::Client,
) -> Result<()> {
    for table in &template.tables {
        create_table(dynamo, table)
            .await
            .with_context(|| format!("creating table {} ({})", table.name, table.logical_id))?;
    }
    for bucket in &template.buckets {
        create_bucket(s3, &bucket.name)
            .await
            .with_context(|| format!("creating bucket {} ({})", bucket.name, bucket.logical_id))?;
    }
    Ok(())
}

fn key_schema(elements: &[KeyElement]) -> Result<Vec<KeySchemaElement>> {
    elements
        .iter()
        .map(|e| {
            KeySchemaElement::builder()
                .attribute_name(&e.attribute_name)
                .key_type(match e.key_type {
                    KeyType::Hash => SdkKeyType::Hash,
                    KeyType::Range => SdkKeyType::Range,
                })
                .build()
                .context("key schema element")
        })
        .collect()
}

async fn create_table(dynamo: &aws_sdk_dynamodb::Client, table: &Table) -> Result<()> {
    let mut request = dynamo
        .create_table()
        .table_name(&table.name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(&table.key_schema)?));
    for def in &table.attribute_definitions {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(&def.attribute_name)
                .attribute_type(ScalarAttributeType::from(def.attribute_type.as_str()))
                .build()
                .context("attribute definition")?,
        );
    }
    for gsi in &table.global_secondary_indexes {
        let projection = Projection::builder()
            .projection_type(ProjectionType::from(gsi.projection_type.as_str()))
            .set_non_key_attributes(
                (!gsi.non_key_attributes.is_empty()).then(|| gsi.non_key_attributes.clone()),
            )
            .build();
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&gsi.index_name)
                .set_key_schema(Some(key_schema(&gsi.key_schema)?))
                .projection(projection)
                .build()
                .context("global secondary index")?,
        );
    }

    if let Some(view) = &table.stream_view_type {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view.as_str()))
                .build()
                .context("stream specification")?,
        );
    }

    match request.send().await {
        Ok(_) => {}
        Err(err) if err.code() == Some("ResourceInUseException") => {}
        Err(err) => return Err(err).context("CreateTable"),
    }

    if let Some(attribute) = &table.ttl_attribute {
        // UpdateTimeToLive fails when TTL is already on, so look first.
        let current = dynamo
            .describe_time_to_live()
            .table_name(&table.name)
            .send()
            .await
            .context("DescribeTimeToLive")?;
        let description = current.time_to_live_description();
        let already = description.is_some_and(|d| {
            d.attribute_name() == Some(attribute.as_str())
                && matches!(
                    d.time_to_live_status(),
                    Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
                )
        });
        if !already {
            dynamo
                .update_time_to_live()
                .table_name(&table.name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(attribute)
                        .enabled(true)
                        .build()
                        .context("TTL specification")?,
                )
                .send()
                .await
                .context("UpdateTimeToLive")?;
        }
    }
    Ok(())
}

/// Creates every queue of `template` (by name; creating an existing one changes nothing).
pub async fn create_queues(template: &Template, sqs: &aws_sdk_sqs::Client) -> Result<()> {
    for q in &template.queues {
        sqs.create_queue()
            .queue_name(&q.name)
            .send()
            .await
            .with_context(|| format!("creating queue {} ({})", q.name, q.logical_id))?;
    }
    Ok(())
}

async fn create_bucket(s3: &aws_sdk_s3::Client, name: &str) -> Result<()> {
    // us-east-1 takes no location constraint.
    match s3.create_bucket().bucket(name).send().await {
        Ok(_) => Ok(()),
        Err(err)
            if matches!(
                aws_sdk_s3::error::ProvideErrorMetadata::code(&err),
                Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
            ) =>
        {
            Ok(())
        }
        Err(err) => Err(err).context("CreateBucket"),
    }
}
