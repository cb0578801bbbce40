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
//! - [`intake`]: the lead-intake use case, over the [`ports`]; [`quota_alerts`]: its emails to
//!   the owners at 80 % and 100 % of the monthly quota.
//! - [`dynamo`]: DynamoDB adapters of the ports; [`fakes`] (feature `test-support`): in-memory ones.
//! - [`billing`]: plans, entitlements, subscription state and billing records; [`retention`]:
//!   legal retention periods computed from a document's date.
//! - [`aws`]: SDK client construction tuned for a cheap cold start; [`runtime`]: the Lambda
//!   wiring every function's `main.rs` shares.
//! - [`mail`]: outgoing email; [`outbound`]: the limits and the suppression list that keep it
//!   from being a relay.
//! - [`transfers`]: lead attachments, CSV imports and exports: their ids, records and store.
//! - [`leads`]: the lead workspace (leads, notes, pipeline, forms as the team manages them);
//!   [`s3`]: deleting a lead's objects.

pub mod accounts;
pub mod auth;
pub mod aws;
pub mod billing;
pub mod blind_index;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod domain;
pub mod dsar;
pub mod dynamo;
pub mod error;
pub mod http;
pub mod intake;
pub mod inventory;
pub mod keys;
pub mod leads;
pub mod mail;
pub mod outbound;
pub mod policy;
pub mod ports;
pub mod quota_alerts;
pub mod retention;
pub mod runtime;
pub mod s3;
pub mod secrets;
pub mod telemetry;
pub mod transfers;

#[cfg(any(test, feature = "test-support"))]
pub mod fakes;
#[cfg(any(test, feature = "test-support"))]
pub mod metering;
