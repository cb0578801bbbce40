//! The emails the auth function sends. Templates live in `templates/` (text and HTML).

use shared_mail::outbound::name_for_mail;
use shared_mail::{render, Mailer, OutgoingEmail};

pub struct Template {
    pub subject: &'static str,
    pub text: &'static str,
    pub html: &'static str,
}

macro_rules! template {
    ($name:literal, $subject:literal) => {
        Template {
            subject: $subject,
            text: include_str!(concat!("../templates/", $name, ".txt")),
            html: include_str!(concat!("../templates/", $name, ".html")),
        }
    };
}

pub const VERIFY_EMAIL: Template = template!("verify_email", "Confirm your email address");
pub const SIGNUP_EXISTING: Template = template!(
    "signup_existing",
    "Someone tried to sign up with your email"
);
pub const PASSWORD_RESET: Template = template!("password_reset", "Reset your password");
pub const INVITATION: Template = template!("invitation", "You are invited to join a team");
pub const INVITATION_EXISTING: Template =
    template!("invitation_existing", "Someone invited you to a team");
pub const PASSWORD_CHANGED: Template = template!("password_changed", "Your password was changed");
pub const NEW_SIGN_IN: Template = template!("new_sign_in", "New sign-in to your account");
pub const MFA_LOCKED: Template = template!("mfa_locked", "Your account is locked");

/// The placeholders that carry text someone typed (a name, a business name, a browser's user
/// agent). An email may reach an address its sender does not own (a sign-up or an invitation
/// names any address), so such text goes out only as a bounded, link-free name
/// ([`name_for_mail`]); every other placeholder is the platform's own (links, times, roles).
pub const TYPED_PLACEHOLDERS: &[&str] = &["name", "business_name", "inviter", "device"];

/// The email `t` with `vars` filled in, typed text made safe for a third party.
pub fn compose(to: &str, t: &Template, vars: &[(&str, &str)]) -> OutgoingEmail {
    let safe: Vec<(&str, String)> = vars
        .iter()
        .map(|(k, v)| {
            let v = if TYPED_PLACEHOLDERS.contains(k) {
                name_for_mail(v)
            } else {
                (*v).to_string()
            };
            (*k, v)
        })
        .collect();
    let vars: Vec<(&str, &str)> = safe.iter().map(|(k, v)| (*k, v.as_str())).collect();
    OutgoingEmail {
        to: to.to_string(),
        subject: t.subject.to_string(),
        text: render(t.text, &vars, false),
        html: render(t.html, &vars, true),
        headers: vec![],
    }
}

/// Sends a transactional email. A failure is logged (without the address) and not fatal to the
/// request: the user can ask again, and the request's main effect is already stored.
pub async fn send<M: Mailer>(mailer: &M, to: &str, t: &Template, vars: &[(&str, &str)]) {
    let email = compose(to, t, vars);
    if let Err(e) = mailer.send(&email).await {
        // The provider's message may quote the recipient (SES in its sandbox: "... failed the
        // check in region X: someone@example.com"): addresses never reach the log.
        let error = redact_addresses(&format!("{e:#}"));
        tracing::error!(%error, subject = t.subject, "email not sent");
    }
}

/// `text` with every whitespace-separated word that holds an `@` replaced by `<address>`.
fn redact_addresses(text: &str) -> String {
    text.split(char::is_whitespace)
        .map(|w| if w.contains('@') { "<address>" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [&Template; 8] = [
        &VERIFY_EMAIL,
        &SIGNUP_EXISTING,
        &PASSWORD_RESET,
        &INVITATION,
        &INVITATION_EXISTING,
        &PASSWORD_CHANGED,
        &NEW_SIGN_IN,
        &MFA_LOCKED,
    ];

    #[test]
    fn no_template_carries_a_link_or_long_text_someone_typed() {
        let evil = format!(
            "Claim your prize at https://evil.example/win {}",
            "x".repeat(300)
        );
        for t in ALL {
            let placeholders: Vec<&str> = t
                .text
                .split("{{")
                .skip(1)
                .filter_map(|p| p.split_once("}}").map(|(name, _)| name))
                .collect();
            for p in &placeholders {
                assert!(
                    TYPED_PLACEHOLDERS.contains(p) || ["link", "when", "role"].contains(p),
                    "{}: placeholder {p} is neither typed text nor the platform's own",
                    t.subject
                );
            }
            let vars: Vec<(&str, &str)> = TYPED_PLACEHOLDERS
                .iter()
                .map(|p| (*p, evil.as_str()))
                .chain([
                    ("link", "https://app.example.com/x?token=t"),
                    ("when", "now"),
                    ("role", "viewer"),
                ])
                .collect();
            let e = compose("someone@example.org", t, &vars);
            for body in [&e.text, &e.html] {
                assert!(!body.contains("evil.example"), "{}: {body}", t.subject);
                assert!(!body.contains(&"x".repeat(100)), "{}: unbounded", t.subject);
            }
        }
    }

    #[test]
    fn addresses_are_cut_from_error_text() {
        let e = "SESv2 SendEmail: MessageRejected: Email address is not verified. The following \
                 identities failed the check in region EU-WEST-1: <Ana.Pop@example.com>, b@x.io";
        let out = redact_addresses(e);
        assert!(!out.contains('@'), "{out}");
        assert!(out.starts_with("SESv2 SendEmail: MessageRejected: Email address is not verified."));
        assert!(out.ends_with("EU-WEST-1: <address> <address>"), "{out}");
    }
}
