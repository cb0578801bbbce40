//! A submission as posted ([`RawSubmission`]) and as validated against its form
//! ([`ValidSubmission`]).

use std::collections::BTreeMap;

use super::email::Email;
use super::form::{FieldKind, FormRecord};
use super::phone::Phone;
use crate::error::{AppError, FieldErrors};

/// Keys starting with `_` are the form machinery's, not the visitor's answers.
const PAGE_URL_KEY: &str = "_page_url";
const REFERRER_KEY: &str = "_referrer";
/// The idempotency key in the body: what a browser script sends instead of the
/// `Idempotency-Key` header, which would make its request need a CORS preflight.
pub const IDEMPOTENCY_KEY: &str = "_idempotency_key";
/// The solved proof-of-work challenge (an ALTCHA payload): what the embed snippet's script
/// posts; a plain HTML form without JavaScript has none.
pub const POW_KEY: &str = "_altcha";
const CONSENT_PREFIX: &str = "consent_";
/// Technical data is capped: it is context, not content.
const TECH_MAX_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawValue {
    Text(String),
    Bool(bool),
}

/// The flat key/value body of a submission, from JSON or from an HTML form.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RawSubmission {
    values: BTreeMap<String, RawValue>,
}

impl RawSubmission {
    /// A JSON object of strings, booleans or numbers.
    pub fn from_json(body: &[u8]) -> Result<Self, AppError> {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|_| AppError::validation("invalid_json", "The body is not valid JSON."))?;
        let obj = value.as_object().ok_or_else(|| {
            AppError::validation("invalid_body", "The body must be a JSON object of fields.")
        })?;
        let mut values = BTreeMap::new();
        let mut errors = FieldErrors::new();
        for (k, v) in obj {
            match v {
                // The key is a string, as in the header; no other JSON type stands for one.
                _ if k == IDEMPOTENCY_KEY && !v.is_string() => {
                    return Err(AppError::validation(
                        "invalid_idempotency_key",
                        "Idempotency-Key must be 1 to 255 visible ASCII characters.",
                    ));
                }
                serde_json::Value::String(s) => {
                    values.insert(k.clone(), RawValue::Text(s.clone()));
                }
                serde_json::Value::Bool(b) => {
                    values.insert(k.clone(), RawValue::Bool(*b));
                }
                serde_json::Value::Number(n) => {
                    values.insert(k.clone(), RawValue::Text(n.to_string()));
                }
                serde_json::Value::Null => {}
                _ => {
                    errors.insert(field_key(k), "must be text, a number or true/false".into());
                }
            }
        }
        if errors.is_empty() {
            Ok(Self { values })
        } else {
            Err(AppError::invalid_fields(errors))
        }
    }

    /// An `application/x-www-form-urlencoded` body. A key given twice is refused: the form has
    /// one value per field, and guessing which one the visitor meant would store the wrong data.
    pub fn from_urlencoded(body: &[u8]) -> Result<Self, AppError> {
        if std::str::from_utf8(body).is_err() {
            return Err(AppError::validation(
                "invalid_body",
                "The body is not UTF-8.",
            ));
        }
        let mut values = BTreeMap::new();
        let mut errors = FieldErrors::new();
        for (k, v) in form_urlencoded::parse(body) {
            if values
                .insert(k.to_string(), RawValue::Text(v.to_string()))
                .is_some()
            {
                errors.insert(field_key(&k), "was given more than once".into());
            }
        }
        if errors.is_empty() {
            Ok(Self { values })
        } else {
            Err(AppError::invalid_fields(errors))
        }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), RawValue::Text(v.to_string())))
                .collect(),
        }
    }

    fn text(&self, key: &str) -> Option<&str> {
        match self.values.get(key) {
            Some(RawValue::Text(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    /// The idempotency key the body carries (`_idempotency_key`), as posted: the HTTP layer
    /// checks it like the `Idempotency-Key` header.
    pub fn idempotency_key(&self) -> Option<&RawValue> {
        self.values.get(IDEMPOTENCY_KEY)
    }

    /// The email as posted, if it parses. Used to find the lead before the form is read (the
    /// form's rules are applied afterwards by [`RawSubmission::validate`]).
    pub fn probable_email(&self) -> Option<Email> {
        self.text("email").and_then(|s| Email::parse(s).ok())
    }

    pub fn probable_phone(&self) -> Option<Phone> {
        self.text("phone").and_then(|s| Phone::parse(s).ok())
    }

    /// The proof-of-work payload as posted (`_altcha`), if any.
    pub fn pow_solution(&self) -> Option<&str> {
        self.text(POW_KEY).map(str::trim).filter(|s| !s.is_empty())
    }

    /// True when the honeypot field holds anything: a bot filled a field people cannot see.
    pub fn is_honeypot_filled(&self, honeypot_field: &str) -> bool {
        match self.values.get(honeypot_field) {
            Some(RawValue::Text(s)) => !s.trim().is_empty(),
            Some(RawValue::Bool(b)) => *b,
            None => false,
        }
    }

    /// Applies the form's rules. Every problem is reported at once, per field; a message never
    /// repeats the submitted value.
    pub fn validate(&self, form: &FormRecord) -> Result<ValidSubmission, AppError> {
        let mut errors = FieldErrors::new();
        let mut contact = ContactDetails::default();
        let mut answers = BTreeMap::new();

        for key in self.values.keys() {
            let known = key.starts_with('_')
                || key.starts_with(CONSENT_PREFIX)
                || form.field(key).is_some();
            if !known {
                errors.insert(field_key(key), "is not a field of this form".into());
            }
        }

        for def in &form.fields {
            let raw = match self.values.get(&def.name) {
                None => None,
                Some(RawValue::Text(s)) => Some(s.trim()),
                Some(RawValue::Bool(_)) => {
                    errors.insert(def.name.clone(), "must be text".into());
                    continue;
                }
            }
            .filter(|s| !s.is_empty());

            let Some(text) = raw else {
                if def.required {
                    errors.insert(def.name.clone(), "is required".into());
                }
                continue;
            };
            if text.chars().count() > def.max_len() {
                errors.insert(
                    def.name.clone(),
                    format!("is longer than {} characters", def.max_len()),
                );
                continue;
            }
            if text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
            {
                errors.insert(def.name.clone(), "contains control characters".into());
                continue;
            }
            match def.kind {
                FieldKind::Email => match Email::parse(text) {
                    Ok(e) if def.name == "email" => contact.email = Some(e),
                    Ok(e) => {
                        answers.insert(def.name.clone(), e.as_str().to_string());
                    }
                    Err(msg) => {
                        errors.insert(def.name.clone(), msg.into());
                    }
                },
                FieldKind::Phone => match Phone::parse(text) {
                    Ok(p) if def.name == "phone" => contact.phone = Some(p),
                    Ok(p) => {
                        answers.insert(def.name.clone(), p.as_str().to_string());
                    }
                    Err(msg) => {
                        errors.insert(def.name.clone(), msg.into());
                    }
                },
                FieldKind::Text | FieldKind::LongText => match def.name.as_str() {
                    "name" => contact.name = Some(text.to_string()),
                    "company" => contact.company = Some(text.to_string()),
                    _ => {
                        answers.insert(def.name.clone(), text.to_string());
                    }
                },
            }
        }

        let has_contact_field = form.field("email").is_some() || form.field("phone").is_some();
        if has_contact_field
            && contact.email.is_none()
            && contact.phone.is_none()
            && !errors.contains_key("email")
            && !errors.contains_key("phone")
        {
            let which = if form.field("email").is_some() {
                "email"
            } else {
                "phone"
            };
            errors.insert(
                which.into(),
                "an email address or a phone number is required".into(),
            );
        }

        let mut consents = Vec::with_capacity(form.consents.len());
        for def in &form.consents {
            let key = format!("{CONSENT_PREFIX}{}", def.key);
            let granted = match self.values.get(&key) {
                None => Some(false),
                Some(RawValue::Bool(b)) => Some(*b),
                Some(RawValue::Text(s)) => match s.trim().to_ascii_lowercase().as_str() {
                    "true" | "on" | "yes" | "1" => Some(true),
                    "false" | "off" | "no" | "0" | "" => Some(false),
                    _ => None,
                },
            };
            match granted {
                None => {
                    errors.insert(key, "must be true or false".into());
                }
                Some(false) if def.required => {
                    errors.insert(key, "must be accepted to send this form".into());
                }
                Some(granted) => consents.push(ConsentRecord {
                    key: def.key.clone(),
                    version: def.version.clone(),
                    granted,
                }),
            }
        }
        for key in self.values.keys() {
            if let Some(ck) = key.strip_prefix(CONSENT_PREFIX) {
                if !form.consents.iter().any(|c| c.key == ck) {
                    errors.insert(key.clone(), "is not a consent this form asks for".into());
                }
            }
        }

        if !errors.is_empty() {
            return Err(AppError::invalid_fields(errors));
        }
        Ok(ValidSubmission {
            contact,
            answers,
            consents,
            page_url: self.tech_text(PAGE_URL_KEY),
            referrer: self.tech_text(REFERRER_KEY),
        })
    }

    fn tech_text(&self, key: &str) -> Option<String> {
        self.text(key)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| truncate_chars(s, TECH_MAX_LEN))
    }
}

/// Field names in error maps are echoed back, so an absurdly long one is cut.
fn field_key(k: &str) -> String {
    truncate_chars(k, 64)
}

pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The lead's contact fields found in a submission.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ContactDetails {
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    pub name: Option<String>,
    pub company: Option<String>,
}

/// What a visitor agreed to, under which version of the text. Stored unchanged, as proof.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConsentRecord {
    pub key: String,
    pub version: String,
    pub granted: bool,
}

/// Technical data about how a submission arrived: its own data category, removed by retention
/// after its period while the submission stays.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TechnicalData {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub referrer: Option<String>,
    pub page_url: Option<String>,
}

impl TechnicalData {
    pub fn new(
        ip: Option<&str>,
        user_agent: Option<&str>,
        referrer: Option<String>,
        page_url: Option<String>,
    ) -> Self {
        let cap = |s: &str| truncate_chars(s.trim(), TECH_MAX_LEN);
        Self {
            ip: ip.map(cap).filter(|s| !s.is_empty()),
            user_agent: user_agent.map(cap).filter(|s| !s.is_empty()),
            referrer,
            page_url,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ip.is_none()
            && self.user_agent.is_none()
            && self.referrer.is_none()
            && self.page_url.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSubmission {
    pub contact: ContactDetails,
    /// Answers to the form's other fields (message, custom fields).
    pub answers: BTreeMap<String, String>,
    pub consents: Vec<ConsentRecord>,
    pub page_url: Option<String>,
    pub referrer: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ConsentDef, FieldDef, FormId, TenantId, DEFAULT_HONEYPOT};

    fn form() -> FormRecord {
        let mut fields = FormRecord::default_fields();
        fields.push(FieldDef {
            name: "phone".into(),
            kind: FieldKind::Phone,
            required: false,
            max_len: None,
        });
        fields.push(FieldDef {
            name: "budget".into(),
            kind: FieldKind::Text,
            required: false,
            max_len: Some(5),
        });
        FormRecord {
            form_id: FormId::parse("f").unwrap(),
            tenant_id: TenantId::parse("t").unwrap(),
            name: "Contact".into(),
            enabled: true,
            fields,
            consents: vec![ConsentDef {
                key: "marketing".into(),
                version: "2026-01".into(),
                text: "Send me news".into(),
                required: false,
            }],
            allowed_origins: vec![],
            redirect_url: "https://example.com/thanks".into(),
            honeypot_field: DEFAULT_HONEYPOT.into(),
            daily_cap: None,
            spam: Default::default(),
        }
    }

    #[test]
    fn valid_submission_splits_contact_answers_and_consents() {
        let raw = RawSubmission::from_json(
            br#"{"email":" Ana@Example.com ","name":"Ana","message":"Hi","budget":"100","consent_marketing":true,"_page_url":"https://site/contact"}"#,
        )
        .unwrap();
        let v = raw.validate(&form()).unwrap();
        assert_eq!(v.contact.email.unwrap().as_str(), "ana@example.com");
        assert_eq!(v.contact.name.as_deref(), Some("Ana"));
        assert_eq!(v.answers.get("message").map(String::as_str), Some("Hi"));
        assert_eq!(
            v.consents,
            vec![ConsentRecord {
                key: "marketing".into(),
                version: "2026-01".into(),
                granted: true
            }]
        );
        assert_eq!(v.page_url.as_deref(), Some("https://site/contact"));
    }

    #[test]
    fn every_problem_is_reported_per_field_without_echoing_values() {
        let raw = RawSubmission::from_pairs([
            ("email", "not-an-email"),
            ("budget", "123456"),
            ("phone", "0712"),
            ("hacker", "x"),
            ("consent_marketing", "maybe"),
        ]);
        let AppError::Validation { fields, .. } = raw.validate(&form()).unwrap_err() else {
            panic!("expected validation error")
        };
        assert_eq!(
            fields.keys().cloned().collect::<Vec<_>>(),
            vec!["budget", "consent_marketing", "email", "hacker", "phone"]
        );
        assert!(fields.values().all(|m| !m.contains("not-an-email")));
    }

    #[test]
    fn missing_consent_is_recorded_as_not_given() {
        let raw = RawSubmission::from_pairs([("email", "a@b.co")]);
        let v = raw.validate(&form()).unwrap();
        assert!(!v.consents[0].granted);
        assert_eq!(v.consents[0].version, "2026-01");
    }

    #[test]
    fn required_consent_must_be_given() {
        let mut f = form();
        f.consents[0].required = true;
        let raw = RawSubmission::from_pairs([("email", "a@b.co"), ("consent_marketing", "off")]);
        assert!(raw.validate(&f).is_err());
    }

    #[test]
    fn duplicate_urlencoded_keys_are_refused() {
        assert!(RawSubmission::from_urlencoded(b"email=a%40b.co&email=c%40d.co").is_err());
        let r = RawSubmission::from_urlencoded(b"email=a%40b.co&name=A+B").unwrap();
        assert_eq!(r.probable_email().unwrap().as_str(), "a@b.co");
    }

    #[test]
    fn honeypot_detection() {
        assert!(RawSubmission::from_pairs([("_gotcha", "x")]).is_honeypot_filled("_gotcha"));
        assert!(!RawSubmission::from_pairs([("_gotcha", " ")]).is_honeypot_filled("_gotcha"));
    }

    #[test]
    fn non_object_json_is_refused() {
        assert!(RawSubmission::from_json(b"[1,2]").is_err());
        assert!(RawSubmission::from_json(b"{").is_err());
        assert!(RawSubmission::from_json(br#"{"email":{"a":1}}"#).is_err());
    }

    #[test]
    fn phone_alone_is_enough_contact() {
        let raw = RawSubmission::from_pairs([("phone", "+40712345678")]);
        let mut f = form();
        f.fields[0].required = false;
        assert!(raw.validate(&f).is_ok());
        assert!(RawSubmission::from_pairs([("name", "x")])
            .validate(&f)
            .is_err());
    }
}
