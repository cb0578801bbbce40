//! The Stripe adapter of [`PaymentProvider`]: signature verification ([`signature`]) and event
//! parsing ([`parse`]).

pub mod parse;
pub mod signature;

use lambda_http::http::HeaderMap;
use shared_core::error::AppError;
use time::OffsetDateTime;

use crate::provider::{PaymentProvider, ProviderEvent, SignatureError};

pub use signature::signature_header;

pub const NAME: &str = "stripe";
pub const SIGNATURE_HEADER: &str = "stripe-signature";

/// Stripe, with the endpoint's signing secrets (more than one during a rotation).
#[derive(Clone)]
pub struct Stripe {
    secrets: Vec<String>,
    tolerance_secs: i64,
}

/// Never prints the secrets.
impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe")
            .field("secrets", &self.secrets.len())
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

impl Stripe {
    pub fn new(secrets: Vec<String>, tolerance_secs: i64) -> Self {
        Self {
            secrets,
            tolerance_secs,
        }
    }

    /// The secrets of the SSM parameter's value: comma- or newline-separated, blanks ignored.
    pub fn from_parameter(value: &str, tolerance_secs: i64) -> anyhow::Result<Self> {
        let secrets: Vec<String> = value
            .split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        anyhow::ensure!(
            !secrets.is_empty(),
            "the Stripe webhook secrets parameter holds no secret"
        );
        Ok(Self::new(secrets, tolerance_secs))
    }
}

impl PaymentProvider for Stripe {
    fn name(&self) -> &'static str {
        NAME
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        raw_body: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), SignatureError> {
        let mut values = headers.get_all(SIGNATURE_HEADER).iter();
        let header = match (values.next(), values.next()) {
            (None, _) => None,
            (Some(v), None) => Some(v.to_str().map_err(|_| SignatureError::Malformed)?),
            // Two headers: refused rather than guessed at.
            (Some(_), Some(_)) => return Err(SignatureError::Malformed),
        };
        signature::verify(
            header,
            raw_body,
            &self.secrets,
            now.unix_timestamp(),
            self.tolerance_secs,
        )
    }

    fn parse(&self, raw_body: &[u8]) -> Result<ProviderEvent, AppError> {
        parse::parse_event(raw_body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_from_the_parameter() {
        let s = Stripe::from_parameter(" whsec_a,whsec_b\nwhsec_c\n\n", 300).unwrap();
        assert_eq!(s.secrets, ["whsec_a", "whsec_b", "whsec_c"]);
        assert!(Stripe::from_parameter(" , \n", 300).is_err());
        assert!(!format!("{s:?}").contains("whsec"));
    }
}
