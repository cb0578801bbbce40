//! Forms as a tenant's team manages them. Lead intake reads the same stored record as a
//! [`FormRecord`]; this is the fuller view: which fields collect a special category of data and
//! the legal basis recorded for them, and every consent text the form ever showed.
//!
//! Rules enforced here:
//! - a field of a special category (GDPR Art. 9: health, religion, …; Art. 10: criminal records)
//!   is refused unless the form records the tenant's legal basis (`special_category_basis`);
//! - a consent text, once published under a version, keeps that version's meaning: a changed
//!   text gets a new version, and every version ever shown stays on the form
//!   (`consent_history`), so the version a past submission recorded always resolves to its text;
//! - origins are exact `scheme://host[:port]` (as browsers send them), the redirect URL is
//!   `https` (`http` only for localhost), so personal data is never sent over plain HTTP;
//! - a daily cap, when set, is a whole number from 1 to [`MAX_DAILY_CAP`]: the most submissions
//!   the form takes in a day (UTC), so a flood cannot spend the month's quota in an afternoon.

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use super::urls::{parse_origin, parse_redirect_url};
use shared_core::clock::rfc3339;
use shared_core::domain::{
    ConsentDef, FieldDef, FieldKind, FormId, FormRecord, SpamSettings, TenantId, DEFAULT_HONEYPOT,
    MAX_DAILY_CAP,
};
use shared_core::error::{AppError, FieldErrors};

/// Special categories of personal data (GDPR Art. 9, and Art. 10 criminal records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecialCategory {
    EthnicOrigin,
    PoliticalOpinions,
    Religion,
    TradeUnion,
    Genetic,
    Biometric,
    Health,
    SexLife,
    CriminalRecord,
}

/// A field with its special-category marker. Stored as the field's JSON with one more key, so
/// lead intake, which reads the list as [`FieldDef`]s, is unaffected by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormField {
    #[serde(flatten)]
    pub def: FieldDef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub special_category: Option<SpecialCategory>,
}

/// A consent text as it was published, kept for as long as the form exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentVersion {
    pub key: String,
    pub version: String,
    pub text: String,
    pub published_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormDefinition {
    pub form_id: FormId,
    pub tenant_id: TenantId,
    pub name: String,
    pub enabled: bool,
    pub fields: Vec<FormField>,
    pub consents: Vec<ConsentDef>,
    pub consent_history: Vec<ConsentVersion>,
    pub allowed_origins: Vec<String>,
    pub redirect_url: String,
    pub honeypot_field: String,
    /// The tenant's legal basis for the special categories its fields collect.
    pub special_category_basis: Option<String>,
    /// At most this many submissions a day (UTC); `None`: only the monthly quota.
    pub daily_cap: Option<u32>,
    /// The spam defence's layers and threshold (`crate::spam`).
    pub spam: SpamSettings,
    /// `None` on forms written before the forms API (seeded ones).
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// Optimistic concurrency of edits (a lost update could drop consent history).
    pub version: i64,
}

impl FormDefinition {
    /// What lead intake needs of it.
    pub fn record(&self) -> FormRecord {
        FormRecord {
            form_id: self.form_id.clone(),
            tenant_id: self.tenant_id.clone(),
            name: self.name.clone(),
            enabled: self.enabled,
            fields: self.fields.iter().map(|f| f.def.clone()).collect(),
            consents: self.consents.clone(),
            allowed_origins: self.allowed_origins.clone(),
            redirect_url: self.redirect_url.clone(),
            honeypot_field: self.honeypot_field.clone(),
            daily_cap: self.daily_cap,
            spam: self.spam.clone(),
        }
    }

    /// A new form from a create request: `name`, `allowed_origins` and `redirect_url` are
    /// required (neither an origin nor a thank-you page can be guessed); the rest defaults to a
    /// contact form (email required, name, message), enabled, honeypot `_gotcha`, no consents.
    pub fn create(
        input: FormInput,
        tenant: TenantId,
        form_id: FormId,
        now: OffsetDateTime,
    ) -> Result<Self, AppError> {
        let mut missing = FieldErrors::new();
        for (name, absent) in [
            ("name", input.name.is_none()),
            ("allowed_origins", input.allowed_origins.is_none()),
            ("redirect_url", input.redirect_url.is_none()),
        ] {
            if absent {
                missing.insert(name.into(), "is required".into());
            }
        }
        if !missing.is_empty() {
            return Err(AppError::invalid_fields(missing));
        }
        let at = rfc3339(now);
        let base = FormDefinition {
            form_id,
            tenant_id: tenant,
            name: String::new(),
            enabled: true,
            fields: FormRecord::default_fields()
                .into_iter()
                .map(|def| FormField {
                    def,
                    special_category: None,
                })
                .collect(),
            consents: vec![],
            consent_history: vec![],
            allowed_origins: vec![],
            redirect_url: String::new(),
            honeypot_field: DEFAULT_HONEYPOT.into(),
            special_category_basis: None,
            daily_cap: None,
            spam: SpamSettings::default(),
            created_at: Some(at.clone()),
            updated_at: Some(at),
            version: 0,
        };
        base.apply(input, now)
    }

    /// This form with the changes of an edit applied and every rule checked again.
    pub fn apply(&self, input: FormInput, now: OffsetDateTime) -> Result<Self, AppError> {
        let mut errors = FieldErrors::new();
        let mut next = self.clone();
        next.updated_at = Some(rfc3339(now));
        next.version = self.version + 1;

        if let Some(name) = input.name {
            match plain_text(&name, 100) {
                Ok(n) => next.name = n,
                Err(m) => {
                    errors.insert("name".into(), m.into());
                }
            }
        }
        if let Some(enabled) = input.enabled {
            next.enabled = enabled;
        }
        if let Some(fields) = input.fields {
            next.fields = parse_fields(fields, &mut errors);
        }
        if let Some(hp) = input.honeypot_field {
            let hp = hp.trim().to_string();
            let ok = !hp.is_empty()
                && hp.len() <= 40
                && hp
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                && !hp.starts_with("consent_");
            if ok {
                next.honeypot_field = hp;
            } else {
                errors.insert(
                    "honeypot_field".into(),
                    "must be 1 to 40 characters of letters, digits, '_' or '-', not starting with consent_".into(),
                );
            }
        }
        if next
            .fields
            .iter()
            .any(|f| f.def.name == next.honeypot_field)
        {
            errors.insert(
                "honeypot_field".into(),
                "must not be the name of one of the form's fields".into(),
            );
        }
        if let Some(origins) = input.allowed_origins {
            if origins.len() > 20 {
                errors.insert(
                    "allowed_origins".into(),
                    "may list at most 20 origins".into(),
                );
            }
            let mut parsed: Vec<String> = Vec::with_capacity(origins.len());
            for (i, o) in origins.iter().enumerate() {
                match parse_origin(o) {
                    Ok(o) if !parsed.contains(&o) => parsed.push(o),
                    Ok(_) => {}
                    Err(m) => {
                        errors.insert(format!("allowed_origins[{i}]"), m.into());
                    }
                }
            }
            next.allowed_origins = parsed;
        }
        if let Some(url) = input.redirect_url {
            match parse_redirect_url(&url) {
                Ok(u) => next.redirect_url = u,
                Err(m) => {
                    errors.insert("redirect_url".into(), m.into());
                }
            }
        }
        if let Some(basis) = input.special_category_basis {
            next.special_category_basis = match basis {
                None => None,
                Some(b) => match plain_text(&b, 2000) {
                    Ok(b) => Some(b),
                    Err(m) => {
                        errors.insert("special_category_basis".into(), m.into());
                        None
                    }
                },
            };
        }
        if let Some(cap) = input.daily_cap {
            match cap {
                None => next.daily_cap = None,
                Some(c) => match u32::try_from(c) {
                    Ok(c) if (1..=MAX_DAILY_CAP).contains(&c) => next.daily_cap = Some(c),
                    _ => {
                        errors.insert(
                            "daily_cap".into(),
                            format!("must be a whole number from 1 to {MAX_DAILY_CAP}, or null for no cap"),
                        );
                    }
                },
            }
        }
        if let Some(spam) = input.spam {
            next.spam = spam.apply(&self.spam, &mut errors);
        }
        if let Some(consents) = input.consents {
            let (current, history) = version_consents(
                consents,
                &self.consents,
                &self.consent_history,
                now,
                &mut errors,
            );
            next.consents = current;
            next.consent_history = history;
        }

        if !errors.is_empty() {
            return Err(AppError::invalid_fields(errors));
        }
        if next.fields.iter().any(|f| f.special_category.is_some())
            && next.special_category_basis.is_none()
        {
            return Err(AppError::validation(
                "special_category_needs_legal_basis",
                "A field collects a special category of personal data (health, religion, ...): \
                 record the legal basis you rely on in special_category_basis first.",
            ));
        }
        Ok(next)
    }
}

// ---------------------------------------------------------------- input

/// A create or edit request. Absent (or `null`) keys leave the value as it is, except
/// `special_category_basis` and `daily_cap`, where `null` removes it.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub fields: Option<Vec<FieldInput>>,
    #[serde(default)]
    pub consents: Option<Vec<ConsentInput>>,
    #[serde(default)]
    pub allowed_origins: Option<Vec<String>>,
    #[serde(default)]
    pub redirect_url: Option<String>,
    #[serde(default)]
    pub honeypot_field: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub special_category_basis: Option<Option<String>>,
    /// An integer (a fraction or a string is refused as an invalid body); its range is checked
    /// with the other fields.
    #[serde(default, deserialize_with = "nullable")]
    pub daily_cap: Option<Option<i64>>,
    /// The spam defence: only the keys given change.
    #[serde(default)]
    pub spam: Option<SpamInput>,
}

/// An edit of a form's spam defence (`SpamSettings`): absent keys keep their value.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpamInput {
    #[serde(default)]
    pub pow: Option<bool>,
    #[serde(default)]
    pub pow_max_number: Option<i64>,
    #[serde(default)]
    pub pow_required: Option<bool>,
    #[serde(default)]
    pub time_trap: Option<bool>,
    #[serde(default)]
    pub min_seconds: Option<i64>,
    #[serde(default)]
    pub max_links: Option<i64>,
    #[serde(default)]
    pub disposable_emails: Option<bool>,
    #[serde(default)]
    pub blocked_email_domains: Option<Vec<String>>,
    #[serde(default)]
    pub blocked_words: Option<Vec<String>>,
    #[serde(default)]
    pub threshold: Option<i64>,
}

impl SpamInput {
    fn apply(self, current: &SpamSettings, errors: &mut FieldErrors) -> SpamSettings {
        let mut next = current.clone();
        let mut number = |key: &str, v: Option<i64>, lo: u32, hi: u32, slot: &mut u32| {
            if let Some(v) = v {
                match u32::try_from(v) {
                    Ok(v) if (lo..=hi).contains(&v) => *slot = v,
                    _ => {
                        errors.insert(
                            format!("spam.{key}"),
                            format!("must be a whole number from {lo} to {hi}"),
                        );
                    }
                }
            }
        };
        number(
            "pow_max_number",
            self.pow_max_number,
            1000,
            SpamSettings::MAX_POW_MAX_NUMBER,
            &mut next.pow_max_number,
        );
        number(
            "min_seconds",
            self.min_seconds,
            0,
            SpamSettings::MAX_MIN_SECONDS,
            &mut next.min_seconds,
        );
        number("max_links", self.max_links, 0, 100, &mut next.max_links);
        number(
            "threshold",
            self.threshold,
            1,
            SpamSettings::MAX_THRESHOLD,
            &mut next.threshold,
        );
        for (flag, slot) in [
            (self.pow, &mut next.pow),
            (self.pow_required, &mut next.pow_required),
            (self.time_trap, &mut next.time_trap),
            (self.disposable_emails, &mut next.disposable_emails),
        ] {
            if let Some(v) = flag {
                *slot = v;
            }
        }
        if let Some(domains) = self.blocked_email_domains {
            match crate::spam::rules::domain_list(&domains) {
                Ok(d) => next.blocked_email_domains = d,
                Err(m) => {
                    errors.insert("spam.blocked_email_domains".into(), m.into());
                }
            }
        }
        if let Some(words) = self.blocked_words {
            match crate::spam::rules::word_list(&words) {
                Ok(w) => next.blocked_words = w,
                Err(m) => {
                    errors.insert("spam.blocked_words".into(), m.into());
                }
            }
        }
        next
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldInput {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldKind,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub max_len: Option<usize>,
    #[serde(default)]
    pub special_category: Option<SpecialCategory>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    pub key: String,
    /// Omitted: the current version when the text is unchanged, else a new one (`v1`, `v2`, …).
    #[serde(default)]
    pub version: Option<String>,
    pub text: String,
    #[serde(default)]
    pub required: bool,
}

/// `Some(None)` for an explicit `null`, `None` for an absent key (with `#[serde(default)]`).
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Kinds whose value is a lead's contact field must keep their meaning: a field named `email`
/// is an email field, `phone` a phone field (intake fills the lead's contact from them).
fn parse_fields(input: Vec<FieldInput>, errors: &mut FieldErrors) -> Vec<FormField> {
    if input.is_empty() || input.len() > 30 {
        errors.insert("fields".into(), "must hold 1 to 30 fields".into());
    }
    let mut out: Vec<FormField> = Vec::with_capacity(input.len());
    for (i, f) in input.into_iter().enumerate() {
        let at = |what: &str| format!("fields[{i}].{what}");
        let name = f.name.trim().to_string();
        let name_ok = !name.is_empty()
            && name.len() <= 40
            && name.as_bytes()[0].is_ascii_lowercase()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !name.starts_with("consent_");
        if !name_ok {
            errors.insert(
                at("name"),
                "must be 1 to 40 characters of a-z, 0-9 or '_', start with a letter, and not start with consent_".into(),
            );
            continue;
        }
        if out.iter().any(|x| x.def.name == name) {
            errors.insert(at("name"), "is used by another field".into());
            continue;
        }
        let kind_ok = match name.as_str() {
            "email" => f.kind == FieldKind::Email,
            "phone" => f.kind == FieldKind::Phone,
            _ => true,
        };
        if !kind_ok {
            errors.insert(
                at("type"),
                format!("must be {name} for the field named {name}"),
            );
            continue;
        }
        let cap = f.kind.default_max_len();
        if let Some(m) = f.max_len {
            if m == 0 || m > cap {
                errors.insert(at("max_len"), format!("must be 1 to {cap} for this type"));
                continue;
            }
        }
        out.push(FormField {
            def: FieldDef {
                name,
                kind: f.kind,
                required: f.required,
                max_len: f.max_len,
            },
            special_category: f.special_category,
        });
    }
    out
}

/// The form's consents after an edit, and its history with every newly published text added.
fn version_consents(
    input: Vec<ConsentInput>,
    current: &[ConsentDef],
    history: &[ConsentVersion],
    now: OffsetDateTime,
    errors: &mut FieldErrors,
) -> (Vec<ConsentDef>, Vec<ConsentVersion>) {
    if input.len() > 10 {
        errors.insert("consents".into(), "may hold at most 10 consents".into());
    }
    let mut history = history.to_vec();
    // Forms written before consent history existed: their current texts count as published.
    for c in current {
        if !history
            .iter()
            .any(|h| h.key == c.key && h.version == c.version)
        {
            history.push(ConsentVersion {
                key: c.key.clone(),
                version: c.version.clone(),
                text: c.text.clone(),
                published_at: rfc3339(now),
            });
        }
    }
    let mut out: Vec<ConsentDef> = Vec::with_capacity(input.len());
    for (i, c) in input.into_iter().enumerate() {
        let at = |what: &str| format!("consents[{i}].{what}");
        let key = c.key.trim().to_string();
        let key_ok = !key.is_empty()
            && key.len() <= 40
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !key_ok {
            errors.insert(
                at("key"),
                "must be 1 to 40 characters of a-z, 0-9 or '_'".into(),
            );
            continue;
        }
        if out.iter().any(|x| x.key == key) {
            errors.insert(at("key"), "is used by another consent".into());
            continue;
        }
        let text = match plain_text(&c.text, 2000) {
            Ok(t) => t,
            Err(m) => {
                errors.insert(at("text"), m.into());
                continue;
            }
        };
        let published = |v: &str| history.iter().find(|h| h.key == key && h.version == v);
        let version = match c.version.map(|v| v.trim().to_string()) {
            Some(v) => {
                let ok = !v.is_empty()
                    && v.len() <= 40
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if !ok {
                    errors.insert(
                        at("version"),
                        "must be 1 to 40 characters of letters, digits, '.', '_' or '-'".into(),
                    );
                    continue;
                }
                if published(&v).is_some_and(|h| h.text != text) {
                    errors.insert(
                        at("version"),
                        "was published with another text; a changed text needs a new version"
                            .into(),
                    );
                    continue;
                }
                v
            }
            None => match history
                .iter()
                .rev()
                .find(|h| h.key == key && h.text == text)
            {
                Some(h) => h.version.clone(),
                None => {
                    let mut n = history.iter().filter(|h| h.key == key).count() + 1;
                    while published(&format!("v{n}")).is_some() {
                        n += 1;
                    }
                    format!("v{n}")
                }
            },
        };
        if published(&version).is_none() {
            history.push(ConsentVersion {
                key: key.clone(),
                version: version.clone(),
                text: text.clone(),
                published_at: rfc3339(now),
            });
        }
        out.push(ConsentDef {
            key,
            version,
            text,
            required: c.required,
        });
    }
    (out, history)
}

/// Trimmed, 1..=max characters, no control characters but line breaks.
fn plain_text(raw: &str, max: usize) -> Result<String, &'static str> {
    let t = raw.trim();
    if t.is_empty() {
        return Err("must not be empty");
    }
    if t.chars().count() > max {
        return Err("is too long");
    }
    if t.chars().any(|c| c.is_control() && c != '\n') {
        return Err("contains control characters");
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);

    fn create(body: serde_json::Value) -> Result<FormDefinition, AppError> {
        let input: FormInput = serde_json::from_value(body).unwrap();
        FormDefinition::create(
            input,
            TenantId::parse("t").unwrap(),
            FormId::parse("fm-1").unwrap(),
            NOW,
        )
    }

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "name": "Contact",
            "allowed_origins": ["https://www.example.com"],
            "redirect_url": "https://www.example.com/thanks"
        })
    }

    #[test]
    fn three_keys_make_a_contact_form() {
        let f = create(minimal()).unwrap();
        let names: Vec<_> = f.fields.iter().map(|x| x.def.name.as_str()).collect();
        assert_eq!(names, ["email", "name", "message"]);
        assert!(f.fields[0].def.required);
        assert!(f.enabled);
        assert_eq!(f.honeypot_field, "_gotcha");
        assert_eq!(f.record().allowed_origins, ["https://www.example.com"]);
        assert_eq!(f.version, 1);
    }

    #[test]
    fn spam_defence_is_on_by_default_and_an_edit_changes_only_the_keys_given() {
        let f = create(minimal()).unwrap();
        assert_eq!(f.spam, SpamSettings::default());
        assert!(f.spam.pow && f.spam.time_trap && f.spam.disposable_emails);
        assert!(
            !f.spam.pow_required,
            "a form without JavaScript still submits"
        );
        let input: FormInput = serde_json::from_value(serde_json::json!({"spam": {
            "min_seconds": 8, "blocked_email_domains": ["@Rival.Example"], "threshold": 10
        }}))
        .unwrap();
        let g = f.apply(input, NOW).unwrap();
        assert_eq!(g.spam.min_seconds, 8);
        assert_eq!(g.spam.blocked_email_domains, ["rival.example"]);
        assert_eq!(g.spam.threshold, 10);
        assert_eq!(g.spam.max_links, 2, "unchanged");
        assert_eq!(g.record().spam, g.spam);
        let input: FormInput = serde_json::from_value(serde_json::json!({"spam": {
            "threshold": 0, "pow_max_number": 5, "blocked_words": [""]
        }}))
        .unwrap();
        let AppError::Validation { fields, .. } = g.apply(input, NOW).unwrap_err() else {
            panic!()
        };
        let keys: Vec<&String> = fields.keys().collect();
        assert_eq!(
            keys,
            [
                "spam.blocked_words",
                "spam.pow_max_number",
                "spam.threshold"
            ]
        );
        assert!(
            serde_json::from_value::<FormInput>(serde_json::json!({"spam": {"x": 1}})).is_err()
        );
    }

    #[test]
    fn name_origins_and_redirect_are_required() {
        let AppError::Validation { fields, .. } = create(serde_json::json!({})).unwrap_err() else {
            panic!()
        };
        assert_eq!(fields.len(), 3);
    }

    #[test]
    fn special_categories_need_a_legal_basis() {
        let mut body = minimal();
        body["fields"] = serde_json::json!([
            {"name": "email", "type": "email", "required": true},
            {"name": "condition", "type": "long_text", "special_category": "health"}
        ]);
        let err = create(body.clone()).unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (400, "special_category_needs_legal_basis")
        );
        body["special_category_basis"] = serde_json::json!("Art. 9(2)(a): explicit consent");
        let f = create(body).unwrap();
        assert_eq!(f.fields[1].special_category, Some(SpecialCategory::Health));
        // Stored as FieldDef JSON plus one key: intake still reads it.
        let json = serde_json::to_string(&f.fields).unwrap();
        let as_intake: Vec<FieldDef> = serde_json::from_str(&json).unwrap();
        assert_eq!(as_intake[1].name, "condition");
        let back: Vec<FormField> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, f.fields);
        // A stored form without markers parses.
        let old: Vec<FormField> =
            serde_json::from_str(r#"[{"name":"email","kind":"email","required":true}]"#).unwrap();
        assert_eq!(old[0].special_category, None);
    }

    #[test]
    fn a_changed_consent_text_needs_a_new_version_and_old_ones_stay() {
        let mut body = minimal();
        body["consents"] = serde_json::json!([{"key": "marketing", "text": "Send me news."}]);
        let f = create(body).unwrap();
        assert_eq!(f.consents[0].version, "v1");

        let edit = |consents: serde_json::Value| -> Result<FormDefinition, AppError> {
            let input: FormInput =
                serde_json::from_value(serde_json::json!({ "consents": consents })).unwrap();
            f.apply(input, NOW)
        };
        // Same text, no version: unchanged.
        assert_eq!(
            edit(serde_json::json!([{"key": "marketing", "text": "Send me news."}]))
                .unwrap()
                .consents[0]
                .version,
            "v1"
        );
        // New text under the old version: refused.
        let err =
            edit(serde_json::json!([{"key": "marketing", "version": "v1", "text": "Other."}]))
                .unwrap_err();
        let AppError::Validation { fields, .. } = err else {
            panic!()
        };
        assert!(fields.contains_key("consents[0].version"));
        // New text without a version: v2, and v1 stays resolvable.
        let g = edit(serde_json::json!([{"key": "marketing", "text": "Send me news, weekly."}]))
            .unwrap();
        assert_eq!(g.consents[0].version, "v2");
        let versions: Vec<_> = g
            .consent_history
            .iter()
            .map(|h| (h.version.as_str(), h.text.as_str()))
            .collect();
        assert_eq!(
            versions,
            [("v1", "Send me news."), ("v2", "Send me news, weekly.")]
        );
        // Removing the consent keeps the history.
        let h = g
            .apply(
                serde_json::from_value(serde_json::json!({"consents": []})).unwrap(),
                NOW,
            )
            .unwrap();
        assert!(h.consents.is_empty());
        assert_eq!(h.consent_history.len(), 2);
    }

    #[test]
    fn a_daily_cap_is_a_whole_number_from_1_to_a_million_or_null() {
        assert_eq!(create(minimal()).unwrap().daily_cap, None);
        let mut body = minimal();
        body["daily_cap"] = serde_json::json!(50);
        let f = create(body).unwrap();
        assert_eq!((f.daily_cap, f.record().daily_cap), (Some(50), Some(50)));
        let edit = |v: serde_json::Value| {
            let input: FormInput = serde_json::from_value(serde_json::json!({ "daily_cap": v }))?;
            Ok::<_, serde_json::Error>(f.apply(input, NOW))
        };
        assert_eq!(
            edit(serde_json::json!(null)).unwrap().unwrap().daily_cap,
            None
        );
        assert_eq!(
            edit(serde_json::json!(1_000_000))
                .unwrap()
                .unwrap()
                .daily_cap,
            Some(1_000_000)
        );
        for bad in [0, -3, 1_000_001, i64::MAX] {
            let Err(AppError::Validation { fields, .. }) = edit(serde_json::json!(bad)).unwrap()
            else {
                panic!("{bad} accepted")
            };
            assert!(fields.contains_key("daily_cap"), "{bad}");
        }
        for not_an_integer in [serde_json::json!("5"), serde_json::json!(2.5)] {
            assert!(edit(not_an_integer).is_err());
        }
        // Absent: unchanged.
        let input: FormInput = serde_json::from_value(serde_json::json!({"name": "x"})).unwrap();
        assert_eq!(f.apply(input, NOW).unwrap().daily_cap, Some(50));
    }

    #[test]
    fn field_rules() {
        let mut body = minimal();
        body["fields"] = serde_json::json!([
            {"name": "email", "type": "text"},
            {"name": "Bad Name", "type": "text"},
            {"name": "note", "type": "text", "max_len": 100000},
            {"name": "consent_x", "type": "text"},
            {"name": "note", "type": "text"}
        ]);
        let AppError::Validation { fields, .. } = create(body).unwrap_err() else {
            panic!()
        };
        let keys: Vec<_> = fields.keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "fields[0].type",
                "fields[1].name",
                "fields[2].max_len",
                "fields[3].name"
            ]
        );
        let mut body = minimal();
        body["fields"] = serde_json::json!([{"name": "_gotcha", "type": "text"}]);
        assert!(
            create(body).is_err(),
            "fields starting with _ are the machinery's"
        );
    }
}
