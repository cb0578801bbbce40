//! The Stripe adapter of [`PaymentProvider`]: signature verification ([`signature`]), event
//! parsing ([`parse`]), and Checkout and Customer Portal sessions through the API ([`api`]).

pub mod api;
pub mod parse;
pub mod signature;

use std::sync::Arc;

use lambda_http::http::HeaderMap;
use shared_core::error::AppError;
use time::OffsetDateTime;

use crate::provider::{
    CheckoutSessionRequest, HostedSession, PaymentProvider, PortalSessionRequest,
    ProviderCallError, ProviderEvent, SignatureError,
};
pub use api::{CallPolicy, SecretKey, StripeApi};

pub use signature::signature_header;

pub const NAME: &str = "stripe";
pub const SIGNATURE_HEADER: &str = "stripe-signature";

/// Stripe, with the endpoint's signing secrets (more than one during a rotation) and the API
/// client that creates sessions.
#[derive(Clone)]
pub struct Stripe {
    secrets: Vec<String>,
    tolerance_secs: i64,
    api: Option<Arc<StripeApi>>,
}

/// Never prints the secrets.
impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe")
            .field("secrets", &self.secrets.len())
            .field("tolerance_secs", &self.tolerance_secs)
            .field("api", &self.api)
            .finish()
    }
}

impl Stripe {
    pub fn new(secrets: Vec<String>, tolerance_secs: i64) -> Self {
        Self {
            secrets,
            tolerance_secs,
            api: None,
        }
    }

    /// Sessions are created through `api`.
    pub fn with_api(mut self, api: StripeApi) -> Self {
        self.api = Some(Arc::new(api));
        self
    }

    fn api(&self) -> Result<&StripeApi, ProviderCallError> {
        self.api.as_deref().ok_or(ProviderCallError::NotConfigured)
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

    async fn create_checkout_session(
        &self,
        r: &CheckoutSessionRequest,
    ) -> Result<HostedSession, ProviderCallError> {
        let api = self.api()?;
        let answer = api
            .post_form(
                "/v1/checkout/sessions",
                &checkout_form(r),
                &r.idempotency_key,
            )
            .await?;
        api.session(&answer)
    }

    async fn create_portal_session(
        &self,
        r: &PortalSessionRequest,
    ) -> Result<HostedSession, ProviderCallError> {
        let api = self.api()?;
        let answer = api
            .post_form(
                "/v1/billing_portal/sessions",
                &portal_form(r),
                &r.idempotency_key,
            )
            .await?;
        api.session(&answer)
    }
}

/// `POST /v1/checkout/sessions`: a subscription to one price, referenced to the tenant.
///
/// - `client_reference_id`: the tenant, which `checkout.session.completed` links the customer to.
/// - `subscription_data[metadata][tenant_id]`: the tenant again, on the subscription, so its
///   events and its invoices' (`subscription_details.metadata`) name the tenant even when they
///   arrive before the checkout's (Stripe does not deliver in order).
/// - `customer` only when the tenant has one: otherwise Checkout creates it.
pub fn checkout_form(r: &CheckoutSessionRequest) -> Vec<(String, String)> {
    let mut form: Vec<(String, String)> = [
        ("mode", "subscription"),
        ("line_items[0][price]", r.price_id.as_str()),
        ("line_items[0][quantity]", "1"),
        ("client_reference_id", r.tenant.as_str()),
        ("subscription_data[metadata][tenant_id]", r.tenant.as_str()),
        ("success_url", &r.success_url),
        ("cancel_url", &r.cancel_url),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(c) = &r.customer {
        form.push(("customer".into(), c.as_str().into()));
    }
    form
}

/// `POST /v1/billing_portal/sessions`: the customer's portal, returning to the app.
pub fn portal_form(r: &PortalSessionRequest) -> Vec<(String, String)> {
    vec![
        ("customer".into(), r.customer.as_str().into()),
        ("return_url".into(), r.return_url.clone()),
    ]
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
