//! What the benchmark binaries share: measuring a run's peak memory ([`memory`]), seeding an
//! emulated table fast ([`seed`]), running a function's release binary under a stand-in of the
//! Lambda Runtime API ([`runtime_api`]), medians ([`stats`]), and the stored figures that
//! `docs/cost.md` is generated from ([`figures`]).

pub mod figures;
pub mod memory;
pub mod runtime_api;
pub mod seed;
pub mod stats;
