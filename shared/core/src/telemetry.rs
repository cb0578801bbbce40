//! JSON logs. Every line written while a request is handled carries its `request_id` (the
//! `request` span is in each line's `spans` list). Log ids, tenant ids and hashes only: domain
//! types that hold personal data redact themselves in `Debug`, and nothing logs bodies.
//!
//! Metrics ([`metric`]) are CloudWatch embedded metric format lines on the same stdout: CloudWatch
//! Logs turns each into a metric in the `LeadPlatform` namespace, with no SDK call and no extra
//! latency. Their dimensions are closed sets of names with id-shaped values (see [`metric`]), so
//! a metric can never carry personal data, and [`capture`] captures them with the logs, so the
//! tests that prove the logs hold no personal data cover metrics too.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber writing JSON lines to stdout (CloudWatch). Call once in `main`.
pub fn init() {
    let _ = tracing::subscriber::set_global_default(subscriber(std::io::stdout));
}

/// The subscriber, writing to any sink: tests capture the lines to prove what is (not) logged.
pub fn subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(true)
        .flatten_event(true)
        .with_target(false)
        .with_writer(writer)
        .finish()
}

/// The span every handler runs a request in. Besides the request id, a handler records the ids
/// it learns (`route`, `tenant_id`; lead intake also `form_id`, `lead_id`, `submission_id` and
/// its `outcome`): every line written in the request carries them, and a field never recorded
/// is not written.
pub fn request_span(request_id: &str) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = %request_id,
        route = tracing::field::Empty,
        tenant_id = tracing::field::Empty,
        form_id = tracing::field::Empty,
        lead_id = tracing::field::Empty,
        submission_id = tracing::field::Empty,
        outcome = tracing::field::Empty
    )
}

/// Captures this thread's log lines (JSON, as in production) while the guard lives.
///
/// A second, inert dispatcher is kept alive with it: while a process has exactly one scoped
/// subscriber, `tracing` may cache a call site as disabled when another test's thread reaches it
/// first, and the captured logs would come back empty when tests run in parallel.
///
/// Metric lines ([`metric`]) written on this thread while the guard lives are captured too.
pub fn capture() -> (CapturedLogs, CaptureGuard) {
    let logs = CapturedLogs::default();
    let inert = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let guard = tracing::subscriber::set_default(subscriber(logs.clone()));
    let previous = METRIC_SINK.with(|sink| sink.replace(Some(logs.clone())));
    (logs, CaptureGuard(guard, inert, MetricSinkGuard(previous)))
}

/// Keeps a [`capture`] active.
pub struct CaptureGuard(
    #[allow(dead_code)] tracing::subscriber::DefaultGuard,
    #[allow(dead_code)] tracing::Dispatch,
    #[allow(dead_code)] MetricSinkGuard,
);

/// Restores the metric sink that was in force before a [`capture`].
struct MetricSinkGuard(Option<CapturedLogs>);

impl Drop for MetricSinkGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        METRIC_SINK.with(|sink| *sink.borrow_mut() = previous);
    }
}

/// A writer that keeps every line in memory, for tests that read the logs.
#[derive(Clone, Default)]
pub struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// ---------------------------------------------------------------- Metrics (CloudWatch EMF)

/// The CloudWatch namespace of every metric of the platform.
pub const METRIC_NAMESPACE: &str = "LeadPlatform";

/// Dimension names a metric may carry. A closed set, so that no caller can turn a metric into a
/// log of personal data by naming a dimension `email`; and few, because every distinct
/// combination of dimension values is a billed custom metric (no tenant ids here for that reason:
/// per-tenant figures belong in the logs, which carry the tenant id).
pub const METRIC_DIMENSIONS: &[&str] = &["Function", "Outcome", "Rule", "Kind", "Status", "Event"];

/// CloudWatch's units; anything else is sent as `None`.
const METRIC_UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

thread_local! {
    /// Where [`metric`] writes instead of stdout while a [`capture`] is active on this thread.
    static METRIC_SINK: std::cell::RefCell<Option<CapturedLogs>> = const { std::cell::RefCell::new(None) };
}

/// Emits one metric as a CloudWatch embedded-metric-format line on stdout, in the `LeadPlatform`
/// namespace, with the deployment stage (`STAGE`) as a dimension when it is set, so stages sharing
/// an account are told apart.
///
/// `name` is a metric name (`SubmissionsAccepted`: letters, digits, `_ . - /`); `unit` a CloudWatch
/// unit (`Count`, `Milliseconds`, ...; anything else becomes `None`); `dims` are dimensions whose
/// names come from [`METRIC_DIMENSIONS`] and whose values are short id-shaped tokens (an outcome,
/// a rule name: letters, digits, `_ . : -`, at most 64). A dimension outside these rules is left
/// out (and a warning without its value logged), so an email, a phone number or free text can
/// never reach CloudWatch metrics; a bad name or a non-finite value drops the metric.
pub fn metric(name: &str, value: f64, unit: &str, dims: &[(&str, &str)]) {
    static STAGE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let stage = STAGE.get_or_init(|| std::env::var("STAGE").ok().filter(|s| is_id_token(s)));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let Some(line) = emf_line(name, value, unit, dims, stage.as_deref(), now_ms) else {
        return;
    };
    let captured = METRIC_SINK.with(|sink| {
        sink.borrow().as_ref().map(|logs| {
            let mut logs = logs.clone();
            let _ = std::io::Write::write_all(&mut logs, format!("{line}\n").as_bytes());
        })
    });
    if captured.is_none() {
        // One locked write of the whole line, so lines of concurrent requests never interleave;
        // `println!` (not a raw stdout handle) so the test harness captures it like any output.
        println!("{line}");
    }
}

/// The EMF JSON line of one metric (see [`metric`]); `None` when the metric must not be sent.
pub fn emf_line(
    name: &str,
    value: f64,
    unit: &str,
    dims: &[(&str, &str)],
    stage: Option<&str>,
    timestamp_ms: u64,
) -> Option<String> {
    let name_ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'))
        && !METRIC_DIMENSIONS.contains(&name)
        && name != "Stage"
        && name != "_aws";
    if !name_ok || !value.is_finite() {
        tracing::warn!(
            metric = %name.escape_debug(),
            "metric dropped: invalid name or value"
        );
        return None;
    }
    let unit = if METRIC_UNITS.contains(&unit) {
        unit
    } else {
        "None"
    };

    let mut root = serde_json::Map::new();
    let mut dimension_names = Vec::new();
    if let Some(stage) = stage {
        dimension_names.push("Stage".to_string());
        root.insert("Stage".into(), stage.into());
    }
    for (key, val) in dims {
        if !METRIC_DIMENSIONS.contains(key) || !is_id_token(val) || root.contains_key(*key) {
            // The value is never logged: it is exactly what might be personal data.
            tracing::warn!(metric = %name, dimension = %key.escape_debug(), "metric dimension dropped");
            continue;
        }
        dimension_names.push((*key).to_string());
        root.insert((*key).to_string(), (*val).into());
    }
    root.insert(name.to_string(), value.into());
    root.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRIC_NAMESPACE,
                "Dimensions": [dimension_names],
                "Metrics": [{ "Name": name, "Unit": unit }],
            }],
        }),
    );
    Some(serde_json::Value::Object(root).to_string())
}

/// An outcome, a rule name, a stage: short, and made of characters no email, phone number or
/// sentence is made of only.
fn is_id_token(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

#[cfg(test)]
mod metric_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emf_line_has_the_exact_cloudwatch_shape() {
        let line = emf_line(
            "SubmissionsAccepted",
            1.0,
            "Count",
            &[("Function", "lead-intake"), ("Outcome", "accepted")],
            Some("prod"),
            1_764_460_800_000,
        )
        .unwrap();
        assert!(!line.contains('\n'), "one line: {line}");
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            parsed,
            json!({
                "_aws": {
                    "Timestamp": 1_764_460_800_000u64,
                    "CloudWatchMetrics": [{
                        "Namespace": "LeadPlatform",
                        "Dimensions": [["Stage", "Function", "Outcome"]],
                        "Metrics": [{"Name": "SubmissionsAccepted", "Unit": "Count"}]
                    }]
                },
                "Stage": "prod",
                "Function": "lead-intake",
                "Outcome": "accepted",
                "SubmissionsAccepted": 1.0
            })
        );
    }

    #[test]
    fn without_stage_or_dimensions_the_dimension_set_is_empty() {
        let line = emf_line("DsarRequestsOverdue", 3.0, "Count", &[], None, 5).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            parsed["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
        assert_eq!(parsed["DsarRequestsOverdue"], json!(3.0));
        assert_eq!(parsed.as_object().unwrap().len(), 2);
    }

    #[test]
    fn personal_data_never_becomes_a_dimension() {
        let line = emf_line(
            "SubmissionsRejected",
            1.0,
            "Count",
            &[
                ("Outcome", "ana@example.com"),
                ("Kind", "+40799111222"),
                ("Status", "Ana Popescu"),
                ("email", "bidx_abc"),
                ("Rule", "tech-data"),
            ],
            None,
            0,
        )
        .unwrap();
        for leaked in ["ana@", "40799111222", "Popescu", "email", "bidx_abc"] {
            assert!(!line.contains(leaked), "{leaked} in {line}");
        }
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            parsed["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Rule"]])
        );
        assert_eq!(parsed["Rule"], json!("tech-data"));
    }

    #[test]
    fn bad_names_values_and_units_are_not_sent_as_is() {
        assert!(emf_line("bad name", 1.0, "Count", &[], None, 0).is_none());
        assert!(emf_line("_aws", 1.0, "Count", &[], None, 0).is_none());
        assert!(emf_line("Outcome", 1.0, "Count", &[], None, 0).is_none());
        assert!(emf_line("X", f64::NAN, "Count", &[], None, 0).is_none());
        assert!(emf_line("X", f64::INFINITY, "Count", &[], None, 0).is_none());
        let line = emf_line("X", 2.5, "furlongs", &[], None, 0).unwrap();
        assert!(line.contains(r#""Unit":"None""#), "{line}");
    }

    #[test]
    fn capture_collects_metric_lines_with_the_logs() {
        let (logs, guard) = capture();
        metric("CaptureProbe", 1.0, "Count", &[("Outcome", "ok")]);
        drop(guard);
        metric("AfterCapture", 1.0, "Count", &[]);
        let text = logs.text();
        let lines: Vec<_> = text.lines().filter(|l| l.contains("\"_aws\"")).collect();
        assert_eq!(lines.len(), 1, "{text}");
        let parsed: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(parsed["CaptureProbe"], json!(1.0));
        assert_eq!(parsed["Outcome"], json!("ok"));
    }
}
