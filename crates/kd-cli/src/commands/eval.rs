//! `kd eval`: a checkpoint's top-1, top-5 and per-class accuracy on a dataset, its images
//! prepared as the checkpoint records (flags override the record; see `inputs.rs`) and its
//! classes named as the checkpoint names them where the data only numbers them.

use std::io::Write;
use std::path::PathBuf;

use kd_core::backend::{self, BackendKind};
use kd_core::runtime;
use serde::Serialize;

use super::inputs::{self, DataArgs};

/// Arguments of `kd eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A kd checkpoint (`runs/<name>/checkpoints/best.kdc`), or a PyTorch one (with --arch).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The role inside a kd checkpoint.
    #[arg(long, default_value = "student")]
    role: String,
    /// The architecture (required for a PyTorch checkpoint; checked against a kd one).
    #[arg(long)]
    arch: Option<String>,
    #[command(flatten)]
    data: DataArgs,
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
    /// Top-1 per class; `null` for a class with no image in the set.
    per_class: Vec<Option<f64>>,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let device = backend::device(BackendKind::Flex)?;
    let (network, entry, preparation) =
        inputs::load_network(&args.checkpoint, &args.role, args.arch.as_deref(), &device)?;
    let (set, transform) = args
        .data
        .load(&entry, &args.checkpoint, preparation.as_ref(), None)?;
    let tally =
        runtime::evaluate_network(&network, &set, &transform, args.data.batch_size(), &device);
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
        let acc = match acc {
            Some(acc) => format!("{acc:>6.2}%"),
            None => "    no images".to_string(),
        };
        writeln!(
            out,
            "  class {:>3} {:<16} {acc}",
            class, set.class_names[class]
        )?;
    }
    Ok(())
}
