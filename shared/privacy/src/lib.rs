//! Privacy: what the platform holds about a person and what it does when they exercise a right.
//!
//! Map:
//! - [`inventory`]: every personal attribute the platform stores, with its data category,
//!   purpose, legal basis and retention (the Art. 15 facts and `docs/privacy.md` read it).
//! - [`dsar`]: data-subject requests, from filing to the worker that exports, erases, rectifies,
//!   restricts and records objections and withdrawals; the replay of erasures after a restore.
//! - [`legal_holds`]: the holds that stop deletion of a tenant's records, by any route.

pub mod dsar;
pub mod inventory;
pub mod legal_holds;
