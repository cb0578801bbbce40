//! When a data-subject request must be answered: pure date arithmetic, no clock.
//!
//! - GDPR Art 12(3): one month from receipt, extendable by two further months (so three months
//!   from receipt). Calendar months, clamped to the month's end: received 31 Jan → due 28 Feb
//!   (29 Feb in a leap year); the extended date is counted from receipt (31 Jan + 3 months =
//!   30 Apr), not from the clamped due date, so clamping never shortens the subject's wait twice.
//! - CCPA/CPRA (Cal. Code Regs. tit. 11 § 7021): 45 calendar days from receipt, extendable once by
//!   45 more (90 days from receipt); receipt confirmed within 10 business days (weekends skipped;
//!   public holidays are not modelled, which only makes the acknowledgement due earlier).
//!
//! The clock starts when the *verified* request is received (the day of verification): before
//! that the platform cannot tell a request from noise, and verifying is the subject's one step.
//! A request a controller files with an attested identity starts on the day it is filed.

use time::{Date, Duration, Month, Weekday};

/// Which law's deadlines a request runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Jurisdiction {
    Gdpr,
    Ccpa,
}

impl Jurisdiction {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "gdpr" => Some(Self::Gdpr),
            "ccpa" => Some(Self::Ccpa),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Gdpr => "gdpr",
            Self::Ccpa => "ccpa",
        }
    }
}

/// A request's dates, all counted from the day the verified request was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// The answer is due by this day (inclusive).
    pub due: Date,
    /// The latest due date an extension may set.
    pub extended_due: Date,
    /// CCPA only: receipt must be confirmed by this day.
    pub acknowledge_by: Option<Date>,
}

/// The deadlines of a request received on `received`.
pub fn deadlines(j: Jurisdiction, received: Date) -> Deadlines {
    match j {
        Jurisdiction::Gdpr => Deadlines {
            due: add_months(received, 1),
            extended_due: add_months(received, 3),
            acknowledge_by: None,
        },
        Jurisdiction::Ccpa => Deadlines {
            due: received + Duration::days(45),
            extended_due: received + Duration::days(90),
            acknowledge_by: Some(add_business_days(received, 10)),
        },
    }
}

/// An extension must be decided (and the subject told) before the original period ends: GDPR
/// "within one month of receipt", CCPA "within the first 45-day period".
pub fn may_extend(original_due: Date, today: Date) -> bool {
    today <= original_due
}

/// `d` plus `months` calendar months; a day past the target month's end becomes its last day.
pub fn add_months(d: Date, months: u32) -> Date {
    let zero_based = d.year() * 12 + (u8::from(d.month()) as i32 - 1) + months as i32;
    let year = zero_based.div_euclid(12);
    let month = Month::try_from((zero_based.rem_euclid(12) + 1) as u8).unwrap_or(Month::December);
    let last = days_in_month(year, month);
    Date::from_calendar_date(year, month, d.day().min(last)).unwrap_or(d)
}

fn days_in_month(year: i32, month: Month) -> u8 {
    month.length(year)
}

/// `d` plus `n` business days (Monday to Friday): the n-th weekday after `d`.
pub fn add_business_days(d: Date, n: u32) -> Date {
    let mut day = d;
    let mut left = n;
    while left > 0 {
        day += Duration::days(1);
        if !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) {
            left -= 1;
        }
    }
    day
}

/// Whole days from `today` to `due` (negative when overdue).
pub fn days_left(due: Date, today: Date) -> i64 {
    (due - today).whole_days()
}

/// `YYYY-MM-DD`, how dates are stored and shown.
pub fn ymd(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Parses [`ymd`].
pub fn parse_ymd(raw: &str) -> Option<Date> {
    let mut it = raw.splitn(3, '-');
    let y: i32 = it.next()?.parse().ok()?;
    let m: u8 = it.next()?.parse().ok()?;
    let d: u8 = it.next()?.parse().ok()?;
    Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn gdpr_month_ends_clamp() {
        assert_eq!(add_months(date!(2026 - 01 - 31), 1), date!(2026 - 02 - 28));
        assert_eq!(add_months(date!(2028 - 01 - 31), 1), date!(2028 - 02 - 29));
        assert_eq!(add_months(date!(2026 - 03 - 31), 1), date!(2026 - 04 - 30));
        assert_eq!(add_months(date!(2026 - 01 - 15), 1), date!(2026 - 02 - 15));
        assert_eq!(add_months(date!(2026 - 12 - 31), 1), date!(2027 - 01 - 31));
        assert_eq!(add_months(date!(2026 - 11 - 30), 3), date!(2027 - 02 - 28));
        assert_eq!(add_months(date!(2026 - 02 - 28), 1), date!(2026 - 03 - 28));
    }

    #[test]
    fn leap_years() {
        // 2100 is not a leap year (divisible by 100, not by 400); 2000 and 2028 are.
        assert_eq!(add_months(date!(2100 - 01 - 29), 1), date!(2100 - 02 - 28));
        assert_eq!(add_months(date!(2000 - 01 - 30), 1), date!(2000 - 02 - 29));
        assert_eq!(add_months(date!(2027 - 11 - 29), 3), date!(2028 - 02 - 29));
        assert_eq!(add_months(date!(2028 - 02 - 29), 12), date!(2029 - 02 - 28));
    }

    #[test]
    fn gdpr_deadlines_count_from_receipt() {
        let d = deadlines(Jurisdiction::Gdpr, date!(2026 - 01 - 31));
        assert_eq!(d.due, date!(2026 - 02 - 28));
        assert_eq!(d.extended_due, date!(2026 - 04 - 30));
        assert_eq!(d.acknowledge_by, None);
    }

    #[test]
    fn ccpa_days_and_business_days() {
        // Friday 2026-11-27: ten business days later is Friday 2026-12-11.
        let d = deadlines(Jurisdiction::Ccpa, date!(2026 - 11 - 27));
        assert_eq!(d.due, date!(2027 - 01 - 11));
        assert_eq!(d.extended_due, date!(2027 - 02 - 25));
        assert_eq!(d.acknowledge_by, Some(date!(2026 - 12 - 11)));
    }

    #[test]
    fn business_days_skip_weekends() {
        // Saturday + 1 business day = Monday; Friday + 1 = Monday; Monday + 5 = next Monday.
        assert_eq!(
            add_business_days(date!(2026 - 11 - 28), 1),
            date!(2026 - 11 - 30)
        );
        assert_eq!(
            add_business_days(date!(2026 - 11 - 27), 1),
            date!(2026 - 11 - 30)
        );
        assert_eq!(
            add_business_days(date!(2026 - 11 - 30), 5),
            date!(2026 - 12 - 07)
        );
        assert_eq!(
            add_business_days(date!(2026 - 11 - 29), 0),
            date!(2026 - 11 - 29)
        );
        // Over a year end.
        assert_eq!(
            add_business_days(date!(2026 - 12 - 24), 10),
            date!(2027 - 01 - 07)
        );
    }

    #[test]
    fn extensions_only_within_the_first_period() {
        let due = date!(2026 - 02 - 28);
        assert!(may_extend(due, date!(2026 - 02 - 28)));
        assert!(!may_extend(due, date!(2026 - 03 - 01)));
        assert_eq!(days_left(due, date!(2026 - 03 - 02)), -2);
    }

    #[test]
    fn ymd_round_trips() {
        assert_eq!(ymd(date!(2026 - 03 - 05)), "2026-03-05");
        assert_eq!(parse_ymd("2026-03-05"), Some(date!(2026 - 03 - 05)));
        assert_eq!(parse_ymd("2026-02-30"), None);
        assert_eq!(parse_ymd("x"), None);
        assert_eq!(
            Jurisdiction::parse(Jurisdiction::Ccpa.as_str()),
            Some(Jurisdiction::Ccpa)
        );
    }
}
