//! Layering the configuration sources with figment, later wins:
//! built-in defaults < `configs/base.toml` < the experiment file < `KD_` environment variables
//! (`__` between levels) < `--set key=value`.
//!
//! A file may name others to merge before itself with `include = ["../methods/kd.toml"]`
//! (paths relative to the including file): that is how experiments use the method presets.
//! `configs/base.toml` is found by walking up from the experiment file to a `configs/` folder
//! that holds one (so a config works from any working directory), else `./configs/base.toml`.
//! `KD_DATA`, `KD_LOG` and `KD_FONT` are not configuration keys (a dataset root, the log filter
//! and the chart font) and are left out. Every extraction error is turned into a [`ConfigError`] naming key and source.

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
        Env::prefixed("KD_")
            .ignore(&["data", "log", "font"])
            .split("__")
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

/// A `--set` value: TOML syntax where it parses (`1e-3`, `[100, 150]`, `"text"`, `{ a = 1 }`),
/// else figment's lenient parse, which takes a bare word as a string (`--set run.name=x`).
fn parse_value(text: &str) -> Result<Value, String> {
    if let Ok(table) = format!("v = {text}").parse::<toml::Table>()
        && let Some(value) = table.get("v")
    {
        return Value::serialize(value).map_err(|e| e.to_string());
    }
    text.parse::<Value>().map_err(|e| e.to_string())
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
    let value = parse_value(value.trim()).map_err(|e| issue(format!("cannot parse value: {e}")))?;
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
    if let Some(path) = experiment
        && !path.is_file()
    {
        issues.push(ConfigIssue {
            key: None,
            source: Some(format!("file {}", path.display())),
            message: "config file not found".into(),
        });
    }
    if !issues.is_empty() {
        return Err(ConfigError { issues });
    }
    let base = find_base(experiment);
    let mut files = Vec::new();
    for file in base.iter().chain(experiment.map(Path::to_path_buf).iter()) {
        expand_includes(file, &mut Vec::new(), &mut files, &mut issues);
    }
    if !issues.is_empty() {
        return Err(ConfigError { issues });
    }
    let mut figment = Figment::from(Defaults);
    for file in &files {
        figment = figment.merge(Toml::file(file));
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

/// Appends `file`'s includes (depth first, in order) and then `file` itself to `out`.
fn expand_includes(
    file: &Path,
    stack: &mut Vec<PathBuf>,
    out: &mut Vec<PathBuf>,
    issues: &mut Vec<ConfigIssue>,
) {
    let source = Some(format!("file {}", display_path(file)));
    if stack.iter().any(|f| f == file) {
        issues.push(ConfigIssue {
            key: Some("include".into()),
            source,
            message: "include cycle".into(),
        });
        return;
    }
    // Syntax errors are left to figment, which reports them with line and column.
    let includes: Vec<String> = std::fs::read_to_string(file)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|table| table.get("include").cloned())
        .and_then(|value| value.try_into().ok())
        .unwrap_or_default();
    stack.push(file.to_path_buf());
    let dir = file.parent().unwrap_or(Path::new("."));
    for include in includes {
        let path = dir.join(&include);
        if path.is_file() {
            expand_includes(&path, stack, out, issues);
        } else {
            issues.push(ConfigIssue {
                key: Some("include".into()),
                source: source.clone(),
                message: format!("included file {} not found", display_path(&path)),
            });
        }
    }
    stack.pop();
    if !out.iter().any(|f| f == file) {
        out.push(file.to_path_buf());
    }
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
