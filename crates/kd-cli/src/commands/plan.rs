//! `kd plan`: resolve and check a run without allocating a tensor, and print it with the device
//! it would run on.

use std::io::Write;
use std::path::PathBuf;

use kd_core::backend;
use kd_core::config;
use kd_core::method::Registry;
use kd_core::runtime::{self, PlanOptions};

/// Arguments shared by `kd plan`, `kd time` and `kd train`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// The experiment file.
    pub config: PathBuf,
    /// Override a key: `--set run.seed=3` (repeatable; applied last).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

/// What a dry run may take for granted.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct DryRunFlags {
    /// Accept checkpoint files that do not exist yet (runs that produce them come first);
    /// existing ones are still checked.
    #[arg(long)]
    pub allow_missing_checkpoints: bool,
    /// Plan a dataset that is not on this machine with its format's standard geometry.
    #[arg(long)]
    pub allow_missing_data: bool,
}

impl DryRunFlags {
    /// As plan options.
    pub fn options(self) -> PlanOptions {
        PlanOptions {
            allow_missing_checkpoints: self.allow_missing_checkpoints,
            allow_missing_data: self.allow_missing_data,
        }
    }
}

/// Arguments of `kd plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    flags: DryRunFlags,
}

/// Loads the configuration and builds the plan.
pub fn load_plan(args: &ConfigArgs, options: PlanOptions) -> anyhow::Result<runtime::RunPlan> {
    let loaded = config::load(Some(&args.config), &args.sets)?;
    kd_core::dynamic::load_plugins(&loaded.config.plugins.load)?;
    let registry = Registry::global()?;
    Ok(runtime::plan_with(&loaded, registry, options)?)
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let plan = load_plan(&args.config, args.flags.options())?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", plan.describe())?;
    let cpu = backend::CpuInfo::detect();
    writeln!(
        out,
        "device: {}",
        backend::device_line(plan.config.run.backend, &cpu)
    )?;
    Ok(())
}
