//! Configuration errors, rendered as Rocket renders figment's: one line per problem with the
//! full key and the file, environment variable or `--set` argument it came from.
//!
//! The loader and the plan both produce [`ConfigError`]; the CLI prints it and exits with
//! status 2.

use std::fmt;

/// One problem with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Full dotted key (`method.kd.temperature`), where the problem has one.
    pub key: Option<String>,
    /// Where the offending value came from (`file configs/x.toml`, `environment variable
    /// KD_RUN__SEED`, `--set run.seed=x`), where known.
    pub source: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ConfigIssue {
    /// A problem with a full key (`method.sokd.branch_stages`); the plan fills in its source.
    pub fn at(key: &str, message: impl Into<String>) -> Self {
        ConfigIssue {
            key: Some(key.to_string()),
            source: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "`{key}`: {}", self.message)?,
            None => write!(f, "{}", self.message)?,
        }
        if let Some(source) = &self.source {
            write!(f, " (from {source})")?;
        }
        Ok(())
    }
}

/// Everything wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The problems, in the order they were found.
    pub issues: Vec<ConfigIssue>,
}

impl ConfigError {
    /// A single problem.
    pub fn one(key: Option<String>, source: Option<String>, message: impl Into<String>) -> Self {
        ConfigError {
            issues: vec![ConfigIssue {
                key,
                source,
                message: message.into(),
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.issues.len();
        for (i, issue) in self.issues.iter().enumerate() {
            if count > 1 {
                write!(f, "[{}/{count}] ", i + 1)?;
            }
            write!(f, "{issue}")?;
            if i + 1 < count {
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
