//! Failed-login throttling that slows guessing without letting an attacker lock a real user out.
//!
//! Three counters, each with its own 15-minute window:
//! - per account *and* client IP: 5 free failures, then waits doubling from 1 s up to 15 min.
//!   An attacker at one address only slows themselves on that account.
//! - per client IP (any account): 20 free failures, then the same doubling: stops one address
//!   spraying many accounts.
//! - per account (any IP): 50 free failures, then at most 30 s between attempts. Distributed
//!   guessing slows to a crawl, but a real user is never made to wait more than 30 s: the
//!   account cannot be locked out.
//!
//! The counters hold under concurrency: every attempt is counted (one atomic `ADD`) before the
//! password is checked, and the rank the `ADD` returns, with the lock it saw, decides
//! ([`decide`]). Past the free allowance an attempt is checked only if it wins the conditional
//! claim of an ended lock, which locks again at once. N guesses sent at once are N counted
//! attempts of which at most the free allowance is checked; a right password gives its count
//! back.

use shared_accounts::dynamo::Throttle;
use shared_core::keys::{self, Key};

pub const WINDOW_SECS: i64 = 15 * 60;

#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub free: u32,
    pub max_delay_secs: i64,
}

pub const ACCOUNT_IP: Rule = Rule {
    free: 5,
    max_delay_secs: 15 * 60,
};
pub const IP: Rule = Rule {
    free: 20,
    max_delay_secs: 15 * 60,
};
pub const ACCOUNT: Rule = Rule {
    free: 50,
    max_delay_secs: 30,
};

/// Consecutive failed second factors (TOTP or recovery codes, after a right password) allowed
/// in [`MFA_WINDOW_SECS`]; the try that reaches the cap and fails locks login until a password
/// reset, and the user is emailed.
pub const MFA_FAILURE_CAP: u32 = 10;
pub const MFA_WINDOW_SECS: i64 = 24 * 3600;

/// One counter a login attempt is counted against.
#[derive(Debug, Clone)]
pub struct Counter {
    pub key: Key,
    pub rule: Rule,
    /// The per account and IP counter: a successful login from that address clears it.
    pub cleared_by_success: bool,
}

/// The counters of one login attempt, most specific first: an attempt refused by the
/// attacker's own address counters never reaches the account-wide one.
pub fn counters_for(email_bidx: &str, ip_hash: Option<&str>) -> Vec<Counter> {
    let mut out = Vec::with_capacity(3);
    if let Some(ip) = ip_hash {
        out.push(Counter {
            key: keys::login_throttle_account_ip(email_bidx, ip),
            rule: ACCOUNT_IP,
            cleared_by_success: true,
        });
        out.push(Counter {
            key: keys::login_throttle_ip(ip),
            rule: IP,
            cleared_by_success: false,
        });
    }
    out.push(Counter {
        key: keys::login_throttle_account(email_bidx),
        rule: ACCOUNT,
        cleared_by_success: false,
    });
    out
}

/// Failed step-ups (`POST /v1/auth/step-up`) of one user: as strict as the per account and IP
/// login counter (5 free, then waits doubling up to 15 minutes), whatever the address. A counter
/// of its own, so a thief guessing through a stolen access token cannot lock the real user out
/// of logging in, and guesses no faster here than at the login.
pub fn step_up_counters(
    tenant: &shared_core::domain::TenantId,
    user: &shared_core::domain::UserId,
) -> Vec<Counter> {
    vec![Counter {
        key: keys::step_up_throttle(tenant, user),
        rule: ACCOUNT_IP,
        cleared_by_success: false,
    }]
}

/// What to do with a counted attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Within the free allowance: check it.
    Check,
    /// A lock is on: refuse, the caller waits this many seconds.
    Refuse { wait: i64 },
    /// Past the allowance and the last lock has ended: check it only if the conditional claim
    /// of that lock (which locks again until `until`) wins.
    Claim { until: i64 },
    /// Past the allowance with no lock recorded yet (the attempts of a burst raced ahead of the
    /// failures that lock): refuse, and lock until `until` unless a lock appeared meanwhile.
    LockAndRefuse { until: i64 },
}

/// The decision for the attempt of rank `rank` (1-based, counted in the window) given the lock
/// the count saw.
pub fn decide(rule: Rule, rank: u32, locked_until: Option<i64>, now: i64) -> Decision {
    match locked_until {
        Some(l) if l > now => Decision::Refuse { wait: l - now },
        _ if rank <= rule.free => Decision::Check,
        Some(_) => Decision::Claim {
            until: now + delay_after(rule, rank).max(1),
        },
        None => Decision::LockAndRefuse {
            until: now + delay_after(rule, rank).max(1),
        },
    }
}

/// Whether every counter will admit the attempt (check it), as the counters read before it is
/// counted say: no lock on, and its rank within the free allowance. A forecast only (attempts
/// racing with this one move the counts); the counts taken decide. A login that expects to be
/// admitted runs the hash while it is counted.
pub fn admits(counters: &[Counter], read: &[Throttle], now: i64) -> bool {
    counters.iter().zip(read).all(|(c, t)| {
        // A window that has ended is reset before the count: it starts again at rank 1.
        let (rank, locked) = if t.window_ends != 0 && t.window_ends <= now {
            (1, None)
        } else {
            (
                t.failures.saturating_add(1),
                (t.locked_until != 0).then_some(t.locked_until),
            )
        };
        decide(c.rule, rank, locked, now) == Decision::Check
    })
}

/// Gives back one counted failure of the counter at `key`, in the same round trip as the
/// successful login that counted it; the condition keeps a count from going below zero.
pub fn give_back_write(key: &Key) -> shared_accounts::dynamo::Write {
    shared_accounts::dynamo::Write::Update {
        key: key.clone(),
        update: "ADD failures :minus".into(),
        condition: Some("failures > :zero".into()),
        values: vec![
            (":minus".into(), shared_core::dynamo::n(-1)),
            (":zero".into(), shared_core::dynamo::n(0)),
        ],
        names: vec![],
    }
}

/// Failures still counting at `now` (a window that has ended counts as none).
pub fn live_failures(t: &Throttle, now: i64) -> u32 {
    if t.window_ends > now {
        t.failures
    } else {
        0
    }
}

/// Seconds the caller must still wait, if any.
pub fn wait(t: &Throttle, now: i64) -> Option<i64> {
    (t.window_ends > now && t.locked_until > now).then(|| t.locked_until - now)
}

/// The wait after the `failures`-th failure: none before the `free`-th, so `free` failed
/// attempts go through back to back and the next attempt already waits (1 s, then doubling).
pub fn delay_after(rule: Rule, failures: u32) -> i64 {
    if failures < rule.free {
        return 0;
    }
    let exp = (failures - rule.free).min(20);
    (1i64 << exp).min(rule.max_delay_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_is_forecast_from_the_counters_read() {
        let counters = counters_for("bidx", Some("iphash"));
        let now = 1_000_000;
        let fresh = vec![Throttle::default(); 3];
        assert!(admits(&counters, &fresh, now));
        // The 5th failure of this address on the account: the next attempt waits.
        let mut busy = fresh.clone();
        busy[0] = Throttle {
            failures: 5,
            locked_until: now + 1,
            window_ends: now + 600,
        };
        assert!(!admits(&counters, &busy, now));
        // Past the free allowance with the lock ended: a claim decides, not a forecast.
        busy[0].locked_until = now - 1;
        assert!(!admits(&counters, &busy, now));
        // Four failures, no lock: the fifth attempt is still free.
        busy[0] = Throttle {
            failures: 4,
            locked_until: 0,
            window_ends: now + 600,
        };
        assert!(admits(&counters, &busy, now));
        // The window has ended: it starts again.
        busy[0] = Throttle {
            failures: 30,
            locked_until: now - 10,
            window_ends: now,
        };
        assert!(admits(&counters, &busy, now));
    }

    #[test]
    fn delays_grow_then_cap() {
        assert_eq!(delay_after(ACCOUNT_IP, 4), 0);
        // After the 5th failure the 6th attempt waits.
        assert_eq!(delay_after(ACCOUNT_IP, 5), 1);
        assert_eq!(delay_after(ACCOUNT_IP, 6), 2);
        assert_eq!(delay_after(ACCOUNT_IP, 14), 512);
        assert_eq!(delay_after(ACCOUNT_IP, 15), 900);
        assert_eq!(delay_after(ACCOUNT_IP, 1000), 900);
    }

    #[test]
    fn the_account_wide_rule_never_locks_out() {
        for f in 0..10_000 {
            assert!(delay_after(ACCOUNT, f) <= 30);
        }
    }

    #[test]
    fn a_burst_is_checked_only_up_to_the_free_allowance() {
        // 50 attempts counted at once, before any failure locked.
        let checked = (1..=50)
            .filter(|r| decide(ACCOUNT_IP, *r, None, 100) == Decision::Check)
            .count();
        assert_eq!(checked, ACCOUNT_IP.free as usize);
        assert_eq!(
            decide(ACCOUNT_IP, 6, None, 100),
            Decision::LockAndRefuse { until: 102 }
        );
        // A lock on refuses whatever the rank.
        assert_eq!(
            decide(ACCOUNT_IP, 1, Some(130), 100),
            Decision::Refuse { wait: 30 }
        );
        // After an ended lock, the next attempt must win the claim, which locks again.
        assert_eq!(
            decide(ACCOUNT_IP, 7, Some(100), 100),
            Decision::Claim { until: 104 }
        );
        assert_eq!(
            decide(ACCOUNT, 500, Some(90), 100),
            Decision::Claim { until: 130 }
        );
    }

    #[test]
    fn counters_are_most_specific_first() {
        let c = counters_for("bidx", Some("iph"));
        assert_eq!(
            c.iter().map(|c| c.rule.free).collect::<Vec<_>>(),
            [ACCOUNT_IP.free, IP.free, ACCOUNT.free]
        );
        assert!(c[0].cleared_by_success && !c[1].cleared_by_success);
        assert_eq!(counters_for("bidx", None).len(), 1);
    }

    #[test]
    fn ended_windows_count_nothing() {
        let t = Throttle {
            failures: 9,
            locked_until: 200,
            window_ends: 100,
        };
        assert_eq!(live_failures(&t, 150), 0);
        assert_eq!(wait(&t, 150), None);
        let t = Throttle {
            window_ends: 1000,
            ..t
        };
        assert_eq!(wait(&t, 150), Some(50));
    }
}
