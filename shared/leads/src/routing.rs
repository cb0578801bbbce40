//! Which lead an address leads to (the rule; the DynamoDB side is `crate::dynamo::routing`).
//!
//! A lead's id is derived from the address of its first submission, but its address can be
//! edited. An address leads to the lead its route item names, else to its derived lead if that
//! lead's routing key is still this address, else to no lead. See `docs/data-model.md`.

use shared_core::domain::LeadId;

/// Which contact a routing key is the blind index of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteBy {
    Email,
    Phone,
}

/// A lead's routing key: its email's blind index, or its phone's when it has no email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteKey {
    pub bidx: String,
    pub by: RouteBy,
}

impl RouteKey {
    pub fn of(email_bidx: Option<&str>, phone_bidx: Option<&str>) -> Option<RouteKey> {
        match (email_bidx, phone_bidx) {
            (Some(e), _) => Some(RouteKey {
                bidx: e.to_string(),
                by: RouteBy::Email,
            }),
            (None, Some(p)) => Some(RouteKey {
                bidx: p.to_string(),
                by: RouteBy::Phone,
            }),
            (None, None) => None,
        }
    }
}

/// Where an address leads, from what intake read in its one `BatchGetItem`: the address's
/// route item (if any) and its derived lead (if any, with that lead's routing key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// The address leads to this existing lead.
    Existing(LeadId),
    /// No lead yet: a new one at the derived id (its put is conditioned on absence).
    NewAtDerived,
    /// No lead, and the derived id is taken by a lead that moved to another address: a new
    /// lead with a fresh id and a route item to it.
    NewRouted,
}

pub fn decide(
    route: Option<&LeadId>,
    derived: &LeadId,
    derived_exists: bool,
    derived_owned_by_key: bool,
) -> Routed {
    match route {
        Some(id) => Routed::Existing(id.clone()),
        None if !derived_exists => Routed::NewAtDerived,
        None if derived_owned_by_key => Routed::Existing(derived.clone()),
        None => Routed::NewRouted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> LeadId {
        LeadId::parse(s).unwrap()
    }

    #[test]
    fn an_address_follows_its_route_then_its_derived_lead_if_still_its_own() {
        let d = id("ld-derived");
        assert_eq!(
            decide(Some(&id("ld-x")), &d, true, false),
            Routed::Existing(id("ld-x"))
        );
        assert_eq!(decide(None, &d, false, false), Routed::NewAtDerived);
        assert_eq!(decide(None, &d, true, true), Routed::Existing(d.clone()));
        // The derived lead moved to another address: never attach to it.
        assert_eq!(decide(None, &d, true, false), Routed::NewRouted);
    }

    #[test]
    fn the_routing_key_is_the_email_else_the_phone() {
        assert_eq!(
            RouteKey::of(Some("e"), Some("p")).unwrap().by,
            RouteBy::Email
        );
        assert_eq!(RouteKey::of(None, Some("p")).unwrap().by, RouteBy::Phone);
        assert!(RouteKey::of(None, None).is_none());
    }
}
