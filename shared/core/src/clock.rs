//! Injected time and ids: retention, deadlines and rate-limit windows are tested at any date.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use time::OffsetDateTime;

pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that stands still until moved; for tests.
#[derive(Debug)]
pub struct FixedClock(Mutex<OffsetDateTime>);

impl FixedClock {
    pub fn new(at: OffsetDateTime) -> Self {
        Self(Mutex::new(at))
    }
    pub fn advance(&self, by: time::Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += by;
    }
    pub fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub trait IdGenerator: Send + Sync {
    /// A new unique id: lexicographically ordered by creation time (ULID), so keys built from it
    /// sort chronologically.
    fn new_id(&self, now: OffsetDateTime) -> String;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct UlidGenerator;

impl IdGenerator for UlidGenerator {
    fn new_id(&self, now: OffsetDateTime) -> String {
        ulid::Ulid::from_datetime(std::time::SystemTime::from(now))
            .to_string()
            .to_lowercase()
    }
}

/// Predictable ids for tests: `id-000001`, `id-000002`, ...
#[derive(Debug, Default)]
pub struct SequentialIds(AtomicU64);

impl IdGenerator for SequentialIds {
    fn new_id(&self, _now: OffsetDateTime) -> String {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        format!("id-{n:06}")
    }
}

impl<T: Clock + ?Sized> Clock for std::sync::Arc<T> {
    fn now(&self) -> OffsetDateTime {
        (**self).now()
    }
}

impl<T: IdGenerator + ?Sized> IdGenerator for std::sync::Arc<T> {
    fn new_id(&self, now: OffsetDateTime) -> String {
        (**self).new_id(now)
    }
}

/// RFC 3339 in UTC with second precision: how every timestamp is stored.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ulids_sort_by_time() {
        let g = UlidGenerator;
        let a = g.new_id(datetime!(2026-01-01 00:00 UTC));
        let b = g.new_id(datetime!(2026-01-01 00:00:01 UTC));
        assert!(a < b);
        assert_eq!(a.len(), 26);
    }

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let c = FixedClock::new(datetime!(2026-11-29 12:00 UTC));
        assert_eq!(c.now(), datetime!(2026-11-29 12:00 UTC));
        c.advance(time::Duration::days(1));
        assert_eq!(c.now(), datetime!(2026-11-30 12:00 UTC));
    }

    #[test]
    fn timestamps_are_utc_seconds() {
        assert_eq!(
            rfc3339(datetime!(2026-11-29 12:00:00.123 +02:00)),
            "2026-11-29T10:00:00Z"
        );
    }
}
