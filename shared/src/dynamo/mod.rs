//! DynamoDB adapters of the ports. Item <-> domain conversion lives here; the domain never sees
//! an `AttributeValue`.

mod accounts;
mod attrs;
mod forms;
mod intake;

pub use accounts::{
    login_item, session_item, tenant_item, token_item, user_item, AccountStore, AccountTables,
    StoreError, Throttle, Write,
};
pub use attrs::{epoch, n, s, timestamp, Item};
pub use forms::DynamoFormAdmin;
pub use intake::{DynamoIntakeStore, IntakeTables};
