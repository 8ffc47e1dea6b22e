//! The run directory: `config.toml`, `config.sources.toml` and `plan.txt` written when a run
//! starts; on resume, the checkpoint to continue from must exist and the resolved configuration
//! must not have changed (the keys that did are named).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::TrainError;
use super::plan::RunPlan;

/// Files of a run directory.
pub struct RunFiles {
    /// The directory.
    pub dir: PathBuf,
}

impl RunFiles {
    /// `checkpoints/last.kdc`.
    pub fn last(&self) -> PathBuf {
        self.dir.join("checkpoints").join("last.kdc")
    }

    /// `checkpoints/best.kdc`.
    pub fn best(&self) -> PathBuf {
        self.dir.join("checkpoints").join("best.kdc")
    }
}

/// Readies the run directory: a fresh run refuses to overwrite a run that exists and writes its
/// configuration; a resumed one checks there is something to resume with the same
/// configuration.
pub(super) fn prepare(plan: &RunPlan, resume: bool) -> Result<RunFiles, TrainError> {
    let files = RunFiles {
        dir: plan.run_dir.clone(),
    };
    let config_text =
        toml::to_string(&plan.config).expect("the resolved config serialises to TOML");
    if resume {
        if !files.last().is_file() {
            return Err(TrainError::NothingToResume {
                dir: files.dir.clone(),
            });
        }
        let saved_path = files.dir.join("config.toml");
        let saved = std::fs::read_to_string(&saved_path).map_err(TrainError::io(&saved_path))?;
        let changed = changed_keys(&saved, &config_text);
        if !changed.is_empty() {
            return Err(TrainError::ConfigChanged {
                dir: files.dir.clone(),
                keys: changed.join(", "),
            });
        }
    } else {
        if files.last().exists() {
            return Err(TrainError::RunExists {
                dir: files.dir.clone(),
            });
        }
        let checkpoints = files.dir.join("checkpoints");
        std::fs::create_dir_all(&checkpoints).map_err(TrainError::io(&checkpoints))?;
        write_file(&files.dir.join("config.toml"), &config_text)?;
        write_file(&files.dir.join("config.sources.toml"), &plan.sources)?;
        write_file(&files.dir.join("plan.txt"), &plan.describe())?;
    }
    Ok(files)
}

fn write_file(path: &Path, text: &str) -> Result<(), TrainError> {
    std::fs::write(path, text).map_err(TrainError::io(path))
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The dotted keys whose values differ between two TOML texts, sorted.
fn changed_keys(saved: &str, current: &str) -> Vec<String> {
    let parse = |text: &str| {
        let mut out = BTreeMap::new();
        if let Ok(value) = text.parse::<toml::Table>() {
            flatten("", &toml::Value::Table(value), &mut out);
        }
        out
    };
    let (a, b) = (parse(saved), parse(current));
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_are_dotted_and_sorted() {
        let saved = "[run]\nseed = 1\nname = \"a\"\n[optim]\nlr = 0.1\n";
        let current = "[run]\nseed = 2\nname = \"a\"\n[optim]\nlr = 0.1\nmomentum = 0.9\n";
        assert_eq!(changed_keys(saved, current), ["optim.momentum", "run.seed"]);
        assert!(changed_keys(saved, saved).is_empty());
    }
}
