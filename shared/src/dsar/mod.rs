//! Data-subject requests (DSAR): the seven rights of the privacy policy.
//!
//! - [`job`]: the contract between the request lifecycle (the `dsar` API function: filing,
//!   verification, the controller's decision, deadlines) and the execution of an approved
//!   request (the `dsar-worker` function: access/portability exports, erasure, rectification,
//!   restriction, objection, consent withdrawal).

pub mod job;
