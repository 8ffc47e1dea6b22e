//! Whether a finished (or interrupted) cell may be reused. A cell's run directory keeps the
//! configuration it ran with (`config.toml`, written by `kd train`); before a sweep, every cell
//! on disk is compared key by key with the configuration its command resolves to now
//! (`kd print-config --resolved`). A cell whose configuration changed (bookkeeping keys such as
//! `run.log_every` aside, for a finished cell), whose `config.toml` is missing or unreadable, or
//! whose teacher (a cell it needs) is about to run again, is rerun: its directory and log are
//! moved aside to `<dir>.replaced-<n>` (nothing is deleted) and the reason is printed. A cell
//! another kd run holds (its `.lock`) is never moved or started: the sweep stops first. A finished cell is never reused under a
//! configuration it did not run with.
//!
//! Not covered: an evaluation cell (a released teacher's file, by path) is kept while its report
//! exists even if the file was replaced, and a change to kd itself (its `git_revision`) does not
//! rerun anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::manifest::{Cell, CellKind};
use super::run::{CellState, cell_name, cell_state, kd_command, log_path};

/// Why a cell on disk cannot be reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// Its configuration differs at these dotted keys (sorted).
    Changed(Vec<String>),
    /// Its directory holds no `config.toml` to compare with.
    NoConfig,
    /// Its `config.toml` is not valid TOML (the parser's message).
    Unreadable(String),
    /// A cell it needs (by name) runs again, so it would distil from another teacher.
    NeedsRerun(String),
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stale::Changed(keys) => write!(f, "its configuration changed at {}", keys.join(", ")),
            Stale::NoConfig => write!(f, "its directory has no config.toml to compare with"),
            Stale::Unreadable(e) => write!(f, "its config.toml is not valid TOML ({e})"),
            Stale::NeedsRerun(need) => write!(f, "{need}, which it needs, runs again"),
        }
    }
}

/// The dotted keys whose values differ between two TOML texts, sorted (a text that does not
/// parse counts as empty, so every key of the other differs). The same comparison as kd-core's
/// `runtime::run_dir::changed_keys` (what `kd train --resume` refuses on), kept here because
/// xtask does not link kd-core and burn.
pub fn changed_keys(saved: &str, current: &str) -> Vec<String> {
    let (a, b) = (flatten_text(saved), flatten_text(current));
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

fn flatten_text(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(table) = text.parse::<toml::Table>() {
        flatten("", &toml::Value::Table(table), &mut out);
    }
    out
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, value, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The configuration `cell` resolves to now, as its run would write it.
fn resolved_config(kd: &Path, repo: &Path, cell: &Cell) -> anyhow::Result<String> {
    let out = kd_command(kd, repo, cell, &["print-config"])
        .arg("--resolved")
        .output()
        .with_context(|| format!("running {}", kd.display()))?;
    if out.status.code() == Some(2) {
        return Err(crate::BadInput(format!(
            "cell {}: {}",
            cell_name(cell),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .into());
    }
    if !out.status.success() {
        bail!(
            "cell {}: kd print-config failed: {}",
            cell_name(cell),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).context("kd print-config printed non-UTF-8")
}

/// What the comparison is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A sweep: every cell on disk that would be reused is checked; a cell without
    /// `config.toml` cannot be checked and runs again.
    Sweep,
    /// `--aggregate-only`: only finished cells are checked (nothing runs); a finished cell
    /// without `config.toml` (results copied back from elsewhere) is reported but taken as
    /// it is, and a cell whose teacher is simply absent is not stale on that account.
    Aggregate,
}

/// Keys that change how a run is logged, checkpointed or fed, never what it computes: a
/// finished cell is reused across them (an interrupted one is not: `kd train --resume`
/// compares every key). `include` names the files the values came from, not the values.
pub const BOOKKEEPING_KEYS: [&str; 4] = [
    "include",
    "run.log_every",
    "run.checkpoint_every",
    "data.prefetch",
];

/// Why each cell on disk cannot be reused (`None`: reusable, or nothing to check), in the
/// order of `cells` (a cell comes after the cells it needs); see [`Purpose`].
///
/// # Errors
/// [`crate::BadInput`] when `kd print-config` refuses a cell's configuration (a key the
/// manifest gets wrong); other errors when `kd` cannot run or a saved `config.toml` cannot be
/// read.
pub fn stale_cells(
    kd: &Path,
    repo: &Path,
    cells: &[Cell],
    purpose: Purpose,
) -> anyhow::Result<Vec<Option<Stale>>> {
    let mut stale: Vec<Option<Stale>> = Vec::with_capacity(cells.len());
    // Whether the cell's results will change (it runs, or, aggregating, it is stale).
    let mut changes: Vec<bool> = Vec::with_capacity(cells.len());
    for cell in cells {
        let state = cell_state(repo, cell);
        let checked = match purpose {
            Purpose::Sweep => state != CellState::New,
            Purpose::Aggregate => state == CellState::Done,
        };
        let why = if !checked || matches!(cell.kind, CellKind::Eval { .. }) {
            None
        } else if let Some(&need) = cell.needs.iter().find(|&&n| changes.get(n) == Some(&true)) {
            Some(Stale::NeedsRerun(cell_name(&cells[need])))
        } else {
            let saved_path = repo.join(&cell.dir).join("config.toml");
            if saved_path.is_file() {
                let saved = std::fs::read_to_string(&saved_path)
                    .with_context(|| format!("reading {}", saved_path.display()))?;
                match saved.parse::<toml::Table>() {
                    Err(e) => Some(Stale::Unreadable(e.message().to_string())),
                    Ok(_) => {
                        let mut keys = changed_keys(&saved, &resolved_config(kd, repo, cell)?);
                        if state == CellState::Done {
                            keys.retain(|k| !BOOKKEEPING_KEYS.contains(&k.as_str()));
                        }
                        (!keys.is_empty()).then_some(Stale::Changed(keys))
                    }
                }
            } else {
                Some(Stale::NoConfig)
            }
        };
        let kept = purpose == Purpose::Aggregate && why == Some(Stale::NoConfig);
        changes.push(match purpose {
            Purpose::Sweep => why.is_some() || state != CellState::Done,
            Purpose::Aggregate => why.is_some() && !kept,
        });
        stale.push(why);
    }
    Ok(stale)
}

/// The process holding the lock of run directory `dir`, if one does: `Some(holder)` with the
/// process id the lock file names (empty if it names none). Taking the lock to look is brief.
fn lock_holder(dir: &Path) -> Option<String> {
    let path = dir.join(".lock");
    let file = std::fs::File::open(&path).ok()?;
    match file.try_lock() {
        Ok(()) => None,
        Err(std::fs::TryLockError::WouldBlock) => Some(
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

/// Free names beside `dir` for a replaced run and its log: `<dir>.replaced-<n>` and
/// `<dir>.replaced-<n>.log`, lowest `n` from 1.
fn aside(dir: &Path) -> (PathBuf, PathBuf) {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = name.unwrap_or_default();
    (1..)
        .map(|n| {
            (
                dir.with_file_name(format!("{name}.replaced-{n}")),
                dir.with_file_name(format!("{name}.replaced-{n}.log")),
            )
        })
        .find(|(run, log)| !run.exists() && !log.exists())
        .expect("some number is free")
}

/// Moves every stale cell's run directory (and log) aside so the sweep reruns it, printing
/// which and why. Returns how many were moved.
///
/// # Errors
/// As [`stale_cells`], and when a directory cannot be renamed.
pub fn retire_stale(kd: &Path, repo: &Path, cells: &[Cell]) -> anyhow::Result<usize> {
    let stale = stale_cells(kd, repo, cells, Purpose::Sweep)?;
    // Every cell the sweep would start or move: stale ones, and any not finished (a cell
    // another sweep has just started has nothing on disk yet but its lock).
    let busy: Vec<String> = cells
        .iter()
        .zip(&stale)
        .filter(|(cell, why)| why.is_some() || cell_state(repo, cell) != CellState::Done)
        .filter_map(|(cell, _)| {
            let holder = lock_holder(&repo.join(&cell.dir))?;
            Some(format!(
                "{} (process {holder})",
                repo.join(&cell.dir).display()
            ))
        })
        .collect();
    if !busy.is_empty() {
        return Err(crate::BadInput(format!(
            "cells this sweep would run are in use by another kd run; nothing was started \
             or moved. Wait for it or stop it:\n  {}",
            busy.join("\n  ")
        ))
        .into());
    }
    let mut moved = 0;
    for (cell, why) in cells.iter().zip(&stale) {
        let Some(why) = why else { continue };
        let dir = repo.join(&cell.dir);
        let (to, log_to) = aside(&dir);
        std::fs::rename(&dir, &to)
            .with_context(|| format!("moving {} to {}", dir.display(), to.display()))?;
        let log = log_path(repo, cell);
        if log.is_file() {
            std::fs::rename(&log, &log_to)
                .with_context(|| format!("moving {} to {}", log.display(), log_to.display()))?;
        }
        eprintln!(
            "cell {} runs again: {why}; the earlier run is kept at {}",
            cell_name(cell),
            to.display()
        );
        moved += 1;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_are_dotted_sorted_and_include_added_and_removed_keys() {
        let saved = "[run]\nepochs = 4\nseed = 0\n[data]\nroot = \"a\"\n";
        let current = "[run]\nepochs = 15\nseed = 0\n[data]\nroot = \"a\"\nextra = 1\n";
        assert_eq!(changed_keys(saved, current), ["data.extra", "run.epochs"]);
        assert!(changed_keys(saved, saved).is_empty());
        assert_eq!(changed_keys("not toml [", "a = 1"), ["a"]);
    }

    #[test]
    fn a_replaced_run_goes_to_the_first_free_name() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("seed0");
        std::fs::create_dir_all(dir.path().join("seed0.replaced-1")).unwrap();
        std::fs::write(dir.path().join("seed0.replaced-2.log"), "").unwrap();
        assert_eq!(
            aside(&run),
            (
                dir.path().join("seed0.replaced-3"),
                dir.path().join("seed0.replaced-3.log")
            )
        );
    }
}
