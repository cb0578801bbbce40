//! Ids of attachments, imports and exports: lowercase slugs (`a-z`, `0-9`, `-`, `_`, at most 64),
//! like every id of the platform, so they can never break a key (`#`) or a path (`/`).

use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0} must be 1 to 64 characters of a-z, 0-9, '-' or '_'")]
pub struct TransferIdError(&'static str);

fn is_slug(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

macro_rules! transfer_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, TransferIdError> {
                if is_slug(raw) {
                    Ok(Self(raw.to_string()))
                } else {
                    Err(TransferIdError($kind))
                }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

transfer_id!(
    /// A file attached to a lead (`at-<ulid>`).
    AttachmentId, "attachment id"
);
transfer_id!(
    /// An import: also the id of the upload it imports (`im-<ulid>`), so an upload is imported
    /// at most once.
    ImportId, "import id"
);
transfer_id!(
    /// An export of a tenant's leads (`ex-<ulid>`).
    ExportId, "export id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_slugs_are_ids() {
        assert!(AttachmentId::parse("at-01jh3w6k8q").is_ok());
        for bad in ["", "AT-1", "a#b", "a/b", "../x", "a b", &"x".repeat(65)] {
            assert!(ImportId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
