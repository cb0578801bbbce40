//! The outbound channel's domain (docs/outbound.md): what a change of the leads table means to
//! a tenant's systems, and how it is sent to them safely.
//!
//! - [`stream`]: DynamoDB Stream records (the Lambda event's and the Streams API's shape) read
//!   into images, without the SDK.
//! - [`events`]: records to events (`submission.created`, `lead.created`, `lead.updated`,
//!   `lead.deleted`, `lead.erased`, `consent.withdrawn`), each with an id derived from the
//!   change itself, so a record delivered twice makes one event id (receivers dedupe on it).
//! - [`signing`]: the `Webhook-Signature` header, `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`,
//!   the scheme the platform verifies on Stripe's webhooks.
//! - [`address`]: endpoint URLs and the addresses they may be delivered to (no private, loopback,
//!   link-local, metadata or unique-local address, IPv4 or IPv6).
//! - [`retry`]: the retry schedule (exponential, jittered, 24 hours and more).
//!
//! Pure code: no I/O, no AWS types; the `outbound` function wires it to the tables and the network.

pub mod address;
pub mod dynamo;
pub mod events;
pub mod notify;
pub mod retry;
pub mod signing;
pub mod stream;
