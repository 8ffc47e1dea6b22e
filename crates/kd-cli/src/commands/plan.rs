//! `kd plan`: resolve and check a run without allocating a tensor, and print it.

use std::io::Write;
use std::path::PathBuf;

use kd_core::config;
use kd_core::method::Registry;
use kd_core::runtime::{self, PlanOptions};

/// Arguments shared by `kd plan` and `kd train`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// The experiment file.
    pub config: PathBuf,
    /// Override a key: `--set run.seed=3` (repeatable; applied last).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

/// Arguments of `kd plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Accept checkpoint files that do not exist yet (a dry run of runs that produce them);
    /// existing ones are still checked.
    #[arg(long)]
    allow_missing_checkpoints: bool,
}

/// Loads the configuration and builds the plan.
pub fn load_plan(args: &ConfigArgs, options: PlanOptions) -> anyhow::Result<runtime::RunPlan> {
    let loaded = config::load(Some(&args.config), &args.sets)?;
    let registry = Registry::global()?;
    Ok(runtime::plan_with(&loaded, registry, options)?)
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let options = PlanOptions {
        allow_missing_checkpoints: args.allow_missing_checkpoints,
    };
    let plan = load_plan(&args.config, options)?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", plan.describe())?;
    Ok(())
}
