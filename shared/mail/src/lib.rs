//! Outgoing email: a port, its SESv2 adapter, an in-memory fake for tests, and tiny file-based
//! templates (`{{name}}` placeholders; values are HTML-escaped in HTML templates).

pub mod dynamo;
pub mod outbound;
pub mod unsubscribe;

use std::future::Future;

use anyhow::Context;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, MessageHeader};

#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Extra headers, e.g. `List-Unsubscribe`.
    pub headers: Vec<(String, String)>,
}

/// Redacted: the address and the body (which may hold a one-time link) never reach a log.
impl std::fmt::Debug for OutgoingEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingEmail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

pub trait Mailer: Send + Sync {
    fn send(&self, email: &OutgoingEmail) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The SESv2 adapter. In the functions it is built with [`SesMailer::platform`]: every email
/// then goes out through the platform's configuration set (so SES reports its bounces and
/// complaints to the `mail-events` function) and none goes to an address on the platform's
/// send-suppression list (docs/mail.md).
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    from: String,
    configuration_set: Option<String>,
    suppression: Option<SendSuppression>,
}

/// The send-suppression list as a mailer checks it: the address's blind index, looked up at the
/// clock's now.
#[derive(Clone)]
pub struct SendSuppression {
    pub gate: crate::dynamo::MailGate,
    pub key: shared_core::blind_index::BlindIndexKey,
    pub clock: std::sync::Arc<dyn shared_core::clock::Clock>,
}

impl std::fmt::Debug for SendSuppression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendSuppression")
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl SendSuppression {
    /// Whether `to` must not be mailed. A list that cannot be read does not stop the email
    /// (logged): the list protects the platform's reputation, a verification or reset email is
    /// what the user is waiting for.
    pub async fn holds(&self, to: &str) -> Option<String> {
        let email = shared_core::domain::Email::parse(to).ok()?;
        let bidx = self.key.email(&email);
        match self.gate.is_suppressed(&bidx, self.clock.now()).await {
            Ok(true) => Some(bidx),
            Ok(false) => None,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), email_bidx = %bidx, "send-suppression list not read; sending");
                None
            }
        }
    }
}

impl SesMailer {
    /// A mailer without the platform's configuration set and suppression list: tests and local
    /// tools only (the functions use [`SesMailer::platform`]).
    pub fn new(client: aws_sdk_sesv2::Client, from: impl Into<String>) -> Self {
        Self {
            client,
            from: from.into(),
            configuration_set: None,
            suppression: None,
        }
    }

    /// The platform's mailer: through `configuration_set`, never to a suppressed address.
    pub fn platform(
        client: aws_sdk_sesv2::Client,
        from: impl Into<String>,
        configuration_set: impl Into<String>,
        suppression: SendSuppression,
    ) -> Self {
        Self {
            client,
            from: from.into(),
            configuration_set: Some(configuration_set.into()),
            suppression: Some(suppression),
        }
    }
}

impl Mailer for SesMailer {
    async fn send(&self, email: &OutgoingEmail) -> anyhow::Result<()> {
        if let Some(suppression) = &self.suppression {
            if let Some(bidx) = suppression.holds(&email.to).await {
                // Not an error for the caller: the address bounced for good or complained, and
                // the answer to the request that wanted the email stays the same.
                tracing::info!(email_bidx = %bidx, subject = %email.subject, "email not sent: the address is on the send-suppression list");
                shared_core::telemetry::metric("EmailsSuppressed", 1.0, "Count", &[]);
                return Ok(());
            }
        }
        let content = |data: &str| {
            Content::builder()
                .data(data)
                .charset("UTF-8")
                .build()
                .context("email content")
        };
        let mut message = Message::builder().subject(content(&email.subject)?).body(
            Body::builder()
                .text(content(&email.text)?)
                .html(content(&email.html)?)
                .build(),
        );
        for (name, value) in &email.headers {
            message = message.headers(
                MessageHeader::builder()
                    .name(name)
                    .value(value)
                    .build()
                    .context("email header")?,
            );
        }
        self.client
            .send_email()
            .from_email_address(&self.from)
            .set_configuration_set_name(self.configuration_set.clone())
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(EmailContent::builder().simple(message.build()).build())
            .send()
            .await
            .context("SESv2 SendEmail")?;
        Ok(())
    }
}

/// Keeps every email in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryMailer(pub std::sync::Mutex<Vec<OutgoingEmail>>);

impl MemoryMailer {
    pub fn sent(&self) -> Vec<OutgoingEmail> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Mailer for MemoryMailer {
    async fn send(&self, email: &OutgoingEmail) -> anyhow::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(email.clone());
        Ok(())
    }
}

/// The one-click unsubscribe headers (RFC 2369 + RFC 8058) for a signed link. SESv2 accepts
/// them as per-message headers on a Simple message (`MessageHeader`), so no raw MIME is needed.
pub fn unsubscribe_headers(url: &str) -> Vec<(String, String)> {
    vec![
        ("List-Unsubscribe".to_string(), format!("<{url}>")),
        (
            "List-Unsubscribe-Post".to_string(),
            "List-Unsubscribe=One-Click".to_string(),
        ),
    ]
}

/// The one-click link of a recipient: `POST` withdraws, `GET` only shows what a `POST` would do.
pub fn unsubscribe_url(
    api_base_url: &str,
    token: &crate::unsubscribe::UnsubscribeToken,
    key: &shared_core::blind_index::BlindIndexKey,
) -> String {
    format!(
        "{}/v1/privacy/unsubscribe?t={}",
        api_base_url.trim_end_matches('/'),
        token.sign(key)
    )
}

/// A mailer that gives every email without them the one-click unsubscribe headers of its
/// recipient (purpose: objection to direct marketing; scope: the platform's own emails, or a
/// tenant's). Wrap any function's mailer with it at init.
#[derive(Clone)]
pub struct WithUnsubscribe<M> {
    pub inner: M,
    pub key: shared_core::blind_index::BlindIndexKey,
    pub api_base_url: String,
    pub scope: crate::unsubscribe::UnsubscribeScope,
}

impl<M> WithUnsubscribe<M> {
    /// The headers `email` goes out with: its own, plus the unsubscribe pair when it has none.
    pub fn headers_for(&self, email: &OutgoingEmail) -> Vec<(String, String)> {
        let mut headers = email.headers.clone();
        let has = headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("List-Unsubscribe"));
        if let (false, Ok(to)) = (has, shared_core::domain::Email::parse(&email.to)) {
            let token = crate::unsubscribe::UnsubscribeToken {
                purpose: crate::unsubscribe::UnsubscribePurpose::Marketing,
                subject_bidx: self.key.email(&to),
                scope: self.scope.clone(),
            };
            headers.extend(unsubscribe_headers(&unsubscribe_url(
                &self.api_base_url,
                &token,
                &self.key,
            )));
        }
        headers
    }
}

impl<M: Mailer> Mailer for WithUnsubscribe<M> {
    async fn send(&self, email: &OutgoingEmail) -> anyhow::Result<()> {
        let mut email = email.clone();
        email.headers = self.headers_for(&email);
        self.inner.send(&email).await
    }
}

/// Fills `{{name}}` placeholders. `html` escapes the values.
pub fn render(template: &str, vars: &[(&str, &str)], html: bool) -> String {
    let mut out = template.to_string();
    for (name, value) in vars {
        let value = if html {
            escape_html(value)
        } else {
            (*value).to_string()
        };
        out = out.replace(&format!("{{{{{name}}}}}"), &value);
    }
    out
}

pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A plain-text email with the same text as simple HTML paragraphs.
pub fn email(to: &str, subject: &str, text: &str) -> OutgoingEmail {
    let html = text
        .split("\n\n")
        .map(|p| format!("<p>{}</p>", escape_html(p).replace('\n', "<br>")))
        .collect::<Vec<_>>()
        .join("\n");
    OutgoingEmail {
        to: to.to_string(),
        subject: subject.to_string(),
        text: text.to_string(),
        html: format!("<!doctype html><html><body>{html}</body></html>"),
        headers: vec![],
    }
}

/// Sends an email; a failure is logged without the address and reported to the caller.
pub async fn send<M: Mailer>(mailer: &M, email: &OutgoingEmail) -> anyhow::Result<()> {
    mailer.send(email).await.map_err(|e| {
        // Provider messages may quote the recipient: words holding an '@' are redacted.
        let error = format!("{e:#}")
            .split(char::is_whitespace)
            .map(|w| if w.contains('@') { "<address>" } else { w })
            .collect::<Vec<_>>()
            .join(" ");
        tracing::error!(%error, subject = %email.subject, "email not sent");
        if shared_core::aws::is_transient(&e) {
            anyhow::Error::new(shared_core::aws::Unavailable("email not sent"))
        } else {
            anyhow::anyhow!("email not sent")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_escapes() {
        let t = "<p>Hi {{name}}, <a href=\"{{link}}\">go</a></p>";
        let out = render(
            t,
            &[("name", "<b>Ana</b>"), ("link", "https://x/?a=1&b=2")],
            true,
        );
        assert_eq!(
            out,
            "<p>Hi &lt;b&gt;Ana&lt;/b&gt;, <a href=\"https://x/?a=1&amp;b=2\">go</a></p>"
        );
        assert_eq!(render("{{a}}{{a}}", &[("a", "x")], false), "xx");
    }

    #[tokio::test]
    async fn every_email_gets_one_click_unsubscribe_headers() {
        use crate::unsubscribe::{UnsubscribeScope, UnsubscribeToken};
        let key = shared_core::blind_index::BlindIndexKey::new(vec![3; 32]).unwrap();
        let m = WithUnsubscribe {
            inner: MemoryMailer::default(),
            key: key.clone(),
            api_base_url: "https://api.example.com/".into(),
            scope: UnsubscribeScope::Platform,
        };
        let e = OutgoingEmail {
            to: "Ana@Example.com".into(),
            subject: "S".into(),
            text: "t".into(),
            html: "h".into(),
            headers: vec![],
        };
        m.send(&e).await.unwrap();
        let sent = m.inner.sent();
        let h = &sent[0].headers;
        assert_eq!(
            h[1],
            (
                "List-Unsubscribe-Post".to_string(),
                "List-Unsubscribe=One-Click".to_string()
            )
        );
        let link = h[0].1.trim_start_matches('<').trim_end_matches('>');
        let token = link
            .strip_prefix("https://api.example.com/v1/privacy/unsubscribe?t=")
            .unwrap();
        let t = UnsubscribeToken::verify(&key, token).unwrap();
        let ana = shared_core::domain::Email::parse("ana@example.com").unwrap();
        assert_eq!(t.subject_bidx, key.email(&ana));
        assert!(!link.contains("ana"), "no address in the link");
        // An email that already has its own link keeps it, alone.
        let mut own = e.clone();
        own.headers = unsubscribe_headers("https://x/1");
        assert_eq!(m.headers_for(&own), own.headers);
    }

    #[test]
    fn debug_hides_recipient_and_body() {
        let e = OutgoingEmail {
            to: "secret@example.com".into(),
            subject: "S".into(),
            text: "token=abc".into(),
            html: String::new(),
            headers: vec![],
        };
        let d = format!("{e:?}");
        assert!(!d.contains("secret") && !d.contains("token"));
    }
}
