//! `kd plan`: resolve and check a run without allocating a tensor, and print it.

use std::io::Write;
use std::path::PathBuf;

use kd_core::config;
use kd_core::method::Registry;
use kd_core::runtime;

/// Arguments shared by `kd plan` and `kd train`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// The experiment file.
    pub config: PathBuf,
    /// Override a key: `--set run.seed=3` (repeatable; applied last).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

/// Loads the configuration and builds the plan.
pub fn load_plan(args: &ConfigArgs) -> anyhow::Result<runtime::RunPlan> {
    let loaded = config::load(Some(&args.config), &args.sets)?;
    let registry = Registry::global()?;
    Ok(runtime::plan(&loaded, registry)?)
}

/// Runs the command.
pub fn run(args: ConfigArgs) -> anyhow::Result<()> {
    let plan = load_plan(&args)?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", plan.describe())?;
    Ok(())
}
