//! Legal retention periods that are computed rather than configured.
//!
//! Billing records (invoices, payments, refunds) are accounting documents. Romanian Law 82/1991
//! on accounting, as amended in 2023, keeps them for 5 years counted from 1 July of the year
//! after the financial year the document belongs to; the financial year is the calendar year.
//! While that period runs they are exempt from erasure requests (GDPR Art 17(3)(b): processing
//! required by a legal obligation) and are kept restricted to storage.

use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

use crate::keys::{self, Key};

/// The retention rules of the expiry index (`exp_bucket` = `EXP#<rule>#<day>#<shard>`), one per
/// kind of data removed at a date (docs/retention.md).
pub mod rule {
    pub const TENANT_ERASE: &str = "tenant-erase";
    pub const TECH_DATA: &str = "tech-data";
    pub const SECURITY_LOG: &str = "security-log";
    pub const DSAR_RECORD: &str = "dsar-record";
    pub const SESSION: &str = "session";
    pub const TOKEN: &str = "token";
    pub const EXPORT: &str = "export";
    pub const BILLING: &str = "billing";
    /// A sign-up whose address was not verified within the verification window: its user, its
    /// tenant and its login-index item, so the address is free again.
    pub const UNVERIFIED_SIGNUP: &str = "unverified-signup";
    /// The IP address and user agent of a user's last login (technical data, kept
    /// [`super::LOGIN_METADATA_DAYS`]): removed from the user item, which stays.
    pub const LOGIN_META: &str = "login-meta";
    /// A quarantined submission (spam defence, ops table): 30 days after arrival, swept by the
    /// run of the day after, whatever DynamoDB's TTL (which may lag up to 48 hours) did.
    pub const QUARANTINE: &str = "quarantine";
    /// In sweep order; a run's checkpoint names a rule by its place here, so new rules go last.
    pub const ALL: [&str; 11] = [
        TENANT_ERASE,
        TECH_DATA,
        SECURITY_LOG,
        DSAR_RECORD,
        SESSION,
        TOKEN,
        EXPORT,
        BILLING,
        UNVERIFIED_SIGNUP,
        LOGIN_META,
        QUARANTINE,
    ];
}

/// Days the IP address and user agent of a user's last login are kept (technical data, like a
/// submission's: "minimal, 90 days"). Each login starts the period again.
pub const LOGIN_METADATA_DAYS: i64 = 90;

/// The `exp_bucket` a user item gets at a login at `at`: swept once the login's technical data
/// is [`LOGIN_METADATA_DAYS`] old.
pub fn login_metadata_bucket(at: OffsetDateTime, user: &Key) -> String {
    expiry_bucket_at(
        rule::LOGIN_META,
        at + time::Duration::days(LOGIN_METADATA_DAYS),
        user,
    )
}

/// The UTC day of the first daily retention run at which data whose retention ends at `end` is
/// past it, whatever the hour of that run: `end`'s day when `end` is exactly midnight UTC, else
/// the day after. Retention therefore never removes anything early, and at most a day late.
pub fn sweep_day(end: OffsetDateTime) -> Date {
    let end = end.to_offset(UtcOffset::UTC);
    if end.time() == Time::MIDNIGHT {
        end.date()
    } else {
        end.date().next_day().unwrap_or(Date::MAX)
    }
}

/// The `exp_bucket` value of the item `key` under `rule`, swept by the run of `day`.
pub fn expiry_bucket_for(rule: &str, day: Date, key: &Key) -> String {
    keys::expiry_bucket(rule, day, keys::expiry_shard(&key.pk, &key.sk))
}

/// The `exp_bucket` of an item whose retention ends at `end` (see [`sweep_day`]).
pub fn expiry_bucket_at(rule: &str, end: OffsetDateTime, key: &Key) -> String {
    expiry_bucket_for(rule, sweep_day(end), key)
}

/// Parses `EXP#<rule>#<YYYY-MM-DD>#<shard>` back into its rule and day.
pub fn parse_expiry_bucket(bucket: &str) -> Option<(&str, Date)> {
    let mut parts = bucket.split('#');
    if parts.next()? != "EXP" {
        return None;
    }
    let rule = parts.next()?;
    let day = parse_day(parts.next()?)?;
    parts.next()?.parse::<u32>().ok()?;
    parts.next().is_none().then_some((rule, day))
}

/// `YYYY-MM-DD`.
pub fn parse_day(raw: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(raw, format).ok()
}

/// The technical-data index (`by_tech_expiry`, written by lead intake) names the day a
/// submission's technical data is last kept (received day + the period). It is removed by the
/// run of the following day, so it is kept at least the whole period.
pub fn tech_data_index_day(run_day: Date) -> Date {
    run_day.previous_day().unwrap_or(Date::MIN)
}

/// The days a run dated `run_day` sweeps when every day through `done_through` is done: the
/// days after it through `run_day`; without a checkpoint (the first run), from `fresh_start`.
pub fn days_to_sweep(done_through: Option<Date>, run_day: Date, fresh_start: Date) -> Vec<Date> {
    let first = match done_through {
        Some(d) => d.next_day().unwrap_or(Date::MAX),
        None => fresh_start,
    };
    let mut days = Vec::new();
    let mut d = first;
    while d <= run_day {
        days.push(d);
        match d.next_day() {
            Some(n) => d = n,
            None => break,
        }
    }
    days
}

/// Years a billing record is kept after 1 July of the year following its financial year.
pub const BILLING_RETENTION_YEARS: i32 = 5;

/// The largest UTC offset Romania uses (EEST, summer time).
const ROMANIA_MAX_OFFSET_HOURS: i8 = 3;

/// The day a billing record dated `document_date` may be erased: 1 July of the year after its
/// financial (calendar) year, plus [`BILLING_RETENTION_YEARS`].
///
/// A document of 2026 (any day, 1 January to 31 December) is kept until 1 July 2032.
pub fn billing_retain_until(document_date: Date) -> Date {
    let year = document_date.year() + 1 + BILLING_RETENTION_YEARS;
    Date::from_calendar_date(year, Month::July, 1).unwrap_or(Date::MAX)
}

/// The date a billing document issued at `at` carries for the financial year.
///
/// Providers timestamp documents in UTC while the books are kept in Romanian time, so a document
/// issued in the last hours of 31 December UTC may belong to the next financial year. When in
/// doubt this errs on the later year (the longer retention): the date is taken at UTC+3, the
/// largest offset Romania uses. Keeping a record a year longer is lawful; erasing it early is not.
pub fn financial_date(at: OffsetDateTime) -> Date {
    let offset = UtcOffset::from_hms(ROMANIA_MAX_OFFSET_HOURS, 0, 0).unwrap_or(UtcOffset::UTC);
    at.to_offset(offset).date()
}

/// [`billing_retain_until`] of a document issued at `at`.
pub fn billing_retain_until_at(at: OffsetDateTime) -> Date {
    billing_retain_until(financial_date(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};
    use time::Duration;

    #[test]
    fn sweep_day_is_the_first_day_fully_past_the_end() {
        assert_eq!(
            sweep_day(datetime!(2026-06-30 10:00 UTC)),
            date!(2026 - 07 - 01)
        );
        assert_eq!(
            sweep_day(datetime!(2026-06-30 23:59:59 UTC)),
            date!(2026 - 07 - 01)
        );
        // exactly midnight: already over at any hour of that day
        assert_eq!(
            sweep_day(datetime!(2026-07-01 00:00 UTC)),
            date!(2026 - 07 - 01)
        );
        // offsets are normalised to UTC
        assert_eq!(
            sweep_day(datetime!(2026-07-01 01:00 +02:00)),
            date!(2026 - 07 - 01)
        );
    }

    #[test]
    fn a_security_event_is_swept_180_days_later_never_earlier() {
        let at = datetime!(2026-01-01 10:00 UTC);
        // 2026-06-30 10:00 is the end: the run of 1 July is the first one past it
        let day = sweep_day(at + Duration::days(180));
        assert_eq!(day, date!(2026 - 07 - 01));
        // the run of that day, even at 00:00, is past the end
        assert!(day.midnight().assume_utc() >= at + Duration::days(180));
        assert!(day.previous_day().unwrap().midnight().assume_utc() < at + Duration::days(180));
    }

    #[test]
    fn buckets_round_trip() {
        let k = Key {
            pk: "TENANT#t#SECLOG".into(),
            sk: "2026-01-01T00:00:00Z#e1".into(),
        };
        let b = expiry_bucket_for(rule::SECURITY_LOG, date!(2026 - 06 - 30), &k);
        assert!(b.starts_with("EXP#security-log#2026-06-30#"));
        assert_eq!(
            parse_expiry_bucket(&b),
            Some((rule::SECURITY_LOG, date!(2026 - 06 - 30)))
        );
        assert_eq!(parse_expiry_bucket("EXP#x#2026-13-01#0"), None);
        assert_eq!(parse_expiry_bucket("EXP#x#2026-01-01#0#9"), None);
        assert_eq!(parse_expiry_bucket("TECHEXP#2026-01-01#0"), None);
    }

    #[test]
    fn days_to_sweep_follow_the_checkpoint() {
        let run = date!(2026 - 03 - 01);
        let never = date!(2000 - 01 - 01);
        assert_eq!(
            days_to_sweep(Some(date!(2026 - 02 - 27)), run, never),
            [date!(2026 - 02 - 28), date!(2026 - 03 - 01)]
        );
        assert!(days_to_sweep(Some(run), run, never).is_empty());
        // a checkpoint ahead of the run (a run dated in the future happened): nothing to do
        assert!(days_to_sweep(Some(date!(2026 - 04 - 01)), run, never).is_empty());
        let fresh = days_to_sweep(None, run, run - Duration::days(2));
        assert_eq!(
            fresh,
            [
                date!(2026 - 02 - 27),
                date!(2026 - 02 - 28),
                date!(2026 - 03 - 01)
            ]
        );
        assert_eq!(tech_data_index_day(run), date!(2026 - 02 - 28));
    }

    #[test]
    fn billing_is_swept_on_its_retain_until_day() {
        // a record of 2026 is kept until 1 July 2032 and erasable from that day on
        let until = billing_retain_until(date!(2026 - 12 - 31));
        assert_eq!(
            sweep_day(until.midnight().assume_utc()),
            date!(2032 - 07 - 01)
        );
    }

    #[test]
    fn five_years_from_the_first_of_july_after_the_financial_year() {
        assert_eq!(
            billing_retain_until(date!(2026 - 03 - 15)),
            date!(2032 - 07 - 01)
        );
    }

    #[test]
    fn the_whole_calendar_year_shares_one_date() {
        assert_eq!(
            billing_retain_until(date!(2026 - 01 - 01)),
            date!(2032 - 07 - 01)
        );
        assert_eq!(
            billing_retain_until(date!(2026 - 06 - 30)),
            date!(2032 - 07 - 01)
        );
        assert_eq!(
            billing_retain_until(date!(2026 - 07 - 01)),
            date!(2032 - 07 - 01)
        );
        assert_eq!(
            billing_retain_until(date!(2026 - 12 - 31)),
            date!(2032 - 07 - 01)
        );
    }

    #[test]
    fn a_new_year_moves_the_date_by_a_year() {
        assert_eq!(
            billing_retain_until(date!(2027 - 01 - 01)),
            date!(2033 - 07 - 01)
        );
        assert_eq!(
            billing_retain_until(date!(2024 - 02 - 29)),
            date!(2030 - 07 - 01)
        );
    }

    #[test]
    fn the_year_boundary_errs_on_the_longer_retention() {
        // 22:30 UTC on 31 December is already 1 January in Bucharest in winter (UTC+2).
        assert_eq!(
            financial_date(datetime!(2026-12-31 22:30 UTC)),
            date!(2027 - 01 - 01)
        );
        assert_eq!(
            billing_retain_until_at(datetime!(2026-12-31 22:30 UTC)),
            date!(2033 - 07 - 01)
        );
        // Earlier that evening it is still 2026 everywhere in Romania.
        assert_eq!(
            billing_retain_until_at(datetime!(2026-12-31 20:59:59 UTC)),
            date!(2032 - 07 - 01)
        );
        // And a document of 1 January UTC is of the new year.
        assert_eq!(
            billing_retain_until_at(datetime!(2027-01-01 00:00 UTC)),
            date!(2033 - 07 - 01)
        );
    }
}
