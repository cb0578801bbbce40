//! Content rules: the tenant's blocked email domains and words, the number of links in the free
//! text, and the disposable-mail domains of the list shipped with the project
//! (`shared/leads/data/`, refreshed from the maintained npm package `disposable-email-domains`
//! by `infra/scripts/refresh-disposable-domains.sh`).

use std::sync::OnceLock;

const DISPOSABLE: &str = include_str!("../../data/disposable_email_domains.txt");
/// Domains every subdomain of which is disposable.
const DISPOSABLE_WILDCARDS: &str = include_str!("../../data/disposable_email_wildcards.txt");

fn sorted_lines(text: &'static str) -> Vec<&'static str> {
    let mut v: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    v.sort_unstable();
    v
}

/// The list, parsed once per container on first use (about a millisecond): a sorted slice
/// searched by bisection, no set to build.
fn disposable() -> &'static [&'static str] {
    static LIST: OnceLock<Vec<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| sorted_lines(DISPOSABLE))
}

fn disposable_wildcards() -> &'static [&'static str] {
    static LIST: OnceLock<Vec<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| sorted_lines(DISPOSABLE_WILDCARDS))
}

/// `domain` and each parent domain of it (`a.b.c` → `a.b.c`, `b.c`, `c`).
fn suffixes(domain: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(domain), |d| d.split_once('.').map(|(_, rest)| rest))
}

/// Whether `domain` (lower case) is a known disposable-mail domain.
pub fn is_disposable(domain: &str) -> bool {
    disposable().binary_search(&domain).is_ok()
        || suffixes(domain).any(|d| disposable_wildcards().binary_search(&d).is_ok())
}

/// Whether `domain` is `blocked` or a subdomain of it.
pub fn is_blocked_domain(domain: &str, blocked: &[String]) -> bool {
    suffixes(domain).any(|d| blocked.iter().any(|b| b == d))
}

/// The first blocked word found in `text` as a whole word (case-insensitive).
pub fn blocked_word<'a>(text: &str, blocked: &'a [String]) -> Option<&'a str> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-')
        .filter(|w| !w.is_empty())
        .collect();
    blocked.iter().map(String::as_str).find(|b| {
        if b.contains(' ') {
            // A phrase: its words in sequence.
            let phrase: Vec<&str> = b.split(' ').filter(|w| !w.is_empty()).collect();
            words.windows(phrase.len().max(1)).any(|w| w == phrase)
        } else {
            words.contains(b)
        }
    })
}

/// Links in `text`: `http://`, `https://`, `www.` and BBCode/HTML link openers.
pub fn count_links(text: &str) -> usize {
    let lower = text.to_lowercase();
    ["http://", "https://", "www.", "[url", "<a "]
        .iter()
        .map(|p| lower.matches(p).count())
        .sum::<usize>()
        // `https://www.x` is one link, not two.
        .saturating_sub(lower.matches("://www.").count())
}

/// A tenant's blocked domains as stored: trimmed, lower case, without a leading `@`, each a
/// plausible domain name; at most `MAX_LIST_LEN`.
pub fn domain_list(input: &[String]) -> Result<Vec<String>, &'static str> {
    use shared_core::domain::SpamSettings;
    if input.len() > SpamSettings::MAX_LIST_LEN {
        return Err("may hold at most 200 domains");
    }
    let mut out = Vec::with_capacity(input.len());
    for d in input {
        let d = d.trim().trim_start_matches('@').to_lowercase();
        let ok = !d.is_empty()
            && d.len() <= 253
            && d.contains('.')
            && !d.starts_with('.')
            && !d.ends_with('.')
            && d.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !ok {
            return Err("must list domain names such as example.com");
        }
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

/// A tenant's blocked words (or short phrases) as stored: trimmed, lower case, 1 to 50
/// characters, no control characters; at most `MAX_LIST_LEN`.
pub fn word_list(input: &[String]) -> Result<Vec<String>, &'static str> {
    use shared_core::domain::SpamSettings;
    if input.len() > SpamSettings::MAX_LIST_LEN {
        return Err("may hold at most 200 words");
    }
    let mut out = Vec::with_capacity(input.len());
    for w in input {
        let w = w.split_whitespace().collect::<Vec<_>>().join(" ");
        // Counted as given: lower-casing may lengthen a word (`İ`).
        if w.is_empty() || w.chars().count() > 50 || w.chars().any(char::is_control) {
            return Err("must list words of 1 to 50 characters");
        }
        let w = w.to_lowercase();
        if !out.contains(&w) {
            out.push(w);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_list_knows_common_disposable_domains_and_not_common_providers() {
        for d in ["mailinator.com", "yopmail.com", "guerrillamail.com"] {
            assert!(is_disposable(d), "{d}");
        }
        for d in ["gmail.com", "outlook.com", "example.com", "posteo.de"] {
            assert!(!is_disposable(d), "{d}");
        }
        assert!(disposable().len() > 10_000, "the whole list is shipped");
        assert!(disposable().windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_wildcard_domain_covers_its_subdomains() {
        let w = disposable_wildcards()[0];
        assert!(is_disposable(&format!("anything.{w}")));
    }

    #[test]
    fn blocked_domains_cover_subdomains_only() {
        let blocked = vec!["spam.example".to_string()];
        assert!(is_blocked_domain("spam.example", &blocked));
        assert!(is_blocked_domain("mx.spam.example", &blocked));
        assert!(!is_blocked_domain("nospam.example", &blocked));
    }

    #[test]
    fn words_match_whole_words_and_phrases() {
        let blocked = vec!["casino".to_string(), "buy now".to_string()];
        assert_eq!(blocked_word("Best CASINO bonus", &blocked), Some("casino"));
        assert_eq!(blocked_word("please buy  now!", &blocked), Some("buy now"));
        assert_eq!(blocked_word("casinos are far", &blocked), None);
        assert_eq!(blocked_word("buy it now", &blocked), None);
    }

    #[test]
    fn links_are_counted_once_each() {
        assert_eq!(count_links("no links here, see the site"), 0);
        assert_eq!(count_links("https://www.a.com and http://b.com"), 2);
        assert_eq!(count_links("[url=x]a[/url] <a href=y> www.c.com"), 3);
    }

    #[test]
    fn lists_are_normalized_and_bounded() {
        assert_eq!(
            domain_list(&[" @Spam.Example ".into(), "spam.example".into()]),
            Ok(vec!["spam.example".to_string()])
        );
        assert!(domain_list(&["not a domain".into()]).is_err());
        assert!(domain_list(&vec!["a.b".to_string(); 201]).is_err());
        assert_eq!(
            word_list(&[" Buy   NOW ".into()]),
            Ok(vec!["buy now".to_string()])
        );
        assert!(word_list(&["".into()]).is_err());
    }
}
