//! Outgoing email: a port, its SESv2 adapter, an in-memory fake for tests, and tiny file-based
//! templates (`{{name}}` placeholders; values are HTML-escaped in HTML templates).

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

#[derive(Debug, Clone)]
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    from: String,
}

impl SesMailer {
    pub fn new(client: aws_sdk_sesv2::Client, from: impl Into<String>) -> Self {
        Self {
            client,
            from: from.into(),
        }
    }
}

impl Mailer for SesMailer {
    async fn send(&self, email: &OutgoingEmail) -> anyhow::Result<()> {
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
