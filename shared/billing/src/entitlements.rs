//! What a tenant may do given its billing state: the one place that decides, used by lead intake
//! (submission quota), the auth function (seats) and the billing view.
//!
//! - No subscription: the free tier.
//! - `trialing`, `active`, `past_due`: the plan (payment retries run while past due).
//! - `canceled`: the plan until the paid period ends, plus a grace period; then inactive.
//! - `unpaid` (the provider gave up retrying; periods may keep rolling without payment): the plan
//!   until the grace period after the subscription became unpaid; then inactive.
//!
//! Inactive: lead intake refuses submissions (`402 subscription_inactive`); seats fall back to
//! the free tier's.

use time::{Duration, OffsetDateTime};

use super::model::{BillingState, Entitlements, SubscriptionStatus};
use shared_core::config::{ConfigError, Env};
use shared_core::error::AppError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingPolicy {
    /// What a tenant without a subscription gets.
    pub free_tier: Entitlements,
    /// How long a canceled or unpaid subscription keeps working after it stops being paid.
    pub grace: Duration,
}

impl Default for BillingPolicy {
    fn default() -> Self {
        Self {
            free_tier: Entitlements {
                monthly_submissions: 100,
                seats: 3,
                forms: 1,
            },
            grace: Duration::days(7),
        }
    }
}

/// Where a tenant stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Free,
    Subscribed,
    /// Canceled or unpaid, still served until `until`.
    Grace {
        until: OffsetDateTime,
    },
    /// Canceled or unpaid past its grace period.
    Inactive {
        since: OffsetDateTime,
    },
}

pub fn quota_exceeded() -> AppError {
    AppError::PaymentRequired {
        code: "quota_exceeded",
        message: "This account has used its monthly submission quota.",
    }
}

pub fn subscription_inactive() -> AppError {
    AppError::PaymentRequired {
        code: "subscription_inactive",
        message: "This account's subscription is not active.",
    }
}

pub fn seat_limit_reached() -> AppError {
    AppError::PaymentRequired {
        code: "seat_limit_reached",
        message:
            "Every seat of this account's plan is taken; upgrade the plan to invite more members.",
    }
}

impl Standing {
    pub const fn as_str(&self) -> &'static str {
        match self {
            Standing::Free => "free",
            Standing::Subscribed => "subscribed",
            Standing::Grace { .. } => "grace",
            Standing::Inactive { .. } => "inactive",
        }
    }
}

impl BillingPolicy {
    /// The variables a function reading the policy adds to its allow-list (each has a default).
    pub const ENV: [&'static str; 3] = [
        "FREE_TIER_MONTHLY_SUBMISSIONS",
        "FREE_TIER_SEATS",
        "SUBSCRIPTION_GRACE_DAYS",
    ];

    /// The policy from `FREE_TIER_MONTHLY_SUBMISSIONS` (100), `FREE_TIER_SEATS` (3) and
    /// `SUBSCRIPTION_GRACE_DAYS` (7). A function that does not allow-list one gets its default.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        let grace_days: i64 = env.parse_or("SUBSCRIPTION_GRACE_DAYS", d.grace.whole_days())?;
        if grace_days < 0 {
            return Err(ConfigError::Invalid {
                name: "SUBSCRIPTION_GRACE_DAYS",
                reason: "must not be negative".into(),
            });
        }
        Ok(Self {
            free_tier: Entitlements {
                monthly_submissions: env.parse_or(
                    "FREE_TIER_MONTHLY_SUBMISSIONS",
                    d.free_tier.monthly_submissions,
                )?,
                seats: env.parse_or("FREE_TIER_SEATS", d.free_tier.seats)?,
                forms: d.free_tier.forms,
            },
            grace: Duration::days(grace_days),
        })
    }

    pub fn standing(&self, state: Option<&BillingState>, now: OffsetDateTime) -> Standing {
        let Some(state) = state else {
            return Standing::Free;
        };
        let paid_through = match state.status {
            None => return Standing::Free,
            Some(
                SubscriptionStatus::Trialing
                | SubscriptionStatus::Active
                | SubscriptionStatus::PastDue,
            ) => return Standing::Subscribed,
            // What was paid for ends with the period (an immediate cancellation included: the
            // period was paid).
            Some(SubscriptionStatus::Canceled) => state
                .current_period_end
                .or(state.ended_at)
                .or(state.status_since),
            // Periods of an unpaid subscription keep rolling without payment: count from when
            // it became unpaid.
            Some(SubscriptionStatus::Unpaid) => state.status_since.or(state.current_period_end),
        };
        let Some(paid_through) = paid_through else {
            return Standing::Inactive { since: now };
        };
        let until = paid_through + self.grace;
        if now <= until {
            Standing::Grace { until }
        } else {
            Standing::Inactive { since: until }
        }
    }

    /// The entitlements in force: the plan's while subscribed or in grace, else the free tier's.
    /// A plan missing from the plans table gives the free tier (and is logged where written).
    pub fn entitlements(&self, state: Option<&BillingState>, now: OffsetDateTime) -> Entitlements {
        match self.standing(state, now) {
            Standing::Subscribed | Standing::Grace { .. } => {
                state.and_then(|s| s.entitlements).unwrap_or(self.free_tier)
            }
            Standing::Free | Standing::Inactive { .. } => self.free_tier,
        }
    }

    /// The monthly submission quota, or `402 subscription_inactive`.
    pub fn submission_quota(
        &self,
        state: Option<&BillingState>,
        now: OffsetDateTime,
    ) -> Result<u32, AppError> {
        match self.standing(state, now) {
            Standing::Inactive { .. } => Err(subscription_inactive()),
            _ => Ok(self.entitlements(state, now).monthly_submissions),
        }
    }

    /// How many members the tenant may have. An inactive subscription falls back to the free
    /// tier's seats (existing members stay; only invitations are refused).
    pub fn seat_limit(&self, state: Option<&BillingState>, now: OffsetDateTime) -> u32 {
        self.entitlements(state, now).seats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);

    fn pro() -> Entitlements {
        Entitlements {
            monthly_submissions: 10_000,
            seats: 10,
            forms: 20,
        }
    }

    fn state(status: SubscriptionStatus) -> BillingState {
        BillingState {
            status: Some(status),
            entitlements: Some(pro()),
            plan: Some("pro".into()),
            current_period_end: Some(datetime!(2026-11-20 00:00 UTC)),
            status_since: Some(datetime!(2026-11-25 00:00 UTC)),
            ..BillingState::default()
        }
    }

    #[test]
    fn no_subscription_is_the_free_tier() {
        let p = BillingPolicy::default();
        assert_eq!(p.standing(None, NOW), Standing::Free);
        assert_eq!(p.submission_quota(None, NOW).unwrap(), 100);
        assert_eq!(p.seat_limit(None, NOW), 3);
        // A checkout completed without a subscription yet: still free.
        let linked = BillingState::default();
        assert_eq!(p.standing(Some(&linked), NOW), Standing::Free);
    }

    #[test]
    fn live_subscriptions_get_the_plan() {
        let p = BillingPolicy::default();
        for s in [
            SubscriptionStatus::Trialing,
            SubscriptionStatus::Active,
            SubscriptionStatus::PastDue,
        ] {
            assert_eq!(p.standing(Some(&state(s)), NOW), Standing::Subscribed);
            assert_eq!(p.submission_quota(Some(&state(s)), NOW).unwrap(), 10_000);
            assert_eq!(p.seat_limit(Some(&state(s)), NOW), 10);
        }
    }

    #[test]
    fn a_plan_missing_from_the_plans_table_gives_the_free_tier() {
        let p = BillingPolicy::default();
        let mut s = state(SubscriptionStatus::Active);
        s.entitlements = None;
        assert_eq!(p.submission_quota(Some(&s), NOW).unwrap(), 100);
    }

    #[test]
    fn canceled_works_until_period_end_plus_grace() {
        let p = BillingPolicy::default();
        let s = state(SubscriptionStatus::Canceled);
        // Period ended 2026-11-20: grace until 2026-11-27.
        let at_edge = datetime!(2026-11-27 00:00 UTC);
        assert_eq!(
            p.standing(Some(&s), at_edge),
            Standing::Grace { until: at_edge }
        );
        assert_eq!(p.submission_quota(Some(&s), at_edge).unwrap(), 10_000);
        let after = at_edge + Duration::seconds(1);
        let err = p.submission_quota(Some(&s), after).unwrap_err();
        assert_eq!((err.status(), err.code()), (402, "subscription_inactive"));
        assert_eq!(p.seat_limit(Some(&s), after), 3, "free tier seats");
    }

    #[test]
    fn unpaid_counts_the_grace_from_when_it_became_unpaid() {
        let p = BillingPolicy::default();
        let mut s = state(SubscriptionStatus::Unpaid);
        // The period keeps rolling; the status began on 2026-11-25.
        s.current_period_end = Some(datetime!(2026-12-20 00:00 UTC));
        assert!(p
            .submission_quota(Some(&s), datetime!(2026-12-02 00:00 UTC))
            .is_ok());
        assert!(p
            .submission_quota(Some(&s), datetime!(2026-12-02 00:00:01 UTC))
            .is_err());
    }

    #[test]
    fn read_from_the_environment_with_defaults() {
        let p = BillingPolicy::from_env(&Env::from_pairs([
            ("FREE_TIER_MONTHLY_SUBMISSIONS", "1000"),
            ("SUBSCRIPTION_GRACE_DAYS", "3"),
        ]))
        .unwrap();
        assert_eq!(p.free_tier.monthly_submissions, 1000);
        assert_eq!(p.free_tier.seats, 3);
        assert_eq!(p.grace, Duration::days(3));
        assert!(
            BillingPolicy::from_env(&Env::from_pairs([("SUBSCRIPTION_GRACE_DAYS", "-1")])).is_err()
        );
        assert!(BillingPolicy::from_env(&Env::from_pairs([("FREE_TIER_SEATS", "many")])).is_err());
    }

    #[test]
    fn the_grace_period_is_configurable() {
        let p = BillingPolicy {
            grace: Duration::days(0),
            ..BillingPolicy::default()
        };
        let s = state(SubscriptionStatus::Canceled);
        assert!(p.submission_quota(Some(&s), NOW).is_err());
    }
}
