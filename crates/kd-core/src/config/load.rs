//! Layering the configuration sources with figment, later wins:
//! built-in defaults < `configs/base.toml` < the experiment file < `KD_` environment variables
//! (`__` between levels) < `--set key=value`.
//!
//! A file may name others to merge before itself with `include = ["../methods/kd.toml"]`
//! (paths relative to the including file): that is how experiments use the method presets.
//! `configs/base.toml` is found by walking up from the experiment file to a `configs/` folder
//! that holds one (so a config works from any working directory), else `./configs/base.toml`.
//! `KD_DATA`, `KD_LOG` and `KD_FONT` are not configuration keys (a dataset root, the log filter
//! and the chart font) and are left out. Every problem of every source is turned into a
//! [`ConfigError`] naming key and source, all of them in one run: the files are read by
//! `files.rs`, the typed configuration is extracted by `extract.rs`.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Serialized};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::error::{ConfigError, ConfigIssue};
use super::extract::{self, owning_key};
use super::files;
use super::paths;
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
        let mut data = Self::inner().data()?;
        for dict in data.values_mut() {
            for value in dict.values_mut() {
                non_finite_words_as_floats(value);
            }
        }
        Ok(data)
    }
}

/// The float a variable's word stands for when TOML would read it as one: `nan`, `inf`, `+inf`,
/// `-inf` (and `+nan`, `-nan`), in any case. figment's own parse of a variable keeps them as
/// strings, so `KD_OPTIM__LR=nan` would be "a string" where `--set optim.lr=nan` is NaN.
fn non_finite_word(text: &str) -> Option<f64> {
    let word = text.trim().to_ascii_lowercase();
    let (sign, unsigned) = match word.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, word.strip_prefix('+').unwrap_or(&word)),
    };
    match unsigned {
        "nan" => Some(f64::NAN),
        "inf" => Some(sign * f64::INFINITY),
        _ => None,
    }
}

/// Replaces, throughout `value`, every string that is a non-finite float word by that float.
fn non_finite_words_as_floats(value: &mut Value) {
    match value {
        Value::String(tag, text) => {
            if let Some(x) = non_finite_word(text) {
                *value = Value::Num(*tag, figment::value::Num::F64(x));
            }
        }
        Value::Dict(_, dict) => dict.values_mut().for_each(non_finite_words_as_floats),
        Value::Array(_, items) => items.iter_mut().for_each(non_finite_words_as_floats),
        _ => {}
    }
}

/// One `key=value` override and where it was written: a `--set` argument, or an entry of a
/// suite file's `set` list. Errors and provenance name `origin` followed by the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// Where it was written (`--set`, `file suite.toml (run `kd`), set`).
    pub origin: String,
    /// `key=value`.
    pub text: String,
}

impl Override {
    /// A `--set key=value` argument.
    pub fn flag(text: &str) -> Self {
        Override {
            origin: "--set".into(),
            text: text.into(),
        }
    }
}

/// One parsed override.
struct SetArg {
    origin: String,
    raw: String,
    key: String,
    value: Value,
}

impl Provider for SetArg {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("{} {}", self.origin, self.raw))
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

fn parse_set(set: &Override) -> Result<SetArg, ConfigIssue> {
    let raw = set.text.as_str();
    let issue = |message: String| ConfigIssue {
        key: None,
        source: Some(format!("{} {raw}", set.origin)),
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
        origin: set.origin.clone(),
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
    match relative.unwrap_or(path).display().to_string() {
        // The working directory itself (or an empty path): never an empty name.
        shown if shown.is_empty() => ".".to_string(),
        shown => shown,
    }
}

/// Where `key` was set, as [`describe_source`] words it. An array element's key
/// (`data.mean[1]`) is looked up as the array's (`data.mean`): a source sets the array whole.
pub fn source_of(figment: &Figment, key: &str) -> Option<String> {
    let key = owning_key(key);
    figment
        .find_metadata(key)
        .map(|metadata| describe_source(figment, metadata, key))
}

/// Merges every layer and extracts the typed configuration.
///
/// # Errors
/// A [`ConfigError`] with every problem found in one pass over every source: malformed
/// `--set` arguments, files that are missing, directories, unreadable or not TOML (such a file
/// is left out and the others still checked), include cycles, and every unknown key, wrong type
/// and non-finite number in a method table, each with its full key and source.
pub fn load(experiment: Option<&Path>, sets: &[String]) -> Result<LoadedConfig, ConfigError> {
    let sets: Vec<Override> = sets.iter().map(|s| Override::flag(s)).collect();
    load_with(experiment, &sets)
}

/// [`load`] with overrides written elsewhere than on the command line (a suite file's `set`
/// lists), each named by its origin in errors and provenance.
///
/// # Errors
/// As [`load`].
pub fn load_with(
    experiment: Option<&Path>,
    sets: &[Override],
) -> Result<LoadedConfig, ConfigError> {
    let mut issues = Vec::new();
    let parsed_sets: Vec<SetArg> = sets
        .iter()
        .filter_map(|set| parse_set(set).map_err(|issue| issues.push(issue)).ok())
        .collect();
    let experiment_usable = match experiment.map(|path| (path, files::unusable(path))) {
        Some((path, Some(why))) => {
            issues.push(ConfigIssue {
                key: None,
                source: Some(format!("file {}", path.display())),
                message: format!("config file {why}"),
            });
            false
        }
        _ => true,
    };
    let base = find_base(experiment);
    let roots: Vec<PathBuf> = base
        .iter()
        .cloned()
        .chain(
            experiment
                .filter(|_| experiment_usable)
                .map(Path::to_path_buf),
        )
        .collect();
    let mut figment = Figment::from(Defaults);
    for file in files::layers(&roots, &mut issues) {
        figment = figment.merge(file);
    }
    figment = figment.merge(KdEnv);
    for set in parsed_sets {
        figment = figment.merge(set);
    }
    let extracted = extract::extract_all(&figment);
    let mut config = match extracted {
        Ok(config) if issues.is_empty() => config,
        Ok(_) => return Err(ConfigError { issues }),
        Err(found) => {
            issues.extend(found);
            return Err(ConfigError { issues });
        }
    };
    paths::resolve(&mut config, &figment);
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
