//! Outbound mail safeguards: the platform's mail cannot be used as a relay (docs/mail.md).
//!
//! - **Per recipient**, per kind of email: at most [`MailLimits::per_recipient_per_hour`] (3)
//!   sign-up, reset, invitation or privacy-request code emails to one address in any rolling
//!   hour. Each kind has that many send slots per address; a send claims a slot whose last send
//!   is over an hour old with one conditional write ([`crate::dynamo::MailGate`]), so N requests
//!   sent at once send at most 3 emails, whatever their interleaving.
//! - **Per client IP** (hash, IPv6 by /64) and **per tenant**, per route, in hour windows
//!   counted with a conditional `ADD`, on every route that mails an address the caller gives.
//! - **What the caller hears** when a limit is hit never depends on whether the address has an
//!   account: the answer is the route's usual one and the email is just not sent. Only the
//!   per-IP limits answer `429` (they count the caller's own requests, whatever the addresses).
//! - **The send-suppression list**: an address that bounced for good or complained is not mailed
//!   again (`SesMailer::platform`, filled by the `mail-events` function from SES's events).
//! - **Text a caller chose** reaches a third party only as a bounded, link-free name
//!   ([`name_for_mail`]) or, for a controller's legally required reason, bounded link-free text
//!   ([`text_for_mail`]).

use time::OffsetDateTime;

/// The kinds of email whose recipients are limited (each has its own slots per address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// What a sign-up sends: the verification link, or the notice to an address that already
    /// has an account.
    Signup,
    PasswordReset,
    /// An invitation link, or the notice to an address that already has an account.
    Invitation,
    /// A privacy request's confirmation code (filed by the subject or on their behalf), and the
    /// confirmation of a request a controller filed with an attested identity.
    PrivacyRequest,
    /// The notice of a change of the privacy policy or terms to an account owner
    /// (`shared_accounts::policy`): once per version pair, and never past this limit either.
    PolicyNotice,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Signup => "signup",
            MailKind::PasswordReset => "reset",
            MailKind::Invitation => "invitation",
            MailKind::PrivacyRequest => "privacy",
            MailKind::PolicyNotice => "policy",
        }
    }
}

/// The routes that mail an address their caller gives, for the per-IP and per-tenant windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailRoute {
    Signup,
    PasswordReset,
    Invitation,
    PrivacyOnBehalf,
}

impl MailRoute {
    pub fn as_str(self) -> &'static str {
        match self {
            MailRoute::Signup => "signup",
            MailRoute::PasswordReset => "reset",
            MailRoute::Invitation => "invitation",
            MailRoute::PrivacyOnBehalf => "on-behalf",
        }
    }
}

/// The limits, per hour. Defaults: 3 emails of a kind per address; 20 sign-ups or resets per
/// client IP; 60 invitations or on-behalf filings per client IP and 30 per tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailLimits {
    pub per_recipient_per_hour: u32,
    /// Sign-up and password reset (public routes).
    pub public_per_ip_per_hour: u32,
    /// Invitations and privacy requests filed on a subject's behalf (a tenant's team).
    pub team_per_ip_per_hour: u32,
    pub per_tenant_per_hour: u32,
}

impl Default for MailLimits {
    fn default() -> Self {
        Self {
            per_recipient_per_hour: 3,
            public_per_ip_per_hour: 20,
            team_per_ip_per_hour: 60,
            per_tenant_per_hour: 30,
        }
    }
}

impl MailLimits {
    /// The environment variables [`MailLimits::from_env`] reads (template parameters
    /// `MailLimit*`): for the allow-list of the functions that mail an address a caller gives.
    pub const ENV: [&'static str; 4] = [
        "MAIL_LIMIT_PER_ADDRESS_PER_HOUR",
        "MAIL_LIMIT_PUBLIC_PER_IP_PER_HOUR",
        "MAIL_LIMIT_TEAM_PER_IP_PER_HOUR",
        "MAIL_LIMIT_PER_TENANT_PER_HOUR",
    ];

    /// The limits, each variable defaulting to [`MailLimits::default`]'s value.
    pub fn from_env(
        env: &shared_core::config::Env,
    ) -> Result<Self, shared_core::config::ConfigError> {
        let d = Self::default();
        Ok(Self {
            per_recipient_per_hour: env
                .parse_or("MAIL_LIMIT_PER_ADDRESS_PER_HOUR", d.per_recipient_per_hour)?,
            public_per_ip_per_hour: env.parse_or(
                "MAIL_LIMIT_PUBLIC_PER_IP_PER_HOUR",
                d.public_per_ip_per_hour,
            )?,
            team_per_ip_per_hour: env
                .parse_or("MAIL_LIMIT_TEAM_PER_IP_PER_HOUR", d.team_per_ip_per_hour)?,
            per_tenant_per_hour: env
                .parse_or("MAIL_LIMIT_PER_TENANT_PER_HOUR", d.per_tenant_per_hour)?,
        })
    }

    pub fn per_ip(&self, route: MailRoute) -> u32 {
        match route {
            MailRoute::Signup | MailRoute::PasswordReset => self.public_per_ip_per_hour,
            MailRoute::Invitation | MailRoute::PrivacyOnBehalf => self.team_per_ip_per_hour,
        }
    }
}

/// One hour window: its number, when its counter may expire (TTL, an hour after it ends) and
/// the seconds until it ends (a `429`'s `Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourWindow {
    pub hour: i64,
    pub expires_at: i64,
    pub retry_after_secs: u64,
}

impl HourWindow {
    pub fn at(now: OffsetDateTime) -> Self {
        let t = now.unix_timestamp();
        let hour = t.div_euclid(3600);
        Self {
            hour,
            expires_at: (hour + 2) * 3600,
            retry_after_secs: ((hour + 1) * 3600 - t).max(1) as u64,
        }
    }
}

/// How long a recipient's send slot stays taken.
pub const SLOT_SECS: i64 = 3600;

/// The longest name an email to someone else carries.
pub const NAME_MAX_CHARS: usize = 60;

/// A name (a person's, a business's) as an email to someone else may carry it: one line of at
/// most [`NAME_MAX_CHARS`] characters, without anything a mail client could turn into a link.
pub fn name_for_mail(raw: &str) -> String {
    bounded(&link_free_words(raw).join(" "), NAME_MAX_CHARS)
}

/// Free text a controller must give a data subject (the reason of a refusal or an extension,
/// GDPR Art 12(4)), as an email carries it: at most `max` characters, paragraphs kept, without
/// anything a mail client could turn into a link.
pub fn text_for_mail(raw: &str, max: usize) -> String {
    let text = raw
        .lines()
        .map(|l| link_free_words(l).join(" "))
        .collect::<Vec<_>>()
        .join("\n");
    bounded(text.trim(), max)
}

/// What a word stands for in the mail: left out when it could be a link.
const LEFT_OUT: &str = "[link removed]";

fn link_free_words(line: &str) -> Vec<String> {
    // Hidden characters are dropped first: they cannot split a link into harmless-looking words.
    let visible: String = line
        .chars()
        .filter(|c| c.is_whitespace() || !invisible(*c))
        .collect();
    let mut out: Vec<String> = Vec::new();
    for w in visible.split_whitespace() {
        if could_be_a_link(w) {
            if out.last().map(String::as_str) != Some(LEFT_OUT) {
                out.push(LEFT_OUT.to_string());
            }
        } else {
            out.push(w.to_string());
        }
    }
    out
}

/// Format characters that hide text or reorder it (zero-width, bidirectional overrides).
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{00AD}')
}

/// A URL, an address, a `scheme:` or anything shaped like a domain name (`evil.example`,
/// `evil。example`): mail clients link them on their own.
fn could_be_a_link(word: &str) -> bool {
    let w: String = word
        .chars()
        .map(|c| match c {
            '。' | '．' | '｡' | '․' => '.',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    if w.contains("://")
        || w.contains('@')
        || w.contains("www.")
        || w.contains('/') && w.contains('.')
    {
        return true;
    }
    for scheme in [
        "http:",
        "https:",
        "mailto:",
        "ftp:",
        "javascript:",
        "data:",
        "tel:",
    ] {
        if w.contains(scheme) {
            return true;
        }
    }
    // A dot between a label and two or more letters: `example.com`, `x.io/…`, `bit.ly`.
    let trimmed = w.trim_end_matches(|c: char| !c.is_alphanumeric());
    let mut labels = trimmed.split('.');
    let first = labels.next().unwrap_or_default();
    let rest: Vec<&str> = labels.collect();
    !first.is_empty()
        && !rest.is_empty()
        && rest.iter().all(|l| !l.is_empty())
        && rest
            .last()
            .is_some_and(|tld| tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic))
}

fn bounded(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out = out.trim_end().to_string();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_every_link_and_stay_short() {
        assert_eq!(name_for_mail("  Ana   Pop "), "Ana Pop");
        assert_eq!(name_for_mail("Acme Inc."), "Acme Inc.");
        assert_eq!(name_for_mail("J.R.R. Tolkien"), "J.R.R. Tolkien");
        for evil in [
            "Win a prize at https://evil.example/x now",
            "Win a prize at evil.example now",
            "Win a prize at WWW.EVIL.EXAMPLE now",
            "Win a prize at evil。example now",
            "Win a prize at hxxp://x.co/y now",
            "Win a prize at mailto:boss@evil.example now",
            "Win a prize at javascript:alert(1) now",
            "Win a prize at bit.ly now",
        ] {
            let n = name_for_mail(evil);
            assert_eq!(n, "Win a prize at [link removed] now", "{evil}");
        }
        let long = "x".repeat(500);
        let n = name_for_mail(&long);
        assert_eq!(n.chars().count(), NAME_MAX_CHARS);
        assert!(n.ends_with('…'));
        // Hidden characters cannot glue a link back together or hide one.
        assert_eq!(
            name_for_mail("evil\u{200B}.example Ana"),
            "[link removed] Ana"
        );
        assert_eq!(name_for_mail("Ana \u{202E}moc.live"), "Ana [link removed]");
        assert!(!name_for_mail("a\nb\rc\td").contains(['\n', '\r', '\t']));
    }

    #[test]
    fn reasons_keep_their_paragraphs_and_lose_their_links() {
        let r = text_for_mail(
            "We hold no data about you.\n\nSee https://evil.example or write to x@evil.example.",
            1000,
        );
        assert_eq!(
            r,
            "We hold no data about you.\n\nSee [link removed] or write to [link removed]"
        );
        assert_eq!(
            text_for_mail(&"word ".repeat(500), 100).chars().count(),
            100
        );
    }

    #[test]
    fn hour_windows_end_on_the_hour() {
        let now = OffsetDateTime::from_unix_timestamp(7200 + 59 * 60).unwrap();
        let w = HourWindow::at(now);
        assert_eq!(w.hour, 2);
        assert_eq!(w.retry_after_secs, 60);
        assert_eq!(w.expires_at, 4 * 3600);
    }

    #[test]
    fn limits_per_route() {
        let l = MailLimits::default();
        assert_eq!(l.per_ip(MailRoute::Signup), 20);
        assert_eq!(l.per_ip(MailRoute::Invitation), 60);
        assert_eq!(l.per_recipient_per_hour, 3);
    }
}
