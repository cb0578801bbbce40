//! The bottom of the library: what every capability crate and every function uses. Nothing here
//! knows about leads, accounts, billing or data-subject requests.
//!
//! Map:
//! - [`config`]: typed configuration read from an explicit allow-list of environment variables.
//! - [`telemetry`]: JSON logs with a request id on every line; never personal data.
//! - [`error`] and [`http`]: one error type, mapped to HTTP in one place.
//! - [`clock`]: injected time and id generation, so retention and deadline logic is testable.
//! - [`domain`]: types that validate on construction (email, phone, ids, forms, submissions).
//! - [`blind_index`]: keyed hashes that find a person's records without storing a searchable
//!   email; [`client_ip`]: the client address as the rate limits see it; [`secrets`]: keys from
//!   SSM Parameter Store.
//! - [`keys`]: every DynamoDB and S3 key, built from a [`domain::TenantId`] by this crate alone.
//! - [`retention`]: legal retention periods computed from a document's date.
//! - [`dynamo`]: the item helpers every DynamoDB adapter shares (attribute readers and writers,
//!   batched deletes). Each capability crate keeps its own adapters beside its domain.
//! - [`aws`]: SDK client construction tuned for a cheap cold start, and which errors are
//!   transient; [`s3`]: deleting objects; [`runtime`]: the Lambda wiring every `main.rs` shares.
//! - [`metering`] (feature `test-support`): a wire-level counter of DynamoDB requests for tests.

pub mod aws;
pub mod blind_index;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod domain;
pub mod dynamo;
pub mod error;
pub mod http;
pub mod keys;
pub mod retention;
pub mod runtime;
pub mod s3;
pub mod secrets;
pub mod telemetry;

#[cfg(any(test, feature = "test-support"))]
pub mod metering;
