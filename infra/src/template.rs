//! Reads `template.yaml`, the single source of truth for tables, buckets, functions and routes, so
//! that `make dev` and the integration tests build their local world from it instead of from a copy
//! that could drift.
//!
//! Only the part of CloudFormation that this project uses is understood: `Ref`, `Fn::Sub`,
//! `Fn::Select`, `Fn::Split`, `Fn::Join` and `Fn::GetAtt` (`Arn` only), in their short (`!Ref`) and
//! long (`{ Ref: .. }`) forms. Anything else fails loudly, naming the resource and property, rather
//! than producing a wrong local name.

use anyhow::{anyhow, bail, Context, Result};
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Account id the local emulator uses (moto's default), for `${AWS::AccountId}`.
pub const LOCAL_ACCOUNT_ID: &str = "000000000000";
/// Region of every local client and of `${AWS::Region}`.
pub const LOCAL_REGION: &str = "us-east-1";

/// `template.yaml` at the workspace root, found from this crate's location so that tests and the
/// CLI work from any current directory.
pub fn default_template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("template.yaml")
}

/// A template with every name resolved for one set of parameter values.
#[derive(Debug, Clone)]
pub struct Template {
    /// Parameter values in force: the template's defaults with the overrides applied.
    pub parameters: BTreeMap<String, String>,
    pub tables: Vec<Table>,
    pub buckets: Vec<Bucket>,
    /// SQS queues (`QueueName`); `!Ref` gives the queue's URL.
    pub queues: Vec<Queue>,
    pub functions: Vec<Function>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub logical_id: String,
    pub name: String,
    /// What `!Ref` gives: the queue's URL (the emulator reads the name from its last segment).
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub logical_id: String,
    pub name: String,
    pub key_schema: Vec<KeyElement>,
    pub attribute_definitions: Vec<AttributeDefinition>,
    pub global_secondary_indexes: Vec<GlobalSecondaryIndex>,
    /// The TTL attribute, when `TimeToLiveSpecification` enables one.
    pub ttl_attribute: Option<String>,
    /// `StreamSpecification.StreamViewType`, when the table has a change stream.
    pub stream_view_type: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Hash,
    Range,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyElement {
    pub attribute_name: String,
    pub key_type: KeyType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeDefinition {
    pub attribute_name: String,
    /// `S`, `N` or `B`.
    pub attribute_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalSecondaryIndex {
    pub index_name: String,
    pub key_schema: Vec<KeyElement>,
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection_type: String,
    pub non_key_attributes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub logical_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub logical_id: String,
    /// The deployed function name (`FunctionName`, or the logical id when the template leaves it out).
    pub name: String,
    /// `Metadata.BuildProperties.Binary`: the cargo binary that cargo-lambda builds and runs.
    pub binary: String,
    /// `Globals.Function.Environment.Variables` overlaid with the function's own variables.
    pub env: BTreeMap<String, String>,
    pub routes: Vec<HttpRoute>,
    /// `MemorySize` in MB: the function's own, else `Globals.Function.MemorySize`, else
    /// Lambda's default (128).
    pub memory_mb: u32,
    /// `Tracing` (`Active` or `PassThrough`): the function's own, else `Globals.Function.Tracing`,
    /// else Lambda's default (`PassThrough`).
    pub tracing: String,
    /// `Timeout` in seconds: the function's own, else `Globals.Function.Timeout`, else Lambda's
    /// default (3).
    pub timeout_s: u32,
    /// `LoggingConfig` (the function's own keys over `Globals.Function.LoggingConfig`'s, as SAM
    /// merges maps): which of Lambda's own lines and the function's lines reach CloudWatch.
    pub logging: Logging,
}

/// A function's `LoggingConfig`, with Lambda's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    /// `LogFormat`: `Text` (Lambda's default) or `JSON`.
    pub format: String,
    /// `SystemLogLevel` (JSON only; Lambda's default `INFO`): `WARN` drops the start, runtime
    /// done and report lines Lambda writes for every invocation.
    pub system_level: String,
    /// `ApplicationLogLevel` (JSON only; Lambda's default `INFO`): Lambda drops the function's
    /// JSON lines below it, and takes a line without a `level` (a CloudWatch EMF metric line)
    /// as `INFO`.
    pub application_level: String,
}

impl Logging {
    /// Lambda's platform lines (`platform.start`, `platform.runtimeDone`, `platform.report`, all
    /// at `INFO`) are written for every invocation.
    pub fn platform_lines_kept(&self) -> bool {
        self.format != "JSON" || level_rank(&self.system_level) <= level_rank("INFO")
    }

    /// The function's metric lines (EMF, no `level`: `INFO` to Lambda) reach CloudWatch.
    pub fn metric_lines_kept(&self) -> bool {
        self.format != "JSON" || level_rank(&self.application_level) <= level_rank("INFO")
    }
}

const LOG_LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

fn level_rank(level: &str) -> usize {
    LOG_LEVELS
        .iter()
        .position(|l| *l == level)
        .unwrap_or(LOG_LEVELS.len())
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HttpRoute {
    /// Upper case; `ANY` for every method.
    pub method: String,
    /// API Gateway syntax: `/v1/forms/{formId}/submissions`.
    pub path: String,
}

impl Template {
    /// Reads and resolves the template at `path`. `overrides` are parameter values, as
    /// `sam deploy --parameter-overrides` would pass them (e.g. `[("Stage", "dev")]`).
    pub fn load(path: impl AsRef<Path>, overrides: &[(&str, &str)]) -> Result<Template> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading template {}", path.display()))?;
        Template::parse(&text, overrides).with_context(|| format!("in template {}", path.display()))
    }

    /// Resolves a template given as text; see [`Template::load`].
    pub fn parse(yaml: &str, overrides: &[(&str, &str)]) -> Result<Template> {
        let doc: Value = serde_yaml::from_str(yaml).context("template is not valid YAML")?;
        let root = doc.as_mapping().context("template is not a mapping")?;

        let parameters = parameter_values(root, overrides)?;
        let resources = root
            .get("Resources")
            .and_then(Value::as_mapping)
            .context("template has no Resources")?;

        // Names first (they depend on parameters only), so that `!Ref Table` in a function's
        // environment can be resolved afterwards.
        let mut resolver = Resolver {
            parameters: &parameters,
            physical_names: BTreeMap::new(),
        };
        let mut tables = Vec::new();
        let mut buckets = Vec::new();
        let mut queues = Vec::new();
        let mut function_ids = Vec::new();
        for (id, resource) in resources {
            let id = id.as_str().context("resource logical id is not a string")?;
            let props = get(resource, "Properties");
            match get(resource, "Type").and_then(Value::as_str) {
                Some("AWS::DynamoDB::Table") => {
                    let table = table(&resolver, id, props)
                        .with_context(|| format!("resource {id} (AWS::DynamoDB::Table)"))?;
                    let arn = format!(
                        "arn:aws:dynamodb:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:table/{}",
                        table.name
                    );
                    resolver
                        .physical_names
                        .insert(id.to_string(), (table.name.clone(), Some(arn)));
                    tables.push(table);
                }
                Some("AWS::S3::Bucket") => {
                    let name = required_string(&resolver, props, "BucketName")
                        .with_context(|| format!("resource {id} (AWS::S3::Bucket)"))?;
                    let arn = format!("arn:aws:s3:::{name}");
                    resolver
                        .physical_names
                        .insert(id.to_string(), (name.clone(), Some(arn)));
                    buckets.push(Bucket {
                        logical_id: id.to_string(),
                        name,
                    });
                }
                Some("AWS::SQS::Queue") => {
                    let name = required_string(&resolver, props, "QueueName")
                        .with_context(|| format!("resource {id} (AWS::SQS::Queue)"))?;
                    let url = format!(
                        "https://sqs.{LOCAL_REGION}.amazonaws.com/{LOCAL_ACCOUNT_ID}/{name}"
                    );
                    let arn = format!("arn:aws:sqs:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:{name}");
                    resolver
                        .physical_names
                        .insert(id.to_string(), (url.clone(), Some(arn)));
                    queues.push(Queue {
                        logical_id: id.to_string(),
                        name,
                        url,
                    });
                }
                Some("AWS::Serverless::Function") => {
                    let name = match props.and_then(|p| get(p, "FunctionName")) {
                        Some(v) => resolver
                            .string(v)
                            .with_context(|| format!("resource {id}: property FunctionName"))?,
                        None => id.to_string(),
                    };
                    let arn =
                        format!("arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{name}");
                    resolver
                        .physical_names
                        .insert(id.to_string(), (name, Some(arn)));
                    function_ids.push(id);
                }
                _ => {}
            }
        }

        let global_env = match root
            .get("Globals")
            .and_then(|g| get(g, "Function"))
            .and_then(|f| get(f, "Environment"))
            .and_then(|e| get(e, "Variables"))
        {
            Some(vars) => resolver
                .string_map(vars)
                .context("Globals.Function.Environment.Variables")?,
            None => BTreeMap::new(),
        };

        let global_function = root.get("Globals").and_then(|g| get(g, "Function"));
        let global_memory_mb = global_function
            .and_then(|f| get(f, "MemorySize"))
            .map(memory_size)
            .transpose()
            .context("Globals.Function.MemorySize")?;
        let global_timeout_s = global_function
            .and_then(|f| get(f, "Timeout"))
            .map(timeout)
            .transpose()
            .context("Globals.Function.Timeout")?;
        let global_tracing = global_function
            .and_then(|f| get(f, "Tracing"))
            .map(tracing_mode)
            .transpose()
            .context("Globals.Function.Tracing")?;
        let globals = FunctionGlobals {
            env: global_env,
            memory_mb: global_memory_mb,
            tracing: global_tracing,
            timeout_s: global_timeout_s,
            logging: global_function.and_then(|f| get(f, "LoggingConfig")),
        };

        let mut functions = Vec::new();
        for id in function_ids {
            let resource = &resources[id];
            let function = function(&resolver, id, resource, &globals)
                .with_context(|| format!("resource {id} (AWS::Serverless::Function)"))?;
            functions.push(function);
        }

        Ok(Template {
            parameters,
            tables,
            buckets,
            queues,
            functions,
        })
    }

    /// A function by logical id (`LeadIntakeFunction`) or by binary name (`lead-intake`).
    pub fn function(&self, id_or_binary: &str) -> Option<&Function> {
        self.functions
            .iter()
            .find(|f| f.logical_id == id_or_binary || f.binary == id_or_binary)
    }

    /// The resolved environment of a function, by logical id or binary name.
    pub fn function_env(&self, id_or_binary: &str) -> Result<BTreeMap<String, String>> {
        self.function(id_or_binary)
            .map(|f| f.env.clone())
            .ok_or_else(|| {
                anyhow!(
                    "no function {id_or_binary:?} in the template (functions: {})",
                    self.functions
                        .iter()
                        .map(|f| format!("{} / {}", f.logical_id, f.binary))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// Every HttpApi route as `(method, path, binary)`, sorted, e.g.
    /// `("POST", "/v1/forms/{formId}/submissions", "lead-intake")`.
    pub fn http_routes(&self) -> Vec<(String, String, String)> {
        let mut routes: Vec<_> = self
            .functions
            .iter()
            .flat_map(|f| {
                f.routes
                    .iter()
                    .map(|r| (r.method.clone(), r.path.clone(), f.binary.clone()))
            })
            .collect();
        routes.sort();
        routes
    }

    pub fn table(&self, logical_id: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.logical_id == logical_id)
    }

    /// The resolved name of a table, by logical id (`LeadsTable`).
    pub fn table_name(&self, logical_id: &str) -> Option<&str> {
        self.table(logical_id).map(|t| t.name.as_str())
    }

    /// The resolved name of a bucket, by logical id (`ExportsBucket`).
    pub fn bucket_name(&self, logical_id: &str) -> Option<&str> {
        self.buckets
            .iter()
            .find(|b| b.logical_id == logical_id)
            .map(|b| b.name.as_str())
    }
}

fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.as_mapping().and_then(|m| m.get(key))
}

fn parameter_values(
    root: &Mapping,
    overrides: &[(&str, &str)],
) -> Result<BTreeMap<String, String>> {
    let mut values = BTreeMap::new();
    if let Some(params) = root.get("Parameters").and_then(Value::as_mapping) {
        for (name, spec) in params {
            let name = name.as_str().context("parameter name is not a string")?;
            if let Some(default) = get(spec, "Default") {
                let default = scalar_string(default)
                    .with_context(|| format!("default of parameter {name} is not a scalar"))?;
                values.insert(name.to_string(), default);
            } else {
                // Known, but without a value until overridden; a reference to it fails below.
                values.insert(name.to_string(), String::new());
            }
        }
        for (name, value) in overrides {
            // A typo in an override would otherwise silently leave the default in force.
            if !params.contains_key(*name) {
                bail!("override for unknown parameter {name:?}");
            }
            values.insert(name.to_string(), value.to_string());
        }
    } else if let Some((name, _)) = overrides.first() {
        bail!("override for unknown parameter {name:?}: the template has no Parameters");
    }
    Ok(values)
}

/// A YAML scalar as CloudFormation would pass it to a string context.
fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn required<'a>(props: Option<&'a Value>, key: &str) -> Result<&'a Value> {
    props
        .and_then(|p| get(p, key))
        .ok_or_else(|| anyhow!("missing property {key}"))
}

fn required_string(resolver: &Resolver, props: Option<&Value>, key: &str) -> Result<String> {
    resolver
        .string(required(props, key)?)
        .with_context(|| format!("property {key}"))
}

fn table(resolver: &Resolver, id: &str, props: Option<&Value>) -> Result<Table> {
    let name = required_string(resolver, props, "TableName")?;
    let table_keys = key_schema(resolver, required(props, "KeySchema")?).context("KeySchema")?;

    let mut attribute_definitions = Vec::new();
    for def in list(
        required(props, "AttributeDefinitions")?,
        "AttributeDefinitions",
    )? {
        attribute_definitions.push(AttributeDefinition {
            attribute_name: required_string(resolver, Some(def), "AttributeName")
                .context("AttributeDefinitions")?,
            attribute_type: required_string(resolver, Some(def), "AttributeType")
                .context("AttributeDefinitions")?,
        });
    }

    let mut global_secondary_indexes = Vec::new();
    if let Some(gsis) = props.and_then(|p| get(p, "GlobalSecondaryIndexes")) {
        for gsi in list(gsis, "GlobalSecondaryIndexes")? {
            let index_name = required_string(resolver, Some(gsi), "IndexName")
                .context("GlobalSecondaryIndexes")?;
            let context = || format!("GlobalSecondaryIndexes {index_name}");
            let key_schema =
                key_schema(resolver, required(Some(gsi), "KeySchema")?).with_context(context)?;
            let projection = required(Some(gsi), "Projection").with_context(context)?;
            let projection_type = match get(projection, "ProjectionType") {
                Some(v) => resolver.string(v).with_context(context)?,
                // CloudFormation's default when Projection names no type.
                None => "KEYS_ONLY".to_string(),
            };
            let non_key_attributes = match get(projection, "NonKeyAttributes") {
                Some(v) => list(v, "NonKeyAttributes")?
                    .iter()
                    .map(|a| resolver.string(a))
                    .collect::<Result<Vec<_>>>()
                    .with_context(context)?,
                None => Vec::new(),
            };
            global_secondary_indexes.push(GlobalSecondaryIndex {
                index_name,
                key_schema,
                projection_type,
                non_key_attributes,
            });
        }
    }

    let ttl_attribute = match props.and_then(|p| get(p, "TimeToLiveSpecification")) {
        Some(spec) => {
            let enabled = match get(spec, "Enabled") {
                Some(Value::Bool(b)) => *b,
                Some(other) => resolver.string(other)?.eq_ignore_ascii_case("true"),
                None => false,
            };
            if enabled {
                Some(
                    required_string(resolver, Some(spec), "AttributeName")
                        .context("TimeToLiveSpecification")?,
                )
            } else {
                None
            }
        }
        None => None,
    };

    let stream_view_type = match props
        .and_then(|p| get(p, "StreamSpecification"))
        .and_then(|spec| get(spec, "StreamViewType"))
    {
        Some(v) => Some(resolver.string(v).context("StreamSpecification")?),
        None => None,
    };

    Ok(Table {
        logical_id: id.to_string(),
        name,
        key_schema: table_keys,
        attribute_definitions,
        global_secondary_indexes,
        ttl_attribute,
        stream_view_type,
    })
}

fn key_schema(resolver: &Resolver, value: &Value) -> Result<Vec<KeyElement>> {
    list(value, "KeySchema")?
        .iter()
        .map(|element| {
            let attribute_name = required_string(resolver, Some(element), "AttributeName")?;
            let key_type = match required_string(resolver, Some(element), "KeyType")?.as_str() {
                "HASH" => KeyType::Hash,
                "RANGE" => KeyType::Range,
                other => bail!("KeyType {other:?} is neither HASH nor RANGE"),
            };
            Ok(KeyElement {
                attribute_name,
                key_type,
            })
        })
        .collect()
}

fn list<'a>(value: &'a Value, what: &str) -> Result<&'a Vec<Value>> {
    value
        .as_sequence()
        .ok_or_else(|| anyhow!("{what} is not a list"))
}

/// `Globals.Function`: what a function without its own value takes.
struct FunctionGlobals<'a> {
    env: BTreeMap<String, String>,
    memory_mb: Option<u32>,
    tracing: Option<String>,
    timeout_s: Option<u32>,
    logging: Option<&'a Value>,
}

fn function(
    resolver: &Resolver,
    id: &str,
    resource: &Value,
    globals: &FunctionGlobals<'_>,
) -> Result<Function> {
    let global_memory_mb = globals.memory_mb;
    let global_timeout_s = globals.timeout_s;
    let global_tracing = globals.tracing.as_deref();
    let global_logging = globals.logging;
    let global_env = &globals.env;
    let props = get(resource, "Properties");
    let memory_mb = match props.and_then(|p| get(p, "MemorySize")) {
        Some(v) => Some(memory_size(v)?),
        None => global_memory_mb,
    }
    .unwrap_or(LAMBDA_DEFAULT_MEMORY_MB);
    let timeout_s = match props.and_then(|p| get(p, "Timeout")) {
        Some(v) => timeout(v)?,
        None => global_timeout_s.unwrap_or(3),
    };
    let tracing = match props.and_then(|p| get(p, "Tracing")) {
        Some(v) => tracing_mode(v)?,
        None => global_tracing.unwrap_or("PassThrough").to_string(),
    };
    let name = resolver.physical_names[id].0.clone();
    let binary = get(resource, "Metadata")
        .and_then(|m| get(m, "BuildProperties"))
        .and_then(|b| get(b, "Binary"))
        .context(
            "missing Metadata.BuildProperties.Binary: local tooling needs it to know which \
             cargo binary serves this function",
        )?;
    let binary = resolver
        .string(binary)
        .context("Metadata.BuildProperties.Binary")?;

    let mut env = global_env.clone();
    if let Some(vars) = props
        .and_then(|p| get(p, "Environment"))
        .and_then(|e| get(e, "Variables"))
    {
        env.extend(resolver.string_map(vars).context("Environment.Variables")?);
    }

    let mut routes = Vec::new();
    if let Some(events) = props
        .and_then(|p| get(p, "Events"))
        .and_then(Value::as_mapping)
    {
        for (event_id, event) in events {
            if get(event, "Type").and_then(Value::as_str) != Some("HttpApi") {
                continue;
            }
            let event_id = event_id.as_str().unwrap_or("?");
            let event_props = get(event, "Properties");
            let context = || format!("event {event_id}");
            // Without Method and Path, SAM routes the API's catch-all `$default` route here; this
            // project names every route, so that case is not modelled.
            let method = required_string(resolver, event_props, "Method").with_context(context)?;
            let path = required_string(resolver, event_props, "Path").with_context(context)?;
            let method = method.to_ascii_uppercase();
            routes.push(HttpRoute {
                method: if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" {
                    "ANY".to_string()
                } else {
                    method
                },
                path,
            });
        }
    }
    routes.sort();

    Ok(Function {
        logical_id: id.to_string(),
        name,
        binary,
        env,
        routes,
        memory_mb,
        tracing,
        timeout_s,
        logging: logging(global_logging, props.and_then(|p| get(p, "LoggingConfig")))?,
    })
}

/// The `LoggingConfig` in force: the function's keys over the globals', Lambda's defaults for
/// the rest. Levels only with `JSON` (Lambda refuses them with `Text`).
fn logging(global: Option<&Value>, own: Option<&Value>) -> Result<Logging> {
    let key = |name: &str| -> Result<Option<String>> {
        match own
            .and_then(|o| get(o, name))
            .or_else(|| global.and_then(|g| get(g, name)))
        {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(|s| Some(s.to_string()))
                .with_context(|| format!("LoggingConfig.{name} is a plain string")),
        }
    };
    let format = key("LogFormat")?.unwrap_or_else(|| "Text".into());
    if !matches!(format.as_str(), "Text" | "JSON") {
        bail!("LoggingConfig.LogFormat is Text or JSON");
    }
    let mut levels = Vec::new();
    for name in ["SystemLogLevel", "ApplicationLogLevel"] {
        let level = key(name)?;
        if let Some(l) = &level {
            if format != "JSON" {
                bail!("LoggingConfig.{name} needs LogFormat JSON");
            }
            let allowed: &[&str] = if name == "SystemLogLevel" {
                &["DEBUG", "INFO", "WARN"]
            } else {
                &LOG_LEVELS
            };
            if !allowed.contains(&l.as_str()) {
                bail!("LoggingConfig.{name} {l} is not one of {allowed:?}");
            }
        }
        levels.push(level.unwrap_or_else(|| "INFO".into()));
    }
    Ok(Logging {
        format,
        application_level: levels.pop().unwrap_or_default(),
        system_level: levels.pop().unwrap_or_default(),
    })
}

/// Lambda's memory size when a function and the globals set none.
pub const LAMBDA_DEFAULT_MEMORY_MB: u32 = 128;

/// A `Timeout`: a plain number of seconds (1 to 900).
fn timeout(v: &Value) -> Result<u32> {
    let s = v
        .as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .context("Timeout is a number of seconds")?;
    if !(1..=900).contains(&s) {
        bail!("Timeout {s} is outside Lambda's 1 to 900 seconds");
    }
    Ok(s as u32)
}

/// A `Tracing` mode, as this template writes it (a plain string).
fn tracing_mode(v: &Value) -> Result<String> {
    match v.as_str() {
        Some(m @ ("Active" | "PassThrough")) => Ok(m.to_string()),
        _ => bail!("Tracing is Active or PassThrough"),
    }
}

/// A `MemorySize`: a plain number of MB (128 to 10,240), as this template writes it.
fn memory_size(v: &Value) -> Result<u32> {
    let mb = v
        .as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .context("MemorySize is a number of MB")?;
    if !(128..=10_240).contains(&mb) {
        bail!("MemorySize {mb} is outside Lambda's 128 to 10,240 MB");
    }
    Ok(mb as u32)
}

/// Resolves intrinsic functions against parameter values and the names of the resources read so far.
struct Resolver<'a> {
    parameters: &'a BTreeMap<String, String>,
    /// Logical id → (physical name that `Ref` gives, ARN that `GetAtt .Arn` gives).
    physical_names: BTreeMap<String, (String, Option<String>)>,
}

enum Resolved {
    Str(String),
    List(Vec<String>),
}

impl Resolver<'_> {
    fn string(&self, value: &Value) -> Result<String> {
        match self.resolve(value)? {
            Resolved::Str(s) => Ok(s),
            Resolved::List(_) => bail!("expected a string, found a list"),
        }
    }

    fn list(&self, value: &Value) -> Result<Vec<String>> {
        match self.resolve(value)? {
            Resolved::List(l) => Ok(l),
            Resolved::Str(_) => bail!("expected a list, found a string"),
        }
    }

    fn string_map(&self, value: &Value) -> Result<BTreeMap<String, String>> {
        let map = value.as_mapping().context("expected a mapping")?;
        let mut out = BTreeMap::new();
        for (key, value) in map {
            let key = key.as_str().context("variable name is not a string")?;
            let value = self
                .string(value)
                .with_context(|| format!("variable {key}"))?;
            out.insert(key.to_string(), value);
        }
        Ok(out)
    }

    fn resolve(&self, value: &Value) -> Result<Resolved> {
        if let Some(s) = scalar_string(value) {
            return Ok(Resolved::Str(s));
        }
        match value {
            Value::Sequence(items) => Ok(Resolved::List(
                items
                    .iter()
                    .map(|i| self.string(i))
                    .collect::<Result<_>>()?,
            )),
            Value::Tagged(tagged) => {
                let tag = tagged.tag.to_string();
                let name = tag.trim_start_matches('!');
                let name = name.strip_prefix("Fn::").unwrap_or(name);
                self.intrinsic(name, &tagged.value)
            }
            Value::Mapping(map) if map.len() == 1 => {
                let (key, arg) = map.iter().next().expect("one entry");
                match key.as_str() {
                    Some("Ref") => self.intrinsic("Ref", arg),
                    Some(k) if k.starts_with("Fn::") => {
                        self.intrinsic(k.trim_start_matches("Fn::"), arg)
                    }
                    _ => bail!("expected a value or an intrinsic function, found a mapping"),
                }
            }
            _ => bail!("unsupported value {value:?}"),
        }
    }

    fn intrinsic(&self, name: &str, arg: &Value) -> Result<Resolved> {
        match name {
            "Ref" => {
                let target = arg.as_str().context("!Ref takes a name")?;
                self.reference(target).map(Resolved::Str)
            }
            "Sub" => {
                let (text, vars) = match arg {
                    Value::Sequence(items) if items.len() == 2 => {
                        (items[0].as_str(), Some(self.string_map(&items[1])?))
                    }
                    other => (other.as_str(), None),
                };
                let text = text.context("!Sub takes a string or [string, variables]")?;
                self.substitute(text, vars.as_ref()).map(Resolved::Str)
            }
            "Select" => {
                let items = arg
                    .as_sequence()
                    .filter(|s| s.len() == 2)
                    .context("!Select takes [index, list]")?;
                let index: usize = self
                    .string(&items[0])?
                    .parse()
                    .context("!Select index is not a number")?;
                let list = self.list(&items[1])?;
                let len = list.len();
                list.into_iter()
                    .nth(index)
                    .map(Resolved::Str)
                    .ok_or_else(|| anyhow!("!Select index {index} out of range (list of {len})"))
            }
            "Split" => {
                let items = arg
                    .as_sequence()
                    .filter(|s| s.len() == 2)
                    .context("!Split takes [delimiter, string]")?;
                let delimiter = self.string(&items[0])?;
                let text = self.string(&items[1])?;
                Ok(Resolved::List(
                    text.split(delimiter.as_str()).map(str::to_string).collect(),
                ))
            }
            "Join" => {
                let items = arg
                    .as_sequence()
                    .filter(|s| s.len() == 2)
                    .context("!Join takes [delimiter, list]")?;
                let delimiter = self.string(&items[0])?;
                Ok(Resolved::Str(self.list(&items[1])?.join(&delimiter)))
            }
            "GetAtt" => {
                let (resource, attribute) = match arg {
                    Value::String(s) => s
                        .split_once('.')
                        .map(|(r, a)| (r.to_string(), a.to_string()))
                        .context("!GetAtt takes Resource.Attribute")?,
                    Value::Sequence(items) if items.len() == 2 => {
                        (self.string(&items[0])?, self.string(&items[1])?)
                    }
                    _ => bail!("!GetAtt takes Resource.Attribute or [Resource, Attribute]"),
                };
                self.attribute(&resource, &attribute).map(Resolved::Str)
            }
            other => bail!("intrinsic function {other} is not supported by the local tooling"),
        }
    }

    fn reference(&self, target: &str) -> Result<String> {
        match target {
            "AWS::AccountId" => return Ok(LOCAL_ACCOUNT_ID.to_string()),
            "AWS::Region" => return Ok(LOCAL_REGION.to_string()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".to_string()),
            "AWS::Partition" => return Ok("aws".to_string()),
            "AWS::StackName" => return Ok("lead-platform-local".to_string()),
            "AWS::NoValue" => bail!("AWS::NoValue is not supported by the local tooling"),
            _ => {}
        }
        if let Some(value) = self.parameters.get(target) {
            if value.is_empty() {
                bail!("parameter {target} has no default and no override");
            }
            return Ok(value.clone());
        }
        if let Some((name, _)) = self.physical_names.get(target) {
            return Ok(name.clone());
        }
        bail!("cannot resolve !Ref {target}: not a parameter, nor a table, bucket or function")
    }

    fn attribute(&self, resource: &str, attribute: &str) -> Result<String> {
        match (self.physical_names.get(resource), attribute) {
            (Some((_, Some(arn))), "Arn") => Ok(arn.clone()),
            (Some(_), _) => bail!("!GetAtt {resource}.{attribute} is not supported locally"),
            (None, _) => bail!("!GetAtt {resource}.{attribute}: unknown resource"),
        }
    }

    /// `${Name}`, `${Resource.Attribute}` and the `${!Literal}` escape.
    fn substitute(&self, text: &str, vars: Option<&BTreeMap<String, String>>) -> Result<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .with_context(|| format!("unclosed ${{ in !Sub {text:?}"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = vars.and_then(|v| v.get(name)) {
                out.push_str(value);
            } else if let Some((resource, attribute)) = name.split_once('.') {
                if resource == "AWS" {
                    out.push_str(&self.reference(name)?);
                } else {
                    out.push_str(&self.attribute(resource, attribute)?);
                }
            } else {
                out.push_str(&self.reference(name)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project_template(stage: &str) -> Template {
        Template::load(default_template_path(), &[("Stage", stage)]).expect("template resolves")
    }

    #[test]
    fn table_names_follow_the_stage() {
        let t = project_template("dev");
        for (id, name) in [
            ("TenantsTable", "lead-platform-dev-tenants"),
            ("LeadsTable", "lead-platform-dev-leads"),
            ("PrivacyTable", "lead-platform-dev-privacy"),
            ("OpsTable", "lead-platform-dev-ops"),
        ] {
            assert_eq!(t.table_name(id), Some(name));
        }
        assert!(t
            .tables
            .iter()
            .all(|t| t.name.starts_with("lead-platform-dev-")));
        let other = project_template("it-1234");
        assert_eq!(
            other.table_name("LeadsTable"),
            Some("lead-platform-it-1234-leads")
        );
    }

    #[test]
    fn memory_and_tracing_come_from_the_function_else_the_globals() {
        let yaml = r#"
Globals:
  Function:
    MemorySize: 256
    Tracing: Active
Resources:
  A:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: a } }
    Properties: { MemorySize: 128, Tracing: PassThrough }
  B:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: b } }
"#;
        let t = Template::parse(yaml, &[]).unwrap();
        let a = t.function("a").unwrap();
        assert_eq!((a.memory_mb, a.tracing.as_str()), (128, "PassThrough"));
        assert_eq!((a.timeout_s, t.function("b").unwrap().timeout_s), (3, 3));
        let b = t.function("b").unwrap();
        assert_eq!((b.memory_mb, b.tracing.as_str()), (256, "Active"));

        let bare = r#"
Resources:
  C:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: c } }
"#;
        let c = Template::parse(bare, &[]).unwrap();
        let c = c.function("c").unwrap();
        assert_eq!((c.memory_mb, c.tracing.as_str()), (128, "PassThrough"));

        let bad = bare.replace("Metadata:", "Properties: { MemorySize: 64 }\n    Metadata:");
        assert!(Template::parse(&bad, &[]).is_err());
    }

    #[test]
    fn logging_config_merges_the_functions_keys_over_the_globals() {
        let yaml = r#"
Globals:
  Function:
    LoggingConfig: { LogFormat: JSON }
Resources:
  A:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: a } }
    Properties: { LoggingConfig: { LogGroup: g, SystemLogLevel: WARN } }
  B:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: b } }
"#;
        let t = Template::parse(yaml, &[]).unwrap();
        let a = &t.function("a").unwrap().logging;
        assert_eq!(
            (
                a.format.as_str(),
                a.system_level.as_str(),
                a.application_level.as_str()
            ),
            ("JSON", "WARN", "INFO")
        );
        assert!(!a.platform_lines_kept() && a.metric_lines_kept());
        let b = &t.function("b").unwrap().logging;
        assert!(b.platform_lines_kept() && b.metric_lines_kept());

        // An application level above INFO drops the EMF lines (no level: INFO to Lambda).
        let warn = yaml.replace("SystemLogLevel: WARN", "ApplicationLogLevel: WARN");
        let t = Template::parse(&warn, &[]).unwrap();
        assert!(!t.function("a").unwrap().logging.metric_lines_kept());
        // Levels need JSON; an unknown level is refused.
        let text = yaml.replace("LogFormat: JSON", "LogFormat: Text");
        assert!(Template::parse(&text, &[]).is_err());
        let odd = yaml.replace("SystemLogLevel: WARN", "SystemLogLevel: ERROR");
        assert!(Template::parse(&odd, &[]).is_err());
    }

    /// Lambda takes a JSON line without a `level` (every CloudWatch EMF metric line) as INFO:
    /// a function filtering its application logs above INFO would lose its metrics, and the
    /// alarms on them would never fire.
    #[test]
    fn no_function_drops_its_metric_lines() {
        let t = Template::load(default_template_path(), &[]).unwrap();
        for f in &t.functions {
            assert_eq!(f.logging.format, "JSON", "{}", f.binary);
            assert!(
                f.logging.metric_lines_kept(),
                "{}: {:?}",
                f.binary,
                f.logging
            );
        }
    }

    #[test]
    fn defaults_apply_without_overrides() {
        let t = Template::load(default_template_path(), &[]).unwrap();
        assert_eq!(t.parameters["Stage"], "prod");
        assert_eq!(t.table_name("OpsTable"), Some("lead-platform-prod-ops"));
    }

    #[test]
    fn unknown_override_is_an_error() {
        let err = Template::load(default_template_path(), &[("Stgae", "dev")]).unwrap_err();
        assert!(format!("{err:#}").contains("Stgae"), "{err:#}");
    }

    #[test]
    fn bucket_names_use_pseudo_parameters() {
        let t = project_template("dev");
        assert_eq!(
            t.bucket_name("AttachmentsBucket"),
            Some("lead-platform-dev-000000000000-attachments")
        );
        assert_eq!(
            t.bucket_name("ExportsBucket"),
            Some("lead-platform-dev-000000000000-exports")
        );
    }

    #[test]
    fn keys_gsis_and_ttl_are_read() {
        let t = project_template("dev");
        let leads = t.table("LeadsTable").unwrap();
        assert_eq!(
            leads.key_schema,
            [
                KeyElement {
                    attribute_name: "pk".into(),
                    key_type: KeyType::Hash
                },
                KeyElement {
                    attribute_name: "sk".into(),
                    key_type: KeyType::Range
                },
            ]
        );
        assert_eq!(leads.ttl_attribute, None);
        let gsi = |table: &Table, name: &str| {
            table
                .global_secondary_indexes
                .iter()
                .find(|g| g.index_name == name)
                .cloned()
                .unwrap_or_else(|| panic!("{} has no index {name}", table.logical_id))
        };
        let by_email = gsi(leads, "by_email_bidx");
        assert_eq!(by_email.projection_type, "KEYS_ONLY");
        assert_eq!(
            by_email.key_schema,
            [KeyElement {
                attribute_name: "email_bidx".into(),
                key_type: KeyType::Hash
            }]
        );
        let by_expiry = gsi(leads, "by_tech_expiry");
        assert_eq!(by_expiry.key_schema.len(), 2);
        assert_eq!(by_expiry.key_schema[1].key_type, KeyType::Range);

        let tenants = t.table("TenantsTable").unwrap();
        assert_eq!(tenants.ttl_attribute.as_deref(), Some("expires_at"));
        assert_eq!(gsi(tenants, "gsi1").projection_type, "ALL");

        // DynamoDB rejects a table whose key attributes are not all defined, and vice versa.
        for table in &t.tables {
            let mut keys: Vec<_> = table
                .key_schema
                .iter()
                .chain(
                    table
                        .global_secondary_indexes
                        .iter()
                        .flat_map(|g| &g.key_schema),
                )
                .map(|k| k.attribute_name.as_str())
                .collect();
            keys.sort();
            keys.dedup();
            let mut defined: Vec<_> = table
                .attribute_definitions
                .iter()
                .map(|d| d.attribute_name.as_str())
                .collect();
            defined.sort();
            assert_eq!(keys, defined, "{}", table.logical_id);
        }
    }

    #[test]
    fn include_projections_keep_their_attributes() {
        let yaml = r#"
Resources:
  T:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: t
      AttributeDefinitions: [{ AttributeName: id, AttributeType: S }, { AttributeName: g, AttributeType: N }]
      KeySchema: [{ AttributeName: id, KeyType: HASH }]
      GlobalSecondaryIndexes:
        - IndexName: by_g
          KeySchema: [{ AttributeName: g, KeyType: HASH }]
          Projection: { ProjectionType: INCLUDE, NonKeyAttributes: [a, b] }
"#;
        let t = Template::parse(yaml, &[]).unwrap();
        let gsi = &t.tables[0].global_secondary_indexes[0];
        assert_eq!(gsi.projection_type, "INCLUDE");
        assert_eq!(gsi.non_key_attributes, ["a", "b"]);
        assert_eq!(t.tables[0].attribute_definitions[1].attribute_type, "N");
    }

    #[test]
    fn function_env_resolves_refs_and_merges_globals() {
        let t = project_template("dev");
        let env = t.function_env("LeadIntakeFunction").unwrap();
        assert_eq!(env, t.function_env("lead-intake").unwrap());
        assert_eq!(env["STAGE"], "dev");
        assert_eq!(env["RUST_LOG"], "info,lambda_runtime=warn");
        assert_eq!(env["TENANTS_TABLE"], "lead-platform-dev-tenants");
        assert_eq!(env["LEADS_TABLE"], "lead-platform-dev-leads");
        assert_eq!(env["PRIVACY_TABLE"], "lead-platform-dev-privacy");
        assert_eq!(env["OPS_TABLE"], "lead-platform-dev-ops");
        assert_eq!(
            env["BLIND_INDEX_KEY_PARAMETER"],
            "/lead-platform/prod/blind-index-key"
        );
        assert_eq!(env["RATE_LIMIT_PER_IP_PER_MINUTE"], "10");
        assert_eq!(env["RATE_LIMIT_PER_FORM_PER_MINUTE"], "120");
        let f = t.function("lead-intake").unwrap();
        assert_eq!(f.name, "lead-platform-dev-lead-intake");
        assert!(t.function_env("no-such-function").is_err());
    }

    #[test]
    fn http_routes_come_from_httpapi_events() {
        let t = project_template("dev");
        let routes = t.http_routes();
        let path = "/v1/forms/{formId}/submissions".to_string();
        let binary = "lead-intake".to_string();
        assert!(routes.contains(&("POST".to_string(), path.clone(), binary.clone())));
        assert!(routes.contains(&("OPTIONS".to_string(), path, binary)));
        let mut sorted = routes.clone();
        sorted.sort();
        assert_eq!(routes, sorted, "routes come sorted");
        for (method, path, binary) in &routes {
            assert_eq!(method, &method.to_ascii_uppercase());
            assert!(path.starts_with('/'), "{path}");
            assert!(t.function(binary).is_some(), "{binary}");
        }
    }

    #[test]
    fn intrinsics_in_short_and_long_form() {
        let yaml = r#"
Parameters:
  Stage: { Type: String, Default: prod }
  KeyName: { Type: String, Default: /app/prod/key }
  Limit: { Type: Number, Default: 5 }
Globals:
  Function:
    Environment:
      Variables:
        SHARED: global
        OVERRIDDEN: global
Resources:
  Things:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: { "Fn::Sub": "app-${Stage}-things" }
      AttributeDefinitions: [{ AttributeName: id, AttributeType: S }]
      KeySchema: [{ AttributeName: id, KeyType: HASH }]
      TimeToLiveSpecification: { AttributeName: ttl, Enabled: false }
  Files:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Join ["-", [app, !Ref Stage, !Ref "AWS::Region"]]
  Fn:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties: { Binary: thing-api }
    Properties:
      Environment:
        Variables:
          OVERRIDDEN: own
          TABLE: { Ref: Things }
          TABLE_ARN: !GetAtt Things.Arn
          BUCKET: !Ref Files
          FIRST_SEGMENT: !Select [1, !Split ["/", !Ref KeyName]]
          LIMIT: !Ref Limit
          WITH_VARS: !Sub ["${Name}-${AWS::AccountId}-${!Literal}", { Name: !Ref Stage }]
          ARN_IN_SUB: !Sub "${Things.Arn}/index/*"
          NUMBER: 7
      Events:
        Any:
          Type: HttpApi
          Properties: { Method: any, Path: "/things/{id}" }
        Queue:
          Type: SQS
          Properties: { Queue: x }
"#;
        let t = Template::parse(yaml, &[("Stage", "qa")]).unwrap();
        assert_eq!(t.tables[0].name, "app-qa-things");
        assert_eq!(t.tables[0].ttl_attribute, None);
        assert_eq!(t.buckets[0].name, "app-qa-us-east-1");
        let f = t.function("Fn").unwrap();
        assert_eq!(f.name, "Fn");
        let env = &f.env;
        assert_eq!(env["SHARED"], "global");
        assert_eq!(env["OVERRIDDEN"], "own");
        assert_eq!(env["TABLE"], "app-qa-things");
        assert_eq!(
            env["TABLE_ARN"],
            "arn:aws:dynamodb:us-east-1:000000000000:table/app-qa-things"
        );
        assert_eq!(env["BUCKET"], "app-qa-us-east-1");
        assert_eq!(env["FIRST_SEGMENT"], "app");
        assert_eq!(env["LIMIT"], "5");
        assert_eq!(env["WITH_VARS"], "qa-000000000000-${Literal}");
        assert_eq!(
            env["ARN_IN_SUB"],
            "arn:aws:dynamodb:us-east-1:000000000000:table/app-qa-things/index/*"
        );
        assert_eq!(env["NUMBER"], "7");
        assert_eq!(
            t.http_routes(),
            [(
                "ANY".to_string(),
                "/things/{id}".to_string(),
                "thing-api".to_string()
            )]
        );
    }

    #[test]
    fn unresolvable_reference_names_the_resource() {
        let yaml = r#"
Resources:
  T:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Ref Missing
      AttributeDefinitions: []
      KeySchema: []
"#;
        let err = format!("{:#}", Template::parse(yaml, &[]).unwrap_err());
        assert!(
            err.contains("resource T") && err.contains("Missing"),
            "{err}"
        );
    }
}
