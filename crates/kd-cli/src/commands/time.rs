//! `kd time`: the measured cost of a step of a planned run, on synthetic batches (no dataset
//! needed), and the run's estimated duration on this machine.

use std::io::Write;

use kd_core::runtime;

use super::plan::{ConfigArgs, DryRunFlags, load_plan};

/// Arguments of `kd time`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    flags: DryRunFlags,
    /// Training steps to time (after the warm-up steps), 1 to 10000.
    #[arg(long, default_value_t = 3, value_parser = super::models::in_range(1, super::bench::MAX_ITERATIONS))]
    steps: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let plan = load_plan(&args.config, args.flags.options())?;
    let timing = runtime::time_steps(plan, args.steps)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&timing)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:.3} s per step ({} steps timed), {:.2} ms per evaluated image; {} epochs × {} steps, {} test images: about {:.1} min",
        timing.seconds_per_step,
        timing.steps,
        timing.eval_seconds_per_image * 1e3,
        timing.epochs,
        timing.batches_per_epoch,
        timing.test_images,
        timing.estimated_seconds / 60.0
    )?;
    Ok(())
}
