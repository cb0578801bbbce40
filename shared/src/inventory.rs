//! The data inventory: every attribute the platform stores, declared once, with its data
//! category from the privacy requirements (`docs/privacy.md`). Access, erasure and retention
//! iterate over these declarations; a test fails when code stores an attribute that is not here.

use serde::Serialize;

/// The data categories of the privacy requirements; every personal attribute is in exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataCategory {
    /// Name, business name, email, phone, password hash, role, login metadata.
    AccountProfile,
    /// Lead contact details, submissions, notes, pipeline records, attachments.
    CrmContent,
    /// Plan, invoices, payment status, billing contact, limited payment metadata.
    Billing,
    /// IP address, user agent, device ids, referrer, page URL.
    TechnicalUsage,
    SecurityLog,
    SupportCommunications,
    /// Consent records, newsletter consent, campaign responses.
    MarketingPreferences,
}

impl DataCategory {
    /// The default retention rule of the category, as the requirements state it.
    pub fn retention(self) -> &'static str {
        match self {
            DataCategory::AccountProfile => {
                "while the account is active, then a 30-day grace period, then erased"
            }
            DataCategory::CrmContent => {
                "controlled by the tenant; erased with the workspace after closure + grace period"
            }
            DataCategory::Billing => {
                "5 years from 1 July of the year after the financial year (RO Law 82/1991)"
            }
            DataCategory::TechnicalUsage => "90 days, then removed attribute by attribute",
            DataCategory::SecurityLog => "180 days",
            DataCategory::SupportCommunications => "3 years after the last contact",
            DataCategory::MarketingPreferences => {
                "as long as the consent is relied on, plus 3 years (proof)"
            }
        }
    }
}

/// Which table an item lives in (the template's logical ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Table {
    Tenants,
    SecurityLog,
    Leads,
    Privacy,
    Ops,
    /// Billing & transactions: subscription state, invoices, payments, refunds, webhook events.
    Billing,
    /// Platform configuration: plans by provider price.
    Plans,
}

/// How an attribute relates to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Personal data in clear.
    Personal(DataCategory),
    /// A keyed hash of personal data: pseudonymous, still personal data, never reversible
    /// without the key.
    Pseudonymous(DataCategory),
    /// Keys, ids, timestamps, counters and configuration: not about a person on its own.
    Structural,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Attribute {
    pub table: Table,
    /// The kind of item, by its sort-key prefix (`LEAD`, `SUB#`, ...).
    pub item: &'static str,
    pub name: &'static str,
    pub kind: Kind,
    pub description: &'static str,
}

use DataCategory::*;
use Kind::*;

const fn a(
    table: Table,
    item: &'static str,
    name: &'static str,
    kind: Kind,
    description: &'static str,
) -> Attribute {
    Attribute {
        table,
        item,
        name,
        kind,
        description,
    }
}

pub const ATTRIBUTES: &[Attribute] = &[
    // tenants table: tenant record
    a(Table::Tenants, "TENANT", "pk", Structural, "key"),
    a(Table::Tenants, "TENANT", "sk", Structural, "key"),
    a(
        Table::Tenants,
        "TENANT",
        "tenant_id",
        Structural,
        "tenant id",
    ),
    a(
        Table::Tenants,
        "TENANT",
        "status",
        Structural,
        "active, suspended or closed",
    ),
    a(
        Table::Tenants,
        "TENANT",
        "business_name",
        Personal(AccountProfile),
        "the customer's business name",
    ),
    a(
        Table::Tenants,
        "TENANT",
        "owner_user_id",
        Structural,
        "owner",
    ),
    a(
        Table::Tenants,
        "TENANT",
        "created_at",
        Structural,
        "timestamp",
    ),
    a(
        Table::Tenants,
        "TENANT",
        "closed_at",
        Structural,
        "closure time",
    ),
    a(
        Table::Tenants,
        "TENANT",
        "erase_after",
        Structural,
        "end of the closure grace period",
    ),
    // tenants table: user
    a(Table::Tenants, "USER#", "pk", Structural, "key"),
    a(Table::Tenants, "USER#", "sk", Structural, "key"),
    a(Table::Tenants, "USER#", "tenant_id", Structural, "tenant"),
    a(Table::Tenants, "USER#", "user_id", Structural, "user id"),
    a(
        Table::Tenants,
        "USER#",
        "email",
        Personal(AccountProfile),
        "login email",
    ),
    a(
        Table::Tenants,
        "USER#",
        "name",
        Personal(AccountProfile),
        "name",
    ),
    a(
        Table::Tenants,
        "USER#",
        "phone",
        Personal(AccountProfile),
        "phone",
    ),
    a(
        Table::Tenants,
        "USER#",
        "role",
        Personal(AccountProfile),
        "role",
    ),
    a(
        Table::Tenants,
        "USER#",
        "password_hash",
        Personal(AccountProfile),
        "argon2id PHC string",
    ),
    a(
        Table::Tenants,
        "USER#",
        "email_verified",
        Structural,
        "flag",
    ),
    a(
        Table::Tenants,
        "USER#",
        "created_at",
        Structural,
        "timestamp",
    ),
    a(Table::Tenants, "USER#", "mfa_enabled", Structural, "flag"),
    a(
        Table::Tenants,
        "USER#",
        "totp_secret",
        Personal(AccountProfile),
        "TOTP secret (authentication safeguard)",
    ),
    a(
        Table::Tenants,
        "USER#",
        "totp_pending_secret",
        Personal(AccountProfile),
        "TOTP secret awaiting confirmation",
    ),
    a(
        Table::Tenants,
        "USER#",
        "totp_last_step",
        Structural,
        "replay protection",
    ),
    a(
        Table::Tenants,
        "USER#",
        "recovery_hashes",
        Pseudonymous(AccountProfile),
        "salted hashes of recovery codes",
    ),
    a(
        Table::Tenants,
        "USER#",
        "last_login_at",
        Personal(AccountProfile),
        "login metadata",
    ),
    a(
        Table::Tenants,
        "USER#",
        "last_login_ip",
        Personal(AccountProfile),
        "login metadata",
    ),
    a(
        Table::Tenants,
        "USER#",
        "last_login_ua",
        Personal(AccountProfile),
        "login metadata",
    ),
    // tenants table: login index
    a(
        Table::Tenants,
        "LOGIN",
        "pk",
        Pseudonymous(AccountProfile),
        "email blind index",
    ),
    a(Table::Tenants, "LOGIN", "sk", Structural, "key"),
    a(Table::Tenants, "LOGIN", "tenant_id", Structural, "tenant"),
    a(Table::Tenants, "LOGIN", "user_id", Structural, "user"),
    // tenants table: session
    a(Table::Tenants, "SESSION", "pk", Structural, "key"),
    a(Table::Tenants, "SESSION", "sk", Structural, "key"),
    a(
        Table::Tenants,
        "SESSION",
        "gsi1pk",
        Structural,
        "lists a user's sessions",
    ),
    a(
        Table::Tenants,
        "SESSION",
        "gsi1sk",
        Structural,
        "lists a user's sessions",
    ),
    a(Table::Tenants, "SESSION", "session_id", Structural, "id"),
    a(Table::Tenants, "SESSION", "user_id", Structural, "user"),
    a(Table::Tenants, "SESSION", "tenant_id", Structural, "tenant"),
    a(
        Table::Tenants,
        "SESSION",
        "refresh_hash",
        Structural,
        "hash of the live refresh secret",
    ),
    a(
        Table::Tenants,
        "SESSION",
        "previous_hashes",
        Structural,
        "hashes of rotated secrets (reuse detection)",
    ),
    a(
        Table::Tenants,
        "SESSION",
        "created_at",
        Personal(AccountProfile),
        "login metadata",
    ),
    a(
        Table::Tenants,
        "SESSION",
        "last_used_at",
        Personal(AccountProfile),
        "login metadata",
    ),
    a(
        Table::Tenants,
        "SESSION",
        "idle_expires_at",
        Structural,
        "expiry",
    ),
    a(
        Table::Tenants,
        "SESSION",
        "absolute_expires_at",
        Structural,
        "expiry",
    ),
    a(
        Table::Tenants,
        "SESSION",
        "revoked_at",
        Structural,
        "end time",
    ),
    a(
        Table::Tenants,
        "SESSION",
        "ip",
        Personal(AccountProfile),
        "login metadata",
    ),
    a(
        Table::Tenants,
        "SESSION",
        "user_agent",
        Personal(AccountProfile),
        "login metadata",
    ),
    a(Table::Tenants, "SESSION", "expires_at", Structural, "TTL"),
    // tenants table: one-time token
    a(
        Table::Tenants,
        "TOKEN",
        "pk",
        Structural,
        "hash of the secret",
    ),
    a(Table::Tenants, "TOKEN", "sk", Structural, "key"),
    a(
        Table::Tenants,
        "TOKEN",
        "kind",
        Structural,
        "verification, reset or invitation",
    ),
    a(Table::Tenants, "TOKEN", "tenant_id", Structural, "tenant"),
    a(Table::Tenants, "TOKEN", "user_id", Structural, "user"),
    a(
        Table::Tenants,
        "TOKEN",
        "email",
        Personal(AccountProfile),
        "invited address",
    ),
    a(Table::Tenants, "TOKEN", "role", Structural, "invited role"),
    a(Table::Tenants, "TOKEN", "invited_by", Structural, "inviter"),
    a(Table::Tenants, "TOKEN", "expires_at", Structural, "TTL"),
    // security log
    a(Table::SecurityLog, "", "pk", Structural, "key"),
    a(
        Table::SecurityLog,
        "",
        "sk",
        Structural,
        "time and event id",
    ),
    a(
        Table::SecurityLog,
        "",
        "event",
        Personal(SecurityLog),
        "what happened",
    ),
    a(Table::SecurityLog, "", "at", Personal(SecurityLog), "when"),
    a(Table::SecurityLog, "", "tenant_id", Structural, "tenant"),
    a(
        Table::SecurityLog,
        "",
        "user_id",
        Personal(SecurityLog),
        "whom it concerns",
    ),
    a(
        Table::SecurityLog,
        "",
        "actor_user_id",
        Personal(SecurityLog),
        "who acted",
    ),
    a(Table::SecurityLog, "", "session_id", Structural, "session"),
    a(
        Table::SecurityLog,
        "",
        "ip_hash",
        Pseudonymous(SecurityLog),
        "keyed hash of the client IP",
    ),
    a(
        Table::SecurityLog,
        "",
        "email_hash",
        Pseudonymous(SecurityLog),
        "blind index of the email tried",
    ),
    a(
        Table::SecurityLog,
        "",
        "detail",
        Structural,
        "non-personal detail",
    ),
    a(
        Table::SecurityLog,
        "",
        "expires_at",
        Structural,
        "TTL (180 days)",
    ),
    // tenants table: form
    a(Table::Tenants, "FORM", "pk", Structural, "key"),
    a(Table::Tenants, "FORM", "sk", Structural, "key"),
    a(
        Table::Tenants,
        "FORM",
        "gsi1pk",
        Structural,
        "lists a tenant's forms",
    ),
    a(
        Table::Tenants,
        "FORM",
        "gsi1sk",
        Structural,
        "lists a tenant's forms",
    ),
    a(Table::Tenants, "FORM", "tenant_id", Structural, "owner"),
    a(Table::Tenants, "FORM", "form_id", Structural, "public id"),
    a(Table::Tenants, "FORM", "name", Structural, "form name"),
    a(
        Table::Tenants,
        "FORM",
        "enabled",
        Structural,
        "accepting submissions",
    ),
    a(
        Table::Tenants,
        "FORM",
        "fields",
        Structural,
        "field definitions",
    ),
    a(
        Table::Tenants,
        "FORM",
        "consents",
        Structural,
        "consent texts with versions",
    ),
    a(
        Table::Tenants,
        "FORM",
        "allowed_origins",
        Structural,
        "CORS origins",
    ),
    a(
        Table::Tenants,
        "FORM",
        "redirect_url",
        Structural,
        "after a plain form post",
    ),
    a(
        Table::Tenants,
        "FORM",
        "honeypot_field",
        Structural,
        "spam trap field name",
    ),
    a(
        Table::Tenants,
        "FORM",
        "special_category_basis",
        Structural,
        "the tenant's legal basis for special-category fields",
    ),
    a(
        Table::Tenants,
        "FORM",
        "consent_history",
        Structural,
        "every consent text version the form showed (proof)",
    ),
    a(
        Table::Tenants,
        "FORM",
        "created_at",
        Structural,
        "timestamp",
    ),
    a(
        Table::Tenants,
        "FORM",
        "updated_at",
        Structural,
        "timestamp",
    ),
    a(
        Table::Tenants,
        "FORM",
        "deleted_at",
        Structural,
        "retired: refused by intake, kept for its consent texts",
    ),
    a(
        Table::Tenants,
        "FORM",
        "version",
        Structural,
        "optimistic concurrency",
    ),
    // tenants table: the tenant's pipeline
    a(Table::Tenants, "PIPELINE", "pk", Structural, "key"),
    a(Table::Tenants, "PIPELINE", "sk", Structural, "key"),
    a(
        Table::Tenants,
        "PIPELINE",
        "stages",
        Structural,
        "ordered stage ids and names",
    ),
    a(
        Table::Tenants,
        "PIPELINE",
        "updated_at",
        Structural,
        "timestamp",
    ),
    // leads table: lead
    a(Table::Leads, "LEAD", "pk", Structural, "key"),
    a(Table::Leads, "LEAD", "sk", Structural, "key"),
    a(Table::Leads, "LEAD", "tenant_id", Structural, "controller"),
    a(Table::Leads, "LEAD", "lead_id", Structural, "lead id"),
    a(
        Table::Leads,
        "LEAD",
        "email",
        Personal(CrmContent),
        "contact email (normalized)",
    ),
    a(
        Table::Leads,
        "LEAD",
        "phone",
        Personal(CrmContent),
        "contact phone (E.164)",
    ),
    a(
        Table::Leads,
        "LEAD",
        "name",
        Personal(CrmContent),
        "contact name",
    ),
    a(
        Table::Leads,
        "LEAD",
        "company",
        Personal(CrmContent),
        "contact company",
    ),
    a(
        Table::Leads,
        "LEAD",
        "email_bidx",
        Pseudonymous(CrmContent),
        "email blind index",
    ),
    a(
        Table::Leads,
        "LEAD",
        "phone_bidx",
        Pseudonymous(CrmContent),
        "phone blind index",
    ),
    a(
        Table::Leads,
        "LEAD",
        "source_form_id",
        Structural,
        "first form",
    ),
    a(Table::Leads, "LEAD", "stage", Structural, "pipeline stage"),
    a(
        Table::Leads,
        "LEAD",
        "tenant_pk",
        Structural,
        "by_tenant index",
    ),
    a(
        Table::Leads,
        "LEAD",
        "stage_pk",
        Structural,
        "by_stage index",
    ),
    a(
        Table::Leads,
        "LEAD",
        "created_sk",
        Structural,
        "index sort key",
    ),
    a(Table::Leads, "LEAD", "created_at", Structural, "timestamp"),
    a(Table::Leads, "LEAD", "updated_at", Structural, "timestamp"),
    a(
        Table::Leads,
        "LEAD",
        "last_submission_at",
        Structural,
        "timestamp",
    ),
    a(
        Table::Leads,
        "LEAD",
        "submission_count",
        Structural,
        "counter",
    ),
    a(
        Table::Leads,
        "LEAD",
        "version",
        Structural,
        "optimistic concurrency",
    ),
    // leads table: lead, as an import writes or fills it (lead-transfers)
    a(
        Table::Leads,
        "LEAD",
        "legal_basis",
        Structural,
        "lawful basis the tenant recorded for an imported lead",
    ),
    a(
        Table::Leads,
        "LEAD",
        "source_import_id",
        Structural,
        "the import that created the lead",
    ),
    a(
        Table::Leads,
        "LEAD",
        "last_import_id",
        Structural,
        "the last import that filled blank contact fields",
    ),
    // leads table: lead, as the lead workspace edits it (leads-api)
    a(
        Table::Leads,
        "LEAD",
        "owner_user_id",
        Structural,
        "team member the lead is assigned to",
    ),
    a(
        Table::Leads,
        "LEAD",
        "restricted",
        Structural,
        "processing restricted on the data subject's request",
    ),
    a(
        Table::Leads,
        "LEAD",
        "restricted_at",
        Structural,
        "timestamp",
    ),
    // leads table: note on a lead
    a(Table::Leads, "NOTE#", "pk", Structural, "key"),
    a(Table::Leads, "NOTE#", "sk", Structural, "key"),
    a(Table::Leads, "NOTE#", "tenant_id", Structural, "controller"),
    a(Table::Leads, "NOTE#", "lead_id", Structural, "lead id"),
    a(Table::Leads, "NOTE#", "note_id", Structural, "note id"),
    a(
        Table::Leads,
        "NOTE#",
        "text",
        Personal(CrmContent),
        "what a team member wrote about the lead",
    ),
    a(
        Table::Leads,
        "NOTE#",
        "author_user_id",
        Personal(CrmContent),
        "who wrote it (actor)",
    ),
    a(Table::Leads, "NOTE#", "created_at", Structural, "timestamp"),
    // leads table: stage history of a lead (pipeline record)
    a(Table::Leads, "STAGE#", "pk", Structural, "key"),
    a(
        Table::Leads,
        "STAGE#",
        "sk",
        Structural,
        "key (time and id)",
    ),
    a(Table::Leads, "STAGE#", "change_id", Structural, "id"),
    a(
        Table::Leads,
        "STAGE#",
        "from_stage",
        Structural,
        "stage before",
    ),
    a(
        Table::Leads,
        "STAGE#",
        "to_stage",
        Structural,
        "stage after",
    ),
    a(
        Table::Leads,
        "STAGE#",
        "actor_user_id",
        Personal(CrmContent),
        "who moved the lead (actor)",
    ),
    a(Table::Leads, "STAGE#", "at", Structural, "timestamp"),
    // leads table: audit trail of a lead (field names only, never values)
    a(Table::Leads, "AUDIT#", "pk", Structural, "key"),
    a(
        Table::Leads,
        "AUDIT#",
        "sk",
        Structural,
        "key (time and id)",
    ),
    a(Table::Leads, "AUDIT#", "entry_id", Structural, "id"),
    a(
        Table::Leads,
        "AUDIT#",
        "action",
        Structural,
        "what was done",
    ),
    a(
        Table::Leads,
        "AUDIT#",
        "fields",
        Structural,
        "names of the fields changed",
    ),
    a(
        Table::Leads,
        "AUDIT#",
        "actor_user_id",
        Personal(CrmContent),
        "who acted (absent: the platform, on a data-subject request)",
    ),
    a(Table::Leads, "AUDIT#", "at", Structural, "timestamp"),
    // leads table: submission
    a(Table::Leads, "SUB#", "pk", Structural, "key"),
    a(Table::Leads, "SUB#", "sk", Structural, "key"),
    a(Table::Leads, "SUB#", "tenant_id", Structural, "controller"),
    a(Table::Leads, "SUB#", "lead_id", Structural, "lead id"),
    a(
        Table::Leads,
        "SUB#",
        "submission_id",
        Structural,
        "submission id",
    ),
    a(Table::Leads, "SUB#", "form_id", Structural, "form"),
    a(Table::Leads, "SUB#", "received_at", Structural, "timestamp"),
    a(
        Table::Leads,
        "SUB#",
        "fields",
        Personal(CrmContent),
        "the answers as submitted",
    ),
    a(
        Table::Leads,
        "SUB#",
        "consents",
        Personal(MarketingPreferences),
        "consents given or refused, with text versions (proof)",
    ),
    a(
        Table::Leads,
        "SUB#",
        "ip",
        Personal(TechnicalUsage),
        "source IP address",
    ),
    a(
        Table::Leads,
        "SUB#",
        "user_agent",
        Personal(TechnicalUsage),
        "browser user agent",
    ),
    a(
        Table::Leads,
        "SUB#",
        "referrer",
        Personal(TechnicalUsage),
        "referring URL",
    ),
    a(
        Table::Leads,
        "SUB#",
        "page_url",
        Personal(TechnicalUsage),
        "page the form was on",
    ),
    a(
        Table::Leads,
        "SUB#",
        "tech_exp",
        Structural,
        "retention index of the technical data",
    ),
    // leads table: attachment record, under its lead (the object is in the attachments bucket)
    a(Table::Leads, "ATT#", "pk", Structural, "key"),
    a(Table::Leads, "ATT#", "sk", Structural, "key"),
    a(Table::Leads, "ATT#", "tenant_id", Structural, "controller"),
    a(Table::Leads, "ATT#", "lead_id", Structural, "lead id"),
    a(
        Table::Leads,
        "ATT#",
        "attachment_id",
        Structural,
        "attachment id",
    ),
    a(
        Table::Leads,
        "ATT#",
        "filename",
        Personal(CrmContent),
        "file name as uploaded (may name a person)",
    ),
    a(
        Table::Leads,
        "ATT#",
        "content_type",
        Structural,
        "allowed media type",
    ),
    a(Table::Leads, "ATT#", "size", Structural, "bytes"),
    a(
        Table::Leads,
        "ATT#",
        "uploaded_by",
        Structural,
        "user who attached it",
    ),
    a(Table::Leads, "ATT#", "created_at", Structural, "timestamp"),
    a(
        Table::Leads,
        "ATT#",
        "object_key",
        Structural,
        "S3 key under the tenant and lead prefix",
    ),
    // leads table: import record, in the tenant's transfer log (proof of the legal basis)
    a(Table::Leads, "IMPORT#", "pk", Structural, "key"),
    a(Table::Leads, "IMPORT#", "sk", Structural, "key"),
    a(
        Table::Leads,
        "IMPORT#",
        "tenant_id",
        Structural,
        "controller",
    ),
    a(
        Table::Leads,
        "IMPORT#",
        "import_id",
        Structural,
        "import id",
    ),
    a(
        Table::Leads,
        "IMPORT#",
        "status",
        Structural,
        "running or completed",
    ),
    a(
        Table::Leads,
        "IMPORT#",
        "legal_basis",
        Structural,
        "lawful basis of the batch",
    ),
    a(
        Table::Leads,
        "IMPORT#",
        "source",
        Personal(CrmContent),
        "where the tenant got the data (free text)",
    ),
    a(
        Table::Leads,
        "IMPORT#",
        "created_by",
        Structural,
        "user who imported",
    ),
    a(
        Table::Leads,
        "IMPORT#",
        "created_at",
        Structural,
        "timestamp",
    ),
    a(
        Table::Leads,
        "IMPORT#",
        "started_at",
        Structural,
        "timestamp of the current run",
    ),
    a(
        Table::Leads,
        "IMPORT#",
        "finished_at",
        Structural,
        "timestamp",
    ),
    a(
        Table::Leads,
        "IMPORT#",
        "report",
        Structural,
        "counts, row numbers and rule messages (never values)",
    ),
    // leads table: export record, in the tenant's transfer log (who disclosed what, when)
    a(Table::Leads, "EXPORT#", "pk", Structural, "key"),
    a(Table::Leads, "EXPORT#", "sk", Structural, "key"),
    a(
        Table::Leads,
        "EXPORT#",
        "tenant_id",
        Structural,
        "controller",
    ),
    a(
        Table::Leads,
        "EXPORT#",
        "export_id",
        Structural,
        "export id",
    ),
    a(Table::Leads, "EXPORT#", "format", Structural, "csv or json"),
    a(
        Table::Leads,
        "EXPORT#",
        "count",
        Structural,
        "leads exported",
    ),
    a(
        Table::Leads,
        "EXPORT#",
        "object_key",
        Structural,
        "S3 key in the exports bucket",
    ),
    a(
        Table::Leads,
        "EXPORT#",
        "created_by",
        Structural,
        "user who exported",
    ),
    a(
        Table::Leads,
        "EXPORT#",
        "created_at",
        Structural,
        "timestamp",
    ),
    a(
        Table::Leads,
        "EXPORT#",
        "object_expires_at",
        Structural,
        "when the bucket lifecycle deletes the file",
    ),
    // privacy table: suppression entry
    a(Table::Privacy, "", "pk", Structural, "key"),
    a(
        Table::Privacy,
        "",
        "sk",
        Pseudonymous(CrmContent),
        "blind index of an erased person",
    ),
    a(Table::Privacy, "", "created_at", Structural, "timestamp"),
    a(
        Table::Privacy,
        "",
        "reason",
        Structural,
        "why the entry exists",
    ),
    // ops table: rate limit window
    a(Table::Ops, "RATE", "pk", Structural, "key"),
    a(Table::Ops, "RATE", "sk", Structural, "key"),
    a(
        Table::Ops,
        "RATE",
        "n",
        Structural,
        "submissions in the window",
    ),
    a(
        Table::Ops,
        "RATE",
        "ip_*",
        Pseudonymous(TechnicalUsage),
        "per-IP count keyed by a keyed IP hash",
    ),
    a(Table::Ops, "RATE", "expires_at", Structural, "TTL"),
    // ops table: login throttle
    a(
        Table::Ops,
        "THROTTLE",
        "pk",
        Pseudonymous(SecurityLog),
        "blind index and/or IP hash",
    ),
    a(Table::Ops, "THROTTLE", "sk", Structural, "key"),
    a(
        Table::Ops,
        "THROTTLE",
        "failures",
        Structural,
        "failed logins in the window",
    ),
    a(Table::Ops, "THROTTLE", "locked_until", Structural, "wait"),
    a(
        Table::Ops,
        "THROTTLE",
        "expires_at",
        Structural,
        "TTL (window end)",
    ),
    // ops table: idempotency record
    a(
        Table::Ops,
        "IDEM",
        "pk",
        Structural,
        "key (holds a keyed hash of the client's key)",
    ),
    a(Table::Ops, "IDEM", "sk", Structural, "key"),
    a(
        Table::Ops,
        "IDEM",
        "body_hash",
        Structural,
        "keyed hash of the request body",
    ),
    a(
        Table::Ops,
        "IDEM",
        "lead_id",
        Structural,
        "replayed response",
    ),
    a(
        Table::Ops,
        "IDEM",
        "submission_id",
        Structural,
        "replayed response",
    ),
    a(Table::Ops, "IDEM", "expires_at", Structural, "TTL"),
    // ops table: monthly submission usage
    a(
        Table::Ops,
        "USAGE",
        "pk",
        Structural,
        "key (tenant and month)",
    ),
    a(Table::Ops, "USAGE", "sk", Structural, "key"),
    a(
        Table::Ops,
        "USAGE",
        "n",
        Structural,
        "submissions this month (quota)",
    ),
    a(
        Table::Ops,
        "USAGE",
        "expires_at",
        Structural,
        "TTL (40 days after the month)",
    ),
    // billing table: received provider event (exactly-once effect)
    a(
        Table::Billing,
        "EVENT",
        "pk",
        Structural,
        "key (provider and event id)",
    ),
    a(Table::Billing, "EVENT", "sk", Structural, "key"),
    a(
        Table::Billing,
        "EVENT",
        "provider",
        Structural,
        "payment provider",
    ),
    a(
        Table::Billing,
        "EVENT",
        "event_id",
        Structural,
        "provider event id",
    ),
    a(
        Table::Billing,
        "EVENT",
        "event_type",
        Structural,
        "provider event type",
    ),
    a(
        Table::Billing,
        "EVENT",
        "created",
        Structural,
        "provider timestamp",
    ),
    a(
        Table::Billing,
        "EVENT",
        "received_at",
        Structural,
        "timestamp",
    ),
    a(
        Table::Billing,
        "EVENT",
        "outcome",
        Structural,
        "applied, stale, superseded, ignored, unlinked, customer_conflict",
    ),
    a(Table::Billing, "EVENT", "tenant_id", Structural, "tenant"),
    a(
        Table::Billing,
        "EVENT",
        "object_id",
        Structural,
        "provider object id",
    ),
    a(Table::Billing, "EVENT", "expires_at", Structural, "TTL"),
    // billing table: provider customer -> tenant
    a(
        Table::Billing,
        "CUSTOMER",
        "pk",
        Structural,
        "key (provider and customer id)",
    ),
    a(Table::Billing, "CUSTOMER", "sk", Structural, "key"),
    a(
        Table::Billing,
        "CUSTOMER",
        "provider",
        Structural,
        "payment provider",
    ),
    a(
        Table::Billing,
        "CUSTOMER",
        "customer_id",
        Structural,
        "provider customer id",
    ),
    a(
        Table::Billing,
        "CUSTOMER",
        "tenant_id",
        Structural,
        "tenant",
    ),
    a(
        Table::Billing,
        "CUSTOMER",
        "linked_at",
        Structural,
        "timestamp",
    ),
    a(
        Table::Billing,
        "CUSTOMER",
        "deleted_at",
        Structural,
        "customer deleted at the provider",
    ),
    // billing table: counter of unhandled event types
    a(
        Table::Billing,
        "COUNTER",
        "pk",
        Structural,
        "key (provider and event type)",
    ),
    a(Table::Billing, "COUNTER", "sk", Structural, "key"),
    a(
        Table::Billing,
        "COUNTER",
        "provider",
        Structural,
        "payment provider",
    ),
    a(
        Table::Billing,
        "COUNTER",
        "event_type",
        Structural,
        "event type",
    ),
    a(
        Table::Billing,
        "COUNTER",
        "n",
        Structural,
        "events received",
    ),
    a(
        Table::Billing,
        "COUNTER",
        "last_seen_at",
        Structural,
        "timestamp",
    ),
    // billing table: the tenant's subscription state
    a(Table::Billing, "SUBSCRIPTION", "pk", Structural, "key"),
    a(Table::Billing, "SUBSCRIPTION", "sk", Structural, "key"),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "tenant_id",
        Structural,
        "tenant",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "provider",
        Structural,
        "payment provider",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "customer_id",
        Structural,
        "provider customer id",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "subscription_id",
        Structural,
        "provider subscription id",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "price_id",
        Structural,
        "provider price id",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "plan",
        Personal(Billing),
        "plan",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "monthly_submissions",
        Structural,
        "plan entitlement",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "seats",
        Structural,
        "plan entitlement",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "forms",
        Structural,
        "plan entitlement",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "status",
        Personal(Billing),
        "subscription and payment status",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "status_since",
        Personal(Billing),
        "when the status began",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "current_period_end",
        Personal(Billing),
        "end of the paid period",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "cancel_at_period_end",
        Personal(Billing),
        "cancellation requested",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "cancel_at",
        Personal(Billing),
        "scheduled cancellation",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "canceled_at",
        Personal(Billing),
        "cancellation time",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "ended_at",
        Personal(Billing),
        "end time",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "trial_end",
        Personal(Billing),
        "end of the trial",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "last_event_created",
        Structural,
        "ordering of provider events",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "last_event_id",
        Structural,
        "last applied event",
    ),
    a(
        Table::Billing,
        "SUBSCRIPTION",
        "updated_at",
        Structural,
        "timestamp",
    ),
    // billing table: invoice (accounting document; legal retention, exempt from erasure)
    a(Table::Billing, "INVOICE#", "pk", Structural, "key"),
    a(Table::Billing, "INVOICE#", "sk", Structural, "key"),
    a(
        Table::Billing,
        "INVOICE#",
        "tenant_id",
        Structural,
        "tenant",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "provider",
        Structural,
        "payment provider",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "invoice_id",
        Structural,
        "provider invoice id",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "number",
        Personal(Billing),
        "invoice number",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "status",
        Personal(Billing),
        "draft, open, paid, uncollectible, void",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "currency",
        Personal(Billing),
        "currency",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "amount_due",
        Personal(Billing),
        "amount (minor units)",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "amount_paid",
        Personal(Billing),
        "amount (minor units)",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "amount_remaining",
        Personal(Billing),
        "amount (minor units)",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "issued_at",
        Personal(Billing),
        "document date",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "due_at",
        Personal(Billing),
        "due date",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "paid_at",
        Personal(Billing),
        "payment date",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "period_start",
        Personal(Billing),
        "billed period",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "period_end",
        Personal(Billing),
        "billed period",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "hosted_invoice_url",
        Personal(Billing),
        "the provider's page of the invoice",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "subscription_id",
        Structural,
        "provider subscription id",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "customer_id",
        Structural,
        "provider customer id",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "billing_reason",
        Personal(Billing),
        "why the invoice was issued",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "payment_status",
        Personal(Billing),
        "outcome of the latest payment attempt",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "attempt_count",
        Personal(Billing),
        "payment attempts",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "next_payment_attempt",
        Personal(Billing),
        "next automatic attempt",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "last_event_created",
        Structural,
        "ordering of provider events",
    ),
    a(
        Table::Billing,
        "INVOICE#",
        "retain_until",
        Structural,
        "legal retention end (RO Law 82/1991)",
    ),
    // billing table: payment attempt (limited payment metadata; never card data)
    a(Table::Billing, "PAYMENT#", "pk", Structural, "key"),
    a(Table::Billing, "PAYMENT#", "sk", Structural, "key"),
    a(
        Table::Billing,
        "PAYMENT#",
        "tenant_id",
        Structural,
        "tenant",
    ),
    a(
        Table::Billing,
        "PAYMENT#",
        "provider",
        Structural,
        "payment provider",
    ),
    a(
        Table::Billing,
        "PAYMENT#",
        "invoice_id",
        Structural,
        "provider invoice id",
    ),
    a(
        Table::Billing,
        "PAYMENT#",
        "event_id",
        Structural,
        "provider event id",
    ),
    a(
        Table::Billing,
        "PAYMENT#",
        "outcome",
        Personal(Billing),
        "succeeded, failed, action_required",
    ),
    a(
        Table::Billing,
        "PAYMENT#",
        "amount",
        Personal(Billing),
        "amount (minor units)",
    ),
    a(
        Table::Billing,
        "PAYMENT#",
        "currency",
        Personal(Billing),
        "currency",
    ),
    a(
        Table::Billing,
        "PAYMENT#",
        "at",
        Personal(Billing),
        "attempt time",
    ),
    a(
        Table::Billing,
        "PAYMENT#",
        "attempt_count",
        Personal(Billing),
        "attempt number",
    ),
    a(
        Table::Billing,
        "PAYMENT#",
        "payment_intent_id",
        Structural,
        "provider payment id",
    ),
    a(
        Table::Billing,
        "PAYMENT#",
        "charge_id",
        Structural,
        "provider charge id",
    ),
    a(
        Table::Billing,
        "PAYMENT#",
        "retain_until",
        Structural,
        "legal retention end (RO Law 82/1991)",
    ),
    // billing table: refunds of a charge, against its invoice
    a(Table::Billing, "REFUND#", "pk", Structural, "key"),
    a(Table::Billing, "REFUND#", "sk", Structural, "key"),
    a(Table::Billing, "REFUND#", "tenant_id", Structural, "tenant"),
    a(
        Table::Billing,
        "REFUND#",
        "provider",
        Structural,
        "payment provider",
    ),
    a(
        Table::Billing,
        "REFUND#",
        "charge_id",
        Structural,
        "provider charge id",
    ),
    a(
        Table::Billing,
        "REFUND#",
        "invoice_id",
        Structural,
        "provider invoice id",
    ),
    a(
        Table::Billing,
        "REFUND#",
        "amount",
        Personal(Billing),
        "charged amount (minor units)",
    ),
    a(
        Table::Billing,
        "REFUND#",
        "amount_refunded",
        Personal(Billing),
        "refunded so far (minor units)",
    ),
    a(
        Table::Billing,
        "REFUND#",
        "currency",
        Personal(Billing),
        "currency",
    ),
    a(
        Table::Billing,
        "REFUND#",
        "fully_refunded",
        Personal(Billing),
        "whole charge refunded",
    ),
    a(
        Table::Billing,
        "REFUND#",
        "refunded_at",
        Personal(Billing),
        "refund time",
    ),
    a(
        Table::Billing,
        "REFUND#",
        "payment_intent_id",
        Structural,
        "provider payment id",
    ),
    a(
        Table::Billing,
        "REFUND#",
        "last_event_created",
        Structural,
        "ordering of provider events",
    ),
    a(
        Table::Billing,
        "REFUND#",
        "retain_until",
        Structural,
        "legal retention end (RO Law 82/1991)",
    ),
    // plans table: plan by provider price
    a(
        Table::Plans,
        "PLAN",
        "pk",
        Structural,
        "key (provider and price id)",
    ),
    a(Table::Plans, "PLAN", "sk", Structural, "key"),
    a(
        Table::Plans,
        "PLAN",
        "provider",
        Structural,
        "payment provider",
    ),
    a(
        Table::Plans,
        "PLAN",
        "price_id",
        Structural,
        "provider price id",
    ),
    a(Table::Plans, "PLAN", "plan", Structural, "plan name"),
    a(
        Table::Plans,
        "PLAN",
        "monthly_submissions",
        Structural,
        "entitlement",
    ),
    a(Table::Plans, "PLAN", "seats", Structural, "entitlement"),
    a(Table::Plans, "PLAN", "forms", Structural, "entitlement"),
];

/// The declaration of an attribute of an item, found by table, sort key and name.
/// `ip_*` style declarations match any attribute with that prefix.
pub fn declaration(table: Table, sort_key: &str, name: &str) -> Option<&'static Attribute> {
    ATTRIBUTES
        .iter()
        .filter(|a| a.table == table && sort_key.starts_with(a.item))
        .find(|a| match a.name.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => a.name == name,
        })
}

/// Personal attributes of a category: what retention removes and an access request returns.
pub fn personal_attributes(category: DataCategory) -> impl Iterator<Item = &'static Attribute> {
    ATTRIBUTES
        .iter()
        .filter(move |a| matches!(a.kind, Personal(c) | Pseudonymous(c) if c == category))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn technical_data_is_declared_attribute_by_attribute() {
        let names: Vec<_> = personal_attributes(TechnicalUsage)
            .filter(|a| a.table == Table::Leads)
            .map(|a| a.name)
            .collect();
        assert_eq!(names, ["ip", "user_agent", "referrer", "page_url"]);
    }

    #[test]
    fn lookups_match_prefixes() {
        assert!(declaration(Table::Leads, "SUB#01h", "ip").is_some());
        assert!(declaration(Table::Ops, "RATE", "ip_abcd").is_some());
        assert!(declaration(Table::Leads, "LEAD", "shoe_size").is_none());
    }

    #[test]
    fn every_declaration_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for a in ATTRIBUTES {
            assert!(
                seen.insert((a.table, a.item, a.name)),
                "{a:?} declared twice"
            );
        }
    }
}
