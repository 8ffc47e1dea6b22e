//! `kd suite`: run several experiments in order and print their results side by side.
//!
//! A suite file lists runs: `[[run]]` tables with a `label`, a `config` (relative to the suite
//! file) and optional `set` overrides. Every run is loaded and planned before the first trains
//! (all problems of all runs reported together); finished runs are skipped, interrupted ones
//! resumed, so rerunning a suite continues it. The quickstart is a suite: teacher, student alone, KD student.
//! At the end the runs are compared as `kd compare` does (`compare.rs`): a table, and a chart
//! `<suite file stem>-compare.png` in the first run's `run.output_dir`.

use std::io::Write;
use std::path::{Path, PathBuf};

use kd_core::config::{self, ConfigError, ConfigIssue, Override};
use kd_core::method::Registry;
use kd_core::runtime::{self, Summary, TrainOptions};
use serde::Deserialize;

use super::compare;
use crate::exit::UsageError;
use crate::progress::Progress;

/// Arguments of `kd suite`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The suite file.
    suite: PathBuf,
    /// Override a key in every run: `--set run.epochs=2` (repeatable; after each run's own).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    title: String,
    run: Vec<SuiteRun>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteRun {
    label: String,
    config: PathBuf,
    #[serde(default)]
    set: Vec<String>,
}

/// Loads and plans every run before any trains, so a mistake in the last run is reported
/// before the first spends its hours; every problem of every run is reported together, each
/// naming its run. A checkpoint that does not exist yet is accepted only where an earlier run of
/// the suite writes it (its run directory); two runs may not share a run directory, and a run
/// directory started with another configuration is never reused as it is.
fn plan_every_run(
    suite_path: &Path,
    suite: &SuiteFile,
    sets: &[String],
    registry: &Registry,
) -> anyhow::Result<Vec<config::LoadedConfig>> {
    let dir = suite_path.parent().unwrap_or(Path::new("."));
    let options = runtime::PlanOptions {
        allow_missing_checkpoints: true,
        ..Default::default()
    };
    let mut issues = Vec::new();
    let mut loaded_runs = Vec::new();
    let mut earlier_dirs: Vec<PathBuf> = Vec::new();
    // The suite run each entry of `earlier_dirs` belongs to.
    let mut labels: Vec<usize> = Vec::new();
    for (index, entry) in suite.run.iter().enumerate() {
        let in_run = |mut issue: ConfigIssue| {
            issue.source = Some(match issue.source {
                Some(source) => format!("{source}, suite run `{}`", entry.label),
                None => format!("suite run `{}`", entry.label),
            });
            issue
        };
        let entry_sets = overrides(suite_path, entry, sets);
        let loaded = match config::load_with(Some(&dir.join(&entry.config)), &entry_sets) {
            Ok(loaded) => loaded,
            Err(e) => {
                issues.extend(e.issues.into_iter().map(in_run));
                continue;
            }
        };
        match runtime::plan_with(&loaded, registry, options) {
            Ok(plan) => {
                if let Some(other) = earlier_dirs.iter().position(|d| *d == plan.run_dir) {
                    issues.push(in_run(ConfigIssue {
                        key: Some("run.name".into()),
                        source: None,
                        message: format!(
                            "{} is also the run directory of suite run `{}`: give each run its \
                             own run.name",
                            plan.run_dir.display(),
                            suite.run[labels[other]].label
                        ),
                    }));
                }
                match runtime::changed_keys_since_start(&plan) {
                    Ok(Some(changed)) if !changed.is_empty() => issues.push(in_run(ConfigIssue {
                        key: None,
                        source: None,
                        message: format!(
                            "{} holds a run started with another configuration (at: {}); \
                                 it would be reused as it is: delete it, or give this run \
                                 another run.name",
                            plan.run_dir.display(),
                            changed.join(", ")
                        ),
                    })),
                    Ok(_) => {}
                    Err(e) => issues.push(in_run(ConfigIssue {
                        key: None,
                        source: None,
                        message: e.to_string(),
                    })),
                }
                for role in &plan.roles {
                    let Some((path, _)) = &role.checkpoint else {
                        continue;
                    };
                    let written_earlier = earlier_dirs.iter().any(|d| within(path, d));
                    if !path.exists() && role.imported_from.is_none() && !written_earlier {
                        issues.push(in_run(ConfigIssue {
                            key: Some(format!("networks.{}.checkpoint", role.network.role)),
                            source: None,
                            message: format!(
                                "{} does not exist and no earlier run of the suite writes it",
                                path.display()
                            ),
                        }));
                    }
                }
                earlier_dirs.push(plan.run_dir.clone());
                labels.push(index);
            }
            Err(e) => issues.extend(e.issues.into_iter().map(in_run)),
        }
        loaded_runs.push(loaded);
    }
    if issues.is_empty() {
        Ok(loaded_runs)
    } else {
        Err(ConfigError { issues }.into())
    }
}

/// A run's overrides: its own `set` entries (named by the suite file and run in errors), then
/// the command line's `--set`.
fn overrides(suite_path: &Path, entry: &SuiteRun, sets: &[String]) -> Vec<Override> {
    let origin = format!("file {} (run `{}`), set", suite_path.display(), entry.label);
    entry
        .set
        .iter()
        .map(|text| Override {
            origin: origin.clone(),
            text: text.clone(),
        })
        .chain(sets.iter().map(|text| Override::flag(text)))
        .collect()
}

/// Whether `path` lies inside `dir` (compared as absolute paths, `..` resolved lexically).
fn within(path: &Path, dir: &Path) -> bool {
    let absolute = |p: &Path| {
        let mut out = PathBuf::new();
        for part in std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .components()
        {
            match part {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                other => out.push(other),
            }
        }
        out
    };
    absolute(path).starts_with(absolute(dir))
}

/// The summary of a finished run; a damaged one is named, with what to do.
fn read_summary(path: &Path) -> anyhow::Result<Summary> {
    let damaged = |e: &dyn std::fmt::Display| {
        UsageError(format!(
            "{}: {e}; the run looks finished but its summary cannot be read (delete the run \
             directory to train it again)",
            path.display()
        ))
    };
    let text = std::fs::read_to_string(path).map_err(|e| damaged(&e))?;
    Ok(serde_json::from_str(&text).map_err(|e| damaged(&e))?)
}

fn read_suite(path: &Path) -> anyhow::Result<SuiteFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| UsageError(format!("{}: {e}", path.display())).into())
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let suite = read_suite(&args.suite)?;
    let dir = args.suite.parent().unwrap_or(Path::new("."));
    // Plugin libraries load before the registry exists: gather them from every run first.
    let mut libraries = Vec::new();
    // A run whose configuration does not load is reported with the others' problems below.
    for entry in &suite.run {
        let sets = overrides(&args.suite, entry, &args.sets);
        let Ok(loaded) = config::load_with(Some(&dir.join(&entry.config)), &sets) else {
            continue;
        };
        libraries.extend(
            loaded
                .config
                .plugins
                .load
                .iter()
                .filter(|p| !libraries.contains(*p))
                .cloned()
                .collect::<Vec<_>>(),
        );
    }
    kd_core::dynamic::load_plugins(&libraries)?;
    let registry = Registry::global()?;
    let loaded = plan_every_run(&args.suite, &suite, &args.sets, registry)?;
    // Each run's label and directory, for the comparison at the end.
    let mut done: Vec<(String, PathBuf)> = Vec::new();
    for (entry, loaded) in suite.run.iter().zip(&loaded) {
        // Planned again now that the runs before it have written their checkpoints.
        let plan = runtime::plan(loaded, registry)?;
        let files = runtime::RunFiles {
            dir: plan.run_dir.clone(),
        };
        let summary_path = files.dir.join("summary.json");
        let finished = summary_path.is_file() && files.last().is_file();
        if finished {
            writeln!(
                std::io::stdout(),
                "== {}: already finished ({})",
                entry.label,
                files.dir.display()
            )?;
            read_summary(&summary_path)?;
        } else {
            let resume = files.last().is_file();
            writeln!(
                std::io::stdout(),
                "== {}: {}",
                entry.label,
                if resume { "resuming" } else { "training" }
            )?;
            let mut progress = Progress::new();
            runtime::train(plan, TrainOptions { resume }, &mut progress)?;
            progress.finish();
        }
        done.push((entry.label.clone(), files.dir));
    }
    summarise(&args.suite, &suite.title, &done)
}

/// The end-of-suite comparison: every run's student side by side (`kd compare`'s table, under
/// the suite's labels) and their curves in `<suite file stem>-compare.png` beside the first
/// run's directory (its `run.output_dir`). A chart that cannot be written is a warning: the runs
/// trained, and the table says how.
fn summarise(suite_path: &Path, title: &str, done: &[(String, PathBuf)]) -> anyhow::Result<()> {
    let dirs: Vec<PathBuf> = done.iter().map(|(_, dir)| dir.clone()).collect();
    let mut runs = compare::read_runs(&dirs)?;
    for (run, (label, _)) in runs.iter_mut().zip(done) {
        run.name = label.clone();
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n{title}")?;
    write!(out, "{}", compare::table(&runs))?;
    let Some(folder) = dirs.first().and_then(|d| d.parent()) else {
        return Ok(());
    };
    let stem = suite_path
        .file_stem()
        .map_or("suite".into(), |s| s.to_string_lossy());
    let chart = folder.join(format!("{stem}-compare.png"));
    match compare::write_chart(&chart, title, &runs) {
        Ok(()) => writeln!(out, "chart: {}", chart.display())?,
        Err(e) => tracing::warn!("{e}"),
    }
    Ok(())
}
