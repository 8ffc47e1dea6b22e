//! Collecting configuration problems as they are found, so that every one is reported at once.
//!
//! The plan (and a method's checks) push problems by key; [`Issues`] looks up the source that
//! set each key (file, variable, `--set`) and turns the list into one [`ConfigError`]. The same
//! problem found by two checks (same key, same message) is listed once. [`f32_problem`] is the
//! shared check that a configured float survives the f32 arithmetic training runs in.

use super::error::{ConfigError, ConfigIssue};
use super::load::{LoadedConfig, source_of};

/// Why a finite `value` cannot be used in f32 arithmetic: its magnitude exceeds f32's largest
/// value (it would become an infinity), or, when `non_zero`, it is non-zero but below f32's
/// smallest positive value (it would become 0). `None` when it fits.
pub(crate) fn f32_problem(value: f64, non_zero: bool) -> Option<String> {
    if value.abs() > f64::from(f32::MAX) {
        Some(format!(
            "{value:e} exceeds f32's largest value ({:e})",
            f32::MAX
        ))
    } else if non_zero && value != 0.0 && value.abs() < f64::from(f32::from_bits(1)) {
        Some(format!(
            "{value:e} is below f32's smallest positive value ({:e})",
            f32::from_bits(1)
        ))
    } else {
        None
    }
}

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

    /// A problem with a full key (`method.kd.temperature`, `data.mean[1]`).
    pub fn push(&mut self, key: &str, message: impl Into<String>) {
        let source = source_of(&self.loaded.figment, key);
        self.add(ConfigIssue {
            key: Some(key.to_string()),
            source,
            message: message.into(),
        });
    }

    /// Adds an issue unless the same one (key and message) is already listed: two checks that
    /// find the same problem report it once.
    fn add(&mut self, issue: ConfigIssue) {
        let same = |i: &ConfigIssue| i.key == issue.key && i.message == issue.message;
        if !self.list.iter().any(same) {
            self.list.push(issue);
        }
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
            self.add(issue);
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
