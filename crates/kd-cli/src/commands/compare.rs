//! `kd compare RUN_DIR...`: runs side by side, as a table (or JSON) of their students' results
//! and one PNG of their learning curves. `kd suite` prints its end-of-suite summary with
//! [`table`] and draws its chart with [`write_chart`].
//!
//! Every run directory is read before anything is written: every directory that is not a run
//! and every damaged file is reported together (status 2), and the chart is written only when
//! all were read. The chart replaces an earlier file at `--out` whole (it must end in `.png`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use kd_core::runtime::compare::{self, ComparedRun};

use crate::exit::UsageError;

/// Arguments of `kd compare`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directories (`run.output_dir`/`run.name`), finished or not.
    #[arg(required = true, value_name = "RUN_DIR")]
    runs: Vec<PathBuf>,
    /// The PNG of the runs' learning curves.
    #[arg(long, default_value = "compare.png")]
    out: PathBuf,
    /// Print the comparison as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Reads every run directory; every failure is reported, each naming its path.
pub fn read_runs(dirs: &[PathBuf]) -> Result<Vec<ComparedRun>, UsageError> {
    let mut runs = Vec::new();
    let mut problems = Vec::new();
    for dir in dirs {
        match compare::read_run(dir) {
            Ok(run) => runs.push(run),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() {
        Ok(runs)
    } else {
        Err(UsageError(problems.join("\n")))
    }
}

/// Checks that `out` (given as `flag`) can take the chart: a `.png` path that is not a
/// directory, in a folder that exists.
pub fn check_out(flag: &str, out: &Path) -> Result<(), UsageError> {
    let problem = if !out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        Some("the chart is a PNG: give a path ending in .png".to_string())
    } else if out.is_dir() {
        Some("is a directory".to_string())
    } else {
        match out.parent() {
            Some(folder) if !folder.as_os_str().is_empty() && !folder.is_dir() => {
                Some(format!("folder {} does not exist", folder.display()))
            }
            _ => None,
        }
    };
    match problem {
        Some(problem) => Err(UsageError(format!("{flag} {}: {problem}", out.display()))),
        None => Ok(()),
    }
}

/// Draws the runs' chart into `out`.
pub fn write_chart(out: &Path, title: &str, runs: &[ComparedRun]) -> Result<(), UsageError> {
    compare::draw_comparison(out, title, runs).map_err(|e| UsageError(e.to_string()))
}

fn percent(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.2}"))
}

/// Seconds as `42.0s`, `3m07s` or `2h05m`.
fn duration(seconds: Option<f64>) -> String {
    let Some(s) = seconds else {
        return "-".into();
    };
    let whole = s.round() as u64;
    if s < 60.0 {
        format!("{s:.1}s")
    } else if whole < 3600 {
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        format!("{}h{:02}m", whole / 3600, whole % 3600 / 60)
    }
}

/// A run's method stack: `instance=kind×weight`, comma-separated (`-` for none).
fn stack(run: &ComparedRun) -> String {
    if run.stack.is_empty() {
        return "-".into();
    }
    run.stack
        .iter()
        .map(|m| format!("{}={}×{}", m.instance, m.kind, m.weight))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The runs as a text table: name, status, the student's best top-1 and its epoch, last
/// top-1, epochs, steps, wall time, the student's architecture and the method stack.
pub fn table(runs: &[ComparedRun]) -> String {
    let width = runs
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(3);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:<10}  {:>6}  {:>5}  {:>6}  {:>6}  {:>7}  {:>8}  {:<12}  stack",
        "run", "status", "best", "epoch", "last", "epochs", "steps", "wall", "student"
    );
    for run in runs {
        let _ = writeln!(
            out,
            "{:<width$}  {:<10}  {:>6}  {:>5}  {:>6}  {:>6}  {:>7}  {:>8}  {:<12}  {}",
            run.name,
            if run.finished {
                "finished"
            } else {
                "unfinished"
            },
            percent(run.best_top1),
            run.best_epoch.map_or("-".into(), |e| e.to_string()),
            percent(run.last_top1),
            run.epochs,
            run.steps,
            duration(run.wall_seconds),
            run.student_arch.as_deref().unwrap_or("?"),
            stack(run),
        );
    }
    out
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    check_out("--out", &args.out)?;
    let runs = read_runs(&args.runs)?;
    write_chart(&args.out, "", &runs)?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let value = serde_json::json!({ "chart": args.out, "runs": runs });
        writeln!(stdout, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        write!(stdout, "{}", table(&runs))?;
        writeln!(stdout, "chart: {}", args.out.display())?;
    }
    Ok(())
}
