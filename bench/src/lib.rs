//! What the benchmark binaries share: measuring a run's peak memory ([`memory`]) and seeding an
//! emulated table fast ([`seed`]).

pub mod memory;
pub mod seed;
