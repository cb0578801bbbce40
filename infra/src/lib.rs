//! Local stack tooling, driven by `template.yaml`.
//!
//! - [`template`]: reads the SAM template and resolves names, environments and routes.
//! - [`bootstrap`]: creates the template's tables and buckets in a local emulator.
//! - [`router`]: the `cargo lambda watch` router derived from the template's HttpApi routes.
//! - [`local`]: what a function needs to run against the emulator (parameters, environment).
//! - [`seed`]: demo data for `make dev`.
//! - [`emulator`]: SES identities and reading back sent emails from the emulator.
//! - [`stripe_standin`]: a local stand-in for Stripe's API, its hosted checkout and portal
//!   pages, and the signed webhooks they cause (`make dev`, the billing tests).
//! - [`faults`]: a proxy in front of the emulator that injects throttling, errors, timeouts and
//!   lost answers (the fault tests, `LOCAL_FAULTS` in `make dev`).
//!
//! The `devstack` binary puts these behind a CLI for `make dev` and the e2e test.

pub mod bootstrap;
pub mod emulator;
pub mod faults;
pub mod local;
pub mod outbound_local;
pub mod replay;
pub mod router;
pub mod seed;
pub mod streams;
pub mod stripe_standin;
pub mod template;

pub use bootstrap::{aws_clients, create_tables_and_buckets, LocalClients};
pub use template::{default_template_path, Template};
