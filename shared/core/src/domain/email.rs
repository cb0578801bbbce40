use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// A normalized email address, so one address in two spellings is one person for
/// deduplication, suppression, login and data-subject requests (its blind index is computed
/// from this form):
/// - trimmed and lowercased (`Ana@Example.COM` = `ana@example.com`);
/// - the local part in Unicode NFC (`u` + combining diaeresis = `ü`);
/// - the domain in its ASCII (IDNA / punycode) form, by UTS #46 processing
///   (`bücher.de` = `xn--bcher-kva.de`; full-width and other compatibility forms map too).
///
/// Changing any of this moves every blind index, letting an erased (suppressed) person back
/// in: the golden vectors in the tests below pin it.
///
/// Validation is deliberately practical (what a form should accept), not the full RFC 5322
/// grammar: one `@`, a local part of 1..=64 bytes of visible characters, a domain of
/// dot-separated labels (letters, digits, hyphens; no leading/trailing hyphen) with a TLD of
/// 2+ characters, not all digits.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("is required");
        }
        // Bound the work before normalizing: NFC and IDNA are linear, but the input is a
        // stranger's.
        if trimmed.len() > 4 * Self::MAX_LEN {
            return Err("is longer than 254 characters");
        }
        let (raw_local, raw_domain) = trimmed.rsplit_once('@').ok_or("is not an email address")?;
        let local: String = raw_local.to_lowercase().nfc().collect();
        // UTS #46: maps case and compatibility forms, NFC, then punycode for non-ASCII labels.
        let domain = idna::domain_to_ascii(raw_domain).map_err(|_| "is not an email address")?;
        let s = format!("{local}@{domain}");
        if s.len() > Self::MAX_LEN {
            return Err("is longer than 254 characters");
        }
        let domain = domain.as_str();
        let local = local.as_str();
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err("is not an email address");
        }
        let local_ok = local.chars().all(|c| {
            c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) || !c.is_ascii()
        }) && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        if !local_ok {
            return Err("is not an email address");
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err("needs a domain such as example.com");
        }
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if !labels.iter().all(label_ok) {
            return Err("is not an email address");
        }
        let tld = labels[labels.len() - 1];
        if tld.len() < 2 || tld.chars().all(|c| c.is_ascii_digit()) {
            return Err("needs a domain such as example.com");
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Redacted: an email must never reach a log line through `{:?}`.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_space() {
        assert_eq!(
            Email::parse("  Ana.Pop@Example.COM ").unwrap().as_str(),
            "ana.pop@example.com"
        );
    }

    #[test]
    fn accepts_common_shapes() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.ro",
            "o'brien@example.ie",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_broken_addresses() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a@b..com",
            ".a@b.com",
            "a.@b.com",
            "a@-b.com",
            "a@b.c",
            "a b@c.com",
            "a@b.123",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    /// One address in two spellings is one person: real-world vectors for the NFC form of the
    /// local part and the IDNA form of the domain.
    #[test]
    fn unicode_spellings_of_one_address_are_one_address() {
        for (a, b, normalized) in [
            // precomposed ü vs u + U+0308 COMBINING DIAERESIS, in the local part
            (
                "j\u{fc}rgen@example.de",
                "ju\u{308}rgen@example.de",
                "j\u{fc}rgen@example.de",
            ),
            // an internationalized domain, in Unicode and in punycode
            (
                "ana@b\u{fc}cher.de",
                "ana@xn--bcher-kva.de",
                "ana@xn--bcher-kva.de",
            ),
            (
                "Ana@B\u{dc}CHER.DE",
                "ana@bu\u{308}cher.de",
                "ana@xn--bcher-kva.de",
            ),
            // Cyrillic domain (xn--80ak6aa92e.com is "apple" in Cyrillic letters: it is a
            // different domain from apple.com, and stays one)
            (
                "user@\u{430}\u{440}\u{440}\u{4cf}\u{435}.com",
                "user@xn--80ak6aa92e.com",
                "user@xn--80ak6aa92e.com",
            ),
            // Romanian: s-comma in the local part, in NFC already
            (
                "\u{219}tefan@exemplu.ro",
                "\u{219}tefan@EXEMPLU.ro",
                "\u{219}tefan@exemplu.ro",
            ),
            // full-width Latin letters in the domain map to ASCII (UTS #46)
            (
                "a@\u{ff45}\u{ff58}ample.com",
                "a@example.com",
                "a@example.com",
            ),
            // Greek, with a Greek TLD (IANA's test label "δοκιμή" under ".ελ")
            (
                "x@\u{3b4}\u{3bf}\u{3ba}\u{3b9}\u{3bc}\u{3ae}.\u{3b5}\u{3bb}",
                "x@XN--JXALPDLP.xn--qxam",
                "x@xn--jxalpdlp.xn--qxam",
            ),
        ] {
            let ea = Email::parse(a).unwrap_or_else(|e| panic!("{a:?}: {e}"));
            let eb = Email::parse(b).unwrap_or_else(|e| panic!("{b:?}: {e}"));
            assert_eq!(ea, eb, "{a:?} and {b:?}");
            assert_eq!(ea.as_str(), normalized, "{a:?}");
        }
        // Look-alikes that are different addresses stay different.
        assert_ne!(
            Email::parse("user@\u{430}pple.com").unwrap(),
            Email::parse("user@apple.com").unwrap()
        );
        for bad in ["a@xn--.com", "a@\u{200b}.com", "a@exa mple.com"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn debug_does_not_leak() {
        let e = Email::parse("secret@example.com").unwrap();
        assert!(!format!("{e:?}").contains("secret"));
    }
}
