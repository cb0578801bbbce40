//! What every DynamoDB adapter shares: attribute readers and writers and batched deletes. Item
//! <-> domain conversion lives in each capability crate's `dynamo` module, beside its domain;
//! the domain never sees an `AttributeValue`.

pub mod attrs;
pub mod batch;

pub use attrs::{
    epoch, get_item, key_item, n, put_new_or_own, s, str_list, timestamp, unless_condition_failed,
    Item,
};
pub use aws_sdk_dynamodb::types::AttributeValue;
pub use batch::batch_delete;
