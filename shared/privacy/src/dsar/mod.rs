//! Data-subject requests (DSAR): the seven rights of the privacy policy.
//!
//! - [`job`]: the contract between the request lifecycle (the `dsar` API function: filing,
//!   verification, the controller's decision, deadlines) and the execution of an approved
//!   request (the `dsar-worker` function: access/portability exports, erasure, rectification,
//!   restriction, objection, consent withdrawal).
//! - [`model`], [`deadlines`], [`store`], [`tokens`], [`emails`], [`progress`]: the request
//!   lifecycle's records, due dates, DynamoDB adapter, codes and signed links, the emails to the
//!   subject and the controllers, and the worker's reports applied to the records.

pub mod deadlines;
pub mod emails;
pub mod job;
pub mod model;
pub mod progress;
pub mod store;
pub mod tokens;
// Execution (dsar-worker): checkpoint, dispatcher, exports, Art 15 facts, inventory-checked
// records, the subject's items, the worker and its steps.
mod account_steps;
pub mod checkpoint;
#[cfg(feature = "dsar-dispatch")]
pub mod dispatch;
pub mod export;
mod export_steps;
pub mod facts;
pub mod records;
pub mod replay;
mod steps;
pub mod subjects;
pub mod worker;
