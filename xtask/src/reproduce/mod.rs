//! `cargo xtask reproduce <table>`: every cell of a paper table run by the `kd` binary, resumed
//! where it stopped, aggregated into `docs/results/<table>.md`, `.csv` and `.png`, with each
//! seed's numbers (`-seeds.csv`) and the learning curves (`-curves.png`, `-curves.csv`).
//!
//! `manifest.rs` reads `configs/reproduce/<table>.toml` and expands it into cells, `reuse.rs`
//! reruns a cell whose configuration changed since it ran, `run.rs` runs them (`child.rs`: they
//! end with the sweep), `aggregate.rs` reads the results back, `curves.rs` reads and draws the
//! learning curves, `report.rs` and `chart.rs` write them, `slurm.rs` emits job arrays for a
//! cluster, `released.rs` checks a directory of released teachers (`--released-teachers`),
//! `recipe.rs` prints the recipe sheets. `--dry-run` plans every cell and times a step of each
//! (`kd plan`, `kd time`) instead of training.

mod aggregate;
mod chart;
mod child;
mod curves;
pub mod manifest;
mod order;
mod recipe;
mod released;
pub mod report;
mod reuse;
mod run;
mod slurm;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::BadInput;
use manifest::{Cell, Manifest};

/// Arguments of `cargo xtask reproduce`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The table: `configs/reproduce/<table>.toml`.
    table: String,
    /// Read the manifest from this file instead (the table name still names the results).
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Where the results go (default `docs/results`).
    #[arg(long)]
    results: Option<PathBuf>,
    /// Seeds (default: the manifest's, or its quick variant's).
    #[arg(long)]
    seeds: Option<usize>,
    /// The manifest's quick variant (the shipped data, a small budget); writes `<table>-quick.*`.
    #[arg(long)]
    quick: bool,
    /// Plan every cell and time a step of each; train nothing.
    #[arg(long)]
    dry_run: bool,
    /// Plan every cell (`kd plan`) and stop: no timing, no training.
    #[arg(long, conflicts_with = "dry_run")]
    plan_only: bool,
    /// Cells run at once.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Write Slurm job arrays into DIR instead of running (`--emit slurm DIR`).
    #[arg(long, num_args = 2, value_names = ["KIND", "DIR"])]
    emit: Option<Vec<String>>,
    /// Only aggregate the results already on disk.
    #[arg(long)]
    aggregate_only: bool,
    /// The `kd` binary to use (default: build it with cargo).
    #[arg(long)]
    kd: Option<PathBuf>,
    /// A directory of the table's released teacher checkpoints (its `[teachers.released]`
    /// files, as the official fetch script lays them out): the teacher row evaluates them and
    /// distillation loads them, instead of training teachers; writes `<table>-released.*`.
    #[arg(long, value_name = "DIR")]
    released_teachers: Option<PathBuf>,
    /// Print every cell's effective settings beside the official recipe
    /// (`configs/reproduce/recipes/<table>.toml`), differences marked; train nothing.
    #[arg(long, conflicts_with_all = ["dry_run", "plan_only", "emit", "aggregate_only", "quick"])]
    recipe: bool,
    #[command(flatten)]
    recipe_options: recipe::Options,
}

/// The repository root (xtask lives in `<root>/xtask`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the repository")
        .to_path_buf()
}

/// Builds the `kd` binary (a no-op when it is fresh) and returns its path.
pub fn build_kd(repo: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "kd-cli", "--bin", "kd"])
        .current_dir(repo)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building kd failed");
    }
    Ok(repo
        .join("target")
        .join("debug")
        .join(format!("kd{}", std::env::consts::EXE_SUFFIX)))
}

fn dry_run(
    kd: &Path,
    repo: &Path,
    manifest: &Manifest,
    cells: &[Cell],
    time: bool,
) -> anyhow::Result<()> {
    let flags = ["--allow-missing-checkpoints", "--allow-missing-data"];
    let mut total = 0.0;
    let mut seen: Vec<(String, String)> = Vec::new();
    println!(
        "{:<12} {:<28} {:>6} {:>12} {:>14}",
        "row", "cell", "seeds", "s/step", "estimate"
    );
    for cell in cells {
        let group = (cell.row.clone(), cell.key.clone());
        if seen.contains(&group) {
            continue;
        }
        seen.push(group);
        let seeds = cells
            .iter()
            .filter(|c| c.row == cell.row && c.key == cell.key)
            .count();
        if let manifest::CellKind::Eval { checkpoint, .. } = &cell.kind {
            println!(
                "{:<12} {:<28} {:>6} evaluates {}",
                cell.row,
                cell.key,
                seeds,
                checkpoint.display()
            );
            continue;
        }
        let plan = run::kd_command(kd, repo, cell, &["plan"])
            .args(flags)
            .output()
            .context("running kd plan")?;
        if !plan.status.success() {
            bail!(
                "cell {} does not plan:\n{}",
                run::cell_name(cell),
                String::from_utf8_lossy(&plan.stderr)
            );
        }
        if !time {
            println!("{:<12} {:<28} {:>6} plans", cell.row, cell.key, seeds);
            continue;
        }
        let timed = run::kd_command(kd, repo, cell, &["time"])
            .args(flags)
            .args(["--steps", "4", "--json"])
            .output()
            .context("running kd time")?;
        if !timed.status.success() {
            bail!(
                "timing cell {} failed:\n{}",
                run::cell_name(cell),
                String::from_utf8_lossy(&timed.stderr)
            );
        }
        let timing: serde_json::Value =
            serde_json::from_slice(&timed.stdout).context("reading kd time's JSON")?;
        let seconds = timing["estimated_seconds"].as_f64().unwrap_or(0.0) * seeds as f64;
        total += seconds;
        println!(
            "{:<12} {:<28} {:>6} {:>12.3} {:>12.1} h",
            cell.row,
            cell.key,
            seeds,
            timing["seconds_per_step"].as_f64().unwrap_or(0.0),
            seconds / 3600.0
        );
    }
    if !time {
        println!("{}: all {} cells plan", manifest.title, cells.len());
        return Ok(());
    }
    println!(
        "{}: {} cells plan; estimated {:.1} h of compute on this machine ({:.1} min)",
        manifest.title,
        cells.len(),
        total / 3600.0,
        total / 60.0
    );
    Ok(())
}

fn aggregate(
    repo: &Path,
    results: &Path,
    table: &str,
    manifest: &Manifest,
    cells: &[Cell],
    command: String,
) -> anyhow::Result<PathBuf> {
    let entries = aggregate::collect(repo, manifest, cells)?;
    let verdicts = aggregate::verdicts(manifest, &entries, repo, cells);
    let curves = curves::collect(repo, manifest, cells)?;
    std::fs::create_dir_all(results).with_context(|| format!("creating {}", results.display()))?;
    let png_name = format!("{table}.png");
    let chart = chart::draw_chart(&results.join(&png_name), manifest, &entries)
        .map_err(|e| eprintln!("warning: no chart: {e}"))
        .ok()
        .map(|_| png_name.as_str());
    let curves_png = format!("{table}-curves.png");
    let curves_chart = curves::draw_chart(&results.join(&curves_png), manifest, &curves)
        .map_err(|e| eprintln!("warning: no learning curves: {e}"))
        .ok()
        .map(|_| curves_png.as_str());
    let curves_csv = format!("{table}-curves.csv");
    let seeds_csv = format!("{table}-seeds.csv");
    let provenance = report::Provenance::here(repo, command);
    let md = results.join(format!("{table}.md"));
    let shown = report::Results {
        entries: &entries,
        verdicts: &verdicts,
        curves: &curves,
        cell_time: aggregate::cell_time(repo, cells),
    };
    let files = report::Files {
        chart,
        curves: curves_chart,
        curves_csv: &curves_csv,
        seeds_csv: &seeds_csv,
    };
    report::write(
        &md,
        &report::markdown(manifest, &shown, &provenance, &files),
    )?;
    report::write(
        &results.join(format!("{table}.csv")),
        &report::csv(manifest, &entries),
    )?;
    report::write(&results.join(&seeds_csv), &report::seeds_csv(&entries))?;
    report::write(&results.join(&curves_csv), &curves::csv(&curves))?;
    Ok(md)
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let repo = repo_root();
    let path = args.manifest.clone().unwrap_or_else(|| {
        repo.join("configs")
            .join("reproduce")
            .join(format!("{}.toml", args.table))
    });
    if !path.is_file() {
        let known: Vec<String> = std::fs::read_dir(repo.join("configs").join("reproduce"))
            .map(|d| {
                d.filter_map(|e| {
                    e.ok()?
                        .path()
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                })
                .collect()
            })
            .unwrap_or_default();
        return Err(BadInput(format!(
            "no table `{}` ({} does not exist); known: {}",
            args.table,
            path.display(),
            known.join(", ")
        ))
        .into());
    }
    // A manifest that does not read or expand is the user's input: exit status 2.
    let bad = |e: anyhow::Error| anyhow::Error::from(BadInput(format!("{e:#}")));
    let manifest = Manifest::load(&path).map_err(bad)?;
    let seeds = manifest.seeds(args.seeds, args.quick);
    if seeds == 0 {
        return Err(BadInput(
            "seeds must be at least 1 (`seeds` in the manifest, or --seeds)".into(),
        )
        .into());
    }
    if args.quick && manifest.quick.is_none() {
        return Err(BadInput(format!("table `{}` has no [quick] variant", args.table)).into());
    }
    if let Some(dir) = &args.released_teachers {
        released::check(&manifest, &args.table, dir)?;
        if args.emit.is_some() {
            bail!("--emit writes training jobs only; run --released-teachers here");
        }
    }
    let cells = manifest
        .cells_with(seeds, args.quick, args.released_teachers.as_deref())
        .map_err(bad)?;
    let kd = match &args.kd {
        Some(kd) => kd.clone(),
        None => build_kd(&repo)?,
    };
    if args.recipe {
        return recipe::run(
            &kd,
            &repo,
            &args.table,
            &manifest,
            args.released_teachers.as_deref(),
            &args.recipe_options,
        );
    }
    if args.dry_run || args.plan_only {
        return dry_run(&kd, &repo, &manifest, &cells, args.dry_run);
    }
    if let Some(emit) = &args.emit {
        let [kind, dir] = emit.as_slice() else {
            bail!("--emit takes KIND DIR")
        };
        if kind != "slurm" {
            bail!("unknown --emit kind `{kind}`; known: slurm");
        }
        reuse::retire_stale(&kd, &repo, &cells)?;
        slurm::emit(Path::new(dir), &args.table, &repo, &kd, &cells)?;
        println!(
            "wrote Slurm job arrays for {} cells into {dir}; run {dir}/submit.sh",
            cells.len()
        );
        return Ok(());
    }
    if args.aggregate_only {
        let stale = reuse::stale_cells(&kd, &repo, &cells, reuse::Purpose::Aggregate)?;
        let mut named = Vec::new();
        for (cell, why) in cells.iter().zip(&stale) {
            match why {
                None => {}
                // Results written elsewhere (a cluster's, copied back) may come without it.
                Some(reuse::Stale::NoConfig) => eprintln!(
                    "warning: cell {} is aggregated unchecked: {}",
                    run::cell_name(cell),
                    reuse::Stale::NoConfig
                ),
                Some(why) => named.push(format!("{}: {why}", run::cell_name(cell))),
            }
        }
        if !named.is_empty() {
            return Err(BadInput(format!(
                "{} cell(s) on disk cannot be aggregated as they are (run the table without \
                 --aggregate-only to rerun them):\n  {}",
                named.len(),
                named.join("\n  ")
            ))
            .into());
        }
    } else {
        reuse::retire_stale(&kd, &repo, &cells)?;
        run::run_cells(&kd, &repo, &cells, args.jobs)?;
    }
    let mut name = args.table.clone();
    if args.released_teachers.is_some() {
        name.push_str("-released");
    }
    if args.quick {
        name.push_str("-quick");
    }
    let mut command = format!("cargo xtask reproduce {}", args.table);
    if args.quick {
        command.push_str(" --quick");
    }
    if let Some(s) = args.seeds {
        command.push_str(&format!(" --seeds {s}"));
    }
    if let Some(dir) = &args.released_teachers {
        command.push_str(&format!(" --released-teachers {}", dir.display()));
    }
    let results = args
        .results
        .clone()
        .unwrap_or_else(|| repo.join("docs").join("results"));
    let md = aggregate(&repo, &results, &name, &manifest, &cells, command)?;
    println!("wrote {}", md.display());
    Ok(())
}
