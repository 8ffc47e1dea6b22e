//! `kd train`: plan, then run (or resume) to the end, with a progress display.

use kd_core::runtime::{self, TrainOptions};

use super::plan::{ConfigArgs, load_plan};
use crate::progress::Progress;

/// Arguments of `kd train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Continue the run from its last checkpoint.
    #[arg(long)]
    resume: bool,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let plan = load_plan(&args.config, Default::default())?;
    for warning in &plan.warnings {
        tracing::warn!("{warning}");
    }
    let dir = plan.run_dir.clone();
    let mut progress = Progress::new();
    let summary = runtime::train(
        plan,
        TrainOptions {
            resume: args.resume,
        },
        &mut progress,
    )?;
    progress.finish();
    crate::report::print_summary(&dir, &summary)?;
    Ok(())
}
