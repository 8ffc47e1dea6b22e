//! `kd bench`: throughput measurements, one kind per subcommand, printed as JSON for
//! `cargo xtask bench` (which runs each in its own process, adds PyTorch's numbers and writes
//! docs/results/bench.md). Images per second: median, minimum and maximum over timed iterations
//! after warm-up.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use kd_core::backend::{self, BackendKind};
use kd_core::bench::{self, Throughput};
use kd_core::data::{self, DataFormat, Split, Transform};
use kd_core::kernels;
use kd_core::runtime;
use kd_core::zoo::{self, ModelSpec, trainable_params};
use serde::Serialize;

use super::models::{MAX_CLASSES, in_range};
use super::plan::{ConfigArgs, DryRunFlags, load_plan};
use crate::exit::UsageError;

/// `kd bench …`
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Bare training and inference steps of zoo models on synthetic batches.
    Models(ModelsArgs),
    /// Whole runtime training steps of a planned run (every method, every optimiser).
    Step(StepArgs),
    /// The training batch pipeline (read, augment, normalise) on a real dataset.
    Data(DataArgs),
}

/// The most timed (or warm-up) iterations a flag may ask for.
pub const MAX_ITERATIONS: u64 = 10_000;
/// The largest `--batch`.
pub const MAX_BATCH: u64 = 4096;

/// Iteration counts.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Repeat {
    /// Untimed iterations first (0 to 10000).
    #[arg(long, default_value_t = 2, value_parser = in_range(0, MAX_ITERATIONS))]
    warmup: usize,
    /// Timed iterations (1 to 10000).
    #[arg(long, default_value_t = 5, value_parser = in_range(1, MAX_ITERATIONS))]
    iterations: usize,
    /// Which convolution runs: kd's own kernels or burn's `conv2d` (to compare the two).
    #[arg(long, value_enum, default_value_t = ConvKernels::Kd)]
    conv: ConvKernels,
}

/// The convolution path a benchmark measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConvKernels {
    /// kd's kernels (`kd_core::kernels`), as training uses them.
    Kd,
    /// burn's own `conv2d` and its generic backward.
    Burn,
}

/// Arguments of `kd bench models`.
#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    /// Zoo names (default: every model).
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
    /// Images per batch (1 to 4096).
    #[arg(long, default_value_t = 64, value_parser = in_range(1, MAX_BATCH))]
    batch: usize,
    /// Classifier outputs (1 to 100000).
    #[arg(long, default_value_t = 100, value_parser = in_range(1, MAX_CLASSES))]
    classes: usize,
    /// Skip the training step (inference only).
    #[arg(long)]
    no_train: bool,
    #[command(flatten)]
    repeat: Repeat,
}

/// Arguments of `kd bench step`.
#[derive(Debug, clap::Args)]
pub struct StepArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    flags: DryRunFlags,
    #[command(flatten)]
    repeat: Repeat,
}

/// Arguments of `kd bench data`.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// A dataset folder or file.
    #[arg(long)]
    data: PathBuf,
    /// Its layout.
    #[arg(long, value_parser = |s: &str| s.parse::<DataFormat>())]
    format: DataFormat,
    /// Images per batch (1 to 4096, and at most the images in the dataset).
    #[arg(long, default_value_t = 64, value_parser = in_range(1, MAX_BATCH))]
    batch: usize,
    #[command(flatten)]
    repeat: Repeat,
}

#[derive(Serialize)]
struct ModelRow {
    model: String,
    params: usize,
    batch: usize,
    train: Option<Throughput>,
    inference: Throughput,
}

/// Runs the command.
pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    let repeat = match &command {
        BenchCommand::Models(args) => args.repeat,
        BenchCommand::Step(args) => args.repeat,
        BenchCommand::Data(args) => args.repeat,
    };
    kernels::set_enabled(repeat.conv == ConvKernels::Kd);
    let value = match command {
        BenchCommand::Models(args) => serde_json::to_value(models(&args)?)?,
        BenchCommand::Step(args) => {
            let plan = load_plan(&args.config, args.flags.options())?;
            let batch = plan.config.data.batch_size;
            let seconds =
                runtime::time_plan_steps(plan, args.repeat.warmup, args.repeat.iterations)?;
            serde_json::to_value(Throughput::from_seconds(&seconds, batch))?
        }
        BenchCommand::Data(args) => {
            let set = Arc::new(data::load_path(&args.data, args.format, Split::Train)?);
            if args.batch > set.len() {
                return Err(UsageError(format!(
                    "--batch {} exceeds the {} training images in {}: no batch could be timed",
                    args.batch,
                    set.len(),
                    args.data.display()
                ))
                .into());
            }
            let (mean, std) = args.format.normalisation(set.channels);
            let transform = Transform {
                channels: set.channels,
                height: set.height,
                width: set.width,
                size: 32.max(set.height.max(set.width)),
                mean,
                std,
            };
            serde_json::to_value(bench::pipeline_throughput(
                &set,
                &transform,
                args.batch,
                args.repeat.warmup,
                args.repeat.iterations,
            ))?
        }
    };
    writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&value)?
    )?;
    Ok(())
}

fn models(args: &ModelsArgs) -> anyhow::Result<Vec<ModelRow>> {
    let names: Vec<String> = match &args.models {
        Some(list) => list.clone(),
        None => zoo::names().iter().map(|n| n.to_string()).collect(),
    };
    let device = backend::device(BackendKind::Flex)?;
    let spec = ModelSpec {
        num_classes: args.classes,
        in_channels: 3,
    };
    let shape = [args.batch, 3, 32, 32];
    let mut rows = Vec::new();
    for name in names {
        let entry = zoo::find(&name).ok_or_else(|| {
            UsageError(format!(
                "unknown model `{name}`; `kd models` lists: {}",
                zoo::names().join(", ")
            ))
        })?;
        let network = (entry.arch)(spec).init(&device);
        let params = trainable_params(&network);
        let inference = bench::inference_throughput(
            &network,
            shape,
            args.repeat.warmup,
            args.repeat.iterations,
            &device,
        );
        drop(network);
        let train = (!args.no_train).then(|| {
            let autodiff = device.clone().autodiff();
            bench::train_throughput(
                (entry.arch)(spec).init(&autodiff),
                args.classes,
                shape,
                args.repeat.warmup,
                args.repeat.iterations,
                &autodiff,
            )
        });
        tracing::info!("{name}: inference {:.0} img/s", inference.median);
        rows.push(ModelRow {
            model: entry.name.to_string(),
            params,
            batch: shape[0],
            train,
            inference,
        });
    }
    Ok(rows)
}
