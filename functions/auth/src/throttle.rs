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

use shared::dynamo::Throttle;
use shared::keys::{self, Key};

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

/// The counters of one login attempt, in the order of `RULES`.
pub fn keys_for(email_bidx: &str, ip_hash: Option<&str>) -> (Vec<Key>, Vec<Rule>) {
    let mut k = vec![keys::login_throttle_account(email_bidx)];
    let mut r = vec![ACCOUNT];
    if let Some(ip) = ip_hash {
        k.push(keys::login_throttle_account_ip(email_bidx, ip));
        r.push(ACCOUNT_IP);
        k.push(keys::login_throttle_ip(ip));
        r.push(IP);
    }
    (k, r)
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
