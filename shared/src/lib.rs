//! The library every function uses.
//!
//! Map:
//! - [`config`]: typed configuration read from an explicit allow-list of environment variables.
//! - [`telemetry`]: JSON logs with a request id on every line; never personal data.
//! - [`error`] and [`http`]: one error type, mapped to HTTP in one place.
//! - [`clock`]: injected time and id generation, so retention and deadline logic is testable.
//! - [`domain`]: types that validate on construction (email, phone, ids, forms, submissions).
//! - [`blind_index`]: keyed hashes that find a person's records without storing a searchable email.
//! - [`keys`]: every DynamoDB key, built from a [`domain::TenantId`] by this crate alone.
//! - [`inventory`]: every personal attribute the platform stores, with its data category.
//! - [`intake`]: the lead-intake use case, over the [`ports`].
//! - [`dynamo`]: DynamoDB adapters of the ports; [`fakes`] (feature `test-support`): in-memory ones.
//! - [`aws`]: SDK client construction tuned for a cheap cold start.

pub mod accounts;
pub mod auth;
pub mod aws;
pub mod blind_index;
pub mod clock;
pub mod config;
pub mod domain;
pub mod dynamo;
pub mod error;
pub mod http;
pub mod intake;
pub mod inventory;
pub mod keys;
pub mod mail;
pub mod ports;
pub mod secrets;
pub mod telemetry;

#[cfg(any(test, feature = "test-support"))]
pub mod fakes;
#[cfg(any(test, feature = "test-support"))]
pub mod metering;
