//! Relative paths in the configuration, by one rule, the one `include` follows: a path written in
//! a file is relative to that file's folder; one given by a `--set` argument, a `KD_` variable or
//! the built-in defaults is relative to the working directory. The loader applies it to every
//! path key (`run.output_dir`, `data.root`, `networks.<role>.checkpoint`, `plugins.load`) once
//! the typed configuration is extracted, so everything after it (the plan, the run, the saved
//! `config.toml`, error messages) sees the path the rule resolved, whatever the working
//! directory. A path from a file becomes absolute, with `.` and `..` resolved lexically.

use std::path::{Component, Path, PathBuf};

use figment::Figment;

use super::schema::RunConfig;

/// Resolves every relative path key of `config` written in a file against that file's folder.
pub(super) fn resolve(config: &mut RunConfig, figment: &Figment) {
    let folder = |key: &str| -> Option<PathBuf> {
        let metadata = figment.find_metadata(key)?;
        let file = metadata.source.as_ref()?.file_path()?;
        Some(file.parent().unwrap_or(Path::new(".")).to_path_buf())
    };
    let resolve_one = |key: &str, path: &mut PathBuf| {
        if path.is_relative()
            && let Some(folder) = folder(key)
        {
            *path = normalise(&folder.join(&*path));
        }
    };
    resolve_one("run.output_dir", &mut config.run.output_dir);
    if let Some(root) = config.data.root.as_mut() {
        resolve_one("data.root", root);
    }
    for (role, network) in config.networks.iter_mut() {
        if let Some(checkpoint) = network.checkpoint.as_mut() {
            resolve_one(&format!("networks.{role}.checkpoint"), checkpoint);
        }
    }
    for library in config.plugins.load.iter_mut() {
        resolve_one("plugins.load", library);
    }
}

/// `path` made absolute, with `.` dropped and `..` taken back lexically (no symlink is followed:
/// `a/link/..` is `a`).
fn normalise(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_are_resolved_lexically() {
        assert_eq!(
            normalise(Path::new("/a/b/./c/../../d")),
            PathBuf::from("/a/d")
        );
        assert!(normalise(Path::new("x/../y")).is_absolute());
    }
}
