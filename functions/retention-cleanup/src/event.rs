//! The invocation: an EventBridge scheduled event. Its `time` is the run's "now"; `detail` may
//! ask for a dry run (`{"dry_run": true}`).

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// How far an event's `time` may be from the clock unless the configuration allows any.
pub const MAX_EVENT_SKEW: Duration = Duration::hours(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    pub at: OffsetDateTime,
    pub dry_run: bool,
}

/// Why an invocation is refused (answered, never retried: the same event would be refused
/// again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: &'static str,
}

pub fn parse(
    event: &Value,
    clock_now: OffsetDateTime,
    allow_skew: bool,
) -> Result<RunRequest, Refusal> {
    let invalid = |message| Refusal {
        code: "invalid_event",
        message,
    };
    let raw = event
        .get("time")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("the event has no `time` (an RFC 3339 string)"))?;
    let at = OffsetDateTime::parse(raw, &Rfc3339)
        .map_err(|_| invalid("the event's `time` is not an RFC 3339 time"))?
        .to_offset(time::UtcOffset::UTC);
    if !allow_skew && (at - clock_now).abs() > MAX_EVENT_SKEW {
        return Err(Refusal {
            code: "event_time_skew",
            message: "the event's `time` is more than an hour from the clock",
        });
    }
    let dry_run = match event.get("detail").and_then(|d| d.get("dry_run")) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("`detail.dry_run` must be true or false")),
    };
    Ok(RunRequest { at, dry_run })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-30 03:00 UTC);

    #[test]
    fn a_scheduled_event_is_a_run_at_its_time() {
        let e =
            json!({"detail-type": "Scheduled Event", "time": "2026-11-30T03:00:12Z", "detail": {}});
        assert_eq!(
            parse(&e, NOW, false),
            Ok(RunRequest {
                at: datetime!(2026-11-30 03:00:12 UTC),
                dry_run: false
            })
        );
        let e = json!({"time": "2026-11-30T03:00:00Z", "detail": {"dry_run": true}});
        assert!(parse(&e, NOW, false).unwrap().dry_run);
    }

    #[test]
    fn skew_is_refused_unless_allowed() {
        let e = json!({"time": "2026-12-30T03:00:00Z"});
        assert_eq!(parse(&e, NOW, false).unwrap_err().code, "event_time_skew");
        assert!(parse(&e, NOW, true).is_ok());
        let edge = json!({"time": "2026-11-30T04:00:00Z"});
        assert!(parse(&edge, NOW, false).is_ok());
        let past = json!({"time": "2026-11-30T01:59:59Z"});
        assert_eq!(
            parse(&past, NOW, false).unwrap_err().code,
            "event_time_skew"
        );
    }

    #[test]
    fn bad_events_are_refused() {
        for e in [
            json!({}),
            json!({"time": 12}),
            json!({"time": "yesterday"}),
            json!({"time": "2026-11-30T03:00:00Z", "detail": {"dry_run": "yes"}}),
            json!("not an object"),
        ] {
            assert_eq!(
                parse(&e, NOW, true).unwrap_err().code,
                "invalid_event",
                "{e}"
            );
        }
    }
}
