//! Layering the configuration sources with figment, later wins:
//! built-in defaults < `configs/base.toml` < the experiment file < `KD_` environment variables
//! (`__` between levels) < `--set key=value`.
//!
//! `configs/base.toml` is found by walking up from the experiment file to a `configs/` folder
//! that holds one (so a config works from any working directory), else `./configs/base.toml`.
//! `KD_DATA` and `KD_LOG` are not configuration keys (a dataset root and the log filter) and
//! are left out. Every extraction error is turned into a [`ConfigError`] naming key and source.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::error::{ConfigError, ConfigIssue};
use super::schema::RunConfig;

/// Name of the built-in defaults source.
pub const DEFAULTS_SOURCE: &str = "built-in defaults";

/// A resolved configuration with the layers that made it.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The merged, typed configuration.
    pub config: RunConfig,
    /// The merged sources, for provenance queries.
    pub figment: Figment,
    /// The experiment file, if one was given.
    pub experiment: Option<PathBuf>,
    /// The base file that was merged, if one was found.
    pub base: Option<PathBuf>,
}

/// The `KD_` environment, named so errors can print the exact variable.
struct KdEnv;

impl KdEnv {
    fn inner() -> Env {
        Env::prefixed("KD_").ignore(&["data", "log"]).split("__")
    }
}

impl Provider for KdEnv {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable").interpolater(|_: &Profile, keys: &[&str]| {
            format!("KD_{}", keys.join("__").to_ascii_uppercase())
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Self::inner().data()
    }
}

/// One `--set key=value` argument.
struct SetArg {
    raw: String,
    key: String,
    value: Value,
}

impl Provider for SetArg {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("--set {}", self.raw))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::default(&self.key, &self.value).data()
    }
}

fn parse_set(raw: &str) -> Result<SetArg, ConfigIssue> {
    let issue = |message: String| ConfigIssue {
        key: None,
        source: Some(format!("--set {raw}")),
        message,
    };
    let (key, value) = raw
        .split_once('=')
        .ok_or_else(|| issue("expected `key=value`, e.g. `--set run.seed=3`".into()))?;
    let key = key.trim();
    let valid = !key.is_empty()
        && key.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if !valid {
        return Err(issue(format!(
            "`{key}` is not a dotted key like `run.seed`"
        )));
    }
    let value: Value = value
        .trim()
        .parse()
        .map_err(|e| issue(format!("cannot parse value: {e}")))?;
    Ok(SetArg {
        raw: raw.to_string(),
        key: key.to_string(),
        value,
    })
}

/// The `configs/base.toml` that applies to `experiment`.
pub fn find_base(experiment: Option<&Path>) -> Option<PathBuf> {
    if let Some(experiment) = experiment {
        let absolute = std::path::absolute(experiment).ok()?;
        for dir in absolute.ancestors().skip(1) {
            let candidate = if dir.file_name().is_some_and(|n| n == "configs") {
                dir.join("base.toml")
            } else {
                dir.join("configs").join("base.toml")
            };
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    let local = PathBuf::from("configs/base.toml");
    local.is_file().then_some(local)
}

/// Describes where a key's value came from, e.g. `file configs/base.toml` or
/// `environment variable KD_RUN__SEED`.
pub fn describe_source(figment: &Figment, metadata: &Metadata, key: &str) -> String {
    if let Some(path) = metadata.source.as_ref().and_then(|s| s.file_path()) {
        return format!("file {}", display_path(path));
    }
    if metadata.name.starts_with("environment") {
        let keys: Vec<&str> = key.split('.').collect();
        return format!(
            "environment variable {}",
            metadata.interpolate(figment.profile(), &keys)
        );
    }
    metadata.name.to_string()
}

/// A path relative to the working directory where it is inside it.
pub fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    let relative = cwd.as_deref().and_then(|cwd| path.strip_prefix(cwd).ok());
    relative.unwrap_or(path).display().to_string()
}

/// Where `key` was set, as [`describe_source`] words it.
pub fn source_of(figment: &Figment, key: &str) -> Option<String> {
    figment
        .find_metadata(key)
        .map(|metadata| describe_source(figment, metadata, key))
}

fn issues_from(figment: &Figment, error: figment::Error) -> Vec<ConfigIssue> {
    error
        .into_iter()
        .map(|e| {
            // figment's path already ends with the unknown field's name.
            let path = e.path.clone();
            let key = (!path.is_empty()).then(|| path.join("."));
            let source = key
                .as_deref()
                .and_then(|k| source_of(figment, k))
                .or_else(|| {
                    e.metadata
                        .as_ref()
                        .map(|m| describe_source(figment, m, key.as_deref().unwrap_or("")))
                });
            ConfigIssue {
                key,
                source,
                message: e.kind.to_string(),
            }
        })
        .collect()
}

/// Merges every layer and extracts the typed configuration.
pub fn load(experiment: Option<&Path>, sets: &[String]) -> Result<LoadedConfig, ConfigError> {
    let mut issues = Vec::new();
    let parsed_sets: Vec<SetArg> = sets
        .iter()
        .filter_map(|raw| parse_set(raw).map_err(|issue| issues.push(issue)).ok())
        .collect();
    if let Some(path) = experiment {
        if !path.is_file() {
            issues.push(ConfigIssue {
                key: None,
                source: Some(format!("file {}", path.display())),
                message: "config file not found".into(),
            });
        }
    }
    if !issues.is_empty() {
        return Err(ConfigError { issues });
    }
    let base = find_base(experiment);
    let mut figment = Figment::from(Defaults);
    if let Some(base) = &base {
        figment = figment.merge(Toml::file(base));
    }
    if let Some(experiment) = experiment {
        figment = figment.merge(Toml::file(experiment));
    }
    figment = figment.merge(KdEnv);
    for set in parsed_sets {
        figment = figment.merge(set);
    }
    let config: RunConfig = figment.extract().map_err(|e| ConfigError {
        issues: issues_from(&figment, e),
    })?;
    Ok(LoadedConfig {
        config,
        figment,
        experiment: experiment.map(Path::to_path_buf),
        base,
    })
}

/// The built-in defaults, named so provenance listings say what they are.
struct Defaults;

impl Provider for Defaults {
    fn metadata(&self) -> Metadata {
        Metadata::named(DEFAULTS_SOURCE)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::defaults(RunConfig::default()).data()
    }
}
