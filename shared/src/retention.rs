//! Legal retention periods that are computed rather than configured.
//!
//! Billing records (invoices, payments, refunds) are accounting documents. Romanian Law 82/1991
//! on accounting, as amended in 2023, keeps them for 5 years counted from 1 July of the year
//! after the financial year the document belongs to; the financial year is the calendar year.
//! While that period runs they are exempt from erasure requests (GDPR Art 17(3)(b): processing
//! required by a legal obligation) and are kept restricted to storage.

use time::{Date, Month, OffsetDateTime, UtcOffset};

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
