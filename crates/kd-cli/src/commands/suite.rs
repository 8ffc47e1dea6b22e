//! `kd suite`: run several experiments in order and print their results side by side.
//!
//! A suite file lists runs: `[[run]]` tables with a `label`, a `config` (relative to the suite
//! file) and optional `set` overrides. Finished runs are skipped, interrupted ones resumed, so
//! rerunning a suite continues it. The quickstart is a suite: teacher, student alone, KD student.

use std::io::Write;
use std::path::{Path, PathBuf};

use kd_core::config;
use kd_core::method::Registry;
use kd_core::runtime::{self, Summary, TrainOptions};
use serde::Deserialize;

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

/// A finished run: its label, summary, and `(role, architecture)` pairs.
type Finished = (String, Summary, Vec<(String, String)>);

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
    for entry in &suite.run {
        let sets: Vec<String> = entry.set.iter().chain(&args.sets).cloned().collect();
        let loaded = config::load(Some(&dir.join(&entry.config)), &sets)?;
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
    let mut results: Vec<Finished> = Vec::new();
    for entry in &suite.run {
        let sets: Vec<String> = entry.set.iter().chain(&args.sets).cloned().collect();
        let loaded = config::load(Some(&dir.join(&entry.config)), &sets)?;
        let plan = runtime::plan(&loaded, registry)?;
        let archs: Vec<(String, String)> = plan
            .roles
            .iter()
            .map(|r| (r.network.role.clone(), r.network.arch_name.clone()))
            .collect();
        let files = runtime::RunFiles {
            dir: plan.run_dir.clone(),
        };
        let summary_path = files.dir.join("summary.json");
        let finished = summary_path.is_file() && files.last().is_file();
        let summary = if finished {
            writeln!(
                std::io::stdout(),
                "== {}: already finished ({})",
                entry.label,
                files.dir.display()
            )?;
            serde_json::from_str(&std::fs::read_to_string(&summary_path)?)?
        } else {
            let resume = files.last().is_file();
            writeln!(
                std::io::stdout(),
                "== {}: {}",
                entry.label,
                if resume { "resuming" } else { "training" }
            )?;
            let mut progress = Progress::new();
            let summary = runtime::train(plan, TrainOptions { resume }, &mut progress)?;
            progress.finish();
            summary
        };
        results.push((entry.label.clone(), summary, archs));
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n{}", suite.title)?;
    writeln!(
        out,
        "{:<22} {:<10} {:<12} {:>10} {:>10}",
        "run", "network", "arch", "best top-1", "last top-1"
    )?;
    for (label, summary, archs) in &results {
        for (role, o) in &summary.outputs {
            let arch = archs
                .iter()
                .find(|(r, _)| r == role)
                .map(|(_, a)| a.as_str())
                .unwrap_or("");
            writeln!(
                out,
                "{:<22} {:<10} {:<12} {:>10.2} {:>10.2}",
                label, role, arch, o.best_top1, o.last_top1
            )?;
        }
    }
    Ok(())
}
