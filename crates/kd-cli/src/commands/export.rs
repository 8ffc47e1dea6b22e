//! `kd export`: a network of a kd checkpoint as the PyTorch state dict of its reference
//! definition, in safetensors (with metadata) or as a `torch.save` file, for deployment outside
//! kd. The report names the architecture, the entries written and the file.

use std::io::Write;
use std::path::PathBuf;

use kd_core::backend::{self, BackendKind};
use kd_core::checkpoint;
use kd_core::export::{self, ExportFormat};
use kd_core::runtime;

use crate::exit::UsageError;

/// The `--format` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// safetensors, with metadata (architecture, classes, channels, kd version, source).
    Safetensors,
    /// PyTorch's `torch.save` zip file holding a bare state dict.
    Pth,
}

/// Arguments of `kd export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The kd checkpoint (`runs/<name>/checkpoints/best.kdc`).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The role inside the checkpoint.
    #[arg(long, default_value = "student")]
    role: String,
    /// The file to write (written whole or not at all).
    #[arg(long)]
    out: PathBuf,
    /// The file format (default: `pth` for a `.pth` or `.pt` --out, else `safetensors`).
    #[arg(long, value_enum)]
    format: Option<Format>,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let format = match args.format {
        Some(Format::Safetensors) => ExportFormat::Safetensors,
        Some(Format::Pth) => ExportFormat::Pth,
        None => ExportFormat::for_path(&args.out),
    };
    let device = backend::device(BackendKind::Flex)?;
    let (network, entry) = runtime::load_network(&args.checkpoint, &args.role, &device)?;
    // The checkpoint's input preparation travels with the export (`input_preparation`).
    let preparation = checkpoint::read_header(&args.checkpoint)?.preparation;
    let written = export::export_network(
        &network,
        &entry,
        &args.checkpoint,
        &args.out,
        format,
        preparation.as_ref(),
    )
    .map_err(|e| -> anyhow::Error {
        if e.is_user_error() {
            UsageError(e.to_string()).into()
        } else {
            e.into()
        }
    })?;
    writeln!(
        std::io::stdout().lock(),
        "exported {} ({} classes, {} input channel(s)) from {} role `{}`: {} state-dict entries \
         as {}\nwrote {} ({} bytes)",
        entry.arch,
        entry.num_classes,
        entry.in_channels,
        args.checkpoint.display(),
        entry.role,
        written.tensors,
        format.name(),
        args.out.display(),
        written.bytes
    )?;
    Ok(())
}
