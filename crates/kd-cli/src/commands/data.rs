//! `kd data stats`: image count, class histogram and per-channel mean/std of a data file or a
//! dataset folder.

use std::io::Write;
use std::path::PathBuf;

use kd_core::data::{self, DataFormat, Split};

/// `kd data …`
#[derive(Debug, clap::Subcommand)]
pub enum DataCommand {
    /// Count, class histogram and per-channel mean and std of pixel values scaled to [0, 1].
    Stats(StatsArgs),
}

/// Arguments of `kd data stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// One data file (an IDX image file with its label file beside it, a CIFAR batch file) or a
    /// dataset folder.
    path: PathBuf,
    /// Layout of the data.
    #[arg(long, value_parser = parse_format)]
    format: DataFormat,
    /// Split to read when PATH is a dataset folder.
    #[arg(long, value_enum, default_value = "train")]
    split: SplitArg,
    /// Print JSON (`count`, `classes`, `mean`, `std`).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SplitArg {
    Train,
    Test,
}

fn parse_format(s: &str) -> Result<DataFormat, String> {
    s.parse()
}

/// Runs the command.
pub fn run(command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Stats(args) => stats(args),
    }
}

fn stats(args: StatsArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let split = match args.split {
        SplitArg::Train => Split::Train,
        SplitArg::Test => Split::Test,
    };
    let set = data::load_path(&args.path, args.format, split)?;
    let stats = data::stats(&set);
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&stats)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{}: {} images, {} channel(s) of {}x{}, {} classes",
        args.path.display(),
        stats.count,
        set.channels,
        set.height,
        set.width,
        set.num_classes
    )?;
    for (c, (mean, std)) in stats.mean.iter().zip(&stats.std).enumerate() {
        writeln!(out, "channel {c}: mean {mean:.4}  std {std:.4}")?;
    }
    writeln!(out, "class histogram:")?;
    for (class, count) in stats.classes.iter().enumerate() {
        writeln!(out, "  {:>3} {:<16} {count}", class, set.class_names[class])?;
    }
    Ok(())
}
