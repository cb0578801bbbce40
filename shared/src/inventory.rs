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
    Leads,
    Privacy,
    Ops,
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
    a(Table::Tenants, "TENANT", "tenant_id", Structural, "tenant id"),
    a(Table::Tenants, "TENANT", "status", Structural, "active, suspended or closed"),
    // tenants table: form
    a(Table::Tenants, "FORM", "pk", Structural, "key"),
    a(Table::Tenants, "FORM", "sk", Structural, "key"),
    a(Table::Tenants, "FORM", "gsi1pk", Structural, "lists a tenant's forms"),
    a(Table::Tenants, "FORM", "gsi1sk", Structural, "lists a tenant's forms"),
    a(Table::Tenants, "FORM", "tenant_id", Structural, "owner"),
    a(Table::Tenants, "FORM", "form_id", Structural, "public id"),
    a(Table::Tenants, "FORM", "name", Structural, "form name"),
    a(Table::Tenants, "FORM", "enabled", Structural, "accepting submissions"),
    a(Table::Tenants, "FORM", "fields", Structural, "field definitions"),
    a(Table::Tenants, "FORM", "consents", Structural, "consent texts with versions"),
    a(Table::Tenants, "FORM", "allowed_origins", Structural, "CORS origins"),
    a(Table::Tenants, "FORM", "redirect_url", Structural, "after a plain form post"),
    a(Table::Tenants, "FORM", "honeypot_field", Structural, "spam trap field name"),
    // leads table: lead
    a(Table::Leads, "LEAD", "pk", Structural, "key"),
    a(Table::Leads, "LEAD", "sk", Structural, "key"),
    a(Table::Leads, "LEAD", "tenant_id", Structural, "controller"),
    a(Table::Leads, "LEAD", "lead_id", Structural, "lead id"),
    a(Table::Leads, "LEAD", "email", Personal(CrmContent), "contact email (normalized)"),
    a(Table::Leads, "LEAD", "phone", Personal(CrmContent), "contact phone (E.164)"),
    a(Table::Leads, "LEAD", "name", Personal(CrmContent), "contact name"),
    a(Table::Leads, "LEAD", "company", Personal(CrmContent), "contact company"),
    a(Table::Leads, "LEAD", "email_bidx", Pseudonymous(CrmContent), "email blind index"),
    a(Table::Leads, "LEAD", "phone_bidx", Pseudonymous(CrmContent), "phone blind index"),
    a(Table::Leads, "LEAD", "source_form_id", Structural, "first form"),
    a(Table::Leads, "LEAD", "created_at", Structural, "timestamp"),
    a(Table::Leads, "LEAD", "updated_at", Structural, "timestamp"),
    a(Table::Leads, "LEAD", "last_submission_at", Structural, "timestamp"),
    a(Table::Leads, "LEAD", "submission_count", Structural, "counter"),
    a(Table::Leads, "LEAD", "version", Structural, "optimistic concurrency"),
    // leads table: submission
    a(Table::Leads, "SUB#", "pk", Structural, "key"),
    a(Table::Leads, "SUB#", "sk", Structural, "key"),
    a(Table::Leads, "SUB#", "tenant_id", Structural, "controller"),
    a(Table::Leads, "SUB#", "lead_id", Structural, "lead id"),
    a(Table::Leads, "SUB#", "submission_id", Structural, "submission id"),
    a(Table::Leads, "SUB#", "form_id", Structural, "form"),
    a(Table::Leads, "SUB#", "received_at", Structural, "timestamp"),
    a(Table::Leads, "SUB#", "fields", Personal(CrmContent), "the answers as submitted"),
    a(Table::Leads, "SUB#", "consents", Personal(MarketingPreferences), "consents given or refused, with text versions (proof)"),
    a(Table::Leads, "SUB#", "ip", Personal(TechnicalUsage), "source IP address"),
    a(Table::Leads, "SUB#", "user_agent", Personal(TechnicalUsage), "browser user agent"),
    a(Table::Leads, "SUB#", "referrer", Personal(TechnicalUsage), "referring URL"),
    a(Table::Leads, "SUB#", "page_url", Personal(TechnicalUsage), "page the form was on"),
    a(Table::Leads, "SUB#", "tech_exp", Structural, "retention index of the technical data"),
    // privacy table: suppression entry
    a(Table::Privacy, "", "pk", Structural, "key"),
    a(Table::Privacy, "", "sk", Pseudonymous(CrmContent), "blind index of an erased person"),
    a(Table::Privacy, "", "created_at", Structural, "timestamp"),
    a(Table::Privacy, "", "reason", Structural, "why the entry exists"),
    // ops table: rate limit window
    a(Table::Ops, "RATE", "pk", Structural, "key"),
    a(Table::Ops, "RATE", "sk", Structural, "key"),
    a(Table::Ops, "RATE", "n", Structural, "submissions in the window"),
    a(Table::Ops, "RATE", "ip_*", Pseudonymous(TechnicalUsage), "per-IP count keyed by a keyed IP hash"),
    a(Table::Ops, "RATE", "expires_at", Structural, "TTL"),
    // ops table: idempotency record
    a(Table::Ops, "IDEM", "pk", Structural, "key (holds a keyed hash of the client's key)"),
    a(Table::Ops, "IDEM", "sk", Structural, "key"),
    a(Table::Ops, "IDEM", "body_hash", Structural, "keyed hash of the request body"),
    a(Table::Ops, "IDEM", "lead_id", Structural, "replayed response"),
    a(Table::Ops, "IDEM", "submission_id", Structural, "replayed response"),
    a(Table::Ops, "IDEM", "expires_at", Structural, "TTL"),
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
    ATTRIBUTES.iter().filter(move |a| {
        matches!(a.kind, Personal(c) | Pseudonymous(c) if c == category)
    })
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
            assert!(seen.insert((a.table, a.item, a.name)), "{a:?} declared twice");
        }
    }
}
