//! Identifiers issued by a payment provider. In the core because the key builders
//! ([`crate::keys`]) put them in keys; billing re-exports it.

use serde::Serialize;

/// An identifier issued by a payment provider (`cus_…`, `in_…`, `evt_…`, `price_…`): ASCII
/// letters, digits and `_`, at most 255. Anything else is refused, so a provider id can never
/// break a key (`#`) or a log line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ProviderId(String);

impl ProviderId {
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= 255
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        ok.then(|| Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ProviderId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ProviderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
