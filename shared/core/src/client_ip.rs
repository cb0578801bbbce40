//! The client address a per-IP rate limit counts against.
//!
//! One IPv6 subscriber usually holds a whole /64 (often more), so keying limits by the full
//! IPv6 address would give an attacker 2^64 fresh counters. Every per-IP key of the platform
//! (lead intake, login throttles, data-subject request filing) is built from
//! [`rate_limit_subject`], through [`crate::blind_index::BlindIndexKey::ip`]:
//! - IPv4: the address itself;
//! - IPv4-mapped IPv6 (`::ffff:a.b.c.d`): that IPv4 address;
//! - other IPv6: its /64 prefix (`2001:db8:1:2::/64`);
//! - anything else (a malformed value from a proxy): a stable key of its own, never a panic.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The canonical subject of a per-IP limit for a client address as the gateway reports it.
pub fn rate_limit_subject(raw: &str) -> String {
    let trimmed = raw.trim();
    let ip = trimmed
        .parse::<IpAddr>()
        .ok()
        .or_else(|| trimmed.parse::<SocketAddr>().ok().map(|s| s.ip()));
    match ip {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
        // Bounded: the value is hashed, but a proxy could send anything.
        None => format!("unparsed:{}", trimmed.chars().take(64).collect::<String>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_is_unchanged() {
        for ip in [
            "198.51.100.7",
            "203.0.113.255",
            "0.0.0.0",
            "255.255.255.255",
        ] {
            assert_eq!(rate_limit_subject(ip), ip);
        }
        assert_eq!(rate_limit_subject(" 198.51.100.7 "), "198.51.100.7");
        assert_eq!(rate_limit_subject("198.51.100.7:443"), "198.51.100.7");
        assert_ne!(
            rate_limit_subject("198.51.100.7"),
            rate_limit_subject("198.51.100.8")
        );
    }

    #[test]
    fn ipv6_in_one_slash_64_is_one_subject() {
        let one = [
            "2001:db8:1:2::1",
            "2001:db8:1:2:ffff:ffff:ffff:ffff",
            "2001:0DB8:0001:0002:0a0b:0c0d:0e0f:1011",
            "[2001:db8:1:2::99]:8443",
        ];
        for ip in one {
            assert_eq!(rate_limit_subject(ip), "2001:db8:1:2::/64", "{ip}");
        }
        // The neighbouring /64s are other subjects.
        assert_eq!(rate_limit_subject("2001:db8:1:3::1"), "2001:db8:1:3::/64");
        assert_eq!(rate_limit_subject("2001:db8:1:1::1"), "2001:db8:1:1::/64");
        assert_eq!(rate_limit_subject("::1"), "::/64");
    }

    #[test]
    fn ipv4_mapped_ipv6_is_the_ipv4_subject() {
        assert_eq!(rate_limit_subject("::ffff:198.51.100.7"), "198.51.100.7");
        assert_eq!(rate_limit_subject("::ffff:c633:6407"), "198.51.100.7");
        assert_eq!(
            rate_limit_subject("[::ffff:198.51.100.7]:80"),
            "198.51.100.7"
        );
    }

    #[test]
    fn garbage_is_a_stable_subject_of_its_own() {
        for raw in [
            "",
            "not an ip",
            "999.1.1.1",
            "2001:db8::g",
            "1.2.3",
            "::ffff:1.2.3.4.5",
        ] {
            let a = rate_limit_subject(raw);
            assert_eq!(a, rate_limit_subject(raw), "stable: {raw:?}");
            assert!(a.starts_with("unparsed:"), "{raw:?} -> {a}");
        }
        let long = "x".repeat(10_000);
        assert!(rate_limit_subject(&long).len() <= 64 + "unparsed:".len());
        // Cannot collide with a real address's subject.
        assert_ne!(
            rate_limit_subject("unparsed:1.2.3.4"),
            rate_limit_subject("1.2.3.4")
        );
    }
}
