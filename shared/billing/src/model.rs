//! Billing records as the platform keeps them, whatever the payment provider.

use serde::Serialize;
use time::{Date, OffsetDateTime};

use shared_core::domain::TenantId;

pub use shared_core::domain::ProviderId;

/// What a plan gives a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Entitlements {
    /// Form submissions per calendar month (UTC), suppressed ones included.
    pub monthly_submissions: u32,
    /// Team members.
    pub seats: u32,
    /// Forms (declared for the forms API; not enforced yet).
    pub forms: u32,
}

/// A plan, found by the provider's price id (the plans table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub provider: String,
    pub price_id: ProviderId,
    /// The plan's name, e.g. `starter`, `pro`.
    pub name: String,
    pub entitlements: Entitlements,
}

/// How often a recurring price bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingInterval {
    Month,
    Year,
}

impl BillingInterval {
    pub const ALL: [BillingInterval; 2] = [BillingInterval::Month, BillingInterval::Year];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Year => "year",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.as_str() == s)
    }
}

/// A plan's name as the API and the plans table spell it: 1 to 40 lowercase letters, digits,
/// `_` or `-` (it is part of a key).
pub fn valid_plan_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The provider price that sells a plan per interval (the plans table): what a checkout asks the
/// provider for. Adding a plan is writing its [`Plan`] (by price) and its [`PlanPrice`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanPrice {
    pub plan: String,
    pub provider: String,
    pub interval: BillingInterval,
    pub price_id: ProviderId,
}

/// A subscription's status, as the platform reads it. Providers with more statuses map onto
/// these (Stripe: `incomplete` -> past_due, `incomplete_expired` -> canceled, `paused` -> unpaid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Trialing,
    Active,
    PastDue,
    Unpaid,
    Canceled,
}

impl SubscriptionStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Trialing => "trialing",
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Unpaid => "unpaid",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Trialing,
            Self::Active,
            Self::PastDue,
            Self::Unpaid,
            Self::Canceled,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// Still running (a canceled subscription is over; an unpaid one still exists).
    pub const fn is_live(self) -> bool {
        !matches!(self, Self::Canceled)
    }
}

/// A tenant's billing state: its current subscription (one at a time), or only the customer
/// it is linked to (checkout completed, subscription not yet seen), or nothing (free tier).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BillingState {
    pub tenant_id: Option<TenantId>,
    pub provider: Option<String>,
    pub customer_id: Option<ProviderId>,
    pub subscription_id: Option<ProviderId>,
    pub price_id: Option<ProviderId>,
    /// The plan's name; `None` when the price is not in the plans table.
    pub plan: Option<String>,
    /// The plan's entitlements, copied when the state is written so that the readers (lead
    /// intake, seats) need one item, not two.
    pub entitlements: Option<Entitlements>,
    pub status: Option<SubscriptionStatus>,
    /// When the current status began (the `created` of the event that set it).
    pub status_since: Option<OffsetDateTime>,
    pub current_period_end: Option<OffsetDateTime>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<OffsetDateTime>,
    pub canceled_at: Option<OffsetDateTime>,
    pub ended_at: Option<OffsetDateTime>,
    pub trial_end: Option<OffsetDateTime>,
    /// Ordering: the `created` (unix seconds) of the newest event applied to the subscription.
    pub last_event_created: Option<i64>,
    pub last_event_id: Option<String>,
    pub updated_at: Option<OffsetDateTime>,
}

/// An invoice as a billing record. Amounts are in the currency's minor unit (cents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRecord {
    pub invoice_id: ProviderId,
    pub provider: String,
    pub number: Option<String>,
    /// `draft`, `open`, `paid`, `uncollectible` or `void`.
    pub status: String,
    pub currency: String,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub amount_remaining: i64,
    pub issued_at: OffsetDateTime,
    pub due_at: Option<OffsetDateTime>,
    pub paid_at: Option<OffsetDateTime>,
    pub period_start: Option<OffsetDateTime>,
    pub period_end: Option<OffsetDateTime>,
    pub hosted_invoice_url: Option<String>,
    pub subscription_id: Option<ProviderId>,
    pub customer_id: Option<ProviderId>,
    pub billing_reason: Option<String>,
    /// The outcome of the latest payment attempt: `succeeded`, `failed`, `action_required`.
    pub payment_status: Option<PaymentOutcome>,
    pub attempt_count: u32,
    pub next_payment_attempt: Option<OffsetDateTime>,
    /// Ordering: the `created` of the newest event applied to this invoice.
    pub last_event_created: i64,
    pub retain_until: Date,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentOutcome {
    Succeeded,
    Failed,
    ActionRequired,
}

impl PaymentOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::ActionRequired => "action_required",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Succeeded, Self::Failed, Self::ActionRequired]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// One payment attempt on an invoice: limited payment metadata (ids, amount, outcome), never
/// card or bank details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    pub invoice_id: ProviderId,
    /// The provider event that reported it (one record per event).
    pub event_id: ProviderId,
    pub provider: String,
    pub outcome: PaymentOutcome,
    pub amount: i64,
    pub currency: String,
    pub at: OffsetDateTime,
    pub attempt_count: u32,
    pub payment_intent_id: Option<ProviderId>,
    pub charge_id: Option<ProviderId>,
    pub retain_until: Date,
}

/// The refunds of one charge, recorded against its invoice (cumulative: providers report the
/// total refunded so far).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRecord {
    pub charge_id: ProviderId,
    pub invoice_id: Option<ProviderId>,
    pub provider: String,
    /// The charge's amount.
    pub amount: i64,
    /// Refunded so far.
    pub amount_refunded: i64,
    pub currency: String,
    /// Whole charge refunded.
    pub fully_refunded: bool,
    pub refunded_at: OffsetDateTime,
    pub payment_intent_id: Option<ProviderId>,
    pub last_event_created: i64,
    pub retain_until: Date,
}

/// A tenant's invoice with its payment attempts and refunds, for the billing view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceView {
    pub invoice: InvoiceRecord,
    pub payments: Vec<PaymentRecord>,
    pub refunds: Vec<RefundRecord>,
}

impl InvoiceView {
    pub fn amount_refunded(&self) -> i64 {
        self.refunds.iter().map(|r| r.amount_refunded).sum()
    }
}

/// The calendar month (UTC) a usage counter counts: `YYYY-MM`.
pub fn usage_month(at: OffsetDateTime) -> String {
    let d = at.to_offset(time::UtcOffset::UTC).date();
    format!("{:04}-{:02}", d.year(), u8::from(d.month()))
}

/// When a month's usage counter expires: 40 days after the month ends, so last month's figure
/// stays readable for a while and nothing accumulates.
pub fn usage_expires_at(at: OffsetDateTime) -> OffsetDateTime {
    let d = at.to_offset(time::UtcOffset::UTC).date();
    let (y, m) = match d.month() {
        time::Month::December => (d.year() + 1, time::Month::January),
        other => (d.year(), other.next()),
    };
    let next_month = Date::from_calendar_date(y, m, 1).unwrap_or(Date::MAX);
    next_month.midnight().assume_utc() + time::Duration::days(40)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn provider_ids_are_safe_in_keys() {
        assert!(ProviderId::parse("cus_NffrFeUfNV2Hib").is_some());
        assert!(ProviderId::parse("evt_1").is_some());
        for bad in ["", "a#b", "a b", "é", "a-b", "a/b", &"x".repeat(256)] {
            assert!(ProviderId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn plan_names_are_safe_in_keys_and_intervals_round_trip() {
        for ok in ["pro", "starter", "team-2026", "a_b", &"x".repeat(40)] {
            assert!(valid_plan_name(ok), "{ok}");
        }
        for bad in ["", "Pro", "p#1", "p ro", "é", &"x".repeat(41)] {
            assert!(!valid_plan_name(bad), "{bad:?}");
        }
        for i in BillingInterval::ALL {
            assert_eq!(BillingInterval::parse(i.as_str()), Some(i));
        }
        assert_eq!(BillingInterval::parse("week"), None);
    }

    #[test]
    fn statuses_round_trip() {
        for s in ["trialing", "active", "past_due", "unpaid", "canceled"] {
            assert_eq!(SubscriptionStatus::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(SubscriptionStatus::parse("incomplete"), None);
        assert!(!SubscriptionStatus::Canceled.is_live());
        assert!(SubscriptionStatus::Unpaid.is_live());
    }

    #[test]
    fn usage_months_are_utc_calendar_months() {
        assert_eq!(usage_month(datetime!(2026-11-30 23:59:59 UTC)), "2026-11");
        assert_eq!(usage_month(datetime!(2026-12-01 00:30 +02:00)), "2026-11");
        assert_eq!(usage_month(datetime!(2027-01-01 00:00 UTC)), "2027-01");
        assert_eq!(
            usage_expires_at(datetime!(2026-12-15 10:00 UTC)),
            datetime!(2027-02-10 00:00 UTC)
        );
        assert_eq!(
            usage_expires_at(datetime!(2026-11-01 00:00 UTC)),
            datetime!(2027-01-10 00:00 UTC)
        );
    }
}
