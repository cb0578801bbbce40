//! JSON logs. Every line written while a request is handled carries its `request_id` (the
//! `request` span is in each line's `spans` list). Log ids, tenant ids and hashes only: domain
//! types that hold personal data redact themselves in `Debug`, and nothing logs bodies.

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

/// The span every handler runs a request in.
pub fn request_span(request_id: &str) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = %request_id,
        route = tracing::field::Empty,
        tenant_id = tracing::field::Empty
    )
}

/// Captures this thread's log lines (JSON, as in production) while the guard lives.
///
/// A second, inert dispatcher is kept alive with it: while a process has exactly one scoped
/// subscriber, `tracing` may cache a call site as disabled when another test's thread reaches it
/// first, and the captured logs would come back empty when tests run in parallel.
pub fn capture() -> (CapturedLogs, CaptureGuard) {
    let logs = CapturedLogs::default();
    let inert = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let guard = tracing::subscriber::set_default(subscriber(logs.clone()));
    (logs, CaptureGuard(guard, inert))
}

/// Keeps a [`capture`] active.
pub struct CaptureGuard(
    #[allow(dead_code)] tracing::subscriber::DefaultGuard,
    #[allow(dead_code)] tracing::Dispatch,
);

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
