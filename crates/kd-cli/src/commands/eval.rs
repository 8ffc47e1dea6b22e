//! `kd eval`: a checkpoint's top-1, top-5 and per-class accuracy on a dataset.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use kd_core::backend::{self, BackendKind};
use kd_core::data::{self, DataFormat, Split, Transform};
use kd_core::runtime::{self, default_normalisation};
use serde::Serialize;

use crate::exit::UsageError;

/// Arguments of `kd eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A kd checkpoint (`runs/<name>/checkpoints/best.kdc`).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The role inside the checkpoint.
    #[arg(long, default_value = "student")]
    role: String,
    /// A data file or dataset folder.
    #[arg(long)]
    data: PathBuf,
    /// Layout of the data.
    #[arg(long, value_parser = |s: &str| s.parse::<DataFormat>())]
    format: DataFormat,
    /// Split to read when --data is a dataset folder.
    #[arg(long, default_value = "test", value_parser = ["train", "test"])]
    split: String,
    /// Network input side (smaller images are zero-padded).
    #[arg(long, default_value_t = 32)]
    input_size: usize,
    /// Per-channel mean (default: the format's standard constants), e.g. `0.5,0.5,0.5`.
    #[arg(long, value_delimiter = ',')]
    mean: Option<Vec<f32>>,
    /// Per-channel std.
    #[arg(long, value_delimiter = ',')]
    std: Option<Vec<f32>>,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    checkpoint: PathBuf,
    role: String,
    arch: String,
    count: usize,
    top1: f64,
    top5: f64,
    per_class: Vec<f64>,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let split = if args.split == "train" {
        Split::Train
    } else {
        Split::Test
    };
    let set = Arc::new(data::load_path(&args.data, args.format, split)?);
    let device = backend::device(BackendKind::Flex)?;
    let (network, entry) = runtime::load_network(&args.checkpoint, &args.role, &device)?;
    if (entry.num_classes, entry.in_channels) != (set.num_classes, set.channels) {
        return Err(UsageError(format!(
            "{} holds a {} for {} classes and {} channel(s), but {} has {} classes and {} channel(s)",
            args.checkpoint.display(),
            entry.arch,
            entry.num_classes,
            entry.in_channels,
            args.data.display(),
            set.num_classes,
            set.channels
        ))
        .into());
    }
    if args.input_size < set.height.max(set.width) {
        return Err(UsageError(format!(
            "--input-size {} is smaller than the {}x{} images",
            args.input_size, set.height, set.width
        ))
        .into());
    }
    let (mean, std) = default_normalisation(args.format, set.channels);
    let (mean, std) = (args.mean.unwrap_or(mean), args.std.unwrap_or(std));
    if mean.len() != set.channels || std.len() != set.channels {
        return Err(UsageError(format!(
            "--mean and --std need {} value(s) each",
            set.channels
        ))
        .into());
    }
    let transform = Transform {
        channels: set.channels,
        height: set.height,
        width: set.width,
        size: args.input_size,
        mean,
        std,
    };
    let tally =
        runtime::evaluate_network(&network, &set, &transform, args.batch_size.max(1), &device);
    let accuracy = tally.accuracy();
    let report = Report {
        checkpoint: args.checkpoint.clone(),
        role: args.role.clone(),
        arch: entry.arch.clone(),
        count: tally.total,
        top1: accuracy.top1,
        top5: accuracy.top5,
        per_class: tally.per_class_accuracy(),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} ({}, role {}) on {} images: top-1 {:.2}%, top-5 {:.2}%",
        report.checkpoint.display(),
        report.arch,
        report.role,
        report.count,
        report.top1,
        report.top5
    )?;
    for (class, acc) in report.per_class.iter().enumerate() {
        writeln!(
            out,
            "  class {:>3} {:<16} {acc:>6.2}%",
            class, set.class_names[class]
        )?;
    }
    Ok(())
}
