//! `kd predict`: evaluation-mode logits of a checkpoint for every image of a dataset, in file
//! order, its images prepared as the checkpoint records (see `inputs.rs`); `--json` prints an
//! array of `{index, label, logits}`.

use std::io::Write;
use std::path::PathBuf;

use kd_core::backend::{self, BackendKind};
use kd_core::runtime;
use serde::Serialize;

use super::inputs::{self, DataArgs};

/// Arguments of `kd predict`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The architecture (checked against a kd checkpoint; needed to read a PyTorch one).
    #[arg(long)]
    arch: String,
    /// A kd checkpoint, or a PyTorch `.pth` (imported in memory).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The role inside a kd checkpoint.
    #[arg(long, default_value = "student")]
    role: String,
    #[command(flatten)]
    data: DataArgs,
    /// Only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Prediction {
    index: usize,
    label: u16,
    logits: Vec<f32>,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let device = backend::device(BackendKind::Flex)?;
    let (network, entry, preparation) =
        inputs::load_network(&args.checkpoint, &args.role, Some(&args.arch), &device)?;
    let (set, transform) =
        args.data
            .load(&entry, &args.checkpoint, preparation.as_ref(), args.limit)?;
    let logits =
        runtime::predict_logits(&network, &set, &transform, args.data.batch_size(), &device);
    let predictions: Vec<Prediction> = logits
        .into_iter()
        .enumerate()
        .map(|(index, logits)| Prediction {
            index,
            label: set.labels[index],
            logits,
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &predictions)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "index label predicted logit")?;
    for p in &predictions {
        let (best, value) =
            p.logits
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
                );
        writeln!(out, "{:>5} {:>5} {best:>9} {value:>8.4}", p.index, p.label)?;
    }
    Ok(())
}
