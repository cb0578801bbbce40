//! The Art 15 facts an access request answers besides the data itself: why each category is
//! processed, on what basis, who receives it, how long it is kept and where it came from. Data,
//! not prose in a template, so the access export and `docs/dsar-execution.md` say the same.
//! Retention periods come from [`DataCategory::retention`], the single statement of them.

use serde::Serialize;
use serde_json::{json, Value};

use crate::inventory::DataCategory;

use super::job::JobScope;

/// What the platform tells a data subject about one category of their data.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CategoryFacts {
    pub category: DataCategory,
    pub purposes: &'static str,
    pub legal_basis: &'static str,
    pub recipients: &'static str,
    pub source: &'static str,
}

/// The processors every category shares (Art 28 sub-processors).
pub const HOSTING: &str =
    "Amazon Web Services (hosting, storage, email delivery), as sub-processor";

/// The right every answer names (Art 15(1)(f), Art 77).
pub const COMPLAINT: &str =
    "You may lodge a complaint with a supervisory authority, in particular in the EU member state of your residence, place of work or of the alleged infringement.";

/// The categories of a tenant's lead data: the tenant is the controller, the platform its
/// processor.
pub const TENANT_CATEGORIES: &[CategoryFacts] = &[
    CategoryFacts {
        category: DataCategory::CrmContent,
        purposes: "answering your enquiry and managing the business relationship you started through the tenant's form (contact details, answers, notes, pipeline records, attachments; a submission the spam defence held apart for the tenant's review is kept 30 days)",
        legal_basis: "as the tenant (controller) decided: steps at your request before a contract (Art 6(1)(b)) or its legitimate interest (Art 6(1)(f)), or your consent",
        recipients: "the tenant and its team members (by email too, when the tenant has a form's notifications carry the answers); systems the tenant connected through webhooks (identifiers only); the platform as the tenant's processor",
        source: "you, through the tenant's web form, or the tenant (imported or entered by its team)",
    },
    CategoryFacts {
        category: DataCategory::MarketingPreferences,
        purposes: "proof of the consents you gave or withdrew, with the text version you saw",
        legal_basis: "legal obligation to demonstrate consent (Art 7(1))",
        recipients: "the tenant; the platform as processor",
        source: "you, through the tenant's web form",
    },
    CategoryFacts {
        category: DataCategory::TechnicalUsage,
        purposes: "security and abuse prevention of the form (IP address, user agent, referrer, page URL)",
        legal_basis: "legitimate interest in securing the service (Art 6(1)(f))",
        recipients: "the tenant; the platform as processor",
        source: "your browser, when you submitted the form",
    },
];

/// The categories of the platform's own account data: the platform is the controller.
pub const ACCOUNT_CATEGORIES: &[CategoryFacts] = &[
    CategoryFacts {
        category: DataCategory::AccountProfile,
        purposes: "providing your account: sign-in, team roles, multi-factor authentication, \
                   sessions, the API keys you created",
        legal_basis: "performance of the contract (Art 6(1)(b))",
        recipients: "the platform; your tenant's owners and admins (team list)",
        source: "you, and your use of the service (login metadata)",
    },
    CategoryFacts {
        category: DataCategory::TechnicalUsage,
        purposes: "protecting your account: the IP address and user agent of your last login",
        legal_basis: "legitimate interest in the security of the service (Art 6(1)(f)), Art 32",
        recipients: "the platform",
        source: "your browser, when you logged in",
    },
    CategoryFacts {
        category: DataCategory::SecurityLog,
        purposes: "protecting accounts: logins, failures, password, role and MFA changes, API \
                   keys created and revoked",
        legal_basis: "legitimate interest in the security of the service (Art 6(1)(f)), Art 32",
        recipients: "the platform",
        source: "your use of the service",
    },
    CategoryFacts {
        category: DataCategory::Billing,
        purposes: "invoicing and accounting for the subscription you are the billing contact of",
        legal_basis:
            "legal obligation (Art 6(1)(c)): accounting law; exempt from erasure (Art 17(3)(b))",
        recipients:
            "the platform; the payment provider (Stripe) as processor; tax authorities on request",
        source: "you and the payment provider",
    },
];

/// Where this deployment stores and processes data: the AWS region it runs in, from its
/// configuration (`AWS_REGION`, which Lambda sets to the region the stack is deployed in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub region: String,
}

/// Where a region is, and whether storing data there is a transfer out of the EEA.
enum Zone {
    Eea,
    /// Outside the EEA under an adequacy decision (its reference).
    Adequate(&'static str),
    /// The United States: a transfer, under the EU-US Data Privacy Framework.
    UnitedStates,
    /// Elsewhere (or unknown): a transfer, under the Standard Contractual Clauses.
    Other,
}

fn region_zone(region: &str) -> (&'static str, Zone) {
    match region {
        "eu-central-1" => ("Frankfurt, Germany", Zone::Eea),
        "eu-west-1" => ("Ireland", Zone::Eea),
        "eu-west-3" => ("Paris, France", Zone::Eea),
        "eu-north-1" => ("Stockholm, Sweden", Zone::Eea),
        "eu-south-1" => ("Milan, Italy", Zone::Eea),
        "eu-south-2" => ("Aragon, Spain", Zone::Eea),
        "eu-west-2" => (
            "London, United Kingdom",
            Zone::Adequate("the Commission's adequacy decision for the United Kingdom (2021)"),
        ),
        "eu-central-2" => (
            "Zurich, Switzerland",
            Zone::Adequate("the Commission's adequacy decision for Switzerland (2000/518/EC)"),
        ),
        r if r.starts_with("us-") => ("the United States", Zone::UnitedStates),
        _ => ("outside the EEA", Zone::Other),
    }
}

impl Deployment {
    /// Where the data is stored, and the mechanism when that is outside the EEA.
    fn location(&self) -> Value {
        let (place, zone) = region_zone(&self.region);
        let (in_eea, transfer) = match zone {
            Zone::Eea => (
                true,
                "none: your data is stored and processed in the EEA".to_string(),
            ),
            Zone::Adequate(decision) => (
                false,
                format!("your data is stored in {place}, under {decision} (Art 45)"),
            ),
            Zone::UnitedStates => (
                false,
                format!(
                    "your data is stored in {place} by Amazon Web Services, under the EU-US Data Privacy Framework (Art 45) and the Standard Contractual Clauses of the AWS Data Processing Addendum (Art 46(2)(c))"
                ),
            ),
            Zone::Other => (
                false,
                format!(
                    "your data is stored in AWS region {} ({place}) under the Standard Contractual Clauses of the AWS Data Processing Addendum (Art 46(2)(c))",
                    self.region
                ),
            ),
        };
        json!({
            "region": self.region,
            "location": place,
            "in_eea": in_eea,
            "transfers_outside_eea": transfer,
        })
    }
}

/// The transfer mechanism of each processor that may reach the data from outside the EEA.
fn processor_transfers(scope: &JobScope) -> Vec<Value> {
    let mut out = vec![json!({
        "processor": "Amazon Web Services",
        "mechanism": "support and operations access from outside the region only under the Standard Contractual Clauses of the AWS Data Processing Addendum (Art 46(2)(c))",
    })];
    if matches!(scope, JobScope::Account) {
        out.push(json!({
            "processor": "Stripe (payment provider, billing records)",
            "mechanism": "Stripe Payments Europe (Ireland), with onward transfers to Stripe, Inc. (United States) under the EU-US Data Privacy Framework (Art 45) and Standard Contractual Clauses (Art 46(2)(c))",
        }));
    }
    out
}

/// The facts for a job's scope, as the access export carries them.
pub fn facts(scope: &JobScope, deployment: &Deployment) -> Value {
    let (controller, categories) = match scope {
        JobScope::Tenant { tenant_id } => (
            format!("the tenant {tenant_id} (the platform processes your data on its behalf)"),
            TENANT_CATEGORIES,
        ),
        JobScope::Account => ("the platform".to_string(), ACCOUNT_CATEGORIES),
    };
    let categories: Vec<Value> = categories
        .iter()
        .map(|c| {
            json!({
                "category": c.category,
                "purposes": c.purposes,
                "legal_basis": c.legal_basis,
                "recipients": format!("{}; {HOSTING}", c.recipients),
                "retention": c.category.retention(),
                "source": c.source,
            })
        })
        .collect();
    json!({
        "controller": controller,
        "categories": categories,
        "keyed_hashes": "your email and phone are also stored as keyed hashes (blind indexes) to find your records without a searchable copy; after an erasure, the keyed hash of the email you proved is kept in a suppression list so you are not re-collected or re-imported (your phone only if the controller chose so when approving the erasure)",
        "withdrawal_and_marketing_objection": "take effect as soon as your request is verified, without waiting for the controller, and cannot be refused or extended",
        "objection_to_legitimate_interest": "your data is restricted (kept, not otherwise processed) as soon as your request is verified; the controller then either records compelling legitimate grounds that override your interests (you are told them and your right to complain, and the restriction is lifted) or upholds your objection, and your data is then erased",
        "automated_decision_making": "none",
        "data_location": deployment.location(),
        "processor_transfers": processor_transfers(scope),
        "your_rights": "access, rectification, erasure, restriction, objection, portability, withdrawal of consent",
        "complaint": COMPLAINT,
    })
}

/// The legal basis named for billing records kept after an erasure.
pub const BILLING_KEPT_BASIS: &str = "GDPR Art 17(3)(b): legal obligation to keep accounting documents (Romanian Law 82/1991, 5 years from 1 July of the year after the financial year); kept restricted to storage";

/// The reason named for items under a legal hold kept after an erasure.
pub const LEGAL_HOLD_BASIS: &str =
    "GDPR Art 17(3)(e): under a legal hold for the establishment, exercise or defence of legal claims; kept restricted to storage";

#[cfg(test)]
mod tests {
    use super::*;
    use shared_core::domain::TenantId;

    #[test]
    fn facts_name_every_category_with_its_retention_and_the_right_to_complain() {
        let eu = Deployment {
            region: "eu-central-1".into(),
        };
        let f = facts(
            &JobScope::Tenant {
                tenant_id: TenantId::parse("t1").unwrap(),
            },
            &eu,
        );
        let cats = f["categories"].as_array().unwrap();
        assert_eq!(cats.len(), TENANT_CATEGORIES.len());
        assert_eq!(
            cats[0]["retention"],
            DataCategory::CrmContent.retention(),
            "retention comes from the inventory"
        );
        assert!(f["complaint"].as_str().unwrap().contains("supervisory"));
        assert!(f["objection_to_legitimate_interest"]
            .as_str()
            .unwrap()
            .contains("restricted"));
        let a = facts(&JobScope::Account, &eu);
        assert!(a["categories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["category"] == "billing"));
    }

    #[test]
    fn the_data_location_and_transfers_come_from_the_configured_region() {
        let scope = JobScope::Account;
        let at = |region: &str| {
            facts(
                &scope,
                &Deployment {
                    region: region.into(),
                },
            )["data_location"]
                .clone()
        };
        let eu = at("eu-central-1");
        assert_eq!(eu["region"], "eu-central-1");
        assert_eq!(eu["in_eea"], true);
        assert!(eu["transfers_outside_eea"]
            .as_str()
            .unwrap()
            .starts_with("none"));
        let us = at("us-east-1");
        assert_eq!(us["in_eea"], false);
        assert!(us["transfers_outside_eea"]
            .as_str()
            .unwrap()
            .contains("Data Privacy Framework"));
        let uk = at("eu-west-2");
        assert!(uk["transfers_outside_eea"]
            .as_str()
            .unwrap()
            .contains("adequacy decision for the United Kingdom"));
        let far = at("ap-southeast-2");
        assert!(far["transfers_outside_eea"]
            .as_str()
            .unwrap()
            .contains("ap-southeast-2"));
        let stripe = facts(
            &scope,
            &Deployment {
                region: "eu-central-1".into(),
            },
        )["processor_transfers"]
            .to_string();
        assert!(
            stripe.contains("Stripe"),
            "the account scope names the payment provider"
        );
        let tenant = facts(
            &JobScope::Tenant {
                tenant_id: TenantId::parse("t1").unwrap(),
            },
            &Deployment {
                region: "eu-central-1".into(),
            },
        )["processor_transfers"]
            .to_string();
        assert!(!tenant.contains("Stripe"));
    }
}
