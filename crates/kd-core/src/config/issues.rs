//! Collecting configuration problems as they are found, so that every one is reported at once.
//!
//! The plan (and a method's checks) push problems by key; [`Issues`] looks up the source that
//! set each key (file, variable, `--set`) and turns the list into one [`ConfigError`].

use super::error::{ConfigError, ConfigIssue};
use super::load::{LoadedConfig, source_of};

/// Problems found so far, each with its key's source.
pub struct Issues<'a> {
    loaded: &'a LoadedConfig,
    list: Vec<ConfigIssue>,
}

impl<'a> Issues<'a> {
    /// An empty list over a loaded configuration (whose sources name each key's origin).
    pub fn new(loaded: &'a LoadedConfig) -> Self {
        Issues {
            loaded,
            list: Vec::new(),
        }
    }

    /// A problem with a full key (`method.kd.temperature`).
    pub fn push(&mut self, key: &str, message: impl Into<String>) {
        let source = source_of(&self.loaded.figment, key);
        self.list.push(ConfigIssue {
            key: Some(key.to_string()),
            source,
            message: message.into(),
        });
    }

    /// Problems found elsewhere (a plugin's builder or checks); a missing source is looked up
    /// from the key.
    pub fn extend(&mut self, issues: impl IntoIterator<Item = ConfigIssue>) {
        for mut issue in issues {
            if issue.source.is_none() {
                issue.source = issue
                    .key
                    .as_deref()
                    .and_then(|k| source_of(&self.loaded.figment, k));
            }
            self.list.push(issue);
        }
    }

    /// Whether nothing is wrong so far.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// `Ok` when nothing is wrong, else every problem in the order found.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.list.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { issues: self.list })
        }
    }
}
