//! DynamoDB adapters of the ports. Item <-> domain conversion lives here; the domain never sees
//! an `AttributeValue`.

mod attrs;
mod forms;
mod intake;

pub use attrs::Item;
pub use forms::DynamoFormAdmin;
pub use intake::{DynamoIntakeStore, IntakeTables};
