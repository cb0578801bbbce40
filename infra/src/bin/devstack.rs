//! `devstack`: the local stack's command line, used by `make dev` (infra/scripts/dev.sh) and the
//! e2e test. Everything it does is derived from template.yaml.
//!
//! ```text
//! devstack bootstrap   [--endpoint URL] [--stage dev]
//! devstack seed        [--endpoint URL] [--stage dev] --web-origin URL
//! devstack env         [--endpoint URL] [--stage dev] [--binary lead-intake]
//! devstack router
//! devstack token-key   --kid k2
//! devstack count-items [--endpoint URL] [--stage dev] --table LeadsTable [--where ATTR^=PREFIX]
//! devstack legal-hold  [--endpoint URL] [--stage dev] --tenant T [--lead L | --billing SK] --hold on|off
//! devstack faults      [--endpoint URL] --port P --spec 'rate=0.2,seed=1,...'
//! devstack stripe      [--port 12111] --webhook-url URL
//! devstack outbound    [--endpoint URL] [--stage dev] --invoke URL [--sink-port 12112]
//! devstack replay-erasures [--endpoint URL | --aws] --since RFC3339 [--records-table NAME] [--dry-run]
//! ```
//!
//! `--endpoint` defaults to `http://127.0.0.1:$LOCAL_AWS_PORT` (4566); `--template` (any command)
//! to the workspace's template.yaml. `LOCAL_PARAMETERS` (space-separated `Name=value`) overrides
//! template parameters for every command but `router`; an unknown name fails, naming it.

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use infra::local::{self, DEV_STAGE};
use infra::{router, LocalClients, Template};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

const USAGE: &str = "usage: devstack <bootstrap|seed|env|router|token-key|count-items|legal-hold|faults|stripe|outbound|replay-erasures> [--endpoint URL] [--stage STAGE] [--template PATH] [...]
  bootstrap    create the template's tables and buckets in the emulator (idempotent)
  seed         create the demo tenant, form and blind-index key (needs --web-origin URL)
  env          print KEY=VALUE lines for running a function locally (--binary NAME, default: all)
  router       print the CargoLambda.toml that `cargo lambda watch` reads
  token-key    print a new access-token key pair (--kid ID): line 1 the private-key parameter's
               value (auth's SecureString), line 2 the public key to list under that kid
  count-items  print how many items a table holds (--table LogicalId [--where ATTR^=PREFIX])
  legal-hold   set or clear a legal hold (--tenant T [--lead L | --billing SORT_KEY] --hold on|off):
               retention never deletes a held tenant, lead or billing record, and reports it
  faults       run the fault-injecting proxy (infra/src/faults.rs) on --port in front of the
               emulator at --endpoint, faulting calls as --spec says (LOCAL_FAULTS' syntax:
               rate=0.2,seed=1,services=dynamodb+s3+ses+ssm+lambda,kinds=...,hang_ms=3000);
               prints what it injected every 10 s and when stopped
  stripe       run the local stand-in for Stripe (infra/src/stripe_standin.rs) on --port (12111):
               its API for checkout and portal sessions (the local secret key), their pages,
               and the signed webhooks the pages send to --webhook-url
  outbound     the outbound channel on one machine (infra/src/outbound_local.rs): poll the leads
               table's stream and the retry queue in the emulator and invoke `outbound` through
               the local Invoke API at --invoke (as Lambda's mappings would), and serve the
               webhook sink on 127.0.0.1:--sink-port (12112; GET /_sink/deliveries)
  replay-erasures  after a point-in-time restore, re-apply every erasure completed since
               --since (RFC 3339): read the certificates, the completed erasure records and the
               suppression list of --records-table (the privacy table before the restore;
               default the live one), re-erase each subject through the DSAR worker's steps and
               put back lost suppression entries; --dry-run changes nothing. --aws: against the
               deployed stack (default credentials; the dsar-worker's environment variables
               TENANTS_TABLE, LEADS_TABLE, ... set in this shell) instead of the emulator
environment: LOCAL_AWS_PORT (default endpoint's port), LOCAL_PARAMETERS (template parameter
  overrides, space-separated Name=value, e.g. \"RateLimitPerIpPerMinute=100000\")";

#[tokio::main]
async fn main() {
    if let Err(err) = run(std::env::args().skip(1).collect()).await {
        eprintln!("devstack: {err:#}");
        std::process::exit(1);
    }
}

async fn run(argv: Vec<String>) -> Result<()> {
    let Some((command, rest)) = argv.split_first() else {
        bail!("{USAGE}");
    };
    let args = Flags::parse(rest)?;
    match command.as_str() {
        "bootstrap" => {
            args.only(&["endpoint", "stage", "template"])?;
            let template = args.template()?;
            let clients = LocalClients::new(&args.endpoint());
            infra::create_tables_and_buckets(&template, &clients.dynamo, &clients.s3).await?;
            infra::bootstrap::create_queues(&template, &clients.sqs).await?;
            for queue in &template.queues {
                println!("queue  {}", queue.name);
            }
            for table in &template.tables {
                println!("table  {}", table.name);
            }
            for bucket in &template.buckets {
                println!("bucket {}", bucket.name);
            }
        }
        "seed" => {
            args.only(&["endpoint", "stage", "template", "web-origin"])?;
            let template = args.template()?;
            let clients = LocalClients::new(&args.endpoint());
            let web_origin = args.required("web-origin")?;
            // ---- seed: written by the lead engineer in infra/src/seed.rs ----
            let report =
                infra::seed::seed_demo(&clients, &args.endpoint(), &template, web_origin).await?;
            println!("tenant   {}", report.tenant_id);
            println!("form     {}", report.form_id);
            println!("owner    {}", report.owner_email);
            println!("password {}", report.owner_password);
            // ---- end seed ----
        }
        "env" => {
            args.only(&["endpoint", "stage", "template", "binary"])?;
            let template = args.template()?;
            let endpoint = args.endpoint();
            let env = match args.get("binary") {
                Some(binary) => local::local_function_env(&template, binary, &endpoint)?,
                None => all_functions_env(&template, &endpoint)?,
            };
            for (key, value) in env {
                println!("{}", local::env_file_line(&key, &value)?);
            }
        }
        "router" => {
            args.only(&["template"])?;
            // Routes do not depend on the stage; the default parameters are enough.
            let path = args.template_path();
            let template = Template::load(&path, &[])?;
            print!("{}", router::render(&template)?);
        }
        "token-key" => {
            args.only(&["kid"])?;
            let pair = shared_accounts::auth::jwt::TokenSigner::generate(args.required("kid")?)?;
            println!("{}", pair.private_json);
            println!("{}", pair.public_key);
        }
        "count-items" => {
            args.only(&["endpoint", "stage", "template", "table", "where"])?;
            let template = args.template()?;
            let logical_id = args.required("table")?;
            let table = template
                .table_name(logical_id)
                .with_context(|| format!("no table {logical_id} in the template"))?;
            let filter = match args.get("where") {
                Some(w) => Some(
                    w.split_once("^=")
                        .context("--where takes ATTR^=PREFIX (attribute begins with prefix)")?,
                ),
                None => None,
            };
            let clients = LocalClients::new(&args.endpoint());
            println!("{}", count_items(&clients.dynamo, table, filter).await?);
        }
        "faults" => {
            args.only(&["endpoint", "port", "spec"])?;
            let plan = infra::faults::FaultPlan::parse(args.get("spec").unwrap_or(""))?;
            let port: u16 = args
                .required("port")?
                .parse()
                .context("--port: a port number")?;
            let proxy =
                infra::faults::FaultProxy::start(&args.endpoint(), port, plan.clone()).await?;
            println!(
                "fault proxy on {} -> {} ({:.0}% of calls faulted)",
                proxy.endpoint(),
                args.endpoint(),
                plan.rate * 100.0
            );
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => println!("faults: {}", proxy.stats()),
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
            println!("faults: {}", proxy.stats());
        }
        "stripe" => {
            args.only(&["port", "webhook-url"])?;
            let port: u16 = match args.get("port") {
                Some(p) => p.parse().context("--port: a port number")?,
                None => infra::stripe_standin::DEFAULT_PORT,
            };
            let config = infra::stripe_standin::StandinConfig::local(args.required("webhook-url")?);
            let standin = infra::stripe_standin::StripeStandin::start(
                config,
                port,
                std::sync::Arc::new(shared_core::clock::SystemClock),
            )
            .await?;
            println!(
                "stripe stand-in on {} (webhooks to {})",
                standin.endpoint(),
                args.required("webhook-url")?
            );
            tokio::signal::ctrl_c().await?;
        }
        "outbound" => {
            args.only(&["endpoint", "stage", "template", "invoke", "sink-port"])?;
            let template = args.template()?;
            let clients = LocalClients::new(&args.endpoint());
            let port: u16 = match args.get("sink-port") {
                Some(p) => p.parse().context("--sink-port: a port number")?,
                None => infra::outbound_local::DEFAULT_SINK_PORT,
            };
            infra::outbound_local::start_sink(port).await?;
            println!(
                "webhook sink on http://127.0.0.1:{port}/hook (deliveries: /_sink/deliveries)"
            );
            let invoke = args.required("invoke")?.to_string();
            tokio::select! {
                r = infra::outbound_local::run_poller(clients, template, invoke) => r?,
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        "legal-hold" => {
            args.only(&[
                "endpoint", "stage", "template", "tenant", "lead", "billing", "hold",
            ])?;
            let template = args.template()?;
            let clients = LocalClients::new(&args.endpoint());
            let hold = match args.required("hold")? {
                "on" => true,
                "off" => false,
                other => bail!("--hold takes on or off, not {other:?}"),
            };
            let (logical_id, key) = hold_target(
                args.required("tenant")?,
                args.get("lead"),
                args.get("billing"),
            )?;
            let table = template
                .table_name(logical_id)
                .with_context(|| format!("no table {logical_id} in the template"))?;
            let ops = template
                .table_name("OpsTable")
                .context("no table OpsTable in the template")?;
            set_legal_hold(&clients.dynamo, table, ops, logical_id, key.clone(), hold).await?;
            println!(
                "legal hold {} on {logical_id} {} / {}",
                if hold { "set" } else { "cleared" },
                key.pk,
                key.sk
            );
        }
        "replay-erasures" => {
            args.only(&[
                "endpoint",
                "stage",
                "template",
                "since",
                "records-table",
                "dry-run",
                "aws",
            ])?;
            let since = time::OffsetDateTime::parse(
                args.required("since")?,
                &time::format_description::well_known::Rfc3339,
            )
            .context("--since must be an RFC 3339 time, e.g. 2026-05-01T10:00:00Z")?;
            let dry_run = args.switch("dry-run")?;
            let (dynamo, s3, ssm, env) = if args.switch("aws")? {
                let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                let env: BTreeMap<String, String> = std::env::vars().collect();
                (
                    aws_sdk_dynamodb::Client::new(&config),
                    aws_sdk_s3::Client::new(&config),
                    aws_sdk_ssm::Client::new(&config),
                    env,
                )
            } else {
                let template = args.template()?;
                let endpoint = args.endpoint();
                let c = LocalClients::new(&endpoint);
                let env = local::local_function_env(&template, "dsar-worker", &endpoint)?;
                (c.dynamo, c.s3, c.ssm, env)
            };
            let report = infra::replay::run(
                dynamo,
                s3,
                &ssm,
                &env,
                since,
                dry_run,
                args.get("records-table"),
            )
            .await?;
            print!("{}", infra::replay::describe(&report, dry_run));
        }
        "-h" | "--help" | "help" => println!("{USAGE}"),
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
    Ok(())
}

/// The item a legal hold is set on: a tenant record, a lead, or a billing record.
fn hold_target(
    tenant: &str,
    lead: Option<&str>,
    billing: Option<&str>,
) -> Result<(&'static str, shared_core::keys::Key)> {
    use shared_core::domain::{LeadId, TenantId};
    use shared_core::keys;
    let t = TenantId::parse(tenant).context("--tenant")?;
    Ok(match (lead, billing) {
        (None, None) => ("TenantsTable", keys::tenant(&t)),
        (Some(l), None) => (
            "LeadsTable",
            keys::lead(&t, &LeadId::parse(l).context("--lead")?),
        ),
        (None, Some(sk)) => {
            if !["INVOICE#", "PAYMENT#", "REFUND#"]
                .iter()
                .any(|p| sk.starts_with(p))
            {
                bail!(
                    "--billing takes a billing record's sort key (INVOICE#…, PAYMENT#…, REFUND#…)"
                );
            }
            (
                "BillingTable",
                shared_core::keys::Key {
                    pk: keys::billing_partition(&t),
                    sk: sk.to_string(),
                },
            )
        }
        (Some(_), Some(_)) => bail!("--lead and --billing exclude each other"),
    })
}

/// Sets (`legal_hold = true`) or clears (removes) a hold on an existing item, and its entry in
/// the holds registry (ops table) in the same transaction: retention reads the registry.
async fn set_legal_hold(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    ops_table: &str,
    logical_id: &str,
    key: shared_core::keys::Key,
    hold: bool,
) -> Result<()> {
    use shared_privacy::legal_holds::{self, HeldItem, HoldKind};
    let kind = match logical_id {
        "TenantsTable" => HoldKind::Tenant,
        "LeadsTable" => HoldKind::Lead,
        _ => HoldKind::Billing,
    };
    let held = HeldItem { kind, key };
    let now = time::OffsetDateTime::now_utc();
    if !legal_holds::set_legal_hold(dynamo, table, ops_table, &held, hold, now).await? {
        bail!("no such item");
    }
    Ok(())
}

/// Every function's local environment together, for a `cargo lambda watch` that serves them all.
/// Two functions giving one variable different values cannot share one environment: that is an error.
fn all_functions_env(template: &Template, endpoint: &str) -> Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    for function in &template.functions {
        for (key, value) in local::local_function_env(template, &function.binary, endpoint)? {
            if let Some(previous) = env.insert(key.clone(), value.clone()) {
                if previous != value {
                    bail!(
                        "functions disagree on {key} ({previous:?} vs {value:?}); \
                         pass --binary to print one function's environment"
                    );
                }
            }
        }
    }
    Ok(env)
}

async fn count_items(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    filter: Option<(&str, &str)>,
) -> Result<usize> {
    let mut count = 0;
    let mut start_key: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let mut scan = dynamo
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start_key.take());
        if let Some((attribute, prefix)) = filter {
            scan = scan
                .filter_expression("begins_with(#a, :p)")
                .expression_attribute_names("#a", attribute)
                .expression_attribute_values(":p", AttributeValue::S(prefix.to_string()));
        }
        let page = scan
            .send()
            .await
            .with_context(|| format!("scanning {table}"))?;
        count += page.items().len();
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start_key = Some(key.clone()),
            _ => return Ok(count),
        }
    }
}

/// `--name value` / `--name=value` flags; a switch (`--dry-run`) stands alone.
struct Flags(BTreeMap<String, String>);

const SWITCHES: &[&str] = &["dry-run", "aws"];

impl Flags {
    /// A switch: present (`--dry-run`, `--dry-run=true`) or absent.
    fn switch(&self, name: &str) -> Result<bool> {
        match self.get(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => bail!("--{name} takes no value (got {other:?})"),
        }
    }

    fn parse(args: &[String]) -> Result<Flags> {
        let mut flags = BTreeMap::new();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let Some(name) = arg.strip_prefix("--") else {
                bail!("unexpected argument {arg:?}\n{USAGE}");
            };
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                // Switches take no value.
                None if SWITCHES.contains(&name) => (name.to_string(), "true".to_string()),
                None => (
                    name.to_string(),
                    iter.next()
                        .with_context(|| format!("--{name} needs a value"))?
                        .clone(),
                ),
            };
            flags.insert(name, value);
        }
        Ok(Flags(flags))
    }

    /// Rejects flags the command does not take, so a typo is not silently ignored.
    fn only(&self, allowed: &[&str]) -> Result<()> {
        for name in self.0.keys() {
            if !allowed.contains(&name.as_str()) {
                bail!(
                    "unknown flag --{name} (this command takes: --{})",
                    allowed.join(", --")
                );
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn required(&self, name: &str) -> Result<&str> {
        self.get(name)
            .with_context(|| format!("--{name} is required"))
    }

    fn endpoint(&self) -> String {
        match self.get("endpoint") {
            Some(e) => e.to_string(),
            None => {
                let port = std::env::var("LOCAL_AWS_PORT").unwrap_or_else(|_| "4566".into());
                format!("http://127.0.0.1:{port}")
            }
        }
    }

    fn template_path(&self) -> PathBuf {
        self.get("template")
            .map(PathBuf::from)
            .unwrap_or_else(infra::default_template_path)
    }

    /// The template for the local stage, with `LOCAL_PARAMETERS` applied (every command reads
    /// the same values, so the tables `bootstrap` makes and the environment `env` prints agree).
    fn template(&self) -> Result<Template> {
        let stage = self.get("stage").unwrap_or(DEV_STAGE);
        let extra = match std::env::var(local::LOCAL_PARAMETERS_VAR) {
            Ok(spec) => local::parse_parameter_overrides(&spec)?,
            Err(std::env::VarError::NotPresent) => Vec::new(),
            Err(e) => bail!("{}: {e}", local::LOCAL_PARAMETERS_VAR),
        };
        local::load_local_template_with(self.template_path(), stage, &extra)
    }
}
