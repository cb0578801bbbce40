use serde::{Deserialize, Serialize};

use super::ids::{FormId, TenantId};

/// The honeypot field name a form uses unless it names its own.
pub const DEFAULT_HONEYPOT: &str = "_gotcha";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Email,
    Phone,
    /// One line of text (name, company, a custom short answer).
    Text,
    /// Free text (a message).
    LongText,
}

impl FieldKind {
    pub fn default_max_len(self) -> usize {
        match self {
            FieldKind::Email => 254,
            FieldKind::Phone => 32,
            FieldKind::Text => 200,
            FieldKind::LongText => 5000,
        }
    }
}

/// One field of a form. The names `email`, `phone`, `name` and `company` are the lead's contact
/// fields; every other field is kept with the submission only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDef {
    pub name: String,
    pub kind: FieldKind,
    #[serde(default)]
    pub required: bool,
    /// Characters, not bytes. Capped by the kind's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
}

impl FieldDef {
    pub fn max_len(&self) -> usize {
        self.max_len.unwrap_or_else(|| self.kind.default_max_len())
    }
}

/// A consent the form asks for, with the exact text shown and its version. A submission records
/// the key and version it was given under; the text itself stays here, versioned, as proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentDef {
    /// Submitted as `consent_<key>`.
    pub key: String,
    pub version: String,
    pub text: String,
    /// A consent the submission cannot go without (e.g. acknowledging the privacy notice).
    #[serde(default)]
    pub required: bool,
}

/// A form as lead intake needs it. The tenant id comes from this stored record, never from the
/// request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormRecord {
    pub form_id: FormId,
    pub tenant_id: TenantId,
    pub name: String,
    pub enabled: bool,
    pub fields: Vec<FieldDef>,
    pub consents: Vec<ConsentDef>,
    /// Exact origins (`scheme://host[:port]`) allowed to post from a browser.
    pub allowed_origins: Vec<String>,
    /// Where a plain HTML form post is sent after success (303).
    pub redirect_url: String,
    pub honeypot_field: String,
    /// At most this many submissions a day (UTC), set by the tenant; `None`: no cap but the
    /// monthly quota.
    pub daily_cap: Option<u32>,
}

/// The largest daily cap a form may have.
pub const MAX_DAILY_CAP: u32 = 1_000_000;

impl FormRecord {
    /// The contact form a tenant gets when it only names the form: email, name and message.
    pub fn default_fields() -> Vec<FieldDef> {
        vec![
            FieldDef {
                name: "email".into(),
                kind: FieldKind::Email,
                required: true,
                max_len: None,
            },
            FieldDef {
                name: "name".into(),
                kind: FieldKind::Text,
                required: false,
                max_len: None,
            },
            FieldDef {
                name: "message".into(),
                kind: FieldKind::LongText,
                required: false,
                max_len: None,
            },
        ]
    }

    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }

    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    /// Suspended by the platform (abuse, unpaid): no new submissions.
    Suspended,
    /// Closed by its owner: in the grace period before erasure; no new submissions.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    pub tenant_id: TenantId,
    pub status: TenantStatus,
}
