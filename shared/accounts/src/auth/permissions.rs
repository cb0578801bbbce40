//! Roles and what each may do: one table, checked by every authenticated route through
//! [`crate::auth::caller::Caller::require`].
//!
//! | permission              | owner | admin | member | viewer | billing |
//! |-------------------------|:-----:|:-----:|:------:|:------:|:-------:|
//! | ProfileRead             |   ✓   |   ✓   |   ✓    |   ✓    |    ✓    |
//! | ProfileWrite            |   ✓   |   ✓   |   ✓    |   ✓    |    ✓    |
//! | SessionsManage          |   ✓   |   ✓   |   ✓    |   ✓    |    ✓    |
//! | MfaManage               |   ✓   |   ✓   |   ✓    |   ✓    |    ✓    |
//! | TeamRead                |   ✓   |   ✓   |   ✓    |   ✓    |         |
//! | TeamInvite              |   ✓   |   ✓   |        |        |         |
//! | TeamManage              |   ✓   |   ✓   |        |        |         |
//! | TenantClose             |   ✓   |       |        |        |         |
//! | FormsRead               |   ✓   |   ✓   |   ✓    |   ✓    |         |
//! | FormsWrite              |   ✓   |   ✓   |        |        |         |
//! | LeadsRead               |   ✓   |   ✓   |   ✓    |   ✓    |         |
//! | LeadsWrite              |   ✓   |   ✓   |   ✓    |        |         |
//! | LeadsDelete             |   ✓   |   ✓   |        |        |         |
//! | LeadsImport             |   ✓   |   ✓   |        |        |         |
//! | LeadsExport             |   ✓   |   ✓   |        |        |         |
//! | BillingRead             |   ✓   |   ✓   |        |        |    ✓    |
//! | BillingManage           |   ✓   |       |        |        |    ✓    |
//! | PrivacyRequestsRead     |   ✓   |   ✓   |        |        |         |
//! | PrivacyRequestsDecide   |   ✓   |   ✓   |        |        |         |
//!
//! Assigning roles ([`can_assign`]) is derived from this table, not listed: a role that may invite
//! may give exactly the roles whose permissions are a strict subset of its own. So an owner gives
//! admin, member, viewer and billing (never owner: ownership transfer is not offered); an admin
//! gives member and viewer but not billing, which holds `BillingManage`; nobody else gives roles.
//! Escalation is impossible by construction, whatever the table becomes.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
    Billing,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::Member,
        Role::Viewer,
        Role::Billing,
    ];

    /// Parses the stored/claimed form (`"owner"`, `"admin"`, …); exact, lowercase.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
            Role::Billing => "billing",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    ProfileRead,
    ProfileWrite,
    SessionsManage,
    MfaManage,
    TeamRead,
    TeamInvite,
    TeamManage,
    TenantClose,
    FormsRead,
    FormsWrite,
    LeadsRead,
    LeadsWrite,
    LeadsDelete,
    LeadsImport,
    LeadsExport,
    BillingRead,
    BillingManage,
    PrivacyRequestsRead,
    PrivacyRequestsDecide,
}

impl Permission {
    pub const ALL: [Permission; 19] = [
        Permission::ProfileRead,
        Permission::ProfileWrite,
        Permission::SessionsManage,
        Permission::MfaManage,
        Permission::TeamRead,
        Permission::TeamInvite,
        Permission::TeamManage,
        Permission::TenantClose,
        Permission::FormsRead,
        Permission::FormsWrite,
        Permission::LeadsRead,
        Permission::LeadsWrite,
        Permission::LeadsDelete,
        Permission::LeadsImport,
        Permission::LeadsExport,
        Permission::BillingRead,
        Permission::BillingManage,
        Permission::PrivacyRequestsRead,
        Permission::PrivacyRequestsDecide,
    ];
}

/// The permission table. Every (role, permission) pair is decided here and nowhere else.
pub const fn allows(role: Role, p: Permission) -> bool {
    use Permission as P;
    match (role, p) {
        // Everyone manages their own profile, sessions and MFA.
        (_, P::ProfileRead | P::ProfileWrite | P::SessionsManage | P::MfaManage) => true,
        (Role::Owner, _) => true,
        (Role::Admin, P::TenantClose | P::BillingManage) => false,
        (Role::Admin, _) => true,
        (Role::Member, P::TeamRead | P::FormsRead | P::LeadsRead | P::LeadsWrite) => true,
        (Role::Viewer, P::TeamRead | P::FormsRead | P::LeadsRead) => true,
        (Role::Billing, P::BillingRead | P::BillingManage) => true,
        (Role::Member | Role::Viewer | Role::Billing, _) => false,
    }
}

/// Whether every permission of `lower` is one of `upper`'s and `upper` has one more.
pub const fn strictly_below(lower: Role, upper: Role) -> bool {
    let mut more = false;
    let mut i = 0;
    while i < Permission::ALL.len() {
        let p = Permission::ALL[i];
        match (allows(lower, p), allows(upper, p)) {
            (true, false) => return false,
            (false, true) => more = true,
            _ => {}
        }
        i += 1;
    }
    more
}

/// Whether `actor` may give `target_role` to a team member (invite or role change; also whether
/// it may manage a member holding `target_role`): it must be a role that invites, and the target
/// must hold strictly fewer permissions.
pub const fn can_assign(actor: Role, target_role: Role) -> bool {
    allows(actor, Permission::TeamInvite) && strictly_below(target_role, actor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_whole_matrix() {
        use Permission as P;
        // Columns: owner, admin, member, viewer, billing.
        const Y: bool = true;
        const N: bool = false;
        let expected: [(Permission, [bool; 5]); 19] = [
            (P::ProfileRead, [Y, Y, Y, Y, Y]),
            (P::ProfileWrite, [Y, Y, Y, Y, Y]),
            (P::SessionsManage, [Y, Y, Y, Y, Y]),
            (P::MfaManage, [Y, Y, Y, Y, Y]),
            (P::TeamRead, [Y, Y, Y, Y, N]),
            (P::TeamInvite, [Y, Y, N, N, N]),
            (P::TeamManage, [Y, Y, N, N, N]),
            (P::TenantClose, [Y, N, N, N, N]),
            (P::FormsRead, [Y, Y, Y, Y, N]),
            (P::FormsWrite, [Y, Y, N, N, N]),
            (P::LeadsRead, [Y, Y, Y, Y, N]),
            (P::LeadsWrite, [Y, Y, Y, N, N]),
            (P::LeadsDelete, [Y, Y, N, N, N]),
            (P::LeadsImport, [Y, Y, N, N, N]),
            (P::LeadsExport, [Y, Y, N, N, N]),
            (P::BillingRead, [Y, Y, N, N, Y]),
            (P::BillingManage, [Y, N, N, N, Y]),
            (P::PrivacyRequestsRead, [Y, Y, N, N, N]),
            (P::PrivacyRequestsDecide, [Y, Y, N, N, N]),
        ];
        let roles = [
            Role::Owner,
            Role::Admin,
            Role::Member,
            Role::Viewer,
            Role::Billing,
        ];
        assert_eq!(roles, Role::ALL);
        let listed: Vec<Permission> = expected.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            listed,
            Permission::ALL,
            "the expected table covers every permission"
        );
        let mut cells = 0;
        for (p, row) in expected {
            for (role, want) in roles.into_iter().zip(row) {
                assert_eq!(allows(role, p), want, "{role:?} x {p:?}");
                cells += 1;
            }
        }
        assert_eq!(cells, 5 * 19);
    }

    #[test]
    fn all_lists_are_complete_and_distinct() {
        assert_eq!(Permission::ALL.iter().collect::<HashSet<_>>().len(), 19);
        assert_eq!(Role::ALL.iter().collect::<HashSet<_>>().len(), 5);
    }

    #[test]
    fn role_strings_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), r);
        }
        for bad in ["", "Owner", "ADMIN", "superuser", " member", "member "] {
            assert_eq!(Role::parse(bad), None, "{bad:?}");
        }
    }

    fn permissions_of(r: Role) -> HashSet<Permission> {
        Permission::ALL
            .into_iter()
            .filter(|p| allows(r, *p))
            .collect()
    }

    /// The whole role x role matrix: whoever can give a role holds every permission of it, so
    /// no role can make a member more powerful than itself in any way.
    #[test]
    fn no_role_can_give_a_permission_it_lacks() {
        for actor in Role::ALL {
            for target in Role::ALL {
                if can_assign(actor, target) {
                    let missing: Vec<_> = permissions_of(target)
                        .difference(&permissions_of(actor))
                        .copied()
                        .collect();
                    assert!(
                        missing.is_empty(),
                        "{actor:?} can give {target:?}, which holds {missing:?} that {actor:?} lacks"
                    );
                }
            }
        }
    }

    #[test]
    fn assignment_rules() {
        use Role::*;
        // Rows: actor; columns: target owner, admin, member, viewer, billing.
        let expected = [
            (Owner, [false, true, true, true, true]),
            (Admin, [false, false, true, true, false]),
            (Member, [false; 5]),
            (Viewer, [false; 5]),
            (Billing, [false; 5]),
        ];
        for (actor, row) in expected {
            for (target, want) in Role::ALL.into_iter().zip(row) {
                assert_eq!(can_assign(actor, target), want, "{actor:?} -> {target:?}");
            }
        }
    }
}
