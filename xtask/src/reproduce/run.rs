//! Running a table's cells with the `kd` binary: finished cells are skipped, interrupted ones
//! resumed, independent ones run `--jobs` at a time (the longest chain of remaining work first,
//! `order.rs`), each into its own log file. A failed cell stops the command, naming its log. An
//! evaluation cell (a released teacher) runs `kd eval` on the test split of `KD_DATA` and keeps
//! its JSON report as `eval.json`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::manifest::{Cell, CellKind};

/// Where a cell stands on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellState {
    /// `summary.json` exists.
    Done,
    /// A checkpoint exists but no summary.
    Interrupted,
    /// Nothing yet.
    New,
}

/// The report an evaluation cell keeps (`kd eval --json`).
pub const EVAL_REPORT: &str = "eval.json";

/// The state of a cell, from its run directory.
pub fn cell_state(repo: &Path, cell: &Cell) -> CellState {
    let dir = repo.join(&cell.dir);
    if let CellKind::Eval { .. } = cell.kind {
        return if dir.join(EVAL_REPORT).is_file() {
            CellState::Done
        } else {
            CellState::New
        };
    }
    if dir.join("summary.json").is_file() {
        CellState::Done
    } else if dir.join("checkpoints").join("last.kdc").is_file() {
        CellState::Interrupted
    } else {
        CellState::New
    }
}

/// The log file of a cell: beside its run directory.
pub fn log_path(repo: &Path, cell: &Cell) -> PathBuf {
    repo.join(cell.dir.with_extension("log"))
}

/// `kd <subcommand> <config> --set …` for a cell.
pub fn kd_command(kd: &Path, repo: &Path, cell: &Cell, subcommand: &[&str]) -> Command {
    let mut command = Command::new(kd);
    command
        .current_dir(repo)
        .args(subcommand)
        .arg(&cell.config)
        .env("KD_LOG", "warn");
    for set in &cell.sets {
        command.arg("--set").arg(set);
    }
    command
}

/// `kd eval --checkpoint <file> --arch <arch> --data $KD_DATA --format <format> --json` for an
/// evaluation cell.
///
/// # Errors
/// When `KD_DATA` is not set: the released teachers are evaluated on its test split.
pub fn eval_command(kd: &Path, repo: &Path, cell: &Cell) -> anyhow::Result<Command> {
    let CellKind::Eval {
        arch,
        checkpoint,
        format,
    } = &cell.kind
    else {
        bail!("cell {} trains; it is not an evaluation", cell_name(cell));
    };
    let Some(data) = std::env::var_os("KD_DATA") else {
        bail!(
            "cell {} evaluates {} on the test split of KD_DATA: set KD_DATA to the {format} \
             folder",
            cell_name(cell),
            checkpoint.display()
        );
    };
    let mut command = Command::new(kd);
    command
        .current_dir(repo)
        .env("KD_LOG", "warn")
        .arg("eval")
        .arg("--checkpoint")
        .arg(checkpoint)
        .args(["--arch", arch, "--format", format, "--json", "--data"])
        .arg(data);
    Ok(command)
}

/// A human name for a cell.
pub fn cell_name(cell: &Cell) -> String {
    format!("{}/{}/seed{}", cell.row, cell.key, cell.seed)
}

fn start(kd: &Path, repo: &Path, cell: &Cell) -> anyhow::Result<Child> {
    let log = log_path(repo, cell);
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    if let CellKind::Eval { .. } = cell.kind {
        let dir = repo.join(&cell.dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let partial = dir.join(format!("{EVAL_REPORT}.partial"));
        let report = std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        let mut command = eval_command(kd, repo, cell)?;
        super::child::end_with_sweep(&mut command);
        command
            .stdout(Stdio::from(report))
            .stderr(Stdio::from(file));
        return command
            .spawn()
            .with_context(|| format!("starting {}", kd.display()));
    }
    let mut command = kd_command(kd, repo, cell, &["train"]);
    if cell_state(repo, cell) == CellState::Interrupted {
        command.arg("--resume");
    }
    super::child::end_with_sweep(&mut command);
    command
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file));
    command
        .spawn()
        .with_context(|| format!("starting {}", kd.display()))
}

/// After a cell succeeds: an evaluation's report becomes `eval.json` (a report cut short by a
/// failure never does).
fn finish(repo: &Path, cell: &Cell) -> anyhow::Result<()> {
    if let CellKind::Eval { .. } = cell.kind {
        let dir = repo.join(&cell.dir);
        let partial = dir.join(format!("{EVAL_REPORT}.partial"));
        std::fs::rename(&partial, dir.join(EVAL_REPORT))
            .with_context(|| format!("renaming {}", partial.display()))?;
    }
    Ok(())
}

/// Runs every unfinished cell, at most `jobs` at once, dependencies first, the longest chain of
/// remaining work first among the cells ready to start (`order.rs`).
pub fn run_cells(kd: &Path, repo: &Path, cells: &[Cell], jobs: usize) -> anyhow::Result<()> {
    let mut done: Vec<bool> = cells
        .iter()
        .map(|c| cell_state(repo, c) == CellState::Done)
        .collect();
    let total = cells.len();
    let already = done.iter().filter(|d| **d).count();
    eprintln!("{already} of {total} cells already finished");
    let known: Vec<Option<f64>> = cells
        .iter()
        .map(|c| super::order::recorded_seconds(repo, c))
        .collect();
    let priority = super::order::priorities(cells, &super::order::costs(cells, &known));
    let mut started = vec![false; total];
    let mut running: Vec<(usize, Child, Instant)> = Vec::new();
    let mut failure: Option<String> = None;
    loop {
        while failure.is_none() && running.len() < jobs.max(1) {
            let ready = (0..total)
                .filter(|&i| !done[i] && !started[i] && cells[i].needs.iter().all(|&n| done[n]));
            let Some(next) = super::order::next(ready, &priority) else {
                break;
            };
            started[next] = true;
            let verb = if cell_state(repo, &cells[next]) == CellState::Interrupted {
                "resuming"
            } else {
                "running"
            };
            eprintln!(
                "[{}/{total}] {verb} {}",
                done.iter().filter(|d| **d).count() + running.len() + 1,
                cell_name(&cells[next])
            );
            running.push((next, start(kd, repo, &cells[next])?, Instant::now()));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut still = Vec::new();
        for (index, mut child, since) in running {
            match child.try_wait()? {
                None => still.push((index, child, since)),
                Some(status) if status.success() => {
                    finish(repo, &cells[index])?;
                    done[index] = true;
                    eprintln!(
                        "       finished {} in {:.0} s",
                        cell_name(&cells[index]),
                        since.elapsed().as_secs_f64()
                    );
                }
                Some(status) => {
                    failure.get_or_insert(format!(
                        "cell {} failed ({status}); its log: {}",
                        cell_name(&cells[index]),
                        log_path(repo, &cells[index]).display()
                    ));
                }
            }
        }
        running = still;
    }
    if let Some(message) = failure {
        bail!(message);
    }
    if let Some(stuck) = (0..total).find(|&i| !done[i]) {
        bail!(
            "cell {} could not run: a cell it needs did not finish",
            cell_name(&cells[stuck])
        );
    }
    Ok(())
}
