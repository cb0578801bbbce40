use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{kind} must be 1 to {max} characters of a-z, 0-9, '-' or '_'")]
pub struct IdError {
    kind: &'static str,
    max: usize,
}

/// Ids are plain lowercase slugs: safe inside a key (no `#`), a URL path and a log line.
fn validate(kind: &'static str, max: usize, raw: &str) -> Result<String, IdError> {
    let ok = !raw.is_empty()
        && raw.len() <= max
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(raw.to_string())
    } else {
        Err(IdError { kind, max })
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                validate($kind, $max, raw).map(Self)
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

id_type!(
    /// The tenant (a customer workspace). Only ever obtained from a verified token or from a
    /// stored record (a form's own tenant), never from a request body or a caller-controlled path.
    TenantId, "tenant id", 64
);
id_type!(
    /// A form's public id, as it appears in `POST /v1/forms/{formId}/submissions`.
    FormId, "form id", 64
);
id_type!(LeadId, "lead id", 64);
id_type!(UserId, "user id", 64);
id_type!(SessionId, "session id", 64);
id_type!(SubmissionId, "submission id", 64);
id_type!(
    /// An API key's public id (`ak-<ulid>`), the part of the key a listing shows and a lookup
    /// reads by; never the secret.
    ApiKeyId, "api key id", 64
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_slugs() {
        assert_eq!(
            FormId::parse("demo-contact").unwrap().as_str(),
            "demo-contact"
        );
        assert!(TenantId::parse("t_01abc").is_ok());
    }

    #[test]
    fn rejects_anything_that_could_break_a_key_or_path() {
        for bad in ["", "A", "a#b", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(FormId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
