//! The benchmarks' stored output, and `docs/cost.md` generated from it.
//!
//! Each benchmark stores its figures as one section of [`FIGURES_PATH`] (committed), then
//! regenerates the blocks of `docs/cost.md` between `<!-- bench:NAME -->` and
//! `<!-- /bench:NAME -->` from the whole file and `template.yaml` (memory sizes, tracing). A test
//! (`cost_md_is_generated_from_the_stored_figures`, part of `make test`, no benchmark run) checks
//! the document equals what the stored figures give, so no number in it is typed by hand.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// Where the figures are stored, from the workspace root.
pub const FIGURES_PATH: &str = "docs/bench/figures.json";
/// The documents generated from them (their `<!-- bench:... -->` blocks), from the workspace
/// root.
pub const DOC_PATHS: &[&str] = &["docs/cost.md", "README.md"];

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

pub fn load() -> anyhow::Result<Value> {
    let path = workspace_root().join(FIGURES_PATH);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| format!("{}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(e).with_context(|| format!("{}", path.display())),
    }
}

/// Stores `section` and regenerates the document from every stored section.
pub fn store(section: &str, value: Value) -> anyhow::Result<()> {
    let mut all = load()?;
    all[section] = value;
    let path = workspace_root().join(FIGURES_PATH);
    std::fs::create_dir_all(path.parent().context("figures directory")?)?;
    std::fs::write(&path, serde_json::to_string_pretty(&all)? + "\n")?;
    let template = Template::load()?;
    for doc in DOC_PATHS {
        let path = workspace_root().join(doc);
        let text = std::fs::read_to_string(&path)?;
        std::fs::write(&path, generate(&text, &all, &template)?)?;
    }
    eprintln!(
        "stored {section} in {FIGURES_PATH}; regenerated {}",
        DOC_PATHS.join(", ")
    );
    Ok(())
}

/// What the document takes from `template.yaml`, by function binary.
pub struct Template {
    pub memory_mb: BTreeMap<String, u32>,
    pub tracing: BTreeMap<String, String>,
    /// Whether Lambda writes its platform lines (start, runtime done, report) for a function.
    pub platform_lines: BTreeMap<String, bool>,
}

impl Template {
    pub fn load() -> anyhow::Result<Template> {
        let t = infra::template::Template::load(infra::template::default_template_path(), &[])?;
        Ok(Template {
            memory_mb: t
                .functions
                .iter()
                .map(|f| (f.binary.clone(), f.memory_mb))
                .collect(),
            tracing: t
                .functions
                .iter()
                .map(|f| (f.binary.clone(), f.tracing.clone()))
                .collect(),
            platform_lines: t
                .functions
                .iter()
                .map(|f| (f.binary.clone(), f.logging.platform_lines_kept()))
                .collect(),
        })
    }
}

/// `doc` with every generated block replaced by what `figures` give. A block opens with a line
/// `<!-- bench:NAME -->` and closes with a line `<!-- /bench:NAME -->`.
pub fn generate(doc: &str, figures: &Value, template: &Template) -> anyhow::Result<String> {
    let mut out = String::with_capacity(doc.len());
    let mut lines = doc.split_inclusive('\n');
    while let Some(line) = lines.next() {
        out.push_str(line);
        let Some(name) = line
            .trim_end()
            .strip_prefix("<!-- bench:")
            .and_then(|r| r.strip_suffix(" -->"))
        else {
            continue;
        };
        let close = format!("<!-- /bench:{name} -->");
        if !lines.any(|l| l.trim_end() == close) {
            bail!("block {name} has no line {close}");
        }
        out.push_str(&block(name, figures, template)?);
        out.push_str(&close);
        out.push('\n');
    }
    if !doc.ends_with('\n') && out.ends_with('\n') {
        out.pop();
    }
    Ok(out)
}

fn block(name: &str, f: &Value, t: &Template) -> anyhow::Result<String> {
    match name {
        "functions" => functions_table(f, t),
        "duration" => duration_note(f, t),
        "login" => login_table(f, t),
        "dynamodb" => dynamodb_table(f),
        "month" => month(f, t).map(|m| m.table),
        "month-totals" => month(f, t).map(|m| m.totals),
        "headline" => headline(f, t),
        other => bail!("unknown generated block {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the stored figures

fn num(v: &Value, field: &str) -> anyhow::Result<f64> {
    v.get(field)
        .and_then(Value::as_f64)
        .with_context(|| format!("stored figure {field} missing"))
}

fn section<'a>(f: &'a Value, name: &str) -> anyhow::Result<&'a Value> {
    f.get(name)
        .filter(|v| !v.is_null())
        .with_context(|| format!("no {name} figures stored: run the benchmark that stores them"))
}

fn function_rows(f: &Value) -> anyhow::Result<&Vec<Value>> {
    section(f, "functions")?["rows"]
        .as_array()
        .context("functions.rows")
}

fn function_row<'a>(f: &'a Value, name: &str) -> anyhow::Result<&'a Value> {
    function_rows(f)?
        .iter()
        .find(|r| r["name"] == name)
        .with_context(|| format!("no figures of {name}"))
}

/// Lambda's CPU share at `memory_mb` (a full vCPU at 1,769 MB), capped at one.
pub fn cpu_share(memory_mb: u32) -> f64 {
    (memory_mb as f64 / 1769.0).min(1.0)
}

/// A warm invocation's duration at `memory_mb`, from the one measured on a full core: the time
/// spent waiting stays, the CPU time stretches by the share Lambda gives.
pub fn duration_at(wall_ms: f64, cpu_ms: f64, memory_mb: u32) -> f64 {
    (wall_ms - cpu_ms).max(0.0) + cpu_ms / cpu_share(memory_mb)
}

/// The memory size a measured peak allows: 128 MB when the peak is within 64 MiB (half of it:
/// room for what the benchmarks do not reach), else the next Lambda step that keeps that half.
pub fn memory_for_peak(peak_mib: f64) -> u32 {
    let mut mb = 128;
    while peak_mib > mb as f64 / 2.0 {
        mb *= 2;
    }
    mb
}

// ---------------------------------------------------------------------------------------------
// Functions: size, cold start, first and warm invocations, memory

pub const HELLO: &str = "hello-world";

fn functions_table(f: &Value, t: &Template) -> anyhow::Result<String> {
    let s = section(f, "functions")?;
    let hello = function_row(f, HELLO)?;
    let hs = num(hello, "size_bytes")?;
    let mut out = format!(
        "Measured {} on this repository's {}-core {} build machine (release profile, host build; \
         {} cold starts and {} processes × {} invocations per binary, interleaved, medians; one \
         read of a function's secrets from the emulator's SSM: {:.1} ms):\n\n",
        s["measured_on"].as_str().unwrap_or("?"),
        s["cores"].as_u64().unwrap_or(0),
        s["host"].as_str().unwrap_or("?"),
        s["cold_rounds"].as_u64().unwrap_or(0),
        s["invoke_runs"].as_u64().unwrap_or(0),
        s["invocations_per_run"].as_u64().unwrap_or(0),
        num(s, "secrets_read_ms")?,
    );
    let secrets = num(s, "secrets_read_ms")?;
    out.push_str(
        "| function | memory (MB) | binary (MiB) | × hello | cold start (ms) | × hello | 1st invocation (ms) | warm (ms) | 1st / warm | 1st without the secrets read / warm | CPU per warm (ms) | peak RSS (MiB) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in function_rows(f)? {
        let name = r["name"].as_str().context("row name")?;
        let memory = if name == HELLO {
            "–".to_string()
        } else {
            t.memory_mb
                .get(name)
                .with_context(|| format!("{name} is not in template.yaml"))?
                .to_string()
        };
        let (cold, first, warm) = (num(r, "cold_ms")?, num(r, "first_ms")?, num(r, "warm_ms")?);
        let (cold_ratio, first_ratio) = (num(r, "cold_ratio")?, num(r, "first_over_warm")?);
        let size = num(r, "size_bytes")?;
        // The baseline has no secrets to read.
        let without = if name == HELLO {
            "–".to_string()
        } else {
            format!("{:.2}×", (first - secrets).max(0.0) / warm)
        };
        out.push_str(&format!(
            "| {name} | {memory} | {:.1} | {:.1}× | {cold:.1} | {cold_ratio:.2}× | {first:.1} | {warm:.1} | {first_ratio:.2}× | {without} | {:.2} | {:.1} |\n",
            size / 1048576.0,
            size / hs,
            num(r, "cpu_warm_ms")?,
            num(r, "peak_rss_kib")? / 1024.0,
        ));
    }
    out.push('\n');
    Ok(out)
}

fn duration_note(f: &Value, t: &Template) -> anyhow::Result<String> {
    let mut out = String::from(
        "| function | memory (MB) | peak RSS (MiB) | + heaviest job (MiB) | warm (ms) | CPU of it (ms) | at its size (ms) | at 128 MB (ms) | why more than 128 MB |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in function_rows(f)? {
        let name = r["name"].as_str().context("row name")?;
        if name == HELLO {
            continue;
        }
        let memory = *t.memory_mb.get(name).context("in template")?;
        let (warm, cpu) = (num(r, "warm_ms")?, num(r, "cpu_warm_ms")?);
        let job = job_heap_mib(f, name);
        let why = LARGER_FOR_CPU
            .iter()
            .find(|(n, _)| *n == name)
            .filter(|_| memory > 128)
            .map_or("", |(_, why)| why);
        out.push_str(&format!(
            "| {name} | {memory} | {:.1} | {} | {warm:.1} | {cpu:.2} | {:.1} | {:.1} | {why} |\n",
            num(r, "peak_rss_kib")? / 1024.0,
            if job > 0.0 {
                format!("{job:.1}")
            } else {
                "–".into()
            },
            duration_at(warm, cpu, memory),
            duration_at(warm, cpu, 128),
        ));
    }
    out.push('\n');
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Login

fn login_table(f: &Value, t: &Template) -> anyhow::Result<String> {
    let l = section(f, "login")?;
    let ops: Vec<String> = l["login_requests"]
        .as_array()
        .context("login.login_requests")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let (verify, login, rest) = (
        num(l, "verify_ms")?,
        num(l, "login_ms")?,
        num(l, "login_without_hash_ms")?,
    );
    let (read, write) = (num(l, "read_ms")?, num(l, "write_ms")?);
    let memory = *t.memory_mb.get("auth").context("auth in template")?;
    // At auth's memory size the hash gets its CPU share; what the login adds to it stays.
    let stretched = verify / cpu_share(memory);
    Ok(format!(
        "| figure | measured |\n|---|---|\n\
         | one argon2id verify (m = 19 MiB, t = 2, p = 1), full core | {verify:.1} ms |\n\
         | login handler (emulator included) | {login:.1} ms |\n\
         | **login / verify** | **{:.2}×** (goal ≤ 1.2×) |\n\
         | the login's one read and one write, each sent on its own to the emulator | {read:.1} ms + {write:.1} ms |\n\
         | (verify + that read + that write) / verify: what one read, one hash and one write take here | {:.2}× |\n\
         | the same login with the cheapest argon2 parameters (nothing left to overlap the counts and the user read) | {rest:.1} ms |\n\
         | estimate at auth's {memory} MB: the hash at {:.0}% of a vCPU ({stretched:.0} ms), what the login adds to it unchanged | {:.2}× |\n\
         | DynamoDB requests of a login | {} ({}) |\n\n",
        login / verify,
        (verify + read + write) / verify,
        cpu_share(memory) * 100.0,
        (stretched + login - verify) / stretched,
        ops.len(),
        ops.join(", "),
    ))
}

// ---------------------------------------------------------------------------------------------
// DynamoDB per submission

fn dynamodb_rows(f: &Value) -> anyhow::Result<&Vec<Value>> {
    section(f, "dynamodb")?["rows"]
        .as_array()
        .context("dynamodb.rows")
}

fn dynamodb_row<'a>(f: &'a Value, scenario: &str) -> anyhow::Result<&'a Value> {
    dynamodb_rows(f)?
        .iter()
        .find(|r| r["scenario"] == scenario)
        .with_context(|| format!("no DynamoDB figures of {scenario:?}"))
}

const NEW_LEAD: &str = "new lead (warm container)";
/// The scenario the embed snippet's submissions are priced by (no preflight).
pub const SNIPPET: &str = "new lead, embed snippet (URL-encoded, key in body, solved challenge)";
/// The challenge the embed snippet fetches for its page's key before it posts.
pub const SNIPPET_CHALLENGE: &str = "embed snippet's challenge (GET, before its post)";

fn dynamodb_table(f: &Value) -> anyhow::Result<String> {
    let mut out = String::from(
        "| case | n | requests | write units (transaction) | GSI write units | read units |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in dynamodb_rows(f)? {
        out.push_str(&format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            r["scenario"].as_str().unwrap_or("?"),
            r["n"].as_u64().unwrap_or(0),
            num(r, "requests")?,
            num(r, "write_units")?,
            num(r, "gsi_write_units")?,
            num(r, "read_units")?,
        ));
    }
    out.push('\n');
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The month

/// List prices, us-east-1 (see the document's price table).
mod price {
    pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
    pub const API_REQUEST: f64 = 1.00 / 1e6;
    pub const WRITE_UNIT: f64 = 0.625 / 1e6;
    pub const READ_UNIT: f64 = 0.125 / 1e6;
    pub const STORAGE_GB_MONTH: f64 = 0.25;
    pub const PITR_GB_MONTH: f64 = 0.20;
    pub const LOG_GB_INGESTED: f64 = 0.50;
    pub const LOG_GB_MONTH: f64 = 0.03;
    pub const TRACE: f64 = 5.00 / 1e6;
}

/// Submissions in the month the document prices.
const SUBMISSIONS: f64 = 1_000_000.0;
/// Seconds in a 30-day month.
const MONTH_SECONDS: f64 = 30.0 * 86_400.0;
/// Share of invocations that start a container (an estimate: Lambda does not publish one).
const COLD_SHARE: f64 = 0.01;
/// Lambda's platform log lines of one invocation in JSON format (start, runtime done, report),
/// bytes; none under `SystemLogLevel: WARN`.
const PLATFORM_LOG_BYTES: f64 = 700.0;
/// One HTTP API access-log line in the template's format, bytes.
const ACCESS_LOG_BYTES: f64 = 330.0;
/// Read units of a preflight: one eventually consistent read of the form.
const PREFLIGHT_READ_UNITS: f64 = 0.5;

/// Traces Lambda records per second under `Tracing: Active` at an average `rate` of invocations
/// per second: its fixed sampling (the first request of each second, then 5%), with arrivals
/// spread as a Poisson process at that rate. `PassThrough` behind an HTTP API (which sends no
/// sampled trace header): none.
pub fn traced_per_second(rate: f64, tracing: &str) -> f64 {
    if tracing != "Active" {
        return 0.0;
    }
    let first = 1.0 - (-rate).exp();
    first + 0.05 * (rate - first)
}

struct Month {
    table: String,
    totals: String,
    headline: String,
}

struct Case {
    invocations: f64,
    api_requests: f64,
    total: f64,
}

fn month(f: &Value, t: &Template) -> anyhow::Result<Month> {
    let intake = function_row(f, "lead-intake")?;
    let memory = *t
        .memory_mb
        .get("lead-intake")
        .context("lead-intake in template")?;
    let tracing = t
        .tracing
        .get("lead-intake")
        .context("lead-intake in template")?
        .clone();
    let gb = memory as f64 / 1024.0;
    let warm = duration_at(num(intake, "warm_ms")?, num(intake, "cpu_warm_ms")?, memory);
    let init =
        num(intake, "cold_ms")? + (num(intake, "first_ms")? - num(intake, "warm_ms")?).max(0.0);
    let platform_lines = *t
        .platform_lines
        .get("lead-intake")
        .context("lead-intake in template")?;
    let platform_bytes = if platform_lines {
        PLATFORM_LOG_BYTES
    } else {
        0.0
    };
    let logs_per_invocation = platform_bytes + num(intake, "log_bytes_warm")?;
    let log_parts = if platform_lines {
        format!("{logs_per_invocation:.0} B function + platform")
    } else {
        format!("{logs_per_invocation:.0} B function, no platform lines (`SystemLogLevel: WARN`)")
    };

    // A script's JSON post, preflighted (a preflight invocation reads the form), and the embed
    // snippet's: its challenge at page load (the form and its pressure window read), then its
    // post (no preflight; its idempotency key is one more item in the transaction, and the
    // challenge's single use).
    let units = |scenario: &str| -> anyhow::Result<(f64, f64, f64)> {
        let d = dynamodb_row(f, scenario)?;
        Ok((
            num(d, "write_units")?,
            num(d, "gsi_write_units")?,
            num(d, "read_units")?,
        ))
    };
    let (json_units, snippet_units) = (units(NEW_LEAD)?, units(SNIPPET)?);
    let challenge_units = units(SNIPPET_CHALLENGE)?;
    let kept = num(dynamodb_row(f, NEW_LEAD)?, "kept_bytes")?;
    // The challenge's invocation: the post's warm duration scaled by the two handlers' times
    // measured side by side in the DynamoDB benchmark.
    let challenge_ratio = num(section(f, "dynamodb")?, "challenge_vs_post_time")?;
    let challenge_ms = warm * challenge_ratio;

    let case = |preflight: bool| -> (Vec<(String, String, f64)>, Case) {
        let (wru, gsi, rru) = if preflight { json_units } else { snippet_units };
        // Every submission is two invocations: the preflight (priced as the post: an upper
        // bound) or the challenge, then the post.
        let invocations = SUBMISSIONS * 2.0;
        let (before, before_ms, before_reads) = if preflight {
            ("preflight", warm, PREFLIGHT_READ_UNITS)
        } else {
            ("challenge", challenge_ms, challenge_units.2)
        };
        let mut lines = Vec::new();
        lines.push((
            "Lambda requests".to_string(),
            format!(
                "{} invocations ({before} + post) × $0.20 / 1M",
                thousands(invocations)
            ),
            invocations * price::LAMBDA_REQUEST,
        ));
        let gbs = SUBMISSIONS * ((warm + before_ms) / 1000.0) * gb
            + invocations * COLD_SHARE * (init / 1000.0) * gb;
        lines.push((
            "Lambda duration".to_string(),
            format!(
                "1M × ({warm:.1} ms post + {before_ms:.1} ms {before}) × {gb:.3} GB + {:.0}% cold × {init:.1} ms init = {gbs:.0} GB-s × $0.0000133334",
                COLD_SHARE * 100.0
            ),
            gbs * price::LAMBDA_GB_SECOND,
        ));
        lines.push((
            "API Gateway".to_string(),
            format!("{} requests × $1.00 / 1M", thousands(invocations)),
            invocations * price::API_REQUEST,
        ));
        lines.push((
            "DynamoDB writes".to_string(),
            format!("1M × ({wru:.2} + {gsi:.2} GSI) WRU × $0.625 / 1M"),
            SUBMISSIONS * (wru + gsi) * price::WRITE_UNIT,
        ));
        let reads = rru + before_reads;
        lines.push((
            "DynamoDB reads".to_string(),
            format!("1M × ({rru:.2} + {before_reads:.2} {before}) RRU × $0.125 / 1M"),
            SUBMISSIONS * reads * price::READ_UNIT,
        ));
        let gb_kept = SUBMISSIONS * kept / 1e9;
        lines.push((
            "DynamoDB storage".to_string(),
            format!(
                "{kept:.0} B kept per new lead (items + 100 B each + index entries) = {gb_kept:.2} GB added × $0.25 (grows by this each month)"
            ),
            gb_kept * price::STORAGE_GB_MONTH,
        ));
        lines.push((
            "PITR backups".to_string(),
            format!("{gb_kept:.2} GB × $0.20 (grows likewise)"),
            gb_kept * price::PITR_GB_MONTH,
        ));
        let log_gb = invocations * (logs_per_invocation + ACCESS_LOG_BYTES) / 1e9;
        lines.push((
            "CloudWatch Logs".to_string(),
            format!(
                "{} × ({log_parts} + {ACCESS_LOG_BYTES:.0} B access log) = {log_gb:.2} GB × ($0.50 + $0.03 stored)",
                thousands(invocations)
            ),
            log_gb * (price::LOG_GB_INGESTED + price::LOG_GB_MONTH),
        ));
        let rate = invocations / MONTH_SECONDS;
        let traces = traced_per_second(rate, &tracing) * MONTH_SECONDS;
        lines.push((
            "X-Ray".to_string(),
            if tracing == "Active" {
                format!(
                    "`Tracing: Active`, Lambda's fixed sampling (1/s + 5%) at {rate:.2}/s: {} traces × $5.00 / 1M",
                    thousands(traces)
                )
            } else {
                "`Tracing: PassThrough` behind the HTTP API (no sampled header comes): no trace".to_string()
            },
            traces * price::TRACE,
        ));
        let total = lines.iter().map(|l| l.2).sum();
        (
            lines,
            Case {
                invocations,
                api_requests: invocations,
                total,
            },
        )
    };

    let (pre_lines, pre) = case(true);
    let (plain_lines, plain) = case(false);
    let mut table = String::from(
        "| line | arithmetic, a script's JSON post, preflighted | $ / month | the embed snippet: its challenge, then its post (no preflight) | $ / month |\n\
         |---|---|---|---|---|\n",
    );
    for (a, b) in pre_lines.iter().zip(&plain_lines) {
        table.push_str(&format!(
            "| {} | {} | {:.2} | {} | {:.2} |\n",
            a.0, a.1, a.2, b.1, b.2
        ));
    }
    table.push_str(&format!(
        "| **variable total** | {} invocations, {} API requests | **{:.2}** | {} invocations, {} API requests | **{:.2}** |\n\n",
        thousands(pre.invocations),
        thousands(pre.api_requests),
        pre.total,
        thousands(plain.invocations),
        thousands(plain.api_requests),
        plain.total
    ));
    let totals = format!(
        "Per 1M accepted submissions, every one a new lead: **${:.2}** as a script's preflighted JSON \
         post, **${:.2}** as the embed snippet sends it (its challenge, then its post; no preflight) \
         (goals: ≤ $7 and ≤ $5).\n",
        pre.total, plain.total
    );
    let headline = format!(
        "- a million accepted submissions a month, every one a new lead: **${:.2}** in AWS as \
         preflighted JSON posts, **${:.2}** as the embed snippet sends them (a challenge and a post);\n",
        pre.total, plain.total
    );
    Ok(Month {
        table,
        totals,
        headline,
    })
}

/// The README's figures: the month, and the worst function against each goal.
fn headline(f: &Value, t: &Template) -> anyhow::Result<String> {
    let (mut cold, mut first, mut peak) = (0.0f64, 0.0f64, 0.0f64);
    for r in function_rows(f)? {
        if r["name"] == HELLO {
            continue;
        }
        cold = cold.max(num(r, "cold_ratio")?);
        first = first.max(num(r, "first_over_warm")?);
        let name = r["name"].as_str().unwrap_or_default();
        peak = peak.max(num(r, "peak_rss_kib")? / 1024.0 + job_heap_mib(f, name));
    }
    let login = section(f, "login")?;
    Ok(format!(
        "Measured by `make bench`, stored in `docs/bench/figures.json` ([docs/cost.md](docs/cost.md)):\n\n\
         {}\
         - every function's cold start within **{cold:.2}×** a hello-world `lambda_http` function's, \
         its first invocation within **{first:.2}×** a warm one, its peak memory (with its heaviest \
         job) **{peak:.0} MiB**;\n\
         - a login takes **{:.2}×** one argon2id verification.\n\n",
        month(f, t)?.headline,
        num(login, "login_ms")? / num(login, "verify_ms")?,
    ))
}

/// `1,000,000`.
fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Functions given more memory than their peak needs, for the CPU that comes with it (Lambda
/// allocates CPU in proportion to memory: 128 MB is 7% of a vCPU), and why.
pub const LARGER_FOR_CPU: &[(&str, &str)] = &[
    (
        "auth",
        "a login is one argon2id hash, tens of ms of a full core: at 128 MB a login would take about half a second",
    ),
    (
        "lead-transfers",
        "an export or an import of 50,000 leads runs inside one API request (30 s at most): serializing, parsing and signing take seconds of CPU, 14 times longer at 128 MB",
    ),
    (
        "dsar-worker",
        "an access export of 50,000 records is seconds of CPU (JSON, S3 parts); at 128 MB a job would spend its 15 minutes on the CPU share",
    ),
    (
        "retention-cleanup",
        "the daily run removes whatever came due across every table; its CPU time grows with that, and 128 MB would stretch it 14 times toward its 15-minute limit",
    ),
];

/// What a function's heaviest job adds to its measured process peak: the in-process benchmarks'
/// peak heaps (`export_memory`: an export of 50,000 leads and an import at its limits; `dsar`:
/// an access export of 50,000 records), when stored.
pub fn job_heap_mib(f: &Value, function: &str) -> f64 {
    let get = |section: &str, field: &str| {
        f.get(section)
            .and_then(|s| s.get(field))
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    };
    match function {
        "lead-transfers" => get("transfers_memory", "export_peak_heap_mib")
            .max(get("transfers_memory", "import_peak_heap_mib")),
        "dsar-worker" => get("dsar", "access_export_peak_heap_mib"),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_md_is_generated_from_the_stored_figures() {
        let figures = load().unwrap();
        let template = Template::load().unwrap();
        for path in DOC_PATHS {
            let doc = std::fs::read_to_string(workspace_root().join(path)).unwrap();
            let generated = generate(&doc, &figures, &template).unwrap();
            assert!(
                generated == doc,
                "{path} differs from what {FIGURES_PATH} and template.yaml give: run \
                 `make bench` (or the benchmark whose figures changed), or write what is \
                 generated outside the `<!-- bench:... -->` blocks"
            );
        }
        let cost = std::fs::read_to_string(workspace_root().join(DOC_PATHS[0])).unwrap();
        for block in ["month", "dynamodb", "functions", "login"] {
            assert!(
                cost.contains(&format!("<!-- bench:{block} -->")),
                "docs/cost.md generates its {block} figures"
            );
        }
    }

    #[test]
    fn the_template_sizes_every_function_by_its_measured_peak() {
        let figures = load().unwrap();
        let template = Template::load().unwrap();
        for r in function_rows(&figures).unwrap() {
            let name = r["name"].as_str().unwrap();
            if name == HELLO {
                continue;
            }
            let peak = num(r, "peak_rss_kib").unwrap() / 1024.0 + job_heap_mib(&figures, name);
            let memory = template.memory_mb[name];
            assert!(
                memory >= memory_for_peak(peak),
                "{name}: {memory} MB for a peak of {peak:.1} MiB"
            );
            if memory > memory_for_peak(peak) {
                assert!(
                    LARGER_FOR_CPU.iter().any(|(n, _)| *n == name),
                    "{name}: {memory} MB where a peak of {peak:.1} MiB fits {} MB",
                    memory_for_peak(peak)
                );
            }
        }
    }

    #[test]
    fn generated_blocks_are_replaced_and_the_rest_kept() {
        let t = Template {
            memory_mb: [("auth".to_string(), 512)].into(),
            tracing: BTreeMap::new(),
            platform_lines: BTreeMap::new(),
        };
        let f = json!({"login": {"verify_ms": 40.0, "login_ms": 44.0, "login_without_hash_ms": 9.0,
            "read_ms": 1.0, "write_ms": 2.0, "login_requests": ["GetItem"]}});
        let doc =
            "intro `<!-- bench:x -->`\n<!-- bench:login -->\nold\n<!-- /bench:login -->\noutro\n";
        let out = generate(doc, &f, &t).unwrap();
        assert!(
            out.starts_with("intro `<!-- bench:x -->`\n<!-- bench:login -->\n| figure"),
            "{out}"
        );
        assert!(out.contains("**1.10×**"), "{out}");
        assert!(!out.contains("old"), "{out}");
        assert!(out.ends_with("<!-- /bench:login -->\noutro\n"), "{out}");
        assert_eq!(generate(&out, &f, &t).unwrap(), out, "generating is stable");
        assert!(generate("<!-- bench:nope -->\n<!-- /bench:nope -->", &f, &t).is_err());
        assert!(generate("<!-- bench:login -->\n", &f, &t).is_err());
    }

    #[test]
    fn lambda_samples_a_second_first_then_five_percent() {
        assert_eq!(traced_per_second(0.4, "PassThrough"), 0.0);
        // Rare arrivals: nearly every one is a second's first.
        assert!((traced_per_second(0.01, "Active") / 0.01 - 1.0).abs() < 0.01);
        // Busy: about 1 a second plus 5% of the rest.
        let busy = traced_per_second(100.0, "Active");
        assert!((busy - (1.0 + 0.05 * 99.0)).abs() < 0.01, "{busy}");
    }

    #[test]
    fn memory_steps_keep_half_for_what_is_not_measured() {
        assert_eq!(memory_for_peak(20.0), 128);
        assert_eq!(memory_for_peak(64.0), 128);
        assert_eq!(memory_for_peak(64.5), 256);
        assert_eq!(memory_for_peak(200.0), 512);
        assert!((duration_at(10.0, 1.0, 1769) - 10.0).abs() < 1e-9);
        assert!((duration_at(10.0, 1.0, 128) - (9.0 + 1769.0 / 128.0)).abs() < 1e-9);
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(1_000_000.0), "1,000,000");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(2_500.4), "2,500");
    }
}
