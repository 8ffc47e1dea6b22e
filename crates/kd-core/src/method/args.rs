//! Turning a `[method.<instance>]` table into a plugin's typed configuration, with errors that
//! name the full key and its source like every other configuration error.

use serde::de::DeserializeOwned;

use crate::config::{ConfigError, ConfigIssue};

/// What a plugin's builder receives.
pub struct MethodArgs<'a> {
    /// Instance name (the key under `method`).
    pub instance: &'a str,
    /// The instance's own keys (everything but `kind` and `weight`).
    pub params: serde_json::Value,
    /// Where a full key was set (file, variable, `--set`), for messages.
    pub source_of: &'a dyn Fn(&str) -> Option<String>,
}

impl MethodArgs<'_> {
    /// The full key of one of the instance's keys: `method.<instance>.<key>`.
    pub fn key(&self, key: &str) -> String {
        format!("method.{}.{key}", self.instance)
    }

    /// An issue about one of the instance's keys.
    pub fn issue(&self, key: &str, message: impl Into<String>) -> ConfigIssue {
        let full = self.key(key);
        let source = (self.source_of)(&full).or_else(|| (self.source_of)(&self.key("kind")));
        ConfigIssue {
            key: Some(full),
            source,
            message: message.into(),
        }
    }

    /// Deserialises the instance's keys into `T` (which should deny unknown fields), reporting
    /// the full path of the first offending key.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let result: Result<T, _> = serde_path_to_error::deserialize(&self.params);
        result.map_err(|error| {
            // The path ends with the offending key, unknown fields included.
            let path = error.path().to_string();
            let message = error.inner().to_string();
            let key = if path == "." {
                "kind".to_string()
            } else {
                path
            };
            ConfigError {
                issues: vec![self.issue(&key, message)],
            }
        })
    }
}
