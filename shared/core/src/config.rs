//! Typed configuration from an explicit allow-list of environment variables.
//!
//! A function declares the variables it reads in its own `config.rs`; anything else in the
//! environment is ignored. A missing or malformed variable fails the cold start with a message
//! naming the variable, so a broken deploy is visible at once instead of on the first request.

use std::collections::HashMap;
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("missing required environment variable {0}")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A read-only view of the variables a function may read. Built from the process environment
/// in production and from a map in tests.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Captures only the allow-listed names from the process environment.
    pub fn from_process(allow_list: &[&'static str]) -> Self {
        let vars = allow_list
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v)))
            .collect();
        Self { vars }
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        match self.vars.get(name) {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(ConfigError::Missing(name)),
        }
    }

    pub fn optional(&self, name: &'static str) -> Option<String> {
        self.vars
            .get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// A parsed optional variable with a documented default.
    pub fn parse_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_variable_is_named() {
        let env = Env::from_pairs([("A", "1")]);
        assert_eq!(env.required("B"), Err(ConfigError::Missing("B")));
        assert_eq!(
            env.required("B").unwrap_err().to_string(),
            "missing required environment variable B"
        );
    }

    #[test]
    fn blank_counts_as_missing_and_values_are_trimmed() {
        let env = Env::from_pairs([("A", "  "), ("B", " x ")]);
        assert!(env.required("A").is_err());
        assert_eq!(env.required("B").unwrap(), "x");
    }

    #[test]
    fn parse_or_defaults_and_rejects_garbage() {
        let env = Env::from_pairs([("N", "12"), ("BAD", "twelve")]);
        assert_eq!(env.parse_or("N", 5u32).unwrap(), 12);
        assert_eq!(env.parse_or("MISSING", 5u32).unwrap(), 5);
        assert!(matches!(
            env.parse_or("BAD", 5u32),
            Err(ConfigError::Invalid { name: "BAD", .. })
        ));
    }

    #[test]
    fn only_allow_listed_variables_are_captured() {
        std::env::set_var("SHARED_CONFIG_TEST_VAR", "yes");
        let env = Env::from_process(&["PATH"]);
        assert!(env.optional("SHARED_CONFIG_TEST_VAR").is_none());
    }
}
