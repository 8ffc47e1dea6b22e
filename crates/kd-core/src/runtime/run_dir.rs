//! The run directory `run.output_dir`/`run.name`: checked by the plan ([`path_issues`]: the
//! name is one path component, the nearest existing folder is a writable directory), then
//! readied by the trainer ([`prepare`]). A run holds an exclusive lock on `<run dir>/.lock`
//! (holding its process id) from before it reads or writes anything in the directory until it
//! ends, so two runs never share one directory; the OS releases the lock when the process dies.
//! A fresh run refuses a directory holding a checkpoint or a summary, then writes `config.toml`,
//! `config.sources.toml` and `plan.txt`; a resumed one checks that the checkpoint to continue
//! from exists, that the resolved configuration has not changed (the keys that did are named)
//! and that the metrics files can be cut back to the lengths the checkpoint saved.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use super::error::TrainError;
use super::metrics;
use super::plan::RunPlan;
use crate::checkpoint;
use crate::config::{ConfigIssue, RunConfig};

/// The lock file of a run directory.
pub const LOCK_FILE: &str = ".lock";

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

/// The exclusive lock a run holds on its directory while it runs (released when dropped, or by
/// the OS when the process ends).
#[derive(Debug)]
pub(super) struct RunLock {
    /// The open lock file; closing it releases the lock.
    _file: File,
}

/// Readies the run directory: creates and locks it, then a fresh run refuses to overwrite a run
/// that exists and writes its configuration; a resumed one checks there is something to resume
/// with the same configuration and intact metrics files. The lock must be kept until the run
/// ends.
///
/// # Errors
///
/// [`TrainError::RunLocked`] when another run holds the directory (nothing in it is touched);
/// [`TrainError::RunDirUnwritable`] when it cannot be created, locked or written;
/// [`TrainError::RunExists`], [`TrainError::NothingToResume`], [`TrainError::ConfigChanged`],
/// [`TrainError::ResumeFileUnreadable`], [`TrainError::MetricsDamaged`] and
/// [`TrainError::Checkpoint`] as their names say.
pub(super) fn prepare(plan: &RunPlan, resume: bool) -> Result<(RunFiles, RunLock), TrainError> {
    let files = RunFiles {
        dir: plan.run_dir.clone(),
    };
    let lock = lock(&files.dir)?;
    let config_text =
        toml::to_string(&plan.config).expect("the resolved config serialises to TOML");
    if resume {
        if files.last().is_dir() {
            return Err(checkpoint::CheckpointError::Directory { path: files.last() }.into());
        }
        if !files.last().is_file() {
            return Err(TrainError::NothingToResume {
                dir: files.dir.clone(),
            });
        }
        let saved_path = files.dir.join("config.toml");
        let saved = std::fs::read_to_string(&saved_path).map_err(|source| {
            TrainError::ResumeFileUnreadable {
                path: saved_path.clone(),
                source,
            }
        })?;
        let changed = changed_keys(&saved, &config_text);
        if !changed.is_empty() {
            return Err(TrainError::ConfigChanged {
                dir: files.dir.clone(),
                keys: changed.join(", "),
            });
        }
        let header = checkpoint::read_header(&files.last())?;
        metrics::check_resumable(&files.dir, header.state.metrics_len)?;
    } else {
        // Any file only a run that got somewhere writes: a fresh run would overwrite it.
        let earlier = [
            "checkpoints/last.kdc",
            "checkpoints/best.kdc",
            "summary.json",
        ]
        .into_iter()
        .find(|found| files.dir.join(found).exists());
        if let Some(found) = earlier {
            return Err(TrainError::RunExists {
                dir: files.dir.clone(),
                found: found.into(),
            });
        }
        let unwritable = |path: &Path| {
            let (dir, path) = (files.dir.clone(), path.to_path_buf());
            move |source| TrainError::RunDirUnwritable { dir, path, source }
        };
        super::tensorboard::check_folder(&files.dir)?;
        let checkpoints = files.dir.join("checkpoints");
        std::fs::create_dir_all(&checkpoints).map_err(unwritable(&checkpoints))?;
        for (name, text) in [
            ("config.toml", config_text.as_str()),
            ("config.sources.toml", plan.sources.as_str()),
            ("plan.txt", plan.describe().as_str()),
        ] {
            let path = files.dir.join(name);
            write_replacing(&path, text.as_bytes()).map_err(unwritable(&path))?;
        }
    }
    Ok((files, lock))
}

/// Creates `dir` and takes its exclusive lock, writing this process's id into the lock file.
///
/// # Errors
///
/// [`TrainError::RunLocked`] (naming the holder's process id where the file holds one) when
/// another open lock file holds it; [`TrainError::RunDirUnwritable`] when the directory or the
/// lock file cannot be created or written.
pub(super) fn lock(dir: &Path) -> Result<RunLock, TrainError> {
    let unwritable = |path: &Path| {
        let (dir, path) = (dir.to_path_buf(), path.to_path_buf());
        move |source| TrainError::RunDirUnwritable { dir, path, source }
    };
    std::fs::create_dir_all(dir).map_err(unwritable(dir))?;
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(unwritable(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            // The holder's id is informative only: a file being written reads as no id.
            let _ = file.read_to_string(&mut text);
            let holder = text
                .trim()
                .parse::<u32>()
                .map(|pid| format!(" (process {pid})"))
                .unwrap_or_default();
            return Err(TrainError::RunLocked {
                dir: dir.to_path_buf(),
                holder,
            });
        }
        Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
            tracing::warn!(
                "{}: this file system cannot lock files; nothing stops another run from using \
                 the same run directory",
                path.display()
            );
        }
        Err(TryLockError::Error(e)) => return Err(unwritable(&path)(e)),
    }
    file.set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .map_err(unwritable(&path))?;
    Ok(RunLock { _file: file })
}

/// Writes a whole file so that it is either the old one or the new one, never a part: the text
/// goes to `<name>.tmp` beside it, which then replaces it.
pub(super) fn write_replacing(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The plan's checks of the keys that make the run directory's path: `run.name` must be one
/// path component (not empty, not `.` or `..`, no separator), and the nearest existing folder of
/// `run.output_dir`/`run.name` must be a directory this process can create files in (checked by
/// creating and removing an empty file there). An existing run directory that is not a
/// directory is reported at `run.name`; everything else about the folders at `run.output_dir`.
pub(crate) fn path_issues(config: &RunConfig) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    let name = &config.run.name;
    if let Some(problem) = name_problem(name) {
        issues.push(ConfigIssue::at(
            "run.name",
            format!(
                "`{name}` {problem}: the run's directory is run.output_dir/run.name, so the \
                 name must be one folder name"
            ),
        ));
    }
    let output_dir = if config.run.output_dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        config.run.output_dir.as_path()
    };
    let run_dir = issues.is_empty().then(|| output_dir.join(name));
    let target = run_dir.as_deref().unwrap_or(output_dir);
    let Some(existing) = target
        .ancestors()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .find(|p| p.symlink_metadata().is_ok())
    else {
        return issues;
    };
    let key = if Some(existing) == run_dir.as_deref() {
        "run.name"
    } else {
        "run.output_dir"
    };
    let shown = existing.display();
    match std::fs::metadata(existing) {
        Err(e) => issues.push(ConfigIssue::at(
            key,
            format!("{shown} cannot be followed ({e}): a broken symbolic link?"),
        )),
        Ok(meta) if !meta.is_dir() => issues.push(ConfigIssue::at(
            key,
            format!("{shown} is a file, not a directory: runs cannot be written under it"),
        )),
        Ok(_) => {
            if let Err(e) = probe_writable(existing) {
                issues.push(ConfigIssue::at(
                    "run.output_dir",
                    format!("cannot create files in {shown}: {e}"),
                ));
            }
        }
    }
    issues
}

/// Why `name` is not a single folder name, if it is not.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is empty");
    }
    if name.trim().is_empty() {
        return Some("is blank (only whitespace)");
    }
    if name.contains(['/', '\\']) {
        return Some("holds a path separator");
    }
    if name.contains('\0') {
        return Some("holds a NUL character");
    }
    if name.chars().any(char::is_control) {
        return Some("holds a control character");
    }
    let mut components = Path::new(name).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(_)), None) => None,
        (Some(Component::CurDir | Component::ParentDir), None) => {
            Some("names the output directory itself or its parent")
        }
        _ => Some("is not a single folder name"),
    }
}

/// Creates and removes an empty file in `dir`.
fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".kd-write-check-{}", std::process::id()));
    File::options().write(true).create_new(true).open(&probe)?;
    std::fs::remove_file(&probe)
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

/// The keys whose values differ between the configuration `plan`'s run directory was started
/// with (its `config.toml`) and `plan`'s own, sorted; `None` when the directory holds no run yet.
/// `kd suite` uses it to refuse reusing a finished run planned differently.
///
/// # Errors
/// [`TrainError::ResumeFileUnreadable`] when `config.toml` exists but cannot be read.
pub fn changed_keys_since_start(plan: &RunPlan) -> Result<Option<Vec<String>>, TrainError> {
    let saved_path = plan.run_dir.join("config.toml");
    if !saved_path.exists() {
        return Ok(None);
    }
    let saved = std::fs::read_to_string(&saved_path).map_err(|source| {
        TrainError::ResumeFileUnreadable {
            path: saved_path.clone(),
            source,
        }
    })?;
    let current = toml::to_string(&plan.config).expect("the resolved config serialises to TOML");
    Ok(Some(changed_keys(&saved, &current)))
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

    fn config(output_dir: &Path, name: &str) -> RunConfig {
        let mut config = RunConfig::default();
        config.run.output_dir = output_dir.to_path_buf();
        config.run.name = name.into();
        config
    }

    fn messages(issues: &[ConfigIssue]) -> Vec<String> {
        issues.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn run_names_that_are_not_one_folder_name_are_plan_issues_at_run_name() {
        let dir = tempfile::tempdir().unwrap();
        for (name, problem) in [
            ("", "is empty"),
            (".", "names the output directory itself or its parent"),
            ("..", "names the output directory itself or its parent"),
            ("../x", "holds a path separator"),
            ("/tmp/x", "holds a path separator"),
            ("a/b", "holds a path separator"),
            ("a\\b", "holds a path separator"),
        ] {
            let issues = path_issues(&config(dir.path(), name));
            assert_eq!(issues.len(), 1, "{name:?}: {:?}", messages(&issues));
            assert_eq!(issues[0].key.as_deref(), Some("run.name"));
            assert!(
                issues[0].message.contains(problem),
                "{name:?}: {}",
                issues[0]
            );
        }
        for name in ["r18-kd", "seed.1", "..x", "a b"] {
            assert!(path_issues(&config(dir.path(), name)).is_empty(), "{name}");
        }
    }

    #[test]
    fn an_output_dir_that_is_a_file_is_a_plan_issue_at_run_output_dir() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("runs");
        std::fs::write(&file, "").unwrap();
        for output_dir in [file.clone(), file.join("deeper")] {
            let issues = path_issues(&config(&output_dir, "x"));
            assert_eq!(issues.len(), 1, "{:?}", messages(&issues));
            assert_eq!(issues[0].key.as_deref(), Some("run.output_dir"));
            let message = &issues[0].message;
            assert!(message.contains(&file.display().to_string()), "{message}");
            assert!(message.contains("is a file, not a directory"), "{message}");
        }
    }

    #[test]
    fn a_run_directory_that_is_a_file_is_a_plan_issue_at_run_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), "").unwrap();
        let issues = path_issues(&config(dir.path(), "x"));
        assert_eq!(issues.len(), 1, "{:?}", messages(&issues));
        assert_eq!(issues[0].key.as_deref(), Some("run.name"));
        assert!(issues[0].message.contains("is a file"), "{}", issues[0]);
    }

    #[test]
    fn a_missing_output_dir_under_a_writable_folder_is_fine_and_the_check_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let issues = path_issues(&config(&dir.path().join("a").join("b"), "x"));
        assert!(issues.is_empty(), "{:?}", messages(&issues));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn a_read_only_output_dir_is_a_plan_issue_where_permissions_apply() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        std::fs::create_dir(&runs).unwrap();
        std::fs::set_permissions(&runs, std::fs::Permissions::from_mode(0o555)).unwrap();
        let privileged = probe_writable(&runs).is_ok();
        let issues = path_issues(&config(&runs, "x"));
        std::fs::set_permissions(&runs, std::fs::Permissions::from_mode(0o755)).unwrap();
        if privileged {
            // Root (or a capability) writes through permissions: nothing to detect.
            assert!(issues.is_empty(), "{:?}", messages(&issues));
            return;
        }
        assert_eq!(issues.len(), 1, "{:?}", messages(&issues));
        assert_eq!(issues[0].key.as_deref(), Some("run.output_dir"));
        assert!(
            issues[0].message.contains("cannot create files in"),
            "{}",
            issues[0]
        );
    }

    #[test]
    fn a_locked_run_directory_refuses_a_second_lock_naming_the_directory_and_holder() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let held = lock(&run).unwrap();
        let pid = std::process::id();
        assert_eq!(
            std::fs::read_to_string(run.join(LOCK_FILE)).unwrap(),
            format!("{pid}\n")
        );
        let err = lock(&run).unwrap_err();
        assert!(err.is_user_error());
        let message = err.to_string();
        assert!(message.contains(&run.display().to_string()), "{message}");
        assert!(message.contains(&format!("(process {pid})")), "{message}");
        // The refused attempt left the holder's id in place.
        assert_eq!(
            std::fs::read_to_string(run.join(LOCK_FILE)).unwrap(),
            format!("{pid}\n")
        );
        drop(held);
        lock(&run).unwrap();
    }

    #[test]
    fn a_run_directory_that_cannot_be_created_is_a_user_error_naming_the_key_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("runs");
        std::fs::write(&file, "").unwrap();
        let run = file.join("x");
        let err = lock(&run).unwrap_err();
        assert!(
            matches!(err, TrainError::RunDirUnwritable { .. }),
            "{err:?}"
        );
        assert!(err.is_user_error());
        let message = err.to_string();
        assert!(message.starts_with("run.output_dir: "), "{message}");
        assert!(message.contains(&run.display().to_string()), "{message}");
    }

    #[test]
    fn write_replacing_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        write_replacing(&path, b"old").unwrap();
        write_replacing(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
