//! Authentication and authorization primitives shared by every authenticated function: password
//! hashing and policy, signed access tokens, opaque refresh/one-time tokens, TOTP, recovery codes,
//! the role/permission table, and the extractor that turns a request into a [`caller::Caller`].
//!
//! Everything here is pure (no I/O), so it is unit-tested directly.

pub mod api_key;
pub mod caller;
pub mod jwt;
pub mod password;
pub mod permissions;
pub mod recovery;
pub mod session;
pub mod tokens;
pub mod totp;
