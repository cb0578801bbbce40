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
    /// The spam defence's layers and threshold (issue 19): no third party, no cookie.
    pub spam: SpamSettings,
}

/// A form's spam defence: which layers score a submission, and the score at which it is
/// quarantined (kept apart for the tenant to review) instead of becoming a lead. Every layer
/// is on by default where it cannot turn a person away: the proof of work is solved by the
/// embed snippet's script and only a missing one from a form that `requires` it scores high, so
/// a plain HTML form without JavaScript still submits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpamSettings {
    /// Proof of work: the challenge's difficulty is `pow_max_number` (the solver tries up to
    /// that many hashes; half of it on average). `false`: the challenge is trivial (it still
    /// carries the signed issue time the time trap reads).
    pub pow: bool,
    pub pow_max_number: u32,
    /// A submission without a solved challenge scores the threshold (a form only scripts post).
    pub pow_required: bool,
    /// Time trap: submitted sooner than this after the challenge was issued is too fast.
    pub time_trap: bool,
    pub min_seconds: u32,
    /// More links than this in the free-text answers scores the threshold.
    pub max_links: u32,
    /// Addresses of a known disposable-mail domain (the list shipped with the project).
    pub disposable_emails: bool,
    /// Lower-case domains (`example.com` also blocks `mail.example.com`) and words.
    pub blocked_email_domains: Vec<String>,
    pub blocked_words: Vec<String>,
    /// At this score or above a submission is quarantined.
    pub threshold: u32,
}

impl Default for SpamSettings {
    fn default() -> Self {
        Self {
            pow: true,
            pow_max_number: SpamSettings::DEFAULT_POW_MAX_NUMBER,
            pow_required: false,
            time_trap: true,
            min_seconds: 3,
            max_links: 2,
            disposable_emails: true,
            blocked_email_domains: vec![],
            blocked_words: vec![],
            threshold: SpamSettings::DEFAULT_THRESHOLD,
        }
    }
}

impl SpamSettings {
    /// About 25,000 SHA-256 hashes on average: well under a second in a browser.
    pub const DEFAULT_POW_MAX_NUMBER: u32 = 50_000;
    pub const MAX_POW_MAX_NUMBER: u32 = 10_000_000;
    /// The score a layer adds when it is sure (one such finding quarantines by default).
    pub const DEFAULT_THRESHOLD: u32 = 5;
    pub const MAX_THRESHOLD: u32 = 100;
    pub const MAX_MIN_SECONDS: u32 = 3600;
    pub const MAX_LIST_LEN: usize = 200;
}

/// A tenant's own blocklists (issue 19: "per tenant blocklists"), applied to every form of the
/// tenant on top of the form's own. Kept on the tenant's record, which lead intake reads in the
/// same request as the form, so they cost a submission no request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantSpamLists {
    /// Lower-case domains (`example.com` also blocks `mail.example.com`).
    pub blocked_email_domains: Vec<String>,
    /// Lower-case words or short phrases.
    pub blocked_words: Vec<String>,
}

impl TenantSpamLists {
    /// The form's settings with the tenant's lists added to its own.
    pub fn applied_to(&self, form: &SpamSettings) -> SpamSettings {
        let mut out = form.clone();
        for d in &self.blocked_email_domains {
            if !out.blocked_email_domains.contains(d) {
                out.blocked_email_domains.push(d.clone());
            }
        }
        for w in &self.blocked_words {
            if !out.blocked_words.contains(w) {
                out.blocked_words.push(w.clone());
            }
        }
        out
    }
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
