//! Spam defence without a third party or a cookie (issue 19): each layer a form turns on adds
//! to a score, and a submission at or above the form's threshold is quarantined (kept apart for
//! the tenant to review, `crate::quarantine`) instead of becoming a lead. Pure: the intake
//! reads what it needs and hands it here; the single use of a challenge is the one part decided
//! by the store (the guard item in intake's transaction), which adds [`Reason::PowReplayed`].
//!
//! Layers: proof of work ([`pow`], ALTCHA-compatible), the time trap (the challenge's signed
//! issue time against the form's minimum seconds; a challenge older than a day has expired),
//! and content [`rules`] (blocked domains and words, links, disposable-mail domains).

pub mod pow;
pub mod rules;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use shared_core::domain::{FormId, SpamSettings};

/// A form under attack gets harder proofs of work: its quarantined posts are counted in
/// windows of this many seconds (one counter item per window, written in the quarantine's own
/// transaction), and a challenge looks at the current window and the one before, so the
/// difficulty rises within seconds of an attack and falls back 10 to 20 minutes after it stops.
pub const PRESSURE_WINDOW_SECS: i64 = 600;
/// Quarantined posts in those windows from which the difficulty is raised: an attack, not a
/// few bots a day.
pub const PRESSURE_THRESHOLD: u32 = 20;
/// The most the form's difficulty is multiplied by (also bounded by
/// [`SpamSettings::MAX_POW_MAX_NUMBER`]): 16× is still a few seconds in a phone's browser.
pub const PRESSURE_MAX_FACTOR: u32 = 16;

/// The start (unix seconds) of the pressure window holding `at`.
pub fn pressure_window(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(PRESSURE_WINDOW_SECS) * PRESSURE_WINDOW_SECS
}

/// The difficulty (`maxnumber`) of the form's next challenge when `recent` of its posts were
/// quarantined in the last windows: the form's own below [`PRESSURE_THRESHOLD`], then doubled
/// for every doubling of the count (×2 from 20, ×4 from 40, ...), at most
/// [`PRESSURE_MAX_FACTOR`]× and [`SpamSettings::MAX_POW_MAX_NUMBER`]. Never lower than the
/// form's own.
pub fn raised_max_number(form_max: u32, recent: u32) -> u32 {
    if recent < PRESSURE_THRESHOLD {
        return form_max;
    }
    let doublings = (recent / PRESSURE_THRESHOLD).ilog2() + 1;
    let factor = 1u64
        .checked_shl(doublings)
        .unwrap_or(u64::MAX)
        .min(u64::from(PRESSURE_MAX_FACTOR));
    let raised = (u64::from(form_max) * factor).min(u64::from(SpamSettings::MAX_POW_MAX_NUMBER));
    u32::try_from(raised).unwrap_or(u32::MAX).max(form_max)
}

/// What a layer found, as the quarantine lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No solved challenge (a plain HTML form without JavaScript, or a bot).
    PowMissing,
    /// A payload that is not a solution of a challenge we signed for this form.
    PowInvalid,
    /// A challenge issued more than a day ago.
    PowExpired,
    /// A challenge already used by another submission.
    PowReplayed,
    /// Submitted sooner after the challenge than a person fills the form.
    TooFast,
    DisposableEmail,
    BlockedEmailDomain,
    BlockedWord,
    TooManyLinks,
}

impl Reason {
    pub fn code(self) -> &'static str {
        match self {
            Reason::PowMissing => "pow_missing",
            Reason::PowInvalid => "pow_invalid",
            Reason::PowExpired => "pow_expired",
            Reason::PowReplayed => "pow_replayed",
            Reason::TooFast => "too_fast",
            Reason::DisposableEmail => "disposable_email",
            Reason::BlockedEmailDomain => "blocked_email_domain",
            Reason::BlockedWord => "blocked_word",
            Reason::TooManyLinks => "too_many_links",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        ALL.into_iter().find(|r| r.code() == code)
    }
}

pub const ALL: [Reason; 9] = [
    Reason::PowMissing,
    Reason::PowInvalid,
    Reason::PowExpired,
    Reason::PowReplayed,
    Reason::TooFast,
    Reason::DisposableEmail,
    Reason::BlockedEmailDomain,
    Reason::BlockedWord,
    Reason::TooManyLinks,
];

/// A finding the layer is sure of: the default threshold, so one quarantines by default.
pub const SURE: u32 = SpamSettings::DEFAULT_THRESHOLD;
/// A missing proof of work from a form that does not require one: a person without JavaScript
/// looks the same, so it only adds to other findings.
pub const WEAK: u32 = 1;

/// What the layers found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assessment {
    pub score: u32,
    pub reasons: Vec<Reason>,
    /// A valid solution's challenge: intake's transaction marks it used.
    pub challenge: Option<pow::Verified>,
}

impl Assessment {
    pub fn add(&mut self, reason: Reason, points: u32) {
        if !self.reasons.contains(&reason) {
            self.reasons.push(reason);
            self.score = self.score.saturating_add(points);
        }
    }

    pub fn quarantined(&self, settings: &SpamSettings) -> bool {
        self.score >= settings.threshold
    }
}

/// What the layers look at of a validated submission.
#[derive(Debug, Clone, Default)]
pub struct Submitted<'a> {
    /// The `_altcha` payload as posted.
    pub pow: Option<&'a str>,
    /// The post's idempotency key: a challenge issued for a key is good under that key only.
    pub idempotency_key: Option<&'a str>,
    /// The validated email address, if the form has one.
    pub email: Option<&'a str>,
    /// Every free-text answer (and the name), where links and words are looked for.
    pub texts: Vec<&'a str>,
}

/// Scores a submission to `form` under its settings at `now`.
pub fn assess(
    key: &pow::PowKey,
    settings: &SpamSettings,
    form: &FormId,
    now: OffsetDateTime,
    s: &Submitted<'_>,
) -> Assessment {
    let mut a = Assessment::default();
    match s.pow.map(|p| pow::verify(key, form, now, p)) {
        None if settings.pow_required => a.add(Reason::PowMissing, SURE),
        None if settings.pow => a.add(Reason::PowMissing, WEAK),
        None => {}
        Some(Err(pow::PowError::Invalid)) => a.add(Reason::PowInvalid, SURE),
        Some(Err(pow::PowError::Expired)) => a.add(Reason::PowExpired, SURE),
        // Solved, but for another key's post: a bot reusing one page's solution.
        Some(Ok(v)) if !v.admits(s.idempotency_key) => a.add(Reason::PowInvalid, SURE),
        Some(Ok(v)) => {
            let elapsed = (now - v.issued_at).whole_seconds();
            if settings.time_trap && elapsed < i64::from(settings.min_seconds) {
                a.add(Reason::TooFast, SURE);
            }
            a.challenge = Some(v);
        }
    }
    if let Some(domain) = s
        .email
        .and_then(|e| e.rsplit_once('@'))
        .map(|(_, d)| d.to_ascii_lowercase())
    {
        if settings.disposable_emails && rules::is_disposable(&domain) {
            a.add(Reason::DisposableEmail, SURE);
        }
        if rules::is_blocked_domain(&domain, &settings.blocked_email_domains) {
            a.add(Reason::BlockedEmailDomain, SURE);
        }
    }
    let links: usize = s.texts.iter().map(|t| rules::count_links(t)).sum();
    if links > settings.max_links as usize {
        a.add(Reason::TooManyLinks, SURE);
    }
    if s.texts
        .iter()
        .any(|t| rules::blocked_word(t, &settings.blocked_words).is_some())
    {
        a.add(Reason::BlockedWord, SURE);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_difficulty_rises_with_an_attack_within_its_bounds() {
        assert_eq!(raised_max_number(50_000, 0), 50_000);
        assert_eq!(raised_max_number(50_000, PRESSURE_THRESHOLD - 1), 50_000);
        assert_eq!(raised_max_number(50_000, PRESSURE_THRESHOLD), 100_000);
        assert_eq!(raised_max_number(50_000, 2 * PRESSURE_THRESHOLD), 200_000);
        assert_eq!(raised_max_number(50_000, u32::MAX), 800_000);
        // Bounded by the platform's maximum, never below the form's own.
        assert_eq!(
            raised_max_number(5_000_000, u32::MAX),
            SpamSettings::MAX_POW_MAX_NUMBER
        );
        assert_eq!(
            raised_max_number(SpamSettings::MAX_POW_MAX_NUMBER, 1_000),
            SpamSettings::MAX_POW_MAX_NUMBER
        );
        assert_eq!(
            pressure_window(time::macros::datetime!(2026-12-03 10:19:59 UTC)),
            time::macros::datetime!(2026-12-03 10:10 UTC).unix_timestamp()
        );
    }
    use shared_core::blind_index::BlindIndexKey;
    use time::macros::datetime;
    use time::Duration;

    const ISSUED: OffsetDateTime = datetime!(2026-12-03 10:00 UTC);

    fn key() -> pow::PowKey {
        pow::PowKey::from_platform_key(&BlindIndexKey::new(vec![3; 32]).unwrap())
    }

    fn form() -> FormId {
        FormId::parse("fm-1").unwrap()
    }

    fn solution() -> String {
        let c = pow::issue(&key(), &form(), ISSUED, 2000, "00ff", 1234, None);
        pow::solve(&c).unwrap().encode()
    }

    fn human<'a>(pow: &'a str) -> Submitted<'a> {
        Submitted {
            pow: Some(pow),
            idempotency_key: None,
            email: Some("ana@example.com"),
            texts: vec![
                "Ana",
                "Hello, could you send me a quote? See https://ana.example",
            ],
        }
    }

    fn at(secs: i64) -> OffsetDateTime {
        ISSUED + Duration::seconds(secs)
    }

    #[test]
    fn a_person_with_a_solved_challenge_scores_nothing() {
        let p = solution();
        let a = assess(
            &key(),
            &SpamSettings::default(),
            &form(),
            at(40),
            &human(&p),
        );
        assert_eq!((a.score, a.reasons.clone()), (0, vec![]));
        assert!(!a.quarantined(&SpamSettings::default()));
        assert_eq!(a.challenge.unwrap().issued_at, ISSUED);
    }

    #[test]
    fn the_time_trap_catches_a_post_under_the_forms_minimum_and_can_be_turned_off() {
        let p = solution();
        let s = SpamSettings::default();
        let fast = assess(&key(), &s, &form(), at(2), &human(&p));
        assert_eq!(fast.reasons, [Reason::TooFast]);
        assert!(fast.quarantined(&s));
        assert!(assess(&key(), &s, &form(), at(3), &human(&p))
            .reasons
            .is_empty());
        let slow_form = SpamSettings {
            min_seconds: 20,
            ..SpamSettings::default()
        };
        assert_eq!(
            assess(&key(), &slow_form, &form(), at(10), &human(&p)).reasons,
            [Reason::TooFast]
        );
        let off = SpamSettings {
            time_trap: false,
            ..SpamSettings::default()
        };
        assert!(assess(&key(), &off, &form(), at(0), &human(&p))
            .reasons
            .is_empty());
    }

    #[test]
    fn a_challenge_older_than_a_day_or_not_ours_is_suspect() {
        let p = solution();
        let s = SpamSettings::default();
        let old = assess(&key(), &s, &form(), at(86_400), &human(&p));
        assert_eq!(old.reasons, [Reason::PowExpired]);
        assert!(old.quarantined(&s));
        let forged = assess(&key(), &s, &form(), at(10), &human("eyJ4IjoxfQ=="));
        assert_eq!(forged.reasons, [Reason::PowInvalid]);
    }

    /// The embed snippet asks for a challenge for its page's idempotency key: its own post passes,
    /// a post under another key (or none) with the same solution is a bot reusing it.
    #[test]
    fn a_challenge_issued_for_a_key_is_a_proof_for_that_keys_post_only() {
        let c = pow::issue(&key(), &form(), ISSUED, 2000, "00ff", 1234, Some("page-1"));
        let p = pow::solve(&c).unwrap().encode();
        let s = SpamSettings::default();
        let post = |k| Submitted {
            idempotency_key: k,
            ..human(&p)
        };
        let own = assess(&key(), &s, &form(), at(30), &post(Some("page-1")));
        assert_eq!(own.reasons, []);
        assert!(own.challenge.is_some_and(|v| v.bound.is_some()));
        for other in [Some("page-2"), None] {
            let a = assess(&key(), &s, &form(), at(30), &post(other));
            assert_eq!(a.reasons, [Reason::PowInvalid], "{other:?}");
            assert!(a.quarantined(&s) && a.challenge.is_none());
        }
    }

    #[test]
    fn a_missing_solution_is_weak_unless_the_form_requires_one() {
        let s = SpamSettings::default();
        let no_js = Submitted {
            pow: None,
            ..human("")
        };
        let a = assess(&key(), &s, &form(), at(10), &no_js);
        assert_eq!(
            (a.score, a.reasons.clone()),
            (WEAK, vec![Reason::PowMissing])
        );
        assert!(!a.quarantined(&s), "a plain HTML form still submits");
        let required = SpamSettings {
            pow_required: true,
            ..SpamSettings::default()
        };
        assert!(assess(&key(), &required, &form(), at(10), &no_js).quarantined(&required));
    }

    #[test]
    fn rules_score_disposable_and_blocked_domains_words_and_links() {
        let p = solution();
        let s = SpamSettings {
            blocked_email_domains: vec!["rival.example".into()],
            blocked_words: vec!["casino".into()],
            ..SpamSettings::default()
        };
        let with = |email: &'static str, text: &'static str| {
            let sub = Submitted {
                pow: Some(&p),
                idempotency_key: None,
                email: Some(email),
                texts: vec![text],
            };
            assess(&key(), &s, &form(), at(30), &sub).reasons
        };
        assert_eq!(with("x@mailinator.com", "hi"), [Reason::DisposableEmail]);
        assert_eq!(
            with("x@sales.rival.example", "hi"),
            [Reason::BlockedEmailDomain]
        );
        assert_eq!(with("x@example.com", "Casino!"), [Reason::BlockedWord]);
        assert_eq!(
            with("x@example.com", "http://a.b http://c.d http://e.f"),
            [Reason::TooManyLinks]
        );
        assert_eq!(with("x@example.com", "http://a.b http://c.d"), []);
        let off = SpamSettings {
            disposable_emails: false,
            ..s.clone()
        };
        let sub = Submitted {
            pow: Some(&p),
            idempotency_key: None,
            email: Some("x@mailinator.com"),
            texts: vec![],
        };
        assert!(assess(&key(), &off, &form(), at(30), &sub)
            .reasons
            .is_empty());
    }

    #[test]
    fn findings_add_up_and_the_threshold_is_the_forms() {
        let p = solution();
        let strict = SpamSettings {
            threshold: 12,
            ..SpamSettings::default()
        };
        let bot = Submitted {
            pow: Some(&p),
            idempotency_key: None,
            email: Some("x@yopmail.com"),
            texts: vec!["www.a.com www.b.com www.c.com"],
        };
        let a = assess(&key(), &strict, &form(), at(1), &bot);
        assert_eq!(a.score, 3 * SURE);
        assert_eq!(
            a.reasons,
            [
                Reason::TooFast,
                Reason::DisposableEmail,
                Reason::TooManyLinks
            ]
        );
        assert!(a.quarantined(&strict));
        for r in ALL {
            assert_eq!(Reason::parse(r.code()), Some(r));
        }
    }
}
