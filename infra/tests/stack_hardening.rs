//! The production safeguards of `template.yaml`, checked on the raw template so that a function,
//! table or bucket added later cannot quietly skip them: every function has its package, its own
//! log group with retention, its alarms, a least-privilege role and (when invoked asynchronously)
//! retries with a failure queue; every table and bucket is protected and encrypted; the access
//! logs hold no personal data; every skipped checkov check says why.
//!
//! cfn-lint and checkov (in `make test`) check what AWS and the security baseline require; this
//! checks what this project promises on top.

use infra::{default_template_path, Template};
use serde_yaml::{Mapping, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn raw_template() -> Value {
    let text = std::fs::read_to_string(default_template_path()).expect("template.yaml");
    serde_yaml::from_str(&text).expect("template.yaml is YAML")
}

fn resources(t: &Value) -> &Mapping {
    t["Resources"].as_mapping().expect("Resources")
}

fn of_type<'a>(t: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(id, r)| (id.as_str().expect("logical id"), r))
        .collect()
}

/// The argument of a short-form intrinsic (`!Ref X` → `X`), or `None` for anything else.
fn tagged<'a>(value: &'a Value, tag: &str) -> Option<&'a Value> {
    match value {
        Value::Tagged(t) if t.tag == tag => Some(&t.value),
        _ => None,
    }
}

fn ref_target(value: &Value) -> Option<&str> {
    tagged(value, "Ref").and_then(Value::as_str)
}

fn sub_text(value: &Value) -> Option<&str> {
    tagged(value, "Sub").and_then(Value::as_str)
}

/// Packages under `functions/` (directory name = package name = binary).
fn function_packages() -> BTreeSet<String> {
    std::fs::read_dir(workspace().join("functions"))
        .expect("functions/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_function_has_a_package_and_every_package_a_function() {
    let template = Template::load(default_template_path(), &[]).unwrap();
    let deployed: BTreeSet<String> = template
        .functions
        .iter()
        .map(|f| f.binary.clone())
        .collect();
    assert_eq!(
        deployed,
        function_packages(),
        "functions in template.yaml (Metadata.BuildProperties.Binary) and packages in functions/"
    );
    for f in &template.functions {
        let manifest = std::fs::read_to_string(
            workspace()
                .join("functions")
                .join(&f.binary)
                .join("Cargo.toml"),
        )
        .unwrap();
        assert!(
            manifest.contains(&format!("name = \"{}\"", f.binary)),
            "functions/{}/Cargo.toml names its package {}",
            f.binary,
            f.binary
        );
        assert_eq!(
            f.name,
            format!("lead-platform-prod-{}", f.binary),
            "{}",
            f.logical_id
        );
    }
}

#[test]
fn every_function_builds_with_cargo_lambda_and_runs_locally() {
    let t = raw_template();
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        assert_eq!(
            f["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{id}"
        );
    }
    // `make dev` gives every function its environment from the template (devstack env).
    let local = infra::local::load_local_template("hardening-check").unwrap();
    for f in &local.functions {
        let env =
            infra::local::local_function_env(&local, &f.binary, "http://127.0.0.1:1").unwrap();
        assert_eq!(
            env.get("STAGE").map(String::as_str),
            Some("hardening-check"),
            "{}",
            f.binary
        );
    }
}

#[test]
fn every_function_logs_to_its_own_group_with_retention_and_has_alarms() {
    let t = raw_template();
    let alarms = of_type(&t, "AWS::CloudWatch::Alarm");
    let alarmed = |metric: &str, function: &str| {
        alarms.iter().any(|(_, a)| {
            let p = &a["Properties"];
            p["Namespace"].as_str() == Some("AWS/Lambda")
                && p["MetricName"].as_str() == Some(metric)
                && p["Dimensions"].as_sequence().is_some_and(|dims| {
                    dims.iter().any(|d| {
                        d["Name"].as_str() == Some("FunctionName")
                            && sub_text(&d["Value"]) == Some(function)
                    })
                })
                && p["AlarmActions"]
                    .as_sequence()
                    .is_some_and(|a| a.iter().any(|v| ref_target(v) == Some("AlarmTopic")))
        })
    };
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        let binary = f["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        let props = &f["Properties"];
        let group = ref_target(&props["LoggingConfig"]["LogGroup"])
            .unwrap_or_else(|| panic!("{id}: LoggingConfig.LogGroup is not !Ref <a log group>"));
        let group = &t["Resources"][group];
        assert_eq!(group["Type"].as_str(), Some("AWS::Logs::LogGroup"), "{id}");
        assert_eq!(
            sub_text(&group["Properties"]["LogGroupName"]),
            Some(format!("/lead-platform/${{Stage}}/{binary}").as_str()),
            "{id}"
        );
        assert_eq!(
            ref_target(&group["Properties"]["RetentionInDays"]),
            Some("LogRetentionDays")
        );
        assert!(
            !group["Properties"]["KmsKeyId"].is_null(),
            "{id}: log group encrypted"
        );

        let function_name = format!("lead-platform-${{Stage}}-{binary}");
        assert_eq!(
            sub_text(&props["FunctionName"]),
            Some(function_name.as_str()),
            "{id}"
        );
        for metric in ["Errors", "Throttles"] {
            assert!(alarmed(metric, &function_name), "{id}: no {metric} alarm");
        }
    }
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Tracing"].as_str(), Some("Active"));
    assert_eq!(globals["LoggingConfig"]["LogFormat"].as_str(), Some("JSON"));
    assert_eq!(globals["Architectures"][0].as_str(), Some("arm64"));
}

/// Every IAM statement of a function's `Policies`.
fn statements(policies: &Value) -> Vec<&Value> {
    policies
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|p| p["Statement"].as_sequence())
        .flatten()
        .collect()
}

fn actions(statement: &Value) -> Vec<&str> {
    match &statement["Action"] {
        Value::String(s) => vec![s.as_str()],
        Value::Sequence(s) => s.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// The values a deployment would give the pseudo parameters.
const PARTITION: &str = "aws";
const REGION: &str = "eu-west-1";
const ACCOUNT: &str = "123456789012";

/// A parameter's default: what `${Name}` and `!Ref Name` stand for when the stack is deployed
/// without overrides.
fn parameter_default(t: &Value, name: &str) -> Option<String> {
    let p = &t["Parameters"][name];
    match &p["Default"] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ if p.is_mapping() => panic!("parameter {name} has no default to resolve it by"),
        _ => None,
    }
}

/// The ARN of a resource of the template, by its type and name, as `!GetAtt X.Arn` gives it.
fn resource_arn(t: &Value, logical: &str) -> String {
    let r = &resources(t)[logical];
    match r["Type"].as_str() {
        Some("AWS::DynamoDB::Table") => format!(
            "arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{}",
            resolve(t, &r["Properties"]["TableName"])
        ),
        Some("AWS::S3::Bucket") => {
            format!(
                "arn:{PARTITION}:s3:::{}",
                resolve(t, &r["Properties"]["BucketName"])
            )
        }
        Some("AWS::SQS::Queue") => format!(
            "arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{}",
            resolve(t, &r["Properties"]["QueueName"])
        ),
        other => panic!("!GetAtt {logical}.Arn: cannot resolve the ARN of a {other:?}"),
    }
}

/// `${Name}` in a `!Sub`: a pseudo parameter, a parameter, a resource's attribute, or a
/// variable of the `!Sub`'s own map.
fn sub_variable(t: &Value, name: &str, vars: Option<&Mapping>) -> String {
    if let Some(v) = vars.and_then(|m| m.get(name)) {
        return resolve(t, v);
    }
    match name {
        "AWS::Partition" => return PARTITION.into(),
        "AWS::Region" => return REGION.into(),
        "AWS::AccountId" => return ACCOUNT.into(),
        "AWS::StackName" => return "lead-platform-prod".into(),
        _ => {}
    }
    if let Some((logical, "Arn")) = name.split_once('.') {
        return resource_arn(t, logical);
    }
    if let Some(v) = parameter_default(t, name) {
        return v;
    }
    panic!("${{{name}}}: not a parameter, pseudo parameter or resource attribute")
}

fn substitute(t: &Value, text: &str, vars: Option<&Mapping>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after.find('}').expect("a closed ${...}");
        let name = &after[..end];
        match name.strip_prefix('!') {
            Some(literal) => out.push_str(&format!("${{{literal}}}")),
            None => out.push_str(&sub_variable(t, name, vars)),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A template value as the string CloudFormation would make of it: plain strings, `!Sub` (both
/// forms), `!Ref`, `!GetAtt X.Arn`, `!Select` and `!Split`. Anything else cannot be checked,
/// so it fails rather than being skipped.
fn resolve(t: &Value, v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Tagged(tag) => match (tag.tag.to_string().trim_start_matches('!'), &tag.value) {
            ("Sub", Value::String(text)) => substitute(t, text, None),
            ("Sub", Value::Sequence(parts)) if parts.len() == 2 => {
                let text = parts[0].as_str().expect("!Sub [text, vars]");
                substitute(
                    t,
                    text,
                    Some(parts[1].as_mapping().expect("!Sub variables")),
                )
            }
            ("Ref", Value::String(name)) => parameter_default(t, name)
                .unwrap_or_else(|| panic!("!Ref {name}: resolve a parameter only here")),
            ("GetAtt", Value::String(path)) => match path.split_once('.') {
                Some((logical, "Arn")) => resource_arn(t, logical),
                // The table's current stream (its label is chosen by DynamoDB at creation).
                Some((logical, "StreamArn")) => {
                    format!("{}/stream/LABEL", resource_arn(t, logical))
                }
                _ => panic!("!GetAtt {path}: only .Arn is resolved"),
            },
            ("Select", Value::Sequence(args)) if args.len() == 2 => {
                let i = args[0].as_u64().expect("!Select index") as usize;
                let list = resolve_list(t, &args[1]);
                list.get(i)
                    .cloned()
                    .unwrap_or_else(|| panic!("!Select {i} of {list:?}"))
            }
            (other, _) => panic!("cannot resolve !{other} {:?}", tag.value),
        },
        other => panic!("cannot resolve {other:?}"),
    }
}

fn resolve_list(t: &Value, v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items.iter().map(|i| resolve(t, i)).collect(),
        Value::Tagged(tag) if tag.tag == "Split" => {
            let args = tag.value.as_sequence().expect("!Split [sep, text]");
            let sep = args[0].as_str().expect("!Split separator");
            resolve(t, &args[1])
                .split(sep)
                .map(str::to_string)
                .collect()
        }
        other => panic!("cannot resolve a list from {other:?}"),
    }
}

/// A resource ARN with no wildcard, except all the objects under a prefix of a bucket
/// (`arn:aws:s3:::bucket/prefix/*`).
fn assert_scoped(function: &str, arn: &str) {
    assert_ne!(arn, "*", "{function}: unscoped resource");
    if !arn.contains('*') {
        return;
    }
    let prefix_of_bucket = arn
        .strip_prefix(&format!("arn:{PARTITION}:s3:::"))
        .and_then(|rest| rest.strip_suffix("/*"))
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(bucket, prefix)| {
            !bucket.is_empty()
                && !prefix.is_empty()
                && !bucket.contains('*')
                && !prefix.contains('*')
        });
    assert!(
        prefix_of_bucket,
        "{function}: {arn} has a wildcard outside a bucket prefix"
    );
}

#[test]
fn the_resolver_refuses_wildcards_outside_a_bucket_prefix() {
    for ok in [
        "arn:aws:s3:::lead-platform-prod-exports/exports/*",
        "arn:aws:dynamodb:eu-west-1:123456789012:table/t/index/gsi1",
    ] {
        assert_scoped("f", ok);
    }
    for bad in [
        "*",
        "arn:aws:ses:eu-west-1:123456789012:identity/*",
        "arn:aws:s3:::lead-platform-prod-exports/*",
        "arn:aws:s3:::lead-platform-*/exports/*",
        "arn:aws:dynamodb:eu-west-1:123456789012:table/t/index/*",
        "arn:aws:ssm:eu-west-1:123456789012:parameter/lead-platform/*",
    ] {
        let refused = std::panic::catch_unwind(|| assert_scoped("f", bad)).is_err();
        assert!(refused, "{bad} passed");
    }
}

#[test]
fn function_roles_are_least_privilege() {
    let t = raw_template();
    let mut resolved = 0;
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        let policies = &f["Properties"]["Policies"];
        for p in policies.as_sequence().into_iter().flatten() {
            if let Some(m) = p.as_mapping() {
                for broad in [
                    "DynamoDBCrudPolicy",
                    "SESCrudPolicy",
                    "S3CrudPolicy",
                    "AmazonDynamoDBFullAccess",
                ] {
                    assert!(
                        !m.contains_key(broad),
                        "{id}: {broad} grants more than a function uses"
                    );
                }
            }
        }
        let mut touches_dynamodb = false;
        for s in statements(policies) {
            assert_eq!(s["Effect"].as_str(), Some("Allow"), "{id}");
            for action in actions(s) {
                assert!(!action.contains('*'), "{id}: wildcard action {action}");
                assert_ne!(
                    action, "dynamodb:Scan",
                    "{id}: reads go through keys and indexes"
                );
                touches_dynamodb |= action.starts_with("dynamodb:");
            }
            let resources: Vec<String> = match &s["Resource"] {
                Value::Sequence(rs) => rs.iter().map(|r| resolve(&t, r)).collect(),
                Value::Null => panic!("{id}: a statement without a Resource"),
                r => vec![resolve(&t, r)],
            };
            for r in &resources {
                resolved += 1;
                assert_scoped(id, r);
                for action in actions(s) {
                    let service = action.split(':').next().unwrap_or_default();
                    assert!(
                        r.starts_with(&format!("arn:aws:{service}:")),
                        "{id}: {action} on {r}, a resource of another service"
                    );
                }
            }
        }
        let key_policy = policies
            .as_sequence()
            .into_iter()
            .flatten()
            .any(|p| ref_target(p) == Some("DataKeyUsePolicy"));
        assert_eq!(
            key_policy, touches_dynamodb,
            "{id}: the tables' KMS key is granted exactly to the functions that use DynamoDB"
        );
    }
    assert!(
        resolved > 50,
        "every statement's resources were resolved ({resolved})"
    );
}

/// Every resource a function's role may act on with `action`, resolved.
fn resources_for(t: &Value, function: &Value, action: &str) -> BTreeSet<String> {
    statements(&function["Properties"]["Policies"])
        .into_iter()
        .filter(|s| actions(s).contains(&action))
        .flat_map(|s| match &s["Resource"] {
            Value::Sequence(rs) => rs.iter().map(|r| resolve(t, r)).collect::<Vec<_>>(),
            r => vec![resolve(t, r)],
        })
        .collect()
}

/// Only `auth` can sign access tokens: its role alone may read the private key's parameter and
/// its configuration alone names it; every function that verifies tokens reads the public keys.
#[test]
fn only_auth_can_read_the_access_token_signing_key() {
    let t = raw_template();
    let parameter = |name: &str| {
        format!(
            "arn:{PARTITION}:ssm:{REGION}:{ACCOUNT}:parameter{}",
            parameter_default(&t, name).expect("a default name")
        )
    };
    let private_key = parameter("JwtSigningKeyParameterName");
    let public_keys = parameter("JwtPublicKeysParameterName");
    let mut verifiers = 0;
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        let env = f["Properties"]["Environment"]["Variables"]
            .as_mapping()
            .cloned()
            .unwrap_or_default();
        let names_private = env
            .values()
            .any(|v| ref_target(v) == Some("JwtSigningKeyParameterName"));
        let names_public = env
            .values()
            .any(|v| ref_target(v) == Some("JwtPublicKeysParameterName"));
        let readable = resources_for(&t, f, "ssm:GetParameter");
        // No other way to read a parameter by name or by path is granted to anyone.
        for other in ["ssm:GetParameters", "ssm:GetParametersByPath"] {
            assert!(resources_for(&t, f, other).is_empty(), "{id}: {other}");
        }
        let is_auth = id == "AuthFunction";
        assert_eq!(
            readable.contains(&private_key),
            is_auth,
            "{id}: only auth's role may read {private_key}"
        );
        assert_eq!(
            names_private, is_auth,
            "{id}: only auth's configuration names the signing key"
        );
        assert_eq!(
            names_public,
            readable.contains(&public_keys),
            "{id}: reads the public keys exactly when it verifies tokens"
        );
        verifiers += usize::from(names_public);
    }
    assert_eq!(
        verifiers, 6,
        "auth, leads-api, lead-transfers, dsar, billing-webhook, webhooks verify tokens"
    );
}

#[test]
fn asynchronous_functions_retry_then_land_in_the_failure_queue() {
    let t = raw_template();
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        let props = &f["Properties"];
        let events: Vec<&Value> = props["Events"]
            .as_mapping()
            .map(|m| m.values().collect())
            .unwrap_or_default();
        let http_only =
            !events.is_empty() && events.iter().all(|e| e["Type"].as_str() == Some("HttpApi"));
        if http_only {
            continue;
        }
        // Fed by event source mappings (a table's stream, a queue): no asynchronous invocation
        // to configure; each mapping retries, splits a failing batch, reports the failed record
        // (partial batch responses) and sends what fails every retry to the failure queue.
        let mapped: Vec<&Value> = events
            .iter()
            .copied()
            .filter(|e| matches!(e["Type"].as_str(), Some("DynamoDB" | "SQS")))
            .collect();
        {
            for e in &mapped {
                let p = &e["Properties"];
                let types: Vec<&str> = p["FunctionResponseTypes"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                assert_eq!(
                    types,
                    vec!["ReportBatchItemFailures"],
                    "{id}: partial batch responses"
                );
                if e["Type"].as_str() == Some("DynamoDB") {
                    assert_eq!(
                        p["BisectBatchOnFunctionError"].as_bool(),
                        Some(true),
                        "{id}"
                    );
                    assert!(
                        p["MaximumRecordAgeInSeconds"].as_u64().is_some(),
                        "{id}: a record's maximum age"
                    );
                    assert!(
                        p["MaximumRetryAttempts"].as_u64().is_some(),
                        "{id}: bounded retries"
                    );
                    let on_failure = &p["DestinationConfig"]["OnFailure"];
                    assert_eq!(on_failure["Type"].as_str(), Some("SQS"), "{id}");
                    assert_eq!(
                        tagged(&on_failure["Destination"], "GetAtt").and_then(Value::as_str),
                        Some("AsyncFailureQueue.Arn"),
                        "{id}: a stream batch that fails every retry lands in the failure queue"
                    );
                } else {
                    let queue = tagged(&p["Queue"], "GetAtt")
                        .and_then(Value::as_str)
                        .and_then(|q| q.strip_suffix(".Arn"))
                        .unwrap_or_else(|| panic!("{id}: Queue is !GetAtt <queue>.Arn"));
                    let redrive = &resources(&t)[queue]["Properties"]["RedrivePolicy"];
                    assert_eq!(
                        tagged(&redrive["deadLetterTargetArn"], "GetAtt").and_then(Value::as_str),
                        Some("AsyncFailureQueue.Arn"),
                        "{id}: {queue}'s messages that fail every receive land in the failure queue"
                    );
                    assert!(redrive["maxReceiveCount"].as_u64().is_some(), "{id}");
                }
            }
            if !mapped.is_empty() && mapped.len() == events.len() {
                continue;
            }
        }
        // Scheduled, or invoked asynchronously by another function.
        let config = &props["EventInvokeConfig"];
        assert!(
            config["MaximumRetryAttempts"].as_u64().is_some(),
            "{id}: EventInvokeConfig.MaximumRetryAttempts"
        );
        let on_failure = &config["DestinationConfig"]["OnFailure"];
        assert_eq!(
            on_failure["Type"].as_str(),
            Some("SQS"),
            "{id}: OnFailure → SQS"
        );
        let destination = tagged(&on_failure["Destination"], "GetAtt")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{id}: OnFailure.Destination is !GetAtt <queue>.Arn"));
        assert_eq!(destination, "AsyncFailureQueue.Arn", "{id}");
        // A function other functions invoke (the DSAR worker) could be flooded by a bug in its
        // caller: it is capped. Scheduled functions run once per schedule; retention is capped
        // at one run at a time (its lease relies on it).
        if events.is_empty() {
            assert!(
                props["ReservedConcurrentExecutions"].as_u64().is_some(),
                "{id}: a function invoked by other functions has reserved concurrency"
            );
        }
        for e in events {
            if matches!(e["Type"].as_str(), Some("Schedule" | "ScheduleV2")) {
                let p = &e["Properties"];
                assert!(!p["RetryPolicy"].is_null(), "{id}: schedule RetryPolicy");
                assert!(
                    !p["DeadLetterConfig"].is_null(),
                    "{id}: schedule DeadLetterConfig"
                );
            }
        }
    }
}

#[test]
fn retention_runs_one_at_a_time() {
    let t = raw_template();
    let retention = &t["Resources"]["RetentionCleanupFunction"]["Properties"];
    assert_eq!(retention["ReservedConcurrentExecutions"].as_u64(), Some(1));
}

#[test]
fn tables_are_on_demand_recoverable_encrypted_and_retained() {
    let t = raw_template();
    let tables = of_type(&t, "AWS::DynamoDB::Table");
    assert!(!tables.is_empty());
    for (id, table) in &tables {
        assert_eq!(table["DeletionPolicy"].as_str(), Some("Retain"), "{id}");
        assert_eq!(
            table["UpdateReplacePolicy"].as_str(),
            Some("Retain"),
            "{id}"
        );
        let p = &table["Properties"];
        assert_eq!(p["BillingMode"].as_str(), Some("PAY_PER_REQUEST"), "{id}");
        assert_eq!(
            p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
            Some(true),
            "{id}"
        );
        assert_eq!(p["DeletionProtectionEnabled"].as_bool(), Some(true), "{id}");
        let sse = &p["SSESpecification"];
        assert_eq!(sse["SSEEnabled"].as_bool(), Some(true), "{id}");
        assert_eq!(sse["SSEType"].as_str(), Some("KMS"), "{id}");
        assert_eq!(ref_target(&sse["KMSMasterKeyId"]), Some("DataKey"), "{id}");
    }
    // Items that expire carry `expires_at`: their table deletes them by TTL.
    let template = Template::load(default_template_path(), &[]).unwrap();
    for attribute in shared_privacy::inventory::ATTRIBUTES
        .iter()
        .filter(|a| a.name == "expires_at")
    {
        let id = format!("{:?}Table", attribute.table);
        let table = template.table(&id).unwrap_or_else(|| panic!("no {id}"));
        assert_eq!(
            table.ttl_attribute.as_deref(),
            Some("expires_at"),
            "{id} stores expiring {} items",
            attribute.item
        );
    }
    let key = &t["Resources"]["DataKey"];
    assert_eq!(key["Properties"]["EnableKeyRotation"].as_bool(), Some(true));
    assert_eq!(key["DeletionPolicy"].as_str(), Some("Retain"));
}

#[test]
fn buckets_are_private_tls_only_encrypted_and_expire_what_they_should() {
    let t = raw_template();
    let policies = of_type(&t, "AWS::S3::BucketPolicy");
    for (id, bucket) in of_type(&t, "AWS::S3::Bucket") {
        assert_eq!(bucket["DeletionPolicy"].as_str(), Some("Retain"), "{id}");
        let p = &bucket["Properties"];
        let block = &p["PublicAccessBlockConfiguration"];
        for flag in [
            "BlockPublicAcls",
            "BlockPublicPolicy",
            "IgnorePublicAcls",
            "RestrictPublicBuckets",
        ] {
            assert_eq!(block[flag].as_bool(), Some(true), "{id}: {flag}");
        }
        let sse = &p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
        assert_eq!(
            sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"].as_str(),
            Some("aws:kms"),
            "{id}"
        );
        let rules = p["LifecycleConfiguration"]["Rules"]
            .as_sequence()
            .expect("lifecycle rules");
        assert!(
            rules.iter().any(
                |r| r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
                    .as_u64()
                    .is_some()
            ),
            "{id}: incomplete multipart uploads are aborted"
        );
        let tls_only = policies.iter().any(|(_, policy)| {
            let pp = &policy["Properties"];
            ref_target(&pp["Bucket"]) == Some(id)
                && pp["PolicyDocument"]["Statement"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .any(|s| {
                        s["Effect"].as_str() == Some("Deny")
                            && s["Condition"]["Bool"]["aws:SecureTransport"].as_str()
                                == Some("false")
                    })
        });
        assert!(
            tls_only,
            "{id}: a bucket policy denies requests without TLS"
        );
    }
    let exports = &t["Resources"]["ExportsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"];
    assert!(
        exports
            .as_sequence()
            .unwrap()
            .iter()
            .any(|r| r["ExpirationInDays"].as_u64() == Some(7)),
        "exports expire after 7 days"
    );
}

/// Uploads through links issued before a lead was deleted are deleted when they land
/// (attachment-guard, on every object created under `tenants/`), and what a delete leaves in the
/// versioned bucket expires. The function names the bucket with `!Sub` (a `!Ref` would make the
/// bucket's notification and the function's role depend on each other): it must be the same
/// name, and its delete grant the attachments' prefix only.
#[test]
fn uploads_under_a_deleted_lead_are_deleted_on_arrival_and_their_versions_expire() {
    let t = raw_template();
    let bucket = &t["Resources"]["AttachmentsBucket"]["Properties"];
    assert_eq!(
        bucket["VersioningConfiguration"]["Status"].as_str(),
        Some("Enabled")
    );
    let rules = bucket["LifecycleConfiguration"]["Rules"]
        .as_sequence()
        .unwrap();
    assert!(rules.iter().any(|r| r["Status"].as_str() == Some("Enabled")
        && r["NoncurrentVersionExpiration"]["NoncurrentDays"]
            .as_u64()
            .is_some_and(|d| d <= 7)));

    let guard = &t["Resources"]["AttachmentGuardFunction"]["Properties"];
    let event = &guard["Events"]["Uploaded"];
    assert_eq!(event["Type"].as_str(), Some("S3"));
    let p = &event["Properties"];
    assert_eq!(ref_target(&p["Bucket"]), Some("AttachmentsBucket"));
    assert_eq!(p["Events"].as_str(), Some("s3:ObjectCreated:*"));
    let rule = &p["Filter"]["S3Key"]["Rules"][0];
    assert_eq!(
        (rule["Name"].as_str(), rule["Value"].as_str()),
        (Some("prefix"), Some("tenants/"))
    );
    let name = resolve(&t, &bucket["BucketName"]);
    assert_eq!(
        resolve(&t, &guard["Environment"]["Variables"]["ATTACHMENTS_BUCKET"]),
        name
    );
    let s3: Vec<String> = statements(&guard["Policies"])
        .into_iter()
        .filter(|s| actions(s).iter().any(|a| a.starts_with("s3:")))
        .flat_map(|s| {
            assert_eq!(actions(s), ["s3:DeleteObject"]);
            match &s["Resource"] {
                Value::Sequence(_) => resolve_list(&t, &s["Resource"]),
                one => vec![resolve(&t, one)],
            }
        })
        .collect();
    assert_eq!(s3, [format!("arn:{PARTITION}:s3:::{name}/tenants/*")]);
}

#[test]
fn apis_throttle_and_log_access_without_personal_data() {
    let t = raw_template();
    let template = Template::load(default_template_path(), &[]).unwrap();
    let apis = of_type(&t, "AWS::Serverless::HttpApi");
    assert!(apis.len() >= 2, "the app API and the public API");
    for (id, api) in &apis {
        let p = &api["Properties"];
        let throttling = &p["DefaultRouteSettings"];
        assert!(
            throttling["ThrottlingBurstLimit"].as_u64().is_some(),
            "{id}"
        );
        assert!(throttling["ThrottlingRateLimit"].as_u64().is_some(), "{id}");
        let format = p["AccessLogSettings"]["Format"]
            .as_str()
            .expect("access log format");
        let line: serde_json::Value = serde_json::from_str(format)
            .unwrap_or_else(|e| panic!("{id}: format is not JSON: {e}"));
        assert!(line["requestId"].is_string(), "{id}");
        for personal in ["sourceIp", "userAgent", "identity.", "authorizer."] {
            assert!(
                !format.contains(personal),
                "{id}: access log holds {personal}"
            );
        }
        let group = tagged(&p["AccessLogSettings"]["DestinationArn"], "GetAtt")
            .and_then(Value::as_str)
            .and_then(|s| s.strip_suffix(".Arn"))
            .expect("DestinationArn: !GetAtt <log group>.Arn");
        assert_eq!(
            ref_target(&t["Resources"][group]["Properties"]["RetentionInDays"]),
            Some("LogRetentionDays")
        );
    }
    // Lead intake answers CORS per form itself: its API must not have API-level CORS, which
    // would replace the function's headers.
    for (fid, f) in of_type(&t, "AWS::Serverless::Function") {
        for e in f["Properties"]["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
            .map(|(_, e)| e)
        {
            if e["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let api =
                ref_target(&e["Properties"]["ApiId"]).unwrap_or_else(|| panic!("{fid}: ApiId"));
            let has_cors = !t["Resources"][api]["Properties"]["CorsConfiguration"].is_null();
            let own_cors = e["Properties"]["Method"].as_str() == Some("OPTIONS");
            assert!(
                !(has_cors && own_cors),
                "{fid} answers its own preflight behind {api}'s CORS"
            );
        }
    }
    let intake = template.function("lead-intake").unwrap();
    assert!(intake.routes.iter().any(|r| r.method == "OPTIONS"));
}

#[test]
fn every_skipped_checkov_check_says_why() {
    let t = raw_template();
    let mut skipped = 0;
    for (id, r) in resources(&t) {
        for skip in r["Metadata"]["checkov"]["skip"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let check = skip["id"].as_str().unwrap_or_default();
            assert!(check.starts_with("CKV_"), "{id:?}: skip id {check:?}");
            let comment = skip["comment"].as_str().unwrap_or_default();
            assert!(
                comment.len() >= 40,
                "{id:?}: {check} is skipped without a reason"
            );
            skipped += 1;
        }
    }
    assert!(skipped > 0);
}

#[test]
fn routes_that_api_base_url_links_point_to_are_on_the_public_api() {
    // ApiBaseUrl is the PublicApi's URL: forms' embed snippets post to it and one-click
    // unsubscribe links (built by shared_mail::unsubscribe_url) point to it.
    let t = raw_template();
    let mut found = BTreeSet::new();
    for (fid, f) in of_type(&t, "AWS::Serverless::Function") {
        for e in f["Properties"]["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
            .map(|(_, e)| e)
        {
            let path = e["Properties"]["Path"].as_str().unwrap_or_default();
            if ["/v1/forms/{formId}/submissions", "/v1/privacy/unsubscribe"].contains(&path) {
                assert_eq!(
                    ref_target(&e["Properties"]["ApiId"]),
                    Some("PublicApi"),
                    "{fid}: {path}"
                );
                found.insert(path.to_string());
            }
        }
    }
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn every_email_goes_through_the_configuration_set_and_the_suppression_list() {
    // docs/mail.md: SES reports bounces and complaints of the configuration set to the default
    // event bus, mail-events puts the addresses on the send-suppression list (ops table), and
    // every function that sends mail names that set and reads that list before each email.
    let t = raw_template();
    let set = &resources(&t)["MailConfigurationSet"]["Properties"];
    let set_name = resolve(&t, &set["Name"]);
    assert_eq!(set_name, "lead-platform-prod-mail");
    let set_arn = format!("arn:{PARTITION}:ses:{REGION}:{ACCOUNT}:configuration-set/{set_name}");
    let destinations = of_type(&t, "AWS::SES::ConfigurationSetEventDestination");
    assert!(
        destinations.iter().any(|(_, d)| {
            let p = &d["Properties"];
            let d = &p["EventDestination"];
            let types: BTreeSet<&str> = d["MatchingEventTypes"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            ref_target(&p["ConfigurationSetName"]) == Some("MailConfigurationSet")
                && d["Enabled"].as_bool() == Some(true)
                && types.contains("bounce")
                && types.contains("complaint")
                && resolve(&t, &d["EventBridgeDestination"]["EventBusArn"])
                    .ends_with(":event-bus/default")
        }),
        "bounces and complaints of the set reach the default event bus"
    );
    let consumer = &resources(&t)["MailEventsFunction"]["Properties"];
    let rule = &consumer["Events"]["SesFeedback"];
    assert_eq!(rule["Type"].as_str(), Some("EventBridgeRule"));
    let pattern = &rule["Properties"]["Pattern"];
    assert_eq!(pattern["source"][0].as_str(), Some("aws.ses"));
    let kinds: BTreeSet<&str> = pattern["detail-type"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["Email Bounced", "Email Complaint Received"])
    );
    assert!(!rule["Properties"]["DeadLetterConfig"].is_null());

    let mut senders = 0;
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        let props = &f["Properties"];
        let sends: Vec<&Value> = statements(&props["Policies"])
            .into_iter()
            .filter(|s| actions(s).contains(&"ses:SendEmail"))
            .collect();
        if sends.is_empty() {
            continue;
        }
        senders += 1;
        assert_eq!(
            sub_text(&props["Environment"]["Variables"]["SES_CONFIGURATION_SET"]),
            Some("lead-platform-${Stage}-mail"),
            "{id}: SES_CONFIGURATION_SET"
        );
        for s in &sends {
            let resources: Vec<String> = s["Resource"]
                .as_sequence()
                .expect("a list of resources")
                .iter()
                .map(|r| resolve(&t, r))
                .collect();
            assert!(
                resources.contains(&set_arn),
                "{id}: SendEmail through {set_arn}"
            );
            for r in &resources {
                assert!(
                    *r == set_arn || r.contains(":identity/"),
                    "{id}: SendEmail on {r}: the sender's identities and the set only"
                );
            }
        }
        let reads_ops = statements(&props["Policies"]).into_iter().any(|s| {
            actions(s).contains(&"dynamodb:GetItem")
                && tagged(&s["Resource"], "GetAtt").and_then(Value::as_str) == Some("OpsTable.Arn")
        });
        assert!(
            reads_ops,
            "{id}: reads the send-suppression list (ops table)"
        );
        let binary = f["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        let main = std::fs::read_to_string(
            workspace()
                .join("functions")
                .join(binary)
                .join("src/main.rs"),
        )
        .unwrap();
        assert!(
            main.contains("SesMailer::platform(") && !main.contains("SesMailer::new("),
            "functions/{binary}/src/main.rs: the platform mailer (configuration set and suppression list)"
        );
    }
    assert_eq!(
        senders, 7,
        "auth, billing-webhook, dsar, dsar-deadlines, dsar-worker, lead-intake (quota alerts), outbound (new-lead notifications)"
    );
}
